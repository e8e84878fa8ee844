//! Logs (tracing) and metrics (Prometheus exposition through the `metrics` facade).

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::io::IsTerminal;
use std::sync::OnceLock;

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines; coloured only when stderr is a terminal (and `NO_COLOR` is unset),
    /// so files and log collectors never see escape codes.
    Text,
    /// One JSON object per line (`timestamp`, `level`, `fields`, `target`, and `span`/`spans`
    /// when inside one), for log collectors.
    Json,
}

/// Install the log subscriber: `RUST_LOG` filters (default `info`), in `format`.
pub fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().with_ansi(false).try_init(),
        LogFormat::Text => builder.with_ansi(ansi).try_init(),
    };
}

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Install the process-wide metrics recorder once and return its handle for `/metrics`.
pub fn metrics() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .set_buckets(&[
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                    10.0, 30.0, 60.0,
                ])
                .ok()?
                .install_recorder()
                .ok()?;
            describe();
            Some(handle)
        })
        .clone()
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "switchyard_requests_total",
        "Requests answered, by public model, provider and status."
    );
    describe_counter!(
        "switchyard_client_disconnects_total",
        "Admitted requests whose client left early, by public model and stage (before_answer: before the answer was handed over; mid_stream). Each still has its closing events."
    );
    describe_histogram!(
        "switchyard_request_duration_seconds",
        "Time from request to the end of the answer."
    );
    describe_counter!(
        "switchyard_tokens_total",
        "Tokens by public model and direction (input/output)."
    );
    describe_counter!(
        "switchyard_upstream_errors_total",
        "Failed upstream attempts by provider and error class."
    );
    describe_counter!(
        "switchyard_events_published_total",
        "Events acknowledged by JetStream."
    );
    describe_counter!(
        "switchyard_events_spilled_total",
        "Events written to the outbox because JetStream did not acknowledge them in time."
    );
    describe_counter!(
        "switchyard_outbox_resent_total",
        "Outbox events re-sent and acknowledged."
    );
    describe_counter!(
        "switchyard_event_channel_full_total",
        "Times a handler waited because the publisher channel was full."
    );
    describe_counter!(
        "switchyard_events_lost_total",
        "Events that could be neither published nor stored (should stay 0)."
    );
    describe_gauge!(
        "switchyard_outbox_pending",
        "Events in the outbox awaiting JetStream."
    );
    describe_gauge!("switchyard_nats_connected", "1 when connected to NATS.");
    describe_gauge!(
        "switchyard_connections_open",
        "Client connections open on the HTTP listeners."
    );
    describe_counter!(
        "switchyard_connections_rejected_total",
        "Connections answered 503 and closed because server.max_connections were open."
    );
    describe_counter!(
        "switchyard_connections_timed_out_total",
        "Connections closed for sending no request head in time (reason header) or idling \
         kept-alive past server.idle_timeout (reason idle)."
    );
    describe_gauge!(
        "switchyard_projection_lag",
        "Messages the projection's consumer has not yet delivered."
    );
    describe_gauge!(
        "switchyard_projection_checkpoint",
        "Last stream sequence the projection applied."
    );
    describe_counter!(
        "switchyard_projection_undecodable_total",
        "Events a projection could not decode and skipped."
    );
    describe_gauge!(
        "switchyard_breaker_state",
        "Circuit breaker of a deployment: 0 closed, 1 half-open, 2 open."
    );
    describe_counter!(
        "switchyard_breaker_transitions_total",
        "Circuit breaker state changes, by deployment and new state."
    );
    describe_counter!(
        "switchyard_breaker_rejections_total",
        "Attempts not made because the deployment's breaker was open."
    );
    describe_counter!(
        "switchyard_retries_total",
        "Retries of the same deployment, by provider and the error class retried."
    );
    describe_counter!(
        "switchyard_retry_budget_exhausted_total",
        "Retries refused because the deployment's retry budget was spent."
    );
    describe_counter!(
        "switchyard_hedges_total",
        "Second attempts started because the first was slow to answer."
    );
    describe_counter!(
        "switchyard_budget_refusals_total",
        "Requests refused by budget admission, by reason (exceeded, ledger_unavailable), scope kind and period."
    );
    describe_counter!(
        "switchyard_budget_admitted_on_credit_total",
        "Budget reservations admitted without a lease while the ledger was unreachable (when_ledger_unavailable = allow)."
    );
    describe_counter!(
        "switchyard_budget_leases_total",
        "Budget lease attempts answered by the ledger, by whether money was granted."
    );
    describe_counter!(
        "switchyard_budget_lease_failures_total",
        "Budget lease attempts that could not reach the ledger."
    );
    describe_counter!(
        "switchyard_budget_lease_conflicts_total",
        "Budget ledger writes refused because another instance wrote first (then read again)."
    );
    describe_counter!(
        "switchyard_budget_alerts_total",
        "Budget threshold crossings this instance recorded, by period and scope kind."
    );
    describe_counter!(
        "switchyard_budget_webhook_calls_total",
        "Budget webhook deliveries, by result (delivered, failed after every attempt)."
    );
    describe_counter!(
        "switchyard_secret_refreshes_total",
        "Successful fetches of a provider secret reference (at start and on refresh), by config path (secret)."
    );
    describe_counter!(
        "switchyard_secret_refresh_failures_total",
        "Failed refreshes of a provider secret reference, by config path (secret); the last good value stays in use."
    );
    describe_gauge!(
        "switchyard_secret_age_seconds",
        "Seconds since the value in use of a provider secret reference was fetched; grows past the refresh interval while fetches fail."
    );
    describe_gauge!(
        "switchyard_secret_stale",
        "1 when the last fetch of a provider secret reference failed (the last good value is in use)."
    );
}
