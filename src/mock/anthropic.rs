//! The Anthropic Messages wire as the mock speaks it: `POST /v1/messages`, answered with the
//! same deterministic reply, usage and fault plan as the OpenAI chat handler (the reply rule is
//! `openai::reply_to`, the stream feed is `sse`, the dice are `MockConfig::roll`), only in
//! Anthropic's shapes: a `message` object, named SSE events, `{"type":"error",…}` bodies.
//!
//! Unlike `openai.rs` this file also holds its handler, so that adding the wire format touched
//! only the route table in `mod.rs`. It shares no state of its own: counters and config are
//! the `MockState`'s.
//!
//! Usage follows the OpenAI handler's rule on the same conversation: words of every text
//! (tool results included) plus 3 per message, the top-level `system` counting as one message
//! as it was one in the OpenAI request. A user turn made only of `tool_result` blocks is what
//! OpenAI sends as `tool` messages, so it is not "the last user message" the reply echoes.
//!
//! As in the OpenAI handler, a user turn saying "parallel" is answered with one `tool_use` block
//! per offered tool, unless the choice names one or sets `disable_parallel_tool_use`.

use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::openai::{self, Answer, Frames, Prompt, Reply, Text, asks_for_parallel, reply_to};
use super::{MockState, bump, sse};

/// The parts of a Messages request the mock looks at; the rest is ignored.
#[derive(Deserialize)]
struct MessagesRequest<'a> {
    #[serde(borrow)]
    model: Text<'a>,
    /// Required, as Anthropic requires it: a converter that forgets it fails here too.
    max_tokens: u64,
    #[serde(borrow)]
    messages: Vec<Message<'a>>,
    #[serde(default, borrow)]
    system: Option<Content<'a>>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default, borrow)]
    tools: Option<Vec<Tool<'a>>>,
    #[serde(default, borrow)]
    tool_choice: Option<ToolChoice<'a>>,
}

#[derive(Deserialize)]
struct Message<'a> {
    #[serde(borrow)]
    role: Text<'a>,
    #[serde(borrow)]
    content: Content<'a>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Content<'a> {
    Text(#[serde(borrow)] Text<'a>),
    Blocks(#[serde(borrow)] Vec<Block<'a>>),
}

/// A content block: `text` for text blocks, `content` for tool results; others are counted as
/// having no words.
#[derive(Deserialize)]
struct Block<'a> {
    #[serde(borrow, rename = "type")]
    kind: Text<'a>,
    #[serde(default, borrow)]
    text: Option<Text<'a>>,
    #[serde(default, borrow)]
    content: Option<Content<'a>>,
}

#[derive(Deserialize)]
struct Tool<'a> {
    #[serde(borrow)]
    name: Text<'a>,
}

#[derive(Deserialize)]
struct ToolChoice<'a> {
    #[serde(borrow, rename = "type")]
    kind: Text<'a>,
    #[serde(default, borrow)]
    name: Option<Text<'a>>,
    #[serde(default)]
    disable_parallel_tool_use: bool,
}

impl Content<'_> {
    /// The texts of this content's own text blocks.
    fn texts(&self) -> impl Iterator<Item = &str> + Clone {
        let (one, blocks) = match self {
            Content::Text(t) => (Some(t.as_str()), &[][..]),
            Content::Blocks(blocks) => (None, blocks.as_slice()),
        };
        let texts = blocks
            .iter()
            .filter_map(|b| b.text.as_ref().map(Text::as_str));
        one.into_iter().chain(texts)
    }

    /// The words a user turn says itself.
    fn words(&self) -> impl Iterator<Item = &str> + Clone {
        self.texts().flat_map(str::split_whitespace)
    }

    /// Every word the prompt rule counts: own texts and those inside tool results.
    fn all_words(&self) -> impl Iterator<Item = &str> {
        let blocks = match self {
            Content::Text(_) => &[][..],
            Content::Blocks(blocks) => blocks.as_slice(),
        };
        let nested = blocks
            .iter()
            .filter_map(|b| b.content.as_ref())
            .flat_map(|c| c.texts());
        self.texts().chain(nested).flat_map(str::split_whitespace)
    }

    fn only_tool_results(&self) -> bool {
        match self {
            Content::Text(_) => false,
            Content::Blocks(blocks) => {
                !blocks.is_empty() && blocks.iter().all(|b| b.kind.as_str() == "tool_result")
            }
        }
    }
}

impl MessagesRequest<'_> {
    fn model(&self) -> &str {
        self.model.as_str()
    }

    /// The OpenAI handler's tool rule: a tool when tools are offered and not forbidden, the
    /// named one if the choice names it, else the first.
    fn tool_to_call(&self) -> Option<&str> {
        let first = self.tools.as_ref()?.first()?;
        match &self.tool_choice {
            Some(choice) if choice.kind.as_str() == "none" => None,
            Some(ToolChoice {
                name: Some(name), ..
            }) => Some(name.as_str()),
            _ => Some(first.name.as_str()),
        }
    }

    /// Whether a tool call may be joined by calls to the other tools: not when the choice names
    /// one tool or turns parallel use off.
    fn parallel_allowed(&self) -> bool {
        self.tool_choice
            .as_ref()
            .is_none_or(|c| c.kind.as_str() != "tool" && !c.disable_parallel_tool_use)
    }

    /// The deterministic reply: the OpenAI handler's, with a call to every offered tool when
    /// the user turn says "parallel" and the request allows it.
    fn reply(&self, stream_words: usize, seq: u64) -> Reply<'_> {
        let prompt = self.prompt();
        let parallel =
            self.parallel_allowed() && prompt.user_words.clone().is_some_and(asks_for_parallel);
        let reply = reply_to(prompt, stream_words, seq, 1);
        match &self.tools {
            Some(tools) if parallel => reply.in_parallel(tools.iter().map(|t| t.name.as_str()), 1),
            _ => reply,
        }
    }

    fn prompt(&self) -> Prompt<'_, impl Iterator<Item = &str> + Clone> {
        let system = self.system.as_ref();
        let words = system.iter().flat_map(|s| s.all_words()).count()
            + self
                .messages
                .iter()
                .map(|m| m.content.all_words().count())
                .sum::<usize>();
        let messages = self.messages.len() + usize::from(system.is_some());
        let user_words = self
            .messages
            .iter()
            .rev()
            .find(|m| m.role.as_str() == "user" && !m.content.only_tool_results())
            .map(|m| m.content.words());
        Prompt {
            tokens: (words + 3 * messages) as u64,
            tool: self.tool_to_call(),
            limit: Some(self.max_tokens),
            user_words,
        }
    }
}

#[derive(Serialize, Clone, Copy)]
struct AnUsage {
    input_tokens: u64,
    cache_creation_input_tokens: u64,
    cache_read_input_tokens: u64,
    output_tokens: u64,
}

impl AnUsage {
    fn new(reply: &Reply<'_>, output_tokens: u64) -> Self {
        Self {
            input_tokens: reply.usage.prompt_tokens,
            cache_creation_input_tokens: 0,
            cache_read_input_tokens: 0,
            output_tokens,
        }
    }
}

/// `input` of a tool call: the mock's calls take no arguments.
#[derive(Serialize, Clone, Copy)]
struct NoInput {}

#[derive(Serialize, Clone, Copy)]
#[serde(tag = "type", rename_all = "snake_case")]
enum OutBlock<'a> {
    Text {
        text: &'a str,
    },
    ToolUse {
        id: &'a str,
        name: &'a str,
        input: NoInput,
    },
}

#[derive(Serialize)]
struct OutMessage<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    role: &'static str,
    model: &'a str,
    content: &'a [OutBlock<'a>],
    stop_reason: Option<&'static str>,
    stop_sequence: Option<()>,
    usage: AnUsage,
}

/// The content blocks of an answer: its text, or one `tool_use` block per call.
fn blocks<'a>(reply: &'a Reply<'_>) -> Vec<OutBlock<'a>> {
    match &reply.answer {
        Answer::Text { text, .. } => vec![OutBlock::Text { text }],
        Answer::ToolCall { .. } => reply
            .calls()
            .map(|(name, id)| OutBlock::ToolUse {
                id,
                name,
                input: NoInput {},
            })
            .collect(),
    }
}

fn stop_reason(answer: &Answer<'_>) -> &'static str {
    match answer {
        Answer::Text {
            finish_reason: "length",
            ..
        } => "max_tokens",
        Answer::Text { .. } => "end_turn",
        Answer::ToolCall { .. } => "tool_use",
    }
}

/// The `message` JSON of a non-stream answer.
fn message(id: &str, model: &str, reply: &Reply<'_>) -> serde_json::Result<Vec<u8>> {
    serde_json::to_vec(&OutMessage {
        id,
        kind: "message",
        role: "assistant",
        model,
        content: &blocks(reply),
        stop_reason: Some(stop_reason(&reply.answer)),
        stop_sequence: None,
        usage: AnUsage::new(reply, reply.usage.completion_tokens),
    })
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum OutDelta<'a> {
    TextDelta { text: &'a str },
    InputJsonDelta { partial_json: &'a str },
}

#[derive(Serialize)]
struct StopDelta {
    stop_reason: &'static str,
    stop_sequence: Option<()>,
}

#[derive(Serialize)]
struct OutputUsage {
    output_tokens: u64,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Event<'a> {
    MessageStart {
        message: OutMessage<'a>,
    },
    ContentBlockStart {
        index: u32,
        content_block: OutBlock<'a>,
    },
    Ping,
    ContentBlockDelta {
        index: u32,
        delta: OutDelta<'a>,
    },
    ContentBlockStop {
        index: u32,
    },
    MessageDelta {
        delta: StopDelta,
        usage: OutputUsage,
    },
    MessageStop,
}

impl Event<'_> {
    /// The SSE event name, which Anthropic sets to the payload's `type`.
    fn name(&self) -> &'static str {
        match self {
            Event::MessageStart { .. } => "message_start",
            Event::ContentBlockStart { .. } => "content_block_start",
            Event::Ping => "ping",
            Event::ContentBlockDelta { .. } => "content_block_delta",
            Event::ContentBlockStop { .. } => "content_block_stop",
            Event::MessageDelta { .. } => "message_delta",
            Event::MessageStop => "message_stop",
        }
    }
}

#[derive(Default)]
struct EventWriter {
    buf: Vec<u8>,
    ends: Vec<usize>,
}

impl EventWriter {
    fn write(&mut self, event: &Event<'_>) -> serde_json::Result<()> {
        self.buf.extend_from_slice(b"event: ");
        self.buf.extend_from_slice(event.name().as_bytes());
        self.buf.extend_from_slice(b"\ndata: ");
        serde_json::to_writer(&mut self.buf, event)?;
        self.buf.extend_from_slice(b"\n\n");
        self.ends.push(self.buf.len());
        Ok(())
    }
}

/// The SSE events of a streamed answer, in the order Anthropic sends them: `message_start`,
/// the content blocks (one text block with a delta per word, or one block per tool call with
/// its input in one delta) with a `ping` after the first start, `message_delta` with the stop
/// reason and output usage, `message_stop`.
fn stream_frames(id: &str, model: &str, reply: &Reply<'_>) -> serde_json::Result<Frames> {
    let mut w = EventWriter::default();
    w.write(&Event::MessageStart {
        message: OutMessage {
            id,
            kind: "message",
            role: "assistant",
            model,
            content: &[],
            stop_reason: None,
            stop_sequence: None,
            usage: AnUsage::new(reply, 1),
        },
    })?;
    for (index, block) in (0..).zip(blocks(reply)) {
        let start = match block {
            // A text block opens empty and fills through deltas.
            OutBlock::Text { .. } => OutBlock::Text { text: "" },
            tool @ OutBlock::ToolUse { .. } => tool,
        };
        w.write(&Event::ContentBlockStart {
            index,
            content_block: start,
        })?;
        if index == 0 {
            w.write(&Event::Ping)?;
        }
        match block {
            // Every word keeps its trailing space but the last, so the deltas concatenate to
            // exactly the non-stream text.
            OutBlock::Text { text } => {
                for word in text.split_inclusive(' ') {
                    w.write(&Event::ContentBlockDelta {
                        index,
                        delta: OutDelta::TextDelta { text: word },
                    })?;
                }
            }
            OutBlock::ToolUse { .. } => w.write(&Event::ContentBlockDelta {
                index,
                delta: OutDelta::InputJsonDelta { partial_json: "{}" },
            })?,
        }
        w.write(&Event::ContentBlockStop { index })?;
    }
    w.write(&Event::MessageDelta {
        delta: StopDelta {
            stop_reason: stop_reason(&reply.answer),
            stop_sequence: None,
        },
        usage: OutputUsage {
            output_tokens: reply.usage.completion_tokens,
        },
    })?;
    w.write(&Event::MessageStop)?;
    Ok(Frames {
        bytes: Bytes::from(w.buf),
        ends: w.ends,
    })
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    error: ErrorInner<'a>,
}

#[derive(Serialize)]
struct ErrorInner<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    message: &'a str,
}

/// An Anthropic-shaped error: `{"type":"error","error":{"type","message"}}`.
fn error(status: StatusCode, kind: &str, message: &str) -> Response {
    let body = ErrorBody {
        kind: "error",
        error: ErrorInner { kind, message },
    };
    match serde_json::to_vec(&body) {
        Ok(bytes) => openai::json(status, bytes),
        // Only strings are serialised: unreachable in practice, and the status alone is still
        // a truthful answer.
        Err(_) => status.into_response(),
    }
}

fn invalid_request(message: &str) -> Response {
    error(StatusCode::BAD_REQUEST, "invalid_request_error", message)
}

/// An injected failure, with the error type Anthropic documents for that status.
fn injected_failure(status: u16, retry_after_secs: Option<u64>, model: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let (kind, message) = match status.as_u16() {
        401 => ("authentication_error", "invalid x-api-key".to_owned()),
        402 => ("billing_error", "Billing issue.".to_owned()),
        403 => ("permission_error", "Permission denied.".to_owned()),
        404 => ("not_found_error", format!("model: {model}")),
        413 => (
            "request_too_large",
            "Request exceeds the maximum size.".to_owned(),
        ),
        429 => (
            "rate_limit_error",
            format!("Number of requests to {model} has exceeded your rate limit."),
        ),
        504 => ("timeout_error", "Request timed out.".to_owned()),
        529 => ("overloaded_error", "Overloaded".to_owned()),
        500..=599 => ("api_error", "Internal server error".to_owned()),
        _ => ("invalid_request_error", "Invalid request.".to_owned()),
    };
    let mut response = error(
        status,
        kind,
        &format!("{message} (injected by switchyard mock)"),
    );
    if let Some(secs) = retry_after_secs {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

fn shutting_down() -> Response {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "api_error",
        "The mock upstream is shutting down.",
    )
}

/// `POST /v1/messages`: the OpenAI chat handler's flow (count, parse, roll the faults, hang,
/// fail, answer) in Anthropic's shapes.
pub(super) async fn messages(State(state): State<MockState>, body: Bytes) -> Response {
    let shared = &state.inner;
    bump(&shared.requests);
    bump(&shared.chat);
    let cfg = state.config();
    let req: MessagesRequest<'_> = match serde_json::from_slice(&body) {
        Ok(req) => req,
        Err(e) => return invalid_request(&format!("Invalid request body: {e}")),
    };
    if let Some(i) = req
        .messages
        .iter()
        .position(|m| !matches!(m.role.as_str(), "user" | "assistant"))
    {
        return invalid_request(&format!(
            "messages.{i}.role: Input should be 'user' or 'assistant'"
        ));
    }
    let stream = req.stream.unwrap_or(false);
    if stream {
        bump(&shared.streams);
    }
    let plan = cfg.roll(stream);
    if plan.hang && !state.pause(cfg.hang_ms).await {
        return shutting_down();
    }
    if plan.fail {
        bump(&shared.faults);
        return injected_failure(cfg.fail_status, cfg.retry_after_secs, req.model());
    }
    let seq = shared.seq.fetch_add(1, Ordering::Relaxed) + 1;
    let id = format!("msg_mock_{seq}");
    let reply = req.reply(cfg.stream_words, seq);
    if stream {
        return match stream_frames(&id, req.model(), &reply) {
            Ok(frames) => sse(frames, &cfg, plan, shared.halt.clone()),
            Err(e) => error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "api_error",
                &e.to_string(),
            ),
        };
    }
    if !state.pause(cfg.latency_ms).await {
        return shutting_down();
    }
    match message(&id, req.model(), &reply) {
        Ok(bytes) => openai::json(StatusCode::OK, bytes),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "api_error",
            &e.to_string(),
        ),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use axum::body::Body;
    use axum::http::{Method, Request};
    use http_body_util::BodyExt;
    use serde_json::{Value, json};
    use tower::ServiceExt;

    use super::super::{MockConfig, MockStats, router};
    use super::*;

    async fn post(state: &MockState, body: &Value) -> Response {
        let req = Request::builder()
            .method(Method::POST)
            .uri("/v1/messages")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        router(state.clone()).oneshot(req).await.unwrap()
    }

    async fn text(resp: Response) -> String {
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    async fn post_json(state: &MockState, body: &Value) -> (StatusCode, Value) {
        let resp = post(state, body).await;
        let status = resp.status();
        (status, serde_json::from_str(&text(resp).await).unwrap())
    }

    /// (event name, payload) of every SSE event; asserts each name matches its `type`.
    fn events(body: &str) -> Vec<(String, Value)> {
        body.split("\n\n")
            .filter(|e| !e.is_empty())
            .map(|e| {
                let (name, data) = e.split_once('\n').unwrap();
                let name = name.strip_prefix("event: ").unwrap().to_owned();
                let data: Value =
                    serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
                assert_eq!(data["type"], name.as_str());
                (name, data)
            })
            .collect()
    }

    fn hello() -> Value {
        json!({"model": "claude-mock", "max_tokens": 1024, "system": "be brief",
               "messages": [{"role": "user", "content": "hello there world"}]})
    }

    #[tokio::test]
    async fn message_has_anthropic_shape_and_the_openai_handlers_usage() {
        let st = MockState::new(MockConfig {
            stream_words: 4,
            ..MockConfig::default()
        });
        let (status, v) = post_json(&st, &hello()).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(v["type"], "message");
        assert_eq!(v["role"], "assistant");
        assert_eq!(v["model"], "claude-mock");
        assert!(v["id"].as_str().unwrap().starts_with("msg_mock_"));
        assert_eq!(
            v["content"],
            json!([{"type": "text", "text": "hello there world hello"}])
        );
        assert_eq!(v["stop_reason"], "end_turn");
        assert_eq!(v["stop_sequence"], Value::Null);
        // Same as the OpenAI test with the system prompt as a message: (2 + 3) + 3 × 2.
        assert_eq!(
            v["usage"],
            json!({"input_tokens": 11, "cache_creation_input_tokens": 0,
                   "cache_read_input_tokens": 0, "output_tokens": 4})
        );
        assert_eq!(
            st.stats(),
            MockStats {
                requests: 1,
                chat: 1,
                ..MockStats::default()
            }
        );
    }

    #[tokio::test]
    async fn max_tokens_truncates_and_tool_results_are_not_the_user_turn() {
        let st = MockState::new(MockConfig::default());
        let body = json!({"model": "m", "max_tokens": 3, "messages": [
            {"role": "user", "content": [{"type": "text", "text": "a b c d"}]},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "x y"}]}
        ]});
        let (_, v) = post_json(&st, &body).await;
        assert_eq!(v["content"][0]["text"], "a b c");
        assert_eq!(v["stop_reason"], "max_tokens");
        // 4 + 0 + 2 words, 3 messages.
        assert_eq!(v["usage"]["input_tokens"], 6 + 9);
        assert_eq!(v["usage"]["output_tokens"], 3);
    }

    #[tokio::test]
    async fn tools_answer_with_a_tool_use_block_unless_forbidden() {
        let st = MockState::new(MockConfig::default());
        let mut body = json!({"model": "m", "max_tokens": 10,
            "messages": [{"role": "user", "content": "weather?"}],
            "tools": [{"name": "first", "input_schema": {"type": "object"}}, {"name": "second", "input_schema": {"type": "object"}}]});
        let (_, v) = post_json(&st, &body).await;
        let block = &v["content"][0];
        assert_eq!(
            (block["type"].as_str(), block["name"].as_str()),
            (Some("tool_use"), Some("first"))
        );
        assert!(block["id"].as_str().unwrap().starts_with("call_mock_"));
        assert_eq!(block["input"], json!({}));
        assert_eq!(v["stop_reason"], "tool_use");
        assert_eq!(v["usage"]["output_tokens"], 1);

        body["tool_choice"] = json!({"type": "tool", "name": "second"});
        let (_, v) = post_json(&st, &body).await;
        assert_eq!(v["content"][0]["name"], "second");
        body["tool_choice"] = json!({"type": "none"});
        let (_, v) = post_json(&st, &body).await;
        assert_eq!(v["content"][0]["type"], "text");
    }

    #[tokio::test]
    async fn parallel_in_the_prompt_calls_every_tool_in_its_own_block() {
        let st = MockState::new(MockConfig::default());
        let mut body = json!({"model": "m", "max_tokens": 10,
            "messages": [{"role": "user", "content": "use both in parallel"}],
            "tools": [{"name": "first", "input_schema": {"type": "object"}}, {"name": "second", "input_schema": {"type": "object"}}]});
        let (_, v) = post_json(&st, &body).await;
        let names: Vec<&str> = v["content"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["first", "second"]);
        assert_ne!(v["content"][0]["id"], v["content"][1]["id"]);
        assert_eq!(v["usage"]["output_tokens"], 2);

        body["stream"] = json!(true);
        let evs = events(&text(post(&st, &body).await).await);
        let names: Vec<&str> = evs.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "message_start",
                "content_block_start",
                "ping",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        assert_eq!(evs[5].1["index"], 1);
        assert_eq!(evs[5].1["content_block"]["name"], "second");
        assert_eq!(evs[6].1["index"], 1);

        body["stream"] = json!(false);
        for choice in [
            json!({"type": "auto", "disable_parallel_tool_use": true}),
            json!({"type": "tool", "name": "second"}),
        ] {
            body["tool_choice"] = choice;
            let (_, v) = post_json(&st, &body).await;
            assert_eq!(v["content"].as_array().unwrap().len(), 1, "{v}");
        }
    }

    #[tokio::test]
    async fn stream_sends_named_events_in_anthropic_order() {
        let st = MockState::new(MockConfig {
            stream_words: 3,
            ..MockConfig::default()
        });
        let mut body = json!({"model": "m", "max_tokens": 100, "stream": true,
            "messages": [{"role": "user", "content": "x y"}]});
        let resp = post(&st, &body).await;
        assert_eq!(resp.headers()[header::CONTENT_TYPE], "text/event-stream");
        let evs = events(&text(resp).await);
        let names: Vec<&str> = evs.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "message_start",
                "content_block_start",
                "ping",
                "content_block_delta",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        let start = &evs[0].1["message"];
        assert_eq!(start["content"], json!([]));
        assert_eq!(start["stop_reason"], Value::Null);
        assert_eq!(start["usage"]["input_tokens"], 5);
        assert_eq!(
            evs[1].1["content_block"],
            json!({"type": "text", "text": ""})
        );
        let said: String = evs[3..6]
            .iter()
            .map(|(_, e)| e["delta"]["text"].as_str().unwrap())
            .collect();
        assert_eq!(said, "x y x");
        assert_eq!(
            evs[7].1,
            json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null},
                   "usage": {"output_tokens": 3}})
        );

        body["tools"] = json!([{"name": "f", "input_schema": {"type": "object"}}]);
        let evs = events(&text(post(&st, &body).await).await);
        assert_eq!(evs[1].1["content_block"]["type"], "tool_use");
        assert_eq!(
            evs[3].1["delta"],
            json!({"type": "input_json_delta", "partial_json": "{}"})
        );
        assert_eq!(evs[5].1["delta"]["stop_reason"], "tool_use");
        assert_eq!((st.stats().chat, st.stats().streams), (2, 2));
    }

    #[tokio::test]
    async fn failures_use_anthropic_error_bodies_and_retry_after() {
        let st = MockState::new(MockConfig {
            fail_rate: 1.0,
            fail_status: 429,
            retry_after_secs: Some(7),
            ..MockConfig::default()
        });
        let resp = post(&st, &hello()).await;
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(resp.headers()[header::RETRY_AFTER], "7");
        let v: Value = serde_json::from_str(&text(resp).await).unwrap();
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["type"], "rate_limit_error");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("claude-mock")
        );

        for (status, kind) in [
            (529, "overloaded_error"),
            (500, "api_error"),
            (401, "authentication_error"),
        ] {
            st.set_config(MockConfig {
                fail_rate: 1.0,
                fail_status: status,
                ..MockConfig::default()
            });
            let (got, v) = post_json(&st, &hello()).await;
            assert_eq!(got.as_u16(), status);
            assert_eq!(v["error"]["type"], kind);
        }
        assert_eq!(st.stats().faults, 4);
    }

    #[tokio::test]
    async fn invalid_requests_get_400_invalid_request_error() {
        let st = MockState::new(MockConfig::default());
        let missing = json!({"model": "m", "messages": [{"role": "user", "content": "x"}]});
        let (status, v) = post_json(&st, &missing).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("max_tokens")
        );
        let system_role = json!({"model": "m", "max_tokens": 1,
            "messages": [{"role": "system", "content": "x"}]});
        let (status, v) = post_json(&st, &system_role).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("messages.0.role")
        );
        assert_eq!(st.stats().requests, 2);
    }

    #[tokio::test]
    async fn malformed_and_cut_streams() {
        let st = MockState::new(MockConfig {
            malformed_rate: 1.0,
            ..MockConfig::default()
        });
        let body = json!({"model": "m", "max_tokens": 100, "stream": true,
            "messages": [{"role": "user", "content": "a"}]});
        let sse = text(post(&st, &body).await).await;
        let frames: Vec<&str> = sse.split("\n\n").filter(|f| !f.is_empty()).collect();
        // start, block start, ping, 8 words, block stop, message delta, stop: the middle one
        // (7) is replaced.
        assert_eq!(frames.len(), 14);
        assert_eq!(frames[7], "data: {not json");
        assert!(frames[13].starts_with("event: message_stop"));

        st.set_config(MockConfig {
            cut_rate: 1.0,
            ..MockConfig::default()
        });
        let mut body = post(&st, &body).await.into_body();
        let mut received = Vec::new();
        let err = loop {
            match body.frame().await {
                Some(Ok(frame)) => received.extend_from_slice(frame.data_ref().unwrap()),
                Some(Err(e)) => break e,
                None => panic!("stream ended without the cut"),
            }
        };
        assert!(err.to_string().contains("cut"), "{err}");
        let received = String::from_utf8(received).unwrap();
        assert_eq!(received.matches("event: ").count(), 7);
        assert!(!received.contains("message_stop"));
    }
}
