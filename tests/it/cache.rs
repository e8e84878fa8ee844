//! The answer cache over real NATS: exact and semantic hits and misses, tenants kept apart,
//! `Cache-Control: no-cache` / `no-store`, cached answers replayed as streams in both framings,
//! hits recorded as events at zero cost; and across processes: an answer cached through one
//! gateway is served by another, `switchyard replay cache` rebuilds the same cache, a flush
//! reaches every instance.

use crate::harness::*;
use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;
use switchyard::events::{CacheMatch, Event};
use switchyard_mock::MockConfig;

fn cache_toml() -> String {
    let weights =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/wordllama/wordllama");
    format!(
        r#"
[cache]
enabled = true
scope = "team"
ttl = "10m"
embedder_path = {:?}
"#,
        weights.display().to_string()
    )
}

async fn mock() -> Mock {
    Mock::start(MockConfig {
        stream_words: 12,
        ..MockConfig::default()
    })
    .await
}

/// The cache's state on a gateway, from the admin API.
async fn cache_state(url: String) -> Value {
    admin(Method::GET, url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Wait until the gateway's cache holds `n` answers.
async fn wait_entries(url: &str, n: u64) -> Value {
    wait_for(
        &format!("the cache holds {n} answers"),
        Duration::from_secs(10),
        || {
            let url = url.to_owned();
            async move {
                let s = cache_state(url).await;
                (s["entries"].as_u64() == Some(n)).then_some(s)
            }
        },
    )
    .await
}

fn content(r: &Value) -> String {
    r["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

async fn ask(
    gw: &Gateway,
    key: &str,
    body: &Value,
    cache_control: Option<&str>,
) -> (String, Option<String>, Value) {
    let mut req = client()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(key)
        .json(body);
    if let Some(cc) = cache_control {
        req = req.header("cache-control", cc);
    }
    let r = req.send().await.unwrap();
    assert_eq!(r.status(), 200);
    let result = r.headers()["x-switchyard-cache"]
        .to_str()
        .unwrap()
        .to_owned();
    let similarity = r
        .headers()
        .get("x-switchyard-cache-similarity")
        .map(|v| v.to_str().unwrap().to_owned());
    (result, similarity, r.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exact_and_semantic_hits_misses_and_directives() {
    let nats = Nats::start();
    let mock = mock().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = TestConfig::new(&nats, &mock, dir.path());
    cfg.extra = cache_toml();
    let gw = Gateway::start(cfg.build()).await;
    let state = gw.url("/admin/cache");
    let calls = || mock.state.stats().chat;

    // A miss goes upstream and is kept; the same request again is an exact hit: the same
    // answer, no upstream call, a new id.
    let question = chat_body("gpt-4o-mini", "What is the capital of France?", false);
    let (result, _, first) = ask(&gw, KEY, &question, None).await;
    assert_eq!(result, "miss");
    assert_eq!(calls(), 1);
    wait_entries(&state, 1).await;
    let (result, similarity, again) = ask(&gw, KEY, &question, None).await;
    assert_eq!(result, "exact");
    assert_eq!(similarity.as_deref(), Some("1.0000"));
    assert_eq!(content(&again), content(&first));
    assert_ne!(again["id"], first["id"]);
    assert_eq!(again["model"], "gpt-4o-mini");
    assert_eq!(calls(), 1);

    // The same meaning in other words: a semantic hit with its similarity.
    let paraphrase = chat_body("gpt-4o-mini", "what's the capital of france", false);
    let (result, similarity, para) = ask(&gw, KEY, &paraphrase, None).await;
    assert_eq!(result, "semantic");
    let s: f32 = similarity.unwrap().parse().unwrap();
    assert!((0.5..=1.0).contains(&s), "{s}");
    assert_eq!(content(&para), content(&first));
    assert_eq!(calls(), 1);

    // Near misses go upstream: another country, another parameter.
    let (result, _, spain) = ask(
        &gw,
        KEY,
        &chat_body("gpt-4o-mini", "What is the capital of Spain?", false),
        None,
    )
    .await;
    assert_eq!(result, "miss");
    assert_ne!(content(&spain), content(&first));
    let mut hotter = question.clone();
    hotter["temperature"] = json!(1.5);
    assert_eq!(ask(&gw, KEY, &hotter, None).await.0, "miss");
    assert_eq!(calls(), 3);

    // Another team never gets this team's answer.
    assert_eq!(ask(&gw, KEY2, &question, None).await.0, "miss");
    assert_eq!(calls(), 4);

    // no-cache: not answered from the cache (the answer is kept again); no-store: not kept.
    assert_eq!(ask(&gw, KEY, &question, Some("no-cache")).await.0, "miss");
    assert_eq!(calls(), 5);
    let fresh = chat_body("gpt-4o-mini", "Name three rivers in Africa.", false);
    assert_eq!(ask(&gw, KEY, &fresh, Some("no-store")).await.0, "miss");
    // A kept answer after it: once the cache holds that one, it has read the one before.
    let barrier = chat_body("gpt-4o-mini", "Name a primary colour.", false);
    assert_eq!(ask(&gw, KEY, &barrier, None).await.0, "miss");
    let held = wait_entries(&state, 5).await;
    assert_eq!(ask(&gw, KEY, &fresh, None).await.0, "miss", "{held}");
    assert_eq!(calls(), 8);

    // A streamed request is answered from the cache as a stream, OpenAI framing…
    let mut streamed = question.clone();
    streamed["stream"] = json!(true);
    let r = client()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(KEY)
        .json(&streamed)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-switchyard-cache"], "exact");
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let (chunks, done) = sse_chunks(&r.text().await.unwrap());
    assert!(done, "ends with [DONE]");
    assert_eq!(streamed_text(&chunks), content(&first));
    assert_eq!(calls(), 8);

    // …and Anthropic's: a Messages answer (kept from a stream) replayed to a plain request and
    // to a streamed one.
    let messages = |stream: bool| {
        json!({"model": "gpt-4o-mini", "max_tokens": 64, "stream": stream,
               "messages": [{"role": "user", "content": "Why is the sky blue?"}]})
    };
    let send = |body: Value| {
        client()
            .post(gw.url("/v1/messages"))
            .header("x-api-key", KEY)
            .header("anthropic-version", "2023-06-01")
            .json(&body)
            .send()
    };
    let r = send(messages(true)).await.unwrap();
    assert_eq!(r.headers()["x-switchyard-cache"], "miss");
    let live = r.text().await.unwrap();
    wait_entries(&state, 7).await;
    let r = send(messages(false)).await.unwrap();
    assert_eq!(r.headers()["x-switchyard-cache"], "exact");
    let plain: Value = r.json().await.unwrap();
    assert_eq!(plain["type"], "message");
    let text = plain["content"][0]["text"].as_str().unwrap().to_owned();
    assert!(!text.is_empty() && live.contains(text.split(' ').next().unwrap()));
    let r = send(messages(true)).await.unwrap();
    assert_eq!(r.headers()["x-switchyard-cache"], "exact");
    let replay = r.text().await.unwrap();
    for event in [
        "message_start",
        "content_block_delta",
        "message_delta",
        "message_stop",
    ] {
        assert!(replay.contains(&format!("event: {event}")), "{replay}");
    }
    assert_eq!(calls(), 9);

    // Hits are events: the completion names the cached answer, the spend is zero.
    wait_drained(&gw).await;
    let events = read_events(&nats.url()).await;
    let hits: Vec<_> = events
        .iter()
        .filter_map(|(_, e, _)| match &e.event {
            Event::ResponseCompleted(c) => c
                .cache
                .clone()
                .map(|h| (e.request_id, h, c.provider.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(hits.len(), 5, "{hits:?}");
    assert!(
        hits.iter()
            .any(|(_, h, _)| h.matched == CacheMatch::Semantic)
    );
    assert!(hits.iter().all(|(_, _, p)| p.is_none()));
    for (id, _, _) in &hits {
        let spend = for_request(&events, &id.to_string())
            .into_iter()
            .find_map(|e| match e.event {
                Event::SpendRecorded(s) => Some(s),
                _ => None,
            })
            .expect("a hit records its spend");
        assert_eq!((spend.cost_nanos, spend.provider.as_str()), (0, "cache"));
    }
    // …and the audit index shows them, at zero cost.
    let found: Value = wait_for(
        "the hits in the audit index",
        Duration::from_secs(10),
        || {
            let url = gw.url("/admin/audit/search?provider=cache");
            async move {
                let v: Value = admin(Method::GET, url)
                    .send()
                    .await
                    .ok()?
                    .json()
                    .await
                    .ok()?;
                (v["records"].as_array()?.len() == 5).then_some(v)
            }
        },
    )
    .await;
    let record = &found["records"][0];
    assert_eq!(record["cost_nanos"], 0, "{record}");
    assert!(
        record["detail"].as_str().unwrap().contains("\"match\""),
        "{record}"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_instance_serves_the_cache_replay_rebuilds_it_and_a_flush_reaches_all() {
    let nats = Nats::start();
    let mock = mock().await;
    let dir = tempfile::tempdir().unwrap();
    let mut a_cfg = TestConfig::new(&nats, &mock, &dir.path().join("a"));
    a_cfg.extra = cache_toml();
    let mut b_cfg = a_cfg.clone();
    b_cfg.data_dir = dir.path().join("b");
    let a = GatewayProcess::start(&a_cfg).await;
    let b = GatewayProcess::start(&b_cfg).await;
    let post = |base: &GatewayProcess, text: &str| {
        client()
            .post(base.url("/v1/chat/completions"))
            .bearer_auth(KEY)
            .json(&chat_body("gpt-4o-mini", text, false))
            .send()
    };

    // Answered through A, served by B.
    let r = post(&a, "How many legs does a spider have?").await.unwrap();
    assert_eq!(r.headers()["x-switchyard-cache"], "miss");
    let first: Value = r.json().await.unwrap();
    let b_state = b.url("/admin/cache");
    wait_entries(&b_state, 1).await;
    let r = post(&b, "How many legs does a spider have?").await.unwrap();
    assert_eq!(r.headers()["x-switchyard-cache"], "exact");
    let served: Value = r.json().await.unwrap();
    assert_eq!(content(&served), content(&first));
    assert_eq!(mock.state.stats().chat, 1);
    post(&b, "Which planet is closest to the sun?")
        .await
        .unwrap();
    let live = wait_entries(&a.url("/admin/cache"), 2).await;

    // A replay of the stream rebuilds the same cache (same answers, same digest).
    let config = dir.path().join("a").join("gateway.toml");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["replay", "cache", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let replayed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(replayed["entries"], 2);
    assert_eq!(replayed["digest"], live["digest"]);
    assert_eq!(
        cache_state(b_state.clone()).await["digest"],
        live["digest"],
        "both instances fold the same cache"
    );

    // A flush through A empties B too.
    let r = admin(Method::POST, a.url("/admin/cache/flush"))
        .json(&json!({"tenant": "team:platform"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let after: Value = r.json().await.unwrap();
    assert_eq!(after["entries"], 0);
    wait_entries(&b_state, 0).await;
    let r = post(&b, "How many legs does a spider have?").await.unwrap();
    assert_eq!(r.headers()["x-switchyard-cache"], "miss");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_embedder_embeds_through_the_gateways_own_embeddings_model() {
    let nats = Nats::start();
    let mock = mock().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = TestConfig::new(&nats, &mock, dir.path());
    cfg.extra = format!(
        "{}embedding_model = \"text-embedding-3-small\"\n",
        cache_toml()
    );
    let gw = Gateway::start(cfg.build()).await;
    let cached = chat_body("gpt-4o-mini", "Describe the water cycle.", false);
    let (result, _, first) = ask(&gw, KEY, &cached, None).await;
    assert_eq!(result, "miss");
    assert_eq!(
        mock.state.stats().embeddings,
        1,
        "the turn was embedded upstream"
    );
    wait_entries(&gw.url("/admin/cache"), 1).await;
    // The same turn written as content parts: not the same request, the same vector (the
    // mock's vectors are a function of the text).
    let mut parts = cached.clone();
    parts["messages"][1]["content"] =
        json!([{"type": "text", "text": "Describe the water cycle."}]);
    let (result, similarity, again) = ask(&gw, KEY, &parts, None).await;
    assert_eq!(result, "semantic");
    assert_eq!(similarity.as_deref(), Some("1.0000"));
    assert_eq!(content(&again), content(&first));
    let stats = mock.state.stats();
    assert_eq!((stats.chat, stats.embeddings), (1, 2));
    let state = cache_state(gw.url("/admin/cache")).await;
    assert_eq!(state["embedder"], "text-embedding-3-small");
    gw.stop().await;
}
