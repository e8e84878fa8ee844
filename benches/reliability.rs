#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]
//! Routing and reliability under injected faults, end to end, and the cost of the routing
//! decision itself.
//!
//! The end-to-end part starts one nats-server, one gateway (`switchyard serve`) and one
//! `switchyard-mock` process per deployment, from the release binary. Every scenario is
//! a public model on mocks of its own, so faults never mix; the mocks start healthy, take a short
//! warm-up, and get their fault through `PUT /_mock/config` just before the scenario's load. The
//! gateway runs the default `[routing]` policy (retries, retry budget, breaker), so the figures
//! are what a config that does not tune them gets. Upstream calls are counted by the mocks
//! themselves, plus the gateway's connect errors for the deployment on a dead port.
//!
//! The criterion part times `RouteTable::resolve` and `ModelRoute::order` on a table built from
//! config the way the gateway builds it; it makes no call.
//!
//! Run: `scripts/bench` (or `cargo bench --bench reliability`). Tunables (env):
//! `SWITCHYARD_BENCH_REQUESTS` (requests per scenario, default 2000),
//! `SWITCHYARD_BENCH_CONCURRENCY` (closed-loop workers, default 32),
//! `SWITCHYARD_BENCH_SKIP_MICRO` (non-empty: skip the criterion part).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::Criterion;
use futures::StreamExt;
use std::hint::black_box;
use switchyard::config::{RetryBudgetConfig, RetryConfig};
use switchyard_mock::{MockConfig, MockStats};

mod harness;
use harness::{Proc, env_u64, free_port, mock_binary, pct, start_gateway, start_nats, wait_port};

const KEY: &str = "sk-bench-key";
/// The retry budget counts over this window (`BUDGET_WINDOW_SECS` in routing/health.rs).
const BUDGET_WINDOW_SECS: f64 = 10.0;

/// A `switchyard-mock` process on its own port, named after the provider it plays.
struct Mock {
    name: &'static str,
    port: u16,
    _proc: Proc,
}

impl Mock {
    fn start(bin: &Path, name: &'static str) -> Self {
        let port = free_port();
        let proc = Proc(
            Command::new(bin)
                .args(["--port", &port.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        Self {
            name,
            port,
            _proc: proc,
        }
    }

    fn control(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/_mock/{path}", self.port)
    }

    async fn set_faults(&self, client: &reqwest::Client, cfg: MockConfig) {
        let r = client
            .put(self.control("config"))
            .json(&cfg)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}: {}", self.name, r.status());
    }

    async fn chat_calls(&self, client: &reqwest::Client) -> u64 {
        let stats: MockStats = client
            .get(self.control("stats"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        stats.chat
    }
}

fn provider_toml(name: &str, port: u16) -> String {
    format!("[providers.{name}]\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:{port}/v1\"\n")
}

/// One request as the client saw it.
struct Sample {
    ns: u64,
    /// 0 when the connection failed or the body did not arrive whole.
    status: u16,
    /// `x-switchyard-provider`: the deployment that answered.
    provider: Option<String>,
    /// `x-switchyard-attempts` (successful answers only).
    attempts: Option<u32>,
}

impl Sample {
    fn ok(&self) -> bool {
        self.status == 200
    }
}

async fn send(client: &reqwest::Client, url: &str, body: Bytes) -> Sample {
    let t = Instant::now();
    let r = client
        .post(url)
        .bearer_auth(KEY)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await;
    let Ok(r) = r else {
        return Sample {
            ns: t.elapsed().as_nanos() as u64,
            status: 0,
            provider: None,
            attempts: None,
        };
    };
    let header = |name: &str| {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let provider = header("x-switchyard-provider");
    let attempts = header("x-switchyard-attempts").and_then(|v| v.parse().ok());
    let status = r.status().as_u16();
    let whole = r.bytes().await.is_ok();
    Sample {
        ns: t.elapsed().as_nanos() as u64,
        status: if whole { status } else { 0 },
        provider,
        attempts,
    }
}

/// The gateway's Prometheus text at one moment.
struct Scrape(String);

impl Scrape {
    /// Sum of counter `name` over its series carrying every one of `labels` (`provider="x"`).
    fn sum(&self, name: &str, labels: &[&str]) -> f64 {
        self.0
            .lines()
            .filter_map(|l| {
                let (series, value) = l.strip_prefix(name)?.rsplit_once(' ')?;
                let whole_name = series.is_empty() || series.starts_with('{');
                (whole_name && labels.iter().all(|want| series.contains(want)))
                    .then(|| value.parse::<f64>().ok())
                    .flatten()
            })
            .sum()
    }
}

/// A public model under test: its deployments' providers in config order (the first is the
/// primary) and the mocks behind them (a dead port has none).
struct Scenario<'a> {
    model: &'static str,
    providers: &'static [&'static str],
    mocks: Vec<&'a Mock>,
}

/// One scenario's load and what the mocks and the gateway counted meanwhile.
struct Phase {
    samples: Vec<Sample>,
    wall: Duration,
    upstream_calls: u64,
    before: Scrape,
    after: Scrape,
    providers: &'static [&'static str],
}

impl Phase {
    /// How much counter `name` grew over the scenario's providers.
    fn grew(&self, name: &str, extra: &[&str]) -> f64 {
        self.providers
            .iter()
            .map(|p| {
                let provider = format!("provider=\"{p}\"");
                let labels: Vec<&str> = [provider.as_str()]
                    .into_iter()
                    .chain(extra.iter().copied())
                    .collect();
                self.after.sum(name, &labels) - self.before.sum(name, &labels)
            })
            .sum()
    }

    fn calls_per_request(&self) -> f64 {
        self.upstream_calls as f64 / self.samples.len().max(1) as f64
    }

    /// Share of all requests answered by `provider`, in percent.
    fn share(&self, provider: &str) -> f64 {
        let n = self
            .samples
            .iter()
            .filter(|s| s.provider.as_deref() == Some(provider))
            .count();
        100.0 * n as f64 / self.samples.len().max(1) as f64
    }

    /// Client-visible statuses, e.g. `200×1990, 502×10` (0 = no whole answer).
    fn statuses(&self) -> String {
        let mut by: BTreeMap<u16, usize> = BTreeMap::new();
        for s in &self.samples {
            *by.entry(s.status).or_default() += 1;
        }
        by.iter()
            .map(|(s, n)| format!("{s}×{n}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Load generator and counters, shared by the scenarios.
struct Load {
    client: reqwest::Client,
    gateway: u16,
    requests: u64,
    workers: u64,
}

impl Load {
    fn body(model: &str) -> Bytes {
        serde_json::json!({
            "model": model,
            "messages": [
                {"role": "system", "content": "You are terse."},
                {"role": "user",
                 "content": "Summarise the plot of Hamlet in two sentences, please."}
            ],
            "temperature": 0.2,
            "max_tokens": 64
        })
        .to_string()
        .into()
    }

    /// `n` requests for `model`, `workers` at a time (closed loop).
    async fn closed_loop(&self, model: &str, n: u64) -> Vec<Sample> {
        let url = format!("http://127.0.0.1:{}/v1/chat/completions", self.gateway);
        let body = Self::body(model);
        futures::stream::iter(0..n)
            .map(|_| send(&self.client, &url, body.clone()))
            .buffer_unordered(self.workers as usize)
            .collect()
            .await
    }

    /// Connections and pools up while every mock of the model is still healthy.
    async fn warm(&self, model: &str) {
        let samples = self.closed_loop(model, 2 * self.workers).await;
        assert!(samples.iter().all(Sample::ok), "warm-up of {model} failed");
    }

    async fn scrape(&self) -> Scrape {
        let url = format!("http://127.0.0.1:{}/metrics", self.gateway);
        Scrape(
            self.client
                .get(url)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap(),
        )
    }

    async fn run(&self, s: &Scenario<'_>) -> Phase {
        let before = self.scrape().await;
        let mut calls_before = 0;
        for m in &s.mocks {
            calls_before += m.chat_calls(&self.client).await;
        }
        let started = Instant::now();
        let samples = self.closed_loop(s.model, self.requests).await;
        let wall = started.elapsed();
        let after = self.scrape().await;
        let mut calls_after = 0;
        for m in &s.mocks {
            calls_after += m.chat_calls(&self.client).await;
        }
        // Attempts that never reached a mock: connections to a port nothing listens on.
        let dead: f64 = s
            .providers
            .iter()
            .filter(|p| !s.mocks.iter().any(|m| m.name == **p))
            .map(|p| {
                let label = format!("provider=\"{p}\"");
                let labels = [label.as_str(), "class=\"connect\""];
                after.sum("switchyard_upstream_errors_total", &labels)
                    - before.sum("switchyard_upstream_errors_total", &labels)
            })
            .sum();
        Phase {
            samples,
            wall,
            upstream_calls: calls_after - calls_before + dead as u64,
            before,
            after,
            providers: s.providers,
        }
    }
}

/// `| scenario | requests | success % | p50 ms | p99 ms | upstream calls / request |`
fn outcome_row(name: &str, samples: &[&Sample], calls: f64) -> String {
    let mut ns: Vec<u64> = samples.iter().map(|s| s.ns).collect();
    ns.sort_unstable();
    let ok = samples.iter().filter(|s| s.ok()).count();
    format!(
        "| {name} | {} | {:.2} | {:.2} | {:.2} | {calls:.2} |",
        samples.len(),
        100.0 * ok as f64 / samples.len().max(1) as f64,
        pct(&ns, 0.5) / 1000.0,
        pct(&ns, 0.99) / 1000.0,
    )
}

/// `| scenario | wall s | retries | refused by budget | opened | skipped | hedges | 2nd % |`
fn policy_row(name: &str, p: &Phase) -> String {
    let second = match p.providers.get(1) {
        Some(d) => format!("{:.1} ({d})", p.share(d)),
        None => "—".into(),
    };
    format!(
        "| {name} | {:.1} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {second} |",
        p.wall.as_secs_f64(),
        p.grew("switchyard_retries_total", &[]),
        p.grew("switchyard_retry_budget_exhausted_total", &[]),
        p.grew("switchyard_breaker_transitions_total", &["to=\"open\""]),
        p.grew("switchyard_breaker_rejections_total", &[]),
        p.grew("switchyard_hedges_total", &[]),
    )
}

fn gateway_config(root: &Path, dir: &Path, gw: u16, nats: u16, providers: &str) -> String {
    let d = |p: &str| format!("{{ provider = \"{p}\", model = \"gpt-4o-mini\" }}");
    format!(
        r#"pricing = {pricing:?}
[server]
listen = "127.0.0.1:{gw}"
data_dir = {data:?}
[nats]
url = "nats://127.0.0.1:{nats}"
[[keys]]
id = "bench"
hash = "sha256:{hash}"
team = "bench"
{providers}
[[models]]
name = "baseline"
deployments = [{base}]
[[models]]
name = "flaky-5xx"
deployments = [{flaky}, {flaky_backup}]
[[models]]
name = "primary-down"
deployments = [{dead}, {dead_backup}]
[[models]]
name = "rate-limited"
deployments = [{limited}]
[[models]]
name = "slow-primary"
strategy = "latency"
deployments = [{slow}, {fast}]
[[models]]
name = "unhedged"
deployments = [{hangs}, {hangs_second}]
[[models]]
name = "hedged"
deployments = [{hangs}, {hangs_second}]
hedge = {{ after = "100ms" }}
"#,
        pricing = root.join("config/pricing.toml").display().to_string(),
        data = dir.join("var").display().to_string(),
        hash = hex::encode(switchyard::governance::hash_key(KEY)),
        base = d("base"),
        flaky = d("flaky"),
        flaky_backup = d("flaky-backup"),
        dead = d("dead"),
        dead_backup = d("dead-backup"),
        limited = d("limited"),
        slow = d("slow"),
        fast = d("fast"),
        hangs = d("hangs"),
        hangs_second = d("hangs-second"),
    )
}

/// One mock process per deployment, named after its provider.
struct Mocks {
    base: Mock,
    flaky: Mock,
    flaky_backup: Mock,
    dead_backup: Mock,
    limited: Mock,
    slow: Mock,
    fast: Mock,
    hangs: Mock,
    hangs_second: Mock,
}

impl Mocks {
    fn start(bin: &Path) -> Self {
        let mock = |name| Mock::start(bin, name);
        Self {
            base: mock("base"),
            flaky: mock("flaky"),
            flaky_backup: mock("flaky-backup"),
            dead_backup: mock("dead-backup"),
            limited: mock("limited"),
            slow: mock("slow"),
            fast: mock("fast"),
            hangs: mock("hangs"),
            hangs_second: mock("hangs-second"),
        }
    }

    fn all(&self) -> [&Mock; 9] {
        [
            &self.base,
            &self.flaky,
            &self.flaky_backup,
            &self.dead_backup,
            &self.limited,
            &self.slow,
            &self.fast,
            &self.hangs,
            &self.hangs_second,
        ]
    }
}

/// The tables' rows and the notes under them, in scenario order.
#[derive(Default)]
struct Report {
    outcomes: Vec<String>,
    policy: Vec<String>,
    notes: Vec<String>,
}

impl Report {
    fn add(&mut self, name: &str, p: &Phase) {
        let all: Vec<&Sample> = p.samples.iter().collect();
        self.outcomes
            .push(outcome_row(name, &all, p.calls_per_request()));
        self.policy.push(policy_row(name, p));
    }

    fn print(&self, requests: u64, workers: u64) {
        println!(
            "\n## Routing and reliability under injected faults \
             ({requests} requests per scenario, closed loop of {workers})\n"
        );
        println!(
            "| scenario | requests | success % | p50 ms | p99 ms | upstream calls / request |"
        );
        println!("|---|---|---|---|---|---|");
        for r in &self.outcomes {
            println!("{r}");
        }
        println!(
            "\nsuccess = HTTP 200 with the whole body, as the client saw it; p50/p99 = client-side \
             latency over every request of the scenario, failures included; upstream calls / \
             request = chat requests the scenario's mocks received (plus connection attempts to \
             the dead port) ÷ requests sent, so 1.00 means no retry, fallback or hedge. Row 3b \
             keeps only the requests answered in one attempt, i.e. after the breaker opened."
        );
        println!("\n### What the router did\n");
        println!(
            "| scenario | wall s | retries | retries refused by budget | breaker opened \
             | attempts skipped (breaker open) | hedges | answered by 2nd deployment % |"
        );
        println!("|---|---|---|---|---|---|---|---|");
        for r in &self.policy {
            println!("{r}");
        }
        println!(
            "\nGrowth of the gateway's counters over the scenario's deployments (/metrics): \
             switchyard_retries_total, switchyard_retry_budget_exhausted_total, \
             switchyard_breaker_transitions_total{{to=\"open\"}}, \
             switchyard_breaker_rejections_total, switchyard_hedges_total; the last column is \
             the share of all requests answered by the model's second deployment \
             (x-switchyard-provider).\n"
        );
        for n in &self.notes {
            println!("- {n}");
        }
    }
}

/// The scenarios in turn, each on its own model and mocks.
async fn scenarios(load: &Load, m: &Mocks) -> Report {
    let c = &load.client;
    let mut report = Report::default();

    // 1. One healthy deployment.
    let s = Scenario {
        model: "baseline",
        providers: &["base"],
        mocks: vec![&m.base],
    };
    load.warm(s.model).await;
    let p = load.run(&s).await;
    report.add("1. baseline: one healthy deployment", &p);

    // 2. 30 % 500s on the primary, a healthy fallback.
    let s = Scenario {
        model: "flaky-5xx",
        providers: &["flaky", "flaky-backup"],
        mocks: vec![&m.flaky, &m.flaky_backup],
    };
    load.warm(s.model).await;
    let fault = MockConfig {
        fail_rate: 0.3,
        fail_status: 500,
        ..MockConfig::default()
    };
    m.flaky.set_faults(c, fault).await;
    let p = load.run(&s).await;
    report.add("2. 30 % 5xx on the primary, healthy fallback", &p);
    report
        .notes
        .push(format!("2. client saw: {}", p.statuses()));

    // 3. The primary refuses connections; its breaker opens and requests skip it. No warm-up:
    //    the breaker must start closed.
    let s = Scenario {
        model: "primary-down",
        providers: &["dead", "dead-backup"],
        mocks: vec![&m.dead_backup],
    };
    let p = load.run(&s).await;
    report.add("3. primary down (connection refused), fallback", &p);
    // Answered by the fallback in one attempt: the primary was skipped, its breaker open.
    let skipped: Vec<&Sample> = p
        .samples
        .iter()
        .filter(|s| s.ok() && s.attempts == Some(1))
        .collect();
    report.outcomes.push(outcome_row(
        "3b. … only requests that skipped the open breaker",
        &skipped,
        1.0,
    ));
    let mut paid: Vec<u64> = p
        .samples
        .iter()
        .filter(|s| s.attempts.is_some_and(|a| a > 1))
        .map(|s| s.ns)
        .collect();
    paid.sort_unstable();
    report.notes.push(format!(
        "3. {} requests tried the dead primary (p50 {:.2} ms, max {:.2} ms: connect error, \
         backoff jittered up to {:?}, retry, fallback); {} skipped it; client saw: {}",
        paid.len(),
        pct(&paid, 0.5) / 1000.0,
        pct(&paid, 1.0) / 1000.0,
        RetryConfig::default().base_delay,
        skipped.len(),
        p.statuses()
    ));

    // 4. Every request is rate limited, with Retry-After: 1.
    let s = Scenario {
        model: "rate-limited",
        providers: &["limited"],
        mocks: vec![&m.limited],
    };
    load.warm(s.model).await;
    let fault = MockConfig {
        fail_rate: 1.0,
        fail_status: 429,
        retry_after_secs: Some(1),
        ..MockConfig::default()
    };
    m.limited.set_faults(c, fault).await;
    let p = load.run(&s).await;
    report.add("4. 429 storm, Retry-After: 1, one deployment", &p);
    let (retry, budget) = (RetryConfig::default(), RetryBudgetConfig::default());
    let n = p.samples.len() as f64;
    let allowed = budget.min_per_second * BUDGET_WINDOW_SECS + budget.ratio * n;
    report.notes.push(format!(
        "4. retry budget (default): {} retries/s + {:.0} % of first attempts per deployment over \
         a {BUDGET_WINDOW_SECS} s window, max_retries {}, Retry-After waited up to {:?} → for \
         {n} requests within one window at most {:.2} upstream calls per request (a run longer \
         than the window gets a fresh allowance per window); a 429 does not trip the breaker, so \
         clients get the upstream's 429 and Retry-After. Client saw: {}; upstream calls: {} for \
         {n} requests.",
        budget.min_per_second,
        budget.ratio * 100.0,
        retry.max_retries,
        retry.max_retry_after,
        1.0 + (allowed / n).min(f64::from(retry.max_retries)),
        p.statuses(),
        p.upstream_calls
    ));

    // 5. The primary turns slow; latency routing should move traffic to the fast one.
    let s = Scenario {
        model: "slow-primary",
        providers: &["slow", "fast"],
        mocks: vec![&m.slow, &m.fast],
    };
    load.warm(s.model).await;
    let fault = MockConfig {
        latency_ms: 500,
        ..MockConfig::default()
    };
    m.slow.set_faults(c, fault).await;
    let p = load.run(&s).await;
    report.add("5. slow primary (+500 ms), strategy = latency", &p);
    report.notes.push(format!(
        "5. share of requests answered by the slow deployment: {:.1} % ({} of {})",
        p.share("slow"),
        p.samples
            .iter()
            .filter(|s| s.provider.as_deref() == Some("slow"))
            .count(),
        p.samples.len()
    ));

    // 6. One request in five hangs 1 s on the primary: the same two deployments without and
    //    with a hedge after 100 ms.
    load.warm("unhedged").await;
    load.warm("hedged").await;
    let fault = MockConfig {
        timeout_rate: 0.2,
        hang_ms: 1000,
        ..MockConfig::default()
    };
    m.hangs.set_faults(c, fault).await;
    let mut p99 = vec![];
    for (model, name) in [
        ("unhedged", "6a. 20 % 1 s hangs on the primary, no hedge"),
        ("hedged", "6b. same deployments, hedge after 100 ms"),
    ] {
        let s = Scenario {
            model,
            providers: &["hangs", "hangs-second"],
            mocks: vec![&m.hangs, &m.hangs_second],
        };
        let p = load.run(&s).await;
        report.add(name, &p);
        let mut ns: Vec<u64> = p.samples.iter().map(|s| s.ns).collect();
        ns.sort_unstable();
        p99.push(pct(&ns, 0.99) / 1000.0);
    }
    report.notes.push(format!(
        "6. p99 without hedging {:.0} ms, with hedging {:.0} ms",
        p99[0], p99[1]
    ));
    report
}

/// The end-to-end fault scenarios: start everything, run them, print the tables.
fn faults() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_switchyard"));
    let requests = env_u64("SWITCHYARD_BENCH_REQUESTS", 2000);
    let workers = env_u64("SWITCHYARD_BENCH_CONCURRENCY", 32);
    let dir = tempfile::tempdir().unwrap();

    let (_nats, nats_port) = start_nats(dir.path());
    let mocks = Mocks::start(&mock_binary(&bin));
    // A port nothing listens on: every connection is refused.
    let dead_port = free_port();
    let providers: String = mocks
        .all()
        .iter()
        .map(|m| provider_toml(m.name, m.port))
        .chain([provider_toml("dead", dead_port)])
        .collect();
    let gw_port = free_port();
    let config = dir.path().join("bench.toml");
    let toml = gateway_config(&root, dir.path(), gw_port, nats_port, &providers);
    std::fs::write(&config, toml).unwrap();
    wait_port(nats_port);
    // Every failed request is a warning, and failures are the point here.
    let gateway = start_gateway(&bin, &config, "error");
    for m in mocks.all() {
        wait_port(m.port);
    }
    wait_port(gw_port);

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let load = Load {
        client: reqwest::Client::builder()
            .pool_max_idle_per_host(1024)
            .tcp_nodelay(true)
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap(),
        gateway: gw_port,
        requests,
        workers,
    };
    let report = rt.block_on(scenarios(&load, &mocks));
    drop(gateway);
    report.print(requests, workers);
}

/// A routing table as the gateway builds it, over adapters pointed at a dummy URL.
mod decisions {
    use std::time::{Duration, Instant};
    use switchyard::config::RawConfig;
    use switchyard::routing::RouteTable;

    const MODELS: &str = r#"
[providers.a]
base_url = "http://127.0.0.1:9/v1"
[providers.b]
base_url = "http://127.0.0.1:9/v1"
[providers.c]
base_url = "http://127.0.0.1:9/v1"
[[models]]
name = "ordered"
deployments = [
    { provider = "a", model = "m" },
    { provider = "b", model = "m" },
    { provider = "c", model = "m" },
]
[[models]]
name = "weighted"
strategy = "weighted"
deployments = [
    { provider = "a", model = "m", weight = 70 },
    { provider = "b", model = "m", weight = 20 },
    { provider = "c", model = "m", weight = 10 },
]
[[models]]
name = "latency"
strategy = "latency"
deployments = [
    { provider = "a", model = "m" },
    { provider = "b", model = "m" },
    { provider = "c", model = "m" },
]
[[models]]
name = "strong"
deployments = [{ provider = "c", model = "big" }]
"#;

    /// Five content rules, cheapest checks first; the bench request fails the first four and
    /// matches the regex of the fifth, so every rule is evaluated.
    pub const RULES: &str = r#"
[[routing.rules]]
name = "research"
target = "strong"
when = { team = "research" }
[[routing.rules]]
name = "beta"
target = "strong"
when = { headers = { "x-beta" = "1" } }
[[routing.rules]]
name = "tools"
target = "strong"
when = { has_tools = true }
[[routing.rules]]
name = "summaries"
target = "strong"
when = { keywords = ["summarize", "tl;dr"] }
[[routing.rules]]
name = "plots"
target = "strong"
when = { regex = '(?i)\bplot of\b' }
"#;

    pub fn table(rules: &str) -> RouteTable {
        let raw: RawConfig = toml::from_str(&format!("{MODELS}{rules}")).unwrap();
        let cfg = switchyard::config::validate(raw, None, |r| r.resolve()).unwrap();
        let providers = switchyard::routing::build_providers(&cfg.providers).unwrap();
        let table = RouteTable::build(&cfg.models, &cfg.routing, &providers);
        // Live latency for the latency strategy: a fast, a middling and a slow deployment.
        let route = table.get("latency").unwrap();
        let now = Instant::now();
        for (d, ms) in route.deployments.iter().zip([80, 120, 300]) {
            for _ in 0..20 {
                d.health.admit(now);
                d.health
                    .record(now, None, true, Some(Duration::from_millis(ms)));
            }
        }
        table
    }
}

/// The routing decision per request: which model (content rules), then the deployment order.
fn routing_decisions(c: &mut Criterion) {
    use switchyard::events::Principal;
    use switchyard::routing::rules::Input;

    let req: switchyard::providers::ChatRequest =
        serde_json::from_slice(&Load::body("ordered")).unwrap();
    let headers = axum::http::HeaderMap::new();
    let principal = Principal {
        key_id: "bench".into(),
        user: Some("alice".into()),
        team: Some("search".into()),
        project: None,
    };
    let input = Input {
        model: "ordered",
        headers: &headers,
        principal: &principal,
        chat: Some(&req),
    };
    let plain = decisions::table("");
    let ruled = decisions::table(decisions::RULES);
    assert!(plain.resolve(&input).unwrap().rule.is_none());
    assert_eq!(
        ruled.resolve(&input).unwrap().rule.as_deref(),
        Some("plots")
    );
    c.bench_function("route_resolve_0_rules", |b| {
        b.iter(|| plain.resolve(black_box(&input)))
    });
    c.bench_function("route_resolve_5_rules_keyword_regex", |b| {
        b.iter(|| ruled.resolve(black_box(&input)))
    });
    let now = Instant::now();
    for strategy in ["ordered", "weighted", "latency"] {
        let route = plain.get(strategy).unwrap();
        c.bench_function(&format!("route_order_{strategy}_3_deployments"), |b| {
            b.iter(|| route.order(black_box(now)))
        });
    }
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        // `cargo test --all-targets` runs bench binaries without --bench: nothing to time there.
        return;
    }
    faults();
    if std::env::var("SWITCHYARD_BENCH_SKIP_MICRO").is_ok_and(|v| !v.is_empty()) {
        return;
    }
    println!(
        "\n## Routing decision cost (criterion, time per call)\n\nroute_resolve_* = \
         RouteTable::resolve, the content rules then the model lookup (the 5-rule table's request \
         fails four rules and matches the regex of the fifth); route_order_* = \
         ModelRoute::order, the deployment order of one request over 3 deployments. Both run \
         once per request on the hot path; no I/O.\n"
    );
    let mut c = Criterion::default().configure_from_args();
    routing_decisions(&mut c);
    c.final_summary();
}
