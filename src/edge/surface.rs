//! The seam between the request pipeline and the API shapes clients speak. A surface says what
//! its parsed request offers the pipeline ([`SurfaceRequest`]) and how it renders what the
//! pipeline produces ([`Surface`]: an answer, a stream's events, an error). The pipeline is
//! written once against these traits; `openai.rs` and `anthropic/` implement them and own
//! nothing else of a request's life.
//!
//! Errors keep one internal type, [`ApiError`]; [`SurfaceError`] wraps it with the surface that
//! renders it, so a handler returns `Result<_, SurfaceError<S>>` and the shape is right by type,
//! including the rejection of the [`Authenticated`] extractor.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::de::DeserializeOwned;
use std::marker::PhantomData;
use std::sync::Arc;

use super::{ApiError, EdgeState, presented_key};
use crate::events::{Endpoint, Usage};
use crate::governance::{AuthError, Caller};
use crate::providers::{ChatRequest, EmbeddingsRequest, StreamChunk};

/// The canonical request the pipeline routes: OpenAI's shapes, whatever the surface.
pub enum Canonical {
    Chat(ChatRequest),
    Embeddings(EmbeddingsRequest),
}

impl Canonical {
    /// The chat request content rules and token counts read (none for embeddings).
    pub fn chat(&self) -> Option<&ChatRequest> {
        match self {
            Canonical::Chat(c) => Some(c),
            Canonical::Embeddings(_) => None,
        }
    }
}

/// What a surface's parsed request offers the pipeline.
pub trait SurfaceRequest: DeserializeOwned + Send + 'static {
    /// Recorded in the request's events.
    const ENDPOINT: Endpoint;
    /// The public model name the client asked for.
    fn model(&self) -> &str;
    fn is_stream(&self) -> bool;
    /// The canonical request, or why this one cannot be served (a 400 in the surface's shape).
    fn into_canonical(self) -> Result<Canonical, ApiError>;
}

/// How a surface renders what the pipeline produces.
pub trait Surface: Send + Sync + 'static {
    /// Renders one stream's events; holds whatever state the surface's framing needs.
    type Framer: Framer;

    /// An error in this surface's shape.
    fn error(e: ApiError) -> Response;

    /// A complete answer, given in the canonical (OpenAI) shape, in this surface's shape.
    /// `model` is the public model name the client asked for.
    fn answer(canonical: Bytes, model: &str, usage: Option<&Usage>) -> Result<Bytes, ApiError>;

    /// The framer of one stream answering `req` for the public model `model`.
    fn framer(req: &ChatRequest, model: &str) -> Self::Framer;
}

/// One stream's rendering: each canonical chunk, the end, or an error after the first byte.
pub trait Framer: Send + 'static {
    fn chunk(&mut self, chunk: &StreamChunk) -> Vec<Bytes>;
    fn done(&mut self, usage: Option<&Usage>) -> Vec<Bytes>;
    /// Bytes were already sent with status 200: a broken (or withheld) stream ends with an
    /// error event.
    fn error(&mut self, e: &ApiError) -> Vec<Bytes>;
}

/// The one internal error, rendered by the surface `S`.
pub struct SurfaceError<S>(pub ApiError, PhantomData<S>);

impl<S> From<ApiError> for SurfaceError<S> {
    fn from(e: ApiError) -> Self {
        SurfaceError(e, PhantomData)
    }
}

impl<S: Surface> IntoResponse for SurfaceError<S> {
    fn into_response(self) -> Response {
        S::error(self.0)
    }
}

/// Authentication as a handler takes it: a refusal is the handler's to answer (and record).
pub type Auth<S> = Result<Authenticated<S>, SurfaceError<S>>;

/// The caller of a virtual key sent as `Authorization: Bearer` (OpenAI clients) or
/// `x-api-key` (Anthropic clients), on every surface; a missing, unknown, expired or revoked
/// key is refused before the body is read.
pub struct Authenticated<S>(pub Caller, pub PhantomData<S>);

impl<S: Surface> FromRequestParts<Arc<EdgeState>> for Authenticated<S> {
    type Rejection = SurfaceError<S>;

    async fn from_request_parts(
        parts: &mut Parts,
        st: &Arc<EdgeState>,
    ) -> Result<Self, Self::Rejection> {
        let token = presented_key(&parts.headers).ok_or_else(ApiError::unauthorized)?;
        match st.keys.authenticate(token, crate::governance::now_ms()) {
            Ok(caller) => Ok(Authenticated(caller, PhantomData)),
            Err(AuthError::Unknown) => Err(ApiError::unauthorized().into()),
            Err(AuthError::Expired) => Err(ApiError::key_expired().into()),
            Err(AuthError::Revoked) => Err(ApiError::key_revoked().into()),
            Err(AuthError::Loading) => Err(ApiError::keys_loading().into()),
        }
    }
}
