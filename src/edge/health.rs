//! Liveness, readiness and the Prometheus scrape endpoint.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::EdgeState;
use crate::config::Durability;

pub async fn healthz() -> Response {
    Json(json!({"status": "ok"})).into_response()
}

/// What `/readyz` answers, from the durability mode and the event log's state. With `async`
/// durability the gateway serves without NATS (the outbox keeps the events), so it says
/// `degraded` with 200 rather than pulling every instance out of a load balancer at once; with
/// `ack` it cannot answer requests and says `unavailable` with 503. Once shutdown has begun it
/// says `draining` with 503 so a load balancer stops sending.
pub fn readiness(
    durability: Durability,
    event_log_ready: bool,
    draining: bool,
) -> (StatusCode, &'static str) {
    if draining {
        (StatusCode::SERVICE_UNAVAILABLE, "draining")
    } else if event_log_ready {
        (StatusCode::OK, "ready")
    } else if durability == Durability::Ack {
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
    } else {
        (StatusCode::OK, "degraded")
    }
}

/// Readiness (see [`readiness`]), with the outbox, publishing and projection figures.
pub async fn readyz(State(st): State<Arc<EdgeState>>) -> Response {
    let s = st.sink.status();
    let connected = s.connected.load(Ordering::Relaxed);
    let stream_ready = s.stream_ready.load(Ordering::Relaxed);
    let outbox = s.outbox_len.load(Ordering::Relaxed);
    let (code, status) = readiness(
        st.durability,
        connected && stream_ready,
        st.shutdown.is_cancelled(),
    );
    let budgets = st.budgets_status.as_ref().map(|b| {
        json!({
            "checkpoint": b.checkpoint.load(Ordering::Relaxed),
            "lag": b.lag.load(Ordering::Relaxed),
        })
    });
    let body = json!({
        "status": status,
        "nats_connected": connected,
        "stream_ready": stream_ready,
        "outbox_pending": outbox,
        "events_published": s.published.load(Ordering::Relaxed),
        "events_spilled": s.spilled.load(Ordering::Relaxed),
        "setup_error": s.setup_error(),
        "projections": {
            "budgets": budgets,
            "keys": {
                "ready": st.keys.directory.is_ready(),
                "checkpoint": st.keys.directory.applied(),
            },
        },
    });
    (code, Json(body)).into_response()
}

pub async fn metrics(State(st): State<Arc<EdgeState>>) -> Response {
    let s = st.sink.status();
    metrics::gauge!("switchyard_outbox_pending").set(s.outbox_len.load(Ordering::Relaxed) as f64);
    metrics::gauge!("switchyard_nats_connected")
        .set(f64::from(u8::from(s.connected.load(Ordering::Relaxed))));
    match &st.metrics {
        Some(h) => (
            [(
                axum::http::header::CONTENT_TYPE,
                "text/plain; version=0.0.4",
            )],
            h.render(),
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_per_durability_mode() {
        use Durability::{Ack, Async};
        let ok = StatusCode::OK;
        let no = StatusCode::SERVICE_UNAVAILABLE;
        assert_eq!(readiness(Async, true, false), (ok, "ready"));
        assert_eq!(readiness(Async, false, false), (ok, "degraded"));
        assert_eq!(readiness(Ack, true, false), (ok, "ready"));
        assert_eq!(readiness(Ack, false, false), (no, "unavailable"));
        assert_eq!(readiness(Async, true, true), (no, "draining"));
        assert_eq!(readiness(Ack, false, true), (no, "draining"));
    }
}
