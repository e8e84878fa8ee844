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
            cache_key: None,
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
criterion_main!(codec);
