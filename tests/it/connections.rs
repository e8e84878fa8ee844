//! Connection limits against real sockets: idle, slow-header and slow-body clients are cut at
//! their timeouts, connections past the cap get an OpenAI-shaped 503 and are counted, a
//! kept-alive connection is closed after the idle timeout; the gateway answers at once while
//! NATS is down, and `/readyz` says what each durability mode can do.

use crate::harness::*;
use std::time::{Duration, Instant};
use switchyard::events::Event;
use switchyard_mock::MockConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TIGHT: &str = r#"
header_read_timeout = "1s"
body_read_timeout = "1s"
idle_timeout = "1s"
max_connections = 32
"#;

/// Read until the server closes the connection (EOF or reset); what arrived and when it closed,
/// or `None` if it was still open after `limit`.
async fn until_closed(s: &mut TcpStream, limit: Duration) -> (Vec<u8>, Option<Duration>) {
    let started = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = limit.saturating_sub(started.elapsed());
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Err(_) => return (got, None),
            Ok(Ok(0)) | Ok(Err(_)) => return (got, Some(started.elapsed())),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

async fn connect(gw: &Gateway) -> TcpStream {
    TcpStream::connect(gw.addr).await.unwrap()
}

async fn metric(gw: &Gateway, name: &str) -> f64 {
    let text = client()
        .get(gw.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_clients_are_cut_and_connections_past_the_cap_get_503() {
    let nats = Nats::start();
    let mock = Mock::start(MockConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = TestConfig::new(&nats, &mock, dir.path());
    cfg.server = TIGHT.into();
    let gw = Gateway::start(cfg.build()).await;
    wait_drained(&gw).await;

    // 32 connections that never send anything fill the cap
    let opened = Instant::now();
    let mut idle = Vec::new();
    for _ in 0..32 {
        idle.push(connect(&gw).await);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // past the cap: an OpenAI-shaped 503 at once, then closed
    for _ in 0..8 {
        let mut s = connect(&gw).await;
        let _ = s
            .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
            .await;
        let (got, closed) = until_closed(&mut s, Duration::from_secs(5)).await;
        let text = String::from_utf8_lossy(&got);
        assert!(text.starts_with("HTTP/1.1 503"), "{text}");
        assert!(text.contains("\"code\":\"too_many_connections\""), "{text}");
        assert!(closed.is_some(), "a shed connection is closed");
    }
    // the idle ones are cut after the header timeout (1 s), not before
    let mut cut = Vec::new();
    for s in &mut idle {
        let (got, closed) = until_closed(s, Duration::from_secs(10)).await;
        assert!(
            got.is_empty(),
            "nothing is sent to a client that sent nothing"
        );
        assert!(closed.is_some(), "an idle connection is closed");
        cut.push(opened.elapsed());
    }
    let last = cut.iter().max().unwrap();
    eprintln!("32 idle connections held; all cut after {last:?}");
    assert!(*cut.iter().min().unwrap() >= Duration::from_millis(900));
    assert!(*last < Duration::from_secs(6), "{last:?}");

    // room again: chat works, and the rejections and timeouts were counted
    let r = post_chat(&gw, KEY, &chat_body("gpt-4o-mini", "after", false)).await;
    assert_eq!(r.status(), 200);
    assert!(metric(&gw, "switchyard_connections_rejected_total").await >= 8.0);
    assert!(
        metric(
            &gw,
            "switchyard_connections_timed_out_total{reason=\"header\"}"
        )
        .await
            >= 32.0
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_header_client_is_cut() {
    let nats = Nats::start();
    let mock = Mock::start(MockConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = TestConfig::new(&nats, &mock, dir.path());
    cfg.server = TIGHT.into();
    let gw = Gateway::start(cfg.build()).await;

    let head = b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nx-padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
    let mut s = connect(&gw).await;
    let started = Instant::now();
    let (mut rd, mut wr) = s.split();
    let mut buf = [0u8; 1024];
    let mut next = 0;
    // one byte every 200 ms, for as long as the server listens
    let closed = loop {
        if started.elapsed() > Duration::from_secs(15) {
            break None;
        }
        tokio::select! {
            r = rd.read(&mut buf) => match r {
                Ok(0) | Err(_) => break Some(started.elapsed()),
                Ok(_) => {}
            },
            _ = tokio::time::sleep(Duration::from_millis(200)) => {
                if next < head.len() {
                    let _ = wr.write_all(&head[next..=next]).await;
                    next += 1;
                }
            }
        }
    };
    let closed = closed.expect("a slow-header connection is closed");
    eprintln!("slow-header client cut after {closed:?} ({next} bytes sent)");
    assert!(closed >= Duration::from_millis(900), "{closed:?}");
    assert!(closed < Duration::from_secs(5), "{closed:?}");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_body_gets_408_and_is_not_recorded() {
    let nats = Nats::start();
    let mock = Mock::start(MockConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = TestConfig::new(&nats, &mock, dir.path());
    cfg.server = TIGHT.into();
    let gw = Gateway::start(cfg.build()).await;
    wait_drained(&gw).await;

    let body = serde_json::to_vec(&chat_body("gpt-4o-mini", "slowly", false)).unwrap();
    let mut s = connect(&gw).await;
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {KEY}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let (mut rd, mut wr) = s.split();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let mut next = 0;
    loop {
        assert!(started.elapsed() < Duration::from_secs(15), "still open");
        tokio::select! {
            r = rd.read(&mut buf) => match r {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            },
            _ = tokio::time::sleep(Duration::from_millis(200)) => {
                if next < body.len() - 1 {
                    let _ = wr.write_all(&body[next..=next]).await;
                    next += 1;
                }
            }
        }
    }
    let took = started.elapsed();
    let text = String::from_utf8_lossy(&got);
    eprintln!("slow-body client answered and cut after {took:?}");
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("\"code\":\"request_timeout\""), "{text}");
    assert!(took < Duration::from_secs(5), "{took:?}");

    // the gateway still serves, and nothing was recorded for the timed-out request
    let r = post_chat(&gw, KEY, &chat_body("gpt-4o-mini", "quick", false)).await;
    assert_eq!(r.status(), 200);
    gw.stop().await;
    let accepted = count(&read_events(&nats.url()).await, |e| {
        matches!(e, Event::RequestAccepted(_))
    });
    assert_eq!(accepted, 1, "only the quick request was accepted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_alive_connection_is_closed_after_the_idle_timeout() {
    let nats = Nats::start();
    let mock = Mock::start(MockConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = TestConfig::new(&nats, &mock, dir.path());
    // longer than the header timeout, to show the idle timeout is the one that applies
    cfg.server = "header_read_timeout = \"1s\"\nidle_timeout = \"3s\"".into();
    let gw = Gateway::start(cfg.build()).await;

    let mut s = connect(&gw).await;
    let mut buf = [0u8; 4096];
    for _ in 0..2 {
        s.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let mut got = Vec::new();
        while !String::from_utf8_lossy(&got).contains("{\"status\":\"ok\"}") {
            let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
                .await
                .expect("answer")
                .unwrap();
            assert!(n > 0, "kept alive between requests");
            got.extend_from_slice(&buf[..n]);
        }
        // idle for less than the idle timeout (but more than the header timeout): still open
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    let (_, closed) = until_closed(&mut s, Duration::from_secs(10)).await;
    let closed =
        closed.expect("an idle kept-alive connection is closed") + Duration::from_millis(1500);
    eprintln!("kept-alive connection closed {closed:?} after its last answer");
    assert!(closed >= Duration::from_millis(2800), "{closed:?}");
    assert!(closed < Duration::from_secs(7), "{closed:?}");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_at_once_while_nats_is_down_and_publishes_once_it_is_up() {
    let mut nats = Nats::start();
    nats.stop();
    let mock = Mock::start(MockConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = TestConfig::new(&nats, &mock, dir.path());
    let http = client();
    let gw = Gateway::start(cfg.build()).await;

    let started = Instant::now();
    let r = http.get(gw.url("/healthz")).send().await.unwrap();
    let healthz = started.elapsed();
    assert_eq!(r.status(), 200);
    let started = Instant::now();
    let r = http
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(KEY)
        .json(&chat_body("gpt-4o-mini", "while NATS is down", false))
        .send()
        .await
        .unwrap();
    let chat = started.elapsed();
    assert_eq!(r.status(), 200);
    let id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    eprintln!("with NATS down: /healthz in {healthz:?}, chat in {chat:?} from start");
    // it used to wait 2 s for NATS before listening
    assert!(healthz < Duration::from_millis(1000), "{healthz:?}");
    assert!(chat < Duration::from_millis(1000), "{chat:?}");

    nats.resume();
    wait_drained(&gw).await;
    gw.stop().await;
    let events = read_events(&nats.url()).await;
    let kinds: Vec<_> = for_request(&events, &id)
        .into_iter()
        .map(|e| std::mem::discriminant(&e.event))
        .collect();
    assert_eq!(kinds.len(), 3, "accepted, completed and spend arrived");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_says_what_each_durability_mode_can_do_without_nats() {
    let mut nats = Nats::start();
    let mock = Mock::start(MockConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = TestConfig::new(&nats, &mock, dir.path());
    let gw = Gateway::start(cfg.build()).await;
    wait_drained(&gw).await;
    nats.stop();
    // async: still serving (events go to the outbox), so 200 and degraded
    let (code, body) = wait_for("degraded readiness", Duration::from_secs(20), || async {
        let r = client().get(gw.url("/readyz")).send().await.ok()?;
        let code = r.status();
        let j: serde_json::Value = r.json().await.ok()?;
        (j["status"] == "degraded").then_some((code, j))
    })
    .await;
    assert_eq!(code, 200, "{body}");
    let r = post_chat(&gw, KEY, &chat_body("gpt-4o-mini", "degraded", false)).await;
    assert_eq!(r.status(), 200);
    gw.stop().await;

    // ack: cannot answer without NATS, so 503 and unavailable
    let dir = tempfile::tempdir().unwrap();
    cfg.data_dir = dir.path().to_owned();
    cfg.events = "durability = \"ack\"".into();
    let gw = Gateway::start(cfg.build()).await;
    let r = client().get(gw.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    let j: serde_json::Value = r.json().await.unwrap();
    assert_eq!(j["status"], "unavailable", "{j}");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_is_served_and_malformed_http1_gets_hypers_status_only_answer() {
    let nats = Nats::start();
    let mock = Mock::start(MockConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = TestConfig::new(&nats, &mock, dir.path());
    cfg.server = TIGHT.into();
    let gw = Gateway::start(cfg.build()).await;

    // HTTP/2 with prior knowledge, as axum::serve offered
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let r = h2
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(KEY)
        .json(&chat_body("gpt-4o-mini", "over h2c", false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.status(), 200);

    // hyper answers what it cannot parse itself, with no body (documented exception)
    let huge = format!(
        "GET /healthz HTTP/1.1\r\nhost: x\r\nx-big: {}\r\n\r\n",
        "a".repeat(512 * 1024)
    );
    for (raw, want) in [
        (
            "GET /healthz HTTP/1.1\r\nhost: x\r\nx-a: 1\r\n  folded\r\n\r\n".to_owned(),
            "HTTP/1.1 400",
        ),
        (
            "POST /healthz HTTP/1.1\r\nhost: x\r\ncontent-length: nope\r\n\r\n".to_owned(),
            "HTTP/1.1 400",
        ),
        (huge, "HTTP/1.1 431"),
    ] {
        let mut s = connect(&gw).await;
        let _ = s.write_all(raw.as_bytes()).await;
        let (got, _) = until_closed(&mut s, Duration::from_secs(5)).await;
        let text = String::from_utf8_lossy(&got);
        assert!(text.starts_with(want), "{want}: {text}");
        assert!(text.contains("content-length: 0"), "{text}");
    }
    gw.stop().await;
}
