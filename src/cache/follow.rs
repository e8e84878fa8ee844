//! Each instance's follower of the stream for its cache: an ordered consumer of its own (every
//! instance needs every answer) over the request, answer and flush subjects, starting as far
//! back as the longest TTL reaches (older answers would be expired anyway), folding each batch
//! into the [`Cache`]. A restart is a replay of that window.

use async_nats::jetstream::{self, consumer};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use super::Cache;
use crate::events::{
    CACHE_FLUSHED_SUBJECT, CURRENT_SCHEMA, DecodeError, REQUEST_ACCEPTED_SUBJECT,
    RESPONSE_COMPLETED_SUBJECT, decode,
};
use crate::projections::ProjectionError;
use crate::projections::follow::{nats, next_batch, retrying};
use crate::publish::jetstream::is_connected;

/// Most events folded under one write lock.
const BATCH: usize = 512;

/// The subjects the cache folds.
pub fn subjects() -> Vec<String> {
    [
        REQUEST_ACCEPTED_SUBJECT,
        RESPONSE_COMPLETED_SUBJECT,
        CACHE_FLUSHED_SUBJECT,
    ]
    .map(str::to_owned)
    .to_vec()
}

/// Follow the stream into `cache` until `stop`; interruptions are retried from the last
/// applied sequence.
pub async fn follow(
    client: async_nats::Client,
    stream: String,
    cache: Arc<Cache>,
    stop: CancellationToken,
) {
    retrying("cache follower", stop, || {
        follow_once(&client, &stream, &cache)
    })
    .await;
}

/// Where a follower starts: after the last applied event, or as far back as the longest TTL.
pub fn start(cache: &Cache) -> consumer::DeliverPolicy {
    match cache.applied() {
        0 => {
            let back = time::Duration::try_from(cache.max_ttl()).unwrap_or(time::Duration::DAY);
            consumer::DeliverPolicy::ByStartTime {
                start_time: time::OffsetDateTime::now_utc()
                    .checked_sub(back)
                    .unwrap_or(time::OffsetDateTime::UNIX_EPOCH),
            }
        }
        applied => consumer::DeliverPolicy::ByStartSequence {
            start_sequence: applied + 1,
        },
    }
}

/// An ordered consumer of the cache's subjects, from where [`start`] says.
async fn open(
    stream: &jetstream::stream::Stream,
    cache: &Cache,
) -> Result<jetstream::consumer::Consumer<consumer::pull::OrderedConfig>, ProjectionError> {
    stream
        .create_consumer(consumer::pull::OrderedConfig {
            filter_subjects: subjects(),
            deliver_policy: start(cache),
            ..Default::default()
        })
        .await
        .map_err(nats)
}

async fn follow_once(
    client: &async_nats::Client,
    stream_name: &str,
    cache: &Cache,
) -> Result<(), ProjectionError> {
    while !is_connected(client) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let js = jetstream::new(client.clone());
    let stream = js.get_stream(stream_name).await.map_err(nats)?;
    let consumer = open(&stream, cache).await?;
    let mut messages = consumer.messages().await.map_err(nats)?;
    loop {
        let raw = next_batch(&mut messages, BATCH).await?;
        let (batch, newer) = decode_batch(&raw)?;
        cache.apply(&batch);
        metrics::gauge!("switchyard_projection_checkpoint", "projection" => "cache")
            .set(cache.applied() as f64);
        if let Some(e) = newer {
            return Err(e);
        }
    }
}

/// Events with their stream sequences, and the error to stop on after them (an event of a newer
/// schema), if any.
type Decoded = (Vec<(u64, crate::events::Envelope)>, Option<ProjectionError>);

/// Decode a batch of messages: the events up to the first one of a newer schema (returned as
/// the error to stop on); undecodable ones are skipped and counted.
pub fn decode_batch(raw: &[jetstream::Message]) -> Result<Decoded, ProjectionError> {
    let mut batch = Vec::with_capacity(raw.len());
    for m in raw {
        let info = m.info().map_err(nats)?;
        match decode(&m.payload) {
            Ok(env) => batch.push((info.stream_sequence, env)),
            Err(DecodeError::UnknownSchema(version)) if version > CURRENT_SCHEMA => {
                let e = ProjectionError::NewerSchema {
                    seq: info.stream_sequence,
                    version,
                };
                return Ok((batch, Some(e)));
            }
            Err(e) => {
                tracing::error!(seq = info.stream_sequence, error = %e, "undecodable event skipped by the cache");
                metrics::counter!("switchyard_projection_undecodable_total", "projection" => "cache").increment(1);
            }
        }
    }
    Ok((batch, None))
}

/// `switchyard replay cache`: fold the stream's window into `cache` until the consumer has
/// nothing pending, reporting (position, end) as it goes.
pub async fn replay(
    client: &async_nats::Client,
    stream_name: &str,
    cache: &Cache,
    progress: impl Fn(u64, u64),
) -> Result<(), ProjectionError> {
    let js = jetstream::new(client.clone());
    let mut stream = js.get_stream(stream_name).await.map_err(nats)?;
    let end = stream.info().await.map_err(nats)?.state.last_sequence;
    let consumer = open(&stream, cache).await?;
    if consumer.cached_info().num_pending == 0 {
        progress(end, end);
        return Ok(());
    }
    let mut messages = consumer.messages().await.map_err(nats)?;
    loop {
        let raw = next_batch(&mut messages, BATCH).await?;
        let done = match raw.last().map(|m| m.info().map(|i| i.pending)) {
            Some(Ok(pending)) => pending == 0,
            _ => false,
        };
        let (batch, newer) = decode_batch(&raw)?;
        cache.apply(&batch);
        progress(cache.applied(), end);
        if let Some(e) = newer {
            return Err(e);
        }
        if done {
            return Ok(());
        }
    }
}
