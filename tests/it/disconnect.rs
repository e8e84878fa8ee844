//! Clients that leave early: every admitted request still ends with its closing events. Clients
//! hang up at random moments (while the attempt runs, during a fallback, before a stream's first
//! chunk, mid-stream) and the stream must then hold, for every `RequestAccepted`, exactly one
//! `ResponseCompleted`, and one `SpendRecorded` when a provider answered.

use crate::harness::*;
use futures::StreamExt;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::time::Duration;
use switchyard::events::Event;
use switchyard_mock::MockConfig;

#[derive(Debug, Clone, Copy)]
enum Path {
    Plain,
    Stream,
    FallbackPlain,
    FallbackStream,
    Messages,
}

const PATHS: [Path; 5] = [
    Path::Plain,
    Path::Stream,
    Path::FallbackPlain,
    Path::FallbackStream,
    Path::Messages,
];

/// One request on `path` that the client abandons after `cut` (reading the body included).
async fn abandon(client: &reqwest::Client, gw: &Gateway, path: Path, cut: Duration, i: usize) {
    let (model, stream) = match path {
        Path::Plain | Path::Messages => ("gpt-4o-mini", false),
        Path::Stream => ("gpt-4o-mini", true),
        Path::FallbackPlain => ("fallback", false),
        Path::FallbackStream => ("fallback", true),
    };
    let request = match path {
        Path::Messages => client
            .post(gw.url("/v1/messages"))
            .json(&serde_json::json!({
                "model": model, "max_tokens": 64, "stream": i.is_multiple_of(2),
                "messages": [{"role": "user", "content": format!("request {i}")}],
            })),
        _ => client.post(gw.url("/v1/chat/completions")).json(&chat_body(
            model,
            &format!("request {i}"),
            stream,
        )),
    };
    let call = async {
        let resp = request.bearer_auth(KEY).send().await?;
        let mut body = resp.bytes_stream();
        while let Some(chunk) = body.next().await {
            chunk?;
        }
        Ok::<_, reqwest::Error>(())
    };
    // Dropping the future closes the connection, as a client that gives up does.
    let _ = tokio::time::timeout(cut, call).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_leave_at_random_moments_never_orphan_a_request() {
    let nats = Nats::start();
    // Answers (or first chunks) after 300 ms; a stream then takes about 20 × 40 ms more.
    let mock = Mock::start(MockConfig {
        latency_ms: 300,
        chunk_delay_ms: 40,
        stream_words: 20,
        ..MockConfig::default()
    })
    .await;
    // The fallback model's primary fails every call after 150 ms, so a client may leave
    // during the failed attempt, the fallback attempt or the fallback's stream.
    let failing = Mock::start(MockConfig {
        latency_ms: 150,
        fail_rate: 1.0,
        fail_status: 503,
        ..MockConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = TestConfig::new(&nats, &mock, dir.path());
    cfg.extra = format!(
        "[providers.failing]\nkind = \"openai\"\nbase_url = \"{}\"\ntimeout = \"5s\"\n\n\
         [[models]]\nname = \"fallback\"\ndeployments = [{{ provider = \"failing\", model = \"gpt-4o-mini\" }}, {{ provider = \"mock\", model = \"gpt-4o-mini\" }}]\n\n\
         [routing.retry]\nmax_retries = 0\n[routing.breaker]\nconsecutive_failures = 100000\nfailure_ratio = 1.0\n",
        failing.base_url()
    );
    let gw = Gateway::start(cfg.build()).await;

    let seed: u64 = std::env::var("SWITCHYARD_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("disconnect test seed {seed} (SWITCHYARD_TEST_SEED to repeat)");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let n = 200;
    let plan: Vec<(Path, Duration)> = (0..n)
        .map(|_| {
            let path = PATHS[rng.random_range(0..PATHS.len())];
            // Most cuts fall while the answer is being made; some after it was complete.
            (path, Duration::from_millis(rng.random_range(5..1_400)))
        })
        .collect();
    let client = client();
    futures::stream::iter(plan.iter().enumerate())
        .map(|(i, &(path, cut))| {
            let (client, gw) = (&client, &gw);
            async move { abandon(client, gw, path, cut, i).await }
        })
        .buffer_unordered(24)
        .collect::<Vec<()>>()
        .await;

    // The requests finish on their own tasks (a stream's upstream is cut at once, a plain
    // answer runs to its end): wait for every admitted one to close. A client that left while
    // its body was being read was never admitted and has no events.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let events = wait_for(
        "every admitted request closed",
        Duration::from_secs(30),
        || async {
            let events = read_events(&nats.url()).await;
            let accepted = count(&events, |e| matches!(e, Event::RequestAccepted(_)));
            let closed = count(&events, |e| matches!(e, Event::ResponseCompleted(_)));
            (accepted >= n / 2 && closed == accepted).then_some(events)
        },
    )
    .await;

    let mut ids = std::collections::HashSet::new();
    for (_, env, _) in &events {
        assert!(ids.insert(env.id), "event {} published twice", env.id);
    }
    #[derive(Default)]
    struct Life {
        accepted: usize,
        completed: Vec<(u16, Option<String>, bool)>,
        spend: usize,
    }
    let mut lives: HashMap<String, Life> = HashMap::new();
    for (_, env, _) in &events {
        let life = lives.entry(env.request_id.to_string()).or_default();
        match &env.event {
            Event::RequestAccepted(_) => life.accepted += 1,
            Event::ResponseCompleted(c) => life.completed.push((
                c.status,
                c.error.as_ref().map(|e| e.class.clone()),
                c.provider.is_some(),
            )),
            Event::SpendRecorded(_) => life.spend += 1,
            _ => {}
        }
    }
    let (mut disconnected, mut before_answer, mut whole) = (0, 0, 0);
    let mut other: HashMap<(u16, String), usize> = HashMap::new();
    for (id, life) in lives.iter().filter(|(_, l)| l.accepted > 0) {
        assert_eq!(life.accepted, 1, "{id}: one RequestAccepted");
        assert_eq!(life.completed.len(), 1, "{id}: one ResponseCompleted");
        let (status, class, answered) = life.completed[0].clone();
        assert_eq!(
            life.spend,
            usize::from(answered),
            "{id}: SpendRecorded exactly when a provider answered ({status} {class:?})"
        );
        match class.as_deref() {
            Some("client_disconnected") => {
                disconnected += 1;
                if status == 499 {
                    before_answer += 1;
                }
            }
            None => whole += 1,
            Some(c) => *other.entry((status, c.to_owned())).or_default() += 1,
        }
    }
    eprintln!(
        "{n} requests: {disconnected} recorded as client_disconnected ({before_answer} before the answer was handed over), {whole} answered whole, others {other:?}"
    );
    // The plan cuts most requests while they run: the test means nothing if none was cut.
    assert!(
        before_answer >= 20,
        "only {before_answer} clients left before their answer"
    );
    assert!(disconnected > before_answer, "no stream was cut mid-way");
    assert!(whole >= 5, "only {whole} requests ran to their end");

    let metrics = client
        .get(gw.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let counted: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("switchyard_client_disconnects_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    // Other tests in this process share the metrics recorder: at least ours are counted.
    assert!(
        counted as usize >= disconnected,
        "{counted} disconnects counted in /metrics, {disconnected} recorded"
    );
    gw.stop().await;
}
