//! Wiring and supervision: the only place long-lived tasks are spawned. Every task is tracked,
//! and shutdown runs in dependency order: stop accepting requests, let in-flight requests and
//! streams finish, drain the publisher (JetStream or outbox), stop the outbox, projections and
//! secret refreshers.

use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::edge::listener::{self, Limits};
use crate::edge::{self, AdminGovernance, AdminState, EdgeState};
use crate::governance::budgets::Budgets;
use crate::governance::rate::Rates;
use crate::governance::{Directory, KeyStore};
use crate::ledger::rates::RateLedger;
use crate::ledger::{self, Ledger, alerts};
use crate::projections::Projection;
use crate::projections::audit::{AuditProjection, AuditService};
use crate::projections::budgets::BudgetsStore;
use crate::projections::{ProjectionError, ProjectionStatus, RunMode, Runner};
use crate::publish::jetstream::{self, SetupError, ensure_stream, is_connected, publish_now};
use crate::publish::outbox::{Outbox, OutboxError};
use crate::publish::{self, EventSink, PublishStatus};
use crate::routing::{RouteTable, build_providers};
use crate::secrets::{self, Fetcher};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    #[error("a start-up task did not finish: {0}")]
    Task(#[from] tokio::task::JoinError),
    #[error("cannot connect to NATS: {0}")]
    Connect(#[from] async_nats::ConnectError),
    #[error("NATS at {url} is not reachable")]
    Unreachable { url: String },
    #[error(transparent)]
    Setup(#[from] SetupError),
    #[error(transparent)]
    Projection(#[from] ProjectionError),
    #[error("provider adapters: {0}")]
    Providers(#[from] crate::providers::BuildError),
    #[error("cannot fetch secrets:\n  {}", .0.join("\n  "))]
    Secrets(Vec<String>),
    #[error("secrets HTTP client: {0}")]
    SecretsClient(reqwest::Error),
    #[error("server: {0}")]
    Serve(#[from] std::io::Error),
    #[error(transparent)]
    Guardrails(#[from] crate::guardrails::GuardrailError),
    #[error(
        "the semantic cache cannot start: {0} (scripts/run and scripts/test install the weights; or set [cache] embedder_path, or semantic = false)"
    )]
    Cache(#[from] crate::cache::embed::EmbedError),
    #[error("no model has the cache on in this config (`[cache] enabled`, or a model's `cache`)")]
    CacheOff,
    #[error(
        "the cache lives inside each `switchyard serve` (in memory); `switchyard replay cache` shows what it holds"
    )]
    CacheInServe,
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
    let client = jetstream::connect(&config.nats.url).await?;
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

/// Run the gateway on `listener` until `shutdown` is cancelled: start the services beside the
/// edge, serve, then stop in dependency order (edge, in-flight requests and streams, publisher,
/// outbox and projections, files).
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
    // Before anything else: a reference that cannot be fetched stops the start, naming it; then
    // the adapters, which need every credential in hand, so nothing is left running if either
    // fails.
    let fetcher = Arc::new(Fetcher::new(&config.secrets).map_err(AppError::SecretsClient)?);
    secrets::resolve_pending(&config.credentials, &fetcher)
        .await
        .map_err(AppError::Secrets)?;
    let providers = build_providers(&config.providers)?;
    let (mut services, sink) = Services::start(&config).await?;
    // After the services: NATS is being reached (and the key directory read) meanwhile.
    let policy_config = (config.guardrails.clone(), config.privacy.clone());
    let guardrails = Arc::new(
        tokio::task::spawn_blocking(move || {
            crate::guardrails::Policy::new(&policy_config.0, &policy_config.1)
        })
        .await??,
    );
    services.keep_secrets_fresh(&config.credentials, &fetcher);
    let requests = TaskTracker::new();
    // Cancelled by shutdown, or when the NATS server is refused.
    let stop_edge = shutdown.child_token();
    let routes = Arc::new(RouteTable::build(
        &config.models,
        &config.routing,
        &providers,
    ));
    let (cache_config, cache_routes) = (config.clone(), Arc::clone(&routes));
    let cache = tokio::task::spawn_blocking(move || {
        crate::cache::Cache::from_config(&cache_config, Some(cache_routes))
    })
    .await??;
    if let Some(cache) = &cache {
        services.tasks.spawn(crate::cache::follow::follow(
            services.client.clone(),
            config.nats.stream.clone(),
            Arc::clone(cache),
            services.stop_background.clone(),
        ));
    }
    let governance = Arc::new(AdminGovernance {
        directory: Arc::clone(&services.directory),
        client: services.client.clone(),
        publish_status: Arc::clone(&services.status),
        models: routes.names().to_vec(),
        rotation_grace: config.rotation_grace,
        budgets: Arc::clone(&services.accounts),
        stream: config.nats.stream.clone(),
    });
    let state = Arc::new(EdgeState {
        keys: KeyStore::new(&config.keys, Arc::clone(&services.directory)),
        budgets: Arc::clone(&services.accounts),
        rates: Arc::clone(&services.rates),
        routes,
        sink,
        pricing: config.pricing.clone(),
        durability: config.events.durability,
        max_body_bytes: config.server.max_body_bytes,
        body_read_timeout: config.server.body_read_timeout,
        shutdown: stop_edge.clone(),
        max_event_body_bytes: config.events.max_body_bytes,
        budgets_status: services.budgets_status.clone(),
        tasks: requests.clone(),
        metrics: crate::telemetry::metrics(),
        credentials: config.credentials.clone(),
        guardrails,
        cache: cache.clone(),
    });
    let admin = AdminState {
        admin_token_hash: config.admin_token_hash,
        currency: config.pricing.currency.clone(),
        budgets: services.budgets.take(),
        budgets_status: services.budgets_status.clone(),
        audit: services.audit.clone(),
        governance: Some(governance),
        cache,
    };
    let app = edge::router(state, admin);
    services.stop_edge_when_refused(stop_edge.clone());

    tracing::info!(addr = %listener.local_addr()?, "switchyard listening");
    let limits = Limits::from_config(&config.server);
    let served = listener::serve(listener, app, limits, stop_edge.clone()).await;
    stop_edge.cancel();
    tracing::info!("edge stopped; finishing in-flight streams");
    requests.close();
    requests.wait().await;
    services.stop().await?;
    served.map_err(AppError::Serve)
}

/// What runs beside the edge: the publisher and outbox tasks, the in-process projections, and
/// the redb files they hold. Serving starts at once: until the outbox task has checked the NATS
/// server and set the stream up, events wait as they do during an outage.
struct Services {
    outbox: Arc<Outbox>,
    status: Arc<PublishStatus>,
    tasks: TaskTracker,
    publisher: tokio::task::JoinHandle<()>,
    outbox_task: tokio::task::JoinHandle<()>,
    /// Tells the publisher to drain its channel (to JetStream or the outbox) and stop.
    drain: CancellationToken,
    /// Stops the outbox task (after a last drain) and the projections.
    stop_background: CancellationToken,
    /// Handed to the admin API.
    budgets: Option<Arc<BudgetsStore>>,
    budgets_status: Option<Arc<ProjectionStatus>>,
    /// The audit index, when this process runs it; handed to the admin API.
    audit: Option<Arc<AuditService>>,
    /// Issued keys and scope limits, following the stream's admin events.
    directory: Arc<Directory>,
    /// This instance's slices of every budget (admission), fed by the ledger task.
    accounts: Arc<Budgets>,
    /// This instance's stretches of every rate limit (admission), fed by the rate ledger task.
    rates: Arc<Rates>,
    client: async_nats::Client,
    /// Each says whether one redb file has been closed (all its handles dropped).
    closed: Vec<Box<dyn Fn() -> bool + Send>>,
}

impl Services {
    async fn start(config: &Config) -> Result<(Self, EventSink), AppError> {
        let outbox_path = config.outbox_path();
        let outbox =
            Arc::new(tokio::task::spawn_blocking(move || Outbox::open(&outbox_path)).await??);
        let (client, _) = connect_nats(config, Duration::ZERO).await?;
        let status = Arc::new(PublishStatus::default());
        let (sink, rx) = publish::channel(
            config.events.channel_capacity,
            Arc::clone(&outbox),
            Arc::clone(&status),
        );
        let tasks = TaskTracker::new();
        let (drain, stop_background) = (CancellationToken::new(), CancellationToken::new());
        let directory = Arc::new(Directory::default());
        let (accounts, lease_requests) = Budgets::new(Arc::clone(&directory), &config.budgets);
        let (rates, rate_requests) = Rates::new(Arc::clone(&directory), &config.rate_limits);
        let publisher = tasks.spawn(publish::run_publisher(
            rx,
            client.clone(),
            Arc::clone(&outbox),
            Arc::clone(&status),
            config.events.clone(),
            drain.clone(),
        ));
        let outbox_task = tasks.spawn(publish::run_outbox(
            client.clone(),
            Arc::clone(&outbox),
            Arc::clone(&status),
            config.events.clone(),
            config.nats.clone(),
            stop_background.clone(),
            FINAL_DRAIN,
        ));
        let mut services = Services {
            outbox,
            status,
            tasks,
            publisher,
            outbox_task,
            drain,
            stop_background,
            budgets: None,
            budgets_status: None,
            audit: None,
            directory,
            accounts,
            rates,
            client: client.clone(),
            closed: Vec::new(),
        };
        services.tasks.spawn(crate::projections::directory::follow(
            client.clone(),
            config.nats.stream.clone(),
            Arc::clone(&services.directory),
            services.stop_background.clone(),
        ));
        services
            .tasks
            .spawn(crate::projections::directory::record_expiries(
                client.clone(),
                Arc::clone(&services.directory),
                services.stop_background.clone(),
            ));
        if config.projections.budgets.enabled {
            let store = open_budgets(config).await?;
            let status = Arc::new(ProjectionStatus::default());
            let runner = Runner {
                projection: Arc::clone(&store),
                client: client.clone(),
                stream: config.nats.stream.clone(),
                batch: config.projections.budgets.batch,
                status: Arc::clone(&status),
                mode: RunMode::Follow,
            };
            let stop = services.stop_background.clone();
            services.tasks.spawn(async move {
                if let Err(e) = runner.run(stop).await {
                    tracing::error!(error = %e, "budgets projection stopped");
                }
            });
            let weak = Arc::downgrade(&store);
            services
                .closed
                .push(Box::new(move || weak.strong_count() == 0));
            services.budgets = Some(store);
            services.budgets_status = Some(status);
        }
        if config.projections.audit.enabled {
            services.audit = Some(
                start_audit(config, &client, &services.tasks, &services.stop_background).await?,
            );
        }
        services.start_ledger(config, lease_requests);
        services.tasks.spawn(ledger::rates::run(
            RateLedger::new(client.clone(), &config.rate_limits, &config.nats),
            Arc::clone(&services.rates),
            rate_requests,
            services.stop_background.clone(),
        ));
        services.tasks.close();
        Ok((services, sink))
    }

    /// The budget ledger task (leases for admission, unused money given back) and, where the
    /// budgets projection runs, the alert watcher and its webhook caller.
    fn start_ledger(
        &self,
        config: &Config,
        lease_requests: tokio::sync::mpsc::Receiver<crate::governance::budgets::LeaseRequest>,
    ) {
        self.tasks.spawn(ledger::run(
            Ledger::new(self.client.clone(), config.nats.stream.clone()),
            Arc::clone(&self.accounts),
            self.budgets.clone(),
            lease_requests,
            config.budgets.idle_return,
            self.stop_background.clone(),
        ));
        let (Some(store), Some(status)) = (&self.budgets, &self.budgets_status) else {
            return;
        };
        let webhook = config.budgets.webhook_url.clone().map(|url| {
            let (tx, rx) = tokio::sync::mpsc::channel(alerts::WEBHOOK_QUEUE);
            self.tasks.spawn(alerts::deliver(
                url,
                config.budgets.clone(),
                config.pricing.currency.clone(),
                rx,
                self.stop_background.clone(),
            ));
            tx
        });
        self.tasks.spawn(alerts::watch(
            self.client.clone(),
            Arc::clone(&self.directory),
            Arc::clone(store),
            Arc::clone(status),
            webhook,
            self.stop_background.clone(),
        ));
    }

    /// One task per refreshable secret reference, stopped with the background tasks.
    fn keep_secrets_fresh(&self, credentials: &[secrets::Credential], fetcher: &Arc<Fetcher>) {
        for credential in credentials.iter().filter(|c| c.refresh_every().is_some()) {
            self.tasks.spawn(secrets::keep_fresh(
                credential.clone(),
                Arc::clone(fetcher),
                self.stop_background.clone(),
            ));
        }
    }

    /// A refused NATS server (too old, or it dropped our settings) stops the edge as shutdown
    /// does: in-flight requests finish and their events stay in the outbox.
    fn stop_edge_when_refused(&self, stop_edge: CancellationToken) {
        let refused = self.status.refused_signal.clone();
        self.tasks.spawn(async move {
            tokio::select! {
                _ = refused.cancelled() => {
                    tracing::error!("the NATS server was refused; stopping the gateway");
                    stop_edge.cancel();
                }
                _ = stop_edge.cancelled() => {}
            }
        });
    }

    /// Once the edge and its requests are done: the publisher drains, then the outbox task makes
    /// its last attempt and the projections commit, then the files close.
    async fn stop(self) -> Result<(), AppError> {
        self.drain.cancel();
        let _ = self.publisher.await;
        self.stop_background.cancel();
        let _ = self.outbox_task.await;
        self.tasks.wait().await;
        // redb files are closed on drop, and a connection task or a cancelled blocking call may
        // still hold a handle for a moment: wait for the last one so a restart in this process
        // (or `replay`) finds the files closed.
        let mut closed = self.closed;
        let weak_outbox = Arc::downgrade(&self.outbox);
        drop(self.outbox);
        closed.push(Box::new(move || weak_outbox.strong_count() == 0));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !closed.iter().all(|c| c()) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let left = self
            .status
            .outbox_len
            .load(std::sync::atomic::Ordering::Relaxed);
        if left > 0 {
            tracing::warn!(
                events = left,
                "stopped with events in the outbox; they are sent at next start"
            );
        }
        match self.status.refused() {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }
}

/// Open the audit index and run its projection (and the ticker that commits what it added)
/// on `tasks` until `stop`.
pub async fn start_audit(
    config: &Config,
    client: &async_nats::Client,
    tasks: &TaskTracker,
    stop: &CancellationToken,
) -> Result<Arc<AuditService>, AppError> {
    let path = config.audit_path();
    let audit = tokio::task::spawn_blocking(move || AuditProjection::open(&path))
        .await
        .map_err(ProjectionError::from)?
        .map_err(ProjectionError::from)?;
    let audit = Arc::new(audit);
    let runner = Runner {
        projection: Arc::clone(&audit),
        client: client.clone(),
        stream: config.nats.stream.clone(),
        batch: config.projections.audit.batch,
        status: Arc::new(ProjectionStatus::default()),
        mode: RunMode::Follow,
    };
    let run_stop = stop.clone();
    tasks.spawn(async move {
        if let Err(e) = runner.run(run_stop).await {
            tracing::error!(error = %e, "audit projection stopped");
        }
    });
    // Searches see what was committed: commit new records once a second.
    let (ticker, ticker_stop) = (Arc::clone(&audit), stop.clone());
    tasks.spawn(async move {
        let mut every = tokio::time::interval(AUDIT_COMMIT_EVERY);
        loop {
            tokio::select! {
                _ = every.tick() => {}
                _ = ticker_stop.cancelled() => return,
            }
            let a = Arc::clone(&ticker);
            match tokio::task::spawn_blocking(move || a.flush()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "audit index commit failed"),
                Err(e) => tracing::warn!(error = %e, "audit index commit did not finish"),
            }
        }
    });
    tasks.spawn(anchor_audit_chain(
        Arc::clone(&audit),
        client.clone(),
        config.projections.audit.anchor_every,
        stop.clone(),
    ));
    let retention = config.projections.audit.retention;
    if !retention.is_zero() {
        tasks.spawn(expire_audit_records(
            Arc::clone(&audit),
            retention,
            stop.clone(),
        ));
    }
    Ok(Arc::new(AuditService {
        projection: audit,
        client: client.clone(),
        stream: config.nats.stream.clone(),
    }))
}

/// Publish the audit chain's head as an `AuditAnchored` event every `every`, when records were
/// chained since the last anchor. An anchor that cannot be published now is tried at the next
/// tick.
async fn anchor_audit_chain(
    audit: Arc<AuditProjection>,
    client: async_nats::Client,
    every: Duration,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(every.max(Duration::from_millis(10)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut anchored = 0;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        let chain = audit.position().chain;
        if chain.length == 0 || chain.head_seq == anchored || !is_connected(&client) {
            continue;
        }
        let env = crate::projections::audit::anchor_event(&chain);
        match publish_now(&client, &env, Duration::from_secs(5)).await {
            Ok(_) => anchored = chain.head_seq,
            Err(e) => tracing::warn!(error = %e, "could not anchor the audit chain; retrying"),
        }
    }
}

/// Apply the index's retention once a minute (and at start).
async fn expire_audit_records(
    audit: Arc<AuditProjection>,
    retention: Duration,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        let cutoff = crate::governance::now_ms().saturating_sub(retention.as_millis() as u64);
        let a = Arc::clone(&audit);
        match tokio::task::spawn_blocking(move || a.expire(cutoff)).await {
            Ok(Ok(n)) if n > 0 => {
                tracing::info!(records = n, "audit records past retention deleted")
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "audit retention failed"),
            Err(e) => tracing::warn!(error = %e, "audit retention did not finish"),
        }
    }
}

/// How often the gateway commits new audit records (what searches can see).
const AUDIT_COMMIT_EVERY: Duration = Duration::from_secs(1);

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
            audit: None,
            governance: None,
            cache: None,
        };
        serve_admin(&config, listener, admin, &tasks, &shutdown);
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
    let client = connect_for_replay(&config).await?;
    let store = open_budgets(&config).await?;
    let s = Arc::clone(&store);
    tokio::task::spawn_blocking(move || s.reset())
        .await
        .map_err(ProjectionError::from)??;
    catch_up(
        &config,
        client,
        store,
        config.projections.budgets.batch,
        progress,
    )
    .await
}

/// `switchyard replay cache`: fold the stream's requests, answers and flushes of the last TTL
/// into a new cache, as every instance does at its start, and say what it holds (compare with
/// a running instance's `GET /admin/cache`).
pub async fn replay_cache(
    config: Config,
    progress: impl Fn(u64, u64) + Send + 'static,
) -> Result<crate::cache::store::Summary, AppError> {
    let client = connect_for_replay(&config).await?;
    let c = config.clone();
    // The fold needs no embedder: the vectors are in the events.
    let cache = tokio::task::spawn_blocking(move || crate::cache::Cache::from_config(&c, None))
        .await??
        .ok_or(AppError::CacheOff)?;
    crate::cache::follow::replay(&client, &config.nats.stream, &cache, progress).await?;
    Ok(cache.summary())
}

/// `switchyard replay audit`: empty the audit index and rebuild it from the stream. Returns
/// the last stream sequence applied and the records in the index.
pub async fn replay_audit(
    config: Config,
    progress: impl Fn(u64, u64) + Send + 'static,
) -> Result<(u64, u64), AppError> {
    let client = connect_for_replay(&config).await?;
    let path = config.audit_path();
    let audit = tokio::task::spawn_blocking(move || AuditProjection::open(&path))
        .await
        .map_err(ProjectionError::from)?
        .map_err(ProjectionError::from)?;
    let audit = Arc::new(audit);
    let a = Arc::clone(&audit);
    tokio::task::spawn_blocking(move || a.reset())
        .await
        .map_err(ProjectionError::from)?
        .map_err(ProjectionError::from)?;
    let batch = config.projections.audit.batch;
    catch_up(&config, client, Arc::clone(&audit), batch, progress).await?;
    Ok((audit.position().applied, audit.index().len()))
}

async fn connect_for_replay(config: &Config) -> Result<async_nats::Client, AppError> {
    let (client, _) = connect_nats(config, Duration::from_secs(10)).await?;
    if !is_connected(&client) {
        return Err(AppError::Unreachable {
            url: config.nats.url.clone(),
        });
    }
    Ok(client)
}

/// Run `projection` until it has applied the stream as it is now, reporting progress (applied,
/// stream end) every 100 ms; its checkpoint at the end.
async fn catch_up<P: Projection>(
    config: &Config,
    client: async_nats::Client,
    projection: Arc<P>,
    batch: usize,
    progress: impl Fn(u64, u64) + Send + 'static,
) -> Result<u64, AppError> {
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
        projection: Arc::clone(&projection),
        client,
        stream: config.nats.stream.clone(),
        batch,
        status: Arc::clone(&status),
        mode: RunMode::CatchUp,
    }
    .run(CancellationToken::new())
    .await;
    stop.cancel();
    ticker.wait().await;
    res?;
    Ok(tokio::task::spawn_blocking(move || projection.checkpoint())
        .await
        .map_err(ProjectionError::from)??)
}

/// `switchyard consume audit`: run only the audit projection (and, with `listen`, the audit
/// search API) until `shutdown`.
pub async fn consume_audit(
    config: Config,
    listen: Option<TcpListener>,
    shutdown: CancellationToken,
) -> Result<(), AppError> {
    let (client, _) = connect_nats(&config, Duration::from_secs(5)).await?;
    let tasks = TaskTracker::new();
    let audit = start_audit(&config, &client, &tasks, &shutdown).await?;
    if let Some(listener) = listen {
        let admin = AdminState {
            admin_token_hash: config.admin_token_hash,
            currency: config.pricing.currency.clone(),
            budgets: None,
            budgets_status: None,
            audit: Some(audit),
            governance: None,
            cache: None,
        };
        serve_admin(&config, listener, admin, &tasks, &shutdown);
    }
    // The runner commits what it added when it stops.
    tasks.close();
    tasks.wait().await;
    Ok(())
}

/// A standalone projection's admin API on `listener`, on `tasks` until `shutdown`.
fn serve_admin(
    config: &Config,
    listener: TcpListener,
    admin: AdminState,
    tasks: &TaskTracker,
    shutdown: &CancellationToken,
) {
    let stop = shutdown.clone();
    let limits = Limits::from_config(&config.server);
    tasks.spawn(async move {
        if let Err(e) = listener::serve(listener, edge::admin_router(admin), limits, stop).await {
            tracing::error!(error = %e, "admin listener stopped");
        }
    });
}
