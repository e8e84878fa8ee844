//! The vocabulary: every fact the gateway publishes, as typed payloads in a versioned envelope.
//!
//! This module owns the event types, the one mapping from event to NATS subject, and the binary
//! codec. It does no I/O and knows nothing of tokio, HTTP or NATS clients: producers and
//! consumers depend on it, never the reverse.

mod codec;
mod subject;

pub use codec::{CURRENT_SCHEMA, DecodeError, decode, encode};
pub use subject::{EVENT_SUBJECT_WILDCARD, SPEND_SUBJECT, subject};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use ulid::Ulid;

/// One published fact. `id` is also the JetStream `Nats-Msg-Id`, so a re-publish is de-duplicated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Envelope {
    /// ULID of this event; unique, time-ordered.
    #[schemars(with = "String")]
    pub id: Ulid,
    /// Milliseconds since the Unix epoch (UTC) when the event happened.
    pub at_ms: u64,
    /// The request this event belongs to. Events that belong to no request (admin events,
    /// [`BreakerChanged`]) carry a fresh ULID of their own here.
    #[schemars(with = "String")]
    pub request_id: Ulid,
    pub event: Event,
}

impl Envelope {
    /// A new envelope stamped with a fresh ULID and the current time.
    pub fn new(request_id: Ulid, event: Event) -> Self {
        let id = Ulid::generate();
        Self {
            id,
            at_ms: id.timestamp_ms(),
            request_id,
            event,
        }
    }
}

/// Every kind of event. Variants are past-tense facts; payloads are named structs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub enum Event {
    RequestAccepted(RequestAccepted),
    ResponseCompleted(ResponseCompleted),
    SpendRecorded(SpendRecorded),
    /// Added in schema 2. Belongs to no request (see [`Envelope::request_id`]).
    BreakerChanged(BreakerChanged),
}

impl Event {
    /// A short static name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::RequestAccepted(_) => "request_accepted",
            Event::ResponseCompleted(_) => "response_completed",
            Event::SpendRecorded(_) => "spend_recorded",
            Event::BreakerChanged(_) => "breaker_changed",
        }
    }
}

/// Who is calling: the virtual key and the labels it carries. Never the key itself.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub struct Principal {
    pub key_id: String,
    pub user: Option<String>,
    pub team: Option<String>,
    pub project: Option<String>,
}

/// Which API surface the request came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Endpoint {
    ChatCompletions,
    Embeddings,
    /// Anthropic-shaped `/v1/messages` (added after v1 shipped: a new last variant keeps every
    /// v1 payload decoding as before).
    Messages,
}

/// One deployment the router may try: a provider and the model name it knows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DeploymentRef {
    pub provider: String,
    pub model: String,
}

/// A guardrail's observation about a request or response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct GuardrailFinding {
    pub guardrail: String,
    pub kind: String,
    pub action: String,
}

/// The edge admitted a request and is about to route it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RequestAccepted {
    pub principal: Principal,
    pub endpoint: Endpoint,
    /// The public model name the client asked for.
    pub model: String,
    /// Ordered candidates the router resolved for it.
    pub route: Vec<DeploymentRef>,
    pub stream: bool,
    /// The request body as received (JSON text).
    pub body: String,
    /// Reserved for guardrails: always empty until they are built.
    pub guardrail_findings: Vec<GuardrailFinding>,
    /// Reserved for the cache: always `None` until it is built.
    pub cache_key: Option<String>,
    /// Name of the content rule that routed the request; `None` when no rule matched.
    /// (Schema 2; schema-1 events decode with `None`.)
    pub rule: Option<String>,
    /// The public model the rule chose; `None` when the requested `model` was used as is.
    /// (Schema 2; schema-1 events decode with `None`.)
    pub routed_model: Option<String>,
}

/// Token counts, normalised across providers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Input tokens served from the provider's prompt cache (a subset of `input_tokens`).
    pub cached_input_tokens: u64,
    /// Reasoning tokens where the provider reports them (a subset of `output_tokens`).
    pub reasoning_tokens: u64,
    /// True when the gateway counted the tokens itself because the provider reported none.
    pub estimated: bool,
}

/// Why an attempt or a request failed, as a short stable label.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ErrorInfo {
    /// Stable class such as `upstream_5xx`, `timeout`, `connect`, `stream_cut`.
    pub class: String,
    pub message: String,
}

/// Why an attempt was made. (Schema 2; schema-1 attempts decode as `First` for the first and
/// `Fallback` for every later one, which is what the schema-1 attempt loop did.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AttemptKind {
    /// The first try of the request.
    First,
    /// The same deployment again after a retryable failure.
    Retry,
    /// Another deployment (or a fallback model's) after the previous one failed.
    Fallback,
    /// A second attempt started in parallel because the first was slow.
    Hedge,
}

/// One try against one deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Attempt {
    pub provider: String,
    pub model: String,
    /// HTTP status from the upstream; 0 when none was received.
    pub status: u16,
    pub latency_us: u64,
    pub error: Option<ErrorInfo>,
    /// Why this attempt was made. (Schema 2.)
    pub kind: AttemptKind,
    /// Milliseconds waited before this attempt started (backoff or the upstream's Retry-After);
    /// 0 for first, fallback and hedge attempts. (Schema 2.)
    pub backoff_ms: u64,
    /// Which key of the provider's key pool was used; `None` when the provider has one key.
    /// (Schema 2.)
    pub key_index: Option<u32>,
}

/// The request ended, successfully or not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ResponseCompleted {
    pub principal: Principal,
    pub endpoint: Endpoint,
    pub model: String,
    pub attempts: Vec<Attempt>,
    /// The deployment that answered, if any did.
    pub provider: Option<String>,
    pub provider_model: Option<String>,
    /// Status the client received.
    pub status: u16,
    pub error: Option<ErrorInfo>,
    pub stream: bool,
    /// Time to first token (streams) or to the full answer (non-streams), microseconds.
    pub ttft_us: Option<u64>,
    pub latency_us: u64,
    pub usage: Option<Usage>,
    pub finish_reason: Option<String>,
    /// Response body: the JSON answer, or for a stream the upstream's `data:` payloads joined by
    /// newlines.
    pub body: Option<String>,
    /// Reserved for the cache: `exact` or `semantic` when a cache answered; always `None`
    /// until the cache is built.
    pub cache_hit: Option<String>,
    /// Reserved for the cache: the similarity of a semantic hit; always `None` until then.
    pub cache_score: Option<f32>,
}

/// The cost of a request is known.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SpendRecorded {
    pub principal: Principal,
    /// Public model name.
    pub model: String,
    pub provider: String,
    pub provider_model: String,
    pub usage: Usage,
    /// Cost in integer nano-units of `currency` (1 USD = 1,000,000,000). Nano rather than micro
    /// so that a cheap model's small request does not round to zero or double (see
    /// docs/ARCHITECTURE.md).
    pub cost_nanos: u64,
    pub currency: String,
    /// False when the pricing table had no entry for the model (cost is then 0).
    pub priced: bool,
}

/// State of a circuit breaker guarding one deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Traffic flows.
    Closed,
    /// Traffic is refused until the cool-down ends.
    Open,
    /// Cool-down over: trial requests decide whether to close or open again.
    HalfOpen,
}

impl BreakerState {
    /// Its name, as in the events' JSON and the metrics' labels.
    pub fn label(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }

    /// The value of the `switchyard_breaker_state` gauge: 0 closed, 1 half-open, 2 open.
    pub fn level(self) -> f64 {
        match self {
            BreakerState::Closed => 0.0,
            BreakerState::HalfOpen => 1.0,
            BreakerState::Open => 2.0,
        }
    }
}

/// A deployment's circuit breaker changed state. (Schema 2.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct BreakerChanged {
    pub provider: String,
    /// The model name the provider knows (as in [`DeploymentRef::model`]).
    pub model: String,
    pub from: BreakerState,
    pub to: BreakerState,
    /// Why it changed, e.g. `5 failures in 30s` or `probe succeeded`.
    pub reason: String,
}
