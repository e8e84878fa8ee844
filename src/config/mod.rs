//! Configuration: the TOML file as written (`Raw*` types, strict), then a pure [`validate`] that
//! reports every problem with its path and returns a [`Config`] whose cross-references are
//! resolved. Runtime code holds validated handles, never names to look up again.

mod budgets;
mod cache;
mod guardrails;
mod presets;
mod pricing;
mod rate;
mod routing;
mod secret;
mod validate;

pub use budgets::{BudgetsConfig, LedgerUnavailable};
pub use cache::{CacheConfig, CachePolicy, CacheScope, DEFAULT_THRESHOLD, RawModelCache};
pub use guardrails::{
    BodyPolicy, CustomDetector, GuardrailRule, GuardrailsConfig, PrivacyConfig, PrivacyRule,
};
pub use presets::Preset;
pub use pricing::{Price, Pricing, RawPrice, RawPricing};
pub use rate::{RateLedgerUnavailable, RateLimitsConfig};
pub use routing::{
    BreakerConfig, ErrorClass, HealthConfig, RawClassFallback, RawCondition, RawHedge, RawRule,
    RetryBudgetConfig, RetryConfig, RoutingConfig, Strategy,
};
pub use secret::{AwsSecretRef, ExecRef, Secret, SecretRef, SecretsConfig, VaultRef};
pub use validate::{Environment, validate, validate_in};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::secrets::Credential;

/// The config file as written.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub nats: NatsConfig,
    #[serde(default)]
    pub events: EventsConfig,
    #[serde(default)]
    pub projections: ProjectionsConfig,
    #[serde(default)]
    pub admin: AdminConfig,
    /// Pricing table file, relative to this config file.
    pub pricing: Option<PathBuf>,
    /// Virtual keys bootstrapped from config (stored as hashes only).
    #[serde(default)]
    pub keys: Vec<RawKey>,
    /// Upstream providers by name.
    #[serde(default)]
    pub providers: BTreeMap<String, RawProvider>,
    /// Public model names and the deployments behind them.
    #[serde(default)]
    pub models: Vec<RawModel>,
    /// Retries, retry budget, circuit breakers, live health and content rules.
    #[serde(default)]
    pub routing: RoutingConfig,
    /// How budgets are enforced: reservations, leases across instances, alerts.
    #[serde(default)]
    pub budgets: BudgetsConfig,
    /// How requests- and tokens-per-minute limits are enforced, across instances too.
    #[serde(default)]
    pub rate_limits: RateLimitsConfig,
    /// How often secret references are fetched again, and how long a fetch may take.
    #[serde(default)]
    pub secrets: SecretsConfig,
    /// Personal data and credentials in requests: detectors, actions, rules.
    #[serde(default)]
    pub guardrails: GuardrailsConfig,
    /// What the event stream keeps of bodies.
    #[serde(default)]
    pub privacy: PrivacyConfig,
    /// The exact and semantic answer cache.
    #[serde(default)]
    pub cache: CacheConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address the HTTP edge listens on.
    pub listen: SocketAddr,
    /// Largest accepted request body in bytes; larger bodies get 413.
    pub max_body_bytes: usize,
    /// Where the gateway keeps its local files (outbox, projections) unless a path is given.
    pub data_dir: PathBuf,
    /// Time a client has to send a complete request head: from accept on a new connection,
    /// from the first byte of the next request on a kept-alive one. Past it the connection is
    /// closed.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String")]
    pub header_read_timeout: Duration,
    /// Time a client has to send the whole request body once the head arrived; past it the
    /// request gets 408 `request_timeout` and nothing is recorded for it.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String")]
    pub body_read_timeout: Duration,
    /// How long a kept-alive connection may wait, with no request in flight, for its next
    /// request before it is closed.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String")]
    pub idle_timeout: Duration,
    /// Open client connections beyond which new ones are answered 503 and closed. Lowered at
    /// start to what the open-files limit allows (half of it, less a reserve, as each client
    /// connection may hold an upstream one).
    pub max_connections: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_body_bytes: 4 * 1024 * 1024,
            data_dir: PathBuf::from("var"),
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_connections: 10_000,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct NatsConfig {
    /// NATS seed servers: one URL, or several separated by commas
    /// (`nats://n1:4222,nats://n2:4222,nats://n3:4222`). The client connects to any of them, learns
    /// the rest of the cluster from the server, and fails over between them.
    /// `SWITCHYARD_NATS_URL` overrides it with the same syntax.
    pub url: String,
    /// JetStream stream holding every event.
    pub stream: String,
    /// Window within which a re-published event id is dropped as a duplicate.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String")]
    pub duplicate_window: Duration,
    /// How long events are kept (0 = forever).
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String")]
    pub max_age: Duration,
    /// Stream replicas (3 in a production cluster).
    pub replicas: usize,
}

impl NatsConfig {
    /// The seed servers of `url`, in the order written.
    pub fn seeds(&self) -> Vec<&str> {
        nats_seeds(&self.url)
    }
}

/// Split a seed list (`url[,url…]`) into its URLs, trimmed. Empty entries are kept so that
/// [`nats_url_problems`] can point at them.
pub fn nats_seeds(list: &str) -> Vec<&str> {
    list.split(',').map(str::trim).collect()
}

/// Every problem with a seed list, each prefixed with `field` (the config path or the variable
/// that held it). It parses with the NATS client's own parser, so a list that passes here is one
/// `serve` can connect with.
pub fn nats_url_problems(list: &str, field: &str) -> Vec<String> {
    let seeds = nats_seeds(list);
    let mut problems = Vec::new();
    for (i, seed) in seeds.iter().enumerate() {
        let at = if seeds.len() == 1 {
            field.to_owned()
        } else {
            format!("{field}[{i}]")
        };
        if seed.is_empty() {
            problems.push(format!("{at}: empty server URL"));
        } else if let Err(e) = seed.parse::<async_nats::ServerAddr>() {
            problems.push(format!("{at}: {seed:?}: {e}"));
        }
    }
    problems
}

impl Default for NatsConfig {
    fn default() -> Self {
        Self {
            url: "nats://127.0.0.1:4250".into(),
            stream: "SWITCHYARD".into(),
            duplicate_window: Duration::from_secs(300),
            max_age: Duration::ZERO,
            replicas: 1,
        }
    }
}

/// When a response may leave relative to its events' acknowledgement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Durability {
    /// Respond without waiting; events are acknowledged (or spilled to the outbox) in the background.
    #[default]
    Async,
    /// Hold each response until its RequestAccepted is acknowledged by JetStream (strict audit).
    Ack,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct EventsConfig {
    pub durability: Durability,
    /// Events waiting for the publisher; when full, handlers wait for room (never drop).
    pub channel_capacity: usize,
    /// Publishes awaiting their ack at once.
    pub max_in_flight: usize,
    /// How long an event may wait so that a burst is written to NATS at once (async durability
    /// only; 0 sends each event immediately).
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String")]
    pub linger: Duration,
    /// An event not acknowledged within this time goes to the outbox.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String")]
    pub ack_timeout: Duration,
    /// Outbox file (default: `<data_dir>/outbox.redb`).
    pub outbox_path: Option<PathBuf>,
    /// Request/response bodies longer than this are clipped (with a marker) in events, so an
    /// event always fits a NATS message (1 MiB by default).
    pub max_body_bytes: usize,
}

impl Default for EventsConfig {
    fn default() -> Self {
        Self {
            durability: Durability::Async,
            channel_capacity: 65_536,
            max_in_flight: 4096,
            linger: Duration::from_millis(1),
            ack_timeout: Duration::from_secs(3),
            outbox_path: None,
            max_body_bytes: 256 * 1024,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ProjectionsConfig {
    pub budgets: ProjectionConfig,
    /// The audit index.
    pub audit: AuditConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Run the audit projection inside `switchyard serve`.
    pub enabled: bool,
    /// Index directory (default: `<data_dir>/audit`).
    pub path: Option<PathBuf>,
    /// Messages fetched per batch.
    pub batch: usize,
    /// How often the chain's head is published as an `AuditAnchored` event (when new records
    /// were chained since the last anchor).
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String")]
    pub anchor_every: Duration,
    /// Records whose request arrived longer ago than this are deleted from the index (checked
    /// every minute); 0 keeps them for ever. Independent of the stream's `nats.max_age`.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String")]
    pub retention: Duration,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            path: None,
            batch: 512,
            anchor_every: Duration::from_secs(60),
            retention: Duration::ZERO,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ProjectionConfig {
    /// Run this projection inside `switchyard serve`.
    pub enabled: bool,
    /// Store file (default: `<data_dir>/<name>.redb`; for the audit index a directory,
    /// `<data_dir>/audit`).
    pub path: Option<PathBuf>,
    /// Messages fetched per batch.
    pub batch: usize,
}

impl Default for ProjectionConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            path: None,
            batch: 512,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// SHA-256 of the admin bearer token, as `sha256:<hex>` (see `switchyard hash-key`).
    pub token_hash: Option<String>,
    /// How long a rotated key's previous secret keeps working when the rotate call names no
    /// grace period of its own.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String")]
    pub rotation_grace: Duration,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            token_hash: None,
            rotation_grace: Duration::from_secs(3600),
        }
    }
}

/// A virtual key bootstrapped from config.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawKey {
    /// Stable id carried in events (never the key).
    pub id: String,
    /// `sha256:<hex>` of the key (see `switchyard hash-key`).
    pub hash: String,
    pub user: Option<String>,
    pub team: Option<String>,
    pub project: Option<String>,
}

/// Wire format a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    /// OpenAI and every OpenAI-compatible server (Groq, Together, Mistral, vLLM, Ollama, …).
    #[default]
    Openai,
    /// Azure OpenAI: deployment URLs, `api-version`, `api-key` header. A deployment's `model` is
    /// the Azure deployment name.
    Azure,
    /// Anthropic Messages API (`base_url` like `https://api.anthropic.com/v1`, key in `x-api-key`).
    Anthropic,
    /// Google Gemini Generative Language API (`base_url` like
    /// `https://generativelanguage.googleapis.com/v1beta`, key in `x-goog-api-key`).
    Gemini,
    /// AWS Bedrock Converse API, SigV4-signed with AWS credentials (or a Bedrock API key as a
    /// bearer token); `base_url` defaults to `https://bedrock-runtime.{region}.amazonaws.com`.
    Bedrock,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawProvider {
    /// Wire format (default `openai`).
    #[serde(default)]
    pub kind: ProviderKind,
    /// An OpenAI-compatible vendor whose base URL and key variable to use when not given.
    pub preset: Option<Preset>,
    /// Base URL including the version path, e.g. `https://api.openai.com/v1`; for Azure the
    /// resource endpoint, e.g. `https://my-resource.openai.azure.com`.
    pub base_url: Option<String>,
    /// Credential: a reference to an environment variable, a file, a command's output, a Vault
    /// KV v2 field or an AWS Secrets Manager secret; omit for servers without auth.
    pub api_key: Option<SecretRef>,
    /// A pool of credentials for the same provider instead of `api_key`: requests use the
    /// first that is not cooling down after a 429, so a rate limit on one key moves to the next.
    #[serde(default)]
    pub api_keys: Vec<SecretRef>,
    /// Azure OpenAI `api-version` (default `2024-10-21`).
    pub api_version: Option<String>,
    /// Bedrock: the AWS region (default `AWS_REGION`, then `AWS_DEFAULT_REGION`).
    pub region: Option<String>,
    /// Bedrock: access key id for SigV4 (default `{ env = "AWS_ACCESS_KEY_ID" }`). Not used
    /// when `api_key` (a Bedrock API key) is given.
    pub aws_access_key_id: Option<SecretRef>,
    /// Bedrock: secret access key (default `{ env = "AWS_SECRET_ACCESS_KEY" }`).
    pub aws_secret_access_key: Option<SecretRef>,
    /// Bedrock: session token of temporary credentials (default `AWS_SESSION_TOKEN` if set).
    pub aws_session_token: Option<SecretRef>,
    #[serde(default = "default_connect_timeout", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub connect_timeout: Duration,
    /// Total time for a request: the whole answer, or the whole stream.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub timeout: Duration,
    /// Streams: time from sending the request to the first token; past it the router falls
    /// back (nothing has reached the client yet).
    #[serde(default = "default_first_token_timeout", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub first_token_timeout: Duration,
    /// Streams: longest wait between two chunks.
    #[serde(default = "default_idle_timeout", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub idle_timeout: Duration,
}

fn default_connect_timeout() -> Duration {
    Duration::from_secs(2)
}
fn default_timeout() -> Duration {
    Duration::from_secs(600)
}
fn default_first_token_timeout() -> Duration {
    Duration::from_secs(60)
}
fn default_idle_timeout() -> Duration {
    Duration::from_secs(60)
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawModel {
    /// The public name clients send as `model`.
    pub name: String,
    /// The deployments serving this model; `strategy` decides which one a request tries first,
    /// the rest are its fallbacks.
    pub deployments: Vec<RawDeployment>,
    /// How the first deployment is picked (default: in order).
    #[serde(default)]
    pub strategy: Strategy,
    /// Public models tried, in order, once every deployment of this one failed.
    #[serde(default)]
    pub fallbacks: Vec<String>,
    /// A model to try when the chain ends on a given error class (e.g. a context-length error
    /// → a larger-context model), before `fallbacks`.
    #[serde(default)]
    pub fallback_on: Vec<RawClassFallback>,
    /// Send a second attempt elsewhere when the first is slow to answer (opt-in).
    pub hedge: Option<RawHedge>,
    /// This model's cache settings (what is left out comes from `[cache]`).
    pub cache: Option<RawModelCache>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawDeployment {
    /// A provider name from `[providers]`.
    pub provider: String,
    /// The model name the provider knows.
    pub model: String,
    /// Share of traffic under `strategy = "weighted"`.
    #[serde(default = "default_weight")]
    pub weight: u32,
}

fn default_weight() -> u32 {
    1
}

/// A provider after validation (credentials as live cells, see [`Credential`]).
#[derive(Debug, Clone)]
pub struct ProviderSpec {
    pub name: String,
    pub kind: ProviderKind,
    pub base_url: String,
    pub api_key: Option<Credential>,
    /// Azure only.
    pub api_version: String,
    /// Bedrock only: the region requests are signed for.
    pub region: String,
    /// Bedrock only: SigV4 credentials; `None` when `api_key` (a Bedrock API key) is used.
    pub aws: Option<AwsCredentials>,
    /// Every credential of a key pool (`api_key` is the one this spec's adapter uses).
    pub key_pool: Vec<Credential>,
    pub connect_timeout: Duration,
    pub timeout: Duration,
    pub first_token_timeout: Duration,
    pub idle_timeout: Duration,
}

impl ProviderSpec {
    /// A spec with the documented defaults and no credentials, for code that builds adapters
    /// outside a config file (tests, benches); set other fields with struct update syntax.
    pub fn new(name: &str, kind: ProviderKind, base_url: &str) -> Self {
        Self {
            name: name.to_owned(),
            kind,
            base_url: base_url.trim_end_matches('/').to_owned(),
            api_key: None,
            api_version: "2024-10-21".to_owned(),
            region: String::new(),
            aws: None,
            key_pool: Vec::new(),
            connect_timeout: default_connect_timeout(),
            timeout: default_timeout(),
            first_token_timeout: default_first_token_timeout(),
            idle_timeout: default_idle_timeout(),
        }
    }
}

impl ProviderSpec {
    /// Its distinct credentials (a key pool's first key is also `api_key`).
    pub fn credentials(&self) -> Vec<&Credential> {
        let keys = if self.key_pool.is_empty() {
            self.api_key.iter().collect()
        } else {
            self.key_pool.iter().collect::<Vec<_>>()
        };
        let aws = self.aws.iter().flat_map(|a| {
            [
                Some(&a.access_key_id),
                Some(&a.secret_access_key),
                a.session_token.as_ref(),
            ]
            .into_iter()
            .flatten()
        });
        keys.into_iter().chain(aws).collect()
    }
}

/// AWS credentials for SigV4 signing, each a live cell.
#[derive(Debug, Clone)]
pub struct AwsCredentials {
    pub access_key_id: Credential,
    pub secret_access_key: Credential,
    pub session_token: Option<Credential>,
}

impl AwsCredentials {
    /// Fixed credentials (tests, benchmarks).
    pub fn fixed(
        access_key_id: &str,
        secret_access_key: &str,
        session_token: Option<&str>,
    ) -> Self {
        Self {
            access_key_id: Credential::fixed(Secret::new(access_key_id)),
            secret_access_key: Credential::fixed(Secret::new(secret_access_key)),
            session_token: session_token.map(|t| Credential::fixed(Secret::new(t))),
        }
    }

    /// The values to sign the request being built with.
    pub fn current(&self) -> crate::aws::AwsKeys {
        crate::aws::AwsKeys {
            access_key_id: self.access_key_id.current(),
            secret_access_key: self.secret_access_key.current(),
            session_token: self.session_token.as_ref().map(Credential::current),
        }
    }
}

/// A deployment after validation: a handle to its provider.
#[derive(Debug, Clone)]
pub struct Deployment {
    pub provider: Arc<ProviderSpec>,
    pub model: String,
    pub weight: u32,
}

#[derive(Debug, Clone)]
pub struct ModelSpec {
    pub name: String,
    pub deployments: Vec<Deployment>,
    pub strategy: Strategy,
    pub fallbacks: Vec<String>,
    pub fallback_on: Vec<(ErrorClass, String)>,
    pub hedge: Option<RawHedge>,
    pub cache: CachePolicy,
}

/// A virtual key after validation.
#[derive(Debug, Clone)]
pub struct KeySpec {
    pub id: String,
    pub hash: [u8; 32],
    pub user: Option<String>,
    pub team: Option<String>,
    pub project: Option<String>,
}

/// Validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    pub nats: NatsConfig,
    pub events: EventsConfig,
    pub projections: ProjectionsConfig,
    pub admin_token_hash: Option<[u8; 32]>,
    /// Default grace period of a key rotation (`[admin] rotation_grace`).
    pub rotation_grace: Duration,
    pub keys: Vec<KeySpec>,
    pub providers: BTreeMap<String, Arc<ProviderSpec>>,
    pub models: Vec<ModelSpec>,
    pub routing: RoutingConfig,
    pub pricing: Pricing,
    pub budgets: BudgetsConfig,
    pub rate_limits: RateLimitsConfig,
    pub secrets: SecretsConfig,
    pub guardrails: GuardrailsConfig,
    pub privacy: PrivacyConfig,
    pub cache: CacheConfig,
    /// Every secret reference of the file, each once, named by its path: what the gateway
    /// fetches before serving and keeps fresh.
    pub credentials: Vec<Credential>,
}

impl Config {
    pub fn outbox_path(&self) -> PathBuf {
        self.events
            .outbox_path
            .clone()
            .unwrap_or_else(|| self.server.data_dir.join("outbox.redb"))
    }

    pub fn budgets_path(&self) -> PathBuf {
        self.projections
            .budgets
            .path
            .clone()
            .unwrap_or_else(|| self.server.data_dir.join("budgets.redb"))
    }

    pub fn audit_path(&self) -> PathBuf {
        self.projections
            .audit
            .path
            .clone()
            .unwrap_or_else(|| self.server.data_dir.join("audit"))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid configuration:\n  {}", .0.join("\n  "))]
    Invalid(Vec<String>),
}

/// Read, parse and validate a config file (and the pricing file it names).
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    load_with(path, SecretRef::resolve)
}

/// [`load`] with `env` and `file` secrets read by `resolve`: `check-config
/// --allow-missing-secrets` passes one that records a missing secret instead of failing, to check
/// a file on a machine without them. The other references are fetched later
/// (`secrets::resolve_pending`), as they need the network or a command.
pub fn load_with(
    path: &Path,
    resolve: impl Fn(&SecretRef) -> Result<Secret, String>,
) -> Result<Config, ConfigError> {
    let raw: RawConfig = parse_file(path)?;
    let pricing = match &raw.pricing {
        Some(p) => {
            let p = path.parent().unwrap_or(Path::new(".")).join(p);
            Some(parse_file::<RawPricing>(&p)?)
        }
        None => None,
    };
    validate(raw, pricing, resolve)
}

fn parse_file<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

/// Parse `sha256:<64 hex>`.
pub fn parse_hash(s: &str) -> Option<[u8; 32]> {
    let hex = s.strip_prefix("sha256:")?;
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex, &mut out).ok()?;
    Some(out)
}

/// JSON Schema of the config file, written to `schemas/config.schema.json`.
pub fn json_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(RawConfig)).unwrap_or_default()
}

/// JSON Schema of the pricing file, written to `schemas/pricing.schema.json`.
pub fn pricing_json_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(RawPricing)).unwrap_or_default()
}

#[cfg(test)]
mod tests;
