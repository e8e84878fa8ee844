//! The Amazon Bedrock adapter: speaks the Bedrock runtime API (`POST
//! {base_url}/model/{modelId}/converse`, `/converse-stream`, and `/invoke` for embeddings) and
//! converts to and from the OpenAI shape the gateway works in. Owns its HTTP client, URLs,
//! authentication (SigV4 in `sign.rs`, or a Bedrock API key as a bearer token), timeouts and
//! error mapping; the conversions are in `convert/` (chat, pure), `embed.rs` (embeddings, pure)
//! and `stream/` (event-stream framing). It never sees virtual keys, events or routing
//! decisions, and never retries: the router does.

mod convert;
mod embed;
mod sign;
mod stream;
mod wire;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt, TryStreamExt};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{
    BuildError, ChatRequest, ChatResponse, ChatStream, EmbeddingsRequest, EmbeddingsResponse,
    Provider, ProviderError, retry_after, transport_error,
};
use crate::config::ProviderSpec;
use crate::events::Usage;
use embed::Family;
use sign::SigV4;
use wire::ErrorBody;

/// Titan embeds one text per call; this many calls run at once for one request, so a batch of
/// a thousand inputs does not open a thousand connections (and meet Bedrock's throttling).
const TITAN_CONCURRENCY: usize = 8;

pub struct Bedrock {
    spec: Arc<ProviderSpec>,
    client: reqwest::Client,
    /// Parsed once; a request's URL is this plus `/model/{modelId}/{operation}`.
    base: reqwest::Url,
    /// `None` with a Bedrock API key (a default header of the client) or no credentials.
    signer: Option<SigV4>,
}

impl Bedrock {
    pub fn new(spec: Arc<ProviderSpec>) -> Result<Self, BuildError> {
        let mut headers = HeaderMap::new();
        // A Bedrock API key rides on every request as a bearer token, and nothing is signed.
        let signer = match (&spec.api_key, &spec.aws) {
            (Some(key), _) => {
                let mut value = HeaderValue::from_str(&format!("Bearer {}", key.expose()))
                    .map_err(|_| BuildError::ApiKey(spec.name.clone()))?;
                // Keeps the key out of reqwest's Debug output.
                value.set_sensitive(true);
                headers.insert(AUTHORIZATION, value);
                None
            }
            (None, Some(aws)) => Some(SigV4::new(aws, &spec.region)),
            (None, None) => None,
        };
        let client = reqwest::Client::builder()
            .connect_timeout(spec.connect_timeout)
            .pool_max_idle_per_host(1024)
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_nodelay(true)
            .default_headers(headers)
            .build()?;
        let base =
            reqwest::Url::parse(&spec.base_url).map_err(|e| BuildError::Url(e.to_string()))?;
        if base.cannot_be_a_base() || base.query().is_some() {
            return Err(BuildError::Url(format!(
                "{} cannot take a path",
                spec.base_url
            )));
        }
        let adapter = Self {
            spec,
            client,
            base,
            signer,
        };
        // Credentials that cannot go in a header fail here, once, rather than on every request.
        if let Some(signer) = &adapter.signer {
            let mut probe = adapter
                .client
                .post(adapter.base.clone())
                .body(Vec::new())
                .build()?;
            signer
                .sign(&mut probe, SystemTime::now())
                .map_err(|_| BuildError::ApiKey(adapter.spec.name.clone()))?;
        }
        Ok(adapter)
    }

    /// `{base_url}/model/{modelId}/{operation}`. The model id is one path segment with every
    /// byte but the unreserved ones percent-encoded, as AWS's SDKs send it: ids hold `:`
    /// (`anthropic.claude-3-5-haiku-20241022-v1:0`) and ARNs `/`, and neither may split or
    /// escape the path.
    fn url(&self, model: &str, operation: &str) -> Result<reqwest::Url, ProviderError> {
        if model.is_empty() || model == "." || model == ".." {
            return Err(ProviderError::Invalid(
                "the deployment names no Bedrock model id".into(),
            ));
        }
        let mut path = self.base.path().trim_end_matches('/').to_owned();
        path.push_str("/model/");
        for byte in model.bytes() {
            if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
                path.push(char::from(byte));
            } else {
                path.push_str(&format!("%{byte:02X}"));
            }
        }
        path.push('/');
        path.push_str(operation);
        let mut url = self.base.clone();
        url.set_path(&path);
        Ok(url)
    }

    /// POST `body` as JSON, signed when SigV4 credentials are configured; a non-2xx answer is
    /// a typed error.
    async fn send(
        &self,
        url: reqwest::Url,
        body: Vec<u8>,
    ) -> Result<reqwest::Response, ProviderError> {
        let mut req = self
            .client
            .post(url)
            .header(CONTENT_TYPE, "application/json")
            .body(body)
            .build()
            .map_err(|e| ProviderError::Invalid(super::short_cause(&e)))?;
        if let Some(signer) = &self.signer {
            signer
                .sign(&mut req, SystemTime::now())
                .map_err(|e| ProviderError::Invalid(e.to_string()))?;
        }
        let resp = self.client.execute(req).await.map_err(transport_error)?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        Err(status_error(resp).await)
    }

    /// Send and read the whole answer (with its headers) within the provider's timeout.
    async fn complete(
        &self,
        url: reqwest::Url,
        body: Vec<u8>,
    ) -> Result<(HeaderMap, Bytes), ProviderError> {
        let fut = async {
            let resp = self.send(url, body).await?;
            let headers = resp.headers().clone();
            let bytes = resp.bytes().await.map_err(transport_error)?;
            Ok((headers, bytes))
        };
        tokio::time::timeout(self.spec.timeout, fut)
            .await
            .map_err(|_| ProviderError::Timeout { phase: "response" })?
    }

    fn body(req: &ChatRequest) -> Result<Vec<u8>, ProviderError> {
        let out = convert::request(req)?;
        serde_json::to_vec(&out).map_err(|e| ProviderError::Decode(e.to_string()))
    }

    async fn chat_inner(
        &self,
        req: &ChatRequest,
        model: &str,
    ) -> Result<ChatResponse, ProviderError> {
        let body = Self::body(req)?;
        let url = self.url(model, "converse")?;
        let (headers, bytes) = self.complete(url, body).await?;
        let converted = convert::response(&bytes, &completion_id(&headers), model, unix_now())?;
        Ok(ChatResponse {
            body: Bytes::from(converted.body),
            usage: converted.usage,
            finish_reason: converted.finish_reason.map(str::to_owned),
        })
    }

    async fn stream_inner(
        &self,
        req: &ChatRequest,
        model: &str,
    ) -> Result<ChatStream, ProviderError> {
        let body = Self::body(req)?;
        let url = self.url(model, "converse-stream")?;
        let resp = tokio::time::timeout(self.spec.first_token_timeout, self.send(url, body))
            .await
            .map_err(|_| ProviderError::Timeout {
                phase: "first_byte",
            })??;
        let id = completion_id(resp.headers());
        Ok(stream::chunks(
            resp,
            self.spec.idle_timeout,
            id,
            model,
            unix_now(),
        ))
    }

    async fn embeddings_inner(
        &self,
        req: &EmbeddingsRequest,
        model: &str,
    ) -> Result<EmbeddingsResponse, ProviderError> {
        let read = embed::embeddings(req)?;
        let family = Family::of(model)?;
        let url = self.url(model, "invoke")?;
        let (body, tokens) = if family == Family::Cohere {
            let body = serde_json::to_vec(&embed::cohere_request(&read))
                .map_err(|e| ProviderError::Decode(e.to_string()))?;
            let (headers, bytes) = self.complete(url, body).await?;
            let tokens = headers
                .get("x-amzn-bedrock-input-token-count")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok());
            (
                embed::cohere_response(&bytes, &read, model, tokens)?,
                tokens,
            )
        } else {
            let bodies = read
                .texts
                .iter()
                .map(|text| {
                    embed::titan_request(family, text, &read).and_then(|b| {
                        serde_json::to_vec(&b).map_err(|e| ProviderError::Decode(e.to_string()))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let calls = futures::stream::iter(bodies)
                .map(|body| {
                    let url = url.clone();
                    async move { self.complete(url, body).await.map(|(_, bytes)| bytes) }
                })
                .buffered(TITAN_CONCURRENCY)
                .try_collect::<Vec<Bytes>>();
            let answers = tokio::time::timeout(self.spec.timeout, calls)
                .await
                .map_err(|_| ProviderError::Timeout { phase: "response" })??;
            let (body, tokens) = embed::titan_response(&answers, &read, model)?;
            (body, Some(tokens))
        };
        Ok(EmbeddingsResponse {
            body: Bytes::from(body),
            // Without a count from Bedrock the gateway estimates it.
            usage: tokens.map(|input_tokens| Usage {
                input_tokens,
                ..Usage::default()
            }),
        })
    }
}

impl Provider for Bedrock {
    fn name(&self) -> &str {
        &self.spec.name
    }

    fn chat<'a>(
        &'a self,
        req: &'a ChatRequest,
        model: &'a str,
    ) -> BoxFuture<'a, Result<ChatResponse, ProviderError>> {
        self.chat_inner(req, model).boxed()
    }

    fn chat_stream<'a>(
        &'a self,
        req: &'a ChatRequest,
        model: &'a str,
    ) -> BoxFuture<'a, Result<ChatStream, ProviderError>> {
        self.stream_inner(req, model).boxed()
    }

    fn embeddings<'a>(
        &'a self,
        req: &'a EmbeddingsRequest,
        model: &'a str,
    ) -> BoxFuture<'a, Result<EmbeddingsResponse, ProviderError>> {
        self.embeddings_inner(req, model).boxed()
    }
}

/// The OpenAI id of an answer: Bedrock's request id (`x-amzn-requestid`), which is what AWS
/// support asks for, or a fresh one when the header is missing.
fn completion_id(headers: &HeaderMap) -> String {
    match headers
        .get("x-amzn-requestid")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
    {
        Some(request_id) => format!("chatcmpl-{request_id}"),
        None => format!("chatcmpl-{}", ulid::Ulid::generate()),
    }
}

fn unix_now() -> u64 {
    // A clock before 1970 is a broken host; 0 only makes `created` wrong, not the answer.
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

async fn status_error(resp: reqwest::Response) -> ProviderError {
    let status = resp.status().as_u16();
    let retry_after = retry_after(resp.headers());
    let error_type = resp
        .headers()
        .get("x-amzn-errortype")
        .and_then(|v| v.to_str().ok())
        .and_then(error_type);
    let body = resp.bytes().await.unwrap_or_default();
    error_from_body(status, retry_after, error_type, &body)
}

/// The error name of an `x-amzn-ErrorType` header: `ThrottlingException:http://internal…`
/// (or `aws.protocoltests#ThrottlingException`) → `ThrottlingException`.
fn error_type(header: &str) -> Option<String> {
    let name = header.split([':', ',']).next().unwrap_or(header);
    let name = name.rsplit('#').next().unwrap_or(name).trim();
    (!name.is_empty()).then(|| name.to_owned())
}

/// A non-2xx answer: `{"message": …}` with the error's name in the `x-amzn-ErrorType` header.
fn error_from_body(
    status: u16,
    retry_after: Option<Duration>,
    error_type: Option<String>,
    body: &[u8],
) -> ProviderError {
    // An auth failure is about the gateway's credentials, and AWS's signature-mismatch message
    // quotes the canonical request (session token included): never pass that text on.
    let message = if matches!(status, 401 | 403) {
        "the provider rejected the gateway's credentials".to_owned()
    } else {
        serde_json::from_slice::<ErrorBody>(body)
            .ok()
            .and_then(|b| b.message)
            .unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(512).collect())
    };
    ProviderError::Status {
        status,
        message,
        error_type,
        code: None,
        retry_after,
    }
}

#[cfg(test)]
mod tests;

/// The pure conversions, reachable from the criterion benches (`benches/codec.rs`); the gateway
/// itself goes through [`Bedrock`].
pub mod conversions {
    use super::{Bedrock, ChatRequest, ProviderError, convert, stream};

    /// Canonical request → Converse request body (the model goes in the URL).
    pub fn request(req: &ChatRequest) -> Result<Vec<u8>, ProviderError> {
        Bedrock::body(req)
    }

    /// Converse answer body → canonical `chat.completion` body.
    pub fn response(body: &[u8], model: &str) -> Result<Vec<u8>, ProviderError> {
        convert::response(body, "chatcmpl-bench", model, 0).map(|c| c.body)
    }

    /// Translates one ConverseStream's events.
    pub struct StreamEvents {
        frames: stream::Frames,
        translator: stream::Translator,
    }

    impl StreamEvents {
        /// A stream of answers from `model`.
        pub fn new(model: &str) -> Self {
            Self {
                frames: stream::Frames::default(),
                translator: stream::Translator::new("chatcmpl-bench".into(), model, 0),
            }
        }

        /// The canonical chunks for one event's JSON payload, `event_type` as its
        /// `:event-type` header names it.
        pub fn event(
            &mut self,
            event_type: &str,
            payload: &[u8],
        ) -> Result<Vec<bytes::Bytes>, ProviderError> {
            let step = self.translator.event(event_type, payload)?;
            Ok(step.chunks.into_iter().map(|c| c.data).collect())
        }

        /// The canonical chunks for raw body bytes: event-stream framing (both CRCs checked)
        /// and translation, as the adapter does it.
        pub fn bytes(&mut self, bytes: &[u8]) -> Result<Vec<bytes::Bytes>, ProviderError> {
            self.frames.push(bytes);
            let mut out = Vec::new();
            while let Some(message) = self.frames.next_message()? {
                let step = self.translator.message(&message)?;
                out.extend(step.chunks.into_iter().map(|c| c.data));
            }
            Ok(out)
        }
    }
}
