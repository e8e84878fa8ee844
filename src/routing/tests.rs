//! The attempt loop against in-process providers: no network, time and failures controlled.

use super::*;
use crate::config::{BreakerConfig, Deployment as DeploymentSpec, ProviderKind};
use crate::events::AttemptKind;
use crate::providers::ChatResponse;
use futures::FutureExt;
use futures::future::BoxFuture;
use std::sync::atomic::{AtomicU32, Ordering};

/// A provider that fails the first `fail` calls with a 503, then hangs forever.
struct Scripted {
    fail: u32,
    calls: AtomicU32,
}

impl Provider for Scripted {
    fn name(&self) -> &str {
        "scripted"
    }
    fn chat<'a>(
        &'a self,
        _req: &'a ChatRequest,
        _model: &'a str,
    ) -> BoxFuture<'a, Result<ChatResponse, ProviderError>> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        if n < self.fail {
            let e = ProviderError::upstream(503, "down".into(), None, None, None);
            return futures::future::ready(Err(e)).boxed();
        }
        futures::future::pending().boxed()
    }
    fn chat_stream<'a>(
        &'a self,
        _req: &'a ChatRequest,
        _model: &'a str,
    ) -> BoxFuture<'a, Result<ChatStream, ProviderError>> {
        futures::future::ready(Err(ProviderError::Unsupported("streams"))).boxed()
    }
    fn embeddings<'a>(
        &'a self,
        _req: &'a EmbeddingsRequest,
        _model: &'a str,
    ) -> BoxFuture<'a, Result<EmbeddingsResponse, ProviderError>> {
        futures::future::ready(Err(ProviderError::Unsupported("embeddings"))).boxed()
    }
}

fn table(provider: Arc<dyn Provider>) -> RouteTable {
    let spec = Arc::new(ProviderSpec::new(
        "p",
        ProviderKind::Openai,
        "http://127.0.0.1:1",
    ));
    let model = ModelSpec {
        name: "m".into(),
        deployments: vec![DeploymentSpec {
            provider: spec,
            model: "up".into(),
            weight: 1,
        }],
        strategy: Strategy::Ordered,
        fallbacks: Vec::new(),
        fallback_on: Vec::new(),
        hedge: None,
        cache: crate::config::CacheConfig::default().policy(None),
    };
    let routing = RoutingConfig {
        retry: RetryConfig {
            max_retries: 0,
            ..RetryConfig::default()
        },
        breaker: BreakerConfig {
            consecutive_failures: 1,
            open_for: Duration::from_millis(20),
            ..BreakerConfig::default()
        },
        ..RoutingConfig::default()
    };
    let providers = HashMap::from([("p".to_owned(), vec![provider])]);
    RouteTable::build(&[model], &routing, &providers)
}

#[tokio::test]
async fn an_abandoned_half_open_probe_gives_its_admission_back() {
    let t = table(Arc::new(Scripted {
        fail: 1,
        calls: AtomicU32::new(0),
    }));
    let route = t.get("m").cloned().unwrap_or_else(|| panic!("model m"));
    let req: ChatRequest =
        serde_json::from_value(serde_json::json!({"model": "m", "messages": []}))
            .unwrap_or_else(|e| panic!("{e}"));
    // One failure opens the breaker.
    let first = chat(&t, &route, &req).await;
    assert!(first.result.is_err());
    assert_eq!(first.breaker_changes.len(), 1);
    tokio::time::sleep(Duration::from_millis(30)).await;
    // The probe hangs and its client goes away: the request future is dropped mid-call.
    let abandoned = tokio::time::timeout(Duration::from_millis(20), chat(&t, &route, &req)).await;
    assert!(abandoned.is_err(), "the probe hangs");
    // The next request may probe again instead of finding the breaker waiting forever.
    let d = &route.deployments[0];
    assert!(
        !d.health.is_open(Instant::now()),
        "the probe slot was given back"
    );
    assert!(matches!(
        d.health.admit(Instant::now()),
        health::Admission::Probe { .. }
    ));
}

#[test]
fn latency_routing_explores_a_slow_deployment_a_few_times_a_second_at_most() {
    let spec = |name: &str| {
        Arc::new(ProviderSpec::new(
            name,
            ProviderKind::Openai,
            "http://127.0.0.1:1",
        ))
    };
    let model = ModelSpec {
        name: "m".into(),
        deployments: ["slow", "fast"]
            .iter()
            .map(|p| DeploymentSpec {
                provider: spec(p),
                model: "up".into(),
                weight: 1,
            })
            .collect(),
        strategy: Strategy::Latency,
        fallbacks: Vec::new(),
        fallback_on: Vec::new(),
        hedge: None,
        cache: crate::config::CacheConfig::default().policy(None),
    };
    let adapter = |_: &str| -> Arc<dyn Provider> {
        Arc::new(Scripted {
            fail: 0,
            calls: AtomicU32::new(0),
        })
    };
    let providers = HashMap::from([
        ("slow".to_owned(), vec![adapter("slow")]),
        ("fast".to_owned(), vec![adapter("fast")]),
    ]);
    let t = RouteTable::build(&[model], &RoutingConfig::default(), &providers);
    let route = t.get("m").cloned().unwrap_or_else(|| panic!("model m"));
    let now = Instant::now();
    for (d, ms) in route.deployments.iter().zip([500, 5]) {
        d.health.admit(now);
        d.health
            .record(now, None, true, Some(Duration::from_millis(ms)));
    }
    // One simulated second, 10,000 requests: the cheaper deployment takes them, the slow one
    // gets only the explorations (one per 250 ms).
    let slow_first = (0..10_000u64)
        .filter(|i| route.order(now + Duration::from_micros(i * 100))[0] == 0)
        .count();
    assert!((1..=4).contains(&slow_first), "{slow_first} of 10,000");
    // A fast answer after a gap pulls its average down at once.
    let later = now + Duration::from_secs(1);
    route.deployments[0].health.admit(later);
    route.deployments[0]
        .health
        .record(later, None, true, Some(Duration::from_millis(5)));
    assert!(route.deployments[0].health.cost(later) < 300_000.0);
}

/// A provider that always answers.
struct Answering;

impl Provider for Answering {
    fn name(&self) -> &str {
        "answering"
    }
    fn chat<'a>(
        &'a self,
        _req: &'a ChatRequest,
        _model: &'a str,
    ) -> BoxFuture<'a, Result<ChatResponse, ProviderError>> {
        futures::future::ready(Ok(ChatResponse {
            body: bytes::Bytes::from_static(b"{}"),
            usage: None,
            finish_reason: Some("stop".into()),
        }))
        .boxed()
    }
    fn chat_stream<'a>(
        &'a self,
        _req: &'a ChatRequest,
        _model: &'a str,
    ) -> BoxFuture<'a, Result<ChatStream, ProviderError>> {
        futures::future::ready(Err(ProviderError::Unsupported("streams"))).boxed()
    }
    fn embeddings<'a>(
        &'a self,
        _req: &'a EmbeddingsRequest,
        _model: &'a str,
    ) -> BoxFuture<'a, Result<EmbeddingsResponse, ProviderError>> {
        futures::future::ready(Err(ProviderError::Unsupported("embeddings"))).boxed()
    }
}

#[tokio::test]
async fn a_hedged_model_whose_first_deployment_fails_fast_falls_back_to_the_second() {
    let spec = |name: &str| {
        Arc::new(ProviderSpec::new(
            name,
            ProviderKind::Openai,
            "http://127.0.0.1:1",
        ))
    };
    let model = ModelSpec {
        name: "m".into(),
        deployments: ["broken", "healthy"]
            .iter()
            .map(|p| DeploymentSpec {
                provider: spec(p),
                model: "up".into(),
                weight: 1,
            })
            .collect(),
        strategy: Strategy::Ordered,
        fallbacks: Vec::new(),
        fallback_on: Vec::new(),
        hedge: Some(crate::config::RawHedge {
            after: Some(Duration::from_secs(5)),
            min_delay: Duration::from_millis(1),
        }),
        cache: crate::config::CacheConfig::default().policy(None),
    };
    let broken: Arc<dyn Provider> = Arc::new(Scripted {
        fail: u32::MAX,
        calls: AtomicU32::new(0),
    });
    let providers = HashMap::from([
        ("broken".to_owned(), vec![broken]),
        (
            "healthy".to_owned(),
            vec![Arc::new(Answering) as Arc<dyn Provider>],
        ),
    ]);
    let t = RouteTable::build(&[model], &RoutingConfig::default(), &providers);
    let route = t.get("m").cloned().unwrap_or_else(|| panic!("model m"));
    let req: ChatRequest =
        serde_json::from_value(serde_json::json!({"model": "m", "messages": []}))
            .unwrap_or_else(|e| panic!("{e}"));
    let started = Instant::now();
    let out = chat(&t, &route, &req).await;
    let (_, answered) = out.result.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(answered.provider_name, "healthy");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "no wait for the hedge delay"
    );
    let kinds: Vec<_> = out
        .attempts
        .iter()
        .map(|a| (a.provider.as_str(), a.kind))
        .collect();
    assert_eq!(
        kinds,
        [
            ("broken", AttemptKind::First),
            ("healthy", AttemptKind::Fallback)
        ]
    );
}
