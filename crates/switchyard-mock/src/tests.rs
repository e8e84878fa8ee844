//! The mock driven through its `Router` with `oneshot`, plus one socket test for shutdown.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use super::*;

fn state(cfg: MockConfig) -> MockState {
    MockState::new(cfg)
}

async fn call(state: &MockState, method: Method, uri: &str, body: &str) -> Response {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_owned()))
        .unwrap();
    router(state.clone()).oneshot(req).await.unwrap()
}

async fn post_json(state: &MockState, uri: &str, body: Value) -> (StatusCode, Value) {
    let resp = call(state, Method::POST, uri, &body.to_string()).await;
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap())
}

async fn text(resp: Response) -> String {
    String::from_utf8(
        resp.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap()
}

/// The JSON payloads of an SSE body, `[DONE]` excluded; asserts it is the last event.
fn events(body: &str) -> Vec<Value> {
    let datas: Vec<&str> = body
        .split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| e.strip_prefix("data: ").unwrap())
        .collect();
    assert_eq!(datas.last(), Some(&"[DONE]"), "{body}");
    datas[..datas.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

#[tokio::test]
async fn non_stream_chat_has_openai_shape_and_deterministic_usage() {
    let st = state(MockConfig {
        stream_words: 4,
        ..MockConfig::default()
    });
    let body = json!({
        "model": "mock-gpt",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "hello there world"}
        ],
        "temperature": 0.2
    });
    let (status, v) = post_json(&st, "/v1/chat/completions", body).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "mock-gpt");
    assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-mock-"));
    assert!(v["created"].as_u64().unwrap() > 1_600_000_000);
    let choice = &v["choices"][0];
    assert_eq!(choice["index"], 0);
    assert_eq!(choice["message"]["role"], "assistant");
    assert_eq!(choice["message"]["content"], "hello there world hello");
    assert_eq!(choice["finish_reason"], "stop");
    assert_eq!(choice["logprobs"], Value::Null);
    // (2 + 3 words) + 3 per message × 2.
    assert_eq!(v["usage"]["prompt_tokens"], 11);
    assert_eq!(v["usage"]["completion_tokens"], 4);
    assert_eq!(v["usage"]["total_tokens"], 15);
    assert_eq!(v["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
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
async fn max_tokens_truncates_with_length_and_n_multiplies_completion_tokens() {
    let st = state(MockConfig::default());
    let body = json!({
        "model": "m", "n": 2, "max_completion_tokens": 3,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "a b c d e"}]}]
    });
    let (_, v) = post_json(&st, "/v1/chat/completions", body).await;
    assert_eq!(v["choices"].as_array().unwrap().len(), 2);
    assert_eq!(v["choices"][1]["index"], 1);
    assert_eq!(v["choices"][1]["message"]["content"], "a b c");
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    assert_eq!(v["usage"]["prompt_tokens"], 8);
    assert_eq!(v["usage"]["completion_tokens"], 6);
}

#[tokio::test]
async fn tools_answer_with_one_tool_call() {
    let st = state(MockConfig::default());
    let body = json!({
        "model": "m",
        "messages": [{"role": "user", "content": "weather?"}],
        "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]
    });
    let (_, v) = post_json(&st, "/v1/chat/completions", body).await;
    let choice = &v["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(choice["message"]["content"], Value::Null);
    let call = &choice["message"]["tool_calls"][0];
    assert!(call["id"].as_str().unwrap().starts_with("call_mock_"));
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "get_weather");
    assert_eq!(call["function"]["arguments"], "{}");
    assert_eq!(v["usage"]["completion_tokens"], 1);
}

#[tokio::test]
async fn stream_ends_with_done_and_has_usage_only_when_asked() {
    let st = state(MockConfig {
        stream_words: 3,
        ..MockConfig::default()
    });
    let messages = json!([{"role": "user", "content": "x y"}]);
    let plain = json!({"model": "m", "stream": true, "messages": messages});
    let resp = call(
        &st,
        Method::POST,
        "/v1/chat/completions",
        &plain.to_string(),
    )
    .await;
    assert_eq!(resp.headers()[header::CONTENT_TYPE], "text/event-stream");
    let evs = events(&text(resp).await);
    // role, 3 words, finish.
    assert_eq!(evs.len(), 5);
    assert!(
        evs.iter()
            .all(|e| e["object"] == "chat.completion.chunk" && e.get("usage").is_none())
    );
    assert_eq!(
        evs[0]["choices"][0]["delta"],
        json!({"role": "assistant", "content": ""})
    );
    let content: String = evs[1..4]
        .iter()
        .map(|e| e["choices"][0]["delta"]["content"].as_str().unwrap())
        .collect();
    assert_eq!(content, "x y x");
    assert_eq!(evs[4]["choices"][0]["delta"], json!({}));
    assert_eq!(evs[4]["choices"][0]["finish_reason"], "stop");

    let with_usage = json!({
        "model": "m", "stream": true, "stream_options": {"include_usage": true}, "messages": messages
    });
    let resp = call(
        &st,
        Method::POST,
        "/v1/chat/completions",
        &with_usage.to_string(),
    )
    .await;
    let evs = events(&text(resp).await);
    assert_eq!(evs.len(), 6);
    assert!(evs[..5].iter().all(|e| e["usage"] == Value::Null));
    let last = &evs[5];
    assert_eq!(last["choices"], json!([]));
    assert_eq!(last["usage"]["prompt_tokens"], 5);
    assert_eq!(last["usage"]["completion_tokens"], 3);
    assert_eq!(last["usage"]["total_tokens"], 8);
    assert_eq!(st.stats().streams, 2);
}

#[tokio::test]
async fn stream_tool_call_carries_the_call_in_a_delta() {
    let st = state(MockConfig::default());
    let body = json!({
        "model": "m", "stream": true,
        "messages": [{"role": "user", "content": "hi"}],
        "tools": [{"type": "function", "function": {"name": "f"}}]
    });
    let resp = call(&st, Method::POST, "/v1/chat/completions", &body.to_string()).await;
    let evs = events(&text(resp).await);
    assert_eq!(evs.len(), 3);
    let call = &evs[1]["choices"][0]["delta"]["tool_calls"][0];
    assert_eq!(
        (call["index"].as_u64(), call["function"]["name"].as_str()),
        (Some(0), Some("f"))
    );
    assert_eq!(evs[2]["choices"][0]["finish_reason"], "tool_calls");
}

#[tokio::test]
async fn fail_rate_one_gives_the_status_retry_after_and_an_openai_error() {
    let cfg = MockConfig {
        fail_rate: 1.0,
        fail_status: 429,
        retry_after_secs: Some(7),
        ..MockConfig::default()
    };
    let st = state(cfg);
    let body = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}).to_string();
    let resp = call(&st, Method::POST, "/v1/chat/completions", &body).await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(resp.headers()[header::RETRY_AFTER], "7");
    let v: Value = serde_json::from_str(&text(resp).await).unwrap();
    assert_eq!(v["error"]["code"], "rate_limit_exceeded");
    assert_eq!(v["error"]["type"], "requests");
    assert_eq!(v["error"]["param"], Value::Null);

    st.set_config(MockConfig {
        fail_rate: 1.0,
        ..MockConfig::default()
    });
    let (status, v) = post_json(&st, "/v1/embeddings", json!({"model": "e", "input": "x"})).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(v["error"]["type"], "server_error");
    assert_eq!(st.stats().faults, 2);
}

#[tokio::test]
async fn malformed_json_gives_400_invalid_request_error() {
    let st = state(MockConfig::default());
    let resp = call(&st, Method::POST, "/v1/chat/completions", "{not json").await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let v: Value = serde_json::from_str(&text(resp).await).unwrap();
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert_eq!(v["error"]["code"], Value::Null);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Invalid request body")
    );
    let (status, _) = post_json(&st, "/v1/chat/completions", json!({"model": "m"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let bad_n = json!({"model": "m", "n": 0, "messages": []});
    let (status, v) = post_json(&st, "/v1/chat/completions", bad_n).await;
    assert_eq!(
        (status, &v["error"]["param"]),
        (StatusCode::BAD_REQUEST, &json!("n"))
    );
    assert_eq!(st.stats().requests, 3);
}

#[tokio::test]
async fn malformed_rate_replaces_one_middle_chunk_and_the_stream_continues() {
    let st = state(MockConfig {
        malformed_rate: 1.0,
        ..MockConfig::default()
    });
    let body =
        json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "a"}]});
    let resp = call(&st, Method::POST, "/v1/chat/completions", &body.to_string()).await;
    let sse = text(resp).await;
    let frames: Vec<&str> = sse.split("\n\n").filter(|f| !f.is_empty()).collect();
    // role + 8 words + finish + [DONE]; the middle one (5) is replaced.
    assert_eq!(frames.len(), 11);
    assert_eq!(frames[5], "data: {not json");
    assert_eq!(frames.iter().filter(|f| f.contains("not json")).count(), 1);
    assert_eq!(frames[10], "data: [DONE]");
}

#[tokio::test]
async fn cut_rate_aborts_the_body_mid_stream() {
    let st = state(MockConfig {
        cut_rate: 1.0,
        ..MockConfig::default()
    });
    let body =
        json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "a"}]});
    let resp = call(&st, Method::POST, "/v1/chat/completions", &body.to_string()).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.into_body();
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
    assert_eq!(received.matches("data: ").count(), 5);
    assert!(!received.contains("[DONE]"));
}

#[tokio::test]
async fn embeddings_are_normalised_deterministic_and_sized() {
    let st = state(MockConfig::default());
    let body = json!({"model": "mock-embed", "input": ["hello world", "other", "hello world"]});
    let (status, v) = post_json(&st, "/v1/embeddings", body).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["object"], "list");
    assert_eq!(v["model"], "mock-embed");
    assert_eq!(v["usage"], json!({"prompt_tokens": 5, "total_tokens": 5}));
    let data = v["data"].as_array().unwrap();
    assert_eq!(data.len(), 3);
    let vecs: Vec<Vec<f64>> = data
        .iter()
        .enumerate()
        .map(|(i, d)| {
            assert_eq!(
                (d["object"].as_str(), d["index"].as_u64()),
                (Some("embedding"), Some(i as u64))
            );
            d["embedding"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect()
        })
        .collect();
    for v in &vecs {
        assert_eq!(v.len(), 16);
        let norm: f64 = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "norm {norm}");
    }
    assert_eq!(vecs[0], vecs[2]);
    assert_ne!(vecs[0], vecs[1]);

    let tokens =
        json!({"model": "e", "input": [[1, 2, 3]], "dimensions": 4, "encoding_format": "base64"});
    let (_, v) = post_json(&st, "/v1/embeddings", tokens).await;
    // 4 f32 = 16 bytes = 24 base64 characters.
    assert_eq!(v["data"][0]["embedding"].as_str().unwrap().len(), 24);
    assert_eq!(v["usage"]["prompt_tokens"], 3);
    let (status, _) = post_json(&st, "/v1/embeddings", json!({"model": "e", "input": []})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(st.stats().embeddings, 3);
}

#[tokio::test]
async fn models_list_both_mock_models() {
    let st = state(MockConfig::default());
    let resp = call(&st, Method::GET, "/v1/models", "").await;
    let v: Value = serde_json::from_str(&text(resp).await).unwrap();
    let ids: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["mock-gpt", "mock-embed"]);
}

#[tokio::test]
async fn control_endpoints_swap_config_and_reset_stats() {
    let st = state(MockConfig::default());
    let resp = call(
        &st,
        Method::PUT,
        "/_mock/config",
        r#"{"latency_ms": 5, "stream_words": 2}"#,
    )
    .await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let resp = call(&st, Method::GET, "/_mock/config", "").await;
    let cfg: MockConfig = serde_json::from_str(&text(resp).await).unwrap();
    assert_eq!(
        cfg,
        MockConfig {
            latency_ms: 5,
            stream_words: 2,
            ..MockConfig::default()
        }
    );

    let resp = call(&st, Method::PUT, "/_mock/config", r#"{"fail_rate": 2}"#).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let resp = call(&st, Method::PUT, "/_mock/config", r#"{"typo": 1}"#).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(st.config().latency_ms, 5);

    call(&st, Method::GET, "/v1/models", "").await;
    let resp = call(&st, Method::GET, "/_mock/stats", "").await;
    let stats: MockStats = serde_json::from_str(&text(resp).await).unwrap();
    assert_eq!(stats.requests, 1);
    let resp = call(&st, Method::POST, "/_mock/stats/reset", "").await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(st.stats(), MockStats::default());
}

#[tokio::test]
async fn shutdown_cuts_a_hanging_request_short() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let st = state(MockConfig {
        timeout_rate: 1.0,
        hang_ms: 60_000,
        ..MockConfig::default()
    });
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(serve(listener, st.clone(), shutdown.clone()));

    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    let body = r#"{"model":"m","messages":[]}"#;
    let req = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    conn.write_all(req.as_bytes()).await.unwrap();
    while st.stats().chat == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    shutdown.cancel();
    let done = tokio::time::timeout(Duration::from_secs(5), server).await;
    done.expect("serve did not return promptly")
        .unwrap()
        .unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
}

#[tokio::test]
async fn with_api_keys_only_those_keys_are_served_in_any_provider_header() {
    let st = state(MockConfig {
        api_keys: vec!["sk-good".into()],
        ..MockConfig::default()
    });
    let chat = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}).to_string();
    let gemini = json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}).to_string();
    let send = |header: (&'static str, &'static str), uri: &'static str, body: &str| {
        let req = Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header.0, header.1)
            .body(Body::from(body.to_owned()))
            .unwrap();
        let st = st.clone();
        async move { router(st).oneshot(req).await.unwrap().status() }
    };
    let openai = "/v1/chat/completions";
    let good = ("authorization", "Bearer sk-good");
    assert_eq!(send(good, openai, &chat).await, 200);
    assert_eq!(
        send(("authorization", "Bearer sk-old"), openai, &chat).await,
        401
    );
    assert_eq!(
        send(("x-api-key", "sk-old"), "/v1/messages", &chat).await,
        401
    );
    let generate = "/v1beta/models/g:generateContent";
    assert_eq!(
        send(("x-goog-api-key", "sk-good"), generate, &gemini).await,
        200
    );
    let stats = st.stats();
    assert_eq!((stats.unauthorized, stats.chat), (2, 2));
    // Open by default; the control endpoints never ask.
    let open = state(MockConfig::default());
    assert_eq!(
        post_json(&open, openai, serde_json::from_str(&chat).unwrap())
            .await
            .0,
        200
    );
    assert_eq!(
        call(&st, Method::GET, "/_mock/stats", "").await.status(),
        200
    );
}
