//! The key directory's follower: every instance reads the stream's admin events (keys, limits)
//! from sequence 1 with an ordered consumer of its own and folds them into its
//! [`Directory`]. Nothing is stored: the directory is small and rebuilt at each start, which is
//! also its replay. A per-instance ordered consumer, not a shared durable one, because every
//! instance needs every event.
//!
//! The same task records expiries: a key past its expiry without a KeyExpired event gets one.
//! Every instance may notice the same expiry, so the event id is derived from the key and its
//! expiry time, and JetStream's Msg-Id de-duplication keeps one copy.

use async_nats::jetstream::{self, consumer};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use ulid::Ulid;

use super::ProjectionError;
use super::follow::{nats, next_batch};
use crate::events::{
    ADMIN_SUBJECT_WILDCARD, CURRENT_SCHEMA, DecodeError, Envelope, Event, KeyExpired, decode,
};
use crate::governance::{Directory, now_ms};
use crate::publish::jetstream::{is_connected, publish_now};

/// Most events folded into one snapshot.
const BATCH: usize = 512;
/// How often expiries are looked for.
const EXPIRY_TICK: Duration = Duration::from_secs(1);

/// Follow the admin events into `directory` until `stop`. Interruptions (NATS away, the stream
/// not created yet) are retried; the follower resumes after the last applied sequence.
pub async fn follow(
    client: async_nats::Client,
    stream: String,
    directory: Arc<Directory>,
    stop: CancellationToken,
) {
    super::follow::retrying("key directory follower", stop, || {
        follow_once(&client, &stream, &directory)
    })
    .await;
}

async fn follow_once(
    client: &async_nats::Client,
    stream_name: &str,
    directory: &Directory,
) -> Result<(), ProjectionError> {
    while !is_connected(client) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let js = jetstream::new(client.clone());
    let stream = js.get_stream(stream_name).await.map_err(nats)?;
    let from = directory.applied() + 1;
    let consumer = stream
        .create_consumer(consumer::pull::OrderedConfig {
            filter_subject: ADMIN_SUBJECT_WILDCARD.to_owned(),
            deliver_policy: if from == 1 {
                consumer::DeliverPolicy::All
            } else {
                consumer::DeliverPolicy::ByStartSequence {
                    start_sequence: from,
                }
            },
            ..Default::default()
        })
        .await
        .map_err(nats)?;
    if consumer.cached_info().num_pending == 0 {
        directory.set_ready();
    }
    let mut messages = consumer.messages().await.map_err(nats)?;
    loop {
        // Whatever else has already arrived joins the batch: one snapshot for a burst.
        let raw = next_batch(&mut messages, BATCH).await?;
        let mut batch = Vec::with_capacity(raw.len());
        let mut caught_up = false;
        let mut newer = None;
        for m in &raw {
            let info = m.info().map_err(nats)?;
            match decode(&m.payload) {
                Ok(env) => batch.push((info.stream_sequence, env)),
                Err(DecodeError::UnknownSchema(version)) if version > CURRENT_SCHEMA => {
                    newer = Some(ProjectionError::NewerSchema {
                        seq: info.stream_sequence,
                        version,
                    });
                    break;
                }
                Err(e) => {
                    tracing::error!(seq = info.stream_sequence, error = %e, "undecodable admin event skipped");
                    metrics::counter!("switchyard_projection_undecodable_total", "projection" => "keys").increment(1);
                }
            }
            caught_up = info.pending == 0;
        }
        directory.apply(&batch);
        metrics::gauge!("switchyard_projection_checkpoint", "projection" => "keys")
            .set(directory.applied() as f64);
        if let Some(e) = newer {
            return Err(e);
        }
        if caught_up {
            directory.set_ready();
        }
    }
}

/// Publish a KeyExpired event for every key past its expiry without one, once a second, until
/// `stop`.
pub async fn record_expiries(
    client: async_nats::Client,
    directory: Arc<Directory>,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(EXPIRY_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        if !directory.is_ready() || !is_connected(&client) {
            continue;
        }
        for (key_id, expires_at_ms) in directory.expired_unrecorded(now_ms()) {
            let env = expiry_event(key_id, expires_at_ms);
            if let Err(e) = publish_now(&client, &env, Duration::from_secs(5)).await {
                tracing::warn!(error = %e, "could not record a key expiry; retrying");
                break;
            }
        }
    }
}

/// The KeyExpired event of a key, with an id every instance derives alike (time part: the
/// expiry; random part: from the key id), so JetStream keeps one.
fn expiry_event(key_id: String, expires_at_ms: u64) -> Envelope {
    let digest = Sha256::digest(key_id.as_bytes());
    let mut rand = [0u8; 16];
    rand.copy_from_slice(&digest[..16]);
    let id = Ulid::from_parts(expires_at_ms, u128::from_be_bytes(rand));
    Envelope {
        id,
        at_ms: expires_at_ms,
        request_id: id,
        event: Event::KeyExpired(KeyExpired {
            key_id,
            expires_at_ms,
        }),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_instance_derives_the_same_expiry_event() {
        let a = super::expiry_event("k1".into(), 1_700_000_000_000);
        let b = super::expiry_event("k1".into(), 1_700_000_000_000);
        let c = super::expiry_event("k2".into(), 1_700_000_000_000);
        assert_eq!(a, b);
        assert_ne!(a.id, c.id);
        assert_eq!(a.id.timestamp_ms(), 1_700_000_000_000);
    }
}
