//! Routing and reliability under injected faults, through the whole gateway over real HTTP with
//! real NATS: retries and fallback, circuit breakers, Retry-After and the retry budget, latency
//! routing, weighted splits, content rules and hedging.

use crate::harness::*;
use futures::StreamExt;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use switchyard::events::{AttemptKind, BreakerState, Event};
use switchyard_mock::MockConfig;

/// A deployment named `name` on `mock`, as TOML.
fn provider(name: &str, url: &str, timeout: &str) -> String {
    format!(
        "[providers.{name}]\nkind = \"openai\"\nbase_url = \"{url}\"\ntimeout = \"{timeout}\"\nfirst_token_timeout = \"{timeout}\"\n"
    )
}

struct Sent {
    status: u16,
    provider: String,
    latency: Duration,
}

/// `n` chat requests for `model`, `concurrency` at a time.
async fn fire(gw: &Gateway, model: &str, n: usize, concurrency: usize, stream: bool) -> Vec<Sent> {
    let client = client();
    let url = gw.url("/v1/chat/completions");
    futures::stream::iter(0..n)
        .map(|i| {
            let (client, url) = (client.clone(), url.clone());
            let body = chat_body(model, &format!("request {i}"), stream);
            async move {
                let t = Instant::now();
                let r = client
                    .post(&url)
                    .bearer_auth(KEY)
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                let status = r.status().as_u16();
                let provider = r
                    .headers()
                    .get("x-switchyard-provider")
                    .map(|v| v.to_str().unwrap().to_owned())
                    .unwrap_or_default();
                let body = r.bytes().await.unwrap();
                // A stream that broke after its headers ends with an error event.
                let status = if stream && !body.ends_with(b"data: [DONE]\n\n") {
                    599
                } else {
                    status
                };
                Sent {
                    status,
                    provider,
                    latency: t.elapsed(),
                }
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await
}

fn share(sent: &[Sent], provider: &str) -> f64 {
    sent.iter().filter(|s| s.provider == provider).count() as f64 / sent.len() as f64
}

fn percentile(sent: &[Sent], p: f64) -> Duration {
    let mut l: Vec<Duration> = sent.iter().map(|s| s.latency).collect();
    l.sort();
    l[((l.len() as f64 * p) as usize).min(l.len() - 1)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_percent_5xx_is_absorbed_by_retries_and_fallback() {
    let nats = Nats::start();
    let flaky = Mock::start(MockConfig {
        fail_rate: 0.3,
        fail_status: 500,
        ..MockConfig::default()
    })
    .await;
    let backup = Mock::start(MockConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = TestConfig::new(&nats, &flaky, dir.path());
    cfg.extra = format!(
        "{}\n[[models]]\nname = \"resilient\"\ndeployments = [{{ provider = \"mock\", model = \"m\" }}, {{ provider = \"backup\", model = \"m\" }}]\n\n[routing.retry]\nbase_delay = \"1ms\"\nmax_delay = \"5ms\"\n",
        provider("backup", &backup.base_url(), "5s")
    );
    let gw = Gateway::start(cfg.build()).await;
    let sent = fire(&gw, "resilient", 2000, 16, false).await;
    let ok = sent.iter().filter(|s| s.status == 200).count();
    assert!(
        ok as f64 / 2000.0 >= 0.999,
        "{ok} of 2000 succeeded under 30 % upstream 500s"
    );
    // Fewer than 30 % of 2,000: five failures in a row, or half of a window, open the breaker
    // and the backup takes the traffic for a while; on a fast run the 2,000 requests can all
    // end inside that while, after as few as a dozen calls to the flaky deployment.
    let stats = flaky.state.stats();
    assert!(stats.faults >= 5, "faults were injected: {stats:?}");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_deployment_trips_its_breaker_and_recovers() {
    let nats = Nats::start();
    let backup = Mock::start(MockConfig::default()).await;
    // A port nothing listens on: connection refused.
    let port = free_port();
    let dead_url = format!("http://127.0.0.1:{port}/v1");
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = TestConfig::new(&nats, &backup, dir.path());
    cfg.extra = format!(
        "{}\n[[models]]\nname = \"resilient\"\ndeployments = [{{ provider = \"primary\", model = \"m\" }}, {{ provider = \"mock\", model = \"m\" }}]\n\n[routing.retry]\nmax_retries = 0\n[routing.breaker]\nconsecutive_failures = 3\nopen_for = \"1s\"\n",
        provider("primary", &dead_url, "5s")
    );
    let gw = Gateway::start(cfg.build()).await;
    let sent = fire(&gw, "resilient", 40, 1, false).await;
    assert!(sent.iter().all(|s| s.status == 200));
    assert!(sent.iter().all(|s| s.provider == "mock"));
    // Once open, requests skip the dead deployment: no attempt is made there at all.
    let skipped = fire(&gw, "resilient", 20, 4, false).await;
    assert!(skipped.iter().all(|s| s.status == 200));

    // The primary comes back on the same port; after open_for a probe closes the breaker.
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let revived = switchyard_mock::MockState::new(MockConfig::default());
    let stop = tokio_util::sync::CancellationToken::new();
    tokio::spawn(switchyard_mock::serve(
        listener,
        revived.clone(),
        stop.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let back = fire(&gw, "resilient", 10, 1, false).await;
    assert!(back.iter().all(|s| s.status == 200));
    assert!(
        back.iter().filter(|s| s.provider == "primary").count() >= 9,
        "traffic returns to the recovered primary"
    );
    stop.cancel();
    gw.stop().await;

    let events = read_events(&nats.url()).await;
    let changes: Vec<_> = events
        .iter()
        .filter_map(|(_, e, _)| match &e.event {
            Event::BreakerChanged(c) => Some((c.provider.clone(), c.from, c.to)),
            _ => None,
        })
        .collect();
    assert_eq!(
        changes.first(),
        Some(&(
            "primary".to_owned(),
            BreakerState::Closed,
            BreakerState::Open
        ))
    );
    assert!(changes.contains(&(
        "primary".into(),
        BreakerState::HalfOpen,
        BreakerState::Closed
    )));
    // While open, requests paid no attempt on the primary.
    let primary_attempts: usize = events
        .iter()
        .filter_map(|(_, e, _)| match &e.event {
            Event::ResponseCompleted(r) => Some(r),
            _ => None,
        })
        .map(|r| {
            r.attempts
                .iter()
                .filter(|a| a.provider == "primary" && a.error.is_some())
                .count()
        })
        .sum();
    assert!(
        primary_attempts < 10,
        "{primary_attempts} failed attempts on a dead primary over 70 requests"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_storm_respects_retry_after_and_the_retry_budget() {
    let nats = Nats::start();
    let limited = Mock::start(MockConfig {
        fail_rate: 1.0,
        fail_status: 429,
        retry_after_secs: Some(1),
        ..MockConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = TestConfig::new(&nats, &limited, dir.path());
    cfg.extra = "\n[routing.retry]\nmax_retries = 3\n[routing.retry_budget]\nratio = 0.2\nmin_per_second = 0.5\n[routing.breaker]\nenabled = false\n".into();
    let gw = Gateway::start(cfg.build()).await;
    let n = 60;
    let started = Instant::now();
    let sent = fire(&gw, "gpt-4o-mini", n, 20, false).await;
    assert!(sent.iter().all(|s| s.status == 429));
    let upstream = limited.state.stats().chat as usize;
    let extra = upstream - n;
    // 0.2 of the window's first attempts plus 0.5/s over the 10 s budget window.
    assert!(extra <= 12 + 5, "{extra} retries for {n} requests");
    assert!(extra >= 1, "some retries were allowed");
    gw.stop().await;
    let events = read_events(&nats.url()).await;
    let retries: Vec<_> = events
        .iter()
        .filter_map(|(_, e, _)| match &e.event {
            Event::ResponseCompleted(r) => Some(r),
            _ => None,
        })
        .flat_map(|r| r.attempts.iter().filter(|a| a.kind == AttemptKind::Retry))
        .collect();
    assert_eq!(retries.len(), extra);
    assert!(
        retries.iter().all(|a| a.backoff_ms >= 1000),
        "every retry waited the upstream's Retry-After"
    );
    assert!(started.elapsed() >= Duration::from_secs(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_routing_moves_traffic_off_a_slow_deployment() {
    let nats = Nats::start();
    let fast = Mock::start(MockConfig::default()).await;
    let slow = Mock::start(MockConfig {
        latency_ms: 500,
        ..MockConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = TestConfig::new(&nats, &fast, dir.path());
    cfg.extra = format!(
        "{}\n[[models]]\nname = \"balanced\"\nstrategy = \"latency\"\ndeployments = [{{ provider = \"slow\", model = \"m\" }}, {{ provider = \"mock\", model = \"m\" }}]\n",
        provider("slow", &slow.base_url(), "5s")
    );
    let gw = Gateway::start(cfg.build()).await;
    // Ten seconds of traffic, eight requests at a time.
    let until = Instant::now() + Duration::from_secs(10);
    let mut sent = Vec::new();
    while Instant::now() < until {
        sent.extend(fire(&gw, "balanced", 40, 8, false).await);
    }
    assert!(sent.iter().all(|s| s.status == 200));
    let slow_share = share(&sent, "slow");
    assert!(
        slow_share <= 0.10,
        "{:.1} % of {} requests went to the slow deployment",
        slow_share * 100.0,
        sent.len()
    );
    // It recovers: traffic comes back.
    slow.state.set_config(MockConfig::default());
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut after = Vec::new();
    let until = Instant::now() + Duration::from_secs(8);
    while Instant::now() < until {
        after.extend(fire(&gw, "balanced", 40, 8, false).await);
    }
    let tail = &after[after.len() / 2..];
    assert!(
        share(tail, "slow") >= 0.2,
        "the recovered deployment gets traffic again ({:.1} %)",
        share(tail, "slow") * 100.0
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_split_holds_within_three_percent() {
    let nats = Nats::start();
    let a = Mock::start(MockConfig::default()).await;
    let b = Mock::start(MockConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = TestConfig::new(&nats, &a, dir.path());
    cfg.extra = format!(
        "{}\n[[models]]\nname = \"split\"\nstrategy = \"weighted\"\ndeployments = [{{ provider = \"mock\", model = \"m\", weight = 70 }}, {{ provider = \"b\", model = \"m\", weight = 30 }}]\n",
        provider("b", &b.base_url(), "5s")
    );
    let gw = Gateway::start(cfg.build()).await;
    let sent = fire(&gw, "split", 10_000, 32, false).await;
    assert!(sent.iter().all(|s| s.status == 200));
    let a_share = share(&sent, "mock");
    assert!(
        (a_share - 0.7).abs() <= 0.03,
        "split {:.2} / {:.2}",
        a_share,
        1.0 - a_share
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_rules_pick_the_model_and_are_recorded() {
    let nats = Nats::start();
    let mock = Mock::start(MockConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = TestConfig::new(&nats, &mock, dir.path());
    cfg.extra = r#"
[[models]]
name = "cheap"
deployments = [{ provider = "mock", model = "gpt-4o-mini" }]
[[models]]
name = "strong"
deployments = [{ provider = "mock", model = "gpt-4o" }]

[[routing.rules]]
name = "short-summaries"
target = "cheap"
when = { models = ["auto"], keywords = ["summarize"], max_prompt_tokens = 500 }
[[routing.rules]]
name = "research-team"
target = "strong"
when = { models = ["auto"], team = "research" }
[[routing.rules]]
name = "tools"
target = "strong"
when = { models = ["auto"], has_tools = true }
"#
    .into();
    let gw = Gateway::start(cfg.build()).await;
    let send = |key: &'static str, body: serde_json::Value| {
        let gw_url = gw.url("/v1/chat/completions");
        async move {
            let r = client()
                .post(gw_url)
                .bearer_auth(key)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let model = r
                .headers()
                .get("x-switchyard-model")
                .map(|v| v.to_str().unwrap().to_owned());
            (status, model)
        }
    };
    let summary = chat_body("auto", "Please summarize: rivers flow to the sea", false);
    assert_eq!(send(KEY, summary).await, (200, Some("gpt-4o-mini".into())));
    let hello = chat_body("auto", "hello", false);
    assert_eq!(
        send(KEY2, hello.clone()).await,
        (200, Some("gpt-4o".into()))
    );
    assert_eq!(
        send(KEY, hello).await.0,
        404,
        "no rule matched, no model `auto`"
    );
    let mut tools = chat_body("auto", "weather?", false);
    tools["tools"] = serde_json::json!([{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]);
    assert_eq!(send(KEY, tools).await, (200, Some("gpt-4o".into())));
    // Asking for a real model directly is untouched by rules scoped to `auto`.
    let direct = chat_body("cheap", "summarize this", false);
    assert_eq!(send(KEY2, direct).await, (200, Some("gpt-4o-mini".into())));
    gw.stop().await;

    let events = read_events(&nats.url()).await;
    let rules: HashMap<Option<String>, usize> = events
        .iter()
        .filter_map(|(_, e, _)| match &e.event {
            Event::RequestAccepted(r) => Some(r.rule.clone()),
            _ => None,
        })
        .fold(HashMap::new(), |mut m, r| {
            *m.entry(r).or_default() += 1;
            m
        });
    assert_eq!(rules.get(&Some("short-summaries".into())), Some(&1));
    assert_eq!(rules.get(&Some("research-team".into())), Some(&1));
    assert_eq!(rules.get(&Some("tools".into())), Some(&1));
    assert_eq!(rules.get(&None), Some(&1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hedging_cuts_the_tail_of_a_slow_primary() {
    let nats = Nats::start();
    // One request in five hangs for a second on the primary.
    let primary = Mock::start(MockConfig {
        timeout_rate: 0.2,
        hang_ms: 1000,
        ..MockConfig::default()
    })
    .await;
    let secondary = Mock::start(MockConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = TestConfig::new(&nats, &primary, dir.path());
    let deployments =
        "[{ provider = \"mock\", model = \"m\" }, { provider = \"second\", model = \"m\" }]";
    cfg.extra = format!(
        "{}\n[[models]]\nname = \"plain\"\ndeployments = {deployments}\n[[models]]\nname = \"hedged\"\ndeployments = {deployments}\nhedge = {{ after = \"100ms\" }}\n\n[routing.breaker]\nenabled = false\n",
        provider("second", &secondary.base_url(), "5s")
    );
    let gw = Gateway::start(cfg.build()).await;
    for stream in [false, true] {
        let plain = fire(&gw, "plain", 100, 10, stream).await;
        let hedged = fire(&gw, "hedged", 100, 10, stream).await;
        assert!(plain.iter().chain(&hedged).all(|s| s.status == 200));
        let (p99_plain, p99_hedged) = (percentile(&plain, 0.99), percentile(&hedged, 0.99));
        assert!(p99_plain >= Duration::from_millis(900), "{p99_plain:?}");
        assert!(
            p99_hedged < Duration::from_millis(600),
            "hedged p99 {p99_hedged:?} vs plain {p99_plain:?} (stream: {stream})"
        );
        assert!(share(&hedged, "second") > 0.05, "hedges answered");
    }
    gw.stop().await;
    let events = read_events(&nats.url()).await;
    let hedged: Vec<_> = events
        .iter()
        .filter_map(|(_, e, _)| match &e.event {
            Event::ResponseCompleted(r)
                if r.attempts.iter().any(|a| a.kind == AttemptKind::Hedge) =>
            {
                Some(r)
            }
            _ => None,
        })
        .collect();
    assert!(!hedged.is_empty());
    for r in hedged {
        // Both attempts are recorded; the loser as cancelled.
        assert_eq!(r.attempts.len(), 2, "{:?}", r.attempts);
        assert!(
            r.attempts
                .iter()
                .any(|a| a.error.as_ref().is_some_and(|e| e.class == "cancelled"))
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_pool_moves_to_the_next_key_on_429_without_waiting() {
    let nats = Nats::start();
    let limited = Mock::start(MockConfig {
        fail_rate: 1.0,
        fail_status: 429,
        retry_after_secs: Some(2),
        ..MockConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let keys: Vec<String> = (0..2)
        .map(|i| {
            let path = dir.path().join(format!("pool-{i}.key"));
            std::fs::write(&path, format!("sk-pool-{i}\n")).unwrap();
            format!("{{ file = {:?} }}", path.display().to_string())
        })
        .collect();
    let mut cfg = TestConfig::new(&nats, &limited, dir.path());
    cfg.extra = format!(
        "[providers.pooled]\nkind = \"openai\"\nbase_url = \"{}\"\napi_keys = [{}]\n\n[[models]]\nname = \"pooled\"\ndeployments = [{{ provider = \"pooled\", model = \"m\" }}]\n\n[routing.breaker]\nenabled = false\n",
        limited.base_url(),
        keys.join(", ")
    );
    let gw = Gateway::start(cfg.build()).await;
    let started = Instant::now();
    let r = post_chat(&gw, KEY, &chat_body("pooled", "hi", false)).await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "2");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "the second key was tried at once, not after Retry-After"
    );
    gw.stop().await;
    let events = read_events(&nats.url()).await;
    let attempts: Vec<_> = events
        .iter()
        .find_map(|(_, e, _)| match &e.event {
            Event::ResponseCompleted(r) => Some(r.attempts.clone()),
            _ => None,
        })
        .unwrap();
    let keys: Vec<_> = attempts
        .iter()
        .map(|a| (a.kind, a.key_index, a.backoff_ms))
        .collect();
    assert_eq!(
        keys,
        [
            (AttemptKind::First, Some(0), 0),
            (AttemptKind::Retry, Some(1), 0)
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_without_a_first_token_falls_back_before_the_client_sees_anything() {
    let nats = Nats::start();
    let stuck = Mock::start(MockConfig {
        timeout_rate: 1.0,
        hang_ms: 5000,
        ..MockConfig::default()
    })
    .await;
    let backup = Mock::start(MockConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = TestConfig::new(&nats, &stuck, dir.path());
    cfg.extra = format!(
        "{}\n[[models]]\nname = \"resilient\"\ndeployments = [{{ provider = \"stuck\", model = \"m\" }}, {{ provider = \"backup\", model = \"m\" }}]\n\n[routing.retry]\nmax_retries = 0\n",
        provider("stuck", &stuck.base_url(), "300ms"),
    ) + &provider("backup", &backup.base_url(), "5s");
    let gw = Gateway::start(cfg.build()).await;
    let started = Instant::now();
    let sent = fire(&gw, "resilient", 1, 1, true).await;
    assert_eq!(sent[0].status, 200);
    assert_eq!(sent[0].provider, "backup");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    gw.stop().await;
    let events = read_events(&nats.url()).await;
    let done = events
        .iter()
        .find_map(|(_, e, _)| match &e.event {
            Event::ResponseCompleted(r) => Some(r.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(done.attempts.len(), 2);
    assert_eq!(done.attempts[0].error.as_ref().unwrap().class, "timeout");
    assert_eq!(done.attempts[1].kind, AttemptKind::Fallback);
    assert_eq!(done.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prompt_too_long_for_the_model_falls_back_to_a_larger_one() {
    let nats = Nats::start();
    let small = Mock::start(MockConfig {
        context_window: Some(20),
        ..MockConfig::default()
    })
    .await;
    let large = Mock::start(MockConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = TestConfig::new(&nats, &small, dir.path());
    cfg.extra = format!(
        "{}\n[[models]]\nname = \"small\"\ndeployments = [{{ provider = \"mock\", model = \"gpt-4o-mini\" }}]\nfallback_on = [{{ class = \"context_length_exceeded\", model = \"large\" }}]\n[[models]]\nname = \"large\"\ndeployments = [{{ provider = \"large\", model = \"gpt-4o\" }}]\n",
        provider("large", &large.base_url(), "5s")
    );
    let gw = Gateway::start(cfg.build()).await;
    let short = post_chat(&gw, KEY, &chat_body("small", "hi there", false)).await;
    assert_eq!(short.status(), 200);
    assert_eq!(short.headers()["x-switchyard-model"], "gpt-4o-mini");
    let long_prompt = "tell me everything about rivers and lakes and seas ".repeat(5);
    let long = post_chat(&gw, KEY, &chat_body("small", &long_prompt, false)).await;
    assert_eq!(long.status(), 200);
    assert_eq!(long.headers()["x-switchyard-model"], "gpt-4o");
    assert_eq!(long.headers()["x-switchyard-attempts"], "2");
    // Other client errors are not retried or moved: a bad request stays a 400.
    let mut bad = chat_body("small", "hi", false);
    bad["n"] = serde_json::json!(1000);
    assert_eq!(post_chat(&gw, KEY, &bad).await.status(), 400);
    gw.stop().await;
    let events = read_events(&nats.url()).await;
    let moved = events
        .iter()
        .filter_map(|(_, e, _)| match &e.event {
            Event::ResponseCompleted(r) if r.attempts.len() == 2 => Some(r.clone()),
            _ => None,
        })
        .next()
        .unwrap();
    assert_eq!(moved.attempts[0].status, 400);
    assert_eq!(moved.attempts[0].model, "gpt-4o-mini");
    assert_eq!(moved.attempts[1].kind, AttemptKind::Fallback);
    assert_eq!(moved.provider_model.as_deref(), Some("gpt-4o"));
}
