//! `GET /admin/budgets`: every budget in its current window — its limit, the spend recorded by
//! every instance (the budgets projection), what this instance has reserved for requests in
//! flight and holds unspent, what all instances have leased (the window's ledger) and what
//! remains. Optional filters: `?scope=team&name=search`.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashMap;

use super::money::decimal;
use super::{AdminState, ApiError, check_admin, governance};
use crate::edge::error::echo;
use crate::events::{Period, Scope, ScopeKind};
use crate::governance::budgets::Window;
use crate::governance::{instance_id, now_ms};
use crate::ledger::Ledger;

#[derive(Debug, Deserialize)]
pub struct BudgetsQuery {
    scope: Option<String>,
    name: Option<String>,
}

/// An amount as both a decimal and nano-units.
fn money(v: &mut Value, field: &str, nanos: Option<u64>) {
    v[field] = json!(nanos.map(decimal));
    v[format!("{field}_nanos")] = json!(nanos);
}

/// `GET /admin/budgets[?scope=KIND[&name=NAME]]`
pub async fn list(
    State(st): State<AdminState>,
    headers: HeaderMap,
    Query(q): Query<BudgetsQuery>,
) -> Result<Json<Value>, ApiError> {
    check_admin(&st, &headers)?;
    let gov = governance(&st)?;
    let kind = match q.scope.as_deref() {
        None => None,
        Some(k) => Some(ScopeKind::parse(k).ok_or_else(|| {
            ApiError::bad_param(
                "scope",
                format!(
                    "`scope` must be key, user, team or project; got {:?}",
                    echo(k)
                ),
            )
        })?),
    };
    let now = now_ms();
    let mut rows: Vec<(Scope, Window, u64, Vec<u8>)> = Vec::new();
    for (scope, limits) in gov.directory.all_limits() {
        if scope.kind == ScopeKind::Model
            || kind.is_some_and(|k| k != scope.kind)
            || q.name.as_ref().is_some_and(|n| *n != scope.name)
        {
            continue;
        }
        for b in &limits.budgets {
            rows.push((
                scope.clone(),
                Window::at(b.period, now),
                b.limit_nanos,
                b.alert_at_percent.clone(),
            ));
        }
    }
    // Spend of every instance, from the projection (when it runs in this process).
    let spent: Option<Vec<u64>> = match &st.budgets {
        Some(store) => {
            let store = std::sync::Arc::clone(store);
            let items: Vec<_> = rows.iter().map(|(s, w, _, _)| (s.clone(), *w)).collect();
            let v = tokio::task::spawn_blocking(move || store.window_spend(&items))
                .await
                .map_err(|_| ApiError::internal())?
                .map_err(|e| {
                    tracing::error!(error = %e, "budget spend query failed");
                    ApiError::internal()
                })?;
            Some(v)
        }
        None => None,
    };
    // What every instance leased, from each window's ledger.
    let ledger = Ledger::new(gov.client.clone(), gov.stream.clone());
    let leased = futures::future::join_all(rows.iter().map(|(scope, w, _, _)| {
        let ledger = ledger.clone();
        let bw = crate::events::BudgetWindow {
            scope: scope.clone(),
            period: w.period,
            window: w.label(),
        };
        async move {
            match ledger.last(&bw).await {
                Ok((_, last)) => Some(last.map_or(0, |l| l.total_nanos)),
                Err(e) => {
                    tracing::warn!(error = %e, "budget ledger not readable");
                    None
                }
            }
        }
    }))
    .await;
    // This instance's part.
    let local: HashMap<(Scope, Period), _> = gov
        .budgets
        .local_views()
        .into_iter()
        .map(|v| ((v.scope.clone(), v.period), v))
        .collect();
    let data: Vec<Value> = rows
        .iter()
        .enumerate()
        .map(|(i, (scope, window, limit, alerts))| {
            let mine = local
                .get(&(scope.clone(), window.period))
                .filter(|v| v.window == *window);
            let reserved = mine.map_or(0, |v| v.reserved);
            let held = mine.map_or(0, |v| {
                u64::try_from(v.held as i128 - v.spent as i128 - v.reserved as i128).unwrap_or(0)
            });
            let spent = spent.as_ref().map(|s| s[i]);
            let remaining = spent.map(|s| limit.saturating_sub(s).saturating_sub(reserved));
            let mut v = json!({
                "object": "budget",
                "scope": scope.kind.as_str(),
                "name": scope.name,
                "period": window.period.as_str(),
                "window": window.label(),
                "resets_at": window.resets_at(),
                "alert_at_percent": alerts,
            });
            money(&mut v, "limit", Some(*limit));
            money(&mut v, "spent", spent);
            money(&mut v, "reserved", Some(reserved));
            money(&mut v, "held", Some(held));
            money(&mut v, "leased", leased[i]);
            money(&mut v, "remaining", remaining);
            v
        })
        .collect();
    Ok(Json(json!({
        "object": "list",
        "currency": st.currency,
        "instance": instance_id(),
        "checkpoint": st.budgets_status.as_ref().map(|s| s.checkpoint.load(std::sync::atomic::Ordering::Relaxed)),
        "data": data,
    })))
}
