//! Turning a prompt into a vector, for the semantic cache.
//!
//! [`Embedder`] is the seam; [`StaticEmbedder`] the local default: static word vectors (a
//! table of one vector per token, no network, no attention) looked up through their BPE
//! tokenizer. It embeds a prompt in microseconds, where a small transformer (all-MiniLM-L6-v2
//! in candle) took 80–100 ms per sentence on this machine's CPU, more than the whole gateway
//! path. The weights are WordLlama's (`l2_supercat_256`: 32,000 tokens × 256 dimensions, f16),
//! installed from the `wordllama` PyPI wheel at set-up (`scripts/lib.sh`, `ensure_embedder`),
//! never fetched at run time. The wheel's code is MIT; the vectors are derived from Llama 2's
//! token embeddings and so fall under the Llama 2 Community License (see README, "Cache").
//!
//! A sentence vector here is the mean of its content words' vectors (fillers such as "can you
//! please tell me" left out, see [`Prompt`]), each word's vector being the mean of its tokens'
//! and the word-boundary token's (a common component that keeps one rare token from dominating
//! a word: on the labelled pairs it raised paraphrase hits at zero false hits from 46 % to
//! 59 %). Static vectors blur which word changed, so a hit also needs every word one prompt has
//! and the other lacks to have a close counterpart on the other side ([`Embedder::agree`]).

use futures::future::BoxFuture;
use std::path::Path;
use std::sync::Arc;

use super::prompt::Prompt;
use crate::providers::EmbeddingsRequest;
use crate::routing::{self, RouteTable};

/// Where the weights live inside the installed `wordllama` package.
const TOKENIZER_FILE: &str = "tokenizers/l2_supercat_tokenizer_config.json";
const WEIGHTS_FILE: &str = "weights/l2_supercat_256.safetensors";
const TENSOR: &str = "embedding.weight";
/// The token that marks a word's start in this vocabulary (SentencePiece's `▁`).
const WORD_START: &str = "▁";

/// Every word one prompt has and the other lacks must find a counterpart at least this close…
const WORST_COUNTERPART: f32 = 0.1;
/// …and those words' counterparts must be this close on average.
const MEAN_COUNTERPART: f32 = 0.3;

#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error("cannot read the embedder's {what} at {path}: {source}")]
    Read {
        what: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the embedder's {what} is not usable: {message}")]
    Format { what: &'static str, message: String },
}

/// Turns prompts into L2-normalised vectors (all of one embedder's the same length).
pub trait Embedder: Send + Sync {
    /// A short name for logs, metrics and `/admin/cache`.
    fn name(&self) -> &str;
    /// The vector of a last user turn (`text`, read as `prompt`); `None` when there is nothing
    /// to embed or the embedder failed (the request is then cached exactly only).
    fn embed<'a>(&'a self, prompt: &'a Prompt, text: &'a str) -> BoxFuture<'a, Option<Vec<f32>>>;
    /// Whether two prompts whose vectors are close also agree word for word, as far as this
    /// embedder can tell. The default trusts the vectors.
    fn agree(&self, _a: &Prompt, _b: &Prompt) -> bool {
        true
    }
}

/// Static word vectors through their tokenizer (see the module documentation).
pub struct StaticEmbedder {
    tokenizer: tokenizers::Tokenizer,
    /// Row-major, `dim` floats per token id.
    table: Vec<f32>,
    dim: usize,
    word_start: Option<u32>,
}

impl std::fmt::Debug for StaticEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticEmbedder")
            .field("dim", &self.dim)
            .field("tokens", &(self.table.len() / self.dim.max(1)))
            .finish()
    }
}

impl StaticEmbedder {
    /// Load the WordLlama weights from the installed package directory (`…/wordllama`).
    pub fn load(dir: &Path) -> Result<Self, EmbedError> {
        let read = |what: &'static str, file: &str| {
            let path = dir.join(file);
            std::fs::read(&path).map_err(|source| EmbedError::Read {
                what,
                path: path.display().to_string(),
                source,
            })
        };
        let tokenizer = tokenizers::Tokenizer::from_bytes(read("tokenizer", TOKENIZER_FILE)?)
            .map_err(|e| EmbedError::Format {
                what: "tokenizer",
                message: e.to_string(),
            })?;
        let bytes = read("weights", WEIGHTS_FILE)?;
        let format = |message: String| EmbedError::Format {
            what: "weights",
            message,
        };
        let tensors =
            safetensors::SafeTensors::deserialize(&bytes).map_err(|e| format(e.to_string()))?;
        let view = tensors.tensor(TENSOR).map_err(|e| format(e.to_string()))?;
        let [rows, dim] = view.shape() else {
            return Err(format(format!("{TENSOR} has shape {:?}", view.shape())));
        };
        let (rows, dim) = (*rows, *dim);
        let table: Vec<f32> = match view.dtype() {
            safetensors::Dtype::F16 => view
                .data()
                .chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            safetensors::Dtype::F32 => view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            other => return Err(format(format!("{TENSOR} is {other:?}, not f16 or f32"))),
        };
        if table.len() != rows * dim || dim == 0 {
            return Err(format(format!(
                "{TENSOR} holds {} values, not {rows}×{dim}",
                table.len()
            )));
        }
        let word_start = tokenizer.token_to_id(WORD_START);
        Ok(Self {
            tokenizer,
            table,
            dim,
            word_start,
        })
    }

    fn row(&self, id: u32) -> Option<&[f32]> {
        let start = (id as usize).checked_mul(self.dim)?;
        self.table.get(start..start + self.dim)
    }

    /// A word's vector, normalised: the mean of its tokens' and the word-start token's.
    fn word(&self, word: &str) -> Option<Vec<f32>> {
        let encoding = self.tokenizer.encode(word, false).ok()?;
        let mut sum = vec![0f32; self.dim];
        let mut n = 0usize;
        for id in encoding.get_ids().iter().chain(self.word_start.as_ref()) {
            if let Some(row) = self.row(*id) {
                sum.iter_mut().zip(row).for_each(|(s, x)| *s += x);
                n += 1;
            }
        }
        (n > 0).then(|| normalised(sum))
    }
}

impl StaticEmbedder {
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The prompt's vector; `None` when it has no content word.
    pub fn vector(&self, prompt: &Prompt) -> Option<Vec<f32>> {
        let mut sum = vec![0f32; self.dim];
        let mut any = false;
        for word in prompt.content() {
            if let Some(v) = self.word(word) {
                sum.iter_mut().zip(&v).for_each(|(s, x)| *s += x);
                any = true;
            }
        }
        any.then(|| normalised(sum))
    }
}

impl Embedder for StaticEmbedder {
    fn name(&self) -> &str {
        "wordllama-l2-supercat-256"
    }

    fn embed<'a>(&'a self, prompt: &'a Prompt, _text: &'a str) -> BoxFuture<'a, Option<Vec<f32>>> {
        Box::pin(std::future::ready(self.vector(prompt)))
    }

    fn agree(&self, a: &Prompt, b: &Prompt) -> bool {
        let (mut worst, mut total, mut n) = (1f32, 0f32, 0usize);
        for (this, that) in [(a, b), (b, a)] {
            let theirs: Vec<Vec<f32>> =
                that.content().iter().filter_map(|w| self.word(w)).collect();
            for word in this.unmatched(that) {
                let best = self.word(word).map_or(0.0, |v| {
                    theirs.iter().map(|t| dot(&v, t)).fold(0f32, f32::max)
                });
                worst = worst.min(best);
                total += best;
                n += 1;
            }
        }
        n == 0 || (worst >= WORST_COUNTERPART && total / n as f32 >= MEAN_COUNTERPART)
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn normalised(mut v: Vec<f32>) -> Vec<f32> {
    let norm = dot(&v, &v).sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

/// Embeddings from a model of this gateway's own config (`[cache] embedding_model`), called
/// through its routes like any embeddings request: its deployments, retries and fallbacks, its
/// provider credentials. Used instead of the local vectors; the prompt checks still apply.
pub struct RemoteEmbedder {
    routes: Arc<RouteTable>,
    model: String,
}

impl RemoteEmbedder {
    pub fn new(routes: Arc<RouteTable>, model: String) -> Self {
        Self { routes, model }
    }

    async fn call(&self, text: &str) -> Option<Vec<f32>> {
        let route = self.routes.get(&self.model)?;
        let mut rest = serde_json::Map::new();
        rest.insert("input".into(), serde_json::Value::String(text.to_owned()));
        let req = EmbeddingsRequest {
            model: self.model.clone(),
            rest,
        };
        let outcome = routing::embeddings(&self.routes, route, &req).await;
        let body = match outcome.result {
            Ok((answer, _)) => answer.body,
            Err(e) => {
                tracing::warn!(model = %self.model, error = %e, "the cache's embedding call failed; exact caching only for this request");
                metrics::counter!("switchyard_cache_embedding_failures_total").increment(1);
                return None;
            }
        };
        #[derive(serde::Deserialize)]
        struct List {
            data: Vec<Item>,
        }
        #[derive(serde::Deserialize)]
        struct Item {
            embedding: Vec<f32>,
        }
        let list: List = serde_json::from_slice(&body).ok()?;
        let v = list.data.into_iter().next()?.embedding;
        (!v.is_empty()).then(|| normalised(v))
    }
}

impl Embedder for RemoteEmbedder {
    fn name(&self) -> &str {
        &self.model
    }

    fn embed<'a>(&'a self, _prompt: &'a Prompt, text: &'a str) -> BoxFuture<'a, Option<Vec<f32>>> {
        Box::pin(self.call(text))
    }
}
