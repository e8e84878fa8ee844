//! `GET /admin/spend`: spend totals from the budgets projection.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use serde::Deserialize;
use serde_json::json;

use super::money::decimal;
use super::{AdminState, ApiError, check_admin};
use crate::projections::budgets::{Dimension, SpendRow};

#[derive(Debug, Deserialize)]
pub struct SpendQuery {
    group_by: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

/// Parse `YYYY-MM-DD` into yyyymmdd.
fn parse_day(param: &'static str, s: &str) -> Result<u32, ApiError> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let d = time::Date::parse(s, format).map_err(|_| {
        ApiError::bad_param(
            param,
            format!(
                "`{param}` must be a date as YYYY-MM-DD, got {:?}",
                super::super::error::echo(s)
            ),
        )
    })?;
    Ok(d.year() as u32 * 10_000 + u32::from(u8::from(d.month())) * 100 + u32::from(d.day()))
}

fn format_day(d: u32) -> String {
    format!("{:04}-{:02}-{:02}", d / 10_000, d / 100 % 100, d % 100)
}

/// `GET /admin/spend?group_by=key|user|team|project|model&from=YYYY-MM-DD&to=YYYY-MM-DD`
pub async fn spend(
    State(st): State<AdminState>,
    headers: HeaderMap,
    Query(q): Query<SpendQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    check_admin(&st, &headers)?;
    let by = match q.group_by.as_deref() {
        Some(s) => Dimension::ALL
            .into_iter()
            .find(|d| d.as_str() == s)
            .ok_or_else(|| {
                ApiError::bad_param(
                    "group_by",
                    format!(
                        "`group_by` must be one of key, user, team, project, model; got {:?}",
                        super::super::error::echo(s)
                    ),
                )
            })?,
        None => {
            return Err(ApiError::bad_param(
                "group_by",
                "`group_by` is required (key, user, team, project or model)",
            ));
        }
    };
    let today = crate::projections::budgets::day_today();
    let from = q
        .from
        .as_deref()
        .map(|s| parse_day("from", s))
        .transpose()?
        .unwrap_or(today);
    let to =
        q.to.as_deref()
            .map(|s| parse_day("to", s))
            .transpose()?
            .unwrap_or(today);
    if from > to {
        return Err(ApiError::bad_param("from", "`from` is after `to`"));
    }
    let store = st
        .budgets
        .clone()
        .ok_or_else(|| ApiError::unavailable("projection_elsewhere", "The budgets projection does not run in this process; ask the process that runs `switchyard consume budgets`."))?;
    let rows: Vec<SpendRow> = tokio::task::spawn_blocking(move || store.spend(by, from, to))
        .await
        .map_err(|_| ApiError::internal())?
        .map_err(|e| {
            tracing::error!(error = %e, "spend query failed");
            ApiError::internal()
        })?;
    let currency = st.currency.clone();
    let data: Vec<_> = rows
        .iter()
        .map(|r| {
            json!({
                by.as_str(): r.name,
                "requests": r.totals.requests,
                "input_tokens": r.totals.input_tokens,
                "output_tokens": r.totals.output_tokens,
                "cached_input_tokens": r.totals.cached_input_tokens,
                "cost_nanos": r.totals.cost_nanos,
                "cost": decimal(r.totals.cost_nanos),
            })
        })
        .collect();
    Ok(Json(json!({
        "object": "spend_report",
        "group_by": by.as_str(),
        "from": format_day(from),
        "to": format_day(to),
        "currency": currency,
        "checkpoint": st.budgets_status.as_ref().map(|s| s.checkpoint.load(std::sync::atomic::Ordering::Relaxed)),
        "data": data,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days() {
        assert_eq!(parse_day("from", "2026-11-25").unwrap(), 20_261_125);
        assert!(parse_day("from", "2026-13-01").is_err());
        assert_eq!(format_day(20_261_125), "2026-11-25");
    }
}
