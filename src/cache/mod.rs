//! The exact and semantic answer cache: a projection of the stream that every instance keeps
//! in memory.
//!
//! The edge computes a chat request's keys ([`key`]), and for the semantic cache the last user
//! turn's vector ([`embed`]); it looks them up ([`Cache::lookup`]) after admission and before
//! routing, and publishes them on `RequestAccepted` whether it hit or not. It never writes the
//! cache: each instance's follower ([`follow`]) folds the stream's requests, answers and
//! flushes into its [`store::Store`], so an answer made through one instance is served by every
//! instance, and `switchyard replay cache` rebuilds the same state from the same events.

pub mod answer;
pub mod embed;
pub mod follow;
pub mod index;
pub mod key;
pub mod prompt;
#[cfg(test)]
mod quality;
pub mod store;

use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use crate::config::{CacheConfig, CachePolicy, Config};
use crate::events::{CacheKey, Envelope, Principal};
use crate::providers::ChatRequest;
use crate::routing::RouteTable;
use embed::{EmbedError, Embedder, RemoteEmbedder, StaticEmbedder};
use key::Directives;
use prompt::Prompt;
use store::{Hit, Query, Store, Summary};

/// The cache of one instance.
pub struct Cache {
    config: CacheConfig,
    /// Models with the cache on, by public name.
    policies: HashMap<String, CachePolicy>,
    embedder: Option<Arc<dyn Embedder>>,
    store: RwLock<Store>,
}

/// What one request asks of the cache: its keys, whether it may be answered from the cache and
/// whether its answer may be kept.
pub struct Plan {
    tenant: String,
    model: String,
    exact: String,
    /// Context hash, the last user turn read and as text, its vector.
    semantic: Option<(String, Prompt, String, Vec<f32>)>,
    pub directives: Directives,
    store: bool,
    policy: CachePolicy,
}

impl Plan {
    /// Whether the answer may be kept.
    pub fn stores(&self) -> bool {
        self.store
    }

    /// The keys as `RequestAccepted` carries them: the last turn's text and vector only when the
    /// answer may be kept (the privacy setting may forbid bodies in the stream).
    pub fn event_key(&self) -> CacheKey {
        let semantic = self.semantic.as_ref().filter(|_| self.store);
        CacheKey {
            tenant: self.tenant.clone(),
            exact: self.exact.clone(),
            context: semantic.map(|s| s.0.clone()),
            prompt: semantic.map(|s| s.2.clone()),
            embedding: semantic.map(|s| s.3.clone()),
            store: self.store,
            ttl_ms: self.policy.ttl.as_millis() as u64,
        }
    }
}

impl Cache {
    /// The cache of `cfg`, or `None` when no model has it on. Loads the embedder when a model
    /// answers semantically: the local one, or `[cache] embedding_model` through `routes` (without
    /// routes, as in `switchyard replay cache`, none: the fold reads the vectors from the events).
    pub fn from_config(
        cfg: &Config,
        routes: Option<Arc<RouteTable>>,
    ) -> Result<Option<Arc<Self>>, EmbedError> {
        let policies: HashMap<String, CachePolicy> = cfg
            .models
            .iter()
            .filter(|m| m.cache.enabled)
            .map(|m| (m.name.clone(), m.cache))
            .collect();
        if policies.is_empty() {
            return Ok(None);
        }
        let embedder: Option<Arc<dyn Embedder>> = match (
            cfg.cache.needs_embedder(&cfg.models),
            &cfg.cache.embedding_model,
            routes,
        ) {
            (false, _, _) => None,
            (true, Some(model), Some(routes)) => {
                Some(Arc::new(RemoteEmbedder::new(routes, model.clone())))
            }
            (true, Some(_), None) => None,
            (true, None, _) => Some(Arc::new(StaticEmbedder::load(&cfg.cache.embedder_path)?)),
        };
        Ok(Some(Arc::new(Self::new(
            cfg.cache.clone(),
            policies,
            embedder,
        ))))
    }

    pub fn new(
        config: CacheConfig,
        policies: HashMap<String, CachePolicy>,
        embedder: Option<Arc<dyn Embedder>>,
    ) -> Self {
        let store = Store::new(policies.clone(), config.policy(None));
        Self {
            config,
            policies,
            embedder,
            store: RwLock::new(store),
        }
    }

    /// The longest time an answer is served: how far back a follower starts reading.
    pub fn max_ttl(&self) -> Duration {
        self.policies
            .values()
            .map(|p| p.ttl)
            .max()
            .unwrap_or(self.config.ttl)
    }

    /// The embedder's name, when one is loaded.
    pub fn embedder(&self) -> Option<&str> {
        self.embedder.as_deref().map(Embedder::name)
    }

    /// The cache's part in a chat request for the public model `model`, or `None` when the
    /// model's cache is off. Embeds the last user turn (a remote embedder is awaited). `storable`: the request's answer may be kept at all (the stream
    /// keeps bodies whole and no guardrail redacted the request); `semantic`: its last turn may
    /// be compared by meaning (no guardrail found anything in it).
    pub async fn plan(
        &self,
        principal: &Principal,
        model: &str,
        req: &ChatRequest,
        directives: Directives,
        storable: bool,
        semantic: bool,
    ) -> Option<Plan> {
        let policy = *self.policies.get(model)?;
        let tenant = key::tenant(self.config.scope, principal);
        let keys = key::keys(&tenant, model, req, self.config.max_prompt_chars);
        let store = storable && !directives.no_store;
        let wanted = policy.semantic && semantic && (store || !directives.no_cache);
        let semantic = match (keys.semantic, &self.embedder) {
            (Some((context, text)), Some(embedder)) if wanted => {
                let prompt = Prompt::new(&text);
                let v = embedder.embed(&prompt, &text).await;
                // The bucket: the conversation, and the facts of the turn a hit needs equal, so
                // a templated prompt with other numbers is not even compared.
                let mut h = Sha256::new();
                h.update(context);
                h.update(prompt.fingerprint());
                let bucket = hex::encode(h.finalize());
                v.map(|v| (bucket, prompt, text, v))
            }
            _ => None,
        };
        Some(Plan {
            tenant,
            model: model.to_owned(),
            exact: hex::encode(keys.exact),
            semantic,
            directives,
            store,
            policy,
        })
    }

    /// A cached answer for `plan`, unless the client said `no-cache`.
    pub fn lookup(&self, plan: &Plan, now_ms: u64) -> Option<Hit> {
        if plan.directives.no_cache {
            return None;
        }
        let q = Query {
            tenant: &plan.tenant,
            model: &plan.model,
            exact: &plan.exact,
            semantic: plan
                .semantic
                .as_ref()
                .map(|(ctx, prompt, _, v)| (ctx.as_str(), prompt, v.as_slice())),
            threshold: plan.policy.threshold,
            now_ms,
        };
        self.read().lookup(&q, self.embedder.as_deref())
    }

    /// Fold a batch of events (with their stream sequences) into the cache.
    pub fn apply(&self, batch: &[(u64, Envelope)]) {
        // Parse first, lock after: lookups wait only for the map updates.
        let prepared: Vec<store::Prepared> =
            batch.iter().map(|(_, env)| store::prepare(env)).collect();
        let mut store = self.store.write().unwrap_or_else(PoisonError::into_inner);
        for ((seq, env), prepared) in batch.iter().zip(prepared) {
            store.apply_prepared(*seq, env, prepared);
        }
    }

    pub fn applied(&self) -> u64 {
        self.read().applied()
    }

    /// Wait until the events up to stream sequence `seq` are folded in (false after `timeout`).
    pub async fn wait_applied(&self, seq: u64, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        while self.applied() < seq {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }

    /// What the cache serves now.
    pub fn summary(&self) -> Summary {
        self.read().summary(crate::governance::now_ms())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Store> {
        self.store.read().unwrap_or_else(PoisonError::into_inner)
    }
}
