//! The Anthropic-compatible surface: `POST /v1/messages` (plain and streamed) and
//! `POST /v1/messages/count_tokens`, so Anthropic SDKs and coding agents that speak the
//! Messages API work unchanged against any configured provider. Requests are converted to the
//! canonical shape and go through the same pipeline as every other surface; answers, stream
//! events and errors are rendered in Anthropic's shape.

mod convert;

pub use convert::StreamTranslator;

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
use super::{ApiError, EdgeState, read_body};
use crate::events::Endpoint;
use crate::providers::{ChatRequest, tokens};
use crate::routing;
use convert::{InRequest, to_chat, to_message};

fn invalid(message: String) -> ApiError {
    ApiError::bad_param("messages", message)
}

pub async fn messages(
    State(st): State<Arc<EdgeState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let admitted = admit(
        &st,
        &headers,
        body,
        Surface::Anthropic,
        Endpoint::Messages,
        |r: InRequest| to_chat(&r).map(|chat| (r, chat)).map_err(invalid),
        |(r, _): &(InRequest, ChatRequest)| &r.model,
        |(r, _): &(InRequest, ChatRequest)| r.is_stream(),
        |(_, chat): &(InRequest, ChatRequest)| Some(chat),
    )
    .await;
    let (ctx, (req, chat), accepted) = match admitted {
        Ok(a) => a,
        Err(e) => return e.anthropic_response(),
    };
    let request_id = ctx.request_id;
    let result = if req.is_stream() {
        stream_path(ctx, chat, accepted).await
    } else {
        let route = Arc::clone(&ctx.route);
        let model = ctx.model.clone();
        let call = async {
            let outcome = routing::chat(&st.routes, &route, &chat).await;
            map_outcome(outcome, |r| {
                let usage = r
                    .usage
                    .or_else(|| Some(tokens::estimate(&chat, &String::from_utf8_lossy(&r.body))));
                let body = to_message(&r.body, &model, usage.as_ref())
                    .map(bytes::Bytes::from)
                    .unwrap_or(r.body);
                Answer {
                    body,
                    usage,
                    finish_reason: r.finish_reason,
                }
            })
        };
        plain_path(ctx, accepted, call).await
    };
    with_request_id(Surface::Anthropic, request_id, result)
}

/// Input tokens of a Messages request, counted with the gateway's tokenizer (no upstream call).
pub async fn count_tokens(
    State(st): State<Arc<EdgeState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result = async {
        authenticate(&st, &headers)?;
        let bytes = read_body(&headers, body, st.max_body_bytes, st.body_read_timeout).await?;
        let mut value: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| ApiError::invalid_json(&e))?;
        // count_tokens requests carry no max_tokens; the converter does not need one either.
        if let Some(o) = value.as_object_mut() {
            o.remove("stream");
        }
        let req: InRequest = serde_json::from_value(value).map_err(|e| invalid(e.to_string()))?;
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
