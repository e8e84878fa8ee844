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
        id: &id,
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
mod tests {
    use axum::body::Body;
    use axum::http::{Method, Request};
    use http_body_util::BodyExt;
    use serde_json::{Value, json};
    use tower::ServiceExt;

    use super::super::{MockConfig, MockStats, router};
    use super::*;

    async fn post(state: &MockState, uri: &str, body: &Value) -> Response {
        let req = Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        router(state.clone()).oneshot(req).await.unwrap()
    }

    async fn text(resp: Response) -> String {
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    async fn post_json(state: &MockState, uri: &str, body: &Value) -> (StatusCode, Value) {
        let resp = post(state, uri, body).await;
        let status = resp.status();
        (status, serde_json::from_str(&text(resp).await).unwrap())
    }

    const GENERATE: &str = "/v1beta/models/gemini-mock:generateContent";
    const STREAM: &str = "/v1beta/models/gemini-mock:streamGenerateContent?alt=sse";

    /// The payload of every SSE event; asserts the CRLF framing Google uses.
    fn events(body: &str) -> Vec<Value> {
        body.split("\r\n\r\n")
            .filter(|e| !e.is_empty())
            .map(|e| serde_json::from_str(e.strip_prefix("data: ").unwrap()).unwrap())
            .collect()
    }

    fn hello() -> Value {
        json!({"systemInstruction": {"parts": [{"text": "be brief"}]},
               "contents": [{"role": "user", "parts": [{"text": "hello there world"}]}]})
    }

    #[tokio::test]
    async fn generate_content_has_gemini_shape_and_the_openai_handlers_usage() {
        let st = MockState::new(MockConfig {
            stream_words: 4,
            ..MockConfig::default()
        });
        let (status, v) = post_json(&st, GENERATE, &hello()).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(v["modelVersion"], "gemini-mock");
        assert!(v["responseId"].as_str().unwrap().starts_with("mock-"));
        assert_eq!(
            v["candidates"],
            json!([{"content": {"parts": [{"text": "hello there world hello"}], "role": "model"},
                    "finishReason": "STOP", "index": 0}])
        );
        // Same as the OpenAI test with the system prompt as a message: (2 + 3) + 3 × 2.
        assert_eq!(
            v["usageMetadata"],
            json!({"promptTokenCount": 11, "candidatesTokenCount": 4, "totalTokenCount": 15})
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
    async fn limits_candidates_and_function_responses() {
        let st = MockState::new(MockConfig::default());
        let body = json!({"generationConfig": {"maxOutputTokens": 3, "candidateCount": 2}, "contents": [
            {"role": "user", "parts": [{"text": "a b c d"}]},
            {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {}}}]},
            {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {"content": "x y"}}},
                                       {"functionResponse": {"name": "g", "response": {"content": {"k": 1}}}}]}
        ]});
        let (_, v) = post_json(&st, GENERATE, &body).await;
        let candidates = v["candidates"].as_array().unwrap();
        assert_eq!(candidates.len(), 2);
        assert_eq!(candidates[1]["index"], 1);
        assert_eq!(candidates[1]["content"]["parts"][0]["text"], "a b c");
        assert_eq!(candidates[0]["finishReason"], "MAX_TOKENS");
        // 4 + 0 + (2 + 1) words, 3 contents; 3 tokens in each of 2 candidates.
        assert_eq!(v["usageMetadata"]["promptTokenCount"], 7 + 9);
        assert_eq!(v["usageMetadata"]["candidatesTokenCount"], 6);
    }

    #[tokio::test]
    async fn tools_answer_with_a_function_call_unless_forbidden() {
        let st = MockState::new(MockConfig::default());
        let mut body = json!({"contents": [{"parts": [{"text": "weather?"}]}],
            "tools": [{"functionDeclarations": [{"name": "first"}, {"name": "second", "parametersJsonSchema": {"type": "object"}}]}]});
        let (_, v) = post_json(&st, GENERATE, &body).await;
        let candidate = &v["candidates"][0];
        assert_eq!(
            candidate["content"]["parts"],
            json!([{"functionCall": {"name": "first", "args": {}}}])
        );
        assert_eq!(candidate["finishReason"], "STOP");
        assert_eq!(v["usageMetadata"]["candidatesTokenCount"], 1);

        body["toolConfig"] =
            json!({"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["second"]}});
        let (_, v) = post_json(&st, GENERATE, &body).await;
        assert_eq!(
            v["candidates"][0]["content"]["parts"][0]["functionCall"]["name"],
            "second"
        );
        body["toolConfig"] = json!({"functionCallingConfig": {"mode": "NONE"}});
        let (_, v) = post_json(&st, GENERATE, &body).await;
        assert!(v["candidates"][0]["content"]["parts"][0]["text"].is_string());
    }

    #[tokio::test]
    async fn parallel_in_the_prompt_calls_every_declared_function_at_once() {
        let st = MockState::new(MockConfig::default());
        let mut body = json!({"contents": [{"parts": [{"text": "both in parallel"}]}],
            "tools": [{"functionDeclarations": [{"name": "first"}]}, {"functionDeclarations": [{"name": "second"}]}]});
        let both = json!([{"functionCall": {"name": "first", "args": {}}}, {"functionCall": {"name": "second", "args": {}}}]);
        let (_, v) = post_json(&st, GENERATE, &body).await;
        assert_eq!(v["candidates"][0]["content"]["parts"], both);
        assert_eq!(v["usageMetadata"]["candidatesTokenCount"], 2);
        let evs = events(&text(post(&st, STREAM, &body).await).await);
        assert_eq!(evs.len(), 1);
        assert_eq!(evs[0]["candidates"][0]["content"]["parts"], both);

        body["toolConfig"] =
            json!({"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["second"]}});
        let (_, v) = post_json(&st, GENERATE, &body).await;
        assert_eq!(
            v["candidates"][0]["content"]["parts"],
            json!([{"functionCall": {"name": "second", "args": {}}}])
        );
    }

    #[tokio::test]
    async fn stream_sends_one_event_per_word_and_finishes_on_the_last() {
        let st = MockState::new(MockConfig {
            stream_words: 3,
            ..MockConfig::default()
        });
        let body = json!({"contents": [{"role": "user", "parts": [{"text": "x y"}]}]});
        let resp = post(&st, STREAM, &body).await;
        assert_eq!(resp.headers()[header::CONTENT_TYPE], "text/event-stream");
        let evs = events(&text(resp).await);
        assert_eq!(evs.len(), 3);
        let said: String = evs
            .iter()
            .map(|e| {
                e["candidates"][0]["content"]["parts"][0]["text"]
                    .as_str()
                    .unwrap()
            })
            .collect();
        assert_eq!(said, "x y x");
        assert!(
            evs[..2]
                .iter()
                .all(|e| e["candidates"][0].get("finishReason").is_none())
        );
        assert_eq!(
            evs[0]["usageMetadata"],
            json!({"promptTokenCount": 5, "totalTokenCount": 5})
        );
        assert_eq!(evs[2]["candidates"][0]["finishReason"], "STOP");
        assert_eq!(
            evs[2]["usageMetadata"],
            json!({"promptTokenCount": 5, "candidatesTokenCount": 3, "totalTokenCount": 8})
        );
        assert!(evs.iter().all(|e| e["responseId"] == evs[0]["responseId"]));

        let tools = json!({"contents": [{"parts": [{"text": "x"}]}], "tools": [{"functionDeclarations": [{"name": "f"}]}]});
        let evs = events(&text(post(&st, STREAM, &tools).await).await);
        assert_eq!(evs.len(), 1);
        assert_eq!(
            evs[0]["candidates"][0]["content"]["parts"][0]["functionCall"]["name"],
            "f"
        );

        // Without alt=sse: the same responses as one JSON array.
        let (status, v) = post_json(
            &st,
            "/v1beta/models/gemini-mock:streamGenerateContent",
            &body,
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(v.as_array().unwrap().len(), 3);

        st.set_config(MockConfig {
            omit_usage: true,
            ..MockConfig::default()
        });
        let evs = events(&text(post(&st, STREAM, &body).await).await);
        assert!(evs.iter().all(|e| e.get("usageMetadata").is_none()));
        assert_eq!((st.stats().chat, st.stats().streams), (4, 4));
    }

    #[tokio::test]
    async fn failures_use_google_error_bodies_retry_after_and_retry_info() {
        let st = MockState::new(MockConfig {
            fail_rate: 1.0,
            fail_status: 429,
            retry_after_secs: Some(7),
            ..MockConfig::default()
        });
        let resp = post(&st, GENERATE, &hello()).await;
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(resp.headers()[header::RETRY_AFTER], "7");
        let v: Value = serde_json::from_str(&text(resp).await).unwrap();
        assert_eq!(v["error"]["code"], 429);
        assert_eq!(v["error"]["status"], "RESOURCE_EXHAUSTED");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("gemini-mock")
        );
        assert_eq!(
            v["error"]["details"],
            json!([{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "7s"}])
        );

        for (status, kind) in [
            (503, "UNAVAILABLE"),
            (500, "INTERNAL"),
            (403, "PERMISSION_DENIED"),
            (400, "INVALID_ARGUMENT"),
        ] {
            st.set_config(MockConfig {
                fail_rate: 1.0,
                fail_status: status,
                ..MockConfig::default()
            });
            let (got, v) = post_json(&st, STREAM, &hello()).await;
            assert_eq!(got.as_u16(), status);
            assert_eq!(v["error"]["status"], kind);
            assert!(v["error"].get("details").is_none());
        }
        assert_eq!(st.stats().faults, 5);
    }

    #[tokio::test]
    async fn invalid_requests_get_400_invalid_argument_and_unknown_methods_404() {
        let st = MockState::new(MockConfig::default());
        for (body, needle) in [
            (json!({"contents": "nope"}), "Invalid JSON payload"),
            (
                json!({"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]}),
                "contents[0].role",
            ),
            (
                json!({"contents": [], "generationConfig": {"candidateCount": 9}}),
                "candidateCount",
            ),
        ] {
            let (status, v) = post_json(&st, GENERATE, &body).await;
            assert_eq!(status, StatusCode::BAD_REQUEST);
            assert_eq!(v["error"]["status"], "INVALID_ARGUMENT");
            assert!(
                v["error"]["message"].as_str().unwrap().contains(needle),
                "{v}"
            );
        }
        let (status, v) = post_json(&st, "/v1beta/models/gemini-mock:countTokens", &hello()).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(v["error"]["status"], "NOT_FOUND");
        let (status, _) = post_json(&st, "/v1beta/models/gemini-mock", &hello()).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(st.stats().requests, 5);
    }

    #[tokio::test]
    async fn malformed_and_cut_streams() {
        let st = MockState::new(MockConfig {
            malformed_rate: 1.0,
            ..MockConfig::default()
        });
        let body = json!({"contents": [{"parts": [{"text": "a"}]}]});
        let sse = text(post(&st, STREAM, &body).await).await;
        // 8 words, one event each: the middle one (4) is replaced.
        // Google's frames end in CRLF pairs, the injected one in a bare LF pair.
        let sse = sse.replace("\r\n", "\n");
        let frames: Vec<&str> = sse.split("\n\n").filter(|f| !f.is_empty()).collect();
        assert_eq!(frames.len(), 8);
        assert_eq!(frames[4], "data: {not json");
        assert!(frames[7].contains("\"finishReason\":\"STOP\""));

        st.set_config(MockConfig {
            cut_rate: 1.0,
            ..MockConfig::default()
        });
        let mut body = post(&st, STREAM, &body).await.into_body();
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
        assert_eq!(received.matches("data: ").count(), 4);
        assert!(!received.contains("finishReason"));
    }

    #[tokio::test]
    async fn batch_embed_matches_the_openai_vectors_and_checks_the_model() {
        let st = MockState::new(MockConfig::default());
        let uri = "/v1beta/models/embed-mock:batchEmbedContents";
        let body = json!({"requests": [
            {"model": "models/embed-mock", "content": {"parts": [{"text": "a b"}]}, "outputDimensionality": 8},
            {"model": "models/embed-mock", "content": {"parts": [{"text": "c"}]}, "outputDimensionality": 8}
        ]});
        let (status, v) = post_json(&st, uri, &body).await;
        assert_eq!(status, StatusCode::OK);
        let embeddings = v["embeddings"].as_array().unwrap();
        assert_eq!(embeddings.len(), 2);
        assert_eq!(embeddings[0]["values"].as_array().unwrap().len(), 8);
        let (_, openai) = post_json(
            &st,
            "/v1/embeddings",
            &json!({"model": "x", "input": ["a b", "c"], "dimensions": 8}),
        )
        .await;
        assert_eq!(embeddings[1]["values"], openai["data"][1]["embedding"]);
        let (_, v) = post_json(
            &st,
            uri,
            &json!({"requests": [{"model": "models/embed-mock", "content": {"parts": [{"text": "x"}]}}]}),
        )
        .await;
        assert_eq!(
            v["embeddings"][0]["values"].as_array().unwrap().len(),
            DEFAULT_DIMENSIONS
        );

        for (body, needle) in [
            (
                json!({"requests": [{"model": "models/other", "content": {"parts": [{"text": "x"}]}}]}),
                "does not match",
            ),
            (json!({"requests": []}), "must not be empty"),
            (
                json!({"requests": [{"model": "models/embed-mock", "content": {"parts": []}, "outputDimensionality": 0}]}),
                "outputDimensionality",
            ),
        ] {
            let (status, v) = post_json(&st, uri, &body).await;
            assert_eq!(status, StatusCode::BAD_REQUEST);
            assert!(
                v["error"]["message"].as_str().unwrap().contains(needle),
                "{v}"
            );
        }
        assert_eq!(st.stats().embeddings, 6);

        st.set_config(MockConfig {
            fail_rate: 1.0,
            fail_status: 503,
            ..MockConfig::default()
        });
        let (status, v) = post_json(&st, uri, &body).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(v["error"]["status"], "UNAVAILABLE");
    }
}
