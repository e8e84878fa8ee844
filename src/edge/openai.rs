//! The OpenAI-compatible surface: `POST /v1/chat/completions` (plain and streamed) and
//! `GET /v1/models`.
//!
//! A request's life: authenticate (hash lookup), read the body (size-limited), parse, resolve the
//! model, publish RequestAccepted, walk the route's deployments, answer, then publish
//! ResponseCompleted and, when usage is known, SpendRecorded. Streams are forwarded chunk by
//! chunk by a tracked task that publishes the closing events whatever way the stream ends.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::{BufMut, Bytes, BytesMut};
use futures::StreamExt;
use serde_json::json;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc;
use ulid::Ulid;

use super::{ApiError, EdgeState, bearer, read_body};
use crate::config::Durability;
use crate::events::{
    Attempt, Endpoint, Envelope, ErrorInfo, Event, Principal, RequestAccepted, ResponseCompleted,
    SpendRecorded, Usage,
};
use crate::providers::{ChatRequest, ChatStream, ProviderError};
use crate::publish::PublishError;
use crate::routing::{self, ModelRoute};

static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
static PROVIDER: HeaderName = HeaderName::from_static("x-switchyard-provider");
static ATTEMPTS: HeaderName = HeaderName::from_static("x-switchyard-attempts");

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

fn authenticate(st: &EdgeState, headers: &HeaderMap) -> Result<Arc<Principal>, ApiError> {
    bearer(headers)
        .and_then(|t| st.keys.authenticate(t))
        .ok_or_else(ApiError::unauthorized)
}

/// What both the plain and the stream path carry to the closing events.
struct Ctx {
    st: Arc<EdgeState>,
    request_id: Ulid,
    principal: Principal,
    route: Arc<ModelRoute>,
    started: Instant,
}

pub async fn chat_completions(
    State(st): State<Arc<EdgeState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let principal = authenticate(&st, &headers)?;
    let bytes = read_body(&headers, body, st.max_body_bytes).await?;
    let req: ChatRequest =
        serde_json::from_slice(&bytes).map_err(|e| ApiError::invalid_json(&e))?;
    let route = st
        .routes
        .get(&req.model)
        .cloned()
        .ok_or_else(|| ApiError::model_not_found(&req.model))?;
    let request_id = Ulid::generate();
    let stream = req.is_stream();
    let accepted = Envelope::new(
        request_id,
        Event::RequestAccepted(RequestAccepted {
            principal: (*principal).clone(),
            endpoint: Endpoint::ChatCompletions,
            model: req.model.clone(),
            route: route.refs.clone(),
            stream,
            // invariant: serde_json accepted these bytes, so they are UTF-8.
            body: String::from_utf8_lossy(&bytes).into_owned(),
            guardrail_findings: Vec::new(),
            cache_key: None,
        }),
    );
    let ctx = Ctx {
        st: Arc::clone(&st),
        request_id,
        principal: (*principal).clone(),
        route,
        started,
    };
    let result = if stream {
        stream_path(ctx, req, accepted).await
    } else {
        plain_path(ctx, req, accepted).await
    };
    // Once admitted, every answer, error or not, names its request id.
    Ok(result.unwrap_or_else(|e| {
        let mut r = e.into_response();
        decorate(r.headers_mut(), request_id, None, 0);
        r.headers_mut().remove(&ATTEMPTS);
        r
    }))
}

/// Publish RequestAccepted and run `work`; under strict durability the answer is held until
/// JetStream acknowledged the event (both proceed at once).
async fn accepted_then<T>(
    st: &EdgeState,
    accepted: &Envelope,
    work: impl Future<Output = T>,
) -> (Result<(), PublishError>, T) {
    match st.durability {
        Durability::Async => {
            st.sink.emit(accepted).await;
            (Ok(()), work.await)
        }
        Durability::Ack => tokio::join!(st.sink.emit_acked(accepted), work),
    }
}

fn strict_audit_error(e: &PublishError) -> ApiError {
    ApiError::unavailable(
        "event_log_unavailable",
        format!(
            "The request was not answered because strict event durability is on and the event log did not confirm it: {e}"
        ),
    )
}

async fn plain_path(ctx: Ctx, req: ChatRequest, accepted: Envelope) -> Result<Response, ApiError> {
    let (acked, outcome) = accepted_then(&ctx.st, &accepted, routing::chat(&ctx.route, &req)).await;
    let attempts = outcome.attempts;
    match outcome.result {
        Ok((resp, idx)) => {
            let target = &ctx.route.targets[idx];
            let client_status = if let Err(e) = &acked {
                strict_audit_error(e).status
            } else {
                StatusCode::OK
            };
            let done = Finished {
                attempts,
                deployment: Some(idx),
                status: client_status.as_u16(),
                error: acked.as_ref().err().map(|e| ErrorInfo {
                    class: "event_log_unavailable".into(),
                    message: e.to_string(),
                }),
                ttft_us: Some(ctx.started.elapsed().as_micros() as u64),
                usage: resp.usage,
                finish_reason: resp.finish_reason,
                body: Some(String::from_utf8_lossy(&resp.body).into_owned()),
                stream: false,
            };
            let attempts_n = done.attempts.len();
            finish(&ctx, &req, done).await;
            if let Err(e) = acked {
                return Err(strict_audit_error(&e));
            }
            let mut r = (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                resp.body,
            )
                .into_response();
            decorate(
                r.headers_mut(),
                ctx.request_id,
                Some(&target.provider_name),
                attempts_n,
            );
            Ok(r)
        }
        Err(e) => Err(fail(&ctx, &req, attempts, &e, false).await),
    }
}

/// Record a request that got no answer and turn the error into the client's response.
async fn fail(
    ctx: &Ctx,
    req: &ChatRequest,
    attempts: Vec<Attempt>,
    e: &ProviderError,
    stream: bool,
) -> ApiError {
    let api = ApiError::from_provider(e);
    let n = attempts.len();
    finish(
        ctx,
        req,
        Finished {
            attempts,
            deployment: None,
            status: api.status.as_u16(),
            error: Some(ErrorInfo {
                class: e.label().to_owned(),
                message: e.to_string(),
            }),
            ttft_us: None,
            usage: None,
            finish_reason: None,
            body: None,
            stream,
        },
    )
    .await;
    tracing::debug!(request_id = %ctx.request_id, attempts = n, "no deployment answered");
    api
}

fn decorate(h: &mut HeaderMap, request_id: Ulid, provider: Option<&str>, attempts: usize) {
    if let Ok(v) = HeaderValue::from_str(&request_id.to_string()) {
        h.insert(REQUEST_ID.clone(), v);
    }
    if let Some(p) = provider.and_then(|p| HeaderValue::from_str(p).ok()) {
        h.insert(PROVIDER.clone(), p);
    }
    h.insert(ATTEMPTS.clone(), HeaderValue::from(attempts));
}

/// How a request ended, for the closing events.
struct Finished {
    attempts: Vec<Attempt>,
    /// Index of the target that answered.
    deployment: Option<usize>,
    status: u16,
    error: Option<ErrorInfo>,
    ttft_us: Option<u64>,
    usage: Option<Usage>,
    finish_reason: Option<String>,
    body: Option<String>,
    stream: bool,
}

/// Publish ResponseCompleted and, when the cost is known, SpendRecorded; count the request.
async fn finish(ctx: &Ctx, req: &ChatRequest, done: Finished) {
    let latency = ctx.started.elapsed();
    let target = done.deployment.map(|i| &ctx.route.targets[i]);
    let provider = target.map_or("none", |t| t.provider_name.as_str());
    metrics::counter!("switchyard_requests_total", "model" => ctx.route.name.clone(), "provider" => provider.to_owned(), "status" => done.status.to_string()).increment(1);
    metrics::histogram!("switchyard_request_duration_seconds", "model" => ctx.route.name.clone())
        .record(latency.as_secs_f64());
    let spend = match (target, done.usage) {
        (Some(t), Some(usage)) => {
            let price = ctx
                .st
                .pricing
                .price(&t.model)
                .or_else(|| ctx.st.pricing.price(&req.model));
            let cost_nanos = price.map_or(0, |p| p.cost_nanos(&usage));
            metrics::counter!("switchyard_tokens_total", "model" => ctx.route.name.clone(), "direction" => "input").increment(usage.input_tokens);
            metrics::counter!("switchyard_tokens_total", "model" => ctx.route.name.clone(), "direction" => "output").increment(usage.output_tokens);
            Some(SpendRecorded {
                principal: ctx.principal.clone(),
                model: req.model.clone(),
                provider: t.provider_name.clone(),
                provider_model: t.model.clone(),
                usage,
                cost_nanos,
                currency: ctx.st.pricing.currency.clone(),
                priced: price.is_some(),
            })
        }
        _ => None,
    };
    let completed = Envelope::new(
        ctx.request_id,
        Event::ResponseCompleted(ResponseCompleted {
            principal: ctx.principal.clone(),
            endpoint: Endpoint::ChatCompletions,
            model: req.model.clone(),
            attempts: done.attempts,
            provider: target.map(|t| t.provider_name.clone()),
            provider_model: target.map(|t| t.model.clone()),
            status: done.status,
            error: done.error,
            stream: done.stream,
            ttft_us: done.ttft_us,
            latency_us: latency.as_micros() as u64,
            usage: done.usage,
            finish_reason: done.finish_reason,
            body: done.body,
            cache_hit: None,
            cache_score: None,
        }),
    );
    ctx.st.sink.emit(&completed).await;
    if let Some(s) = spend {
        ctx.st
            .sink
            .emit(&Envelope::new(ctx.request_id, Event::SpendRecorded(s)))
            .await;
    }
}

async fn stream_path(ctx: Ctx, req: ChatRequest, accepted: Envelope) -> Result<Response, ApiError> {
    let (acked, outcome) =
        accepted_then(&ctx.st, &accepted, routing::open_stream(&ctx.route, &req)).await;
    let attempts = outcome.attempts;
    let (stream, idx) = match outcome.result {
        Ok(ok) => ok,
        Err(e) => return Err(fail(&ctx, &req, attempts, &e, true).await),
    };
    if let Err(e) = acked {
        drop(stream);
        let api = strict_audit_error(&e);
        finish(
            &ctx,
            &req,
            Finished {
                attempts,
                deployment: Some(idx),
                status: api.status.as_u16(),
                error: Some(ErrorInfo {
                    class: "event_log_unavailable".into(),
                    message: e.to_string(),
                }),
                ttft_us: None,
                usage: None,
                finish_reason: None,
                body: None,
                stream: true,
            },
        )
        .await;
        return Err(api);
    }
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::convert::Infallible>>(64);
    let provider = ctx.route.targets[idx].provider_name.clone();
    let request_id = ctx.request_id;
    let n = attempts.len();
    let tasks = ctx.st.tasks.clone();
    tasks.spawn(forward(ctx, req, stream, idx, attempts, tx));
    let mut resp = Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        ))
        .map_err(|_| ApiError::internal())?;
    decorate(resp.headers_mut(), request_id, Some(&provider), n);
    Ok(resp)
}

fn sse_frame(data: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(data.len() + 8);
    b.put_slice(b"data: ");
    b.put_slice(data);
    b.put_slice(b"\n\n");
    b.freeze()
}

/// Forward upstream chunks to the client, keep what the events need, and publish the closing
/// events however the stream ends (done, upstream broke, client went away).
async fn forward(
    ctx: Ctx,
    req: ChatRequest,
    mut stream: ChatStream,
    idx: usize,
    attempts: Vec<Attempt>,
    tx: mpsc::Sender<Result<Bytes, std::convert::Infallible>>,
) {
    let wants_usage = req.wants_stream_usage();
    let mut log = String::new();
    let mut usage = None;
    let mut finish_reason = None;
    let mut ttft_us = None;
    let mut error: Option<ProviderError> = None;
    let mut client_gone = false;
    while let Some(item) = stream.next().await {
        match item {
            Ok(chunk) => {
                if ttft_us.is_none() {
                    ttft_us = Some(ctx.started.elapsed().as_micros() as u64);
                }
                log.push_str(&String::from_utf8_lossy(&chunk.data));
                log.push('\n');
                if chunk.usage.is_some() {
                    usage = chunk.usage;
                }
                if chunk.finish_reason.is_some() {
                    finish_reason = chunk.finish_reason;
                }
                if chunk.usage_only && !wants_usage {
                    continue;
                }
                if tx.send(Ok(sse_frame(&chunk.data))).await.is_err() {
                    client_gone = true;
                    break;
                }
            }
            Err(e) => {
                error = Some(e);
                break;
            }
        }
    }
    drop(stream);
    let err_info = match (&error, client_gone) {
        (Some(e), _) => {
            // Bytes were already sent with status 200: end with an in-stream error event.
            let _ = tx
                .send(Ok(sse_frame(&ApiError::from_provider(e).body_json())))
                .await;
            Some(ErrorInfo {
                class: e.label().to_owned(),
                message: e.to_string(),
            })
        }
        (None, true) => Some(ErrorInfo {
            class: "client_disconnected".into(),
            message: "the client closed the stream".into(),
        }),
        (None, false) => {
            let _ = tx.send(Ok(Bytes::from_static(b"data: [DONE]\n\n"))).await;
            None
        }
    };
    drop(tx);
    finish(
        &ctx,
        &req,
        Finished {
            attempts,
            deployment: Some(idx),
            status: 200,
            error: err_info,
            ttft_us,
            usage,
            finish_reason,
            body: Some(log),
            stream: true,
        },
    )
    .await;
}
