//! Pure conversions for Anthropic-shaped clients: a Messages API request into the canonical
//! (OpenAI-shaped) chat request, the canonical answer back into a Messages API response, and a
//! canonical chunk stream into Messages API stream events.
//!
//! Answers follow the gateway's one rule for `model`: the model that served the answer as the
//! provider names it (read from the canonical body), as on the OpenAI surface. Message ids are
//! Anthropic's `msg_…`: an upstream `msg_` id as it is, else a fresh unique one.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::borrow::Cow;
use std::collections::HashMap;

use super::super::validate::MAX_OUTPUT_TOKENS;
use crate::events::Usage;
use crate::providers::ChatRequest;

/// A Messages API request as Anthropic clients send it.
#[derive(Debug, Deserialize)]
pub struct InRequest {
    pub model: String,
    #[serde(default)]
    pub max_tokens: Option<u64>,
    pub messages: Vec<InMessage>,
    #[serde(default)]
    pub system: Option<InContent>,
    #[serde(default)]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub top_p: Option<f64>,
    #[serde(default)]
    pub stop_sequences: Option<Vec<String>>,
    #[serde(default)]
    pub stream: Option<bool>,
    #[serde(default)]
    pub tools: Option<Vec<InTool>>,
    #[serde(default)]
    pub tool_choice: Option<InToolChoice>,
    #[serde(default)]
    pub metadata: Option<InMetadata>,
}

impl InRequest {
    pub fn is_stream(&self) -> bool {
        self.stream == Some(true)
    }
}

#[derive(Debug, Deserialize)]
pub struct InMessage {
    pub role: String,
    pub content: InContent,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum InContent {
    Text(String),
    Blocks(Vec<InBlock>),
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum InBlock {
    Text {
        text: String,
    },
    Image {
        source: InImageSource,
    },
    ToolUse {
        id: String,
        name: String,
        #[serde(default)]
        input: Value,
    },
    ToolResult {
        tool_use_id: String,
        #[serde(default)]
        content: Option<InContent>,
        #[serde(default)]
        is_error: Option<bool>,
    },
    /// Blocks with no OpenAI equivalent (thinking, documents, …) are dropped.
    #[serde(other)]
    Other,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum InImageSource {
    Base64 { media_type: String, data: String },
    Url { url: String },
}

#[derive(Debug, Deserialize)]
pub struct InTool {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub input_schema: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum InToolChoice {
    Auto {
        #[serde(default)]
        disable_parallel_tool_use: Option<bool>,
    },
    Any {
        #[serde(default)]
        disable_parallel_tool_use: Option<bool>,
    },
    Tool {
        name: String,
        #[serde(default)]
        disable_parallel_tool_use: Option<bool>,
    },
    None,
}

#[derive(Debug, Deserialize)]
pub struct InMetadata {
    #[serde(default)]
    pub user_id: Option<String>,
}

fn text_of(content: &InContent) -> String {
    match content {
        InContent::Text(t) => t.clone(),
        InContent::Blocks(blocks) => blocks
            .iter()
            .filter_map(|b| match b {
                InBlock::Text { text } => Some(text.as_str()),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

fn image_part(source: &InImageSource) -> Value {
    let url = match source {
        InImageSource::Base64 { media_type, data } => format!("data:{media_type};base64,{data}"),
        InImageSource::Url { url } => url.clone(),
    };
    json!({"type": "image_url", "image_url": {"url": url}})
}

/// Convert a Messages API request into the canonical chat request. Usage is always requested on
/// streams, since Anthropic clients always get it.
/// What the Messages API itself refuses before anything is sent, in its words (`field: problem`),
/// then the conversion. `count_tokens` requests carry no `max_tokens`, so they skip this.
pub fn checked_chat(req: &InRequest) -> Result<ChatRequest, Refused> {
    match req.max_tokens {
        None => return Err(Refused::new("max_tokens", "Field required")),
        Some(0) => {
            return Err(Refused::new(
                "max_tokens",
                "Input should be greater than or equal to 1",
            ));
        }
        Some(n) if n > MAX_OUTPUT_TOKENS => {
            return Err(Refused::new(
                "max_tokens",
                format!("Input should be less than or equal to {MAX_OUTPUT_TOKENS}"),
            ));
        }
        Some(_) => {}
    }
    if req.model.is_empty() {
        return Err(Refused::new(
            "model",
            "String should have at least 1 character",
        ));
    }
    if req.messages.is_empty() {
        return Err(Refused::new(
            "messages",
            "List should have at least 1 item after validation, not 0",
        ));
    }
    if let Some(i) = req
        .messages
        .iter()
        .position(|m| m.role != "user" && m.role != "assistant")
    {
        return Err(Refused::new(
            format!("messages.{i}.role"),
            "Input should be 'user' or 'assistant'",
        ));
    }
    to_chat(req)
}

/// Why a Messages request cannot be served: the field, named as Anthropic names it
/// (`messages.1.role`), and the problem in Anthropic's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{param}: {problem}")]
pub struct Refused {
    pub param: Cow<'static, str>,
    pub problem: String,
}

impl Refused {
    fn new(param: impl Into<Cow<'static, str>>, problem: impl Into<String>) -> Self {
        Refused {
            param: param.into(),
            problem: problem.into(),
        }
    }
}

pub fn to_chat(req: &InRequest) -> Result<ChatRequest, Refused> {
    let mut messages = Vec::new();
    if let Some(system) = &req.system {
        messages.push(json!({"role": "system", "content": text_of(system)}));
    }
    for m in &req.messages {
        let blocks = match &m.content {
            InContent::Text(t) => {
                messages.push(json!({"role": m.role, "content": t}));
                continue;
            }
            InContent::Blocks(b) => b,
        };
        let mut parts = Vec::new();
        let mut tool_calls = Vec::new();
        for b in blocks {
            match b {
                InBlock::Text { text } => parts.push(json!({"type": "text", "text": text})),
                InBlock::Image { source } => parts.push(image_part(source)),
                InBlock::ToolUse { id, name, input } => tool_calls.push(json!({
                    "id": id, "type": "function",
                    "function": {"name": name, "arguments": input.to_string()}
                })),
                InBlock::ToolResult {
                    tool_use_id,
                    content,
                    is_error,
                } => {
                    // Tool results answer the previous assistant turn: they become `tool`
                    // messages, placed before any text the user sent alongside.
                    let mut text = content.as_ref().map(text_of).unwrap_or_default();
                    if is_error == &Some(true) {
                        text = format!("Error: {text}");
                    }
                    messages.push(
                        json!({"role": "tool", "tool_call_id": tool_use_id, "content": text}),
                    );
                }
                InBlock::Other => {}
            }
        }
        if m.role == "assistant" {
            let text: Vec<&str> = parts.iter().filter_map(|p| p["text"].as_str()).collect();
            let mut msg = json!({"role": "assistant", "content": if text.is_empty() { Value::Null } else { Value::from(text.join("")) }});
            if !tool_calls.is_empty() {
                msg["tool_calls"] = Value::from(tool_calls);
            }
            messages.push(msg);
        } else if !parts.is_empty() {
            let only_text = parts.iter().all(|p| p["type"] == "text");
            let content = if only_text && parts.len() == 1 {
                parts[0]["text"].clone()
            } else {
                Value::from(parts)
            };
            messages.push(json!({"role": m.role, "content": content}));
        }
    }
    let mut out = Map::new();
    out.insert("model".into(), Value::from(req.model.clone()));
    out.insert("messages".into(), Value::from(messages));
    if let Some(n) = req.max_tokens {
        out.insert("max_tokens".into(), Value::from(n));
    }
    if let Some(t) = req.temperature {
        out.insert("temperature".into(), Value::from(t));
    }
    if let Some(p) = req.top_p {
        out.insert("top_p".into(), Value::from(p));
    }
    if let Some(stop) = &req.stop_sequences {
        out.insert("stop".into(), Value::from(stop.clone()));
    }
    if let Some(tools) = &req.tools {
        let tools: Vec<Value> = tools
            .iter()
            .map(|t| {
                json!({"type": "function", "function": {
                    "name": t.name,
                    "description": t.description,
                    "parameters": t.input_schema.clone().unwrap_or_else(|| json!({"type": "object"})),
                }})
            })
            .collect();
        out.insert("tools".into(), Value::from(tools));
    }
    if let Some(choice) = &req.tool_choice {
        let (value, no_parallel) = match choice {
            InToolChoice::Auto {
                disable_parallel_tool_use,
            } => (json!("auto"), *disable_parallel_tool_use),
            InToolChoice::Any {
                disable_parallel_tool_use,
            } => (json!("required"), *disable_parallel_tool_use),
            InToolChoice::Tool {
                name,
                disable_parallel_tool_use,
            } => (
                json!({"type": "function", "function": {"name": name}}),
                *disable_parallel_tool_use,
            ),
            InToolChoice::None => (json!("none"), None),
        };
        out.insert("tool_choice".into(), value);
        if no_parallel == Some(true) {
            out.insert("parallel_tool_calls".into(), Value::from(false));
        }
    }
    if let Some(user) = req.metadata.as_ref().and_then(|m| m.user_id.clone()) {
        out.insert("user".into(), Value::from(user));
    }
    if req.is_stream() {
        out.insert("stream".into(), Value::from(true));
        out.insert("stream_options".into(), json!({"include_usage": true}));
    }
    serde_json::from_value(Value::Object(out)).map_err(|e| Refused::new("messages", e.to_string()))
}

fn stop_reason(finish: Option<&str>) -> &'static str {
    match finish {
        Some("length") => "max_tokens",
        Some("tool_calls") | Some("function_call") => "tool_use",
        Some("content_filter") => "refusal",
        _ => "end_turn",
    }
}

fn usage_json(u: &Usage) -> Value {
    let cached = u.cached_input_tokens.min(u.input_tokens);
    json!({
        "input_tokens": u.input_tokens - cached,
        "output_tokens": u.output_tokens,
        "cache_read_input_tokens": cached,
        "cache_creation_input_tokens": 0,
    })
}

#[derive(Deserialize)]
struct OutCompletion {
    #[serde(default)]
    id: String,
    /// The model that served the answer, as the provider names it.
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    choices: Vec<OutChoice>,
}

#[derive(Deserialize)]
struct OutChoice {
    #[serde(default)]
    message: OutMessage,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize, Default)]
struct OutMessage {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    tool_calls: Vec<OutToolCall>,
}

#[derive(Deserialize)]
struct OutToolCall {
    #[serde(default)]
    id: String,
    function: OutFunction,
}

#[derive(Deserialize)]
struct OutFunction {
    name: String,
    #[serde(default)]
    arguments: String,
}

fn tool_input(arguments: &str) -> Value {
    serde_json::from_str(arguments).unwrap_or_else(|_| json!({}))
}

/// The Messages API id of an answer: an upstream `msg_` id (an Anthropic upstream) as it is, else
/// a fresh one, since other providers' ids (`chatcmpl-…`) are not what Anthropic clients expect.
fn message_id(upstream: &str) -> String {
    if upstream.starts_with("msg_") {
        upstream.to_owned()
    } else {
        format!("msg_{}", ulid::Ulid::generate())
    }
}

/// Convert a canonical `chat.completion` body into a Messages API response. `model` names the
/// model only when the body does not.
pub fn to_message(
    body: &[u8],
    model: &str,
    usage: Option<&Usage>,
) -> Result<Vec<u8>, serde_json::Error> {
    let c: OutCompletion = serde_json::from_slice(body)?;
    let choice = c.choices.into_iter().next();
    let mut content = Vec::new();
    let mut finish = None;
    if let Some(ch) = choice {
        finish = ch.finish_reason;
        if let Some(text) = ch.message.content.filter(|t| !t.is_empty()) {
            content.push(json!({"type": "text", "text": text}));
        }
        for call in ch.message.tool_calls {
            content.push(json!({
                "type": "tool_use", "id": call.id, "name": call.function.name,
                "input": tool_input(&call.function.arguments),
            }));
        }
    }
    let msg = json!({
        "id": message_id(&c.id),
        "type": "message",
        "role": "assistant",
        "model": c.model.as_deref().filter(|m| !m.is_empty()).unwrap_or(model),
        "content": content,
        "stop_reason": stop_reason(finish.as_deref()),
        "stop_sequence": null,
        "usage": usage.map_or_else(|| usage_json(&Usage::default()), usage_json),
    });
    serde_json::to_vec(&msg)
}

fn event(name: &str, data: &Value) -> Bytes {
    Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
}

/// Turns canonical chunks into Messages API stream events, keeping the block bookkeeping
/// Anthropic clients expect (each block started, its deltas, then stopped).
pub struct StreamTranslator {
    /// The requested model until a chunk names the one that serves.
    model: String,
    started: bool,
    /// Index and kind of the open content block.
    open: Option<(u32, bool)>,
    next_index: u32,
    /// Canonical tool-call index → Anthropic block index.
    tools: HashMap<u64, u32>,
    finish: Option<String>,
}

impl StreamTranslator {
    pub fn new(model: &str) -> Self {
        Self {
            model: model.to_owned(),
            started: false,
            open: None,
            next_index: 0,
            tools: HashMap::new(),
            finish: None,
        }
    }

    fn start(&mut self, id: &str, out: &mut Vec<Bytes>) {
        if self.started {
            return;
        }
        self.started = true;
        out.push(event(
            "message_start",
            &json!({"type": "message_start", "message": {
                "id": id, "type": "message", "role": "assistant", "model": self.model,
                "content": [], "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": 0, "output_tokens": 0}
            }}),
        ));
    }

    fn close_block(&mut self, out: &mut Vec<Bytes>) {
        if let Some((index, _)) = self.open.take() {
            out.push(event(
                "content_block_stop",
                &json!({"type": "content_block_stop", "index": index}),
            ));
        }
    }

    /// Events for one canonical chunk (its JSON).
    pub fn chunk(&mut self, data: &[u8]) -> Vec<Bytes> {
        let mut out = Vec::new();
        let Ok(chunk) = serde_json::from_slice::<Value>(data) else {
            return out;
        };
        if !self.started
            && let Some(m) = chunk["model"].as_str().filter(|m| !m.is_empty())
        {
            m.clone_into(&mut self.model);
        }
        let id = message_id(chunk["id"].as_str().unwrap_or_default());
        self.start(&id, &mut out);
        let Some(choice) = chunk["choices"].as_array().and_then(|c| c.first()) else {
            return out;
        };
        let delta = &choice["delta"];
        if let Some(text) = delta["content"].as_str().filter(|t| !t.is_empty()) {
            if !matches!(self.open, Some((_, false))) {
                self.close_block(&mut out);
                let index = self.next_index;
                self.next_index += 1;
                self.open = Some((index, false));
                out.push(event(
                    "content_block_start",
                    &json!({"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}}),
                ));
            }
            let index = self.open.map_or(0, |(i, _)| i);
            out.push(event(
                "content_block_delta",
                &json!({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": text}}),
            ));
        }
        if let Some(calls) = delta["tool_calls"].as_array() {
            for call in calls {
                let key = call["index"].as_u64().unwrap_or(0);
                let index = match self.tools.get(&key) {
                    Some(i) => *i,
                    None => {
                        self.close_block(&mut out);
                        let index = self.next_index;
                        self.next_index += 1;
                        self.tools.insert(key, index);
                        self.open = Some((index, true));
                        out.push(event(
                            "content_block_start",
                            &json!({"type": "content_block_start", "index": index, "content_block": {
                                "type": "tool_use", "id": call["id"], "name": call["function"]["name"], "input": {}
                            }}),
                        ));
                        index
                    }
                };
                if let Some(args) = call["function"]["arguments"]
                    .as_str()
                    .filter(|a| !a.is_empty())
                {
                    out.push(event(
                        "content_block_delta",
                        &json!({"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": args}}),
                    ));
                }
            }
        }
        if let Some(f) = choice["finish_reason"].as_str() {
            self.finish = Some(f.to_owned());
        }
        out
    }

    /// Closing events once the canonical stream ended normally.
    pub fn done(&mut self, usage: Option<&Usage>) -> Vec<Bytes> {
        let mut out = Vec::new();
        self.start(&message_id(""), &mut out);
        self.close_block(&mut out);
        let usage = usage.map_or_else(|| usage_json(&Usage::default()), usage_json);
        out.push(event(
            "message_delta",
            &json!({"type": "message_delta",
                "delta": {"stop_reason": stop_reason(self.finish.as_deref()), "stop_sequence": null},
                "usage": usage}),
        ));
        out.push(event("message_stop", &json!({"type": "message_stop"})));
        out
    }

    /// The error event that ends a broken stream.
    pub fn error(&mut self, kind: &str, message: &str) -> Vec<Bytes> {
        vec![event(
            "error",
            &json!({"type": "error", "error": {"type": kind, "message": message}}),
        )]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(v: Value) -> InRequest {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn request_becomes_canonical() {
        let r = req(json!({
            "model": "claude-sonnet-4-5", "max_tokens": 256, "system": "Be brief.",
            "stop_sequences": ["END"], "temperature": 0.5, "metadata": {"user_id": "u1"},
            "tools": [{"name": "get_weather", "description": "w", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}],
            "tool_choice": {"type": "any", "disable_parallel_tool_use": true},
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "Weather in \"Paris\"?"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAA"}}]},
                {"role": "assistant", "content": [{"type": "text", "text": "Checking."},
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"},
                    {"type": "text", "text": "Thanks"}]}
            ],
            "stream": true
        }));
        let chat = to_chat(&r).unwrap();
        let v = serde_json::to_value(&chat).unwrap();
        assert_eq!(v["model"], "claude-sonnet-4-5");
        assert_eq!(v["max_tokens"], 256);
        assert_eq!(v["stop"], json!(["END"]));
        assert_eq!(v["user"], "u1");
        assert_eq!(v["tool_choice"], "required");
        assert_eq!(v["parallel_tool_calls"], false);
        assert_eq!(
            v["tools"][0]["function"]["parameters"]["properties"]["city"]["type"],
            "string"
        );
        assert_eq!(v["stream_options"]["include_usage"], true);
        let m = v["messages"].as_array().unwrap();
        assert_eq!(m[0], json!({"role": "system", "content": "Be brief."}));
        assert_eq!(m[1]["content"][0]["text"], "Weather in \"Paris\"?");
        assert_eq!(
            m[1]["content"][1]["image_url"]["url"],
            "data:image/png;base64,AAA"
        );
        assert_eq!(m[2]["content"], "Checking.");
        assert_eq!(
            m[2]["tool_calls"][0]["function"]["arguments"],
            "{\"city\":\"Paris\"}"
        );
        assert_eq!(
            m[3],
            json!({"role": "tool", "tool_call_id": "toolu_1", "content": "18C"})
        );
        assert_eq!(m[4], json!({"role": "user", "content": "Thanks"}));
    }

    #[test]
    fn answer_becomes_a_message() {
        let body = br#"{"id":"chatcmpl-1","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"Hi","tool_calls":[{"id":"call_1","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}}]},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":10,"completion_tokens":3}}"#;
        let usage = Usage {
            input_tokens: 10,
            output_tokens: 3,
            cached_input_tokens: 4,
            ..Usage::default()
        };
        let m: Value =
            serde_json::from_slice(&to_message(body, "claude-x", Some(&usage)).unwrap()).unwrap();
        assert_eq!(m["type"], "message");
        assert_eq!(m["model"], "claude-x");
        assert_eq!(m["content"][0], json!({"type": "text", "text": "Hi"}));
        assert_eq!(m["content"][1]["input"], json!({"a": 1}));
        assert_eq!(m["stop_reason"], "tool_use");
        assert_eq!(
            m["usage"]["input_tokens"], 6,
            "Anthropic counts cache reads apart"
        );
        assert_eq!(m["usage"]["cache_read_input_tokens"], 4);
    }

    #[test]
    fn stream_events_open_and_close_blocks() {
        let mut t = StreamTranslator::new("claude-x");
        let mut all = Vec::new();
        for c in [
            r#"{"id":"c1","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}"#,
            r#"{"id":"c1","choices":[{"index":0,"delta":{"content":"Hel"}}]}"#,
            r#"{"id":"c1","choices":[{"index":0,"delta":{"content":"lo"}}]}"#,
            r#"{"id":"c1","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"f","arguments":""}}]}}]}"#,
            r#"{"id":"c1","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"a\":"}}]}}]}"#,
            r#"{"id":"c1","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#,
            r#"{"id":"c1","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2}}"#,
        ] {
            all.extend(t.chunk(c.as_bytes()));
        }
        all.extend(t.done(Some(&Usage {
            input_tokens: 5,
            output_tokens: 2,
            ..Usage::default()
        })));
        let names: Vec<String> = all
            .iter()
            .map(|b| {
                String::from_utf8_lossy(b)
                    .lines()
                    .next()
                    .unwrap()
                    .trim_start_matches("event: ")
                    .to_owned()
            })
            .collect();
        assert_eq!(
            names,
            [
                "message_start",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        let delta: Value = serde_json::from_str(
            String::from_utf8_lossy(&all[8])
                .lines()
                .nth(1)
                .unwrap()
                .trim_start_matches("data: "),
        )
        .unwrap();
        assert_eq!(delta["delta"]["stop_reason"], "tool_use");
        assert_eq!(delta["usage"]["output_tokens"], 2);
    }

    fn data_of(frame: &Bytes) -> Value {
        let text = String::from_utf8_lossy(frame);
        serde_json::from_str(text.lines().nth(1).unwrap().trim_start_matches("data: ")).unwrap()
    }

    #[test]
    fn answers_name_the_served_model_and_carry_msg_ids() {
        let body = br#"{"id":"chatcmpl-1","model":"gpt-4o-2024-08-06","choices":[{"index":0,"message":{"role":"assistant","content":"Hi"},"finish_reason":"stop"}]}"#;
        let one: Value =
            serde_json::from_slice(&to_message(body, "public", None).unwrap()).unwrap();
        let two: Value =
            serde_json::from_slice(&to_message(body, "public", None).unwrap()).unwrap();
        assert_eq!(
            one["model"], "gpt-4o-2024-08-06",
            "the served model, not the public name"
        );
        let id = one["id"].as_str().unwrap();
        assert!(id.starts_with("msg_") && id.len() > 20, "{id}");
        assert_ne!(one["id"], two["id"], "unique per answer");
        let anthropic = br#"{"id":"msg_01abc","choices":[]}"#;
        let kept: Value =
            serde_json::from_slice(&to_message(anthropic, "public", None).unwrap()).unwrap();
        assert_eq!(kept["id"], "msg_01abc", "an Anthropic upstream id is kept");
        assert_eq!(
            kept["model"], "public",
            "no model in the body: the requested one"
        );

        let mut t = StreamTranslator::new("public");
        let start = t.chunk(br#"{"id":"chatcmpl-9","model":"served-1","choices":[{"index":0,"delta":{"content":"x"}}]}"#);
        let message = &data_of(&start[0])["message"];
        assert_eq!(message["model"], "served-1");
        assert!(
            message["id"].as_str().unwrap().starts_with("msg_"),
            "{message}"
        );
        let empty = StreamTranslator::new("public").done(None);
        let message = &data_of(&empty[0])["message"];
        assert!(
            message["id"].as_str().unwrap().starts_with("msg_"),
            "{message}"
        );
        assert_eq!(message["model"], "public");
    }

    #[test]
    fn checked_chat_refuses_what_anthropic_refuses() {
        let refused = |v: Value| checked_chat(&req(v)).unwrap_err().to_string();
        let msgs = json!([{"role": "user", "content": "hi"}]);
        assert_eq!(
            refused(json!({"model": "m", "messages": msgs})),
            "max_tokens: Field required"
        );
        assert!(
            refused(json!({"model": "m", "max_tokens": 0, "messages": msgs}))
                .starts_with("max_tokens:")
        );
        assert!(
            refused(json!({"model": "m", "max_tokens": 5, "messages": []}))
                .starts_with("messages:")
        );
        assert!(
            refused(json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "a"}, {"role": "system", "content": "b"}]}))
                .starts_with("messages.1.role:")
        );
        checked_chat(&req(
            json!({"model": "m", "max_tokens": 5, "messages": msgs}),
        ))
        .unwrap();
    }
}
