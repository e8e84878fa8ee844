//! The `switchyard` binary itself: SIGTERM drains events and exits cleanly; the small commands.

use crate::harness::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use switchyard_mock::MockConfig;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_switchyard")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_flushes_every_event_and_exits_cleanly() {
    let nats = Nats::start();
    let mock = Mock::start(MockConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = TestConfig::new(&nats, &mock, dir.path());
    let port = free_port();
    cfg.listen = format!("127.0.0.1:{port}");
    let path = dir.path().join("gateway.toml");
    std::fs::write(&path, cfg.toml()).unwrap();
    let mut child = Command::new(bin())
        .arg("serve")
        .arg("--config")
        .arg(&path)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    wait_for(
        "the gateway answers /readyz",
        Duration::from_secs(20),
        || async {
            let r = client().get(format!("{base}/readyz")).send().await.ok()?;
            (r.status() == 200).then_some(())
        },
    )
    .await;
    for i in 0..5 {
        let r = client()
            .post(format!("{base}/v1/chat/completions"))
            .bearer_auth(KEY)
            .json(&chat_body("gpt-4o-mini", &format!("hello {i}"), i % 2 == 0))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let _ = r.bytes().await.unwrap();
    }
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "gateway did not exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exit.success(), "clean exit after SIGTERM: {exit:?}");
    let events = read_events(&nats.url()).await;
    assert_eq!(
        events.len(),
        15,
        "5 requests × 3 events, all flushed before exit"
    );
}

#[test]
fn hash_key_and_check_config() {
    let out = Command::new(bin())
        .args(["hash-key", "abc"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new(bin())
        .args([
            "check-config",
            "--config",
            &format!("{root}/config/switchyard.toml"),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[[models]]\nname = \"m\"\ndeployments = [{ provider = \"openia\", model = \"x\" }]\n",
    )
    .unwrap();
    let out = Command::new(bin())
        .args(["check-config", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("models[0].deployments[0].provider: no provider named \"openia\""),
        "{err}"
    );
}

/// A config whose only provider key comes from an environment variable nobody sets.
const MISSING_SECRET_CONFIG: &str = r#"
[providers.up]
kind = "openai"
base_url = "http://127.0.0.1:9"
api_key = { env = "SWITCHYARD_TEST_NEVER_SET_SECRET" }

[[models]]
name = "m"
deployments = [{ provider = "up", model = "x" }]
"#;

#[test]
fn check_config_reports_missing_secrets_fatal_or_as_warnings() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(&path, MISSING_SECRET_CONFIG).unwrap();
    let out = Command::new(bin())
        .args(["check-config", "--config"])
        .arg(&path)
        .env("RUST_BACKTRACE", "1")
        .env_remove("SWITCHYARD_TEST_NEVER_SET_SECRET")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "a config error exits 2: {err}");
    assert!(err.starts_with("error: invalid configuration"), "{err}");
    assert!(
        err.contains("SWITCHYARD_TEST_NEVER_SET_SECRET is not set"),
        "{err}"
    );
    assert!(
        !err.contains("backtrace") && !err.contains("Stack backtrace"),
        "no backtrace: {err}"
    );

    let out = Command::new(bin())
        .args(["check-config", "--allow-missing-secrets", "--config"])
        .arg(&path)
        .env_remove("SWITCHYARD_TEST_NEVER_SET_SECRET")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("warning: missing secret: environment variable SWITCHYARD_TEST_NEVER_SET_SECRET is not set"),
        "{err}"
    );

    // every other problem stays fatal under the flag
    std::fs::write(
        &path,
        MISSING_SECRET_CONFIG.replace("provider = \"up\"", "provider = \"nope\""),
    )
    .unwrap();
    let out = Command::new(bin())
        .args(["check-config", "--allow-missing-secrets", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no provider named \"nope\""), "{err}");

    // a missing file: the error and its cause, once each
    let out = Command::new(bin())
        .args(["check-config", "--config"])
        .arg(dir.path().join("absent.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("error: cannot read"), "{err}");
}

/// Run `serve` with stderr piped and `env`, until it is ready; then stop it and return stderr.
async fn serve_logs(env: &[(&str, &str)]) -> String {
    let nats = Nats::start();
    let mock = Mock::start(MockConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = TestConfig::new(&nats, &mock, dir.path());
    let port = free_port();
    cfg.listen = format!("127.0.0.1:{port}");
    let path = dir.path().join("gateway.toml");
    std::fs::write(&path, cfg.toml()).unwrap();
    let mut cmd = Command::new(bin());
    cmd.arg("serve")
        .arg("--config")
        .arg(&path)
        .env("RUST_LOG", "info")
        .env_remove("NO_COLOR")
        .env_remove("SWITCHYARD_LOG_FORMAT")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd.spawn().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    wait_for(
        "the gateway answers /readyz",
        Duration::from_secs(20),
        || async {
            let r = client().get(format!("{base}/readyz")).send().await.ok()?;
            (r.status() == 200).then_some(())
        },
    )
    .await;
    let r = client()
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth(KEY)
        .json(&chat_body("gpt-4o-mini", "hi", false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn piped_logs_have_no_colour_codes_and_json_logs_are_one_object_per_line() {
    let text = serve_logs(&[]).await;
    assert!(!text.trim().is_empty(), "serve logged something at info");
    assert!(!text.contains('\u{1b}'), "no ANSI escape codes: {text:?}");

    let json = serve_logs(&[("SWITCHYARD_LOG_FORMAT", "json")]).await;
    let lines: Vec<&str> = json.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty());
    for line in lines {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
        assert!(v["level"].is_string() && v["timestamp"].is_string(), "{v}");
    }
}
