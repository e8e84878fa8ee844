//! Connecting to NATS and making sure the event stream exists with the settings we rely on.

use async_nats::jetstream::{self, stream};
use std::time::Duration;

use crate::config::NatsConfig;
use crate::events::EVENT_SUBJECT_WILDCARD;

/// The oldest server that honours every stream and consumer field we set. 2.9 silently drops
/// newer fields (several filter subjects, per-message TTL), so it is refused.
pub const MIN_SERVER: (u64, u64) = (2, 10);

#[derive(Debug, Clone, thiserror::Error)]
pub enum SetupError {
    #[error("nats-server {found} is too old: Switchyard needs {}.{} or later (run scripts/run, which installs a pinned one)", MIN_SERVER.0, MIN_SERVER.1)]
    ServerTooOld { found: String },
    #[error("JetStream is not available: {0}")]
    Unavailable(String),
    #[error("stream {stream} did not keep its settings: {what}")]
    ConfigDropped { stream: String, what: String },
}

/// Connect with automatic reconnection to a seed list (`url[,url…]`, see
/// [`NatsConfig::url`]). Returns at once even when no server is up: the client keeps trying in
/// the background and the gateway serves meanwhile. The client picks a seed at random, adds the
/// cluster members each server announces in its INFO, and on a lost connection reconnects to
/// any of them, so one node going away costs a reconnect, not an outage.
pub async fn connect(url: &str) -> Result<async_nats::Client, async_nats::ConnectError> {
    let seeds = crate::config::nats_seeds(url);
    async_nats::ConnectOptions::new()
        .name("switchyard")
        .retry_on_initial_connect()
        .max_reconnects(None)
        .connection_timeout(Duration::from_secs(2))
        .reconnect_delay_callback(|attempts| {
            Duration::from_millis((attempts as u64 * 100).min(1000))
        })
        .client_capacity(65_536)
        .connect(seeds.as_slice())
        .await
}

pub fn is_connected(client: &async_nats::Client) -> bool {
    client.connection_state() == async_nats::connection::State::Connected
}

fn version_ok(version: &str) -> bool {
    let mut parts = version
        .trim_start_matches('v')
        .split('.')
        .map(|p| p.parse::<u64>().unwrap_or(0));
    let major = parts.next().unwrap_or(0);
    let minor = parts.next().unwrap_or(0);
    (major, minor) >= MIN_SERVER
}

/// Check the server version, create or update the stream, then read its config back and verify
/// the server kept what we asked for.
pub async fn ensure_stream(
    client: &async_nats::Client,
    cfg: &NatsConfig,
) -> Result<stream::Stream, SetupError> {
    let version = client.server_info().version;
    if !version_ok(&version) {
        return Err(SetupError::ServerTooOld { found: version });
    }
    let js = jetstream::new(client.clone());
    let want = stream::Config {
        name: cfg.stream.clone(),
        subjects: vec![EVENT_SUBJECT_WILDCARD.to_owned()],
        storage: stream::StorageType::File,
        retention: stream::RetentionPolicy::Limits,
        duplicate_window: cfg.duplicate_window,
        max_age: cfg.max_age,
        num_replicas: cfg.replicas,
        ..Default::default()
    };
    let unavailable = |e: &dyn std::fmt::Display| SetupError::Unavailable(e.to_string());
    let mut s = match js.get_stream(&cfg.stream).await {
        Ok(mut s) => {
            let info = s.info().await.map_err(|e| unavailable(&e))?;
            let c = &info.config;
            if c.subjects != want.subjects
                || c.duplicate_window != want.duplicate_window
                || c.max_age != want.max_age
                || c.num_replicas != want.num_replicas
            {
                // JetStream changes a stream's replica count in place (it adds or removes peers
                // and catches them up), so moving a stream from R1 to R3 needs no migration.
                let mut update = c.clone();
                update.subjects = want.subjects.clone();
                update.duplicate_window = want.duplicate_window;
                update.max_age = want.max_age;
                update.num_replicas = want.num_replicas;
                js.update_stream(update)
                    .await
                    .map_err(|e| unavailable(&e))?;
            }
            s
        }
        Err(_) => js
            .create_stream(want.clone())
            .await
            .map_err(|e| unavailable(&e))?,
    };
    let info = s.info().await.map_err(|e| unavailable(&e))?;
    let got = &info.config;
    let dropped = |what: &str| SetupError::ConfigDropped {
        stream: cfg.stream.clone(),
        what: what.to_owned(),
    };
    if got.subjects != want.subjects {
        return Err(dropped("subjects"));
    }
    if got.duplicate_window != want.duplicate_window {
        return Err(dropped("duplicate_window"));
    }
    if got.num_replicas != want.num_replicas {
        return Err(dropped("replicas"));
    }
    if got.storage != stream::StorageType::File {
        return Err(dropped("file storage"));
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    #[test]
    fn version_gate() {
        assert!(!super::version_ok("2.9.10"));
        assert!(super::version_ok("2.10.0"));
        assert!(super::version_ok("v2.15.1"));
        assert!(super::version_ok("3.0.0"));
    }
}

/// Why [`publish_now`] did not get an acknowledgement.
#[derive(Debug, thiserror::Error)]
pub enum DirectError {
    #[error("JetStream did not take the event: {0}")]
    Publish(#[from] async_nats::jetstream::context::PublishError),
    #[error("JetStream did not acknowledge the event within {0:?}")]
    Timeout(Duration),
}

/// Publish one event and wait for JetStream's acknowledgement, returning its stream sequence
/// (the original's, when the event id was a duplicate). For admin events, whose caller must know
/// the event is in the stream before answering; requests never call this (they go through the
/// [`super::EventSink`] and the outbox).
pub async fn publish_now(
    client: &async_nats::Client,
    env: &crate::events::Envelope,
    timeout: Duration,
) -> Result<u64, DirectError> {
    let js = jetstream::new(client.clone());
    let msg = jetstream::message::PublishMessage::build()
        .message_id(env.id.to_string())
        .payload(crate::events::encode(env).into());
    let publish = async {
        let ack = js
            .send_publish(crate::events::subject(&env.event).into_owned(), msg)
            .await?
            .await?;
        Ok::<_, DirectError>(ack.sequence)
    };
    tokio::time::timeout(timeout, publish)
        .await
        .map_err(|_| DirectError::Timeout(timeout))?
}
