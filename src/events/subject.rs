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
    }
}

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
        ];
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
    }
}
