//! [`Credential`]: one secret reference of the config (named by its path, e.g.
//! `providers.openai.api_key`) and the value currently in use. Adapters read it once per
//! request (one atomic load) and copy it into the request they build, so a rotation reaches the
//! next request and never one in flight; the refresher swaps in new values and records how each
//! fetch went. Nothing here does I/O.

use arc_swap::ArcSwap;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::config::{Secret, SecretRef};

/// Where a credential is fetched from, validated (URLs parsed, defaults such as `VAULT_ADDR`
/// and the region applied), so the refresher looks nothing up again.
#[derive(Debug, Clone)]
pub enum Source {
    Env(String),
    File(PathBuf),
    Exec {
        command: Vec<String>,
    },
    Vault {
        /// `{addr}/v1/{mount}/data/{path}`.
        url: reqwest::Url,
        /// An `env` or `file` reference, read at every fetch.
        token: SecretRef,
        namespace: Option<String>,
        field: String,
        /// `mount/path#field`, for messages.
        at: String,
    },
    Aws {
        endpoint: reqwest::Url,
        region: String,
        secret_id: String,
        field: Option<String>,
    },
}

impl Source {
    /// `env`, `file`, `exec`, `vault` or `aws`.
    pub fn kind(&self) -> &'static str {
        match self {
            Source::Env(_) => "env",
            Source::File(_) => "file",
            Source::Exec { .. } => "exec",
            Source::Vault { .. } => "vault",
            Source::Aws { .. } => "aws",
        }
    }
}

/// A value fetched from a source, with the source's version of it when it has one (Vault's
/// version number, Secrets Manager's `VersionId`): not secret, shown in logs on rotation.
/// Debug prints the value as `***`.
#[derive(Debug)]
pub struct Fetched {
    pub value: Secret,
    pub version: Option<String>,
}

/// One secret reference and its current value. Clones share both; Debug prints the name only.
#[derive(Clone)]
pub struct Credential(Arc<Slot>);

struct Slot {
    name: String,
    /// `None` for a fixed value (tests, benchmarks, adapters built outside a config).
    source: Option<Source>,
    refresh: Option<Duration>,
    value: ArcSwap<Secret>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    resolved: bool,
    fetched_at: Option<Instant>,
    version: Option<String>,
    /// Failed fetches since the last good one.
    failures: u32,
    error: Option<String>,
}

/// How a credential's fetches went, for `/readyz` and the metrics. Holds no value.
#[derive(Debug, Clone)]
pub struct Status {
    /// The config path of the reference.
    pub name: String,
    /// `env`, `file`, `exec`, `vault`, `aws` (or `fixed`).
    pub kind: &'static str,
    /// Time since the value in use was fetched; grows past the refresh interval while fetches
    /// fail.
    pub age: Option<Duration>,
    /// Failed fetches since the last good one: more than 0 means the value may be stale.
    pub failures: u32,
    /// Why the last fetch failed (names the reference, never a value).
    pub error: Option<String>,
    pub version: Option<String>,
}

impl Status {
    /// The last fetch failed, so the value in use may have been rotated away.
    pub fn stale(&self) -> bool {
        self.failures > 0
    }
}

/// What storing a fetched value changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    /// The value differs from the one it replaces (a first value is no rotation).
    pub rotated: bool,
    /// Earlier fetches had failed.
    pub recovered: bool,
}

impl Credential {
    /// The reference written at `name`, with its value when it was read at load (`env`, `file`);
    /// otherwise it holds an empty value until fetched, and adapters refuse to be built on it.
    pub fn new(
        name: &str,
        source: Source,
        refresh: Option<Duration>,
        value: Option<Secret>,
    ) -> Self {
        let resolved = value.is_some();
        Self(Arc::new(Slot {
            name: name.to_owned(),
            source: Some(source),
            refresh,
            value: ArcSwap::from_pointee(value.unwrap_or_else(|| Secret::new(""))),
            state: Mutex::new(State {
                resolved,
                fetched_at: resolved.then(Instant::now),
                ..State::default()
            }),
        }))
    }

    /// A value that never changes, for adapters built outside a config (tests, benchmarks).
    pub fn fixed(value: Secret) -> Self {
        Self(Arc::new(Slot {
            name: String::new(),
            source: None,
            refresh: None,
            value: ArcSwap::from_pointee(value),
            state: Mutex::new(State {
                resolved: true,
                fetched_at: Some(Instant::now()),
                ..State::default()
            }),
        }))
    }

    /// The value to put in the request being built.
    pub fn current(&self) -> Arc<Secret> {
        self.0.value.load_full()
    }

    /// The config path of the reference (`providers.openai.api_key`).
    pub fn name(&self) -> &str {
        &self.0.name
    }

    pub fn source(&self) -> Option<&Source> {
        self.0.source.as_ref()
    }

    /// How often it is fetched again, if at all.
    pub fn refresh_every(&self) -> Option<Duration> {
        self.0.refresh
    }

    /// Whether it holds a fetched value (always, once the gateway serves).
    pub fn is_resolved(&self) -> bool {
        self.state().resolved
    }

    /// Store a fetched value: requests built from now on use it.
    pub fn accept(&self, fetched: Fetched) -> Accepted {
        let mut state = self.state();
        let changed = self.0.value.load().expose() != fetched.value.expose();
        if changed {
            self.0.value.store(Arc::new(fetched.value));
        }
        let rotated = changed && state.resolved;
        let recovered = state.failures > 0;
        *state = State {
            resolved: true,
            fetched_at: Some(Instant::now()),
            version: fetched.version,
            failures: 0,
            error: None,
        };
        Accepted { rotated, recovered }
    }

    /// Record a failed fetch; the value in use stays. Returns the failures in a row and the
    /// message as recorded: should a source quote the value in use, it is blanked out.
    pub fn reject(&self, error: &impl fmt::Display) -> (u32, String) {
        let message = redact(&error.to_string(), self.0.value.load().expose());
        let mut state = self.state();
        state.failures = state.failures.saturating_add(1);
        state.error = Some(message.clone());
        (state.failures, message)
    }

    pub fn status(&self) -> Status {
        let state = self.state();
        Status {
            name: self.0.name.clone(),
            kind: self.source().map_or("fixed", Source::kind),
            age: state.fetched_at.map(|t| t.elapsed()),
            failures: state.failures,
            error: state.error.clone(),
            version: state.version.clone(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain values behind, all valid.
        self.0.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Credential({}: ***)", self.0.name)
    }
}

/// Values shorter than this are not blanked out of messages: they would garble them, and no
/// real credential is that short.
const REDACT_MIN_CHARS: usize = 4;

/// `message` with every occurrence of `value` replaced by `***`.
pub fn redact(message: &str, value: &str) -> String {
    if value.chars().count() < REDACT_MIN_CHARS {
        return message.to_owned();
    }
    message.replace(value, "***")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn fetched(value: &str, version: Option<&str>) -> Fetched {
        Fetched {
            value: Secret::new(value),
            version: version.map(str::to_owned),
        }
    }

    #[test]
    fn a_fetch_swaps_the_value_and_a_failure_keeps_it() {
        let c = Credential::new(
            "providers.p.api_key",
            Source::Exec {
                command: vec!["x".into()],
            },
            Some(Duration::from_secs(1)),
            None,
        );
        assert!(!c.is_resolved());
        assert_eq!(c.current().expose(), "");
        let held = c.clone();
        let first = c.accept(fetched("sk-one-1234", Some("1")));
        assert!(
            !first.rotated && !first.recovered,
            "a first value is no rotation"
        );
        let in_flight = held.current();
        assert_eq!(in_flight.expose(), "sk-one-1234");
        let (failures, message) = c.reject(&"vault answered 503 for sk-one-1234");
        assert_eq!(failures, 1);
        assert_eq!(message, "vault answered 503 for ***");
        assert_eq!(
            c.current().expose(),
            "sk-one-1234",
            "the last good value stays"
        );
        let status = c.status();
        assert!(status.stale());
        assert_eq!(status.kind, "exec");
        assert_eq!(format!("{c:?}"), "Credential(providers.p.api_key: ***)");
        let next = c.accept(fetched("sk-two-5678", Some("2")));
        assert!(next.rotated && next.recovered);
        assert_eq!(
            in_flight.expose(),
            "sk-one-1234",
            "a value already taken is kept"
        );
        assert_eq!(
            held.current().expose(),
            "sk-two-5678",
            "clones share the cell"
        );
        assert!(!c.status().stale());
        assert_eq!(c.status().version.as_deref(), Some("2"));
        assert!(!c.accept(fetched("sk-two-5678", Some("2"))).rotated);
    }

    #[test]
    fn short_values_are_not_blanked_out_of_messages() {
        assert_eq!(redact("exit status 1", "1"), "exit status 1");
        assert_eq!(redact("got abcd", "abcd"), "got ***");
    }
}
