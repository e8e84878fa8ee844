//! The pricing table: per model, prices per million tokens, held as integer pico-units per token
//! so cost arithmetic is exact integers.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::events::Usage;

/// `config/pricing.toml` as written.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawPricing {
    #[serde(default = "usd")]
    pub currency: String,
    /// Keyed by upstream model name (what the provider bills), e.g. `gpt-4o-mini`.
    #[serde(default)]
    pub models: BTreeMap<String, RawPrice>,
}

fn usd() -> String {
    "USD".into()
}

/// Prices in currency units per million tokens.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawPrice {
    pub input_per_mtok: f64,
    pub output_per_mtok: f64,
    /// Defaults to the input price when the provider gives no cache discount.
    pub cached_input_per_mtok: Option<f64>,
}

/// One model's prices in pico-units per token (1 unit per Mtok = 1,000,000 pico per token).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Price {
    pub input_pico: u64,
    pub output_pico: u64,
    pub cached_input_pico: u64,
}

impl Price {
    /// Cost in nano-units, rounded half up once per request. Cached input tokens are a subset of
    /// input tokens and are billed at the cached price.
    pub fn cost_nanos(&self, usage: &Usage) -> u64 {
        let cached = usage.cached_input_tokens.min(usage.input_tokens);
        let fresh = usage.input_tokens - cached;
        let pico = u128::from(fresh) * u128::from(self.input_pico)
            + u128::from(cached) * u128::from(self.cached_input_pico)
            + u128::from(usage.output_tokens) * u128::from(self.output_pico);
        u64::try_from((pico + 500) / 1000).unwrap_or(u64::MAX)
    }
}

/// Validated pricing.
#[derive(Debug, Clone, Default)]
pub struct Pricing {
    pub currency: String,
    models: BTreeMap<String, Price>,
}

impl Pricing {
    pub fn price(&self, model: &str) -> Option<&Price> {
        self.models.get(model)
    }

    /// Check and convert; every problem is reported with its path.
    pub fn validate(raw: RawPricing, problems: &mut Vec<String>) -> Pricing {
        let mut models = BTreeMap::new();
        for (name, p) in raw.models {
            let mut pico = |field: &str, v: f64| -> u64 {
                let scaled = v * 1e6;
                if !v.is_finite() || v < 0.0 || (scaled - scaled.round()).abs() > 1e-3 {
                    problems.push(format!(
                        "pricing.models.{name}.{field}: must be a non-negative price with at most 6 decimals, got {v}"
                    ));
                    return 0;
                }
                scaled.round() as u64
            };
            let input_pico = pico("input_per_mtok", p.input_per_mtok);
            let output_pico = pico("output_per_mtok", p.output_per_mtok);
            let cached_input_pico = match p.cached_input_per_mtok {
                Some(v) => pico("cached_input_per_mtok", v),
                None => input_pico,
            };
            models.insert(
                name,
                Price {
                    input_pico,
                    output_pico,
                    cached_input_pico,
                },
            );
        }
        Pricing {
            currency: raw.currency,
            models,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_integer_cost() {
        let mut problems = vec![];
        let raw: RawPricing = toml::from_str(
            r#"
            [models.cheap]
            input_per_mtok = 0.15
            output_per_mtok = 0.6
            cached_input_per_mtok = 0.075
            "#,
        )
        .unwrap();
        let p = Pricing::validate(raw, &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        let price = p.price("cheap").unwrap();
        assert_eq!(price.input_pico, 150_000);
        let usage = Usage {
            input_tokens: 1000,
            output_tokens: 100,
            cached_input_tokens: 200,
            ..Usage::default()
        };
        // 800 * 0.15e-6 + 200 * 0.075e-6 + 100 * 0.6e-6 dollars = 195e-6 dollars = 195_000 nanos
        assert_eq!(price.cost_nanos(&usage), 195_000);
        // a 10-token request at $0.15/Mtok is 1.5 micro-dollars: exact in nano-dollars
        let tiny = Usage {
            input_tokens: 10,
            ..Usage::default()
        };
        assert_eq!(price.cost_nanos(&tiny), 1500);
        // below a nano-dollar, round half up once per request: 1 token at $0.0375/Mtok = 37.5 n$
        let raw: RawPricing =
            toml::from_str("[models.f]\ninput_per_mtok = 0.0375\noutput_per_mtok = 0.0\n").unwrap();
        let p = Pricing::validate(raw, &mut problems);
        let one = Usage {
            input_tokens: 1,
            ..Usage::default()
        };
        assert_eq!(p.price("f").unwrap().cost_nanos(&one), 38);
    }

    #[test]
    fn rejects_negative_and_overprecise_prices() {
        let raw: RawPricing =
            toml::from_str("[models.x]\ninput_per_mtok = -1.0\noutput_per_mtok = 0.0000001\n")
                .unwrap();
        let mut problems = vec![];
        Pricing::validate(raw, &mut problems);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].starts_with("pricing.models.x.input_per_mtok"));
    }
}
