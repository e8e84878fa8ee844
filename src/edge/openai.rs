//! The OpenAI-compatible surface: `POST /v1/chat/completions` (plain and streamed),
//! `POST /v1/embeddings` and `GET /v1/models`. OpenAI's shapes are the canonical ones, so this
//! surface renders answers and chunks as they come; the request's life is in
//! [`super::pipeline`].

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use bytes::{BufMut, Bytes, BytesMut};
use serde_json::json;
use std::sync::Arc;

use super::pipeline::handle;
use super::rejected::{self, Peer};
use super::surface::{Auth, Authenticated, Canonical, Framer, Surface, SurfaceRequest};
use super::{ApiError, EdgeState, validate};
use crate::events::{Endpoint, Usage};
use crate::providers::{ChatRequest, EmbeddingsRequest, StreamChunk};

/// OpenAI's API shape.
pub struct OpenAi;

pub async fn chat_completions(
    State(st): State<Arc<EdgeState>>,
    auth: Auth<OpenAi>,
    peer: Peer,
    headers: HeaderMap,
    body: Body,
) -> Response {
    handle::<OpenAi, ChatRequest>(st, auth, rejected::peer(peer), headers, body).await
}

pub async fn embeddings(
    State(st): State<Arc<EdgeState>>,
    auth: Auth<OpenAi>,
    peer: Peer,
    headers: HeaderMap,
    body: Body,
) -> Response {
    handle::<OpenAi, EmbeddingsRequest>(st, auth, rejected::peer(peer), headers, body).await
}

/// `GET /v1/models`: the models this key may call.
pub async fn list_models(
    State(st): State<Arc<EdgeState>>,
    Authenticated(caller, _): Authenticated<OpenAi>,
) -> Response {
    let data: Vec<_> = st
        .routes
        .names()
        .iter()
        .filter(|n| caller.may_use(n))
        .map(|n| json!({"id": n, "object": "model", "created": 0, "owned_by": "switchyard"}))
        .collect();
    Json(json!({"object": "list", "data": data})).into_response()
}

impl SurfaceRequest for ChatRequest {
    const ENDPOINT: Endpoint = Endpoint::ChatCompletions;
    fn model(&self) -> &str {
        &self.model
    }
    fn is_stream(&self) -> bool {
        ChatRequest::is_stream(self)
    }
    fn into_canonical(self) -> std::result::Result<Canonical, ApiError> {
        validate::chat(&self)?;
        Ok(Canonical::Chat(self))
    }
}

impl SurfaceRequest for EmbeddingsRequest {
    const ENDPOINT: Endpoint = Endpoint::Embeddings;
    fn model(&self) -> &str {
        &self.model
    }
    fn is_stream(&self) -> bool {
        false
    }
    fn into_canonical(self) -> std::result::Result<Canonical, ApiError> {
        validate::embeddings(&self)?;
        Ok(Canonical::Embeddings(self))
    }
}

impl Surface for OpenAi {
    type Framer = OpenAiFramer;

    fn error(e: ApiError) -> Response {
        e.into_response()
    }

    /// Answers are passed through byte for byte.
    fn answer(
        canonical: Bytes,
        _model: &str,
        _usage: Option<&Usage>,
    ) -> std::result::Result<Bytes, ApiError> {
        Ok(canonical)
    }

    fn framer(req: &ChatRequest, _model: &str) -> OpenAiFramer {
        OpenAiFramer {
            wants_usage: req.wants_stream_usage(),
        }
    }
}

/// OpenAI chunks as they come, less what the gateway asked for on the client's behalf.
pub struct OpenAiFramer {
    /// The client asked for `stream_options.include_usage` itself.
    wants_usage: bool,
}

/// The trailing field OpenAI adds to every chunk once usage was asked for.
const USAGE_NULL: &[u8] = b",\"usage\":null}";

impl Framer for OpenAiFramer {
    fn chunk(&mut self, chunk: &StreamChunk) -> Vec<Bytes> {
        if self.wants_usage {
            return vec![sse_frame(&[&chunk.data])];
        }
        if chunk.usage_only {
            return Vec::new();
        }
        // Upstream was asked for usage on the client's behalf, so OpenAI puts `"usage":null`
        // on every chunk; a client that did not ask never sees it.
        match chunk.data.strip_suffix(USAGE_NULL) {
            Some(head) => vec![sse_frame(&[head, b"}"])],
            None => vec![sse_frame(&[&chunk.data])],
        }
    }

    fn done(&mut self, _usage: Option<&Usage>) -> Vec<Bytes> {
        vec![Bytes::from_static(b"data: [DONE]\n\n")]
    }

    fn error(&mut self, e: &ApiError) -> Vec<Bytes> {
        vec![sse_frame(&[&e.body_json()])]
    }
}

/// One SSE `data:` frame whose payload is `parts` joined.
fn sse_frame(parts: &[&[u8]]) -> Bytes {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let mut b = BytesMut::with_capacity(len + 8);
    b.put_slice(b"data: ");
    for p in parts {
        b.put_slice(p);
    }
    b.put_slice(b"\n\n");
    b.freeze()
}
