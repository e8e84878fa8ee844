//! Routing and reliability settings: the `[routing]` table (retries, retry budget, circuit
//! breakers, content rules) and the per-model choices (strategy, weights, fallbacks, hedging).
//! Parsed here, checked by `validate`; the router in `crate::routing` is what acts on them.

use schemars::JsonSchema;

use super::ModelSpec;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// `[routing]`: defaults for every model, and the content rules.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RoutingConfig {
    pub retry: RetryConfig,
    pub retry_budget: RetryBudgetConfig,
    pub breaker: BreakerConfig,
    pub health: HealthConfig,
    /// Content rules, evaluated in order; the first that matches picks the model.
    pub rules: Vec<RawRule>,
}

/// Error classes the router can act on, as recorded in events (`ErrorInfo.class`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// No answer in time (connect, first token, idle or total).
    Timeout,
    /// The connection failed or was refused.
    Connect,
    /// 429 from the provider.
    RateLimited,
    /// 5xx from the provider.
    #[serde(rename = "upstream_5xx")]
    Upstream5xx,
    /// The stream broke or was malformed before anything reached the client.
    Stream,
    /// Our provider credentials were refused (401/403).
    UpstreamAuth,
    /// The prompt is longer than the model's context window.
    ContextLengthExceeded,
    /// The provider refused the content (safety / content policy).
    ContentPolicy,
}

/// Retries of one deployment before falling back to the next.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// Extra attempts on the same deployment (0 = only fall back).
    pub max_retries: u32,
    /// First backoff; each retry doubles it, with full jitter.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String")]
    pub base_delay: Duration,
    /// Largest backoff.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String")]
    pub max_delay: Duration,
    /// A `Retry-After` longer than this is not waited for: the router falls back instead.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String")]
    pub max_retry_after: Duration,
    /// Classes retried on the same deployment. Client errors (4xx caused by the request) are
    /// never retried.
    pub on: Vec<ErrorClass>,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_retries: 1,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(2),
            max_retry_after: Duration::from_secs(5),
            on: vec![
                ErrorClass::Timeout,
                ErrorClass::Connect,
                ErrorClass::RateLimited,
                ErrorClass::Upstream5xx,
            ],
        }
    }
}

/// Retries allowed per deployment, as a share of its live traffic, so an outage cannot
/// multiply load (retry storms).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RetryBudgetConfig {
    /// Retries may add at most this fraction of first attempts (0.2 = 20 %).
    pub ratio: f64,
    /// Retries always allowed per second, so low traffic can still retry.
    pub min_per_second: f64,
}

impl Default for RetryBudgetConfig {
    fn default() -> Self {
        Self {
            ratio: 0.2,
            min_per_second: 10.0,
        }
    }
}

/// Circuit breaker of every deployment.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerConfig {
    pub enabled: bool,
    /// Opens after this many failures in a row.
    pub consecutive_failures: u32,
    /// …or when this fraction of the window's requests failed…
    pub failure_ratio: f64,
    /// …over at least this many requests in the window.
    pub min_requests: u32,
    /// The sliding window for the ratio.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String")]
    pub window: Duration,
    /// How long it stays open before letting probes through (half-open).
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String")]
    pub open_for: Duration,
    /// Probes allowed at once while half-open; one success closes it, one failure reopens it.
    pub half_open_probes: u32,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            consecutive_failures: 5,
            failure_ratio: 0.5,
            min_requests: 20,
            window: Duration::from_secs(30),
            open_for: Duration::from_secs(5),
            half_open_probes: 1,
        }
    }
}

/// Live latency and success tracking used by `strategy = "latency"` and hedging.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct HealthConfig {
    /// Half-life of the decaying averages: how fast old observations stop counting.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String")]
    pub half_life: Duration,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            half_life: Duration::from_secs(5),
        }
    }
}

/// How a model picks among its deployments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// In the order written; later deployments are fallbacks.
    #[default]
    Ordered,
    /// Spread by `weight` (smooth weighted round robin); the others are fallbacks.
    Weighted,
    /// Power of two choices over live latency weighted by error rate.
    Latency,
}

/// Send a second attempt to another deployment when the first is slow to start answering.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawHedge {
    /// Wait this long for a first token; default: the deployment's live p95 time to first token.
    #[serde(default, with = "humantime_serde::option")]
    #[schemars(with = "Option<String>")]
    pub after: Option<Duration>,
    /// Never hedge sooner than this (guards a tiny p95 on a warm deployment).
    #[serde(default = "default_hedge_floor", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub min_delay: Duration,
}

fn default_hedge_floor() -> Duration {
    Duration::from_millis(50)
}

/// A fallback by error class: when the model's chain ends on this class, try `model`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawClassFallback {
    pub class: ErrorClass,
    pub model: String,
}

/// A content rule: every condition given must hold; the first matching rule picks `target`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    /// Recorded in RequestAccepted when the rule routes a request.
    pub name: String,
    /// The public model that serves matching requests.
    pub target: String,
    #[serde(default)]
    pub when: RawCondition,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RawCondition {
    /// The requested model is one of these (may name a virtual model no `[[models]]` defines,
    /// e.g. `auto`).
    pub models: Vec<String>,
    /// Request headers that must be present with exactly these values (names case-insensitive).
    pub headers: BTreeMap<String, String>,
    /// String fields of the request's `metadata` object that must have these values.
    pub metadata: BTreeMap<String, String>,
    /// Virtual key labels.
    pub user: Option<String>,
    pub team: Option<String>,
    pub project: Option<String>,
    /// Estimated prompt tokens at least / at most.
    pub min_prompt_tokens: Option<u64>,
    pub max_prompt_tokens: Option<u64>,
    /// The request offers tools (or not).
    pub has_tools: Option<bool>,
    /// The request holds an image (or not).
    pub has_images: Option<bool>,
    /// The last user message contains one of these words (case-insensitive).
    pub keywords: Vec<String>,
    /// The last user message matches this regular expression.
    pub regex: Option<String>,
}

/// Cross-references and ranges: fallbacks and rule targets name defined models, no model falls
/// back to itself, rates are fractions, regexes compile.
pub(super) fn validate(cfg: &RoutingConfig, models: &[ModelSpec], problems: &mut Vec<String>) {
    let defined = |name: &str| models.iter().any(|m| m.name == name);
    for (i, m) in models.iter().enumerate() {
        let path = format!("models[{i}]");
        let targets = m.fallbacks.iter().map(|f| ("fallbacks", f));
        let by_class = m.fallback_on.iter().map(|(_, f)| ("fallback_on", f));
        for (field, target) in targets.chain(by_class) {
            if target == &m.name {
                problems.push(format!("{path}.{field}: {target:?} falls back to itself"));
            } else if !defined(target) {
                problems.push(format!("{path}.{field}: no model named {target:?}"));
            }
        }
    }
    let r = &cfg.retry;
    if r.base_delay > r.max_delay {
        problems.push("routing.retry.base_delay: must not exceed max_delay".into());
    }
    let b = &cfg.retry_budget;
    let fraction_ok = |x: f64| x.is_finite() && x >= 0.0;
    if !fraction_ok(b.ratio) || !fraction_ok(b.min_per_second) {
        problems.push("routing.retry_budget: ratio and min_per_second must be >= 0".into());
    }
    let br = &cfg.breaker;
    if !(0.0..=1.0).contains(&br.failure_ratio) || br.failure_ratio == 0.0 {
        problems.push("routing.breaker.failure_ratio: must be in (0, 1]".into());
    }
    if br.consecutive_failures == 0 || br.half_open_probes == 0 {
        problems
            .push("routing.breaker: consecutive_failures and half_open_probes must be >= 1".into());
    }
    if br.window.is_zero() || br.open_for.is_zero() {
        problems.push("routing.breaker: window and open_for must be > 0".into());
    }
    if cfg.health.half_life.is_zero() {
        problems.push("routing.health.half_life: must be > 0".into());
    }
    for (i, rule) in cfg.rules.iter().enumerate() {
        let path = format!("routing.rules[{i}]");
        if rule.name.is_empty() {
            problems.push(format!("{path}.name: must not be empty"));
        }
        if !defined(&rule.target) {
            problems.push(format!("{path}.target: no model named {:?}", rule.target));
        }
        for name in rule.when.headers.keys() {
            if axum::http::HeaderName::try_from(name.to_ascii_lowercase()).is_err() {
                problems.push(format!(
                    "{path}.when.headers: {name:?} is not a header name"
                ));
            }
        }
        if let Some(re) = &rule.when.regex
            && let Err(e) = regex::Regex::new(re)
        {
            problems.push(format!("{path}.when.regex: {e}"));
        }
        if let (Some(lo), Some(hi)) = (rule.when.min_prompt_tokens, rule.when.max_prompt_tokens)
            && lo > hi
        {
            problems.push(format!(
                "{path}.when: min_prompt_tokens exceeds max_prompt_tokens"
            ));
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use crate::config::{ConfigError, RawConfig, Secret, validate};

    #[test]
    fn cross_references_and_ranges_are_checked() {
        let raw: RawConfig = toml::from_str(
            r#"
            [providers.p]
            base_url = "http://127.0.0.1:1/v1"
            [[models]]
            name = "a"
            deployments = [{ provider = "p", model = "x" }]
            fallbacks = ["a", "nope"]
            fallback_on = [{ class = "context_length_exceeded", model = "missing" }]
            [routing.breaker]
            failure_ratio = 1.5
            [routing.retry]
            base_delay = "5s"
            max_delay = "1s"
            [[routing.rules]]
            name = "r"
            target = "ghost"
            when = { regex = "(unclosed", headers = { "bad header" = "x" }, min_prompt_tokens = 9, max_prompt_tokens = 1 }
            "#,
        )
        .unwrap();
        let Err(ConfigError::Invalid(problems)) = validate(raw, None, |_| Ok(Secret::new("k")))
        else {
            panic!("expected problems")
        };
        let all = problems.join("\n");
        for needle in [
            "models[0].fallbacks: \"a\" falls back to itself",
            "models[0].fallbacks: no model named \"nope\"",
            "models[0].fallback_on: no model named \"missing\"",
            "routing.breaker.failure_ratio",
            "routing.retry.base_delay",
            "routing.rules[0].target: no model named \"ghost\"",
            "routing.rules[0].when.regex",
            "routing.rules[0].when.headers",
            "routing.rules[0].when: min_prompt_tokens exceeds max_prompt_tokens",
        ] {
            assert!(all.contains(needle), "missing {needle:?} in\n{all}");
        }
    }
}
