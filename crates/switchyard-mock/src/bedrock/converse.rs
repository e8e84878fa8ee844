//! The Converse wire: the request mirror the prompt rule reads, AWS's validation of the
//! conversation, and the bytes of the answers — the `ConverseResponse` JSON and the
//! ConverseStream event-stream messages. Pure: no state, no sleeping, no fault decisions.
//!
//! Usage follows the OpenAI handler's rule on the same conversation: words of every text
//! (tool results included) plus 3 per message, a non-empty `system` counting as one message as
//! it was one in the OpenAI request. A user turn made only of `toolResult` blocks is what
//! OpenAI sends as `tool` messages, so it is not "the last user message" the reply echoes; and
//! since it answers the tool call, the reply to it is text, not another call. A user turn
//! saying "parallel" is answered, as in the other wire formats, with a call to every tool
//! offered, unless `toolChoice` names one.

use aws_smithy_eventstream::frame::write_message_to;
use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::super::faults::Plan;
use super::super::openai::{self, Frames, Prompt, Reply, Text, asks_for_parallel, reply_to};

/// The parts of a Converse request the mock looks at; the rest is ignored.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ConverseRequest<'a> {
    /// Optional in AWS's schema (a managed prompt may supply it), so its absence is a
    /// validation error about the conversation rather than a parse error.
    #[serde(default, borrow)]
    messages: Option<Vec<Turn<'a>>>,
    #[serde(default, borrow)]
    system: Vec<SystemBlock<'a>>,
    #[serde(default)]
    inference_config: InferenceConfig,
    #[serde(default, borrow)]
    tool_config: Option<ToolConfig<'a>>,
}

/// A conversation turn: a Converse `Message`.
#[derive(Deserialize)]
struct Turn<'a> {
    #[serde(borrow)]
    role: Text<'a>,
    #[serde(default, borrow)]
    content: Vec<Block<'a>>,
}

/// A content block, keyed by its shape: `text`, `toolResult`, or others (`image`, `toolUse`,
/// `document`, …) that count as having no words.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Block<'a> {
    #[serde(default, borrow)]
    text: Option<Text<'a>>,
    #[serde(default, borrow)]
    tool_result: Option<ToolResult<'a>>,
}

#[derive(Deserialize)]
struct ToolResult<'a> {
    #[serde(default, borrow)]
    content: Vec<ResultBlock<'a>>,
}

/// A tool result's block: `text`, or `json` counted as its compact JSON.
#[derive(Deserialize)]
struct ResultBlock<'a> {
    #[serde(default, borrow)]
    text: Option<Text<'a>>,
    #[serde(default)]
    json: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct SystemBlock<'a> {
    #[serde(default, borrow)]
    text: Option<Text<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct InferenceConfig {
    #[serde(default)]
    max_tokens: Option<u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ToolConfig<'a> {
    #[serde(default, borrow)]
    tools: Vec<Tool<'a>>,
    #[serde(default, borrow)]
    tool_choice: Option<ToolChoice<'a>>,
}

/// A tool entry: a `toolSpec`, or a `cachePoint` that names no tool.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Tool<'a> {
    #[serde(default, borrow)]
    tool_spec: Option<ToolName<'a>>,
}

#[derive(Deserialize)]
struct ToolName<'a> {
    #[serde(borrow)]
    name: Text<'a>,
}

/// `{"auto":{}}`, `{"any":{}}` or `{"tool":{"name"}}`; only the last changes the mock's pick.
#[derive(Deserialize)]
struct ToolChoice<'a> {
    #[serde(default, borrow)]
    tool: Option<ToolName<'a>>,
}

impl Turn<'_> {
    fn is_user(&self) -> bool {
        self.role.as_str() == "user"
    }

    /// The words this turn says itself.
    fn words(&self) -> impl Iterator<Item = &str> + Clone {
        self.content
            .iter()
            .filter_map(|b| b.text.as_ref().map(Text::as_str))
            .flat_map(str::split_whitespace)
    }

    /// Every word the prompt rule counts: own texts and those inside tool results.
    fn word_count(&self) -> usize {
        let results: usize = self
            .content
            .iter()
            .filter_map(|b| b.tool_result.as_ref())
            .flat_map(|r| &r.content)
            .map(|b| {
                let text = b
                    .text
                    .as_ref()
                    .map_or(0, |t| t.as_str().split_whitespace().count());
                let json = b
                    .json
                    .as_ref()
                    .map_or(0, |j| j.to_string().split_whitespace().count());
                text + json
            })
            .sum();
        self.words().count() + results
    }

    fn only_tool_results(&self) -> bool {
        !self.content.is_empty() && self.content.iter().all(|b| b.tool_result.is_some())
    }
}

impl ConverseRequest<'_> {
    fn messages(&self) -> &[Turn<'_>] {
        self.messages.as_deref().unwrap_or_default()
    }

    /// AWS's checks, in the order it reports them, with its wording (constraint violations
    /// number list members from 1; conversation errors number messages from 0).
    pub(super) fn validate(&self) -> Result<(), String> {
        let messages = self.messages();
        for (i, m) in messages.iter().enumerate() {
            let role = m.role.as_str();
            if !matches!(role, "user" | "assistant") {
                return Err(format!(
                    "1 validation error detected: Value '{role}' at 'messages.{}.member.role' \
                     failed to satisfy constraint: Member must satisfy enum value set: \
                     [user, assistant]",
                    i + 1
                ));
            }
        }
        if self.inference_config.max_tokens == Some(0) {
            return Err(
                "1 validation error detected: Value '0' at 'inferenceConfig.maxTokens' \
                        failed to satisfy constraint: Member must have value greater than or \
                        equal to 1"
                    .to_owned(),
            );
        }
        if let Some(i) = messages.iter().position(|m| m.content.is_empty()) {
            return Err(format!(
                "The content field in the Message object at messages.{i} is empty. Add a \
                 ContentBlock object to the content field and try again."
            ));
        }
        if !messages.first().is_some_and(Turn::is_user) {
            return Err(
                "A conversation must start with a user message. Try again with a \
                        conversation that starts with a user message."
                    .to_owned(),
            );
        }
        if messages
            .windows(2)
            .any(|w| w[0].is_user() == w[1].is_user())
        {
            return Err(
                "A conversation must alternate between user and assistant roles. \
                        Make sure the conversation alternates between user and assistant \
                        roles and try again."
                    .to_owned(),
            );
        }
        Ok(())
    }

    /// The tool to call: when tools are offered (Converse has no "none" choice) and the
    /// conversation is not handing back a call's results, the named tool or else the first.
    fn tool_to_call(&self) -> Option<&str> {
        let config = self.tool_config.as_ref()?;
        let first = config.tools.iter().find_map(|t| t.tool_spec.as_ref())?;
        let answered = self
            .messages()
            .iter()
            .rev()
            .find(|m| m.is_user())
            .is_some_and(Turn::only_tool_results);
        if answered {
            return None;
        }
        let named = config.tool_choice.as_ref().and_then(|c| c.tool.as_ref());
        Some(named.unwrap_or(first).name.as_str())
    }

    /// The deterministic reply: the OpenAI handler's, with a call to every offered tool when
    /// the user turn says "parallel" and `toolChoice` names no tool.
    pub(super) fn reply(&self, stream_words: usize, seq: u64) -> Reply<'_> {
        let prompt = self.prompt();
        let config = self.tool_config.as_ref();
        let named =
            config.is_some_and(|c| c.tool_choice.as_ref().is_some_and(|t| t.tool.is_some()));
        let parallel = !named && prompt.user_words.clone().is_some_and(asks_for_parallel);
        let reply = reply_to(prompt, stream_words, seq, 1);
        match config {
            Some(config) if parallel => {
                let offered = config.tools.iter().filter_map(|t| t.tool_spec.as_ref());
                reply.in_parallel(offered.map(|t| t.name.as_str()), 1)
            }
            _ => reply,
        }
    }

    fn prompt(&self) -> Prompt<'_, impl Iterator<Item = &str> + Clone> {
        let messages = self.messages();
        let system = self.system.iter().any(|b| b.text.is_some());
        let system_words: usize = self
            .system
            .iter()
            .filter_map(|b| b.text.as_ref())
            .map(|t| t.as_str().split_whitespace().count())
            .sum();
        let words = system_words + messages.iter().map(Turn::word_count).sum::<usize>();
        let count = messages.len() + usize::from(system);
        let user_words = messages
            .iter()
            .rev()
            .find(|m| m.is_user() && !m.only_tool_results())
            .map(Turn::words);
        Prompt {
            tokens: (words + 3 * count) as u64,
            tool: self.tool_to_call(),
            limit: self.inference_config.max_tokens,
            user_words,
        }
    }
}

#[derive(Serialize, Clone, Copy)]
#[serde(rename_all = "camelCase")]
struct TokenUsage {
    input_tokens: u64,
    output_tokens: u64,
    total_tokens: u64,
}

#[derive(Serialize, Clone, Copy)]
#[serde(rename_all = "camelCase")]
struct Metrics {
    latency_ms: u64,
}

/// `input` of a tool call: the mock's calls take no arguments, as in the other wire formats.
#[derive(Serialize, Clone, Copy)]
struct NoInput {}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
enum OutBlock<'a> {
    Text(&'a str),
    ToolUse {
        #[serde(rename = "toolUseId")]
        tool_use_id: &'a str,
        name: &'a str,
        input: NoInput,
    },
}

#[derive(Serialize)]
struct OutMessage<'a> {
    role: &'static str,
    content: Vec<OutBlock<'a>>,
}

#[derive(Serialize)]
struct Output<'a> {
    message: OutMessage<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ConverseResponse<'a> {
    output: Output<'a>,
    stop_reason: &'static str,
    /// Left out when the mock plays a server that reports no usage.
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<TokenUsage>,
    metrics: Metrics,
}

/// ConverseStream's event payloads; the `:event-type` header carries the name.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MessageStart {
    role: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BlockStart<'a> {
    content_block_index: u32,
    start: StartBody<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
enum StartBody<'a> {
    ToolUse {
        #[serde(rename = "toolUseId")]
        tool_use_id: &'a str,
        name: &'a str,
    },
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BlockDelta<'a> {
    content_block_index: u32,
    delta: DeltaBody<'a>,
    /// AWS pads event payloads to hide token lengths; a client must ignore the field.
    p: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
enum DeltaBody<'a> {
    Text(&'a str),
    ToolUse { input: &'a str },
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BlockStop {
    content_block_index: u32,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MessageStop {
    stop_reason: &'static str,
}

#[derive(Serialize)]
struct Metadata {
    usage: TokenUsage,
    metrics: Metrics,
}

/// What AWS pads with: a prefix of this, of varying length.
const PADDING: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

fn padding(i: usize) -> &'static str {
    const SHORTEST: usize = 10;
    &PADDING[..SHORTEST + (i * 7) % (PADDING.len() - SHORTEST)]
}

/// Why a stream could not be encoded; neither happens with the mock's own payloads.
#[derive(Debug, thiserror::Error)]
pub(crate) enum EncodeError {
    #[error("encoding an event payload: {0}")]
    Json(#[from] serde_json::Error),
    #[error("framing an event-stream message: {0}")]
    Frame(#[from] aws_smithy_eventstream::error::Error),
}

/// One event-stream message in `buf`: an event, or with `exception` set an exception.
fn frame(
    buf: &mut Vec<u8>,
    kind: &str,
    exception: bool,
    payload: Bytes,
) -> Result<(), EncodeError> {
    let (type_header, message_type) = if exception {
        (":exception-type", "exception")
    } else {
        (":event-type", "event")
    };
    let message = Message::new(payload)
        .add_header(Header::new(
            type_header,
            HeaderValue::String(kind.to_owned().into()),
        ))
        .add_header(Header::new(
            ":content-type",
            HeaderValue::String("application/json".into()),
        ))
        .add_header(Header::new(
            ":message-type",
            HeaderValue::String(message_type.into()),
        ));
    write_message_to(&message, buf)?;
    Ok(())
}

/// A mid-stream exception message as ConverseStream sends one (`throttlingException`,
/// `internalServerException`, `modelStreamErrorException`, …): framed like an event, with
/// `:message-type` `exception` and a `{"message"}` payload.
#[cfg_attr(
    not(test),
    expect(
        dead_code,
        reason = "kept for injecting mid-stream failures; tested meanwhile"
    )
)]
pub(crate) fn exception_frame(kind: &str, message: &str) -> Result<Bytes, EncodeError> {
    #[derive(Serialize)]
    struct Body<'a> {
        message: &'a str,
    }
    let payload = serde_json::to_vec(&Body { message })?;
    let mut buf = Vec::with_capacity(payload.len() + 100);
    frame(&mut buf, kind, true, Bytes::from(payload))?;
    Ok(Bytes::from(buf))
}

/// The mock's answer to one Converse request, ready to be written either way.
pub(super) struct Answering<'a> {
    pub reply: &'a Reply<'a>,
    /// Reported as the request's `latencyMs`: what the mock was told to take.
    pub latency_ms: u64,
    pub with_usage: bool,
}

impl Answering<'_> {
    fn stop_reason(&self) -> &'static str {
        match &self.reply.answer {
            openai::Answer::Text {
                finish_reason: "length",
                ..
            } => "max_tokens",
            openai::Answer::Text { .. } => "end_turn",
            openai::Answer::ToolCall { .. } => "tool_use",
        }
    }

    fn usage(&self) -> TokenUsage {
        let u = &self.reply.usage;
        TokenUsage {
            input_tokens: u.prompt_tokens,
            output_tokens: u.completion_tokens,
            total_tokens: u.prompt_tokens + u.completion_tokens,
        }
    }

    fn metrics(&self) -> Metrics {
        Metrics {
            latency_ms: self.latency_ms,
        }
    }

    /// Every tool call of the answer as (name, `toolUseId`), in order.
    fn calls(&self) -> Vec<(&str, String)> {
        self.reply
            .calls()
            .map(|(name, call_id)| (name, tool_use_id(call_id)))
            .collect()
    }

    /// The `ConverseResponse` JSON.
    pub(super) fn whole(&self) -> serde_json::Result<Vec<u8>> {
        let calls = self.calls();
        let content = match &self.reply.answer {
            openai::Answer::Text { text, .. } if text.is_empty() => vec![],
            openai::Answer::Text { text, .. } => vec![OutBlock::Text(text)],
            openai::Answer::ToolCall { .. } => calls
                .iter()
                .map(|(name, id)| OutBlock::ToolUse {
                    tool_use_id: id,
                    name,
                    input: NoInput {},
                })
                .collect(),
        };
        serde_json::to_vec(&ConverseResponse {
            output: Output {
                message: OutMessage {
                    role: "assistant",
                    content,
                },
            },
            stop_reason: self.stop_reason(),
            usage: self.with_usage.then(|| self.usage()),
            metrics: self.metrics(),
        })
    }

    /// The (event type, JSON payload) pairs of ConverseStream, in AWS's order:
    /// `messageStart`; a text block as one `contentBlockDelta` per word (each keeps its
    /// trailing space but the last, so they concatenate to the whole text) and its
    /// `contentBlockStop`, or per tool call a block of its own: `contentBlockStart`, its input
    /// JSON in two deltas, `contentBlockStop`; `messageStop`; `metadata` with usage and
    /// metrics unless usage is omitted.
    fn events(&self) -> serde_json::Result<Vec<(&'static str, Vec<u8>)>> {
        let mut events = vec![(
            "messageStart",
            serde_json::to_vec(&MessageStart { role: "assistant" })?,
        )];
        let mut deltas = 0;
        let mut delta = |index: u32, delta: DeltaBody<'_>| {
            deltas += 1;
            let payload = BlockDelta {
                content_block_index: index,
                delta,
                p: padding(deltas),
            };
            serde_json::to_vec(&payload).map(|bytes| ("contentBlockDelta", bytes))
        };
        let stop = |index: u32| {
            let stop = BlockStop {
                content_block_index: index,
            };
            serde_json::to_vec(&stop).map(|bytes| ("contentBlockStop", bytes))
        };
        match &self.reply.answer {
            openai::Answer::Text { text, .. } if text.is_empty() => {}
            openai::Answer::Text { text, .. } => {
                for word in text.split_inclusive(' ') {
                    events.push(delta(0, DeltaBody::Text(word))?);
                }
                events.push(stop(0)?);
            }
            openai::Answer::ToolCall { .. } => {
                let input = serde_json::to_string(&NoInput {})?;
                let (head, tail) = split_in_two(&input);
                for (index, (name, id)) in (0..).zip(self.calls()) {
                    let start = BlockStart {
                        content_block_index: index,
                        start: StartBody::ToolUse {
                            tool_use_id: &id,
                            name,
                        },
                    };
                    events.push(("contentBlockStart", serde_json::to_vec(&start)?));
                    events.push(delta(index, DeltaBody::ToolUse { input: head })?);
                    events.push(delta(index, DeltaBody::ToolUse { input: tail })?);
                    events.push(stop(index)?);
                }
            }
        }
        let stop = MessageStop {
            stop_reason: self.stop_reason(),
        };
        events.push(("messageStop", serde_json::to_vec(&stop)?));
        if self.with_usage {
            let metadata = Metadata {
                usage: self.usage(),
                metrics: self.metrics(),
            };
            events.push(("metadata", serde_json::to_vec(&metadata)?));
        }
        Ok(events)
    }

    /// The ConverseStream body as event-stream frames. With `plan.malformed` one middle
    /// message carries `{not json` with valid framing: at the middle, where `sse` would
    /// put its own, or just before it when `sse` is to cut there, so both faults show.
    pub(super) fn stream_frames(&self, plan: Plan) -> Result<Frames, EncodeError> {
        let events = self.events()?;
        let mid = events.len() / 2;
        let malformed_at = plan
            .malformed
            .then(|| if plan.cut { mid.saturating_sub(1) } else { mid });
        let mut buf = Vec::with_capacity(events.iter().map(|(_, p)| p.len() + 100).sum());
        let mut ends = Vec::with_capacity(events.len());
        for (i, (kind, payload)) in events.into_iter().enumerate() {
            let payload = if malformed_at == Some(i) {
                Bytes::from_static(b"{not json")
            } else {
                Bytes::from(payload)
            };
            frame(&mut buf, kind, false, payload)?;
            ends.push(buf.len());
        }
        Ok(Frames {
            bytes: Bytes::from(buf),
            ends,
        })
    }
}

/// Bedrock's id for the mock's call `call_id`: `tooluse_` and the other mocks' numbering.
fn tool_use_id(call_id: &str) -> String {
    format!(
        "tooluse_{}",
        call_id.strip_prefix("call_").unwrap_or(call_id)
    )
}

/// `s` in two halves (split between characters), so a client must join deltas.
fn split_in_two(s: &str) -> (&str, &str) {
    let half = s.chars().count().div_ceil(2);
    let at = s.char_indices().nth(half).map_or(s.len(), |(i, _)| i);
    s.split_at(at)
}
