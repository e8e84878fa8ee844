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
mod tests;
