//! Schemas 2 to 5, frozen: the payloads schema 6 changed (`RequestAccepted`, whose
//! `GuardrailFinding` got its real shape, and `ResponseCompleted`, which gained
//! `guardrail_findings`), as they were, and the `Event` enum around them. Every other payload is
//! today's type: schema 6 did not touch it.
//!
//! Nothing here may change, ever: these definitions are the wire format of every schema-2 to
//! schema-5 event already in a stream. They are deserialize-only.

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
    SpendRecorded(current::SpendRecorded),
    BreakerChanged(current::BreakerChanged),
    KeyIssued(current::KeyIssued),
    KeyRotated(current::KeyRotated),
    KeyRevoked(current::KeyRevoked),
    KeyExpired(current::KeyExpired),
    LimitsSet(current::LimitsSet),
    BudgetLeased(current::BudgetLeased),
    BudgetThresholdCrossed(current::BudgetThresholdCrossed),
    RequestRejected(current::RequestRejected),
    AuditAnchored(current::AuditAnchored),
}

#[derive(Deserialize)]
struct GuardrailFinding {
    guardrail: String,
    kind: String,
    action: String,
}

#[derive(Deserialize)]
struct RequestAccepted {
    principal: current::Principal,
    endpoint: current::Endpoint,
    model: String,
    route: Vec<current::DeploymentRef>,
    stream: bool,
    body: String,
    guardrail_findings: Vec<GuardrailFinding>,
    #[allow(dead_code)]
    cache_key: Option<String>,
    rule: Option<String>,
    routed_model: Option<String>,
}

#[derive(Deserialize)]
struct ResponseCompleted {
    principal: current::Principal,
    endpoint: current::Endpoint,
    model: String,
    attempts: Vec<current::Attempt>,
    provider: Option<String>,
    provider_model: Option<String>,
    status: u16,
    error: Option<current::ErrorInfo>,
    stream: bool,
    ttft_us: Option<u64>,
    latency_us: u64,
    usage: Option<current::Usage>,
    finish_reason: Option<String>,
    body: Option<String>,
    #[allow(dead_code)]
    cache_hit: Option<String>,
    #[allow(dead_code)]
    cache_score: Option<f32>,
}

/// A pre-schema-6 finding in today's shape. Findings were reserved and never written before
/// schema 6; should one exist, its `kind` names the detector and its action is kept when it is
/// one of today's (else `log`).
pub(super) fn finding(
    _guardrail: String,
    kind: String,
    action: String,
) -> current::GuardrailFinding {
    let action = match action.as_str() {
        "redact" => current::GuardrailAction::Redact,
        "block" => current::GuardrailAction::Block,
        _ => current::GuardrailAction::Log,
    };
    current::GuardrailFinding {
        detector: kind,
        action,
        count: 1,
        location: current::FindingLocation::Request,
        message: None,
    }
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
        use current::Event as E;
        match v {
            Event::RequestAccepted(a) => E::RequestAccepted(current::RequestAccepted {
                principal: a.principal,
                endpoint: a.endpoint,
                model: a.model,
                route: a.route,
                stream: a.stream,
                body: a.body,
                guardrail_findings: a
                    .guardrail_findings
                    .into_iter()
                    .map(|f| finding(f.guardrail, f.kind, f.action))
                    .collect(),
                // Reserved, never written before schema 7.
                cache: None,
                rule: a.rule,
                routed_model: a.routed_model,
            }),
            Event::ResponseCompleted(c) => E::ResponseCompleted(current::ResponseCompleted {
                principal: c.principal,
                endpoint: c.endpoint,
                model: c.model,
                attempts: c.attempts,
                provider: c.provider,
                provider_model: c.provider_model,
                status: c.status,
                error: c.error,
                stream: c.stream,
                ttft_us: c.ttft_us,
                latency_us: c.latency_us,
                usage: c.usage,
                finish_reason: c.finish_reason,
                body: c.body,
                cache: None,
                whole_body: false,
                guardrail_findings: Vec::new(),
            }),
            Event::SpendRecorded(e) => E::SpendRecorded(e),
            Event::BreakerChanged(e) => E::BreakerChanged(e),
            Event::KeyIssued(e) => E::KeyIssued(e),
            Event::KeyRotated(e) => E::KeyRotated(e),
            Event::KeyRevoked(e) => E::KeyRevoked(e),
            Event::KeyExpired(e) => E::KeyExpired(e),
            Event::LimitsSet(e) => E::LimitsSet(e),
            Event::BudgetLeased(e) => E::BudgetLeased(e),
            Event::BudgetThresholdCrossed(e) => E::BudgetThresholdCrossed(e),
            Event::RequestRejected(e) => E::RequestRejected(e),
            Event::AuditAnchored(e) => E::AuditAnchored(e),
        }
    }
}
