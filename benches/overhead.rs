#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]
//! End-to-end gateway overhead: the same load generator calls the mock upstream directly and
//! through the gateway (events going to a real JetStream), in the same run, in alternating
//! blocks so that machine noise hits both alike.
//!
//! Run: `scripts/bench` (or `cargo bench --bench overhead`). Tunables (env):
//! `SWITCHYARD_BENCH_RATE` (req/s, default 1000), `SWITCHYARD_BENCH_SECS` (seconds per target at
//! that rate, default 30), `SWITCHYARD_BENCH_CONCURRENCY` (closed-loop workers for the maximum
//! throughput phase, default 64), `SWITCHYARD_BENCH_MAX_SECS` (default 10).
//!
//! Gateway CPU is read from /proc for the gateway process alone during the fixed-rate blocks.
//!
//! The gateway is called with a key issued through the admin API, with a budget and rate limits
//! of its own and of its team (generous enough never to refuse), so the whole admission path is
//! measured. `SWITCHYARD_BENCH_KEY=config` uses a bootstrap key from the config file instead (no
//! limits: what the gateway did before keys had any).
//!
//! A/B: `SWITCHYARD_BENCH_BASELINE=<path to another build's switchyard binary>` starts that
//! build too (its own nats-server, the bootstrap key, the same upstream) and puts it in every
//! block of the OpenAI path and in the throughput phase, so both builds are measured in the same
//! run under the same noise. `scripts/bench-ab <commit>` builds a commit and runs this.
//! `SWITCHYARD_BENCH_BASELINE_EXTRA` is TOML appended to the baseline's config: with this very
//! build as the baseline it measures one feature on and off, e.g. the audit index:
//! `SWITCHYARD_BENCH_BASELINE=target/release/switchyard SWITCHYARD_BENCH_KEY=config
//! SWITCHYARD_BENCH_BASELINE_EXTRA=$'[projections.audit]\nenabled = false'`.
//! `SWITCHYARD_BENCH_EXTRA` does the same for this build's config, so a feature can be measured
//! with the roles swapped too (on as this build, then on as the baseline), which cancels what
//! the two positions in a block do to each side.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

mod harness;
use harness::{Proc, env_u64, free_port, mock_binary, pct, start_gateway, start_nats, wait_port};

/// The bootstrap key in the config file.
const CONFIG_KEY: &str = "sk-bench-key";
const ADMIN: &str = "bench-admin";
/// The key every request to this build presents: [`CONFIG_KEY`] or one issued at start.
static KEY: std::sync::OnceLock<String> = std::sync::OnceLock::new();

fn key() -> &'static str {
    KEY.get().map_or(CONFIG_KEY, String::as_str)
}

/// The gateway's config file: `admin` adds the admin token (a baseline build from before the
/// admin API would refuse the section).
fn gateway_config(
    root: &std::path::Path,
    dir: &std::path::Path,
    gw_port: u16,
    nats_port: u16,
    mock_port: u16,
    admin: bool,
) -> String {
    let admin = if admin {
        format!(
            "[admin]\ntoken_hash = \"sha256:{}\"\n",
            hex::encode(switchyard::governance::hash_key(ADMIN))
        )
    } else {
        String::new()
    };
    format!(
        r#"pricing = {pricing:?}
[server]
listen = "127.0.0.1:{gw_port}"
data_dir = {data:?}
[nats]
url = "nats://127.0.0.1:{nats_port}"
{admin}[[keys]]
id = "bench"
hash = "sha256:{hash}"
team = "bench"
[providers.mock]
kind = "openai"
base_url = "http://127.0.0.1:{mock_port}/v1"
[[models]]
name = "gpt-4o-mini"
deployments = [{{ provider = "mock", model = "gpt-4o-mini" }}]
[providers.mock-anthropic]
kind = "anthropic"
base_url = "http://127.0.0.1:{mock_port}/v1"
[[models]]
name = "claude"
deployments = [{{ provider = "mock-anthropic", model = "claude-haiku-4-5" }}]
"#,
        pricing = root.join("config/pricing.toml").display().to_string(),
        data = dir.join("var").display().to_string(),
        hash = hex::encode(switchyard::governance::hash_key(CONFIG_KEY)),
    )
}

/// A key with generous limits (and some for its team too) issued by the gateway at `base`.
async fn issue_key(client: &reqwest::Client, base: &str) -> String {
    let limits = serde_json::json!({
        "budgets": [{"period": "daily", "limit": "1000000"}, {"period": "monthly", "limit": "10000000"}],
        "rate_limit": {"requests_per_minute": 100_000_000u64, "tokens_per_minute": 100_000_000_000u64},
    });
    let r = client
        .put(format!("{base}/admin/limits/team/bench"))
        .bearer_auth(ADMIN)
        .json(&limits)
        .send()
        .await
        .unwrap();
    assert!(
        r.status().is_success(),
        "team limits: {}",
        r.text().await.unwrap()
    );
    let mut body = limits.clone();
    body["name"] = "bench".into();
    body["team"] = "bench".into();
    let r = client
        .post(format!("{base}/admin/keys"))
        .bearer_auth(ADMIN)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(
        r.status().is_success(),
        "issue a key: {}",
        r.text().await.unwrap()
    );
    let v: serde_json::Value = r.json().await.unwrap();
    v["key"].as_str().unwrap().to_owned()
}

/// The baseline build is called with a key it issued (`SWITCHYARD_BENCH_BASELINE_KEY=issued`),
/// not its bootstrap key: with `SWITCHYARD_BENCH_KEY=config` on this build, the governance path
/// is measured in the other position.
fn baseline_issues_key() -> bool {
    std::env::var("SWITCHYARD_BENCH_BASELINE_KEY").is_ok_and(|v| v == "issued")
}

/// The key the baseline presents: its bootstrap key, or one it issued.
static BASE_KEY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
const BODY: &str = r#"{"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Summarise the plot of Hamlet in two sentences, please."}],"temperature":0.2,"max_tokens":64}"#;
/// The same conversation as the gateway sends it to an Anthropic deployment (the direct baseline
/// of the Anthropic adapter run).
const ANTHROPIC_BODY: &str = r#"{"model":"claude-haiku-4-5","max_tokens":64,"system":"You are terse.","messages":[{"role":"user","content":[{"type":"text","text":"Summarise the plot of Hamlet in two sentences, please."}]}],"temperature":0.2}"#;
const VIA_CLAUDE_BODY: &str = r#"{"model":"claude","messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Summarise the plot of Hamlet in two sentences, please."}],"temperature":0.2,"max_tokens":64}"#;

/// One request target: URL, body and the key to present.
#[derive(Clone, Copy)]
struct Target<'a> {
    url: &'a str,
    body: &'static str,
    key: &'static str,
}

/// utime + stime of a process, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|x| x.1).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    ticks / 100.0
}

async fn one(client: &reqwest::Client, target: Target<'_>) -> Option<u64> {
    let t = Instant::now();
    let r = client
        .post(target.url)
        .bearer_auth(target.key)
        .header("content-type", "application/json")
        .body(target.body)
        .send()
        .await
        .ok()?;
    let ok = r.status().is_success();
    let _ = r.bytes().await.ok()?;
    ok.then(|| t.elapsed().as_nanos() as u64)
}

/// Open-loop load at `rate` req/s for `secs`: latencies in ns of the successful requests, and
/// the number of failures.
async fn fixed_rate(
    client: &reqwest::Client,
    target: Target<'_>,
    rate: u64,
    secs: u64,
) -> (Vec<u64>, u64) {
    let mut tick = tokio::time::interval(Duration::from_nanos(1_000_000_000 / rate));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..rate * secs {
        tick.tick().await;
        let (c, u, b, k) = (
            client.clone(),
            target.url.to_owned(),
            target.body,
            target.key,
        );
        set.spawn(async move {
            one(
                &c,
                Target {
                    url: &u,
                    body: b,
                    key: k,
                },
            )
            .await
        });
    }
    let mut lat = Vec::with_capacity((rate * secs) as usize);
    let mut failed = 0;
    while let Some(r) = set.join_next().await {
        match r.ok().flatten() {
            Some(ns) => lat.push(ns),
            None => failed += 1,
        }
    }
    (lat, failed)
}

/// Closed loop with `workers` concurrent requests for `secs`: completed requests per second.
async fn max_throughput(
    client: &reqwest::Client,
    target: Target<'_>,
    workers: u64,
    secs: u64,
) -> (f64, u64, u64) {
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let end = Instant::now() + Duration::from_secs(secs);
    let started = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..workers {
        let (c, u, b, k, d, f) = (
            client.clone(),
            target.url.to_owned(),
            target.body,
            target.key,
            done.clone(),
            failed.clone(),
        );
        set.spawn(async move {
            while Instant::now() < end {
                match one(
                    &c,
                    Target {
                        url: &u,
                        body: b,
                        key: k,
                    },
                )
                .await
                {
                    Some(_) => d.fetch_add(1, Ordering::Relaxed),
                    None => f.fetch_add(1, Ordering::Relaxed),
                };
            }
        });
    }
    while set.join_next().await.is_some() {}
    let n = done.load(Ordering::Relaxed);
    (
        n as f64 / started.elapsed().as_secs_f64(),
        n,
        failed.load(Ordering::Relaxed),
    )
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        // `cargo test --all-targets` runs bench binaries without --bench: nothing to time there.
        return;
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_switchyard"));
    let rate = env_u64("SWITCHYARD_BENCH_RATE", 1000);
    let secs = env_u64("SWITCHYARD_BENCH_SECS", 30);
    let workers = env_u64("SWITCHYARD_BENCH_CONCURRENCY", 64);
    let max_secs = env_u64("SWITCHYARD_BENCH_MAX_SECS", 10);
    let dir = tempfile::tempdir().unwrap();

    let (_nats, nats_port) = start_nats(dir.path());
    let mock_port = free_port();
    let _mock = Proc(
        Command::new(mock_binary(&bin))
            .args(["--port", &mock_port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let gw_port = free_port();
    let config = dir.path().join("bench.toml");
    let extra = std::env::var("SWITCHYARD_BENCH_EXTRA").unwrap_or_default();
    std::fs::write(
        &config,
        gateway_config(&root, dir.path(), gw_port, nats_port, mock_port, true) + "\n" + &extra,
    )
    .unwrap();
    wait_port(nats_port);
    let gateway = start_gateway(&bin, &config, "warn");
    // The A/B baseline: another build, with its own JetStream so that its events stay apart.
    let baseline = std::env::var_os("SWITCHYARD_BENCH_BASELINE").map(|b| {
        let b = PathBuf::from(b);
        assert!(
            b.exists(),
            "SWITCHYARD_BENCH_BASELINE: {} does not exist",
            b.display()
        );
        let home = dir.path().join("baseline");
        std::fs::create_dir_all(&home).unwrap();
        let (nats, nats_port) = start_nats(&home);
        let port = free_port();
        let config = home.join("bench.toml");
        let extra = std::env::var("SWITCHYARD_BENCH_BASELINE_EXTRA").unwrap_or_default();
        std::fs::write(
            &config,
            gateway_config(
                &root,
                &home,
                port,
                nats_port,
                mock_port,
                baseline_issues_key(),
            ) + "\n"
                + &extra,
        )
        .unwrap();
        wait_port(nats_port);
        let gw = start_gateway(&b, &config, "warn");
        wait_port(port);
        (nats, gw, port, b)
    });
    let gw_pid = gateway.0.id();
    wait_port(mock_port);
    wait_port(gw_port);

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let client = reqwest::Client::builder().pool_max_idle_per_host(1024).tcp_nodelay(true).build().unwrap();
        let direct_url = format!("http://127.0.0.1:{mock_port}/v1/chat/completions");
        let via_url = format!("http://127.0.0.1:{gw_port}/v1/chat/completions");
        if !std::env::var("SWITCHYARD_BENCH_KEY").is_ok_and(|v| v == "config") {
            let _ = KEY.set(issue_key(&client, &format!("http://127.0.0.1:{gw_port}")).await);
        }
        if let Some((_, _, port, _)) = &baseline
            && baseline_issues_key()
        {
            let _ = BASE_KEY.set(issue_key(&client, &format!("http://127.0.0.1:{port}")).await);
        }
        let direct = Target { url: &direct_url, body: BODY, key: CONFIG_KEY };
        let via = Target { url: &via_url, body: BODY, key: key() };
        let anthropic_url = format!("http://127.0.0.1:{mock_port}/v1/messages");
        let direct_anthropic = Target { url: &anthropic_url, body: ANTHROPIC_BODY, key: CONFIG_KEY };
        let via_claude = Target { url: &via_url, body: VIA_CLAUDE_BODY, key: key() };
        let base_url = baseline.as_ref().map(|(_, _, port, _)| format!("http://127.0.0.1:{port}/v1/chat/completions"));
        let base_key = BASE_KEY.get().map_or(CONFIG_KEY, String::as_str);
        let via_base = base_url.as_deref().map(|url| Target { url, body: BODY, key: base_key });
        let gw_requests = AtomicU64::new(0);
        println!("key: {}", if KEY.get().is_some() { "issued, with key and team budgets and rate limits" } else { "bootstrap (config), no limits" });

        // warm both paths (connections, JIT-free but caches and pools)
        for _ in 0..2000 {
            one(&client, direct).await;
            one(&client, direct_anthropic).await;
            for t in [via, via_claude] {
                if one(&client, t).await.is_some() {
                    gw_requests.fetch_add(1, Ordering::Relaxed);
                }
            }
            if let Some(t) = via_base {
                one(&client, t).await;
            }
        }

        let blocks = 3;
        let block_secs = (secs / blocks).max(1);
        let (mut d_lat, mut g_lat, mut d_fail, mut g_fail, mut cpu) = (vec![], vec![], 0, 0, 0.0);
        let (mut b_lat, mut b_fail, mut b_cpu) = (vec![], 0, 0.0);
        let base_pid = baseline.as_ref().map(|(_, gw, _, _)| gw.0.id());
        for _ in 0..blocks {
            if let (Some(t), Some(pid)) = (via_base, base_pid) {
                let c0 = cpu_seconds(pid);
                let (l, f) = fixed_rate(&client, t, rate, block_secs).await;
                b_cpu += cpu_seconds(pid) - c0;
                b_lat.extend(l);
                b_fail += f;
            }
            let (l, f) = fixed_rate(&client, direct, rate, block_secs).await;
            d_lat.extend(l);
            d_fail += f;
            let c0 = cpu_seconds(gw_pid);
            let (l, f) = fixed_rate(&client, via, rate, block_secs).await;
            cpu += cpu_seconds(gw_pid) - c0;
            gw_requests.fetch_add(l.len() as u64, Ordering::Relaxed);
            g_lat.extend(l);
            g_fail += f;
        }
        d_lat.sort_unstable();
        b_lat.sort_unstable();
        let gw_ok = g_lat.len() as u64;
        g_lat.sort_unstable();

        // The Anthropic adapter: OpenAI-shaped client → gateway → Messages API, against the
        // same conversation sent to the mock's Messages endpoint directly.
        let (mut da_lat, mut ga_lat) = (vec![], vec![]);
        for _ in 0..blocks {
            da_lat.extend(fixed_rate(&client, direct_anthropic, rate, block_secs).await.0);
            let (l, f) = fixed_rate(&client, via_claude, rate, block_secs).await;
            gw_requests.fetch_add(l.len() as u64, Ordering::Relaxed);
            g_fail += f;
            ga_lat.extend(l);
        }
        da_lat.sort_unstable();
        ga_lat.sort_unstable();

        let (d_max, _, d_max_fail) = max_throughput(&client, direct, workers, max_secs).await;
        let c0 = cpu_seconds(gw_pid);
        let (g_max, g_max_n, g_max_fail) = max_throughput(&client, via, workers, max_secs).await;
        let max_cpu = cpu_seconds(gw_pid) - c0;
        gw_requests.fetch_add(g_max_n, Ordering::Relaxed);
        let b_max = match via_base {
            Some(t) => Some(max_throughput(&client, t, workers, max_secs).await),
            None => None,
        };

        // every gateway request left three events in the stream
        let nats = async_nats::connect(format!("nats://127.0.0.1:{nats_port}")).await.unwrap();
        let js = async_nats::jetstream::new(nats);
        let mut stream = js.get_stream("SWITCHYARD").await.unwrap();
        let mut stored = 0;
        for _ in 0..300 {
            stored = stream.info().await.unwrap().state.messages;
            if stored >= 3 * gw_requests.load(Ordering::Relaxed) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }

        let row = |name: &str, l: &[u64]| {
            println!("| {name} | {:.0} | {:.0} | {:.0} | {:.0} |", pct(l, 0.5), pct(l, 0.9), pct(l, 0.99), pct(l, 0.999));
        };
        println!("\n## Switchyard overhead ({rate} req/s for {}s per target, {blocks} alternating blocks)\n", block_secs * blocks);
        println!("| path | p50 µs | p90 µs | p99 µs | p99.9 µs |");
        println!("|---|---|---|---|---|");
        row("direct to mock upstream", &d_lat);
        row("through Switchyard", &g_lat);
        println!(
            "| **overhead** | **{:.0}** | {:.0} | **{:.0}** | {:.0} |",
            pct(&g_lat, 0.5) - pct(&d_lat, 0.5),
            pct(&g_lat, 0.9) - pct(&d_lat, 0.9),
            pct(&g_lat, 0.99) - pct(&d_lat, 0.99),
            pct(&g_lat, 0.999) - pct(&d_lat, 0.999)
        );
        if let Some((_, _, _, path)) = &baseline {
            let (g50, g99) = (pct(&g_lat, 0.5) - pct(&d_lat, 0.5), pct(&g_lat, 0.99) - pct(&d_lat, 0.99));
            let (b50, b99) = (pct(&b_lat, 0.5) - pct(&d_lat, 0.5), pct(&b_lat, 0.99) - pct(&d_lat, 0.99));
            let base_key = if BASE_KEY.get().is_some() { "a key it issued, with limits" } else { "bootstrap key, no limits" };
            println!("\n### A/B: this build against {} ({base_key}), same blocks\n", path.display());
            println!("| path | p50 µs | p90 µs | p99 µs | p99.9 µs |");
            println!("|---|---|---|---|---|");
            row("through the baseline build", &b_lat);
            println!("| **baseline overhead** | **{b50:.0}** | {:.0} | **{b99:.0}** | {:.0} |", pct(&b_lat, 0.9) - pct(&d_lat, 0.9), pct(&b_lat, 0.999) - pct(&d_lat, 0.999));
            println!(
                "\nA/B latency through the gateway (this / baseline): p50 {:.3}, p99 {:.3}; overhead: p50 {:+.0} µs, p99 {:+.0} µs; baseline failures {b_fail}",
                pct(&g_lat, 0.5) / pct(&b_lat, 0.5),
                pct(&g_lat, 0.99) / pct(&b_lat, 0.99),
                g50 - b50,
                g99 - b99
            );
            println!(
                "A/B gateway CPU at {rate} req/s: this {:.1} µs per request, baseline {:.1} µs (ratio {:.3})",
                cpu * 1e6 / gw_ok as f64,
                b_cpu * 1e6 / b_lat.len().max(1) as f64,
                (cpu / gw_ok as f64) / (b_cpu / b_lat.len().max(1) as f64)
            );
            if let Some((b_max, _, b_max_fail)) = b_max {
                println!("A/B maximum throughput: this {g_max:.0} req/s, baseline {b_max:.0} req/s (ratio {:.3}); baseline failures {b_max_fail}", g_max / b_max);
            }
        }
        println!("\n### Through the Anthropic adapter (OpenAI-shaped client → gateway → Messages API)\n");
        println!("| path | p50 µs | p90 µs | p99 µs | p99.9 µs |");
        println!("|---|---|---|---|---|");
        row("direct to mock /v1/messages", &da_lat);
        row("through Switchyard (model claude)", &ga_lat);
        println!(
            "| **overhead** | **{:.0}** | {:.0} | **{:.0}** | {:.0} |",
            pct(&ga_lat, 0.5) - pct(&da_lat, 0.5),
            pct(&ga_lat, 0.9) - pct(&da_lat, 0.9),
            pct(&ga_lat, 0.99) - pct(&da_lat, 0.99),
            pct(&ga_lat, 0.999) - pct(&da_lat, 0.999)
        );
        println!("\nfailed requests at fixed rate: direct {d_fail}, gateway {g_fail}");
        println!(
            "gateway CPU at {rate} req/s: {:.1} µs per request ({:.2} CPU-s per 1,000 requests)",
            cpu * 1e6 / gw_ok as f64,
            cpu * 1000.0 / gw_ok as f64
        );
        println!(
            "maximum throughput ({workers} connections, {max_secs}s): direct {d_max:.0} req/s, through Switchyard {g_max:.0} req/s (ratio {:.2}); failures {d_max_fail}/{g_max_fail}; gateway CPU {:.1} µs per request at max",
            g_max / d_max,
            max_cpu * 1e6 / g_max_n.max(1) as f64
        );
        let want = 3 * gw_requests.load(Ordering::Relaxed);
        println!("events in JetStream: {stored} (expected ≥ {want} for {} gateway requests): {}", want / 3, if stored >= want { "none lost" } else { "MISSING EVENTS" });
    });
    drop(gateway);
}
