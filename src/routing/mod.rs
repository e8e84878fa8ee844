//! From a public model name to an answer: content rules pick the model (`rules.rs`), the
//! model's strategy orders its deployments (`select.rs`: in order, weighted, or by live latency),
//! and the attempt loop (`attempt.rs`) walks them with retries, circuit breakers, key pools,
//! hedging and fallback models, using each deployment's live health (`health.rs`).
//!
//! A deployment (provider + upstream model) is one object shared by every model that lists it,
//! so its breaker and latency figures see all its traffic. Nothing here publishes: attempts and
//! breaker changes come back in the [`Outcome`] for the edge to record.

mod attempt;
pub mod health;
pub mod rules;
pub mod select;

pub use attempt::Outcome;

use futures::StreamExt;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::config::{
    ErrorClass, ModelSpec, ProviderSpec, RawHedge, RetryConfig, RoutingConfig, Strategy,
};
use crate::events::DeploymentRef;
use crate::providers::{
    self, ChatRequest, ChatResponse, ChatStream, EmbeddingsRequest, EmbeddingsResponse, Provider,
    ProviderError,
};
use health::Health;
use select::Weighted;

/// One deployment, ready to call: a provider (one adapter per key of its key pool), the model
/// name it knows, and its live health.
pub struct Deployment {
    pub provider_name: String,
    pub model: String,
    pub spec: Arc<ProviderSpec>,
    pub health: Health,
    keys: Vec<Arc<dyn Provider>>,
    pool: Mutex<KeyPool>,
}

/// Which key of a pool is in use, and until when each 429'd key rests.
struct KeyPool {
    current: usize,
    resting_until: Vec<Option<Instant>>,
}

/// A 429 without `Retry-After` rests its key this long.
const KEY_REST: Duration = Duration::from_secs(1);

impl Deployment {
    fn pool(&self) -> std::sync::MutexGuard<'_, KeyPool> {
        self.pool.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The key to use now: the current one unless it rests, else the next one that does not
    /// (or, when all rest, the one that is back soonest). `None` index for a single key.
    fn key(&self, now: Instant) -> (Option<u32>, &Arc<dyn Provider>) {
        if self.keys.len() == 1 {
            return (None, &self.keys[0]);
        }
        let mut p = self.pool();
        let n = self.keys.len();
        let ready = |i: usize, p: &KeyPool| p.resting_until[i].is_none_or(|t| t <= now);
        let pick = (0..n)
            .map(|k| (p.current + k) % n)
            .find(|&i| ready(i, &p))
            .unwrap_or_else(|| {
                (0..n)
                    .min_by_key(|&i| p.resting_until[i].unwrap_or(now))
                    .unwrap_or(0)
            });
        p.current = pick;
        (u32::try_from(pick).ok(), &self.keys[pick])
    }

    /// A key got a 429: rest it and move on to the next.
    fn cool_key(&self, key: Option<u32>, retry_after: Option<Duration>, now: Instant) {
        let Some(k) = key.and_then(|k| usize::try_from(k).ok()) else {
            return;
        };
        let mut p = self.pool();
        if let Some(slot) = p.resting_until.get_mut(k) {
            *slot = Some(now + retry_after.unwrap_or(KEY_REST));
            p.current = (k + 1) % self.keys.len();
        }
    }

    /// Whether some key of a pool is not resting.
    fn has_fresh_key(&self, now: Instant) -> bool {
        self.keys.len() > 1
            && self
                .pool()
                .resting_until
                .iter()
                .any(|t| t.is_none_or(|t| t <= now))
    }

    pub fn to_ref(&self) -> DeploymentRef {
        DeploymentRef {
            provider: self.provider_name.clone(),
            model: self.model.clone(),
        }
    }
}

/// Under `strategy = "latency"`, one request in this many goes to a random deployment…
const EXPLORE: u32 = 50;
/// …but a deployment is explored at most this often, so at high traffic a known-slow one gets a
/// handful of requests a second, not a share of them (which would set the p99).
const EXPLORE_EVERY: Duration = Duration::from_millis(250);

/// A public model: its deployments and how to use them.
pub struct ModelRoute {
    pub name: String,
    pub deployments: Vec<Arc<Deployment>>,
    /// The same candidates as recorded in events.
    pub refs: Vec<DeploymentRef>,
    strategy: Strategy,
    weighted: Weighted,
    fallbacks: Vec<String>,
    fallback_on: Vec<(ErrorClass, String)>,
    hedge: Option<RawHedge>,
}

impl ModelRoute {
    /// The models a request for this one may fall back to (by error class, then in order).
    pub fn fallback_models(&self) -> impl Iterator<Item = &str> {
        self.fallback_on
            .iter()
            .map(|(_, m)| m.as_str())
            .chain(self.fallbacks.iter().map(String::as_str))
    }

    /// The order to try the deployments in for one request.
    pub fn order(&self, now: Instant) -> Vec<usize> {
        let n = self.deployments.len();
        let open = |i: usize| self.deployments[i].health.is_open(now);
        let first = match self.strategy {
            Strategy::Ordered => return (0..n).collect(),
            Strategy::Weighted => self.weighted.pick(open),
            // One request in EXPLORE picks at random, so a deployment that was slow is seen
            // again soon after it recovers (its average moves fast after a gap).
            Strategy::Latency
                if rand::random_range(0..EXPLORE) == 0
                    && let Some(i) = self.explore(now, open) =>
            {
                Some(i)
            }
            Strategy::Latency => select::p2c(
                n,
                |i| self.deployments[i].health.cost(now),
                open,
                |below| rand::random_range(0..below),
            ),
        };
        select::with_first(first, n)
    }

    /// A random deployment that is up and was not explored in the last `EXPLORE_EVERY`.
    fn explore(&self, now: Instant, open: impl Fn(usize) -> bool) -> Option<usize> {
        let up: Vec<usize> = (0..self.deployments.len()).filter(|&i| !open(i)).collect();
        let i = *up.get(rand::random_range(0..up.len().max(1)))?;
        self.deployments[i]
            .health
            .claim_exploration(now, EXPLORE_EVERY)
            .then_some(i)
    }
}

/// Every public model and the content rules, built once from validated config.
pub struct RouteTable {
    models: HashMap<String, Arc<ModelRoute>>,
    names: Vec<String>,
    rules: rules::Rules,
    retry: RetryConfig,
}

/// The model a request is served by, and the rule that chose it.
pub struct Resolved {
    pub route: Arc<ModelRoute>,
    pub rule: Option<String>,
}

impl RouteTable {
    pub fn build(
        models: &[ModelSpec],
        routing: &RoutingConfig,
        providers: &HashMap<String, Vec<Arc<dyn Provider>>>,
    ) -> Self {
        let mut shared: HashMap<(String, String), Arc<Deployment>> = HashMap::new();
        let mut map = HashMap::new();
        let mut names = Vec::new();
        for m in models {
            let mut deployments = Vec::new();
            let mut weights = Vec::new();
            for d in &m.deployments {
                let Some(keys) = providers.get(&d.provider.name) else {
                    continue;
                };
                let key = (d.provider.name.clone(), d.model.clone());
                let dep = shared.entry(key).or_insert_with(|| {
                    Arc::new(Deployment {
                        provider_name: d.provider.name.clone(),
                        model: d.model.clone(),
                        spec: Arc::clone(&d.provider),
                        health: Health::new(
                            routing.breaker.clone(),
                            routing.retry_budget.clone(),
                            routing.health.half_life,
                        ),
                        pool: Mutex::new(KeyPool {
                            current: 0,
                            resting_until: vec![None; keys.len()],
                        }),
                        keys: keys.clone(),
                    })
                });
                deployments.push(Arc::clone(dep));
                weights.push(d.weight);
            }
            let refs = deployments.iter().map(|d| d.to_ref()).collect();
            names.push(m.name.clone());
            map.insert(
                m.name.clone(),
                Arc::new(ModelRoute {
                    name: m.name.clone(),
                    deployments,
                    refs,
                    strategy: m.strategy,
                    weighted: Weighted::new(&weights),
                    fallbacks: m.fallbacks.clone(),
                    fallback_on: m.fallback_on.clone(),
                    hedge: m.hedge.clone(),
                }),
            );
        }
        Self {
            models: map,
            names,
            rules: rules::Rules::compile(&routing.rules),
            retry: routing.retry.clone(),
        }
    }

    pub fn get(&self, model: &str) -> Option<&Arc<ModelRoute>> {
        self.models.get(model)
    }

    /// The model that serves a request: the first content rule that matches, else the model
    /// asked for.
    pub fn resolve(&self, input: &rules::Input<'_>) -> Option<Resolved> {
        if let Some(rule) = self.rules.evaluate(input)
            && let Some(route) = self.models.get(&rule.target)
        {
            return Some(Resolved {
                route: Arc::clone(route),
                rule: Some(rule.name.clone()),
            });
        }
        self.models.get(input.model).map(|r| Resolved {
            route: Arc::clone(r),
            rule: None,
        })
    }

    /// Public model names in config order.
    pub fn names(&self) -> &[String] {
        &self.names
    }
}

/// A complete answer.
pub async fn chat<'r>(
    table: &'r RouteTable,
    route: &'r ModelRoute,
    req: &'r ChatRequest,
) -> Outcome<ChatResponse> {
    let call = move |d: &'r Deployment, p: &'r Arc<dyn Provider>| p.chat(req, &d.model);
    attempt::run(table, route, &call).await
}

/// An open stream whose first chunk has arrived: until then every failure (including no first
/// token within `first_token_timeout`) can still fall back, since nothing reached the client.
/// The stream ends with a timeout error once the deployment's total `timeout` has passed.
pub async fn open_stream<'r>(
    table: &'r RouteTable,
    route: &'r ModelRoute,
    req: &'r ChatRequest,
) -> Outcome<ChatStream> {
    let call = move |d: &'r Deployment, p: &'r Arc<dyn Provider>| {
        let fut = async move {
            let deadline = tokio::time::Instant::now() + d.spec.timeout;
            let first = async {
                let mut s = p.chat_stream(req, &d.model).await?;
                match s.next().await {
                    Some(Ok(chunk)) => Ok((chunk, s)),
                    Some(Err(e)) => Err(e),
                    None => Err(ProviderError::StreamCut(
                        "the stream ended before its first chunk".into(),
                    )),
                }
            };
            let first_token_by =
                deadline.min(tokio::time::Instant::now() + d.spec.first_token_timeout);
            let (chunk, rest) = tokio::time::timeout_at(first_token_by, first)
                .await
                .map_err(|_| ProviderError::Timeout {
                    phase: "first_token",
                })??;
            let primed = futures::stream::once(async move { Ok(chunk) }).chain(rest);
            Ok(until(primed.boxed(), deadline))
        };
        Box::pin(fut) as futures::future::BoxFuture<'r, Result<ChatStream, ProviderError>>
    };
    attempt::run(table, route, &call).await
}

/// `s`, ended by a timeout error at `deadline`.
fn until(s: ChatStream, deadline: tokio::time::Instant) -> ChatStream {
    futures::stream::unfold(Some(s), move |s| async move {
        let mut s = s?;
        if tokio::time::Instant::now() >= deadline {
            return Some((Err(ProviderError::Timeout { phase: "total" }), None));
        }
        match tokio::time::timeout_at(deadline, s.next()).await {
            Ok(Some(item)) => Some((item, Some(s))),
            Ok(None) => None,
            Err(_) => Some((Err(ProviderError::Timeout { phase: "total" }), None)),
        }
    })
    .boxed()
}

/// Embeddings.
pub async fn embeddings<'r>(
    table: &'r RouteTable,
    route: &'r ModelRoute,
    req: &'r EmbeddingsRequest,
) -> Outcome<EmbeddingsResponse> {
    let call = move |d: &'r Deployment, p: &'r Arc<dyn Provider>| p.embeddings(req, &d.model);
    attempt::run(table, route, &call).await
}

/// Build the adapters of every configured provider: one per key of a key pool.
pub fn build_providers(
    specs: &BTreeMap<String, Arc<ProviderSpec>>,
) -> Result<HashMap<String, Vec<Arc<dyn Provider>>>, providers::BuildError> {
    specs
        .iter()
        .map(|(name, spec)| {
            let adapters = if spec.key_pool.len() > 1 {
                spec.key_pool
                    .iter()
                    .map(|key| {
                        providers::build(Arc::new(ProviderSpec {
                            api_key: Some(key.clone()),
                            ..(**spec).clone()
                        }))
                    })
                    .collect::<Result<Vec<_>, _>>()?
            } else {
                vec![providers::build(Arc::clone(spec))?]
            };
            Ok((name.clone(), adapters))
        })
        .collect()
}

#[cfg(test)]
mod tests;
