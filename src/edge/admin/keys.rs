//! Virtual keys: `POST /admin/keys` (the key is in the answer, once), `GET /admin/keys`,
//! `GET /admin/keys/{id}`, `POST /admin/keys/{id}/rotate`, `DELETE /admin/keys/{id}`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;

use super::limits::{LimitsBody, limits_json};
use super::{
    AdminGovernance, AdminState, ApiError, check_admin, governance, parse_duration, publish,
    rfc3339,
};
use crate::edge::error::echo;
use crate::edge::validate::parse_error;
use crate::events::{Event, KeyIssued, KeyRevoked, KeyRotated, Limits, Scope, ScopeKind};
use crate::governance::{KeyEntry, NewKey, now_ms};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    name: String,
    user: Option<String>,
    team: Option<String>,
    project: Option<String>,
    #[serde(default)]
    models: Vec<String>,
    /// Lifetime from now, e.g. `15m`.
    ttl: Option<String>,
    /// Or an absolute expiry, RFC 3339.
    expires_at: Option<String>,
    #[serde(default)]
    budgets: Vec<super::limits::BudgetBody>,
    rate_limit: Option<super::limits::RateBody>,
    #[serde(default)]
    metadata: BTreeMap<String, String>,
}

const MAX_LABEL: usize = 256;

fn label(param: &'static str, v: &Option<String>) -> Result<Option<String>, ApiError> {
    match v {
        Some(s) if s.is_empty() || s.len() > MAX_LABEL => Err(ApiError::bad_param(
            param,
            format!("`{param}` must be 1 to {MAX_LABEL} bytes"),
        )),
        other => Ok(other.clone()),
    }
}

fn expiry(req: &CreateKey, now: u64) -> Result<Option<u64>, ApiError> {
    match (&req.ttl, &req.expires_at) {
        (Some(_), Some(_)) => Err(ApiError::bad_param(
            "ttl",
            "give `ttl` or `expires_at`, not both",
        )),
        (Some(ttl), None) => {
            let d = parse_duration("ttl", ttl)?;
            if d.as_secs() < 1 {
                return Err(ApiError::bad_param("ttl", "`ttl` must be at least 1s"));
            }
            Ok(Some(now.saturating_add(d.as_millis() as u64)))
        }
        (None, Some(at)) => {
            let t = time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339)
                .map_err(|_| {
                    ApiError::bad_param(
                        "expires_at",
                        format!(
                            "`expires_at` must be an RFC 3339 time such as \"2026-12-01T00:00:00Z\"; got {:?}",
                            echo(at)
                        ),
                    )
                })?;
            let ms = u64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
            if ms <= now {
                return Err(ApiError::bad_param(
                    "expires_at",
                    "`expires_at` is in the past",
                ));
            }
            Ok(Some(ms))
        }
        (None, None) => Ok(None),
    }
}

/// A key as the admin API shows it: never its secret or hash.
fn key_json(k: &KeyEntry, limits: Option<&Limits>, now: u64) -> Value {
    let p = k.principal();
    let mut v = limits_json(limits.unwrap_or(&Limits::default()));
    let extra = json!({
        "object": "key",
        "id": k.id,
        "name": k.name,
        "status": k.status(now),
        "user": p.user,
        "team": p.team,
        "project": p.project,
        "models": k.caller.models.as_deref().unwrap_or(&[]),
        "created_at": rfc3339(k.created_at_ms),
        "expires_at": k.expires_at_ms.map(rfc3339),
        "rotated_at": k.rotated_at_ms.map(rfc3339),
        "previous_secret_valid_until": k.previous_valid_until(now).map(rfc3339),
        "revoked_at": k.revoked_at_ms.map(rfc3339),
        "revoke_reason": k.revoke_reason,
        "metadata": k.metadata,
    });
    if let (Value::Object(v), Value::Object(extra)) = (&mut v, extra) {
        v.extend(extra);
    }
    v
}

fn shown(gov: &AdminGovernance, id: &str) -> Result<Value, ApiError> {
    let k = find(gov, id)?;
    let limits = gov.directory.limits(&Scope::new(ScopeKind::Key, id));
    Ok(key_json(&k, limits.as_deref(), now_ms()))
}

fn find(gov: &AdminGovernance, id: &str) -> Result<std::sync::Arc<KeyEntry>, ApiError> {
    gov.directory.key(id).ok_or_else(|| {
        ApiError::no_such("key_not_found", format!("No key with id {:?}.", echo(id)))
    })
}

/// `POST /admin/keys`: issue a key. The answer holds the key itself; it is never shown again.
pub async fn create(
    State(st): State<AdminState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    check_admin(&st, &headers)?;
    let gov = governance(&st)?;
    let req: CreateKey = serde_json::from_slice(&body).map_err(|e| parse_error(&e, &body))?;
    if req.name.trim().is_empty() || req.name.len() > MAX_LABEL {
        return Err(ApiError::bad_param(
            "name",
            format!("`name` must be 1 to {MAX_LABEL} bytes"),
        ));
    }
    for (i, m) in req.models.iter().enumerate() {
        if !gov.models.iter().any(|x| x == m) {
            return Err(ApiError::bad_param(
                format!("models[{i}]"),
                format!("no model named {:?} is configured", echo(m)),
            ));
        }
    }
    let limits = LimitsBody {
        budgets: req.budgets.clone(),
        rate_limit: req.rate_limit.clone(),
    }
    .limits()?;
    let now = now_ms();
    let new = NewKey::generate();
    let issued = KeyIssued {
        key_id: new.id.clone(),
        name: req.name.clone(),
        secret_sha256: new.secret_sha256(),
        user: label("user", &req.user)?,
        team: label("team", &req.team)?,
        project: label("project", &req.project)?,
        models: req.models.clone(),
        expires_at_ms: expiry(&req, now)?,
        limits,
        metadata: req.metadata.clone(),
    };
    publish(gov, Event::KeyIssued(issued)).await?;
    let mut v = shown(gov, &new.id)?;
    v["key"] = json!(new.full());
    Ok((StatusCode::CREATED, Json(v)))
}

/// `GET /admin/keys`: every issued key, oldest first (`?status=active` for the usable ones).
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    status: Option<String>,
}

pub async fn list(
    State(st): State<AdminState>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    check_admin(&st, &headers)?;
    let gov = governance(&st)?;
    if let Some(s) = q.status.as_deref()
        && !["active", "expired", "revoked"].contains(&s)
    {
        return Err(ApiError::bad_param(
            "status",
            format!(
                "`status` must be active, expired or revoked; got {:?}",
                echo(s)
            ),
        ));
    }
    let now = now_ms();
    let data: Vec<_> = gov
        .directory
        .keys()
        .iter()
        .filter(|k| q.status.as_deref().is_none_or(|s| k.status(now) == s))
        .map(|k| {
            let limits = gov.directory.limits(&Scope::new(ScopeKind::Key, &k.id));
            key_json(k, limits.as_deref(), now)
        })
        .collect();
    Ok(Json(json!({"object": "list", "data": data})))
}

/// `GET /admin/keys/{id}`.
pub async fn show(
    State(st): State<AdminState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    check_admin(&st, &headers)?;
    Ok(Json(shown(governance(&st)?, &id)?))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotateKey {
    /// How long the previous secret keeps working, e.g. `1h`; `0s` ends it at once.
    grace: Option<String>,
}

/// `POST /admin/keys/{id}/rotate`: a new secret; the previous one works for the grace period.
pub async fn rotate(
    State(st): State<AdminState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    check_admin(&st, &headers)?;
    let gov = governance(&st)?;
    let req: RotateKey = if body.iter().all(u8::is_ascii_whitespace) {
        RotateKey::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| parse_error(&e, &body))?
    };
    let grace = match req.grace.as_deref() {
        Some(g) => parse_duration("grace", g)?,
        None => gov.rotation_grace,
    };
    let k = find(gov, &id)?;
    let now = now_ms();
    if k.status(now) != "active" {
        return Err(ApiError::bad_param(
            "id",
            format!("the key is {} and cannot be rotated", k.status(now)),
        ));
    }
    let new = NewKey::with_id(id.clone());
    publish(
        gov,
        Event::KeyRotated(KeyRotated {
            key_id: id.clone(),
            secret_sha256: new.secret_sha256(),
            previous_valid_until_ms: now.saturating_add(grace.as_millis() as u64),
        }),
    )
    .await?;
    let mut v = shown(gov, &id)?;
    v["key"] = json!(new.full());
    Ok(Json(v))
}

#[derive(Debug, Deserialize)]
pub struct RevokeQuery {
    reason: Option<String>,
}

/// `DELETE /admin/keys/{id}`: revoke, everywhere, for good. Revoking a revoked key is a no-op.
pub async fn revoke(
    State(st): State<AdminState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<RevokeQuery>,
) -> Result<Json<Value>, ApiError> {
    check_admin(&st, &headers)?;
    let gov = governance(&st)?;
    let k = find(gov, &id)?;
    if k.revoked_at_ms.is_none() {
        publish(
            gov,
            Event::KeyRevoked(KeyRevoked {
                key_id: id.clone(),
                reason: label("reason", &q.reason)?,
            }),
        )
        .await?;
    }
    Ok(Json(shown(gov, &id)?))
}
