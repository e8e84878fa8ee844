//! `[rate_limits]`: how requests- and tokens-per-minute limits are enforced (the limits
//! themselves are set per key, user, team, project or model through the admin API). Parsed
//! here, checked by `validate`; `crate::governance::rate` (admission) and `crate::ledger::rates`
//! (leases across instances) act on them.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// What admission does when it needs more of a limit's timeline and NATS cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RateLedgerUnavailable {
    /// Go on limiting with this instance's own clock: each instance then admits up to the
    /// whole limit until NATS is back (the total can reach the limit times the instances).
    #[default]
    Local,
    /// Refuse the request (503 `rate_limit_unavailable`): the total holds, traffic past what
    /// this instance already holds stops until NATS is back.
    Refuse,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitsConfig {
    /// Requests a requests-per-minute limit admits at once beyond its steady pace, as a
    /// percentage of the limit (at least one request). Any 60 s then admits at most
    /// `limit × (1 + burst_percent / 100)` requests.
    pub request_burst_percent: u8,
    /// The same for tokens-per-minute limits; a request larger than the burst is admitted only
    /// when the limit is idle (its tokens then count against the time that follows).
    pub token_burst_percent: u8,
    /// How much of a limit's timeline an instance leases at once, as time at the limit's pace
    /// (`1s` of a 600 RPM limit is 10 requests). Larger leases ask NATS less often; an idle
    /// instance's unused lease is lost when its time passes.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String")]
    pub lease: Duration,
    /// Longest a request waits for a lease before the ledger counts as unreachable.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String")]
    pub lease_timeout: Duration,
    pub when_ledger_unavailable: RateLedgerUnavailable,
    /// JetStream stream holding each limit's shared timeline (one message per limit, kept a
    /// few minutes; it is not an event and is not replayed).
    pub stream: String,
}

impl Default for RateLimitsConfig {
    fn default() -> Self {
        Self {
            request_burst_percent: 1,
            token_burst_percent: 10,
            lease: Duration::from_secs(1),
            lease_timeout: Duration::from_secs(2),
            when_ledger_unavailable: RateLedgerUnavailable::Local,
            stream: "SWITCHYARD_RATES".into(),
        }
    }
}

/// Every problem with `[rate_limits]`.
pub fn validate(r: &RateLimitsConfig, events_stream: &str, problems: &mut Vec<String>) {
    for (name, p) in [
        ("request_burst_percent", r.request_burst_percent),
        ("token_burst_percent", r.token_burst_percent),
    ] {
        if !(1..=100).contains(&p) {
            problems.push(format!(
                "rate_limits.{name}: must be from 1 to 100, got {p}"
            ));
        }
    }
    if r.lease < Duration::from_millis(10) || r.lease > Duration::from_secs(60) {
        problems.push(format!(
            "rate_limits.lease: must be from 10ms to 60s, got {:?}",
            r.lease
        ));
    }
    if r.lease_timeout.is_zero() {
        problems.push("rate_limits.lease_timeout: must be greater than 0".into());
    }
    if r.stream.is_empty()
        || !r
            .stream
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        problems.push(format!(
            "rate_limits.stream: letters, digits, '_' and '-' only, got {:?}",
            r.stream
        ));
    } else if r.stream == events_stream {
        problems.push("rate_limits.stream: must differ from nats.stream".into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_are_named() {
        let mut problems = vec![];
        validate(&RateLimitsConfig::default(), "SWITCHYARD", &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        let bad: RateLimitsConfig = toml::from_str(
            "request_burst_percent = 0\ntoken_burst_percent = 101\nlease = \"1ms\"\nlease_timeout = \"0s\"\nstream = \"a.b\"\nwhen_ledger_unavailable = \"refuse\"",
        )
        .unwrap();
        assert_eq!(bad.when_ledger_unavailable, RateLedgerUnavailable::Refuse);
        validate(&bad, "SWITCHYARD", &mut problems);
        let all = problems.join("\n");
        for field in [
            "request_burst_percent",
            "token_burst_percent",
            "lease:",
            "lease_timeout",
            "stream",
        ] {
            assert!(all.contains(&format!("rate_limits.{field}")), "{all}");
        }
        let mut problems = vec![];
        let same = RateLimitsConfig {
            stream: "SWITCHYARD".into(),
            ..RateLimitsConfig::default()
        };
        validate(&same, "SWITCHYARD", &mut problems);
        assert_eq!(problems.len(), 1, "{problems:?}");
    }
}
