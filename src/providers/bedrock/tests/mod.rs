//! Tests of the Bedrock adapter over HTTP, against a local axum server that records what
//! arrives (raw path, headers, body) and answers with AWS's documented bodies. SigV4 is checked
//! in `sigv4.rs`, embeddings in `embed.rs`; one test runs against the mock upstream.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_methods // the tests own their server tasks
)]

use super::*;
use crate::config::{AwsCredentials, ProviderKind, Secret};
use crate::providers::StreamChunk;
use crate::secrets::Credential;
use axum::body::Body;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures::FutureExt;
use futures::future::BoxFuture;
use serde_json::{Value, json};
use std::sync::Mutex;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

mod embed;
mod sigv4;

const HAIKU: &str = "anthropic.claude-3-5-haiku-20241022-v1:0";
const PROFILE_ARN: &str = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-5-haiku-20241022-v1:0";
const AKID: &str = "AKIAMOCKSWITCHYARD01";
const SECRET: &str = "mock/secret/key/for/tests/only/0123456789";

/// One request as the server saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    /// As on the wire: still percent-encoded.
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

type Reply = Arc<dyn Fn(Seen) -> BoxFuture<'static, Response> + Send + Sync>;

#[derive(Clone)]
struct Srv {
    seen: Arc<Mutex<Vec<Seen>>>,
    reply: Reply,
}

/// A local upstream answering every request with `reply`, stopped on drop.
struct Server {
    base_url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    shutdown: CancellationToken,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl Server {
    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

async fn record(
    axum::extract::State(srv): axum::extract::State<Srv>,
    req: axum::extract::Request,
) -> Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    let seen = Seen {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        headers: parts
            .headers
            .iter()
            .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap().to_owned()))
            .collect(),
        body: body.to_vec(),
    };
    srv.seen.lock().unwrap().push(seen.clone());
    (srv.reply)(seen).await
}

async fn server<F, Fut>(reply: F) -> Server
where
    F: Fn(Seen) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Response> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base_url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let srv = Srv {
        seen: seen.clone(),
        reply: Arc::new(move |s| reply(s).boxed()),
    };
    let app = axum::Router::new().fallback(record).with_state(srv);
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await
    });
    Server {
        base_url,
        seen,
        shutdown,
    }
}

fn json_reply(status: u16, headers: &[(&'static str, &str)], body: &str) -> Response {
    let mut resp = (
        StatusCode::from_u16(status).unwrap(),
        [("content-type", "application/json")],
        body.to_owned(),
    )
        .into_response();
    for (name, value) in headers {
        resp.headers_mut().insert(*name, value.parse().unwrap());
    }
    resp
}

fn stream_reply(frames: Vec<Vec<u8>>, then_hang: bool) -> Response {
    let body = futures::stream::iter(
        frames
            .into_iter()
            .map(|f| Ok::<_, std::io::Error>(Bytes::from(f))),
    );
    let body = if then_hang {
        Body::from_stream(body.chain(futures::stream::pending()))
    } else {
        Body::from_stream(body)
    };
    let mut resp = Response::new(body);
    resp.headers_mut().insert(
        "content-type",
        "application/vnd.amazon.eventstream".parse().unwrap(),
    );
    resp.headers_mut()
        .insert("x-amzn-requestid", "stream-req-7".parse().unwrap());
    resp
}

enum Auth<'a> {
    Key(&'a str),
    Aws(Option<&'a str>),
}

fn spec(base_url: &str, auth: Auth<'_>, timeout: Duration) -> ProviderSpec {
    let (api_key, aws) = match auth {
        Auth::Key(key) => (Some(Credential::fixed(Secret::new(key))), None),
        Auth::Aws(token) => (None, Some(AwsCredentials::fixed(AKID, SECRET, token))),
    };
    ProviderSpec {
        api_key,
        region: "us-east-1".into(),
        aws,
        timeout,
        first_token_timeout: timeout,
        idle_timeout: timeout,
        ..ProviderSpec::new("bedrock", ProviderKind::Bedrock, base_url)
    }
}

fn adapter(base_url: &str, auth: Auth<'_>) -> Bedrock {
    Bedrock::new(Arc::new(spec(base_url, auth, Duration::from_secs(5)))).unwrap()
}

fn chat(body: Value) -> ChatRequest {
    serde_json::from_value(body).unwrap()
}

fn hi() -> ChatRequest {
    chat(json!({"model": "public", "messages": [{"role": "user", "content": "hi"}]}))
}

fn status(e: &ProviderError) -> (u16, Option<&str>, &str) {
    match e {
        ProviderError::Status {
            status,
            error_type,
            message,
            ..
        } => (*status, error_type.as_deref(), message),
        other => panic!("expected a status error, got {other:?}"),
    }
}

const RESPONSE: &str = include_str!("../../../../tests/fixtures/bedrock/converse_response.json");

#[tokio::test]
async fn sends_the_converse_request_aws_documents_with_a_bearer_key() {
    let up = server(|_| async {
        json_reply(
            200,
            &[("x-amzn-requestid", "f3a6c6d1-0b5e-4c6c-9c3d-0d6f3b0a9e21")],
            RESPONSE,
        )
    })
    .await;
    let p = adapter(&up.base_url, Auth::Key("ABSKbedrock-api-key"));
    let req = chat(json!({"model": "public", "max_tokens": 300, "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Create a list of 3 pop songs."}]}));
    let resp = p.chat(&req, HAIKU).await.unwrap();
    let seen = &up.seen()[0];
    assert_eq!(seen.method, "POST");
    assert_eq!(
        seen.path,
        "/model/anthropic.claude-3-5-haiku-20241022-v1%3A0/converse"
    );
    assert_eq!(
        seen.header("authorization"),
        Some("Bearer ABSKbedrock-api-key")
    );
    assert_eq!(seen.header("content-type"), Some("application/json"));
    assert!(
        seen.header("x-amz-date").is_none(),
        "a bearer key is not signed"
    );
    assert_eq!(
        seen.json(),
        json!({"messages": [{"role": "user", "content": [{"text": "Create a list of 3 pop songs."}]}],
               "system": [{"text": "Be brief."}],
               "inferenceConfig": {"maxTokens": 300}})
    );
    let v: Value = serde_json::from_slice(&resp.body).unwrap();
    assert_eq!(v["id"], "chatcmpl-f3a6c6d1-0b5e-4c6c-9c3d-0d6f3b0a9e21");
    assert_eq!(v["model"], HAIKU);
    assert_eq!(resp.finish_reason.as_deref(), Some("stop"));
    let usage = resp.usage.unwrap();
    assert_eq!(
        (usage.input_tokens, usage.cached_input_tokens),
        (3253, 2048)
    );
}

#[tokio::test]
async fn streams_translate_the_event_stream_body() {
    let tool = include_str!("../../../../tests/fixtures/bedrock/converse_stream_tool_use.jsonl");
    let body = stream::tests::transcript(tool);
    let up = server(move |_| {
        let frames: Vec<Vec<u8>> = body.chunks(37).map(<[u8]>::to_vec).collect();
        async move { stream_reply(frames, false) }
    })
    .await;
    let p = adapter(&up.base_url, Auth::Aws(None));
    let req = chat(
        json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "top song on WZPZ?"}],
        "tools": [{"type": "function", "function": {"name": "top_song"}}]}),
    );
    let chunks: Vec<StreamChunk> = p
        .chat_stream(&req, HAIKU)
        .await
        .unwrap()
        .map(Result::unwrap)
        .collect()
        .await;
    assert_eq!(
        up.seen()[0].path,
        "/model/anthropic.claude-3-5-haiku-20241022-v1%3A0/converse-stream"
    );
    let vs: Vec<Value> = chunks
        .iter()
        .map(|c| serde_json::from_slice(&c.data).unwrap())
        .collect();
    assert!(
        vs.iter()
            .all(|v| v["id"] == "chatcmpl-stream-req-7" && v["model"] == HAIKU)
    );
    let finish: Vec<&str> = chunks
        .iter()
        .filter_map(|c| c.finish_reason.as_deref())
        .collect();
    assert_eq!(finish, ["tool_calls"]);
    let last = chunks.last().unwrap();
    assert!(last.usage_only);
    assert_eq!(last.usage.unwrap().output_tokens, 95);
}

#[tokio::test]
async fn upstream_errors_become_typed_statuses() {
    let up = server(|seen| async move {
        match seen.json()["messages"][0]["content"][0]["text"].as_str().unwrap() {
            "throttle" => json_reply(
                429,
                &[("x-amzn-errortype", "ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/"), ("retry-after", "2")],
                include_str!("../../../../tests/fixtures/bedrock/error_throttling.json"),
            ),
            "invalid" => json_reply(
                400,
                &[("x-amzn-errortype", "ValidationException:http://internal.amazon.com/coral/com.amazon.bedrock/")],
                include_str!("../../../../tests/fixtures/bedrock/error_validation.json"),
            ),
            "denied" => json_reply(
                403,
                &[("x-amzn-errortype", "UnrecognizedClientException:http://internal.amazon.com/coral/com.amazon.coral.service/")],
                r#"{"Message":"The security token included in the request is invalid: FQoGZXIvYXdzSECRET"}"#,
            ),
            _ => json_reply(503, &[("x-amzn-errortype", "ServiceUnavailableException")], "<html>unavailable</html>"),
        }
    })
    .await;
    let p = adapter(&up.base_url, Auth::Key("k"));
    let ask =
        |text: &str| chat(json!({"model": "m", "messages": [{"role": "user", "content": text}]}));

    let e = p.chat(&ask("throttle"), HAIKU).await.unwrap_err();
    assert_eq!(
        status(&e),
        (
            429,
            Some("ThrottlingException"),
            "Too many requests, please wait before trying again."
        )
    );
    assert!(
        matches!(e, ProviderError::Status { retry_after: Some(d), .. } if d == Duration::from_secs(2))
    );
    assert!(e.retryable());
    assert_eq!(e.label(), "rate_limited");

    let e = p.chat_stream(&ask("invalid"), HAIKU).await.err().unwrap();
    let (code, kind, message) = status(&e);
    assert_eq!((code, kind), (400, Some("ValidationException")));
    assert!(message.contains("roles must alternate"), "{message}");
    assert!(!e.retryable());

    let e = p.chat(&ask("denied"), HAIKU).await.unwrap_err();
    let (code, kind, message) = status(&e);
    assert_eq!((code, kind), (403, Some("UnrecognizedClientException")));
    assert!(
        !message.contains("SECRET") && !format!("{e:?}").contains("SECRET"),
        "{message}"
    );

    let e = p.chat(&ask("down"), HAIKU).await.unwrap_err();
    assert_eq!(
        status(&e),
        (
            503,
            Some("ServiceUnavailableException"),
            "<html>unavailable</html>"
        )
    );
    assert_eq!(
        error_type("aws.protocoltests#ThrottlingException"),
        Some("ThrottlingException".into())
    );
    assert_eq!(error_type(""), None);
}

#[tokio::test]
async fn slow_answers_time_out_by_phase() {
    let up = server(|seen| async move {
        if seen.path.ends_with("/converse-stream") {
            if seen.json()["messages"][0]["content"][0]["text"] == "hang" {
                tokio::time::sleep(Duration::from_secs(3)).await;
            }
            let start = stream::tests::event("messageStart", &json!({"role": "assistant"}));
            return stream_reply(vec![start], true);
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
        json_reply(200, &[], RESPONSE)
    })
    .await;
    let p = Bedrock::new(Arc::new(spec(
        &up.base_url,
        Auth::Key("k"),
        Duration::from_millis(200),
    )))
    .unwrap();
    let e = p.chat(&hi(), HAIKU).await.unwrap_err();
    assert!(
        matches!(e, ProviderError::Timeout { phase: "response" }),
        "{e:?}"
    );
    let out: Vec<_> = p.chat_stream(&hi(), HAIKU).await.unwrap().collect().await;
    assert!(out[0].is_ok(), "{out:?}");
    assert!(
        matches!(
            out.last(),
            Some(Err(ProviderError::Timeout {
                phase: "stream_idle"
            }))
        ),
        "{out:?}"
    );
    let hang = chat(json!({"model": "m", "messages": [{"role": "user", "content": "hang"}]}));
    let e = p.chat_stream(&hang, HAIKU).await.err().unwrap();
    assert!(
        matches!(
            e,
            ProviderError::Timeout {
                phase: "first_byte"
            }
        ),
        "{e:?}"
    );
}

#[tokio::test]
async fn requests_bedrock_cannot_take_are_refused_before_anything_is_sent() {
    let up = server(|_| async { json_reply(200, &[], RESPONSE) }).await;
    let p = adapter(&up.base_url, Auth::Key("k"));
    let url_image = chat(
        json!({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]}]}),
    );
    let two = chat(json!({"model": "m", "n": 2, "messages": [{"role": "user", "content": "x"}]}));
    for req in [&url_image, &two] {
        assert!(matches!(
            p.chat(req, HAIKU).await,
            Err(ProviderError::Invalid(_))
        ));
        assert!(matches!(
            p.chat_stream(req, HAIKU).await,
            Err(ProviderError::Invalid(_))
        ));
    }
    assert!(matches!(
        p.chat(&hi(), "").await,
        Err(ProviderError::Invalid(_))
    ));
    let emb = |input: Value| -> EmbeddingsRequest {
        serde_json::from_value(json!({"model": "e", "input": input})).unwrap()
    };
    let e = p.embeddings(&emb(json!("x")), HAIKU).await.unwrap_err();
    assert!(matches!(e, ProviderError::Invalid(_)), "{e:?}");
    let e = p
        .embeddings(&emb(json!([1, 2])), "amazon.titan-embed-text-v2:0")
        .await
        .unwrap_err();
    assert!(matches!(e, ProviderError::Invalid(_)), "{e:?}");
    assert!(up.seen().is_empty());
}

#[test]
fn urls_put_the_model_id_in_one_encoded_segment() {
    let p = adapter(
        "https://bedrock-runtime.us-west-2.amazonaws.com",
        Auth::Key("k"),
    );
    let url = |model: &str, op: &str| p.url(model, op).unwrap().to_string();
    assert_eq!(
        url(HAIKU, "converse"),
        "https://bedrock-runtime.us-west-2.amazonaws.com/model/anthropic.claude-3-5-haiku-20241022-v1%3A0/converse"
    );
    assert_eq!(
        url(
            "arn:aws:bedrock:us-west-2:123456789012:provisioned-model/abc123",
            "converse-stream"
        ),
        "https://bedrock-runtime.us-west-2.amazonaws.com/model/arn%3Aaws%3Abedrock%3Aus-west-2%3A123456789012%3Aprovisioned-model%2Fabc123/converse-stream"
    );
    assert_eq!(
        url("a?b#c/../d e%", "invoke"),
        "https://bedrock-runtime.us-west-2.amazonaws.com/model/a%3Fb%23c%2F..%2Fd%20e%25/invoke",
        "a model id cannot add a query, a fragment or a path"
    );
    for bad in ["", ".", ".."] {
        assert!(matches!(
            p.url(bad, "converse"),
            Err(ProviderError::Invalid(_))
        ));
    }
    let prefixed = adapter("http://127.0.0.1:9/proxy/bedrock/", Auth::Key("k"));
    assert_eq!(
        prefixed.url("m", "converse").unwrap().as_str(),
        "http://127.0.0.1:9/proxy/bedrock/model/m/converse"
    );
}

#[test]
fn credentials_that_are_not_header_values_or_a_bad_base_url_fail_the_build() {
    let url = "https://bedrock-runtime.us-east-1.amazonaws.com";
    let bad_key = spec(url, Auth::Key("bad\nkey"), Duration::from_secs(1));
    assert!(matches!(
        Bedrock::new(Arc::new(bad_key)),
        Err(BuildError::ApiKey(_))
    ));
    let bad_token = spec(url, Auth::Aws(Some("tok\nen")), Duration::from_secs(1));
    assert!(matches!(
        Bedrock::new(Arc::new(bad_token)),
        Err(BuildError::ApiKey(_))
    ));
    for base in [
        "mailto:someone@example.com",
        "https://x.example.com/?a=b",
        "not a url",
    ] {
        let s = spec(base, Auth::Key("k"), Duration::from_secs(1));
        assert!(
            matches!(Bedrock::new(Arc::new(s)), Err(BuildError::Url(_))),
            "{base}"
        );
    }
    let built =
        crate::providers::build(Arc::new(spec(url, Auth::Aws(None), Duration::from_secs(1))));
    assert_eq!(
        built.map(|p| p.name().to_owned()).ok().as_deref(),
        Some("bedrock")
    );
}

/// End to end against the mock upstream, which verifies SigV4 with the same well-known key.
#[tokio::test]
async fn chat_stream_and_embeddings_against_the_mock() {
    use switchyard_mock::{MOCK_AWS_ACCESS_KEY_ID, MOCK_AWS_SECRET_ACCESS_KEY, MockConfig};
    assert_eq!(
        (MOCK_AWS_ACCESS_KEY_ID, MOCK_AWS_SECRET_ACCESS_KEY),
        (AKID, SECRET)
    );
    let running = switchyard_mock::TestUpstream::start(MockConfig {
        stream_words: 4,
        ..MockConfig::default()
    })
    .await;
    let base_url = running.origin.clone();
    let p = adapter(&base_url, Auth::Aws(Some("session-token")));
    let body = json!({"model": "public", "messages": [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hello there world"}]});
    let resp = p.chat(&chat(body.clone()), HAIKU).await.unwrap();
    let v: Value = serde_json::from_slice(&resp.body).unwrap();
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "hello there world hello"
    );
    assert_eq!(resp.finish_reason.as_deref(), Some("stop"));
    let mut streamed = body;
    streamed["stream"] = json!(true);
    let chunks: Vec<StreamChunk> = p
        .chat_stream(&chat(streamed), HAIKU)
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
    assert!(chunks.last().unwrap().usage_only);
    let req: EmbeddingsRequest =
        serde_json::from_value(json!({"model": "e", "input": ["a b", "c"]})).unwrap();
    for model in ["amazon.titan-embed-text-v2:0", "cohere.embed-english-v3"] {
        let resp = p.embeddings(&req, model).await.unwrap();
        let v: Value = serde_json::from_slice(&resp.body).unwrap();
        assert_eq!(v["data"].as_array().unwrap().len(), 2, "{model}");
    }
}
