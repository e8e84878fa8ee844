//! The life of a request, for every surface, top to bottom in [`handle`]:
//! 1. authenticate (the [`Authenticated`] extractor, before the body is read);
//! 2. parse: the size-limited body, the surface's request, its canonical form;
//! 3. resolve the model (content rules first); admit: take one request and its tokens from
//!    every rate limit that applies (429 `rate_limit_exceeded`, `x-ratelimit-*` headers on
//!    every answer), then reserve the most the request can cost on every budget that applies
//!    (429 `budget_exceeded` past one); *request guardrails and the
//!    cache lookup plug in here, before routing*; publish `RequestAccepted`;
//! 4. route and attempt (retries, fallbacks, hedging) on a tracked task of its own ([`detach`]);
//! 5. render the answer ([`plain_path`]) or each chunk ([`forward`]) in the surface's shape;
//!    *response guardrails plug in here*;
//! 6. close: `ResponseCompleted` and, when a provider answered, `SpendRecorded` ([`finish`]);
//!    the budget reservation is settled at the real cost (a request that ends any other way
//!    frees it when its context is dropped).
//!
//! Surfaces (`openai.rs`, `anthropic/`) implement the traits of [`super::surface`] and own
//! nothing else, so none can skip governance or events.
//!
//! Once admitted, a request's life runs on a tracked task of its own ([`detach`]), not in the
//! handler future that the server drops when the client disconnects: every `RequestAccepted`
//! gets its `ResponseCompleted` (and `SpendRecorded` when a provider answered) whatever the
//! client does. What happens upstream when the client leaves:
//! - a plain request's upstream call is finished, so the ledger holds the provider's own usage
//!   (the provider most likely bills a generation it has started whether or not anyone reads
//!   it); it is recorded with status 499 and error class `client_disconnected`;
//! - a stream is cancelled as soon as it is open (the attempt loop runs to its first chunk,
//!   so fallbacks and attempts are recorded as usual) or, mid-stream, at once: dropping the
//!   upstream response stops the generation at the providers we speak to. Its spend is the
//!   prompt plus the output received so far, counted by us and marked `estimated`.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use ulid::Ulid;

use super::error::char_prefix;
use super::rejected::{self, Refusal, Seen};
use super::surface::{Authenticated, Canonical, Framer, Surface, SurfaceError, SurfaceRequest};
use super::{ApiError, EdgeState, ratelimit, read_body, validate};
use crate::cache::{answer, key::Directives, store::Hit};
use crate::config::{BodyPolicy, Durability};
use crate::events::{
    Attempt, BreakerChanged, CacheHit, Endpoint, Envelope, ErrorInfo, Event, GuardrailAction,
    GuardrailFinding, Principal, RequestAccepted, ResponseCompleted, SpendRecorded, Usage,
};
use crate::governance::budgets::{Estimate, Reservation, cost};
use crate::guardrails::{AnswerGuard, ChunkGuard, Inspection, Step};
use crate::providers::{ChatRequest, ChatStream, ProviderError, StreamChunk, tokens};
use crate::publish::PublishError;
use crate::routing::{self, Deployment, ModelRoute, Outcome};

static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
static PROVIDER: HeaderName = HeaderName::from_static("x-switchyard-provider");
static ATTEMPTS: HeaderName = HeaderName::from_static("x-switchyard-attempts");
static UPSTREAM_MODEL: HeaderName = HeaderName::from_static("x-switchyard-model");
static CACHE: HeaderName = HeaderName::from_static("x-switchyard-cache");
static CACHE_SIMILARITY: HeaderName = HeaderName::from_static("x-switchyard-cache-similarity");

/// A body as recorded in an event: whole when it fits `max`, else its first `max` bytes (cut at
/// a character boundary) and a marker saying how much was left out. Keeps every event under
/// the NATS message size limit (1 MiB by default) whatever the client sends.
pub fn clip(body: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(body);
    if text.len() <= max {
        return text.into_owned();
    }
    let head = char_prefix(&text, max);
    format!("{head}…[truncated {} bytes]", text.len() - head.len())
}

struct Ctx {
    st: Arc<EdgeState>,
    request_id: Ulid,
    principal: Principal,
    route: Arc<ModelRoute>,
    endpoint: Endpoint,
    /// The public model name the client asked for.
    model: String,
    started: Instant,
    /// Cancelled when the client is gone before its answer was handed to the server.
    client_gone: CancellationToken,
    /// What the request reserved on its budgets; settled in [`finish`], freed if dropped
    /// unsettled.
    budget: Reservation,
    /// The request's placeholders and their values, for `restore`.
    restore: Vec<(String, String)>,
    /// The cache may keep this request's answer.
    cache_store: bool,
}

/// A request on surface `S` whose body is an `R`, from authentication to its response. A
/// refusal before admission is answered in the surface's shape and recorded as
/// `RequestRejected`.
pub async fn handle<S: Surface, R: SurfaceRequest>(
    st: Arc<EdgeState>,
    auth: Result<Authenticated<S>, SurfaceError<S>>,
    peer: Option<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let mut seen = Seen::default();
    let refusal =
        match admit_and_run::<S, R>(Arc::clone(&st), auth, &headers, body, &mut seen).await {
            Ok(response) => return response,
            Err(refusal) => refusal,
        };
    let request_id = Ulid::generate();
    rejected::record(&st, request_id, R::ENDPOINT, &refusal, seen, &headers, peer);
    let mut r = with_request_id::<S>(request_id, Err(refusal.error));
    if let Some(rate) = &refusal.rate {
        ratelimit::write_refusal(r.headers_mut(), rate);
    }
    r
}

/// Everything from authentication on: a [`Refusal`] before admission, else the response of
/// the admitted request.
async fn admit_and_run<S: Surface, R: SurfaceRequest>(
    st: Arc<EdgeState>,
    auth: Result<Authenticated<S>, SurfaceError<S>>,
    headers: &HeaderMap,
    body: Body,
    seen: &mut Seen,
) -> Result<Response, Refusal> {
    let started = Instant::now();
    let Authenticated(caller, _) = auth?;
    seen.principal = Some(Arc::clone(&caller.principal));
    // Parse: size limit, JSON, the surface's own checks, the canonical request.
    let bytes = read_body(headers, body, st.max_body_bytes, st.body_read_timeout).await?;
    let mut req: R =
        serde_json::from_slice(&bytes).map_err(|e| validate::parse_error(&e, &bytes))?;
    let (model, stream) = (req.model().to_owned(), req.is_stream());
    seen.model = Some(model.clone());
    if !caller.may_use(&model) {
        return Err(ApiError::model_not_allowed(&model).into());
    }
    let principal = caller.principal;
    // Guardrails: one pass over the body as sent; a block refuses it, a redaction replaces
    // values by placeholders in the body that goes on.
    let inspection = st.guardrails.inspect(&principal, &model, &bytes);
    if !inspection.blocked.is_empty() {
        return Err(ApiError::guardrail_blocked(&inspection.blocked).into());
    }
    if let Some(redacted) = &inspection.forward {
        req = serde_json::from_slice(redacted).map_err(|e| validate::parse_error(&e, redacted))?;
    }
    let canonical = req.into_canonical()?;
    // Resolve: content rules, then the requested model.
    let resolved = st
        .routes
        .resolve(&routing::rules::Input {
            model: &model,
            headers,
            principal: &principal,
            chat: canonical.chat(),
        })
        .ok_or_else(|| ApiError::model_not_found(&model))?;
    let route = resolved.route;
    let ask = match &canonical {
        Canonical::Chat(c) => cost::Ask::Chat(c),
        Canonical::Embeddings(e) => cost::Ask::Embeddings(e),
    };
    // Admit: one request and its tokens from every rate limit that applies, then the most the
    // request can cost from every budget. The prompt is counted at most once for both.
    let max_output = st.budgets.default_max_output_tokens;
    let counted = std::sync::OnceLock::new();
    let exact = || *counted.get_or_init(|| cost::ceiling(ask, max_output, Estimate::Exact));
    let rate = st
        .rates
        .admit(&principal, &model, || {
            let most = exact();
            most.input_tokens.saturating_add(most.output_tokens)
        })
        .await;
    let rate = match rate {
        Ok(view) => view,
        Err(refusal) => {
            return Err(Refusal {
                error: ApiError::rate_refused(&refusal),
                rate: Some(refusal),
            });
        }
    };
    let budget = st
        .budgets
        .admit(&principal, |estimate| {
            let most = match (counted.get(), estimate) {
                (Some(most), _) => *most,
                (None, Estimate::Exact) => exact(),
                (None, Estimate::Bound) => cost::ceiling(ask, max_output, Estimate::Bound),
            };
            cost::max_cost(&st.pricing, &st.routes, &route, &model, &most)
        })
        .await
        .map_err(|r| ApiError::budget_refused(&r, &st.pricing.currency))?;
    // The cache: the keys of a chat request whose model has it on, and a cached answer if one
    // fits. Only answers the stream keeps whole, of requests no guardrail rewrote, are kept;
    // only turns in which nothing was found are compared by meaning.
    let plan = match (&st.cache, &canonical) {
        (Some(cache), Canonical::Chat(chat)) => {
            cache
                .plan(
                    &principal,
                    &route.name,
                    chat,
                    Directives::from_headers(headers),
                    st.guardrails.bodies(&principal) != BodyPolicy::Metadata
                        && inspection.restore.is_empty()
                        && inspection.forward.is_none(),
                    inspection.findings.is_empty(),
                )
                .await
        }
        _ => None,
    };
    let hit = match (&st.cache, &plan) {
        (Some(cache), Some(plan)) => cache.lookup(plan, crate::governance::now_ms()),
        _ => None,
    };
    let cache_headers = plan.as_ref().map(|_| {
        (
            hit.as_ref().map_or("miss", |h| h.matched.as_str()),
            hit.as_ref().map(|h| h.similarity),
        )
    });
    if let Some(cache) = &cache_headers {
        metrics::counter!("switchyard_cache_requests_total", "model" => route.name.clone(), "result" => cache.0).increment(1);
    }
    let request_id = Ulid::generate();
    let accepted = Envelope::new(
        request_id,
        Event::RequestAccepted(RequestAccepted {
            principal: (*principal).clone(),
            endpoint: R::ENDPOINT,
            model: model.clone(),
            route: route.refs.clone(),
            stream,
            body: stored_request(&st, &principal, &bytes, &inspection),
            guardrail_findings: inspection.findings.clone(),
            cache: plan.as_ref().map(crate::cache::Plan::event_key),
            routed_model: resolved.rule.as_ref().map(|_| route.name.clone()),
            rule: resolved.rule,
        }),
    );
    let ctx = Ctx {
        st,
        request_id,
        principal: (*principal).clone(),
        route,
        endpoint: R::ENDPOINT,
        model,
        started,
        client_gone: CancellationToken::new(),
        budget,
        restore: inspection.restore,
        cache_store: plan.as_ref().is_some_and(crate::cache::Plan::stores),
    };
    // Route, attempt, render and close, on the request's own task.
    let mut response = detach::<S, _, _>(ctx, move |ctx| async move {
        match canonical {
            Canonical::Chat(req) if let Some(hit) = hit => {
                cached_path::<S>(ctx, req, accepted, hit, stream).await
            }
            Canonical::Chat(req) if stream => stream_path::<S>(ctx, req, accepted).await,
            Canonical::Chat(req) => {
                let (st, route) = (Arc::clone(&ctx.st), Arc::clone(&ctx.route));
                let call = async move {
                    map_outcome(routing::chat(&st.routes, &route, &req).await, |r| Answer {
                        // A provider that reports no usage is counted by us (marked estimated).
                        usage: r.usage.or_else(|| {
                            Some(tokens::estimate(&req, &String::from_utf8_lossy(&r.body)))
                        }),
                        body: r.body,
                        finish_reason: r.finish_reason,
                    })
                };
                plain_path::<S>(ctx, accepted, call).await
            }
            Canonical::Embeddings(req) => {
                let (st, route) = (Arc::clone(&ctx.st), Arc::clone(&ctx.route));
                let call = async move {
                    map_outcome(routing::embeddings(&st.routes, &route, &req).await, |r| {
                        Answer {
                            body: r.body,
                            usage: r.usage,
                            finish_reason: None,
                        }
                    })
                };
                plain_path::<S>(ctx, accepted, call).await
            }
        }
    })
    .await;
    ratelimit::write(response.headers_mut(), &rate);
    if let Some((result, similarity)) = cache_headers {
        let h = response.headers_mut();
        h.insert(CACHE.clone(), HeaderValue::from_static(result));
        if let Some(s) = similarity.and_then(|s| HeaderValue::from_str(&format!("{s:.4}")).ok()) {
            h.insert(CACHE_SIMILARITY.clone(), s);
        }
    }
    Ok(response)
}

/// Run the rest of an admitted request's life (`life`: publish RequestAccepted, attempts,
/// closing events) on a task tracked by the edge, and hand its response to the server. The
/// handler future that awaits here is dropped when the client disconnects; the task is not, so
/// the request still ends with its closing events, and it sees `client_gone` cancelled. Shutdown
/// waits for these tasks before draining the publisher.
async fn detach<S, F, Fut>(ctx: Ctx, life: F) -> Response
where
    S: Surface,
    F: FnOnce(Ctx) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Response, ApiError>> + Send + 'static,
{
    let request_id = ctx.request_id;
    let gone = ctx.client_gone.clone().drop_guard();
    let (tx, rx) = oneshot::channel();
    let tasks = ctx.st.tasks.clone();
    tasks.spawn(async move {
        let response = with_request_id::<S>(request_id, life(ctx).await);
        // A client that left meanwhile drops the receiver; a stream's body goes with it, and
        // its forwarder sees the closed channel and records the disconnect.
        let _ = tx.send(response);
    });
    let response = rx.await;
    gone.disarm();
    response.unwrap_or_else(|_| with_request_id::<S>(request_id, Err(ApiError::internal())))
}

/// Count a client that left before its answer was complete.
fn count_disconnect(ctx: &Ctx, stage: &'static str) {
    metrics::counter!("switchyard_client_disconnects_total", "model" => ctx.route.name.clone(), "stage" => stage).increment(1);
}

fn disconnected_info() -> ErrorInfo {
    ErrorInfo {
        class: "client_disconnected".into(),
        message: "the client closed the connection before the answer was complete".into(),
    }
}

/// Status recorded for a request whose client left before its answer was sent (nginx's
/// convention; no HTTP response carries it).
const CLIENT_CLOSED_REQUEST: u16 = 499;

/// Once admitted, every answer, error or not, names its request id.
fn with_request_id<S: Surface>(request_id: Ulid, result: Result<Response, ApiError>) -> Response {
    result.unwrap_or_else(|e| {
        let mut r = S::error(e);
        decorate(r.headers_mut(), request_id, None, 0);
        r.headers_mut().remove(&ATTEMPTS);
        r
    })
}

/// A complete answer in the canonical (OpenAI) shape.
struct Answer {
    pub body: Bytes,
    pub usage: Option<Usage>,
    pub finish_reason: Option<String>,
}

fn map_outcome<T>(o: Outcome<T>, f: impl FnOnce(T) -> Answer) -> Outcome<Answer> {
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

/// Wait for the answer, render it in the surface's shape, close the request.
async fn plain_path<S: Surface>(
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
    // A provider answered (and billed) even when its answer cannot be rendered for this
    // surface: the request is closed with its usage either way.
    let rendered = S::answer(answer.body.clone(), &ctx.model, answer.usage.as_ref());
    let (mut findings, mut masked) = (Vec::new(), None);
    let rendered = rendered.and_then(|r| guard_answer(&ctx, r, &mut findings, &mut masked));
    let withheld = findings.iter().any(|f| f.action == GuardrailAction::Block);
    let strict = acked.as_ref().err().map(strict_audit_error);
    let gone = ctx.client_gone.is_cancelled();
    let (status, error) = match (&strict, &acked, &rendered) {
        (Some(e), Err(pe), _) => (e.status.as_u16(), Some(strict_audit_info(pe))),
        (_, _, Err(e)) => (
            e.status.as_u16(),
            Some(ErrorInfo {
                class: if withheld {
                    "guardrail_blocked".into()
                } else {
                    "unconvertible_answer".into()
                },
                message: e.message.clone(),
            }),
        ),
        _ if gone => (CLIENT_CLOSED_REQUEST, Some(disconnected_info())),
        _ => (200, None),
    };
    if gone {
        count_disconnect(&ctx, "before_answer");
    }
    // A withheld answer is kept masked whatever the privacy setting: what a guardrail blocks
    // reaches no one, the stream included. Its scan already masked it (a withheld answer was
    // scanned), whole and then clipped.
    let body = if withheld {
        masked.clone().unwrap_or_default()
    } else {
        clip(
            rendered.as_ref().unwrap_or(&answer.body),
            ctx.st.max_event_body_bytes,
        )
    };
    finish(
        &ctx,
        Finished {
            findings,
            masked_body: masked,
            attempts,
            deployment: Some(Arc::clone(&dep)),
            status,
            error,
            ttft_us: Some(ctx.started.elapsed().as_micros() as u64),
            usage: answer.usage,
            finish_reason: answer.finish_reason,
            body: Some(body),
            stream: false,
            cache: None,
        },
    )
    .await;
    if let Some(e) = strict {
        return Err(e);
    }
    let mut r = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        rendered?,
    )
        .into_response();
    decorate(r.headers_mut(), ctx.request_id, Some(&dep), attempts_n);
    Ok(r)
}

/// The response guardrails on a complete chat answer (embeddings are vectors: not scanned):
/// redact, or withhold it; then put the request's redacted values back when `restore` is on.
fn guard_answer(
    ctx: &Ctx,
    rendered: Bytes,
    findings: &mut Vec<GuardrailFinding>,
    masked: &mut Option<String>,
) -> Result<Bytes, ApiError> {
    if ctx.endpoint == Endpoint::Embeddings {
        return Ok(rendered);
    }
    let policy = &ctx.st.guardrails;
    let inspection = policy.inspect_answer(&ctx.principal, &ctx.model, &rendered, &ctx.restore);
    *findings = inspection.findings;
    // The scan already gives what a `redacted` stream keeps: no second pass at the close.
    if inspection.scanned {
        let stored = inspection.masked.as_deref().unwrap_or(&rendered);
        *masked = Some(clip(stored, ctx.st.max_event_body_bytes));
    }
    if !inspection.blocked.is_empty() {
        return Err(ApiError::answer_blocked(&inspection.blocked));
    }
    let answer = inspection.forward.map_or(rendered, Bytes::from);
    if policy.restore
        && let Some(restored) = crate::guardrails::policy::restore(&answer, &ctx.restore)
    {
        return Ok(Bytes::from(restored));
    }
    Ok(answer)
}

/// Record a request that got no answer and turn the error into the client's response.
async fn fail(ctx: &Ctx, attempts: Vec<Attempt>, e: &ProviderError, stream: bool) -> ApiError {
    let api = ApiError::from_provider(e);
    finish(
        ctx,
        Finished {
            findings: Vec::new(),
            masked_body: None,
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
            cache: None,
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
    /// What the response guardrails found in the answer.
    findings: Vec<GuardrailFinding>,
    /// The body as a `redacted` stream keeps it, when the guardrails' scan already made it.
    masked_body: Option<String>,
    attempts: Vec<Attempt>,
    /// The deployment that answered, if any did.
    deployment: Option<Arc<Deployment>>,
    status: u16,
    error: Option<ErrorInfo>,
    ttft_us: Option<u64>,
    usage: Option<Usage>,
    finish_reason: Option<String>,
    body: Option<String>,
    stream: bool,
    /// The cached answer that answered, when the cache did.
    cache: Option<CacheHit>,
}

/// The request body as the stream keeps it (`[privacy]`): as sent, with every finding masked, or
/// nothing; clipped.
fn stored_request(st: &EdgeState, p: &Principal, sent: &[u8], inspection: &Inspection) -> String {
    match st.guardrails.bodies(p) {
        BodyPolicy::Full => clip(sent, st.max_event_body_bytes),
        BodyPolicy::Redacted => clip(
            inspection.masked.as_deref().unwrap_or(sent),
            st.max_event_body_bytes,
        ),
        BodyPolicy::Metadata => String::new(),
    }
}

/// An answer as the stream keeps it (`[privacy]`), and whether that is the answer exactly as
/// the client got it (what the cache may keep).
/// `masked`: the body as a `redacted` stream keeps it, when the guardrails already made it.
fn stored_response(
    st: &EdgeState,
    p: &Principal,
    body: Option<String>,
    masked: Option<String>,
) -> (Option<String>, bool) {
    match st.guardrails.bodies(p) {
        BodyPolicy::Full => {
            let whole = body.is_some();
            (body, whole)
        }
        BodyPolicy::Redacted => {
            let kept = masked.or_else(|| body.as_deref().map(|b| st.guardrails.mask(b)));
            let whole = kept.is_some() && kept == body;
            (kept, whole)
        }
        BodyPolicy::Metadata => (None, false),
    }
}

/// The provider a cached answer is recorded as coming from.
const CACHE_PROVIDER: &str = "cache";

/// Publish ResponseCompleted and, when the cost is known, SpendRecorded; count the request.
async fn finish(ctx: &Ctx, done: Finished) {
    let latency = ctx.started.elapsed();
    // Before settling: the budget's settlement and the events that record it stay together.
    let (body, whole) = stored_response(&ctx.st, &ctx.principal, done.body, done.masked_body);
    // The cache keeps only an answer the stream holds as the client got it.
    let whole_body = ctx.cache_store && whole;
    let target = done.deployment.as_deref();
    let provider = match target {
        Some(t) => t.provider_name.as_str(),
        None if done.cache.is_some() => CACHE_PROVIDER,
        None => "none",
    };
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
        // A cached answer costs nothing: its tokens are recorded as served from the cache.
        (None, Some(usage)) if done.cache.is_some() => Some(SpendRecorded {
            principal: ctx.principal.clone(),
            model: ctx.model.clone(),
            provider: CACHE_PROVIDER.to_owned(),
            provider_model: ctx.route.name.clone(),
            usage: Usage {
                cached_input_tokens: usage.input_tokens,
                ..usage
            },
            cost_nanos: 0,
            currency: ctx.st.pricing.currency.clone(),
            priced: true,
        }),
        _ => None,
    };
    ctx.budget
        .settle(spend.as_ref().map_or(0, |s| s.cost_nanos));
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
            body,
            cache: done.cache,
            whole_body,
            guardrail_findings: done.findings,
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

/// Answer from the cache: the cached completion re-stamped for this request, as JSON or replayed
/// as a stream in the surface's framing; no provider is called.
async fn cached_path<S: Surface>(
    ctx: Ctx,
    req: ChatRequest,
    accepted: Envelope,
    hit: Hit,
    stream: bool,
) -> Result<Response, ApiError> {
    let (acked, ()) = accepted_then(&ctx.st, &accepted, async {}).await;
    let created = crate::governance::now_ms() / 1000;
    let id = format!("chatcmpl-{}", ctx.request_id);
    let cached = answer::with_model(&hit.answer, &id, &ctx.model, created)
        .unwrap_or_else(|| (*hit.answer).clone());
    let usage = cached.usage;
    let rendered = if stream {
        let mut framer = S::framer(&req, &ctx.model);
        let chunks = answer::chunks(&cached);
        let mut log = String::new();
        let mut frames = Vec::new();
        for chunk in &chunks {
            keep(&mut log, &chunk.data);
            frames.extend(framer.chunk(chunk));
        }
        frames.extend(framer.done(usage.as_ref()));
        Ok((frames, log))
    } else {
        S::answer(cached.body.clone(), &ctx.model, usage.as_ref()).map(|b| {
            let log = String::from_utf8_lossy(&b).into_owned();
            (vec![b], log)
        })
    };
    let strict = acked.as_ref().err().map(strict_audit_error);
    let (status, error) = match (&strict, &acked, &rendered) {
        (Some(e), Err(pe), _) => (e.status.as_u16(), Some(strict_audit_info(pe))),
        (_, _, Err(e)) => (
            e.status.as_u16(),
            Some(ErrorInfo {
                class: "unconvertible_answer".into(),
                message: e.message.clone(),
            }),
        ),
        _ => (200, None),
    };
    let body = rendered
        .as_ref()
        .ok()
        .map(|(_, log)| clip(log.as_bytes(), ctx.st.max_event_body_bytes));
    finish(
        &ctx,
        Finished {
            findings: Vec::new(),
            masked_body: None,
            attempts: Vec::new(),
            deployment: None,
            status,
            error,
            ttft_us: Some(ctx.started.elapsed().as_micros() as u64),
            usage,
            finish_reason: cached.finish_reason.clone(),
            body,
            stream,
            cache: Some(CacheHit {
                matched: hit.matched,
                similarity: hit.similarity,
                source: hit.source.to_string(),
            }),
        },
    )
    .await;
    if let Some(e) = strict {
        return Err(e);
    }
    let (frames, _) = rendered?;
    let mut r = if stream {
        let frames =
            futures::stream::iter(frames.into_iter().map(Ok::<_, std::convert::Infallible>));
        Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, "text/event-stream")
            .header(header::CACHE_CONTROL, "no-cache")
            .body(Body::from_stream(frames))
            .map_err(|_| ApiError::internal())?
    } else {
        let body = frames.into_iter().next().unwrap_or_default();
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response()
    };
    decorate(r.headers_mut(), ctx.request_id, None, 0);
    Ok(r)
}

/// Open the stream (attempts until a first chunk), hand the client its response, and leave the
/// forwarding to a tracked task.
async fn stream_path<S: Surface>(
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
                findings: Vec::new(),
                masked_body: None,
                attempts,
                deployment: Some(Arc::clone(&dep)),
                status: api.status.as_u16(),
                error: Some(strict_audit_info(&e)),
                ttft_us: None,
                usage: None,
                finish_reason: None,
                body: None,
                stream: true,
                cache: None,
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
    tasks.spawn(forward::<S>(ctx, req, stream, dep, attempts, tx));
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

/// Forward upstream chunks to the client, keep what the events need, and publish the closing
/// events however the stream ends (done, upstream broke, a guardrail withheld it, client went
/// away).
async fn forward<S: Surface>(
    ctx: Ctx,
    req: ChatRequest,
    mut stream: ChatStream,
    dep: Arc<Deployment>,
    attempts: Vec<Attempt>,
    tx: mpsc::Sender<Result<Bytes, std::convert::Infallible>>,
) {
    let mut framer = S::framer(&req, &ctx.model);
    let mut guard = AnswerGuard::new(
        Arc::clone(&ctx.st.guardrails),
        &ctx.principal,
        &ctx.model,
        &ctx.restore,
    )
    .map(ChunkGuard::new);
    // What the client got, and (when the guardrails scan the answer) what a `redacted` stream
    // keeps of it.
    let mut log = String::new();
    let mut masked_log = guard.as_ref().map(|_| String::new());
    let mut usage = None;
    let mut finish_reason = None;
    let mut ttft_us = None;
    let mut error: Option<ProviderError> = None;
    let mut withheld = false;
    let mut client_gone = false;
    'read: loop {
        // A client that leaves cancels the upstream stream at once, not at the next chunk: a
        // slow or stalled generation is not paid for longer than the client wanted it.
        let item = tokio::select! {
            biased;
            _ = tx.closed() => {
                client_gone = true;
                break 'read;
            }
            item = stream.next() => match item {
                Some(item) => item,
                None => break 'read,
            },
        };
        match item {
            Ok(chunk) => {
                if ttft_us.is_none() {
                    ttft_us = Some(ctx.started.elapsed().as_micros() as u64);
                }
                if chunk.usage.is_some() {
                    usage = chunk.usage;
                }
                if chunk.finish_reason.is_some() {
                    finish_reason = chunk.finish_reason.clone();
                }
                let Some(g) = guard.as_mut() else {
                    keep(&mut log, &chunk.data);
                    if !send_frames(&tx, framer.chunk(&chunk)).await {
                        client_gone = true;
                        break 'read;
                    }
                    continue;
                };
                let (send, stored) = match g.chunk(&chunk.data) {
                    Step::Send { send, stored } => (send, stored),
                    Step::Blocked => {
                        withheld = true;
                        break 'read;
                    }
                };
                let logs = (&mut log, masked_log.as_mut());
                if !send_guarded(&tx, &mut framer, logs, send, stored, Some(&chunk)).await {
                    client_gone = true;
                    break 'read;
                }
            }
            Err(e) => {
                error = Some(e);
                break;
            }
        }
    }
    drop(stream);
    // A stream that ended without finishing its choices lets go of what it held.
    if error.is_none()
        && !client_gone
        && !withheld
        && let Some(g) = guard.as_mut()
    {
        match g.end() {
            Step::Send { send, stored } => {
                let logs = (&mut log, masked_log.as_mut());
                client_gone = !send_guarded(&tx, &mut framer, logs, send, stored, None).await;
            }
            Step::Blocked => withheld = true,
        }
    }
    let findings = guard
        .as_ref()
        .map(|g| g.guard().findings())
        .unwrap_or_default();
    // A stream without usage (some servers never send it) is counted by us, marked estimated.
    let usage = usage.or_else(|| Some(tokens::estimate(&req, &log)));
    let (closing, err_info) = match (&error, client_gone) {
        (Some(e), _) => (
            framer.error(&ApiError::from_provider(e)),
            Some(ErrorInfo {
                class: e.label().to_owned(),
                message: e.to_string(),
            }),
        ),
        (None, false) if withheld => {
            let blocked = guard.as_ref().map(|g| g.guard().blocked()).unwrap_or(&[]);
            let api = ApiError::answer_blocked(blocked);
            let info = ErrorInfo {
                class: "guardrail_blocked".into(),
                message: api.message.clone(),
            };
            (framer.error(&api), Some(info))
        }
        (None, true) => {
            let before = ctx.client_gone.is_cancelled();
            count_disconnect(
                &ctx,
                if before {
                    "before_answer"
                } else {
                    "mid_stream"
                },
            );
            (Vec::new(), Some(disconnected_info()))
        }
        (None, false) => (framer.done(usage.as_ref()), None),
    };
    send_frames(&tx, closing).await;
    drop(tx);
    // A client gone before the answer was handed over never saw the 200.
    let status = if client_gone && ctx.client_gone.is_cancelled() {
        CLIENT_CLOSED_REQUEST
    } else {
        200
    };
    let clip_log = |l: &str| clip(l.as_bytes(), ctx.st.max_event_body_bytes);
    finish(
        &ctx,
        Finished {
            findings,
            masked_body: masked_log.as_deref().map(clip_log),
            attempts,
            deployment: Some(dep),
            status,
            error: err_info,
            ttft_us,
            usage,
            finish_reason,
            body: Some(clip_log(&log)),
            stream: true,
            cache: None,
        },
    )
    .await;
}

/// One chunk's JSON onto a stream's log.
fn keep(log: &mut String, data: &[u8]) {
    log.push_str(&String::from_utf8_lossy(data));
    log.push('\n');
}

/// Send and log what the stream guard let through. The last of `send` is `original` rewritten
/// (its usage and finish kept); any before it carry text a finishing choice flushed. `stored` is
/// what a `redacted` stream keeps. False once the client is gone.
async fn send_guarded<F: Framer>(
    tx: &mpsc::Sender<Result<Bytes, std::convert::Infallible>>,
    framer: &mut F,
    (log, masked_log): (&mut String, Option<&mut String>),
    send: Vec<Bytes>,
    stored: Vec<Bytes>,
    original: Option<&StreamChunk>,
) -> bool {
    if let Some(m) = masked_log {
        stored.iter().for_each(|d| keep(m, d));
    }
    let n = send.len();
    for (i, data) in send.into_iter().enumerate() {
        keep(log, &data);
        let piece = match original {
            Some(chunk) if i + 1 == n => StreamChunk {
                data,
                ..chunk.clone()
            },
            _ => StreamChunk {
                data,
                usage: None,
                finish_reason: None,
                usage_only: false,
            },
        };
        if !send_frames(tx, framer.chunk(&piece)).await {
            return false;
        }
    }
    true
}

/// Send `frames` to the client; false once it is gone.
async fn send_frames(
    tx: &mpsc::Sender<Result<Bytes, std::convert::Infallible>>,
    frames: Vec<Bytes>,
) -> bool {
    for frame in frames {
        if tx.send(Ok(frame)).await.is_err() {
            return false;
        }
    }
    true
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
