//! Provider secrets fetched from their references and refreshed without a restart: AWS Secrets
//! Manager against moto's server (`aws.rs`), HashiCorp Vault's KV v2 API against a small
//! in-suite server (`vault.rs`), commands, files; failures that keep the last good value and
//! show in `/readyz` and the metrics; and a search of everything the gateway produced for the
//! secret values (`leak.rs`). The upstream is the mock with `api_keys`, so a request carrying
//! another key than the one expected fails with 401 and is counted.

mod aws;
mod leak;
mod vault;

use crate::harness::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use switchyard_mock::MockConfig;
use tokio_util::sync::CancellationToken;
use vault::Vault;

/// A mock upstream that accepts only `keys`.
fn accepting(keys: &[&str]) -> MockConfig {
    MockConfig {
        api_keys: keys.iter().map(|k| (*k).to_owned()).collect(),
        ..MockConfig::default()
    }
}

/// `[providers.NAME]` on the mock (OpenAI wire format) with `key` as its `api_key` reference,
/// and a public model of the same name.
fn provider(name: &str, mock: &Mock, key: &str) -> String {
    format!(
        r#"
[providers.{name}]
base_url = "{base}"
api_key = {key}
timeout = "5s"

[[models]]
name = "{name}"
deployments = [{{ provider = "{name}", model = "gpt-4o-mini" }}]
"#,
        base = mock.base_url()
    )
}

/// Replace `path`'s content at once (a rename), as Kubernetes swaps a mounted secret, so a
/// reader never sees it half written.
fn swap_file(path: &Path, content: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, content).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// A chat request to `model` at `base`: its status and body.
async fn chat_at(base: &str, model: &str, stream: bool) -> (u16, String) {
    let r = client()
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth(KEY)
        .json(&chat_body(model, "hello", stream))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn get_text(url: String) -> String {
    client()
        .get(url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The value of `name{secret="SECRET"}` in a Prometheus exposition.
fn metric(text: &str, name: &str, secret: &str) -> Option<f64> {
    let prefix = format!("{name}{{secret=\"{secret}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
}

/// `/readyz`'s stale secrets, by name, with their error.
fn stale(readyz: &serde_json::Value) -> Vec<(String, String)> {
    readyz["secrets"]["stale"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["secret"].as_str().unwrap().to_owned(),
                s["error"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// Wait until `/readyz` lists exactly `names` as stale; returns the body.
async fn wait_stale(base: &str, names: &[&str]) -> serde_json::Value {
    wait_for(
        &format!("/readyz to list {names:?} as stale"),
        Duration::from_secs(15),
        || async {
            let r = client().get(format!("{base}/readyz")).send().await.ok()?;
            let code = r.status().as_u16();
            let body: serde_json::Value = r.json().await.ok()?;
            let mut listed: Vec<String> = stale(&body).into_iter().map(|(n, _)| n).collect();
            listed.sort();
            let mut want: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
            want.sort();
            (listed == want && code == 200).then_some(body)
        },
    )
    .await
}

/// `switchyard serve` as a child process, with `env` and its stderr in a file; stopped with
/// SIGTERM by [`GatewayProcess::stop`], killed if dropped otherwise (a failed test).
struct GatewayProcess {
    child: Option<std::process::Child>,
    base: String,
    log: PathBuf,
}

impl GatewayProcess {
    async fn start(cfg: &mut TestConfig, env: &[(&str, &str)], rust_log: &str) -> Self {
        let port = free_port();
        cfg.listen = format!("127.0.0.1:{port}");
        let dir = cfg.data_dir.clone();
        let config = dir.join("gateway.toml");
        std::fs::write(&config, cfg.toml()).unwrap();
        let log = dir.join("gateway.log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_switchyard"));
        cmd.args(["serve", "--config"])
            .arg(&config)
            .env("RUST_LOG", rust_log)
            .env_remove("SWITCHYARD_LOG_FORMAT")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().unwrap();
        let base = format!("http://127.0.0.1:{port}");
        wait_for(
            "the gateway answers /readyz",
            Duration::from_secs(30),
            || async {
                let r = client().get(format!("{base}/readyz")).send().await.ok()?;
                (r.status() == 200).then_some(())
            },
        )
        .await;
        GatewayProcess {
            child: Some(child),
            base,
            log,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, wait for a clean exit, and return everything it logged.
    async fn stop(mut self) -> String {
        let Some(mut child) = self.child.take() else {
            unreachable!("stopped once")
        };
        let pid = child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let exit = tokio::task::spawn_blocking(move || child.wait().unwrap())
            .await
            .unwrap();
        assert!(exit.success(), "clean exit: {exit:?}\n{}", self.log());
        self.log()
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vault_kv2_secret_is_refreshed_and_a_failed_refresh_keeps_the_last_good_value() {
    const V1: &str = "sk-vault-v1-c0ffee51a7";
    const V2: &str = "sk-vault-v2-d15ea5e0b3";
    let vault = Vault::start("hvs.token-one").await;
    vault.put(
        "secret/switchyard/openai",
        &[("api_key", V1), ("org", "o-1")],
    );
    vault.require_namespace("team-a");
    let nats = Nats::start();
    let mock = Mock::start(accepting(&[V1])).await;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("vault-token");
    std::fs::write(&token, "hvs.token-one\n").unwrap();
    let mut cfg = TestConfig::new(&nats, &mock, dir.path());
    cfg.extra = provider(
        "vaulted",
        &mock,
        &format!(
            r#"{{ vault = {{ addr = "{}", path = "switchyard/openai", field = "api_key", namespace = "team-a", token = {{ file = {:?} }}, refresh = "1s" }} }}"#,
            vault.url(),
            token.display().to_string()
        ),
    );
    let gw = Gateway::start(cfg.build()).await;
    let base = format!("http://{}", gw.addr);
    assert_eq!(
        chat_at(&base, "vaulted", false).await.0,
        200,
        "read at start"
    );

    // A new version, and the provider revokes the old key: the next read carries it over.
    let reads = vault.reads();
    vault.put(
        "secret/switchyard/openai",
        &[("api_key", V2), ("org", "o-1")],
    );
    mock.state.set_config(accepting(&[V2]));
    // Fetches run one after another, so once a second read began after the write, the first
    // one's answer (the new version) is in use.
    wait_for(
        "two reads after the write",
        Duration::from_secs(5),
        || async { (vault.reads() >= reads + 2).then_some(()) },
    )
    .await;
    assert_eq!(
        chat_at(&base, "vaulted", false).await.0,
        200,
        "the new version is used"
    );
    assert_eq!(
        mock.state.stats().unauthorized,
        0,
        "no request carried a revoked key"
    );

    // Vault sealed: the last good value stays, readiness says so, and so do the metrics.
    vault.set_sealed(true);
    let ready = wait_stale(&base, &["providers.vaulted.api_key"]).await;
    assert_eq!(ready["status"], "degraded");
    let (_, error) = &stale(&ready)[0];
    assert_eq!(
        error,
        "Vault secret/switchyard/openai#api_key: Vault answered 503: Vault is sealed"
    );
    assert_eq!(ready["secrets"]["stale"][0]["source"], "vault");
    assert_eq!(
        chat_at(&base, "vaulted", false).await.0,
        200,
        "last good value"
    );
    let metrics = get_text(format!("{base}/metrics")).await;
    let secret = "providers.vaulted.api_key";
    assert!(metric(&metrics, "switchyard_secret_refresh_failures_total", secret) >= Some(1.0));
    assert_eq!(
        metric(&metrics, "switchyard_secret_stale", secret),
        Some(1.0)
    );
    assert!(metric(&metrics, "switchyard_secret_refreshes_total", secret) >= Some(2.0));
    assert!(metric(&metrics, "switchyard_secret_age_seconds", secret).is_some());

    // Unsealed but the token was revoked; a renewed token file is read at the next fetch.
    vault.set_token("hvs.token-two");
    vault.set_sealed(false);
    wait_for("the 403 to show", Duration::from_secs(10), || async {
        let r = readyz(&gw).await;
        stale(&r)
            .first()
            .filter(|(_, e)| e.contains("Vault refused the token (403): permission denied"))
            .map(|_| ())
    })
    .await;
    swap_file(&token, "hvs.token-two\n");
    wait_drained(&gw).await;
    assert!(stale(&readyz(&gw).await).is_empty());
    assert_eq!(chat_at(&base, "vaulted", false).await.0, 200);
    let metrics = get_text(format!("{base}/metrics")).await;
    assert_eq!(
        metric(&metrics, "switchyard_secret_stale", secret),
        Some(0.0)
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exec_secret_is_refreshed_and_a_failing_command_keeps_the_last_good_value() {
    const V1: &str = "sk-exec-v1-5a1e7c0d9b";
    const V2: &str = "sk-exec-v2-0d0e1f2a3b";
    let nats = Nats::start();
    let mock = Mock::start(accepting(&[V1])).await;
    let dir = tempfile::tempdir().unwrap();
    let (secret, runs) = (dir.path().join("cli-secret"), dir.path().join("cli-runs"));
    std::fs::write(&secret, format!("{V1}\n")).unwrap();
    let script = format!(
        "echo run >> '{}' && cat '{}'",
        runs.display(),
        secret.display()
    );
    let mut cfg = TestConfig::new(&nats, &mock, dir.path());
    cfg.extra = provider(
        "cli",
        &mock,
        &format!(r#"{{ exec = {{ command = ["sh", "-c", {script:?}], refresh = "1s" }} }}"#),
    );
    let gw = Gateway::start(cfg.build()).await;
    let base = format!("http://{}", gw.addr);
    assert_eq!(chat_at(&base, "cli", false).await.0, 200);
    let count = || {
        std::fs::read_to_string(&runs)
            .unwrap_or_default()
            .lines()
            .count()
    };

    swap_file(&secret, &format!("{V2}\n"));
    mock.state.set_config(accepting(&[V2]));
    let before = count();
    wait_for(
        "two runs after the rotation",
        Duration::from_secs(5),
        || async { (count() >= before + 2).then_some(()) },
    )
    .await;
    assert_eq!(
        chat_at(&base, "cli", false).await.0,
        200,
        "the new value is used"
    );
    assert_eq!(mock.state.stats().unauthorized, 0);

    std::fs::remove_file(&secret).unwrap();
    let ready = wait_stale(&base, &["providers.cli.api_key"]).await;
    let (_, error) = &stale(&ready)[0];
    assert!(
        error.starts_with("command \"sh\": exit status: 1: cat: ") && error.contains("cli-secret"),
        "{error}"
    );
    assert_eq!(chat_at(&base, "cli", false).await.0, 200, "last good value");

    swap_file(&secret, &format!("{V2}\n"));
    wait_drained(&gw).await;
    assert!(stale(&readyz(&gw).await).is_empty());
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_adapter_sends_a_rotated_file_secret_with_the_next_request() {
    let nats = Nats::start();
    let mock = Mock::start(accepting(&[
        "k1-openai",
        "k1-azure",
        "k1-anthropic",
        "k1-gemini",
        "k1-bedrock",
    ]))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let names = ["openai", "azure", "anthropic", "gemini", "bedrock"];
    let file = |name: &str| dir.path().join(format!("{name}.key"));
    for name in names {
        std::fs::write(file(name), format!("k1-{name}\n")).unwrap();
    }
    let key = |name: &str| format!("{{ file = {:?} }}", file(name).display().to_string());
    let addr = mock.addr;
    let mut cfg = TestConfig::new(&nats, &mock, dir.path());
    cfg.extra = format!(
        r#"
[providers.openai]
base_url = "http://{addr}/v1"
api_key = {openai}
[providers.azure]
kind = "azure"
base_url = "http://{addr}"
api_key = {azure}
[providers.anthropic]
kind = "anthropic"
base_url = "http://{addr}/v1"
api_key = {anthropic}
[providers.gemini]
kind = "gemini"
base_url = "http://{addr}/v1beta"
api_key = {gemini}
[providers.bedrock]
kind = "bedrock"
base_url = "http://{addr}"
region = "us-east-1"
api_key = {bedrock}

[[models]]
name = "openai"
deployments = [{{ provider = "openai", model = "gpt-4o-mini" }}]
[[models]]
name = "azure"
deployments = [{{ provider = "azure", model = "gpt-4o-mini" }}]
[[models]]
name = "anthropic"
deployments = [{{ provider = "anthropic", model = "claude-3-5-haiku-latest" }}]
[[models]]
name = "gemini"
deployments = [{{ provider = "gemini", model = "gemini-2.5-flash" }}]
[[models]]
name = "bedrock"
deployments = [{{ provider = "bedrock", model = "anthropic.claude-3-5-haiku-20241022-v1:0" }}]

[secrets]
refresh = "1s"
"#,
        openai = key("openai"),
        azure = key("azure"),
        anthropic = key("anthropic"),
        gemini = key("gemini"),
        bedrock = key("bedrock"),
    );
    let gw = Gateway::start(cfg.build()).await;
    let base = format!("http://{}", gw.addr);
    for name in names {
        assert_eq!(chat_at(&base, name, false).await.0, 200, "{name} with k1");
    }
    for name in names {
        swap_file(&file(name), &format!("k2-{name}\n"));
    }
    mock.state.set_config(accepting(&[
        "k2-openai",
        "k2-azure",
        "k2-anthropic",
        "k2-gemini",
        "k2-bedrock",
    ]));
    let fetches = |metrics: &str| -> Vec<f64> {
        names
            .iter()
            .map(|n| {
                metric(
                    metrics,
                    "switchyard_secret_refreshes_total",
                    &format!("providers.{n}.api_key"),
                )
                .unwrap_or(0.0)
            })
            .collect()
    };
    let before = fetches(&get_text(format!("{base}/metrics")).await);
    wait_for(
        "two reads of every file after the swap",
        Duration::from_secs(10),
        || async {
            let now = fetches(&get_text(format!("{base}/metrics")).await);
            now.iter()
                .zip(&before)
                .all(|(n, b)| *n >= b + 2.0)
                .then_some(())
        },
    )
    .await;
    for name in names {
        let (status, body) = chat_at(&base, name, false).await;
        assert_eq!(status, 200, "{name} with k2: {body}");
        let (status, body) = chat_at(&base, name, true).await;
        assert_eq!(status, 200, "{name} streamed with k2: {body}");
    }
    assert_eq!(mock.state.stats().unauthorized, 0);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_that_cannot_be_fetched_at_start_stops_the_gateway_naming_the_reference() {
    let vault = Vault::start("hvs.start").await;
    vault.put("secret/gone", &[("api_key", "sk-deleted-0001")]);
    vault.delete_latest("secret/gone");
    let nats = Nats::start();
    let mock = Mock::start(MockConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("vault-token");
    std::fs::write(&token, "hvs.start").unwrap();
    let mut cfg = TestConfig::new(&nats, &mock, dir.path());
    cfg.extra = provider(
        "nowhere",
        &mock,
        &format!(
            r#"{{ vault = {{ addr = "{}", path = "not/written", field = "api_key", token = {{ file = {:?} }} }} }}"#,
            vault.url(),
            token.display().to_string()
        ),
    ) + &provider(
        "deleted",
        &mock,
        &format!(
            r#"{{ vault = {{ addr = "{}", path = "gone", field = "api_key", token = {{ file = {:?} }} }} }}"#,
            vault.url(),
            token.display().to_string()
        ),
    ) + &provider(
        "failing",
        &mock,
        r#"{ exec = { command = ["sh", "-c", "echo sk-half-printed-1234; exit 4"] } }"#,
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let err = switchyard::app::serve(cfg.build(), listener, CancellationToken::new())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("cannot fetch secrets:"), "{err}");
    for needle in [
        "providers.nowhere.api_key: Vault secret/not/written#api_key: no secret there (404)",
        "providers.deleted.api_key: Vault secret/gone#api_key: its current version (1) is deleted",
        "providers.failing.api_key: command \"sh\": exit status: 4",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in\n{err}");
    }
    assert!(!err.contains("sk-half-printed-1234"), "{err}");
}

#[test]
fn check_config_fetches_remote_secrets_and_reports_them_as_serve_would() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let vault = rt.block_on(Vault::start("hvs.check"));
    vault.put("secret/switchyard/openai", &[("api_key", "sk-check-1")]);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    let write = |path: &str| {
        std::fs::write(
            &config,
            format!(
                r#"
[providers.up]
base_url = "http://127.0.0.1:9/v1"
api_key = {{ vault = {{ addr = "{}", path = "{path}", field = "api_key" }} }}
[[models]]
name = "m"
deployments = [{{ provider = "up", model = "x" }}]
"#,
                vault.url()
            ),
        )
        .unwrap();
    };
    let check = |flags: &[&str], token: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_switchyard"));
        cmd.arg("check-config")
            .args(flags)
            .arg("--config")
            .arg(&config);
        match token {
            Some(t) => cmd.env("VAULT_TOKEN", t),
            None => cmd.env_remove("VAULT_TOKEN"),
        };
        let out = cmd.output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    write("switchyard/openai");
    let (code, err) = check(&[], Some("hvs.check"));
    assert_eq!(code, Some(0), "{err}");
    write("switchyard/absent");
    let (code, err) = check(&[], Some("hvs.check"));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(
            "providers.up.api_key: Vault secret/switchyard/absent#api_key: no secret there (404)"
        ),
        "{err}"
    );
    let (code, err) = check(&["--allow-missing-secrets"], None);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("warning: missing secret: environment variable VAULT_TOKEN is not set"),
        "{err}"
    );
    assert!(
        err.contains("warning: cannot fetch secret: providers.up.api_key"),
        "{err}"
    );
    drop(vault);
}
