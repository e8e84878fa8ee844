#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]
//! What the streamed-answer guardrails cost in time to first token. The mock streams a 40-word
//! answer in pieces of 4 characters (sub-word tokens, as models stream them) with a delay
//! between chunks; the same streamed request goes to the mock directly, through a gateway with
//! guardrails off, and through one with them on (the defaults: answers scanned), in
//! alternating blocks. The client's time to first token is the time to the first chunk with
//! text in it: the guardrails hold back text that could still become a finding (in prose, the
//! word being written), so the first word arrives when the chunk after it does.
//!
//! Run: `cargo bench --bench ttft` (after `cargo build --release -p switchyard-mock`).
//! Tunables (env): `SWITCHYARD_TTFT_CHUNK_MS` (delay between chunks, default 10),
//! `SWITCHYARD_TTFT_REQUESTS` (per target, default 150), `SWITCHYARD_TTFT_CONCURRENCY`
//! (default 10).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

mod harness;
use harness::{Proc, env_u64, free_port, mock_binary, pct, start_gateway, start_nats, wait_port};

const KEY: &str = "sk-bench-key";

const PROMPT: &str = "Thanks for the quick reply. I looked at the invoice for order 100234556781 \
again and the totals still do not match what the dashboard shows for November; could you check \
whether the delivery was billed twice? Mail me at maria.gonzalez@northwind-traders.com.";

fn config(root: &Path, dir: &Path, port: u16, nats: u16, mock: u16, extra: &str) -> String {
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
[providers.mock]
kind = "openai"
base_url = "http://127.0.0.1:{mock}/v1"
[[models]]
name = "gpt-4o-mini"
deployments = [{{ provider = "mock", model = "gpt-4o-mini" }}]
{extra}
"#,
        pricing = root.join("config/pricing.toml").display().to_string(),
        data = dir.join("var").display().to_string(),
        hash = hex::encode(switchyard::governance::hash_key(KEY)),
    )
}

/// One streamed request: (time to the first chunk with text, time to the end), in ns.
async fn one(client: &reqwest::Client, url: &str, body: &str) -> Option<(u64, u64)> {
    let t = Instant::now();
    let mut r = client
        .post(url)
        .bearer_auth(KEY)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .ok()?;
    if !r.status().is_success() {
        return None;
    }
    let mut first = None;
    let mut buf = String::new();
    while let Some(bytes) = r.chunk().await.ok()? {
        if first.is_none() {
            buf.push_str(&String::from_utf8_lossy(&bytes));
            // A frame whose delta carries text (not the role chunk's empty content).
            if buf.contains("\"content\":\"")
                && buf
                    .split("\"content\":\"")
                    .skip(1)
                    .any(|s| !s.starts_with('"'))
            {
                first = Some(t.elapsed().as_nanos() as u64);
            }
        }
    }
    Some((first?, t.elapsed().as_nanos() as u64))
}

/// `n` requests to `url`, `concurrency` at a time.
async fn block(
    client: &reqwest::Client,
    url: &str,
    body: &str,
    n: u64,
    concurrency: u64,
) -> (Vec<u64>, Vec<u64>) {
    let mut set = tokio::task::JoinSet::new();
    let (mut ttft, mut total) = (Vec::new(), Vec::new());
    for i in 0..n {
        if i >= concurrency
            && let Some(r) = set.join_next().await
            && let Some((a, b)) = r.unwrap()
        {
            ttft.push(a);
            total.push(b);
        }
        let (c, u, b) = (client.clone(), url.to_owned(), body.to_owned());
        set.spawn(async move { one(&c, &u, &b).await });
    }
    while let Some(r) = set.join_next().await {
        if let Some((a, b)) = r.unwrap() {
            ttft.push(a);
            total.push(b);
        }
    }
    (ttft, total)
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_switchyard"));
    let chunk_ms = env_u64("SWITCHYARD_TTFT_CHUNK_MS", 10);
    let requests = env_u64("SWITCHYARD_TTFT_REQUESTS", 150);
    let concurrency = env_u64("SWITCHYARD_TTFT_CONCURRENCY", 10);
    let dir = tempfile::tempdir().unwrap();
    let (_nats, nats_port) = start_nats(dir.path());
    let mock_port = free_port();
    let _mock = Proc(
        Command::new(mock_binary(&bin))
            .args([
                "--port",
                &mock_port.to_string(),
                "--stream-words",
                "40",
                "--token-chars",
                "4",
            ])
            .args(["--chunk-delay-ms", &chunk_ms.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_port(nats_port);
    let mut gateways = Vec::new();
    for (name, extra) in [("off", "[guardrails]\nenabled = false"), ("on", "")] {
        let home = dir.path().join(name);
        std::fs::create_dir_all(&home).unwrap();
        let port = free_port();
        let path = home.join("bench.toml");
        std::fs::write(
            &path,
            config(&root, &home, port, nats_port, mock_port, extra),
        )
        .unwrap();
        let gw = start_gateway(&bin, &path, "warn");
        gateways.push((name, gw, port));
    }
    wait_port(mock_port);
    for (_, _, port) in &gateways {
        wait_port(*port);
    }
    let body = serde_json::json!({
        "model": "gpt-4o-mini",
        "stream": true,
        "messages": [{"role": "user", "content": PROMPT}],
    })
    .to_string();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = reqwest::Client::builder().tcp_nodelay(true).build().unwrap();
        let direct = format!("http://127.0.0.1:{mock_port}/v1/chat/completions");
        let urls: Vec<(&str, String)> = std::iter::once(("direct to mock upstream", direct))
            .chain(gateways.iter().map(|(name, _, port)| {
                let label = if *name == "on" { "gateway, guardrails on" } else { "gateway, guardrails off" };
                (label, format!("http://127.0.0.1:{port}/v1/chat/completions"))
            }))
            .collect();
        for (_, url) in &urls {
            block(&client, url, &body, 20, concurrency).await;
        }
        let mut results: Vec<(Vec<u64>, Vec<u64>)> = vec![(Vec::new(), Vec::new()); urls.len()];
        let blocks = 3;
        for _ in 0..blocks {
            for (i, (_, url)) in urls.iter().enumerate() {
                let (t, total) = block(&client, url, &body, requests / blocks, concurrency).await;
                results[i].0.extend(t);
                results[i].1.extend(total);
            }
        }
        println!("\n## Time to first token, streamed answers ({chunk_ms} ms between chunks, 4-character pieces, {requests} requests per target)\n");
        println!("| path | TTFT p50 ms | TTFT p99 ms | whole stream p50 ms | requests |");
        println!("|---|---|---|---|---|");
        for ((label, _), (t, total)) in urls.iter().zip(results.iter_mut()) {
            t.sort_unstable();
            total.sort_unstable();
            println!("| {label} | {:.2} | {:.2} | {:.1} | {} |", pct(t, 0.5) / 1000.0, pct(t, 0.99) / 1000.0, pct(total, 0.5) / 1000.0, t.len());
        }
        let (off, on) = (&results[1].0, &results[2].0);
        let added = (pct(on, 0.5) - pct(off, 0.5)) / 1000.0;
        println!(
            "\nGuardrails on − off, TTFT p50: {added:+.2} ms ({:.2} chunk intervals); whole stream p50: {:+.2} ms",
            added / chunk_ms as f64,
            (pct(&results[2].1, 0.5) - pct(&results[1].1, 0.5)) / 1000.0
        );
    });
    drop(gateways);
}
