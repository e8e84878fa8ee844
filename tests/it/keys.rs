//! Virtual keys issued at run time: the admin API, the key format, expiry, rotation with grace,
//! revocation, model scoping, and every instance following the same directory through the
//! stream (two gateway processes on one NATS).

use crate::harness::*;
use reqwest::Method;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use switchyard::events::Event;
use switchyard_mock::MockConfig;

async fn create(base: &str, body: Value) -> Value {
    let r = admin(Method::POST, format!("{base}/admin/keys"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    r.json().await.unwrap()
}

async fn chat(base: &str, key: &str, model: &str) -> (u16, Value) {
    let r = client()
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth(key)
        .json(&chat_body(model, "hi", false))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn messages(base: &str, key: &str, model: &str) -> reqwest::Response {
    client()
        .post(format!("{base}/v1/messages"))
        .header("x-api-key", key)
        .json(&json!({"model": model, "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap()
}

async fn get_json(url: String) -> Value {
    admin(Method::GET, url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_is_issued_scoped_rotated_and_revoked() {
    let nats = Nats::start();
    let mock = Mock::start(MockConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(TestConfig::new(&nats, &mock, dir.path()).build()).await;
    let base = gw.url("");

    let k = create(
        &base,
        json!({"name": "search ci", "team": "search", "user": "ana", "models": ["gpt-4o-mini"],
               "metadata": {"ticket": "OPS-1"}, "rate_limit": {"requests_per_minute": 600}}),
    )
    .await;
    let key = k["key"].as_str().unwrap().to_owned();
    let id = k["id"].as_str().unwrap().to_owned();
    assert!(key.starts_with(&format!("sy-{id}-")), "{key}");
    assert_eq!(k["status"], "active");
    assert_eq!(k["rate_limit"]["requests_per_minute"], 600);
    let ready = readyz(&gw).await;
    assert_eq!(ready["projections"]["keys"]["ready"], true, "{ready}");
    assert!(ready["projections"]["keys"]["checkpoint"].as_u64().unwrap() > 0);

    // usable at once, on both surfaces, and only for its models
    let (s, body) = chat(&base, &key, "gpt-4o-mini").await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(messages(&base, &key, "gpt-4o-mini").await.status(), 200);
    let (s, body) = chat(&base, &key, "text-embedding-3-small").await;
    assert_eq!((s, code(&body)), (403, "model_not_allowed"), "{body}");
    let r = messages(&base, &key, "unpriced").await;
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["type"], "permission_error", "{body}");
    let models: Value = client()
        .get(gw.url("/v1/models"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(models["data"].as_array().unwrap().len(), 1, "{models}");

    // a wrong secret for a real id is just an invalid key
    let forged = format!("sy-{id}-{}", "x".repeat(40));
    assert_eq!(
        code(&chat(&base, &forged, "gpt-4o-mini").await.1),
        "invalid_api_key"
    );

    // rotation: the new secret works, the old one for the grace period only
    let r = admin(Method::POST, gw.url(&format!("/admin/keys/{id}/rotate")))
        .json(&json!({"grace": "2s"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let rotated: Value = r.json().await.unwrap();
    let new_key = rotated["key"].as_str().unwrap().to_owned();
    assert_ne!(new_key, key);
    assert!(rotated["previous_secret_valid_until"].is_string());
    assert_eq!(chat(&base, &new_key, "gpt-4o-mini").await.0, 200);
    assert_eq!(
        chat(&base, &key, "gpt-4o-mini").await.0,
        200,
        "within grace"
    );
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    assert_eq!(
        code(&chat(&base, &key, "gpt-4o-mini").await.1),
        "invalid_api_key"
    );
    assert_eq!(chat(&base, &new_key, "gpt-4o-mini").await.0, 200);

    // list and show never carry a secret
    let list: Value = get_json(gw.url("/admin/keys")).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    assert!(list["data"][0].get("key").is_none());
    assert_eq!(list["data"][0]["metadata"]["ticket"], "OPS-1");

    // revocation
    let r = admin(
        Method::DELETE,
        gw.url(&format!("/admin/keys/{id}?reason=leaked")),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let revoked: Value = r.json().await.unwrap();
    assert_eq!(revoked["status"], "revoked");
    let (s, body) = chat(&base, &new_key, "gpt-4o-mini").await;
    assert_eq!((s, code(&body)), (401, "key_revoked"));
    let r = admin(Method::POST, gw.url(&format!("/admin/keys/{id}/rotate")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "a revoked key cannot be rotated");

    // admin errors are OpenAI-shaped
    let r = admin(Method::GET, gw.url("/admin/keys/nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = admin(Method::POST, gw.url("/admin/keys"))
        .json(&json!({"name": "x", "models": ["no-such-model"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["param"], "models[0]", "{body}");
    let r = client()
        .post(gw.url("/admin/keys"))
        .bearer_auth(&new_key)
        .json(&json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "a virtual key is not an admin token");

    // the stream holds the lifecycle, and no secret
    gw.stop().await;
    let events = read_events(&nats.url()).await;
    assert_eq!(count(&events, |e| matches!(e, Event::KeyIssued(_))), 1);
    assert_eq!(count(&events, |e| matches!(e, Event::KeyRotated(_))), 1);
    assert_eq!(count(&events, |e| matches!(e, Event::KeyRevoked(_))), 1);
    for (_, _, raw) in &events {
        for secret in [&key, &new_key] {
            let secret = secret.rsplit('-').next().unwrap().as_bytes();
            assert!(
                !raw.windows(secret.len()).any(|w| w == secret),
                "a key's secret reached the event log"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_lived_key_expires_and_its_expiry_is_recorded_once() {
    let nats = Nats::start();
    let mock = Mock::start(MockConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let a = Gateway::start(TestConfig::new(&nats, &mock, &dir.path().join("a")).build()).await;
    let b = Gateway::start(TestConfig::new(&nats, &mock, &dir.path().join("b")).build()).await;
    let k = create(&a.url(""), json!({"name": "short", "ttl": "2s"})).await;
    let key = k["key"].as_str().unwrap().to_owned();
    assert!(k["expires_at"].is_string());
    assert_eq!(chat(&a.url(""), &key, "gpt-4o-mini").await.0, 200);
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    for gw in [&a, &b] {
        let (s, body) = chat(&gw.url(""), &key, "gpt-4o-mini").await;
        assert_eq!((s, code(&body)), (401, "key_expired"), "{body}");
    }
    let id = k["id"].as_str().unwrap().to_owned();
    wait_for("the expiry is recorded", Duration::from_secs(10), || {
        let url = a.url(&format!("/admin/keys/{id}"));
        let nats = nats.url();
        async move {
            let v: Value = admin(Method::GET, url)
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            (v["status"] == "expired").then_some(())?;
            let events = read_events(&nats).await;
            (count(&events, |e| matches!(e, Event::KeyExpired(_))) > 0).then_some(())
        }
    })
    .await;
    // both instances noticed; JetStream kept one
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let events = read_events(&nats.url()).await;
    assert_eq!(count(&events, |e| matches!(e, Event::KeyExpired(_))), 1);
    a.stop().await;
    b.stop().await;
}

/// Two gateway processes on one NATS: a key made on one works on the other, a key revoked on
/// one is refused by the other within a second, and a process started afterwards rebuilds the
/// same directory from the stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_instance_follows_the_key_directory() {
    let nats = Nats::start();
    let mock = Mock::start(MockConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let a = GatewayProcess::start(&TestConfig::new(&nats, &mock, &dir.path().join("a"))).await;
    let b = GatewayProcess::start(&TestConfig::new(&nats, &mock, &dir.path().join("b"))).await;

    let k = create(&a.base, json!({"name": "shared", "team": "search"})).await;
    let key = k["key"].as_str().unwrap().to_owned();
    let id = k["id"].as_str().unwrap().to_owned();
    let started = Instant::now();
    wait_for(
        "the other instance accepts the new key",
        Duration::from_secs(1),
        || {
            let (base, key) = (b.base.clone(), key.clone());
            async move { (chat(&base, &key, "gpt-4o-mini").await.0 == 200).then_some(()) }
        },
    )
    .await;
    println!("issued on A, accepted by B after {:?}", started.elapsed());

    let r = admin(Method::DELETE, a.url(&format!("/admin/keys/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let revoked_at = Instant::now();
    let refused_after = loop {
        let (s, body) = chat(&b.base, &key, "gpt-4o-mini").await;
        if s == 401 {
            assert_eq!(code(&body), "key_revoked");
            break revoked_at.elapsed();
        }
        assert!(
            revoked_at.elapsed() < Duration::from_secs(1),
            "B still accepts a key revoked on A after 1 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    println!("revoked on A, refused by B after {refused_after:?}");

    // more lifecycle, then a third instance replays the stream into the same directory
    create(
        &b.base,
        json!({"name": "second", "ttl": "1h", "models": ["gpt-4o-mini"]}),
    )
    .await;
    let r = admin(Method::PUT, b.url("/admin/limits/team/search"))
        .json(
            &json!({"budgets": [{"period": "daily", "limit": "5.00", "alert_at_percent": [80, 50]}],
                      "rate_limit": {"tokens_per_minute": 10000}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let c = GatewayProcess::start(&TestConfig::new(&nats, &mock, &dir.path().join("c"))).await;
    let view = |base: String| async move {
        let keys: Value = get_json(format!("{base}/admin/keys")).await;
        let limits: Value = get_json(format!("{base}/admin/limits")).await;
        (keys, limits)
    };
    let live = view(a.base.clone()).await;
    assert_eq!(live.0["data"].as_array().unwrap().len(), 2);
    assert_eq!(
        live.1["data"][0]["budgets"][0]["alert_at_percent"],
        json!([50, 80])
    );
    let replayed = wait_for(
        "the new instance has replayed the stream",
        Duration::from_secs(10),
        || {
            let base = c.base.clone();
            let live = live.clone();
            async move {
                let v = view(base).await;
                (v == live).then_some(v)
            }
        },
    )
    .await;
    assert_eq!(replayed, live);
    // no instance logged a key
    let secret = key.rsplit('-').next().unwrap();
    for gw in [&a, &b, &c] {
        let log = std::fs::read_to_string(&gw.log).unwrap();
        assert!(
            log.contains("admin event published") || gw.base == c.base,
            "{log}"
        );
        assert!(!log.contains(secret), "a key's secret reached a log");
    }
}

/// `switchyard keys …` against a running gateway.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_keys_command_drives_the_admin_api() {
    let nats = Nats::start();
    let mock = Mock::start(MockConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(TestConfig::new(&nats, &mock, dir.path()).build()).await;
    let base = gw.url("");
    let cli = |args: &[&str], token: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
            .arg("keys")
            .args(args)
            .env("SWITCHYARD_URL", &base)
            .env("SWITCHYARD_ADMIN_TOKEN", token)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let run = |args: &[&str]| {
        let (ok, out, err) = cli(args, ADMIN);
        assert!(ok, "keys {args:?}: {err}");
        out
    };
    let created: Value = serde_json::from_str(&run(&[
        "create",
        "--name",
        "from the cli",
        "--team",
        "search",
        "--model",
        "gpt-4o-mini",
        "--ttl",
        "1h",
        "--budget",
        "daily=1.50@50,80",
        "--rpm",
        "600",
        "--meta",
        "owner=ana",
    ]))
    .unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    let key = created["key"].as_str().unwrap().to_owned();
    assert_eq!(created["budgets"][0]["limit"], "1.500000000");
    assert_eq!(created["rate_limit"]["requests_per_minute"], 600);
    assert_eq!(chat(&base, &key, "gpt-4o-mini").await.0, 200);

    let table = run(&["list", "--status", "active"]);
    assert!(
        table.contains(&id) && table.contains("from the cli"),
        "{table}"
    );
    let shown: Value = serde_json::from_str(&run(&["show", &id])).unwrap();
    assert_eq!(shown["metadata"]["owner"], "ana");
    assert!(shown.get("key").is_none());
    let rotated: Value = serde_json::from_str(&run(&["rotate", &id, "--grace", "0s"])).unwrap();
    let new_key = rotated["key"].as_str().unwrap().to_owned();
    assert_eq!(chat(&base, &key, "gpt-4o-mini").await.0, 401);
    assert_eq!(chat(&base, &new_key, "gpt-4o-mini").await.0, 200);
    let revoked: Value = serde_json::from_str(&run(&["revoke", &id, "--reason", "done"])).unwrap();
    assert_eq!(revoked["revoke_reason"], "done");
    assert_eq!(chat(&base, &new_key, "gpt-4o-mini").await.0, 401);

    let (ok, _, err) = cli(&["list"], "not-the-admin-token");
    assert!(!ok);
    assert!(err.contains("401") && err.contains("admin token"), "{err}");
    let (ok, _, err) = cli(&["create", "--name", "x", "--budget", "daily"], ADMIN);
    assert!(!ok && err.contains("PERIOD=AMOUNT"), "{err}");
    gw.stop().await;
}
