//! A mock OpenAI-compatible upstream for tests, benchmarks and the quickstart: chat
//! completions (plain, streamed, tool calls), embeddings and the model list, plus Anthropic's
//! Messages API (`anthropic/`), Gemini's generateContent API (`gemini/`) and AWS Bedrock
//! Runtime's Converse, ConverseStream and embeddings InvokeModel (`bedrock/`, which also checks
//! SigV4 signatures) answering alike, with deterministic replies and usage, and injected faults
//! (error statuses, hangs, cut and malformed streams) whose rates can be changed while it runs
//! through `/_mock/config`.
//!
//! It is the baseline of the latency benchmark, so the request path reads one config snapshot,
//! bumps atomics, and never logs. It is a development tool and its own crate: the gateway does
//! not depend on it (only its tests do), and it keeps wire types of its own, so a test oracle
//! never shares a type with the code it checks.
//!
//! Control endpoints: `GET|PUT /_mock/config`, `GET /_mock/stats`, `POST /_mock/stats/reset`.

mod anthropic;
mod bedrock;
mod embeddings;
mod faults;
mod gemini;
mod openai;
#[cfg(test)]
#[allow(clippy::disallowed_methods)] // the socket test owns its server task
mod tests;

/// A mock on a free local port for unit tests (the gateway's adapters', with the `test-util`
/// feature), stopped on drop.
#[cfg(any(test, feature = "test-util"))]
pub struct TestUpstream {
    pub state: MockState,
    /// `http://127.0.0.1:PORT`, no path.
    pub origin: String,
    shutdown: CancellationToken,
}

#[cfg(any(test, feature = "test-util"))]
impl TestUpstream {
    #[allow(clippy::disallowed_methods, clippy::unwrap_used)] // the test owns its server task
    pub async fn start(cfg: MockConfig) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let origin = format!("http://{}", listener.local_addr().unwrap());
        let state = MockState::new(cfg);
        let shutdown = CancellationToken::new();
        tokio::spawn(serve(listener, state.clone(), shutdown.clone()));
        Self {
            state,
            origin,
            shutdown,
        }
    }
}

#[cfg(any(test, feature = "test-util"))]
impl Drop for TestUpstream {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

use std::io;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

pub use bedrock::{MOCK_AWS_ACCESS_KEY_ID, MOCK_AWS_SECRET_ACCESS_KEY};
use embeddings::{EmbeddingsRequest, Rejection};
pub use faults::MockConfig;
use faults::{DEFAULT_FAIL_STATUS, DEFAULT_HANG_MS, DEFAULT_STREAM_WORDS, Plan};
use openai::{ChatRequest, Frames, Meta};

/// CLI flags of the `switchyard-mock` binary.
#[derive(clap::Parser, Debug, Clone)]
#[command(
    name = "switchyard-mock",
    version,
    about = "A mock LLM upstream with fault injection (development tool)"
)]
pub struct MockArgs {
    /// Port to listen on.
    #[arg(long, default_value_t = 8090)]
    pub port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// Delay before a non-stream answer or the first stream chunk.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Delay between stream chunks.
    #[arg(long, default_value_t = 0)]
    pub chunk_delay_ms: u64,
    /// Status of injected failures.
    #[arg(long, default_value_t = DEFAULT_FAIL_STATUS,
          value_parser = clap::value_parser!(u16).range(400..=599))]
    pub fail_status: u16,
    /// Fraction (0.0..=1.0) of requests answered with --fail-status.
    #[arg(long, default_value_t = 0.0, value_parser = parse_rate)]
    pub fail_rate: f64,
    /// Send `Retry-After: N` with injected failures.
    #[arg(long)]
    pub retry_after_secs: Option<u64>,
    /// Fraction (0.0..=1.0) of requests that hang --hang-ms before answering.
    #[arg(long, default_value_t = 0.0, value_parser = parse_rate)]
    pub timeout_rate: f64,
    /// How long a "timeout" request hangs.
    #[arg(long, default_value_t = DEFAULT_HANG_MS)]
    pub hang_ms: u64,
    /// Fraction (0.0..=1.0) of streams aborted mid-way without [DONE].
    #[arg(long, default_value_t = 0.0, value_parser = parse_rate)]
    pub cut_rate: f64,
    /// Fraction (0.0..=1.0) of streams with one chunk of invalid JSON.
    #[arg(long, default_value_t = 0.0, value_parser = parse_rate)]
    pub malformed_rate: f64,
    /// Words in a generated reply.
    #[arg(long, default_value_t = DEFAULT_STREAM_WORDS)]
    pub stream_words: usize,
    /// OpenAI chat streams: cut each word into pieces of at most N characters (0: whole words).
    #[arg(long, default_value_t = 0)]
    pub token_chars: usize,
    /// Play a server that reports no usage (plain or streamed).
    #[arg(long)]
    pub omit_usage: bool,
    /// OpenAI chat: refuse prompts over this many tokens with `context_length_exceeded`.
    #[arg(long)]
    pub context_window: Option<u64>,
    /// Gemini: answer without `responseId`.
    #[arg(long)]
    pub omit_response_id: bool,
    /// Accept only this upstream key (repeat for several); others are answered 401.
    #[arg(long = "api-key")]
    pub api_keys: Vec<String>,
}

fn parse_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(rate) if (0.0..=1.0).contains(&rate) => Ok(rate),
        Ok(rate) => Err(format!("{rate} is not in 0.0..=1.0")),
        Err(e) => Err(e.to_string()),
    }
}

impl MockArgs {
    /// The runtime config these flags describe.
    pub fn config(&self) -> MockConfig {
        MockConfig {
            latency_ms: self.latency_ms,
            chunk_delay_ms: self.chunk_delay_ms,
            fail_status: self.fail_status,
            fail_rate: self.fail_rate,
            retry_after_secs: self.retry_after_secs,
            timeout_rate: self.timeout_rate,
            hang_ms: self.hang_ms,
            cut_rate: self.cut_rate,
            malformed_rate: self.malformed_rate,
            stream_words: self.stream_words,
            token_chars: self.token_chars,
            omit_usage: self.omit_usage,
            context_window: self.context_window,
            omit_response_id: self.omit_response_id,
            api_keys: self.api_keys.clone(),
        }
    }
}

/// Request counters, as served by `GET /_mock/stats`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct MockStats {
    /// Every API request (`/v1`, Gemini's `/v1beta`, Bedrock's `/model`), malformed ones too.
    pub requests: u64,
    /// Chat requests: OpenAI chat completions, Anthropic messages, Gemini generateContent and
    /// Bedrock Converse (streamed or not).
    pub chat: u64,
    /// Streamed chat completion requests.
    pub streams: u64,
    /// Embeddings requests.
    pub embeddings: u64,
    /// Injected `fail_status` answers.
    pub faults: u64,
    /// Requests answered 401 because they carried none of `api_keys`.
    #[serde(default)]
    pub unauthorized: u64,
}

/// Shared runtime state: the current config (swappable at run time) and request counters.
///
/// Clones share everything. Once a [`serve`] using this state is shut down, its pending
/// sleeps are cut short for good, so give each server a fresh state.
#[derive(Clone)]
pub struct MockState {
    inner: Arc<Shared>,
}

struct Shared {
    /// Read once per request; a swap never waits on requests in flight beyond the Arc clone.
    config: RwLock<Arc<MockConfig>>,
    requests: AtomicU64,
    chat: AtomicU64,
    streams: AtomicU64,
    embeddings: AtomicU64,
    faults: AtomicU64,
    unauthorized: AtomicU64,
    /// Numbers completion ids; not reset with the stats, so ids stay unique per process.
    seq: AtomicU64,
    /// Cancelled at shutdown so hangs and slow streams do not hold graceful shutdown hostage.
    halt: CancellationToken,
}

impl MockState {
    pub fn new(cfg: MockConfig) -> Self {
        Self {
            inner: Arc::new(Shared {
                config: RwLock::new(Arc::new(cfg)),
                requests: AtomicU64::new(0),
                chat: AtomicU64::new(0),
                streams: AtomicU64::new(0),
                embeddings: AtomicU64::new(0),
                faults: AtomicU64::new(0),
                unauthorized: AtomicU64::new(0),
                seq: AtomicU64::new(0),
                halt: CancellationToken::new(),
            }),
        }
    }

    /// Replaces the running config; requests already past their config read keep the old one.
    pub fn set_config(&self, cfg: MockConfig) {
        // A poisoned lock only means a writer panicked mid-assignment of an Arc, which leaves
        // either the old or the new value: both are valid configs.
        *self
            .inner
            .config
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(cfg);
    }

    /// The current config.
    pub fn config(&self) -> Arc<MockConfig> {
        Arc::clone(
            &self
                .inner
                .config
                .read()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    pub fn stats(&self) -> MockStats {
        let s = &self.inner;
        MockStats {
            requests: s.requests.load(Ordering::Relaxed),
            chat: s.chat.load(Ordering::Relaxed),
            streams: s.streams.load(Ordering::Relaxed),
            embeddings: s.embeddings.load(Ordering::Relaxed),
            faults: s.faults.load(Ordering::Relaxed),
            unauthorized: s.unauthorized.load(Ordering::Relaxed),
        }
    }

    fn reset_stats(&self) {
        let s = &self.inner;
        for counter in [
            &s.requests,
            &s.chat,
            &s.streams,
            &s.embeddings,
            &s.faults,
            &s.unauthorized,
        ] {
            counter.store(0, Ordering::Relaxed);
        }
    }

    /// Sleeps `ms`, or returns false if the server is shutting down first.
    async fn pause(&self, ms: u64) -> bool {
        pause(&self.inner.halt, ms).await
    }
}

async fn pause(halt: &CancellationToken, ms: u64) -> bool {
    if ms == 0 {
        return true;
    }
    tokio::select! {
        () = tokio::time::sleep(Duration::from_millis(ms)) => true,
        () = halt.cancelled() => false,
    }
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Largest request body the mock reads.
const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// The mock's routes: `/v1/chat/completions`, `/v1/messages` (Anthropic), `/v1/embeddings`,
/// `/v1/models`, `/v1beta/models/{model}:{method}` (Gemini), `/model/{modelId}/converse`,
/// `/model/{modelId}/converse-stream` and `/model/{modelId}/invoke` (Bedrock) and `/_mock/*`.
pub fn router(state: MockState) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/messages", post(anthropic::messages))
        .route("/v1/embeddings", post(embed))
        .route("/v1/models", get(models))
        .route("/v1beta/models/{model_action}", post(gemini::models))
        .route("/model/{model_id}/converse", post(bedrock::converse))
        .route(
            "/model/{model_id}/converse-stream",
            post(bedrock::converse_stream),
        )
        .route("/model/{model_id}/invoke", post(bedrock::invoke))
        .route(
            "/openai/deployments/{deployment}/chat/completions",
            post(azure_chat),
        )
        .route(
            "/openai/deployments/{deployment}/embeddings",
            post(azure_embed),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            require_key,
        ))
        .route("/_mock/config", get(config_get).put(config_put))
        .route("/_mock/stats", get(stats))
        .route("/_mock/stats/reset", post(stats_reset))
        // Well above axum's 2 MiB default, so a gateway's own body limit is what tests meet.
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// Serve until `shutdown` is cancelled (axum graceful shutdown). Pending hangs and stream
/// delays are cut short at shutdown, so it returns promptly.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: MockState,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let halt = state.inner.halt.clone();
    // Nagle would hold back small SSE chunks and skew the latency baseline. Failing to set it
    // only costs latency, so the connection is served anyway.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async move {
            shutdown.cancelled().await;
            halt.cancel();
        })
        .await
}

fn shutting_down() -> Response {
    openai::error(
        StatusCode::SERVICE_UNAVAILABLE,
        "server_error",
        None,
        None,
        "The mock upstream is shutting down.",
    )
}

fn unix_now() -> u64 {
    // A clock before 1970 is a broken host; 0 is as good an answer as any for a mock.
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// With `api_keys` configured, a request must carry one of them, in whichever header its
/// provider uses; a SigV4-signed request is left to the Bedrock handlers' own check.
async fn require_key(
    State(state): State<MockState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let cfg = state.config();
    let headers = request.headers();
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let authorization = text("authorization").unwrap_or_default();
    let presented = authorization
        .strip_prefix("Bearer ")
        .or_else(|| text("api-key"))
        .or_else(|| text("x-api-key"))
        .or_else(|| text("x-goog-api-key"));
    let accepted = cfg.api_keys.is_empty()
        || authorization.starts_with("AWS4-HMAC-SHA256 ")
        || presented.is_some_and(|k| cfg.api_keys.iter().any(|a| a == k));
    if accepted {
        return next.run(request).await;
    }
    bump(&state.inner.requests);
    bump(&state.inner.unauthorized);
    openai::error(
        StatusCode::UNAUTHORIZED,
        "invalid_request_error",
        Some("invalid_api_key"),
        None,
        "Incorrect API key provided.",
    )
}

/// Azure OpenAI's shape of the same endpoints: the deployment in the path, an `api-version`
/// query parameter and an `api-key` header are required, as Azure requires them.
fn azure_check(headers: &axum::http::HeaderMap, query: Option<&str>) -> Option<Response> {
    if !headers.contains_key("api-key") {
        return Some(openai::error(
            axum::http::StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            Some("401"),
            None,
            "Access denied due to missing api-key header.",
        ));
    }
    if !query.is_some_and(|q| q.split('&').any(|kv| kv.starts_with("api-version="))) {
        return Some(openai::invalid_request(
            Some("api-version"),
            "Missing required query parameter api-version.",
        ));
    }
    None
}

async fn azure_chat(
    state: State<MockState>,
    headers: axum::http::HeaderMap,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
    body: Bytes,
) -> Response {
    match azure_check(&headers, query.as_deref()) {
        Some(refused) => refused,
        None => chat(state, body).await,
    }
}

async fn azure_embed(
    state: State<MockState>,
    headers: axum::http::HeaderMap,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
    body: Bytes,
) -> Response {
    match azure_check(&headers, query.as_deref()) {
        Some(refused) => refused,
        None => embed(state, body).await,
    }
}

/// OpenAI's limit on `n`; it also bounds what one request can make the mock allocate.
const MAX_CHOICES: u32 = 128;

async fn chat(State(state): State<MockState>, body: Bytes) -> Response {
    let shared = &state.inner;
    bump(&shared.requests);
    bump(&shared.chat);
    let cfg = state.config();
    let req: ChatRequest<'_> = match serde_json::from_slice(&body) {
        Ok(req) => req,
        Err(e) => return openai::invalid_request(None, &format!("Invalid request body: {e}")),
    };
    let n = req.n.unwrap_or(1);
    if !(1..=MAX_CHOICES).contains(&n) {
        let message = format!("n must be in 1..={MAX_CHOICES}, got {n}");
        return openai::invalid_request(Some("n"), &message);
    }
    let stream = req.stream.unwrap_or(false);
    if stream {
        bump(&shared.streams);
    }
    if let Some(window) = cfg.context_window
        && req.prompt_tokens() > window
    {
        let message = format!(
            "This model's maximum context length is {window} tokens. However, your messages resulted in {} tokens. Please reduce the length of the messages.",
            req.prompt_tokens()
        );
        return openai::error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            Some("context_length_exceeded"),
            Some("messages"),
            &message,
        );
    }
    let plan = cfg.roll(stream);
    if plan.hang && !state.pause(cfg.hang_ms).await {
        return shutting_down();
    }
    if plan.fail {
        bump(&shared.faults);
        return openai::injected_failure(cfg.fail_status, cfg.retry_after_secs, req.model());
    }
    let seq = shared.seq.fetch_add(1, Ordering::Relaxed) + 1;
    let id = format!("chatcmpl-mock-{seq}");
    let meta = Meta {
        id: &id,
        created: unix_now(),
        model: req.model(),
    };
    let reply = openai::reply(&req, cfg.stream_words, seq, n);
    if stream {
        return match openai::stream_frames(
            &meta,
            &reply,
            n,
            req.include_usage() && !cfg.omit_usage,
            cfg.token_chars,
        ) {
            Ok(frames) => sse(frames, &cfg, plan, shared.halt.clone()),
            Err(e) => openai::internal(&e.to_string()),
        };
    }
    if !state.pause(cfg.latency_ms).await {
        return shutting_down();
    }
    match openai::completion(&meta, &reply, n, !cfg.omit_usage) {
        Ok(bytes) => openai::json(StatusCode::OK, bytes),
        Err(e) => openai::internal(&e.to_string()),
    }
}

/// Where a stream is fed from: the prepared frames plus the timing and faults to apply.
struct Feed {
    frames: Frames,
    next: usize,
    /// Before the first frame: headers go out at once, as a real upstream's do, and the
    /// latency shows as time to first token.
    first_delay_ms: u64,
    delay_ms: u64,
    malformed_at: Option<usize>,
    cut_at: Option<usize>,
    halt: CancellationToken,
}

fn sse(frames: Frames, cfg: &MockConfig, plan: Plan, halt: CancellationToken) -> Response {
    // The middle frame is a content chunk whenever there is content; the cut follows the
    // malformed frame when both are rolled, so both faults stay observable.
    let mid = frames.len() / 2;
    let feed = Feed {
        next: 0,
        first_delay_ms: cfg.latency_ms,
        delay_ms: cfg.chunk_delay_ms,
        malformed_at: plan.malformed.then_some(mid),
        cut_at: plan
            .cut
            .then_some(if plan.malformed { mid + 1 } else { mid }),
        frames,
        halt,
    };
    let stream = futures::stream::unfold(feed, |mut feed| async move {
        let i = feed.next;
        if i >= feed.frames.len() {
            return None;
        }
        feed.next = feed.frames.len(); // after an error nothing more is sent
        let delay = if i == 0 {
            feed.first_delay_ms
        } else {
            feed.delay_ms
        };
        if !pause(&feed.halt, delay).await {
            return Some((Err(io::Error::other("mock upstream shutting down")), feed));
        }
        if feed.cut_at == Some(i) {
            // An error from the body makes hyper abort the connection: the client sees a
            // truncated chunked body, as when an upstream dies mid-stream.
            return Some((
                Err(io::Error::other("stream cut by the mock (cut_rate)")),
                feed,
            ));
        }
        feed.next = i + 1;
        let frame = if feed.malformed_at == Some(i) {
            Bytes::from_static(b"data: {not json\n\n")
        } else {
            feed.frames.frame(i)
        };
        Some((Ok(frame), feed))
    });
    let headers = [
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        ),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
    ];
    (headers, Body::from_stream(stream)).into_response()
}

async fn embed(State(state): State<MockState>, body: Bytes) -> Response {
    let shared = &state.inner;
    bump(&shared.requests);
    bump(&shared.embeddings);
    let cfg = state.config();
    let req: EmbeddingsRequest<'_> = match serde_json::from_slice(&body) {
        Ok(req) => req,
        Err(e) => return openai::invalid_request(None, &format!("Invalid request body: {e}")),
    };
    // Built before the faults so a bad request is refused at once, as chat's are.
    let list = match embeddings::list(&req) {
        Ok(bytes) => bytes,
        Err(Rejection::Invalid { param, message }) => {
            return openai::invalid_request(Some(param), &message);
        }
        Err(Rejection::Internal(e)) => return openai::internal(&e.to_string()),
    };
    let plan = cfg.roll(false);
    if plan.hang && !state.pause(cfg.hang_ms).await {
        return shutting_down();
    }
    if plan.fail {
        bump(&shared.faults);
        return openai::injected_failure(cfg.fail_status, cfg.retry_after_secs, req.model());
    }
    if !state.pause(cfg.latency_ms).await {
        return shutting_down();
    }
    openai::json(StatusCode::OK, list)
}

async fn models(State(state): State<MockState>) -> Response {
    bump(&state.inner.requests);
    openai::json(StatusCode::OK, openai::MODELS)
}

async fn config_get(State(state): State<MockState>) -> Response {
    match serde_json::to_vec(&*state.config()) {
        Ok(bytes) => openai::json(StatusCode::OK, bytes),
        Err(e) => openai::internal(&e.to_string()),
    }
}

async fn config_put(State(state): State<MockState>, body: Bytes) -> Response {
    let cfg: MockConfig = match serde_json::from_slice(&body) {
        Ok(cfg) => cfg,
        Err(e) => return openai::invalid_request(None, &format!("Invalid mock config: {e}")),
    };
    if let Err(problems) = cfg.validate() {
        return openai::invalid_request(None, &format!("Invalid mock config: {problems}"));
    }
    state.set_config(cfg);
    StatusCode::NO_CONTENT.into_response()
}

async fn stats(State(state): State<MockState>) -> Response {
    match serde_json::to_vec(&state.stats()) {
        Ok(bytes) => openai::json(StatusCode::OK, bytes),
        Err(e) => openai::internal(&e.to_string()),
    }
}

async fn stats_reset(State(state): State<MockState>) -> StatusCode {
    state.reset_stats();
    StatusCode::NO_CONTENT
}
