//! Checks of the request fields the gateway and its adapters rely on, run before a request is
//! accepted, so a refused request reaches no provider and records no RequestAccepted. Errors are
//! OpenAI's: 400 `invalid_request_error` with `param` naming the field path as OpenAI does
//! (`messages[2].role`) and a code saying what is wrong: `missing_required_parameter`,
//! `invalid_type` (wrong JSON type) or `invalid_value` (right type, refused value). Only fields
//! the gateway or a converting adapter reads are checked; every other field passes through
//! verbatim for the provider to judge.
//!
//! The typed fields (`model`, `stream`, `stream_options`) are checked by serde while parsing and
//! the rest on the parsed `rest` map, so a valid request is parsed once. Only when serde refuses
//! a body that is valid JSON does [`parse_error`] read it again, to name the field at fault.

use serde_json::{Map, Value};
use std::borrow::Cow;

use super::ApiError;
use super::error::echo;
use crate::providers::{ChatRequest, EmbeddingsRequest};

/// Upper bound of `max_tokens` and `max_completion_tokens`: above every model's output limit
/// today, and far inside what budget and token arithmetic handle.
pub const MAX_OUTPUT_TOKENS: u64 = 1_000_000;
/// OpenAI's bound on `n`.
pub const MAX_N: u64 = 128;

const ROLES: [&str; 6] = [
    "system",
    "developer",
    "user",
    "assistant",
    "tool",
    "function",
];

type Check = Result<(), ApiError>;

/// How a JSON value's type is named in messages, as OpenAI names it.
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_u64() || n.is_i64() => "an integer",
        Value::Number(_) => "a decimal",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A field that may be absent: `None` when absent or null (OpenAI treats both alike).
fn present<'a>(body: &'a Map<String, Value>, field: &str) -> Option<&'a Value> {
    body.get(field).filter(|v| !v.is_null())
}

/// A chat completions request, after serde accepted its typed fields.
pub fn chat(req: &ChatRequest) -> Check {
    model(&req.model)?;
    messages(req.rest.get("messages"), false)?;
    integer(&req.rest, "n", 1, MAX_N)?;
    integer(&req.rest, "max_tokens", 1, MAX_OUTPUT_TOKENS)?;
    integer(&req.rest, "max_completion_tokens", 1, MAX_OUTPUT_TOKENS)?;
    number(&req.rest, "temperature", 0.0, 2.0)?;
    number(&req.rest, "top_p", 0.0, 1.0)?;
    tools(&req.rest)
}

/// An embeddings request: a model and a non-empty `input` of one of OpenAI's four shapes.
pub fn embeddings(req: &EmbeddingsRequest) -> Check {
    model(&req.model)?;
    input(&req.rest)?;
    integer(&req.rest, "dimensions", 1, u64::from(u32::MAX))
}

/// Why serde refused a body: the field at fault when the body is valid JSON with a field of the
/// wrong type or a required one missing, else `invalid_json`. Runs on the error path only.
pub fn parse_error(e: &serde_json::Error, bytes: &[u8]) -> ApiError {
    if e.classify() == serde_json::error::Category::Data {
        match serde_json::from_slice::<Value>(bytes) {
            Ok(Value::Object(body)) => {
                if let Err(found) = shape(&body) {
                    return found;
                }
            }
            Ok(other) => return ApiError::wrong_type("body", "an object", kind(&other)),
            Err(_) => {}
        }
    }
    ApiError::invalid_json(e)
}

/// Types only (no ranges) of the fields any surface's request type parses; the values are
/// judged after parsing by the surface's own checks.
fn shape(body: &Map<String, Value>) -> Check {
    match body.get("model") {
        None | Some(Value::Null) => return Err(ApiError::missing_param("model")),
        Some(Value::String(_)) => {}
        Some(other) => return Err(ApiError::wrong_type("model", "a string", kind(other))),
    }
    typed(body, "stream", Value::is_boolean, "a boolean")?;
    typed(body, "stream_options", Value::is_object, "an object")?;
    if let Some(Value::Object(o)) = body.get("stream_options") {
        let field = "stream_options.include_usage";
        if let Some(v) = present(o, "include_usage").filter(|v| !v.is_boolean()) {
            return Err(ApiError::wrong_type(field, "a boolean", kind(v)));
        }
    }
    if body.contains_key("messages") {
        messages(body.get("messages"), true)?;
    }
    for field in ["n", "max_tokens", "max_completion_tokens"] {
        typed(body, field, is_integer, "an integer")?;
    }
    for field in ["temperature", "top_p"] {
        typed(body, field, Value::is_number, "a number")?;
    }
    typed(body, "tools", Value::is_array, "an array")?;
    if body.contains_key("input") {
        input(body)?;
    }
    Ok(())
}

fn is_integer(v: &Value) -> bool {
    v.is_u64() || v.is_i64()
}

/// An optional field, when present, is of the type `is` accepts.
fn typed(
    body: &Map<String, Value>,
    field: &'static str,
    is: fn(&Value) -> bool,
    expected: &str,
) -> Check {
    match present(body, field) {
        Some(v) if !is(v) => Err(ApiError::wrong_type(field, expected, kind(v))),
        _ => Ok(()),
    }
}

fn model(m: &str) -> Check {
    if m.is_empty() {
        return Err(ApiError::bad_param(
            "model",
            "Invalid 'model': empty string. Expected the name of a model.",
        ));
    }
    Ok(())
}

/// An optional integer field within `lo..=hi`.
fn integer(body: &Map<String, Value>, field: &'static str, lo: u64, hi: u64) -> Check {
    let Some(v) = present(body, field) else {
        return Ok(());
    };
    match (v.as_u64(), v.as_i64()) {
        (Some(n), _) if (lo..=hi).contains(&n) => Ok(()),
        (Some(n), _) if n > hi => Err(ApiError::bad_param(
            field,
            format!(
                "Invalid '{field}': integer above maximum value. Expected a value <= {hi}, but got {n} instead."
            ),
        )),
        (Some(n), _) => Err(below(field, lo, n)),
        (None, Some(n)) => Err(below(field, lo, n)),
        (None, None) => Err(ApiError::wrong_type(field, "an integer", kind(v))),
    }
}

fn below(field: &'static str, lo: u64, n: impl std::fmt::Display) -> ApiError {
    ApiError::bad_param(
        field,
        format!(
            "Invalid '{field}': integer below minimum value. Expected a value >= {lo}, but got {n} instead."
        ),
    )
}

/// An optional number field within `lo..=hi`.
fn number(body: &Map<String, Value>, field: &'static str, lo: f64, hi: f64) -> Check {
    let Some(v) = present(body, field) else {
        return Ok(());
    };
    match v.as_f64() {
        Some(x) if (lo..=hi).contains(&x) => Ok(()),
        Some(x) => Err(ApiError::bad_param(
            field,
            format!(
                "Invalid '{field}': expected a value between {lo} and {hi}, but got {x} instead."
            ),
        )),
        None => Err(ApiError::wrong_type(field, "a number", kind(v))),
    }
}

/// `messages`: a non-empty array of objects, each with a known `role` and a `content` that is a
/// string, an array of typed parts, or absent where OpenAI allows it. `types_only` skips the
/// checks of values (roles, emptiness), for [`shape`], which any surface's body goes through.
fn messages(v: Option<&Value>, types_only: bool) -> Check {
    let list = match v {
        None | Some(Value::Null) => return Err(ApiError::missing_param("messages")),
        Some(Value::Array(list)) => list,
        Some(other) => return Err(ApiError::wrong_type("messages", "an array", kind(other))),
    };
    if list.is_empty() && !types_only {
        return Err(ApiError::bad_param(
            "messages",
            "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.",
        ));
    }
    for (i, m) in list.iter().enumerate() {
        message(i, m, types_only)?;
    }
    Ok(())
}

fn message(i: usize, m: &Value, types_only: bool) -> Check {
    let at = |field: &str| -> Cow<'static, str> { Cow::Owned(format!("messages[{i}]{field}")) };
    let Value::Object(m) = m else {
        return Err(ApiError::wrong_type(at(""), "an object", kind(m)));
    };
    let role = match m.get("role") {
        None | Some(Value::Null) => return Err(ApiError::missing_param(at(".role"))),
        Some(Value::String(role)) => role.as_str(),
        Some(other) => return Err(ApiError::wrong_type(at(".role"), "a string", kind(other))),
    };
    if !types_only && !ROLES.contains(&role) {
        return Err(ApiError::bad_param(
            at(".role"),
            format!(
                "Invalid value: '{}'. Supported values are: 'system', 'developer', 'user', 'assistant', 'tool' and 'function'.",
                echo(role)
            ),
        ));
    }
    match m.get("content") {
        None | Some(Value::Null) => {
            // An assistant turn may carry only tool calls (or a legacy function call, or an
            // audio reference); a legacy function result may be null.
            let optional = types_only
                || match role {
                    "assistant" => ["tool_calls", "function_call", "audio"]
                        .iter()
                        .any(|k| present(m, k).is_some()),
                    "function" => true,
                    _ => false,
                };
            if !optional {
                return Err(ApiError::missing_param(at(".content")));
            }
        }
        Some(Value::String(_)) => {}
        Some(Value::Array(parts)) => {
            for (j, p) in parts.iter().enumerate() {
                let Value::Object(p) = p else {
                    return Err(ApiError::wrong_type(
                        at(&format!(".content[{j}]")),
                        "an object",
                        kind(p),
                    ));
                };
                match p.get("type") {
                    Some(Value::String(_)) => {}
                    None | Some(Value::Null) => {
                        return Err(ApiError::missing_param(at(&format!(".content[{j}].type"))));
                    }
                    Some(other) => {
                        return Err(ApiError::wrong_type(
                            at(&format!(".content[{j}].type")),
                            "a string",
                            kind(other),
                        ));
                    }
                }
            }
        }
        Some(other) => {
            return Err(ApiError::wrong_type(
                at(".content"),
                "a string or an array of content parts",
                kind(other),
            ));
        }
    }
    Ok(())
}

/// `tools`: an array of objects with a `type`; a function tool names its function (the
/// converting adapters read the name, and a nameless tool would fail there, after acceptance).
fn tools(body: &Map<String, Value>) -> Check {
    let list = match present(body, "tools") {
        None => return Ok(()),
        Some(Value::Array(list)) => list,
        Some(other) => return Err(ApiError::wrong_type("tools", "an array", kind(other))),
    };
    for (i, t) in list.iter().enumerate() {
        let at = |field: &str| -> Cow<'static, str> { Cow::Owned(format!("tools[{i}]{field}")) };
        let Value::Object(t) = t else {
            return Err(ApiError::wrong_type(at(""), "an object", kind(t)));
        };
        match t.get("type") {
            Some(Value::String(k)) if k == "function" => {}
            Some(Value::String(_)) => continue,
            None | Some(Value::Null) => return Err(ApiError::missing_param(at(".type"))),
            Some(other) => return Err(ApiError::wrong_type(at(".type"), "a string", kind(other))),
        }
        let f = match t.get("function") {
            Some(Value::Object(f)) => f,
            None | Some(Value::Null) => return Err(ApiError::missing_param(at(".function"))),
            Some(other) => {
                return Err(ApiError::wrong_type(
                    at(".function"),
                    "an object",
                    kind(other),
                ));
            }
        };
        match f.get("name") {
            Some(Value::String(n)) if !n.is_empty() => {}
            Some(Value::String(_)) => {
                return Err(ApiError::bad_param(
                    at(".function.name"),
                    "Invalid 'function.name': empty string. Expected a function name.",
                ));
            }
            None | Some(Value::Null) => {
                return Err(ApiError::missing_param(at(".function.name")));
            }
            Some(other) => {
                return Err(ApiError::wrong_type(
                    at(".function.name"),
                    "a string",
                    kind(other),
                ));
            }
        }
    }
    Ok(())
}

/// Embeddings `input`: a non-empty string, or a non-empty array of non-empty strings, of token
/// ids, or of non-empty arrays of token ids.
fn input(body: &Map<String, Value>) -> Check {
    const SHAPES: &str =
        "a string, an array of strings, an array of token ids or an array of token id arrays";
    let items = match present(body, "input") {
        None => return Err(ApiError::missing_param("input")),
        Some(Value::String(s)) if s.is_empty() => {
            return Err(ApiError::bad_param(
                "input",
                "Invalid 'input': empty string. Expected a non-empty string.",
            ));
        }
        Some(Value::String(_)) => return Ok(()),
        Some(Value::Array(items)) => items,
        Some(other) => return Err(ApiError::wrong_type("input", SHAPES, kind(other))),
    };
    let Some(first) = items.first() else {
        return Err(ApiError::bad_param(
            "input",
            "Invalid 'input': empty array. Expected an array with minimum length 1, but got an empty array instead.",
        ));
    };
    let token = |v: &Value| v.as_u64().is_some();
    for (i, item) in items.iter().enumerate() {
        let at = || -> Cow<'static, str> { Cow::Owned(format!("input[{i}]")) };
        let fits = match (first, item) {
            (Value::String(_), Value::String(s)) => {
                if s.is_empty() {
                    return Err(ApiError::bad_param(
                        at(),
                        format!("Invalid 'input[{i}]': empty string. Expected a non-empty string."),
                    ));
                }
                true
            }
            (Value::Number(_), v) => token(v),
            (Value::Array(_), Value::Array(ids)) => {
                if ids.is_empty() {
                    return Err(ApiError::bad_param(
                        at(),
                        format!(
                            "Invalid 'input[{i}]': empty array. Expected at least one token id."
                        ),
                    ));
                }
                ids.iter().all(token)
            }
            _ => false,
        };
        if !fits {
            let expected = match first {
                Value::String(_) => "a string, like the first item",
                Value::Number(_) => "a token id (a non-negative integer), like the first item",
                Value::Array(_) => "an array of token ids, like the first item",
                _ => SHAPES,
            };
            return Err(ApiError::wrong_type(at(), expected, kind(item)));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn chat_of(v: Value) -> Check {
        let req: ChatRequest = serde_json::from_value(v).unwrap();
        chat(&req)
    }

    /// `(status, code, param)` of a refusal.
    fn refusal(r: Check) -> (u16, String, String) {
        let e = r.unwrap_err();
        (
            e.status.as_u16(),
            e.code.unwrap_or_default(),
            e.param.map(Cow::into_owned).unwrap_or_default(),
        )
    }

    fn ok_chat() -> Value {
        json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    }

    fn with(field: &str, v: Value) -> Value {
        let mut body = ok_chat();
        body[field] = v;
        body
    }

    #[test]
    fn valid_chat_requests_pass_with_unknown_fields() {
        chat_of(ok_chat()).unwrap();
        chat_of(json!({"model": "m", "some_new_field": {"x": [1]}, "n": 2, "max_tokens": 5,
            "max_completion_tokens": null, "temperature": 0, "top_p": 1.0, "messages": [
            {"role": "developer", "content": [{"type": "text", "text": "be brief"}]},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "c", "type": "function",
                "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c", "content": "42"},
            {"role": "function", "name": "f", "content": null}],
            "tools": [{"type": "function", "function": {"name": "f"}}, {"type": "custom", "x": 1}]}))
        .unwrap();
    }

    #[test]
    fn each_bad_chat_field_is_named() {
        let cases = [
            (with("messages", json!("hi")), "invalid_type", "messages"),
            (with("messages", json!([])), "invalid_value", "messages"),
            (
                json!({"model": "m"}),
                "missing_required_parameter",
                "messages",
            ),
            (with("messages", json!([1])), "invalid_type", "messages[0]"),
            (
                with(
                    "messages",
                    json!([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}, {"role": "robot", "content": "c"}]),
                ),
                "invalid_value",
                "messages[2].role",
            ),
            (
                with("messages", json!([{"role": 3, "content": "a"}])),
                "invalid_type",
                "messages[0].role",
            ),
            (
                with("messages", json!([{"content": "a"}])),
                "missing_required_parameter",
                "messages[0].role",
            ),
            (
                with("messages", json!([{"role": "user"}])),
                "missing_required_parameter",
                "messages[0].content",
            ),
            (
                with("messages", json!([{"role": "assistant", "content": null}])),
                "missing_required_parameter",
                "messages[0].content",
            ),
            (
                with("messages", json!([{"role": "user", "content": 7}])),
                "invalid_type",
                "messages[0].content",
            ),
            (
                with("messages", json!([{"role": "user", "content": ["x"]}])),
                "invalid_type",
                "messages[0].content[0]",
            ),
            (
                with(
                    "messages",
                    json!([{"role": "user", "content": [{"text": "x"}]}]),
                ),
                "missing_required_parameter",
                "messages[0].content[0].type",
            ),
            (with("n", json!(0)), "invalid_value", "n"),
            (with("n", json!(-1)), "invalid_value", "n"),
            (with("n", json!(1.5)), "invalid_type", "n"),
            (with("n", json!("2")), "invalid_type", "n"),
            (with("max_tokens", json!(0)), "invalid_value", "max_tokens"),
            (
                with("max_tokens", json!(MAX_OUTPUT_TOKENS + 1)),
                "invalid_value",
                "max_tokens",
            ),
            (
                with("max_completion_tokens", json!("many")),
                "invalid_type",
                "max_completion_tokens",
            ),
            (
                with("temperature", json!(2.5)),
                "invalid_value",
                "temperature",
            ),
            (
                with("temperature", json!("hot")),
                "invalid_type",
                "temperature",
            ),
            (with("top_p", json!(-0.1)), "invalid_value", "top_p"),
            (with("tools", json!({})), "invalid_type", "tools"),
            (
                with("tools", json!([{"function": {"name": "f"}}])),
                "missing_required_parameter",
                "tools[0].type",
            ),
            (
                with("tools", json!([{"type": "function", "function": {}}])),
                "missing_required_parameter",
                "tools[0].function.name",
            ),
            (with("model", json!("")), "invalid_value", "model"),
        ];
        for (body, code, param) in cases {
            let got = refusal(chat_of(body.clone()));
            assert_eq!(got, (400, code.to_owned(), param.to_owned()), "{body}");
        }
    }

    #[test]
    fn embeddings_input_shapes() {
        let emb = |input: Value| {
            let req: EmbeddingsRequest =
                serde_json::from_value(json!({"model": "e", "input": input})).unwrap();
            embeddings(&req)
        };
        for good in [
            json!("a"),
            json!(["a", "b"]),
            json!([1, 2]),
            json!([[1], [2, 3]]),
        ] {
            emb(good.clone()).unwrap_or_else(|e| panic!("{good}: {}", e.message));
        }
        let cases = [
            (json!(""), "invalid_value", "input"),
            (json!([]), "invalid_value", "input"),
            (json!(null), "missing_required_parameter", "input"),
            (json!(5), "invalid_type", "input"),
            (json!(["a", ""]), "invalid_value", "input[1]"),
            (json!(["a", 1]), "invalid_type", "input[1]"),
            (json!([1, -2]), "invalid_type", "input[1]"),
            (json!([[1], []]), "invalid_value", "input[1]"),
            (json!([{}]), "invalid_type", "input[0]"),
        ];
        for (input, code, param) in cases {
            let got = refusal(emb(input.clone()));
            assert_eq!(got, (400, code.to_owned(), param.to_owned()), "{input}");
        }
    }

    #[test]
    fn serde_refusals_name_the_field_and_bad_json_stays_invalid_json() {
        let named = |body: &str| {
            let e = serde_json::from_str::<ChatRequest>(body).unwrap_err();
            let api = parse_error(&e, body.as_bytes());
            (
                api.code.unwrap_or_default(),
                api.param.map(Cow::into_owned).unwrap_or_default(),
            )
        };
        let it = |c: &str, p: &str| (c.to_owned(), p.to_owned());
        assert_eq!(
            named(r#"{"model": 5, "messages": []}"#),
            it("invalid_type", "model")
        );
        assert_eq!(
            named(r#"{"messages": []}"#),
            it("missing_required_parameter", "model")
        );
        assert_eq!(
            named(r#"{"model": "m", "stream": "yes"}"#),
            it("invalid_type", "stream")
        );
        assert_eq!(
            named(r#"{"model": "m", "stream_options": {"include_usage": 1}}"#),
            it("invalid_type", "stream_options.include_usage")
        );
        assert_eq!(
            named(r#"{"model": "m", "stream_options": []}"#),
            it("invalid_type", "stream_options")
        );
        assert_eq!(named(r#"[1]"#), it("invalid_type", "body"));
        assert_eq!(named(r#"{"model": "m", "#), it("invalid_json", ""));
    }

    #[test]
    fn long_values_are_cut_in_messages() {
        let role = "r".repeat(10_000);
        let e = chat_of(with("messages", json!([{"role": role, "content": "x"}]))).unwrap_err();
        assert!(e.message.len() < 600, "{}", e.message.len());
        assert!(e.message.contains("more bytes]"), "{}", e.message);
    }
}
