//! Tests of the Anthropic adapter: conversions against its documented bodies and the mock.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_methods // the test owns its mock server task
)]

use super::*;
use crate::config::{ProviderKind, Secret};
use crate::providers::StreamChunk;
use crate::secrets::Credential;
use futures::StreamExt;
use serde_json::{Value, json};
use std::time::Duration;
use switchyard_mock::{MockConfig, MockState, TestUpstream};

/// A mock upstream speaking the Messages API, with `base_url` its API root.
struct Upstream {
    state: MockState,
    base_url: String,
    _running: TestUpstream,
}

async fn upstream(cfg: MockConfig) -> Upstream {
    let running = TestUpstream::start(cfg).await;
    Upstream {
        state: running.state.clone(),
        base_url: format!("{}/v1", running.origin),
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
        // The kind only picks the adapter in `providers::build`; `new` ignores it.
        ..ProviderSpec::new("claude", ProviderKind::Openai, base_url)
    }
}

fn adapter(base_url: &str, timeout: Duration) -> Anthropic {
    Anthropic::new(Arc::new(spec(base_url, Some("sk-ant-test"), timeout))).unwrap()
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
    let resp = p.chat(&chat(body.clone()), "claude-mock").await.unwrap();
    let v: Value = serde_json::from_slice(&resp.body).unwrap();
    assert_eq!(v["model"], "claude-mock");
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
    let chunks: Vec<StreamChunk> = p
        .chat_stream(&chat(streamed), "claude-mock")
        .await
        .unwrap()
        .map(Result::unwrap)
        .collect()
        .await;
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
    let last = chunks.last().unwrap();
    assert!(last.usage_only);
    assert_eq!(last.usage, Some(usage));
    assert_eq!(up.state.stats().chat, 2);
    assert_eq!(up.state.stats().streams, 1);
}

#[tokio::test]
async fn tool_calls_survive_the_round_trip() {
    let up = upstream(MockConfig::default()).await;
    let p = adapter(&up.base_url, Duration::from_secs(5));
    let body = json!({"model": "m", "messages": [{"role": "user", "content": "weather?"}],
        "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]});
    let resp = p.chat(&chat(body.clone()), "c").await.unwrap();
    let v: Value = serde_json::from_slice(&resp.body).unwrap();
    let call = &v["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "get_weather");
    assert_eq!(call["function"]["arguments"], "{}");
    assert_eq!(resp.finish_reason.as_deref(), Some("tool_calls"));

    let mut streamed = body;
    streamed["stream"] = json!(true);
    let chunks: Vec<StreamChunk> = p
        .chat_stream(&chat(streamed), "c")
        .await
        .unwrap()
        .map(Result::unwrap)
        .collect()
        .await;
    let finish: Vec<&str> = chunks
        .iter()
        .filter_map(|c| c.finish_reason.as_deref())
        .collect();
    assert_eq!(finish, ["tool_calls"]);
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
    let e = p.chat(&req, "c").await.unwrap_err();
    let (code, kind, _, retry) = status(&e);
    assert_eq!(
        (code, kind, retry),
        (429, Some("rate_limit_error"), Some(Duration::from_secs(3)))
    );
    assert!(e.retryable());

    for (fail_status, kind) in [(529, "overloaded_error"), (401, "authentication_error")] {
        up.state.set_config(MockConfig {
            fail_rate: 1.0,
            fail_status,
            ..MockConfig::default()
        });
        let e = p.chat_stream(&req, "c").await.err().unwrap();
        let (code, got_kind, message, _) = status(&e);
        assert_eq!((code, got_kind), (fail_status, Some(kind)));
        assert!(e.retryable(), "{fail_status}");
        if fail_status == 401 {
            assert_eq!(message, "the provider rejected the gateway's credentials");
        }
    }
    let e = p
        .embeddings(
            &serde_json::from_value(json!({"model": "e", "input": "x"})).unwrap(),
            "e",
        )
        .await
        .unwrap_err();
    assert!(matches!(e, ProviderError::Unsupported("embeddings")));
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
    let out: Vec<_> = p.chat_stream(&req, "c").await.unwrap().collect().await;
    assert!(
        matches!(out.last(), Some(Err(ProviderError::StreamCut(_)))),
        "{out:?}"
    );

    up.state.set_config(MockConfig {
        malformed_rate: 1.0,
        chunk_delay_ms: 5,
        ..MockConfig::default()
    });
    let out: Vec<_> = p.chat_stream(&req, "c").await.unwrap().collect().await;
    assert!(
        matches!(out.last(), Some(Err(ProviderError::MalformedChunk(_)))),
        "{out:?}"
    );

    up.state.set_config(MockConfig {
        chunk_delay_ms: 2_000,
        ..MockConfig::default()
    });
    let out: Vec<_> = p.chat_stream(&req, "c").await.unwrap().collect().await;
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
    let e = p.chat(&plain, "c").await.unwrap_err();
    assert!(
        matches!(e, ProviderError::Timeout { phase: "response" }),
        "{e:?}"
    );
}

#[tokio::test]
async fn conversion_errors_are_refused_before_anything_is_sent() {
    let up = upstream(MockConfig::default()).await;
    let p = adapter(&up.base_url, Duration::from_secs(5));
    let req = chat(json!({"model": "m", "n": 2, "messages": []}));
    assert!(matches!(
        p.chat(&req, "c").await,
        Err(ProviderError::Unsupported("n > 1"))
    ));
    assert_eq!(up.state.stats().requests, 0);
}

/// What goes on the wire, read off a raw socket: path, headers, body; answered with the
/// documented message fixture.
#[tokio::test]
async fn sends_the_messages_request_anthropic_documents() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base_url = format!("http://{}/v1", listener.local_addr().unwrap());
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
        let answer = include_str!("../../../tests/fixtures/anthropic/messages_response.json");
        let reply = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
            answer.len()
        );
        conn.write_all(reply.as_bytes()).await.unwrap();
        request
    });
    let p = adapter(&base_url, Duration::from_secs(5));
    let req = chat(json!({"model": "public", "messages": [{"role": "user", "content": "Hello"}]}));
    let resp = p.chat(&req, "claude-opus-4-6").await.unwrap();
    let (head, body) = server.await.unwrap();
    let head = head.to_ascii_lowercase();
    assert!(head.starts_with("post /v1/messages http/1.1"), "{head}");
    for header in [
        "x-api-key: sk-ant-test",
        "anthropic-version: 2023-06-01",
        "content-type: application/json",
    ] {
        assert!(head.contains(header), "{header} missing from {head}");
    }
    assert!(!head.contains("authorization"), "{head}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        body,
        json!({"model": "claude-opus-4-6", "max_tokens": 4096,
               "messages": [{"role": "user", "content": [{"type": "text", "text": "Hello"}]}]})
    );
    assert_eq!(resp.usage.unwrap().cached_input_tokens, 2051);
    assert_eq!(resp.finish_reason.as_deref(), Some("stop"));
}

#[test]
fn error_bodies_keep_type_and_message_but_never_auth_text() {
    let body = include_bytes!("../../../tests/fixtures/anthropic/error_rate_limit.json");
    let e = error_from_body(429, Some(Duration::from_secs(20)), body);
    let (code, kind, message, retry) = status(&e);
    assert_eq!(
        (code, kind, retry),
        (429, Some("rate_limit_error"), Some(Duration::from_secs(20)))
    );
    assert!(message.starts_with("Number of request tokens"), "{message}");
    assert_eq!(e.label(), "rate_limited");

    let auth = br#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key sk-ant-123"}}"#;
    let e = error_from_body(401, None, auth);
    let (_, kind, message, _) = status(&e);
    assert_eq!(kind, Some("authentication_error"));
    assert!(!message.contains("sk-ant"), "{message}");

    let overloaded =
        br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
    let e = error_from_body(529, None, overloaded);
    assert!(e.retryable());
    assert_eq!(e.label(), "upstream_5xx");
    let e = error_from_body(502, None, b"<html>bad gateway</html>");
    assert_eq!(status(&e).2, "<html>bad gateway</html>");
}

#[test]
fn a_key_that_is_not_a_header_value_fails_the_build() {
    let url = "https://api.anthropic.com/v1";
    let bad = spec(url, Some("bad\nkey"), Duration::from_secs(1));
    assert!(matches!(
        crate::providers::build(Arc::new(bad)),
        Err(crate::providers::BuildError::ApiKey(_))
    ));
    let ok = Anthropic::new(Arc::new(spec(url, None, Duration::from_secs(1)))).unwrap();
    assert_eq!(
        ok.messages_url.as_str(),
        "https://api.anthropic.com/v1/messages"
    );
    assert_eq!(ok.name(), "claude");
}
