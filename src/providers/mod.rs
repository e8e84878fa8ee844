//! Upstream providers behind one seam.
//!
//! The canonical request and response shape is OpenAI's chat completion (the shape clients send
//! us); each adapter turns it into its own wire format and back. Adapters own their HTTP client,
//! timeouts and SSE parsing; they never see virtual keys, events or routing decisions.

pub mod anthropic;
pub mod bedrock;
pub(crate) mod canonical;
mod error;
pub mod gemini;
pub(crate) mod http;
pub mod openai;
pub mod tokens;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

use crate::config::{ProviderKind, ProviderSpec};
use crate::events::Usage;

pub use error::{Class, Fault, ProviderError};
pub(crate) use error::{short_cause, transport_error};

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

/// What each adapter implements: plain async methods, each in its own shape. The blanket
/// `impl Provider` below boxes them into the object-safe seam the router holds, once for every
/// adapter.
pub trait Adapter: Send + Sync + 'static {
    fn name(&self) -> &str;
    fn chat(
        &self,
        req: &ChatRequest,
        model: &str,
    ) -> impl Future<Output = Result<ChatResponse, ProviderError>> + Send;
    fn chat_stream(
        &self,
        req: &ChatRequest,
        model: &str,
    ) -> impl Future<Output = Result<ChatStream, ProviderError>> + Send;
    /// Providers without an embeddings API keep this default.
    fn embeddings(
        &self,
        _req: &EmbeddingsRequest,
        _model: &str,
    ) -> impl Future<Output = Result<EmbeddingsResponse, ProviderError>> + Send {
        futures::future::ready(Err(ProviderError::Unsupported("embeddings")))
    }
}

impl<A: Adapter> Provider for A {
    fn name(&self) -> &str {
        Adapter::name(self)
    }
    fn chat<'a>(
        &'a self,
        req: &'a ChatRequest,
        model: &'a str,
    ) -> BoxFuture<'a, Result<ChatResponse, ProviderError>> {
        Box::pin(Adapter::chat(self, req, model))
    }
    fn chat_stream<'a>(
        &'a self,
        req: &'a ChatRequest,
        model: &'a str,
    ) -> BoxFuture<'a, Result<ChatStream, ProviderError>> {
        Box::pin(Adapter::chat_stream(self, req, model))
    }
    fn embeddings<'a>(
        &'a self,
        req: &'a EmbeddingsRequest,
        model: &'a str,
    ) -> BoxFuture<'a, Result<EmbeddingsResponse, ProviderError>> {
        Box::pin(Adapter::embeddings(self, req, model))
    }
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
    #[error("{0} has not been fetched")]
    Unresolved(String),
}

/// Build the adapter for a validated provider spec, whose credentials must hold a value.
pub fn build(spec: Arc<ProviderSpec>) -> Result<Arc<dyn Provider>, BuildError> {
    for credential in spec.credentials() {
        if !credential.is_resolved() {
            return Err(BuildError::Unresolved(credential.name().to_owned()));
        }
        if crate::secrets::usable(&credential.current()).is_err() {
            return Err(BuildError::ApiKey(spec.name.clone()));
        }
    }
    match spec.kind {
        ProviderKind::Openai | ProviderKind::Azure => Ok(Arc::new(openai::OpenAi::new(spec)?)),
        ProviderKind::Anthropic => Ok(Arc::new(anthropic::Anthropic::new(spec)?)),
        ProviderKind::Gemini => Ok(Arc::new(gemini::Gemini::new(spec)?)),
        ProviderKind::Bedrock => Ok(Arc::new(bedrock::Bedrock::new(spec)?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
