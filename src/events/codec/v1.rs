//! Schema 1, frozen: the payload types exactly as they were when schema 1 was current, and their
//! conversion into today's types.
//!
//! Nothing here may change, ever: bincode is not self-describing, so these definitions (field
//! order, field types, variant order) *are* the wire format of every schema-1 event already in a
//! stream. They are deserialize-only; this build writes the current schema.

use serde::Deserialize;
use ulid::Ulid;

use crate::events as current;

#[derive(Deserialize)]
pub(super) struct Envelope {
    id: Ulid,
    at_ms: u64,
    request_id: Ulid,
    event: Event,
}

#[derive(Deserialize)]
enum Event {
    RequestAccepted(RequestAccepted),
    ResponseCompleted(ResponseCompleted),
    SpendRecorded(SpendRecorded),
}

#[derive(Deserialize)]
struct Principal {
    key_id: String,
    user: Option<String>,
    team: Option<String>,
    project: Option<String>,
}

/// `Messages` was appended while schema 1 was current: a new last variant leaves every earlier
/// payload decoding as before, so schema-1 bytes may carry it.
#[derive(Deserialize)]
enum Endpoint {
    ChatCompletions,
    Embeddings,
    Messages,
}

#[derive(Deserialize)]
struct DeploymentRef {
    provider: String,
    model: String,
}

#[derive(Deserialize)]
struct GuardrailFinding {
    guardrail: String,
    kind: String,
    action: String,
}

#[derive(Deserialize)]
struct RequestAccepted {
    principal: Principal,
    endpoint: Endpoint,
    model: String,
    route: Vec<DeploymentRef>,
    stream: bool,
    body: String,
    guardrail_findings: Vec<GuardrailFinding>,
    /// Reserved; schema 7 gave the cache its own shape and these placeholders are dropped.
    #[allow(dead_code)]
    cache_key: Option<String>,
}

#[derive(Deserialize)]
struct Usage {
    input_tokens: u64,
    output_tokens: u64,
    cached_input_tokens: u64,
    reasoning_tokens: u64,
    estimated: bool,
}

#[derive(Deserialize)]
struct ErrorInfo {
    class: String,
    message: String,
}

#[derive(Deserialize)]
struct Attempt {
    provider: String,
    model: String,
    status: u16,
    latency_us: u64,
    error: Option<ErrorInfo>,
}

#[derive(Deserialize)]
struct ResponseCompleted {
    principal: Principal,
    endpoint: Endpoint,
    model: String,
    attempts: Vec<Attempt>,
    provider: Option<String>,
    provider_model: Option<String>,
    status: u16,
    error: Option<ErrorInfo>,
    stream: bool,
    ttft_us: Option<u64>,
    latency_us: u64,
    usage: Option<Usage>,
    finish_reason: Option<String>,
    body: Option<String>,
    /// Reserved; dropped on decode (see `cache_key`).
    #[allow(dead_code)]
    cache_hit: Option<String>,
    #[allow(dead_code)]
    cache_score: Option<f32>,
}

#[derive(Deserialize)]
struct SpendRecorded {
    principal: Principal,
    model: String,
    provider: String,
    provider_model: String,
    usage: Usage,
    cost_nanos: u64,
    currency: String,
    priced: bool,
}

impl From<Envelope> for current::Envelope {
    fn from(v: Envelope) -> Self {
        Self {
            id: v.id,
            at_ms: v.at_ms,
            request_id: v.request_id,
            event: v.event.into(),
        }
    }
}

impl From<Event> for current::Event {
    fn from(v: Event) -> Self {
        match v {
            Event::RequestAccepted(r) => Self::RequestAccepted(r.into()),
            Event::ResponseCompleted(r) => Self::ResponseCompleted(r.into()),
            Event::SpendRecorded(s) => Self::SpendRecorded(s.into()),
        }
    }
}

impl From<Principal> for current::Principal {
    fn from(v: Principal) -> Self {
        Self {
            key_id: v.key_id,
            user: v.user,
            team: v.team,
            project: v.project,
        }
    }
}

impl From<Endpoint> for current::Endpoint {
    fn from(v: Endpoint) -> Self {
        match v {
            Endpoint::ChatCompletions => Self::ChatCompletions,
            Endpoint::Embeddings => Self::Embeddings,
            Endpoint::Messages => Self::Messages,
        }
    }
}

impl From<DeploymentRef> for current::DeploymentRef {
    fn from(v: DeploymentRef) -> Self {
        Self {
            provider: v.provider,
            model: v.model,
        }
    }
}

/// Findings were reserved and never written before schema 6; should one exist, its `kind` names
/// the detector and its action is kept when it is one of today's.
impl From<GuardrailFinding> for current::GuardrailFinding {
    fn from(v: GuardrailFinding) -> Self {
        super::v5::finding(v.guardrail, v.kind, v.action)
    }
}

/// Schema 1 had no content rules: every request used the model it asked for.
impl From<RequestAccepted> for current::RequestAccepted {
    fn from(v: RequestAccepted) -> Self {
        Self {
            principal: v.principal.into(),
            endpoint: v.endpoint.into(),
            model: v.model,
            route: v.route.into_iter().map(Into::into).collect(),
            stream: v.stream,
            body: v.body,
            guardrail_findings: v.guardrail_findings.into_iter().map(Into::into).collect(),
            cache: None,
            rule: None,
            routed_model: None,
        }
    }
}

impl From<Usage> for current::Usage {
    fn from(v: Usage) -> Self {
        Self {
            input_tokens: v.input_tokens,
            output_tokens: v.output_tokens,
            cached_input_tokens: v.cached_input_tokens,
            reasoning_tokens: v.reasoning_tokens,
            estimated: v.estimated,
        }
    }
}

impl From<ErrorInfo> for current::ErrorInfo {
    fn from(v: ErrorInfo) -> Self {
        Self {
            class: v.class,
            message: v.message,
        }
    }
}

impl Attempt {
    /// Schema 1's attempt loop tried each deployment of the route once, in order, with no
    /// backoff, no hedging and one key per provider: the first attempt is `First`, every later
    /// one a `Fallback` to the next deployment.
    fn into_current(self, index: usize) -> current::Attempt {
        current::Attempt {
            provider: self.provider,
            model: self.model,
            status: self.status,
            latency_us: self.latency_us,
            error: self.error.map(Into::into),
            kind: if index == 0 {
                current::AttemptKind::First
            } else {
                current::AttemptKind::Fallback
            },
            backoff_ms: 0,
            key_index: None,
        }
    }
}

impl From<ResponseCompleted> for current::ResponseCompleted {
    fn from(v: ResponseCompleted) -> Self {
        Self {
            principal: v.principal.into(),
            endpoint: v.endpoint.into(),
            model: v.model,
            attempts: v
                .attempts
                .into_iter()
                .enumerate()
                .map(|(i, a)| a.into_current(i))
                .collect(),
            provider: v.provider,
            provider_model: v.provider_model,
            status: v.status,
            error: v.error.map(Into::into),
            stream: v.stream,
            ttft_us: v.ttft_us,
            latency_us: v.latency_us,
            usage: v.usage.map(Into::into),
            finish_reason: v.finish_reason,
            body: v.body,
            cache: None,
            whole_body: false,
            guardrail_findings: Vec::new(),
        }
    }
}

impl From<SpendRecorded> for current::SpendRecorded {
    fn from(v: SpendRecorded) -> Self {
        Self {
            principal: v.principal.into(),
            model: v.model,
            provider: v.provider,
            provider_model: v.provider_model,
            usage: v.usage.into(),
            cost_nanos: v.cost_nanos,
            currency: v.currency,
            priced: v.priced,
        }
    }
}
