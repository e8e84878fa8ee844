//! Test harness: a real nats-server per test on a free port with a temporary store, the mock
//! upstream on a free port, and the gateway in-process on 127.0.0.1:0.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer};
use futures::StreamExt;
use switchyard::app::AppError;
use switchyard::config::{self, Config, RawConfig, RawPricing};
use switchyard::events::{Envelope, Event, decode};
use switchyard_mock::{MockConfig, MockState};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub const KEY: &str = "sk-test-alice-7f3a";
pub const KEY2: &str = "sk-test-bob-91c2";
pub const ADMIN: &str = "admin-test-token";
/// Upstream credential given to the gateway through a secret file; must never leak.
pub const UPSTREAM_SECRET: &str = "sk-upstream-SECRET-d41d8cd98f";

pub use switchyard_testkit::{Nats, free_port, nats_binary};

pub struct Mock {
    pub addr: SocketAddr,
    pub state: MockState,
    stop: CancellationToken,
}

impl Mock {
    pub async fn start(cfg: MockConfig) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let state = MockState::new(cfg);
        let stop = CancellationToken::new();
        tokio::spawn(switchyard_mock::serve(
            listener,
            state.clone(),
            stop.clone(),
        ));
        Mock { addr, state, stop }
    }
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }
}

impl Drop for Mock {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Build a validated config for a test. `extra` is TOML appended verbatim (more models, etc.).
#[derive(Clone)]
pub struct TestConfig {
    pub nats_url: String,
    pub mock_url: String,
    pub data_dir: PathBuf,
    pub extra: String,
    pub events: String,
    pub max_body_bytes: usize,
    /// Run the budgets projection inside the gateway (false: `consume budgets` runs it).
    pub budgets_in_process: bool,
    pub listen: String,
    /// TOML appended to the `[server]` section (timeouts, connection cap).
    pub server: String,
    /// The pricing table (default: the shipped `config/pricing.toml`).
    pub pricing: PathBuf,
}

impl TestConfig {
    pub fn new(nats: &Nats, mock: &Mock, data_dir: &Path) -> Self {
        TestConfig {
            nats_url: nats.url(),
            mock_url: mock.base_url(),
            data_dir: data_dir.to_owned(),
            extra: String::new(),
            events: String::new(),
            max_body_bytes: 65_536,
            budgets_in_process: true,
            listen: "127.0.0.1:0".into(),
            server: String::new(),
            pricing: Path::new(env!("CARGO_MANIFEST_DIR")).join("config/pricing.toml"),
        }
    }

    pub fn build(&self) -> Config {
        let raw: RawConfig = toml::from_str(&self.toml()).expect("test config parses");
        let pricing: RawPricing =
            toml::from_str(&std::fs::read_to_string(&self.pricing).expect("pricing file"))
                .expect("pricing parses");
        config::validate(raw, Some(pricing), |r| r.resolve()).expect("test config is valid")
    }

    /// The config as a TOML document (what `switchyard serve --config` would read).
    pub fn toml(&self) -> String {
        let secret_file = self.data_dir.join("upstream.key");
        std::fs::create_dir_all(&self.data_dir).expect("data dir");
        std::fs::write(&secret_file, format!("{UPSTREAM_SECRET}\n")).expect("secret file");
        let hash = |k: &str| {
            format!(
                "sha256:{}",
                hex::encode(switchyard::governance::hash_key(k))
            )
        };
        format!(
            r#"
pricing = {pricing:?}

[server]
listen = "{listen}"
max_body_bytes = {max_body}
data_dir = {data_dir:?}
{server}

[nats]
url = "{nats}"
stream = "SWITCHYARD"

[events]
ack_timeout = "1s"
{events}

[projections.budgets]
enabled = {budgets}
batch = 64

[admin]
token_hash = "{admin}"

[[keys]]
id = "alice-key"
hash = "{k1}"
user = "alice"
team = "platform"
project = "search"

[[keys]]
id = "bob-key"
hash = "{k2}"
user = "bob"
team = "research"

[providers.mock]
kind = "openai"
base_url = "{mock}"
api_key = {{ file = {secret:?} }}
timeout = "5s"

[[models]]
name = "gpt-4o-mini"
deployments = [{{ provider = "mock", model = "gpt-4o-mini" }}]

[[models]]
name = "text-embedding-3-small"
deployments = [{{ provider = "mock", model = "text-embedding-3-small" }}]

[[models]]
name = "unpriced"
deployments = [{{ provider = "mock", model = "some-unpriced-model" }}]
{extra}
"#,
            max_body = self.max_body_bytes,
            budgets = self.budgets_in_process,
            listen = self.listen,
            server = self.server,
            data_dir = self.data_dir.display().to_string(),
            nats = self.nats_url,
            events = self.events,
            admin = hash(ADMIN),
            k1 = hash(KEY),
            k2 = hash(KEY2),
            mock = self.mock_url,
            secret = secret_file.display().to_string(),
            extra = self.extra,
            pricing = self.pricing.display().to_string(),
        )
    }
}

/// The gateway running in this process.
pub struct Gateway {
    pub addr: SocketAddr,
    stop: CancellationToken,
    handle: JoinHandle<Result<(), AppError>>,
}

impl Gateway {
    pub async fn start(cfg: Config) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let stop = CancellationToken::new();
        let mut handle = tokio::spawn(switchyard::app::serve(cfg, listener, stop.clone()));
        // Serving starts at once; a gateway that stopped during start-up instead says why here,
        // not as a refused connection later.
        let health = format!("http://{addr}/healthz");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Ok(r)) =
                tokio::time::timeout(Duration::from_secs(1), client().get(&health).send()).await
                && r.status() == 200
            {
                break;
            }
            if let Ok(ended) = tokio::time::timeout(Duration::from_millis(20), &mut handle).await {
                panic!("the gateway stopped while starting: {ended:?}");
            }
            assert!(
                Instant::now() < deadline,
                "the gateway did not answer /healthz"
            );
        }
        Gateway { addr, stop, handle }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Graceful shutdown (what SIGTERM does).
    pub async fn stop(self) {
        self.stop.cancel();
        tokio::time::timeout(Duration::from_secs(30), self.handle)
            .await
            .expect("gateway stops within 30 s")
            .expect("gateway task")
            .expect("gateway exits cleanly");
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().build().expect("client")
}

pub fn chat_body(model: &str, text: &str, stream: bool) -> serde_json::Value {
    serde_json::json!({
        "model": model,
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": text}
        ],
        "stream": stream,
    })
}

pub async fn post_chat(gw: &Gateway, key: &str, body: &serde_json::Value) -> reqwest::Response {
    client()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(key)
        .json(body)
        .send()
        .await
        .expect("request reaches the gateway")
}

/// Poll `f` until it returns Some, or panic after `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every event in the stream, in order, with its stream sequence and raw bytes. None while the
/// stream does not exist yet: the gateway serves before it has set the stream up.
pub async fn read_events(nats_url: &str) -> Vec<(u64, Envelope, Vec<u8>)> {
    let client = async_nats::connect(nats_url).await.expect("connect");
    let js = jetstream::new(client);
    let stream = match js.get_stream("SWITCHYARD").await {
        Ok(s) => s,
        Err(e)
            if matches!(
                e.kind(),
                jetstream::context::GetStreamErrorKind::JetStream(_)
            ) =>
        {
            return Vec::new();
        }
        Err(e) => panic!("cannot read the stream: {e}"),
    };
    let consumer = stream
        .create_consumer(consumer::pull::Config {
            deliver_policy: consumer::DeliverPolicy::All,
            ack_policy: consumer::AckPolicy::None,
            inactive_threshold: Duration::from_secs(30),
            ..Default::default()
        })
        .await
        .expect("consumer");
    let mut out = Vec::new();
    loop {
        let mut batch = consumer
            .fetch()
            .max_messages(1000)
            .expires(Duration::from_millis(300))
            .messages()
            .await
            .expect("fetch");
        let mut n = 0;
        while let Some(m) = batch.next().await {
            let m = m.expect("message");
            let seq = m.info().expect("info").stream_sequence;
            let env = decode(&m.payload).expect("every event decodes");
            out.push((seq, env, m.payload.to_vec()));
            n += 1;
        }
        if n == 0 {
            break;
        }
    }
    out
}

/// How many of `events` `f` picks.
pub fn count(events: &[(u64, Envelope, Vec<u8>)], f: impl Fn(&Event) -> bool) -> usize {
    events.iter().filter(|(_, e, _)| f(&e.event)).count()
}

/// Events of one request, in stream order.
pub fn for_request(events: &[(u64, Envelope, Vec<u8>)], request_id: &str) -> Vec<Envelope> {
    events
        .iter()
        .filter(|(_, e, _)| e.request_id.to_string() == request_id)
        .map(|(_, e, _)| e.clone())
        .collect()
}

pub async fn readyz(gw: &Gateway) -> serde_json::Value {
    client()
        .get(gw.url("/readyz"))
        .send()
        .await
        .expect("readyz")
        .json()
        .await
        .expect("readyz json")
}

/// Wait until the gateway has read the key directory from the stream (before that, an issued
/// key is answered 503 `keys_loading`, as it should be).
pub async fn wait_keys_ready(gw: &Gateway) {
    wait_for(
        "the key directory is read",
        Duration::from_secs(15),
        || async { (readyz(gw).await["projections"]["keys"]["ready"] == true).then_some(()) },
    )
    .await;
}

/// Wait until the gateway has published everything (outbox empty, connected).
pub async fn wait_drained(gw: &Gateway) {
    wait_for(
        "outbox drained and stream ready",
        Duration::from_secs(30),
        || async {
            let r = readyz(gw).await;
            (r["status"] == "ready" && r["outbox_pending"] == 0).then_some(())
        },
    )
    .await;
}

/// `switchyard serve` as a process of its own (the built binary), for tests of several
/// instances on one NATS. Its log goes to `gateway.log` in its data dir; it is killed on drop.
pub struct GatewayProcess {
    child: std::process::Child,
    pub base: String,
    pub log: PathBuf,
}

impl GatewayProcess {
    /// Start one on a free port with `cfg` (its own data dir: redb files have one owner) and
    /// wait until it answers `/healthz`.
    pub async fn start(cfg: &TestConfig) -> Self {
        let mut cfg = cfg.clone();
        let port = free_port();
        cfg.listen = format!("127.0.0.1:{port}");
        let path = cfg.data_dir.join("gateway.toml");
        std::fs::write(&path, cfg.toml()).expect("config file");
        let log = cfg.data_dir.join("gateway.log");
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
            .arg("serve")
            .arg("--config")
            .arg(&path)
            .env("RUST_LOG", "info")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("switchyard binary starts");
        let base = format!("http://127.0.0.1:{port}");
        let health = format!("{base}/healthz");
        wait_for(
            "the gateway process answers",
            Duration::from_secs(20),
            || {
                let health = health.clone();
                async move {
                    let r = client().get(health).send().await.ok()?;
                    (r.status() == 200).then_some(())
                }
            },
        )
        .await;
        GatewayProcess { child, base, log }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An admin API call with the admin token.
pub fn admin(method: reqwest::Method, url: String) -> reqwest::RequestBuilder {
    client().request(method, url).bearer_auth(ADMIN)
}

/// The chunks of an OpenAI SSE body, and whether it ended with `[DONE]`.
pub fn sse_chunks(text: &str) -> (Vec<serde_json::Value>, bool) {
    let mut frames: Vec<&str> = text
        .split("\n\n")
        .filter(|f| !f.trim().is_empty())
        .map(|f| f.strip_prefix("data: ").unwrap_or_else(|| panic!("{f:?}")))
        .collect();
    let done = frames.last() == Some(&"[DONE]");
    if done {
        frames.pop();
    }
    let chunks = frames
        .iter()
        .map(|f| serde_json::from_str(f).unwrap_or_else(|e| panic!("{e}: {f}")))
        .collect();
    (chunks, done)
}

pub fn streamed_text(chunks: &[serde_json::Value]) -> String {
    chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect()
}
