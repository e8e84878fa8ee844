//! The mock's runtime knobs ([`MockConfig`]) and the dice that turn its rates into one
//! [`Plan`] per request. Owns no I/O and no HTTP: the handlers decide what a plan means on
//! the wire.

use serde::{Deserialize, Serialize};

/// What the mock does to requests: delays and the fault rates. Swappable at run time through
/// `PUT /_mock/config`; missing fields take their defaults, unknown fields are refused so a
/// typo cannot silently leave a fault off.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MockConfig {
    /// Delay before a non-stream answer, or before the first chunk of a stream.
    pub latency_ms: u64,
    /// Delay between stream chunks.
    pub chunk_delay_ms: u64,
    /// Status of injected failures (400..=599).
    pub fail_status: u16,
    /// Fraction of requests answered with `fail_status` and an OpenAI error body.
    pub fail_rate: f64,
    /// If set, injected failures carry `Retry-After: N`.
    pub retry_after_secs: Option<u64>,
    /// Fraction of requests that hang `hang_ms` before answering normally.
    pub timeout_rate: f64,
    /// How long a "timeout" request hangs.
    pub hang_ms: u64,
    /// Fraction of streams whose body errors after about half the chunks, so the connection
    /// is aborted without `[DONE]`.
    pub cut_rate: f64,
    /// Fraction of streams where one middle chunk is replaced by `data: {not json`.
    pub malformed_rate: f64,
    /// Words in a generated reply.
    pub stream_words: usize,
    /// OpenAI chat streams: cut each word into pieces of at most this many characters, as
    /// models stream sub-word tokens (0: one chunk per word).
    pub token_chars: usize,
    /// Answer without usage, as some OpenAI-compatible servers do.
    pub omit_usage: bool,
    /// OpenAI chat: refuse prompts longer than this many (mock-counted) tokens with OpenAI's
    /// 400 `context_length_exceeded`, as a model with a small context window does.
    pub context_window: Option<u64>,
    /// Gemini: answer without `responseId`, as Vertex AI and older Gemini versions do.
    pub omit_response_id: bool,
    /// Upstream keys accepted (empty: any, or none). A request carrying none of them (as
    /// `Authorization: Bearer`, `api-key`, `x-api-key` or `x-goog-api-key`) is answered 401, as
    /// a provider answers a revoked key; SigV4-signed Bedrock requests are left to their own
    /// check. Lets a test see which key a gateway sends, and a rotation take effect.
    pub api_keys: Vec<String>,
}

/// Defaults shared by [`MockConfig::default`] and the CLI flags, so the two cannot drift.
pub(crate) const DEFAULT_FAIL_STATUS: u16 = 500;
pub(crate) const DEFAULT_HANG_MS: u64 = 30_000;
pub(crate) const DEFAULT_STREAM_WORDS: usize = 8;

impl Default for MockConfig {
    fn default() -> Self {
        Self {
            latency_ms: 0,
            chunk_delay_ms: 0,
            fail_status: DEFAULT_FAIL_STATUS,
            fail_rate: 0.0,
            retry_after_secs: None,
            timeout_rate: 0.0,
            hang_ms: DEFAULT_HANG_MS,
            cut_rate: 0.0,
            malformed_rate: 0.0,
            stream_words: DEFAULT_STREAM_WORDS,
            token_chars: 0,
            omit_usage: false,
            context_window: None,
            omit_response_id: false,
            api_keys: Vec::new(),
        }
    }
}

/// The faults chosen for one request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Plan {
    /// Answer `fail_status` instead of a completion.
    pub fail: bool,
    /// Sleep `hang_ms` before answering.
    pub hang: bool,
    /// Abort the stream mid-way (streams only).
    pub cut: bool,
    /// Replace one middle chunk with invalid JSON (streams only).
    pub malformed: bool,
}

impl MockConfig {
    /// Every problem with this config, joined; used by the control endpoint so a bad config
    /// is refused instead of half-applied.
    pub fn validate(&self) -> Result<(), String> {
        let mut problems = Vec::new();
        if !(400..=599).contains(&self.fail_status) {
            problems.push(format!(
                "fail_status: {} is not in 400..=599",
                self.fail_status
            ));
        }
        for (name, rate) in [
            ("fail_rate", self.fail_rate),
            ("timeout_rate", self.timeout_rate),
            ("cut_rate", self.cut_rate),
            ("malformed_rate", self.malformed_rate),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                problems.push(format!("{name}: {rate} is not in 0.0..=1.0"));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }

    /// Rolls the dice for one request. Failure and hang share one roll, so `fail_rate` and
    /// `timeout_rate` are disjoint fractions (if they sum past 1.0, failure wins the overlap);
    /// the stream faults roll independently.
    /// With every rate at zero (the benchmark baseline) no random number is drawn.
    pub(crate) fn roll(&self, stream: bool) -> Plan {
        let mut plan = Plan::default();
        if self.fail_rate > 0.0 || self.timeout_rate > 0.0 {
            let u: f64 = rand::random();
            plan.fail = u < self.fail_rate;
            plan.hang = !plan.fail && u < self.fail_rate + self.timeout_rate;
        }
        if stream {
            plan.cut = self.cut_rate > 0.0 && rand::random::<f64>() < self.cut_rate;
            plan.malformed =
                self.malformed_rate > 0.0 && rand::random::<f64>() < self.malformed_rate;
        }
        plan
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn certain_rates_always_fire_and_zero_rates_never() {
        let cfg = MockConfig {
            fail_rate: 1.0,
            cut_rate: 1.0,
            ..MockConfig::default()
        };
        let plan = cfg.roll(true);
        assert!(plan.fail && plan.cut && !plan.hang && !plan.malformed);
        assert_eq!(MockConfig::default().roll(true), Plan::default());
        let hang = MockConfig {
            timeout_rate: 1.0,
            ..MockConfig::default()
        };
        assert!(hang.roll(false).hang);
        assert!(
            !MockConfig {
                cut_rate: 1.0,
                ..MockConfig::default()
            }
            .roll(false)
            .cut
        );
    }

    #[test]
    fn validate_lists_every_problem() {
        let cfg = MockConfig {
            fail_status: 200,
            fail_rate: 1.5,
            ..MockConfig::default()
        };
        let err = cfg.validate().unwrap_err();
        assert!(
            err.contains("fail_status") && err.contains("fail_rate"),
            "{err}"
        );
        assert!(MockConfig::default().validate().is_ok());
    }

    #[test]
    fn missing_fields_default_and_unknown_fields_are_refused() {
        let cfg: MockConfig = serde_json::from_str(r#"{"fail_rate":0.5}"#).unwrap();
        assert_eq!(
            cfg,
            MockConfig {
                fail_rate: 0.5,
                ..MockConfig::default()
            }
        );
        assert!(serde_json::from_str::<MockConfig>(r#"{"fail_rat":0.5}"#).is_err());
    }
}
