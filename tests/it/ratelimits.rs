//! Rate limits over real NATS: a key's requests per minute refuse past the burst with 429
//! `rate_limit_exceeded`, `Retry-After` and the `x-ratelimit-*` headers; admitted answers carry
//! the headers too; two gateway processes share one limit instead of each holding a copy.

use crate::harness::*;
use reqwest::Method;
use serde_json::{Value, json};
use switchyard_mock::MockConfig;

async fn issue(base: &str, rate: Value) -> String {
    let r = admin(Method::POST, format!("{base}/admin/keys"))
        .json(&json!({"name": "rated", "rate_limit": rate}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let v: Value = r.json().await.unwrap();
    v["key"].as_str().unwrap().to_owned()
}

async fn send(base: &str, key: &str) -> reqwest::Response {
    client()
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth(key)
        .json(&chat_body("gpt-4o-mini", "hello", false))
        .send()
        .await
        .unwrap()
}

/// Two `switchyard serve` processes on one NATS and a key issued on the first with
/// `rate_limit`, once the second accepts it (that first request counts against the limit).
async fn two_gateways(
    rate_limit: Value,
) -> (
    Nats,
    Mock,
    tempfile::TempDir,
    GatewayProcess,
    GatewayProcess,
    String,
) {
    let nats = Nats::start();
    let mock = Mock::start(MockConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = TestConfig::new(&nats, &mock, &dir.path().join("a"));
    let a = GatewayProcess::start(&cfg).await;
    cfg.data_dir = dir.path().join("b");
    let b = GatewayProcess::start(&cfg).await;
    let key = issue(&a.url(""), rate_limit).await;
    let ready = std::time::Instant::now();
    loop {
        let r = send(&b.url(""), &key).await;
        if r.status() != 401 && r.status() != 503 {
            break;
        }
        assert!(ready.elapsed().as_secs() < 5, "b never knew the key");
    }
    (nats, mock, dir, a, b, key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_past_the_limit_get_429_with_retry_after_and_headers() {
    let nats = Nats::start();
    let mock = Mock::start(MockConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(TestConfig::new(&nats, &mock, dir.path()).build()).await;
    // 60 a minute: one a second, a burst of one
    let key = issue(&gw.url(""), json!({"requests_per_minute": 60})).await;
    let first = send(&gw.url(""), &key).await;
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["x-ratelimit-limit-requests"], "60");
    assert_eq!(first.headers()["x-ratelimit-remaining-requests"], "59");
    let second = send(&gw.url(""), &key).await;
    assert_eq!(second.status(), 429);
    let retry: u64 = second.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=1).contains(&retry), "{retry}");
    assert_eq!(second.headers()["x-ratelimit-remaining-requests"], "0");
    let refused_id = second.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let body: Value = second.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limit_exceeded", "{body}");
    assert_eq!(body["error"]["type"], "requests", "{body}");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(send(&gw.url(""), &key).await.status(), 200);
    gw.stop().await;
    // The refusal is on record with its reason and its caller.
    let events = read_events(&nats.url()).await;
    let rejected: Vec<_> = events
        .iter()
        .filter_map(|(_, env, _)| match &env.event {
            switchyard::events::Event::RequestRejected(r) => Some((env.request_id, r)),
            _ => None,
        })
        .collect();
    assert_eq!(rejected.len(), 1);
    let (id, r) = rejected[0];
    assert_eq!(id.to_string(), refused_id);
    assert_eq!((r.status, r.code.as_str()), (429, "rate_limit_exceeded"));
    assert_eq!(r.model.as_deref(), Some("gpt-4o-mini"));
    assert!(r.principal.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_per_minute_count_the_prompt_and_the_output_ceiling() {
    let nats = Nats::start();
    let mock = Mock::start(MockConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(TestConfig::new(&nats, &mock, dir.path()).build()).await;
    let key = issue(&gw.url(""), json!({"tokens_per_minute": 1000})).await;
    let body = json!({"model": "gpt-4o-mini", "max_tokens": 300,
                      "messages": [{"role": "user", "content": "hello"}]});
    let ask = || {
        client()
            .post(gw.url("/v1/chat/completions"))
            .bearer_auth(&key)
            .json(&body)
            .send()
    };
    let first = ask().await.unwrap();
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["x-ratelimit-limit-tokens"], "1000");
    // 300 output tokens and a few of prompt: 18 s of a 1000 TPM limit, burst 100
    let second = ask().await.unwrap();
    assert_eq!(second.status(), 429);
    let b: Value = second.json().await.unwrap();
    assert_eq!(b["error"]["type"], "tokens", "{b}");
    gw.stop().await;
}

/// Two processes on one NATS: a limit of 60 a minute with a burst of one admits about one
/// request a second in total, not one per process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_one_limit() {
    let (_nats, _mock, _dir, a, b, key) = two_gateways(json!({"requests_per_minute": 60})).await;
    let started = std::time::Instant::now();
    let mut admitted = 0;
    while started.elapsed() < std::time::Duration::from_secs(5) {
        for base in [a.url(""), b.url("")] {
            if send(&base, &key).await.status() == 200 {
                admitted += 1;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // 5 s at one a second, a burst of one, and the request that found b ready
    assert!((3..=7).contains(&admitted), "{admitted} admitted in 5 s");
}

/// The issue's proof: a 600 RPM key hammered through two processes for 70 s is admitted at most
/// 606 times in any minute (600 plus a 1 % burst), counted by the gateways' own RequestAccepted
/// times.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_600_rpm_key_through_two_instances_admits_at_most_606_in_any_minute() {
    let (nats, _mock, _dir, a, b, key) = two_gateways(json!({"requests_per_minute": 600})).await;
    let started = std::time::Instant::now();
    let workers: Vec<_> = (0..8)
        .map(|i| {
            let base = if i % 2 == 0 { a.url("") } else { b.url("") };
            let key = key.clone();
            tokio::spawn(async move {
                // Eight clients retrying 100 ms after each 429: about eight times the limit.
                // (Every refusal is an event and an audit record; a tighter loop measures how
                // fast two cores index refusals, not the limit.)
                while started.elapsed() < std::time::Duration::from_secs(70) {
                    if send(&base, &key).await.status() == 429 {
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    let events = read_events(&nats.url()).await;
    let mut times: Vec<u64> = events
        .iter()
        .filter(|(_, e, _)| matches!(e.event, switchyard::events::Event::RequestAccepted(_)))
        .map(|(_, e, _)| e.at_ms)
        .collect();
    times.sort_unstable();
    let busiest = (0..times.len())
        .map(|i| {
            times[i..]
                .iter()
                .take_while(|&&t| t < times[i] + 60_000)
                .count()
        })
        .max()
        .unwrap_or(0);
    eprintln!("busiest minute: {busiest} admitted of 600 RPM");
    assert!(busiest <= 606, "{busiest} admitted in one minute");
    // Not a vacuous pass: the limit was reached for real. (Alone this admits 600; with the
    // rest of the suite on two cores, leased stretches an instance cannot use in time are
    // lost, and it has admitted as few as 331.)
    assert!(
        busiest >= 300,
        "only {busiest} admitted in the busiest minute"
    );
}
