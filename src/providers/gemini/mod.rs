//! The Gemini adapter: speaks Google's Generative Language API
//! (`POST {base_url}/models/{model}:generateContent`, `:streamGenerateContent?alt=sse`,
//! `:batchEmbedContents`) and converts to and from the OpenAI shape the gateway works in. Owns
//! its HTTP client, headers, URLs, timeouts and error mapping; the conversions are in
//! `convert.rs` (chat, pure), `embed.rs` (embeddings, pure) and `stream.rs` (SSE). It never sees
//! virtual keys, events or routing decisions, and never retries: the router does.

mod convert;
mod embed;
mod stream;
mod wire;

use bytes::Bytes;
use reqwest::header::HeaderMap;
use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use super::http::{self, unix_now};
use super::{
    Adapter, BuildError, ChatRequest, ChatResponse, ChatStream, EmbeddingsRequest,
    EmbeddingsResponse, ProviderError,
};
use crate::config::ProviderSpec;
use wire::{ErrorBody, ErrorDetail};

pub struct Gemini {
    spec: Arc<ProviderSpec>,
    client: reqwest::Client,
    /// Parsed once; a request's URL is this plus the model's path and the method.
    base: reqwest::Url,
}

impl Gemini {
    pub fn new(spec: Arc<ProviderSpec>) -> Result<Self, BuildError> {
        let client = http::client(&spec, HeaderMap::new())?;
        let base =
            reqwest::Url::parse(&spec.base_url).map_err(|e| BuildError::Url(e.to_string()))?;
        if base.cannot_be_a_base() {
            return Err(BuildError::Url(format!(
                "{} cannot take a path",
                spec.base_url
            )));
        }
        Ok(Self { spec, client, base })
    }

    /// `{base_url}/models/{model}:{method}`; the model is percent-encoded segment by segment,
    /// so a name cannot reach another path or add a query.
    fn url(&self, model: &str, method: &str) -> Result<reqwest::Url, ProviderError> {
        if model.is_empty() {
            return Err(ProviderError::Invalid(
                "the deployment names no Gemini model".into(),
            ));
        }
        let resource = resource_name(model);
        let mut url = self.base.clone();
        {
            // invariant: `new` refused a base URL that cannot be a base.
            let Ok(mut segments) = url.path_segments_mut() else {
                return Err(ProviderError::Connect("bad base URL".into()));
            };
            segments.pop_if_empty();
            let mut names = resource.split('/').peekable();
            while let Some(name) = names.next() {
                if names.peek().is_some() {
                    segments.push(name);
                } else {
                    segments.push(&format!("{name}:{method}"));
                }
            }
        }
        Ok(url)
    }

    async fn send(
        &self,
        url: reqwest::Url,
        body: Vec<u8>,
    ) -> Result<reqwest::Response, ProviderError> {
        let mut request = http::post_json(&self.client, url, body);
        // Read per request, as it may be refreshed.
        if let Some(key) = &self.spec.api_key {
            request = request.header("x-goog-api-key", http::credential_header("", key)?);
        }
        http::send(request, read_error).await
    }

    /// Send and read the whole answer within the provider's timeout.
    async fn complete(&self, url: reqwest::Url, body: Vec<u8>) -> Result<Bytes, ProviderError> {
        http::within(self.spec.timeout, "response", async {
            http::read_all(self.send(url, body).await?).await
        })
        .await
    }

    fn body(req: &ChatRequest) -> Result<Vec<u8>, ProviderError> {
        http::to_json(&convert::request(req)?)
    }
}

impl Adapter for Gemini {
    fn name(&self) -> &str {
        &self.spec.name
    }

    async fn chat(&self, req: &ChatRequest, model: &str) -> Result<ChatResponse, ProviderError> {
        let body = Self::body(req)?;
        let url = self.url(model, "generateContent")?;
        let bytes = self.complete(url, body).await?;
        Ok(convert::response(&bytes, model, unix_now())?.into())
    }

    async fn chat_stream(
        &self,
        req: &ChatRequest,
        model: &str,
    ) -> Result<ChatStream, ProviderError> {
        let body = Self::body(req)?;
        let mut url = self.url(model, "streamGenerateContent")?;
        url.set_query(Some("alt=sse"));
        let resp = http::within(
            self.spec.first_token_timeout,
            "first_byte",
            self.send(url, body),
        )
        .await?;
        Ok(stream::chunks(
            resp,
            self.spec.idle_timeout,
            model,
            unix_now(),
        ))
    }

    async fn embeddings(
        &self,
        req: &EmbeddingsRequest,
        model: &str,
    ) -> Result<EmbeddingsResponse, ProviderError> {
        let read = embed::embeddings(req)?;
        let url = self.url(model, "batchEmbedContents")?;
        let resource = resource_name(model);
        let body = serde_json::to_vec(&embed::embed_request(&read, &resource))
            .map_err(|e| ProviderError::Decode(e.to_string()))?;
        let bytes = self.complete(url, body).await?;
        Ok(EmbeddingsResponse {
            body: Bytes::from(embed::embed_response(&bytes, &read, model)?),
            // Gemini reports no token counts for embeddings; the gateway estimates them.
            usage: None,
        })
    }
}

/// Gemini's resource name of a model: `models/<name>`, unless the name already is a resource
/// path (`models/…`, `tunedModels/…`).
fn resource_name(model: &str) -> Cow<'_, str> {
    if model.contains('/') {
        Cow::Borrowed(model)
    } else {
        Cow::Owned(format!("models/{model}"))
    }
}

/// The error envelope of a body: `{"error": …}`, or the same inside a one-element array, as
/// Google sends errors of a stream that was not asked for as SSE.
fn error_detail(body: &[u8]) -> ErrorDetail {
    // Decided by the first byte: serde would also read an array into the struct, positionally.
    let array = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[');
    let parsed = if array {
        serde_json::from_slice::<Vec<ErrorBody>>(body).map(|v| v.into_iter().next())
    } else {
        serde_json::from_slice::<ErrorBody>(body).map(Some)
    };
    parsed
        .ok()
        .flatten()
        .and_then(|b| b.error)
        .unwrap_or_default()
}

/// A non-2xx answer: `{"error":{"code","message","status","details"}}`. The `status` string
/// (`RESOURCE_EXHAUSTED`…) becomes the error type; a `RetryInfo` detail stands in for the
/// `Retry-After` header Google does not send.
fn read_error(status: u16, _headers: &HeaderMap, body: &[u8]) -> http::ErrorDetail {
    let detail = error_detail(body);
    // Google answers a bad key with 400 INVALID_ARGUMENT (reason API_KEY_INVALID): that is the
    // gateway's credentials failing, not the client's request, so it is classed as a 401, which
    // lets the router try another deployment instead of blaming the client.
    let key_rejected = status == 400
        && detail
            .details
            .iter()
            .any(|d| d.reason.as_deref() == Some("API_KEY_INVALID"));
    http::ErrorDetail {
        retry_after: detail
            .details
            .iter()
            .find_map(|d| d.retry_delay.as_deref().and_then(proto_duration)),
        message: detail.message,
        error_type: if key_rejected {
            Some("UNAUTHENTICATED".to_owned())
        } else {
            detail.status
        },
        code: None,
        status: key_rejected.then_some(401),
    }
}

/// A protobuf Duration in its JSON form (`"22s"`, `"0.5s"`).
fn proto_duration(s: &str) -> Option<Duration> {
    s.strip_suffix('s')?
        .parse::<f64>()
        .ok()
        .filter(|secs| secs.is_finite() && *secs >= 0.0)
        .map(Duration::from_secs_f64)
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_methods // the test owns its mock server task
)]
mod tests;

/// The pure conversions, reachable from the criterion benches (`benches/codec.rs`); the gateway
/// itself goes through [`Gemini`].
pub mod conversions {
    use super::{ChatRequest, Gemini, ProviderError, convert, stream};

    /// Canonical request → `GenerateContentRequest` body (the model goes in the URL).
    pub fn request(req: &ChatRequest) -> Result<Vec<u8>, ProviderError> {
        Gemini::body(req)
    }

    /// `GenerateContentResponse` body → canonical `chat.completion` body.
    pub fn response(body: &[u8], model: &str) -> Result<Vec<u8>, ProviderError> {
        convert::response(body, model, 0).map(|c| c.body)
    }

    /// Translates one stream's events, one `data:` payload at a time.
    pub struct StreamEvents(stream::Translator);

    impl StreamEvents {
        /// A stream of answers from `model`.
        pub fn new(model: &str) -> Self {
            Self(stream::Translator::new(model, 0))
        }

        /// The canonical chunks for one event.
        pub fn event(&mut self, data: &str) -> Result<Vec<bytes::Bytes>, ProviderError> {
            Ok(self.0.event(data)?.into_iter().map(|c| c.data).collect())
        }

        /// The chunks the end of the body makes: finish reasons, then usage.
        pub fn end(&mut self) -> Result<Vec<bytes::Bytes>, ProviderError> {
            Ok(self.0.end()?.into_iter().map(|c| c.data).collect())
        }
    }
}
