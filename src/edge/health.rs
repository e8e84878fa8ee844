//! Liveness, readiness and the Prometheus scrape endpoint.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::EdgeState;

pub async fn healthz() -> Response {
    Json(json!({"status": "ok"})).into_response()
}

/// Ready when NATS is connected and the stream is set up. The outbox is reported either way:
/// while it holds events the gateway still serves, but reports itself degraded.
pub async fn readyz(State(st): State<Arc<EdgeState>>) -> Response {
    let s = st.sink.status();
    let connected = s.connected.load(Ordering::Relaxed);
    let stream_ready = s.stream_ready.load(Ordering::Relaxed);
    let outbox = s.outbox_len.load(Ordering::Relaxed);
    let ready = connected && stream_ready;
    let status = if !ready {
        "degraded"
    } else if outbox > 0 {
        "draining"
    } else {
        "ready"
    };
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
        "projections": { "budgets": budgets },
    });
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
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
