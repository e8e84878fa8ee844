//! The Gemini Generative Language wire as the mock speaks it: `POST /v1beta/models/{model}:
//! generateContent`, `:streamGenerateContent` (SSE with `alt=sse`, else one JSON array) and
//! `:batchEmbedContents`, answered with the same deterministic reply, usage, vectors and fault
//! plan as the OpenAI handlers (the reply rule is `openai::reply_to`, the stream feed is `sse`,
//! the vectors are `embeddings.rs`'s, the dice are `MockConfig::roll`), only in Gemini's shapes:
//! `GenerateContentResponse` objects, SSE events without names or an end marker, and Google's
//! `{"error":{"code","message","status"}}` bodies.
//!
//! Like `anthropic.rs` this file holds its handler, so adding the wire format touched only the
//! route table in `mod.rs`. It shares no state of its own: counters and config are the
//! `MockState`'s.
//!
//! Usage follows the OpenAI handler's rule on the same conversation: words of every text
//! (function responses included) plus 3 per content, `systemInstruction` counting as one, as it
//! was one message in the OpenAI request. A user turn made only of `functionResponse` parts is
//! what OpenAI sends as `tool` messages, so it is not "the last user message" the reply echoes.
//!
//! As in the OpenAI handler, a user turn saying "parallel" is answered with one `functionCall`
//! part per declared function, unless the config names the functions allowed.

use std::sync::atomic::Ordering;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::embeddings::{DEFAULT_DIMENSIONS, MAX_DIMENSIONS, text_input, unit_vector};
use super::openai::{self, Answer, Frames, Prompt, Reply, Text, asks_for_parallel, reply_to};
use super::{MockState, bump, sse};

/// Gemini's documented range for `candidateCount`.
const MAX_CANDIDATES: u32 = 8;

/// The parts of a GenerateContentRequest the mock looks at; the rest is ignored.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GenerateContentRequest<'a> {
    #[serde(borrow)]
    contents: Vec<Content<'a>>,
    #[serde(default, borrow)]
    system_instruction: Option<Content<'a>>,
    #[serde(default, borrow)]
    tools: Vec<Tool<'a>>,
    #[serde(default, borrow)]
    tool_config: Option<ToolConfig<'a>>,
    #[serde(default)]
    generation_config: GenerationConfig,
}

#[derive(Deserialize)]
struct Content<'a> {
    #[serde(default, borrow)]
    role: Option<Text<'a>>,
    #[serde(default, borrow)]
    parts: Vec<Part<'a>>,
}

/// A part: `text`, or a function response whose `response.content` the prompt rule counts;
/// other kinds count as having no words.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Part<'a> {
    #[serde(default, borrow)]
    text: Option<Text<'a>>,
    #[serde(default)]
    function_response: Option<FunctionResponse>,
}

#[derive(Deserialize)]
struct FunctionResponse {
    #[serde(default)]
    response: serde_json::Value,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Tool<'a> {
    #[serde(default, borrow)]
    function_declarations: Vec<Declaration<'a>>,
}

#[derive(Deserialize)]
struct Declaration<'a> {
    #[serde(borrow)]
    name: Text<'a>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ToolConfig<'a> {
    #[serde(default, borrow)]
    function_calling_config: Option<CallingConfig<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CallingConfig<'a> {
    #[serde(default, borrow)]
    mode: Option<Text<'a>>,
    #[serde(default, borrow)]
    allowed_function_names: Vec<Text<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct GenerationConfig {
    #[serde(default)]
    max_output_tokens: Option<u64>,
    #[serde(default)]
    candidate_count: Option<u32>,
}

impl Content<'_> {
    /// The words of this content's own text parts.
    fn words(&self) -> impl Iterator<Item = &str> + Clone {
        self.parts
            .iter()
            .filter_map(|p| p.text.as_ref().map(Text::as_str))
            .flat_map(str::split_whitespace)
    }

    /// Every word the prompt rule counts: texts, and the output inside function responses (a
    /// string as written, anything else as its compact JSON).
    fn word_count(&self) -> usize {
        let responses: usize = self
            .parts
            .iter()
            .filter_map(|p| p.function_response.as_ref())
            .map(|r| match &r.response["content"] {
                serde_json::Value::String(s) => s.split_whitespace().count(),
                serde_json::Value::Null => 0,
                other => other.to_string().split_whitespace().count(),
            })
            .sum();
        self.words().count() + responses
    }

    fn is_user(&self) -> bool {
        self.role.as_ref().is_none_or(|r| r.as_str() == "user")
    }

    fn only_function_responses(&self) -> bool {
        !self.parts.is_empty() && self.parts.iter().all(|p| p.function_response.is_some())
    }
}

impl GenerateContentRequest<'_> {
    /// The OpenAI handler's tool rule: a tool when functions are declared and calling is not
    /// off, the allowed one if the config names it, else the first.
    fn tool_to_call(&self) -> Option<&str> {
        let first = self
            .tools
            .iter()
            .flat_map(|t| &t.function_declarations)
            .next()?;
        let config = self
            .tool_config
            .as_ref()
            .and_then(|c| c.function_calling_config.as_ref());
        match config {
            Some(c) if c.mode.as_ref().is_some_and(|m| m.as_str() == "NONE") => None,
            Some(c) if !c.allowed_function_names.is_empty() => {
                Some(c.allowed_function_names[0].as_str())
            }
            _ => Some(first.name.as_str()),
        }
    }

    /// The deterministic reply: the OpenAI handler's, with a call to every declared function
    /// when the user turn says "parallel" and the config names no function to call.
    fn reply(&self, stream_words: usize, seq: u64, n: u32) -> Reply<'_> {
        let prompt = self.prompt();
        let named = self
            .tool_config
            .as_ref()
            .and_then(|c| c.function_calling_config.as_ref())
            .is_some_and(|c| !c.allowed_function_names.is_empty());
        let parallel = !named && prompt.user_words.clone().is_some_and(asks_for_parallel);
        let reply = reply_to(prompt, stream_words, seq, n);
        if parallel {
            let declared = self.tools.iter().flat_map(|t| &t.function_declarations);
            reply.in_parallel(declared.map(|d| d.name.as_str()), n)
        } else {
            reply
        }
    }

    fn prompt(&self) -> Prompt<'_, impl Iterator<Item = &str> + Clone> {
        let system = self.system_instruction.as_ref();
        let words = system.map_or(0, Content::word_count)
            + self.contents.iter().map(Content::word_count).sum::<usize>();
        let messages = self.contents.len() + usize::from(system.is_some());
        let user_words = self
            .contents
            .iter()
            .rev()
            .find(|c| c.is_user() && !c.only_function_responses())
            .map(Content::words);
        Prompt {
            tokens: (words + 3 * messages) as u64,
            tool: self.tool_to_call(),
            limit: self.generation_config.max_output_tokens,
            user_words,
        }
    }
}

#[derive(Serialize, Clone, Copy)]
#[serde(rename_all = "camelCase")]
struct UsageMetadata {
    prompt_token_count: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    candidates_token_count: Option<u64>,
    total_token_count: u64,
}

/// `args` of a function call: the mock's calls take no arguments.
#[derive(Serialize, Clone, Copy)]
struct NoArgs {}

#[derive(Serialize, Clone, Copy)]
#[serde(rename_all = "camelCase")]
enum OutPart<'a> {
    Text(&'a str),
    FunctionCall { name: &'a str, args: NoArgs },
}

#[derive(Serialize)]
struct OutContent<'a> {
    parts: &'a [OutPart<'a>],
    role: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Candidate<'a> {
    content: OutContent<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    finish_reason: Option<&'static str>,
    index: u32,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OutResponse<'a> {
    candidates: Vec<Candidate<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage_metadata: Option<UsageMetadata>,
    model_version: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    response_id: &'a str,
}

/// Gemini's finish reason for the mock's answer.
fn finish_reason(answer: &Answer<'_>) -> &'static str {
    match answer {
        Answer::Text {
            finish_reason: "length",
            ..
        } => "MAX_TOKENS",
        Answer::Text { .. } | Answer::ToolCall { .. } => "STOP",
    }
}

/// What a request is answered with, and how.
struct Answering<'r> {
    id: &'r str,
    model: &'r str,
    reply: Reply<'r>,
    n: u32,
    with_usage: bool,
}

impl Answering<'_> {
    fn response(
        &self,
        parts: &[OutPart<'_>],
        finish: Option<&'static str>,
        usage: Option<UsageMetadata>,
    ) -> serde_json::Result<Vec<u8>> {
        let candidates = (0..self.n)
            .map(|index| Candidate {
                content: OutContent {
                    parts,
                    role: "model",
                },
                finish_reason: finish,
                index,
            })
            .collect();
        serde_json::to_vec(&OutResponse {
            candidates,
            usage_metadata: usage.filter(|_| self.with_usage),
            model_version: self.model,
            response_id: self.id,
        })
    }

    fn final_usage(&self) -> UsageMetadata {
        let u = &self.reply.usage;
        UsageMetadata {
            prompt_token_count: u.prompt_tokens,
            candidates_token_count: Some(u.completion_tokens),
            total_token_count: u.prompt_tokens + u.completion_tokens,
        }
    }

    /// One `functionCall` part per call of the answer.
    fn call_parts(&self) -> Vec<OutPart<'_>> {
        self.reply
            .calls()
            .map(|(name, _)| OutPart::FunctionCall {
                name,
                args: NoArgs {},
            })
            .collect()
    }

    /// The whole answer of `generateContent`.
    fn whole(&self) -> serde_json::Result<Vec<u8>> {
        let parts = match &self.reply.answer {
            Answer::Text { text, .. } if text.is_empty() => Vec::new(),
            Answer::Text { text, .. } => vec![OutPart::Text(text)],
            Answer::ToolCall { .. } => self.call_parts(),
        };
        self.response(
            &parts,
            Some(finish_reason(&self.reply.answer)),
            Some(self.final_usage()),
        )
    }

    /// The events of `streamGenerateContent`, as Gemini sends them: one per word (each word
    /// keeps its trailing space but the last, so they concatenate to the whole text) or one
    /// holding every function call, every event with the usage so far and the last one with
    /// the finish reason and the final usage.
    fn events(&self) -> serde_json::Result<Vec<Vec<u8>>> {
        let prompt_only = UsageMetadata {
            prompt_token_count: self.reply.usage.prompt_tokens,
            candidates_token_count: None,
            total_token_count: self.reply.usage.prompt_tokens,
        };
        let finish = finish_reason(&self.reply.answer);
        match &self.reply.answer {
            Answer::Text { text, .. } if text.is_empty() => Ok(vec![self.response(
                &[],
                Some(finish),
                Some(self.final_usage()),
            )?]),
            Answer::Text { text, .. } => {
                let words: Vec<&str> = text.split_inclusive(' ').collect();
                let last = words.len() - 1;
                words
                    .iter()
                    .enumerate()
                    .map(|(i, word)| {
                        let parts = [OutPart::Text(word)];
                        if i == last {
                            self.response(&parts, Some(finish), Some(self.final_usage()))
                        } else {
                            self.response(&parts, None, Some(prompt_only))
                        }
                    })
                    .collect()
            }
            Answer::ToolCall { .. } => Ok(vec![self.response(
                &self.call_parts(),
                Some(finish),
                Some(self.final_usage()),
            )?]),
        }
    }
}

/// Events as SSE frames: `data:` lines ended by CRLF pairs, as Google sends them.
fn sse_frames(events: &[Vec<u8>]) -> Frames {
    let mut bytes = Vec::with_capacity(events.iter().map(|e| e.len() + 10).sum());
    let mut ends = Vec::with_capacity(events.len());
    for event in events {
        bytes.extend_from_slice(b"data: ");
        bytes.extend_from_slice(event);
        bytes.extend_from_slice(b"\r\n\r\n");
        ends.push(bytes.len());
    }
    Frames {
        bytes: Bytes::from(bytes),
        ends,
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorInner<'a>,
}

#[derive(Serialize)]
struct ErrorInner<'a> {
    code: u16,
    message: &'a str,
    status: &'a str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    details: Vec<RetryInfo>,
}

#[derive(Serialize)]
struct RetryInfo {
    #[serde(rename = "@type")]
    kind: &'static str,
    #[serde(rename = "retryDelay")]
    retry_delay: String,
}

/// A Google-shaped error: `{"error":{"code","message","status"}}`, with a `RetryInfo` detail
/// when a retry delay is given.
fn error(status: StatusCode, kind: &str, message: &str, retry_after_secs: Option<u64>) -> Response {
    let body = ErrorBody {
        error: ErrorInner {
            code: status.as_u16(),
            message,
            status: kind,
            details: retry_after_secs
                .map(|secs| RetryInfo {
                    kind: "type.googleapis.com/google.rpc.RetryInfo",
                    retry_delay: format!("{secs}s"),
                })
                .into_iter()
                .collect(),
        },
    };
    match serde_json::to_vec(&body) {
        Ok(bytes) => openai::json(status, bytes),
        // Only strings and numbers are serialised: unreachable in practice, and the status
        // alone is still a truthful answer.
        Err(_) => status.into_response(),
    }
}

fn invalid_argument(message: &str) -> Response {
    error(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", message, None)
}

fn internal(message: &str) -> Response {
    error(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL", message, None)
}

/// An injected failure, with the status name Google uses for that HTTP status.
fn injected_failure(status: u16, retry_after_secs: Option<u64>, model: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let (kind, message) = match status.as_u16() {
        400 => (
            "INVALID_ARGUMENT",
            "Request contains an invalid argument.".to_owned(),
        ),
        401 => (
            "UNAUTHENTICATED",
            "Request had invalid authentication credentials.".to_owned(),
        ),
        403 => (
            "PERMISSION_DENIED",
            "Your API key doesn't have the required permissions.".to_owned(),
        ),
        404 => ("NOT_FOUND", format!("models/{model} is not found.")),
        409 => ("ABORTED", "The request was aborted.".to_owned()),
        429 => (
            "RESOURCE_EXHAUSTED",
            format!("You exceeded your current quota for {model}."),
        ),
        501 => ("UNIMPLEMENTED", "Not implemented.".to_owned()),
        503 => ("UNAVAILABLE", "The model is overloaded.".to_owned()),
        504 => ("DEADLINE_EXCEEDED", "Deadline exceeded.".to_owned()),
        500..=599 => ("INTERNAL", "An internal error has occurred.".to_owned()),
        _ => (
            "FAILED_PRECONDITION",
            "Precondition check failed.".to_owned(),
        ),
    };
    let mut response = error(
        status,
        kind,
        &format!("{message} (injected by switchyard mock)"),
        retry_after_secs,
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
        "UNAVAILABLE",
        "The mock upstream is shutting down.",
        None,
    )
}

/// `POST /v1beta/models/{model}:{method}`: the method picks the handler.
pub(super) async fn models(
    State(state): State<MockState>,
    Path(model_action): Path<String>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let Some((model, method)) = model_action.rsplit_once(':') else {
        bump(&state.inner.requests);
        return error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "expected models/{model}:{method}",
            None,
        );
    };
    let alt_sse = query
        .as_deref()
        .is_some_and(|q| q.split('&').any(|kv| kv == "alt=sse"));
    match method {
        "generateContent" => generate(&state, model, None, &body).await,
        "streamGenerateContent" => generate(&state, model, Some(alt_sse), &body).await,
        "batchEmbedContents" => embed(&state, model, &body).await,
        other => {
            bump(&state.inner.requests);
            error(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                &format!("unknown method {other}"),
                None,
            )
        }
    }
}

/// The OpenAI chat handler's flow (count, parse, roll the faults, hang, fail, answer) in
/// Gemini's shapes. `stream` is `Some(sse)` for `streamGenerateContent`.
async fn generate(state: &MockState, model: &str, stream: Option<bool>, body: &[u8]) -> Response {
    let shared = &state.inner;
    bump(&shared.requests);
    bump(&shared.chat);
    let cfg = state.config();
    let req: GenerateContentRequest<'_> = match serde_json::from_slice(body) {
        Ok(req) => req,
        Err(e) => return invalid_argument(&format!("Invalid JSON payload received. {e}")),
    };
    if let Some(i) = req.contents.iter().position(|c| {
        c.role
            .as_ref()
            .is_some_and(|r| !matches!(r.as_str(), "user" | "model"))
    }) {
        return invalid_argument(&format!(
            "contents[{i}].role: Please use a valid role: user, model."
        ));
    }
    let n = req.generation_config.candidate_count.unwrap_or(1);
    if !(1..=MAX_CANDIDATES).contains(&n) {
        return invalid_argument(&format!(
            "generationConfig.candidateCount must be in 1..={MAX_CANDIDATES}, got {n}"
        ));
    }
    if stream.is_some() {
        bump(&shared.streams);
    }
    let plan = cfg.roll(stream == Some(true));
    if plan.hang && !state.pause(cfg.hang_ms).await {
        return shutting_down();
    }
    if plan.fail {
        bump(&shared.faults);
        return injected_failure(cfg.fail_status, cfg.retry_after_secs, model);
    }
    let seq = shared.seq.fetch_add(1, Ordering::Relaxed) + 1;
    let id = format!("mock-{seq}");
    let answer = Answering {
        id: if cfg.omit_response_id { "" } else { &id },
        model,
        reply: req.reply(cfg.stream_words, seq, n),
        n,
        with_usage: !cfg.omit_usage,
    };
    if stream == Some(true) {
        return match answer.events() {
            Ok(events) => sse(sse_frames(&events), &cfg, plan, shared.halt.clone()),
            Err(e) => internal(&e.to_string()),
        };
    }
    if !state.pause(cfg.latency_ms).await {
        return shutting_down();
    }
    let bytes = match stream {
        // Without `alt=sse` Gemini streams one JSON array of the same responses.
        Some(_) => answer.events().map(|events| {
            let mut array = b"[".to_vec();
            array.extend_from_slice(&events.join(&b",\r\n"[..]));
            array.push(b']');
            array
        }),
        None => answer.whole(),
    };
    match bytes {
        Ok(bytes) => openai::json(StatusCode::OK, bytes),
        Err(e) => internal(&e.to_string()),
    }
}

#[derive(Deserialize)]
struct BatchEmbedRequest<'a> {
    #[serde(borrow)]
    requests: Vec<EmbedRequest<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EmbedRequest<'a> {
    #[serde(borrow)]
    model: Text<'a>,
    #[serde(borrow)]
    content: Content<'a>,
    #[serde(default)]
    output_dimensionality: Option<usize>,
}

#[derive(Serialize)]
struct BatchEmbedResponse {
    embeddings: Vec<Values>,
}

#[derive(Serialize)]
struct Values {
    values: Vec<f32>,
}

/// `batchEmbedContents`: the OpenAI embeddings handler's vectors (same text and size, same
/// vector), in Gemini's shape and without token counts, as Gemini sends none.
async fn embed(state: &MockState, model: &str, body: &[u8]) -> Response {
    let shared = &state.inner;
    bump(&shared.requests);
    bump(&shared.embeddings);
    let cfg = state.config();
    let req: BatchEmbedRequest<'_> = match serde_json::from_slice(body) {
        Ok(req) => req,
        Err(e) => return invalid_argument(&format!("Invalid JSON payload received. {e}")),
    };
    if req.requests.is_empty() {
        return invalid_argument("requests must not be empty");
    }
    let resource = format!("models/{model}");
    let mut embeddings = Vec::with_capacity(req.requests.len());
    for (i, r) in req.requests.iter().enumerate() {
        // Gemini requires every request to name the model of the URL.
        if r.model.as_str() != resource {
            return invalid_argument(&format!(
                "requests[{i}].model: {} does not match the model of the URL, {resource}",
                r.model.as_str()
            ));
        }
        let dims = r.output_dimensionality.unwrap_or(DEFAULT_DIMENSIONS);
        if dims == 0 || dims > MAX_DIMENSIONS {
            return invalid_argument(&format!(
                "requests[{i}].outputDimensionality must be in 1..={MAX_DIMENSIONS}, got {dims}"
            ));
        }
        let text: String = r
            .content
            .parts
            .iter()
            .filter_map(|p| p.text.as_ref().map(Text::as_str))
            .collect();
        embeddings.push(Values {
            values: unit_vector(text_input(&text).0, dims),
        });
    }
    let plan = cfg.roll(false);
    if plan.hang && !state.pause(cfg.hang_ms).await {
        return shutting_down();
    }
    if plan.fail {
        bump(&shared.faults);
        return injected_failure(cfg.fail_status, cfg.retry_after_secs, model);
    }
    if !state.pause(cfg.latency_ms).await {
        return shutting_down();
    }
    match serde_json::to_vec(&BatchEmbedResponse { embeddings }) {
        Ok(bytes) => openai::json(StatusCode::OK, bytes),
        Err(e) => internal(&e.to_string()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;
