//! Rate-limit timelines shared by instances: each limit's global TAT (see
//! `governance::rate::timeline`) is the last message of a subject of its own in a small stream
//! (`[rate_limits] stream`, one message per subject, kept ten minutes: a TAT older than now is
//! as good as none). To lease a stretch an instance reads the TAT and writes the new one only if
//! nobody wrote since ([`super::cas`]); admission spends the stretch from memory. Unlike budget
//! leases these are not events: a limit's state is worth nothing a minute later, so it is not
//! kept or replayed.

use async_nats::jetstream::{self, stream};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OnceCell, mpsc};
use tokio_util::sync::CancellationToken;
use ulid::Ulid;

use super::cas::{self, CONTENTION_TRIES, LedgerError};
use crate::config::{NatsConfig, RateLimitsConfig};
use crate::governance::rate::{LeaseOutcome, LeaseRequest, Meter, Rates, now_ns, timeline};

/// Every limit's subject is under this prefix.
pub const RATE_SUBJECT_PREFIX: &str = "switchyard.rates.";
/// How long a limit's TAT is kept after its last lease.
const KEEP: Duration = Duration::from_secs(600);

/// The subject of one limit: scope names may hold any character, so they are hashed.
pub fn subject(meter: &Meter) -> String {
    let mut h = Sha256::new();
    for part in [meter.scope.kind.as_str(), &meter.scope.name] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    format!(
        "{RATE_SUBJECT_PREFIX}{}.{}",
        meter.unit.as_str(),
        hex::encode(&h.finalize()[..16])
    )
}

/// Reads and writes the limits' TATs.
#[derive(Clone)]
pub struct RateLedger {
    client: async_nats::Client,
    js: jetstream::Context,
    stream: String,
    replicas: usize,
    ready: Arc<OnceCell<()>>,
}

impl RateLedger {
    pub fn new(client: async_nats::Client, cfg: &RateLimitsConfig, nats: &NatsConfig) -> Self {
        let js = jetstream::new(client.clone());
        Self {
            client,
            js,
            stream: cfg.stream.clone(),
            replicas: nats.replicas,
            ready: Arc::new(OnceCell::new()),
        }
    }

    /// Create the stream the first time it is needed (again after a failure).
    async fn ensure(&self) -> Result<(), LedgerError> {
        self.ready
            .get_or_try_init(|| async {
                let want = stream::Config {
                    name: self.stream.clone(),
                    subjects: vec![format!("{RATE_SUBJECT_PREFIX}>")],
                    storage: stream::StorageType::File,
                    max_messages_per_subject: 1,
                    max_age: KEEP,
                    duplicate_window: Duration::from_secs(120),
                    num_replicas: self.replicas,
                    ..Default::default()
                };
                let create = self.js.get_or_create_stream(want);
                match tokio::time::timeout(cas::OP_TIMEOUT, create).await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(e)) => Err(LedgerError::Nats(e.to_string())),
                    Err(_) => Err(LedgerError::Timeout(cas::OP_TIMEOUT)),
                }
            })
            .await
            .map(|_| ())
    }

    /// The limit's global TAT (0 when none is kept) and the sequence it was read at.
    async fn tat(&self, subject: &str) -> Result<(u64, u64), LedgerError> {
        let (seq, payload) = cas::last(&self.client, &self.js, &self.stream, subject).await?;
        let tat = match payload {
            None => 0,
            Some(p) => std::str::from_utf8(&p)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| LedgerError::Corrupt(format!("{subject}: not a TAT")))?,
        };
        Ok((seq, tat))
    }

    /// Lease what `req` asks for, or learn that nothing usable is left.
    pub async fn lease(&self, req: &LeaseRequest) -> Result<LeaseOutcome, LedgerError> {
        self.ensure().await?;
        let subject = subject(&req.meter);
        for _ in 0..CONTENTION_TRIES {
            let (seq, tat) = self.tat(&subject).await?;
            let now = now_ns();
            let Some((start, end)) =
                timeline::lease_span(tat, now, req.min_ns, req.size_ns, req.tolerance)
            else {
                return Ok(LeaseOutcome::Saw { tat });
            };
            let payload = bytes::Bytes::from(end.to_string());
            let id = Ulid::generate().to_string();
            match cas::append(&self.client, &self.js, subject.clone(), &id, payload, seq).await? {
                Ok(()) => {
                    return Ok(LeaseOutcome::Granted {
                        before: tat,
                        start,
                        end,
                    });
                }
                Err(cas::Conflict) => {
                    metrics::counter!("switchyard_rate_lease_conflicts_total").increment(1);
                }
            }
        }
        Err(LedgerError::Contention(CONTENTION_TRIES))
    }
}

async fn lease_one(ledger: &RateLedger, rates: &Rates, req: LeaseRequest) {
    let outcome = match ledger.lease(&req).await {
        Ok(o) => {
            let granted = matches!(o, LeaseOutcome::Granted { .. });
            metrics::counter!("switchyard_rate_leases_total", "granted" => if granted { "yes" } else { "no" }).increment(1);
            o
        }
        Err(e) => {
            metrics::counter!("switchyard_rate_lease_failures_total").increment(1);
            tracing::warn!(scope = %req.meter.scope, unit = req.meter.unit.as_str(), error = %e, "rate-limit lease failed");
            LeaseOutcome::Unavailable
        }
    };
    rates.lease_done(&req, outcome);
}

/// The rate ledger task: take lease requests from admission until `stop`.
pub async fn run(
    ledger: RateLedger,
    rates: Arc<Rates>,
    mut requests: mpsc::Receiver<LeaseRequest>,
    stop: CancellationToken,
) {
    let mut leases = FuturesUnordered::new();
    loop {
        tokio::select! {
            Some(req) = requests.recv() => leases.push(lease_one(&ledger, &rates, req)),
            Some(()) = leases.next(), if !leases.is_empty() => {}
            _ = stop.cancelled() => break,
        }
    }
    while leases.next().await.is_some() {}
}
