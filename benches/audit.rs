#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]
//! The audit projection's figures, on realistic generated traffic (prompts and answers of a few
//! dozen words from a vocabulary, 50 keys in 8 teams, 6 models, 2% upstream errors, 3% refusals,
//! arrivals spread over 30 days):
//!
//! 1. **Indexing, in process**: N requests' events (accepted, completed, spend), encoded as the
//!    stream holds them, decoded and applied in batches of 512 with a commit every half second,
//!    as the gateway runs the projection. Requests per second.
//! 2. **Indexing through JetStream**: a burst of M requests' events published to a nats-server
//!    this bench starts, then the projection's runner catching up from sequence 1: how long the
//!    lag takes to drain, and requests per second end to end.
//! 3. **Search** over the N-record index of phase 1: a filtered full-text query (a word, a team,
//!    the last 7 days), an exact filter (model and status) and a time range alone, each with its
//!    count and facets, p50 and p99; and the index size per record.
//!
//! Run: `cargo bench --bench audit` (part of `scripts/bench`, which installs nats-server first). `SWITCHYARD_BENCH_AUDIT_RECORDS` (default 1,000,000) and
//! `SWITCHYARD_BENCH_AUDIT_BURST` (default 100,000) size the phases.

#[allow(dead_code, unused_imports)]
mod harness;

use async_nats::jetstream;
use harness::{env_u64, pct};
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchyard::events::*;
use switchyard::projections::audit::{AuditProjection, Search};
use switchyard::projections::{Applied, Projection, ProjectionStatus, RunMode, Runner};
use switchyard_testkit::Nats;
use tokio_util::sync::CancellationToken;
use ulid::Ulid;

const WORDS: [&str; 64] = [
    "refund",
    "invoice",
    "customer",
    "order",
    "shipping",
    "delay",
    "summary",
    "contract",
    "clause",
    "translate",
    "german",
    "python",
    "function",
    "error",
    "stack",
    "trace",
    "database",
    "index",
    "query",
    "latency",
    "budget",
    "forecast",
    "quarter",
    "revenue",
    "churn",
    "email",
    "draft",
    "polite",
    "reply",
    "meeting",
    "notes",
    "action",
    "items",
    "policy",
    "security",
    "password",
    "reset",
    "account",
    "locked",
    "billing",
    "address",
    "update",
    "product",
    "feature",
    "request",
    "roadmap",
    "release",
    "notes",
    "bug",
    "report",
    "crash",
    "android",
    "ios",
    "login",
    "timeout",
    "retry",
    "network",
    "kubernetes",
    "deploy",
    "rollback",
    "canary",
    "metrics",
    "dashboard",
    "alert",
];
const MODELS: [&str; 6] = [
    "gpt-4o-mini",
    "gpt-4o",
    "claude-sonnet",
    "gemini-flash",
    "mistral-large",
    "llama-70b",
];
const TEAMS: [&str; 8] = [
    "search", "billing", "support", "risk", "growth", "platform", "mobile", "data",
];
const DAY_MS: u64 = 86_400_000;
const BATCH: usize = 512;

/// A small deterministic generator (xorshift), so every run indexes the same traffic.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn words(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| WORDS[self.below(WORDS.len() as u64) as usize])
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// The events of request `i` (arriving at `at_ms`), in stream order.
fn request_events(rng: &mut Rng, at_ms: u64) -> Vec<Envelope> {
    let request = Ulid::from_parts(at_ms, u128::from(rng.next()));
    let key = rng.below(50);
    let team = TEAMS[(key % TEAMS.len() as u64) as usize];
    let principal = Principal {
        key_id: format!("01kb{key:022}"),
        user: Some(format!("user{}", rng.below(200))),
        team: Some(team.into()),
        project: Some(format!("project{}", key % 5)),
    };
    let model = MODELS[rng.below(MODELS.len() as u64) as usize];
    let env = |at_ms, event| Envelope {
        id: Ulid::from_parts(at_ms, u128::from(at_ms ^ 0x5a5a)),
        at_ms,
        request_id: request,
        event,
    };
    let roll = rng.below(100);
    if roll < 3 {
        return vec![env(
            at_ms,
            Event::RequestRejected(RequestRejected {
                endpoint: Endpoint::ChatCompletions,
                status: 401,
                code: "invalid_api_key".into(),
                message: "Incorrect API key provided.".into(),
                principal: None,
                key_id: None,
                key_fingerprint: Some(format!("{:08x}", rng.next() as u32)),
                model: Some(model.into()),
                remote_addr: Some(format!("10.0.{}.{}:443", rng.below(255), rng.below(255))),
                user_agent: Some("openai-python/1.54.0".into()),
            }),
        )];
    }
    let prompt_words = 40 + rng.below(40) as usize;
    let prompt = rng.words(prompt_words);
    let body = format!(
        r#"{{"model":"{model}","messages":[{{"role":"user","content":"{prompt}"}}],"max_tokens":256}}"#
    );
    let route = vec![DeploymentRef {
        provider: "openai".into(),
        model: model.into(),
    }];
    let accepted = Event::RequestAccepted(RequestAccepted {
        principal: principal.clone(),
        endpoint: Endpoint::ChatCompletions,
        model: model.into(),
        route,
        stream: roll.is_multiple_of(2),
        body,
        guardrail_findings: vec![],
        cache: None,
        rule: None,
        routed_model: None,
    });
    let failed = roll < 5;
    let latency_us = 200_000 + rng.below(2_000_000);
    let usage = Usage {
        input_tokens: 60 + rng.below(200),
        output_tokens: 20 + rng.below(300),
        ..Usage::default()
    };
    let answer_words = 30 + rng.below(30) as usize;
    let completed = Event::ResponseCompleted(ResponseCompleted {
        principal: principal.clone(),
        endpoint: Endpoint::ChatCompletions,
        model: model.into(),
        attempts: vec![Attempt {
            provider: "openai".into(),
            model: model.into(),
            status: if failed { 502 } else { 200 },
            latency_us,
            error: failed.then(|| ErrorInfo {
                class: "upstream_5xx".into(),
                message: "502 Bad Gateway".into(),
            }),
            kind: AttemptKind::First,
            backoff_ms: 0,
            key_index: None,
        }],
        provider: (!failed).then(|| "openai".into()),
        provider_model: (!failed).then(|| format!("{model}-2024")),
        status: if failed { 502 } else { 200 },
        error: failed.then(|| ErrorInfo {
            class: "upstream_5xx".into(),
            message: "The upstream answered 502 Bad Gateway.".into(),
        }),
        stream: roll.is_multiple_of(2),
        ttft_us: Some(latency_us / 3),
        latency_us,
        usage: (!failed).then_some(usage),
        finish_reason: (!failed).then(|| "stop".into()),
        body: (!failed).then(|| rng.words(answer_words)),
        cache: None,
        whole_body: false,
        guardrail_findings: vec![],
    });
    let done = at_ms + latency_us / 1000;
    let mut out = vec![env(at_ms, accepted), env(done, completed)];
    if !failed {
        out.push(env(
            done + 1,
            Event::SpendRecorded(SpendRecorded {
                principal,
                model: model.into(),
                provider: "openai".into(),
                provider_model: format!("{model}-2024"),
                usage,
                cost_nanos: usage.input_tokens * 150 + usage.output_tokens * 600,
                currency: "USD".into(),
                priced: true,
            }),
        ));
    }
    out
}

/// `n` requests' events, encoded, in stream order, arrivals evenly over the 30 days before
/// `end_ms`.
fn traffic(n: u64, end_ms: u64, seed: u64) -> impl Iterator<Item = Vec<u8>> {
    let mut rng = Rng(seed);
    let start = end_ms - 30 * DAY_MS;
    let step = (30 * DAY_MS / n.max(1)).max(1);
    (0..n).flat_map(move |i| {
        request_events(&mut rng, start + i * step)
            .iter()
            .map(encode)
            .collect::<Vec<_>>()
    })
}

fn dir_size(path: &std::path::Path) -> u64 {
    std::fs::read_dir(path)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                dir_size(&e.path())
            } else {
                e.metadata().unwrap().len()
            }
        })
        .sum()
}

/// Phase 1: decode and apply `n` requests' events as the runner does; (requests/s, events).
fn index_in_process(audit: &AuditProjection, n: u64, end_ms: u64) -> (f64, u64) {
    let mut events = traffic(n, end_ms, 0x9e37_79b9_7f4a_7c15);
    let mut seq = 0u64;
    let mut busy = Duration::ZERO;
    let mut since_commit = Duration::ZERO;
    loop {
        let raw: Vec<Vec<u8>> = events.by_ref().take(BATCH).collect();
        if raw.is_empty() {
            break;
        }
        let t = Instant::now();
        let batch: Vec<Applied> = raw
            .iter()
            .map(|b| {
                seq += 1;
                Applied {
                    seq,
                    envelope: Some(decode(b).unwrap()),
                }
            })
            .collect();
        // The gateway commits what was added twice a second (its ticker), durably once a second.
        let durable = since_commit >= Duration::from_millis(500);
        audit.apply(&batch, durable).unwrap();
        let took = t.elapsed();
        busy += took;
        since_commit = if durable {
            Duration::ZERO
        } else {
            since_commit + took
        };
    }
    let t = Instant::now();
    audit.flush().unwrap();
    busy += t.elapsed();
    (n as f64 / busy.as_secs_f64(), seq)
}

/// Phase 2: publish a burst of `m` requests' events, then catch up from sequence 1; (time to
/// publish, time to drain the lag, events).
async fn through_jetstream(m: u64, end_ms: u64) -> (Duration, Duration, u64) {
    let nats = Nats::start();
    let client = async_nats::connect(nats.url()).await.unwrap();
    let js = jetstream::new(client.clone());
    js.create_stream(jetstream::stream::Config {
        name: "SWITCHYARD".into(),
        subjects: vec![EVENT_SUBJECT_WILDCARD.into()],
        ..Default::default()
    })
    .await
    .unwrap();
    let t = Instant::now();
    let mut acks = Vec::with_capacity(4096);
    let mut events = 0u64;
    for bytes in traffic(m, end_ms, 0x2545_f491_4f6c_dd1d) {
        let env = decode(&bytes).unwrap();
        acks.push(
            js.publish(subject(&env.event).into_owned(), bytes.into())
                .await
                .unwrap(),
        );
        events += 1;
        if acks.len() == 4096 {
            for a in acks.drain(..) {
                a.await.unwrap();
            }
        }
    }
    for a in acks.drain(..) {
        a.await.unwrap();
    }
    let published = t.elapsed();
    let dir = tempfile::tempdir().unwrap();
    let audit = Arc::new(AuditProjection::open(dir.path()).unwrap());
    let t = Instant::now();
    Runner {
        projection: Arc::clone(&audit),
        client,
        stream: "SWITCHYARD".into(),
        batch: BATCH,
        status: Arc::new(ProjectionStatus::default()),
        mode: RunMode::CatchUp,
    }
    .run(CancellationToken::new())
    .await
    .unwrap();
    let drained = t.elapsed();
    assert_eq!(audit.position().applied, events, "every event applied");
    (published, drained, events)
}

/// Phase 3: run `search` `runs` times with the `i`th word; p50 and p99 in ms, and the mean count.
fn time_search(
    audit: &AuditProjection,
    runs: usize,
    search: impl Fn(usize) -> Search,
) -> (f64, f64, f64) {
    let mut samples = Vec::with_capacity(runs);
    let mut counted = 0usize;
    for i in 0..runs {
        let s = search(i);
        let t = Instant::now();
        let page = audit.index().search(&s).unwrap();
        samples.push(t.elapsed().as_nanos() as u64);
        counted += page.count;
    }
    samples.sort_unstable();
    (
        pct(&samples, 0.50) / 1000.0,
        pct(&samples, 0.99) / 1000.0,
        counted as f64 / runs as f64,
    )
}

fn main() {
    // `cargo test --all-targets` runs bench binaries without --bench: a small smoke run keeps
    // this code working; its figures are not measurements.
    let measure = std::env::args().any(|a| a == "--bench");
    let (n, m, runs) = if measure {
        (
            env_u64("SWITCHYARD_BENCH_AUDIT_RECORDS", 1_000_000),
            env_u64("SWITCHYARD_BENCH_AUDIT_BURST", 100_000),
            env_u64("SWITCHYARD_BENCH_AUDIT_SEARCHES", 200) as usize,
        )
    } else {
        println!("smoke run (no --bench): figures below are not measurements");
        (3_000, 500, 5)
    };
    let end_ms = 1_764_547_200_000; // 2025-12-01T00:00:00Z
    let dir = tempfile::tempdir().unwrap();
    let audit = AuditProjection::open(dir.path()).unwrap();

    println!("audit benchmark: {n} requests indexed in process, a burst of {m} through JetStream");
    let (rate, events) = index_in_process(&audit, n, end_ms);
    let records = audit.index().len();
    println!(
        "indexing, in process:   {rate:>9.0} requests/s ({events} events, {records} records; decode + join + chain + index + commits)"
    );

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let (published, drained, burst_events) = rt.block_on(through_jetstream(m, end_ms));
    println!(
        "indexing, JetStream:    {:>9.0} requests/s (burst of {m} requests / {burst_events} events published in {:.1} s, lag back to 0 in {:.1} s)",
        m as f64 / drained.as_secs_f64(),
        published.as_secs_f64(),
        drained.as_secs_f64()
    );

    let week_ago = end_ms - 7 * DAY_MS;
    let word = |i: usize| WORDS[(i * 7) % WORDS.len()].to_owned();
    let filtered = time_search(&audit, runs, |i| Search {
        q: Some(word(i)),
        filters: vec![("team", TEAMS[i % TEAMS.len()].into())],
        from_ms: Some(week_ago),
        limit: 50,
        ..Search::default()
    });
    let exact = time_search(&audit, runs, |i| Search {
        filters: vec![("model", MODELS[i % MODELS.len()].into())],
        status: Some(502),
        limit: 50,
        ..Search::default()
    });
    let phrase = time_search(&audit, runs, |i| Search {
        q: Some(format!("{} AND {}", word(i), word(i + 3))),
        filters: vec![("key", format!("01kb{:022}", i % 50))],
        limit: 50,
        ..Search::default()
    });
    let day = time_search(&audit, runs, |i| Search {
        from_ms: Some(end_ms - (i as u64 % 30 + 1) * DAY_MS),
        to_ms: Some(end_ms - (i as u64 % 30) * DAY_MS),
        limit: 50,
        ..Search::default()
    });
    println!(
        "search over {records} records ({runs} runs each; every answer includes its count and facets):"
    );
    for (name, (p50, p99, count)) in [
        ("word + team + last 7 days", filtered),
        ("two words + key", phrase),
        ("model + status 502", exact),
        ("one day (time range)", day),
    ] {
        println!(
            "  {name:<28} p50 {p50:>7.2} ms   p99 {p99:>7.2} ms   ({count:.0} matches on average)"
        );
    }
    let size = dir_size(dir.path());
    println!(
        "index size: {:.1} MiB, {:.0} bytes per record",
        size as f64 / (1024.0 * 1024.0),
        size as f64 / records.max(1) as f64
    );
}
