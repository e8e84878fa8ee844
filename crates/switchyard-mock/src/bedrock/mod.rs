//! The AWS Bedrock Runtime wire as the mock speaks it: `POST /model/{modelId}/converse`,
//! `/converse-stream` (binary `application/vnd.amazon.eventstream` messages) and `/invoke` for
//! the Titan and Cohere embedding models, answered with the same deterministic reply, usage,
//! vectors and fault plan as the OpenAI handlers (the reply rule is `openai::reply_to`, the
//! stream feed is `sse`, the vectors are `embeddings.rs`'s, the dice are `MockConfig::roll`),
//! only in Bedrock's shapes: camelCase Converse bodies, event-stream frames, `{"message"}` error
//! bodies named by `x-amzn-ErrorType`, and a request id on every answer.
//!
//! Unlike the other wire formats Bedrock authenticates every request (`sigv4.rs`): a Bedrock
//! API key (`Bearer …`) or a SigV4 `Authorization` header is required, and a SigV4 signature
//! made with [`MOCK_AWS_ACCESS_KEY_ID`] is verified, so a client that signs something other
//! than what it sends is caught here rather than in production.
//!
//! The wire shapes live in `converse.rs` and `invoke.rs` (pure); this file holds the handlers,
//! so adding the wire format touched only the route table in `mod.rs`. It shares no state of
//! its own: counters and config are the `MockState`'s.

mod converse;
mod invoke;
mod sigv4;
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;

use std::sync::atomic::Ordering;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::faults::Plan;
use super::openai;
use super::{MockState, bump, sse};
use converse::ConverseRequest;
use invoke::{Embedded, Family, Rejection};

/// The access key id whose SigV4 signatures the mock verifies (with
/// [`MOCK_AWS_SECRET_ACCESS_KEY`]); any other key id is accepted unverified.
pub const MOCK_AWS_ACCESS_KEY_ID: &str = "AKIAMOCKSWITCHYARD01";
/// The secret of [`MOCK_AWS_ACCESS_KEY_ID`]: for tests and the quickstart only.
pub const MOCK_AWS_SECRET_ACCESS_KEY: &str = "mock/secret/key/for/tests/only/0123456789";

const REQUEST_ID: HeaderName = HeaderName::from_static("x-amzn-requestid");
const ERROR_TYPE: HeaderName = HeaderName::from_static("x-amzn-errortype");
const INPUT_TOKENS: HeaderName = HeaderName::from_static("x-amzn-bedrock-input-token-count");
const INVOCATION_LATENCY: HeaderName = HeaderName::from_static("x-amzn-bedrock-invocation-latency");

/// What a handler needs of the request besides its body, for the SigV4 check.
struct Received {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
}

/// `POST /model/{modelId}/converse`.
pub(super) async fn converse(
    State(state): State<MockState>,
    Path(model): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let received = Received {
        method,
        uri,
        headers,
    };
    let seq = begin(&state);
    stamp(
        chat(&state, seq, &model, &received, &body, false).await,
        seq,
    )
}

/// `POST /model/{modelId}/converse-stream`.
pub(super) async fn converse_stream(
    State(state): State<MockState>,
    Path(model): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let received = Received {
        method,
        uri,
        headers,
    };
    let seq = begin(&state);
    stamp(chat(&state, seq, &model, &received, &body, true).await, seq)
}

/// `POST /model/{modelId}/invoke`: embedding models only.
pub(super) async fn invoke(
    State(state): State<MockState>,
    Path(model): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let received = Received {
        method,
        uri,
        headers,
    };
    let seq = begin(&state);
    stamp(embed(&state, seq, &model, &received, &body).await, seq)
}

/// Counts the request and numbers it.
fn begin(state: &MockState) -> u64 {
    bump(&state.inner.requests);
    state.inner.seq.fetch_add(1, Ordering::Relaxed) + 1
}

/// Stamps the request id on whatever the handler answers, errors included, as AWS does.
fn stamp(mut response: Response, seq: u64) -> Response {
    if let Ok(id) = HeaderValue::try_from(request_id(seq)) {
        response.headers_mut().insert(REQUEST_ID, id);
    }
    response
}

/// A UUID-shaped request id, unique per process like the other mocks' ids.
fn request_id(seq: u64) -> String {
    format!("00000000-0000-4000-8000-{seq:012x}")
}

fn is_embedding_model(model: &str) -> bool {
    Family::of(model).is_some()
}

/// Converse and ConverseStream: the OpenAI chat handler's flow (count, authenticate, parse,
/// roll the faults, hang, fail, answer) in Bedrock's shapes.
async fn chat(
    state: &MockState,
    seq: u64,
    model: &str,
    received: &Received,
    body: &[u8],
    stream: bool,
) -> Response {
    let shared = &state.inner;
    bump(&shared.chat);
    if let Err(denied) =
        sigv4::authenticate(&received.method, &received.uri, &received.headers, body)
    {
        return error(StatusCode::FORBIDDEN, denied.name, &denied.message);
    }
    let cfg = state.config();
    if is_embedding_model(model) {
        return validation(
            "This action doesn't support the model that you provided. Try again with a \
             supported text or chat model.",
        );
    }
    let req: ConverseRequest<'_> = match serde_json::from_slice(body) {
        Ok(req) => req,
        Err(e) => {
            return validation(&format!(
                "Malformed input request: {e}, please reformat your input and try again."
            ));
        }
    };
    if let Err(message) = req.validate() {
        return validation(&message);
    }
    if stream {
        bump(&shared.streams);
    }
    let plan = cfg.roll(stream);
    if plan.hang && !state.pause(cfg.hang_ms).await {
        return shutting_down();
    }
    if plan.fail {
        bump(&shared.faults);
        return injected_failure(cfg.fail_status, cfg.retry_after_secs, model);
    }
    let reply = req.reply(cfg.stream_words, seq);
    let answer = converse::Answering {
        reply: &reply,
        latency_ms: cfg.latency_ms,
        with_usage: !cfg.omit_usage,
    };
    if stream {
        return match answer.stream_frames(plan) {
            Ok(frames) => {
                // The malformed message is already in the frames, so the feed only cuts.
                let feed_plan = Plan {
                    malformed: false,
                    ..plan
                };
                let mut response = sse(frames, &cfg, feed_plan, shared.halt.clone());
                let headers = response.headers_mut();
                headers.remove(header::CACHE_CONTROL);
                headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/vnd.amazon.eventstream"),
                );
                response
            }
            Err(e) => internal(&e.to_string()),
        };
    }
    if !state.pause(cfg.latency_ms).await {
        return shutting_down();
    }
    match answer.whole() {
        Ok(bytes) => openai::json(StatusCode::OK, bytes),
        Err(e) => internal(&e.to_string()),
    }
}

/// InvokeModel for Titan Text Embeddings and Cohere Embed: the OpenAI embeddings handler's
/// vectors (same text and size, same vector) and token counts, in the model's own body, with
/// the input token count in a header as Bedrock reports it.
async fn embed(
    state: &MockState,
    seq: u64,
    model: &str,
    received: &Received,
    body: &[u8],
) -> Response {
    let shared = &state.inner;
    if let Err(denied) =
        sigv4::authenticate(&received.method, &received.uri, &received.headers, body)
    {
        return error(StatusCode::FORBIDDEN, denied.name, &denied.message);
    }
    let Some(family) = Family::of(model) else {
        return validation("The provided model identifier is invalid.");
    };
    bump(&shared.embeddings);
    let cfg = state.config();
    // Built before the faults so a bad request is refused at once, as chat's are.
    let embedded = match family.embed(body, &request_id(seq)) {
        Ok(embedded) => embedded,
        Err(Rejection::Invalid(message)) => return validation(&message),
        Err(Rejection::Internal(e)) => return internal(&e.to_string()),
    };
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
    let Embedded { body, input_tokens } = embedded;
    let mut response = openai::json(StatusCode::OK, body);
    let headers = response.headers_mut();
    headers.insert(INPUT_TOKENS, HeaderValue::from(input_tokens));
    headers.insert(INVOCATION_LATENCY, HeaderValue::from(cfg.latency_ms));
    response
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    message: &'a str,
}

/// An AWS-shaped error: `{"message"}`, named by `x-amzn-ErrorType` the way AWS's JSON
/// protocols name it (the SDKs read the part before the colon).
fn error(status: StatusCode, name: &str, message: &str) -> Response {
    let mut response = match serde_json::to_vec(&ErrorBody { message }) {
        Ok(bytes) => openai::json(status, bytes),
        // Only a string is serialised: unreachable in practice, and the status and the
        // error type header are still a truthful answer.
        Err(_) => status.into_response(),
    };
    let kind = format!("{name}:http://internal.amazon.com/coral/com.amazon.bedrock/");
    if let Ok(kind) = HeaderValue::try_from(kind) {
        response.headers_mut().insert(ERROR_TYPE, kind);
    }
    response
}

fn validation(message: &str) -> Response {
    error(StatusCode::BAD_REQUEST, "ValidationException", message)
}

fn internal(message: &str) -> Response {
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "InternalServerException",
        message,
    )
}

fn shutting_down() -> Response {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "ServiceUnavailableException",
        "The mock upstream is shutting down.",
    )
}

/// An injected failure, with the exception Bedrock Runtime documents for that status.
fn injected_failure(status: u16, retry_after_secs: Option<u64>, model: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let (name, message) = match status.as_u16() {
        403 => (
            "AccessDeniedException",
            format!("You don't have access to the model with the specified model ID {model}."),
        ),
        404 => (
            "ResourceNotFoundException",
            format!("Could not resolve the foundation model from the model identifier {model}."),
        ),
        408 => (
            "ModelTimeoutException",
            "Model has timed out in processing the request.".to_owned(),
        ),
        424 => (
            "ModelErrorException",
            "The model returned an error.".to_owned(),
        ),
        429 => (
            "ThrottlingException",
            "Too many requests, please wait before trying again.".to_owned(),
        ),
        503 => (
            "ServiceUnavailableException",
            "Bedrock is unable to process your request.".to_owned(),
        ),
        500..=599 => (
            "InternalServerException",
            "The server encountered an internal error while processing the request.".to_owned(),
        ),
        _ => (
            "ValidationException",
            "The provided request is not valid.".to_owned(),
        ),
    };
    let mut response = error(
        status,
        name,
        &format!("{message} (injected by switchyard mock)"),
    );
    if let Some(secs) = retry_after_secs {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}
