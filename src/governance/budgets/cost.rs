//! The most a request can cost, reserved at admission: its prompt tokens (counted with
//! `providers::tokens`) plus the most output it may get (`max_completion_tokens` or
//! `max_tokens`, else the configured default, times `n`), at the price of the dearest
//! deployment the route may try, fallback models included. Embeddings pay for input only.

use serde_json::Value;

use super::Estimate;
use crate::config::{Price, Pricing};
use crate::events::Usage;
use crate::providers::{ChatRequest, EmbeddingsRequest, tokens};
use crate::routing::{ModelRoute, RouteTable};

/// A request as admission prices it.
#[derive(Clone, Copy)]
pub enum Ask<'a> {
    Chat(&'a ChatRequest),
    Embeddings(&'a EmbeddingsRequest),
}

fn as_count(v: Option<&Value>) -> Option<u64> {
    v.and_then(Value::as_u64)
}

/// The most tokens `ask` can use: its prompt and its output ceiling. With
/// [`Estimate::Bound`] the prompt is bounded by its size in bytes (no tokenizer produces more
/// tokens than bytes), which is quick; with [`Estimate::Exact`] it is counted.
pub fn ceiling(ask: Ask<'_>, default_max_output: u64, estimate: Estimate) -> Usage {
    match ask {
        Ask::Chat(req) => {
            let most = as_count(req.rest.get("max_completion_tokens"))
                .or_else(|| as_count(req.rest.get("max_tokens")))
                .unwrap_or(default_max_output);
            let choices = as_count(req.rest.get("n")).unwrap_or(1).max(1);
            Usage {
                input_tokens: match estimate {
                    Estimate::Bound => prompt_bound(req),
                    Estimate::Exact => tokens::prompt_tokens(req),
                },
                output_tokens: most.saturating_mul(choices),
                ..Usage::default()
            }
        }
        Ask::Embeddings(req) => Usage {
            input_tokens: embeddings_input_tokens(req.rest.get("input"), estimate),
            ..Usage::default()
        },
    }
}

/// [`tokens::prompt_tokens`] with every counted text replaced by its length in bytes: never
/// less.
fn prompt_bound(req: &ChatRequest) -> u64 {
    let mut total = 3;
    if let Some(Value::Array(messages)) = req.rest.get("messages") {
        for m in messages {
            total += 3;
            if let Some(role) = m.get("role").and_then(Value::as_str) {
                total += role.len() as u64 + 1;
            }
            match m.get("content") {
                Some(Value::String(s)) => total += s.len() as u64,
                Some(Value::Array(parts)) => {
                    for p in parts {
                        if let Some(t) = p.get("text").and_then(Value::as_str) {
                            total += t.len() as u64 + 1;
                        }
                    }
                }
                _ => {}
            }
            if let Some(calls) = m.get("tool_calls") {
                total += calls.to_string().len() as u64;
            }
        }
    }
    if let Some(tools) = req.rest.get("tools") {
        total += tools.to_string().len() as u64;
    }
    total
}

/// Tokens of an embeddings `input`: a string, strings, token ids, or arrays of token ids.
fn embeddings_input_tokens(input: Option<&Value>, estimate: Estimate) -> u64 {
    let text = |s: &str| match estimate {
        Estimate::Bound => s.len() as u64,
        Estimate::Exact => tokens::count(s),
    };
    match input {
        Some(Value::String(s)) => text(s),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| match i {
                Value::String(s) => text(s),
                Value::Array(ids) => ids.len() as u64,
                _ => 1,
            })
            .sum(),
        _ => 0,
    }
}

/// The most `usage` can cost on `route` (nano-units): at the price of the dearest deployment
/// it may reach, its own or a fallback model's (each priced by upstream model name, else by the
/// public name asked for, as its spend is). Unpriced deployments cost nothing, as their spend is
/// recorded at 0.
pub fn max_cost(
    pricing: &Pricing,
    routes: &RouteTable,
    route: &ModelRoute,
    requested: &str,
    usage: &Usage,
) -> u64 {
    let fallbacks = route
        .fallback_models()
        .filter_map(|m| routes.get(m))
        .map(|r| &**r);
    std::iter::once(route)
        .chain(fallbacks)
        .flat_map(|r| r.deployments.iter())
        .map(|d| {
            let price: Option<&Price> =
                pricing.price(&d.model).or_else(|| pricing.price(requested));
            price.map_or(0, |p| p.cost_nanos(usage))
        })
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_output_ceiling_is_the_clients_or_the_default_times_n() {
        let chat = |body: &str| serde_json::from_str::<ChatRequest>(body).unwrap();
        let msg = r#""messages":[{"role":"user","content":"hello world"}]"#;
        let prompt = tokens::prompt_tokens(&chat(&format!(r#"{{"model":"m",{msg}}}"#)));
        assert!(prompt > 2);
        let u = ceiling(
            Ask::Chat(&chat(&format!(r#"{{"model":"m",{msg},"max_tokens":10}}"#))),
            4096,
            Estimate::Exact,
        );
        assert_eq!((u.input_tokens, u.output_tokens), (prompt, 10));
        let u = ceiling(
            Ask::Chat(&chat(&format!(
                r#"{{"model":"m",{msg},"max_tokens":10,"max_completion_tokens":7,"n":3}}"#
            ))),
            4096,
            Estimate::Bound,
        );
        assert_eq!(u.output_tokens, 21, "max_completion_tokens wins, times n");
        let u = ceiling(
            Ask::Chat(&chat(&format!(r#"{{"model":"m",{msg}}}"#))),
            512,
            Estimate::Exact,
        );
        assert_eq!(u.output_tokens, 512, "the configured default");
    }

    #[test]
    fn the_quick_bound_is_never_below_the_count() {
        let bodies = [
            r#"{"model":"m","messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Summarise the plot of Hamlet in two sentences, please."}]}"#,
            r#"{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"naïve café — 東京 🚀"},{"type":"image_url","image_url":{"url":"x"}}]}]}"#,
            r#"{"model":"m","messages":[{"role":"assistant","content":null,"tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{}"}}]}],"tools":[{"type":"function","function":{"name":"f"}}]}"#,
            r#"{"model":"m","messages":[]}"#,
        ];
        for body in bodies {
            let req: ChatRequest = serde_json::from_str(body).unwrap();
            let bound = ceiling(Ask::Chat(&req), 1, Estimate::Bound).input_tokens;
            let exact = ceiling(Ask::Chat(&req), 1, Estimate::Exact).input_tokens;
            assert!(bound >= exact, "{bound} < {exact}: {body}");
        }
        let emb: EmbeddingsRequest =
            serde_json::from_str(r#"{"model":"e","input":["hello world","東京",[1,2]]}"#).unwrap();
        assert!(
            ceiling(Ask::Embeddings(&emb), 1, Estimate::Bound).input_tokens
                >= ceiling(Ask::Embeddings(&emb), 1, Estimate::Exact).input_tokens
        );
    }

    #[test]
    fn embeddings_pay_for_their_input_only() {
        let emb = |input: &str| {
            serde_json::from_str::<EmbeddingsRequest>(&format!(
                r#"{{"model":"e","input":{input}}}"#
            ))
            .unwrap()
        };
        let exact = |input: &str| ceiling(Ask::Embeddings(&emb(input)), 1, Estimate::Exact);
        let one = exact(r#""hello world""#);
        assert_eq!((one.input_tokens, one.output_tokens), (2, 0));
        assert_eq!(exact(r#"["hello world","hello"]"#).input_tokens, 3);
        assert_eq!(exact("[[1,2,3],[4]]").input_tokens, 4);
    }
}
