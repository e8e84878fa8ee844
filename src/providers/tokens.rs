//! Counting tokens ourselves, for providers that report no usage (some streams, some
//! OpenAI-compatible servers). Uses the o200k_base encoding shipped inside tiktoken-rs: no
//! download at run time. Figures made here are marked `estimated` in the events.

use serde_json::Value;

use super::ChatRequest;
use crate::events::Usage;

/// Tokens of a piece of text.
pub fn count(text: &str) -> u64 {
    tiktoken_rs::o200k_base_singleton()
        .encode_ordinary(text)
        .len() as u64
}

/// Load the encoding now (it takes a moment) instead of on the first request that needs it.
pub fn warm_up() {
    count("warm up");
}

/// Every text in a message `content` (a string or an array of parts).
fn content_text(content: &Value, out: &mut String) {
    match content {
        Value::String(s) => out.push_str(s),
        Value::Array(parts) => {
            for p in parts {
                if let Some(t) = p.get("text").and_then(Value::as_str) {
                    out.push_str(t);
                    out.push('\n');
                }
            }
        }
        _ => {}
    }
}

/// Prompt tokens of a chat request, counted the way OpenAI's cookbook does for its chat models:
/// each message costs its texts plus 3, and the reply is primed with 3 more. Tool definitions
/// are counted as their JSON text.
pub fn prompt_tokens(req: &ChatRequest) -> u64 {
    let mut total = 3;
    let mut text = String::new();
    if let Some(Value::Array(messages)) = req.rest.get("messages") {
        for m in messages {
            total += 3;
            text.clear();
            if let Some(role) = m.get("role").and_then(Value::as_str) {
                text.push_str(role);
                text.push('\n');
            }
            if let Some(c) = m.get("content") {
                content_text(c, &mut text);
            }
            if let Some(calls) = m.get("tool_calls") {
                text.push_str(&calls.to_string());
            }
            total += count(&text);
        }
    }
    if let Some(tools) = req.rest.get("tools") {
        total += count(&tools.to_string());
    }
    total
}

/// Completion tokens of a streamed answer, from its chunk JSON lines (content and tool-call
/// argument deltas).
pub fn completion_tokens(chunk_lines: &str) -> u64 {
    let mut text = String::new();
    for line in chunk_lines.lines() {
        let Ok(chunk) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let Some(choices) = chunk.get("choices").and_then(Value::as_array) else {
            continue;
        };
        for c in choices {
            let delta = c.get("delta").or_else(|| c.get("message"));
            let Some(delta) = delta else { continue };
            if let Some(t) = delta.get("content").and_then(Value::as_str) {
                text.push_str(t);
            }
            if let Some(Value::Array(calls)) = delta.get("tool_calls") {
                for call in calls {
                    if let Some(f) = call.get("function") {
                        for k in ["name", "arguments"] {
                            if let Some(t) = f.get(k).and_then(Value::as_str) {
                                text.push_str(t);
                            }
                        }
                    }
                }
            }
        }
    }
    count(&text)
}

/// Usage counted by us for a request and the answer's chunk (or body) lines.
pub fn estimate(req: &ChatRequest, answer_lines: &str) -> Usage {
    Usage {
        input_tokens: prompt_tokens(req),
        output_tokens: completion_tokens(answer_lines),
        cached_input_tokens: 0,
        reasoning_tokens: 0,
        estimated: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_with_a_real_tokenizer() {
        // "hello world" is two tokens in o200k_base
        assert_eq!(count("hello world"), 2);
        assert_eq!(count(""), 0);
        let req: ChatRequest = serde_json::from_str(
            r#"{"model":"m","messages":[{"role":"user","content":"hello world"},{"role":"user","content":[{"type":"text","text":"hello world"}]}]}"#,
        )
        .unwrap();
        // 3 priming + 2 × (3 + "user\nhello world" tokens)
        let per = count("user\nhello world");
        assert_eq!(
            prompt_tokens(&req),
            3 + 2 * (3 + per) + count("user\nhello world\n") - per
        );
        let lines = "{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hello\"}}]}\n{\"choices\":[{\"index\":0,\"delta\":{\"content\":\" world\"}}]}\nnot json\n";
        assert_eq!(completion_tokens(lines), 2);
        let u = estimate(&req, lines);
        assert!(u.estimated);
        assert_eq!(u.output_tokens, 2);
    }
}
