//! Upstream providers behind one seam.
//!
//! The canonical request and response shape is OpenAI's chat completion (the shape clients send
//! us); each adapter turns it into its own wire format and back. Adapters own their HTTP client,
//! timeouts and SSE parsing; they never see virtual keys, events or routing decisions.

pub mod anthropic;
pub mod bedrock;
pub(crate) mod canonical;
pub mod gemini;
pub mod openai;
pub mod tokens;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

use crate::config::{ProviderKind, ProviderSpec};
use crate::events::Usage;

/// A chat completion request in OpenAI's shape. Fields the gateway acts on are typed; every
/// other field (messages, tools, response_format, seed, metadata, unknown ones…) is kept verbatim
/// in `rest` and forwarded untouched.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChatRequest {
    pub model: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
    #[serde(flatten)]
    pub rest: serde_json::Map<String, serde_json::Value>,
}

impl ChatRequest {
    pub fn is_stream(&self) -> bool {
        self.stream == Some(true)
    }
    /// Whether the client asked for the final usage chunk of a stream.
    pub fn wants_stream_usage(&self) -> bool {
        self.stream_options
            .as_ref()
            .and_then(|o| o.include_usage)
            .unwrap_or(false)
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StreamOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_usage: Option<bool>,
    #[serde(flatten)]
    pub rest: serde_json::Map<String, serde_json::Value>,
}

/// An embeddings request in OpenAI's shape: the model we route on, everything else verbatim.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EmbeddingsRequest {
    pub model: String,
    #[serde(flatten)]
    pub rest: serde_json::Map<String, serde_json::Value>,
}

/// An embeddings answer, already in OpenAI's shape.
#[derive(Debug, Clone)]
pub struct EmbeddingsResponse {
    pub body: Bytes,
    pub usage: Option<Usage>,
}

/// A complete (non-stream) answer, already in OpenAI's shape.
#[derive(Debug, Clone)]
pub struct ChatResponse {
    pub body: Bytes,
    pub usage: Option<Usage>,
    pub finish_reason: Option<String>,
}

/// One event of a streamed answer.
#[derive(Debug, Clone)]
pub struct StreamChunk {
    /// The JSON of one OpenAI `chat.completion.chunk`, ready to send as an SSE `data:` line.
    pub data: Bytes,
    pub usage: Option<Usage>,
    pub finish_reason: Option<String>,
    /// True for the trailing chunk that carries only usage (no choices).
    pub usage_only: bool,
}

pub type ChatStream = BoxStream<'static, Result<StreamChunk, ProviderError>>;

/// Whose fault a failure is, which decides the status class and whether to try elsewhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The request itself is wrong; another deployment would refuse it too.
    Client,
    /// The provider failed or is overloaded; another deployment may succeed.
    Provider,
}

/// Everything that can go wrong talking to a provider, typed so that routing and the edge decide
/// from the kind, never from message text.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProviderError {
    #[error("could not connect to the provider: {0}")]
    Connect(String),
    #[error("the provider did not answer in time ({phase})")]
    Timeout { phase: &'static str },
    #[error("the provider answered {status}: {message}")]
    Status {
        status: u16,
        message: String,
        /// The provider's own error type/code, passed on to the client for 4xx.
        error_type: Option<String>,
        code: Option<String>,
        retry_after: Option<Duration>,
    },
    #[error("the provider sent a malformed stream chunk: {0}")]
    MalformedChunk(String),
    #[error("the provider's stream ended early: {0}")]
    StreamCut(String),
    #[error("the provider sent an unreadable answer: {0}")]
    Decode(String),
    #[error("this provider does not support {0}")]
    Unsupported(&'static str),
    /// The request cannot be expressed in the provider's format; found before anything was sent.
    #[error("the request cannot be sent to this provider: {0}")]
    Invalid(String),
    /// Every deployment's circuit breaker is open: nothing was sent.
    #[error("every deployment of this model is failing; its circuit breakers are open")]
    CircuitOpen,
}

impl ProviderError {
    pub fn fault(&self) -> Fault {
        match self {
            ProviderError::Unsupported(_) | ProviderError::Invalid(_) => Fault::Client,
            ProviderError::Status { status, .. }
                if (400..500).contains(status)
                    && !matches!(status, 401 | 403 | 408 | 409 | 429) =>
            {
                Fault::Client
            }
            _ => Fault::Provider,
        }
    }

    /// Worth trying another deployment (or again) for.
    pub fn retryable(&self) -> bool {
        self.fault() == Fault::Provider
    }

    /// A short static label for metrics and events.
    pub fn label(&self) -> &'static str {
        match self {
            ProviderError::Connect(_) => "connect",
            ProviderError::Timeout { .. } => "timeout",
            ProviderError::Status { status: 429, .. } => "rate_limited",
            ProviderError::Status {
                status: 401 | 403, ..
            } => "upstream_auth",
            ProviderError::Status { status, .. } if *status >= 500 => "upstream_5xx",
            ProviderError::Status { .. } => "upstream_4xx",
            ProviderError::MalformedChunk(_) => "malformed_chunk",
            ProviderError::StreamCut(_) => "stream_cut",
            ProviderError::Decode(_) => "decode",
            ProviderError::Unsupported(_) => "unsupported",
            ProviderError::Invalid(_) => "invalid_request",
            ProviderError::CircuitOpen => "circuit_open",
        }
    }

    /// The upstream HTTP status, if one was received.
    pub fn status(&self) -> u16 {
        match self {
            ProviderError::Status { status, .. } => *status,
            _ => 0,
        }
    }
}

/// The seam every adapter implements.
pub trait Provider: Send + Sync {
    fn name(&self) -> &str;
    /// A complete answer for `req`, sent to the provider as `model`.
    fn chat<'a>(
        &'a self,
        req: &'a ChatRequest,
        model: &'a str,
    ) -> BoxFuture<'a, Result<ChatResponse, ProviderError>>;
    /// Open a stream for `req`; resolves once the provider accepted it (status 2xx), so failures
    /// before the first byte can still fall back.
    fn chat_stream<'a>(
        &'a self,
        req: &'a ChatRequest,
        model: &'a str,
    ) -> BoxFuture<'a, Result<ChatStream, ProviderError>>;
    /// Embeddings for `req`, sent to the provider as `model`.
    fn embeddings<'a>(
        &'a self,
        req: &'a EmbeddingsRequest,
        model: &'a str,
    ) -> BoxFuture<'a, Result<EmbeddingsResponse, ProviderError>>;
}

/// Why an adapter could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    #[error("base URL: {0}")]
    Url(String),
    #[error("provider {0}: the API key is not a valid HTTP header value")]
    ApiKey(String),
}

/// Build the adapter for a validated provider spec.
pub fn build(spec: Arc<ProviderSpec>) -> Result<Arc<dyn Provider>, BuildError> {
    match spec.kind {
        ProviderKind::Openai | ProviderKind::Azure => Ok(Arc::new(openai::OpenAi::new(spec)?)),
        ProviderKind::Anthropic => Ok(Arc::new(anthropic::Anthropic::new(spec)?)),
        ProviderKind::Gemini => Ok(Arc::new(gemini::Gemini::new(spec)?)),
        ProviderKind::Bedrock => Ok(Arc::new(bedrock::Bedrock::new(spec)?)),
    }
}

/// A transport failure (no HTTP status) as a provider error.
pub(crate) fn transport_error(e: reqwest::Error) -> ProviderError {
    if e.is_timeout() {
        ProviderError::Timeout { phase: "connect" }
    } else if e.is_connect() {
        ProviderError::Connect(short_cause(&e))
    } else {
        ProviderError::StreamCut(short_cause(&e))
    }
}

/// The innermost cause, without the URL reqwest puts in its own message.
pub(crate) fn short_cause(e: &reqwest::Error) -> String {
    let mut cause: &dyn std::error::Error = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

/// Parse a `Retry-After` header given in seconds (the form providers use).
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    v.trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(s: u16) -> ProviderError {
        ProviderError::Status {
            status: s,
            message: String::new(),
            error_type: None,
            code: None,
            retry_after: None,
        }
    }

    #[test]
    fn classification() {
        assert!(!status(400).retryable());
        assert!(!status(404).retryable());
        assert!(status(429).retryable());
        assert!(status(500).retryable());
        assert!(
            status(401).retryable(),
            "our credentials: another provider may work"
        );
        assert!(ProviderError::Timeout { phase: "connect" }.retryable());
        assert_eq!(status(503).label(), "upstream_5xx");
    }

    #[test]
    fn unknown_fields_survive_the_round_trip() {
        let body = r#"{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"hi"},{"type":"image_url","image_url":{"url":"data:x"}}]}],"tools":[{"type":"function","function":{"name":"f","parameters":{}}}],"seed":7,"x_custom":{"a":1},"stream":true,"stream_options":{"include_usage":false,"extra":1}}"#;
        let req: ChatRequest = serde_json::from_str(body).unwrap();
        assert!(req.is_stream());
        assert!(!req.wants_stream_usage());
        let back: serde_json::Value = serde_json::to_value(&req).unwrap();
        let orig: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(back, orig);
    }
}
