use axum::body::Body;
use axum::http::{Method, Request};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use super::super::{MockConfig, MockStats, router};
use super::*;

async fn post(state: &MockState, body: &Value) -> Response {
    let req = Request::builder()
        .method(Method::POST)
        .uri("/v1/messages")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    router(state.clone()).oneshot(req).await.unwrap()
}

async fn text(resp: Response) -> String {
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

async fn post_json(state: &MockState, body: &Value) -> (StatusCode, Value) {
    let resp = post(state, body).await;
    let status = resp.status();
    (status, serde_json::from_str(&text(resp).await).unwrap())
}

/// (event name, payload) of every SSE event; asserts each name matches its `type`.
fn events(body: &str) -> Vec<(String, Value)> {
    body.split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| {
            let (name, data) = e.split_once('\n').unwrap();
            let name = name.strip_prefix("event: ").unwrap().to_owned();
            let data: Value = serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
            assert_eq!(data["type"], name.as_str());
            (name, data)
        })
        .collect()
}

fn hello() -> Value {
    json!({"model": "claude-mock", "max_tokens": 1024, "system": "be brief",
           "messages": [{"role": "user", "content": "hello there world"}]})
}

#[tokio::test]
async fn message_has_anthropic_shape_and_the_openai_handlers_usage() {
    let st = MockState::new(MockConfig {
        stream_words: 4,
        ..MockConfig::default()
    });
    let (status, v) = post_json(&st, &hello()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["type"], "message");
    assert_eq!(v["role"], "assistant");
    assert_eq!(v["model"], "claude-mock");
    assert!(v["id"].as_str().unwrap().starts_with("msg_mock_"));
    assert_eq!(
        v["content"],
        json!([{"type": "text", "text": "hello there world hello"}])
    );
    assert_eq!(v["stop_reason"], "end_turn");
    assert_eq!(v["stop_sequence"], Value::Null);
    // Same as the OpenAI test with the system prompt as a message: (2 + 3) + 3 × 2.
    assert_eq!(
        v["usage"],
        json!({"input_tokens": 11, "cache_creation_input_tokens": 0,
               "cache_read_input_tokens": 0, "output_tokens": 4})
    );
    assert_eq!(
        st.stats(),
        MockStats {
            requests: 1,
            chat: 1,
            ..MockStats::default()
        }
    );
}

#[tokio::test]
async fn max_tokens_truncates_and_tool_results_are_not_the_user_turn() {
    let st = MockState::new(MockConfig::default());
    let body = json!({"model": "m", "max_tokens": 3, "messages": [
        {"role": "user", "content": [{"type": "text", "text": "a b c d"}]},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "x y"}]}
    ]});
    let (_, v) = post_json(&st, &body).await;
    assert_eq!(v["content"][0]["text"], "a b c");
    assert_eq!(v["stop_reason"], "max_tokens");
    // 4 + 0 + 2 words, 3 messages.
    assert_eq!(v["usage"]["input_tokens"], 6 + 9);
    assert_eq!(v["usage"]["output_tokens"], 3);
}

#[tokio::test]
async fn tools_answer_with_a_tool_use_block_unless_forbidden() {
    let st = MockState::new(MockConfig::default());
    let mut body = json!({"model": "m", "max_tokens": 10,
        "messages": [{"role": "user", "content": "weather?"}],
        "tools": [{"name": "first", "input_schema": {"type": "object"}}, {"name": "second", "input_schema": {"type": "object"}}]});
    let (_, v) = post_json(&st, &body).await;
    let block = &v["content"][0];
    assert_eq!(
        (block["type"].as_str(), block["name"].as_str()),
        (Some("tool_use"), Some("first"))
    );
    assert!(block["id"].as_str().unwrap().starts_with("call_mock_"));
    assert_eq!(block["input"], json!({}));
    assert_eq!(v["stop_reason"], "tool_use");
    assert_eq!(v["usage"]["output_tokens"], 1);

    body["tool_choice"] = json!({"type": "tool", "name": "second"});
    let (_, v) = post_json(&st, &body).await;
    assert_eq!(v["content"][0]["name"], "second");
    body["tool_choice"] = json!({"type": "none"});
    let (_, v) = post_json(&st, &body).await;
    assert_eq!(v["content"][0]["type"], "text");
}

#[tokio::test]
async fn parallel_in_the_prompt_calls_every_tool_in_its_own_block() {
    let st = MockState::new(MockConfig::default());
    let mut body = json!({"model": "m", "max_tokens": 10,
        "messages": [{"role": "user", "content": "use both in parallel"}],
        "tools": [{"name": "first", "input_schema": {"type": "object"}}, {"name": "second", "input_schema": {"type": "object"}}]});
    let (_, v) = post_json(&st, &body).await;
    let names: Vec<&str> = v["content"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["first", "second"]);
    assert_ne!(v["content"][0]["id"], v["content"][1]["id"]);
    assert_eq!(v["usage"]["output_tokens"], 2);

    body["stream"] = json!(true);
    let evs = events(&text(post(&st, &body).await).await);
    let names: Vec<&str> = evs.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    assert_eq!(evs[5].1["index"], 1);
    assert_eq!(evs[5].1["content_block"]["name"], "second");
    assert_eq!(evs[6].1["index"], 1);

    body["stream"] = json!(false);
    for choice in [
        json!({"type": "auto", "disable_parallel_tool_use": true}),
        json!({"type": "tool", "name": "second"}),
    ] {
        body["tool_choice"] = choice;
        let (_, v) = post_json(&st, &body).await;
        assert_eq!(v["content"].as_array().unwrap().len(), 1, "{v}");
    }
}

#[tokio::test]
async fn stream_sends_named_events_in_anthropic_order() {
    let st = MockState::new(MockConfig {
        stream_words: 3,
        ..MockConfig::default()
    });
    let mut body = json!({"model": "m", "max_tokens": 100, "stream": true,
        "messages": [{"role": "user", "content": "x y"}]});
    let resp = post(&st, &body).await;
    assert_eq!(resp.headers()[header::CONTENT_TYPE], "text/event-stream");
    let evs = events(&text(resp).await);
    let names: Vec<&str> = evs.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    let start = &evs[0].1["message"];
    assert_eq!(start["content"], json!([]));
    assert_eq!(start["stop_reason"], Value::Null);
    assert_eq!(start["usage"]["input_tokens"], 5);
    assert_eq!(
        evs[1].1["content_block"],
        json!({"type": "text", "text": ""})
    );
    let said: String = evs[3..6]
        .iter()
        .map(|(_, e)| e["delta"]["text"].as_str().unwrap())
        .collect();
    assert_eq!(said, "x y x");
    assert_eq!(
        evs[7].1,
        json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null},
               "usage": {"output_tokens": 3}})
    );

    body["tools"] = json!([{"name": "f", "input_schema": {"type": "object"}}]);
    let evs = events(&text(post(&st, &body).await).await);
    assert_eq!(evs[1].1["content_block"]["type"], "tool_use");
    assert_eq!(
        evs[3].1["delta"],
        json!({"type": "input_json_delta", "partial_json": "{}"})
    );
    assert_eq!(evs[5].1["delta"]["stop_reason"], "tool_use");
    assert_eq!((st.stats().chat, st.stats().streams), (2, 2));
}

#[tokio::test]
async fn failures_use_anthropic_error_bodies_and_retry_after() {
    let st = MockState::new(MockConfig {
        fail_rate: 1.0,
        fail_status: 429,
        retry_after_secs: Some(7),
        ..MockConfig::default()
    });
    let resp = post(&st, &hello()).await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(resp.headers()[header::RETRY_AFTER], "7");
    let v: Value = serde_json::from_str(&text(resp).await).unwrap();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "rate_limit_error");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("claude-mock")
    );

    for (status, kind) in [
        (529, "overloaded_error"),
        (500, "api_error"),
        (401, "authentication_error"),
    ] {
        st.set_config(MockConfig {
            fail_rate: 1.0,
            fail_status: status,
            ..MockConfig::default()
        });
        let (got, v) = post_json(&st, &hello()).await;
        assert_eq!(got.as_u16(), status);
        assert_eq!(v["error"]["type"], kind);
    }
    assert_eq!(st.stats().faults, 4);
}

#[tokio::test]
async fn invalid_requests_get_400_invalid_request_error() {
    let st = MockState::new(MockConfig::default());
    let missing = json!({"model": "m", "messages": [{"role": "user", "content": "x"}]});
    let (status, v) = post_json(&st, &missing).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("max_tokens")
    );
    let system_role = json!({"model": "m", "max_tokens": 1,
        "messages": [{"role": "system", "content": "x"}]});
    let (status, v) = post_json(&st, &system_role).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("messages.0.role")
    );
    assert_eq!(st.stats().requests, 2);
}

#[tokio::test]
async fn malformed_and_cut_streams() {
    let st = MockState::new(MockConfig {
        malformed_rate: 1.0,
        ..MockConfig::default()
    });
    let body = json!({"model": "m", "max_tokens": 100, "stream": true,
        "messages": [{"role": "user", "content": "a"}]});
    let sse = text(post(&st, &body).await).await;
    let frames: Vec<&str> = sse.split("\n\n").filter(|f| !f.is_empty()).collect();
    // start, block start, ping, 8 words, block stop, message delta, stop: the middle one
    // (7) is replaced.
    assert_eq!(frames.len(), 14);
    assert_eq!(frames[7], "data: {not json");
    assert!(frames[13].starts_with("event: message_stop"));

    st.set_config(MockConfig {
        cut_rate: 1.0,
        ..MockConfig::default()
    });
    let mut body = post(&st, &body).await.into_body();
    let mut received = Vec::new();
    let err = loop {
        match body.frame().await {
            Some(Ok(frame)) => received.extend_from_slice(frame.data_ref().unwrap()),
            Some(Err(e)) => break e,
            None => panic!("stream ended without the cut"),
        }
    };
    assert!(err.to_string().contains("cut"), "{err}");
    let received = String::from_utf8(received).unwrap();
    assert_eq!(received.matches("event: ").count(), 7);
    assert!(!received.contains("message_stop"));
}
