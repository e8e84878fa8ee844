//! The OpenAI adapter, used for OpenAI and every OpenAI-compatible server (Groq, Together,
//! Mistral, DeepSeek, vLLM, Ollama…): same wire format, different base URL and key.

mod stream;
mod wire;

use bytes::Bytes;
use futures::FutureExt;
use futures::future::BoxFuture;
use std::sync::Arc;

use super::{
    BuildError, ChatRequest, ChatResponse, ChatStream, EmbeddingsRequest, EmbeddingsResponse,
    Provider, ProviderError, retry_after,
};
use crate::config::ProviderSpec;
use crate::events::Usage;
use wire::{CompletionInfo, ErrorBody, OutEmbeddings, OutRequest, OutStreamOptions};

pub struct OpenAi {
    spec: Arc<ProviderSpec>,
    client: reqwest::Client,
    /// Parsed once: reqwest would otherwise parse (and IDNA-check) the string per request.
    chat_url: reqwest::Url,
    embeddings_url: reqwest::Url,
}

impl OpenAi {
    pub fn new(spec: Arc<ProviderSpec>) -> Result<Self, BuildError> {
        let client = reqwest::Client::builder()
            .connect_timeout(spec.connect_timeout)
            .pool_max_idle_per_host(1024)
            .pool_idle_timeout(std::time::Duration::from_secs(90))
            .tcp_nodelay(true)
            .build()?;
        let url = |path: &str| {
            reqwest::Url::parse(&format!("{}/{path}", spec.base_url))
                .map_err(|e| BuildError::Url(e.to_string()))
        };
        let chat_url = url("chat/completions")?;
        let embeddings_url = url("embeddings")?;
        Ok(Self {
            spec,
            client,
            chat_url,
            embeddings_url,
        })
    }

    fn body(req: &ChatRequest, model: &str, stream: bool) -> Result<Vec<u8>, ProviderError> {
        let out = OutRequest {
            model,
            stream: stream.then_some(true),
            stream_options: stream.then(|| OutStreamOptions {
                include_usage: true,
                rest: req.stream_options.as_ref().map(|o| &o.rest),
            }),
            rest: &req.rest,
        };
        serde_json::to_vec(&out).map_err(|e| ProviderError::Decode(e.to_string()))
    }

    async fn send(
        &self,
        url: &reqwest::Url,
        body: Vec<u8>,
    ) -> Result<reqwest::Response, ProviderError> {
        let mut rb = self
            .client
            .post(url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        if let Some(key) = &self.spec.api_key {
            rb = rb.bearer_auth(key.expose());
        }
        let resp = rb.send().await.map_err(transport_error)?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        Err(status_error(resp).await)
    }

    async fn chat_inner(
        &self,
        req: &ChatRequest,
        model: &str,
    ) -> Result<ChatResponse, ProviderError> {
        let body = Self::body(req, model, false)?;
        let fut = async {
            let resp = self.send(&self.chat_url, body).await?;
            resp.bytes().await.map_err(transport_error)
        };
        let bytes: Bytes = tokio::time::timeout(self.spec.timeout, fut)
            .await
            .map_err(|_| ProviderError::Timeout { phase: "response" })??;
        let mut info: CompletionInfo =
            serde_json::from_slice(&bytes).map_err(|e| ProviderError::Decode(e.to_string()))?;
        Ok(ChatResponse {
            finish_reason: info.finish_reason(),
            usage: info.usage.map(Usage::from),
            body: bytes,
        })
    }

    async fn embeddings_inner(
        &self,
        req: &EmbeddingsRequest,
        model: &str,
    ) -> Result<EmbeddingsResponse, ProviderError> {
        let body = serde_json::to_vec(&OutEmbeddings {
            model,
            rest: &req.rest,
        })
        .map_err(|e| ProviderError::Decode(e.to_string()))?;
        let fut = async {
            let resp = self.send(&self.embeddings_url, body).await?;
            resp.bytes().await.map_err(transport_error)
        };
        let bytes: Bytes = tokio::time::timeout(self.spec.timeout, fut)
            .await
            .map_err(|_| ProviderError::Timeout { phase: "response" })??;
        let info: CompletionInfo =
            serde_json::from_slice(&bytes).map_err(|e| ProviderError::Decode(e.to_string()))?;
        Ok(EmbeddingsResponse {
            usage: info.usage.map(Usage::from),
            body: bytes,
        })
    }

    async fn stream_inner(
        &self,
        req: &ChatRequest,
        model: &str,
    ) -> Result<ChatStream, ProviderError> {
        let body = Self::body(req, model, true)?;
        let resp = tokio::time::timeout(self.spec.timeout, self.send(&self.chat_url, body))
            .await
            .map_err(|_| ProviderError::Timeout {
                phase: "first_byte",
            })??;
        Ok(stream::chunks(resp, self.spec.timeout))
    }
}

impl Provider for OpenAi {
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

fn transport_error(e: reqwest::Error) -> ProviderError {
    if e.is_timeout() {
        ProviderError::Timeout { phase: "connect" }
    } else if e.is_connect() {
        ProviderError::Connect(short_cause(&e))
    } else {
        ProviderError::StreamCut(short_cause(&e))
    }
}

/// The innermost cause, without the URL reqwest puts in its own message.
fn short_cause(e: &reqwest::Error) -> String {
    let mut cause: &dyn std::error::Error = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

async fn status_error(resp: reqwest::Response) -> ProviderError {
    let status = resp.status().as_u16();
    let retry_after = retry_after(resp.headers());
    let body = resp.bytes().await.unwrap_or_default();
    let detail = serde_json::from_slice::<ErrorBody>(&body)
        .ok()
        .and_then(|b| b.error)
        .unwrap_or_default();
    // An upstream auth failure is about the gateway's credentials, and providers echo parts of
    // the key in the message: never pass that text on.
    let message = if matches!(status, 401 | 403) {
        "the provider rejected the gateway's credentials".to_owned()
    } else {
        detail
            .message
            .unwrap_or_else(|| String::from_utf8_lossy(&body).chars().take(512).collect())
    };
    ProviderError::Status {
        status,
        message,
        error_type: detail.error_type,
        code: detail.code.map(|c| match c {
            serde_json::Value::String(s) => s,
            other => other.to_string(),
        }),
        retry_after,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outgoing_body_renames_model_and_always_asks_for_stream_usage() {
        let req: ChatRequest = serde_json::from_str(
            r#"{"model":"public","messages":[{"role":"user","content":"hi"}],"stream":true,"temperature":0.2}"#,
        )
        .unwrap();
        let body: serde_json::Value =
            serde_json::from_slice(&OpenAi::body(&req, "upstream-x", true).unwrap()).unwrap();
        assert_eq!(body["model"], "upstream-x");
        assert_eq!(body["stream"], true);
        assert_eq!(body["stream_options"]["include_usage"], true);
        assert_eq!(body["temperature"], 0.2);
        assert_eq!(body["messages"][0]["content"], "hi");
        let plain: serde_json::Value =
            serde_json::from_slice(&OpenAi::body(&req, "u", false).unwrap()).unwrap();
        assert!(plain.get("stream").is_none() && plain.get("stream_options").is_none());
    }
}
