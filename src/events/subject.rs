//! The one place an event becomes a NATS subject. Nobody formats a subject string elsewhere.

use super::Event;

/// Every event subject lives under this prefix; the stream binds the wildcard.
pub const EVENT_SUBJECT_WILDCARD: &str = "switchyard.events.>";

/// The subject an event is published on.
pub fn subject(event: &Event) -> &'static str {
    match event {
        Event::RequestAccepted(_) => "switchyard.events.request.accepted",
        Event::ResponseCompleted(_) => "switchyard.events.response.completed",
        Event::SpendRecorded(_) => SPEND_SUBJECT,
        Event::BreakerChanged(_) => "switchyard.events.breaker.changed",
        Event::KeyIssued(_) => "switchyard.events.admin.key.issued",
        Event::KeyRotated(_) => "switchyard.events.admin.key.rotated",
        Event::KeyRevoked(_) => "switchyard.events.admin.key.revoked",
        Event::KeyExpired(_) => "switchyard.events.admin.key.expired",
        Event::LimitsSet(_) => "switchyard.events.admin.limits.set",
    }
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
        let all = [
            Event::RequestAccepted(RequestAccepted {
                principal: p.clone(),
                endpoint: Endpoint::ChatCompletions,
                model: String::new(),
                route: vec![],
                stream: false,
                body: String::new(),
                guardrail_findings: vec![],
                cache_key: None,
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
                cache_hit: None,
                cache_score: None,
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
        ];
        let admin = ADMIN_SUBJECT_WILDCARD.trim_end_matches('>');
        let prefix = EVENT_SUBJECT_WILDCARD.trim_end_matches('>');
        let mut seen = std::collections::HashSet::new();
        let mut kinds = std::collections::HashSet::new();
        for e in &all {
            assert!(kinds.insert(e.kind()), "duplicate kind {}", e.kind());
            let s = subject(e);
            assert!(s.starts_with(prefix), "{s}");
            assert!(seen.insert(s), "duplicate subject {s}");
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
    }
}
