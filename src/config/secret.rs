//! Secrets as config writes them: references, never values. An environment variable or a file
//! (read at load), the output of a command, a HashiCorp Vault KV v2 field or an AWS Secrets
//! Manager secret (fetched before serving); the `[secrets]` section (how often they are fetched
//! again, and how long a fetch may take); and the validation of a reference into the
//! [`Credential`] the adapters read and the refresher (`crate::secrets`) keeps current.
//! Nothing here talks to a network or runs a command.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use super::validate::Environment;
use crate::secrets::{Credential, Source};

/// Where a secret comes from. The value itself never appears in the config file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum SecretRef {
    /// Read from this environment variable at start (never again: a process's environment does
    /// not change).
    Env(String),
    /// Read from this file at start (trailing newline trimmed), e.g. a mounted Docker or
    /// Kubernetes secret, and read again every `[secrets].refresh`, which is how a mounted
    /// Kubernetes secret rotates.
    File(PathBuf),
    /// What a command prints on stdout (trailing newline trimmed), for any vault's CLI.
    Exec(ExecRef),
    /// A field of a HashiCorp Vault KV version 2 secret, read over HTTP with a token.
    Vault(VaultRef),
    /// An AWS Secrets Manager secret (its `SecretString`, or one key of it when it is JSON).
    Aws(AwsSecretRef),
}

/// `{ exec = { command = ["vault", "kv", "get", "-field=key", "secret/openai"] } }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecRef {
    /// The program and its arguments, run without a shell, with the gateway's environment and
    /// no stdin. A non-zero exit is a failed fetch.
    pub command: Vec<String>,
    /// How often to run it again (default `[secrets].refresh`; `0s`: only at start).
    #[serde(default, with = "humantime_serde::option")]
    #[schemars(with = "Option<String>")]
    pub refresh: Option<Duration>,
}

/// `{ vault = { path = "switchyard/openai", field = "api_key" } }`: `GET
/// {addr}/v1/{mount}/data/{path}` with `X-Vault-Token`, the latest version's `field`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VaultRef {
    /// The Vault server, e.g. `https://vault.internal:8200` (default `VAULT_ADDR`).
    pub addr: Option<String>,
    /// Where the KV v2 engine is mounted.
    #[serde(default = "default_mount")]
    pub mount: String,
    /// The secret's path under the mount.
    pub path: String,
    /// The key of the secret's data that holds the value.
    pub field: String,
    /// The Vault token (default `{ env = "VAULT_TOKEN" }`): an `env` or `file` reference,
    /// read at every fetch, so a token file renewed by Vault Agent is picked up.
    pub token: Option<Box<SecretRef>>,
    /// Vault Enterprise namespace (`X-Vault-Namespace`).
    pub namespace: Option<String>,
    /// How often to read it again (default `[secrets].refresh`; `0s`: only at start).
    #[serde(default, with = "humantime_serde::option")]
    #[schemars(with = "Option<String>")]
    pub refresh: Option<Duration>,
}

fn default_mount() -> String {
    "secret".to_owned()
}

/// `{ aws = { secret_id = "prod/openai", field = "api_key" } }`: Secrets Manager's
/// `GetSecretValue`, signed with SigV4 from `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and
/// (if set) `AWS_SESSION_TOKEN`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AwsSecretRef {
    /// The secret's name or ARN.
    pub secret_id: String,
    /// The secret's region (default `AWS_REGION`, then `AWS_DEFAULT_REGION`).
    pub region: Option<String>,
    /// When the `SecretString` is a JSON object: the key whose (string) value is the secret.
    /// Without it the whole `SecretString` is.
    pub field: Option<String>,
    /// Another endpoint than `https://secretsmanager.{region}.amazonaws.com` (a VPC endpoint,
    /// LocalStack, moto).
    pub endpoint: Option<String>,
    /// How often to read it again (default `[secrets].refresh`; `0s`: only at start).
    #[serde(default, with = "humantime_serde::option")]
    #[schemars(with = "Option<String>")]
    pub refresh: Option<Duration>,
}

/// `[secrets]`: when secret references are fetched again, and how long a fetch may take.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct SecretsConfig {
    /// How often `file`, `exec`, `vault` and `aws` references are fetched again unless they set
    /// their own `refresh`; `0s` fetches them only at start. A failed fetch keeps the last good
    /// value and is tried again sooner (1 s, doubling up to this).
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String")]
    pub refresh: Duration,
    /// Time limit of one fetch: a command's run, an HTTP request to Vault or AWS.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String")]
    pub timeout: Duration,
}

impl Default for SecretsConfig {
    fn default() -> Self {
        Self {
            refresh: Duration::from_secs(300),
            timeout: Duration::from_secs(10),
        }
    }
}

impl SecretRef {
    /// Read an `env` or `file` secret now, or say which variable or file is missing (never the
    /// value). The other kinds are fetched by `crate::secrets`, not here.
    pub fn resolve(&self) -> Result<Secret, String> {
        match self {
            SecretRef::Env(name) => match std::env::var(name) {
                Ok(v) if !v.is_empty() => Ok(Secret(v)),
                _ => Err(format!("environment variable {name} is not set")),
            },
            SecretRef::File(path) => std::fs::read_to_string(path)
                .map(|v| Secret(v.trim_end_matches(['\r', '\n']).to_owned()))
                .map_err(|e| format!("cannot read secret file {}: {e}", path.display())),
            SecretRef::Exec(_) | SecretRef::Vault(_) | SecretRef::Aws(_) => Err(format!(
                "a {} reference is fetched at start, not read here",
                self.kind()
            )),
        }
    }

    /// `env`, `file`, `exec`, `vault` or `aws`, as written in config.
    pub fn kind(&self) -> &'static str {
        match self {
            SecretRef::Env(_) => "env",
            SecretRef::File(_) => "file",
            SecretRef::Exec(_) => "exec",
            SecretRef::Vault(_) => "vault",
            SecretRef::Aws(_) => "aws",
        }
    }

    /// Whether it is read from this machine (`env`, `file`), synchronously, at load.
    pub fn is_local(&self) -> bool {
        matches!(self, SecretRef::Env(_) | SecretRef::File(_))
    }

    /// Validate the reference written at `path` into its credential: `env` and `file` are read
    /// now through `env` (so a missing one is a config problem), the others are checked for shape
    /// and fetched before serving. Every problem is reported under `path`.
    pub(super) fn credential(
        &self,
        path: &str,
        defaults: &SecretsConfig,
        env: &impl Environment,
        problems: &mut Vec<String>,
    ) -> Option<Credential> {
        let every =
            |own: Option<Duration>| Some(own.unwrap_or(defaults.refresh)).filter(|d| !d.is_zero());
        let source = match self {
            SecretRef::Env(name) => Source::Env(name.clone()),
            SecretRef::File(file) => Source::File(file.clone()),
            SecretRef::Exec(e) => exec_source(e, path, problems)?,
            SecretRef::Vault(v) => vault_source(v, path, env, problems)?,
            SecretRef::Aws(a) => aws_source(a, path, env, problems)?,
        };
        let refresh = match self {
            SecretRef::Env(_) => None,
            SecretRef::File(_) => every(None),
            SecretRef::Exec(ExecRef { refresh, .. })
            | SecretRef::Vault(VaultRef { refresh, .. })
            | SecretRef::Aws(AwsSecretRef { refresh, .. }) => every(*refresh),
        };
        let value = if self.is_local() {
            let read = env.secret(self).and_then(|value| {
                crate::secrets::usable(&value)
                    .map(|()| value)
                    .map_err(|why| format!("not usable as a credential: {why}"))
            });
            match read {
                Ok(value) => Some(value),
                Err(e) => {
                    problems.push(format!("{path}: {e}"));
                    return None;
                }
            }
        } else {
            None
        };
        Some(Credential::new(path, source, refresh, value))
    }
}

fn exec_source(e: &ExecRef, path: &str, problems: &mut Vec<String>) -> Option<Source> {
    match e.command.first() {
        Some(program) if !program.is_empty() => Some(Source::Exec {
            command: e.command.clone(),
        }),
        _ => {
            problems.push(format!(
                "{path}.exec.command: needs a program, e.g. [\"vault\", \"kv\", \"get\", …]"
            ));
            None
        }
    }
}

fn vault_source(
    v: &VaultRef,
    path: &str,
    env: &impl Environment,
    problems: &mut Vec<String>,
) -> Option<Source> {
    let at = format!("{path}.vault");
    let before = problems.len();
    let addr = v
        .addr
        .clone()
        .or_else(|| env.var("VAULT_ADDR").filter(|a| !a.is_empty()));
    let base = match addr {
        None => {
            problems.push(format!("{at}.addr: required (or set VAULT_ADDR)"));
            None
        }
        Some(addr) => http_url(&addr, &format!("{at}.addr"), problems),
    };
    let segments = |s: &str| -> Vec<String> {
        s.split('/')
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .collect()
    };
    let (mount, secret) = (segments(&v.mount), segments(&v.path));
    if mount.is_empty() {
        problems.push(format!("{at}.mount: must not be empty"));
    }
    if secret.is_empty() {
        problems.push(format!("{at}.path: must not be empty"));
    }
    if mount.iter().chain(&secret).any(|s| s == "." || s == "..") {
        problems.push(format!("{at}: mount and path may not hold `.` or `..`"));
    }
    if v.field.is_empty() {
        problems.push(format!("{at}.field: must not be empty"));
    }
    if v.namespace.as_deref() == Some("") {
        problems.push(format!("{at}.namespace: must not be empty"));
    }
    let token = v
        .token
        .as_deref()
        .cloned()
        .unwrap_or_else(|| SecretRef::Env("VAULT_TOKEN".to_owned()));
    if token.is_local() {
        // Read at every fetch; checked now so that a missing token is a config problem.
        if let Err(e) = env.secret(&token) {
            problems.push(format!("{at}.token: {e}"));
        }
    } else {
        problems.push(format!(
            "{at}.token: must be {{ env = … }} or {{ file = … }}, not {}",
            token.kind()
        ));
    }
    let mut url = base?;
    if problems.len() > before {
        return None;
    }
    {
        // invariant: `http_url` accepted only http(s) URLs, which can be a base.
        let mut path_segments = url.path_segments_mut().ok()?;
        path_segments.pop_if_empty().push("v1");
        path_segments.extend(&mount);
        path_segments.push("data");
        path_segments.extend(&secret);
    }
    Some(Source::Vault {
        url,
        token,
        namespace: v.namespace.clone(),
        field: v.field.clone(),
        at: format!("{}/{}#{}", mount.join("/"), secret.join("/"), v.field),
    })
}

fn aws_source(
    a: &AwsSecretRef,
    path: &str,
    env: &impl Environment,
    problems: &mut Vec<String>,
) -> Option<Source> {
    let at = format!("{path}.aws");
    let before = problems.len();
    if a.secret_id.is_empty() {
        problems.push(format!("{at}.secret_id: must not be empty"));
    }
    if a.field.as_deref() == Some("") {
        problems.push(format!("{at}.field: must not be empty"));
    }
    let region = a.region.clone().or_else(|| {
        ["AWS_REGION", "AWS_DEFAULT_REGION"]
            .iter()
            .find_map(|v| env.var(v).filter(|r| !r.is_empty()))
    });
    let region = match region {
        Some(r) if super::validate::is_aws_region(&r) => Some(r),
        Some(r) => {
            problems.push(format!("{at}.region: {r:?} is not an AWS region"));
            None
        }
        None => {
            problems.push(format!("{at}.region: required (or set AWS_REGION)"));
            None
        }
    };
    let endpoint = match (&a.endpoint, &region) {
        (Some(e), _) => http_url(e, &format!("{at}.endpoint"), problems),
        (None, Some(r)) => http_url(
            &format!("https://secretsmanager.{r}.amazonaws.com"),
            &format!("{at}.region"),
            problems,
        ),
        (None, None) => None,
    };
    // Read at every fetch; checked now so that missing credentials are a config problem.
    for var in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"] {
        if let Err(e) = env.secret(&SecretRef::Env(var.to_owned())) {
            problems.push(format!(
                "{at}: {e} (Secrets Manager is called with the AWS_* credentials)"
            ));
        }
    }
    if problems.len() > before {
        return None;
    }
    Some(Source::Aws {
        endpoint: endpoint?,
        region: region?,
        secret_id: a.secret_id.clone(),
        field: a.field.clone(),
    })
}

/// `url` parsed, if it is an http(s) URL without a query; else a problem at `at`.
fn http_url(url: &str, at: &str, problems: &mut Vec<String>) -> Option<reqwest::Url> {
    match reqwest::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.query().is_none() => Some(u),
        Ok(_) => {
            problems.push(format!(
                "{at}: must be an http:// or https:// URL without a query, got {url:?}"
            ));
            None
        }
        Err(e) => {
            problems.push(format!("{at}: {url:?} is not a URL: {e}"));
            None
        }
    }
}

/// A secret value. Debug and Display print `***`; the only way out is [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    /// The raw value, for the one place that puts it on the wire (an upstream auth header).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints() {
        let s = Secret::new("sk-live-123");
        assert_eq!(format!("{s} {s:?} {:?}", Some(&s)), "*** *** Some(***)");
        assert_eq!(s.expose(), "sk-live-123");
    }
}
