//! Budgets that hold exactly: 400 concurrent requests of known cost against a $1.00 budget,
//! through one gateway and through two gateway processes sharing one NATS; failed requests and
//! streams cancelled mid-way leave nothing reserved; a team's budget binds every key of the
//! team; refusals name the budget; `/admin/budgets` after a replay equals the live one; a
//! threshold crossing is published once and posted to the webhook, retried after a failure.
//!
//! Requests use the model `metered`, priced by a pricing file of the test's own at $0 input and
//! $1,000 per million output tokens, with `max_tokens: 10` and a mock that always writes more
//! than 10 words: each request reserves and costs exactly $0.01.

use crate::harness::*;
use futures::StreamExt;
use reqwest::Method;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use switchyard::events::Event;
use switchyard_mock::MockConfig;

const CENT: u64 = 10_000_000;
const DOLLAR: u64 = 1_000_000_000;

/// A test config whose `metered` model costs $0.001 per output token and nothing per input.
fn metered(nats: &Nats, mock: &Mock, dir: &std::path::Path) -> TestConfig {
    std::fs::create_dir_all(dir).unwrap();
    let pricing = dir.join("pricing.toml");
    std::fs::write(
        &pricing,
        "currency = \"USD\"\n[models.metered-1]\ninput_per_mtok = 0.0\noutput_per_mtok = 1000.0\n[models.metered-2]\ninput_per_mtok = 0.0\noutput_per_mtok = 1000.0\n",
    )
    .unwrap();
    let mut cfg = TestConfig::new(nats, mock, dir);
    cfg.pricing = pricing;
    cfg.extra = r#"
[[models]]
name = "metered"
deployments = [{ provider = "mock", model = "metered-1" }]
"#
    .into();
    cfg
}

fn mock_config() -> MockConfig {
    MockConfig {
        // every request in flight at once, and more words than max_tokens allows
        latency_ms: 50,
        stream_words: 16,
        ..MockConfig::default()
    }
}

/// A one-cent request: 10 output tokens at $0.001.
fn cent_body(stream: bool) -> Value {
    json!({"model": "metered", "max_tokens": 10, "stream": stream,
           "messages": [{"role": "user", "content": "spend one cent please"}]})
}

async fn issue(base: &str, body: Value) -> (String, String) {
    let r = admin(Method::POST, format!("{base}/admin/keys"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let v: Value = r.json().await.unwrap();
    (
        v["id"].as_str().unwrap().to_owned(),
        v["key"].as_str().unwrap().to_owned(),
    )
}

async fn chat(client: &reqwest::Client, base: &str, key: &str, body: &Value) -> (u16, Value) {
    let r = client
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth(key)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// `GET /admin/budgets` filtered to one scope.
async fn budgets(base: &str, scope: &str, name: &str) -> Vec<Value> {
    let v: Value = admin(
        Method::GET,
        format!("{base}/admin/budgets?scope={scope}&name={name}"),
    )
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    v["data"].as_array().unwrap().clone()
}

/// Settled spend of key `id` in the stream (every instance's `SpendRecorded`).
async fn settled(nats: &Nats, id: &str) -> u64 {
    read_events(&nats.url())
        .await
        .iter()
        .filter_map(|(_, e, _)| match &e.event {
            Event::SpendRecorded(s) if s.principal.key_id == id => Some(s.cost_nanos),
            _ => None,
        })
        .sum()
}

/// 400 one-cent requests at once, spread over `bases`; returns (admitted, refused) per base.
async fn hammer(bases: &[String], key: &str) -> Vec<(usize, usize)> {
    let client = client();
    // Each instance counts tokens at admission: make it load its tokenizer first (a debug
    // build takes seconds), with a key of its own, so the burst meets every instance ready.
    let (_, warm) = issue(
        &bases[0],
        json!({"name": "warm-up", "budgets": [{"period": "daily", "limit": "1"}]}),
    )
    .await;
    for base in bases {
        wait_for(
            "the instance knows the warm-up key",
            Duration::from_secs(5),
            || {
                let (client, base, warm) = (client.clone(), base.clone(), warm.clone());
                async move {
                    (chat(&client, &base, &warm, &cent_body(false)).await.0 == 200).then_some(())
                }
            },
        )
        .await;
    }
    let calls = (0..400).map(|i| {
        let (client, base) = (client.clone(), bases[i % bases.len()].clone());
        async move {
            (
                i % bases.len(),
                chat(&client, &base, key, &cent_body(false)).await,
            )
        }
    });
    let results = futures::future::join_all(calls).await;
    let mut counts = vec![(0, 0); bases.len()];
    for (at, (status, body)) in results {
        match status {
            200 => counts[at].0 += 1,
            429 => {
                assert_eq!(body["error"]["code"], "budget_exceeded", "{body}");
                counts[at].1 += 1;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    counts
}

/// The proof through one gateway: never more than the dollar, at least 95 cents of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_hundred_concurrent_requests_never_pass_a_dollar_on_one_instance() {
    let nats = Nats::start();
    let mock = Mock::start(mock_config()).await;
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(metered(&nats, &mock, dir.path()).build()).await;
    let base = gw.url("");
    let (id, key) = issue(
        &base,
        json!({"name": "proof", "budgets": [{"period": "daily", "limit": "1.00"}]}),
    )
    .await;
    let started = Instant::now();
    let [(ok, refused)] = hammer(std::slice::from_ref(&base), &key).await[..] else {
        unreachable!()
    };
    let took = started.elapsed();
    wait_drained(&gw).await;
    let spent = settled(&nats, &id).await;
    println!(
        "one instance: {ok} admitted, {refused} refused in {took:?}; settled spend {spent} n$ of {DOLLAR}"
    );
    assert!(spent <= DOLLAR, "settled {spent} past the dollar");
    assert!(spent >= DOLLAR * 95 / 100, "settled only {spent}");
    assert_eq!(
        spent,
        ok as u64 * CENT,
        "each admitted request cost one cent"
    );
    // nothing left reserved; the projection agrees with the stream
    let b = wait_for(
        "the projection has every spend",
        Duration::from_secs(10),
        || {
            let base = base.clone();
            let id = id.clone();
            async move {
                let b = budgets(&base, "key", &id).await;
                (b[0]["spent_nanos"] == spent).then_some(b)
            }
        },
    )
    .await;
    assert_eq!(b[0]["reserved_nanos"], 0, "{b:?}");
    assert!(b[0]["leased_nanos"].as_u64().unwrap() <= DOLLAR, "{b:?}");
    assert_eq!(b[0]["remaining_nanos"], DOLLAR - spent);
    gw.stop().await;
}

/// The proof through two gateway processes on one NATS: the cap is the total.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_hundred_concurrent_requests_never_pass_a_dollar_on_two_instances() {
    let nats = Nats::start();
    let mock = Mock::start(mock_config()).await;
    let dir = tempfile::tempdir().unwrap();
    let a = GatewayProcess::start(&metered(&nats, &mock, &dir.path().join("a"))).await;
    let b = GatewayProcess::start(&metered(&nats, &mock, &dir.path().join("b"))).await;
    let (id, key) = issue(
        &a.base,
        json!({"name": "proof", "budgets": [{"period": "daily", "limit": "1.00"}]}),
    )
    .await;
    wait_for("B knows the key", Duration::from_secs(5), || {
        let (base, key) = (b.base.clone(), key.clone());
        async move {
            let r = client()
                .get(format!("{base}/v1/models"))
                .bearer_auth(&key)
                .send()
                .await
                .ok()?;
            (r.status() == 200).then_some(())
        }
    })
    .await;
    let started = Instant::now();
    let per = hammer(&[a.base.clone(), b.base.clone()], &key).await;
    let took = started.elapsed();
    let ok: usize = per.iter().map(|p| p.0).sum();
    let refused: usize = per.iter().map(|p| p.1).sum();
    let spent = wait_for(
        "every spend is in the stream",
        Duration::from_secs(15),
        || {
            let id = id.clone();
            let nats = &nats;
            async move {
                let s = settled(nats, &id).await;
                (s == ok as u64 * CENT).then_some(s)
            }
        },
    )
    .await;
    println!(
        "two instances: {ok} admitted (A {}, B {}), {refused} refused in {took:?}; settled spend {spent} n$ of {DOLLAR}",
        per[0].0, per[1].0
    );
    assert!(spent <= DOLLAR, "settled {spent} past the dollar");
    assert!(spent >= DOLLAR * 95 / 100, "settled only {spent}");
    let mut leased = None;
    for gw in [&a, &b] {
        let v = budgets(&gw.base, "key", &id).await;
        assert_eq!(v[0]["reserved_nanos"], 0, "{v:?}");
        let l = v[0]["leased_nanos"].as_u64().unwrap();
        assert!(l <= DOLLAR, "{v:?}");
        assert!(leased.is_none_or(|x| x == l), "both read one ledger");
        leased = Some(l);
    }
    let events = read_events(&nats.url()).await;
    let leases: Vec<_> = events
        .iter()
        .filter_map(|(_, e, _)| match &e.event {
            Event::BudgetLeased(l) => Some(l.clone()),
            _ => None,
        })
        .collect();
    let instances: std::collections::HashSet<_> = leases.iter().map(|l| &l.instance).collect();
    println!(
        "{} lease events from {} instance(s)",
        leases.len(),
        instances.len()
    );
    assert!(leases.iter().all(|l| l.total_nanos <= DOLLAR));
}

/// Failed requests and streams cancelled mid-way free what they reserved: afterwards the whole
/// budget is still there to spend, and nothing is reserved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_and_mid_stream_cancels_leave_nothing_reserved() {
    let nats = Nats::start();
    let mock = Mock::start(mock_config()).await;
    let broken = Mock::start(MockConfig {
        fail_rate: 1.0,
        fail_status: 500,
        ..mock_config()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = metered(&nats, &mock, dir.path());
    cfg.extra.push_str(&format!(
        r#"
[providers.broken]
kind = "openai"
base_url = "{}"

[[models]]
name = "broken"
deployments = [{{ provider = "broken", model = "metered-2" }}]
"#,
        broken.base_url()
    ));
    let gw = Gateway::start(cfg.build()).await;
    let base = gw.url("");
    let (id, key) = issue(
        &base,
        json!({"name": "cancels", "budgets": [{"period": "lifetime", "limit": "0.10"}]}),
    )
    .await;
    let client = client();
    // upstream failures (502, then 503 once the breaker opens): nothing spent
    let mut failing = cent_body(false);
    failing["model"] = json!("broken");
    for _ in 0..20 {
        let (s, body) = chat(&client, &base, &key, &failing).await;
        assert!(s == 502 || s == 503, "{s} {body}");
    }
    assert_eq!(budgets(&base, "key", &id).await[0]["reserved_nanos"], 0);
    // streams dropped after their first word
    mock.state.set_config(MockConfig {
        chunk_delay_ms: 200,
        ..mock_config()
    });
    for _ in 0..10 {
        let r = client
            .post(format!("{base}/v1/chat/completions"))
            .bearer_auth(&key)
            .json(&cent_body(true))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let mut body = r.bytes_stream();
        let mut seen = Vec::new();
        while !String::from_utf8_lossy(&seen).contains("spend") {
            seen.extend_from_slice(&body.next().await.unwrap().unwrap());
        }
        drop(body);
    }
    mock.state.set_config(mock_config());
    // Settled (nothing reserved) and recorded: the spend the stream projects has stopped moving
    // (a reservation is released at once, its SpendRecorded is projected a moment later).
    let cancelled = wait_for("every cancel is settled", Duration::from_secs(10), || {
        let base = base.clone();
        let id = id.clone();
        async move {
            let b = budgets(&base, "key", &id).await;
            tokio::time::sleep(Duration::from_millis(300)).await;
            let again = budgets(&base, "key", &id).await;
            let spent = again[0]["spent_nanos"].as_u64()?;
            (again[0]["reserved_nanos"] == 0 && spent > 0 && b[0]["spent_nanos"] == spent)
                .then_some(spent)
        }
    })
    .await;
    // a cancelled stream pays for what it received: less than a cent each
    assert!(cancelled < 10 * CENT, "{cancelled}");
    // everything not spent can still be spent, to the nano-dollar
    let mut admitted = 0;
    loop {
        let (s, body) = chat(&client, &base, &key, &cent_body(false)).await;
        if s == 429 {
            assert_eq!(body["error"]["code"], "budget_exceeded");
            break;
        }
        assert_eq!(s, 200, "{body}");
        admitted += 1;
    }
    assert_eq!(admitted, (10 * CENT - cancelled) / CENT);
    let b = wait_for(
        "the last spend is recorded",
        Duration::from_secs(10),
        || {
            let base = base.clone();
            let id = id.clone();
            async move {
                let b = budgets(&base, "key", &id).await;
                (b[0]["spent_nanos"] == cancelled + admitted * CENT).then_some(b)
            }
        },
    )
    .await;
    assert_eq!(b[0]["reserved_nanos"], 0);
    gw.stop().await;
}

/// A team's (and a user's) budget binds every key of the team (the user); the refusal names the
/// budget, on both surfaces; `/admin/budgets` after `replay budgets` is the live one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_team_budget_binds_all_its_keys_and_replays_to_the_same_state() {
    let nats = Nats::start();
    let mock = Mock::start(mock_config()).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = metered(&nats, &mock, dir.path());
    let gw = Gateway::start(cfg.build()).await;
    let base = gw.url("");
    let r = admin(Method::PUT, gw.url("/admin/limits/team/search"))
        .json(&json!({"budgets": [{"period": "daily", "limit": "0.03"}, {"period": "monthly", "limit": "10"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let r = admin(Method::PUT, gw.url("/admin/limits/model/metered"))
        .json(&json!({"budgets": [{"period": "daily", "limit": "1"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "budgets are not for models");
    let (_, ana) = issue(
        &base,
        json!({"name": "ana", "team": "search", "user": "ana"}),
    )
    .await;
    let (_, bo) = issue(&base, json!({"name": "bo", "team": "search"})).await;
    let (_, other) = issue(&base, json!({"name": "other", "team": "ads"})).await;
    let client = client();
    for key in [&ana, &bo, &ana] {
        assert_eq!(chat(&client, &base, key, &cent_body(false)).await.0, 200);
    }
    let (s, body) = chat(&client, &base, &bo, &cent_body(false)).await;
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (429, Some("budget_exceeded"))
    );
    assert_eq!(body["error"]["type"], "rate_limit_error");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with(
            "Budget exceeded for team \"search\": daily limit 0.030000000 USD, resets at "
        ) && message.ends_with("T00:00:00Z."),
        "{message}"
    );
    // the Messages surface refuses in its own shape, with Retry-After until the reset
    let r = client
        .post(gw.url("/v1/messages"))
        .header("x-api-key", &ana)
        .json(&json!({"model": "metered", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    let retry_after: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=86_400).contains(&retry_after), "{retry_after}");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "rate_limit_error");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("team \"search\"")
    );
    // another team is not bound by it
    assert_eq!(chat(&client, &base, &other, &cent_body(false)).await.0, 200);
    // a user's budget binds every key of the user the same way
    let r = admin(Method::PUT, gw.url("/admin/limits/user/zed"))
        .json(&json!({"budgets": [{"period": "weekly", "limit": "0.02"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (_, zed1) = issue(&base, json!({"name": "zed laptop", "user": "zed"})).await;
    let (_, zed2) = issue(&base, json!({"name": "zed ci", "user": "zed"})).await;
    for key in [&zed1, &zed2] {
        assert_eq!(chat(&client, &base, key, &cent_body(false)).await.0, 200);
    }
    let (s, body) = chat(&client, &base, &zed1, &cent_body(false)).await;
    assert_eq!(s, 429, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("user \"zed\": weekly limit 0.020000000 USD"),
        "{message}"
    );

    let live = wait_for(
        "the projection has the spend",
        Duration::from_secs(10),
        || {
            let base = base.clone();
            async move {
                let b = budgets(&base, "team", "search").await;
                (b.len() == 2 && b[0]["spent_nanos"] == 3 * CENT).then_some(b)
            }
        },
    )
    .await;
    assert_eq!(live[0]["period"], "daily");
    assert_eq!(live[0]["remaining_nanos"], 0);
    assert_eq!(live[1]["period"], "monthly");
    assert_eq!(live[1]["spent_nanos"], 3 * CENT);
    gw.stop().await;

    let replayed_to = switchyard::app::replay_budgets(cfg.build(), |_, _| {})
        .await
        .unwrap();
    assert!(replayed_to > 0);
    let gw = Gateway::start(cfg.build()).await;
    let again = wait_for("the directory is back", Duration::from_secs(10), || {
        let base = gw.url("");
        async move {
            let b = budgets(&base, "team", "search").await;
            (b.len() == 2).then_some(b)
        }
    })
    .await;
    // Spend, limits, windows and what remains come back the same. What instances hold and
    // have leased is not the projection's: the stopped instance gave its unused money back.
    let stable = |v: &[Value]| -> Vec<Value> {
        v.iter()
            .map(|b| {
                let mut b = b.clone();
                for field in ["held", "held_nanos", "leased", "leased_nanos"] {
                    b.as_object_mut().unwrap().remove(field);
                }
                b
            })
            .collect()
    };
    assert_eq!(stable(&again), stable(&live), "replay = live");
    gw.stop().await;
}

/// A small webhook receiver: answers 500 to the first call, 200 after, and keeps the bodies.
async fn receiver() -> (String, Arc<Mutex<Vec<(u16, Value)>>>) {
    let calls: Arc<Mutex<Vec<(u16, Value)>>> = Arc::default();
    let seen = Arc::clone(&calls);
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
            let seen = Arc::clone(&seen);
            async move {
                let mut calls = seen.lock().unwrap();
                let status = if calls.is_empty() { 500 } else { 200 };
                calls.push((status, body));
                axum::http::StatusCode::from_u16(status).unwrap()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, calls)
}

/// A threshold crossing is recorded once however many instances notice, and the one that
/// recorded it posts it to the webhook, again after a failed first call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_threshold_crossing_is_published_once_and_posted_with_retries() {
    let nats = Nats::start();
    let mock = Mock::start(mock_config()).await;
    let dir = tempfile::tempdir().unwrap();
    let (url, calls) = receiver().await;
    let with_hook = |name: &str| {
        let mut cfg = metered(&nats, &mock, &dir.path().join(name));
        cfg.extra.push_str(&format!(
            "\n[budgets]\nwebhook_url = \"{url}\"\nwebhook_backoff = \"100ms\"\n"
        ));
        cfg.build()
    };
    let a = Gateway::start(with_hook("a")).await;
    let b = Gateway::start(with_hook("b")).await;
    // b is about to serve a key issued on a: it must have read the directory first.
    wait_keys_ready(&b).await;
    let (id, key) = issue(
        &a.url(""),
        json!({"name": "alerts", "budgets": [{"period": "weekly", "limit": "0.05", "alert_at_percent": [50, 90]}]}),
    )
    .await;
    let client = client();
    for base in [a.url(""), b.url(""), a.url("")] {
        let (s, body) = chat(&client, &base, &key, &cent_body(false)).await;
        assert_eq!(s, 200, "{body}");
    }
    // 3 of 5 cents: past 50 %, not 90 %
    let posted = wait_for(
        "the webhook got the crossing",
        Duration::from_secs(15),
        || {
            let calls = Arc::clone(&calls);
            async move {
                let calls = calls.lock().unwrap().clone();
                calls.iter().any(|(s, _)| *s == 200).then_some(calls)
            }
        },
    )
    .await;
    assert_eq!(posted.len(), 2, "a failed call, then its retry: {posted:?}");
    assert_eq!(posted[0].1, posted[1].1, "the retry sends the same body");
    let body = &posted[1].1;
    assert_eq!(body["type"], "budget.threshold_crossed");
    assert_eq!(body["scope"], "key");
    assert_eq!(body["name"], id.as_str());
    assert_eq!(body["period"], "weekly");
    assert_eq!(body["percent"], 50);
    assert_eq!(body["limit"], "0.050000000");
    assert!(body["spent_nanos"].as_u64().unwrap() >= 3 * CENT);
    assert!(body["window"].as_str().unwrap().contains("-W"), "{body}");
    // both instances watched; one event, one call
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let events = read_events(&nats.url()).await;
    assert_eq!(
        count(&events, |e| matches!(e, Event::BudgetThresholdCrossed(_))),
        1
    );
    assert_eq!(calls.lock().unwrap().len(), 2);
    a.stop().await;
    b.stop().await;
}

/// The ledger itself, driven by four NATS connections at once (four instances): every lease is
/// written only over the total it read, so the leases granted sum exactly to the ledger's
/// total, which never passes the limit, and the pool is drained to less than one lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_leases_from_several_instances_never_sum_past_the_limit() {
    use switchyard::events::{BudgetWindow, Period, Scope, ScopeKind};
    use switchyard::governance::budgets::LeaseTerms;
    use switchyard::ledger::Ledger;
    let nats = Nats::start();
    let mock = Mock::start(MockConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = TestConfig::new(&nats, &mock, dir.path()).build();
    let mut ledgers = Vec::new();
    for _ in 0..4 {
        let client = switchyard::publish::jetstream::connect(&nats.url())
            .await
            .unwrap();
        // connected, and the server's INFO read (its version is checked)
        wait_for("the stream is set up", Duration::from_secs(5), || {
            let (c, nats_cfg) = (client.clone(), cfg.nats.clone());
            async move {
                switchyard::publish::jetstream::ensure_stream(&c, &nats_cfg)
                    .await
                    .ok()
                    .map(|_| ())
            }
        })
        .await;
        ledgers.push(Ledger::new(client, cfg.nats.stream.clone()));
    }
    let window = BudgetWindow {
        scope: Scope::new(ScopeKind::Team, "search"),
        period: Period::Monthly,
        window: "2026-11".into(),
    };
    // each lease takes 1 % of what is left, at least 3 cents
    let terms = LeaseTerms {
        limit: DOLLAR,
        min: 3 * CENT,
        deficit: 0,
    };
    let calls = (0..48).map(|i| {
        let (ledger, window) = (ledgers[i % 4].clone(), window.clone());
        async move { ledger.lease(&window, terms, 1, || async { 0 }).await }
    });
    let results = futures::future::join_all(calls).await;
    let granted: u64 = results
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .map(|r| r.0)
        .sum();
    let (_, last) = ledgers[0].last(&window).await.unwrap();
    let total = last.unwrap().total_nanos;
    let refused = results.iter().filter(|r| matches!(r, Ok((0, _)))).count();
    let errors = results.iter().filter(|r| r.is_err()).count();
    println!(
        "48 concurrent leases over 4 connections: {granted} n$ granted, {refused} found the pool dry, {errors} gave up"
    );
    assert_eq!(granted, total, "every grant is in the ledger, once");
    assert!(total <= DOLLAR, "{total}");
    assert!(DOLLAR - total < 3 * CENT, "drained: {total}");
    let events = read_events(&nats.url()).await;
    assert_eq!(
        count(&events, |e| matches!(e, Event::BudgetLeased(_))),
        results
            .iter()
            .filter(|r| matches!(r, Ok((n, _)) if *n > 0))
            .count()
    );
}
