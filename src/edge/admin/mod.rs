//! Admin API, protected by the admin token: spend reports from the budgets projection
//! ([`spend`]), the state of every budget ([`budgets`]), virtual keys ([`keys`]) and the limits
//! of users, teams, projects and models ([`limits`]). Key and limit changes are admin events: a
//! call publishes its event, waits for JetStream's acknowledgement and for this instance's
//! directory to apply it, then answers, so what it returns is already in force here and reaches
//! every other instance through the stream.

mod audit;
mod budgets;
mod cache;
mod keys;
mod limits;
pub mod money;
mod spend;

use axum::http::HeaderMap;
use axum::routing::{get, post, put};
use std::sync::Arc;
use std::time::Duration;

use super::{ApiError, bearer};
use crate::events::{Envelope, Event};
use crate::governance::{Directory, hash_key};
use crate::projections::ProjectionStatus;
use crate::projections::budgets::BudgetsStore;

/// What the admin API reads. Separate from the edge state so a standalone projection process
/// (`switchyard consume budgets --listen`) can serve it too.
#[derive(Clone)]
pub struct AdminState {
    pub admin_token_hash: Option<[u8; 32]>,
    pub currency: String,
    /// The budgets store when this process runs that projection.
    pub budgets: Option<Arc<BudgetsStore>>,
    pub budgets_status: Option<Arc<ProjectionStatus>>,
    /// The audit index when this process runs it.
    pub audit: Option<Arc<crate::projections::audit::AuditService>>,
    /// Keys and limits, in a gateway (not in a standalone projection process).
    pub governance: Option<Arc<AdminGovernance>>,
    /// This instance's answer cache, when a model has it on.
    pub cache: Option<Arc<crate::cache::Cache>>,
}

/// What the key and limit endpoints need.
pub struct AdminGovernance {
    pub directory: Arc<Directory>,
    pub client: async_nats::Client,
    /// Whether the stream is set up (at start the outbox task creates it).
    pub publish_status: Arc<crate::publish::PublishStatus>,
    /// Public model names, to check the models a key is allowed.
    pub models: Vec<String>,
    /// Default grace of a rotation.
    pub rotation_grace: Duration,
    /// This instance's budget accounts, and the stream their ledgers are in.
    pub budgets: Arc<crate::governance::budgets::Budgets>,
    pub stream: String,
}

pub fn router(state: AdminState) -> axum::Router {
    axum::Router::new()
        .route("/admin/spend", get(spend::spend))
        .route("/admin/budgets", get(budgets::list))
        .route("/admin/audit/search", get(audit::search))
        .route("/admin/audit/verify", get(audit::verify))
        .route("/admin/audit/{request_id}", get(audit::show))
        .route("/admin/keys", post(keys::create).get(keys::list))
        .route("/admin/keys/{id}", get(keys::show).delete(keys::revoke))
        .route("/admin/keys/{id}/rotate", post(keys::rotate))
        .route("/admin/limits", get(limits::list))
        .route("/admin/cache", get(cache::show))
        .route("/admin/cache/flush", post(cache::flush))
        .route(
            "/admin/limits/{kind}/{name}",
            put(limits::set).get(limits::show).delete(limits::clear),
        )
        .with_state(state)
}

fn check_admin(st: &AdminState, headers: &HeaderMap) -> Result<(), ApiError> {
    match (st.admin_token_hash, bearer(headers)) {
        (Some(want), Some(token)) if hash_key(token) == want => Ok(()),
        _ => Err(ApiError::admin_unauthorized()),
    }
}

/// The key and limit endpoints' state, or why this process has none.
fn governance(st: &AdminState) -> Result<&Arc<AdminGovernance>, ApiError> {
    st.governance.as_ref().ok_or_else(|| {
        ApiError::unavailable(
            "keys_elsewhere",
            "Keys and limits are managed by the gateway (`switchyard serve`), not by this process.",
        )
    })
}

/// How long an admin call waits for JetStream's acknowledgement, then for this instance's
/// directory to apply the event.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(5);
pub(super) const APPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// Publish an admin event and wait until this instance's directory has applied it.
async fn publish(gov: &AdminGovernance, event: Event) -> Result<(), ApiError> {
    let seq = publish_acked(gov, event).await?;
    if !gov.directory.wait_applied(seq, APPLY_TIMEOUT).await {
        return Err(ApiError::unavailable(
            "directory_lagging",
            "The change is in the event log but this instance has not applied it yet; it takes effect as soon as it does.",
        ));
    }
    Ok(())
}

/// Publish an admin event and wait for JetStream's acknowledgement: its stream sequence.
async fn publish_acked(gov: &AdminGovernance, event: Event) -> Result<u64, ApiError> {
    let env = Envelope::new(ulid::Ulid::generate(), event);
    let kind = env.event.kind();
    // Just after start the stream may not be set up yet: give the outbox task a moment.
    let deadline = tokio::time::Instant::now() + PUBLISH_TIMEOUT;
    while !gov.publish_status.ready() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seq = crate::publish::jetstream::publish_now(&gov.client, &env, PUBLISH_TIMEOUT)
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, event = kind, "admin event not published");
            ApiError::unavailable(
                "event_log_unavailable",
                format!("The change was not made: the event log did not confirm it ({e}). Nothing changed; retry when NATS is reachable."),
            )
        })?;
    tracing::info!(event = kind, seq, "admin event published");
    Ok(seq)
}

/// A duration in human form (`15m`, `1h 30m`) from a request field.
fn parse_duration(param: &'static str, s: &str) -> Result<Duration, ApiError> {
    humantime::parse_duration(s).map_err(|e| {
        ApiError::bad_param(
            param,
            format!(
                "`{param}` must be a duration such as \"15m\" or \"24h\", got {:?}: {e}",
                super::error::echo(s)
            ),
        )
    })
}

/// Milliseconds since the epoch as RFC 3339 (UTC).
fn rfc3339(ms: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}
