//! The audit projection: one record per request, joined from its events ([`record`]), chained
//! by hash, indexed with tantivy ([`index`]) for the admin search API.
//!
//! Checkpoint: the last commit's payload holds the last applied sequence, the chain as of it,
//! and where to re-read from: before the first event of the oldest request still open, since
//! open requests live in memory. After a restart the events between those two sequences rebuild
//! the open requests; records they close at or below the applied sequence are already in the
//! index and are not added again.
//!
//! Commits are tantivy commits (a segment each, with a term dictionary per field to build and,
//! later, to merge), so they are few: whenever [`AuditProjection::flush`] is called (a ticker in
//! the gateway does once a second: what searches see) and when the runner asks for a durable
//! one at least [`MIN_COMMIT_GAP`] after the last (a replay has no ticker), never per batch.
//! The checkpoint rides in the commit, so a crash re-reads from the last commit whatever the
//! runner acknowledged.

pub mod index;
pub mod record;
pub mod verify;

pub use index::{AuditIndex, IndexError, Page, Search};
pub use record::{AuditRecord, Chain, Joiner, Outcome};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use ulid::Ulid;

use crate::events::{AuditAnchored, Envelope, Event};
use std::path::Path;
use std::sync::{Mutex, PoisonError};

use super::{Applied, Projection, ProjectionError};

/// A running audit projection and the stream it follows: what the admin API searches and
/// verifies.
pub struct AuditService {
    pub projection: std::sync::Arc<AuditProjection>,
    pub client: async_nats::Client,
    pub stream: String,
}

/// The `AuditAnchored` event of a chain's head. Its id is derived from the head (time part: the
/// head record's arrival; the rest: from its hash), so instances anchoring the same head publish
/// one event.
pub fn anchor_event(chain: &Chain) -> Envelope {
    let digest = Sha256::digest([&chain.head[..], &chain.head_seq.to_be_bytes()].concat());
    let mut rand = [0u8; 16];
    rand.copy_from_slice(&digest[..16]);
    let id = Ulid::from_parts(chain.head_at_ms, u128::from_be_bytes(rand));
    Envelope {
        id,
        at_ms: crate::governance::now_ms(),
        request_id: id,
        event: Event::AuditAnchored(AuditAnchored {
            head_seq: chain.head_seq,
            head: hex::encode(chain.head),
            length: chain.length,
        }),
    }
}

/// The runner's durable requests commit no more often than this (the ticker's flush does).
pub const MIN_COMMIT_GAP: std::time::Duration = std::time::Duration::from_secs(5);

/// What a commit records besides the documents.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Last stream sequence applied.
    pub applied: u64,
    /// Re-read the stream from after this sequence to rebuild the open requests.
    pub resume: u64,
    /// The chain as of `applied`.
    pub chain: Chain,
    /// Records of requests that arrived before this (ms since the epoch) were deleted by the
    /// index's retention.
    #[serde(default)]
    pub retained_from_ms: u64,
}

impl Checkpoint {
    /// The checkpoint in `index`'s last commit (the default for a new index).
    pub fn of(index: &AuditIndex) -> Result<Self, IndexError> {
        Ok(match index.payload()? {
            Some(p) if !p.is_empty() => serde_json::from_str(&p)?,
            _ => Checkpoint::default(),
        })
    }
}

struct State {
    joiner: Joiner,
    chain: Chain,
    applied: u64,
    /// The resume point read from the index at open, until the first batch is applied.
    resume_at_open: Option<u64>,
    /// Records added (or deleted) since the last commit.
    dirty: bool,
    last_commit: std::time::Instant,
    retained_from_ms: u64,
}

impl State {
    fn checkpoint(&self) -> Checkpoint {
        let resume = match self.resume_at_open {
            Some(r) => r,
            None => self.joiner.oldest_open().map_or(self.applied, |first| {
                first.saturating_sub(1).min(self.applied)
            }),
        };
        Checkpoint {
            applied: self.applied,
            resume,
            chain: self.chain,
            retained_from_ms: self.retained_from_ms,
        }
    }
}

/// The audit index fed by the stream.
pub struct AuditProjection {
    index: AuditIndex,
    state: Mutex<State>,
    /// This index's durable consumer: its own, since every index needs every event (two
    /// gateways on one NATS sharing one would each index half of them).
    consumer: String,
}

/// The file in the index directory naming its consumer (a random id, made once).
const CONSUMER_FILE: &str = "consumer";

/// The index's consumer name, from `dir`, made on first use.
fn consumer_of(dir: &Path) -> Result<String, IndexError> {
    let path = dir.join(CONSUMER_FILE);
    match std::fs::read_to_string(&path) {
        Ok(name) if !name.trim().is_empty() => Ok(name.trim().to_owned()),
        Ok(_) => make_consumer(&path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => make_consumer(&path),
        Err(e) => Err(e.into()),
    }
}

fn make_consumer(path: &Path) -> Result<String, IndexError> {
    let name = format!("audit-{:016x}", rand::random::<u64>());
    std::fs::write(path, &name)?;
    Ok(name)
}

impl AuditProjection {
    /// Open (or create) the index in `dir`.
    pub fn open(dir: &Path) -> Result<Self, IndexError> {
        let index = AuditIndex::open(dir)?;
        let cp = Checkpoint::of(&index)?;
        let consumer = consumer_of(dir)?;
        Ok(Self {
            consumer,
            index,
            state: Mutex::new(State {
                joiner: Joiner::default(),
                chain: cp.chain,
                applied: cp.applied,
                resume_at_open: Some(cp.resume),
                dirty: false,
                last_commit: std::time::Instant::now(),
                retained_from_ms: cp.retained_from_ms,
            }),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn index(&self) -> &AuditIndex {
        &self.index
    }

    /// The checkpoint as of now (applied, resume point, chain head).
    pub fn position(&self) -> Checkpoint {
        self.state().checkpoint()
    }

    /// Requests whose closing events have not arrived yet.
    pub fn open_requests(&self) -> usize {
        self.state().joiner.open_requests()
    }

    /// Forget every record and the checkpoint, so the runner rebuilds the index from the start
    /// of the stream.
    pub fn reset(&self) -> Result<(), IndexError> {
        let mut state = self.state();
        self.index.delete_all()?;
        *state = State {
            joiner: Joiner::default(),
            chain: Chain::default(),
            applied: 0,
            resume_at_open: Some(0),
            dirty: false,
            last_commit: std::time::Instant::now(),
            retained_from_ms: 0,
        };
        self.commit(&mut state)
    }

    /// Delete the records of requests that arrived before `cutoff_ms` (the index's retention)
    /// and commit. Returns how many went.
    pub fn expire(&self, cutoff_ms: u64) -> Result<u64, IndexError> {
        let mut state = self.state();
        if cutoff_ms <= state.retained_from_ms {
            return Ok(0);
        }
        let n = self.index.delete_before(cutoff_ms)?;
        state.retained_from_ms = cutoff_ms;
        self.commit(&mut state)?;
        if n > 0 {
            metrics::counter!("switchyard_audit_records_expired_total").increment(n);
        }
        Ok(n)
    }

    fn commit(&self, state: &mut State) -> Result<(), IndexError> {
        let payload = serde_json::to_string(&state.checkpoint())?;
        self.index.commit(&payload)?;
        state.dirty = false;
        state.last_commit = std::time::Instant::now();
        Ok(())
    }
}

impl Projection for AuditProjection {
    fn name(&self) -> &'static str {
        "audit"
    }

    fn consumer(&self) -> String {
        self.consumer.clone()
    }

    fn filter_subject(&self) -> &'static str {
        "switchyard.events.>"
    }

    fn checkpoint(&self) -> Result<u64, ProjectionError> {
        Ok(self.state().checkpoint().resume)
    }

    fn apply(&self, batch: &[Applied], durable: bool) -> Result<(), ProjectionError> {
        let mut state = self.state();
        state.resume_at_open = None;
        let mut records = Vec::new();
        let mut closed = Vec::new();
        for a in batch {
            let Some(env) = &a.envelope else { continue };
            state.joiner.apply(a.seq, env, &mut closed);
            // Closed at or before the last applied event: indexed already.
            if a.seq <= state.applied {
                closed.clear();
                continue;
            }
            for mut r in closed.drain(..) {
                state.chain.link(&mut r);
                records.push(r);
            }
        }
        if let Some(last) = batch.last() {
            state.applied = state.applied.max(last.seq);
        }
        if !records.is_empty() {
            self.index.add(&records)?;
            state.dirty = true;
            metrics::counter!("switchyard_audit_records_total").increment(records.len() as u64);
        }
        if durable && state.dirty && state.last_commit.elapsed() >= MIN_COMMIT_GAP {
            self.commit(&mut state)?;
        }
        Ok(())
    }

    fn flush(&self) -> Result<(), ProjectionError> {
        let mut state = self.state();
        if state.dirty {
            self.commit(&mut state)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{Endpoint, RequestRejected};

    fn refusal(at_ms: u64) -> Envelope {
        let id = Ulid::from_parts(at_ms, 7);
        Envelope {
            id,
            at_ms,
            request_id: id,
            event: Event::RequestRejected(RequestRejected {
                endpoint: Endpoint::ChatCompletions,
                status: 401,
                code: "invalid_api_key".into(),
                message: "no".into(),
                principal: None,
                key_id: None,
                key_fingerprint: None,
                model: None,
                remote_addr: None,
                user_agent: None,
            }),
        }
    }

    #[test]
    fn retention_deletes_old_records_and_a_reopened_index_keeps_its_cutoff_and_chain() {
        let dir = tempfile::tempdir().unwrap();
        let day = 86_400_000;
        {
            let p = AuditProjection::open(dir.path()).unwrap();
            let batch: Vec<Applied> = [day, 2 * day, 3 * day]
                .into_iter()
                .enumerate()
                .map(|(i, at)| Applied {
                    seq: i as u64 + 1,
                    envelope: Some(refusal(at)),
                })
                .collect();
            p.apply(&batch, true).unwrap();
            p.flush().unwrap();
            assert_eq!(p.index().len(), 3);
            assert_eq!(p.expire(2 * day).unwrap(), 1, "the first day's record goes");
            assert_eq!(p.index().len(), 2);
            assert_eq!(p.expire(2 * day).unwrap(), 0, "a cutoff is applied once");
            assert_eq!(p.position().chain.length, 3, "the chain is not rewritten");
        }
        let p = AuditProjection::open(dir.path()).unwrap();
        let cp = p.position();
        assert_eq!(
            (cp.applied, cp.retained_from_ms, cp.chain.head_seq),
            (3, 2 * day, 3)
        );
        assert_eq!(p.index().len(), 2);
        let left = p.index().records_by_seq(1, 3).unwrap();
        assert_eq!(left.iter().map(|r| r.seq).collect::<Vec<_>>(), [2, 3]);
        assert_eq!(
            left[1].prev_hash, left[0].hash,
            "what is left still links up"
        );
    }

    #[test]
    fn instances_anchoring_the_same_head_publish_one_event() {
        let chain = Chain {
            head: [7; 32],
            head_seq: 42,
            head_at_ms: 1_764_000_000_000,
            length: 10,
        };
        let (a, b) = (anchor_event(&chain), anchor_event(&chain));
        assert_eq!(a.id, b.id, "the same Msg-Id: JetStream keeps one");
        assert_eq!(a.id.timestamp_ms(), chain.head_at_ms);
        let moved = Chain {
            head_seq: 43,
            ..chain
        };
        assert_ne!(anchor_event(&moved).id, a.id);
    }
}
