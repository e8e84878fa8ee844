//! A three-node JetStream cluster under failover: the gateway connects through a seed list to an
//! R3 stream, the stream leader is killed mid-load and restarted, then the node the gateway is
//! connected to is killed; afterwards every answered request is checked by event id.
//!
//! Run with `--nocapture` to see the figures (leaderless time, outbox high-water mark, requests).

mod nodes;

use crate::harness::*;
use nodes::NatsCluster;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use switchyard::config::{self, Config, RawConfig, RawPricing};
use switchyard::events::{Envelope, Event, decode};
use switchyard_mock::MockConfig;

/// A JetStream context on the running nodes whose API calls give up quickly, so that polling
/// through a leader election measures the election, not the client's 5 s default timeout.
async fn js_on(seeds: &[String]) -> jetstream::Context {
    let client = async_nats::ConnectOptions::new()
        .name("cluster-test-observer")
        .connect(seeds)
        .await
        .expect("test client connects to the cluster");
    let mut js = jetstream::new(client);
    js.set_timeout(Duration::from_millis(500));
    js
}

/// The stream leader's server name and its replicas, when the stream answers.
async fn stream_cluster(
    js: &jetstream::Context,
) -> Option<(String, Vec<jetstream::stream::PeerInfo>)> {
    let s = js.get_stream("SWITCHYARD").await.ok()?;
    let c = s.cached_info().cluster.clone()?;
    Some((c.leader?, c.replicas))
}

/// Poll until the stream answers with a leader other than `gone`; the time since `since`.
async fn wait_new_leader(
    js: &jetstream::Context,
    gone: &str,
    since: Instant,
) -> (Duration, String) {
    loop {
        if let Some((leader, _)) = stream_cluster(js).await
            && leader != gone
        {
            return (since.elapsed(), leader);
        }
        assert!(
            since.elapsed() < Duration::from_secs(60),
            "the stream found no new leader within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Every event of the stream, read through an ephemeral consumer and checked against the
/// stream's message count. A cluster that is still settling (a node catching up, the meta leader
/// busy) may time out an API call or end a fetch early, so the whole read is retried rather than
/// trusted when it comes back short.
async fn read_all_events(seeds: &[String]) -> Vec<(u64, Envelope, Vec<u8>)> {
    let deadline = Instant::now() + Duration::from_secs(90);
    let client = async_nats::ConnectOptions::new()
        .connect(seeds)
        .await
        .expect("test client connects to the cluster");
    let mut js = jetstream::new(client);
    js.set_timeout(Duration::from_secs(10));
    loop {
        match read_once(&js).await {
            Ok(events) => return events,
            Err(e) => {
                assert!(Instant::now() < deadline, "could not read the stream: {e}");
                eprintln!("reading the stream again: {e}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

async fn read_once(js: &jetstream::Context) -> Result<Vec<(u64, Envelope, Vec<u8>)>, String> {
    use futures::StreamExt;
    let mut stream = js
        .get_stream("SWITCHYARD")
        .await
        .map_err(|e| e.to_string())?;
    let want = stream
        .info()
        .await
        .map_err(|e| e.to_string())?
        .state
        .messages;
    let consumer = stream
        .create_consumer(jetstream::consumer::pull::Config {
            deliver_policy: jetstream::consumer::DeliverPolicy::All,
            ack_policy: jetstream::consumer::AckPolicy::None,
            inactive_threshold: Duration::from_secs(30),
            ..Default::default()
        })
        .await
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    while (out.len() as u64) < want {
        let mut batch = consumer
            .fetch()
            .max_messages(1000)
            .expires(Duration::from_secs(2))
            .messages()
            .await
            .map_err(|e| e.to_string())?;
        let before = out.len();
        while let Some(m) = batch.next().await {
            let m = m.map_err(|e| e.to_string())?;
            let seq = m.info().map_err(|e| e.to_string())?.stream_sequence;
            let env = decode(&m.payload).expect("every event decodes");
            out.push((seq, env, m.payload.to_vec()));
        }
        if out.len() == before {
            return Err(format!("read {} of {want} events", out.len()));
        }
    }
    Ok(out)
}

/// Poll `f` for up to 60 s; a timeout panics with the gateway's readiness report, so that a
/// failure says which part (connection, stream, outbox, projection) was stuck.
async fn settle<T, F, Fut>(gw: &Gateway, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if Instant::now() >= deadline {
            let r = readyz(gw).await;
            panic!("timed out waiting for {what}; gateway /readyz: {r}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The shared test config with `nats.replicas = 3` and a seed list.
fn cluster_config(cluster: &NatsCluster, mock: &Mock, dir: &std::path::Path) -> Config {
    let cfg = TestConfig {
        nats_url: cluster.seeds(),
        mock_url: mock.base_url(),
        data_dir: dir.to_owned(),
        extra: String::new(),
        events: String::new(),
        max_body_bytes: 65_536,
        budgets_in_process: true,
        listen: "127.0.0.1:0".into(),
        server: String::new(),
        pricing: std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/pricing.toml"),
    };
    let toml = cfg.toml().replacen(
        "stream = \"SWITCHYARD\"",
        "stream = \"SWITCHYARD\"\nreplicas = 3",
        1,
    );
    let raw: RawConfig = toml::from_str(&toml).expect("config parses");
    let pricing: RawPricing = toml::from_str(
        &std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/pricing.toml"),
        )
        .expect("pricing file"),
    )
    .expect("pricing parses");
    config::validate(raw, Some(pricing), |r| r.resolve()).expect("cluster config is valid")
}

/// What one client request ended as.
enum Outcome {
    /// 200 and the whole body read; the request id from `x-request-id`.
    Answered(String),
    /// Another status (with the request id when the gateway gave one).
    Refused(u16, Option<String>),
    /// No answer at all (connection error, body cut, client timeout).
    Failed(String),
}

async fn one_request(http: &reqwest::Client, gw: &Gateway, n: u64, stream: bool) -> Outcome {
    let body = chat_body("gpt-4o-mini", &format!("cluster request {n}"), stream);
    let r = match http
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(if n.is_multiple_of(2) { KEY } else { KEY2 })
        .json(&body)
        .send()
        .await
    {
        Ok(r) => r,
        Err(e) => return Outcome::Failed(e.to_string()),
    };
    let status = r.status().as_u16();
    let id = r
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let text = match r.text().await {
        Ok(t) => t,
        Err(e) => return Outcome::Failed(format!("body: {e}")),
    };
    match (status, id) {
        (200, Some(id)) if !stream || text.contains("data: [DONE]") => Outcome::Answered(id),
        (200, id) => Outcome::Failed(format!("incomplete 200 ({id:?}): {text:.200}")),
        (s, id) => Outcome::Refused(s, id),
    }
}

#[derive(Default)]
struct Sampled {
    max_outbox: AtomicU64,
    longest_disconnected_ms: AtomicU64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_node_cluster_loses_no_event_when_the_leader_and_the_gateways_node_die() {
    let test_start = Instant::now();
    let mut cluster = NatsCluster::start(3);
    cluster.wait_formed(Duration::from_secs(30)).await;
    let formed = test_start.elapsed();

    let mock = Mock::start(MockConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = cluster_config(&cluster, &mock, dir.path());
    let gw = Arc::new(Gateway::start(cfg).await);
    wait_drained(&gw).await;

    // The stream exists with three replicas, read back from the cluster.
    let js = js_on(&cluster.live_seeds()).await;
    let s = js.get_stream("SWITCHYARD").await.expect("stream created");
    assert_eq!(s.cached_info().config.num_replicas, 3);
    let (_, replicas) = stream_cluster(&js).await.expect("stream has a leader");
    assert_eq!(
        replicas.len(),
        2,
        "a leader and two followers: {replicas:?}"
    );

    // Steady load: a few clients, plain and streamed requests alternating, paced.
    let stop_load = Arc::new(AtomicBool::new(false));
    let outcomes = Arc::new(std::sync::Mutex::new(Vec::<Outcome>::new()));
    let counter = Arc::new(AtomicU64::new(0));
    let mut load = Vec::new();
    for _ in 0..4 {
        let (gw, stop, outcomes, counter) = (
            Arc::clone(&gw),
            Arc::clone(&stop_load),
            Arc::clone(&outcomes),
            Arc::clone(&counter),
        );
        load.push(tokio::spawn(async move {
            let http = reqwest::Client::builder()
                .timeout(Duration::from_secs(15))
                .build()
                .unwrap();
            while !stop.load(Ordering::Relaxed) {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let o = one_request(&http, &gw, n, n % 3 == 0).await;
                outcomes.lock().unwrap().push(o);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
    }

    // Sample the gateway's readiness through the whole run.
    let sampled = Arc::new(Sampled::default());
    let sampler = {
        let (gw, stop, sampled) = (
            Arc::clone(&gw),
            Arc::clone(&stop_load),
            Arc::clone(&sampled),
        );
        tokio::spawn(async move {
            let mut down_since: Option<Instant> = None;
            while !stop.load(Ordering::Relaxed) {
                let r = readyz(&gw).await;
                let pending = r["outbox_pending"].as_u64().unwrap_or(0);
                sampled.max_outbox.fetch_max(pending, Ordering::Relaxed);
                if r["nats_connected"] == true {
                    if let Some(t) = down_since.take() {
                        sampled
                            .longest_disconnected_ms
                            .fetch_max(t.elapsed().as_millis() as u64, Ordering::Relaxed);
                    }
                } else {
                    down_since.get_or_insert_with(Instant::now);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };

    tokio::time::sleep(Duration::from_secs(4)).await;

    // 1. Kill the stream leader mid-load and time the election from a client on the survivors.
    let (leader, _) = stream_cluster(&js).await.expect("stream leader");
    let first = cluster.index_of(&leader);
    let killed_at = Instant::now();
    cluster.kill(first);
    let observer = js_on(&cluster.live_seeds()).await;
    let (leaderless, new_leader) = wait_new_leader(&observer, &leader, killed_at).await;
    eprintln!("killed stream leader {leader}; {new_leader} leads after {leaderless:?}");

    tokio::time::sleep(Duration::from_secs(3)).await;

    // 2. Restart it on its ports and store; it catches up as a follower.
    cluster.restart(first);
    let restarted_at = Instant::now();
    let caught_up = wait_for(
        "restarted node current again",
        Duration::from_secs(30),
        || {
            let observer = &observer;
            let name = cluster.name(first).to_owned();
            async move {
                let (_, replicas) = stream_cluster(observer).await?;
                replicas
                    .iter()
                    .any(|p| p.name == name && p.current && !p.offline)
                    .then(|| restarted_at.elapsed())
            }
        },
    )
    .await;
    eprintln!("restarted {leader}; current again after {caught_up:?}");

    tokio::time::sleep(Duration::from_secs(2)).await;

    // 3. Kill the node the gateway is connected to.
    let held = wait_for("the gateway's connection", Duration::from_secs(10), || {
        cluster.holder_of("switchyard")
    })
    .await;
    let held_name = cluster.name(held).to_owned();
    let (leader_before, _) = stream_cluster(&observer).await.expect("stream leader");
    let killed_at = Instant::now();
    cluster.kill(held);
    let moved_to = wait_for("the gateway reconnects", Duration::from_secs(30), || {
        cluster.holder_of("switchyard")
    })
    .await;
    let reconnected = killed_at.elapsed();
    let observer2 = js_on(&cluster.live_seeds()).await;
    let (second_leaderless, leader_after) =
        wait_new_leader(&observer2, &held_name, killed_at).await;
    eprintln!(
        "killed {held_name} (the gateway's node; stream leader was {leader_before}); \
         gateway on {} after {reconnected:?}; stream leader {leader_after} after {second_leaderless:?}",
        cluster.name(moved_to)
    );

    tokio::time::sleep(Duration::from_secs(4)).await;
    stop_load.store(true, Ordering::Relaxed);
    for l in load {
        l.await.unwrap();
    }
    sampler.await.unwrap();
    cluster.restart(held);
    cluster.wait_formed(Duration::from_secs(60)).await;

    // Everything the gateway holds reaches the stream.
    settle(&gw, "outbox drained and stream ready", || async {
        let r = readyz(&gw).await;
        (r["status"] == "ready" && r["outbox_pending"] == 0).then_some(())
    })
    .await;

    let outcomes = std::mem::take(&mut *outcomes.lock().unwrap());
    let answered: Vec<&String> = outcomes
        .iter()
        .filter_map(|o| match o {
            Outcome::Answered(id) => Some(id),
            _ => None,
        })
        .collect();
    let refused: Vec<(u16, &Option<String>)> = outcomes
        .iter()
        .filter_map(|o| match o {
            Outcome::Refused(s, id) => Some((*s, id)),
            _ => None,
        })
        .collect();
    let failed: Vec<&String> = outcomes
        .iter()
        .filter_map(|o| match o {
            Outcome::Failed(e) => Some(e),
            _ => None,
        })
        .collect();

    // Check by event id: every event once, every answered request complete.
    let events = read_all_events(&cluster.live_seeds()).await;
    let mut ids = HashSet::new();
    for (seq, e, _) in &events {
        assert!(
            ids.insert(e.id),
            "event {} is in the stream twice (seq {seq})",
            e.id
        );
    }
    let mut kinds: HashMap<String, BTreeMap<&'static str, usize>> = HashMap::new();
    for (_, e, _) in &events {
        *kinds
            .entry(e.request_id.to_string())
            .or_default()
            .entry(e.event.kind())
            .or_default() += 1;
    }
    for id in &answered {
        let k = kinds.get(*id).cloned().unwrap_or_default();
        assert_eq!(
            (
                k.get("request_accepted").copied(),
                k.get("response_completed").copied(),
                k.get("spend_recorded").copied()
            ),
            (Some(1), Some(1), Some(1)),
            "answered request {id}: {k:?}"
        );
    }
    for (id, k) in &kinds {
        assert!(
            k.values().all(|n| *n == 1),
            "request {id} has a duplicated event: {k:?}"
        );
    }

    // The budgets projection equals the SpendRecorded events, key by key.
    let mut expected: BTreeMap<String, (u64, u64, u64, u64)> = BTreeMap::new();
    for (_, e, _) in &events {
        if let Event::SpendRecorded(s) = &e.event {
            let t = expected.entry(s.principal.key_id.clone()).or_default();
            *t = (
                t.0 + 1,
                t.1 + s.usage.input_tokens,
                t.2 + s.usage.output_tokens,
                t.3 + s.cost_nanos,
            );
        }
    }
    let spend_events: u64 = expected.values().map(|t| t.0).sum();
    let report = settle(&gw, "budgets projection caught up", || async {
        let r = client()
            .get(gw.url("/admin/spend?group_by=key"))
            .bearer_auth(ADMIN)
            .send()
            .await
            .ok()?
            .json::<serde_json::Value>()
            .await
            .ok()?;
        let total: u64 = r["data"]
            .as_array()?
            .iter()
            .filter_map(|row| row["requests"].as_u64())
            .sum();
        (total >= spend_events).then_some(r)
    })
    .await;
    let got: BTreeMap<String, (u64, u64, u64, u64)> = report["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            let n = |f: &str| row[f].as_u64().unwrap();
            (
                row["key"].as_str().unwrap().to_owned(),
                (
                    n("requests"),
                    n("input_tokens"),
                    n("output_tokens"),
                    n("cost_nanos"),
                ),
            )
        })
        .collect();
    assert_eq!(
        got, expected,
        "budgets (requests, input, output, nanos) by key"
    );

    let refused_ids = refused.iter().filter(|(_, id)| id.is_some()).count();
    eprintln!(
        "cluster figures: formed in {formed:?}; stream leaderless {leaderless:?} after killing \
         the leader, {second_leaderless:?} after killing the gateway's node; gateway reconnected \
         within {reconnected:?} (longest sampled disconnection {} ms); outbox max {} events; \
         {} requests answered, {} refused ({} with a request id; statuses {:?}), {} failed {:?}; \
         {} events in the stream, {} SpendRecorded; total {:?}",
        sampled.longest_disconnected_ms.load(Ordering::Relaxed),
        sampled.max_outbox.load(Ordering::Relaxed),
        answered.len(),
        refused.len(),
        refused_ids,
        refused.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        failed.len(),
        failed.iter().take(3).collect::<Vec<_>>(),
        events.len(),
        spend_events,
        test_start.elapsed(),
    );
    assert!(answered.len() > 100, "the load ran: {}", answered.len());

    match Arc::try_unwrap(gw) {
        Ok(gw) => gw.stop().await,
        Err(_) => panic!("load tasks still hold the gateway"),
    }
}

/// docker-compose.yml's cluster profile: the pinned nats-server accepts the node config, and
/// every seed of config/docker-cluster.toml is a compose service and a route of the nodes.
#[test]
fn the_compose_cluster_profile_agrees_with_its_configs() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let conf = root.join("config/nats-cluster.conf");
    let out = Command::new(nats_binary())
        .arg("-c")
        .arg(&conf)
        .arg("-t")
        .env("NATS_NAME", "nats-1")
        .output()
        .expect("run nats-server -t");
    assert!(
        out.status.success(),
        "{}: {}",
        conf.display(),
        String::from_utf8_lossy(&out.stderr)
    );

    let raw: RawConfig =
        toml::from_str(&std::fs::read_to_string(root.join("config/docker-cluster.toml")).unwrap())
            .unwrap();
    let compose = std::fs::read_to_string(root.join("docker-compose.yml")).unwrap();
    let conf = std::fs::read_to_string(&conf).unwrap();
    let seeds = config::nats_seeds(&raw.nats.url);
    assert_eq!(seeds.len(), 3);
    for seed in seeds {
        let host = seed
            .trim_start_matches("nats://")
            .split(':')
            .next()
            .unwrap();
        assert!(
            compose.contains(&format!("\n  {host}:")),
            "{host} is no service in docker-compose.yml"
        );
        assert!(
            compose.contains(&format!("NATS_NAME: {host} ")),
            "{host} does not name its node"
        );
        assert!(
            conf.contains(&format!("nats-route://{host}:6222")),
            "{host} is no route in nats-cluster.conf"
        );
    }
}

/// `check-config` refuses a seed list `serve` could not connect with, naming the entry, whether
/// the list comes from the file or from `SWITCHYARD_NATS_URL`.
#[test]
fn check_config_checks_every_seed_from_the_file_and_the_environment() {
    let root = env!("CARGO_MANIFEST_DIR");
    let good = format!("{root}/config/docker-cluster.toml");
    let check = |config: &std::path::Path, env: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_switchyard"));
        cmd.arg("check-config").arg("--config").arg(config);
        cmd.env_remove("SWITCHYARD_NATS_URL");
        if let Some(url) = env {
            cmd.env("SWITCHYARD_NATS_URL", url);
        }
        let out = cmd.output().expect("run check-config");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (ok, err) = check(std::path::Path::new(&good), None);
    assert!(ok, "{err}");
    let (ok, err) = check(
        std::path::Path::new(&good),
        Some("nats://10.0.0.1:4222, nats://10.0.0.2:4222"),
    );
    assert!(ok, "{err}");

    let (ok, err) = check(
        std::path::Path::new(&good),
        Some("nats://10.0.0.1:4222,,nats://10.0.0.3:4222"),
    );
    assert!(!ok);
    assert!(
        err.contains("SWITCHYARD_NATS_URL[1]: empty server URL"),
        "{err}"
    );
    // Checking without the secrets checks the environment's seeds all the same.
    let out = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["check-config", "--allow-missing-secrets", "--config", &good])
        .env(
            "SWITCHYARD_NATS_URL",
            "nats://10.0.0.1:4222,,nats://10.0.0.3:4222",
        )
        .output()
        .expect("run check-config");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("SWITCHYARD_NATS_URL[1]: empty server URL"),
        "{err}"
    );

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    let text = std::fs::read_to_string(&good)
        .unwrap()
        .replace("nats://nats-3:4222", "http://nats-3:4222")
        .replace(
            "pricing = \"pricing.toml\"",
            &format!("pricing = \"{root}/config/pricing.toml\""),
        );
    std::fs::write(&bad, text).unwrap();
    let (ok, err) = check(&bad, None);
    assert!(!ok);
    assert!(
        err.contains("nats.url[2]: \"http://nats-3:4222\": invalid scheme"),
        "{err}"
    );
}

/// A stream created with one replica (a gateway that ran against one node) is moved to three
/// when the config asks for three, and read back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_single_replica_stream_is_moved_to_three_replicas() {
    let cluster = NatsCluster::start(3);
    cluster.wait_formed(Duration::from_secs(30)).await;
    let js = js_on(&cluster.live_seeds()).await;
    let mut js_slow = js.clone();
    js_slow.set_timeout(Duration::from_secs(10));
    js_slow
        .create_stream(jetstream::stream::Config {
            name: "SWITCHYARD".into(),
            subjects: vec!["switchyard.events.>".into()],
            storage: jetstream::stream::StorageType::File,
            num_replicas: 1,
            ..Default::default()
        })
        .await
        .expect("R1 stream");

    let mock = Mock::start(MockConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(cluster_config(&cluster, &mock, dir.path())).await;
    wait_drained(&gw).await;
    let r = post_chat(&gw, KEY, &chat_body("gpt-4o-mini", "hello", false)).await;
    assert_eq!(r.status(), 200);

    let s = js_slow.get_stream("SWITCHYARD").await.unwrap();
    assert_eq!(s.cached_info().config.num_replicas, 3);
    let peers = wait_for("three peers", Duration::from_secs(30), || async {
        let (leader, replicas) = stream_cluster(&js).await?;
        (replicas.len() == 2).then_some((leader, replicas))
    })
    .await;
    let mut names: Vec<String> = peers.1.iter().map(|p| p.name.clone()).collect();
    names.push(peers.0);
    names.sort();
    assert_eq!(names, ["n1", "n2", "n3"]);
    gw.stop().await;
}
