#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]
//! What the answer cache costs and saves, in one run:
//! - in process: the local embedder's time per prompt (the 940 prompts of the labelled pairs),
//!   and a semantic lookup through the cache's store (exact miss, vector scan, checks) at
//!   10,000 and 50,000 answers in one bucket;
//! - end to end, plain chat requests in alternating blocks to: the mock directly, a gateway
//!   with the cache off, and one with it on, asked new questions (every request a miss: keys,
//!   embedding, lookup, bigger events), the same question (exact hits) and rewordings of a kept
//!   question (semantic hits).
//!
//! Run: `cargo bench --bench cache` (after `cargo build --release -p switchyard-mock` and with
//! the embedder's weights installed: scripts/test or scripts/bench do both). Tunables (env):
//! `SWITCHYARD_CACHE_REQUESTS` (per target, default 1500), `SWITCHYARD_CACHE_CONCURRENCY`
//! (default 8), `SWITCHYARD_CACHE_LATENCY_MS` (the mock's latency, default 0).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use switchyard::cache::embed::StaticEmbedder;
use switchyard::cache::prompt::Prompt;
use switchyard::cache::store::{Query, Store};
use switchyard::config::CacheConfig;
use switchyard::events::{
    CacheKey, Endpoint, Envelope, Event, Principal, RequestAccepted, ResponseCompleted,
};

mod harness;
use harness::{Proc, env_u64, free_port, mock_binary, pct, start_gateway, start_nats, wait_port};

const KEY: &str = "sk-bench-key";

fn weights(root: &Path) -> PathBuf {
    root.join(CacheConfig::default().embedder_path)
}

fn config(root: &Path, dir: &Path, port: u16, nats: u16, mock: u16, cache: bool) -> String {
    format!(
        r#"pricing = {pricing:?}
[server]
listen = "127.0.0.1:{port}"
data_dir = {data:?}
[nats]
url = "nats://127.0.0.1:{nats}"
[[keys]]
id = "bench"
hash = "sha256:{hash}"
team = "bench"
[providers.mock]
kind = "openai"
base_url = "http://127.0.0.1:{mock}/v1"
[[models]]
name = "gpt-4o-mini"
deployments = [{{ provider = "mock", model = "gpt-4o-mini" }}]
[cache]
enabled = {cache}
embedder_path = {weights:?}
"#,
        pricing = root.join("config/pricing.toml").display().to_string(),
        data = dir.join("var").display().to_string(),
        hash = hex::encode(switchyard::governance::hash_key(KEY)),
        weights = weights(root).display().to_string(),
    )
}

/// The local embedder's time per prompt, over the labelled pairs' prompts.
fn embedding(root: &Path, embedder: &StaticEmbedder) {
    let text = std::fs::read_to_string(root.join("tests/fixtures/cache/pairs.jsonl")).unwrap();
    let prompts: Vec<String> = text
        .lines()
        .flat_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            [
                v["a"].as_str().unwrap().to_owned(),
                v["b"].as_str().unwrap().to_owned(),
            ]
        })
        .collect();
    let mut times = Vec::new();
    for _ in 0..5 {
        for p in &prompts {
            let t = Instant::now();
            let prompt = Prompt::new(p);
            std::hint::black_box(embedder.vector(&prompt));
            times.push(t.elapsed().as_nanos() as u64);
        }
    }
    times.sort_unstable();
    println!(
        "\n## Local embedder ({} dims), {} prompts × 5\n\n| p50 | p99 |\n|---|---|\n| {:.1} µs | {:.1} µs |",
        embedder.dim(),
        prompts.len(),
        pct(&times, 0.5),
        pct(&times, 0.99)
    );
}

/// A store holding `n` answers of one tenant, model and conversation, with random vectors.
fn store_with(n: u64, dim: usize) -> Store {
    let cfg = CacheConfig {
        max_entries: n as usize + 1,
        ..CacheConfig::default()
    };
    let mut store = Store::new(Default::default(), cfg.policy(None));
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        (rng >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    let body = r#"{"id":"x","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}]}"#;
    for i in 0..n {
        let mut v: Vec<f32> = (0..dim).map(|_| next()).collect();
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter_mut().for_each(|x| *x /= norm);
        let id = ulid::Ulid::from_parts(1_000 + i, u128::from(i));
        let accepted = Envelope {
            id,
            at_ms: 1_000 + i,
            request_id: id,
            event: Event::RequestAccepted(RequestAccepted {
                principal: Principal::default(),
                endpoint: Endpoint::ChatCompletions,
                model: "m".into(),
                route: vec![],
                stream: false,
                body: String::new(),
                guardrail_findings: vec![],
                cache: Some(CacheKey {
                    tenant: "team:bench".into(),
                    exact: format!("{i:064x}"),
                    context: Some("ctx".into()),
                    prompt: Some(format!("question {i}")),
                    embedding: Some(v),
                    store: true,
                    ttl_ms: u64::MAX / 4,
                }),
                rule: None,
                routed_model: None,
            }),
        };
        let completed = Envelope {
            event: Event::ResponseCompleted(ResponseCompleted {
                principal: Principal::default(),
                endpoint: Endpoint::ChatCompletions,
                model: "m".into(),
                attempts: vec![],
                provider: Some("p".into()),
                provider_model: None,
                status: 200,
                error: None,
                stream: false,
                ttft_us: None,
                latency_us: 0,
                usage: None,
                finish_reason: Some("stop".into()),
                body: Some(body.into()),
                cache: None,
                whole_body: true,
                guardrail_findings: vec![],
            }),
            ..accepted.clone()
        };
        store.apply(2 * i + 1, &accepted);
        store.apply(2 * i + 2, &completed);
    }
    store
}

/// A semantic lookup (the exact key missing) through the store, at several sizes.
fn lookups(embedder: &StaticEmbedder) {
    println!("\n## Cache lookup (exact miss, then the semantic scan and checks), one bucket\n");
    println!("| answers held | p50 | p99 |\n|---|---|---|");
    let prompt = Prompt::new("What is the capital of France?");
    let v = embedder.vector(&prompt).unwrap();
    for n in [10_000u64, 50_000] {
        let store = store_with(n, embedder.dim());
        let q = Query {
            tenant: "team:bench",
            model: "m",
            exact: "missing",
            semantic: Some(("ctx", &prompt, &v)),
            threshold: 0.5,
            now_ms: 2_000,
        };
        let mut times = Vec::new();
        for _ in 0..400 {
            let t = Instant::now();
            std::hint::black_box(store.lookup(&q, Some(embedder)));
            times.push(t.elapsed().as_nanos() as u64);
        }
        times.sort_unstable();
        println!(
            "| {n} | {:.0} µs | {:.0} µs |",
            pct(&times, 0.5),
            pct(&times, 0.99)
        );
    }
}

/// One plain request: (latency ns, the `x-switchyard-cache` header).
async fn one(client: &reqwest::Client, url: &str, body: String) -> Option<(u64, String)> {
    let t = Instant::now();
    let r = client
        .post(url)
        .bearer_auth(KEY)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .ok()?;
    let cache = r
        .headers()
        .get("x-switchyard-cache")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_owned();
    if !r.status().is_success() {
        return None;
    }
    r.bytes().await.ok()?;
    Some((t.elapsed().as_nanos() as u64, cache))
}

fn chat(text: &str) -> String {
    serde_json::json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]})
        .to_string()
}

/// The body of a target's i-th request.
type Body<'a> = &'a (dyn Fn(u64) -> String + Sync);

/// `n` requests, `concurrency` at a time, the i-th with body `body(i)`.
async fn block(
    client: &reqwest::Client,
    url: &str,
    body: Body<'_>,
    n: u64,
    concurrency: u64,
    results: &mut (Vec<u64>, std::collections::BTreeMap<String, u64>),
) {
    let mut set = tokio::task::JoinSet::new();
    let mut take = |r: Option<(u64, String)>| {
        if let Some((ns, cache)) = r {
            results.0.push(ns);
            *results.1.entry(cache).or_default() += 1;
        }
    };
    for i in 0..n {
        if i >= concurrency
            && let Some(r) = set.join_next().await
        {
            take(r.unwrap());
        }
        let (c, u, b) = (client.clone(), url.to_owned(), body(i));
        set.spawn(async move { one(&c, &u, b).await });
    }
    while let Some(r) = set.join_next().await {
        take(r.unwrap());
    }
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let embedder = StaticEmbedder::load(&weights(&root))
        .expect("the embedder's weights (scripts/test or scripts/bench install them)");
    embedding(&root, &embedder);
    lookups(&embedder);

    let bin = PathBuf::from(env!("CARGO_BIN_EXE_switchyard"));
    let requests = env_u64("SWITCHYARD_CACHE_REQUESTS", 1500);
    let concurrency = env_u64("SWITCHYARD_CACHE_CONCURRENCY", 8);
    let latency = env_u64("SWITCHYARD_CACHE_LATENCY_MS", 0);
    let dir = tempfile::tempdir().unwrap();
    let (_nats, nats_port) = start_nats(dir.path());
    let mock_port = free_port();
    let _mock = Proc(
        Command::new(mock_binary(&bin))
            .args([
                "--port",
                &mock_port.to_string(),
                "--latency-ms",
                &latency.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_port(nats_port);
    let mut ports = Vec::new();
    let mut procs = Vec::new();
    for (name, on) in [("off", false), ("on", true)] {
        let home = dir.path().join(name);
        std::fs::create_dir_all(&home).unwrap();
        let port = free_port();
        let path = home.join("bench.toml");
        std::fs::write(&path, config(&root, &home, port, nats_port, mock_port, on)).unwrap();
        procs.push(start_gateway(&bin, &path, "warn"));
        ports.push(port);
    }
    wait_port(mock_port);
    ports.iter().for_each(|p| wait_port(*p));
    let url = |port: u16| format!("http://127.0.0.1:{port}/v1/chat/completions");
    let (direct, off, on) = (url(mock_port), url(ports[0]), url(ports[1]));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = reqwest::Client::builder().tcp_nodelay(true).build().unwrap();
        // The questions the hits ask: kept once, then asked as is and reworded.
        let kept = "What is the capital of France?";
        one(&client, &on, chat(kept)).await.unwrap();
        let reworded = [
            "what is the capital of france",
            "What's the capital of France?",
            "capital of France?",
            "Tell me the capital of France.",
        ];
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let new = |tag: &'static str| {
            move |i: u64| chat(&format!("Ticket {tag}-{i}: summarise the delivery problem reported by customer {i}."))
        };
        let (n0, n1, n2) = (new("a"), new("b"), new("c"));
        let same = |_: u64| chat(kept);
        let semantic = |i: u64| chat(reworded[i as usize % reworded.len()]);
        let targets: Vec<(&str, &str, Body<'_>)> = vec![
            ("direct to the mock, new questions", &direct, &n0),
            ("gateway, cache off, new questions", &off, &n1),
            ("gateway, cache on, new questions (misses)", &on, &n2),
            ("gateway, cache on, the same question (exact hits)", &on, &same),
            ("gateway, cache on, reworded (semantic hits)", &on, &semantic),
        ];
        let mut results = vec![(Vec::new(), Default::default()); targets.len()];
        let mut warm = (Vec::new(), Default::default());
        for (_, u, b) in &targets {
            block(&client, u, *b, 50, concurrency, &mut warm).await;
        }
        let blocks = 5;
        for round in 0..blocks {
            for (i, (_, u, b)) in targets.iter().enumerate() {
                let offset = 1_000_000 * (round + 1);
                let body = |k: u64| b(offset + k);
                block(&client, u, &body, requests / blocks, concurrency, &mut results[i]).await;
            }
        }
        println!(
            "\n## Plain chat requests, mock latency {latency} ms, concurrency {concurrency}, {requests} per target, alternating blocks\n"
        );
        println!("| target | p50 µs | p99 µs | answered as |\n|---|---|---|---|");
        let mut p50 = Vec::new();
        for ((label, _, _), (times, seen)) in targets.iter().zip(results.iter_mut()) {
            times.sort_unstable();
            p50.push(pct(times, 0.5));
            println!(
                "| {label} | {:.0} | {:.0} | {seen:?} |",
                pct(times, 0.5),
                pct(times, 0.99)
            );
        }
        println!(
            "\nmiss vs cache off: p50 {:.2}×; exact hit vs direct: {:.2}×; semantic hit vs direct: {:.2}×",
            p50[2] / p50[1],
            p50[3] / p50[0],
            p50[4] / p50[0]
        );
    });
    drop(procs);
}
