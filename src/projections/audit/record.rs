//! One audit record per request, joined from its events in stream order: `RequestAccepted`,
//! then `ResponseCompleted`, then `SpendRecorded` when a provider answered with usage; or a
//! lone `RequestRejected`; or an admin event (keys and limits), a record of its own. A request
//! whose closing events never come (its gateway died between them) is closed as `incomplete`
//! once the stream's clock has moved [`OPEN_TTL_MS`] past its arrival. The join is a pure fold
//! of the stream ([`Joiner`]): every decision depends on the events and their order only, so a
//! replay builds the same records as the live consumer. Each record is chained to the one closed
//! before it ([`Chain`]): its hash covers the previous record's hash and its own content.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeSet, HashMap};
use ulid::Ulid;

use crate::events::{
    Attempt, Endpoint, Envelope, Event, GuardrailFinding, RequestAccepted, RequestRejected,
    ResponseCompleted, ScopeKind, SpendRecorded,
};

/// An open request is closed as `incomplete` once an event stamped this long after its arrival
/// has been folded (one hour: longer than any stream the gateway lets run).
pub const OPEN_TTL_MS: u64 = 3_600_000;

/// How a request ended, as the audit sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Admitted and answered (a provider's answer or an error).
    Completed,
    /// Refused before admission.
    Rejected,
    /// An admin change (a key issued, rotated, revoked or expired; limits set).
    Admin,
    /// Admitted, but no closing event came within [`OPEN_TTL_MS`].
    Incomplete,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Completed => "completed",
            Outcome::Rejected => "rejected",
            Outcome::Admin => "admin",
            Outcome::Incomplete => "incomplete",
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
    /// The API surface; none for admin records.
    pub endpoint: Option<Endpoint>,
    /// Admin records: what changed (`key_issued`, `key_rotated`, `key_revoked`, `key_expired`,
    /// `limits_set`).
    pub action: Option<String>,
    /// Admin records: the change itself (JSON text, never a secret or its hash); a request
    /// answered from the cache: `{"cache": {match, similarity, source}}`.
    pub detail: Option<String>,
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
    /// HTTP status answered; 0 for admin records and incomplete requests.
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
    /// What the guardrails found in the request and the answer, and did (never the values).
    pub guardrail_findings: Vec<GuardrailFinding>,
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

impl AuditRecord {
    /// A record with only its identity set; the builders below fill in the rest.
    fn new(request_id: String, at_ms: u64, outcome: Outcome, seq: u64) -> Self {
        Self {
            request_id,
            at_ms,
            outcome,
            endpoint: None,
            action: None,
            detail: None,
            key_id: None,
            user: None,
            team: None,
            project: None,
            model: None,
            routed_model: None,
            rule: None,
            provider: None,
            served_model: None,
            status: 0,
            error: None,
            error_message: None,
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
            guardrail_findings: Vec::new(),
            key_fingerprint: None,
            remote_addr: None,
            user_agent: None,
            seq,
            prev_hash: String::new(),
            hash: String::new(),
        }
    }
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
    /// The open requests by arrival: (time, first sequence, id).
    by_arrival: BTreeSet<(u64, u64, Ulid)>,
}

impl Joiner {
    /// Fold one event; push the records it closes (not chained yet) onto `out`.
    pub fn apply(&mut self, seq: u64, env: &Envelope, out: &mut Vec<AuditRecord>) {
        self.sweep(seq, env.at_ms, out);
        match &env.event {
            Event::RequestAccepted(a) => {
                self.entry(seq, env).accepted = Some(a.clone());
            }
            Event::ResponseCompleted(c) => {
                // A provider (or the cache) answered with usage: its spend follows.
                if (c.provider.is_some() || c.cache.is_some()) && c.usage.is_some() {
                    self.entry(seq, env).completed = Some(c.clone());
                    return;
                }
                let open = self.remove(&env.request_id);
                out.push(completed(env.request_id, env.at_ms, seq, open, c, None));
            }
            Event::SpendRecorded(s) => {
                let waiting = self
                    .open
                    .get(&env.request_id)
                    .is_some_and(|o| o.completed.is_some());
                // A spend with no completion before it is not how the edge publishes: ignored.
                if let Some(mut open) = waiting.then(|| self.remove(&env.request_id)).flatten()
                    && let Some(c) = open.completed.take()
                {
                    out.push(completed(
                        env.request_id,
                        env.at_ms,
                        seq,
                        Some(open),
                        &c,
                        Some(s),
                    ));
                }
            }
            Event::RequestRejected(r) => out.push(rejected(env, seq, r)),
            Event::KeyIssued(_)
            | Event::KeyRotated(_)
            | Event::KeyRevoked(_)
            | Event::KeyExpired(_)
            | Event::LimitsSet(_)
            | Event::CacheFlushed(_) => out.push(admin(env, seq)),
            Event::BreakerChanged(_)
            | Event::BudgetLeased(_)
            | Event::BudgetThresholdCrossed(_)
            | Event::AuditAnchored(_) => {}
        }
    }

    /// The open request of `env`, made on its first event.
    fn entry(&mut self, seq: u64, env: &Envelope) -> &mut Open {
        let by_arrival = &mut self.by_arrival;
        self.open.entry(env.request_id).or_insert_with(|| {
            by_arrival.insert((env.at_ms, seq, env.request_id));
            Open {
                first_seq: seq,
                at_ms: env.at_ms,
                accepted: None,
                completed: None,
            }
        })
    }

    fn remove(&mut self, id: &Ulid) -> Option<Open> {
        let o = self.open.remove(id)?;
        self.by_arrival.remove(&(o.at_ms, o.first_seq, *id));
        Some(o)
    }

    /// Before an event stamped `now_ms`: close, oldest first, the requests that arrived
    /// [`OPEN_TTL_MS`] or more before it. A function of the open requests and the event only,
    /// so a replay closes the same requests at the same sequence.
    fn sweep(&mut self, seq: u64, now_ms: u64, out: &mut Vec<AuditRecord>) {
        while let Some(&(at_ms, _, id)) = self.by_arrival.first() {
            if at_ms.saturating_add(OPEN_TTL_MS) > now_ms {
                return;
            }
            if let Some(o) = self.remove(&id) {
                out.push(unclosed(id, seq, o));
            }
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

/// A request that never closed: what arrived of it, at sequence `seq` (the sweep's).
fn unclosed(request_id: Ulid, seq: u64, mut o: Open) -> AuditRecord {
    if let Some(c) = o.completed.take() {
        // Answered, but its spend never came.
        let at_ms = o.at_ms;
        return completed(request_id, at_ms, seq, Some(o), &c, None);
    }
    let a = o.accepted.take();
    let principal = a.as_ref().map(|a| a.principal.clone()).unwrap_or_default();
    AuditRecord {
        endpoint: a.as_ref().map(|a| a.endpoint),
        key_id: a.as_ref().map(|_| principal.key_id.clone()),
        user: principal.user,
        team: principal.team,
        project: principal.project,
        model: a.as_ref().map(|a| a.model.clone()),
        routed_model: a.as_ref().and_then(|a| a.routed_model.clone()),
        rule: a.as_ref().and_then(|a| a.rule.clone()),
        error: Some("incomplete".into()),
        error_message: Some(format!(
            "no closing event within {} minutes of its arrival",
            OPEN_TTL_MS / 60_000
        )),
        stream: a.as_ref().is_some_and(|a| a.stream),
        guardrail_findings: a
            .as_ref()
            .map(|a| a.guardrail_findings.clone())
            .unwrap_or_default(),
        prompt: a.map(|a| a.body),
        ..AuditRecord::new(request_id.to_string(), o.at_ms, Outcome::Incomplete, seq)
    }
}

/// An admin event as a record: what changed, to which key or scope. Secret hashes stay out.
fn admin(env: &Envelope, seq: u64) -> AuditRecord {
    let mut r = AuditRecord {
        action: Some(env.event.kind().to_owned()),
        ..AuditRecord::new(env.request_id.to_string(), env.at_ms, Outcome::Admin, seq)
    };
    let detail = match &env.event {
        Event::KeyIssued(k) => {
            r.key_id = Some(k.key_id.clone());
            r.user = k.user.clone();
            r.team = k.team.clone();
            r.project = k.project.clone();
            serde_json::json!({
                "name": k.name,
                "models": k.models,
                "expires_at_ms": k.expires_at_ms,
                "limits": k.limits,
                "metadata": k.metadata,
            })
        }
        Event::KeyRotated(k) => {
            r.key_id = Some(k.key_id.clone());
            serde_json::json!({"previous_valid_until_ms": k.previous_valid_until_ms})
        }
        Event::KeyRevoked(k) => {
            r.key_id = Some(k.key_id.clone());
            serde_json::json!({"reason": k.reason})
        }
        Event::KeyExpired(k) => {
            r.key_id = Some(k.key_id.clone());
            serde_json::json!({"expires_at_ms": k.expires_at_ms})
        }
        Event::LimitsSet(l) => {
            let name = Some(l.scope.name.clone());
            match l.scope.kind {
                ScopeKind::Key => r.key_id = name,
                ScopeKind::User => r.user = name,
                ScopeKind::Team => r.team = name,
                ScopeKind::Project => r.project = name,
                ScopeKind::Model => r.model = name,
            }
            serde_json::json!({"scope": l.scope, "limits": l.limits})
        }
        Event::CacheFlushed(f) => {
            r.model = f.model.clone();
            serde_json::json!({"tenant": f.tenant, "model": f.model})
        }
        _ => serde_json::Value::Null,
    };
    r.detail = Some(detail.to_string());
    r
}

fn completed(
    request_id: Ulid,
    closed_at_ms: u64,
    seq: u64,
    open: Option<Open>,
    c: &ResponseCompleted,
    spend: Option<&SpendRecorded>,
) -> AuditRecord {
    let at_ms = open.as_ref().map_or(closed_at_ms, |o| o.at_ms);
    let accepted = open.and_then(|o| o.accepted);
    let usage = spend.map(|s| s.usage).or(c.usage);
    AuditRecord {
        endpoint: Some(c.endpoint),
        key_id: Some(c.principal.key_id.clone()),
        user: c.principal.user.clone(),
        team: c.principal.team.clone(),
        project: c.principal.project.clone(),
        model: Some(c.model.clone()),
        routed_model: accepted.as_ref().and_then(|a| a.routed_model.clone()),
        rule: accepted.as_ref().and_then(|a| a.rule.clone()),
        // A cached answer is the cache's; the detail names the match and the answer served.
        provider: c
            .provider
            .clone()
            .or_else(|| c.cache.as_ref().map(|_| "cache".to_owned())),
        detail: c
            .cache
            .as_ref()
            .map(|h| serde_json::json!({ "cache": h }).to_string()),
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
        guardrail_findings: accepted
            .as_ref()
            .map(|a| a.guardrail_findings.clone())
            .unwrap_or_default()
            .into_iter()
            .chain(c.guardrail_findings.iter().cloned())
            .collect(),
        prompt: accepted.map(|a| a.body),
        response: c.body.clone(),
        ..AuditRecord::new(request_id.to_string(), at_ms, Outcome::Completed, seq)
    }
}

fn rejected(env: &Envelope, seq: u64, r: &RequestRejected) -> AuditRecord {
    let p = r.principal.as_ref();
    AuditRecord {
        endpoint: Some(r.endpoint),
        key_id: p.map(|p| p.key_id.clone()).or_else(|| r.key_id.clone()),
        user: p.and_then(|p| p.user.clone()),
        team: p.and_then(|p| p.team.clone()),
        project: p.and_then(|p| p.project.clone()),
        model: r.model.clone(),
        status: r.status,
        error: Some(r.code.clone()),
        error_message: Some(r.message.clone()),
        key_fingerprint: r.key_fingerprint.clone(),
        remote_addr: r.remote_addr.clone(),
        user_agent: r.user_agent.clone(),
        ..AuditRecord::new(
            env.request_id.to_string(),
            env.at_ms,
            Outcome::Rejected,
            seq,
        )
    }
}

/// The hash chain over records in the order they closed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chain {
    /// Hash of the last record linked (zeros before the first).
    pub head: [u8; 32],
    /// Sequence of the event that closed that record (0 before the first).
    pub head_seq: u64,
    /// When that record's request arrived (ms since the epoch).
    #[serde(default)]
    pub head_at_ms: u64,
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
        self.head_at_ms = r.at_ms;
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

    /// Fold one event; the one record it closes, if any.
    fn fold(j: &mut Joiner, seq: u64, env: &Envelope) -> Option<AuditRecord> {
        let mut out = Vec::new();
        j.apply(seq, env, &mut out);
        assert!(out.len() <= 1, "{out:?}");
        out.pop()
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
            cache: None,
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
            cache: None,
            whole_body: false,
            guardrail_findings: vec![],
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
        assert!(fold(&mut j, 1, &env(id, 10, accepted())).is_none());
        assert!(
            fold(
                &mut j,
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
        let r = fold(&mut j, 3, &env(id, 21, spend)).expect("closed");
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
        fold(&mut j, 1, &env(id, 10, accepted()));
        let r = fold(&mut j, 2, &env(id, 20, completed(None, None, 502)))
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
        let r = fold(&mut j, 3, &env(Ulid::generate(), 30, refused)).unwrap();
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
                fold(&mut j, 2 * i + 1, &env(id, i, accepted()));
                fold(&mut j, 2 * i + 2, &env(id, i, completed(None, None, 500))).unwrap()
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

    #[test]
    fn a_request_that_never_closes_is_closed_as_incomplete_an_hour_of_stream_time_later() {
        let mut j = Joiner::default();
        let (a, b) = (Ulid::generate(), Ulid::generate());
        let t0 = 1_764_000_000_000;
        let mut out = Vec::new();
        j.apply(1, &env(a, t0, accepted()), &mut out);
        j.apply(2, &env(b, t0 + 5, accepted()), &mut out);
        // b answers with usage; its spend never comes
        j.apply(
            3,
            &env(b, t0 + 6, completed(Some("openai"), Some(usage()), 200)),
            &mut out,
        );
        j.apply(
            4,
            &env(Ulid::generate(), t0 + OPEN_TTL_MS - 1, accepted()),
            &mut out,
        );
        assert!(out.is_empty(), "not an hour yet");
        j.apply(
            5,
            &env(Ulid::generate(), t0 + OPEN_TTL_MS + 5, accepted()),
            &mut out,
        );
        assert_eq!(out.len(), 2, "both are an hour old: {out:?}");
        assert_eq!(out[0].request_id, a.to_string(), "oldest first");
        assert_eq!(out[0].outcome, Outcome::Incomplete);
        assert_eq!(out[0].status, 0);
        assert_eq!(out[0].seq, 5);
        assert!(out[0].prompt.as_deref().unwrap().contains("hello"));
        assert_eq!(
            out[1].outcome,
            Outcome::Completed,
            "answered, spend missing"
        );
        assert_eq!(out[1].cost_nanos, None);
        assert_eq!(j.open_requests(), 2);
        assert_eq!(j.oldest_open(), Some(4));
    }

    #[test]
    fn admin_events_are_records_without_secrets() {
        use crate::events::{KeyIssued, Limits, LimitsSet, Scope};
        let mut j = Joiner::default();
        let issued = Event::KeyIssued(KeyIssued {
            key_id: "01kb".into(),
            name: "ci".into(),
            secret_sha256: "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8"
                .into(),
            user: Some("ana".into()),
            team: Some("search".into()),
            project: None,
            models: vec!["gpt-4o-mini".into()],
            expires_at_ms: Some(99),
            limits: Limits::default(),
            metadata: Default::default(),
        });
        let r = fold(&mut j, 1, &env(Ulid::generate(), 10, issued)).unwrap();
        assert_eq!(r.outcome, Outcome::Admin);
        assert_eq!(r.action.as_deref(), Some("key_issued"));
        assert_eq!(
            (r.key_id.as_deref(), r.team.as_deref()),
            (Some("01kb"), Some("search"))
        );
        let detail = r.detail.unwrap();
        assert!(detail.contains("gpt-4o-mini"), "{detail}");
        assert!(!detail.contains("5e884898"), "no secret hash in the audit");
        let set = Event::LimitsSet(LimitsSet {
            scope: Scope::new(ScopeKind::Team, "search"),
            limits: Limits::default(),
        });
        let r = fold(&mut j, 2, &env(Ulid::generate(), 11, set)).unwrap();
        assert_eq!(r.team.as_deref(), Some("search"));
        assert_eq!(r.action.as_deref(), Some("limits_set"));
        assert_eq!(j.open_requests(), 0);
    }
}
