//! Requests the gateway refuses itself (before any provider is called or RequestAccepted is
//! recorded), the Messages API contract, the one rule for the `model` of answers, bounded echoes
//! of client input, and ids of Gemini answers without `responseId`.

use crate::harness::*;
use serde_json::{Value, json};
use switchyard::events::Event;
use switchyard_mock::MockConfig;

fn with(field: &str, v: Value) -> Value {
    let mut body = chat_body("gpt-4o-mini", "hi", false);
    body[field] = v;
    body
}

async fn post(gw: &Gateway, path: &str, body: &str) -> reqwest::Response {
    client()
        .post(gw.url(path))
        .bearer_auth(KEY)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_fields_are_refused_before_any_provider_call() {
    let nats = Nats::start();
    let mock = Mock::start(MockConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(TestConfig::new(&nats, &mock, dir.path()).build()).await;

    let chat = [
        (json!({"model": 5, "messages": []}), "invalid_type", "model"),
        (
            json!({"messages": []}),
            "missing_required_parameter",
            "model",
        ),
        (with("stream", json!("yes")), "invalid_type", "stream"),
        (
            with("stream_options", json!(3)),
            "invalid_type",
            "stream_options",
        ),
        (with("messages", json!("hi")), "invalid_type", "messages"),
        (with("messages", json!([])), "invalid_value", "messages"),
        (
            with(
                "messages",
                json!([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "wizard", "content": "c"}]),
            ),
            "invalid_value",
            "messages[2].role",
        ),
        (
            with("messages", json!([{"role": "user", "content": 1}])),
            "invalid_type",
            "messages[0].content",
        ),
        (
            with("messages", json!([{"role": "user"}])),
            "missing_required_parameter",
            "messages[0].content",
        ),
        (with("n", json!(0)), "invalid_value", "n"),
        (with("n", json!("two")), "invalid_type", "n"),
        (with("max_tokens", json!(0)), "invalid_value", "max_tokens"),
        (
            with("max_tokens", json!(10_000_000)),
            "invalid_value",
            "max_tokens",
        ),
        (
            with("max_completion_tokens", json!(1.5)),
            "invalid_type",
            "max_completion_tokens",
        ),
        (
            with("temperature", json!(3)),
            "invalid_value",
            "temperature",
        ),
        (with("top_p", json!("high")), "invalid_type", "top_p"),
        (
            with("tools", json!({"type": "function"})),
            "invalid_type",
            "tools",
        ),
    ];
    for (body, code, param) in &chat {
        let r = post(&gw, "/v1/chat/completions", &body.to_string()).await;
        assert_eq!(r.status(), 400, "{body}");
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["error"]["type"], "invalid_request_error", "{e}");
        assert_eq!(e["error"]["code"], *code, "{body}: {e}");
        assert_eq!(e["error"]["param"], *param, "{body}: {e}");
    }
    let embeddings = [
        (
            json!({"model": "text-embedding-3-small"}),
            "missing_required_parameter",
            "input",
        ),
        (
            json!({"model": "text-embedding-3-small", "input": []}),
            "invalid_value",
            "input",
        ),
        (
            json!({"model": "text-embedding-3-small", "input": ""}),
            "invalid_value",
            "input",
        ),
        (
            json!({"model": "text-embedding-3-small", "input": {"a": 1}}),
            "invalid_type",
            "input",
        ),
        (
            json!({"model": "text-embedding-3-small", "input": ["a", 2]}),
            "invalid_type",
            "input[1]",
        ),
    ];
    for (body, code, param) in &embeddings {
        let r = post(&gw, "/v1/embeddings", &body.to_string()).await;
        assert_eq!(r.status(), 400, "{body}");
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["error"]["code"], *code, "{body}: {e}");
        assert_eq!(e["error"]["param"], *param, "{body}: {e}");
    }
    // malformed JSON stays invalid_json
    let r = post(&gw, "/v1/chat/completions", "{\"model\": \"gpt-4o-mini\",").await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "invalid_json"
    );
    assert_eq!(
        mock.state.stats().requests,
        0,
        "no refused request reached the provider"
    );

    // unknown fields still pass through, and a valid request still works
    let r = post_chat(&gw, KEY, &with("some_future_field", json!({"x": [1, 2]}))).await;
    assert_eq!(r.status(), 200);
    let r = post(
        &gw,
        "/v1/embeddings",
        &json!({"model": "text-embedding-3-small", "input": ["a", "b"]}).to_string(),
    )
    .await;
    assert_eq!(r.status(), 200);
    gw.stop().await;
    let accepted = count(&read_events(&nats.url()).await, |e| {
        matches!(e, Event::RequestAccepted(_))
    });
    assert_eq!(accepted, 2, "only the two valid requests were accepted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_model_name_is_not_echoed_whole() {
    let nats = Nats::start();
    let mock = Mock::start(MockConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = TestConfig::new(&nats, &mock, dir.path());
    cfg.max_body_bytes = 8 << 20;
    let gw = Gateway::start(cfg.build()).await;
    let name = "m".repeat(4 << 20);
    let r = post_chat(&gw, KEY, &chat_body(&name, "hi", false)).await;
    assert_eq!(r.status(), 404);
    let body = r.bytes().await.unwrap();
    assert!(body.len() < 1024, "a short 404: {} bytes", body.len());
    let e: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(e["error"]["code"], "model_not_found");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("more bytes]"),
        "{e}"
    );
    // a wrong type quoting a huge value is bounded too
    let r = post_chat(
        &gw,
        KEY,
        &json!({"model": "gpt-4o-mini", "messages": [{"role": name, "content": "x"}]}),
    )
    .await;
    assert_eq!(r.status(), 400);
    assert!(r.bytes().await.unwrap().len() < 1024);
    gw.stop().await;
}

async fn post_messages(gw: &Gateway, body: &Value) -> reqwest::Response {
    client()
        .post(gw.url("/v1/messages"))
        .header("x-api-key", KEY)
        .header("anthropic-version", "2023-06-01")
        .json(body)
        .send()
        .await
        .unwrap()
}

/// `(event name, data)` of each SSE frame.
async fn sse(r: reqwest::Response) -> Vec<(String, Value)> {
    let text = r.text().await.unwrap();
    text.split("\n\n")
        .filter(|f| !f.trim().is_empty())
        .map(|f| {
            let mut name = String::new();
            let mut data = Value::Null;
            for line in f.lines() {
                if let Some(n) = line.strip_prefix("event: ") {
                    name = n.to_owned();
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data = serde_json::from_str(d).unwrap_or(Value::Null);
                }
            }
            (name, data)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_messages_surface_follows_anthropics_contract() {
    let nats = Nats::start();
    let mock = Mock::start(MockConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(TestConfig::new(&nats, &mock, dir.path()).build()).await;
    let msgs = json!([{"role": "user", "content": "hi"}]);

    let r = post_messages(&gw, &json!({"model": "gpt-4o-mini", "messages": msgs})).await;
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["type"], "error");
    assert_eq!(e["error"]["type"], "invalid_request_error");
    assert_eq!(e["error"]["message"], "max_tokens: Field required");
    let r = post_messages(
        &gw,
        &json!({"model": "gpt-4o-mini", "max_tokens": "lots", "messages": msgs}),
    )
    .await;
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["type"], "invalid_request_error", "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("max_tokens"),
        "{e}"
    );
    assert_eq!(mock.state.stats().requests, 0);

    // the auth hint names the header each surface uses
    let r = client()
        .post(gw.url("/v1/messages"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let m = r.json::<Value>().await.unwrap()["error"]["message"].clone();
    assert!(m.as_str().unwrap().contains("x-api-key"), "{m}");
    let r = client()
        .post(gw.url("/v1/chat/completions"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let m = r.json::<Value>().await.unwrap()["error"]["message"].clone();
    assert!(m.as_str().unwrap().contains("Authorization: Bearer"), "{m}");

    // msg_ ids, unique, plain and streamed
    let body = json!({"model": "gpt-4o-mini", "max_tokens": 16, "messages": msgs});
    let mut ids = Vec::new();
    for _ in 0..2 {
        let r = post_messages(&gw, &body).await;
        assert_eq!(r.status(), 200);
        ids.push(
            r.json::<Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
        let mut streamed = body.clone();
        streamed["stream"] = json!(true);
        let events = sse(post_messages(&gw, &streamed).await).await;
        assert_eq!(events[0].0, "message_start", "{events:?}");
        ids.push(events[0].1["message"]["id"].as_str().unwrap().to_owned());
    }
    assert!(ids.iter().all(|id| id.starts_with("msg_")), "{ids:?}");
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 4, "every answer its own id");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_name_the_served_model_on_both_surfaces() {
    let nats = Nats::start();
    let mock = Mock::start(MockConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(TestConfig::new(&nats, &mock, dir.path()).build()).await;
    // public name `unpriced`, served upstream as `some-unpriced-model`
    const SERVED: &str = "some-unpriced-model";

    let r = post_chat(&gw, KEY, &chat_body("unpriced", "hi", false)).await;
    assert_eq!(r.headers()["x-switchyard-model"], SERVED);
    assert_eq!(r.json::<Value>().await.unwrap()["model"], SERVED);
    let r = post_chat(&gw, KEY, &chat_body("unpriced", "hi", true)).await;
    let chunks: Vec<Value> = sse(r)
        .await
        .into_iter()
        .map(|(_, d)| d)
        .filter(|d| d.is_object())
        .collect();
    assert!(!chunks.is_empty());
    assert!(chunks.iter().all(|c| c["model"] == SERVED), "{chunks:?}");

    let body = json!({"model": "unpriced", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]});
    let r = post_messages(&gw, &body).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["model"], SERVED);
    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let events = sse(post_messages(&gw, &streamed).await).await;
    assert_eq!(events[0].1["message"]["model"], SERVED, "{events:?}");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gemini_answers_without_response_id_get_distinct_ids() {
    let nats = Nats::start();
    let mock = Mock::start(MockConfig {
        omit_response_id: true,
        ..MockConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = TestConfig::new(&nats, &mock, dir.path());
    cfg.extra = format!(
        r#"
[providers.gemini]
kind = "gemini"
base_url = "http://{addr}/v1beta"
api_key = {{ file = {key:?} }}

[[models]]
name = "gemini"
deployments = [{{ provider = "gemini", model = "gemini-2.5-flash" }}]
"#,
        addr = mock.addr,
        key = dir.path().join("upstream.key").display().to_string(),
    );
    let gw = Gateway::start(cfg.build()).await;
    let mut ids = Vec::new();
    for _ in 0..2 {
        let r = post_chat(&gw, KEY, &chat_body("gemini", "hi", false)).await;
        assert_eq!(r.status(), 200);
        ids.push(
            r.json::<Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
        let r = post_chat(&gw, KEY, &chat_body("gemini", "hi", true)).await;
        let chunks: Vec<Value> = sse(r)
            .await
            .into_iter()
            .map(|(_, d)| d)
            .filter(|d| d.is_object())
            .collect();
        let first = chunks[0]["id"].as_str().unwrap().to_owned();
        assert!(
            chunks.iter().all(|c| c["id"] == first),
            "one id per stream: {chunks:?}"
        );
        ids.push(first);
    }
    assert!(ids.iter().all(|id| id.starts_with("chatcmpl-")), "{ids:?}");
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 4, "every answer its own id");
    gw.stop().await;
}
