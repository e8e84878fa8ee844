//! The official OpenAI and Anthropic Python SDKs, unmodified, against the gateway with an
//! OpenAI, an Anthropic, a Gemini and a Bedrock deployment behind it (tests/sdk/sdk_check.py
//! holds the checks; each SDK drives every deployment).

use crate::harness::*;
use crate::providers::anthropic_model;
use switchyard_mock::MockConfig;

fn sdk_python() -> std::path::PathBuf {
    let p = std::env::var_os("SWITCHYARD_SDK_PYTHON")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/sdk-venv/bin/python")
        });
    assert!(
        p.exists(),
        "{} not found: run the README's test command (scripts/test), which installs the SDKs into tools/sdk-venv",
        p.display()
    );
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_sdks_work_unchanged() {
    let python = sdk_python();
    let nats = Nats::start();
    let mock = Mock::start(MockConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = TestConfig::new(&nats, &mock, dir.path());
    let (id, secret) = (dir.path().join("aws-id"), dir.path().join("aws-secret"));
    std::fs::write(&id, switchyard_mock::MOCK_AWS_ACCESS_KEY_ID).unwrap();
    std::fs::write(&secret, switchyard_mock::MOCK_AWS_SECRET_ACCESS_KEY).unwrap();
    cfg.extra = anthropic_model(&mock, dir.path())
        + &format!(
            r#"
[providers.gemini]
kind = "gemini"
base_url = "http://{addr}/v1beta"
api_key = {{ file = {key:?} }}

[providers.bedrock]
kind = "bedrock"
base_url = "http://{addr}"
region = "us-east-1"
aws_access_key_id = {{ file = {id:?} }}
aws_secret_access_key = {{ file = {secret:?} }}

[[models]]
name = "gemini"
deployments = [{{ provider = "gemini", model = "gemini-2.5-flash" }}]

[[models]]
name = "bedrock"
deployments = [{{ provider = "bedrock", model = "anthropic.claude-3-5-haiku-20241022-v1:0" }}]
"#,
            addr = mock.addr,
            key = dir.path().join("upstream.key").display().to_string(),
            id = id.display().to_string(),
            secret = secret.display().to_string(),
        );
    let gw = Gateway::start(cfg.build()).await;
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk/sdk_check.py");
    let url = format!("http://{}", gw.addr);
    let out = tokio::process::Command::new(&python)
        .arg(&script)
        .env("SWITCHYARD_URL", &url)
        .env("SWITCHYARD_KEY", KEY)
        .env("OPENAI_MODEL", "gpt-4o-mini")
        .env("ANTHROPIC_MODEL", "claude")
        .env("OTHER_MODELS", "gemini,bedrock")
        .env("EMBEDDING_MODEL", "text-embedding-3-small")
        .output()
        .await
        .unwrap();
    gw.stop().await;
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success(),
        "SDK check failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains("sdk check passed"), "{stdout}");
}
