//! `[budgets]`: how budgets are enforced (the budgets themselves are set per key, user, team or
//! project through the admin API). Parsed here, checked by `validate`; `crate::governance`
//! (admission) and `crate::ledger` (leases, alerts) act on them.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// What admission does when it needs a new lease and the ledger (NATS) cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LedgerUnavailable {
    /// Refuse the request (503 `budget_unavailable`): the cap holds, traffic past what this
    /// instance already holds stops until NATS is back.
    #[default]
    Refuse,
    /// Admit it on credit: traffic goes on, and spend admitted this way may pass the cap by
    /// what is admitted until NATS is back (the next lease takes the overdraft from the pool
    /// when it can).
    Allow,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct BudgetsConfig {
    /// Output tokens reserved for a chat request that sets neither `max_tokens` nor
    /// `max_completion_tokens` (the request's cost is reserved at admission and settled at
    /// completion).
    pub default_max_output_tokens: u64,
    /// Each lease takes this share (percent) of what is left in a budget window's pool — at
    /// least what the waiting requests need. Smaller leases strand less money in an idle or
    /// crashed instance; larger ones ask NATS less often.
    pub lease_percent: u8,
    /// Longest a request waits for a lease before it is refused (503 `budget_unavailable`).
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String")]
    pub lease_timeout: Duration,
    /// Unused leased money of a window without admissions for this long goes back to the pool,
    /// where other instances can lease it.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String")]
    pub idle_return: Duration,
    /// What to do when a lease is needed and NATS cannot be reached.
    pub when_ledger_unavailable: LedgerUnavailable,
    /// POSTed a JSON body each time a budget crosses one of its `alert_at_percent` thresholds
    /// (once per threshold and window, by one instance).
    pub webhook_url: Option<String>,
    /// Attempts per webhook call (a failure is a connection error, a timeout or a non-2xx).
    pub webhook_attempts: u32,
    /// Wait before the first retry; each later one doubles it.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String")]
    pub webhook_backoff: Duration,
    /// Time limit of one webhook call.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String")]
    pub webhook_timeout: Duration,
}

impl Default for BudgetsConfig {
    fn default() -> Self {
        Self {
            default_max_output_tokens: 4096,
            lease_percent: 10,
            lease_timeout: Duration::from_secs(2),
            idle_return: Duration::from_secs(60),
            when_ledger_unavailable: LedgerUnavailable::Refuse,
            webhook_url: None,
            webhook_attempts: 5,
            webhook_backoff: Duration::from_millis(500),
            webhook_timeout: Duration::from_secs(5),
        }
    }
}

/// Every problem with `[budgets]`.
pub fn validate(b: &BudgetsConfig, problems: &mut Vec<String>) {
    if b.default_max_output_tokens == 0 {
        problems.push("budgets.default_max_output_tokens: must be at least 1".into());
    }
    if !(1..=100).contains(&b.lease_percent) {
        problems.push(format!(
            "budgets.lease_percent: must be from 1 to 100, got {}",
            b.lease_percent
        ));
    }
    for (name, d) in [
        ("lease_timeout", b.lease_timeout),
        ("idle_return", b.idle_return),
        ("webhook_timeout", b.webhook_timeout),
    ] {
        if d.is_zero() {
            problems.push(format!("budgets.{name}: must be greater than 0"));
        }
    }
    if b.webhook_attempts == 0 {
        problems.push("budgets.webhook_attempts: must be at least 1".into());
    }
    if let Some(url) = &b.webhook_url {
        match reqwest::Url::parse(url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => {}
            Ok(u) => problems.push(format!(
                "budgets.webhook_url: must be an http or https URL, got scheme {:?}",
                u.scheme()
            )),
            Err(e) => problems.push(format!("budgets.webhook_url: {url:?}: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_are_named() {
        let mut problems = vec![];
        validate(&BudgetsConfig::default(), &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        let bad: BudgetsConfig = toml::from_str(
            "default_max_output_tokens = 0\nlease_percent = 0\nlease_timeout = \"0s\"\nwebhook_url = \"ftp://x\"\nwebhook_attempts = 0\nwhen_ledger_unavailable = \"allow\"",
        )
        .unwrap();
        assert_eq!(bad.when_ledger_unavailable, LedgerUnavailable::Allow);
        validate(&bad, &mut problems);
        let all = problems.join("\n");
        for field in [
            "default_max_output_tokens",
            "lease_percent",
            "lease_timeout",
            "webhook_url",
            "webhook_attempts",
        ] {
            assert!(all.contains(&format!("budgets.{field}")), "{all}");
        }
    }
}
