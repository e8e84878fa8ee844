//! Provider adapters through the whole gateway over real HTTP: an OpenAI-shaped client reaching
//! an Anthropic deployment (the mock speaks the Messages API).

use crate::harness::*;
use futures::StreamExt;
use switchyard::events::Event;
use switchyard_mock::MockConfig;

pub fn anthropic_model(mock: &Mock, data_dir: &std::path::Path) -> String {
    format!(
        r#"
[providers.claude]
kind = "anthropic"
base_url = "{}"
api_key = {{ file = {:?} }}

[[models]]
name = "claude"
deployments = [{{ provider = "claude", model = "claude-haiku-4-5" }}]
"#,
        mock.base_url(),
        data_dir.join("upstream.key").display().to_string()
    )
}

async fn setup() -> (Nats, Mock, tempfile::TempDir, Gateway) {
    let nats = Nats::start();
    let mock = Mock::start(MockConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = TestConfig::new(&nats, &mock, dir.path());
    cfg.extra = anthropic_model(&mock, dir.path());
    let gw = Gateway::start(cfg.build()).await;
    (nats, mock, dir, gw)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_clients_reach_an_anthropic_deployment() {
    let (nats, mock, _dir, gw) = setup().await;

    // plain text
    let r = post_chat(
        &gw,
        KEY,
        &chat_body("claude", "tell me about rivers", false),
    )
    .await;
    assert_eq!(r.status(), 200);
    let id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    let j: serde_json::Value = r.json().await.unwrap();
    assert_eq!(j["object"], "chat.completion");
    assert_eq!(j["choices"][0]["message"]["role"], "assistant");
    assert!(
        j["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .contains("rivers")
    );
    assert_eq!(j["choices"][0]["finish_reason"], "stop");
    let (input, output) = (
        j["usage"]["prompt_tokens"].as_u64().unwrap(),
        j["usage"]["completion_tokens"].as_u64().unwrap(),
    );
    assert!(input > 0 && output > 0);

    // tool call round trip shape
    let mut body = chat_body("claude", "weather in Paris?", false);
    body["tools"] = serde_json::json!([{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]);
    let j: serde_json::Value = post_chat(&gw, KEY, &body).await.json().await.unwrap();
    assert_eq!(j["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(
        j["choices"][0]["message"]["tool_calls"][0]["function"]["name"],
        "get_weather"
    );

    // stream with usage
    let mut body = chat_body("claude", "stream about lakes", true);
    body["stream_options"] = serde_json::json!({"include_usage": true});
    let r = post_chat(&gw, KEY, &body).await;
    assert_eq!(r.status(), 200);
    let mut text = String::new();
    let mut s = r.bytes_stream();
    while let Some(Ok(b)) = s.next().await {
        text.push_str(&String::from_utf8_lossy(&b));
    }
    let frames: Vec<&str> = text.split("\n\n").filter(|f| !f.is_empty()).collect();
    assert_eq!(*frames.last().unwrap(), "data: [DONE]");
    let chunks: Vec<serde_json::Value> = frames[..frames.len() - 1]
        .iter()
        .map(|f| serde_json::from_str(f.trim_start_matches("data: ")).unwrap())
        .collect();
    let streamed: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert!(streamed.contains("lakes"), "{streamed}");
    assert!(
        chunks
            .iter()
            .any(|c| c["choices"][0]["finish_reason"] == "stop")
    );
    assert!(
        chunks.last().unwrap()["usage"]["completion_tokens"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert_eq!(mock.state.stats().streams, 1);

    // failures map as for OpenAI
    mock.state.set_config(MockConfig {
        fail_rate: 1.0,
        fail_status: 429,
        retry_after_secs: Some(3),
        ..MockConfig::default()
    });
    let r = post_chat(&gw, KEY, &chat_body("claude", "hi", false)).await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "3");
    mock.state.set_config(MockConfig {
        fail_rate: 1.0,
        fail_status: 529,
        ..MockConfig::default()
    });
    let r = post_chat(&gw, KEY, &chat_body("claude", "hi", false)).await;
    assert_eq!(
        r.status(),
        502,
        "Anthropic's 529 overloaded is an upstream failure"
    );
    mock.state.set_config(MockConfig::default());

    gw.stop().await;
    let events = for_request(&read_events(&nats.url()).await, &id);
    let Event::SpendRecorded(spend) = &events[2].event else {
        panic!("{events:?}")
    };
    assert_eq!(spend.provider, "claude");
    // claude-haiku-4-5: $1 / $5 per Mtok = 1,000 / 5,000 nano-dollars per token
    assert_eq!(spend.cost_nanos, input * 1000 + output * 5000);
}

async fn post_messages(gw: &Gateway, body: &serde_json::Value) -> reqwest::Response {
    client()
        .post(gw.url("/v1/messages"))
        .header("x-api-key", KEY)
        .header("anthropic-version", "2023-06-01")
        .json(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_clients_reach_any_provider() {
    let (nats, _mock, _dir, gw) = setup().await;
    let mut ids = Vec::new();
    // an OpenAI deployment and an Anthropic deployment behind the Messages API
    for model in ["gpt-4o-mini", "claude"] {
        let body = serde_json::json!({
            "model": model, "max_tokens": 64, "system": "Be brief.",
            "messages": [{"role": "user", "content": [{"type": "text", "text": "name three rivers"}]}]
        });
        let r = post_messages(&gw, &body).await;
        assert_eq!(r.status(), 200, "{model}");
        ids.push(r.headers()["x-request-id"].to_str().unwrap().to_owned());
        let m: serde_json::Value = r.json().await.unwrap();
        assert_eq!(m["type"], "message", "{m}");
        assert_eq!(m["role"], "assistant");
        // the model that served, as the provider names it (the same rule as the OpenAI surface)
        let served = if model == "claude" {
            "claude-haiku-4-5"
        } else {
            model
        };
        assert_eq!(m["model"], served);
        assert_eq!(m["content"][0]["type"], "text");
        assert!(
            m["content"][0]["text"].as_str().unwrap().contains("rivers"),
            "{m}"
        );
        assert_eq!(m["stop_reason"], "end_turn");
        assert!(m["usage"]["input_tokens"].as_u64().unwrap() > 0);
        assert!(m["usage"]["output_tokens"].as_u64().unwrap() > 0);

        // streamed: the Messages event sequence
        let mut body = body.clone();
        body["stream"] = serde_json::json!(true);
        let r = post_messages(&gw, &body).await;
        assert_eq!(r.status(), 200);
        let text = r.text().await.unwrap();
        let events: Vec<&str> = text
            .split("\n\n")
            .filter_map(|f| f.lines().next()?.strip_prefix("event: "))
            .collect();
        assert_eq!(events.first(), Some(&"message_start"), "{text}");
        assert_eq!(events.last(), Some(&"message_stop"), "{text}");
        assert!(events.contains(&"content_block_start") && events.contains(&"message_delta"));
        let streamed: String = text
            .split("\n\n")
            .filter_map(|f| f.lines().nth(1)?.strip_prefix("data: "))
            .filter_map(|d| serde_json::from_str::<serde_json::Value>(d).ok())
            .filter_map(|v| v["delta"]["text"].as_str().map(str::to_owned))
            .collect();
        assert!(streamed.contains("rivers"), "{streamed}");
    }

    // errors in Anthropic's shape
    let r = client()
        .post(gw.url("/v1/messages"))
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let e: serde_json::Value = r.json().await.unwrap();
    assert_eq!(e["type"], "error");
    assert_eq!(e["error"]["type"], "authentication_error");
    let r = post_messages(
        &gw,
        &serde_json::json!({"model": "nope", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(r.status(), 404);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["error"]["type"],
        "not_found_error"
    );
    let r = post_messages(
        &gw,
        &serde_json::json!({"model": "claude", "messages": "x"}),
    )
    .await;
    assert_eq!(r.status(), 400);

    // count_tokens answers locally
    let r = client()
        .post(gw.url("/v1/messages/count_tokens"))
        .header("x-api-key", KEY)
        .json(&serde_json::json!({"model": "claude", "messages": [{"role": "user", "content": "hello world"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.json::<serde_json::Value>().await.unwrap()["input_tokens"]
            .as_u64()
            .unwrap()
            > 2
    );

    gw.stop().await;
    let all = read_events(&nats.url()).await;
    // The three refusals are on record, from the Messages surface.
    let rejected: Vec<_> = all
        .iter()
        .filter_map(|(_, env, _)| match &env.event {
            Event::RequestRejected(r) => Some((r.endpoint, r.status)),
            _ => None,
        })
        .collect();
    let messages = switchyard::events::Endpoint::Messages;
    assert_eq!(
        rejected,
        [(messages, 401), (messages, 404), (messages, 400)]
    );
    for id in ids {
        let events = for_request(&all, &id);
        assert_eq!(events.len(), 3, "same pipeline: accepted, completed, spend");
        let Event::RequestAccepted(acc) = &events[0].event else {
            panic!()
        };
        assert_eq!(acc.endpoint, switchyard::events::Endpoint::Messages);
        assert!(
            acc.body.contains("\"system\":\"Be brief.\""),
            "the Anthropic body as received"
        );
        assert!(matches!(events[2].event, Event::SpendRecorded(_)));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_deployments_get_their_url_version_and_key_header() {
    let nats = Nats::start();
    let mock = Mock::start(MockConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = TestConfig::new(&nats, &mock, dir.path());
    cfg.extra = format!(
        r#"
[providers.azure]
kind = "azure"
base_url = "http://{addr}"
api_key = {{ file = {key:?} }}

[providers.azure-nokey]
kind = "azure"
base_url = "http://{addr}"

[[models]]
name = "azure-gpt"
deployments = [{{ provider = "azure", model = "gpt4o-prod" }}]

[[models]]
name = "azure-embed"
deployments = [{{ provider = "azure", model = "embed-prod" }}]

[[models]]
name = "azure-broken"
deployments = [{{ provider = "azure-nokey", model = "gpt4o-prod" }}]
"#,
        addr = mock.addr,
        key = dir.path().join("upstream.key").display().to_string(),
    );
    let gw = Gateway::start(cfg.build()).await;
    for stream in [false, true] {
        let r = post_chat(&gw, KEY, &chat_body("azure-gpt", "hello azure", stream)).await;
        assert_eq!(
            r.status(),
            200,
            "the mock refuses a wrong URL, missing api-version or api-key"
        );
        let _ = r.bytes().await.unwrap();
    }
    let r = client()
        .post(gw.url("/v1/embeddings"))
        .bearer_auth(KEY)
        .json(&serde_json::json!({"model": "azure-embed", "input": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = post_chat(&gw, KEY, &chat_body("azure-broken", "hi", false)).await;
    assert_eq!(r.status(), 502);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["error"]["code"],
        "upstream_auth_failed"
    );
    assert_eq!(
        mock.state.stats().chat,
        2,
        "the keyless request was refused at the door"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_reach_a_gemini_deployment() {
    let nats = Nats::start();
    let mock = Mock::start(MockConfig::default()).await;
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
    let r = post_chat(
        &gw,
        KEY,
        &chat_body("gemini", "tell me about deserts", false),
    )
    .await;
    assert_eq!(r.status(), 200);
    let id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    let j: serde_json::Value = r.json().await.unwrap();
    assert!(
        j["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .contains("deserts"),
        "{j}"
    );
    assert_eq!(j["choices"][0]["finish_reason"], "stop");
    let (input, output) = (
        j["usage"]["prompt_tokens"].as_u64().unwrap(),
        j["usage"]["completion_tokens"].as_u64().unwrap(),
    );

    let mut body = chat_body("gemini", "stream about oceans", true);
    body["stream_options"] = serde_json::json!({"include_usage": true});
    let text = post_chat(&gw, KEY, &body).await.text().await.unwrap();
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    assert!(text.contains("oceans"), "{text}");

    let r = post_messages(
        &gw,
        &serde_json::json!({"model": "gemini", "max_tokens": 32, "messages": [{"role": "user", "content": "hi gemini"}]}),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["type"],
        "message"
    );

    mock.state.set_config(MockConfig {
        fail_rate: 1.0,
        fail_status: 429,
        retry_after_secs: Some(2),
        ..MockConfig::default()
    });
    let r = post_chat(&gw, KEY, &chat_body("gemini", "hi", false)).await;
    assert_eq!(r.status(), 429);
    mock.state.set_config(MockConfig::default());
    gw.stop().await;
    let events = for_request(&read_events(&nats.url()).await, &id);
    let Event::SpendRecorded(spend) = &events[2].event else {
        panic!("{events:?}")
    };
    // gemini-2.5-flash: $0.30 / $2.50 per Mtok = 300 / 2,500 nano-dollars per token
    assert_eq!(spend.cost_nanos, input * 300 + output * 2500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embeddings_through_bedrock_titan_and_cohere_are_priced() {
    let nats = Nats::start();
    let mock = Mock::start(MockConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let (id, secret) = (dir.path().join("aws-id"), dir.path().join("aws-secret"));
    std::fs::write(&id, switchyard_mock::MOCK_AWS_ACCESS_KEY_ID).unwrap();
    std::fs::write(&secret, switchyard_mock::MOCK_AWS_SECRET_ACCESS_KEY).unwrap();
    let mut cfg = TestConfig::new(&nats, &mock, dir.path());
    cfg.extra = format!(
        r#"
[providers.bedrock]
kind = "bedrock"
base_url = "http://{addr}"
region = "eu-west-1"
aws_access_key_id = {{ file = {id:?} }}
aws_secret_access_key = {{ file = {secret:?} }}

[[models]]
name = "titan"
deployments = [{{ provider = "bedrock", model = "amazon.titan-embed-text-v2:0" }}]

[[models]]
name = "cohere"
deployments = [{{ provider = "bedrock", model = "cohere.embed-english-v3" }}]
"#,
        addr = mock.addr,
        id = id.display().to_string(),
        secret = secret.display().to_string(),
    );
    let gw = Gateway::start(cfg.build()).await;
    let mut ids = Vec::new();
    for (model, dims) in [("titan", 256), ("cohere", 1024)] {
        let mut body = serde_json::json!({"model": model, "input": ["rivers run", "to the sea"]});
        if model == "titan" {
            body["dimensions"] = serde_json::json!(dims);
        }
        let r = client()
            .post(gw.url("/v1/embeddings"))
            .bearer_auth(KEY)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{model}");
        ids.push(r.headers()["x-request-id"].to_str().unwrap().to_owned());
        let j: serde_json::Value = r.json().await.unwrap();
        assert_eq!(j["object"], "list");
        let data = j["data"].as_array().unwrap();
        assert_eq!(data.len(), 2, "{model}");
        assert_eq!(data[1]["index"], 1);
        assert_eq!(
            data[0]["embedding"].as_array().unwrap().len(),
            dims,
            "{model}"
        );
        assert!(j["usage"]["prompt_tokens"].as_u64().unwrap() > 0, "{j}");
    }
    gw.stop().await;
    let events = read_events(&nats.url()).await;
    for id in ids {
        let evs = for_request(&events, &id);
        let spend = evs
            .iter()
            .find_map(|e| match &e.event {
                Event::SpendRecorded(s) => Some(s.clone()),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no spend for {id}: {evs:?}"));
        assert!(spend.priced && spend.cost_nanos > 0, "{spend:?}");
        assert!(
            spend.provider_model.starts_with("amazon.")
                || spend.provider_model.starts_with("cohere.")
        );
    }
}
