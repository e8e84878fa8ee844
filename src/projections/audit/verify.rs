//! `switchyard audit verify`: recompute the audit chain from the stream and compare it with the
//! index and with the anchors the projections published.
//!
//! The stream is read from its first sequence (the chain needs every record before the range
//! asked for), folded with the same [`Joiner`] and [`Chain`] as the projection, and every record
//! recomputed in the range is compared with the index's record closed at the same sequence for
//! the same request. What it reports:
//! - `stream_gap`: sequences missing from the stream (messages deleted from it);
//! - `altered`: an index record whose content differs from what the stream says (with the fields
//!   that differ), or whose stored hash does not cover its own content;
//! - `missing_from_index`: a record the stream closes that the index does not hold;
//! - `not_in_stream`: an index record the stream does not close (its events were deleted from the
//!   stream, or the record was inserted into the index);
//! - `chain_break`: an index record whose content matches but whose link to the previous record
//!   does not (a record before it was removed or inserted in the index);
//! - `anchor_mismatch`: an anchor whose head is not the chain recomputed from the stream (the stream
//!   before the anchor's head lost, gained or changed events since the anchor was made).
//!
//! When the stream no longer starts at sequence 1 (`nats.max_age`), the chain before its first
//! message cannot be recomputed: it is taken from the index at the first record the stream holds
//! whole, and records whose first events are gone are checked against their own hash only.

use async_nats::jetstream::{self, consumer};
use futures::StreamExt;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use super::record::{AuditRecord, Chain, Joiner, Outcome, content_hash};
use super::{AuditIndex, AuditProjection, Checkpoint};
use crate::events::{Event, decode};
use crate::projections::ProjectionError;

/// Which part of the stream to check (stream sequences, both inclusive).
#[derive(Debug, Clone, Copy, Default)]
pub struct Range {
    pub from: Option<u64>,
    pub to: Option<u64>,
}

/// One thing verification found wrong.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Problem {
    StreamGap {
        from_seq: u64,
        to_seq: u64,
    },
    Altered {
        seq: u64,
        request_id: String,
        /// The fields whose indexed value differs from the stream's; empty when only the stored
        /// hash disagrees with the content.
        fields: Vec<String>,
    },
    MissingFromIndex {
        seq: u64,
        request_id: String,
    },
    NotInStream {
        seq: u64,
        request_id: String,
    },
    ChainBreak {
        seq: u64,
        request_id: String,
    },
    AnchorMismatch {
        /// Where the anchor is in the stream.
        anchor_seq: u64,
        head_seq: u64,
        anchored: String,
        /// The head recomputed from the stream at `head_seq`; none when no record closes there.
        recomputed: Option<String>,
    },
    Undecodable {
        seq: u64,
    },
}

impl Problem {
    /// The stream sequence the problem is at (for ordering and range checks).
    pub fn seq(&self) -> u64 {
        match self {
            Problem::StreamGap { from_seq, .. } => *from_seq,
            Problem::Altered { seq, .. }
            | Problem::MissingFromIndex { seq, .. }
            | Problem::NotInStream { seq, .. }
            | Problem::ChainBreak { seq, .. }
            | Problem::Undecodable { seq } => *seq,
            Problem::AnchorMismatch { anchor_seq, .. } => *anchor_seq,
        }
    }
}

/// What verification did and found.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub stream_first_seq: u64,
    pub stream_last_seq: u64,
    /// The range checked.
    pub from_seq: u64,
    pub to_seq: u64,
    /// The index's last applied sequence: records closed after it are not compared yet.
    pub index_applied: u64,
    /// Records the stream closes in the range (and the index has applied).
    pub records: u64,
    /// Of those, records identical in the index, hash included.
    pub matched: u64,
    /// Records whose first events are older than the stream: checked against their own hash.
    pub partial: u64,
    pub anchors: u64,
    pub anchors_matched: u64,
    pub problems: Vec<Problem>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

fn nats(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> ProjectionError {
    ProjectionError::Nats(e.into())
}

/// Messages folded per trip to the blocking pool.
const CHUNK: usize = 2048;

/// Read the whole stream (up to `range.to`) and compare; see the module docs. The index reads
/// and the folding run on the blocking pool.
pub async fn verify(
    client: &async_nats::Client,
    stream_name: &str,
    audit: Arc<AuditProjection>,
    range: Range,
) -> Result<Report, ProjectionError> {
    let js = jetstream::new(client.clone());
    let mut stream = js.get_stream(stream_name).await.map_err(nats)?;
    let info = stream.info().await.map_err(nats)?;
    let (first, last) = (info.state.first_sequence, info.state.last_sequence);
    let mut v =
        tokio::task::spawn_blocking(move || Verifier::new(audit.index(), first, range, last))
            .await??;
    if last < first || v.to < first {
        return Ok(v.finish());
    }
    let consumer = stream
        .create_consumer(consumer::pull::OrderedConfig {
            deliver_policy: consumer::DeliverPolicy::ByStartSequence {
                start_sequence: first.max(1),
            },
            ..Default::default()
        })
        .await
        .map_err(nats)?;
    let mut messages = consumer.messages().await.map_err(nats)?;
    let mut done = false;
    while !done {
        let mut chunk = Vec::with_capacity(CHUNK);
        while chunk.len() < CHUNK {
            let next = tokio::time::timeout(Duration::from_secs(10), messages.next())
                .await
                .map_err(|_| nats("the stream stopped delivering"))?;
            let m = next
                .ok_or(ProjectionError::SubscriptionEnded)?
                .map_err(nats)?;
            let info = m.info().map_err(nats)?;
            let (seq, pending) = (info.stream_sequence, info.pending);
            if seq > v.to {
                done = true;
                break;
            }
            chunk.push((seq, m.payload.clone()));
            if seq == v.to || pending == 0 {
                done = true;
                break;
            }
        }
        v = tokio::task::spawn_blocking(move || {
            for (seq, payload) in chunk {
                v.event(seq, &payload);
            }
            v
        })
        .await?;
    }
    Ok(tokio::task::spawn_blocking(move || v.finish()).await?)
}

struct Verifier {
    from: u64,
    to: u64,
    first: u64,
    checkpoint: Checkpoint,
    /// Index records in the compared range, by (closing sequence, request id).
    indexed: HashMap<(u64, String), AuditRecord>,
    joiner: Joiner,
    /// The recomputed chain's head; `None` while it is unknown (before the stream's first whole
    /// record, when the stream no longer starts at 1).
    head: Option<[u8; 32]>,
    /// The head after the last record closed at each sequence, for the anchors.
    heads: BTreeMap<u64, [u8; 32]>,
    /// Requests whose RequestAccepted this scan saw, until their record closes.
    accepted: HashSet<String>,
    expected_seq: u64,
    in_break: bool,
    report: Report,
}

impl Verifier {
    fn new(
        index: &AuditIndex,
        first: u64,
        range: Range,
        last: u64,
    ) -> Result<Self, ProjectionError> {
        let checkpoint = Checkpoint::of(index)?;
        let from = range.from.unwrap_or(first).max(first);
        let to = range.to.unwrap_or(last).min(last);
        let upto = to.min(checkpoint.applied);
        let indexed = if from <= upto {
            index
                .records_by_seq(from, upto)?
                .into_iter()
                .map(|r| ((r.seq, r.request_id.clone()), r))
                .collect()
        } else {
            HashMap::new()
        };
        Ok(Self {
            from,
            to,
            first,
            checkpoint,
            indexed,
            joiner: Joiner::default(),
            head: (first <= 1).then_some(Chain::default().head),
            heads: BTreeMap::new(),
            accepted: HashSet::new(),
            expected_seq: first.max(1),
            in_break: false,
            report: Report {
                stream_first_seq: first,
                stream_last_seq: last,
                from_seq: from,
                to_seq: to,
                index_applied: checkpoint.applied,
                ..Report::default()
            },
        })
    }

    fn in_range(&self, seq: u64) -> bool {
        (self.from..=self.to).contains(&seq)
    }

    fn problem(&mut self, p: Problem) {
        if self.in_range(p.seq()) {
            self.report.problems.push(p);
        }
    }

    fn event(&mut self, seq: u64, payload: &[u8]) {
        if seq > self.expected_seq {
            self.problem(Problem::StreamGap {
                from_seq: self.expected_seq,
                to_seq: seq - 1,
            });
        }
        self.expected_seq = seq + 1;
        let env = match decode(payload) {
            Ok(env) => env,
            Err(_) => {
                self.problem(Problem::Undecodable { seq });
                return;
            }
        };
        match &env.event {
            Event::RequestAccepted(_) => {
                self.accepted.insert(env.request_id.to_string());
            }
            Event::AuditAnchored(a) => {
                self.anchor(seq, a.head_seq, &a.head);
                return;
            }
            _ => {}
        }
        let mut closed = Vec::new();
        self.joiner.apply(seq, &env, &mut closed);
        for r in closed {
            self.record(r);
        }
    }

    /// One record the stream closes: chain it and compare it with the index's.
    fn record(&mut self, mut r: AuditRecord) {
        let whole = matches!(r.outcome, Outcome::Rejected | Outcome::Admin)
            || self.accepted.remove(&r.request_id)
            || self.first <= 1;
        let key = (r.seq, r.request_id.clone());
        let compared = r.seq >= self.from && r.seq <= self.checkpoint.applied;
        let indexed = if compared {
            self.indexed.remove(&key)
        } else {
            None
        };
        if compared {
            self.report.records += 1;
        }
        if !whole {
            // Its first events are older than the stream: take the index's word for it.
            self.head = indexed.as_ref().and_then(|i| {
                let (prev, hash) = (decode_hash(&i.prev_hash)?, decode_hash(&i.hash)?);
                (content_hash(&prev, i) == hash).then_some(hash)
            });
            if compared {
                self.report.partial += 1;
                if self.head.is_none() {
                    let p = match indexed {
                        Some(_) => Problem::Altered {
                            seq: key.0,
                            request_id: key.1,
                            fields: Vec::new(),
                        },
                        None => Problem::MissingFromIndex {
                            seq: key.0,
                            request_id: key.1,
                        },
                    };
                    self.problem(p);
                }
            }
            if let Some(h) = self.head {
                self.heads.insert(r.seq, h);
            }
            return;
        }
        let head = match self.head {
            Some(h) => h,
            // The first whole record after the stream's start: the chain before it comes
            // from the index.
            None => match indexed.as_ref().and_then(|i| decode_hash(&i.prev_hash)) {
                Some(h) => h,
                None => {
                    if compared {
                        self.problem(Problem::MissingFromIndex {
                            seq: key.0,
                            request_id: key.1,
                        });
                    }
                    return;
                }
            },
        };
        let mut chain = Chain {
            head,
            ..Chain::default()
        };
        chain.link(&mut r);
        self.head = Some(chain.head);
        self.heads.insert(r.seq, chain.head);
        let Some(i) = indexed else {
            if compared && r.at_ms >= self.checkpoint.retained_from_ms {
                self.problem(Problem::MissingFromIndex {
                    seq: key.0,
                    request_id: key.1,
                });
            }
            return;
        };
        if i == r {
            self.report.matched += 1;
            self.in_break = false;
            return;
        }
        let fields = differing_fields(&r, &i);
        let self_consistent = decode_hash(&i.prev_hash)
            .zip(decode_hash(&i.hash))
            .is_some_and(|(prev, hash)| content_hash(&prev, &i) == hash);
        if !fields.is_empty() || !self_consistent {
            self.problem(Problem::Altered {
                seq: key.0,
                request_id: key.1,
                fields,
            });
        } else if !self.in_break {
            // Same content, other link: the index's chain before it differs.
            self.in_break = true;
            self.problem(Problem::ChainBreak {
                seq: key.0,
                request_id: key.1,
            });
        }
    }

    fn anchor(&mut self, anchor_seq: u64, head_seq: u64, anchored: &str) {
        if head_seq < self.first || !self.in_range(anchor_seq) {
            return;
        }
        // No record closing at `head_seq` in the recomputed chain: its closing event is gone,
        // unless the chain there is not known (stream truncated): nothing to compare then.
        let recomputed = self.heads.get(&head_seq).map(hex::encode);
        if recomputed.is_none() && self.head.is_none() {
            return;
        }
        self.report.anchors += 1;
        if recomputed.as_deref() == Some(anchored) {
            self.report.anchors_matched += 1;
            return;
        }
        self.problem(Problem::AnchorMismatch {
            anchor_seq,
            head_seq,
            anchored: anchored.to_owned(),
            recomputed,
        });
    }

    fn finish(mut self) -> Report {
        let end = self.to;
        // Deleted messages at the end of the range.
        if self.expected_seq <= end && self.report.stream_last_seq >= self.expected_seq {
            let from = self.expected_seq;
            self.problem(Problem::StreamGap {
                from_seq: from,
                to_seq: end,
            });
        }
        let retained_from = self.checkpoint.retained_from_ms;
        let mut left: Vec<_> = self
            .indexed
            .drain()
            .filter(|(_, r)| r.at_ms >= retained_from)
            .map(|((seq, request_id), _)| Problem::NotInStream { seq, request_id })
            .collect();
        left.sort_by_key(Problem::seq);
        for p in left {
            self.problem(p);
        }
        self.report.problems.sort_by_key(Problem::seq);
        self.report
    }
}

fn decode_hash(s: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out).ok()?;
    Some(out)
}

/// Names of the top-level fields that differ between two records (chain fields aside).
fn differing_fields(a: &AuditRecord, b: &AuditRecord) -> Vec<String> {
    let (serde_json::Value::Object(a), serde_json::Value::Object(b)) = (
        serde_json::to_value(a).unwrap_or_default(),
        serde_json::to_value(b).unwrap_or_default(),
    ) else {
        return Vec::new();
    };
    a.keys()
        .chain(b.keys())
        .filter(|k| !matches!(k.as_str(), "prev_hash" | "hash"))
        .filter(|k| a.get(*k) != b.get(*k))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .cloned()
        .collect()
}
