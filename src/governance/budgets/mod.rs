//! Budget admission, from memory. A request reserves the most it can cost ([`cost`]) on every
//! budget that applies to it (its key's, user's, team's and project's, each period) or on none;
//! completion settles the real cost and frees the rest; a request that fails, is cancelled or
//! whose client leaves frees all of it (its [`Reservation`] frees on drop).
//!
//! Across instances the money of a budget window is shared through the stream: each instance
//! spends from slices it leased (`crate::ledger` writes the leases, each only if the window's
//! ledger is still at the sequence it read, so leases never sum past the limit). Admission
//! reads and writes this instance's slices only; it asks the ledger task for a new lease when
//! a slice runs short (and a little before, so traffic seldom waits), and waits for it at most
//! `lease_timeout`. Refusals say which budget and when it resets.
//!
//! Nothing here does I/O: the ledger task is fed through a bounded channel and reports back
//! through [`Budgets::lease_done`].

pub mod cost;
mod window;

pub use window::Window;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, mpsc};

use super::Directory;
use crate::config::{BudgetsConfig, LedgerUnavailable};
use crate::events::{Period, Principal, Scope, ScopeKind};

/// How long what the ledger said (how much is left, or that it could not be reached) is taken
/// as true without asking again. A refusal for an empty pool is decided from memory within it.
pub const LEDGER_FRESH: Duration = Duration::from_secs(1);

/// Lease requests waiting for the ledger task; past this, admission treats the ledger as busy.
const LEASE_QUEUE: usize = 4096;

/// The scopes a request's budgets come from, in the order they are checked.
const SCOPES: [ScopeKind; 4] = [
    ScopeKind::Key,
    ScopeKind::User,
    ScopeKind::Team,
    ScopeKind::Project,
];

fn period_index(p: Period) -> usize {
    p as usize
}

/// What the ledger said about a window's pool at a lease attempt.
#[derive(Debug, Clone, Copy)]
struct PoolLook {
    /// Limit minus the total leased by every instance, after the attempt.
    left: u64,
    at: Instant,
}

/// One budget (scope × period) as this instance holds it, for the current window.
#[derive(Debug)]
struct Slice {
    window: Window,
    limit: u64,
    /// Leased by this instance in this window, net of what it gave back.
    held: u64,
    /// Settled by this instance's requests in this window.
    spent: u64,
    /// Reserved by requests in flight.
    reserved: u64,
    /// What requests waiting for a lease are short of, together.
    waiting: u64,
    /// A lease request is with the ledger task.
    leasing: bool,
    /// The grant of the last lease (sizes the prefetch mark).
    last_grant: u64,
    pool: Option<PoolLook>,
    /// When a lease last failed because the ledger could not be reached.
    unavailable: Option<Instant>,
    last_admit: Instant,
}

impl Slice {
    fn new(window: Window) -> Self {
        Self {
            window,
            limit: 0,
            held: 0,
            spent: 0,
            reserved: 0,
            waiting: 0,
            leasing: false,
            last_grant: 0,
            pool: None,
            unavailable: None,
            last_admit: Instant::now(),
        }
    }

    /// Money held and not spent or reserved; negative when in debt (a request settled above
    /// its reservation, or was admitted on credit while the ledger was away).
    fn available(&self) -> i128 {
        i128::from(self.held) - i128::from(self.spent) - i128::from(self.reserved)
    }

    /// Move to `window` when the calendar has: the old window's money is of no use any more.
    fn roll(&mut self, window: Window) {
        if self.window != window {
            *self = Slice {
                waiting: self.waiting,
                leasing: self.leasing,
                ..Slice::new(window)
            };
        }
    }

    /// The pool, when the ledger was read recently enough to decide from.
    fn fresh_pool(&self, now: Instant) -> Option<u64> {
        self.pool
            .filter(|p| now.duration_since(p.at) < LEDGER_FRESH)
            .map(|p| p.left)
    }

    fn fresh_outage(&self, now: Instant) -> bool {
        self.unavailable
            .is_some_and(|at| now.duration_since(at) < LEDGER_FRESH)
    }
}

/// One budget of one scope: this instance's slice of its current window.
pub struct Account {
    pub scope: Scope,
    pub period: Period,
    slice: Mutex<Slice>,
    /// Woken when a lease attempt for this account ends.
    changed: Notify,
}

impl Account {
    fn slice(&self) -> MutexGuard<'_, Slice> {
        // A panic while holding the lock leaves plain numbers behind, still usable.
        self.slice.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A lease for the ledger task to take: `account`'s `window`, at least `min` (0 for a
/// prefetch).
pub struct LeaseRequest {
    pub account: Arc<Account>,
    pub window: Window,
    pub min: u64,
}

/// What a lease should ask for, read when the ledger task takes it up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTerms {
    pub limit: u64,
    /// The least worth taking: the shortfall of the request that asked.
    pub min: u64,
    /// What the requests reserved and waiting need beyond what is held.
    pub deficit: u64,
}

impl LeaseTerms {
    /// How much to lease when `left` remains in the pool: nothing when that is less than
    /// `min`; else `percent` of what is left, or what the waiting requests need up to half of
    /// what is left (so instances under load at once share what remains), or `min`, whichever
    /// is most, never more than is left. Slices shrink as the pool empties, so the money
    /// stranded in an idle instance's slice when the pool runs dry is small.
    pub fn amount(&self, left: u64, percent: u8) -> u64 {
        if left == 0 || left < self.min {
            return 0;
        }
        let share = u64::try_from(u128::from(left) * u128::from(percent) / 100).unwrap_or(left);
        self.deficit
            .min(left / 2)
            .max(share)
            .max(self.min)
            .max(1)
            .min(left)
    }
}

/// What a lease attempt ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseOutcome {
    /// `amount` (possibly 0, when the pool had less than `min`) was leased; `left` remains in
    /// the pool.
    Granted { amount: u64, left: u64 },
    /// The ledger could not be reached or did not answer.
    Unavailable,
}

/// Why a request was not admitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The request could take this budget past its limit.
    Exceeded {
        scope: Scope,
        period: Period,
        limit_nanos: u64,
        window: Window,
    },
    /// A lease was needed and the ledger could not be reached (or did not answer in time).
    Unavailable { scope: Scope, period: Period },
}

impl Refusal {
    /// When the budget refused resets (RFC 3339), if it ever does.
    pub fn resets_at(&self) -> Option<String> {
        match self {
            Refusal::Exceeded { window, .. } => window.resets_at(),
            Refusal::Unavailable { .. } => None,
        }
    }

    /// Milliseconds since the Unix epoch at which the budget refused resets.
    pub fn resets_ms(&self) -> Option<u64> {
        match self {
            Refusal::Exceeded { window, .. } => window.resets_ms(),
            Refusal::Unavailable { .. } => None,
        }
    }
}

fn count_refusal(r: &Refusal) {
    let (reason, scope, period) = match r {
        Refusal::Exceeded { scope, period, .. } => ("exceeded", scope, period),
        Refusal::Unavailable { scope, period } => ("ledger_unavailable", scope, period),
    };
    metrics::counter!("switchyard_budget_refusals_total", "reason" => reason, "scope" => scope.kind.as_str(), "period" => period.as_str()).increment(1);
}

/// The budgets that bind one key's requests, as of one state of the directory: worked out
/// once per key (and again after any admin event), so admission does no directory lookup.
struct BudgetSet {
    /// The directory's last applied sequence when this was made.
    applied: u64,
    principal: Principal,
    /// Each budget's account and limit.
    accounts: Vec<(Arc<Account>, u64)>,
}

/// A request's reservations: `amount` on each account of `set` up to `held`.
/// [`settle`](Self::settle) with the real cost when the request is done; dropped unsettled (a
/// failure, a panic, a task cancelled), it frees everything.
pub struct Reservation {
    set: Option<Arc<BudgetSet>>,
    /// The windows the money was reserved in, by period.
    windows: [Window; 4],
    amount: u64,
    held: usize,
    settled: AtomicBool,
}

impl Reservation {
    /// No budget applies.
    pub fn none() -> Self {
        Self {
            set: None,
            windows: [Window::at(Period::Lifetime, 0); 4],
            amount: 0,
            held: 0,
            settled: AtomicBool::new(false),
        }
    }

    /// The money reserved on each budget (the request's maximum cost), 0 when none applies.
    pub fn amount(&self) -> u64 {
        if self.held == 0 { 0 } else { self.amount }
    }

    fn holds(&self) -> impl Iterator<Item = (&Account, Window)> {
        self.set
            .iter()
            .flat_map(|s| s.accounts.iter())
            .take(self.held)
            .map(|(a, _)| (&**a, self.windows[period_index(a.period)]))
    }

    /// The request cost `actual`: count it as spent and free the reservation. Only the first
    /// call counts. A window that ended meanwhile takes the cost into the new one, as the
    /// spend events do.
    pub fn settle(&self, actual: u64) {
        if self.settled.swap(true, Ordering::AcqRel) {
            return;
        }
        for (account, window) in self.holds() {
            let mut s = account.slice();
            if s.window == window {
                s.reserved = s.reserved.saturating_sub(self.amount);
            }
            s.spent = s.spent.saturating_add(actual);
        }
    }
}

impl std::fmt::Debug for Reservation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reservation")
            .field("budgets", &self.held)
            .field("amount", &self.amount())
            .finish()
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.settled.swap(true, Ordering::AcqRel) {
            return;
        }
        for (account, window) in self.holds() {
            let mut s = account.slice();
            if s.window == window {
                s.reserved = s.reserved.saturating_sub(self.amount);
            }
        }
    }
}

/// How precisely admission asks for a request's cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Estimate {
    /// A quick upper bound (prompt bytes for prompt tokens): enough while a slice has room.
    Bound,
    /// Counted (the tokenizer, tens of microseconds): when the slice is short, so a budget's
    /// last money is not held back by a loose bound.
    Exact,
}

/// How reserving on every applicable budget went.
enum Attempt {
    Reserved(Reservation),
    Refused(Refusal),
    /// Budget `index` is short by `shortfall`; a lease is under way (none is asked, and
    /// nothing refused, when only probing with a bound).
    Wait {
        index: usize,
        shortfall: u64,
    },
}

/// What a budget shows in the admin API: this instance's part of it.
#[derive(Debug, Clone)]
pub struct LocalView {
    pub scope: Scope,
    pub period: Period,
    pub window: Window,
    pub held: u64,
    pub spent: u64,
    pub reserved: u64,
}

/// Every budget account of this instance. See the module docs.
pub struct Budgets {
    directory: Arc<Directory>,
    accounts: RwLock<HashMap<Scope, [Arc<Account>; 4]>>,
    /// Per key id: the budgets its requests are bound by.
    sets: RwLock<HashMap<String, Arc<BudgetSet>>>,
    leases: mpsc::Sender<LeaseRequest>,
    lease_timeout: Duration,
    when_unavailable: LedgerUnavailable,
    pub default_max_output_tokens: u64,
    pub lease_percent: u8,
}

impl Budgets {
    /// The accounts, and the receiving end of their lease requests for the ledger task.
    pub fn new(
        directory: Arc<Directory>,
        cfg: &BudgetsConfig,
    ) -> (Arc<Self>, mpsc::Receiver<LeaseRequest>) {
        let (tx, rx) = mpsc::channel(LEASE_QUEUE);
        let budgets = Self {
            directory,
            accounts: RwLock::new(HashMap::new()),
            sets: RwLock::new(HashMap::new()),
            leases: tx,
            lease_timeout: cfg.lease_timeout,
            when_unavailable: cfg.when_ledger_unavailable,
            default_max_output_tokens: cfg.default_max_output_tokens,
            lease_percent: cfg.lease_percent,
        };
        (Arc::new(budgets), rx)
    }

    /// The four period accounts of `scope`, made on first use.
    fn accounts_of(&self, scope: Scope) -> [Arc<Account>; 4] {
        if let Some(a) = self
            .accounts
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&scope)
        {
            return a.clone();
        }
        let mut map = self
            .accounts
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        map.entry(scope.clone())
            .or_insert_with(|| {
                let now = crate::governance::now_ms();
                Period::ALL.map(|period| {
                    Arc::new(Account {
                        scope: scope.clone(),
                        period,
                        slice: Mutex::new(Slice::new(Window::at(period, now))),
                        changed: Notify::new(),
                    })
                })
            })
            .clone()
    }

    /// Every budget set on the caller's key, user, team and project: from the per-key cache
    /// while the directory has not changed, else worked out again. `None` when none applies.
    fn applicable(&self, p: &Principal) -> Option<Arc<BudgetSet>> {
        let applied = self.directory.applied();
        if let Some(set) = self
            .sets
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(p.key_id.as_str())
            && set.applied == applied
            && set.principal == *p
        {
            return (!set.accounts.is_empty()).then(|| Arc::clone(set));
        }
        let mut accounts = Vec::new();
        let names = [
            Some(&p.key_id),
            p.user.as_ref(),
            p.team.as_ref(),
            p.project.as_ref(),
        ];
        for (kind, name) in SCOPES.into_iter().zip(names) {
            let Some(name) = name else { continue };
            let scope = Scope::new(kind, name.as_str());
            let Some(limits) = self.directory.limits(&scope) else {
                continue;
            };
            if limits.budgets.is_empty() {
                continue;
            }
            let of_scope = self.accounts_of(scope);
            for b in &limits.budgets {
                accounts.push((Arc::clone(&of_scope[period_index(b.period)]), b.limit_nanos));
            }
        }
        let set = Arc::new(BudgetSet {
            applied,
            principal: p.clone(),
            accounts,
        });
        self.sets
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(p.key_id.clone(), Arc::clone(&set));
        (!set.accounts.is_empty()).then_some(set)
    }

    /// Reserve the most the request can cost on every budget of `p`, or refuse. `cost` is
    /// asked only when a budget applies: first for a quick bound, and for the exact figure
    /// only when the bound does not fit. Waits for a lease when a slice is short, at most
    /// `lease_timeout`; otherwise answers from memory.
    pub async fn admit(
        &self,
        p: &Principal,
        cost: impl Fn(Estimate) -> u64,
    ) -> Result<Reservation, Refusal> {
        let Some(set) = self.applicable(p) else {
            return Ok(Reservation::none());
        };
        let windows = Window::all_at_cached(crate::governance::now_ms());
        let mut amount = cost(Estimate::Bound);
        let mut exact = false;
        let mut deadline = None;
        loop {
            let (index, shortfall) = match self.try_reserve(&set, amount, windows, exact) {
                Attempt::Reserved(r) => return Ok(r),
                Attempt::Refused(r) => {
                    count_refusal(&r);
                    return Err(r);
                }
                Attempt::Wait { .. } if !exact => {
                    exact = true;
                    amount = cost(Estimate::Exact).min(amount);
                    continue;
                }
                Attempt::Wait { index, shortfall } => (index, shortfall),
            };
            let account = &set.accounts[index].0;
            let deadline =
                *deadline.get_or_insert_with(|| tokio::time::Instant::now() + self.lease_timeout);
            let woken = account.changed.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let in_flight = account.slice().leasing;
            let timed_out = in_flight && tokio::time::timeout_at(deadline, woken).await.is_err();
            {
                let mut s = account.slice();
                s.waiting = s.waiting.saturating_sub(shortfall);
            }
            if timed_out {
                let r = Refusal::Unavailable {
                    scope: account.scope.clone(),
                    period: account.period,
                };
                count_refusal(&r);
                return Err(r);
            }
        }
    }

    /// Reserve `cost` on every budget of `set`, or on none. With `decide` false (a bound being
    /// probed), a short budget only says so: no lease is asked and nothing is refused.
    fn try_reserve(
        &self,
        set: &Arc<BudgetSet>,
        cost: u64,
        windows: [Window; 4],
        decide: bool,
    ) -> Attempt {
        // Dropped on an early return, it frees what was reserved on the budgets before.
        let mut reservation = Reservation {
            set: Some(Arc::clone(set)),
            windows,
            amount: cost,
            held: 0,
            settled: AtomicBool::new(false),
        };
        let now = Instant::now();
        for (index, (account, limit)) in set.accounts.iter().enumerate() {
            let window = windows[period_index(account.period)];
            let mut s = account.slice();
            s.roll(window);
            s.limit = *limit;
            s.last_admit = now;
            let available = s.available();
            let shortfall = i128::from(cost) - available;
            let credit = if shortfall <= 0 || cost == 0 {
                false
            } else {
                // invariant: 0 < shortfall ≤ cost + spent + reserved, all u64.
                let shortfall = u64::try_from(shortfall).unwrap_or(u64::MAX);
                if !decide {
                    return Attempt::Wait { index, shortfall };
                }
                if s.fresh_pool(now).is_some_and(|left| left < shortfall) {
                    return Attempt::Refused(Refusal::Exceeded {
                        scope: account.scope.clone(),
                        period: account.period,
                        limit_nanos: *limit,
                        window,
                    });
                }
                let outage = s.fresh_outage(now) && !s.leasing;
                if outage && self.when_unavailable == LedgerUnavailable::Refuse {
                    return Attempt::Refused(Refusal::Unavailable {
                        scope: account.scope.clone(),
                        period: account.period,
                    });
                }
                if !outage {
                    if !s.leasing && !self.ask_lease(&mut s, account, window, shortfall) {
                        return Attempt::Refused(Refusal::Unavailable {
                            scope: account.scope.clone(),
                            period: account.period,
                        });
                    }
                    s.waiting = s.waiting.saturating_add(shortfall);
                    return Attempt::Wait { index, shortfall };
                }
                // The ledger is away and the policy is to admit on credit.
                metrics::counter!("switchyard_budget_admitted_on_credit_total").increment(1);
                true
            };
            s.reserved = s.reserved.saturating_add(cost);
            if !credit {
                self.maybe_prefetch(&mut s, account, window, cost, now);
            }
            drop(s);
            reservation.held += 1;
        }
        Attempt::Reserved(reservation)
    }

    /// Hand a lease request to the ledger task (false when its queue is full or gone).
    fn ask_lease(&self, s: &mut Slice, account: &Arc<Account>, window: Window, min: u64) -> bool {
        let sent = self
            .leases
            .try_send(LeaseRequest {
                account: Arc::clone(account),
                window,
                min,
            })
            .is_ok();
        s.leasing = sent;
        sent
    }

    /// Ask for the next lease before the slice runs out, so traffic seldom waits on NATS:
    /// when what is left would pay for fewer than two more such requests, or a quarter of the
    /// last lease, and the pool is not known to be empty.
    fn maybe_prefetch(
        &self,
        s: &mut Slice,
        account: &Arc<Account>,
        window: Window,
        cost: u64,
        now: Instant,
    ) {
        if s.leasing || s.fresh_outage(now) || s.fresh_pool(now) == Some(0) {
            return;
        }
        let mark = i128::from(cost.saturating_mul(2).max(s.last_grant / 4));
        if s.available() < mark {
            self.ask_lease(s, account, window, 0);
        }
    }

    /// What the ledger task should ask for on `window` of `account`; `None` when the window is
    /// over (the calendar moved on since the request).
    pub fn lease_terms(&self, account: &Account, window: Window, min: u64) -> Option<LeaseTerms> {
        let s = account.slice();
        if s.window != window {
            return None;
        }
        let need = i128::from(s.spent) + i128::from(s.reserved) + i128::from(s.waiting);
        let deficit = u64::try_from(need - i128::from(s.held)).unwrap_or(0);
        Some(LeaseTerms {
            limit: s.limit,
            min,
            deficit,
        })
    }

    /// A lease attempt ended: count what was granted, note what the ledger said, and wake the
    /// requests waiting on it.
    pub fn lease_done(&self, account: &Account, window: Window, outcome: LeaseOutcome) {
        {
            let mut s = account.slice();
            s.leasing = false;
            if s.window == window {
                let now = Instant::now();
                match outcome {
                    LeaseOutcome::Granted { amount, left } => {
                        s.held = s.held.saturating_add(amount);
                        if amount > 0 {
                            s.last_grant = amount;
                        }
                        s.pool = Some(PoolLook { left, at: now });
                        s.unavailable = None;
                    }
                    LeaseOutcome::Unavailable => s.unavailable = Some(now),
                }
            }
        }
        account.changed.notify_waiters();
    }

    /// Take the unused money of every window this instance holds (of those idle for `idle`,
    /// when given) out of its slices, to give back to the ledger. Windows with a lease in
    /// flight are left alone.
    pub fn take_unused(&self, idle: Option<Duration>) -> Vec<(Arc<Account>, Window, u64)> {
        let now = Instant::now();
        let accounts: Vec<Arc<Account>> = self
            .accounts
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .flat_map(|a| a.iter().cloned())
            .collect();
        let mut out = Vec::new();
        for account in accounts {
            let mut s = account.slice();
            if s.leasing || idle.is_some_and(|idle| now.duration_since(s.last_admit) < idle) {
                continue;
            }
            let unused = u64::try_from(s.available()).unwrap_or(0);
            if unused == 0 {
                continue;
            }
            s.held -= unused;
            let window = s.window;
            drop(s);
            out.push((account, window, unused));
        }
        out
    }

    /// Money taken by [`take_unused`](Self::take_unused) could not be given back: hold it
    /// again.
    pub fn keep(&self, account: &Account, window: Window, amount: u64) {
        let mut s = account.slice();
        if s.window == window {
            s.held = s.held.saturating_add(amount);
        }
    }

    /// This instance's part of every budget it has seen a request for.
    pub fn local_views(&self) -> Vec<LocalView> {
        let accounts = self.accounts.read().unwrap_or_else(PoisonError::into_inner);
        let mut out: Vec<LocalView> = accounts
            .values()
            .flat_map(|a| a.iter())
            .map(|a| {
                let s = a.slice();
                LocalView {
                    scope: a.scope.clone(),
                    period: a.period,
                    window: s.window,
                    held: s.held,
                    spent: s.spent,
                    reserved: s.reserved,
                }
            })
            .collect();
        out.sort_by(|a, b| (&a.scope, a.period).cmp(&(&b.scope, b.period)));
        out
    }
}

#[cfg(test)]
mod tests;
