//! The Amazon Bedrock adapter: speaks the Bedrock runtime API (`POST
//! {base_url}/model/{modelId}/converse`, `/converse-stream`, and `/invoke` for embeddings) and
//! converts to and from the OpenAI shape the gateway works in. Owns its HTTP client, URLs,
//! authentication (SigV4 by [`crate::aws::SigV4`], or a Bedrock API key as a bearer token, both
//! read from their credentials per request), timeouts and
//! error mapping; the conversions are in `convert/` (chat, pure), `embed.rs` (embeddings, pure)
//! and `stream/` (event-stream framing). It never sees virtual keys, events or routing
//! decisions, and never retries: the router does.

mod convert;
mod embed;
mod stream;
mod wire;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use reqwest::header::{AUTHORIZATION, HeaderMap};
use std::sync::Arc;
use std::time::SystemTime;

use super::http::{self, ErrorDetail, unix_now};
use super::{
    Adapter, BuildError, ChatRequest, ChatResponse, ChatStream, EmbeddingsRequest,
    EmbeddingsResponse, ProviderError,
};
use crate::aws::SigV4;
use crate::config::ProviderSpec;
use crate::events::Usage;
use embed::Family;
use wire::ErrorBody;

/// Titan embeds one text per call; this many calls run at once for one request, so a batch of
/// a thousand inputs does not open a thousand connections (and meet Bedrock's throttling).
const TITAN_CONCURRENCY: usize = 8;

pub struct Bedrock {
    spec: Arc<ProviderSpec>,
    client: reqwest::Client,
    /// Parsed once; a request's URL is this plus `/model/{modelId}/{operation}`.
    base: reqwest::Url,
    /// `None` with a Bedrock API key (sent as a bearer token) or no credentials.
    signer: Option<SigV4>,
}

/// The Bedrock runtime's SigV4 signing name.
const SERVICE: &str = "bedrock";

impl Bedrock {
    pub fn new(spec: Arc<ProviderSpec>) -> Result<Self, BuildError> {
        // A Bedrock API key rides on every request as a bearer token, and nothing is signed.
        let signer = match (&spec.api_key, &spec.aws) {
            (None, Some(_)) => Some(SigV4::new(&spec.region, SERVICE)),
            _ => None,
        };
        let client = http::client(&spec, HeaderMap::new())?;
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
        // Credentials that cannot go in a header fail here, at start, rather than on the first
        // request (a refreshed value is checked before it is taken).
        let mut probe = adapter
            .client
            .post(adapter.base.clone())
            .body(Vec::new())
            .build()?;
        adapter
            .authenticate(&mut probe)
            .map_err(|_| BuildError::ApiKey(adapter.spec.name.clone()))?;
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
        let mut req = http::post_json(&self.client, url, body)
            .build()
            .map_err(|e| ProviderError::Invalid(super::short_cause(&e)))?;
        self.authenticate(&mut req)?;
        http::execute(&self.client, req, read_error).await
    }

    /// Add the credentials as they are now: the API key as a bearer token, or a SigV4
    /// signature.
    fn authenticate(&self, req: &mut reqwest::Request) -> Result<(), ProviderError> {
        if let Some(key) = &self.spec.api_key {
            let bearer = http::credential_header("Bearer ", key)?;
            req.headers_mut().insert(AUTHORIZATION, bearer);
        } else if let (Some(signer), Some(aws)) = (&self.signer, &self.spec.aws) {
            signer
                .sign(req, &aws.current(), SystemTime::now())
                .map_err(|e| ProviderError::Invalid(e.to_string()))?;
        }
        Ok(())
    }

    /// Send and read the whole answer (with its headers) within the provider's timeout.
    async fn complete(
        &self,
        url: reqwest::Url,
        body: Vec<u8>,
    ) -> Result<(HeaderMap, Bytes), ProviderError> {
        http::within(self.spec.timeout, "response", async {
            let resp = self.send(url, body).await?;
            let headers = resp.headers().clone();
            Ok((headers, http::read_all(resp).await?))
        })
        .await
    }

    fn body(req: &ChatRequest) -> Result<Vec<u8>, ProviderError> {
        http::to_json(&convert::request(req)?)
    }
}

impl Adapter for Bedrock {
    fn name(&self) -> &str {
        &self.spec.name
    }

    async fn chat(&self, req: &ChatRequest, model: &str) -> Result<ChatResponse, ProviderError> {
        let body = Self::body(req)?;
        let url = self.url(model, "converse")?;
        let (headers, bytes) = self.complete(url, body).await?;
        Ok(convert::response(&bytes, &completion_id(&headers), model, unix_now())?.into())
    }

    async fn chat_stream(
        &self,
        req: &ChatRequest,
        model: &str,
    ) -> Result<ChatStream, ProviderError> {
        let body = Self::body(req)?;
        let url = self.url(model, "converse-stream")?;
        let resp = http::within(
            self.spec.first_token_timeout,
            "first_byte",
            self.send(url, body),
        )
        .await?;
        let id = completion_id(resp.headers());
        Ok(stream::chunks(
            resp,
            self.spec.idle_timeout,
            id,
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
        let family = Family::of(model)?;
        let url = self.url(model, "invoke")?;
        let (body, tokens) = if family == Family::Cohere {
            let body = http::to_json(&embed::cohere_request(&read))?;
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
                    embed::titan_request(family, text, &read).and_then(|b| http::to_json(&b))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let calls = futures::stream::iter(bodies)
                .map(|body| {
                    let url = url.clone();
                    async move { self.complete(url, body).await.map(|(_, bytes)| bytes) }
                })
                .buffered(TITAN_CONCURRENCY)
                .try_collect::<Vec<Bytes>>();
            let answers = http::within(self.spec.timeout, "response", calls).await?;
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

/// The error name of an `x-amzn-ErrorType` header: `ThrottlingException:http://internal…`
/// (or `aws.protocoltests#ThrottlingException`) → `ThrottlingException`.
fn error_type(header: &str) -> Option<String> {
    let name = header.split([':', ',']).next().unwrap_or(header);
    let name = name.rsplit('#').next().unwrap_or(name).trim();
    (!name.is_empty()).then(|| name.to_owned())
}

/// A non-2xx answer: `{"message": …}` with the error's name in the `x-amzn-ErrorType` header.
fn read_error(_status: u16, headers: &HeaderMap, body: &[u8]) -> ErrorDetail {
    ErrorDetail {
        message: serde_json::from_slice::<ErrorBody>(body)
            .ok()
            .and_then(|b| b.message),
        error_type: headers
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok())
            .and_then(error_type),
        ..ErrorDetail::default()
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
