//! The Bedrock routes driven through the mock's `Router` with `oneshot`, compared with the
//! OpenAI handlers' answers to the same conversation, and SigV4 requests signed here with
//! `aws-sigv4` as an AWS SDK signs them.

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use aws_smithy_eventstream::frame::read_message_from;
use aws_smithy_runtime_api::client::identity::Identity;
use aws_smithy_types::event_stream::Message;
use axum::body::Body;
use axum::http::Request;
use bytes::Buf;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use super::super::{MockConfig, MockStats, router};
use super::*;

const MODEL: &str = "anthropic.claude-3-haiku-20240307-v1%3A0";
const HOST: &str = "bedrock-runtime.us-east-1.amazonaws.com";

fn converse_uri(model: &str) -> String {
    format!("/model/{model}/converse")
}

fn stream_uri(model: &str) -> String {
    format!("/model/{model}/converse-stream")
}

fn invoke_uri(model: &str) -> String {
    format!("/model/{model}/invoke")
}

async fn send(state: &MockState, req: Request<Body>) -> Response {
    router(state.clone()).oneshot(req).await.unwrap()
}

/// A POST with a Bedrock API key, the common case.
async fn post(state: &MockState, uri: &str, body: &Value) -> Response {
    let req = Request::builder()
        .method(Method::POST)
        .uri(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, "Bearer mock-bedrock-api-key")
        .body(Body::from(body.to_string()))
        .unwrap();
    send(state, req).await
}

async fn bytes(resp: Response) -> Bytes {
    resp.into_body().collect().await.unwrap().to_bytes()
}

async fn post_json(state: &MockState, uri: &str, body: &Value) -> (StatusCode, Value) {
    let resp = post(state, uri, body).await;
    let status = resp.status();
    (status, serde_json::from_slice(&bytes(resp).await).unwrap())
}

fn header_str<'r>(resp: &'r Response, name: &str) -> &'r str {
    resp.headers()[name].to_str().unwrap()
}

/// Asserts an AWS-shaped error and returns its message.
async fn aws_error(resp: Response, status: StatusCode, name: &str) -> String {
    assert_eq!(resp.status(), status);
    assert_eq!(
        header_str(&resp, "x-amzn-errortype"),
        format!("{name}:http://internal.amazon.com/coral/com.amazon.bedrock/")
    );
    assert!(!header_str(&resp, "x-amzn-requestid").is_empty());
    let v: Value = serde_json::from_slice(&bytes(resp).await).unwrap();
    v["message"].as_str().unwrap().to_owned()
}

/// Every message of an event-stream body; framing and CRCs are checked by the decoder.
fn messages(mut body: Bytes) -> Vec<Message> {
    let mut out = Vec::new();
    while body.has_remaining() {
        out.push(read_message_from(&mut body).unwrap());
    }
    out
}

fn header_of(message: &Message, name: &str) -> String {
    let header = message
        .headers()
        .iter()
        .find(|h| h.name().as_str() == name)
        .unwrap_or_else(|| panic!("no {name} header"));
    header.value().as_string().unwrap().as_str().to_owned()
}

/// (`:event-type`, JSON payload) of every event, asserting the event headers AWS sends.
fn events(body: Bytes) -> Vec<(String, Value)> {
    messages(body)
        .iter()
        .map(|m| {
            assert_eq!(header_of(m, ":message-type"), "event");
            assert_eq!(header_of(m, ":content-type"), "application/json");
            let payload = serde_json::from_slice(m.payload()).unwrap();
            (header_of(m, ":event-type"), payload)
        })
        .collect()
}

fn hello() -> Value {
    json!({"system": [{"text": "be brief"}],
           "messages": [{"role": "user", "content": [{"text": "hello there world"}]}],
           "inferenceConfig": {"temperature": 0.2}})
}

fn weather_tools() -> Value {
    json!({"tools": [
        {"toolSpec": {"name": "get_weather", "description": "Weather by city",
                      "inputSchema": {"json": {"type": "object", "properties": {"city": {"type": "string"}}}}}},
        {"toolSpec": {"name": "get_time", "inputSchema": {"json": {"type": "object"}}}}
    ]})
}

#[tokio::test]
async fn converse_has_bedrock_shape_and_the_openai_handlers_reply_and_usage() {
    let st = MockState::new(MockConfig {
        stream_words: 4,
        latency_ms: 3,
        ..MockConfig::default()
    });
    let resp = post(&st, &converse_uri(MODEL), &hello()).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(header_str(&resp, "content-type"), "application/json");
    assert!(header_str(&resp, "x-amzn-requestid").starts_with("00000000-"));
    let v: Value = serde_json::from_slice(&bytes(resp).await).unwrap();
    assert_eq!(
        v,
        json!({"output": {"message": {"role": "assistant", "content": [{"text": "hello there world hello"}]}},
               "stopReason": "end_turn",
               "usage": {"inputTokens": 11, "outputTokens": 4, "totalTokens": 15},
               "metrics": {"latencyMs": 3}})
    );
    let openai = json!({"model": "mock-gpt", "messages": [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hello there world"}
    ]});
    let (_, o) = post_json(&st, "/v1/chat/completions", &openai).await;
    assert_eq!(
        v["output"]["message"]["content"][0]["text"],
        o["choices"][0]["message"]["content"]
    );
    assert_eq!(v["usage"]["inputTokens"], o["usage"]["prompt_tokens"]);
    assert_eq!(v["usage"]["outputTokens"], o["usage"]["completion_tokens"]);
    assert_eq!(v["usage"]["totalTokens"], o["usage"]["total_tokens"]);
    assert_eq!(
        st.stats(),
        MockStats {
            requests: 2,
            chat: 2,
            ..MockStats::default()
        }
    );

    st.set_config(MockConfig {
        omit_usage: true,
        ..MockConfig::default()
    });
    let (_, v) = post_json(&st, &converse_uri(MODEL), &hello()).await;
    assert!(v.get("usage").is_none());
    assert_eq!(v["stopReason"], "end_turn");
}

#[tokio::test]
async fn tools_answer_with_tool_use_until_the_results_come_back() {
    let st = MockState::new(MockConfig::default());
    let mut body = json!({"messages": [{"role": "user", "content": [{"text": "weather in paris"}]}],
                          "toolConfig": weather_tools()});
    let (status, v) = post_json(&st, &converse_uri(MODEL), &body).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["stopReason"], "tool_use");
    let tool_use = &v["output"]["message"]["content"][0]["toolUse"];
    assert_eq!(tool_use["name"], "get_weather");
    assert_eq!(tool_use["input"], json!({}));
    let id = tool_use["toolUseId"].as_str().unwrap().to_owned();
    assert!(id.starts_with("tooluse_"), "{id}");
    assert_eq!(v["usage"]["outputTokens"], 1);

    body["toolConfig"]["toolChoice"] = json!({"tool": {"name": "get_time"}});
    let (_, v) = post_json(&st, &converse_uri(MODEL), &body).await;
    assert_eq!(
        v["output"]["message"]["content"][0]["toolUse"]["name"],
        "get_time"
    );
    body["toolConfig"]["toolChoice"] = json!({"any": {}});
    let (_, v) = post_json(&st, &converse_uri(MODEL), &body).await;
    assert_eq!(
        v["output"]["message"]["content"][0]["toolUse"]["name"],
        "get_weather"
    );

    // The results of the call: answered with text echoing the user's own question.
    let body = json!({"toolConfig": weather_tools(), "messages": [
        {"role": "user", "content": [{"text": "weather in paris"}]},
        {"role": "assistant", "content": [{"toolUse": {"toolUseId": id, "name": "get_weather", "input": {"city": "paris"}}}]},
        {"role": "user", "content": [{"toolResult": {"toolUseId": id, "status": "success",
            "content": [{"text": "sunny and warm"}, {"json": {"t": 20}}]}}]}
    ]});
    let (_, v) = post_json(&st, &converse_uri(MODEL), &body).await;
    assert_eq!(v["stopReason"], "end_turn");
    assert_eq!(
        v["output"]["message"]["content"][0]["text"],
        "weather in paris weather in paris weather in"
    );
    // 3 + 0 + (3 + 1 for the compact JSON) words, 3 messages.
    assert_eq!(v["usage"]["inputTokens"], 7 + 9);
}

#[tokio::test]
async fn parallel_in_the_prompt_calls_every_tool_in_blocks_of_their_own() {
    let st = MockState::new(MockConfig::default());
    let mut body = json!({"messages": [{"role": "user", "content": [{"text": "both, in parallel"}]}],
                          "toolConfig": weather_tools()});
    let (_, v) = post_json(&st, &converse_uri(MODEL), &body).await;
    let content = v["output"]["message"]["content"].as_array().unwrap();
    let names: Vec<&str> = content
        .iter()
        .map(|b| b["toolUse"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["get_weather", "get_time"]);
    assert_ne!(
        content[0]["toolUse"]["toolUseId"],
        content[1]["toolUse"]["toolUseId"]
    );
    let openai = json!({"model": "mock-gpt",
        "messages": [{"role": "user", "content": "both, in parallel"}],
        "tools": [{"type": "function", "function": {"name": "get_weather"}},
                  {"type": "function", "function": {"name": "get_time"}}]});
    let (_, o) = post_json(&st, "/v1/chat/completions", &openai).await;
    assert_eq!(v["usage"]["outputTokens"], o["usage"]["completion_tokens"]);
    assert_eq!(v["usage"]["outputTokens"], 2);

    let evs = events(bytes(post(&st, &stream_uri(MODEL), &body).await).await);
    let blocks: Vec<(u64, &str)> = evs
        .iter()
        .filter(|(k, _)| k == "contentBlockStart")
        .map(|(_, p)| {
            let name = p["start"]["toolUse"]["name"].as_str().unwrap();
            (p["contentBlockIndex"].as_u64().unwrap(), name)
        })
        .collect();
    assert_eq!(blocks, [(0, "get_weather"), (1, "get_time")]);
    let stops = evs.iter().filter(|(k, _)| k == "contentBlockStop").count();
    assert_eq!(stops, 2);

    body["toolConfig"]["toolChoice"] = json!({"tool": {"name": "get_time"}});
    let (_, v) = post_json(&st, &converse_uri(MODEL), &body).await;
    assert_eq!(
        v["output"]["message"]["content"].as_array().unwrap().len(),
        1
    );
}

#[tokio::test]
async fn max_tokens_cuts_the_reply_and_images_count_no_words() {
    let st = MockState::new(MockConfig::default());
    let body = json!({"inferenceConfig": {"maxTokens": 3, "stopSequences": ["x"]}, "messages": [
        {"role": "user", "content": [{"text": "a b c d"},
            {"image": {"format": "png", "source": {"bytes": "iVBORw0KGgo="}}}]}
    ]});
    let (_, v) = post_json(&st, &converse_uri(MODEL), &body).await;
    assert_eq!(v["stopReason"], "max_tokens");
    assert_eq!(v["output"]["message"]["content"][0]["text"], "a b c");
    assert_eq!(
        v["usage"],
        json!({"inputTokens": 7, "outputTokens": 3, "totalTokens": 10})
    );
}

#[tokio::test]
async fn invalid_requests_get_400_validation_exception() {
    let st = MockState::new(MockConfig::default());
    let user = json!({"role": "user", "content": [{"text": "x"}]});
    let assistant = json!({"role": "assistant", "content": [{"text": "y"}]});
    for (body, needle) in [
        (json!({"messages": "nope"}), "Malformed input request"),
        (json!({}), "must start with a user message"),
        (json!({"messages": []}), "must start with a user message"),
        (
            json!({"messages": [assistant, user]}),
            "must start with a user message",
        ),
        (
            json!({"messages": [user, {"role": "system", "content": [{"text": "z"}]}]}),
            "Value 'system' at 'messages.2.member.role'",
        ),
        (
            json!({"messages": [user, user]}),
            "must alternate between user and assistant",
        ),
        (
            json!({"messages": [user, {"role": "assistant", "content": []}]}),
            "Message object at messages.1 is empty",
        ),
        (
            json!({"messages": [user], "inferenceConfig": {"maxTokens": 0}}),
            "'inferenceConfig.maxTokens'",
        ),
    ] {
        let resp = post(&st, &converse_uri(MODEL), &body).await;
        let message = aws_error(resp, StatusCode::BAD_REQUEST, "ValidationException").await;
        assert!(message.contains(needle), "{message}");
    }
    let resp = post(&st, &stream_uri("amazon.titan-embed-text-v2:0"), &hello()).await;
    let message = aws_error(resp, StatusCode::BAD_REQUEST, "ValidationException").await;
    assert!(message.contains("doesn't support the model"), "{message}");
    let stats = st.stats();
    assert_eq!((stats.requests, stats.chat, stats.streams), (9, 9, 0));
}

#[tokio::test]
async fn stream_sends_aws_events_whose_deltas_make_the_reply() {
    let st = MockState::new(MockConfig {
        stream_words: 3,
        latency_ms: 2,
        ..MockConfig::default()
    });
    let body = json!({"messages": [{"role": "user", "content": [{"text": "x y"}]}]});
    let resp = post(&st, &stream_uri(MODEL), &body).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        header_str(&resp, "content-type"),
        "application/vnd.amazon.eventstream"
    );
    assert!(!header_str(&resp, "x-amzn-requestid").is_empty());
    let evs = events(bytes(resp).await);
    let kinds: Vec<&str> = evs.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "messageStart",
            "contentBlockDelta",
            "contentBlockDelta",
            "contentBlockDelta",
            "contentBlockStop",
            "messageStop",
            "metadata"
        ]
    );
    assert_eq!(evs[0].1, json!({"role": "assistant"}));
    let said: String = evs[1..4]
        .iter()
        .map(|(_, p)| {
            assert_eq!(p["contentBlockIndex"], 0);
            assert!(p["p"].as_str().unwrap().starts_with("abc"), "{p}");
            p["delta"]["text"].as_str().unwrap()
        })
        .collect();
    let (_, whole) = post_json(&st, &converse_uri(MODEL), &body).await;
    assert_eq!(said, "x y x");
    assert_eq!(said, whole["output"]["message"]["content"][0]["text"]);
    assert_eq!(evs[4].1, json!({"contentBlockIndex": 0}));
    assert_eq!(evs[5].1, json!({"stopReason": "end_turn"}));
    assert_eq!(
        evs[6].1,
        json!({"usage": whole["usage"], "metrics": {"latencyMs": 2}})
    );

    st.set_config(MockConfig {
        omit_usage: true,
        ..MockConfig::default()
    });
    let evs = events(bytes(post(&st, &stream_uri(MODEL), &body).await).await);
    assert_eq!(evs.last().unwrap().0, "messageStop");
    let stats = st.stats();
    assert_eq!((stats.chat, stats.streams), (3, 2));
}

#[tokio::test]
async fn tool_stream_splits_the_input_json_across_deltas() {
    let st = MockState::new(MockConfig::default());
    let body = json!({"messages": [{"role": "user", "content": [{"text": "weather?"}]}],
                      "toolConfig": weather_tools()});
    let evs = events(bytes(post(&st, &stream_uri(MODEL), &body).await).await);
    let kinds: Vec<&str> = evs.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "messageStart",
            "contentBlockStart",
            "contentBlockDelta",
            "contentBlockDelta",
            "contentBlockStop",
            "messageStop",
            "metadata"
        ]
    );
    let start = &evs[1].1;
    assert_eq!(start["contentBlockIndex"], 0);
    assert_eq!(start["start"]["toolUse"]["name"], "get_weather");
    assert!(
        start["start"]["toolUse"]["toolUseId"]
            .as_str()
            .unwrap()
            .starts_with("tooluse_")
    );
    let input: String = evs[2..4]
        .iter()
        .map(|(_, p)| {
            let part = p["delta"]["toolUse"]["input"].as_str().unwrap();
            assert!(!part.is_empty());
            part
        })
        .collect();
    assert_eq!(serde_json::from_str::<Value>(&input).unwrap(), json!({}));
    assert_eq!(evs[5].1, json!({"stopReason": "tool_use"}));
    assert_eq!(evs[6].1["usage"]["outputTokens"], 1);
}

#[tokio::test]
async fn malformed_and_cut_streams() {
    let st = MockState::new(MockConfig {
        malformed_rate: 1.0,
        ..MockConfig::default()
    });
    let body = json!({"messages": [{"role": "user", "content": [{"text": "a"}]}]});
    // 8 words: start, 8 deltas, block stop, message stop, metadata; the middle one (6) is
    // replaced, its framing and checksums intact.
    let all = messages(bytes(post(&st, &stream_uri(MODEL), &body).await).await);
    assert_eq!(all.len(), 12);
    for (i, m) in all.iter().enumerate() {
        let parsed = serde_json::from_slice::<Value>(m.payload());
        assert_eq!(parsed.is_err(), i == 6, "message {i}");
    }
    assert_eq!(&all[6].payload()[..], b"{not json");
    assert_eq!(header_of(&all[6], ":event-type"), "contentBlockDelta");

    st.set_config(MockConfig {
        cut_rate: 1.0,
        ..MockConfig::default()
    });
    let (received, err) = cut_body(post(&st, &stream_uri(MODEL), &body).await).await;
    assert!(err.contains("cut"), "{err}");
    let kinds: Vec<String> = events(received).into_iter().map(|(k, _)| k).collect();
    assert_eq!(kinds.len(), 6);
    assert!(!kinds.iter().any(|k| k == "messageStop"));

    st.set_config(MockConfig {
        cut_rate: 1.0,
        malformed_rate: 1.0,
        ..MockConfig::default()
    });
    let (received, _) = cut_body(post(&st, &stream_uri(MODEL), &body).await).await;
    let got = messages(received);
    assert_eq!(got.len(), 6);
    assert_eq!(&got[5].payload()[..], b"{not json");
}

/// The bytes a stream sent before its body failed, and the failure.
async fn cut_body(resp: Response) -> (Bytes, String) {
    let mut body = resp.into_body();
    let mut received = Vec::new();
    loop {
        match body.frame().await {
            Some(Ok(frame)) => received.extend_from_slice(frame.data_ref().unwrap()),
            Some(Err(e)) => return (Bytes::from(received), e.to_string()),
            None => panic!("stream ended without the cut"),
        }
    }
}

#[tokio::test]
async fn injected_failures_name_bedrock_exceptions_with_retry_after() {
    let st = MockState::new(MockConfig {
        fail_rate: 1.0,
        fail_status: 429,
        retry_after_secs: Some(7),
        ..MockConfig::default()
    });
    let resp = post(&st, &converse_uri(MODEL), &hello()).await;
    assert_eq!(resp.headers()[header::RETRY_AFTER], "7");
    let message = aws_error(resp, StatusCode::TOO_MANY_REQUESTS, "ThrottlingException").await;
    assert!(message.contains("Too many requests"), "{message}");
    // A stream fails before it starts, with a plain HTTP answer.
    let resp = post(&st, &stream_uri(MODEL), &hello()).await;
    assert_eq!(header_str(&resp, "content-type"), "application/json");
    aws_error(resp, StatusCode::TOO_MANY_REQUESTS, "ThrottlingException").await;

    for (status, name) in [
        (400, "ValidationException"),
        (403, "AccessDeniedException"),
        (404, "ResourceNotFoundException"),
        (408, "ModelTimeoutException"),
        (418, "ValidationException"),
        (424, "ModelErrorException"),
        (500, "InternalServerException"),
        (502, "InternalServerException"),
        (503, "ServiceUnavailableException"),
    ] {
        st.set_config(MockConfig {
            fail_rate: 1.0,
            fail_status: status,
            ..MockConfig::default()
        });
        let resp = post(&st, &converse_uri(MODEL), &hello()).await;
        assert!(resp.headers().get(header::RETRY_AFTER).is_none());
        let status = StatusCode::from_u16(status).unwrap();
        aws_error(resp, status, name).await;
    }
    let titan = json!({"inputText": "x"});
    let resp = post(&st, &invoke_uri("amazon.titan-embed-text-v2:0"), &titan).await;
    aws_error(
        resp,
        StatusCode::SERVICE_UNAVAILABLE,
        "ServiceUnavailableException",
    )
    .await;
    assert_eq!(st.stats().faults, 12);
}

/// Signs a POST as an AWS SDK would (at a fixed time), returning the headers to add.
fn sigv4_headers(
    akid: &str,
    path: &str,
    body: &[u8],
    session_token: Option<&str>,
    checksum: bool,
) -> Vec<(String, String)> {
    let identity: Identity = Credentials::new(
        akid,
        MOCK_AWS_SECRET_ACCESS_KEY,
        session_token.map(str::to_owned),
        None,
        "test",
    )
    .into();
    let mut settings = SigningSettings::default();
    if checksum {
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    }
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("bedrock")
        .time(SystemTime::UNIX_EPOCH + Duration::from_secs(1_714_564_800))
        .settings(settings)
        .build()
        .unwrap()
        .into();
    let request = SignableRequest::new(
        "POST",
        format!("https://{HOST}{path}"),
        [("host", HOST), ("content-type", "application/json")].into_iter(),
        SignableBody::Bytes(body),
    )
    .unwrap();
    let (instructions, _) = sign(request, &params).unwrap().into_parts();
    instructions
        .headers()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn signed_request(path: &str, body: &[u8], headers: &[(String, String)]) -> Request<Body> {
    let mut req = Request::builder()
        .method(Method::POST)
        .uri(path)
        .header(header::HOST, HOST)
        .header(header::CONTENT_TYPE, "application/json");
    for (k, v) in headers {
        req = req.header(k.as_str(), v.as_str());
    }
    req.body(Body::from(body.to_vec())).unwrap()
}

#[tokio::test]
async fn sigv4_with_the_mock_key_is_verified() {
    let st = MockState::new(MockConfig::default());
    let path = converse_uri(MODEL);
    let body = hello().to_string().into_bytes();
    let auth = sigv4_headers(MOCK_AWS_ACCESS_KEY_ID, &path, &body, None, false);
    assert!(auth.iter().any(|(k, _)| k == "x-amz-date"));
    let resp = send(&st, signed_request(&path, &body, &auth)).await;
    assert_eq!(resp.status(), StatusCode::OK);

    // A session token and a signed payload hash, as STS credentials and some SDKs send.
    let with_token = sigv4_headers(MOCK_AWS_ACCESS_KEY_ID, &path, &body, Some("tok"), true);
    assert!(with_token.iter().any(|(k, _)| k == "x-amz-security-token"));
    assert!(with_token.iter().any(|(k, _)| k == "x-amz-content-sha256"));
    let resp = send(&st, signed_request(&path, &body, &with_token)).await;
    assert_eq!(resp.status(), StatusCode::OK);

    let tampered = hello().to_string().replace("hello", "howdy").into_bytes();
    let resp = send(&st, signed_request(&path, &tampered, &auth)).await;
    let message = aws_error(resp, StatusCode::FORBIDDEN, "InvalidSignatureException").await;
    assert!(message.contains("signature we calculated does not match"));

    let other = converse_uri("anthropic.claude-3-haiku-20240307-v1%3A1");
    let resp = send(&st, signed_request(&other, &body, &auth)).await;
    aws_error(resp, StatusCode::FORBIDDEN, "InvalidSignatureException").await;

    let resp = send(&st, signed_request(&stream_uri(MODEL), &body, &auth)).await;
    aws_error(resp, StatusCode::FORBIDDEN, "InvalidSignatureException").await;

    // The decoded path is the same, the bytes on the wire are not.
    let decoded = converse_uri("anthropic.claude-3-haiku-20240307-v1:0");
    let resp = send(&st, signed_request(&decoded, &body, &auth)).await;
    aws_error(resp, StatusCode::FORBIDDEN, "InvalidSignatureException").await;

    let titan = json!({"inputText": "a b"}).to_string().into_bytes();
    let invoke = invoke_uri("amazon.titan-embed-text-v2%3A0");
    let auth = sigv4_headers(MOCK_AWS_ACCESS_KEY_ID, &invoke, &titan, None, false);
    let resp = send(&st, signed_request(&invoke, &titan, &auth)).await;
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn missing_or_malformed_credentials_get_403() {
    let st = MockState::new(MockConfig::default());
    let path = converse_uri(MODEL);
    let body = hello().to_string();
    let request = |auth: Option<&str>, date: bool| {
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(&path)
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(auth) = auth {
            req = req.header(header::AUTHORIZATION, auth);
        }
        if date {
            req = req.header("x-amz-date", "20240501T120000Z");
        }
        req.body(Body::from(body.clone())).unwrap()
    };
    let sig = "0".repeat(64);
    let other_key = format!(
        "AWS4-HMAC-SHA256 Credential=AKIAOTHER/20240501/us-east-1/bedrock/aws4_request, \
         SignedHeaders=host;x-amz-date, Signature={sig}"
    );
    for (auth, date, needle) in [
        (None, false, "Missing Authentication Token"),
        (Some("Bearer "), false, "Missing Authentication Token"),
        (Some("Basic dXNlcjpwYXNz"), false, "scheme"),
        (Some(other_key.as_str()), false, "X-Amz-Date"),
        (
            Some("AWS4-HMAC-SHA256 Credential=AKIAOTHER/20240501/us-east-1/bedrock/aws4_request"),
            true,
            "requires 'Signature' parameter",
        ),
        (
            Some(&*other_key.replace("/bedrock/", "/s3/")),
            true,
            "correct service: 'bedrock'",
        ),
    ] {
        let resp = send(&st, request(auth, date)).await;
        let message = aws_error(resp, StatusCode::FORBIDDEN, "AccessDeniedException").await;
        assert!(message.contains(needle), "{auth:?}: {message}");
    }
    // Other key ids are not verified, so their signatures may be anything well-formed.
    let resp = send(&st, request(Some(&other_key), true)).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let stats = st.stats();
    assert_eq!((stats.requests, stats.chat, stats.faults), (7, 7, 0));
}

async fn openai_vectors(st: &MockState, input: &[&str], dims: usize) -> (Vec<Value>, Value) {
    let body = json!({"model": "mock-embed", "input": input, "dimensions": dims});
    let (_, v) = post_json(st, "/v1/embeddings", &body).await;
    let vectors = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["embedding"].clone())
        .collect();
    (vectors, v["usage"]["prompt_tokens"].clone())
}

#[tokio::test]
async fn titan_embeddings_are_the_openai_vectors() {
    let st = MockState::new(MockConfig::default());
    let uri = invoke_uri("amazon.titan-embed-text-v2%3A0");
    let body = json!({"inputText": "the quick fox", "dimensions": 256, "normalize": true});
    let resp = post(&st, &uri, &body).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let tokens = header_str(&resp, "x-amzn-bedrock-input-token-count").to_owned();
    assert!(!header_str(&resp, "x-amzn-requestid").is_empty());
    let v: Value = serde_json::from_slice(&bytes(resp).await).unwrap();
    let (openai, openai_tokens) = openai_vectors(&st, &["the quick fox"], 256).await;
    assert_eq!(v["embedding"], openai[0]);
    assert_eq!(v["embeddingsByType"]["float"], openai[0]);
    assert_eq!(v["inputTextTokenCount"], openai_tokens);
    assert_eq!(tokens, openai_tokens.to_string());

    let (_, v) = post_json(&st, &uri, &json!({"inputText": "x"})).await;
    assert_eq!(v["embedding"].as_array().unwrap().len(), 1024);
    let (_, v) = post_json(
        &st,
        &uri,
        &json!({"inputText": "x", "dimensions": 512, "embeddingTypes": ["binary"]}),
    )
    .await;
    assert_eq!(
        v["embeddingsByType"]["binary"].as_array().unwrap().len(),
        512
    );
    assert!(v["embeddingsByType"].get("float").is_none());

    let v1 = invoke_uri("amazon.titan-embed-text-v1");
    let (_, v) = post_json(&st, &v1, &json!({"inputText": "x"})).await;
    assert_eq!(v["embedding"].as_array().unwrap().len(), 1536);
    assert!(v.get("embeddingsByType").is_none());

    for (uri, body, needle) in [
        (
            &uri,
            json!({"inputText": "x", "dimensions": 100}),
            "#/dimensions",
        ),
        (&uri, json!({"texts": ["x"]}), "unknown field"),
        (&uri, json!({"inputText": ""}), "minLength"),
        (
            &v1,
            json!({"inputText": "x", "dimensions": 256}),
            "extraneous key [dimensions]",
        ),
    ] {
        let resp = post(&st, uri, &body).await;
        let message = aws_error(resp, StatusCode::BAD_REQUEST, "ValidationException").await;
        assert!(message.starts_with("Malformed input request"), "{message}");
        assert!(message.contains(needle), "{message}");
    }
    assert_eq!(st.stats().embeddings, 8 + 1);
}

#[tokio::test]
async fn cohere_embeddings_are_the_openai_vectors() {
    let st = MockState::new(MockConfig::default());
    let uri = invoke_uri("cohere.embed-english-v3");
    let texts = ["a b", "c"];
    let body = json!({"texts": texts, "input_type": "search_document", "truncate": "END"});
    let resp = post(&st, &uri, &body).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let tokens = header_str(&resp, "x-amzn-bedrock-input-token-count").to_owned();
    let v: Value = serde_json::from_slice(&bytes(resp).await).unwrap();
    let (openai, openai_tokens) = openai_vectors(&st, &texts, 1024).await;
    assert_eq!(v["response_type"], "embeddings_floats");
    assert_eq!(v["embeddings"], Value::Array(openai.clone()));
    assert_eq!(v["texts"], json!(texts));
    assert!(!v["id"].as_str().unwrap().is_empty());
    assert_eq!(tokens, openai_tokens.to_string());

    let by_type =
        json!({"texts": texts, "input_type": "search_query", "embedding_types": ["float"]});
    let (_, v) = post_json(&st, &uri, &by_type).await;
    assert_eq!(v["response_type"], "embeddings_by_type");
    assert_eq!(v["embeddings"]["float"], Value::Array(openai));

    for (body, needle) in [
        (json!({"texts": ["x"]}), "required key [input_type]"),
        (
            json!({"texts": ["x"], "input_type": "poetry"}),
            "#/input_type",
        ),
        (json!({"input_type": "clustering"}), "required key [texts]"),
        (
            json!({"texts": ["x"], "input_type": "clustering", "truncate": "MIDDLE"}),
            "#/truncate",
        ),
    ] {
        let resp = post(&st, &uri, &body).await;
        let message = aws_error(resp, StatusCode::BAD_REQUEST, "ValidationException").await;
        assert!(message.contains(needle), "{message}");
    }

    let resp = post(&st, &invoke_uri(MODEL), &body).await;
    let message = aws_error(resp, StatusCode::BAD_REQUEST, "ValidationException").await;
    assert_eq!(message, "The provided model identifier is invalid.");
    let stats = st.stats();
    // The unknown model is a request but not an embedding; OpenAI's two calls are both.
    assert_eq!((stats.requests, stats.embeddings), (8, 7));
}

#[test]
fn exception_frames_decode_as_aws_stream_exceptions() {
    let frame = converse::exception_frame("throttlingException", "Slow down").unwrap();
    let all = messages(frame);
    assert_eq!(all.len(), 1);
    let m = &all[0];
    assert_eq!(header_of(m, ":message-type"), "exception");
    assert_eq!(header_of(m, ":exception-type"), "throttlingException");
    assert_eq!(header_of(m, ":content-type"), "application/json");
    let payload: Value = serde_json::from_slice(m.payload()).unwrap();
    assert_eq!(payload, json!({"message": "Slow down"}));
}
