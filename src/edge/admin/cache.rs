//! The answer cache: `GET /admin/cache` (what this instance holds, with the digest that
//! `switchyard replay cache` prints for the same events) and `POST /admin/cache/flush` (an
//! admin event, `CacheFlushed`, that every instance's cache applies in stream order).

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

use super::{APPLY_TIMEOUT, AdminState, ApiError, check_admin, governance, publish_acked};
use crate::cache::Cache;
use crate::edge::validate::parse_error;
use crate::events::{CacheFlushed, Event};

fn cache(st: &AdminState) -> Result<&Arc<Cache>, ApiError> {
    st.cache.as_ref().ok_or_else(|| {
        ApiError::unavailable(
            "cache_off",
            "No model has the cache on in this gateway's config (`[cache] enabled`, or a model's `cache`).",
        )
    })
}

fn summary(cache: &Cache) -> Value {
    let mut v = serde_json::to_value(cache.summary()).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut v {
        m.insert("embedder".into(), json!(cache.embedder()));
    }
    v
}

pub async fn show(
    State(st): State<AdminState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    check_admin(&st, &headers)?;
    Ok(Json(summary(cache(&st)?)))
}

/// Whose answers to drop; both left out drops every answer.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FlushBody {
    /// A tenant as the cache names it: `team:<name>`, `project:<name>`, `user:<name>`,
    /// `key:<id>` or `global`.
    tenant: Option<String>,
    /// A public model name.
    model: Option<String>,
}

pub async fn flush(
    State(st): State<AdminState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    check_admin(&st, &headers)?;
    let cache = cache(&st)?;
    let gov = governance(&st)?;
    let body: FlushBody = if body.is_empty() {
        FlushBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| parse_error(&e, &body))?
    };
    let seq = publish_acked(
        gov,
        Event::CacheFlushed(CacheFlushed {
            tenant: body.tenant,
            model: body.model,
        }),
    )
    .await?;
    if !cache.wait_applied(seq, APPLY_TIMEOUT).await {
        return Err(ApiError::unavailable(
            "cache_lagging",
            "The flush is in the event log but this instance's cache has not applied it yet; it will as soon as it does.",
        ));
    }
    Ok(Json(summary(cache)))
}
