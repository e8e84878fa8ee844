//! Validation of the file as written into a [`Config`]: pure (what it reads from outside the
//! file, secrets and variables such as `AWS_REGION`, comes through an [`Environment`]), one
//! function per section, every problem reported with its path, cross-references resolved once.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::{
    AwsCredentials, Config, ConfigError, Deployment, KeySpec, ModelSpec, Pricing, ProviderKind,
    ProviderSpec, RawConfig, RawKey, RawModel, RawPricing, RawProvider, Secret, SecretRef,
    SecretsConfig, Strategy, nats_url_problems, parse_hash, presets::Preset, routing,
};
use crate::secrets::Credential;

/// What validation reads from outside the file.
pub trait Environment {
    /// The value of an `env` or `file` secret reference, or why it cannot be had (never the
    /// value). Also asked about the `env`/`file` references other kinds depend on (a Vault
    /// token, the AWS credentials), whose values are then read again at every fetch.
    fn secret(&self, r: &SecretRef) -> Result<Secret, String>;
    /// A plain variable (`AWS_REGION`…), if set.
    fn var(&self, name: &str) -> Option<String>;
}

/// A secret resolver with the process's variables.
struct ProcessVars<F>(F);

impl<F: Fn(&SecretRef) -> Result<Secret, String>> Environment for ProcessVars<F> {
    fn secret(&self, r: &SecretRef) -> Result<Secret, String> {
        (self.0)(r)
    }
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

/// [`validate_in`] with `env`/`file` secrets from `resolve` (`|r| r.resolve()`, or one that
/// records missing secrets instead) and variables from the process: what `load` and most callers
/// use.
pub fn validate(
    raw: RawConfig,
    pricing: Option<RawPricing>,
    resolve: impl Fn(&SecretRef) -> Result<Secret, String>,
) -> Result<Config, ConfigError> {
    validate_in(raw, pricing, &ProcessVars(resolve))
}

/// Validate a parsed config (and pricing table) into a [`Config`], or every problem found,
/// reading nothing but `env` from outside the file.
pub fn validate_in(
    raw: RawConfig,
    pricing: Option<RawPricing>,
    env: &impl Environment,
) -> Result<Config, ConfigError> {
    let mut problems = Vec::new();
    server(&raw, &mut problems);
    nats_and_events(&raw, &mut problems);
    let admin_token_hash = raw.admin.token_hash.as_deref().and_then(|h| {
        let parsed = parse_hash(h);
        if parsed.is_none() {
            problems.push("admin.token_hash: must be sha256:<64 hex digits>".into());
        }
        parsed
    });
    let keys = keys(&raw.keys, &mut problems);
    if raw.secrets.timeout.is_zero() {
        problems.push("secrets.timeout: must be greater than 0".into());
    }
    let providers: BTreeMap<String, Arc<ProviderSpec>> = raw
        .providers
        .iter()
        .map(|(name, p)| {
            (
                name.clone(),
                Arc::new(provider(name, p, &raw.secrets, env, &mut problems)),
            )
        })
        .collect();
    let credentials = providers
        .values()
        .flat_map(|p| p.credentials().into_iter().cloned())
        .collect();
    let models = models(&raw.models, &raw.cache, &providers, &mut problems);
    super::cache::validate(&raw.cache, &raw.models, &mut problems);
    routing::validate(&raw.routing, &models, &mut problems);
    super::budgets::validate(&raw.budgets, &mut problems);
    super::rate::validate(&raw.rate_limits, &raw.nats.stream, &mut problems);
    super::guardrails::validate(&raw.guardrails, &mut problems);
    let pricing = Pricing::validate(
        pricing.unwrap_or_else(|| RawPricing {
            currency: "USD".into(),
            models: BTreeMap::new(),
        }),
        &mut problems,
    );
    if !problems.is_empty() {
        return Err(ConfigError::Invalid(problems));
    }
    Ok(Config {
        server: raw.server,
        nats: raw.nats,
        events: raw.events,
        projections: raw.projections,
        admin_token_hash,
        rotation_grace: raw.admin.rotation_grace,
        keys,
        providers,
        models,
        routing: raw.routing,
        pricing,
        budgets: raw.budgets,
        rate_limits: raw.rate_limits,
        guardrails: raw.guardrails,
        privacy: raw.privacy,
        cache: raw.cache,
        secrets: raw.secrets,
        credentials,
    })
}

/// `[server]`: limits and timeouts must be positive.
fn server(raw: &RawConfig, problems: &mut Vec<String>) {
    if raw.server.max_body_bytes == 0 {
        problems.push("server.max_body_bytes: must be greater than 0".into());
    }
    for (name, d) in [
        ("header_read_timeout", raw.server.header_read_timeout),
        ("body_read_timeout", raw.server.body_read_timeout),
        ("idle_timeout", raw.server.idle_timeout),
    ] {
        if d.is_zero() {
            problems.push(format!("server.{name}: must be greater than 0"));
        }
    }
    if raw.server.max_connections == 0 {
        problems.push("server.max_connections: must be greater than 0".into());
    }
}

/// `[nats]`, `[events]` and `[projections]`: the stream, the seeds, and the publishing and
/// projection sizes.
fn nats_and_events(raw: &RawConfig, problems: &mut Vec<String>) {
    if raw.nats.stream.is_empty()
        || raw
            .nats
            .stream
            .contains(|c: char| c.is_whitespace() || matches!(c, '.' | '*' | '>'))
    {
        problems.push(format!(
            "nats.stream: {:?} is not a valid stream name",
            raw.nats.stream
        ));
    }
    problems.extend(nats_url_problems(&raw.nats.url, "nats.url"));
    if raw.nats.replicas == 0 || raw.nats.replicas > 5 {
        problems.push("nats.replicas: must be between 1 and 5".into());
    }
    if raw.events.channel_capacity == 0 {
        problems.push("events.channel_capacity: must be greater than 0".into());
    }
    if raw.events.max_body_bytes == 0 || raw.events.max_body_bytes > 900 * 1024 {
        problems.push(
            "events.max_body_bytes: must be between 1 and 921600 (an event must fit a 1 MiB NATS message)"
                .into(),
        );
    }
    if raw.events.max_in_flight == 0 {
        problems.push("events.max_in_flight: must be greater than 0".into());
    }
    if raw.projections.budgets.batch == 0 {
        problems.push("projections.budgets.batch: must be greater than 0".into());
    }
}

/// `[[keys]]`: unique ids and hashes.
fn keys(raw: &[RawKey], problems: &mut Vec<String>) -> Vec<KeySpec> {
    let mut keys = Vec::new();
    let mut ids = HashMap::new();
    let mut hashes = HashMap::new();
    for (i, k) in raw.iter().enumerate() {
        let path = format!("keys[{i}]");
        if k.id.is_empty() {
            problems.push(format!("{path}.id: must not be empty"));
        }
        if let Some(prev) = ids.insert(k.id.clone(), i) {
            problems.push(format!(
                "{path}.id: {:?} already used by keys[{prev}]",
                k.id
            ));
        }
        match parse_hash(&k.hash) {
            Some(hash) => {
                if let Some(prev) = hashes.insert(hash, i) {
                    problems.push(format!("{path}.hash: same key as keys[{prev}]"));
                }
                keys.push(KeySpec {
                    id: k.id.clone(),
                    hash,
                    user: k.user.clone(),
                    team: k.team.clone(),
                    project: k.project.clone(),
                });
            }
            None => problems.push(format!("{path}.hash: must be sha256:<64 hex digits>")),
        }
    }
    keys
}

/// One `[providers.NAME]`: kind-specific fields, region, base URL, credentials, timeouts.
fn provider(
    name: &str,
    p: &RawProvider,
    secrets: &SecretsConfig,
    env: &impl Environment,
    problems: &mut Vec<String>,
) -> ProviderSpec {
    let path = format!("providers.{name}");
    if p.preset.is_some() && p.kind != ProviderKind::Openai {
        problems.push(format!(
            "{path}.preset: presets are OpenAI-compatible vendors; remove `kind` or the preset"
        ));
    }
    let is_bedrock = p.kind == ProviderKind::Bedrock;
    for (field, given) in [
        ("region", p.region.is_some()),
        ("aws_access_key_id", p.aws_access_key_id.is_some()),
        ("aws_secret_access_key", p.aws_secret_access_key.is_some()),
        ("aws_session_token", p.aws_session_token.is_some()),
    ] {
        if given && !is_bedrock {
            problems.push(format!("{path}.{field}: only for kind = \"bedrock\""));
        }
    }
    let region = if is_bedrock {
        bedrock_region(p, &path, env, problems)
    } else {
        String::new()
    };
    let base_url = base_url(p, &path, &region, problems);
    let (api_key, key_pool) = api_keys(p, &path, secrets, env, problems);
    for (field, d) in [
        ("timeout", p.timeout),
        ("first_token_timeout", p.first_token_timeout),
        ("idle_timeout", p.idle_timeout),
        ("connect_timeout", p.connect_timeout),
    ] {
        if d.is_zero() {
            problems.push(format!("{path}.{field}: must be greater than 0"));
        }
    }
    let aws = if is_bedrock && api_key.is_none() {
        bedrock_credentials(p, &path, secrets, env, problems)
    } else {
        None
    };
    ProviderSpec {
        name: name.to_owned(),
        kind: p.kind,
        base_url: base_url.trim_end_matches('/').to_owned(),
        api_key,
        api_version: p
            .api_version
            .clone()
            .unwrap_or_else(|| "2024-10-21".to_owned()),
        region,
        aws,
        key_pool,
        connect_timeout: p.connect_timeout,
        timeout: p.timeout,
        first_token_timeout: p.first_token_timeout,
        idle_timeout: p.idle_timeout,
    }
}

/// A Bedrock provider's region: configured, else `AWS_REGION`, else `AWS_DEFAULT_REGION`.
fn bedrock_region(
    p: &RawProvider,
    path: &str,
    env: &impl Environment,
    problems: &mut Vec<String>,
) -> String {
    let region = p.region.clone().or_else(|| {
        ["AWS_REGION", "AWS_DEFAULT_REGION"]
            .iter()
            .find_map(|v| env.var(v).filter(|r| !r.is_empty()))
    });
    match region {
        Some(r) if is_aws_region(&r) => r,
        Some(r) => {
            problems.push(format!("{path}.region: {r:?} is not an AWS region"));
            String::new()
        }
        None => {
            problems.push(format!(
                "{path}.region: required for Bedrock (or set AWS_REGION)"
            ));
            String::new()
        }
    }
}

/// Whether `r` can be an AWS region name (`us-east-1`): it goes into hostnames and signatures.
pub(super) fn is_aws_region(r: &str) -> bool {
    !r.is_empty() && r.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// The base URL: configured, else the preset's, else Bedrock's regional endpoint.
fn base_url(p: &RawProvider, path: &str, region: &str, problems: &mut Vec<String>) -> String {
    let url = match (&p.base_url, p.preset) {
        (Some(url), _) => url.clone(),
        (None, Some(preset)) => preset.base_url().to_owned(),
        (None, None) if p.kind == ProviderKind::Bedrock => {
            format!("https://bedrock-runtime.{region}.amazonaws.com")
        }
        (None, None) => {
            problems.push(format!(
                "{path}.base_url: required unless a preset is given"
            ));
            String::new()
        }
    };
    let has_scheme = url.starts_with("http://") || url.starts_with("https://");
    if !url.is_empty() && !has_scheme {
        problems.push(format!(
            "{path}.base_url: must start with http:// or https://, got {url:?}"
        ));
    }
    url
}

/// The provider's key (`api_key`, or the preset's variable) or key pool (`api_keys`).
fn api_keys(
    p: &RawProvider,
    path: &str,
    secrets: &SecretsConfig,
    env: &impl Environment,
    problems: &mut Vec<String>,
) -> (Option<Credential>, Vec<Credential>) {
    if p.api_key.is_some() && !p.api_keys.is_empty() {
        problems.push(format!(
            "{path}.api_keys: give api_key or api_keys, not both"
        ));
    }
    let pool: Vec<Credential> = p
        .api_keys
        .iter()
        .enumerate()
        .filter_map(|(j, r)| r.credential(&format!("{path}.api_keys[{j}]"), secrets, env, problems))
        .collect();
    let key_ref = p.api_key.clone().or_else(|| {
        p.preset
            .and_then(Preset::key_env)
            .map(|v| SecretRef::Env(v.to_owned()))
    });
    let key = match &key_ref {
        _ if !pool.is_empty() => pool.first().cloned(),
        Some(r) => r.credential(&format!("{path}.api_key"), secrets, env, problems),
        None => None,
    };
    (key, pool)
}

/// SigV4 credentials of a Bedrock provider: the configured references, or the standard AWS
/// environment variables. The session token is optional unless configured explicitly.
fn bedrock_credentials(
    p: &RawProvider,
    path: &str,
    secrets: &SecretsConfig,
    env: &impl Environment,
    problems: &mut Vec<String>,
) -> Option<AwsCredentials> {
    let var = |name: &str| SecretRef::Env(name.to_owned());
    let mut required = |given: &Option<SecretRef>, field: &str, name: &str| {
        let r = given.clone().unwrap_or_else(|| var(name));
        let mut found = Vec::new();
        let credential = r.credential(&format!("{path}.{field}"), secrets, env, &mut found);
        problems.extend(
            found
                .into_iter()
                .map(|e| format!("{e} (or give api_key, a Bedrock API key)")),
        );
        credential
    };
    let access_key_id = required(
        &p.aws_access_key_id,
        "aws_access_key_id",
        "AWS_ACCESS_KEY_ID",
    );
    let secret_access_key = required(
        &p.aws_secret_access_key,
        "aws_secret_access_key",
        "AWS_SECRET_ACCESS_KEY",
    );
    let token_path = format!("{path}.aws_session_token");
    let session_token = match &p.aws_session_token {
        Some(r) => r.credential(&token_path, secrets, env, problems),
        // Optional: only looked up when set, so a resolver that reports missing secrets (see
        // `load_with`) is never told about one nobody asked for.
        None => env.var("AWS_SESSION_TOKEN").and_then(|_| {
            var("AWS_SESSION_TOKEN").credential(&token_path, secrets, env, &mut Vec::new())
        }),
    };
    Some(AwsCredentials {
        access_key_id: access_key_id?,
        secret_access_key: secret_access_key?,
        session_token,
    })
}

/// `[[models]]`: unique names, deployments on known providers, strategy and hedge settings.
fn models(
    raw: &[RawModel],
    cache: &super::CacheConfig,
    providers: &BTreeMap<String, Arc<ProviderSpec>>,
    problems: &mut Vec<String>,
) -> Vec<ModelSpec> {
    let mut models = Vec::new();
    let mut names = HashMap::new();
    for (i, m) in raw.iter().enumerate() {
        let path = format!("models[{i}]");
        if m.name.is_empty() {
            problems.push(format!("{path}.name: must not be empty"));
        }
        if let Some(prev) = names.insert(m.name.clone(), i) {
            problems.push(format!(
                "{path}.name: {:?} already defined by models[{prev}]",
                m.name
            ));
        }
        if m.deployments.is_empty() {
            problems.push(format!("{path}.deployments: needs at least one deployment"));
        }
        let mut deployments = Vec::new();
        for (j, d) in m.deployments.iter().enumerate() {
            match providers.get(&d.provider) {
                Some(p) => deployments.push(Deployment {
                    provider: Arc::clone(p),
                    model: d.model.clone(),
                    weight: d.weight,
                }),
                None => problems.push(format!(
                    "{path}.deployments[{j}].provider: no provider named {:?}",
                    d.provider
                )),
            }
        }
        if m.strategy == Strategy::Weighted && m.deployments.iter().all(|d| d.weight == 0) {
            problems.push(format!(
                "{path}.deployments: weighted, but every weight is 0"
            ));
        }
        if let Some(h) = &m.hedge
            && h.after.is_some_and(|a| a.is_zero())
        {
            problems.push(format!("{path}.hedge.after: must be greater than 0"));
        }
        models.push(ModelSpec {
            name: m.name.clone(),
            deployments,
            strategy: m.strategy,
            fallbacks: m.fallbacks.clone(),
            fallback_on: m
                .fallback_on
                .iter()
                .map(|f| (f.class, f.model.clone()))
                .collect(),
            hedge: m.hedge.clone(),
            cache: cache.policy(m.cache.as_ref()),
        });
    }
    models
}
