//! The audit projection: one record per request, joined from its events, chained by hash.
//! See [`record`] for the join and the chain.

pub mod record;

pub use record::{AuditRecord, Chain, Joiner, Outcome};
