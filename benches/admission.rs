#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]
//! The admission path of a request, in memory: authenticate an issued key against the key
//! directory, take the request from its rate limits (requests and tokens per minute) from a
//! leased stretch of timeline, reserve its maximum cost on its budgets (its own daily budget and
//! its team's monthly one) from a warm slice, and settle the real cost. Target: under 2 µs
//! together. Counting the prompt's tokens, needed only for a tokens limit or a short budget
//! slice, is measured on its own (`budget_ceiling_token_count`).
//!
//! Run: `cargo bench --bench admission`.

use criterion::{Criterion, criterion_group, criterion_main};
use futures::FutureExt;
use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;
use switchyard::config::{BudgetsConfig, RateLimitsConfig};
use switchyard::events::*;
use switchyard::governance::budgets::{Budgets, Estimate, LeaseOutcome, cost};
use switchyard::governance::rate::{self, Rates, timeline};
use switchyard::governance::{Directory, KeyStore, NewKey, now_ms};
use switchyard::providers::ChatRequest;

const BODY: &str = r#"{"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Summarise the plot of Hamlet in two sentences, please."}],"temperature":0.2,"max_tokens":64}"#;

/// A directory with one issued key (a daily budget) whose team has a monthly budget.
fn directory(key: &NewKey) -> Arc<Directory> {
    let budget = |period, dollars: u64| Budget {
        period,
        limit_nanos: dollars * 1_000_000_000,
        alert_at_percent: vec![80],
    };
    let d = Arc::new(Directory::default());
    let issued = Event::KeyIssued(KeyIssued {
        key_id: key.id.clone(),
        name: "bench".into(),
        secret_sha256: key.secret_sha256(),
        user: Some("ana".into()),
        team: Some("search".into()),
        project: None,
        models: vec![],
        expires_at_ms: None,
        limits: Limits {
            budgets: vec![budget(Period::Daily, 1_000_000)],
            // High enough that the bench's pace never waits for a lease.
            rate: RateLimit {
                requests_per_minute: Some(6_000_000_000),
                tokens_per_minute: Some(600_000_000_000),
            },
        },
        metadata: Default::default(),
    });
    let team = Event::LimitsSet(LimitsSet {
        scope: Scope::new(ScopeKind::Team, "search"),
        limits: Limits {
            budgets: vec![budget(Period::Monthly, 10_000_000)],
            rate: RateLimit::default(),
        },
    });
    d.apply(&[
        (1, Envelope::new(ulid::Ulid::generate(), issued)),
        (2, Envelope::new(ulid::Ulid::generate(), team)),
    ]);
    d.set_ready();
    d
}

fn benches(c: &mut Criterion) {
    let key = NewKey::generate();
    let token = key.full();
    let d = directory(&key);
    let keys = KeyStore::new(&[], Arc::clone(&d));
    let (budgets, mut leases) = Budgets::new(Arc::clone(&d), &BudgetsConfig::default());
    // Warm the slices: the first admission leases (here, from a stand-in for the ledger that
    // grants whatever is asked); every later one spends from memory.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let caller = keys.authenticate(&token, now_ms()).unwrap();
    rt.block_on(async {
        let ledger = {
            let budgets = Arc::clone(&budgets);
            tokio::spawn(async move {
                while let Some(req) = leases.recv().await {
                    budgets.lease_done(
                        &req.account,
                        req.window,
                        LeaseOutcome::Granted {
                            amount: 1_000_000 * 1_000_000_000,
                            left: u64::MAX / 2,
                        },
                    );
                }
            })
        };
        budgets
            .admit(&caller.principal, |_| 1)
            .await
            .unwrap()
            .settle(1);
        ledger.abort();
    });
    let (rates, rate_leases) = Rates::new(Arc::clone(&d), &RateLimitsConfig::default());
    rate_ledger(Arc::clone(&rates), rate_leases);
    let tokens = 90; // the prompt's 26 tokens and its 64-token output ceiling
    // A stretch leased now: an idle meter's lease has lapsed by the time its bench starts.
    let lease_now = || {
        rt.block_on(rates.admit(&caller.principal, "gpt-4o-mini", || tokens))
            .unwrap()
    };
    let limit = |principal: &Principal| {
        rates
            .admit(principal, "gpt-4o-mini", || tokens)
            .now_or_never()
            .expect("a leased stretch admits without waiting")
            .expect("admitted")
    };
    let cost_nanos = 38_400; // 64 output tokens at $0.60 / Mtok
    let admit = |principal: &Principal| {
        budgets
            .admit(principal, |_| cost_nanos)
            .now_or_never()
            .expect("a warm slice admits without waiting")
            .expect("admitted")
    };
    c.bench_function("auth_issued_key", |b| {
        b.iter(|| keys.authenticate(black_box(&token), now_ms()).unwrap())
    });
    c.bench_function("budget_admit_settle", |b| {
        b.iter(|| admit(black_box(&caller.principal)).settle(black_box(30_000)))
    });
    c.bench_function("rate_admit_requests_and_tokens", |b| {
        lease_now();
        b.iter(|| limit(black_box(&caller.principal)))
    });
    c.bench_function("admission_auth_budget_settle", |b| {
        b.iter(|| {
            let caller = keys.authenticate(black_box(&token), now_ms()).unwrap();
            admit(&caller.principal).settle(black_box(30_000));
        })
    });
    c.bench_function("admission_auth_limits_budget_settle", |b| {
        lease_now();
        b.iter(|| {
            let caller = keys.authenticate(black_box(&token), now_ms()).unwrap();
            black_box(limit(&caller.principal));
            admit(&caller.principal).settle(black_box(30_000));
        })
    });
    // Pricing a request needs its prompt tokens, only when a budget applies: bounded by the
    // prompt's bytes while the slice has room, counted with the tokenizer when it is short.
    let req: ChatRequest = serde_json::from_str(BODY).unwrap();
    c.bench_function("budget_ceiling_bound", |b| {
        b.iter(|| cost::ceiling(cost::Ask::Chat(black_box(&req)), 4096, Estimate::Bound))
    });
    c.bench_function("budget_ceiling_token_count", |b| {
        b.iter(|| cost::ceiling(cost::Ask::Chat(black_box(&req)), 4096, Estimate::Exact))
    });
}

/// A stand-in for the rate ledger on its own thread: one timeline per meter, leased as the
/// JetStream ledger leases it, without the round trip. Admission prefetches the next stretch
/// while half the current one is left, so the measured path never waits for it.
fn rate_ledger(rates: Arc<Rates>, mut leases: tokio::sync::mpsc::Receiver<rate::LeaseRequest>) {
    std::thread::spawn(move || {
        let mut tats: HashMap<(Scope, rate::Unit), u64> = HashMap::new();
        while let Some(req) = leases.blocking_recv() {
            let tat = tats
                .entry((req.meter.scope.clone(), req.meter.unit))
                .or_insert(0);
            let now = rate::now_ns();
            let outcome =
                match timeline::lease_span(*tat, now, req.min_ns, req.size_ns, req.tolerance) {
                    Some((start, end)) => {
                        let before = std::mem::replace(tat, end);
                        rate::LeaseOutcome::Granted { before, start, end }
                    }
                    None => rate::LeaseOutcome::Saw { tat: *tat },
                };
            rates.lease_done(&req, outcome);
        }
    });
}

criterion_group!(admission, benches);
criterion_main!(admission);
