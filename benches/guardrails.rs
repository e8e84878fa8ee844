#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]
//! The guardrails' cost per KB of prompt, every built-in detector on: a scan of realistic text
//! (prose, a little code and a log excerpt, one email and one phone number per KB as a real
//! conversation has) at 1 KB, 16 KB and 128 KB, and the whole request inspection (scan, actions,
//! placeholders, the body rebuilt) on a chat body of each size. Target: under 10 µs per KB.
//! Then a streamed answer through the stream guard, per chunk.
//!
//! Run: `cargo bench --bench guardrails`.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::collections::BTreeMap;
use std::hint::black_box;
use switchyard::config::{GuardrailsConfig, PrivacyConfig};
use switchyard::events::{GuardrailAction, Principal};
use switchyard::guardrails::{AnswerGuard, ChunkGuard, Policy, Scanner};

const PROSE: &str = "Thanks for the quick reply. I looked at the invoice for order 100234556781 again and \
the totals still do not match what the dashboard shows for November; the difference is about 4.5% \
and seems to come from the shipping line. Could you check whether the 2026-11-14 delivery was \
billed twice? The tracking page says version 2.3.1 of the portal was live then. ";
const CODE: &str = "fn total(items: &[Item]) -> u64 { items.iter().map(|i| i.price * i.qty).sum() }\n\
2026-11-30T14:02:11Z INFO request_id=01KB3Z9Q latency_ms=212 status=200 path=/v1/orders/4711\n";
const CONTACT: &str =
    "You can reach me at maria.gonzalez@northwind-traders.com or on +44 20 7946 0958. ";

/// About `kb` KB of text: prose and code, with one contact line per KB.
fn text(kb: usize) -> String {
    let mut s = String::with_capacity(kb * 1024 + 512);
    while s.len() < kb * 1024 {
        s.push_str(PROSE);
        s.push_str(CODE);
        s.push_str(PROSE);
        s.push_str(CONTACT);
    }
    s.truncate(kb * 1024);
    while !s.is_char_boundary(s.len()) {
        s.pop();
    }
    s
}

fn bench(c: &mut Criterion) {
    let scanner = Scanner::new(&[]).unwrap();
    let mut g = c.benchmark_group("guardrails_scan");
    for kb in [1usize, 16, 128] {
        let t = text(kb);
        assert!(!scanner.scan(&t).is_empty());
        g.throughput(Throughput::Bytes(t.len() as u64));
        g.bench_with_input(
            BenchmarkId::from_parameter(format!("{kb}KB")),
            &t,
            |b, t| b.iter(|| black_box(scanner.scan(black_box(t)))),
        );
    }
    g.finish();

    let config = GuardrailsConfig {
        actions: BTreeMap::from([
            ("secrets".to_owned(), GuardrailAction::Block),
            ("pii".to_owned(), GuardrailAction::Redact),
        ]),
        ..GuardrailsConfig::default()
    };
    let policy = Policy::new(&config, &PrivacyConfig::default()).unwrap();
    let principal = Principal {
        key_id: "k".into(),
        ..Principal::default()
    };
    let mut g = c.benchmark_group("guardrails_inspect_request");
    for kb in [1usize, 16, 128] {
        let body = serde_json::to_vec(&serde_json::json!({
            "model": "gpt-4o-mini",
            "messages": [
                {"role": "system", "content": "You are a helpful support agent."},
                {"role": "user", "content": text(kb)}
            ]
        }))
        .unwrap();
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.bench_with_input(
            BenchmarkId::from_parameter(format!("{kb}KB")),
            &body,
            |b, body| {
                b.iter(|| black_box(policy.inspect(&principal, "gpt-4o-mini", black_box(body))))
            },
        );
    }
    g.finish();

    // Many different small bodies in turn, as a gateway sees them (the regex engines' caches
    // meet new text every time), from several threads at once.
    let bodies: Vec<String> = (0..512)
        .map(|i| {
            format!(
                r#"{{"model":"gpt-4o-mini","messages":[{{"role":"user","content":"Order {} shipped {} units to warehouse {} on 2026-11-{:02}; ticket INC-{} notes: {}"}}],"max_tokens":{}}}"#,
                100_000_000 + i * 7919,
                i % 97,
                i % 13,
                1 + i % 28,
                40_000 + i,
                &PROSE[..(i * 37) % 200 + 40],
                16 + i % 64
            )
        })
        .collect();
    let mut i = 0;
    c.bench_function("guardrails_inspect_varied_small_bodies", |b| {
        b.iter(|| {
            i = (i + 1) % bodies.len();
            black_box(policy.inspect(&principal, "gpt-4o-mini", bodies[i].as_bytes()))
        })
    });

    // Nothing to find: the cost every clean request pays.
    let clean = PROSE.repeat(4);
    c.bench_function("guardrails_scan_clean_1KB", |b| {
        b.iter(|| black_box(scanner.scan(black_box(&clean))))
    });

    // A streamed answer: 1 KB of text as canonical chunks of 4 characters (sub-word tokens),
    // through the stream guard (parse, hold, scan what is let through, rewrite the chunk).
    let answer = text(1);
    let chars: Vec<char> = answer.chars().collect();
    let chunks: Vec<bytes::Bytes> = chars
        .chunks(4)
        .map(|piece| {
            let content: String = piece.iter().collect();
            let chunk = serde_json::json!({"id": "chatcmpl-1", "object": "chat.completion.chunk",
                "created": 1, "model": "gpt-4o-mini",
                "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": null}]});
            bytes::Bytes::from(serde_json::to_vec(&chunk).unwrap())
        })
        .collect();
    let policy = std::sync::Arc::new(policy);
    let mut g = c.benchmark_group("guardrails_stream");
    g.throughput(Throughput::Elements(chunks.len() as u64));
    g.bench_function("1KB_answer_in_4_char_chunks", |b| {
        b.iter(|| {
            let guard = AnswerGuard::new(policy.clone(), &principal, "gpt-4o-mini", &[]).unwrap();
            let mut guard = ChunkGuard::new(guard);
            for chunk in &chunks {
                black_box(guard.chunk(chunk));
            }
            black_box(guard.end())
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
