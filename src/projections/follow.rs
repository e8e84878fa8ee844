//! What the in-memory followers of the stream share (the key directory, the answer cache): a
//! loop that retries an interrupted follow after a pause, and the batching of an ordered
//! consumer's messages.

use async_nats::jetstream;
use futures::future::FutureExt;
use futures::{Stream, StreamExt};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use super::ProjectionError;

/// Run `follow_once` until `stop`, again after each interruption: 250 ms later, or 2 s later
/// (logged as an error) when it stopped before an event of a newer schema.
pub async fn retrying<F, Fut>(what: &str, stop: CancellationToken, mut follow_once: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), ProjectionError>>,
{
    loop {
        let res = tokio::select! {
            r = follow_once() => r,
            _ = stop.cancelled() => return,
        };
        if let Err(e) = res {
            let pause = if matches!(e, ProjectionError::NewerSchema { .. }) {
                tracing::error!(error = %e, "{what} stopped before an event it cannot read");
                Duration::from_secs(2)
            } else {
                tracing::debug!(error = %e, "{what} interrupted; retrying");
                Duration::from_millis(250)
            };
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = stop.cancelled() => return,
            }
        }
    }
}

pub fn nats(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> ProjectionError {
    ProjectionError::Nats(e.into())
}

/// The next message, and whatever else has already arrived, up to `max`: one batch for a burst.
pub async fn next_batch<S, E>(
    messages: &mut S,
    max: usize,
) -> Result<Vec<jetstream::Message>, ProjectionError>
where
    S: Stream<Item = Result<jetstream::Message, E>> + Unpin,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let first = messages
        .next()
        .await
        .ok_or(ProjectionError::SubscriptionEnded)?
        .map_err(nats)?;
    let mut raw = vec![first];
    while raw.len() < max {
        match messages.next().now_or_never() {
            Some(Some(m)) => raw.push(m.map_err(nats)?),
            _ => break,
        }
    }
    Ok(raw)
}
