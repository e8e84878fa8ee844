//! The OpenAI chat wire as the mock speaks it: light request mirrors that borrow from the
//! body, the deterministic reply and usage, and the bytes of every answer (JSON, SSE frames,
//! the model list, error bodies). Pure: no state, no sleeping, no fault decisions — `mod.rs`
//! owns those; embeddings live in `embeddings.rs`.

use std::borrow::Cow;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// A string from the request body, borrowed unless it contains escapes.
#[derive(Deserialize)]
#[serde(transparent)]
pub(crate) struct Text<'a>(#[serde(borrow)] Cow<'a, str>);

impl Text<'_> {
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

/// The parts of a CreateChatCompletionRequest the mock looks at; the rest is ignored.
#[derive(Deserialize)]
pub(crate) struct ChatRequest<'a> {
    #[serde(borrow)]
    model: Text<'a>,
    #[serde(borrow)]
    messages: Vec<Message<'a>>,
    pub n: Option<u32>,
    pub stream: Option<bool>,
    stream_options: Option<StreamOptions>,
    max_tokens: Option<u64>,
    max_completion_tokens: Option<u64>,
    #[serde(borrow)]
    tools: Option<Vec<Tool<'a>>>,
    #[serde(borrow)]
    tool_choice: Option<ToolChoice<'a>>,
    parallel_tool_calls: Option<bool>,
}

#[derive(Deserialize)]
struct Message<'a> {
    #[serde(borrow)]
    role: Text<'a>,
    #[serde(borrow)]
    content: Option<Content<'a>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Content<'a> {
    Text(#[serde(borrow)] Text<'a>),
    Parts(#[serde(borrow)] Vec<Part<'a>>),
}

/// A content part; only text parts carry `text`, images and audio are skipped.
#[derive(Deserialize)]
struct Part<'a> {
    #[serde(borrow)]
    text: Option<Text<'a>>,
}

#[derive(Deserialize)]
struct StreamOptions {
    include_usage: Option<bool>,
}

#[derive(Deserialize)]
struct Tool<'a> {
    #[serde(borrow)]
    function: Option<FunctionName<'a>>,
}

#[derive(Deserialize)]
struct FunctionName<'a> {
    #[serde(borrow)]
    name: Text<'a>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ToolChoice<'a> {
    Mode(#[serde(borrow)] Text<'a>),
    Named {
        #[serde(borrow)]
        function: FunctionName<'a>,
    },
    Other(serde::de::IgnoredAny),
}

impl Content<'_> {
    fn words(&self) -> impl Iterator<Item = &str> + Clone {
        let (one, parts) = match self {
            Content::Text(t) => (Some(t.as_str()), &[][..]),
            Content::Parts(parts) => (None, parts.as_slice()),
        };
        let texts = parts
            .iter()
            .filter_map(|p| p.text.as_ref().map(Text::as_str));
        one.into_iter().chain(texts).flat_map(str::split_whitespace)
    }
}

impl ChatRequest<'_> {
    pub(crate) fn model(&self) -> &str {
        self.model.as_str()
    }

    pub(crate) fn include_usage(&self) -> bool {
        self.stream_options
            .as_ref()
            .and_then(|o| o.include_usage)
            .unwrap_or(false)
    }

    /// The function to call, if the request offers tools and does not forbid them. A named
    /// `tool_choice` wins over the first tool, as OpenAI would be forced to call it.
    fn tool_to_call(&self) -> Option<&str> {
        let first = self
            .tools
            .as_ref()?
            .iter()
            .find_map(|t| t.function.as_ref())?;
        match &self.tool_choice {
            Some(ToolChoice::Mode(mode)) if mode.as_str() == "none" => None,
            Some(ToolChoice::Named { function }) => Some(function.name.as_str()),
            _ => Some(first.name.as_str()),
        }
    }

    /// Whether a tool call may be joined by calls to the other tools: not when the choice names
    /// one tool or the client turned parallel calls off.
    fn parallel_allowed(&self) -> bool {
        !matches!(self.tool_choice, Some(ToolChoice::Named { .. }))
            && self.parallel_tool_calls != Some(false)
    }

    fn tool_names(&self) -> impl Iterator<Item = &str> {
        self.tools
            .iter()
            .flatten()
            .filter_map(|t| t.function.as_ref())
            .map(|f| f.name.as_str())
    }

    /// Words of all message texts plus 3 per message: deterministic so tests can compute costs.
    pub(crate) fn prompt_tokens(&self) -> u64 {
        let words: usize = self
            .messages
            .iter()
            .filter_map(|m| m.content.as_ref())
            .map(|c| c.words().count())
            .sum();
        (words + 3 * self.messages.len()) as u64
    }
}

/// What the assistant says, identical in every choice.
pub(crate) enum Answer<'r> {
    Text {
        text: String,
        finish_reason: &'static str,
    },
    ToolCall {
        name: &'r str,
        call_id: String,
    },
}

pub(crate) struct Reply<'r> {
    pub answer: Answer<'r>,
    pub usage: Usage,
    /// Calls made alongside the answer's tool call; empty unless [`Reply::in_parallel`] added
    /// them.
    pub parallel: Vec<Call<'r>>,
}

/// A function call made in parallel with [`Answer::ToolCall`].
pub(crate) struct Call<'r> {
    pub name: &'r str,
    pub call_id: String,
}

impl<'r> Reply<'r> {
    /// Every function call of the answer, in order: the answer's tool call, then the parallel
    /// ones. Empty for a text answer.
    pub(crate) fn calls(&self) -> impl Iterator<Item = (&'r str, &str)> {
        let first = match &self.answer {
            Answer::ToolCall { name, call_id } => Some((*name, call_id.as_str())),
            Answer::Text { .. } => None,
        };
        first
            .into_iter()
            .chain(self.parallel.iter().map(|c| (c.name, c.call_id.as_str())))
    }

    /// Joins the tool call with one call to every other tool in `offered`, as a model asked to
    /// use several tools at once does. Each call costs one completion token per choice, as the
    /// first does; a text answer is left as it is.
    pub(super) fn in_parallel(
        mut self,
        offered: impl IntoIterator<Item = &'r str>,
        n: u32,
    ) -> Self {
        let Answer::ToolCall { name, call_id } = &self.answer else {
            return self;
        };
        for other in offered {
            if other != *name && self.parallel.iter().all(|c| c.name != other) {
                let call_id = format!("{call_id}_{}", self.parallel.len() + 1);
                self.parallel.push(Call {
                    name: other,
                    call_id,
                });
            }
        }
        let extra = self.parallel.len() as u64 * u64::from(n);
        self.usage.completion_tokens += extra;
        self.usage.total_tokens += extra;
        self
    }
}

/// Whether a user message asks for parallel tool calls: the mock's cue is the word "parallel".
pub(super) fn asks_for_parallel<'w>(mut words: impl Iterator<Item = &'w str>) -> bool {
    words.any(|w| {
        w.trim_matches(|c: char| !c.is_alphanumeric())
            .eq_ignore_ascii_case("parallel")
    })
}

/// Builds the deterministic reply: the last user message's words cycled to `stream_words`
/// ("ok" when it has none), cut to the token limit; or one tool call, joined by a call to every
/// other offered tool when that message says "parallel" and the request allows it. Completion
/// tokens are counted over all `n` choices, as OpenAI bills them.
pub(crate) fn reply<'r>(
    req: &'r ChatRequest<'_>,
    stream_words: usize,
    seq: u64,
    n: u32,
) -> Reply<'r> {
    let user_words = req
        .messages
        .iter()
        .rev()
        .find(|m| m.role.as_str() == "user")
        .and_then(|m| m.content.as_ref())
        .map(Content::words);
    let parallel = req.parallel_allowed() && user_words.clone().is_some_and(asks_for_parallel);
    let prompt = Prompt {
        tokens: req.prompt_tokens(),
        tool: req.tool_to_call(),
        limit: req.max_completion_tokens.or(req.max_tokens),
        user_words,
    };
    let reply = reply_to(prompt, stream_words, seq, n);
    if parallel {
        reply.in_parallel(req.tool_names(), n)
    } else {
        reply
    }
}

/// What the deterministic reply depends on, read from a request of any wire format the mock
/// speaks, so that every format answers the same conversation alike.
pub(super) struct Prompt<'r, W> {
    /// Prompt tokens by the mock's rule (words plus 3 per message).
    pub tokens: u64,
    /// The tool to call instead of answering, if any.
    pub tool: Option<&'r str>,
    /// The client's output token limit.
    pub limit: Option<u64>,
    /// The words of the last user message.
    pub user_words: Option<W>,
}

/// [`reply`] for a [`Prompt`].
pub(super) fn reply_to<'r, 'w, W>(
    prompt: Prompt<'r, W>,
    stream_words: usize,
    seq: u64,
    n: u32,
) -> Reply<'r>
where
    W: Iterator<Item = &'w str> + Clone,
{
    let prompt_tokens = prompt.tokens;
    let (answer, per_choice) = match prompt.tool {
        Some(name) => (
            Answer::ToolCall {
                name,
                call_id: format!("call_mock_{seq}"),
            },
            1,
        ),
        None => {
            let limit = prompt.limit.unwrap_or(u64::MAX);
            let count = usize::try_from(limit).map_or(stream_words, |l| l.min(stream_words));
            let finish_reason = if count < stream_words {
                "length"
            } else {
                "stop"
            };
            let source = prompt
                .user_words
                .filter(|words| words.clone().next().is_some());
            let text = match source {
                Some(words) => join_cycled(words.cycle(), count),
                None => join_cycled(std::iter::repeat("ok"), count),
            };
            (
                Answer::Text {
                    text,
                    finish_reason,
                },
                count as u64,
            )
        }
    };
    let completion_tokens = per_choice * u64::from(n);
    let usage = Usage {
        prompt_tokens,
        completion_tokens,
        total_tokens: prompt_tokens + completion_tokens,
        prompt_tokens_details: CachedTokens { cached_tokens: 0 },
    };
    Reply {
        answer,
        usage,
        parallel: Vec::new(),
    }
}

fn join_cycled<'w>(words: impl Iterator<Item = &'w str>, count: usize) -> String {
    let mut text = String::with_capacity(count * 8);
    for word in words.take(count) {
        if !text.is_empty() {
            text.push(' ');
        }
        text.push_str(word);
    }
    text
}

#[derive(Serialize, Clone, Copy, Debug)]
pub(crate) struct Usage {
    pub(super) prompt_tokens: u64,
    pub(super) completion_tokens: u64,
    total_tokens: u64,
    prompt_tokens_details: CachedTokens,
}

#[derive(Serialize, Clone, Copy, Debug)]
struct CachedTokens {
    cached_tokens: u64,
}

/// The per-request identity every chunk and completion repeats.
pub(crate) struct Meta<'a> {
    pub id: &'a str,
    pub created: u64,
    pub model: &'a str,
}

#[derive(Serialize)]
struct Completion<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    system_fingerprint: Option<()>,
    choices: Vec<Choice<'a>>,
    /// Left out when the mock plays a server that reports no usage.
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Usage>,
}

#[derive(Serialize)]
struct Choice<'a> {
    index: u32,
    message: OutMessage<'a>,
    logprobs: Option<()>,
    finish_reason: &'a str,
}

#[derive(Serialize)]
struct OutMessage<'a> {
    role: &'static str,
    content: Option<&'a str>,
    refusal: Option<()>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<Vec<ToolCall<'a>>>,
}

#[derive(Serialize, Clone, Copy)]
struct ToolCall<'a> {
    /// Present in stream deltas only, where OpenAI numbers the calls.
    #[serde(skip_serializing_if = "Option::is_none")]
    index: Option<u32>,
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    function: CallFunction<'a>,
}

#[derive(Serialize, Clone, Copy)]
struct CallFunction<'a> {
    name: &'a str,
    arguments: &'static str,
}

impl Answer<'_> {
    fn finish_reason(&self) -> &'static str {
        match self {
            Answer::Text { finish_reason, .. } => finish_reason,
            Answer::ToolCall { .. } => "tool_calls",
        }
    }
}

impl Reply<'_> {
    /// The answer's calls on the wire, numbered as in stream deltas when `indexed`.
    fn tool_calls(&self, indexed: bool) -> Vec<ToolCall<'_>> {
        self.calls()
            .zip(0..)
            .map(|((name, id), index)| ToolCall {
                index: indexed.then_some(index),
                id,
                kind: "function",
                function: CallFunction {
                    name,
                    arguments: "{}",
                },
            })
            .collect()
    }
}

/// The `chat.completion` JSON of a non-stream answer.
pub(crate) fn completion(
    meta: &Meta<'_>,
    reply: &Reply<'_>,
    n: u32,
    with_usage: bool,
) -> serde_json::Result<Vec<u8>> {
    let content = match &reply.answer {
        Answer::Text { text, .. } => Some(text.as_str()),
        Answer::ToolCall { .. } => None,
    };
    let calls = reply.tool_calls(false);
    let choices = (0..n)
        .map(|index| Choice {
            index,
            message: OutMessage {
                role: "assistant",
                content,
                refusal: None,
                tool_calls: (!calls.is_empty()).then(|| calls.clone()),
            },
            logprobs: None,
            finish_reason: reply.answer.finish_reason(),
        })
        .collect();
    serde_json::to_vec(&Completion {
        id: meta.id,
        object: "chat.completion",
        created: meta.created,
        model: meta.model,
        system_fingerprint: None,
        choices,
        usage: with_usage.then_some(reply.usage),
    })
}

#[derive(Serialize)]
struct Chunk<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    system_fingerprint: Option<()>,
    choices: &'a [ChunkChoice<'a>],
    /// Absent unless usage was asked for; then `null` on every chunk but the last, as OpenAI.
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Option<Usage>>,
}

#[derive(Serialize)]
struct ChunkChoice<'a> {
    index: u32,
    delta: Delta<'a>,
    logprobs: Option<()>,
    finish_reason: Option<&'a str>,
}

#[derive(Serialize, Default)]
struct Delta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<[ToolCall<'a>; 1]>,
}

/// A whole SSE transcript in one buffer; frames are zero-copy slices of it, so a stream
/// costs one allocation however many chunks it has.
pub(crate) struct Frames {
    pub(super) bytes: Bytes,
    /// Where each frame ends in `bytes`.
    pub(super) ends: Vec<usize>,
}

impl Frames {
    pub(crate) fn len(&self) -> usize {
        self.ends.len()
    }

    pub(crate) fn frame(&self, i: usize) -> Bytes {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        self.bytes.slice(start..self.ends[i])
    }
}

struct FrameWriter<'a> {
    meta: &'a Meta<'a>,
    usage: Option<Option<Usage>>,
    buf: Vec<u8>,
    ends: Vec<usize>,
}

impl FrameWriter<'_> {
    fn chunk(
        &mut self,
        index: u32,
        delta: Delta<'_>,
        finish_reason: Option<&str>,
    ) -> serde_json::Result<()> {
        let choice = ChunkChoice {
            index,
            delta,
            logprobs: None,
            finish_reason,
        };
        self.write(std::slice::from_ref(&choice), self.usage)
    }

    fn write(
        &mut self,
        choices: &[ChunkChoice<'_>],
        usage: Option<Option<Usage>>,
    ) -> serde_json::Result<()> {
        let chunk = Chunk {
            id: self.meta.id,
            object: "chat.completion.chunk",
            created: self.meta.created,
            model: self.meta.model,
            system_fingerprint: None,
            choices,
            usage,
        };
        self.buf.extend_from_slice(b"data: ");
        serde_json::to_writer(&mut self.buf, &chunk)?;
        self.buf.extend_from_slice(b"\n\n");
        self.ends.push(self.buf.len());
        Ok(())
    }
}

/// `text` in stream pieces: words with their trailing space, each cut into pieces of at most
/// `token_chars` characters when that is not 0.
fn pieces(text: &str, token_chars: usize) -> Vec<&str> {
    let mut out = Vec::new();
    for word in text.split_inclusive(' ') {
        if token_chars == 0 {
            out.push(word);
            continue;
        }
        let mut rest = word;
        while !rest.is_empty() {
            let cut = rest
                .char_indices()
                .nth(token_chars)
                .map_or(rest.len(), |(i, _)| i);
            out.push(&rest[..cut]);
            rest = &rest[cut..];
        }
    }
    out
}

/// The SSE frames of a streamed answer: a role chunk per choice, one chunk per word (or word
/// piece, or tool call) per choice, a finish chunk per choice, the usage chunk if asked,
/// `[DONE]`.
pub(crate) fn stream_frames(
    meta: &Meta<'_>,
    reply: &Reply<'_>,
    n: u32,
    include_usage: bool,
    token_chars: usize,
) -> serde_json::Result<Frames> {
    let text_pieces = match &reply.answer {
        Answer::Text { text, .. } => pieces(text, token_chars),
        Answer::ToolCall { .. } => Vec::new(),
    };
    let words = match &reply.answer {
        Answer::Text { .. } => text_pieces.len(),
        Answer::ToolCall { .. } => reply.calls().count(),
    };
    let frames = (words + 2) * n as usize + 2;
    let mut w = FrameWriter {
        meta,
        usage: include_usage.then_some(None),
        buf: Vec::with_capacity(frames * (200 + meta.id.len() + meta.model.len())),
        ends: Vec::with_capacity(frames),
    };
    for index in 0..n {
        let content = matches!(reply.answer, Answer::Text { .. }).then_some("");
        let delta = Delta {
            role: Some("assistant"),
            content,
            tool_calls: None,
        };
        w.chunk(index, delta, None)?;
    }
    match &reply.answer {
        // Every word keeps its trailing space but the last, so the deltas concatenate to
        // exactly the non-stream content.
        Answer::Text { .. } => {
            for word in &text_pieces {
                for index in 0..n {
                    w.chunk(
                        index,
                        Delta {
                            content: Some(word),
                            ..Delta::default()
                        },
                        None,
                    )?;
                }
            }
        }
        // One delta per call, each carrying the whole call under its own index.
        Answer::ToolCall { .. } => {
            for call in reply.tool_calls(true) {
                for index in 0..n {
                    let delta = Delta {
                        tool_calls: Some([call]),
                        ..Delta::default()
                    };
                    w.chunk(index, delta, None)?;
                }
            }
        }
    }
    let finish_reason = reply.answer.finish_reason();
    for index in 0..n {
        w.chunk(index, Delta::default(), Some(finish_reason))?;
    }
    if include_usage {
        w.write(&[], Some(Some(reply.usage)))?;
    }
    w.buf.extend_from_slice(b"data: [DONE]\n\n");
    w.ends.push(w.buf.len());
    Ok(Frames {
        bytes: Bytes::from(w.buf),
        ends: w.ends,
    })
}

pub(crate) const MODELS: &str = r#"{"object":"list","data":[{"id":"mock-gpt","object":"model","created":0,"owned_by":"switchyard-mock"},{"id":"mock-embed","object":"model","created":0,"owned_by":"switchyard-mock"}]}"#;

/// A JSON response from bytes already serialised.
pub(crate) fn json(status: StatusCode, body: impl Into<Bytes>) -> Response {
    let content_type = HeaderValue::from_static("application/json");
    (status, [(header::CONTENT_TYPE, content_type)], body.into()).into_response()
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorInner<'a>,
}

#[derive(Serialize)]
struct ErrorInner<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    param: Option<&'a str>,
    code: Option<&'a str>,
}

/// An OpenAI-shaped error: `{"error":{"message","type","param","code"}}`.
pub(crate) fn error(
    status: StatusCode,
    kind: &str,
    code: Option<&str>,
    param: Option<&str>,
    message: &str,
) -> Response {
    let body = ErrorBody {
        error: ErrorInner {
            message,
            kind,
            param,
            code,
        },
    };
    match serde_json::to_vec(&body) {
        Ok(bytes) => json(status, bytes),
        // Only strings and options are serialised: this arm is unreachable in practice, but an
        // empty body with the right status is still a truthful answer.
        Err(_) => status.into_response(),
    }
}

pub(crate) fn invalid_request(param: Option<&str>, message: &str) -> Response {
    error(
        StatusCode::BAD_REQUEST,
        "invalid_request_error",
        None,
        param,
        message,
    )
}

pub(crate) fn internal(message: &str) -> Response {
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "server_error",
        None,
        None,
        message,
    )
}

/// An injected failure, in the body OpenAI sends for that class of status.
pub(crate) fn injected_failure(
    status: u16,
    retry_after_secs: Option<u64>,
    model: &str,
) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = match status.as_u16() {
        429 => {
            let message = format!("Rate limit reached for {model} (injected by switchyard mock).");
            error(
                status,
                "requests",
                Some("rate_limit_exceeded"),
                None,
                &message,
            )
        }
        401 => error(
            status,
            "invalid_request_error",
            Some("invalid_api_key"),
            None,
            "Incorrect API key provided (injected by switchyard mock).",
        ),
        500..=599 => error(
            status,
            "server_error",
            None,
            None,
            "The server had an error while processing your request (injected by switchyard mock).",
        ),
        _ => error(
            status,
            "invalid_request_error",
            None,
            None,
            "Injected failure (switchyard mock).",
        ),
    };
    if let Some(secs) = retry_after_secs {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;
