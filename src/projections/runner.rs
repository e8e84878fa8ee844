//! The consumer runner: collect a batch, apply it on the blocking pool (data and checkpoint in one
//! transaction), then ack it. Lag is the number of messages the consumer has not yet delivered.

use async_nats::jetstream::{self, consumer};
use futures::StreamExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use super::{Applied, Projection, ProjectionError};
use crate::events::{CURRENT_SCHEMA, DecodeError, decode};
use crate::publish::jetstream::is_connected;

/// How long a batch keeps collecting after its first message.
const BATCH_WINDOW: Duration = Duration::from_millis(20);
/// At most this long between durable (fsynced) commits.
const DURABLE_EVERY: Duration = Duration::from_secs(1);

/// Live figures for `/readyz`, metrics and the replay progress bar.
#[derive(Debug, Default)]
pub struct ProjectionStatus {
    pub checkpoint: AtomicU64,
    /// Messages matching the filter not yet delivered to us.
    pub lag: AtomicU64,
    /// Highest stream sequence seen at the last look (for progress).
    pub stream_last_seq: AtomicU64,
}

/// Follow the stream for ever, or stop once caught up with the stream as it was at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunMode {
    Follow,
    CatchUp,
}

/// How often a projection stopped before a newer-schema event looks at it again.
const NEWER_SCHEMA_RETRY: Duration = Duration::from_secs(2);

/// One projection's consumer: what it folds, from which stream, how.
pub struct Runner<P> {
    pub projection: Arc<P>,
    pub client: async_nats::Client,
    /// The JetStream stream to read.
    pub stream: String,
    /// Most messages applied in one transaction.
    pub batch: usize,
    pub status: Arc<ProjectionStatus>,
    pub mode: RunMode,
}

impl<P: Projection> Runner<P> {
    /// Run until `stop` is cancelled (or, in catch-up mode, until caught up). Transient
    /// failures (NATS away, store errors) are retried with a pause.
    pub async fn run(self, stop: CancellationToken) -> Result<(), ProjectionError> {
        let Runner {
            projection,
            client,
            stream,
            batch,
            status,
            mode,
        } = self;
        let flush = || async {
            let p = Arc::clone(&projection);
            blocking(move || p.flush()).await
        };
        loop {
            let res = tokio::select! {
                r = run_once(&projection, &client, &stream, batch, &status, mode) => r,
                _ = stop.cancelled() => return flush().await,
            };
            match res {
                Ok(()) => return flush().await,
                Err(e) => {
                    let newer = matches!(e, ProjectionError::NewerSchema { .. });
                    if mode == RunMode::CatchUp && (newer || e.is_store()) {
                        return Err(e);
                    }
                    // A newer event stays newer: look again now and then, for the logs and in case
                    // the stream was repaired, without spinning.
                    let pause = if newer {
                        tracing::error!(projection = projection.name(), error = %e, "projection stopped before an event it cannot read");
                        NEWER_SCHEMA_RETRY
                    } else {
                        tracing::warn!(projection = projection.name(), error = %e, "projection interrupted; retrying");
                        Duration::from_millis(500)
                    };
                    tokio::select! {
                        _ = tokio::time::sleep(pause) => {}
                        _ = stop.cancelled() => return flush().await,
                    }
                }
            }
        }
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ProjectionError> + Send + 'static,
) -> Result<T, ProjectionError> {
    tokio::task::spawn_blocking(f).await?
}

fn nats(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> ProjectionError {
    ProjectionError::Nats(e.into())
}

async fn run_once<P: Projection>(
    projection: &Arc<P>,
    client: &async_nats::Client,
    stream_name: &str,
    batch: usize,
    status: &ProjectionStatus,
    mode: RunMode,
) -> Result<(), ProjectionError> {
    while !is_connected(client) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let js = jetstream::new(client.clone());
    let mut stream = js.get_stream(stream_name).await.map_err(nats)?;
    let target = stream.info().await.map_err(nats)?.state.last_sequence;
    status.stream_last_seq.store(target, Ordering::Relaxed);

    let p = Arc::clone(projection);
    let checkpoint = blocking(move || p.checkpoint()).await?;
    status.checkpoint.store(checkpoint, Ordering::Relaxed);
    if mode == RunMode::CatchUp && checkpoint >= target {
        status.lag.store(0, Ordering::Relaxed);
        return Ok(());
    }

    // The checkpoint in the store decides where to start, not the consumer's own ack floor.
    let name = projection.name();
    let consumer_name = projection.consumer();
    let _ = stream.delete_consumer(&consumer_name).await;
    let deliver_policy = if checkpoint == 0 {
        consumer::DeliverPolicy::All
    } else {
        consumer::DeliverPolicy::ByStartSequence {
            start_sequence: checkpoint + 1,
        }
    };
    let consumer = stream
        .create_consumer(consumer::pull::Config {
            durable_name: Some(consumer_name),
            // A store that is gone for good (its file deleted) leaves its consumer behind: the
            // server drops it after a day without a subscriber. A store coming back later
            // re-creates its consumer from its checkpoint anyway.
            inactive_threshold: Duration::from_secs(24 * 3600),
            filter_subject: projection.filter_subject().to_owned(),
            deliver_policy,
            ack_policy: consumer::AckPolicy::All,
            ack_wait: Duration::from_secs(30),
            max_ack_pending: (batch * 4) as i64,
            ..Default::default()
        })
        .await
        .map_err(nats)?;

    let pending_at_start = consumer.cached_info().num_pending;
    status.lag.store(pending_at_start, Ordering::Relaxed);
    if mode == RunMode::CatchUp && pending_at_start == 0 {
        // Nothing matching the filter past the checkpoint: already caught up.
        return Ok(());
    }

    // One continuous pull subscription: wait for the first message (no polling while idle),
    // then take whatever else arrives within a few milliseconds, up to `batch`, and apply the
    // lot in one transaction.
    let mut messages = consumer
        .stream()
        .max_messages_per_batch(batch)
        .heartbeat(Duration::from_secs(5))
        .messages()
        .await
        .map_err(nats)?;
    // Each delivery of a consumer gets the next consumer sequence, redeliveries included, so a
    // jump means deliveries this subscription never saw (the consumer's leader moved mid-pull).
    let mut next_delivery = consumer.cached_info().delivered.consumer_sequence + 1;
    let mut last_durable = tokio::time::Instant::now();
    loop {
        let first = match messages.next().await {
            Some(m) => m.map_err(nats)?,
            None => return Err(ProjectionError::SubscriptionEnded),
        };
        let mut raw = Vec::with_capacity(batch);
        raw.push(first);
        let window = tokio::time::Instant::now() + BATCH_WINDOW;
        while raw.len() < batch {
            match tokio::time::timeout_at(window, messages.next()).await {
                Ok(Some(m)) => raw.push(m.map_err(nats)?),
                Ok(None) | Err(_) => break,
            }
        }
        let mut applied = Vec::with_capacity(raw.len());
        let mut pending = 0;
        let mut stop_at = None;
        for m in &raw {
            let info = m.info().map_err(nats)?;
            if info.consumer_sequence != next_delivery {
                // Apply and acknowledge what came before the hole, then start over from there.
                stop_at = Some(ProjectionError::DeliveryGap {
                    expected: next_delivery,
                    got: info.consumer_sequence,
                });
                pending = info.pending + 1;
                break;
            }
            next_delivery += 1;
            let envelope = match decode(&m.payload) {
                Ok(env) => Some(env),
                Err(DecodeError::UnknownSchema(version)) if version > CURRENT_SCHEMA => {
                    // This event and the ones after it are still to do.
                    pending = info.pending + 1;
                    stop_at = Some(ProjectionError::NewerSchema {
                        seq: info.stream_sequence,
                        version,
                    });
                    break;
                }
                Err(e) => {
                    tracing::error!(projection = name, seq = info.stream_sequence, error = %e, "undecodable event skipped");
                    metrics::counter!("switchyard_projection_undecodable_total", "projection" => name).increment(1);
                    None
                }
            };
            pending = info.pending;
            applied.push(Applied {
                seq: info.stream_sequence,
                envelope,
            });
        }
        let n = applied.len();
        let last = applied.last().map_or(0, |a| a.seq);
        if n > 0 {
            let p = Arc::clone(projection);
            // Stopping: make what was applied durable now.
            let durable = stop_at.is_some() || last_durable.elapsed() >= DURABLE_EVERY;
            blocking(move || p.apply(&applied, durable)).await?;
            if durable {
                last_durable = tokio::time::Instant::now();
            }
            // AckPolicy::All: acknowledging the last applied message acknowledges those before.
            raw[n - 1].ack().await.map_err(nats)?;
        }
        if n > 0 {
            status.checkpoint.store(last, Ordering::Relaxed);
            status.stream_last_seq.fetch_max(last, Ordering::Relaxed);
            metrics::gauge!("switchyard_projection_checkpoint", "projection" => name)
                .set(last as f64);
        }
        status.lag.store(pending, Ordering::Relaxed);
        metrics::gauge!("switchyard_projection_lag", "projection" => name).set(pending as f64);
        if let Some(e) = stop_at {
            return Err(e);
        }
        if mode == RunMode::CatchUp && (pending == 0 || last >= target) {
            return Ok(());
        }
    }
}
