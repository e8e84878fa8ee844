//! The Anthropic-compatible surface: `POST /v1/messages` (plain and streamed) and
//! `POST /v1/messages/count_tokens`, so Anthropic SDKs and coding agents that speak the
//! Messages API work unchanged against any configured provider. Requests are converted to the
//! canonical shape and go through the same pipeline as every other surface; answers, stream
//! events and errors are rendered in Anthropic's shape.

mod convert;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::json;
use std::sync::Arc;

use super::pipeline::handle;
use super::rejected::{self, Peer};
use super::surface::{Auth, Authenticated, Canonical, Framer, Surface, SurfaceRequest};
use super::{ApiError, EdgeState, read_body};
use crate::events::{Endpoint, Usage};
use crate::providers::{ChatRequest, StreamChunk, tokens};
use convert::{InRequest, Refused, StreamTranslator, checked_chat, to_chat, to_message};

/// Anthropic's Messages API shape.
pub struct Anthropic;

/// A refused Messages request, with its field as `param` and Anthropic's wording.
fn invalid(e: Refused) -> ApiError {
    let message = e.to_string();
    ApiError::bad_param(e.param, message)
}

pub async fn messages(
    State(st): State<Arc<EdgeState>>,
    auth: Auth<Anthropic>,
    peer: Peer,
    headers: HeaderMap,
    body: Body,
) -> Response {
    handle::<Anthropic, InRequest>(st, auth, rejected::peer(peer), headers, body).await
}

impl SurfaceRequest for InRequest {
    const ENDPOINT: Endpoint = Endpoint::Messages;
    fn model(&self) -> &str {
        &self.model
    }
    fn is_stream(&self) -> bool {
        InRequest::is_stream(self)
    }
    fn into_canonical(self) -> Result<Canonical, ApiError> {
        checked_chat(&self).map(Canonical::Chat).map_err(invalid)
    }
}

impl Surface for Anthropic {
    type Framer = StreamTranslator;

    fn error(e: ApiError) -> Response {
        e.anthropic_response()
    }

    /// The canonical completion as a Messages API response. An answer that cannot be read is
    /// an upstream fault, never passed on in OpenAI's shape.
    fn answer(canonical: Bytes, model: &str, usage: Option<&Usage>) -> Result<Bytes, ApiError> {
        to_message(&canonical, model, usage)
            .map(Bytes::from)
            .map_err(|e| ApiError::bad_upstream_answer(&e.to_string()))
    }

    fn framer(_req: &ChatRequest, model: &str) -> StreamTranslator {
        StreamTranslator::new(model)
    }
}

impl Framer for StreamTranslator {
    fn chunk(&mut self, chunk: &StreamChunk) -> Vec<Bytes> {
        StreamTranslator::chunk(self, &chunk.data)
    }
    fn done(&mut self, usage: Option<&Usage>) -> Vec<Bytes> {
        StreamTranslator::done(self, usage)
    }
    fn error(&mut self, e: &ApiError) -> Vec<Bytes> {
        StreamTranslator::error(self, e.anthropic_type(), &e.message)
    }
}

/// Input tokens of a Messages request, counted with the gateway's tokenizer (no upstream call).
pub async fn count_tokens(
    State(st): State<Arc<EdgeState>>,
    _: Authenticated<Anthropic>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result = async {
        let bytes = read_body(&headers, body, st.max_body_bytes, st.body_read_timeout).await?;
        let mut value: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| ApiError::invalid_json(&e))?;
        // count_tokens requests carry no max_tokens; the converter does not need one either.
        if let Some(o) = value.as_object_mut() {
            o.remove("stream");
        }
        let req: InRequest = serde_json::from_value(value)
            .map_err(|e| ApiError::bad_param("messages", e.to_string()))?;
        if st.routes.get(&req.model).is_none() {
            return Err(ApiError::model_not_found(&req.model));
        }
        let chat = to_chat(&req).map_err(invalid)?;
        Ok::<_, ApiError>(tokens::prompt_tokens(&chat))
    }
    .await;
    match result {
        Ok(n) => Json(json!({"input_tokens": n})).into_response(),
        Err(e) => e.anthropic_response(),
    }
}
