//! The two publishing tasks: channel → JetStream (spilling to the outbox), and outbox →
//! JetStream (which also keeps the stream set up across reconnects).

use async_nats::jetstream::{Context, ContextBuilder, message::PublishMessage};
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use ulid::Ulid;

use super::jetstream::{SetupError, ensure_stream, is_connected};
use super::outbox::Outbox;
use super::{Pending, PublishError, PublishStatus};
use crate::config::{Durability, EventsConfig, NatsConfig};

fn context(client: &async_nats::Client, cfg: &EventsConfig) -> Context {
    ContextBuilder::new()
        .max_ack_inflight(cfg.max_in_flight)
        .backpressure_on_inflight(true)
        .ack_timeout(cfg.ack_timeout)
        .build(client.clone())
}

async fn publish(
    js: &Context,
    id: Ulid,
    subject: &str,
    payload: bytes::Bytes,
    timeout: Duration,
) -> Result<(), String> {
    let msg = PublishMessage::build()
        .message_id(id.to_string())
        .payload(payload);
    let fut = async {
        let ack = js
            .send_publish(subject.to_owned(), msg)
            .await
            .map_err(|e| e.to_string())?;
        ack.await.map(|_| ()).map_err(|e| e.to_string())
    };
    tokio::time::timeout(timeout, fut)
        .await
        .map_err(|_| "ack timed out".to_owned())?
}

/// How long, at start, events wait in the channel for the stream to be set up before they go
/// to the outbox.
const START_GRACE: Duration = Duration::from_secs(2);

/// Drain the channel into JetStream until `drain` is cancelled and the channel is empty.
/// Unacknowledged events end in the outbox; nothing is dropped.
pub async fn run_publisher(
    mut rx: mpsc::Receiver<Pending>,
    client: async_nats::Client,
    outbox: Arc<Outbox>,
    status: Arc<PublishStatus>,
    cfg: EventsConfig,
    drain: CancellationToken,
) {
    let js = context(&client, &cfg);
    // The gateway serves before NATS is connected. Events of the first requests wait here, in
    // order, while the stream is being set up (a few milliseconds when NATS is up): through the
    // outbox they would reach the stream after events of later requests. Past START_GRACE NATS
    // is taken to be away, and events spill to the outbox as during any outage. A shutdown
    // right after start waits too (the outbox task keeps setting up until we are done).
    let grace_until = Instant::now() + START_GRACE;
    while !status.ready() && Instant::now() < grace_until {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut inflight: FuturesUnordered<BoxFuture<'static, (Pending, Result<(), String>)>> =
        FuturesUnordered::new();
    let mut spill: Vec<Pending> = Vec::new();
    let mut last_flush = Instant::now();
    let mut rx_done = false;
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    // Events wait up to `linger` so that a burst leaves in one write to NATS instead of one
    // write (and one wake-up of the connection task) per event. Strict durability skips it.
    let linger = match cfg.durability {
        Durability::Async => cfg.linger,
        Durability::Ack => Duration::ZERO,
    };
    let mut batch: Vec<Pending> = Vec::new();
    let mut batch_due: Option<tokio::time::Instant> = None;
    loop {
        let dispatch_now = tokio::select! {
            Some((mut p, res)) = inflight.next(), if !inflight.is_empty() => {
                match res {
                    Ok(()) => {
                        status.published.fetch_add(1, Ordering::Relaxed);
                        metrics::counter!("switchyard_events_published_total").increment(1);
                        p.settle(Ok(()));
                    }
                    Err(e) => {
                        tracing::debug!(event_id = %p.id, error = %e, "publish not acknowledged; spilling to outbox");
                        spill.push(p);
                    }
                }
                false
            },
            msg = rx.recv(), if !rx_done && inflight.len() + batch.len() < cfg.max_in_flight => match msg {
                Some(p) => {
                    batch.push(p);
                    if batch_due.is_none() {
                        batch_due = Some(tokio::time::Instant::now() + linger);
                    }
                    linger.is_zero() || batch.len() >= 256
                }
                None => {
                    rx_done = true;
                    true
                }
            },
            _ = tokio::time::sleep_until(batch_due.unwrap_or_else(tokio::time::Instant::now)), if batch_due.is_some() => true,
            _ = tick.tick() => false,
            _ = drain.cancelled(), if !rx.is_closed() => {
                rx.close();
                false
            }
        };
        if dispatch_now && !batch.is_empty() {
            batch_due = None;
            let ready = status.ready() && is_connected(&client);
            for p in batch.drain(..) {
                if ready {
                    let js = js.clone();
                    let timeout = cfg.ack_timeout;
                    inflight.push(
                        async move {
                            let res =
                                publish(&js, p.id, &p.subject, p.payload.clone(), timeout).await;
                            (p, res)
                        }
                        .boxed(),
                    );
                } else {
                    spill.push(p);
                }
            }
        }
        let due =
            spill.len() >= 512 || last_flush.elapsed() >= Duration::from_millis(20) || rx_done;
        if !spill.is_empty() && due {
            flush_spill(&outbox, &status, &mut spill).await;
            last_flush = Instant::now();
        }
        if rx_done && inflight.is_empty() && spill.is_empty() && batch.is_empty() {
            break;
        }
    }
    tracing::info!("publisher drained");
}

async fn flush_spill(outbox: &Arc<Outbox>, status: &PublishStatus, spill: &mut Vec<Pending>) {
    let batch: Vec<(Ulid, Cow<'static, str>, bytes::Bytes)> = spill
        .iter()
        .map(|p| (p.id, p.subject.clone(), p.payload.clone()))
        .collect();
    let n = batch.len() as u64;
    let outbox = Arc::clone(outbox);
    let res = tokio::task::spawn_blocking(move || {
        let items: Vec<(Ulid, &str, &[u8])> =
            batch.iter().map(|(i, s, p)| (*i, &**s, &p[..])).collect();
        outbox.put(&items)
    })
    .await;
    match res {
        Ok(Ok(())) => {
            status.outbox_len.fetch_add(n, Ordering::Relaxed);
            status.spilled.fetch_add(n, Ordering::Relaxed);
            metrics::counter!("switchyard_events_spilled_total").increment(n);
            for mut p in spill.drain(..) {
                p.settle(Err(PublishError::NotAcknowledged));
            }
        }
        Ok(Err(e)) => {
            // Keep them in memory and try again on the next flush.
            tracing::error!(error = %e, pending = n, "outbox write failed; retrying");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(e) => {
            tracing::error!(error = %e, "outbox task failed; retrying");
        }
    }
}

/// Keep the stream set up and the outbox drained. Runs until `stop` is cancelled, then makes a
/// last attempt (bounded by `final_drain`) to empty the outbox.
pub async fn run_outbox(
    client: async_nats::Client,
    outbox: Arc<Outbox>,
    status: Arc<PublishStatus>,
    events: EventsConfig,
    nats: NatsConfig,
    stop: CancellationToken,
    final_drain: Duration,
) {
    let js = context(&client, &events);
    let ob = Arc::clone(&outbox);
    if let Ok(Ok(n)) = tokio::task::spawn_blocking(move || ob.len()).await {
        status.outbox_len.store(n, Ordering::Relaxed);
    }
    let d = Drainer {
        client: &client,
        js: &js,
        outbox: &outbox,
        status: &status,
        events: &events,
        nats: &nats,
    };
    let mut was_connected = false;
    let mut first = true;
    let mut ever_ready = status.ready();
    loop {
        // While waiting for the server (at start the gateway serves before NATS is connected)
        // look often, so the stream is set up right after the connection comes; setting it up
        // and re-sending are then paced at 200 ms.
        let pause = if first {
            Duration::ZERO
        } else if status.ready() || status.setup_error().is_some() {
            Duration::from_millis(200)
        } else {
            Duration::from_millis(20)
        };
        first = false;
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stop.cancelled() => break,
        }
        step(&d, &mut was_connected, &stop).await;
        ever_ready |= status.ready();
    }
    let deadline = Instant::now() + final_drain;
    while status.outbox_len.load(Ordering::Relaxed) > 0 && Instant::now() < deadline {
        if !status.ready() {
            // Stopped before the stream was ever set up (the gateway serves before NATS is
            // connected): finish connecting and setting up within the same bound. After an
            // outage, though, NATS is known to be away: leave the events on disk at once.
            if ever_ready || status.refused().is_some() {
                break;
            }
            // `stop` is cancelled, so this sets the stream up without draining.
            step(&d, &mut was_connected, &stop).await;
            if !status.ready() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            continue;
        }
        if !drain_batch(&js, &outbox, &status, &events).await {
            break;
        }
    }
}

/// What the outbox task works with.
struct Drainer<'a> {
    client: &'a async_nats::Client,
    js: &'a Context,
    outbox: &'a Arc<Outbox>,
    status: &'a PublishStatus,
    events: &'a EventsConfig,
    nats: &'a NatsConfig,
}

async fn step(d: &Drainer<'_>, was_connected: &mut bool, stop: &CancellationToken) {
    let Drainer {
        client,
        js,
        outbox,
        status,
        events,
        nats,
    } = *d;
    let connected = is_connected(client);
    status.connected.store(connected, Ordering::Relaxed);
    if !connected {
        // After a reconnect the server may be a fresh one: check the stream again.
        status.stream_ready.store(false, Ordering::Relaxed);
        *was_connected = false;
        return;
    }
    if !*was_connected || !status.stream_ready.load(Ordering::Relaxed) {
        match ensure_stream(client, nats).await {
            Ok(_) => {
                status.stream_ready.store(true, Ordering::Relaxed);
                status.set_setup_error(None);
                *was_connected = true;
                tracing::info!(stream = %nats.stream, "JetStream stream ready");
            }
            Err(e) => {
                if !matches!(e, SetupError::Unavailable(_)) || status.setup_error().is_none() {
                    tracing::error!(error = %e, "JetStream setup failed; events stay in the outbox");
                }
                status.set_setup_error(Some(e.to_string()));
                if !matches!(e, SetupError::Unavailable(_)) {
                    status.refuse(e);
                }
                return;
            }
        }
    }
    // A large outbox drains batch by batch; shutdown does not wait for all of it (the final
    // bounded drain in `run_outbox` takes over).
    while status.outbox_len.load(Ordering::Relaxed) > 0 && !stop.is_cancelled() {
        if !drain_batch(js, outbox, status, events).await {
            break;
        }
    }
}

/// Publish the oldest outbox events and forget the acknowledged ones. False when nothing moved.
async fn drain_batch(
    js: &Context,
    outbox: &Arc<Outbox>,
    status: &PublishStatus,
    events: &EventsConfig,
) -> bool {
    let ob = Arc::clone(outbox);
    let batch = match tokio::task::spawn_blocking(move || ob.oldest(1024)).await {
        Ok(Ok(b)) => b,
        Ok(Err(e)) => {
            tracing::error!(error = %e, "cannot read outbox");
            return false;
        }
        Err(_) => return false,
    };
    if batch.is_empty() {
        status.outbox_len.store(0, Ordering::Relaxed);
        return false;
    }
    let results = futures::future::join_all(batch.iter().map(|s| async {
        publish(js, s.id, &s.subject, s.payload.clone(), events.ack_timeout)
            .await
            .map(|()| s.id)
    }))
    .await;
    let acked: Vec<Ulid> = results.into_iter().filter_map(Result::ok).collect();
    if acked.is_empty() {
        return false;
    }
    let n = acked.len() as u64;
    let ob = Arc::clone(outbox);
    match tokio::task::spawn_blocking(move || ob.remove(&acked).and_then(|()| ob.len())).await {
        Ok(Ok(left)) => {
            status.outbox_len.store(left, Ordering::Relaxed);
            status.published.fetch_add(n, Ordering::Relaxed);
            metrics::counter!("switchyard_events_published_total").increment(n);
            metrics::counter!("switchyard_outbox_resent_total").increment(n);
            true
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, "cannot update outbox");
            false
        }
        Err(_) => false,
    }
}
