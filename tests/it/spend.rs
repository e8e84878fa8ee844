//! The budgets projection: totals against the pricing table, the admin API, and replay = live.

use crate::harness::*;
use std::collections::BTreeMap;
use std::time::Duration;
use switchyard::projections::budgets::{BudgetsStore, Dimension, day_today};
use switchyard_mock::MockConfig;

async fn spend(gw: &Gateway, group_by: &str) -> serde_json::Value {
    let r = client()
        .get(gw.url(&format!("/admin/spend?group_by={group_by}")))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

fn by_name(report: &serde_json::Value, dim: &str) -> BTreeMap<String, serde_json::Value> {
    report["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            (
                row[dim].as_str().unwrap_or("(none)").to_owned(),
                row.clone(),
            )
        })
        .collect()
}

fn all_dims(store: &BudgetsStore) -> Vec<Vec<switchyard::projections::budgets::SpendRow>> {
    let today = day_today();
    Dimension::ALL
        .iter()
        .map(|d| store.spend(*d, today - 1, today + 1).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spend_totals_match_the_pricing_table_and_replay_equals_live() {
    let nats = Nats::start();
    let mock = Mock::start(MockConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = TestConfig::new(&nats, &mock, dir.path());
    let gw = Gateway::start(cfg.build()).await;

    // alice: 5 priced requests (3 plain, 2 streamed), bob: 3 priced + 2 unpriced
    let mut expected: BTreeMap<&str, (u64, u64, u64, u64)> = BTreeMap::new(); // key → (requests, in, out, nanos)
    let plan: Vec<(&str, &str, &str, bool)> = vec![
        ("alice-key", KEY, "gpt-4o-mini", false),
        ("alice-key", KEY, "gpt-4o-mini", false),
        ("alice-key", KEY, "gpt-4o-mini", false),
        ("alice-key", KEY, "gpt-4o-mini", true),
        ("alice-key", KEY, "gpt-4o-mini", true),
        ("bob-key", KEY2, "gpt-4o-mini", false),
        ("bob-key", KEY2, "gpt-4o-mini", false),
        ("bob-key", KEY2, "gpt-4o-mini", false),
        ("bob-key", KEY2, "unpriced", false),
        ("bob-key", KEY2, "unpriced", false),
    ];
    for (i, (id, key, model, stream)) in plan.iter().enumerate() {
        let mut body = chat_body(
            model,
            &format!("request number {i} with a few more words"),
            *stream,
        );
        if *stream {
            body["stream_options"] = serde_json::json!({"include_usage": true});
        }
        let r = post_chat(&gw, key, &body).await;
        assert_eq!(r.status(), 200);
        let usage = if *stream {
            let text = r.text().await.unwrap();
            let frame = text
                .split("\n\n")
                .filter(|f| f.contains("\"usage\":{"))
                .last()
                .unwrap()
                .trim_start_matches("data: ")
                .to_owned();
            serde_json::from_str::<serde_json::Value>(&frame).unwrap()["usage"].clone()
        } else {
            r.json::<serde_json::Value>().await.unwrap()["usage"].clone()
        };
        let (inp, out) = (
            usage["prompt_tokens"].as_u64().unwrap(),
            usage["completion_tokens"].as_u64().unwrap(),
        );
        let nanos = if *model == "gpt-4o-mini" {
            inp * 150 + out * 600
        } else {
            0
        };
        let e = expected.entry(id).or_default();
        *e = (e.0 + 1, e.1 + inp, e.2 + out, e.3 + nanos);
    }

    let report = wait_for("projection caught up", Duration::from_secs(15), || async {
        let r = spend(&gw, "key").await;
        let rows = by_name(&r, "key");
        let total: u64 = rows.values().map(|v| v["requests"].as_u64().unwrap()).sum();
        (total == 10).then_some(r)
    })
    .await;
    let rows = by_name(&report, "key");
    for (id, (n, inp, out, nanos)) in &expected {
        let row = &rows[*id];
        assert_eq!(row["requests"], *n, "{id}");
        assert_eq!(row["input_tokens"], *inp, "{id}");
        assert_eq!(row["output_tokens"], *out, "{id}");
        assert_eq!(row["cost_nanos"], *nanos, "{id}");
    }
    assert_eq!(report["currency"], "USD");
    let alice_nanos = expected["alice-key"].3;
    assert_eq!(rows["alice-key"]["cost"], format!("0.{alice_nanos:09}"));

    let teams = by_name(&spend(&gw, "team").await, "team");
    assert_eq!(teams["platform"]["requests"], 5);
    assert_eq!(teams["research"]["requests"], 5);
    let projects = by_name(&spend(&gw, "project").await, "project");
    assert_eq!(projects["search"]["requests"], 5);
    assert_eq!(
        projects["(none)"]["requests"], 5,
        "bob's key has no project label"
    );
    let models = by_name(&spend(&gw, "model").await, "model");
    assert_eq!(models["unpriced"]["cost_nanos"], 0);
    assert_eq!(models["unpriced"]["requests"], 2);
    let users = by_name(&spend(&gw, "user").await, "user");
    assert_eq!(users.len(), 2);

    // admin auth and parameter checks
    let c = client();
    let r = c
        .get(gw.url("/admin/spend?group_by=key"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = c
        .get(gw.url("/admin/spend?group_by=key"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "a virtual key is not an admin token");
    let r = c
        .get(gw.url("/admin/spend?group_by=planet"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = c
        .get(gw.url("/admin/spend?group_by=key&from=2020-13-01"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = c
        .get(gw.url("/admin/spend?group_by=key&from=2000-01-01&to=2000-01-02"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    let j: serde_json::Value = r.json().await.unwrap();
    assert!(j["data"].as_array().unwrap().is_empty(), "no spend in 2000");

    gw.stop().await;

    // Replay equals live: read the live store, rebuild it from the stream, compare everything.
    let built = cfg.build();
    let path = built.budgets_path();
    let (live, live_checkpoint) = {
        let store = BudgetsStore::open(&path).unwrap();
        (all_dims(&store), store.checkpoint().unwrap())
    };
    let checkpoint = switchyard::app::replay_budgets(built, |_, _| {})
        .await
        .unwrap();
    let store = BudgetsStore::open(&path).unwrap();
    assert_eq!(checkpoint, live_checkpoint);
    assert_eq!(
        all_dims(&store),
        live,
        "replay gives exactly the live state"
    );
    // and replaying twice changes nothing
    drop(store);
    let again = switchyard::app::replay_budgets(cfg.build(), |_, _| {})
        .await
        .unwrap();
    assert_eq!(again, checkpoint);
    assert_eq!(all_dims(&BudgetsStore::open(&path).unwrap()), live);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_projection_can_run_in_its_own_process() {
    let nats = Nats::start();
    let mock = Mock::start(MockConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = TestConfig::new(&nats, &mock, dir.path());
    cfg.budgets_in_process = false;
    let gw = Gateway::start(cfg.build()).await;
    for _ in 0..4 {
        let r = post_chat(&gw, KEY, &chat_body("gpt-4o-mini", "hi there", false)).await;
        assert_eq!(r.status(), 200);
    }
    // the gateway does not run the projection, and says where to ask
    let r = client()
        .get(gw.url("/admin/spend?group_by=key"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let j: serde_json::Value = r.json().await.unwrap();
    assert_eq!(j["error"]["code"], "projection_elsewhere");

    // `switchyard consume budgets --listen` equivalent
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let consumer = tokio::spawn(switchyard::app::consume_budgets(
        cfg.build(),
        Some(listener),
        stop.clone(),
    ));
    let report = wait_for("standalone projection", Duration::from_secs(15), || async {
        let r = client()
            .get(format!("http://{addr}/admin/spend?group_by=team"))
            .bearer_auth(ADMIN)
            .send()
            .await
            .ok()?;
        let j: serde_json::Value = r.json().await.ok()?;
        (j["data"][0]["requests"] == 4).then_some(j)
    })
    .await;
    assert_eq!(report["data"][0]["team"], "platform");
    stop.cancel();
    consumer.await.unwrap().unwrap();
    gw.stop().await;
}

/// Spend requests counted by the projection so far, over every key.
async fn counted(gw: &Gateway) -> u64 {
    let r = spend(gw, "key").await;
    r["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["requests"].as_u64().unwrap())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_projection_stops_before_an_event_from_a_newer_build_instead_of_skipping_it() {
    let nats = Nats::start();
    let mock = Mock::start(MockConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(TestConfig::new(&nats, &mock, dir.path()).build()).await;
    let ok = post_chat(&gw, KEY, &chat_body("gpt-4o-mini", "one", false)).await;
    assert_eq!(ok.status(), 200);
    wait_for("first spend counted", Duration::from_secs(15), || async {
        (counted(&gw).await == 1).then_some(())
    })
    .await;

    // A spend event written by a future build (schema 99), then ordinary ones after it.
    let client = async_nats::connect(nats.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let mut future_event = 99u16.to_le_bytes().to_vec();
    future_event.extend_from_slice(b"a payload this build cannot read");
    js.publish(switchyard::events::SPEND_SUBJECT, future_event.into())
        .await
        .unwrap()
        .await
        .unwrap();
    for text in ["two", "three"] {
        let r = post_chat(&gw, KEY, &chat_body("gpt-4o-mini", text, false)).await;
        assert_eq!(r.status(), 200);
    }
    wait_drained(&gw).await;
    // The projection holds before the unreadable event: what came after is not applied past
    // it (it would be lost to this store for good), and the lag says so.
    let lag = wait_for(
        "the projection reports its lag",
        Duration::from_secs(15),
        || async {
            let lag = readyz(&gw).await["projections"]["budgets"]["lag"]
                .as_u64()
                .unwrap();
            (lag >= 3).then_some(lag)
        },
    )
    .await;
    assert_eq!(lag, 3, "the newer event and the two after it");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(counted(&gw).await, 1);
    gw.stop().await;
}
