//! The accept loop in front of the routers: connection cap, header and idle timeouts, HTTP/1.1
//! and h2c on one port, graceful shutdown. It owns connections, not requests: the body read
//! timeout lives where bodies are read (`edge::read_body`), and it must not look inside requests.
//!
//! Why not `axum::serve`: it has no connection cap and no header or idle timeout, so idle or
//! slow clients could hold every file descriptor. hyper's own `header_read_timeout` also bounds
//! the wait for the next request on a kept-alive connection, which would make the idle timeout
//! no longer than the header timeout; so both are kept here, by a per-connection watchdog that
//! knows whether a request is in flight (a service wrapper) and whether a request head has
//! started to arrive (a reader wrapper).

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use bytes::Bytes;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use super::ApiError;
use crate::config::ServerConfig;

/// File descriptors kept back from client connections for NATS, the stores, logs and the
/// listener itself.
const FD_RESERVE: u64 = 256;
/// After a timeout asks a connection to close, how long it may take to do so politely (an h2
/// GOAWAY, a response being written) before it is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// How long a shed connection is kept to read what the client sent, so closing it does not
/// reset the connection before the client has read the 503.
const SHED_LINGER: Duration = Duration::from_millis(500);
/// Shed connections lingering at once; past this they are closed at once.
const SHED_MAX_LINGERING: usize = 256;
/// At most one log line per this interval about shed connections or accept errors.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// The connection limits in force.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
}

impl Limits {
    /// The configured limits, with the connection cap lowered to what the open-files limit
    /// allows. Raises the soft open-files limit to the hard one first, where allowed, and logs
    /// the limits in force.
    pub fn from_config(server: &ServerConfig) -> Self {
        let fd_limit = raise_fd_limit();
        let mut max_connections = server.max_connections;
        if let Some(fds) = fd_limit {
            // Each client connection may hold an upstream connection too.
            let fit = usize::try_from(fds.saturating_sub(FD_RESERVE) / 2)
                .unwrap_or(usize::MAX)
                .max(1);
            if fit < max_connections {
                // Worth a warning only when someone chose the cap; the default is a ceiling.
                if max_connections == ServerConfig::default().max_connections {
                    tracing::info!(
                        fd_limit = fds,
                        lowered_to = fit,
                        "default max_connections fitted to the open-files limit"
                    );
                } else {
                    tracing::warn!(
                        configured = max_connections,
                        fd_limit = fds,
                        lowered_to = fit,
                        "server.max_connections does not fit the open-files limit"
                    );
                }
                max_connections = fit;
            }
        }
        tracing::info!(
            fd_limit = ?fd_limit,
            max_connections,
            header_read_timeout = ?server.header_read_timeout,
            body_read_timeout = ?server.body_read_timeout,
            idle_timeout = ?server.idle_timeout,
            "connection limits"
        );
        Self {
            header_read_timeout: server.header_read_timeout,
            idle_timeout: server.idle_timeout,
            max_connections,
        }
    }
}

/// Raise the soft open-files limit to the hard limit and return the soft limit now in force.
fn raise_fd_limit() -> Option<u64> {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => Some(n),
        Err(e) => {
            tracing::warn!(error = %e, "cannot raise the open-files limit");
            rlimit::getrlimit(rlimit::Resource::NOFILE)
                .ok()
                .map(|(soft, _)| soft)
        }
    }
}

/// Connections the kernel queues for `accept`. tokio's default (1,024) overflows in a burst of
/// new connections, and Linux then silently drops the handshake's last ACK: the client believes
/// it is connected while we never see the connection. The kernel caps it at `somaxconn`.
const LISTEN_BACKLOG: u32 = 4096;

/// Bind the listening socket with [`LISTEN_BACKLOG`] (and `SO_REUSEADDR`, as `std` does).
pub fn bind(addr: std::net::SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Serve `app` on `listener` until `shutdown`; then stop accepting, let in-flight requests
/// finish and close every connection before returning.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let connections = TaskTracker::new();
    let open = Arc::new(AtomicUsize::new(0));
    let lingering = Arc::new(AtomicUsize::new(0));
    let mut shed_log = RateLimitedLog::default();
    // Built once: a flood of connections past the cap must not cost a JSON encoding each.
    let shed_answer = Bytes::from(shed_response());
    let mut accept_log = RateLimitedLog::default();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = listener.accept() => r,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of descriptors or a connection reset before we took it: the listener is
                // fine. Back off a little so a full descriptor table is not spun on.
                if let Some(n) = accept_log.tick() {
                    tracing::warn!(error = %e, errors = n, "accept failed");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if open.load(Ordering::Relaxed) >= limits.max_connections {
            metrics::counter!("switchyard_connections_rejected_total").increment(1);
            if let Some(n) = shed_log.tick() {
                tracing::warn!(
                    max_connections = limits.max_connections,
                    rejected = n,
                    "connection limit reached; new connections get 503"
                );
            }
            if lingering.load(Ordering::Relaxed) < SHED_MAX_LINGERING {
                let (guard, answer) = (Counted::new(Arc::clone(&lingering)), shed_answer.clone());
                connections.spawn(async move {
                    let _guard = guard;
                    shed(stream, &answer).await;
                });
            } else {
                let _ = stream.try_write(&shed_answer);
            }
            continue;
        }
        let guard = Counted::new(Arc::clone(&open));
        metrics::gauge!("switchyard_connections_open").increment(1.0);
        let (app, shutdown) = (app.clone(), shutdown.clone());
        connections.spawn(async move {
            serve_connection(stream, peer, app, limits, shutdown).await;
            metrics::gauge!("switchyard_connections_open").decrement(1.0);
            drop(guard);
        });
    }
    drop(listener);
    connections.close();
    connections.wait().await;
    Ok(())
}

/// Answer a connection beyond the cap with 503 and close it.
async fn shed(mut stream: TcpStream, answer: &[u8]) {
    let _ = tokio::time::timeout(SHED_LINGER, async {
        stream.write_all(answer).await?;
        stream.shutdown().await?;
        // Read until the client closes, so our close does not reset its connection before it
        // has read the answer.
        let mut sink = [0u8; 1024];
        while stream.read(&mut sink).await? > 0 {}
        Ok::<_, io::Error>(())
    })
    .await;
}

fn shed_response() -> Vec<u8> {
    let body = ApiError::unavailable(
        "too_many_connections",
        "The server has too many open connections. Retry shortly.",
    )
    .body_json();
    let mut out = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(&body);
    out
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    limits: Limits,
    shutdown: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Watched {
        inner: stream,
        activity: Arc::clone(&activity),
    });
    let service = {
        let activity = Arc::clone(&activity);
        hyper::service::service_fn(move |req: Request<Incoming>| {
            let (app, activity) = (app.clone(), Arc::clone(&activity));
            async move {
                let in_flight = InFlight::begin(activity);
                let mut req = req.map(Body::new);
                req.extensions_mut().insert(ConnectInfo(peer));
                let resp = match app.oneshot(req).await {
                    Ok(r) => r,
                    Err(never) => match never {},
                };
                // The request stays in flight until its body (a stream, perhaps) is sent.
                Ok::<_, Infallible>(resp.map(|body| {
                    Body::new(Tracked {
                        inner: body,
                        _in_flight: in_flight,
                    })
                }))
            }
        })
    };
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // Our watchdog keeps the header timeout (see the module docs); hyper's would also cut
    // kept-alive connections at the header timeout.
    builder.http1().header_read_timeout(None);
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    let expiry = activity.expired(limits);
    tokio::pin!(expiry);
    let mut asked_to_close = false;
    let mut drop_at: Option<Instant> = None;
    loop {
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            _ = shutdown.cancelled(), if !asked_to_close => {
                asked_to_close = true;
                conn.as_mut().graceful_shutdown();
            }
            reason = &mut expiry, if drop_at.is_none() => {
                metrics::counter!("switchyard_connections_timed_out_total", "reason" => reason)
                    .increment(1);
                tracing::debug!(reason, "closing connection");
                if reason == "header" {
                    // No request to finish, and a half-sent head would hold a graceful close
                    // open: close now.
                    return;
                }
                // Idle between requests: a polite close (an h2 GOAWAY), then drop.
                asked_to_close = true;
                conn.as_mut().graceful_shutdown();
                drop_at = Some(Instant::now() + CLOSE_GRACE);
            }
            _ = sleep_until_opt(drop_at) => return,
        }
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// What the watchdog knows about one connection. Times are milliseconds since it was accepted.
struct Activity {
    start: Instant,
    in_flight: AtomicUsize,
    /// When the last request finished (0: none yet).
    idle_since: AtomicU64,
    /// When the first byte arrived after the connection went idle (`NONE`: not yet).
    head_started: AtomicU64,
    /// At least one request was answered: the idle timeout, not the header timeout, applies
    /// while nothing arrives.
    kept_alive: AtomicBool,
    changed: Notify,
}

const NONE: u64 = u64::MAX;

impl Activity {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            in_flight: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
            head_started: AtomicU64::new(NONE),
            kept_alive: AtomicBool::new(false),
            changed: Notify::new(),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(NONE - 1)
    }

    fn on_read(&self) {
        if self.in_flight.load(Ordering::Acquire) == 0
            && self.head_started.load(Ordering::Relaxed) == NONE
            && self
                .head_started
                .compare_exchange(NONE, self.now(), Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            self.changed.notify_one();
        }
    }

    /// When the connection must close if nothing changes, and why; `None` while a request is in
    /// flight (its body and answer have their own deadlines).
    fn deadline(&self, limits: &Limits) -> Option<(Instant, &'static str)> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let head = self.head_started.load(Ordering::Acquire);
        let (since, limit, reason) = if !self.kept_alive.load(Ordering::Acquire) {
            (0, limits.header_read_timeout, "header")
        } else if head != NONE {
            (head, limits.header_read_timeout, "header")
        } else {
            (
                self.idle_since.load(Ordering::Acquire),
                limits.idle_timeout,
                "idle",
            )
        };
        Some((self.start + Duration::from_millis(since) + limit, reason))
    }

    /// Resolves with the reason once the connection has outstayed its header or idle timeout.
    async fn expired(&self, limits: Limits) -> &'static str {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            match self.deadline(&limits) {
                None => changed.await,
                Some((at, reason)) => {
                    if Instant::now() >= at {
                        return reason;
                    }
                    tokio::select! {
                        _ = changed => {}
                        _ = tokio::time::sleep_until(at) => {}
                    }
                }
            }
        }
    }
}

/// One request in flight on a connection, from its head to the end of its answer.
struct InFlight(Arc<Activity>);

impl InFlight {
    fn begin(activity: Arc<Activity>) -> Self {
        activity.in_flight.fetch_add(1, Ordering::AcqRel);
        activity.changed.notify_one();
        Self(activity)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let a = &self.0;
        if a.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            a.idle_since.store(a.now(), Ordering::Release);
            a.head_started.store(NONE, Ordering::Release);
            a.kept_alive.store(true, Ordering::Release);
            a.changed.notify_one();
        }
    }
}

/// A response body that ends the request's time in flight when it is dropped.
struct Tracked {
    inner: Body,
    _in_flight: InFlight,
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The client socket, noting when bytes arrive.
struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.on_read();
        }
        r
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A counter slot held for as long as the guard lives.
struct Counted(Arc<AtomicUsize>);

impl Counted {
    fn new(n: Arc<AtomicUsize>) -> Self {
        n.fetch_add(1, Ordering::Relaxed);
        Self(n)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Counts events and says when to log them: the first at once, then at most once per
/// [`LOG_EVERY`] with how many happened since the last line.
#[derive(Default)]
struct RateLimitedLog {
    last: Option<Instant>,
    since: u64,
}

impl RateLimitedLog {
    fn tick(&mut self) -> Option<u64> {
        self.since += 1;
        let now = Instant::now();
        if self.last.is_some_and(|t| now < t + LOG_EVERY) {
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.since))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_the_first_event_then_at_most_once_per_interval() {
        let mut log = RateLimitedLog::default();
        assert_eq!(log.tick(), Some(1));
        assert_eq!(log.tick(), None);
        assert_eq!(log.tick(), None);
        log.last = log.last.map(|t| t - LOG_EVERY);
        assert_eq!(log.tick(), Some(3));
    }

    #[test]
    fn shed_answer_is_a_complete_openai_shaped_503() {
        let raw = String::from_utf8(shed_response()).unwrap();
        let (head, body) = raw.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 503 "));
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let j: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(j["error"]["code"], "too_many_connections");
    }

    #[tokio::test(start_paused = true)]
    async fn deadlines_follow_the_connection_state() {
        let limits = Limits {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 1,
        };
        let a = Arc::new(Activity::new());
        // a new connection must send its head within the header timeout
        assert_eq!(
            a.deadline(&limits),
            Some((a.start + Duration::from_secs(10), "header"))
        );
        let req = InFlight::begin(Arc::clone(&a));
        assert_eq!(a.deadline(&limits), None, "no deadline while in flight");
        tokio::time::advance(Duration::from_secs(100)).await;
        drop(req);
        // kept alive: the idle timeout from the end of the answer
        assert_eq!(
            a.deadline(&limits),
            Some((a.start + Duration::from_secs(160), "idle"))
        );
        tokio::time::advance(Duration::from_secs(5)).await;
        a.on_read();
        // the next head started: the header timeout from its first byte
        assert_eq!(
            a.deadline(&limits),
            Some((a.start + Duration::from_secs(115), "header"))
        );
    }
}
