//! Soft thresholds: when a budget window's recorded spend (the budgets projection, all
//! instances) reaches one of its `alert_at_percent`, a `BudgetThresholdCrossed` event is
//! published — once per window and threshold: its subject may hold one event
//! (`Nats-Expected-Last-Subject-Sequence: 0`) and its id is derived from the window and the
//! threshold, so however many instances notice, one write lands. The instance whose write
//! landed POSTs it to `budgets.webhook_url`, retrying with doubling backoff.
//!
//! Watching runs where the budgets projection runs (in `serve` by default). An instance that
//! loses its NATS connection between its write and the acknowledgement does not call the
//! webhook (the event is in the stream; the call is not made twice).

use async_nats::jetstream::{self, context::PublishErrorKind, message::PublishMessage};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use ulid::Ulid;

use crate::config::BudgetsConfig;
use crate::events::{
    BudgetThresholdCrossed, BudgetWindow, Envelope, Event, Period, Scope, ScopeKind, encode,
};
use crate::governance::budgets::Window;
use crate::governance::{Directory, now_ms};
use crate::projections::ProjectionStatus;
use crate::projections::budgets::BudgetsStore;
use crate::publish::jetstream::is_connected;

/// How often spend is compared with the thresholds (when it changed).
const TICK: Duration = Duration::from_secs(1);
/// Crossings queued for the webhook; past this they are logged and dropped.
pub const WEBHOOK_QUEUE: usize = 1024;

/// A crossing to POST, with what the body needs.
pub struct Crossing {
    pub id: Ulid,
    pub at_ms: u64,
    pub event: BudgetThresholdCrossed,
    pub resets_at: Option<String>,
}

/// The event recording that `percent` of window `w` was crossed, with an id every instance
/// derives alike (time part: the window's start; random part: from the window and threshold).
fn crossing_event(
    w: &BudgetWindow,
    starts_ms: u64,
    percent: u8,
    spent: u64,
    limit: u64,
) -> Envelope {
    let mut h = Sha256::new();
    for part in [
        w.scope.kind.as_str(),
        &w.scope.name,
        w.period.as_str(),
        &w.window,
    ] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    h.update([percent]);
    let digest = h.finalize();
    let mut rand = [0u8; 16];
    rand.copy_from_slice(&digest[..16]);
    let id = Ulid::from_parts(starts_ms, u128::from_be_bytes(rand));
    Envelope {
        id,
        at_ms: now_ms(),
        request_id: id,
        event: Event::BudgetThresholdCrossed(BudgetThresholdCrossed {
            window: w.clone(),
            percent,
            spent_nanos: spent,
            limit_nanos: limit,
        }),
    }
}

/// Whether `spent` has reached `percent` of `limit`.
fn crossed(spent: u64, limit: u64, percent: u8) -> bool {
    limit > 0 && u128::from(spent) * 100 >= u128::from(limit) * u128::from(percent)
}

/// Publish a crossing unless its subject already holds one. `Ok(true)`: this write landed.
async fn record(js: &jetstream::Context, env: &Envelope) -> Result<bool, String> {
    let msg = PublishMessage::build()
        .message_id(env.id.to_string())
        .expected_last_subject_sequence(0)
        .payload(encode(env).into());
    let subject = crate::events::subject(&env.event).into_owned();
    let write = async { js.send_publish(subject, msg).await?.await };
    match tokio::time::timeout(Duration::from_secs(5), write).await {
        Ok(Ok(ack)) => Ok(!ack.duplicate),
        Ok(Err(e)) if e.kind() == PublishErrorKind::WrongLastSequence => Ok(false),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("no acknowledgement in time".into()),
    }
}

/// Compare every budget's spend with its thresholds once a second (when the projection or the
/// limits moved), until `stop`.
pub async fn watch(
    client: async_nats::Client,
    directory: Arc<Directory>,
    store: Arc<BudgetsStore>,
    status: Arc<ProjectionStatus>,
    webhook: Option<mpsc::Sender<Crossing>>,
    stop: CancellationToken,
) {
    let js = jetstream::new(client.clone());
    // (scope, period, window code, percent) already recorded (by anyone).
    let mut recorded: HashSet<(Scope, Period, u32, u8)> = HashSet::new();
    let mut seen = None;
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        if !directory.is_ready() || !is_connected(&client) {
            continue;
        }
        let now = now_ms();
        let state = (
            status.checkpoint.load(Ordering::Relaxed),
            directory.applied(),
            Window::at(Period::Daily, now),
        );
        if seen == Some(state) {
            continue;
        }
        // Every budget with thresholds, in its current window.
        let mut watched = Vec::new();
        for (scope, limits) in directory.all_limits() {
            if scope.kind == ScopeKind::Model {
                continue;
            }
            for b in limits
                .budgets
                .iter()
                .filter(|b| !b.alert_at_percent.is_empty())
            {
                watched.push((scope.clone(), Window::at(b.period, now), b.clone()));
            }
        }
        recorded.retain(|(_, p, code, _)| Window::at(*p, now).code() == *code);
        let items: Vec<_> = watched.iter().map(|(s, w, _)| (s.clone(), *w)).collect();
        let s = Arc::clone(&store);
        let spent = match tokio::task::spawn_blocking(move || s.window_spend(&items)).await {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "budget alerts: spend not readable");
                continue;
            }
            Err(_) => continue,
        };
        let mut complete = true;
        for ((scope, window, budget), spent) in watched.iter().zip(spent) {
            for &percent in &budget.alert_at_percent {
                let key = (scope.clone(), budget.period, window.code(), percent);
                if recorded.contains(&key) || !crossed(spent, budget.limit_nanos, percent) {
                    continue;
                }
                let w = BudgetWindow {
                    scope: scope.clone(),
                    period: budget.period,
                    window: window.label(),
                };
                let env =
                    crossing_event(&w, window.starts_ms(), percent, spent, budget.limit_nanos);
                match record(&js, &env).await {
                    Ok(landed) => {
                        recorded.insert(key);
                        if !landed {
                            continue;
                        }
                        tracing::info!(scope = %scope, period = budget.period.as_str(), window = %w.window, percent, spent, "budget threshold crossed");
                        metrics::counter!("switchyard_budget_alerts_total", "period" => budget.period.as_str(), "scope" => scope.kind.as_str()).increment(1);
                        let Event::BudgetThresholdCrossed(event) = env.event else {
                            continue;
                        };
                        let call = Crossing {
                            id: env.id,
                            at_ms: env.at_ms,
                            event,
                            resets_at: window.resets_at(),
                        };
                        if let Some(tx) = &webhook
                            && tx.try_send(call).is_err()
                        {
                            tracing::warn!("budget webhook queue full; crossing not posted");
                        }
                    }
                    Err(e) => {
                        complete = false;
                        tracing::warn!(error = %e, "budget alert not recorded; retrying");
                    }
                }
            }
        }
        if complete {
            seen = Some(state);
        }
    }
}

/// The JSON body a webhook receives.
pub fn webhook_body(c: &Crossing, currency: &str) -> serde_json::Value {
    let e = &c.event;
    json!({
        "type": "budget.threshold_crossed",
        "id": c.id.to_string(),
        "at_ms": c.at_ms,
        "scope": e.window.scope.kind.as_str(),
        "name": e.window.scope.name,
        "period": e.window.period.as_str(),
        "window": e.window.window,
        "percent": e.percent,
        "spent": crate::edge::money::decimal(e.spent_nanos),
        "spent_nanos": e.spent_nanos,
        "limit": crate::edge::money::decimal(e.limit_nanos),
        "limit_nanos": e.limit_nanos,
        "currency": currency,
        "resets_at": c.resets_at,
    })
}

/// POST each crossing to the webhook, retrying a failure (connection error, timeout, non-2xx)
/// `webhook_attempts` times in all with doubling backoff, until `stop`.
pub async fn deliver(
    url: String,
    cfg: BudgetsConfig,
    currency: String,
    mut crossings: mpsc::Receiver<Crossing>,
    stop: CancellationToken,
) {
    let client = match reqwest::Client::builder()
        .timeout(cfg.webhook_timeout)
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "budget webhook client could not be built; alerts are not posted");
            return;
        }
    };
    loop {
        let c = tokio::select! {
            c = crossings.recv() => match c { Some(c) => c, None => return },
            _ = stop.cancelled() => return,
        };
        let body = webhook_body(&c, &currency);
        let mut backoff = cfg.webhook_backoff;
        for attempt in 1..=cfg.webhook_attempts {
            let res = client.post(&url).json(&body).send().await;
            let failure = match res {
                Ok(r) if r.status().is_success() => None,
                Ok(r) => Some(format!("status {}", r.status())),
                Err(e) => Some(e.to_string()),
            };
            let Some(why) = failure else {
                metrics::counter!("switchyard_budget_webhook_calls_total", "result" => "delivered")
                    .increment(1);
                break;
            };
            if attempt == cfg.webhook_attempts {
                metrics::counter!("switchyard_budget_webhook_calls_total", "result" => "failed")
                    .increment(1);
                tracing::warn!(attempts = attempt, error = %why, "budget webhook failed; giving up");
                break;
            }
            tracing::debug!(attempt, error = %why, "budget webhook failed; retrying");
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = stop.cancelled() => return,
            }
            backoff = backoff.saturating_mul(2);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_instance_derives_the_same_crossing_event() {
        let w = BudgetWindow {
            scope: Scope::new(ScopeKind::Team, "search"),
            period: Period::Daily,
            window: "2026-11-30".into(),
        };
        let a = crossing_event(&w, 1_000, 80, 5, 10);
        let b = crossing_event(&w, 1_000, 80, 6, 10);
        assert_eq!(a.id, b.id);
        assert_ne!(a.id, crossing_event(&w, 1_000, 50, 5, 10).id);
        assert_eq!(a.id.timestamp_ms(), 1_000);
    }

    #[test]
    fn thresholds_are_crossed_at_their_percent_exactly() {
        assert!(!crossed(79, 100, 80));
        assert!(crossed(80, 100, 80));
        assert!(crossed(1_000_000_000, 1_000_000_000, 100));
        assert!(!crossed(5, 0, 50), "no limit, no alert");
        assert!(crossed(u64::MAX, u64::MAX, 100));
    }
}
