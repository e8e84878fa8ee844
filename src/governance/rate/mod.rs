//! Rate-limit admission, from memory: requests and tokens per minute of a request's key, user,
//! team, project and model, each a GCRA over a timeline shared by every instance
//! ([`timeline`]). A request takes one request from each requests limit and its tokens (prompt
//! plus output ceiling, counted as for budgets — as OpenAI counts them) from each tokens
//! limit, on all of them or on none.
//!
//! Each instance spends stretches of a limit's timeline it leased (`crate::ledger::rates`
//! writes the leases, each only if the limit's global TAT is still the one it read), so the
//! total across instances is the limit, not a copy per instance. Admission asks the ledger task
//! for a new stretch when it holds too little (and a little before, so traffic seldom waits)
//! and waits for it at most `lease_timeout`.
//!
//! Why not `governor`: its cells keep their state private and measure from one process's
//! clock, while a shared limit needs to spend time leased from a global TAT; the GCRA
//! arithmetic itself is a few lines ([`timeline`]), tested against the window bound.

pub mod timeline;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, mpsc};

use super::Directory;
use crate::config::{RateLedgerUnavailable, RateLimitsConfig};
use crate::events::{Principal, RateLimit, Scope, ScopeKind};
pub use timeline::{Take, Timeline, View};

/// How long an unreachable ledger is taken as unreachable without asking again.
const OUTAGE_FRESH: Duration = Duration::from_secs(1);
/// Lease requests waiting for the ledger task; past this, admission treats the ledger as busy.
const LEASE_QUEUE: usize = 4096;
/// Rounds of lease-and-retry one request may go through before it is refused.
const ROUNDS: usize = 8;

/// The most meters one request can meet: requests and tokens of its key, user, team, project
/// and model.
const MAX_METERS: usize = 10;

/// Nanoseconds since the Unix epoch: the clock the shared timelines are read against.
pub fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// What a limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Unit {
    Requests,
    Tokens,
}

impl Unit {
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Requests => "requests",
            Unit::Tokens => "tokens",
        }
    }
}

#[derive(Debug)]
struct Line {
    timeline: Timeline,
    /// A lease request is with the ledger task.
    leasing: bool,
    /// When a lease last failed because the ledger could not be reached.
    unavailable: Option<Instant>,
}

/// One limit of one scope, as this instance holds it.
pub struct Meter {
    pub scope: Scope,
    pub unit: Unit,
    line: Mutex<Line>,
    /// Woken when a lease attempt for this meter ends.
    changed: Notify,
}

impl Meter {
    fn line(&self) -> MutexGuard<'_, Line> {
        // A panic while holding the lock leaves plain numbers behind, still usable.
        self.line.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A stretch of timeline for the ledger task to lease: at least `min_ns` (0 for a prefetch),
/// usable only if it can end within `tolerance` of the time it is read.
pub struct LeaseRequest {
    pub meter: Arc<Meter>,
    pub min_ns: u64,
    pub size_ns: u64,
    pub tolerance: u64,
}

/// What a lease attempt ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseOutcome {
    /// `[start, end)` is this instance's; the global TAT was `before`.
    Granted { before: u64, start: u64, end: u64 },
    /// Nothing usable was left to lease: the global TAT is `tat`.
    Saw { tat: u64 },
    /// The ledger could not be reached or did not answer.
    Unavailable,
}

/// Why a request was not admitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RateRefusal {
    /// Over the limit; admissible again after `retry_after`.
    Exceeded {
        scope: Scope,
        unit: Unit,
        limit: u64,
        retry_after: Duration,
    },
    /// A lease was needed and the ledger could not be reached (policy `refuse`).
    Unavailable { scope: Scope, unit: Unit },
}

/// The limits a request was admitted under: the tightest of each unit, for the response's
/// `x-ratelimit-*` headers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateView {
    pub requests: Option<View>,
    pub tokens: Option<View>,
}

/// The limits that bind one key's requests (or one model's), as of one state of the
/// directory.
struct LimitSet {
    applied: u64,
    principal: Option<Principal>,
    meters: Vec<Arc<Meter>>,
}

/// Every rate limit this instance has seen a request for. See the module docs.
pub struct Rates {
    directory: Arc<Directory>,
    meters: RwLock<HashMap<(Scope, Unit), Arc<Meter>>>,
    by_key: RwLock<HashMap<String, Arc<LimitSet>>>,
    by_model: RwLock<HashMap<String, Arc<LimitSet>>>,
    leases: mpsc::Sender<LeaseRequest>,
    cfg: RateLimitsConfig,
}

impl Rates {
    /// The meters, and the receiving end of their lease requests for the ledger task.
    pub fn new(
        directory: Arc<Directory>,
        cfg: &RateLimitsConfig,
    ) -> (Arc<Self>, mpsc::Receiver<LeaseRequest>) {
        let (tx, rx) = mpsc::channel(LEASE_QUEUE);
        let rates = Self {
            directory,
            meters: RwLock::new(HashMap::new()),
            by_key: RwLock::new(HashMap::new()),
            by_model: RwLock::new(HashMap::new()),
            leases: tx,
            cfg: cfg.clone(),
        };
        (Arc::new(rates), rx)
    }

    fn burst(&self, unit: Unit, limit: u64) -> u64 {
        let percent = match unit {
            Unit::Requests => self.cfg.request_burst_percent,
            Unit::Tokens => self.cfg.token_burst_percent,
        };
        (limit.saturating_mul(u64::from(percent)) / 100).max(1)
    }

    fn lease_ns(&self) -> u64 {
        u64::try_from(self.cfg.lease.as_nanos()).unwrap_or(u64::MAX)
    }

    /// The meter of `scope`'s `unit` limit, made on first use, set to `limit`.
    fn meter(&self, scope: &Scope, unit: Unit, limit: u64) -> Arc<Meter> {
        let burst = self.burst(unit, limit);
        let key = (scope.clone(), unit);
        if let Some(m) = self
            .meters
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
        {
            m.line().timeline.set_limit(limit, burst);
            return Arc::clone(m);
        }
        let mut map = self.meters.write().unwrap_or_else(PoisonError::into_inner);
        let m = map.entry(key).or_insert_with(|| {
            Arc::new(Meter {
                scope: scope.clone(),
                unit,
                line: Mutex::new(Line {
                    timeline: Timeline::new(limit, burst),
                    leasing: false,
                    unavailable: None,
                }),
                changed: Notify::new(),
            })
        });
        m.line().timeline.set_limit(limit, burst);
        Arc::clone(m)
    }

    fn meters_of(&self, scope: Scope, rate: &RateLimit, out: &mut Vec<Arc<Meter>>) {
        if let Some(l) = rate.requests_per_minute.filter(|&l| l > 0) {
            out.push(self.meter(&scope, Unit::Requests, l));
        }
        if let Some(l) = rate.tokens_per_minute.filter(|&l| l > 0) {
            out.push(self.meter(&scope, Unit::Tokens, l));
        }
    }

    /// The limits on the caller's key, user, team and project: from the per-key cache while
    /// the directory has not changed.
    fn of_principal(&self, p: &Principal) -> Arc<LimitSet> {
        let applied = self.directory.applied();
        if let Some(set) = self
            .by_key
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(p.key_id.as_str())
            && set.applied == applied
            && set.principal.as_ref() == Some(p)
        {
            return Arc::clone(set);
        }
        let mut meters = Vec::new();
        let names = [
            Some(&p.key_id),
            p.user.as_ref(),
            p.team.as_ref(),
            p.project.as_ref(),
        ];
        let kinds = [
            ScopeKind::Key,
            ScopeKind::User,
            ScopeKind::Team,
            ScopeKind::Project,
        ];
        for (kind, name) in kinds.into_iter().zip(names) {
            let Some(name) = name else { continue };
            let scope = Scope::new(kind, name.as_str());
            if let Some(limits) = self.directory.limits(&scope) {
                self.meters_of(scope, &limits.rate, &mut meters);
            }
        }
        let set = Arc::new(LimitSet {
            applied,
            principal: Some(p.clone()),
            meters,
        });
        self.by_key
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(p.key_id.clone(), Arc::clone(&set));
        set
    }

    /// The limits on a public model, across every caller.
    fn of_model(&self, model: &str) -> Arc<LimitSet> {
        let applied = self.directory.applied();
        if let Some(set) = self
            .by_model
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(model)
            && set.applied == applied
        {
            return Arc::clone(set);
        }
        let mut meters = Vec::new();
        let scope = Scope::new(ScopeKind::Model, model);
        if let Some(limits) = self.directory.limits(&scope) {
            self.meters_of(scope, &limits.rate, &mut meters);
        }
        let set = Arc::new(LimitSet {
            applied,
            principal: None,
            meters,
        });
        self.by_model
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(model.to_owned(), Arc::clone(&set));
        set
    }

    /// Take the request from every limit of `p` and `model`, or refuse. `tokens` (the
    /// request's prompt and output ceiling) is asked only when a tokens limit applies. Waits
    /// for a lease when a meter holds too little, at most `lease_timeout`.
    pub async fn admit(
        &self,
        p: &Principal,
        model: &str,
        tokens: impl FnOnce() -> u64,
    ) -> Result<RateView, RateRefusal> {
        let (keyed, modeled) = (self.of_principal(p), self.of_model(model));
        if keyed.meters.is_empty() && modeled.meters.is_empty() {
            return Ok(RateView::default());
        }
        let meters = [keyed.meters.as_slice(), modeled.meters.as_slice()];
        let token_units = if meters
            .iter()
            .flat_map(|m| m.iter())
            .any(|m| m.unit == Unit::Tokens)
        {
            tokens().max(1)
        } else {
            0
        };
        let units = |m: &Meter| match m.unit {
            Unit::Requests => 1,
            Unit::Tokens => token_units,
        };
        let mut deadline = None;
        let mut round = 0;
        loop {
            round += 1;
            let (meter, shortfall, tolerance) = match self.try_take(&meters, &units) {
                Ok(view) => return Ok(view),
                Err(Err(refusal)) => {
                    count_refusal(&refusal);
                    return Err(refusal);
                }
                Err(Ok(short)) => short,
            };
            let woken = meter.changed.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let asked = {
                let mut line = meter.line();
                let now = Instant::now();
                if line
                    .unavailable
                    .is_some_and(|at| now.duration_since(at) < OUTAGE_FRESH)
                    && !line.leasing
                    && self.cfg.when_ledger_unavailable == RateLedgerUnavailable::Refuse
                {
                    false
                } else {
                    line.leasing || self.ask_lease(&mut line, meter, shortfall, tolerance)
                }
            };
            let deadline = *deadline
                .get_or_insert_with(|| tokio::time::Instant::now() + self.cfg.lease_timeout);
            // Leases that keep falling short (other instances take the time first) end the
            // wait too, after a few rounds.
            if !asked || round == ROUNDS || tokio::time::timeout_at(deadline, woken).await.is_err()
            {
                let r = RateRefusal::Unavailable {
                    scope: meter.scope.clone(),
                    unit: meter.unit,
                };
                count_refusal(&r);
                return Err(r);
            }
        }
    }

    /// Take from every meter, or from none. `Err(Ok((meter, shortfall, tolerance)))`: a meter
    /// holds too little of its timeline; a lease decides. Each meter is locked once: its take,
    /// its prefetch and its part of the view together.
    #[allow(clippy::type_complexity)]
    fn try_take<'m>(
        &self,
        meters: &[&'m [Arc<Meter>]; 2],
        units: &impl Fn(&Meter) -> u64,
    ) -> Result<RateView, Result<(&'m Arc<Meter>, u64, u64), RateRefusal>> {
        let now = now_ns();
        let lease = self.lease_ns();
        // Where each meter's take ended, to give it back if a later meter refuses.
        let mut ends = [0u64; MAX_METERS];
        let mut view = RateView::default();
        let all = meters.iter().flat_map(|m| m.iter());
        let undo = |n: usize, ends: &[u64]| {
            for (m, end) in all.clone().take(n).zip(ends) {
                m.line().timeline.untake(units(m), *end);
            }
        };
        for (i, meter) in all.clone().enumerate() {
            let mut line = meter.line();
            match line.timeline.take(units(meter), now) {
                Take::Admitted { end } => {
                    if let Some(slot) = ends.get_mut(i) {
                        *slot = end;
                    }
                    if !line.leasing && line.timeline.ahead(now) < lease / 2 {
                        let tolerance = line.timeline.tolerance(0);
                        self.ask_lease(&mut line, meter, 0, tolerance);
                    }
                    let v = line.timeline.view(now);
                    drop(line);
                    let slot = match meter.unit {
                        Unit::Requests => &mut view.requests,
                        Unit::Tokens => &mut view.tokens,
                    };
                    if slot.is_none_or(|s| v.remaining < s.remaining) {
                        *slot = Some(v);
                    }
                }
                Take::TooEarly { retry_ns } => {
                    let limit = line.timeline.limit;
                    drop(line);
                    undo(i, &ends);
                    return Err(Err(RateRefusal::Exceeded {
                        scope: meter.scope.clone(),
                        unit: meter.unit,
                        limit,
                        retry_after: Duration::from_nanos(retry_ns),
                    }));
                }
                Take::Short {
                    shortfall_ns,
                    tolerance,
                } => {
                    drop(line);
                    undo(i, &ends);
                    return Err(Ok((meter, shortfall_ns, tolerance)));
                }
            }
        }
        Ok(view)
    }

    /// Hand a lease request to the ledger task (false when its queue is full or gone).
    fn ask_lease(&self, line: &mut Line, meter: &Arc<Meter>, min_ns: u64, tolerance: u64) -> bool {
        let sent = self
            .leases
            .try_send(LeaseRequest {
                meter: Arc::clone(meter),
                min_ns,
                size_ns: self.lease_ns(),
                tolerance,
            })
            .is_ok();
        line.leasing = sent;
        sent
    }

    /// A lease attempt ended: hold what was granted, note what the ledger said, and wake the
    /// requests waiting on it. An unreachable ledger under policy `local` grants the stretch
    /// from this instance's own clock.
    pub fn lease_done(&self, req: &LeaseRequest, outcome: LeaseOutcome) {
        {
            let mut line = req.meter.line();
            line.leasing = false;
            match outcome {
                LeaseOutcome::Granted { before, start, end } => {
                    line.timeline.grant(before, start, end);
                    line.unavailable = None;
                }
                LeaseOutcome::Saw { tat } => {
                    line.timeline.saw(tat);
                    line.unavailable = None;
                }
                LeaseOutcome::Unavailable => {
                    line.unavailable = Some(Instant::now());
                    if self.cfg.when_ledger_unavailable == RateLedgerUnavailable::Local {
                        let now = now_ns();
                        let start = line.timeline.local_start(now);
                        if let Some((s, e)) =
                            timeline::lease_span(start, now, req.min_ns, req.size_ns, req.tolerance)
                        {
                            metrics::counter!("switchyard_rate_local_leases_total").increment(1);
                            line.timeline.grant(0, s, e);
                        } else {
                            line.timeline.saw(start);
                        }
                    }
                }
            }
        }
        req.meter.changed.notify_waiters();
    }
}

fn count_refusal(r: &RateRefusal) {
    let (reason, scope, unit) = match r {
        RateRefusal::Exceeded { scope, unit, .. } => ("exceeded", scope, unit),
        RateRefusal::Unavailable { scope, unit } => ("ledger_unavailable", scope, unit),
    };
    metrics::counter!("switchyard_rate_limited_total", "reason" => reason, "scope" => scope.kind.as_str(), "unit" => unit.as_str()).increment(1);
}
