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

/// What `/readyz` answers, from the durability mode, the event log's state and whether every
/// secret's last fetch succeeded. With `async` durability the gateway serves without NATS (the
/// outbox keeps the events), so it says `degraded` with 200 rather than pulling every instance
/// out of a load balancer at once; with `ack` it cannot answer requests and says `unavailable`
/// with 503. A secret whose refresh fails is `degraded` with 200: the last good value is still
/// in use and may well work, and every instance of a fleet would fail alike. Once shutdown has
/// begun it says `draining` with 503 so a load balancer stops sending.
pub fn readiness(
    durability: Durability,
    event_log_ready: bool,
    secrets_fresh: bool,
    draining: bool,
) -> (StatusCode, &'static str) {
    if draining {
        (StatusCode::SERVICE_UNAVAILABLE, "draining")
    } else if event_log_ready && secrets_fresh {
        (StatusCode::OK, "ready")
    } else if !event_log_ready && durability == Durability::Ack {
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
    } else {
        (StatusCode::OK, "degraded")
    }
}

/// Readiness (see [`readiness`]), with the outbox, publishing and projection figures, and the
/// secret references whose last fetch failed (by config path, with the reason; never a value).
pub async fn readyz(State(st): State<Arc<EdgeState>>) -> Response {
    let s = st.sink.status();
    let connected = s.connected.load(Ordering::Relaxed);
    let stream_ready = s.stream_ready.load(Ordering::Relaxed);
    let outbox = s.outbox_len.load(Ordering::Relaxed);
    let stale: Vec<_> = st
        .credentials
        .iter()
        .map(crate::secrets::Credential::status)
        .filter(crate::secrets::Status::stale)
        .map(|c| {
            json!({
                "secret": c.name,
                "source": c.kind,
                "failures": c.failures,
                "error": c.error,
                "age_seconds": c.age.map(|a| a.as_secs()),
            })
        })
        .collect();
    let (code, status) = readiness(
        st.durability,
        connected && stream_ready,
        stale.is_empty(),
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
        "secrets": { "count": st.credentials.len(), "stale": stale },
    });
    (code, Json(body)).into_response()
}

pub async fn metrics(State(st): State<Arc<EdgeState>>) -> Response {
    let s = st.sink.status();
    metrics::gauge!("switchyard_outbox_pending").set(s.outbox_len.load(Ordering::Relaxed) as f64);
    metrics::gauge!("switchyard_nats_connected")
        .set(f64::from(u8::from(s.connected.load(Ordering::Relaxed))));
    crate::secrets::record_gauges(&st.credentials);
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
        assert_eq!(readiness(Async, true, true, false), (ok, "ready"));
        assert_eq!(readiness(Async, false, true, false), (ok, "degraded"));
        assert_eq!(readiness(Ack, true, true, false), (ok, "ready"));
        assert_eq!(readiness(Ack, false, true, false), (no, "unavailable"));
        assert_eq!(readiness(Async, true, true, true), (no, "draining"));
        assert_eq!(readiness(Ack, false, true, true), (no, "draining"));
        // A failing secret refresh keeps the last good value: degraded, still serving.
        assert_eq!(readiness(Async, true, false, false), (ok, "degraded"));
        assert_eq!(readiness(Ack, true, false, false), (ok, "degraded"));
        assert_eq!(readiness(Ack, false, false, false), (no, "unavailable"));
        assert_eq!(readiness(Async, true, false, true), (no, "draining"));
    }
}
