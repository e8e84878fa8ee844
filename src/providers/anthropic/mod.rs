//! The Anthropic adapter: speaks the Messages API (`POST {base_url}/messages`) and converts to
//! and from the OpenAI shape the gateway works in. Owns its HTTP client, headers, timeouts and
//! error mapping; the conversions are in `convert.rs` (pure) and `stream.rs` (SSE). It never
//! sees virtual keys, events or routing decisions, and never retries: the router does.

mod convert;
mod stream;
mod wire;

use reqwest::header::{HeaderMap, HeaderValue};
use std::sync::Arc;

use super::http::{self, ErrorDetail, unix_now};
use super::{Adapter, BuildError, ChatRequest, ChatResponse, ChatStream, ProviderError};
use crate::config::ProviderSpec;
use wire::ErrorBody;

/// The API version this adapter's wire types follow.
const ANTHROPIC_VERSION: &str = "2023-06-01";

pub struct Anthropic {
    spec: Arc<ProviderSpec>,
    client: reqwest::Client,
    /// Parsed once: reqwest would otherwise parse (and IDNA-check) the string per request.
    messages_url: reqwest::Url,
}

impl Anthropic {
    pub fn new(spec: Arc<ProviderSpec>) -> Result<Self, BuildError> {
        // The version rides on every request, so it is set once on the client; the key is read
        // per request, as it may be refreshed.
        let mut headers = HeaderMap::new();
        headers.insert(
            "anthropic-version",
            HeaderValue::from_static(ANTHROPIC_VERSION),
        );
        let client = http::client(&spec, headers)?;
        let messages_url = reqwest::Url::parse(&format!("{}/messages", spec.base_url))
            .map_err(|e| BuildError::Url(e.to_string()))?;
        Ok(Self {
            spec,
            client,
            messages_url,
        })
    }

    fn body(req: &ChatRequest, model: &str, stream: bool) -> Result<Vec<u8>, ProviderError> {
        http::to_json(&convert::request(req, model, stream)?)
    }

    async fn send(&self, body: Vec<u8>) -> Result<reqwest::Response, ProviderError> {
        let mut request = http::post_json(&self.client, self.messages_url.clone(), body);
        if let Some(key) = &self.spec.api_key {
            request = request.header("x-api-key", http::credential_header("", key)?);
        }
        http::send(request, read_error).await
    }
}

impl Adapter for Anthropic {
    fn name(&self) -> &str {
        &self.spec.name
    }

    async fn chat(&self, req: &ChatRequest, model: &str) -> Result<ChatResponse, ProviderError> {
        let body = Self::body(req, model, false)?;
        let bytes = http::within(self.spec.timeout, "response", async {
            http::read_all(self.send(body).await?).await
        })
        .await?;
        Ok(convert::response(&bytes, unix_now())?.into())
    }

    async fn chat_stream(
        &self,
        req: &ChatRequest,
        model: &str,
    ) -> Result<ChatStream, ProviderError> {
        let body = Self::body(req, model, true)?;
        let resp =
            http::within(self.spec.first_token_timeout, "first_byte", self.send(body)).await?;
        Ok(stream::chunks(resp, self.spec.idle_timeout, unix_now()))
    }
}

/// Anthropic's error body: `{"type":"error","error":{"type","message"}}`. A 529
/// (`overloaded_error`) stays a 5xx, retryable like any other.
fn read_error(_status: u16, _headers: &HeaderMap, body: &[u8]) -> ErrorDetail {
    let detail = serde_json::from_slice::<ErrorBody>(body)
        .ok()
        .and_then(|b| b.error)
        .unwrap_or_default();
    ErrorDetail {
        message: detail.message,
        error_type: detail.error_type,
        ..ErrorDetail::default()
    }
}

#[cfg(test)]
mod tests;

/// The pure conversions, reachable from the criterion benches (`benches/codec.rs`); the gateway
/// itself goes through [`Anthropic`].
pub mod conversions {
    use super::{Anthropic, ChatRequest, ProviderError, convert, stream};

    /// Canonical request → Messages API request body.
    pub fn request(req: &ChatRequest, model: &str) -> Result<Vec<u8>, ProviderError> {
        Anthropic::body(req, model, false)
    }

    /// Messages API response body → canonical `chat.completion` body.
    pub fn response(body: &[u8]) -> Result<Vec<u8>, ProviderError> {
        convert::response(body, 0).map(|c| c.body)
    }

    /// Translates one stream's events, one `data:` payload at a time.
    pub struct StreamEvents(stream::Translator);

    impl Default for StreamEvents {
        fn default() -> Self {
            Self(stream::Translator::new(0))
        }
    }

    impl StreamEvents {
        /// The canonical chunk for one event, if the event makes one.
        pub fn event(&mut self, data: &str) -> Result<Option<bytes::Bytes>, ProviderError> {
            Ok(match self.0.event(data)? {
                stream::Step::Chunk(c) | stream::Step::Last(c) => Some(c.data),
                stream::Step::Skip | stream::Step::End => None,
            })
        }
    }
}
