//! `[cache]`: the exact and semantic answer cache, and each model's `cache` overrides.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

use super::{ModelSpec, RawModel};

/// Whose answers a request may be served: answers are shared inside one tenant only.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CacheScope {
    /// Everyone (one tenant).
    Global,
    /// The key's team; a key without a team is its own tenant.
    #[default]
    Team,
    /// The key's project; a key without one is its own tenant.
    Project,
    /// The key's user; a key without one is its own tenant.
    User,
    /// The virtual key itself.
    Key,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// Answer repeated requests from the cache (every model, unless its own `cache` says
    /// otherwise).
    pub enabled: bool,
    /// Who shares cached answers.
    pub scope: CacheScope,
    /// Also answer requests whose last user turn means the same as a cached one's (everything
    /// before it, the system prompt, tools and parameters must match exactly).
    pub semantic: bool,
    /// The similarity (cosine, 0–1) a semantic hit needs.
    pub threshold: f32,
    /// How long an answer is served after it was made.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String")]
    pub ttl: Duration,
    /// Most answers kept per tenant and model; the least recently used go first.
    pub max_entries: usize,
    /// Last user turns longer than this (in characters) are cached exactly only: in a long
    /// prompt a change that matters moves its vector too little.
    pub max_prompt_chars: usize,
    /// The local embedder's weights: the installed `wordllama` package directory
    /// (`scripts/lib.sh` installs it under tools/).
    pub embedder_path: PathBuf,
    /// Embed last user turns with this model of the config (e.g. an OpenAI
    /// `text-embedding-3-small` deployment), through its routes, instead of the local vectors.
    pub embedding_model: Option<String>,
}

/// The similarity threshold picked from the precision/recall curves over the two blind
/// labelled sets (tests/fixtures/cache/; README, "Cache"): the lowest at which neither serves
/// more than about 1 % of its different-meaning pairs.
pub const DEFAULT_THRESHOLD: f32 = 0.9;

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            scope: CacheScope::Team,
            semantic: true,
            threshold: DEFAULT_THRESHOLD,
            ttl: Duration::from_secs(3600),
            max_entries: 10_000,
            max_prompt_chars: 2_000,
            embedder_path: PathBuf::from("tools/wordllama/wordllama"),
            embedding_model: None,
        }
    }
}

/// A model's own `cache` settings; what is left out comes from `[cache]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawModelCache {
    pub enabled: Option<bool>,
    pub semantic: Option<bool>,
    pub threshold: Option<f32>,
    #[serde(default, with = "humantime_serde")]
    #[schemars(with = "Option<String>")]
    pub ttl: Option<Duration>,
    pub max_entries: Option<usize>,
}

/// One model's cache settings, resolved.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CachePolicy {
    pub enabled: bool,
    pub semantic: bool,
    pub threshold: f32,
    pub ttl: Duration,
    pub max_entries: usize,
}

impl CacheConfig {
    /// The settings of a model, its overrides applied.
    pub fn policy(&self, own: Option<&RawModelCache>) -> CachePolicy {
        let own = own.cloned().unwrap_or_default();
        CachePolicy {
            enabled: own.enabled.unwrap_or(self.enabled),
            semantic: own.semantic.unwrap_or(self.semantic),
            threshold: own.threshold.unwrap_or(self.threshold),
            ttl: own.ttl.unwrap_or(self.ttl),
            max_entries: own.max_entries.unwrap_or(self.max_entries),
        }
    }

    /// Whether some model answers semantically (then the embedder must load).
    pub fn needs_embedder(&self, models: &[ModelSpec]) -> bool {
        models.iter().any(|m| m.cache.enabled && m.cache.semantic)
    }
}

pub(super) fn validate(raw: &CacheConfig, models: &[RawModel], problems: &mut Vec<String>) {
    let mut check =
        |path: String, threshold: Option<f32>, ttl: Option<Duration>, max: Option<usize>| {
            if threshold.is_some_and(|t| !(t > 0.0 && t <= 1.0)) {
                problems.push(format!("{path}.threshold: must be in (0, 1]"));
            }
            if ttl.is_some_and(|t| t.is_zero()) {
                problems.push(format!("{path}.ttl: must be greater than 0"));
            }
            if max == Some(0) {
                problems.push(format!("{path}.max_entries: must be greater than 0"));
            }
        };
    check(
        "cache".to_owned(),
        Some(raw.threshold),
        Some(raw.ttl),
        Some(raw.max_entries),
    );
    for (i, m) in models.iter().enumerate() {
        if let Some(c) = &m.cache {
            check(
                format!("models[{i}].cache"),
                c.threshold,
                c.ttl,
                c.max_entries,
            );
        }
    }
    if let Some(m) = &raw.embedding_model
        && !models.iter().any(|x| &x.name == m)
    {
        problems.push(format!("cache.embedding_model: no model named {m:?}"));
    }
    if raw.max_prompt_chars == 0 {
        problems.push("cache.max_prompt_chars: must be greater than 0".into());
    }
}
