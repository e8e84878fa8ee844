//! No secret value reaches a log, an event, an error or a metric: a gateway process logging at
//! `trace` fetches keys from every kind of reference, serves with them, rotates them, fails to
//! refresh them, and answers errors; then everything it produced (its stderr, every event in
//! the stream, every answer body, `/readyz`, `/metrics`) is searched for every test secret.

use super::*;
use switchyard_testkit::Moto;

const AWS: [&str; 2] = ["sk-leak-aws-1-7c1d0e9f", "sk-leak-aws-2-3b8a6f21"];
const VAULT: [&str; 2] = ["sk-leak-vault-1-90ad4e7b", "sk-leak-vault-2-c4f1a3d8"];
const EXEC: [&str; 2] = ["sk-leak-exec-1-5e2b7a90", "sk-leak-exec-2-81c3d6f4"];
const FILE: [&str; 2] = ["sk-leak-file-1-2d9e4c71", "sk-leak-file-2-6a0b5f38"];
const VAULT_TOKEN: &str = "hvs.leak-token-4f0c2e9a71";
const AWS_KEY_ID: &str = "AKIALEAKCHECK0000001";
const AWS_SECRET_KEY: &str = "leak/check/aws/secret/0123456789abcdef";
const SECRET_ID: &str = "switchyard/leak";
const MODELS: [&str; 4] = ["from-aws", "from-vault", "from-exec", "from-file"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_value_reaches_a_log_an_event_an_error_or_a_metric() {
    let moto = Moto::start();
    moto.secretsmanager(
        "sm.create_secret(Name=sys.argv[1], SecretString=sys.argv[2])",
        &[SECRET_ID, AWS[0]],
    );
    let vault = Vault::start(VAULT_TOKEN).await;
    vault.put("secret/leak", &[("api_key", VAULT[0])]);
    let nats = Nats::start();
    let mock = Mock::start(accepting(&[AWS[0], VAULT[0], EXEC[0], FILE[0]])).await;
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).display().to_string();
    std::fs::write(path("vault-token"), VAULT_TOKEN).unwrap();
    std::fs::write(path("cli-secret"), EXEC[0]).unwrap();
    std::fs::write(path("file-secret"), format!("{}\n", FILE[0])).unwrap();
    let mut cfg = TestConfig::new(&nats, &mock, dir.path());
    cfg.extra = provider(
        "from-aws",
        &mock,
        &format!(
            r#"{{ aws = {{ secret_id = "{SECRET_ID}", region = "us-east-1", endpoint = "{}", refresh = "1s" }} }}"#,
            moto.endpoint()
        ),
    ) + &provider(
        "from-vault",
        &mock,
        &format!(
            r#"{{ vault = {{ addr = "{}", path = "leak", field = "api_key", token = {{ file = {:?} }}, refresh = "1s" }} }}"#,
            vault.url(),
            path("vault-token")
        ),
    ) + &provider(
        "from-exec",
        &mock,
        &format!(
            r#"{{ exec = {{ command = ["cat", {:?}], refresh = "1s" }} }}"#,
            path("cli-secret")
        ),
    ) + &provider(
        "from-file",
        &mock,
        &format!("{{ file = {:?} }}", path("file-secret")),
    ) + "\n[secrets]\nrefresh = \"1s\"\n";
    let env = [
        ("AWS_ACCESS_KEY_ID", AWS_KEY_ID),
        ("AWS_SECRET_ACCESS_KEY", AWS_SECRET_KEY),
    ];
    let gw = GatewayProcess::start(&mut cfg, &env, "trace").await;
    let base = gw.base.clone();
    let mut answers = Vec::new();

    for model in MODELS {
        for stream in [false, true] {
            let (status, body) = chat_at(&base, model, stream).await;
            assert_eq!(status, 200, "{model}: {body}");
            answers.push(body);
        }
    }
    // The provider refuses the key of `mock` (the harness's file secret): error answers.
    for stream in [false, true] {
        let (status, body) = chat_at(&base, "gpt-4o-mini", stream).await;
        assert_ne!(status, 200, "{body}");
        answers.push(body);
    }
    let refused = client()
        .post(format!("{base}/v1/embeddings"))
        .bearer_auth(KEY)
        .json(&serde_json::json!({"model": "text-embedding-3-small", "input": "hi"}))
        .send()
        .await
        .unwrap();
    assert_ne!(refused.status(), 200);
    answers.push(refused.text().await.unwrap());

    // Rotate every one, then wait until the gateway has taken each new value.
    moto.secretsmanager(
        "sm.put_secret_value(SecretId=sys.argv[1], SecretString=sys.argv[2])",
        &[SECRET_ID, AWS[1]],
    );
    vault.put("secret/leak", &[("api_key", VAULT[1])]);
    swap_file(Path::new(&path("cli-secret")), EXEC[1]);
    swap_file(Path::new(&path("file-secret")), &format!("{}\n", FILE[1]));
    mock.state
        .set_config(accepting(&[AWS[1], VAULT[1], EXEC[1], FILE[1]]));
    for model in MODELS {
        let secret = format!("secret=\"providers.{model}.api_key\"");
        wait_for(
            &format!("{model} rotated"),
            Duration::from_secs(10),
            || async {
                gw.log()
                    .lines()
                    .any(|l| l.contains("secret value changed") && l.contains(&secret))
                    .then_some(())
            },
        )
        .await;
        let (status, body) = chat_at(&base, model, false).await;
        assert_eq!(status, 200, "{model} after rotation: {body}");
        answers.push(body);
    }

    // Break every source: the last good values stay in use.
    moto.secretsmanager(
        "sm.delete_secret(SecretId=sys.argv[1], ForceDeleteWithoutRecovery=True)",
        &[SECRET_ID],
    );
    vault.set_token("hvs.someone-else");
    std::fs::remove_file(path("cli-secret")).unwrap();
    std::fs::remove_file(path("file-secret")).unwrap();
    let names: Vec<String> = MODELS
        .iter()
        .map(|m| format!("providers.{m}.api_key"))
        .collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let ready = wait_stale(&base, &names).await;
    for model in MODELS {
        let (status, body) = chat_at(&base, model, false).await;
        assert_eq!(status, 200, "{model} on its last good value: {body}");
        answers.push(body);
    }
    answers.push(ready.to_string());
    answers.push(get_text(format!("{base}/readyz")).await);
    let metrics = get_text(format!("{base}/metrics")).await;
    let log = gw.stop().await;
    let events = read_events(&nats.url()).await;

    // What was searched is what it should be.
    assert!(log.contains("TRACE"), "logged at trace");
    for name in &names {
        let failed = format!("secret=\"{name}\"");
        assert!(
            log.lines()
                .any(|l| l.contains("secret refresh failed") && l.contains(&failed)),
            "{name}'s failures are logged"
        );
        assert!(metrics.contains(&format!("switchyard_secret_stale{{secret=\"{name}\"}} 1")));
    }
    assert!(
        events.len() >= 2 * 19,
        "every request's events: {}",
        events.len()
    );
    let events: Vec<(Vec<u8>, String)> = events
        .into_iter()
        .map(|(_, envelope, raw)| (raw, format!("{envelope:?}")))
        .collect();

    let secrets = [
        AWS[0],
        AWS[1],
        VAULT[0],
        VAULT[1],
        EXEC[0],
        EXEC[1],
        FILE[0],
        FILE[1],
        VAULT_TOKEN,
        AWS_KEY_ID,
        AWS_SECRET_KEY,
        UPSTREAM_SECRET,
    ];
    for secret in secrets {
        assert!(!log.contains(secret), "the log holds {secret}");
        assert!(!metrics.contains(secret), "/metrics holds {secret}");
        for answer in &answers {
            assert!(
                !answer.contains(secret),
                "an answer holds {secret}: {answer}"
            );
        }
        for (raw, debug) in &events {
            assert!(
                !raw.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "an event holds {secret}"
            );
            assert!(!debug.contains(secret), "an event holds {secret}: {debug}");
        }
    }
}
