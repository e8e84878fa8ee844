//! Provider adapters through the whole gateway over real HTTP: an OpenAI-shaped client reaching
//! an Anthropic deployment (the mock speaks the Messages API).

use crate::harness::*;
use futures::StreamExt;
use switchyard::events::Event;
use switchyard::mock::MockConfig;

fn anthropic_model(mock: &Mock, data_dir: &std::path::Path) -> String {
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
