//! Getting events from the edge into JetStream without the edge ever waiting on NATS.
//!
//! Handlers call [`EventSink::emit`], which encodes the event and puts it in a bounded channel.
//! The publisher task ([`run_publisher`]) publishes with many acks in flight; an event that is not
//! acknowledged in time, or that arrives while JetStream is away, goes to the on-disk
//! [`outbox::Outbox`]. The outbox task ([`run_outbox`]) keeps the stream set up and re-sends the
//! outbox whenever JetStream is reachable, deleting each event only after its ack. Event ids are
//! the `Nats-Msg-Id`, so a re-send of something that did arrive is dropped by the server.

pub mod jetstream;
pub mod outbox;
mod publisher;

pub use publisher::{run_outbox, run_publisher};

use bytes::Bytes;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use tokio::sync::{mpsc, oneshot};
use ulid::Ulid;

use crate::events::{Envelope, encode, subject};
use outbox::Outbox;

/// Why an event was not acknowledged. Cloned to every waiter of a strict-durability answer,
/// so sources are shared.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PublishError {
    #[error("JetStream did not acknowledge the event in time; it is kept in the outbox")]
    NotAcknowledged,
    #[error("the event could not be stored: {0}")]
    Store(#[source] Arc<outbox::OutboxError>),
    #[error("the outbox write did not finish: {0}")]
    Task(#[source] Arc<tokio::task::JoinError>),
}

/// What the edge and `/readyz` know about publishing. Written by the publisher tasks only.
#[derive(Debug, Default)]
pub struct PublishStatus {
    pub connected: AtomicBool,
    pub stream_ready: AtomicBool,
    pub outbox_len: AtomicU64,
    pub published: AtomicU64,
    pub spilled: AtomicU64,
    pub channel_full_waits: AtomicU64,
    pub setup_error: Mutex<Option<String>>,
    /// Set when the server was refused (too old, or it dropped our stream settings): the
    /// gateway stops, as it must not run against a server that would lose events silently.
    refused: Mutex<Option<jetstream::SetupError>>,
    /// Cancelled together with `refused` being set.
    pub refused_signal: tokio_util::sync::CancellationToken,
}

impl PublishStatus {
    pub fn ready(&self) -> bool {
        self.connected.load(Ordering::Relaxed) && self.stream_ready.load(Ordering::Relaxed)
    }
    pub fn setup_error(&self) -> Option<String> {
        self.setup_error.lock().ok().and_then(|g| g.clone())
    }
    /// Why the server was refused, if it was.
    pub fn refused(&self) -> Option<jetstream::SetupError> {
        self.refused.lock().ok().and_then(|g| g.clone())
    }
    fn refuse(&self, e: jetstream::SetupError) {
        if let Ok(mut g) = self.refused.lock() {
            *g = Some(e);
        }
        self.refused_signal.cancel();
    }
    fn set_setup_error(&self, e: Option<String>) {
        if let Ok(mut g) = self.setup_error.lock() {
            *g = e;
        }
    }
}

/// An encoded event on its way to JetStream.
pub struct Pending {
    id: Ulid,
    /// Borrowed for every event a request publishes (no allocation on the hot path).
    subject: std::borrow::Cow<'static, str>,
    payload: Bytes,
    ack: Option<oneshot::Sender<Result<(), PublishError>>>,
}

impl Pending {
    /// `env` encoded for its subject, with whoever waits for its acknowledgement.
    fn of(env: &Envelope, ack: Option<oneshot::Sender<Result<(), PublishError>>>) -> Self {
        Pending {
            id: env.id,
            subject: subject(&env.event),
            payload: Bytes::from(encode(env)),
            ack,
        }
    }

    fn settle(&mut self, result: Result<(), PublishError>) {
        if let Some(tx) = self.ack.take() {
            let _ = tx.send(result);
        }
    }
}

/// The edge's handle for publishing. Cheap to clone.
#[derive(Clone)]
pub struct EventSink {
    tx: mpsc::Sender<Pending>,
    outbox: Arc<Outbox>,
    status: Arc<PublishStatus>,
    /// Room for [`EventSink::emit_detached`] events being written to the outbox.
    spills: Arc<tokio::sync::Semaphore>,
}

/// At most this many detached events are written to the outbox at once; past it they are
/// dropped (and counted).
const DETACHED_SPILLS: usize = 1024;

/// Make the sink and the receiving end for [`run_publisher`].
pub fn channel(
    capacity: usize,
    outbox: Arc<Outbox>,
    status: Arc<PublishStatus>,
) -> (EventSink, mpsc::Receiver<Pending>) {
    let (tx, rx) = mpsc::channel(capacity);
    let spills = Arc::new(tokio::sync::Semaphore::new(DETACHED_SPILLS));
    (
        EventSink {
            tx,
            outbox,
            status,
            spills,
        },
        rx,
    )
}

impl EventSink {
    /// Hand an event to the publisher.
    ///
    /// Full-channel policy: never drop. When the channel is full (JetStream slower than traffic
    /// and the outbox not keeping up) the caller waits for room; each such wait is counted in
    /// `switchyard_event_channel_full_total`. If the publisher has stopped, the event is written
    /// straight to the outbox.
    pub async fn emit(&self, env: &Envelope) {
        self.send(env, None).await;
    }

    /// Like [`emit`](Self::emit), and resolves when JetStream acknowledged the event (strict
    /// durability), or with an error when it went to the outbox instead.
    pub async fn emit_acked(&self, env: &Envelope) -> Result<(), PublishError> {
        let (tx, rx) = oneshot::channel();
        self.send(env, Some(tx)).await;
        rx.await.unwrap_or(Err(PublishError::NotAcknowledged))
    }

    /// Hand an event to the publisher without waiting, for events a flood could bring (refused
    /// requests): a full channel sends it to the outbox on a task of its own; when
    /// [`DETACHED_SPILLS`] such writes are already under way the event is dropped and counted in
    /// `switchyard_events_dropped_total`. The write runs on `tasks`, which shutdown waits for.
    pub fn emit_detached(&self, env: &Envelope, tasks: &tokio_util::task::TaskTracker) {
        let pending = match self.tx.try_send(Pending::of(env, None)) {
            Ok(()) => return,
            Err(mpsc::error::TrySendError::Full(p) | mpsc::error::TrySendError::Closed(p)) => p,
        };
        match Arc::clone(&self.spills).try_acquire_owned() {
            Ok(permit) => {
                let sink = self.clone();
                tasks.spawn(async move {
                    sink.store_directly(pending).await;
                    drop(permit);
                });
            }
            Err(_) => {
                metrics::counter!("switchyard_events_dropped_total", "kind" => env.event.kind())
                    .increment(1);
            }
        }
    }

    pub fn status(&self) -> &Arc<PublishStatus> {
        &self.status
    }

    async fn send(&self, env: &Envelope, ack: Option<oneshot::Sender<Result<(), PublishError>>>) {
        let pending = match self.tx.try_send(Pending::of(env, ack)) {
            Ok(()) => return,
            Err(mpsc::error::TrySendError::Full(p)) => {
                self.status
                    .channel_full_waits
                    .fetch_add(1, Ordering::Relaxed);
                metrics::counter!("switchyard_event_channel_full_total").increment(1);
                match self.tx.send(p).await {
                    Ok(()) => return,
                    Err(mpsc::error::SendError(p)) => p,
                }
            }
            Err(mpsc::error::TrySendError::Closed(p)) => p,
        };
        self.store_directly(pending).await;
    }

    async fn store_directly(&self, mut p: Pending) {
        let outbox = Arc::clone(&self.outbox);
        let (id, subject, payload) = (p.id, p.subject.clone(), p.payload.clone());
        let res = tokio::task::spawn_blocking(move || outbox.put(&[(id, &subject, &payload[..])]))
            .await
            .map_err(|e| PublishError::Task(Arc::new(e)))
            .and_then(|r| r.map_err(|e| PublishError::Store(Arc::new(e))));
        match res {
            Ok(()) => {
                self.status.outbox_len.fetch_add(1, Ordering::Relaxed);
                p.settle(Err(PublishError::NotAcknowledged));
            }
            Err(e) => {
                tracing::error!(event_id = %p.id, error = %e, "event lost: publisher stopped and outbox write failed");
                metrics::counter!("switchyard_events_lost_total").increment(1);
                p.settle(Err(e));
            }
        }
    }
}
