//! Budgets and rate limits of a scope: `PUT/GET/DELETE /admin/limits/{kind}/{name}` and
//! `GET /admin/limits`. A key's own limits are set when it is issued and can be replaced here
//! (kind `key`, name its id).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use serde::Deserialize;
use serde_json::{Value, json};

use super::money::{Amount, decimal};
use super::{AdminState, ApiError, check_admin, governance, publish};
use crate::edge::error::echo;
use crate::edge::validate::parse_error;
use crate::events::{Budget, Event, Limits, LimitsSet, Period, RateLimit, Scope, ScopeKind};

/// Budgets and rate limits as an admin request writes them.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsBody {
    #[serde(default)]
    pub budgets: Vec<BudgetBody>,
    #[serde(default)]
    pub rate_limit: Option<RateBody>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetBody {
    pub period: String,
    pub limit: Amount,
    #[serde(default)]
    pub alert_at_percent: Vec<u8>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateBody {
    pub requests_per_minute: Option<u64>,
    pub tokens_per_minute: Option<u64>,
}

impl LimitsBody {
    /// The limits, or the first problem with a field named as the client wrote it.
    pub fn limits(&self) -> Result<Limits, ApiError> {
        let mut budgets: Vec<Budget> = Vec::new();
        for (i, b) in self.budgets.iter().enumerate() {
            let at = |field: &str| format!("budgets[{i}].{field}");
            let period = Period::parse(&b.period).ok_or_else(|| {
                ApiError::bad_param(
                    at("period"),
                    format!(
                        "`period` must be daily, weekly, monthly or lifetime; got {:?}",
                        echo(&b.period)
                    ),
                )
            })?;
            if budgets.iter().any(|x| x.period == period) {
                return Err(ApiError::bad_param(
                    at("period"),
                    format!("two budgets for the {} period", period.as_str()),
                ));
            }
            let limit_nanos = b
                .limit
                .nanos()
                .map_err(|m| ApiError::bad_param(at("limit"), format!("`limit` {m}")))?;
            let mut alerts = b.alert_at_percent.clone();
            if alerts.iter().any(|p| !(1..=100).contains(p)) {
                return Err(ApiError::bad_param(
                    at("alert_at_percent"),
                    "alert thresholds are percentages from 1 to 100",
                ));
            }
            alerts.sort_unstable();
            alerts.dedup();
            budgets.push(Budget {
                period,
                limit_nanos,
                alert_at_percent: alerts,
            });
        }
        budgets.sort_by_key(|b| b.period);
        let rate = match &self.rate_limit {
            None => RateLimit::default(),
            Some(r) => {
                for (name, v) in [
                    ("requests_per_minute", r.requests_per_minute),
                    ("tokens_per_minute", r.tokens_per_minute),
                ] {
                    if v == Some(0) {
                        return Err(ApiError::bad_param(
                            format!("rate_limit.{name}"),
                            format!("`{name}` must be at least 1 (omit it for no limit)"),
                        ));
                    }
                }
                RateLimit {
                    requests_per_minute: r.requests_per_minute,
                    tokens_per_minute: r.tokens_per_minute,
                }
            }
        };
        Ok(Limits { budgets, rate })
    }
}

/// Limits as the admin API shows them.
pub fn limits_json(l: &Limits) -> Value {
    json!({
        "budgets": l.budgets.iter().map(|b| json!({
            "period": b.period.as_str(),
            "limit": decimal(b.limit_nanos),
            "limit_nanos": b.limit_nanos,
            "alert_at_percent": b.alert_at_percent,
        })).collect::<Vec<_>>(),
        "rate_limit": {
            "requests_per_minute": l.rate.requests_per_minute,
            "tokens_per_minute": l.rate.tokens_per_minute,
        },
    })
}

fn scope_of(kind: &str, name: &str) -> Result<Scope, ApiError> {
    let kind = ScopeKind::parse(kind).ok_or_else(|| {
        ApiError::bad_param(
            "kind",
            format!(
                "the scope must be key, user, team, project or model; got {:?}",
                echo(kind)
            ),
        )
    })?;
    if name.is_empty() || name.len() > 256 {
        return Err(ApiError::bad_param(
            "name",
            "the scope's name must be 1 to 256 bytes",
        ));
    }
    Ok(Scope::new(kind, name))
}

fn scope_json(scope: &Scope, limits: &Limits) -> Value {
    let mut v = limits_json(limits);
    v["object"] = json!("limits");
    v["scope"] = json!(scope.kind.as_str());
    v["name"] = json!(scope.name);
    v
}

/// `PUT /admin/limits/{kind}/{name}`: replace the scope's budgets and rate limits.
pub async fn set(
    State(st): State<AdminState>,
    headers: HeaderMap,
    Path((kind, name)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    check_admin(&st, &headers)?;
    let req: LimitsBody = serde_json::from_slice(&body).map_err(|e| parse_error(&e, &body))?;
    replace(&st, &kind, &name, req.limits()?).await
}

/// Publish the scope's new limits (empty: none) and show them.
async fn replace(
    st: &AdminState,
    kind: &str,
    name: &str,
    limits: Limits,
) -> Result<Json<Value>, ApiError> {
    let gov = governance(st)?;
    let scope = scope_of(kind, name)?;
    if scope.kind == ScopeKind::Model && !limits.budgets.is_empty() {
        return Err(ApiError::bad_param(
            "budgets",
            "budgets apply to keys, users, teams and projects; a model takes rate limits only",
        ));
    }
    if scope.kind == ScopeKind::Key && gov.directory.key(&scope.name).is_none() {
        return Err(ApiError::no_such(
            "key_not_found",
            format!("No key with id {:?}.", echo(&scope.name)),
        ));
    }
    publish(
        gov,
        Event::LimitsSet(LimitsSet {
            scope: scope.clone(),
            limits: limits.clone(),
        }),
    )
    .await?;
    Ok(Json(scope_json(&scope, &limits)))
}

/// `GET /admin/limits/{kind}/{name}`.
pub async fn show(
    State(st): State<AdminState>,
    headers: HeaderMap,
    Path((kind, name)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    check_admin(&st, &headers)?;
    let gov = governance(&st)?;
    let scope = scope_of(&kind, &name)?;
    let limits = gov.directory.limits(&scope).ok_or_else(|| {
        ApiError::no_such(
            "limits_not_found",
            format!("No limits are set for {scope}."),
        )
    })?;
    Ok(Json(scope_json(&scope, &limits)))
}

/// `DELETE /admin/limits/{kind}/{name}`: remove the scope's budgets and rate limits.
pub async fn clear(
    State(st): State<AdminState>,
    headers: HeaderMap,
    Path((kind, name)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    check_admin(&st, &headers)?;
    replace(&st, &kind, &name, Limits::default()).await
}

/// `GET /admin/limits`: every scope with limits.
pub async fn list(
    State(st): State<AdminState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    check_admin(&st, &headers)?;
    let gov = governance(&st)?;
    let data: Vec<_> = gov
        .directory
        .all_limits()
        .iter()
        .map(|(s, l)| scope_json(s, l))
        .collect();
    Ok(Json(json!({"object": "list", "data": data})))
}
