//! Bad input and broken upstreams: OpenAI-shaped errors with the right status, and events that
//! say what happened.

use crate::harness::*;
use futures::StreamExt;
use switchyard::events::{AttemptKind, Event};
use switchyard_mock::MockConfig;

fn assert_openai_error(j: &serde_json::Value, code: &str) {
    let e = &j["error"];
    assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "{j}");
    assert!(e["type"].as_str().is_some(), "{j}");
    assert_eq!(e["code"], code, "{j}");
    assert!(e.as_object().unwrap().contains_key("param"), "{j}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_openai_shaped_errors() {
    let nats = Nats::start();
    let mock = Mock::start(MockConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = TestConfig::new(&nats, &mock, dir.path());
    cfg.max_body_bytes = 2048;
    let gw = Gateway::start(cfg.build()).await;
    let c = client();
    let url = gw.url("/v1/chat/completions");

    // no key, wrong key, wrong scheme
    let r = c
        .post(&url)
        .json(&chat_body("gpt-4o-mini", "hi", false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_openai_error(&r.json().await.unwrap(), "invalid_api_key");
    let r = c
        .post(&url)
        .bearer_auth("sk-wrong")
        .header("user-agent", "curl/8.5.0")
        .json(&chat_body("gpt-4o-mini", "hi", false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let wrong_key_id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    let r = c
        .post(&url)
        .header("authorization", format!("Basic {KEY}"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = c.get(gw.url("/v1/models")).send().await.unwrap();
    assert_eq!(r.status(), 401);

    // malformed JSON, missing model
    let r = c
        .post(&url)
        .bearer_auth(KEY)
        .body("{\"model\": \"gpt-4o-mini\", \"messages\": [")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_openai_error(&r.json().await.unwrap(), "invalid_json");
    let r = c
        .post(&url)
        .bearer_auth(KEY)
        .body("{\"messages\": []}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    // oversized, with and without a content-length
    let big = chat_body("gpt-4o-mini", &"x".repeat(4096), false);
    let r = c
        .post(&url)
        .bearer_auth(KEY)
        .json(&big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert_openai_error(&r.json().await.unwrap(), "request_too_large");
    let chunks = futures::stream::iter((0..8).map(|_| Ok::<_, std::io::Error>(vec![b' '; 1024])));
    let r = c
        .post(&url)
        .bearer_auth(KEY)
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);

    // unknown model
    let r = post_chat(&gw, KEY, &chat_body("gpt-9-ultra", "hi", false)).await;
    assert_eq!(r.status(), 404);
    let j: serde_json::Value = r.json().await.unwrap();
    assert_openai_error(&j, "model_not_found");
    assert_eq!(j["error"]["param"], "model");

    // unknown route and wrong method
    let r = c.get(gw.url("/v1/nope")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_openai_error(&r.json().await.unwrap(), "not_found");
    let r = c.get(&url).bearer_auth(KEY).send().await.unwrap();
    assert_eq!(r.status(), 405);
    assert_openai_error(&r.json().await.unwrap(), "method_not_allowed");

    assert_eq!(
        mock.state.stats().requests,
        0,
        "nothing bad reached the upstream"
    );
    // the gateway is still healthy after all that
    let r = post_chat(&gw, KEY, &chat_body("gpt-4o-mini", "hi", false)).await;
    assert_eq!(r.status(), 200);
    gw.stop().await;

    // Every refused model request left a RequestRejected event (routes that are not model
    // requests, like /v1/models or /v1/nope, do not), and none holds a presented key.
    let events = read_events(&nats.url()).await;
    let rejected: Vec<_> = events
        .iter()
        .filter_map(|(_, env, _)| match &env.event {
            Event::RequestRejected(r) => Some((env.request_id.to_string(), r.clone())),
            _ => None,
        })
        .collect();
    let codes: Vec<(u16, &str)> = rejected
        .iter()
        .map(|(_, r)| (r.status, r.code.as_str()))
        .collect();
    assert_eq!(
        codes,
        [
            (401, "invalid_api_key"),
            (401, "invalid_api_key"),
            (401, "invalid_api_key"),
            (400, "invalid_json"),
            (400, "missing_required_parameter"),
            (413, "request_too_large"),
            (413, "request_too_large"),
            (404, "model_not_found"),
        ]
    );
    let (id, wrong) = &rejected[1];
    assert_eq!(
        id, &wrong_key_id,
        "the event names the id the refusal answered with"
    );
    assert_eq!(wrong.principal, None);
    assert_eq!(
        wrong.key_fingerprint.as_deref(),
        Some(&hex::encode(switchyard::governance::hash_key("sk-wrong"))[..8])
    );
    assert_eq!(wrong.user_agent.as_deref(), Some("curl/8.5.0"));
    assert!(
        wrong
            .remote_addr
            .as_deref()
            .is_some_and(|a| a.starts_with("127.0.0.1:"))
    );
    assert_eq!(rejected[0].1.key_fingerprint, None, "no key presented");
    let (_, unknown_model) = &rejected[7];
    assert_eq!(unknown_model.model.as_deref(), Some("gpt-9-ultra"));
    assert_eq!(
        unknown_model.principal.as_ref().map(|p| p.key_id.as_str()),
        Some("alice-key"),
        "a refusal after authentication names the caller"
    );
    assert_eq!(unknown_model.key_fingerprint, None);
    for (_, _, raw) in &events {
        for secret in [KEY, "sk-wrong"] {
            assert!(
                !raw.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "a presented key is in an event"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_failures_are_mapped_and_recorded() {
    let nats = Nats::start();
    let mock = Mock::start(MockConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(TestConfig::new(&nats, &mock, dir.path()).build()).await;

    let mut ids = Vec::new();
    let id_of = |r: &reqwest::Response| {
        r.headers()
            .get("x-request-id")
            .map(|v| v.to_str().unwrap().to_owned())
    };
    mock.state.set_config(MockConfig {
        fail_rate: 1.0,
        fail_status: 500,
        ..MockConfig::default()
    });
    let r = post_chat(&gw, KEY, &chat_body("gpt-4o-mini", "hi", false)).await;
    assert_eq!(r.status(), 502);
    let id500 = id_of(&r);
    ids.push(id500.clone().unwrap_or_default());
    let j: serde_json::Value = r.json().await.unwrap();
    assert_openai_error(&j, "upstream_error");

    mock.state.set_config(MockConfig {
        fail_rate: 1.0,
        fail_status: 429,
        retry_after_secs: Some(7),
        ..MockConfig::default()
    });
    let r = post_chat(&gw, KEY, &chat_body("gpt-4o-mini", "hi", false)).await;
    assert_eq!(r.status(), 429);
    ids.push(id_of(&r).unwrap());
    assert_eq!(r.headers()["retry-after"], "7");
    assert_openai_error(&r.json().await.unwrap(), "rate_limit_exceeded");

    mock.state.set_config(MockConfig {
        fail_rate: 1.0,
        fail_status: 400,
        ..MockConfig::default()
    });
    let r = post_chat(&gw, KEY, &chat_body("gpt-4o-mini", "hi", false)).await;
    assert_eq!(r.status(), 400, "the upstream's own 4xx is passed on");
    ids.push(id_of(&r).unwrap());

    // timeout: the mock hangs longer than the provider timeout (5 s in the test config)
    mock.state.set_config(MockConfig {
        timeout_rate: 1.0,
        hang_ms: 8_000,
        ..MockConfig::default()
    });
    let r = post_chat(&gw, KEY, &chat_body("gpt-4o-mini", "hi", false)).await;
    assert_eq!(r.status(), 504);
    ids.push(id_of(&r).unwrap());
    assert_openai_error(&r.json().await.unwrap(), "upstream_timeout");

    mock.state.set_config(MockConfig::default());
    gw.stop().await;
    assert!(
        id500.is_some(),
        "admitted requests name their id even when they fail"
    );
    let events = read_events(&nats.url()).await;
    let completed: Vec<_> = ids
        .iter()
        .map(|id| {
            for_request(&events, id)
                .into_iter()
                .find_map(|e| match e.event {
                    Event::ResponseCompleted(r) => Some(r),
                    _ => None,
                })
                .expect("every request has its ResponseCompleted")
        })
        .collect();
    let statuses: Vec<u16> = completed.iter().map(|c| c.status).collect();
    assert_eq!(statuses, [502, 429, 400, 504]);
    let classes: Vec<&str> = completed
        .iter()
        .map(|c| c.error.as_ref().unwrap().class.as_str())
        .collect();
    assert_eq!(
        classes,
        ["upstream_5xx", "rate_limited", "upstream_4xx", "timeout"]
    );
    assert_eq!(completed[0].attempts[0].status, 500);
    assert!(
        !events
            .iter()
            .any(|(_, e, _)| matches!(e.event, Event::SpendRecorded(_))),
        "no spend without an answer"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fallback_to_the_next_deployment_on_5xx() {
    let nats = Nats::start();
    let broken = Mock::start(MockConfig {
        fail_rate: 1.0,
        fail_status: 503,
        ..MockConfig::default()
    })
    .await;
    let healthy = Mock::start(MockConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = TestConfig::new(&nats, &broken, dir.path());
    cfg.extra = format!(
        r#"
[providers.backup]
kind = "openai"
base_url = "{}"

[[models]]
name = "resilient"
deployments = [{{ provider = "mock", model = "gpt-4o-mini" }}, {{ provider = "backup", model = "gpt-4o-mini" }}]
"#,
        healthy.base_url()
    );
    let gw = Gateway::start(cfg.build()).await;
    for stream in [false, true] {
        let r = post_chat(&gw, KEY, &chat_body("resilient", "hi", stream)).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["x-switchyard-provider"], "backup");
        assert_eq!(r.headers()["x-switchyard-model"], "gpt-4o-mini");
        // The default retry policy tries the failing deployment once more before falling back.
        assert_eq!(r.headers()["x-switchyard-attempts"], "3");
        let _ = r.bytes().await.unwrap();
    }
    gw.stop().await;
    let events = read_events(&nats.url()).await;
    let done: Vec<_> = events
        .iter()
        .filter_map(|(_, e, _)| match &e.event {
            Event::ResponseCompleted(r) => Some(r.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(done.len(), 2);
    for d in done {
        let kinds: Vec<_> = d
            .attempts
            .iter()
            .map(|a| (a.provider.as_str(), a.kind))
            .collect();
        assert_eq!(
            kinds,
            [
                ("mock", AttemptKind::First),
                ("mock", AttemptKind::Retry),
                ("backup", AttemptKind::Fallback)
            ]
        );
        assert_eq!(d.attempts[0].status, 503);
        assert_eq!(d.attempts[1].status, 503);
        assert_eq!(d.attempts[2].status, 200);
        assert_eq!(d.provider.as_deref(), Some("backup"));
    }
}

async fn stream_frames(resp: reqwest::Response) -> Vec<String> {
    let mut body = String::new();
    let mut s = resp.bytes_stream();
    while let Some(Ok(b)) = s.next().await {
        body.push_str(&String::from_utf8_lossy(&b));
    }
    body.split("\n\n")
        .filter(|f| !f.trim().is_empty())
        .map(|f| f.trim_start_matches("data: ").to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_upstream_streams_end_with_an_error_event() {
    let nats = Nats::start();
    let mock = Mock::start(MockConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(TestConfig::new(&nats, &mock, dir.path()).build()).await;

    for (cfg, class) in [
        // a small delay between chunks so the first ones are on the wire before the failure
        (
            MockConfig {
                cut_rate: 1.0,
                stream_words: 12,
                chunk_delay_ms: 5,
                ..MockConfig::default()
            },
            "stream_cut",
        ),
        (
            MockConfig {
                malformed_rate: 1.0,
                stream_words: 12,
                chunk_delay_ms: 5,
                ..MockConfig::default()
            },
            "malformed_chunk",
        ),
    ] {
        mock.state.set_config(cfg);
        let r = post_chat(&gw, KEY, &chat_body("gpt-4o-mini", "one two three", true)).await;
        if r.status() != 200 {
            panic!(
                "the failure comes after the first byte, got {}: {}",
                r.status(),
                r.text().await.unwrap()
            );
        }
        let id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
        let frames = stream_frames(r).await;
        assert_ne!(frames.last().unwrap(), "[DONE]");
        let last: serde_json::Value = serde_json::from_str(frames.last().unwrap()).unwrap();
        assert_eq!(last["error"]["code"], "upstream_bad_response", "{last}");
        assert!(frames.len() >= 2, "some content came before the failure");
        let events = wait_for(
            "completion event",
            std::time::Duration::from_secs(10),
            || {
                let (url, id) = (nats.url(), id.clone());
                async move {
                    let mine = for_request(&read_events(&url).await, &id);
                    (mine.len() >= 2).then_some(mine)
                }
            },
        )
        .await;
        let Event::ResponseCompleted(done) = &events[1].event else {
            panic!()
        };
        assert_eq!(done.error.as_ref().unwrap().class, class);
    }
    gw.stop().await;
}
