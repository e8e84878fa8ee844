//! ConverseStream (`application/vnd.amazon.eventstream`) → OpenAI `chat.completion.chunk`s.
//! [`Frames`] cuts the body into event-stream messages (the aws-smithy-eventstream decoder,
//! which checks both CRCs); [`Translator`] turns each message into chunks and is pure, so
//! transcripts replay without HTTP. This file decides when a stream is broken (idle, cut,
//! malformed, exception message); it never retries or sees routing.
//!
//! A message's `:message-type` header says what it is: an `event` (its `:event-type` names the
//! JSON payload: `messageStart`, `contentBlockStart`, `contentBlockDelta`, `contentBlockStop`,
//! `messageStop`, `metadata`), an `exception` (`:exception-type`, payload `{"message"}`), or an
//! `error` (`:error-code`, `:error-message`). The answer is complete at `messageStop`; the
//! `metadata` event with the usage follows it and ends the stream. A body that ends after
//! `messageStop` without `metadata` is complete too, and the gateway estimates the usage.

use aws_smithy_eventstream::frame::{DecodedFrame, MessageFrameDecoder};
use aws_smithy_types::event_stream::Message;
use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt, TryStreamExt};
use std::collections::VecDeque;
use std::pin::Pin;
use std::time::Duration;
use tokio::time::Instant;

use super::convert::{finish_reason, usage};
use super::wire::{
    ContentBlockDelta, ContentBlockStart, ErrorBody, MessageStop, StreamMetadata, TokenUsage,
};
use crate::providers::canonical::{Chunk, ChunkChoice, Delta, OaOutToolCall, OaUsage};
use crate::providers::{ChatStream, ProviderError, StreamChunk};

/// The largest frame accepted. The event-stream format caps a message at 16 MiB of payload and
/// 128 KiB of headers; a larger length prefix is corruption, not a big event, and is refused
/// before its bytes are waited for.
const MAX_FRAME: u32 = 16 * 1024 * 1024 + 128 * 1024 + 16;
/// Prelude (total length, headers length, prelude CRC) and message CRC.
const MIN_FRAME: u32 = 16;

/// Turn an upstream response body into chunks. `idle` bounds the wait for each event; `id`,
/// `model` and `created` are stamped on every chunk.
pub fn chunks(
    resp: reqwest::Response,
    idle: Duration,
    id: String,
    model: &str,
    created: u64,
) -> ChatStream {
    let bytes = resp
        .bytes_stream()
        .map_err(|e| crate::providers::short_cause(&e));
    chunks_from(bytes, idle, id, model, created)
}

/// [`chunks`] over any byte stream: the adapter feeds it a response body, tests a transcript.
pub(super) fn chunks_from<S>(
    bytes: S,
    idle: Duration,
    id: String,
    model: &str,
    created: u64,
) -> ChatStream
where
    S: Stream<Item = Result<Bytes, String>> + Send + 'static,
{
    let state = State {
        bytes: Box::pin(bytes),
        frames: Frames::default(),
        translator: Translator::new(id, model, created),
        pending: VecDeque::new(),
        finished: false,
        idle,
    };
    futures::stream::unfold(state, next).boxed()
}

type Body = Pin<Box<dyn Stream<Item = Result<Bytes, String>> + Send>>;

struct State {
    bytes: Body,
    frames: Frames,
    translator: Translator,
    /// Chunks made but not yet yielded: one event can make several.
    pending: VecDeque<StreamChunk>,
    /// No more bytes are read: the stream completed or something failed.
    finished: bool,
    idle: Duration,
}

type Next = Option<(Result<StreamChunk, ProviderError>, State)>;

impl State {
    /// Yield `e` and end the stream: nothing after a failure is trustworthy.
    fn fail(mut self, e: ProviderError) -> Next {
        self.finished = true;
        self.pending.clear();
        Some((Err(e), self))
    }
}

async fn next(mut st: State) -> Next {
    // The idle limit runs from the last complete event, not from the last read: a frame that
    // trickles in byte by byte does not keep a stalled stream alive.
    let mut deadline = Instant::now() + st.idle;
    loop {
        if let Some(chunk) = st.pending.pop_front() {
            return Some((Ok(chunk), st));
        }
        if st.finished {
            return None;
        }
        match st.frames.next_message() {
            Err(e) => return st.fail(e),
            Ok(Some(message)) => {
                deadline = Instant::now() + st.idle;
                match st.translator.message(&message) {
                    Ok(step) => {
                        st.finished = step.done;
                        st.pending.extend(step.chunks);
                    }
                    Err(e) => return st.fail(e),
                }
                continue;
            }
            Ok(None) => {}
        }
        let Ok(read) = tokio::time::timeout_at(deadline, st.bytes.next()).await else {
            return st.fail(ProviderError::Timeout {
                phase: "stream_idle",
            });
        };
        match read {
            Some(Ok(bytes)) => st.frames.push(&bytes),
            Some(Err(e)) => return st.fail(ProviderError::StreamCut(e)),
            None => {
                st.finished = true;
                if let Err(e) = st.frames.end().and_then(|()| st.translator.end()) {
                    return st.fail(e);
                }
            }
        }
    }
}

/// Cuts a byte stream into event-stream messages, whatever the read boundaries.
#[derive(Debug, Default)]
pub(super) struct Frames {
    buf: BytesMut,
    decoder: MessageFrameDecoder,
    /// The decoder holds the prelude of a frame whose rest has not arrived.
    in_frame: bool,
}

impl Frames {
    pub(super) fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete message, `None` until enough bytes are in. A bad length or CRC is a
    /// malformed chunk.
    pub(super) fn next_message(&mut self) -> Result<Option<Message>, ProviderError> {
        if !self.in_frame && self.buf.len() >= 4 {
            let total = u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]);
            if !(MIN_FRAME..=MAX_FRAME).contains(&total) {
                return Err(ProviderError::MalformedChunk(format!(
                    "event stream frame of {total} bytes"
                )));
            }
        }
        let prelude_taken = !self.in_frame && self.buf.len() >= 12;
        match self.decoder.decode_frame(&mut self.buf) {
            Ok(DecodedFrame::Complete(message)) => {
                self.in_frame = false;
                Ok(Some(message))
            }
            Ok(DecodedFrame::Incomplete) => {
                self.in_frame |= prelude_taken;
                Ok(None)
            }
            Err(e) => Err(ProviderError::MalformedChunk(format!(
                "event stream frame: {e}"
            ))),
        }
    }

    /// The body ended: fine between frames, a cut inside one.
    pub(super) fn end(&self) -> Result<(), ProviderError> {
        if self.in_frame || !self.buf.is_empty() {
            return Err(ProviderError::StreamCut(
                "the body ended inside an event stream frame".into(),
            ));
        }
        Ok(())
    }
}

/// What one message amounts to.
#[derive(Debug, Default)]
pub(super) struct Step {
    pub chunks: Vec<StreamChunk>,
    /// The stream is complete after these chunks.
    pub done: bool,
}

impl Step {
    fn chunk(chunk: StreamChunk) -> Self {
        Self {
            chunks: vec![chunk],
            done: false,
        }
    }
}

/// The per-stream state the translation needs: the identity every chunk repeats, which content
/// blocks are tool calls, the finish reason and the usage.
#[derive(Debug)]
pub(super) struct Translator {
    id: String,
    model: String,
    created: u64,
    /// The role chunk went out.
    started: bool,
    /// (content block index, OpenAI tool-call index) of each tool-use block so far: OpenAI
    /// numbers tool calls from 0, Bedrock numbers all blocks, text included.
    tools: Vec<(u64, u32)>,
    /// `messageStop` arrived: the answer is complete.
    stopped: bool,
    /// Reported by `metadata`, held until `messageStop` if it came first.
    usage: Option<TokenUsage>,
}

impl Translator {
    pub(super) fn new(id: String, model: &str, created: u64) -> Self {
        Self {
            id,
            model: model.to_owned(),
            created,
            started: false,
            tools: Vec::new(),
            stopped: false,
            usage: None,
        }
    }

    /// Translate one event-stream message.
    pub(super) fn message(&mut self, message: &Message) -> Result<Step, ProviderError> {
        let payload = message.payload();
        match header(message, ":message-type") {
            Some("event") => match header(message, ":event-type") {
                Some(event_type) => self.event(event_type, payload),
                None => Err(ProviderError::MalformedChunk(
                    "event without :event-type".into(),
                )),
            },
            Some("exception") => Err(exception(
                header(message, ":exception-type").unwrap_or("unknownException"),
                payload,
            )),
            Some("error") => Err(exception(
                header(message, ":error-code").unwrap_or("unknownError"),
                header(message, ":error-message")
                    .unwrap_or_default()
                    .as_bytes(),
            )),
            // A kind of message added after this was written: nothing for the client.
            Some(_) => Ok(Step::default()),
            None => Err(ProviderError::MalformedChunk(
                "message without :message-type".into(),
            )),
        }
    }

    /// Translate one event's JSON payload.
    pub(super) fn event(
        &mut self,
        event_type: &str,
        payload: &[u8],
    ) -> Result<Step, ProviderError> {
        match event_type {
            "messageStart" => {
                parse::<serde::de::IgnoredAny>(payload)?;
                if self.started {
                    return Ok(Step::default());
                }
                self.chunk(Delta::default(), None).map(Step::chunk)
            }
            "contentBlockStart" => {
                let ev: ContentBlockStart<'_> = parse(payload)?;
                let Some(call) = ev.start.and_then(|s| s.tool_use) else {
                    return Ok(Step::default());
                };
                // invariant: a message has far fewer than 2^32 content blocks.
                let ordinal = u32::try_from(self.tools.len()).unwrap_or(u32::MAX);
                self.tools.push((ev.content_block_index, ordinal));
                let call = OaOutToolCall::whole(Some(ordinal), call.tool_use_id, &call.name, "");
                self.chunk(
                    Delta {
                        tool_calls: vec![call],
                        ..Delta::default()
                    },
                    None,
                )
                .map(Step::chunk)
            }
            "contentBlockDelta" => {
                let ev: ContentBlockDelta<'_> = parse(payload)?;
                let Some(delta) = ev.delta else {
                    return Ok(Step::default());
                };
                if let Some(text) = delta.text.as_deref().filter(|t| !t.is_empty()) {
                    return self
                        .chunk(
                            Delta {
                                content: Some(text),
                                ..Delta::default()
                            },
                            None,
                        )
                        .map(Step::chunk);
                }
                let Some(input) = delta.tool_use.as_ref().map(|t| &*t.input) else {
                    // Reasoning, or a kind of delta added later.
                    return Ok(Step::default());
                };
                let index = ev.content_block_index;
                let Some(&(_, ordinal)) = self.tools.iter().find(|(i, _)| *i == index) else {
                    return Err(ProviderError::MalformedChunk(format!(
                        "tool input for content block {index}, which started no tool call"
                    )));
                };
                if input.is_empty() {
                    return Ok(Step::default());
                }
                self.chunk(
                    Delta {
                        tool_calls: vec![OaOutToolCall::fragment(ordinal, input)],
                        ..Delta::default()
                    },
                    None,
                )
                .map(Step::chunk)
            }
            "messageStop" => {
                let ev: MessageStop<'_> = parse(payload)?;
                self.stopped = true;
                let reason = finish_reason(ev.stop_reason.as_deref().unwrap_or("end_turn"));
                let mut step = Step::chunk(self.chunk(Delta::default(), Some(reason))?);
                if let Some(reported) = self.usage {
                    step.chunks.push(self.usage_chunk(&reported)?);
                    step.done = true;
                }
                Ok(step)
            }
            "metadata" => {
                let ev: StreamMetadata = parse(payload)?;
                let Some(reported) = ev.usage else {
                    return Ok(Step {
                        chunks: Vec::new(),
                        done: self.stopped,
                    });
                };
                if !self.stopped {
                    // Usage goes last, after the finish chunk: hold it for messageStop.
                    self.usage = Some(reported);
                    return Ok(Step::default());
                }
                Ok(Step {
                    chunks: vec![self.usage_chunk(&reported)?],
                    done: true,
                })
            }
            // contentBlockStop, and event types added after this was written.
            _ => Ok(Step::default()),
        }
    }

    /// The body ended: complete if `messageStop` came, a cut otherwise.
    pub(super) fn end(&self) -> Result<(), ProviderError> {
        if self.stopped {
            Ok(())
        } else {
            Err(ProviderError::StreamCut(
                "stream ended before messageStop".into(),
            ))
        }
    }

    /// A chunk of choice 0. The first chunk of a stream carries the role (and `content`, even
    /// empty, as OpenAI's first chunk does).
    fn chunk(
        &mut self,
        mut delta: Delta<'_>,
        finish_reason: Option<&'static str>,
    ) -> Result<StreamChunk, ProviderError> {
        if !self.started {
            self.started = true;
            delta.role = Some("assistant");
            delta.content = delta.content.or(Some(""));
        }
        let choice = ChunkChoice {
            index: 0,
            delta,
            logprobs: None,
            finish_reason,
        };
        Ok(StreamChunk {
            data: self.serialize(std::slice::from_ref(&choice), None)?,
            usage: None,
            finish_reason: finish_reason.map(str::to_owned),
            usage_only: false,
        })
    }

    fn usage_chunk(&self, reported: &TokenUsage) -> Result<StreamChunk, ProviderError> {
        let (usage, oa_usage) = usage(reported);
        Ok(StreamChunk {
            data: self.serialize(&[], Some(oa_usage))?,
            usage: Some(usage),
            finish_reason: None,
            usage_only: true,
        })
    }

    fn serialize(
        &self,
        choices: &[ChunkChoice<'_>],
        usage: Option<OaUsage>,
    ) -> Result<Bytes, ProviderError> {
        Chunk::encode(&self.id, self.created, &self.model, choices, usage)
    }
}

/// A string header of `message`.
fn header<'m>(message: &'m Message, name: &str) -> Option<&'m str> {
    message
        .headers()
        .iter()
        .find(|h| h.name().as_str() == name)
        .and_then(|h| h.value().as_string().ok())
        .map(|s| s.as_str())
}

fn parse<'a, T: serde::Deserialize<'a>>(payload: &'a [u8]) -> Result<T, ProviderError> {
    serde_json::from_slice(payload).map_err(|e| ProviderError::MalformedChunk(e.to_string()))
}

/// An exception (or error) message mid-stream → the status Bedrock documents for it, so it is
/// classed like the same failure before the stream started. The type is written as the
/// `x-amzn-ErrorType` header names it (`ThrottlingException`), whichever spelling came.
pub(super) fn exception(name: &str, payload: &[u8]) -> ProviderError {
    let error_type = upper_first(name);
    let status = match error_type.as_str() {
        "ThrottlingException" => 429,
        "ValidationException" => 400,
        "AccessDeniedException" => 403,
        "ResourceNotFoundException" => 404,
        "ModelTimeoutException" => 408,
        "ServiceUnavailableException" => 503,
        "InternalServerException" => 500,
        // Documented as 424, but it is the model failing mid-answer, not the request: a 5xx.
        "ModelStreamErrorException" => 502,
        _ => 502,
    };
    let message = serde_json::from_slice::<ErrorBody>(payload)
        .ok()
        .and_then(|b| b.message)
        .unwrap_or_else(|| String::from_utf8_lossy(payload).chars().take(512).collect());
    let message = if matches!(status, 401 | 403) {
        "the provider rejected the gateway's credentials".to_owned()
    } else if message.is_empty() {
        format!("{error_type} mid-stream")
    } else {
        message
    };
    ProviderError::upstream(status, message, Some(error_type), None, None)
}

fn upper_first(name: &str) -> String {
    let mut chars = name.chars();
    match chars.next() {
        Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
pub(super) mod tests;
