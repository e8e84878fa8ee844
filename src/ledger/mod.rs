//! The budget ledger: how instances share a budget window's money through the stream.
//!
//! Each window (scope × period × calendar window) has a subject of its own
//! (`events::budget_lease_subject`) holding its `BudgetLeased` events; the last one carries the
//! total leased by every instance. To lease, an instance reads that last message, checks
//! `total + slice ≤ limit`, and publishes the new total with `Nats-Expected-Last-Subject-Sequence`
//! set to the sequence it read (0 when the subject is empty): if another instance wrote in
//! between, JetStream refuses the write and the instance reads again. So leases never sum past
//! the limit, whatever the number of instances, and a lease costs two round trips to NATS —
//! taken by the [`run`] task, never by a request, which spends from its instance's slices in
//! memory (`governance::budgets`).
//!
//! The same task gives unused money back: a window idle for `budgets.idle_return`, and
//! everything at shutdown (after the last request). A crashed instance cannot: its unused slice
//! stays leased until the window ends (at most one lease, `lease_percent` of what was left).
//!
//! [`alerts`] watches spend against the alert thresholds and calls the webhook.

pub mod alerts;
mod cas;
pub mod rates;

use cas::Conflict;
pub use cas::LedgerError;

use async_nats::jetstream;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use ulid::Ulid;

use crate::events::{
    BudgetLeased, BudgetWindow, Envelope, Event, budget_lease_subject, decode, encode,
};
use crate::governance::budgets::{Budgets, LeaseOutcome, LeaseRequest, LeaseTerms, Window};
use crate::governance::instance_id;
use crate::projections::budgets::BudgetsStore;

use cas::CONTENTION_TRIES;
/// How often idle windows are looked for.
const IDLE_TICK: Duration = Duration::from_secs(1);
/// How long shutdown spends giving unused money back.
const RETURN_AT_STOP: Duration = Duration::from_secs(5);

/// Reads and writes budget ledgers in one stream.
#[derive(Clone)]
pub struct Ledger {
    client: async_nats::Client,
    js: jetstream::Context,
    stream: String,
}

/// The window a request's budget is in, as events name it.
pub fn budget_window(
    account: &crate::governance::budgets::Account,
    window: Window,
) -> BudgetWindow {
    BudgetWindow {
        scope: account.scope.clone(),
        period: account.period,
        window: window.label(),
    }
}

impl Ledger {
    pub fn new(client: async_nats::Client, stream: String) -> Self {
        let js = jetstream::new(client.clone());
        Self { client, js, stream }
    }

    /// The last event of a window's ledger and its stream sequence; `(0, None)` when nothing
    /// was leased in the window yet.
    pub async fn last(&self, w: &BudgetWindow) -> Result<(u64, Option<BudgetLeased>), LedgerError> {
        let subject = budget_lease_subject(w);
        match cas::last(&self.client, &self.js, &self.stream, &subject).await? {
            (seq, Some(payload)) => match decode(&payload).map(|e| e.event) {
                Ok(Event::BudgetLeased(l)) => Ok((seq, Some(l))),
                Ok(other) => Err(LedgerError::Corrupt(other.kind().to_owned())),
                Err(e) => Err(LedgerError::Corrupt(e.to_string())),
            },
            (seq, None) => Ok((seq, None)),
        }
    }

    /// Append `event` to its window's ledger if the ledger's last sequence is still `seq`.
    async fn append(
        &self,
        event: BudgetLeased,
        seq: u64,
    ) -> Result<Result<(), Conflict>, LedgerError> {
        let env = Envelope::new(Ulid::generate(), Event::BudgetLeased(event));
        let subject = crate::events::subject(&env.event).into_owned();
        let payload = bytes::Bytes::from(encode(&env));
        cas::append(
            &self.client,
            &self.js,
            subject,
            &env.id.to_string(),
            payload,
            seq,
        )
        .await
    }

    /// Lease a slice of window `w` on `terms` (its size: [`LeaseTerms::amount`]). `opening` is the spend already recorded in the window, counted by the
    /// window's first lease. Returns (leased, left in the pool).
    pub async fn lease<F, Fut>(
        &self,
        w: &BudgetWindow,
        terms: LeaseTerms,
        percent: u8,
        opening: F,
    ) -> Result<(u64, u64), LedgerError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = u64>,
    {
        for _ in 0..CONTENTION_TRIES {
            let (seq, last) = self.last(w).await?;
            let total = match &last {
                Some(l) => l.total_nanos,
                None => opening().await,
            };
            let left = terms.limit.saturating_sub(total);
            let amount = terms.amount(left, percent);
            if amount == 0 {
                return Ok((0, left));
            }
            let lease = BudgetLeased {
                window: w.clone(),
                instance: instance_id().to_owned(),
                amount_nanos: amount,
                returned: false,
                total_nanos: total + amount,
                limit_nanos: terms.limit,
            };
            match self.append(lease, seq).await? {
                Ok(()) => return Ok((amount, left - amount)),
                Err(Conflict) => {
                    metrics::counter!("switchyard_budget_lease_conflicts_total").increment(1);
                }
            }
        }
        Err(LedgerError::Contention(CONTENTION_TRIES))
    }

    /// Give `amount` of window `w` back to the pool.
    pub async fn give_back(&self, w: &BudgetWindow, amount: u64) -> Result<(), LedgerError> {
        for _ in 0..CONTENTION_TRIES {
            let (seq, last) = self.last(w).await?;
            let Some(last) = last else {
                // Nothing leased in this window (the stream lost it?): nothing to give back.
                return Ok(());
            };
            let amount = amount.min(last.total_nanos);
            if amount == 0 {
                return Ok(());
            }
            let back = BudgetLeased {
                window: w.clone(),
                instance: instance_id().to_owned(),
                amount_nanos: amount,
                returned: true,
                total_nanos: last.total_nanos - amount,
                limit_nanos: last.limit_nanos,
            };
            if self.append(back, seq).await?.is_ok() {
                return Ok(());
            }
        }
        Err(LedgerError::Contention(CONTENTION_TRIES))
    }
}

/// Take one lease request up: read the terms, lease, report.
async fn lease_one(
    ledger: &Ledger,
    budgets: &Budgets,
    store: Option<&Arc<BudgetsStore>>,
    req: LeaseRequest,
) {
    let Some(terms) = budgets.lease_terms(&req.account, req.window, req.min) else {
        // The window ended while the request waited: nothing to lease for it.
        budgets.lease_done(&req.account, req.window, LeaseOutcome::Unavailable);
        return;
    };
    let w = budget_window(&req.account, req.window);
    let opening = || opening_spend(store, &req.account.scope, req.window);
    let outcome = match ledger
        .lease(&w, terms, budgets.lease_percent, opening)
        .await
    {
        Ok((amount, left)) => {
            metrics::counter!("switchyard_budget_leases_total", "granted" => if amount > 0 { "yes" } else { "no" }).increment(1);
            tracing::debug!(scope = %w.scope, period = w.period.as_str(), window = %w.window, amount, left, "budget lease");
            LeaseOutcome::Granted { amount, left }
        }
        Err(e) => {
            metrics::counter!("switchyard_budget_lease_failures_total").increment(1);
            tracing::warn!(scope = %w.scope, period = w.period.as_str(), error = %e, "budget lease failed");
            LeaseOutcome::Unavailable
        }
    };
    budgets.lease_done(&req.account, req.window, outcome);
}

/// The spend the budgets projection recorded in `window` of `scope` (0 when it does not run in
/// this process, or cannot be read).
async fn opening_spend(
    store: Option<&Arc<BudgetsStore>>,
    scope: &crate::events::Scope,
    window: Window,
) -> u64 {
    let Some(store) = store.cloned() else {
        return 0;
    };
    let item = [(scope.clone(), window)];
    match tokio::task::spawn_blocking(move || store.window_spend(&item)).await {
        Ok(Ok(v)) => v.first().copied().unwrap_or(0),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "spend before the first lease could not be read; counting 0");
            0
        }
        Err(_) => 0,
    }
}

/// Give back unused money of the windows [`Budgets::take_unused`] picked; what cannot be given
/// back is held again.
async fn give_back_all(ledger: &Ledger, budgets: &Budgets, idle: Option<Duration>) {
    let unused = budgets.take_unused(idle);
    let mut calls: FuturesUnordered<_> = unused
        .into_iter()
        .map(|(account, window, amount)| async move {
            let w = budget_window(&account, window);
            match ledger.give_back(&w, amount).await {
                Ok(()) => {
                    tracing::debug!(scope = %w.scope, period = w.period.as_str(), amount, "unused budget given back");
                }
                Err(e) => {
                    tracing::warn!(scope = %w.scope, error = %e, "unused budget not given back; kept");
                    budgets.keep(&account, window, amount);
                }
            }
        })
        .collect();
    while calls.next().await.is_some() {}
}

/// The ledger task: take lease requests from admission until `stop`, give idle windows' money
/// back every second, and everything unused at stop (the edge has finished its requests by
/// then).
pub async fn run(
    ledger: Ledger,
    budgets: Arc<Budgets>,
    store: Option<Arc<BudgetsStore>>,
    mut requests: mpsc::Receiver<LeaseRequest>,
    idle_return: Duration,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(IDLE_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut leases = FuturesUnordered::new();
    let mut returning = false;
    let mut idle_pass = std::pin::pin!(futures::future::Fuse::terminated());
    loop {
        tokio::select! {
            Some(req) = requests.recv() => {
                leases.push(lease_one(&ledger, &budgets, store.as_ref(), req));
            }
            Some(()) = leases.next(), if !leases.is_empty() => {}
            _ = tick.tick(), if !returning => {
                returning = true;
                idle_pass.set(futures::FutureExt::fuse(give_back_all(&ledger, &budgets, Some(idle_return))));
            }
            () = &mut idle_pass, if returning => returning = false,
            _ = stop.cancelled() => break,
        }
    }
    while leases.next().await.is_some() {}
    if returning {
        idle_pass.await;
    }
    if tokio::time::timeout(RETURN_AT_STOP, give_back_all(&ledger, &budgets, None))
        .await
        .is_err()
    {
        tracing::warn!("unused budget not all given back before stopping");
    }
}
