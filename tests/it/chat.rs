//! Chat through the gateway, plain and streamed, and the events each request leaves behind.

use crate::harness::*;
use futures::StreamExt;
use switchyard::events::{Endpoint, Event};
use switchyard_mock::MockConfig;

async fn setup() -> (Nats, Mock, tempfile::TempDir, Gateway) {
    let nats = Nats::start();
    let mock = Mock::start(MockConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(TestConfig::new(&nats, &mock, dir.path()).build()).await;
    wait_drained(&gw).await;
    (nats, mock, dir, gw)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_chat_passes_the_request_through_and_publishes_three_events() {
    let (nats, mock, _dir, gw) = setup().await;
    let body = serde_json::json!({
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": [
                {"type": "text", "text": "describe this picture please"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}}
            ]}
        ],
        "temperature": 0.2, "top_p": 0.9, "seed": 42, "n": 1, "stop": ["\n\n"],
        "max_completion_tokens": 64, "user": "end-user-1", "metadata": {"ticket": "T-1"},
        "response_format": {"type": "text"}, "logprobs": false,
        "x_vendor_extension": {"keep": true}
    });
    let resp = post_chat(&gw, KEY, &body).await;
    assert_eq!(resp.status(), 200);
    let request_id = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(resp.headers()["x-switchyard-provider"], "mock");
    assert_eq!(resp.headers()["x-switchyard-attempts"], "1");
    let json: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(json["object"], "chat.completion");
    assert_eq!(json["choices"][0]["message"]["role"], "assistant");
    assert!(
        !json["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .is_empty()
    );
    let usage = &json["usage"];
    let (input, output) = (
        usage["prompt_tokens"].as_u64().unwrap(),
        usage["completion_tokens"].as_u64().unwrap(),
    );
    assert_eq!(mock.state.stats().chat, 1);

    let events = wait_for("three events", std::time::Duration::from_secs(10), || {
        let url = nats.url();
        let id = request_id.clone();
        async move {
            let all = read_events(&url).await;
            let mine = for_request(&all, &id);
            (mine.len() == 3).then_some(mine)
        }
    })
    .await;
    let Event::RequestAccepted(acc) = &events[0].event else {
        panic!("first is RequestAccepted: {:?}", events[0])
    };
    assert_eq!(acc.principal.key_id, "alice-key");
    assert_eq!(acc.principal.user.as_deref(), Some("alice"));
    assert_eq!(acc.principal.team.as_deref(), Some("platform"));
    assert_eq!(acc.principal.project.as_deref(), Some("search"));
    assert_eq!(acc.endpoint, Endpoint::ChatCompletions);
    assert_eq!(acc.model, "gpt-4o-mini");
    assert_eq!(acc.route[0].provider, "mock");
    assert!(!acc.stream);
    let sent: serde_json::Value = serde_json::from_str(&acc.body).unwrap();
    assert_eq!(sent, body, "the request body is recorded as received");

    let Event::ResponseCompleted(done) = &events[1].event else {
        panic!("second is ResponseCompleted")
    };
    assert_eq!(done.status, 200);
    assert_eq!(done.provider.as_deref(), Some("mock"));
    assert_eq!(done.attempts.len(), 1);
    assert_eq!(done.attempts[0].status, 200);
    let u = done.usage.unwrap();
    assert_eq!((u.input_tokens, u.output_tokens), (input, output));
    assert!(!u.estimated);
    assert_eq!(done.finish_reason.as_deref(), Some("stop"));
    let answered: serde_json::Value = serde_json::from_str(done.body.as_deref().unwrap()).unwrap();
    assert_eq!(answered, json, "the response body is recorded as sent");
    assert!(done.latency_us > 0);

    let Event::SpendRecorded(spend) = &events[2].event else {
        panic!("third is SpendRecorded")
    };
    // gpt-4o-mini: $0.15 / $0.60 per Mtok → 150 / 600 nano-dollars per token
    assert_eq!(spend.cost_nanos, input * 150 + output * 600);
    assert!(spend.priced);
    assert_eq!(spend.currency, "USD");
    assert_eq!(spend.provider_model, "gpt-4o-mini");

    for e in &events {
        assert_eq!(e.request_id.to_string(), request_id);
    }
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_reach_events_or_responses() {
    let (nats, _mock, _dir, gw) = setup().await;
    let resp = post_chat(&gw, KEY, &chat_body("gpt-4o-mini", "hello", false)).await;
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    let ready = readyz(&gw).await.to_string();
    gw.stop().await;
    let events = read_events(&nats.url()).await;
    assert!(events.len() >= 3);
    for (_, _, raw) in &events {
        let raw = String::from_utf8_lossy(raw);
        assert!(!raw.contains(KEY), "virtual key leaked into an event");
        assert!(
            !raw.contains(UPSTREAM_SECRET),
            "provider key leaked into an event"
        );
    }
    for s in [&text, &ready] {
        assert!(!s.contains(UPSTREAM_SECRET) && !s.contains(KEY));
    }
}

async fn read_sse(resp: reqwest::Response) -> Vec<String> {
    let mut body = String::new();
    let mut s = resp.bytes_stream();
    while let Some(chunk) = s.next().await {
        match chunk {
            Ok(b) => body.push_str(&String::from_utf8_lossy(&b)),
            Err(_) => break,
        }
    }
    body.split("\n\n")
        .filter(|f| !f.trim().is_empty())
        .map(|f| f.strip_prefix("data: ").unwrap_or(f).to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_forwards_chunks_and_always_records_usage() {
    let (nats, _mock, _dir, gw) = setup().await;

    // Without include_usage: no usage chunk reaches the client, but the events have usage.
    let resp = post_chat(
        &gw,
        KEY,
        &chat_body("gpt-4o-mini", "stream me some words", true),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let request_id = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    let frames = read_sse(resp).await;
    assert_eq!(frames.last().unwrap(), "[DONE]");
    let chunks: Vec<serde_json::Value> = frames[..frames.len() - 1]
        .iter()
        .map(|f| serde_json::from_str(f).unwrap())
        .collect();
    assert!(chunks.len() >= 3);
    assert!(
        chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk")
    );
    assert!(
        chunks
            .iter()
            .all(|c| !c["choices"].as_array().unwrap().is_empty()),
        "no usage-only chunk when not asked"
    );
    assert!(
        chunks.iter().all(|c| c.get("usage").is_none()),
        "a client that did not ask for usage sees no usage field at all"
    );
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert!(!text.is_empty());

    // With include_usage: the usage chunk arrives before [DONE].
    let mut body = chat_body("gpt-4o-mini", "stream me some words", true);
    body["stream_options"] = serde_json::json!({"include_usage": true});
    let resp = post_chat(&gw, KEY, &body).await;
    let frames = read_sse(resp).await;
    let usage_chunk: serde_json::Value = serde_json::from_str(&frames[frames.len() - 2]).unwrap();
    assert!(usage_chunk["choices"].as_array().unwrap().is_empty());
    let client_usage = usage_chunk["usage"].clone();
    assert!(client_usage["completion_tokens"].as_u64().unwrap() > 0);

    gw.stop().await;
    let events = read_events(&nats.url()).await;
    let mine = for_request(&events, &request_id);
    assert_eq!(mine.len(), 3);
    let Event::ResponseCompleted(done) = &mine[1].event else {
        panic!()
    };
    assert!(done.stream);
    assert!(done.error.is_none());
    assert!(done.ttft_us.is_some());
    assert_eq!(done.finish_reason.as_deref(), Some("stop"));
    let u = done.usage.unwrap();
    assert_eq!(
        u.output_tokens,
        client_usage["completion_tokens"].as_u64().unwrap(),
        "same deterministic mock reply"
    );
    assert!(
        done.body
            .as_deref()
            .unwrap()
            .contains("chat.completion.chunk")
    );
    assert!(matches!(mine[2].event, Event::SpendRecorded(_)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_are_listed_in_openai_shape() {
    let (_nats, _mock, _dir, gw) = setup().await;
    let r = client()
        .get(gw.url("/v1/models"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let j: serde_json::Value = r.json().await.unwrap();
    assert_eq!(j["object"], "list");
    let ids: Vec<&str> = j["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["gpt-4o-mini", "text-embedding-3-small", "unpriced"]);
    assert_eq!(j["data"][0]["object"], "model");
    let r = client().get(gw.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = client().get(gw.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(text.contains("switchyard_"), "{text}");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embeddings_go_through_the_same_pipeline() {
    let (nats, mock, _dir, gw) = setup().await;
    let body = serde_json::json!({
        "model": "text-embedding-3-small",
        "input": ["the quick brown fox", "jumps over"],
        "encoding_format": "float",
        "dimensions": 8,
        "user": "end-user-2"
    });
    let r = client()
        .post(gw.url("/v1/embeddings"))
        .bearer_auth(KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    let j: serde_json::Value = r.json().await.unwrap();
    assert_eq!(j["object"], "list");
    assert_eq!(j["data"].as_array().unwrap().len(), 2);
    assert_eq!(
        j["data"][0]["embedding"].as_array().unwrap().len(),
        8,
        "dimensions passed through"
    );
    let tokens = j["usage"]["prompt_tokens"].as_u64().unwrap();
    assert_eq!(mock.state.stats().embeddings, 1);

    // auth and unknown model behave as for chat
    let r = client()
        .post(gw.url("/v1/embeddings"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = client()
        .post(gw.url("/v1/embeddings"))
        .bearer_auth(KEY)
        .json(&serde_json::json!({"model": "nope", "input": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    gw.stop().await;
    let events = for_request(&read_events(&nats.url()).await, &id);
    assert_eq!(events.len(), 3);
    let Event::RequestAccepted(acc) = &events[0].event else {
        panic!()
    };
    assert_eq!(acc.endpoint, Endpoint::Embeddings);
    let Event::ResponseCompleted(done) = &events[1].event else {
        panic!()
    };
    assert_eq!(done.endpoint, Endpoint::Embeddings);
    assert_eq!(done.usage.unwrap().input_tokens, tokens);
    let Event::SpendRecorded(spend) = &events[2].event else {
        panic!()
    };
    // $0.02 per Mtok = 20 nano-dollars per token
    assert_eq!(spend.cost_nanos, tokens * 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_is_counted_and_marked_estimated_when_the_provider_reports_none() {
    let (nats, mock, _dir, gw) = setup().await;
    mock.state.set_config(MockConfig {
        omit_usage: true,
        ..MockConfig::default()
    });
    let mut ids = Vec::new();
    for stream in [false, true] {
        let r = post_chat(
            &gw,
            KEY,
            &chat_body("gpt-4o-mini", "count these words for me please", stream),
        )
        .await;
        assert_eq!(r.status(), 200);
        ids.push(r.headers()["x-request-id"].to_str().unwrap().to_owned());
        let body = r.text().await.unwrap();
        assert!(
            !body.contains("\"usage\":{"),
            "the provider really sent no usage: {body}"
        );
    }
    gw.stop().await;
    let all = read_events(&nats.url()).await;
    for id in ids {
        let events = for_request(&all, &id);
        let Event::ResponseCompleted(done) = &events[1].event else {
            panic!()
        };
        let u = done.usage.expect("usage recorded anyway");
        assert!(u.estimated, "marked as our own count");
        assert!(u.input_tokens > 10, "system + user prompt counted: {u:?}");
        assert!(u.output_tokens >= 8, "the eight-word reply counted: {u:?}");
        let Event::SpendRecorded(spend) = &events[2].event else {
            panic!()
        };
        assert_eq!(
            spend.cost_nanos,
            u.input_tokens * 150 + u.output_tokens * 600
        );
        assert!(spend.usage.estimated);
    }
}
