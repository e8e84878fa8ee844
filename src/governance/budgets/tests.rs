//! Admission against an in-memory ledger standing in for the stream: the same lease sizes and
//! the same `total + amount ≤ limit` rule, one instance or several sharing one pool.
#![allow(clippy::disallowed_methods)] // the tests own their tasks

use super::*;
use crate::events::{Budget, Envelope, Event, Limits, LimitsSet};
use std::sync::atomic::AtomicU64;

const DOLLAR: u64 = 1_000_000_000;

fn directory(budgets: &[(Scope, Vec<Budget>)]) -> Arc<Directory> {
    let d = Arc::new(Directory::default());
    let batch: Vec<_> = budgets
        .iter()
        .enumerate()
        .map(|(i, (scope, budgets))| {
            (
                i as u64 + 1,
                Envelope::new(
                    ulid::Ulid::generate(),
                    Event::LimitsSet(LimitsSet {
                        scope: scope.clone(),
                        limits: Limits {
                            budgets: budgets.clone(),
                            ..Limits::default()
                        },
                    }),
                ),
            )
        })
        .collect();
    d.apply(&batch);
    d
}

fn budget(period: Period, limit: u64) -> Budget {
    Budget {
        period,
        limit_nanos: limit,
        alert_at_percent: vec![],
    }
}

fn principal(key: &str, team: Option<&str>) -> Principal {
    Principal {
        key_id: key.into(),
        user: None,
        team: team.map(Into::into),
        project: None,
    }
}

fn config() -> BudgetsConfig {
    BudgetsConfig {
        lease_timeout: Duration::from_secs(5),
        ..BudgetsConfig::default()
    }
}

/// The stream's ledger, reduced to what it guarantees: one total per window, grown only while
/// it stays within the limit. Shared by every "instance" of a test.
#[derive(Default)]
struct Pool {
    totals: Mutex<HashMap<(Scope, Period, Window), u64>>,
    leases: AtomicU64,
}

impl Pool {
    fn total(&self, scope: &Scope, period: Period, window: Window) -> u64 {
        self.totals
            .lock()
            .unwrap()
            .get(&(scope.clone(), period, window))
            .copied()
            .unwrap_or(0)
    }
}

/// Serve one instance's lease requests from `pool`, as `crate::ledger::run` does from the
/// stream (with a little latency, so requests really wait). `down` plays an unreachable NATS.
fn serve_leases(
    budgets: Arc<Budgets>,
    mut rx: mpsc::Receiver<LeaseRequest>,
    pool: Arc<Pool>,
    down: Arc<AtomicBool>,
) {
    tokio::spawn(async move {
        while let Some(req) = rx.recv().await {
            tokio::time::sleep(Duration::from_micros(200)).await;
            let Some(terms) = budgets.lease_terms(&req.account, req.window, req.min) else {
                budgets.lease_done(&req.account, req.window, LeaseOutcome::Unavailable);
                continue;
            };
            if down.load(Ordering::Relaxed) {
                budgets.lease_done(&req.account, req.window, LeaseOutcome::Unavailable);
                continue;
            }
            let outcome = {
                let mut totals = pool.totals.lock().unwrap();
                let total = totals
                    .entry((req.account.scope.clone(), req.account.period, req.window))
                    .or_default();
                let left = terms.limit.saturating_sub(*total);
                let amount = terms.amount(left, budgets.lease_percent);
                *total += amount;
                LeaseOutcome::Granted {
                    amount,
                    left: left - amount,
                }
            };
            pool.leases.fetch_add(1, Ordering::Relaxed);
            budgets.lease_done(&req.account, req.window, outcome);
        }
    });
}

fn instance(
    d: &Arc<Directory>,
    pool: &Arc<Pool>,
    cfg: &BudgetsConfig,
) -> (Arc<Budgets>, Arc<AtomicBool>) {
    let (b, rx) = Budgets::new(Arc::clone(d), cfg);
    let down = Arc::new(AtomicBool::new(false));
    serve_leases(Arc::clone(&b), rx, Arc::clone(pool), Arc::clone(&down));
    (b, down)
}

fn view(b: &Budgets, scope: &Scope, period: Period) -> LocalView {
    b.local_views()
        .into_iter()
        .find(|v| v.scope == *scope && v.period == period)
        .unwrap()
}

#[tokio::test]
async fn no_budget_no_reservation_and_no_token_count() {
    let d = directory(&[]);
    let (b, _rx) = Budgets::new(d, &config());
    let r = b
        .admit(&principal("k", Some("t")), |_| {
            panic!("cost asked without a budget")
        })
        .await
        .unwrap();
    assert_eq!(r.amount(), 0);
}

/// 400 requests at once, a cent each, against a dollar, through one instance and through two
/// sharing the pool: never more than the dollar settled, and at least 95 cents.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_never_pass_the_cap() {
    for instances in [1usize, 2] {
        let key = Scope::new(ScopeKind::Key, "k");
        let d = directory(&[(key.clone(), vec![budget(Period::Daily, DOLLAR)])]);
        let pool = Arc::new(Pool::default());
        let all: Vec<_> = (0..instances)
            .map(|_| instance(&d, &pool, &config()).0)
            .collect();
        let cent = DOLLAR / 100;
        let mut tasks = Vec::new();
        for i in 0..400 {
            let b = Arc::clone(&all[i % instances]);
            tasks.push(tokio::spawn(async move {
                let r = b.admit(&principal("k", None), |_| cent).await;
                tokio::time::sleep(Duration::from_millis(1)).await;
                match r {
                    Ok(r) => {
                        r.settle(cent);
                        cent
                    }
                    Err(Refusal::Exceeded { .. }) => 0,
                    Err(other) => panic!("{other:?}"),
                }
            }));
        }
        let mut spent = 0;
        for t in tasks {
            spent += t.await.unwrap();
        }
        let window = Window::at(Period::Daily, crate::governance::now_ms());
        assert!(spent <= DOLLAR, "{instances} instance(s): spent {spent}");
        assert!(
            spent >= DOLLAR * 95 / 100,
            "{instances} instance(s): spent only {spent}"
        );
        assert!(pool.total(&key, Period::Daily, window) <= DOLLAR);
        for b in &all {
            let v = view(b, &key, Period::Daily);
            assert_eq!(v.reserved, 0);
            assert!(v.spent <= v.held);
        }
        println!(
            "{instances} instance(s): spent {spent} of {DOLLAR} with {} leases",
            pool.leases.load(Ordering::Relaxed)
        );
    }
}

#[tokio::test]
async fn every_budget_or_none_and_the_refusal_names_it() {
    let key = Scope::new(ScopeKind::Key, "k");
    let team = Scope::new(ScopeKind::Team, "search");
    let d = directory(&[
        (key.clone(), vec![budget(Period::Lifetime, 10 * DOLLAR)]),
        (
            team.clone(),
            vec![
                budget(Period::Daily, DOLLAR),
                budget(Period::Monthly, 3 * DOLLAR),
            ],
        ),
    ]);
    let pool = Arc::new(Pool::default());
    let (b, _) = instance(&d, &pool, &config());
    let p = principal("k", Some("search"));
    let r = b.admit(&p, |_| DOLLAR / 2).await.unwrap();
    assert_eq!(view(&b, &key, Period::Lifetime).reserved, DOLLAR / 2);
    assert_eq!(view(&b, &team, Period::Monthly).reserved, DOLLAR / 2);
    r.settle(DOLLAR / 4);
    // 0.75 more fits the team's day exactly (0.25 of 1.00 is spent) …
    let r = b.admit(&p, |_| DOLLAR * 3 / 4).await.unwrap();
    drop(r);
    // … 0.80 is not: refused by the team's daily budget, and nothing stays reserved anywhere
    let refused = b.admit(&p, |_| DOLLAR * 4 / 5).await.unwrap_err();
    let Refusal::Exceeded {
        scope,
        period,
        limit_nanos,
        window,
    } = &refused
    else {
        panic!("{refused:?}")
    };
    assert_eq!(
        (scope, *period, *limit_nanos),
        (&team, Period::Daily, DOLLAR)
    );
    assert_eq!(refused.resets_ms(), window.resets_ms());
    assert!(refused.resets_at().unwrap().ends_with("T00:00:00Z"));
    for (s, p) in [
        (&key, Period::Lifetime),
        (&team, Period::Daily),
        (&team, Period::Monthly),
    ] {
        assert_eq!(view(&b, s, p).reserved, 0, "{s} {p:?}");
    }
    // what was settled counts on every budget of the caller
    assert_eq!(view(&b, &key, Period::Lifetime).spent, DOLLAR / 4);
    assert_eq!(view(&b, &team, Period::Daily).spent, DOLLAR / 4);
}

#[tokio::test]
async fn a_dropped_reservation_frees_everything_and_settles_once() {
    let key = Scope::new(ScopeKind::Key, "k");
    let d = directory(&[(key.clone(), vec![budget(Period::Daily, DOLLAR)])]);
    let pool = Arc::new(Pool::default());
    let (b, _) = instance(&d, &pool, &config());
    let p = principal("k", None);
    let r = b.admit(&p, |_| DOLLAR / 10).await.unwrap();
    assert_eq!(view(&b, &key, Period::Daily).reserved, DOLLAR / 10);
    drop(r); // a failed request, a cancelled stream
    assert_eq!(view(&b, &key, Period::Daily).reserved, 0);
    assert_eq!(view(&b, &key, Period::Daily).spent, 0);
    let r = b.admit(&p, |_| DOLLAR / 10).await.unwrap();
    r.settle(3);
    r.settle(5);
    drop(r);
    let v = view(&b, &key, Period::Daily);
    assert_eq!((v.reserved, v.spent), (0, 3));
}

#[tokio::test]
async fn an_unreachable_ledger_refuses_or_admits_on_credit_as_configured() {
    let key = Scope::new(ScopeKind::Key, "k");
    let d = directory(&[(key.clone(), vec![budget(Period::Daily, DOLLAR)])]);
    let pool = Arc::new(Pool::default());
    let (b, down) = instance(&d, &pool, &config());
    down.store(true, Ordering::Relaxed);
    let p = principal("k", None);
    assert!(matches!(
        b.admit(&p, |_| 10).await,
        Err(Refusal::Unavailable { .. })
    ));
    let cfg = BudgetsConfig {
        when_ledger_unavailable: LedgerUnavailable::Allow,
        ..config()
    };
    let (b, down) = instance(&d, &pool, &cfg);
    down.store(true, Ordering::Relaxed);
    let r = b.admit(&p, |_| 10).await.expect("admitted on credit");
    r.settle(10);
    // once the ledger is back, the next lease takes the overdraft too
    down.store(false, Ordering::Relaxed);
    tokio::time::sleep(LEDGER_FRESH).await;
    let r = b.admit(&p, |_| 10).await.unwrap();
    r.settle(10);
    let v = view(&b, &key, Period::Daily);
    assert!(v.held >= 20, "{v:?}");
}

#[tokio::test]
async fn the_calendar_rolls_slices_into_a_new_window() {
    let key = Scope::new(ScopeKind::Key, "k");
    let d = directory(&[(key.clone(), vec![budget(Period::Daily, DOLLAR)])]);
    let pool = Arc::new(Pool::default());
    let (b, _) = instance(&d, &pool, &config());
    let p = principal("k", None);
    let mut early = b.admit(&p, |_| DOLLAR / 10).await.unwrap();
    // pretend that slice, and that reservation, were yesterday's (and the day spent out)
    let account = Arc::clone(&b.accounts.read().unwrap()[&key][period_index(Period::Daily)]);
    let today = account.slice().window;
    let yesterday_ms = today.starts_ms() - 1;
    early.windows = Window::all_at(yesterday_ms);
    {
        let mut s = account.slice();
        s.window = Window::at(Period::Daily, yesterday_ms);
        s.held = DOLLAR;
        s.spent = DOLLAR - DOLLAR / 10;
    }
    let r = b
        .admit(&p, |_| DOLLAR / 10)
        .await
        .expect("a new day, a new budget");
    assert_eq!(account.slice().window, today);
    assert_eq!(view(&b, &key, Period::Daily).reserved, DOLLAR / 10);
    // yesterday's reservation settles its cost into today, as its spend event is dated today
    early.settle(7);
    r.settle(1);
    let v = view(&b, &key, Period::Daily);
    assert_eq!((v.reserved, v.spent), (0, 8));
}

#[tokio::test]
async fn unused_money_is_taken_back_only_when_idle_and_kept_on_failure() {
    let key = Scope::new(ScopeKind::Key, "k");
    let d = directory(&[(key.clone(), vec![budget(Period::Daily, DOLLAR)])]);
    let pool = Arc::new(Pool::default());
    let (b, _) = instance(&d, &pool, &config());
    let r = b
        .admit(&principal("k", None), |_| DOLLAR / 100)
        .await
        .unwrap();
    // let any prefetch finish
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(
        b.take_unused(Some(Duration::from_secs(60))).is_empty(),
        "not idle"
    );
    let held = view(&b, &key, Period::Daily).held;
    let taken = b.take_unused(None);
    assert_eq!(taken.len(), 1);
    let (account, window, amount) = &taken[0];
    assert_eq!(*amount, held - DOLLAR / 100, "the reserved part stays");
    assert_eq!(view(&b, &key, Period::Daily).held, DOLLAR / 100);
    b.keep(account, *window, *amount);
    assert_eq!(view(&b, &key, Period::Daily).held, held);
    r.settle(DOLLAR / 100);
}

/// A loose bound is enough while the slice has room; the exact count is asked only when it
/// does not fit, so a budget's last money goes to requests that really fit.
#[tokio::test]
async fn the_exact_cost_is_counted_only_when_the_bound_does_not_fit() {
    let key = Scope::new(ScopeKind::Key, "k");
    let d = directory(&[(key.clone(), vec![budget(Period::Lifetime, 100)])]);
    let pool = Arc::new(Pool::default());
    let (b, _) = instance(&d, &pool, &config());
    let p = principal("k", None);
    let asked = Mutex::new(Vec::new());
    let cost = |e: Estimate| {
        asked.lock().unwrap().push(e);
        if e == Estimate::Bound { 80 } else { 30 }
    };
    // no slice yet: the bound does not fit, the exact cost is reserved
    let r = b.admit(&p, cost).await.unwrap();
    assert_eq!(r.amount(), 30);
    assert_eq!(*asked.lock().unwrap(), [Estimate::Bound, Estimate::Exact]);
    r.settle(30);
    tokio::time::sleep(Duration::from_millis(20)).await;
    // 70 left: the next two fit only counted; a fourth does not fit at all
    for _ in 0..2 {
        b.admit(&p, cost).await.unwrap().settle(30);
    }
    assert!(matches!(
        b.admit(&p, cost).await,
        Err(Refusal::Exceeded { .. })
    ));
    assert_eq!(view(&b, &key, Period::Lifetime).spent, 90);
    // with room to spare, the bound alone is asked
    let d = directory(&[(key.clone(), vec![budget(Period::Lifetime, DOLLAR)])]);
    let (b, _) = instance(&d, &pool, &config());
    b.admit(&p, |_| 1).await.unwrap().settle(1);
    tokio::time::sleep(Duration::from_millis(20)).await;
    asked.lock().unwrap().clear();
    let r = b.admit(&p, cost).await.unwrap();
    assert_eq!(
        (r.amount(), asked.lock().unwrap().clone()),
        (80, vec![Estimate::Bound])
    );
}

#[test]
fn lease_sizes_shrink_with_the_pool_and_cover_the_need() {
    let t = |min, deficit| LeaseTerms {
        limit: DOLLAR,
        min,
        deficit,
    };
    assert_eq!(t(1, 0).amount(DOLLAR, 10), DOLLAR / 10);
    assert_eq!(t(1, 0).amount(DOLLAR / 10, 10), DOLLAR / 100);
    assert_eq!(
        t(DOLLAR / 20, 0).amount(DOLLAR / 10, 10),
        DOLLAR / 20,
        "at least the need"
    );
    assert_eq!(
        t(1, DOLLAR / 3).amount(DOLLAR, 10),
        DOLLAR / 3,
        "what the waiting need"
    );
    assert_eq!(
        t(1, 2 * DOLLAR).amount(DOLLAR, 10),
        DOLLAR / 2,
        "up to half of what is left"
    );
    assert_eq!(
        t(DOLLAR, 0).amount(DOLLAR, 10),
        DOLLAR,
        "all of it for one request that needs it"
    );
    assert_eq!(
        t(DOLLAR / 2, 0).amount(DOLLAR / 4, 10),
        0,
        "not enough left: nothing"
    );
    assert_eq!(t(0, 0).amount(0, 10), 0);
    assert_eq!(t(0, 0).amount(5, 10), 1, "crumbs");
}
