//! The audit search API:
//! - `GET /admin/audit/search?q=&key=&user=&team=&project=&model=&provider=&outcome=&error=&surface=&action=&guardrail=&status=&from=&to=&sort=&limit=&cursor=`:
//!   newest first by default (`sort=oldest` for the other way), `limit` up to 1000 (default
//!   50), `cursor` from the previous page's `next_cursor`; the answer has the `count` of every
//!   match and facets by model, team and status over them.
//! - `GET /admin/audit/{request_id}`: one whole record, attempts included.
//! - `GET /admin/audit/verify?from=&to=`: recompute the chain from the stream (sequences `from`
//!   to `to`, default all) and compare it with the index and the anchors; the report lists every
//!   problem (see [`crate::projections::audit::verify`]).
//!
//! `from` and `to` take RFC 3339 times or milliseconds since the epoch (`to` is exclusive).

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use serde::Deserialize;
use serde_json::Value;
use std::sync::Arc;

use super::{AdminState, ApiError, check_admin};
use crate::edge::error::echo;
use crate::projections::audit::verify::Range;
use crate::projections::audit::{AuditService, IndexError, Search};

#[derive(Debug, Default, Deserialize)]
pub struct SearchQuery {
    q: Option<String>,
    key: Option<String>,
    user: Option<String>,
    team: Option<String>,
    project: Option<String>,
    model: Option<String>,
    provider: Option<String>,
    outcome: Option<String>,
    error: Option<String>,
    surface: Option<String>,
    action: Option<String>,
    guardrail: Option<String>,
    status: Option<u16>,
    from: Option<String>,
    to: Option<String>,
    sort: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

/// Results per page when `limit` is not given.
const DEFAULT_LIMIT: usize = 50;

fn audit(st: &AdminState) -> Result<&Arc<AuditService>, ApiError> {
    st.audit.as_ref().ok_or_else(|| {
        ApiError::unavailable(
            "audit_disabled",
            "This process does not run the audit projection (`projections.audit.enabled`).",
        )
    })
}

/// A time as RFC 3339 or milliseconds since the epoch.
fn time_ms(param: &'static str, v: &str) -> Result<u64, ApiError> {
    if let Ok(ms) = v.parse::<u64>() {
        return Ok(ms);
    }
    let t = time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339)
        .map_err(|_| {
            ApiError::bad_param(
                param,
                format!(
                    "`{param}` must be an RFC 3339 time or milliseconds since the epoch; got {:?}",
                    echo(v)
                ),
            )
        })?;
    u64::try_from(t.unix_timestamp_nanos() / 1_000_000)
        .map_err(|_| ApiError::bad_param(param, format!("`{param}` is before 1970")))
}

fn search_error(e: IndexError) -> ApiError {
    match e {
        IndexError::Query(e) => ApiError::bad_param("q", format!("The query does not parse: {e}")),
        IndexError::BadRequest(m) => ApiError::bad_param("q", m),
        other => {
            tracing::error!(error = %other, "audit search failed");
            ApiError::internal()
        }
    }
}

impl SearchQuery {
    fn into_search(self) -> Result<Search, ApiError> {
        let mut filters = Vec::new();
        for (name, value) in [
            ("key", self.key),
            ("user", self.user),
            ("team", self.team),
            ("project", self.project),
            ("model", self.model),
            ("provider", self.provider),
            ("outcome", self.outcome),
            ("error", self.error),
            ("surface", self.surface),
            ("action", self.action),
            ("guardrail", self.guardrail),
        ] {
            if let Some(v) = value {
                filters.push((name, v));
            }
        }
        let oldest_first = match self.sort.as_deref() {
            None | Some("newest") => false,
            Some("oldest") => true,
            Some(other) => {
                return Err(ApiError::bad_param(
                    "sort",
                    format!("`sort` is newest or oldest; got {:?}", echo(other)),
                ));
            }
        };
        let cursor = match self.cursor.as_deref() {
            None | Some("") => None,
            Some(c) => Some(c.parse::<u64>().map_err(|_| {
                ApiError::bad_param("cursor", "`cursor` is the `next_cursor` of a previous page")
            })?),
        };
        Ok(Search {
            q: self.q,
            filters,
            status: self.status,
            from_ms: self
                .from
                .as_deref()
                .map(|v| time_ms("from", v))
                .transpose()?,
            to_ms: self.to.as_deref().map(|v| time_ms("to", v)).transpose()?,
            oldest_first,
            limit: self.limit.unwrap_or(DEFAULT_LIMIT),
            cursor,
        })
    }
}

/// `GET /admin/audit/search`
pub async fn search(
    State(st): State<AdminState>,
    headers: HeaderMap,
    Query(q): Query<SearchQuery>,
) -> Result<Json<Value>, ApiError> {
    check_admin(&st, &headers)?;
    let audit = Arc::clone(audit(&st)?);
    let search = q.into_search()?;
    let page = tokio::task::spawn_blocking(move || audit.projection.index().search(&search))
        .await
        .map_err(|_| ApiError::internal())?
        .map_err(search_error)?;
    Ok(Json(
        serde_json::to_value(page).map_err(|_| ApiError::internal())?,
    ))
}

/// `GET /admin/audit/{request_id}`
pub async fn show(
    State(st): State<AdminState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    check_admin(&st, &headers)?;
    let audit = Arc::clone(audit(&st)?);
    let lookup = id.clone();
    let record = tokio::task::spawn_blocking(move || audit.projection.index().get(&lookup))
        .await
        .map_err(|_| ApiError::internal())?
        .map_err(search_error)?;
    match record {
        Some(r) => Ok(Json(
            serde_json::to_value(r).map_err(|_| ApiError::internal())?,
        )),
        None => Err(ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            "invalid_request_error",
            "request_not_found",
            format!("No audit record for request {:?}.", echo(&id)),
        )),
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct VerifyQuery {
    from: Option<u64>,
    to: Option<u64>,
}

/// `GET /admin/audit/verify`
pub async fn verify(
    State(st): State<AdminState>,
    headers: HeaderMap,
    Query(q): Query<VerifyQuery>,
) -> Result<Json<Value>, ApiError> {
    check_admin(&st, &headers)?;
    let audit = Arc::clone(audit(&st)?);
    let range = Range {
        from: q.from,
        to: q.to,
    };
    let report = crate::projections::audit::verify::verify(
        &audit.client,
        &audit.stream,
        Arc::clone(&audit.projection),
        range,
    )
    .await
    .map_err(|e| {
        tracing::warn!(error = %e, "audit verification failed");
        ApiError::unavailable(
            "verify_failed",
            format!("The audit chain could not be verified: {e}"),
        )
    })?;
    Ok(Json(
        serde_json::to_value(report).map_err(|_| ApiError::internal())?,
    ))
}
