//! The request pipeline every surface shares: admission (authenticate, size-limited body,
//! parse, model, RequestAccepted), the attempt loop, and the closing events (ResponseCompleted
//! and, when usage is known, SpendRecorded). Surfaces (`openai.rs`, `anthropic/`) only parse
//! their own shape and render their own answers and errors, so none can skip governance or
//! events. Streams are forwarded chunk by chunk by a tracked task that publishes the closing
//! events whatever way the stream ends.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::{BufMut, Bytes, BytesMut};
use futures::StreamExt;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc;
use ulid::Ulid;

use super::anthropic::StreamTranslator;
use super::{ApiError, EdgeState, bearer, read_body};
use crate::config::Durability;
use crate::events::{
    Attempt, BreakerChanged, Endpoint, Envelope, ErrorInfo, Event, Principal, RequestAccepted,
    ResponseCompleted, SpendRecorded, Usage,
};
use crate::providers::{ChatRequest, ChatStream, ProviderError, StreamChunk, tokens};
use crate::publish::PublishError;
use crate::routing::{self, Deployment, ModelRoute, Outcome};

static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
static PROVIDER: HeaderName = HeaderName::from_static("x-switchyard-provider");
static ATTEMPTS: HeaderName = HeaderName::from_static("x-switchyard-attempts");
static UPSTREAM_MODEL: HeaderName = HeaderName::from_static("x-switchyard-model");

/// A body as recorded in an event: whole when it fits `max`, else its first `max` bytes (cut at
/// a character boundary) and a marker saying how much was left out. Keeps every event under
/// the NATS message size limit (1 MiB by default) whatever the client sends.
pub fn clip(body: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(body);
    if text.len() <= max {
        return text.into_owned();
    }
    let mut cut = max;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}…[truncated {} bytes]", &text[..cut], text.len() - cut)
}

/// Which API shape the client speaks: decides how answers, stream events and errors look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    OpenAi,
    Anthropic,
}

impl Surface {
    pub fn error_response(self, e: ApiError) -> Response {
        match self {
            Surface::OpenAi => e.into_response(),
            Surface::Anthropic => e.anthropic_response(),
        }
    }
}

/// The principal for a virtual key sent as `Authorization: Bearer` (OpenAI clients) or
/// `x-api-key` (Anthropic clients).
pub fn authenticate(st: &EdgeState, headers: &HeaderMap) -> Result<Arc<Principal>, ApiError> {
    bearer(headers)
        .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()))
        .and_then(|t| st.keys.authenticate(t))
        .ok_or_else(ApiError::unauthorized)
}

pub struct Ctx {
    st: Arc<EdgeState>,
    pub request_id: Ulid,
    principal: Principal,
    pub route: Arc<ModelRoute>,
    endpoint: Endpoint,
    /// The public model name the client asked for.
    pub model: String,
    started: Instant,
    surface: Surface,
}

/// Authenticate, read and parse the body, resolve the model (content rules first), and build
/// RequestAccepted. `prepare` turns the parsed body into what the surface works with (or refuses
/// it); `model_of`, `stream_of` and `chat_of` read the requested model, whether it streams, and
/// the chat request the content rules look at (none for embeddings).
#[allow(clippy::too_many_arguments)]
pub async fn admit<T: serde::de::DeserializeOwned, P>(
    st: &Arc<EdgeState>,
    headers: &HeaderMap,
    body: Body,
    surface: Surface,
    endpoint: Endpoint,
    prepare: impl FnOnce(T) -> Result<P, ApiError>,
    model_of: impl Fn(&P) -> &str,
    stream_of: impl Fn(&P) -> bool,
    chat_of: impl Fn(&P) -> Option<&ChatRequest>,
) -> Result<(Ctx, P, Envelope), ApiError> {
    let started = Instant::now();
    let principal = authenticate(st, headers)?;
    let bytes = read_body(headers, body, st.max_body_bytes, st.body_read_timeout).await?;
    let req: T = serde_json::from_slice(&bytes).map_err(|e| ApiError::invalid_json(&e))?;
    let req = prepare(req)?;
    let model = model_of(&req).to_owned();
    let resolved = st
        .routes
        .resolve(&routing::rules::Input {
            model: &model,
            headers,
            principal: &principal,
            chat: chat_of(&req),
        })
        .ok_or_else(|| ApiError::model_not_found(&model))?;
    let route = resolved.route;
    let request_id = Ulid::generate();
    let accepted = Envelope::new(
        request_id,
        Event::RequestAccepted(RequestAccepted {
            principal: (*principal).clone(),
            endpoint,
            model: model.clone(),
            route: route.refs.clone(),
            stream: stream_of(&req),
            // invariant: serde_json accepted these bytes, so they are UTF-8.
            body: clip(&bytes, st.max_event_body_bytes),
            guardrail_findings: Vec::new(),
            cache_key: None,
            routed_model: resolved.rule.as_ref().map(|_| route.name.clone()),
            rule: resolved.rule,
        }),
    );
    let ctx = Ctx {
        st: Arc::clone(st),
        request_id,
        principal: (*principal).clone(),
        route,
        endpoint,
        model,
        started,
        surface,
    };
    Ok((ctx, req, accepted))
}

/// Once admitted, every answer, error or not, names its request id.
pub fn with_request_id(
    surface: Surface,
    request_id: Ulid,
    result: Result<Response, ApiError>,
) -> Response {
    result.unwrap_or_else(|e| {
        let mut r = surface.error_response(e);
        decorate(r.headers_mut(), request_id, None, 0);
        r.headers_mut().remove(&ATTEMPTS);
        r
    })
}

/// A complete answer of any surface, already in the client's shape.
pub struct Answer {
    pub body: Bytes,
    pub usage: Option<Usage>,
    pub finish_reason: Option<String>,
}

pub fn map_outcome<T>(o: Outcome<T>, f: impl FnOnce(T) -> Answer) -> Outcome<Answer> {
    Outcome {
        result: o.result.map(|(v, d)| (f(v), d)),
        attempts: o.attempts,
        breaker_changes: o.breaker_changes,
    }
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

fn strict_audit_info(e: &PublishError) -> ErrorInfo {
    ErrorInfo {
        class: "event_log_unavailable".into(),
        message: e.to_string(),
    }
}

pub async fn plain_path(
    ctx: Ctx,
    accepted: Envelope,
    call: impl Future<Output = Outcome<Answer>>,
) -> Result<Response, ApiError> {
    let (acked, outcome) = accepted_then(&ctx.st, &accepted, call).await;
    publish_breaker_changes(&ctx.st, outcome.breaker_changes).await;
    let attempts = outcome.attempts;
    let (answer, dep) = match outcome.result {
        Ok(ok) => ok,
        Err(e) => return Err(fail(&ctx, attempts, &e, false).await),
    };
    let attempts_n = attempts.len();
    let strict = acked.as_ref().err().map(strict_audit_error);
    finish(
        &ctx,
        Finished {
            attempts,
            deployment: Some(Arc::clone(&dep)),
            status: strict.as_ref().map_or(200, |e| e.status.as_u16()),
            error: acked.as_ref().err().map(strict_audit_info),
            ttft_us: Some(ctx.started.elapsed().as_micros() as u64),
            usage: answer.usage,
            finish_reason: answer.finish_reason,
            body: Some(clip(&answer.body, ctx.st.max_event_body_bytes)),
            stream: false,
        },
    )
    .await;
    if let Some(e) = strict {
        return Err(e);
    }
    let mut r = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        answer.body,
    )
        .into_response();
    decorate(r.headers_mut(), ctx.request_id, Some(&dep), attempts_n);
    Ok(r)
}

/// Record a request that got no answer and turn the error into the client's response.
async fn fail(ctx: &Ctx, attempts: Vec<Attempt>, e: &ProviderError, stream: bool) -> ApiError {
    let api = ApiError::from_provider(e);
    finish(
        ctx,
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
    api
}

/// Name the request, the deployment that answered and the attempts made, on the response.
fn decorate(h: &mut HeaderMap, request_id: Ulid, answered: Option<&Deployment>, attempts: usize) {
    if let Ok(v) = HeaderValue::from_str(&request_id.to_string()) {
        h.insert(REQUEST_ID.clone(), v);
    }
    if let Some(d) = answered {
        if let Ok(p) = HeaderValue::from_str(&d.provider_name) {
            h.insert(PROVIDER.clone(), p);
        }
        if let Ok(m) = HeaderValue::from_str(&d.model) {
            h.insert(UPSTREAM_MODEL.clone(), m);
        }
    }
    h.insert(ATTEMPTS.clone(), HeaderValue::from(attempts));
}

/// Breaker changes seen by this request's attempts, as events of their own.
async fn publish_breaker_changes(st: &EdgeState, changes: Vec<BreakerChanged>) {
    for change in changes {
        let env = Envelope::new(Ulid::generate(), Event::BreakerChanged(change));
        st.sink.emit(&env).await;
    }
}

/// How a request ended, for the closing events.
struct Finished {
    attempts: Vec<Attempt>,
    /// Index of the target that answered.
    deployment: Option<Arc<Deployment>>,
    status: u16,
    error: Option<ErrorInfo>,
    ttft_us: Option<u64>,
    usage: Option<Usage>,
    finish_reason: Option<String>,
    body: Option<String>,
    stream: bool,
}

/// Publish ResponseCompleted and, when the cost is known, SpendRecorded; count the request.
async fn finish(ctx: &Ctx, done: Finished) {
    let latency = ctx.started.elapsed();
    let target = done.deployment.as_deref();
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
                .or_else(|| ctx.st.pricing.price(&ctx.model));
            let cost_nanos = price.map_or(0, |p| p.cost_nanos(&usage));
            metrics::counter!("switchyard_tokens_total", "model" => ctx.route.name.clone(), "direction" => "input").increment(usage.input_tokens);
            metrics::counter!("switchyard_tokens_total", "model" => ctx.route.name.clone(), "direction" => "output").increment(usage.output_tokens);
            Some(SpendRecorded {
                principal: ctx.principal.clone(),
                model: ctx.model.clone(),
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
            endpoint: ctx.endpoint,
            model: ctx.model.clone(),
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

pub async fn stream_path(
    ctx: Ctx,
    req: ChatRequest,
    accepted: Envelope,
) -> Result<Response, ApiError> {
    let (acked, outcome) = accepted_then(
        &ctx.st,
        &accepted,
        routing::open_stream(&ctx.st.routes, &ctx.route, &req),
    )
    .await;
    publish_breaker_changes(&ctx.st, outcome.breaker_changes).await;
    let attempts = outcome.attempts;
    let (stream, dep) = match outcome.result {
        Ok(ok) => ok,
        Err(e) => return Err(fail(&ctx, attempts, &e, true).await),
    };
    if let Err(e) = acked {
        drop(stream);
        let api = strict_audit_error(&e);
        finish(
            &ctx,
            Finished {
                attempts,
                deployment: Some(Arc::clone(&dep)),
                status: api.status.as_u16(),
                error: Some(strict_audit_info(&e)),
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
    let request_id = ctx.request_id;
    let n = attempts.len();
    let tasks = ctx.st.tasks.clone();
    let answered = Arc::clone(&dep);
    tasks.spawn(forward(ctx, req, stream, dep, attempts, tx));
    let mut resp = Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        ))
        .map_err(|_| ApiError::internal())?;
    decorate(resp.headers_mut(), request_id, Some(&answered), n);
    Ok(resp)
}

fn sse_frame(data: &[u8]) -> Bytes {
    sse_frame_of(&[data])
}

/// One SSE `data:` frame whose payload is `parts` joined.
fn sse_frame_of(parts: &[&[u8]]) -> Bytes {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let mut b = BytesMut::with_capacity(len + 8);
    b.put_slice(b"data: ");
    for p in parts {
        b.put_slice(p);
    }
    b.put_slice(b"\n\n");
    b.freeze()
}

/// The trailing field OpenAI adds to every chunk once usage was asked for.
const USAGE_NULL: &[u8] = b",\"usage\":null}";

/// Forward upstream chunks to the client, keep what the events need, and publish the closing
/// events however the stream ends (done, upstream broke, client went away).
/// How a stream's events are written for the client: OpenAI chunks as they come, or translated
/// into Messages API events.
enum Framer {
    OpenAi { wants_usage: bool },
    Anthropic(StreamTranslator),
}

impl Framer {
    fn chunk(&mut self, chunk: &StreamChunk) -> Vec<Bytes> {
        match self {
            Framer::OpenAi { wants_usage: true } => vec![sse_frame(&chunk.data)],
            Framer::OpenAi { wants_usage: false } => {
                if chunk.usage_only {
                    return Vec::new();
                }
                // Upstream was asked for usage on the client's behalf, so OpenAI puts
                // `"usage":null` on every chunk; a client that did not ask never sees it.
                match chunk.data.strip_suffix(USAGE_NULL) {
                    Some(head) => vec![sse_frame_of(&[head, b"}"])],
                    None => vec![sse_frame(&chunk.data)],
                }
            }
            Framer::Anthropic(t) => t.chunk(&chunk.data),
        }
    }

    fn done(&mut self, usage: Option<&Usage>) -> Vec<Bytes> {
        match self {
            Framer::OpenAi { .. } => vec![Bytes::from_static(b"data: [DONE]\n\n")],
            Framer::Anthropic(t) => t.done(usage),
        }
    }

    /// Bytes were already sent with status 200: a broken stream ends with an error event.
    fn error(&mut self, e: &ProviderError) -> Vec<Bytes> {
        let api = ApiError::from_provider(e);
        match self {
            Framer::OpenAi { .. } => vec![sse_frame(&api.body_json())],
            Framer::Anthropic(t) => t.error(api.anthropic_type(), &api.message),
        }
    }
}

async fn forward(
    ctx: Ctx,
    req: ChatRequest,
    mut stream: ChatStream,
    dep: Arc<Deployment>,
    attempts: Vec<Attempt>,
    tx: mpsc::Sender<Result<Bytes, std::convert::Infallible>>,
) {
    let mut framer = match ctx.surface {
        Surface::OpenAi => Framer::OpenAi {
            wants_usage: req.wants_stream_usage(),
        },
        Surface::Anthropic => Framer::Anthropic(StreamTranslator::new(&ctx.model)),
    };
    let mut log = String::new();
    let mut usage = None;
    let mut finish_reason = None;
    let mut ttft_us = None;
    let mut error: Option<ProviderError> = None;
    let mut client_gone = false;
    'read: while let Some(item) = stream.next().await {
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
                    finish_reason = chunk.finish_reason.clone();
                }
                for frame in framer.chunk(&chunk) {
                    if tx.send(Ok(frame)).await.is_err() {
                        client_gone = true;
                        break 'read;
                    }
                }
            }
            Err(e) => {
                error = Some(e);
                break;
            }
        }
    }
    drop(stream);
    // A stream without usage (some servers never send it) is counted by us, marked estimated.
    let usage = usage.or_else(|| Some(tokens::estimate(&req, &log)));
    let (closing, err_info) = match (&error, client_gone) {
        (Some(e), _) => (
            framer.error(e),
            Some(ErrorInfo {
                class: e.label().to_owned(),
                message: e.to_string(),
            }),
        ),
        (None, true) => (
            Vec::new(),
            Some(ErrorInfo {
                class: "client_disconnected".into(),
                message: "the client closed the stream".into(),
            }),
        ),
        (None, false) => (framer.done(usage.as_ref()), None),
    };
    for frame in closing {
        if tx.send(Ok(frame)).await.is_err() {
            break;
        }
    }
    drop(tx);
    finish(
        &ctx,
        Finished {
            attempts,
            deployment: Some(dep),
            status: 200,
            error: err_info,
            ttft_us,
            usage,
            finish_reason,
            body: Some(clip(log.as_bytes(), ctx.st.max_event_body_bytes)),
            stream: true,
        },
    )
    .await;
}

#[cfg(test)]
mod tests {
    use super::clip;

    #[test]
    fn clip_keeps_small_bodies_and_cuts_big_ones_on_a_char_boundary() {
        assert_eq!(clip(b"{\"a\":1}", 100), "{\"a\":1}");
        let big = "é".repeat(10); // 20 bytes
        let c = clip(big.as_bytes(), 5);
        assert_eq!(c, "éé…[truncated 16 bytes]");
    }
}
