//! A subject used as a register: read its last message, write a new one only if nobody wrote
//! since (`Nats-Expected-Last-Subject-Sequence`). Budget ledgers and rate-limit timelines are
//! such registers, one per budget window or limit.

use async_nats::jetstream::{self, context::PublishErrorKind, message::PublishMessage};
use bytes::Bytes;
use std::time::Duration;

use crate::publish::jetstream::is_connected;

/// Time limit of one read or write.
pub const OP_TIMEOUT: Duration = Duration::from_secs(2);
/// Writes refused because another instance wrote first, before a caller gives up.
pub const CONTENTION_TRIES: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("NATS is not connected")]
    Disconnected,
    #[error("the ledger did not answer within {0:?}")]
    Timeout(Duration),
    #[error("JetStream: {0}")]
    Nats(String),
    /// Another instance wrote first, every time.
    #[error("the ledger kept changing under {0} attempts")]
    Contention(usize),
    #[error("the ledger's last message is not what it should be: {0}")]
    Corrupt(String),
}

/// Another instance wrote the register since it was read.
pub struct Conflict;

/// The last message on `subject` of `stream` and its sequence; `(0, None)` when there is none.
pub async fn last(
    client: &async_nats::Client,
    js: &jetstream::Context,
    stream: &str,
    subject: &str,
) -> Result<(u64, Option<Bytes>), LedgerError> {
    if !is_connected(client) {
        return Err(LedgerError::Disconnected);
    }
    let read = async {
        let stream = js
            .get_stream_no_info(stream)
            .await
            .map_err(|e| LedgerError::Nats(e.to_string()))?;
        match stream.get_last_raw_message_by_subject(subject).await {
            Ok(m) => Ok((m.sequence, Some(m.payload))),
            Err(e) if e.kind() == jetstream::stream::LastRawMessageErrorKind::NoMessageFound => {
                Ok((0, None))
            }
            Err(e) => Err(LedgerError::Nats(e.to_string())),
        }
    };
    tokio::time::timeout(OP_TIMEOUT, read)
        .await
        .map_err(|_| LedgerError::Timeout(OP_TIMEOUT))?
}

/// Publish `payload` on `subject` if the subject's last sequence is still `seq`. A write whose
/// answer was lost is sent again with the same `msg_id`: JetStream's Msg-Id de-duplication
/// (checked before the sequence) then answers for the first.
pub async fn append(
    client: &async_nats::Client,
    js: &jetstream::Context,
    subject: String,
    msg_id: &str,
    payload: Bytes,
    seq: u64,
) -> Result<Result<(), Conflict>, LedgerError> {
    for _ in 0..3 {
        if !is_connected(client) {
            return Err(LedgerError::Disconnected);
        }
        let msg = PublishMessage::build()
            .message_id(msg_id)
            .expected_last_subject_sequence(seq)
            .payload(payload.clone());
        let write = async { js.send_publish(subject.clone(), msg).await?.await };
        match tokio::time::timeout(OP_TIMEOUT, write).await {
            Ok(Ok(_)) => return Ok(Ok(())),
            Ok(Err(e)) if e.kind() == PublishErrorKind::WrongLastSequence => {
                return Ok(Err(Conflict));
            }
            Ok(Err(e)) if e.kind() == PublishErrorKind::TimedOut => continue,
            Ok(Err(e)) => return Err(LedgerError::Nats(e.to_string())),
            Err(_) => continue,
        }
    }
    Err(LedgerError::Timeout(OP_TIMEOUT))
}
