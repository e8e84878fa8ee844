use super::*;
use crate::config::{ProviderKind, Secret};
use crate::providers::StreamChunk;
use crate::secrets::Credential;
use futures::StreamExt;
use serde_json::{Value, json};
use switchyard_mock::{MockConfig, MockState, TestUpstream};

/// A mock upstream speaking Gemini, with `base_url` its API root.
struct Upstream {
    state: MockState,
    base_url: String,
    _running: TestUpstream,
}

async fn upstream(cfg: MockConfig) -> Upstream {
    let running = TestUpstream::start(cfg).await;
    Upstream {
        state: running.state.clone(),
        base_url: format!("{}/v1beta", running.origin),
        _running: running,
    }
}

/// A spec for this adapter; every field the adapter does not read keeps a neutral value.
fn spec(base_url: &str, api_key: Option<&str>, timeout: Duration) -> ProviderSpec {
    ProviderSpec {
        api_key: api_key.map(|k| Credential::fixed(Secret::new(k))),
        timeout,
        idle_timeout: timeout,
        first_token_timeout: timeout,
        ..ProviderSpec::new("gemini", ProviderKind::Gemini, base_url)
    }
}

fn adapter(base_url: &str, timeout: Duration) -> Gemini {
    Gemini::new(Arc::new(spec(base_url, Some("AIza-test"), timeout))).unwrap()
}

fn chat(body: Value) -> ChatRequest {
    serde_json::from_value(body).unwrap()
}

fn error_from_body(status: u16, retry_after: Option<Duration>, body: &[u8]) -> ProviderError {
    http::answer_error(status, retry_after, body, read_error)
}

fn status(e: &ProviderError) -> (u16, Option<&str>, &str, Option<Duration>) {
    match e {
        ProviderError::Status {
            status,
            error_type,
            message,
            retry_after,
            ..
        } => (*status, error_type.as_deref(), message, *retry_after),
        other => panic!("expected a status error, got {other:?}"),
    }
}

async fn collect(p: &Gemini, req: &ChatRequest, model: &str) -> Vec<StreamChunk> {
    p.chat_stream(req, model)
        .await
        .unwrap()
        .map(Result::unwrap)
        .collect()
        .await
}

#[tokio::test]
async fn chat_and_stream_against_the_mock_match_its_openai_answers() {
    let up = upstream(MockConfig {
        stream_words: 4,
        ..MockConfig::default()
    })
    .await;
    let p = adapter(&up.base_url, Duration::from_secs(5));
    let body = json!({"model": "public", "messages": [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hello there world"}]});
    let resp = p.chat(&chat(body.clone()), "gemini-mock").await.unwrap();
    let v: Value = serde_json::from_slice(&resp.body).unwrap();
    assert_eq!(v["model"], "gemini-mock");
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "hello there world hello"
    );
    assert_eq!(resp.finish_reason.as_deref(), Some("stop"));
    // The OpenAI handler's numbers for the same request: (2 + 3 words) + 3 × 2 messages.
    let usage = resp.usage.unwrap();
    assert_eq!((usage.input_tokens, usage.output_tokens), (11, 4));

    let mut streamed = body;
    streamed["stream"] = json!(true);
    let chunks = collect(&p, &chat(streamed), "gemini-mock").await;
    let text: String = chunks
        .iter()
        .map(|c| serde_json::from_slice::<Value>(&c.data).unwrap())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(text, "hello there world hello");
    let finish: Vec<&str> = chunks
        .iter()
        .filter_map(|c| c.finish_reason.as_deref())
        .collect();
    assert_eq!(finish, ["stop"]);
    let last = chunks.last().unwrap();
    assert!(last.usage_only);
    assert_eq!(last.usage, Some(usage));
    assert_eq!(up.state.stats().chat, 2);
    assert_eq!(up.state.stats().streams, 1);

    up.state.set_config(MockConfig {
        omit_usage: true,
        ..MockConfig::default()
    });
    let resp = p
        .chat(
            &chat(json!({"model": "m", "messages": [{"role": "user", "content": "x"}]})),
            "g",
        )
        .await
        .unwrap();
    assert_eq!(resp.usage, None);
}

#[tokio::test]
async fn tool_calls_survive_the_round_trip() {
    let up = upstream(MockConfig::default()).await;
    let p = adapter(&up.base_url, Duration::from_secs(5));
    let body = json!({"model": "m", "messages": [{"role": "user", "content": "weather?"}],
        "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]});
    let resp = p.chat(&chat(body.clone()), "g").await.unwrap();
    let v: Value = serde_json::from_slice(&resp.body).unwrap();
    let call = &v["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["id"], "call_0");
    assert_eq!(call["function"]["name"], "get_weather");
    assert_eq!(call["function"]["arguments"], "{}");
    assert_eq!(resp.finish_reason.as_deref(), Some("tool_calls"));

    // The call and its result go back; the mock then answers the last real user turn.
    let mut next = body.clone();
    next["messages"] = json!([
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": null, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_0", "content": "sunny"}
    ]);
    next["tool_choice"] = json!("none");
    let resp = p.chat(&chat(next), "g").await.unwrap();
    let v: Value = serde_json::from_slice(&resp.body).unwrap();
    assert!(
        v["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .starts_with("weather?")
    );

    let mut streamed = body;
    streamed["stream"] = json!(true);
    let chunks = collect(&p, &chat(streamed), "g").await;
    let finish: Vec<&str> = chunks
        .iter()
        .filter_map(|c| c.finish_reason.as_deref())
        .collect();
    assert_eq!(finish, ["tool_calls"]);
}

#[tokio::test]
async fn embeddings_against_the_mock_match_its_openai_vectors() {
    let up = upstream(MockConfig::default()).await;
    let p = adapter(&up.base_url, Duration::from_secs(5));
    let req: EmbeddingsRequest =
        serde_json::from_value(json!({"model": "public", "input": ["a b", "c"], "dimensions": 8}))
            .unwrap();
    let resp = p.embeddings(&req, "text-embedding-mock").await.unwrap();
    assert_eq!(resp.usage, None, "Gemini counts no tokens here");
    let v: Value = serde_json::from_slice(&resp.body).unwrap();
    assert_eq!(v["model"], "text-embedding-mock");
    assert_eq!(v["data"].as_array().unwrap().len(), 2);
    assert_eq!(v["data"][0]["embedding"].as_array().unwrap().len(), 8);

    // The OpenAI endpoint of the same mock makes the same vectors.
    let openai = reqwest::Client::new()
        .post(format!(
            "{}/embeddings",
            up.base_url.replace("/v1beta", "/v1")
        ))
        .json(&json!({"model": "x", "input": ["a b", "c"], "dimensions": 8}))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(v["data"][1]["embedding"], openai["data"][1]["embedding"]);
    assert_eq!(up.state.stats().embeddings, 2);
}

#[tokio::test]
async fn upstream_errors_become_typed_statuses() {
    let up = upstream(MockConfig {
        fail_rate: 1.0,
        fail_status: 429,
        retry_after_secs: Some(3),
        ..MockConfig::default()
    })
    .await;
    let p = adapter(&up.base_url, Duration::from_secs(5));
    let req = chat(json!({"model": "m", "messages": [{"role": "user", "content": "x"}]}));
    let e = p.chat(&req, "g").await.unwrap_err();
    let (code, kind, _, retry) = status(&e);
    assert_eq!(
        (code, kind, retry),
        (
            429,
            Some("RESOURCE_EXHAUSTED"),
            Some(Duration::from_secs(3))
        )
    );
    assert!(e.retryable());

    for (fail_status, kind) in [(503, "UNAVAILABLE"), (403, "PERMISSION_DENIED")] {
        up.state.set_config(MockConfig {
            fail_rate: 1.0,
            fail_status,
            ..MockConfig::default()
        });
        let e = p.chat_stream(&req, "g").await.err().unwrap();
        let (code, got_kind, message, _) = status(&e);
        assert_eq!((code, got_kind), (fail_status, Some(kind)));
        assert!(e.retryable(), "{fail_status}");
        if fail_status == 403 {
            assert_eq!(message, "the provider rejected the gateway's credentials");
        }
    }
    up.state.set_config(MockConfig {
        fail_rate: 1.0,
        fail_status: 400,
        ..MockConfig::default()
    });
    let emb: EmbeddingsRequest =
        serde_json::from_value(json!({"model": "e", "input": "x"})).unwrap();
    let e = p.embeddings(&emb, "e").await.unwrap_err();
    assert_eq!(status(&e).1, Some("INVALID_ARGUMENT"));
    assert!(!e.retryable());
}

#[tokio::test]
async fn stream_faults_surface_as_cut_malformed_and_timeouts() {
    // A chunk delay lets the headers leave before the cut: with none, hyper may still hold
    // them in its write buffer when the body errors, and the client sees no answer at all.
    let up = upstream(MockConfig {
        cut_rate: 1.0,
        chunk_delay_ms: 5,
        ..MockConfig::default()
    })
    .await;
    let p = adapter(&up.base_url, Duration::from_millis(300));
    let req =
        chat(json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "a"}]}));
    let out: Vec<_> = p.chat_stream(&req, "g").await.unwrap().collect().await;
    assert!(
        matches!(out.last(), Some(Err(ProviderError::StreamCut(_)))),
        "{out:?}"
    );

    up.state.set_config(MockConfig {
        malformed_rate: 1.0,
        chunk_delay_ms: 5,
        ..MockConfig::default()
    });
    let out: Vec<_> = p.chat_stream(&req, "g").await.unwrap().collect().await;
    assert!(
        matches!(out.last(), Some(Err(ProviderError::MalformedChunk(_)))),
        "{out:?}"
    );

    up.state.set_config(MockConfig {
        chunk_delay_ms: 2_000,
        ..MockConfig::default()
    });
    let out: Vec<_> = p.chat_stream(&req, "g").await.unwrap().collect().await;
    assert!(
        matches!(
            out.last(),
            Some(Err(ProviderError::Timeout {
                phase: "stream_idle"
            }))
        ),
        "{out:?}"
    );

    up.state.set_config(MockConfig {
        latency_ms: 2_000,
        ..MockConfig::default()
    });
    let plain = chat(json!({"model": "m", "messages": [{"role": "user", "content": "a"}]}));
    let e = p.chat(&plain, "g").await.unwrap_err();
    assert!(
        matches!(e, ProviderError::Timeout { phase: "response" }),
        "{e:?}"
    );
}

#[tokio::test]
async fn conversion_errors_are_refused_before_anything_is_sent() {
    let up = upstream(MockConfig::default()).await;
    let p = adapter(&up.base_url, Duration::from_secs(5));
    let req = chat(
        json!({"model": "m", "messages": [{"role": "tool", "tool_call_id": "nope", "content": "x"}]}),
    );
    assert!(matches!(
        p.chat(&req, "g").await,
        Err(ProviderError::Invalid(_))
    ));
    let tokens: EmbeddingsRequest =
        serde_json::from_value(json!({"model": "e", "input": [1, 2]})).unwrap();
    assert!(matches!(
        p.embeddings(&tokens, "e").await,
        Err(ProviderError::Unsupported(_))
    ));
    let ok = chat(json!({"model": "m", "messages": [{"role": "user", "content": "x"}]}));
    assert!(matches!(
        p.chat(&ok, "").await,
        Err(ProviderError::Invalid(_))
    ));
    assert_eq!(up.state.stats().requests, 0);
}

/// What goes on the wire, read off a raw socket: path, headers, body; answered with the
/// documented response fixture.
#[tokio::test]
async fn sends_the_request_google_documents() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base_url = format!("http://{}/v1beta/", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        let (mut conn, _) = listener.accept().await.unwrap();
        let mut raw = Vec::new();
        let mut buf = [0u8; 4096];
        // Read until the whole body announced by content-length is in.
        let request = loop {
            let n = conn.read(&mut buf).await.unwrap();
            raw.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&raw).into_owned();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let len: usize = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length: ")
                            .map(str::to_owned)
                    })
                    .unwrap()
                    .parse()
                    .unwrap();
                if body.len() >= len {
                    break (head.to_owned(), body.to_owned());
                }
            }
        };
        let answer = include_str!("../../../tests/fixtures/gemini/generate_content_response.json");
        let reply = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
            answer.len()
        );
        conn.write_all(reply.as_bytes()).await.unwrap();
        request
    });
    let p = adapter(&base_url, Duration::from_secs(5));
    let req = chat(json!({"model": "public", "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Explain how AI works in a few words"}]}));
    let resp = p.chat(&req, "gemini-2.5-flash").await.unwrap();
    let (head, body) = server.await.unwrap();
    let head = head.to_ascii_lowercase();
    assert!(
        head.starts_with("post /v1beta/models/gemini-2.5-flash:generatecontent http/1.1"),
        "{head}"
    );
    for header in [
        "x-goog-api-key: aiza-test",
        "content-type: application/json",
    ] {
        assert!(head.contains(header), "{header} missing from {head}");
    }
    assert!(!head.contains("authorization"), "{head}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        body,
        json!({"contents": [{"role": "user", "parts": [{"text": "Explain how AI works in a few words"}]}],
               "systemInstruction": {"parts": [{"text": "Be brief."}]}})
    );
    assert_eq!(resp.usage.unwrap().cached_input_tokens, 2048);
    assert_eq!(resp.finish_reason.as_deref(), Some("stop"));
}

#[test]
fn urls_put_the_model_and_method_in_the_path() {
    let p = adapter(
        "https://generativelanguage.googleapis.com/v1beta",
        Duration::from_secs(1),
    );
    let url = |model: &str, method: &str| p.url(model, method).unwrap().to_string();
    assert_eq!(
        url("gemini-2.5-flash", "generateContent"),
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent"
    );
    assert_eq!(
        url("models/gemini-2.5-flash", "batchEmbedContents"),
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:batchEmbedContents"
    );
    assert_eq!(
        url("tunedModels/my-model", "generateContent"),
        "https://generativelanguage.googleapis.com/v1beta/tunedModels/my-model:generateContent"
    );
    assert_eq!(
        url("a?b#c", "generateContent"),
        "https://generativelanguage.googleapis.com/v1beta/models/a%3Fb%23c:generateContent",
        "a model name cannot add a query or a fragment"
    );
    assert!(matches!(
        p.url("", "generateContent"),
        Err(ProviderError::Invalid(_))
    ));
}

#[test]
fn error_bodies_keep_status_and_message_but_never_auth_text() {
    let body = include_bytes!("../../../tests/fixtures/gemini/error_quota.json");
    let e = error_from_body(429, None, body);
    let (code, kind, message, retry) = status(&e);
    assert_eq!(
        (code, kind, retry),
        (
            429,
            Some("RESOURCE_EXHAUSTED"),
            Some(Duration::from_secs(22))
        ),
        "RetryInfo stands in for the missing Retry-After header"
    );
    assert!(
        message.starts_with("You exceeded your current quota"),
        "{message}"
    );
    assert_eq!(e.label(), "rate_limited");
    let e = error_from_body(429, Some(Duration::from_secs(5)), body);
    assert_eq!(
        status(&e).3,
        Some(Duration::from_secs(5)),
        "the header wins"
    );

    // Google's answer to a bad key: 400, with the key echoed in a debug detail.
    let bad_key = br#"{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID","domain":"googleapis.com","metadata":{"service":"generativelanguage.googleapis.com"}},{"@type":"type.googleapis.com/google.rpc.DebugInfo","detail":"Invalid API key: AIza-secret"}]}}"#;
    let e = error_from_body(400, None, bad_key);
    let (code, kind, message, _) = status(&e);
    assert_eq!((code, kind), (401, Some("UNAUTHENTICATED")));
    assert!(!message.contains("AIza"), "{message}");
    assert_eq!(e.label(), "upstream_auth");
    assert!(e.retryable());

    let denied = br#"[{"error":{"code":403,"message":"Method doesn't allow unregistered callers","status":"PERMISSION_DENIED"}}]"#;
    let e = error_from_body(403, None, denied);
    assert_eq!(
        status(&e).1,
        Some("PERMISSION_DENIED"),
        "the array form is read too"
    );
    assert_eq!(
        status(&e).2,
        "the provider rejected the gateway's credentials"
    );

    let invalid = br#"{"error":{"code":400,"message":"Please use a valid role: user, model.","status":"INVALID_ARGUMENT"}}"#;
    let e = error_from_body(400, None, invalid);
    assert_eq!(status(&e).2, "Please use a valid role: user, model.");
    assert!(!e.retryable());
    let e = error_from_body(502, None, b"<html>bad gateway</html>");
    assert_eq!(status(&e).2, "<html>bad gateway</html>");
    assert_eq!(proto_duration("0.5s"), Some(Duration::from_millis(500)));
    assert_eq!(proto_duration("-1s"), None);
    assert_eq!(proto_duration("22"), None);
}

#[test]
fn a_key_that_is_not_a_header_value_or_a_bad_base_url_fails_the_build() {
    let url = "https://generativelanguage.googleapis.com/v1beta";
    let bad = spec(url, Some("bad\nkey"), Duration::from_secs(1));
    assert!(matches!(
        crate::providers::build(Arc::new(bad)),
        Err(BuildError::ApiKey(_))
    ));
    let no_base = spec("mailto:someone@example.com", None, Duration::from_secs(1));
    assert!(matches!(
        Gemini::new(Arc::new(no_base)),
        Err(BuildError::Url(_))
    ));
    let ok = Gemini::new(Arc::new(spec(url, None, Duration::from_secs(1)))).unwrap();
    assert_eq!(ok.name(), "gemini");
    let built = crate::providers::build(Arc::new(spec(url, None, Duration::from_secs(1))));
    assert_eq!(
        built.map(|p| p.name().to_owned()).ok().as_deref(),
        Some("gemini")
    );
}
