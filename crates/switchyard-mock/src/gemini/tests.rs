use axum::body::Body;
use axum::http::{Method, Request};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use super::super::{MockConfig, MockStats, router};
use super::*;

async fn post(state: &MockState, uri: &str, body: &Value) -> Response {
    let req = Request::builder()
        .method(Method::POST)
        .uri(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    router(state.clone()).oneshot(req).await.unwrap()
}

async fn text(resp: Response) -> String {
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

async fn post_json(state: &MockState, uri: &str, body: &Value) -> (StatusCode, Value) {
    let resp = post(state, uri, body).await;
    let status = resp.status();
    (status, serde_json::from_str(&text(resp).await).unwrap())
}

const GENERATE: &str = "/v1beta/models/gemini-mock:generateContent";
const STREAM: &str = "/v1beta/models/gemini-mock:streamGenerateContent?alt=sse";

/// The payload of every SSE event; asserts the CRLF framing Google uses.
fn events(body: &str) -> Vec<Value> {
    body.split("\r\n\r\n")
        .filter(|e| !e.is_empty())
        .map(|e| serde_json::from_str(e.strip_prefix("data: ").unwrap()).unwrap())
        .collect()
}

fn hello() -> Value {
    json!({"systemInstruction": {"parts": [{"text": "be brief"}]},
           "contents": [{"role": "user", "parts": [{"text": "hello there world"}]}]})
}

#[tokio::test]
async fn generate_content_has_gemini_shape_and_the_openai_handlers_usage() {
    let st = MockState::new(MockConfig {
        stream_words: 4,
        ..MockConfig::default()
    });
    let (status, v) = post_json(&st, GENERATE, &hello()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["modelVersion"], "gemini-mock");
    assert!(v["responseId"].as_str().unwrap().starts_with("mock-"));
    assert_eq!(
        v["candidates"],
        json!([{"content": {"parts": [{"text": "hello there world hello"}], "role": "model"},
                "finishReason": "STOP", "index": 0}])
    );
    // Same as the OpenAI test with the system prompt as a message: (2 + 3) + 3 × 2.
    assert_eq!(
        v["usageMetadata"],
        json!({"promptTokenCount": 11, "candidatesTokenCount": 4, "totalTokenCount": 15})
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
async fn limits_candidates_and_function_responses() {
    let st = MockState::new(MockConfig::default());
    let body = json!({"generationConfig": {"maxOutputTokens": 3, "candidateCount": 2}, "contents": [
        {"role": "user", "parts": [{"text": "a b c d"}]},
        {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {}}}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {"content": "x y"}}},
                                   {"functionResponse": {"name": "g", "response": {"content": {"k": 1}}}}]}
    ]});
    let (_, v) = post_json(&st, GENERATE, &body).await;
    let candidates = v["candidates"].as_array().unwrap();
    assert_eq!(candidates.len(), 2);
    assert_eq!(candidates[1]["index"], 1);
    assert_eq!(candidates[1]["content"]["parts"][0]["text"], "a b c");
    assert_eq!(candidates[0]["finishReason"], "MAX_TOKENS");
    // 4 + 0 + (2 + 1) words, 3 contents; 3 tokens in each of 2 candidates.
    assert_eq!(v["usageMetadata"]["promptTokenCount"], 7 + 9);
    assert_eq!(v["usageMetadata"]["candidatesTokenCount"], 6);
}

#[tokio::test]
async fn tools_answer_with_a_function_call_unless_forbidden() {
    let st = MockState::new(MockConfig::default());
    let mut body = json!({"contents": [{"parts": [{"text": "weather?"}]}],
        "tools": [{"functionDeclarations": [{"name": "first"}, {"name": "second", "parametersJsonSchema": {"type": "object"}}]}]});
    let (_, v) = post_json(&st, GENERATE, &body).await;
    let candidate = &v["candidates"][0];
    assert_eq!(
        candidate["content"]["parts"],
        json!([{"functionCall": {"name": "first", "args": {}}}])
    );
    assert_eq!(candidate["finishReason"], "STOP");
    assert_eq!(v["usageMetadata"]["candidatesTokenCount"], 1);

    body["toolConfig"] =
        json!({"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["second"]}});
    let (_, v) = post_json(&st, GENERATE, &body).await;
    assert_eq!(
        v["candidates"][0]["content"]["parts"][0]["functionCall"]["name"],
        "second"
    );
    body["toolConfig"] = json!({"functionCallingConfig": {"mode": "NONE"}});
    let (_, v) = post_json(&st, GENERATE, &body).await;
    assert!(v["candidates"][0]["content"]["parts"][0]["text"].is_string());
}

#[tokio::test]
async fn parallel_in_the_prompt_calls_every_declared_function_at_once() {
    let st = MockState::new(MockConfig::default());
    let mut body = json!({"contents": [{"parts": [{"text": "both in parallel"}]}],
        "tools": [{"functionDeclarations": [{"name": "first"}]}, {"functionDeclarations": [{"name": "second"}]}]});
    let both = json!([{"functionCall": {"name": "first", "args": {}}}, {"functionCall": {"name": "second", "args": {}}}]);
    let (_, v) = post_json(&st, GENERATE, &body).await;
    assert_eq!(v["candidates"][0]["content"]["parts"], both);
    assert_eq!(v["usageMetadata"]["candidatesTokenCount"], 2);
    let evs = events(&text(post(&st, STREAM, &body).await).await);
    assert_eq!(evs.len(), 1);
    assert_eq!(evs[0]["candidates"][0]["content"]["parts"], both);

    body["toolConfig"] =
        json!({"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["second"]}});
    let (_, v) = post_json(&st, GENERATE, &body).await;
    assert_eq!(
        v["candidates"][0]["content"]["parts"],
        json!([{"functionCall": {"name": "second", "args": {}}}])
    );
}

#[tokio::test]
async fn stream_sends_one_event_per_word_and_finishes_on_the_last() {
    let st = MockState::new(MockConfig {
        stream_words: 3,
        ..MockConfig::default()
    });
    let body = json!({"contents": [{"role": "user", "parts": [{"text": "x y"}]}]});
    let resp = post(&st, STREAM, &body).await;
    assert_eq!(resp.headers()[header::CONTENT_TYPE], "text/event-stream");
    let evs = events(&text(resp).await);
    assert_eq!(evs.len(), 3);
    let said: String = evs
        .iter()
        .map(|e| {
            e["candidates"][0]["content"]["parts"][0]["text"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(said, "x y x");
    assert!(
        evs[..2]
            .iter()
            .all(|e| e["candidates"][0].get("finishReason").is_none())
    );
    assert_eq!(
        evs[0]["usageMetadata"],
        json!({"promptTokenCount": 5, "totalTokenCount": 5})
    );
    assert_eq!(evs[2]["candidates"][0]["finishReason"], "STOP");
    assert_eq!(
        evs[2]["usageMetadata"],
        json!({"promptTokenCount": 5, "candidatesTokenCount": 3, "totalTokenCount": 8})
    );
    assert!(evs.iter().all(|e| e["responseId"] == evs[0]["responseId"]));

    let tools = json!({"contents": [{"parts": [{"text": "x"}]}], "tools": [{"functionDeclarations": [{"name": "f"}]}]});
    let evs = events(&text(post(&st, STREAM, &tools).await).await);
    assert_eq!(evs.len(), 1);
    assert_eq!(
        evs[0]["candidates"][0]["content"]["parts"][0]["functionCall"]["name"],
        "f"
    );

    // Without alt=sse: the same responses as one JSON array.
    let (status, v) = post_json(
        &st,
        "/v1beta/models/gemini-mock:streamGenerateContent",
        &body,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v.as_array().unwrap().len(), 3);

    st.set_config(MockConfig {
        omit_usage: true,
        ..MockConfig::default()
    });
    let evs = events(&text(post(&st, STREAM, &body).await).await);
    assert!(evs.iter().all(|e| e.get("usageMetadata").is_none()));
    assert_eq!((st.stats().chat, st.stats().streams), (4, 4));
}

#[tokio::test]
async fn failures_use_google_error_bodies_retry_after_and_retry_info() {
    let st = MockState::new(MockConfig {
        fail_rate: 1.0,
        fail_status: 429,
        retry_after_secs: Some(7),
        ..MockConfig::default()
    });
    let resp = post(&st, GENERATE, &hello()).await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(resp.headers()[header::RETRY_AFTER], "7");
    let v: Value = serde_json::from_str(&text(resp).await).unwrap();
    assert_eq!(v["error"]["code"], 429);
    assert_eq!(v["error"]["status"], "RESOURCE_EXHAUSTED");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("gemini-mock")
    );
    assert_eq!(
        v["error"]["details"],
        json!([{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "7s"}])
    );

    for (status, kind) in [
        (503, "UNAVAILABLE"),
        (500, "INTERNAL"),
        (403, "PERMISSION_DENIED"),
        (400, "INVALID_ARGUMENT"),
    ] {
        st.set_config(MockConfig {
            fail_rate: 1.0,
            fail_status: status,
            ..MockConfig::default()
        });
        let (got, v) = post_json(&st, STREAM, &hello()).await;
        assert_eq!(got.as_u16(), status);
        assert_eq!(v["error"]["status"], kind);
        assert!(v["error"].get("details").is_none());
    }
    assert_eq!(st.stats().faults, 5);
}

#[tokio::test]
async fn invalid_requests_get_400_invalid_argument_and_unknown_methods_404() {
    let st = MockState::new(MockConfig::default());
    for (body, needle) in [
        (json!({"contents": "nope"}), "Invalid JSON payload"),
        (
            json!({"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]}),
            "contents[0].role",
        ),
        (
            json!({"contents": [], "generationConfig": {"candidateCount": 9}}),
            "candidateCount",
        ),
    ] {
        let (status, v) = post_json(&st, GENERATE, &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(v["error"]["status"], "INVALID_ARGUMENT");
        assert!(
            v["error"]["message"].as_str().unwrap().contains(needle),
            "{v}"
        );
    }
    let (status, v) = post_json(&st, "/v1beta/models/gemini-mock:countTokens", &hello()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(v["error"]["status"], "NOT_FOUND");
    let (status, _) = post_json(&st, "/v1beta/models/gemini-mock", &hello()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(st.stats().requests, 5);
}

#[tokio::test]
async fn malformed_and_cut_streams() {
    let st = MockState::new(MockConfig {
        malformed_rate: 1.0,
        ..MockConfig::default()
    });
    let body = json!({"contents": [{"parts": [{"text": "a"}]}]});
    let sse = text(post(&st, STREAM, &body).await).await;
    // 8 words, one event each: the middle one (4) is replaced.
    // Google's frames end in CRLF pairs, the injected one in a bare LF pair.
    let sse = sse.replace("\r\n", "\n");
    let frames: Vec<&str> = sse.split("\n\n").filter(|f| !f.is_empty()).collect();
    assert_eq!(frames.len(), 8);
    assert_eq!(frames[4], "data: {not json");
    assert!(frames[7].contains("\"finishReason\":\"STOP\""));

    st.set_config(MockConfig {
        cut_rate: 1.0,
        ..MockConfig::default()
    });
    let mut body = post(&st, STREAM, &body).await.into_body();
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
    assert_eq!(received.matches("data: ").count(), 4);
    assert!(!received.contains("finishReason"));
}

#[tokio::test]
async fn batch_embed_matches_the_openai_vectors_and_checks_the_model() {
    let st = MockState::new(MockConfig::default());
    let uri = "/v1beta/models/embed-mock:batchEmbedContents";
    let body = json!({"requests": [
        {"model": "models/embed-mock", "content": {"parts": [{"text": "a b"}]}, "outputDimensionality": 8},
        {"model": "models/embed-mock", "content": {"parts": [{"text": "c"}]}, "outputDimensionality": 8}
    ]});
    let (status, v) = post_json(&st, uri, &body).await;
    assert_eq!(status, StatusCode::OK);
    let embeddings = v["embeddings"].as_array().unwrap();
    assert_eq!(embeddings.len(), 2);
    assert_eq!(embeddings[0]["values"].as_array().unwrap().len(), 8);
    let (_, openai) = post_json(
        &st,
        "/v1/embeddings",
        &json!({"model": "x", "input": ["a b", "c"], "dimensions": 8}),
    )
    .await;
    assert_eq!(embeddings[1]["values"], openai["data"][1]["embedding"]);
    let (_, v) = post_json(
        &st,
        uri,
        &json!({"requests": [{"model": "models/embed-mock", "content": {"parts": [{"text": "x"}]}}]}),
    )
    .await;
    assert_eq!(
        v["embeddings"][0]["values"].as_array().unwrap().len(),
        DEFAULT_DIMENSIONS
    );

    for (body, needle) in [
        (
            json!({"requests": [{"model": "models/other", "content": {"parts": [{"text": "x"}]}}]}),
            "does not match",
        ),
        (json!({"requests": []}), "must not be empty"),
        (
            json!({"requests": [{"model": "models/embed-mock", "content": {"parts": []}, "outputDimensionality": 0}]}),
            "outputDimensionality",
        ),
    ] {
        let (status, v) = post_json(&st, uri, &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(
            v["error"]["message"].as_str().unwrap().contains(needle),
            "{v}"
        );
    }
    assert_eq!(st.stats().embeddings, 6);

    st.set_config(MockConfig {
        fail_rate: 1.0,
        fail_status: 503,
        ..MockConfig::default()
    });
    let (status, v) = post_json(&st, uri, &body).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(v["error"]["status"], "UNAVAILABLE");
}
