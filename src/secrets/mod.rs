//! Provider credentials at run time. Every secret reference of the config is a
//! [`Credential`] (named by its config path) whose current value the adapters read once per
//! request. References read at load (`env`, `file`) arrive with their value; the others
//! (`exec`, `vault`, `aws`) are fetched by [`resolve_pending`] before the gateway serves, and a
//! failure there stops it naming the reference. Then [`keep_fresh`], one supervised task per
//! refreshable reference, fetches it again every refresh interval: a new value reaches the next
//! request built, never one in flight; a failed fetch keeps the last good value, is logged (by
//! reference, not value), counted, and shown by `/readyz` until a fetch succeeds.
//!
//! No value reaches a log, an event, an error or a metric: messages name the reference and
//! quote what the source said about it, never a body, a command's stdout or serde's reading of
//! a body (which can quote values), and a message that still holds the value in use has it
//! blanked out ([`Credential::reject`]).

mod aws;
mod credential;
mod exec;
mod vault;

pub use credential::{Accepted, Credential, Fetched, Source, Status};

use reqwest::header::HeaderValue;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use crate::config::{Secret, SecretRef, SecretsConfig};

/// Why a secret could not be fetched. Names the source, never a value.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// An `env` or `file` reference (the message names the variable or file).
    #[error("{0}")]
    Local(String),
    #[error("command {program:?}: {reason}")]
    Exec { program: String, reason: String },
    #[error("Vault {at}: {reason}")]
    Vault { at: String, reason: String },
    #[error("AWS Secrets Manager {secret_id:?}: {reason}")]
    Aws { secret_id: String, reason: String },
    #[error("{kind} fetch took longer than {limit:?}")]
    Timeout { kind: &'static str, limit: Duration },
    #[error("the {kind} value is not usable as a credential: {why}")]
    Unusable {
        kind: &'static str,
        why: &'static str,
    },
}

/// Fetches secrets: the HTTP client for Vault and AWS and the time limit of one fetch.
pub struct Fetcher {
    http: reqwest::Client,
    timeout: Duration,
}

impl Fetcher {
    pub fn new(config: &SecretsConfig) -> Result<Self, reqwest::Error> {
        Ok(Self {
            http: reqwest::Client::builder()
                .connect_timeout(config.timeout)
                .timeout(config.timeout)
                .build()?,
            timeout: config.timeout,
        })
    }

    /// The current value at `source`, within the time limit, checked to be usable in an HTTP
    /// header (what every adapter does with it).
    pub async fn fetch(&self, source: &Source) -> Result<Fetched, FetchError> {
        let kind = source.kind();
        let fetched = tokio::time::timeout(self.timeout, self.fetch_unchecked(source))
            .await
            .map_err(|_| FetchError::Timeout {
                kind,
                limit: self.timeout,
            })??;
        usable(&fetched.value).map_err(|why| FetchError::Unusable { kind, why })?;
        Ok(fetched)
    }

    async fn fetch_unchecked(&self, source: &Source) -> Result<Fetched, FetchError> {
        let plain = |value| Fetched {
            value,
            version: None,
        };
        match source {
            Source::Env(name) => local(&SecretRef::Env(name.clone()))
                .await
                .map(plain)
                .map_err(FetchError::Local),
            Source::File(path) => local(&SecretRef::File(path.clone()))
                .await
                .map(plain)
                .map_err(FetchError::Local),
            Source::Exec { command } => exec::fetch(command).await,
            Source::Vault {
                url,
                token,
                namespace,
                field,
                at,
            } => vault::fetch(&self.http, url, token, namespace.as_deref(), field, at).await,
            Source::Aws {
                endpoint,
                region,
                secret_id,
                field,
            } => aws::fetch(&self.http, endpoint, region, secret_id, field.as_deref()).await,
        }
    }
}

/// An `env` or `file` reference read now, on the blocking pool (a file may sit on a slow
/// mount).
async fn local(r: &SecretRef) -> Result<Secret, String> {
    let r = r.clone();
    tokio::task::spawn_blocking(move || r.resolve())
        .await
        .map_err(|e| format!("the read did not finish: {e}"))?
}

/// The status and body of a secret store's answer to `request`, or why there is none, in words
/// that never quote the body (a store's error body can carry the value).
async fn answer(
    request: impl Future<Output = Result<reqwest::Response, reqwest::Error>>,
) -> Result<(u16, bytes::Bytes), String> {
    let answer = request
        .await
        .map_err(|e| format!("no answer: {}", crate::providers::short_cause(&e)))?;
    let status = answer.status().as_u16();
    let body = answer
        .bytes()
        .await
        .map_err(|e| format!("answer cut: {}", crate::providers::short_cause(&e)))?;
    Ok((status, body))
}

/// Whether a value can be a credential: not empty, and sendable in an HTTP header (where every
/// adapter puts it). Checked for every fetched value, so a bad rotation keeps the last good one.
pub fn usable(value: &Secret) -> Result<(), &'static str> {
    if value.expose().is_empty() {
        return Err("it is empty");
    }
    if HeaderValue::from_str(value.expose()).is_err() {
        return Err("it holds characters an HTTP header cannot carry (a newline inside?)");
    }
    Ok(())
}

/// Fetch every credential that holds no value yet (`exec`, `vault`, `aws`), all at once; on
/// failure, every reference that failed with the reason (`providers.x.api_key: …`).
pub async fn resolve_pending(
    credentials: &[Credential],
    fetcher: &Fetcher,
) -> Result<(), Vec<String>> {
    let pending = credentials.iter().filter(|c| !c.is_resolved());
    let fetches = pending
        .filter_map(|c| Some((c, c.source()?)))
        .map(|(c, source)| async move {
            let fetched = fetcher.fetch(source).await;
            (c, fetched)
        });
    let mut problems = Vec::new();
    for (credential, fetched) in futures::future::join_all(fetches).await {
        match fetched {
            Ok(f) => {
                record_success(credential, f);
            }
            // Not logged: the caller reports every problem at once and does not start.
            Err(e) => {
                let (_, message) = credential.reject(&e);
                problems.push(format!("{}: {message}", credential.name()));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// Keep `credential` current until `stop`: fetch it again every refresh interval; after a
/// failure, sooner ([`retry_in`]). Returns at once for a credential that is not refreshed.
pub async fn keep_fresh(credential: Credential, fetcher: Arc<Fetcher>, stop: CancellationToken) {
    let (Some(every), Some(source)) = (credential.refresh_every(), credential.source().cloned())
    else {
        return;
    };
    let mut wait = every;
    loop {
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = stop.cancelled() => return,
        }
        let fetched = tokio::select! {
            fetched = fetcher.fetch(&source) => fetched,
            () = stop.cancelled() => return,
        };
        wait = match fetched {
            Ok(f) => {
                record_success(&credential, f);
                every
            }
            Err(e) => retry_in(record_failure(&credential, &e), every),
        };
    }
}

/// When to try again after `failures` failed fetches in a row: 1 s, doubling, at most `every`.
pub fn retry_in(failures: u32, every: Duration) -> Duration {
    let backoff =
        Duration::from_secs(1).saturating_mul(1 << failures.clamp(1, 16).saturating_sub(1));
    backoff.min(every)
}

fn record_success(credential: &Credential, fetched: Fetched) {
    let version = fetched.version.clone();
    let accepted = credential.accept(fetched);
    metrics::counter!("switchyard_secret_refreshes_total", "secret" => credential.name().to_owned())
        .increment(1);
    if accepted.recovered {
        tracing::info!(
            secret = credential.name(),
            "secret fetched again after failures"
        );
    }
    if accepted.rotated {
        tracing::info!(
            secret = credential.name(),
            version = version.as_deref().unwrap_or("-"),
            "secret value changed; requests built from now on use the new one"
        );
    }
}

fn record_failure(credential: &Credential, error: &FetchError) -> u32 {
    let (failures, message) = credential.reject(error);
    metrics::counter!(
        "switchyard_secret_refresh_failures_total",
        "secret" => credential.name().to_owned()
    )
    .increment(1);
    tracing::warn!(
        secret = credential.name(),
        failures,
        error = %message,
        "secret refresh failed; the last good value stays in use"
    );
    failures
}

/// Set the per-secret gauges (age, stale), at scrape time.
pub fn record_gauges(credentials: &[Credential]) {
    for status in credentials.iter().map(Credential::status) {
        let name = status.name.clone();
        if let Some(age) = status.age {
            metrics::gauge!("switchyard_secret_age_seconds", "secret" => name.clone())
                .set(age.as_secs_f64());
        }
        metrics::gauge!("switchyard_secret_stale", "secret" => name)
            .set(f64::from(u8::from(status.stale())));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn retries_come_sooner_than_the_interval_and_back_off() {
        let every = Duration::from_secs(300);
        let waits: Vec<u64> = (1..=10).map(|n| retry_in(n, every).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300]);
        assert_eq!(retry_in(u32::MAX, every), every);
        assert_eq!(retry_in(3, Duration::from_secs(2)), Duration::from_secs(2));
    }

    #[test]
    fn a_value_must_fit_a_header() {
        assert!(usable(&Secret::new("sk-1")).is_ok());
        assert!(usable(&Secret::new("")).is_err());
        assert!(usable(&Secret::new("a\nb")).is_err());
    }

    #[tokio::test]
    async fn pending_credentials_are_fetched_and_failures_name_the_reference() {
        let fetcher = Fetcher::new(&SecretsConfig::default()).unwrap();
        let exec = |script: &str| Source::Exec {
            command: vec!["sh".into(), "-c".into(), script.into()],
        };
        let good = Credential::new("providers.a.api_key", exec("echo sk-good-1"), None, None);
        let bad = Credential::new("providers.b.api_keys[1]", exec("exit 7"), None, None);
        let local = Credential::fixed(Secret::new("sk-fixed"));
        let problems = resolve_pending(&[good.clone(), bad.clone(), local], &fetcher)
            .await
            .unwrap_err();
        assert_eq!(good.current().expose(), "sk-good-1");
        assert_eq!(
            problems,
            ["providers.b.api_keys[1]: command \"sh\": exit status: 7"]
        );
        assert!(bad.status().stale());
    }

    #[tokio::test]
    async fn a_fetch_past_the_time_limit_fails() {
        let fetcher = Fetcher::new(&SecretsConfig {
            timeout: Duration::from_millis(100),
            ..SecretsConfig::default()
        })
        .unwrap();
        let slow = Source::Exec {
            command: vec!["sleep".into(), "5".into()],
        };
        let e = fetcher.fetch(&slow).await.err().unwrap();
        assert!(matches!(e, FetchError::Timeout { kind: "exec", .. }), "{e}");
    }
}
