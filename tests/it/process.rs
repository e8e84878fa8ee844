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
