//! The one place an event becomes a NATS subject. Nobody formats a subject string elsewhere.

use sha2::{Digest, Sha256};
use std::borrow::Cow;

use super::{BudgetWindow, Event};

/// Every event subject lives under this prefix; the stream binds the wildcard.
pub const EVENT_SUBJECT_WILDCARD: &str = "switchyard.events.>";

/// The subject an event is published on: fixed per kind, except a budget window's ledger and
/// alerts, which have subjects of their own (see [`budget_lease_subject`]).
pub fn subject(event: &Event) -> Cow<'static, str> {
    Cow::Borrowed(match event {
        Event::RequestAccepted(_) => REQUEST_ACCEPTED_SUBJECT,
        Event::ResponseCompleted(_) => RESPONSE_COMPLETED_SUBJECT,
        Event::SpendRecorded(_) => SPEND_SUBJECT,
        Event::BreakerChanged(_) => "switchyard.events.breaker.changed",
        Event::KeyIssued(_) => "switchyard.events.admin.key.issued",
        Event::KeyRotated(_) => "switchyard.events.admin.key.rotated",
        Event::KeyRevoked(_) => "switchyard.events.admin.key.revoked",
        Event::KeyExpired(_) => "switchyard.events.admin.key.expired",
        Event::LimitsSet(_) => "switchyard.events.admin.limits.set",
        Event::RequestRejected(_) => "switchyard.events.request.rejected",
        Event::AuditAnchored(_) => "switchyard.events.audit.anchored",
        Event::CacheFlushed(_) => CACHE_FLUSHED_SUBJECT,
        Event::BudgetLeased(e) => return Cow::Owned(budget_lease_subject(&e.window)),
        Event::BudgetThresholdCrossed(e) => {
            return Cow::Owned(budget_threshold_subject(&e.window, e.percent));
        }
    })
}

pub const REQUEST_ACCEPTED_SUBJECT: &str = "switchyard.events.request.accepted";
pub const RESPONSE_COMPLETED_SUBJECT: &str = "switchyard.events.response.completed";

/// An admin's flush of cached answers: each instance's cache follows it with the requests.
pub const CACHE_FLUSHED_SUBJECT: &str = "switchyard.events.cache.flushed";

/// Every budget window's ledger lives under this prefix.
pub const BUDGET_LEASE_PREFIX: &str = "switchyard.events.budget.lease.";
/// Threshold crossings, one subject per window and threshold.
pub const BUDGET_THRESHOLD_PREFIX: &str = "switchyard.events.budget.threshold.";

/// A subject token naming a budget window: scope names may hold any character (dots, spaces,
/// `>`), so the window is hashed (128 bits of SHA-256, hex).
fn window_token(w: &BudgetWindow) -> String {
    let mut h = Sha256::new();
    for part in [
        w.scope.kind.as_str(),
        w.scope.name.as_str(),
        w.period.as_str(),
        w.window.as_str(),
    ] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    hex::encode(&h.finalize()[..16])
}

/// The ledger of one budget window: its [`super::BudgetLeased`] events, the last of which holds
/// the total leased.
pub fn budget_lease_subject(w: &BudgetWindow) -> String {
    format!("{BUDGET_LEASE_PREFIX}{}", window_token(w))
}

/// Where the crossing of `percent` in window `w` is recorded (at most one event).
pub fn budget_threshold_subject(w: &BudgetWindow, percent: u8) -> String {
    format!("{BUDGET_THRESHOLD_PREFIX}{}.{percent}", window_token(w))
}

/// Every admin event (keys, limits) and nothing else: each instance follows this filter to keep
/// its key directory.
pub const ADMIN_SUBJECT_WILDCARD: &str = "switchyard.events.admin.>";

/// Subject for spend events only; the budgets projection filters on it.
pub const SPEND_SUBJECT: &str = "switchyard.events.spend.recorded";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::*;

    #[test]
    fn every_variant_has_a_distinct_subject_under_the_wildcard() {
        let p = Principal::default();
        let usage = Usage::default();
        let window = BudgetWindow {
            scope: Scope::new(ScopeKind::Team, "search > ops"),
            period: Period::Daily,
            window: "2026-11-30".into(),
        };
        let all = [
            Event::RequestAccepted(RequestAccepted {
                principal: p.clone(),
                endpoint: Endpoint::ChatCompletions,
                model: String::new(),
                route: vec![],
                stream: false,
                body: String::new(),
                guardrail_findings: vec![],
                cache: None,
                rule: None,
                routed_model: None,
            }),
            Event::ResponseCompleted(ResponseCompleted {
                principal: p.clone(),
                endpoint: Endpoint::ChatCompletions,
                model: String::new(),
                attempts: vec![],
                provider: None,
                provider_model: None,
                status: 200,
                error: None,
                stream: false,
                ttft_us: None,
                latency_us: 0,
                usage: None,
                finish_reason: None,
                body: None,
                cache: None,
                whole_body: false,
                guardrail_findings: vec![],
            }),
            Event::SpendRecorded(SpendRecorded {
                principal: p,
                model: String::new(),
                provider: String::new(),
                provider_model: String::new(),
                usage,
                cost_nanos: 0,
                currency: "USD".into(),
                priced: true,
            }),
            Event::BreakerChanged(BreakerChanged {
                provider: String::new(),
                model: String::new(),
                from: BreakerState::Closed,
                to: BreakerState::Open,
                reason: String::new(),
            }),
            Event::KeyIssued(KeyIssued {
                key_id: String::new(),
                name: String::new(),
                secret_sha256: String::new(),
                user: None,
                team: None,
                project: None,
                models: vec![],
                expires_at_ms: None,
                limits: Limits::default(),
                metadata: Default::default(),
            }),
            Event::KeyRotated(KeyRotated {
                key_id: String::new(),
                secret_sha256: String::new(),
                previous_valid_until_ms: 0,
            }),
            Event::KeyRevoked(KeyRevoked {
                key_id: String::new(),
                reason: None,
            }),
            Event::KeyExpired(KeyExpired {
                key_id: String::new(),
                expires_at_ms: 0,
            }),
            Event::LimitsSet(LimitsSet {
                scope: Scope::new(ScopeKind::Team, ""),
                limits: Limits::default(),
            }),
            Event::BudgetLeased(BudgetLeased {
                window: window.clone(),
                instance: String::new(),
                amount_nanos: 0,
                returned: false,
                total_nanos: 0,
                limit_nanos: 0,
            }),
            Event::BudgetThresholdCrossed(BudgetThresholdCrossed {
                window: window.clone(),
                percent: 80,
                spent_nanos: 0,
                limit_nanos: 0,
            }),
            Event::RequestRejected(RequestRejected {
                endpoint: Endpoint::ChatCompletions,
                status: 401,
                code: String::new(),
                message: String::new(),
                principal: None,
                key_id: None,
                key_fingerprint: None,
                model: None,
                remote_addr: None,
                user_agent: None,
            }),
            Event::AuditAnchored(AuditAnchored {
                head_seq: 0,
                head: String::new(),
                length: 0,
            }),
            Event::CacheFlushed(CacheFlushed {
                tenant: None,
                model: None,
            }),
        ];
        let admin = ADMIN_SUBJECT_WILDCARD.trim_end_matches('>');
        let prefix = EVENT_SUBJECT_WILDCARD.trim_end_matches('>');
        let mut seen = std::collections::HashSet::new();
        let mut kinds = std::collections::HashSet::new();
        for e in &all {
            assert!(kinds.insert(e.kind()), "duplicate kind {}", e.kind());
            let s = subject(e);
            assert!(s.starts_with(prefix), "{s}");
            assert!(!s.contains(' '), "{s}");
            assert!(seen.insert(s), "duplicate subject");
        }
        assert_eq!(subject(&all[2]), SPEND_SUBJECT);
        assert_eq!(subject(&all[3]), "switchyard.events.breaker.changed");
        // the key directory follows the admin wildcard: it must hold the admin events only
        for e in &all {
            let is_admin = matches!(
                e,
                Event::KeyIssued(_)
                    | Event::KeyRotated(_)
                    | Event::KeyRevoked(_)
                    | Event::KeyExpired(_)
                    | Event::LimitsSet(_)
            );
            assert_eq!(subject(e).starts_with(admin), is_admin, "{}", subject(e));
        }
        // a window's ledger and its alerts have subjects of their own, one per window (and
        // threshold), whatever the scope's name holds
        assert_eq!(subject(&all[9]), budget_lease_subject(&window));
        assert!(subject(&all[9]).starts_with(BUDGET_LEASE_PREFIX));
        assert_eq!(subject(&all[10]), budget_threshold_subject(&window, 80));
        let other = BudgetWindow {
            window: "2026-12-01".into(),
            ..window.clone()
        };
        assert_ne!(budget_lease_subject(&other), budget_lease_subject(&window));
        assert_ne!(
            budget_threshold_subject(&window, 50),
            budget_threshold_subject(&window, 80)
        );
        assert_eq!(
            budget_lease_subject(&window).split('.').count(),
            BUDGET_LEASE_PREFIX.split('.').count()
        );
    }
}
