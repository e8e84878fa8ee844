//! The OpenAI-compatible surface: `POST /v1/chat/completions` (plain and streamed),
//! `POST /v1/embeddings` and `GET /v1/models`. Parsing and rendering only; the request's life is
//! in [`super::pipeline`].

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::sync::Arc;

use super::pipeline::{
    Answer, Surface, admit, authenticate, map_outcome, plain_path, stream_path, with_request_id,
};
use super::{ApiError, EdgeState, validate};
use crate::events::Endpoint;
use crate::providers::{ChatRequest, EmbeddingsRequest, tokens};
use crate::routing;

pub async fn list_models(
    State(st): State<Arc<EdgeState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authenticate(&st, &headers)?;
    let data: Vec<_> = st
        .routes
        .names()
        .iter()
        .map(|n| json!({"id": n, "object": "model", "created": 0, "owned_by": "switchyard"}))
        .collect();
    Ok(Json(json!({"object": "list", "data": data})).into_response())
}

pub async fn chat_completions(
    State(st): State<Arc<EdgeState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let (ctx, req, accepted) = admit(
        &st,
        &headers,
        body,
        Surface::OpenAi,
        Endpoint::ChatCompletions,
        |r: ChatRequest| validate::chat(&r).map(|()| r),
        |r: &ChatRequest| &r.model,
        ChatRequest::is_stream,
        |r: &ChatRequest| Some(r),
    )
    .await?;
    let request_id = ctx.request_id;
    let result = if req.is_stream() {
        stream_path(ctx, req, accepted).await
    } else {
        let route = Arc::clone(&ctx.route);
        let call = async {
            map_outcome(routing::chat(&st.routes, &route, &req).await, |r| Answer {
                // A provider that reports no usage is counted by us (marked estimated).
                usage: r
                    .usage
                    .or_else(|| Some(tokens::estimate(&req, &String::from_utf8_lossy(&r.body)))),
                body: r.body,
                finish_reason: r.finish_reason,
            })
        };
        plain_path(ctx, accepted, call).await
    };
    Ok(with_request_id(Surface::OpenAi, request_id, result))
}

pub async fn embeddings(
    State(st): State<Arc<EdgeState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let (ctx, req, accepted) = admit(
        &st,
        &headers,
        body,
        Surface::OpenAi,
        Endpoint::Embeddings,
        |r: EmbeddingsRequest| validate::embeddings(&r).map(|()| r),
        |r: &EmbeddingsRequest| &r.model,
        |_| false,
        |_: &EmbeddingsRequest| None,
    )
    .await?;
    let request_id = ctx.request_id;
    let route = Arc::clone(&ctx.route);
    let call = async {
        map_outcome(routing::embeddings(&st.routes, &route, &req).await, |r| {
            Answer {
                body: r.body,
                usage: r.usage,
                finish_reason: None,
            }
        })
    };
    Ok(with_request_id(
        Surface::OpenAi,
        request_id,
        plain_path(ctx, accepted, call).await,
    ))
}
