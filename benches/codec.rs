#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]
//! Micro-benchmarks of the per-request work that is not I/O: event encoding/decoding, request
//! parsing, cost arithmetic.

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use switchyard::config::{Pricing, RawPricing};
use switchyard::events::*;
use switchyard::providers::ChatRequest;

const BODY: &str = r#"{"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Summarise the plot of Hamlet in two sentences, please."}],"temperature":0.2,"max_tokens":128,"metadata":{"team":"search"}}"#;

fn envelope() -> Envelope {
    Envelope::new(
        ulid::Ulid::generate(),
        Event::RequestAccepted(RequestAccepted {
            principal: Principal {
                key_id: "dev".into(),
                user: Some("alice".into()),
                team: Some("platform".into()),
                project: None,
            },
            endpoint: Endpoint::ChatCompletions,
            model: "gpt-4o-mini".into(),
            route: vec![DeploymentRef {
                provider: "openai".into(),
                model: "gpt-4o-mini".into(),
            }],
            stream: false,
            body: BODY.into(),
            guardrail_findings: vec![],
            cache: None,
            rule: None,
            routed_model: None,
        }),
    )
}

fn benches(c: &mut Criterion) {
    let env = envelope();
    c.bench_function("event_encode", |b| b.iter(|| encode(black_box(&env))));
    let bytes = encode(&env);
    c.bench_function("event_decode", |b| b.iter(|| decode(black_box(&bytes))));
    c.bench_function("chat_request_parse", |b| {
        b.iter(|| serde_json::from_str::<ChatRequest>(black_box(BODY)))
    });
    let raw: RawPricing =
        toml::from_str("[models.m]\ninput_per_mtok = 0.15\noutput_per_mtok = 0.6\n").unwrap();
    let pricing = Pricing::validate(raw, &mut vec![]);
    let usage = Usage {
        input_tokens: 1234,
        output_tokens: 567,
        ..Usage::default()
    };
    c.bench_function("cost_nanos", |b| {
        b.iter(|| {
            pricing
                .price(black_box("m"))
                .map(|p| p.cost_nanos(black_box(&usage)))
        })
    });
    c.bench_function("key_hash", |b| {
        b.iter(|| switchyard::governance::hash_key(black_box("sk-switchyard-dev")))
    });
}

criterion_group!(codec, benches);

const TOOL_BODY: &str = r#"{"model":"m","messages":[{"role":"system","content":"You are terse."},{"role":"user","content":[{"type":"text","text":"Weather in Paris?"},{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo="}}]},{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]},{"role":"tool","tool_call_id":"call_1","content":"18C"}],"tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}],"max_tokens":128}"#;
const ANTHROPIC_RESPONSE: &str = include_str!("../tests/fixtures/anthropic/messages_response.json");
const OPENAI_CHUNK: &str = r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":"Hello "},"logprobs":null,"finish_reason":null}]}"#;
const ANTHROPIC_START: &str = r#"{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","content":[],"model":"claude-haiku-4-5","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":25,"output_tokens":1}}}"#;
const GEMINI_RESPONSE: &str =
    include_str!("../tests/fixtures/gemini/generate_content_response.json");
const GEMINI_EVENT: &str = r#"{"candidates":[{"content":{"parts":[{"text":"Hello "}],"role":"model"},"index":0}],"modelVersion":"gemini-2.5-flash"}"#;
const ANTHROPIC_DELTA: &str =
    r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello "}}"#;
const BEDROCK_RESPONSE: &str = include_str!("../tests/fixtures/bedrock/converse_response.json");
/// A ConverseStream text delta as Bedrock sends it, padding field `p` included.
const BEDROCK_DELTA: &str =
    r#"{"contentBlockIndex":0,"delta":{"text":"Hello "},"p":"abcdefghijklmnopqrstuvwxyzABCDEF"}"#;

/// `payload` framed as one ConverseStream event (`application/vnd.amazon.eventstream`).
fn bedrock_frame(event_type: &str, payload: &str) -> Vec<u8> {
    use aws_smithy_eventstream::frame::write_message_to;
    use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
    let header = |name: &str, value: &str| {
        Header::new(
            name.to_owned(),
            HeaderValue::String(value.to_owned().into()),
        )
    };
    let message = Message::new_from_parts(
        vec![
            header(":event-type", event_type),
            header(":content-type", "application/json"),
            header(":message-type", "event"),
        ],
        payload.as_bytes().to_vec(),
    );
    let mut out = Vec::new();
    write_message_to(&message, &mut out).unwrap();
    out
}

fn adapters(c: &mut Criterion) {
    use switchyard::providers::{anthropic, bedrock, gemini, openai};
    let req: ChatRequest = serde_json::from_str(TOOL_BODY).unwrap();
    c.bench_function("openai_request", |b| {
        b.iter(|| openai::conversions::request(black_box(&req), "gpt-4o-mini", false))
    });
    c.bench_function("openai_stream_chunk", |b| {
        b.iter(|| openai::conversions::stream_chunk(black_box(OPENAI_CHUNK)))
    });
    c.bench_function("anthropic_request", |b| {
        b.iter(|| anthropic::conversions::request(black_box(&req), "claude-haiku-4-5"))
    });
    c.bench_function("anthropic_response", |b| {
        b.iter(|| anthropic::conversions::response(black_box(ANTHROPIC_RESPONSE.as_bytes())))
    });
    let mut events = anthropic::conversions::StreamEvents::default();
    events.event(ANTHROPIC_START).unwrap();
    c.bench_function("gemini_request", |b| {
        b.iter(|| gemini::conversions::request(black_box(&req)))
    });
    c.bench_function("gemini_response", |b| {
        b.iter(|| {
            gemini::conversions::response(black_box(GEMINI_RESPONSE.as_bytes()), "gemini-2.5-flash")
        })
    });
    let mut gevents = gemini::conversions::StreamEvents::new("gemini-2.5-flash");
    c.bench_function("gemini_stream_event", |b| {
        b.iter(|| gevents.event(black_box(GEMINI_EVENT)))
    });
    c.bench_function("anthropic_stream_event", |b| {
        b.iter(|| events.event(black_box(ANTHROPIC_DELTA)))
    });
    c.bench_function("bedrock_request", |b| {
        b.iter(|| bedrock::conversions::request(black_box(&req)))
    });
    c.bench_function("bedrock_response", |b| {
        b.iter(|| {
            bedrock::conversions::response(
                black_box(BEDROCK_RESPONSE.as_bytes()),
                "anthropic.claude-3-5-haiku-20241022-v1:0",
            )
        })
    });
    let mut bevents =
        bedrock::conversions::StreamEvents::new("anthropic.claude-3-5-haiku-20241022-v1:0");
    bevents
        .event("messageStart", br#"{"role":"assistant"}"#)
        .unwrap();
    c.bench_function("bedrock_stream_event", |b| {
        b.iter(|| bevents.event("contentBlockDelta", black_box(BEDROCK_DELTA.as_bytes())))
    });
    // The same event as it arrives: framing and both CRCs, then the translation.
    let frame = bedrock_frame("contentBlockDelta", BEDROCK_DELTA);
    c.bench_function("bedrock_stream_frame", |b| {
        b.iter(|| bevents.bytes(black_box(&frame)))
    });
}

criterion_group!(conversions, adapters);
criterion_main!(codec, conversions);
