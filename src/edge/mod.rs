//! The HTTP edge: axum routers for the OpenAI surface, health and admin. Handlers read
//! in-memory state only and hand events to the [`EventSink`]; they never await NATS or a store
//! (except where `events.durability = "ack"` asks them to).

mod admin;
mod anthropic;
mod error;
mod health;
pub mod listener;
mod openai;
mod pipeline;
pub mod ratelimit;
mod rejected;
mod surface;
mod validate;

pub use admin::{AdminGovernance, AdminState, money};
pub use error::ApiError;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, header};
use axum::routing::{get, post};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Durability, Pricing};
use crate::governance::KeyStore;
use crate::governance::budgets::Budgets;
use crate::projections::ProjectionStatus;
use crate::publish::EventSink;
use crate::routing::RouteTable;

/// Everything a handler may read. Shared as `Arc<EdgeState>`.
pub struct EdgeState {
    pub keys: KeyStore,
    /// Budget admission: this instance's slices of every budget.
    pub budgets: Arc<Budgets>,
    /// This instance's part of every rate limit (admission), fed by the rate ledger task.
    pub rates: Arc<crate::governance::rate::Rates>,
    pub routes: Arc<RouteTable>,
    pub sink: EventSink,
    pub pricing: Pricing,
    pub durability: Durability,
    pub max_body_bytes: usize,
    /// Time allowed for reading a whole request body (408 past it).
    pub body_read_timeout: Duration,
    /// Cancelled when shutdown begins, so `/readyz` says `draining`.
    pub shutdown: CancellationToken,
    /// Request and response bodies longer than this are clipped in events.
    pub max_event_body_bytes: usize,
    pub budgets_status: Option<Arc<ProjectionStatus>>,
    /// Tracks per-request background work (stream forwarders) so shutdown can wait for it.
    pub tasks: TaskTracker,
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    /// Every provider secret reference, for `/readyz` and the metrics.
    pub credentials: Vec<crate::secrets::Credential>,
    /// Request guardrails and what the stream keeps of bodies.
    pub guardrails: Arc<crate::guardrails::Policy>,
    /// The answer cache, when a model has it on.
    pub cache: Option<Arc<crate::cache::Cache>>,
}

/// The full edge router.
pub fn router(state: Arc<EdgeState>, admin: AdminState) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(openai::chat_completions))
        .route("/v1/embeddings", post(openai::embeddings))
        .route("/v1/messages", post(anthropic::messages))
        .route("/v1/messages/count_tokens", post(anthropic::count_tokens))
        .route("/v1/models", get(openai::list_models))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .with_state(state)
        .merge(admin::router(admin))
        .fallback(|| async { ApiError::not_found() })
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
}

/// The router for a standalone projection process (`switchyard consume budgets --listen`).
pub fn admin_router(admin: AdminState) -> Router {
    admin::router(admin)
        .route("/healthz", get(health::healthz))
        .fallback(|| async { ApiError::not_found() })
}

/// The bearer token of a request, if any.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The key a client presents: `Authorization: Bearer` (OpenAI clients) or `x-api-key`
/// (Anthropic clients).
fn presented_key(headers: &HeaderMap) -> Option<&str> {
    bearer(headers).or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()))
}

/// Read the whole body, refusing more than `limit` bytes with 413 and a body that takes longer
/// than `timeout` with 408 (a slow client must not hold a connection and a request slot).
async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
    timeout: Duration,
) -> Result<bytes::Bytes, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::body_too_large(limit));
    }
    let read = tokio::time::timeout(timeout, axum::body::to_bytes(body, limit))
        .await
        .map_err(|_| ApiError::request_timeout(timeout))?;
    read.map_err(|e| {
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&e);
        while let Some(c) = cause {
            if c.is::<http_body_util::LengthLimitError>() {
                return ApiError::body_too_large(limit);
            }
            cause = c.source();
        }
        ApiError::bad_body(e)
    })
}
