//! One audit record per request, joined from its events in stream order: `RequestAccepted`,
//! then `ResponseCompleted`, then `SpendRecorded` when a provider answered with usage; or a
//! lone `RequestRejected`. The join is a pure fold ([`Joiner`]), so a replay builds the same
//! records as the live consumer, and each record is chained to the one closed before it
//! ([`Chain`]): its hash covers the previous record's hash and its own content.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use ulid::Ulid;

use crate::events::{
    Attempt, Endpoint, Envelope, Event, RequestAccepted, RequestRejected, ResponseCompleted,
    SpendRecorded,
};

/// How a request ended, as the audit sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Admitted and answered (a provider's answer or an error).
    Completed,
    /// Refused before admission.
    Rejected,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Completed => "completed",
            Outcome::Rejected => "rejected",
        }
    }
}

/// Everything the audit keeps about one request. Serialised as it is hashed and returned by
/// the search API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub request_id: String,
    /// When the request arrived (its first event), ms since the epoch.
    pub at_ms: u64,
    pub outcome: Outcome,
    pub endpoint: Endpoint,
    pub key_id: Option<String>,
    pub user: Option<String>,
    pub team: Option<String>,
    pub project: Option<String>,
    /// The public model the client asked for.
    pub model: Option<String>,
    /// The public model a content rule chose instead.
    pub routed_model: Option<String>,
    pub rule: Option<String>,
    pub provider: Option<String>,
    /// The provider's model that answered.
    pub served_model: Option<String>,
    pub status: u16,
    /// Error class of a failed request, or the error code of a refused one.
    pub error: Option<String>,
    pub error_message: Option<String>,
    pub stream: bool,
    pub attempts: Vec<Attempt>,
    pub latency_us: Option<u64>,
    pub ttft_us: Option<u64>,
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub cost_nanos: Option<u64>,
    pub currency: Option<String>,
    pub finish_reason: Option<String>,
    /// The request body as the events carry it (clipped by the edge).
    pub prompt: Option<String>,
    /// The response body as the events carry it.
    pub response: Option<String>,
    /// Refusals: who asked, as far as the edge could tell.
    pub key_fingerprint: Option<String>,
    pub remote_addr: Option<String>,
    pub user_agent: Option<String>,
    /// Stream sequence of the event that closed the record: its place in the chain.
    pub seq: u64,
    /// Hash of the record closed before this one (hex; zeros for the first).
    pub prev_hash: String,
    /// SHA-256 over `prev_hash` and this record's content (hex).
    pub hash: String,
}

/// What arrived of a request not closed yet.
#[derive(Debug, Clone)]
struct Open {
    /// Sequence of its first event: the stream must be re-read from before it after a restart.
    first_seq: u64,
    at_ms: u64,
    accepted: Option<RequestAccepted>,
    /// Completed, waiting for its `SpendRecorded`.
    completed: Option<ResponseCompleted>,
}

/// The join of events into records. Feed it every event in stream order.
#[derive(Debug, Default)]
pub struct Joiner {
    open: HashMap<Ulid, Open>,
}

impl Joiner {
    /// Fold one event; `Some` when it closes a record (not chained yet).
    pub fn apply(&mut self, seq: u64, env: &Envelope) -> Option<AuditRecord> {
        match &env.event {
            Event::RequestAccepted(a) => {
                let open = self.open.entry(env.request_id).or_insert(Open {
                    first_seq: seq,
                    at_ms: env.at_ms,
                    accepted: None,
                    completed: None,
                });
                open.accepted = Some(a.clone());
                None
            }
            Event::ResponseCompleted(c) => {
                // A provider answered with usage: its spend follows.
                if c.provider.is_some() && c.usage.is_some() {
                    let open = self.open.entry(env.request_id).or_insert(Open {
                        first_seq: seq,
                        at_ms: env.at_ms,
                        accepted: None,
                        completed: None,
                    });
                    open.completed = Some(c.clone());
                    return None;
                }
                let open = self.open.remove(&env.request_id);
                Some(completed(env, seq, open, c, None))
            }
            Event::SpendRecorded(s) => {
                let mut open = self.open.remove(&env.request_id)?;
                let c = open.completed.take()?;
                Some(completed(env, seq, Some(open), &c, Some(s)))
            }
            Event::RequestRejected(r) => Some(rejected(env, seq, r)),
            _ => None,
        }
    }

    /// The first sequence of the oldest request still open: re-reading from there rebuilds
    /// every open request.
    pub fn oldest_open(&self) -> Option<u64> {
        self.open.values().map(|o| o.first_seq).min()
    }

    pub fn open_requests(&self) -> usize {
        self.open.len()
    }
}

fn completed(
    env: &Envelope,
    seq: u64,
    open: Option<Open>,
    c: &ResponseCompleted,
    spend: Option<&SpendRecorded>,
) -> AuditRecord {
    let at_ms = open.as_ref().map_or(env.at_ms, |o| o.at_ms);
    let accepted = open.and_then(|o| o.accepted);
    let usage = spend.map(|s| s.usage).or(c.usage);
    AuditRecord {
        request_id: env.request_id.to_string(),
        at_ms,
        outcome: Outcome::Completed,
        endpoint: c.endpoint,
        key_id: Some(c.principal.key_id.clone()),
        user: c.principal.user.clone(),
        team: c.principal.team.clone(),
        project: c.principal.project.clone(),
        model: Some(c.model.clone()),
        routed_model: accepted.as_ref().and_then(|a| a.routed_model.clone()),
        rule: accepted.as_ref().and_then(|a| a.rule.clone()),
        provider: c.provider.clone(),
        served_model: c.provider_model.clone(),
        status: c.status,
        error: c.error.as_ref().map(|e| e.class.clone()),
        error_message: c.error.as_ref().map(|e| e.message.clone()),
        stream: c.stream,
        attempts: c.attempts.clone(),
        latency_us: Some(c.latency_us),
        ttft_us: c.ttft_us,
        input_tokens: usage.map(|u| u.input_tokens),
        output_tokens: usage.map(|u| u.output_tokens),
        cost_nanos: spend.map(|s| s.cost_nanos),
        currency: spend.map(|s| s.currency.clone()),
        finish_reason: c.finish_reason.clone(),
        prompt: accepted.map(|a| a.body),
        response: c.body.clone(),
        key_fingerprint: None,
        remote_addr: None,
        user_agent: None,
        seq,
        prev_hash: String::new(),
        hash: String::new(),
    }
}

fn rejected(env: &Envelope, seq: u64, r: &RequestRejected) -> AuditRecord {
    let p = r.principal.as_ref();
    AuditRecord {
        request_id: env.request_id.to_string(),
        at_ms: env.at_ms,
        outcome: Outcome::Rejected,
        endpoint: r.endpoint,
        key_id: p.map(|p| p.key_id.clone()).or_else(|| r.key_id.clone()),
        user: p.and_then(|p| p.user.clone()),
        team: p.and_then(|p| p.team.clone()),
        project: p.and_then(|p| p.project.clone()),
        model: r.model.clone(),
        routed_model: None,
        rule: None,
        provider: None,
        served_model: None,
        status: r.status,
        error: Some(r.code.clone()),
        error_message: Some(r.message.clone()),
        stream: false,
        attempts: Vec::new(),
        latency_us: None,
        ttft_us: None,
        input_tokens: None,
        output_tokens: None,
        cost_nanos: None,
        currency: None,
        finish_reason: None,
        prompt: None,
        response: None,
        key_fingerprint: r.key_fingerprint.clone(),
        remote_addr: r.remote_addr.clone(),
        user_agent: r.user_agent.clone(),
        seq,
        prev_hash: String::new(),
        hash: String::new(),
    }
}

/// The hash chain over records in the order they closed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chain {
    /// Hash of the last record linked (zeros before the first).
    pub head: [u8; 32],
    /// Sequence of the event that closed that record (0 before the first).
    pub head_seq: u64,
    /// Records linked so far.
    pub length: u64,
}

impl Chain {
    /// Link `r` after the head: fill its `prev_hash` and `hash`.
    pub fn link(&mut self, r: &mut AuditRecord) {
        r.prev_hash = hex::encode(self.head);
        let hash = content_hash(&self.head, r);
        r.hash = hex::encode(hash);
        self.head = hash;
        self.head_seq = r.seq;
        self.length += 1;
    }
}

/// SHA-256 over the previous hash and the record's content (its JSON without the chain
/// fields): what [`Chain::link`] stores and what a verifier recomputes.
pub fn content_hash(prev: &[u8; 32], r: &AuditRecord) -> [u8; 32] {
    let mut bare = r.clone();
    bare.prev_hash.clear();
    bare.hash.clear();
    let mut h = Sha256::new();
    h.update(prev);
    // invariant: a record is plain data (strings, numbers, enums), which serde_json always
    // serialises.
    h.update(serde_json::to_vec(&bare).unwrap_or_default());
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{ErrorInfo, Principal, Usage};

    fn principal() -> Principal {
        Principal {
            key_id: "k1".into(),
            user: Some("ana".into()),
            team: Some("search".into()),
            project: None,
        }
    }

    fn env(request: Ulid, at_ms: u64, event: Event) -> Envelope {
        Envelope {
            id: Ulid::generate(),
            at_ms,
            request_id: request,
            event,
        }
    }

    fn accepted() -> Event {
        Event::RequestAccepted(RequestAccepted {
            principal: principal(),
            endpoint: Endpoint::ChatCompletions,
            model: "gpt-4o-mini".into(),
            route: vec![],
            stream: false,
            body: r#"{"messages":[{"role":"user","content":"hello"}]}"#.into(),
            guardrail_findings: vec![],
            cache_key: None,
            rule: None,
            routed_model: None,
        })
    }

    fn completed(provider: Option<&str>, usage: Option<Usage>, status: u16) -> Event {
        Event::ResponseCompleted(ResponseCompleted {
            principal: principal(),
            endpoint: Endpoint::ChatCompletions,
            model: "gpt-4o-mini".into(),
            attempts: vec![],
            provider: provider.map(str::to_owned),
            provider_model: provider.map(|_| "gpt-4o-mini-2024".to_owned()),
            status,
            error: (status != 200).then(|| ErrorInfo {
                class: "upstream_5xx".into(),
                message: "bad gateway".into(),
            }),
            stream: false,
            ttft_us: Some(900),
            latency_us: 1000,
            usage,
            finish_reason: None,
            body: Some("hi there".into()),
            cache_hit: None,
            cache_score: None,
        })
    }

    fn usage() -> Usage {
        Usage {
            input_tokens: 12,
            output_tokens: 5,
            ..Usage::default()
        }
    }

    #[test]
    fn accepted_completed_and_spend_make_one_record() {
        let mut j = Joiner::default();
        let id = Ulid::generate();
        assert!(j.apply(1, &env(id, 10, accepted())).is_none());
        assert!(
            j.apply(
                2,
                &env(id, 20, completed(Some("openai"), Some(usage()), 200))
            )
            .is_none(),
            "its spend follows"
        );
        assert_eq!(j.oldest_open(), Some(1));
        let spend = Event::SpendRecorded(SpendRecorded {
            principal: principal(),
            model: "gpt-4o-mini".into(),
            provider: "openai".into(),
            provider_model: "gpt-4o-mini-2024".into(),
            usage: usage(),
            cost_nanos: 4_200,
            currency: "USD".into(),
            priced: true,
        });
        let r = j.apply(3, &env(id, 21, spend)).expect("closed");
        assert_eq!(j.open_requests(), 0);
        assert_eq!(r.at_ms, 10);
        assert_eq!(r.seq, 3);
        assert_eq!(r.cost_nanos, Some(4_200));
        assert_eq!((r.input_tokens, r.output_tokens), (Some(12), Some(5)));
        assert_eq!(r.served_model.as_deref(), Some("gpt-4o-mini-2024"));
        assert!(r.prompt.as_deref().unwrap().contains("hello"));
        assert_eq!(r.response.as_deref(), Some("hi there"));
    }

    #[test]
    fn a_failed_request_closes_at_its_completion_and_a_refusal_alone() {
        let mut j = Joiner::default();
        let id = Ulid::generate();
        j.apply(1, &env(id, 10, accepted()));
        let r = j
            .apply(2, &env(id, 20, completed(None, None, 502)))
            .expect("no spend follows a failure");
        assert_eq!(r.error.as_deref(), Some("upstream_5xx"));
        assert_eq!(r.cost_nanos, None);
        let refused = Event::RequestRejected(RequestRejected {
            endpoint: Endpoint::Messages,
            status: 401,
            code: "invalid_api_key".into(),
            message: "no".into(),
            principal: None,
            key_id: Some("01kb".into()),
            key_fingerprint: Some("a1b2c3d4".into()),
            model: None,
            remote_addr: Some("127.0.0.1:5000".into()),
            user_agent: None,
        });
        let r = j.apply(3, &env(Ulid::generate(), 30, refused)).unwrap();
        assert_eq!(r.outcome, Outcome::Rejected);
        assert_eq!(r.key_id.as_deref(), Some("01kb"));
        assert_eq!(r.error.as_deref(), Some("invalid_api_key"));
        assert_eq!(j.open_requests(), 0);
    }

    #[test]
    fn the_chain_covers_content_and_order() {
        let mut j = Joiner::default();
        let mut records: Vec<_> = (0..3u64)
            .map(|i| {
                let id = Ulid::generate();
                j.apply(2 * i + 1, &env(id, i, accepted()));
                j.apply(2 * i + 2, &env(id, i, completed(None, None, 500)))
                    .unwrap()
            })
            .collect();
        let mut chain = Chain::default();
        for r in &mut records {
            chain.link(r);
        }
        assert_eq!(chain.length, 3);
        assert_eq!(records[1].prev_hash, records[0].hash);
        assert_eq!(hex::encode(chain.head), records[2].hash);
        // Recomputing gives the same hashes; an altered record does not.
        let mut prev = [0u8; 32];
        for r in &records {
            let h = content_hash(&prev, r);
            assert_eq!(hex::encode(h), r.hash);
            prev = h;
        }
        let mut altered = records[1].clone();
        altered.status = 200;
        let mut prev0 = [0u8; 32];
        hex::decode_to_slice(&records[0].hash, &mut prev0).unwrap();
        assert_ne!(hex::encode(content_hash(&prev0, &altered)), records[1].hash);
    }
}
