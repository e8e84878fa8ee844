//! The OpenAI adapter, used for OpenAI and every OpenAI-compatible server (Groq, Together,
//! Mistral, DeepSeek, vLLM, Ollama…): same wire format, different base URL and key. Azure OpenAI
//! is the same wire format too, with deployment URLs, `api-version` and an `api-key` header.

mod convert;
mod stream;
mod wire;

use bytes::Bytes;
use std::sync::Arc;

use super::http::{self, ErrorDetail};
use super::{
    Adapter, BuildError, ChatRequest, ChatResponse, ChatStream, EmbeddingsRequest,
    EmbeddingsResponse, ProviderError,
};
use crate::config::{ProviderKind, ProviderSpec};
use crate::events::Usage;
use wire::{CompletionInfo, ErrorBody, OutEmbeddings};

pub struct OpenAi {
    spec: Arc<ProviderSpec>,
    client: reqwest::Client,
    endpoints: Endpoints,
}

/// Where requests go.
enum Endpoints {
    /// Parsed once: reqwest would otherwise parse (and IDNA-check) the string per request.
    Fixed {
        chat: reqwest::Url,
        embeddings: reqwest::Url,
    },
    /// Azure puts the deployment in the path, so the URL depends on the deployment.
    Azure { base: String, api_version: String },
}

#[derive(Clone, Copy)]
enum Op {
    Chat,
    Embeddings,
}

impl Op {
    fn path(self) -> &'static str {
        match self {
            Op::Chat => "chat/completions",
            Op::Embeddings => "embeddings",
        }
    }
}

impl OpenAi {
    pub fn new(spec: Arc<ProviderSpec>) -> Result<Self, BuildError> {
        let client = http::client(&spec, reqwest::header::HeaderMap::new())?;
        let url = |op: Op| {
            reqwest::Url::parse(&format!("{}/{}", spec.base_url, op.path()))
                .map_err(|e| BuildError::Url(e.to_string()))
        };
        let endpoints = match spec.kind {
            ProviderKind::Azure => {
                url(Op::Chat)?;
                Endpoints::Azure {
                    base: spec.base_url.clone(),
                    api_version: spec.api_version.clone(),
                }
            }
            _ => Endpoints::Fixed {
                chat: url(Op::Chat)?,
                embeddings: url(Op::Embeddings)?,
            },
        };
        Ok(Self {
            spec,
            client,
            endpoints,
        })
    }

    fn url(&self, op: Op, model: &str) -> Result<reqwest::Url, ProviderError> {
        match &self.endpoints {
            Endpoints::Fixed { chat, embeddings } => Ok(match op {
                Op::Chat => chat.clone(),
                Op::Embeddings => embeddings.clone(),
            }),
            Endpoints::Azure { base, api_version } => reqwest::Url::parse(&format!(
                "{base}/openai/deployments/{model}/{}?api-version={api_version}",
                op.path()
            ))
            .map_err(|e| ProviderError::Connect(format!("bad deployment URL: {e}"))),
        }
    }

    async fn send(
        &self,
        op: Op,
        model: &str,
        body: Vec<u8>,
    ) -> Result<reqwest::Response, ProviderError> {
        let mut rb = http::post_json(&self.client, self.url(op, model)?, body);
        if let Some(key) = &self.spec.api_key {
            rb = match self.endpoints {
                Endpoints::Azure { .. } => rb.header("api-key", http::credential_header("", key)?),
                Endpoints::Fixed { .. } => rb.header(
                    reqwest::header::AUTHORIZATION,
                    http::credential_header("Bearer ", key)?,
                ),
            };
        }
        http::send(rb, read_error).await
    }

    /// Send a request and read the whole answer within the provider's timeout; also return what
    /// we read of it (usage, finish reason).
    async fn complete(
        &self,
        op: Op,
        model: &str,
        body: Vec<u8>,
    ) -> Result<(Bytes, CompletionInfo), ProviderError> {
        let bytes = http::within(self.spec.timeout, "response", async {
            http::read_all(self.send(op, model, body).await?).await
        })
        .await?;
        let info =
            serde_json::from_slice(&bytes).map_err(|e| ProviderError::Decode(e.to_string()))?;
        Ok((bytes, info))
    }
}

impl Adapter for OpenAi {
    fn name(&self) -> &str {
        &self.spec.name
    }

    async fn chat(&self, req: &ChatRequest, model: &str) -> Result<ChatResponse, ProviderError> {
        let body = convert::request(req, model, false)?;
        let (bytes, mut info) = self.complete(Op::Chat, model, body).await?;
        Ok(ChatResponse {
            finish_reason: info.finish_reason(),
            usage: info.usage.map(Usage::from),
            body: bytes,
        })
    }

    async fn chat_stream(
        &self,
        req: &ChatRequest,
        model: &str,
    ) -> Result<ChatStream, ProviderError> {
        let body = convert::request(req, model, true)?;
        let resp = http::within(
            self.spec.first_token_timeout,
            "first_byte",
            self.send(Op::Chat, model, body),
        )
        .await?;
        Ok(stream::chunks(resp, self.spec.idle_timeout))
    }

    async fn embeddings(
        &self,
        req: &EmbeddingsRequest,
        model: &str,
    ) -> Result<EmbeddingsResponse, ProviderError> {
        let body = http::to_json(&OutEmbeddings {
            model,
            rest: &req.rest,
        })?;
        let (bytes, info) = self.complete(Op::Embeddings, model, body).await?;
        Ok(EmbeddingsResponse {
            usage: info.usage.map(Usage::from),
            body: bytes,
        })
    }
}

/// OpenAI's error body: `{"error":{"message","type","code","param"}}`; `code` may be a number.
fn read_error(_status: u16, _headers: &reqwest::header::HeaderMap, body: &[u8]) -> ErrorDetail {
    let detail = serde_json::from_slice::<ErrorBody>(body)
        .ok()
        .and_then(|b| b.error)
        .unwrap_or_default();
    ErrorDetail {
        message: detail.message,
        error_type: detail.error_type,
        code: detail.code.map(|c| match c {
            serde_json::Value::String(s) => s,
            other => other.to_string(),
        }),
        ..ErrorDetail::default()
    }
}

#[cfg(test)]
mod tests;

/// The pure conversions, reachable from the criterion benches (`benches/codec.rs`).
pub mod conversions {
    use super::{ChatRequest, ProviderError};

    /// Canonical request → upstream body (model renamed, usage asked for on streams).
    pub fn request(req: &ChatRequest, model: &str, stream: bool) -> Result<Vec<u8>, ProviderError> {
        super::convert::request(req, model, stream)
    }

    /// What the gateway reads of one streamed chunk.
    pub fn stream_chunk(data: &str) -> Result<crate::providers::StreamChunk, ProviderError> {
        super::stream::parse_chunk(data.to_owned())
    }
}
