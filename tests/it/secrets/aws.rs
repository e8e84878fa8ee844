//! The proof of the issue: a secret rotated in AWS Secrets Manager (moto's server, a real
//! implementation of its API, driven by boto3) is used by the next request after the refresh
//! interval, without a restart, while a stream that was already running is not disturbed.

use super::*;
use switchyard_testkit::Moto;

const V1: &str = "sk-moto-v1-3f9a2c71e0b4";
const V2: &str = "sk-moto-v2-8b41d6e5f2a9";
const SECRET_ID: &str = "switchyard/prod/openai";

/// What the gateway logs when it takes a new value of `secret`.
fn rotation_logged(log: &str, secret: &str) -> Option<String> {
    log.lines()
        .find(|l| l.contains("secret value changed") && l.contains(&format!("secret=\"{secret}\"")))
        .map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_rotated_in_secrets_manager_is_used_by_the_next_request_after_the_ttl() {
    let moto = Moto::start();
    moto.secretsmanager(
        "sm.create_secret(Name=sys.argv[1], SecretString=sys.argv[2])",
        &[
            SECRET_ID,
            &serde_json::json!({ "api_key": V1, "org": "o-1" }).to_string(),
        ],
    );
    let nats = Nats::start();
    // A long stream: 24 words, 100 ms apart.
    let streaming = |keys: &[&str]| MockConfig {
        stream_words: 24,
        chunk_delay_ms: 100,
        ..accepting(keys)
    };
    let mock = Mock::start(streaming(&[V1])).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = TestConfig::new(&nats, &mock, dir.path());
    cfg.extra = provider(
        "rotating",
        &mock,
        &format!(
            r#"{{ aws = {{ secret_id = "{SECRET_ID}", field = "api_key", region = "us-east-1", endpoint = "{}", refresh = "1s" }} }}"#,
            moto.endpoint()
        ),
    );
    let env = [
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
    ];
    let gw = GatewayProcess::start(&mut cfg, &env, "info").await;
    let (status, body) = chat_at(&gw.base, "rotating", false).await;
    assert_eq!(status, 200, "the value fetched at start: {body}");

    // A stream opened with V1 and still running when the secret rotates.
    let stream = client()
        .post(format!("{}/v1/chat/completions", gw.base))
        .bearer_auth(KEY)
        .json(&chat_body("rotating", "tell me a long story", true))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let streamed = tokio::spawn(async move { (stream.text().await, Instant::now()) });

    // Rotate in Secrets Manager; the provider stops accepting the old key at once.
    let rotated_at = Instant::now();
    let version = moto.secretsmanager(
        "print(sm.put_secret_value(SecretId=sys.argv[1], SecretString=sys.argv[2])['VersionId'])",
        &[
            SECRET_ID,
            &serde_json::json!({ "api_key": V2, "org": "o-1" }).to_string(),
        ],
    );
    let put_took = rotated_at.elapsed();
    mock.state.set_config(streaming(&[V2]));
    let line = wait_for(
        "the gateway to take the new value",
        Duration::from_secs(10),
        || async { rotation_logged(&gw.log(), "providers.rotating.api_key") },
    )
    .await;
    let took = rotated_at.elapsed();
    eprintln!(
        "the rotated secret was in use {took:?} after the write began (the write took {put_took:?}; refresh = 1s)"
    );
    assert!(
        took < put_took + Duration::from_secs(2),
        "taken within the 1 s refresh interval of the write, plus a fetch and slack for a loaded \
         machine: {took:?} (the write took {put_took:?})"
    );
    assert!(
        line.contains(&format!("version=\"{}\"", version.trim())),
        "{line}"
    );

    let (status, body) = chat_at(&gw.base, "rotating", false).await;
    assert_eq!(
        status, 200,
        "the next request carries the new value: {body}"
    );
    assert_eq!(
        mock.state.stats().unauthorized,
        0,
        "no request carried a key the provider had revoked"
    );

    // The stream that began before the rotation ran to its end, untouched.
    let (streamed, ended_at) = streamed.await.unwrap();
    let streamed = streamed.unwrap();
    assert!(
        ended_at > rotated_at,
        "the stream was still running at the rotation"
    );
    assert!(streamed.trim_end().ends_with("data: [DONE]"), "{streamed}");
    assert!(!streamed.contains("\"error\""), "{streamed}");
    let words: usize = streamed
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<serde_json::Value>(d).ok())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .map(|c| c.split_whitespace().count())
        .sum();
    assert_eq!(words, 24, "every word of the stream arrived");

    let ready: serde_json::Value = client()
        .get(format!("{}/readyz", gw.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(stale(&ready).is_empty(), "{ready}");
    assert_eq!(
        ready["secrets"]["count"], 2,
        "the mock's file key and this one"
    );
    let log = gw.stop().await;
    assert!(!log.contains(V1) && !log.contains(V2), "{log}");
}
