//! From a public model name to an ordered list of deployments, and the attempt loop that walks it.
//!
//! This slice routes in configured order and falls back to the next deployment on failures the
//! provider is to blame for (5xx, timeouts, connection errors, 429). A client error (4xx caused by
//! the request) is returned at once: another deployment would refuse it too.

use futures::future::BoxFuture;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use crate::config::ModelSpec;
use crate::events::{Attempt, DeploymentRef, ErrorInfo};
use crate::providers::{
    self, ChatRequest, ChatResponse, ChatStream, EmbeddingsRequest, EmbeddingsResponse, Provider,
    ProviderError,
};

/// One deployment, ready to call.
pub struct Target {
    pub provider: Arc<dyn Provider>,
    pub provider_name: String,
    pub model: String,
}

/// A public model and its candidates in order.
pub struct ModelRoute {
    pub name: String,
    pub targets: Vec<Target>,
    /// The same candidates as recorded in events.
    pub refs: Vec<DeploymentRef>,
}

/// Every public model, built once from validated config.
pub struct RouteTable {
    models: HashMap<String, Arc<ModelRoute>>,
    names: Vec<String>,
}

impl RouteTable {
    pub fn build(models: &[ModelSpec], providers: &HashMap<String, Arc<dyn Provider>>) -> Self {
        let mut map = HashMap::new();
        let mut names = Vec::new();
        for m in models {
            let targets: Vec<Target> = m
                .deployments
                .iter()
                .filter_map(|d| {
                    providers.get(&d.provider.name).map(|p| Target {
                        provider: Arc::clone(p),
                        provider_name: d.provider.name.clone(),
                        model: d.model.clone(),
                    })
                })
                .collect();
            let refs = targets
                .iter()
                .map(|t| DeploymentRef {
                    provider: t.provider_name.clone(),
                    model: t.model.clone(),
                })
                .collect();
            names.push(m.name.clone());
            map.insert(
                m.name.clone(),
                Arc::new(ModelRoute {
                    name: m.name.clone(),
                    targets,
                    refs,
                }),
            );
        }
        Self { models: map, names }
    }

    pub fn get(&self, model: &str) -> Option<&Arc<ModelRoute>> {
        self.models.get(model)
    }

    /// Public model names in config order.
    pub fn names(&self) -> &[String] {
        &self.names
    }
}

/// What the attempt loop produced: the answer and which target gave it, or the last error; and
/// every attempt made on the way.
pub struct Outcome<T> {
    pub result: Result<(T, usize), ProviderError>,
    pub attempts: Vec<Attempt>,
}

async fn attempt_loop<'r, T>(
    route: &'r ModelRoute,
    call: impl Fn(&'r Target) -> BoxFuture<'r, Result<T, ProviderError>>,
) -> Outcome<T> {
    let mut attempts = Vec::with_capacity(1);
    let mut last = None;
    for (i, target) in route.targets.iter().enumerate() {
        let started = Instant::now();
        let res = call(target).await;
        let latency_us = started.elapsed().as_micros() as u64;
        match res {
            Ok(v) => {
                attempts.push(Attempt {
                    provider: target.provider_name.clone(),
                    model: target.model.clone(),
                    status: 200,
                    latency_us,
                    error: None,
                });
                return Outcome {
                    result: Ok((v, i)),
                    attempts,
                };
            }
            Err(e) => {
                metrics::counter!("switchyard_upstream_errors_total", "provider" => target.provider_name.clone(), "class" => e.label()).increment(1);
                attempts.push(Attempt {
                    provider: target.provider_name.clone(),
                    model: target.model.clone(),
                    status: e.status(),
                    latency_us,
                    error: Some(ErrorInfo {
                        class: e.label().to_owned(),
                        message: e.to_string(),
                    }),
                });
                let retry = e.retryable();
                last = Some(e);
                if !retry {
                    break;
                }
            }
        }
    }
    Outcome {
        result: Err(last.unwrap_or(ProviderError::Connect("no deployment configured".into()))),
        attempts,
    }
}

/// A complete answer, falling back across deployments.
pub async fn chat<'r>(route: &'r ModelRoute, req: &'r ChatRequest) -> Outcome<ChatResponse> {
    attempt_loop(route, |t| t.provider.chat(req, &t.model)).await
}

/// An open stream, falling back across deployments until one accepts the request.
pub async fn open_stream<'r>(route: &'r ModelRoute, req: &'r ChatRequest) -> Outcome<ChatStream> {
    attempt_loop(route, |t| t.provider.chat_stream(req, &t.model)).await
}

/// Embeddings, falling back across deployments.
pub async fn embeddings<'r>(
    route: &'r ModelRoute,
    req: &'r EmbeddingsRequest,
) -> Outcome<EmbeddingsResponse> {
    attempt_loop(route, |t| t.provider.embeddings(req, &t.model)).await
}

/// Build one adapter per configured provider.
pub fn build_providers(
    specs: &std::collections::BTreeMap<String, Arc<crate::config::ProviderSpec>>,
) -> Result<HashMap<String, Arc<dyn Provider>>, providers::BuildError> {
    specs
        .iter()
        .map(|(name, spec)| Ok((name.clone(), providers::build(Arc::clone(spec))?)))
        .collect()
}
