//! Wiring and supervision: the only place long-lived tasks are spawned. Every task is tracked,
//! and shutdown runs in dependency order: stop accepting requests, let in-flight requests and
//! streams finish, drain the publisher (JetStream or outbox), stop the outbox and projections.

use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::edge::listener::{self, Limits};
use crate::edge::{self, AdminState, EdgeState};
use crate::governance::KeyStore;
use crate::projections::budgets::BudgetsStore;
use crate::projections::{ProjectionError, ProjectionStatus, RunMode, Runner};
use crate::publish::jetstream::{self, SetupError, ensure_stream, is_connected};
use crate::publish::outbox::Outbox;
use crate::publish::{self, PublishStatus};
use crate::routing::{RouteTable, build_providers};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("outbox: {0}")]
    Outbox(String),
    #[error("cannot connect to NATS: {0}")]
    Connect(String),
    #[error(transparent)]
    Setup(#[from] SetupError),
    #[error(transparent)]
    Projection(#[from] ProjectionError),
    #[error("HTTP client: {0}")]
    Http(String),
    #[error("server: {0}")]
    Serve(#[from] std::io::Error),
}

/// How long shutdown waits for the outbox to reach JetStream before leaving it on disk.
const FINAL_DRAIN: Duration = Duration::from_secs(5);

/// Connect to NATS. When the server is reachable within `wait`, check it and set up the stream
/// now, refusing a server that would silently drop our settings. Otherwise carry on degraded:
/// the outbox task sets the stream up once the server appears. With a zero `wait` this only
/// starts connecting (in the background) and leaves the checks to the outbox task, which is
/// what `serve` does so that it answers at once even while NATS is away.
pub async fn connect_nats(
    config: &Config,
    wait: Duration,
) -> Result<(async_nats::Client, bool), AppError> {
    let client = jetstream::connect(&config.nats.url)
        .await
        .map_err(|e| AppError::Connect(e.to_string()))?;
    if wait.is_zero() {
        return Ok((client, false));
    }
    let deadline = tokio::time::Instant::now() + wait;
    while !is_connected(&client) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut ready = false;
    if is_connected(&client) {
        match ensure_stream(&client, &config.nats).await {
            Ok(_) => ready = true,
            Err(SetupError::Unavailable(e)) => {
                tracing::warn!(error = %e, "JetStream not ready yet; continuing degraded")
            }
            Err(e) => return Err(e.into()),
        }
    } else {
        tracing::warn!(url = %config.nats.url, "NATS unreachable; serving with events going to the outbox");
    }
    Ok((client, ready))
}

/// Run the gateway on `listener` until `shutdown` is cancelled.
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), AppError> {
    // The tokenizer (for providers that report no usage) takes about a second to load: do it
    // now, beside start-up, not on the first request that needs it.
    drop(tokio::task::spawn_blocking(
        crate::providers::tokens::warm_up,
    ));
    let outbox_path = config.outbox_path();
    let outbox = Arc::new(
        tokio::task::spawn_blocking(move || Outbox::open(&outbox_path))
            .await
            .map_err(|e| AppError::Outbox(e.to_string()))?
            .map_err(|e| AppError::Outbox(e.to_string()))?,
    );
    // Serve at once: until the outbox task has checked the server and set the stream up
    // (right after the connection comes), events wait in the outbox as during an outage.
    let limits = Limits::from_config(&config.server);
    let (client, _) = connect_nats(&config, Duration::ZERO).await?;
    let status = Arc::new(PublishStatus::default());
    let services = TaskTracker::new();
    let (sink, rx) = publish::channel(
        config.events.channel_capacity,
        Arc::clone(&outbox),
        Arc::clone(&status),
    );

    let providers =
        build_providers(&config.providers).map_err(|e| AppError::Http(e.to_string()))?;
    let routes = RouteTable::build(&config.models, &config.routing, &providers);

    let stop_background = CancellationToken::new();

    let mut stores_to_close: Vec<Box<dyn Fn() -> bool + Send>> = Vec::new();
    let (budgets, budgets_status) = if config.projections.budgets.enabled {
        let store = open_budgets(&config).await?;
        let st = Arc::new(ProjectionStatus::default());
        let (s, c, name, batch, stop, pst) = (
            Arc::clone(&store),
            client.clone(),
            config.nats.stream.clone(),
            config.projections.budgets.batch,
            stop_background.clone(),
            Arc::clone(&st),
        );
        services.spawn(async move {
            let runner = Runner {
                projection: s,
                client: c,
                stream: name,
                batch,
                status: pst,
                mode: RunMode::Follow,
            };
            if let Err(e) = runner.run(stop).await {
                tracing::error!(error = %e, "budgets projection stopped");
            }
        });
        let weak = Arc::downgrade(&store);
        stores_to_close.push(Box::new(move || weak.strong_count() == 0));
        (Some(store), Some(st))
    } else {
        (None, None)
    };

    let requests = TaskTracker::new();
    // Cancelled by shutdown, or when the NATS server is refused.
    let stop_edge = shutdown.child_token();
    let state = Arc::new(EdgeState {
        keys: KeyStore::new(&config.keys),
        routes,
        sink,
        pricing: config.pricing.clone(),
        durability: config.events.durability,
        max_body_bytes: config.server.max_body_bytes,
        body_read_timeout: config.server.body_read_timeout,
        shutdown: stop_edge.clone(),
        max_event_body_bytes: config.events.max_body_bytes,
        budgets_status: budgets_status.clone(),
        tasks: requests.clone(),
        metrics: crate::telemetry::metrics(),
    });
    let admin = AdminState {
        admin_token_hash: config.admin_token_hash,
        currency: config.pricing.currency.clone(),
        budgets,
        budgets_status,
    };
    let app = edge::router(Arc::clone(&state), admin);
    drop(state);

    let drain = CancellationToken::new();
    let publisher = services.spawn(publish::run_publisher(
        rx,
        client.clone(),
        Arc::clone(&outbox),
        Arc::clone(&status),
        config.events.clone(),
        drain.clone(),
    ));
    let outbox_task = services.spawn(publish::run_outbox(
        client.clone(),
        Arc::clone(&outbox),
        Arc::clone(&status),
        config.events.clone(),
        config.nats.clone(),
        stop_background.clone(),
        FINAL_DRAIN,
    ));
    services.close();

    tracing::info!(addr = %listener.local_addr()?, "switchyard listening");
    // A refused server stops the gateway as shutdown does (in-flight requests finish; their
    // events stay in the outbox).
    {
        let (stop_edge, refused) = (stop_edge.clone(), status.refused_signal.clone());
        services.spawn(async move {
            tokio::select! {
                _ = refused.cancelled() => {
                    tracing::error!("the NATS server was refused; stopping the gateway");
                    stop_edge.cancel();
                }
                _ = stop_edge.cancelled() => {}
            }
        });
    }
    let served = listener::serve(listener, app, limits, stop_edge.clone()).await;
    stop_edge.cancel();
    tracing::info!("edge stopped; finishing in-flight streams");
    requests.close();
    requests.wait().await;
    drain.cancel();
    let _ = publisher.await;
    stop_background.cancel();
    let _ = outbox_task.await;
    services.wait().await;
    // redb files are closed on drop, and a connection task or a cancelled blocking call may
    // still hold a handle for a moment: wait for the last one so a restart in this process (or
    // `replay`) finds the files closed.
    let weak_outbox = Arc::downgrade(&outbox);
    drop(outbox);
    stores_to_close.push(Box::new(move || weak_outbox.strong_count() == 0));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !stores_to_close.iter().all(|closed| closed()) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let left = status.outbox_len.load(std::sync::atomic::Ordering::Relaxed);
    if left > 0 {
        tracing::warn!(
            events = left,
            "stopped with events in the outbox; they are sent at next start"
        );
    }
    if let Some(e) = status.refused() {
        return Err(e.into());
    }
    served.map_err(AppError::Serve)
}

pub async fn open_budgets(config: &Config) -> Result<Arc<BudgetsStore>, AppError> {
    let path = config.budgets_path();
    let store = tokio::task::spawn_blocking(move || BudgetsStore::open(&path))
        .await
        .map_err(ProjectionError::from)??;
    Ok(Arc::new(store))
}

/// `switchyard consume budgets`: run only the budgets projection (and, with `listen`, the admin
/// spend API) until `shutdown`.
pub async fn consume_budgets(
    config: Config,
    listen: Option<TcpListener>,
    shutdown: CancellationToken,
) -> Result<(), AppError> {
    let (client, _) = connect_nats(&config, Duration::from_secs(5)).await?;
    let store = open_budgets(&config).await?;
    let status = Arc::new(ProjectionStatus::default());
    let tasks = TaskTracker::new();
    if let Some(listener) = listen {
        let admin = AdminState {
            admin_token_hash: config.admin_token_hash,
            currency: config.pricing.currency.clone(),
            budgets: Some(Arc::clone(&store)),
            budgets_status: Some(Arc::clone(&status)),
        };
        let stop = shutdown.clone();
        let limits = Limits::from_config(&config.server);
        tasks.spawn(async move {
            if let Err(e) = listener::serve(listener, edge::admin_router(admin), limits, stop).await
            {
                tracing::error!(error = %e, "admin listener stopped");
            }
        });
    }
    tasks.close();
    let res = Runner {
        projection: store,
        client,
        stream: config.nats.stream.clone(),
        batch: config.projections.budgets.batch,
        status,
        mode: RunMode::Follow,
    }
    .run(shutdown)
    .await;
    tasks.wait().await;
    res.map_err(Into::into)
}

/// `switchyard replay budgets`: drop the projection's data and rebuild it from sequence 1 up to
/// the stream's end. `progress` is called with (checkpoint, stream end) while it runs.
pub async fn replay_budgets(
    config: Config,
    progress: impl Fn(u64, u64) + Send + 'static,
) -> Result<u64, AppError> {
    let (client, _) = connect_nats(&config, Duration::from_secs(10)).await?;
    if !is_connected(&client) {
        return Err(AppError::Connect(format!(
            "{} is not reachable",
            config.nats.url
        )));
    }
    let store = open_budgets(&config).await?;
    let s = Arc::clone(&store);
    tokio::task::spawn_blocking(move || s.reset())
        .await
        .map_err(ProjectionError::from)??;
    let status = Arc::new(ProjectionStatus::default());
    let stop = CancellationToken::new();
    let ticker = TaskTracker::new();
    {
        let status = Arc::clone(&status);
        let stop = stop.clone();
        ticker.spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stop.cancelled() => break,
                }
                progress(
                    status.checkpoint.load(std::sync::atomic::Ordering::Relaxed),
                    status
                        .stream_last_seq
                        .load(std::sync::atomic::Ordering::Relaxed),
                );
            }
        });
    }
    ticker.close();
    let res = Runner {
        projection: Arc::clone(&store),
        client,
        stream: config.nats.stream.clone(),
        batch: config.projections.budgets.batch,
        status: Arc::clone(&status),
        mode: RunMode::CatchUp,
    }
    .run(CancellationToken::new())
    .await;
    stop.cancel();
    ticker.wait().await;
    res?;
    let s = Arc::clone(&store);
    Ok(tokio::task::spawn_blocking(move || s.checkpoint())
        .await
        .map_err(ProjectionError::from)??)
}
