//! Consumers that turn the event stream into queryable state.
//!
//! Each projection has its own durable pull consumer and its own store, and commits the last
//! applied stream sequence in the same transaction as the data it derives. The store's
//! checkpoint is the truth: the consumer is (re)created at start to deliver from checkpoint + 1,
//! so redelivered messages are skipped and a dropped store rebuilds from sequence 1. Because the
//! consumer always restarts from the store, commits need not each be fsynced: the runner makes
//! one durable about once a second and at stop.

pub mod audit;
pub mod budgets;
pub mod directory;
pub mod follow;
mod runner;

pub use runner::{ProjectionStatus, RunMode, Runner};

use crate::events::Envelope;

#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error("store: {0}")]
    Store(#[from] redb::Error),
    #[error("store directory: {0}")]
    Dir(#[from] std::io::Error),
    /// A redb file has one owner process.
    #[error(
        "{} is open in another process: stop the process that runs the {projection} projection (`switchyard serve` or `switchyard consume {projection}`) first",
        path.display()
    )]
    Locked {
        path: std::path::PathBuf,
        projection: &'static str,
    },
    #[error(transparent)]
    Index(#[from] audit::IndexError),
    #[error("the store task did not finish: {0}")]
    Task(#[from] tokio::task::JoinError),
    #[error("JetStream: {0}")]
    Nats(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("JetStream: the message subscription ended")]
    SubscriptionEnded,
    /// An event written by a newer build: applying past it would silently drop it, so the
    /// projection stops just before it until this process is upgraded.
    #[error(
        "event {seq} has schema {version}, newer than this build reads ({}); upgrade this consumer",
        crate::events::CURRENT_SCHEMA
    )]
    NewerSchema { seq: u64, version: u16 },
    /// The consumer delivered messages this subscription never received (deliveries are
    /// numbered without holes; a consumer leader change mid-pull can leave one). Acknowledging
    /// past the hole would acknowledge the lost messages too (`AckPolicy::All`), so the runner
    /// stops before it and starts again from its checkpoint.
    #[error("delivery {got} arrived where {expected} was due; resuming from the checkpoint")]
    DeliveryGap { expected: u64, got: u64 },
}

impl ProjectionError {
    /// A failure of the store itself, not of NATS: fatal to a replay.
    pub fn is_store(&self) -> bool {
        matches!(
            self,
            ProjectionError::Store(_)
                | ProjectionError::Dir(_)
                | ProjectionError::Locked { .. }
                | ProjectionError::Index(_)
                | ProjectionError::Task(_)
        )
    }
}

/// A decoded event with its stream sequence.
pub struct Applied {
    pub seq: u64,
    /// `None` when the payload could not be decoded; the sequence still advances.
    pub envelope: Option<Envelope>,
}

/// A store fed by the stream. Methods are blocking (redb, tantivy); the runner calls them on
/// the blocking pool.
pub trait Projection: Send + Sync + 'static {
    /// The projection's name in CLI and metrics.
    fn name(&self) -> &'static str;
    /// Its durable consumer's name: one per store, since every store needs every event (two
    /// gateways on one NATS sharing a durable consumer would each get half of them).
    fn consumer(&self) -> String {
        self.name().to_owned()
    }
    /// The subject filter of its consumer.
    fn filter_subject(&self) -> &'static str;
    /// Last applied stream sequence (0 when empty).
    fn checkpoint(&self) -> Result<u64, ProjectionError>;
    /// Apply a batch in order, skipping sequences at or below the checkpoint, and commit the new
    /// checkpoint atomically with the data. With `durable` false the commit may skip the fsync:
    /// a crash then rolls data and checkpoint back together, and the runner re-applies from
    /// there, so the effect stays exactly-once.
    fn apply(&self, batch: &[Applied], durable: bool) -> Result<(), ProjectionError>;
    /// Make every earlier commit durable.
    fn flush(&self) -> Result<(), ProjectionError>;
}
