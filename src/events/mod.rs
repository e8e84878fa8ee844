//! The vocabulary: every fact the gateway publishes, as typed payloads in a versioned envelope.
//!
//! This module owns the event types, the one mapping from event to NATS subject, and the binary
//! codec. It does no I/O and knows nothing of tokio, HTTP or NATS clients: producers and
//! consumers depend on it, never the reverse.

mod codec;
mod subject;

pub use codec::{CURRENT_SCHEMA, DecodeError, decode, encode};
pub use subject::{
    ADMIN_SUBJECT_WILDCARD, BUDGET_LEASE_PREFIX, BUDGET_THRESHOLD_PREFIX, CACHE_FLUSHED_SUBJECT,
    EVENT_SUBJECT_WILDCARD, REQUEST_ACCEPTED_SUBJECT, RESPONSE_COMPLETED_SUBJECT, SPEND_SUBJECT,
    budget_lease_subject, budget_threshold_subject, subject,
};

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
    /// Admin events (schema 3): virtual keys and the limits of every scope. Every instance
    /// builds its key directory from these. They belong to no request.
    KeyIssued(KeyIssued),
    KeyRotated(KeyRotated),
    KeyRevoked(KeyRevoked),
    KeyExpired(KeyExpired),
    LimitsSet(LimitsSet),
    /// Budget ledger events (schema 3, added after the admin events): an instance leased a
    /// slice of a budget window or gave unused money back. Each window's ledger is a subject of
    /// its own. They belong to no request.
    BudgetLeased(BudgetLeased),
    /// A budget window's spend crossed one of its alert thresholds; published once per
    /// threshold and window. Belongs to no request.
    BudgetThresholdCrossed(BudgetThresholdCrossed),
    /// Schema 4: a request refused before admission (bad key, unknown model, invalid body,
    /// limits). Its envelope's `request_id` is the id the refusal answered with.
    RequestRejected(RequestRejected),
    /// Schema 5: the head of the audit chain at a point of the stream, published now and then
    /// by each process that runs the audit projection. `switchyard audit verify` checks the
    /// chain it recomputes from the stream against every anchor. Belongs to no request.
    AuditAnchored(AuditAnchored),
    /// Schema 7: an admin emptied (part of) the answer cache. Belongs to no request.
    CacheFlushed(CacheFlushed),
}

impl Event {
    /// A short static name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::RequestAccepted(_) => "request_accepted",
            Event::ResponseCompleted(_) => "response_completed",
            Event::SpendRecorded(_) => "spend_recorded",
            Event::BreakerChanged(_) => "breaker_changed",
            Event::KeyIssued(_) => "key_issued",
            Event::KeyRotated(_) => "key_rotated",
            Event::KeyRevoked(_) => "key_revoked",
            Event::KeyExpired(_) => "key_expired",
            Event::LimitsSet(_) => "limits_set",
            Event::BudgetLeased(_) => "budget_leased",
            Event::BudgetThresholdCrossed(_) => "budget_threshold_crossed",
            Event::RequestRejected(_) => "request_rejected",
            Event::AuditAnchored(_) => "audit_anchored",
            Event::CacheFlushed(_) => "cache_flushed",
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

/// What a guardrail did about what it found. (Schema 6.)
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum GuardrailAction {
    /// Recorded, nothing changed.
    Log,
    /// Replaced by a typed placeholder (`[EMAIL_1]`) before it went on.
    Redact,
    /// The request was refused (400 `guardrail_blocked`).
    Block,
}

/// Where a guardrail looked. (Schema 6.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FindingLocation {
    Request,
    Response,
}

/// What one detector found in one place, and what was done: never the matched text. (Schema 6
/// gave it this shape; before, no event carried one.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct GuardrailFinding {
    /// The detector (`email`, `openai_key`, or a custom detector's name).
    pub detector: String,
    pub action: GuardrailAction,
    /// How many matches.
    pub count: u32,
    pub location: FindingLocation,
    /// The index of the request message (or embeddings input) they were in; `None` for a
    /// response.
    pub message: Option<u32>,
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
    /// What the request guardrails found in the request, and did (schema 6).
    pub guardrail_findings: Vec<GuardrailFinding>,
    /// What the answer cache knows of a chat request it may answer or keep; `None` when the
    /// cache is off for the model. (Schema 7; before, a reserved `cache_key` never written.)
    pub cache: Option<CacheKey>,
    /// Name of the content rule that routed the request; `None` when no rule matched.
    /// (Schema 2; schema-1 events decode with `None`.)
    pub rule: Option<String>,
    /// The public model the rule chose; `None` when the requested `model` was used as is.
    /// (Schema 2; schema-1 events decode with `None`.)
    pub routed_model: Option<String>,
}

/// What the answer cache knows of an admitted chat request (schema 7). Every instance's cache
/// keeps the request's answer under these keys when it completes, unless `store` is false.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CacheKey {
    /// Whom the answer may be served to: `team:<name>`, `project:<name>`, `user:<name>`,
    /// `key:<id>` or `global`.
    pub tenant: String,
    /// SHA-256 (lowercase hex) of the tenant, the public model and every field of the request
    /// that can change the answer.
    pub exact: String,
    /// For the semantic cache, the bucket the turn is compared in: SHA-256 of the same with
    /// the last user turn's text left out, and of the turn's facts a hit needs equal (its
    /// numbers, negation, script).
    pub context: Option<String>,
    /// The last user turn's text, for the checks a semantic hit must pass (numbers, negation,
    /// names). Only when `context` is set and the stream keeps bodies whole.
    pub prompt: Option<String>,
    /// The last user turn's vector (L2-normalised), so no consumer embeds it again.
    pub embedding: Option<Vec<f32>>,
    /// Whether the answer may be kept (false under `Cache-Control: no-store`, or when the
    /// request's values were redacted by a guardrail or the stream does not keep bodies whole).
    pub store: bool,
    /// How long the answer may be served after it completes, in milliseconds.
    pub ttl_ms: u64,
}

/// How a cached answer matched. (Schema 7.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CacheMatch {
    /// The same request (every field that can change the answer).
    Exact,
    /// The same conversation and parameters, and a last user turn of the same meaning.
    Semantic,
}

impl CacheMatch {
    pub fn as_str(self) -> &'static str {
        match self {
            CacheMatch::Exact => "exact",
            CacheMatch::Semantic => "semantic",
        }
    }
}

/// A request answered from the cache. (Schema 7.)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CacheHit {
    #[serde(rename = "match")]
    pub matched: CacheMatch,
    /// The cosine similarity of the two last user turns (1 for an exact hit).
    pub similarity: f32,
    /// The request whose answer was served.
    pub source: String,
}

/// Cached answers were dropped: those of one tenant and/or one public model, or all of them.
/// (Schema 7.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CacheFlushed {
    pub tenant: Option<String>,
    pub model: Option<String>,
}

/// The edge refused a request before admitting it. Holds no secret: an unrecognised key is
/// named only by a short fingerprint of its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RequestRejected {
    pub endpoint: Endpoint,
    /// The HTTP status of the refusal.
    pub status: u16,
    /// The error code the client got (`invalid_api_key`, `model_not_found`,
    /// `rate_limit_exceeded`…).
    pub code: String,
    /// The error message the client got.
    pub message: String,
    /// The caller, when its key was recognised (a refusal after authentication).
    pub principal: Option<Principal>,
    /// The public id of a presented `sy-<id>-…` key that was not accepted (unknown, expired,
    /// revoked), when the caller is not known.
    pub key_id: Option<String>,
    /// The first 8 hex digits of the SHA-256 of the presented key, when one was presented and
    /// the caller is not known: enough to tell one bad key from another, nothing more.
    pub key_fingerprint: Option<String>,
    /// The model the request asked for, when the body was read that far (clipped).
    pub model: Option<String>,
    /// The client's address as the gateway's socket saw it.
    pub remote_addr: Option<String>,
    /// The `User-Agent` header (clipped).
    pub user_agent: Option<String>,
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
    /// The cached answer that answered this request, when the cache did (no provider was
    /// called). (Schema 7; before, the reserved `cache_hit` and `cache_score`, never written.)
    pub cache: Option<CacheHit>,
    /// `body` is the answer exactly as the client got it: not clipped, and not masked by the
    /// privacy setting. Only worked out (and so only true) when the request's answer may be
    /// kept by the cache; the cache keeps no other. (Schema 7.)
    pub whole_body: bool,
    /// What the response guardrails found in the answer, and did. (Schema 6: appended.)
    pub guardrail_findings: Vec<GuardrailFinding>,
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

/// What a budget or a rate limit applies to.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ScopeKind {
    /// One virtual key, named by its id.
    Key,
    User,
    Team,
    Project,
    /// A public model name (rate limits across every caller of the model).
    Model,
}

impl ScopeKind {
    pub const ALL: [ScopeKind; 5] = [
        ScopeKind::Key,
        ScopeKind::User,
        ScopeKind::Team,
        ScopeKind::Project,
        ScopeKind::Model,
    ];

    /// Its name, as in JSON, URLs and metrics' labels.
    pub fn as_str(self) -> &'static str {
        match self {
            ScopeKind::Key => "key",
            ScopeKind::User => "user",
            ScopeKind::Team => "team",
            ScopeKind::Project => "project",
            ScopeKind::Model => "model",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// One scope: a key id, a user, a team, a project or a model by name.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
pub struct Scope {
    pub kind: ScopeKind,
    pub name: String,
}

impl Scope {
    pub fn new(kind: ScopeKind, name: impl Into<String>) -> Self {
        Self {
            kind,
            name: name.into(),
        }
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {:?}", self.kind.as_str(), self.name)
    }
}

/// The period a budget counts over, aligned to the UTC calendar.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    /// From 00:00 UTC to the next.
    Daily,
    /// From Monday 00:00 UTC (ISO weeks).
    Weekly,
    /// From the first of the month, 00:00 UTC.
    Monthly,
    /// Never resets.
    Lifetime,
}

impl Period {
    pub const ALL: [Period; 4] = [
        Period::Daily,
        Period::Weekly,
        Period::Monthly,
        Period::Lifetime,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Period::Daily => "daily",
            Period::Weekly => "weekly",
            Period::Monthly => "monthly",
            Period::Lifetime => "lifetime",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

/// A spending cap over a period, in nano-units of the pricing currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Budget {
    pub period: Period,
    /// The hard limit: a request that could take spend past it is refused (429
    /// `budget_exceeded`).
    pub limit_nanos: u64,
    /// Soft thresholds, as percentages of the limit (e.g. 50, 80): crossing one publishes an
    /// event and calls the webhook, if one is configured.
    pub alert_at_percent: Vec<u8>,
}

/// Requests and tokens per minute. `None` is no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub struct RateLimit {
    pub requests_per_minute: Option<u64>,
    pub tokens_per_minute: Option<u64>,
}

/// Everything that limits one scope.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub struct Limits {
    pub budgets: Vec<Budget>,
    pub rate: RateLimit,
}

impl Limits {
    pub fn is_empty(&self) -> bool {
        self.budgets.is_empty() && self.rate == RateLimit::default()
    }
}

/// A virtual key was created. The key is `sy-<key_id>-<secret>`; only the secret's SHA-256 is
/// here, never the secret. (Schema 3.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct KeyIssued {
    pub key_id: String,
    /// A human name for lists and audit.
    pub name: String,
    /// SHA-256 of the secret part, lowercase hex.
    pub secret_sha256: String,
    pub user: Option<String>,
    pub team: Option<String>,
    pub project: Option<String>,
    /// Public model names the key may call; empty means every model.
    pub models: Vec<String>,
    /// When the key stops working, in milliseconds since the Unix epoch; `None` never.
    pub expires_at_ms: Option<u64>,
    /// The key's own budgets and rate limits (its user's, team's and project's apply too).
    pub limits: Limits,
    /// Free-form labels the admin attached, e.g. an owner or a ticket.
    pub metadata: std::collections::BTreeMap<String, String>,
}

/// A key got a new secret; the previous one keeps working until `previous_valid_until_ms`.
/// (Schema 3.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct KeyRotated {
    pub key_id: String,
    /// SHA-256 of the new secret, lowercase hex.
    pub secret_sha256: String,
    pub previous_valid_until_ms: u64,
}

/// A key was revoked: it stops working everywhere, for good. (Schema 3.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct KeyRevoked {
    pub key_id: String,
    pub reason: Option<String>,
}

/// A key reached its expiry. Keys stop working at `expires_at_ms` whether or not this event
/// was seen; it records the fact for audit and lists. Every instance may notice, so its event
/// id is derived from the key and its expiry and JetStream keeps one copy. (Schema 3.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct KeyExpired {
    pub key_id: String,
    pub expires_at_ms: u64,
}

/// The budgets and rate limits of a scope were set, replacing the previous ones (an empty
/// `limits` removes them). (Schema 3.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LimitsSet {
    pub scope: Scope,
    pub limits: Limits,
}

/// One budget's window: whose budget, over which period, and which stretch of the UTC calendar
/// (`2026-11-30`, ISO week `2026-W49`, `2026-11`, or `lifetime`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct BudgetWindow {
    pub scope: Scope,
    pub period: Period,
    pub window: String,
}

/// An instance took a slice of a budget window's money (or gave unused money back), so it can
/// admit requests from memory. The events of one window are its ledger, on a subject of its
/// own: each carries the total leased after it, and is written only if the subject's last
/// sequence is still the one the instance read (`Nats-Expected-Last-Subject-Sequence`), so the
/// leases of all instances never sum past the limit. (Schema 3.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct BudgetLeased {
    pub window: BudgetWindow,
    /// The gateway instance (a ULID made at its start) that leased or returned.
    pub instance: String,
    /// Nano-units taken from the window's pool, or given back when `returned`.
    pub amount_nanos: u64,
    pub returned: bool,
    /// Leased in the window after this event, by every instance. The window's first lease
    /// also counts the spend already recorded in the window before it (e.g. before the budget
    /// was set), so that spend is not available again.
    pub total_nanos: u64,
    /// The budget's limit when the lease was made.
    pub limit_nanos: u64,
}

/// A budget window's recorded spend reached `percent` of its limit. Published once per window
/// and threshold however many instances notice (its subject may hold one event). (Schema 3.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct BudgetThresholdCrossed {
    pub window: BudgetWindow,
    pub percent: u8,
    /// Spend recorded in the window when the crossing was noticed.
    pub spent_nanos: u64,
    pub limit_nanos: u64,
}

/// The audit chain's head as one audit projection computed it: the hash of the record closed by
/// the event at `head_seq`, which covers every record before it. Every projection folds the same
/// stream into the same chain, so the id of an anchor is derived from its head and two
/// instances anchoring the same head publish one event. (Schema 5.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AuditAnchored {
    /// Stream sequence of the event that closed the head record.
    pub head_seq: u64,
    /// SHA-256 of the head record, chained (lowercase hex).
    pub head: String,
    /// Records in the chain up to and including the head, counted from where the projection's
    /// chain began.
    pub length: u64,
}
