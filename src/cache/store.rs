//! The cache's state: a pure fold of the stream's request events into answers by tenant and
//! model. Every instance folds the same events into the same state, and so does
//! `switchyard replay cache`; nothing here reads a clock: expiry and recency come from the
//! events' own times and sequences.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use sha2::{Digest, Sha256};
use ulid::Ulid;

use super::answer::{self, Cached};
use super::embed::Embedder;
use super::index::{BruteForce, VectorIndex};
use super::prompt::Prompt;
use crate::config::CachePolicy;
use crate::events::{CacheKey, CacheMatch, Endpoint, Envelope, Event};

/// A request accepted with cache keys, waiting for its answer. Dropped when no answer comes
/// within this long (of stream time).
const PENDING_FOR_MS: u64 = 30 * 60 * 1000;
/// Candidates a semantic lookup checks, best first.
const CANDIDATES: usize = 8;

/// One cached answer.
#[derive(Debug)]
pub struct Entry {
    /// The request whose answer this is.
    pub source: Ulid,
    exact: String,
    context: Option<String>,
    prompt: Option<Prompt>,
    pub answer: Arc<Cached>,
    expires_at_ms: u64,
    /// The sequence of the event that last inserted or served it (least recent goes first).
    used: u64,
}

/// The answers of one tenant for one public model.
#[derive(Default)]
pub struct Partition {
    entries: HashMap<u64, Entry>,
    exact: HashMap<String, u64>,
    vectors: HashMap<String, BruteForce>,
    by_use: BTreeMap<u64, u64>,
    by_expiry: BTreeSet<(u64, u64)>,
    /// Entry ids by the request whose answer they hold (a hit names its source).
    sources: HashMap<Ulid, u64>,
}

impl Partition {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn remove(&mut self, id: u64) {
        let Some(e) = self.entries.remove(&id) else {
            return;
        };
        if self.exact.get(&e.exact) == Some(&id) {
            self.exact.remove(&e.exact);
        }
        if let Some(ctx) = &e.context
            && let Some(index) = self.vectors.get_mut(ctx)
        {
            index.remove(id);
            if index.is_empty() {
                self.vectors.remove(ctx);
            }
        }
        self.by_use.remove(&e.used);
        self.by_expiry.remove(&(e.expires_at_ms, id));
        self.sources.remove(&e.source);
    }

    fn touch(&mut self, id: u64, seq: u64) {
        if let Some(e) = self.entries.get_mut(&id) {
            self.by_use.remove(&e.used);
            e.used = seq;
            self.by_use.insert(seq, id);
        }
    }

    /// Drop what expired by `now_ms`, then the least recently used beyond `max`.
    fn trim(&mut self, now_ms: u64, max: usize) {
        while let Some(&(at, id)) = self.by_expiry.first()
            && at <= now_ms
        {
            self.remove(id);
        }
        while self.entries.len() > max
            && let Some((_, &id)) = self.by_use.first_key_value()
        {
            self.remove(id);
        }
    }
}

/// A request answered from the cache.
#[derive(Debug, Clone)]
pub struct Hit {
    pub answer: Arc<Cached>,
    pub matched: CacheMatch,
    pub similarity: f32,
    pub source: Ulid,
}

/// What a lookup is asked.
pub struct Query<'a> {
    pub tenant: &'a str,
    pub model: &'a str,
    pub exact: &'a str,
    /// The context hash, the last user turn and its vector, for a semantic lookup.
    pub semantic: Option<(&'a str, &'a Prompt, &'a [f32])>,
    pub threshold: f32,
    pub now_ms: u64,
}

struct Pending {
    at_ms: u64,
    model: String,
    key: CacheKey,
    /// The last user turn read, for a semantic entry.
    prompt: Option<Prompt>,
}

/// What folding an event needs that does not depend on the store (parsing an answer, reading
/// a turn): worked out before the store is locked, so lookups never wait on it.
#[derive(Default)]
pub struct Prepared {
    answer: Option<Cached>,
    prompt: Option<Prompt>,
}

/// Parse what `env` brings for the cache: a kept request's last user turn, or a complete answer
/// the client got whole.
pub fn prepare(env: &Envelope) -> Prepared {
    match &env.event {
        Event::RequestAccepted(a) => Prepared {
            answer: None,
            prompt: a
                .cache
                .as_ref()
                .filter(|k| k.store && k.context.is_some())
                .and_then(|k| k.prompt.as_deref())
                .map(Prompt::new),
        },
        Event::ResponseCompleted(c) if c.cache.is_none() && c.whole_body && c.status == 200 => {
            let answer = c
                .body
                .as_deref()
                .and_then(|body| match (c.stream, c.endpoint) {
                    (true, _) => answer::from_stream(body),
                    (false, Endpoint::Messages) => answer::from_plain_messages(body),
                    (false, _) => answer::from_plain_openai(body),
                });
            Prepared {
                // Only answers that ended as a model ends them: not cut, not filtered.
                answer: answer.filter(|a| {
                    matches!(
                        a.finish_reason.as_deref(),
                        Some("stop" | "length" | "tool_calls")
                    )
                }),
                prompt: None,
            }
        }
        _ => Prepared::default(),
    }
}

/// Every cached answer, by tenant and model.
pub struct Store {
    partitions: HashMap<(String, String), Partition>,
    pending: HashMap<Ulid, Pending>,
    pending_by_time: BTreeSet<(u64, Ulid)>,
    policies: HashMap<String, CachePolicy>,
    default_policy: CachePolicy,
    applied: u64,
}

impl Store {
    pub fn new(policies: HashMap<String, CachePolicy>, default_policy: CachePolicy) -> Self {
        Self {
            partitions: HashMap::new(),
            pending: HashMap::new(),
            pending_by_time: BTreeSet::new(),
            policies,
            default_policy,
            applied: 0,
        }
    }

    /// The last stream sequence folded in.
    pub fn applied(&self) -> u64 {
        self.applied
    }

    fn max_entries(&self, model: &str) -> usize {
        self.policies
            .get(model)
            .unwrap_or(&self.default_policy)
            .max_entries
    }

    /// Fold one event at stream sequence `seq`.
    pub fn apply(&mut self, seq: u64, env: &Envelope) {
        self.apply_prepared(seq, env, prepare(env));
    }

    /// Fold one event whose [`prepare`] was done beforehand.
    pub fn apply_prepared(&mut self, seq: u64, env: &Envelope, prepared: Prepared) {
        self.applied = self.applied.max(seq);
        self.expire_pending(env.at_ms);
        match &env.event {
            Event::RequestAccepted(a) => {
                if let Some(key) = &a.cache
                    && key.store
                    && a.endpoint != Endpoint::Embeddings
                {
                    self.pending.insert(
                        env.request_id,
                        Pending {
                            at_ms: env.at_ms,
                            // The model that answered: a content rule's choice, else the one
                            // asked for.
                            model: a.routed_model.clone().unwrap_or_else(|| a.model.clone()),
                            key: key.clone(),
                            prompt: prepared.prompt,
                        },
                    );
                    self.pending_by_time.insert((env.at_ms, env.request_id));
                }
            }
            Event::ResponseCompleted(c) => {
                let pending = self.pending.remove(&env.request_id);
                if let Some(p) = &pending {
                    self.pending_by_time.remove(&(p.at_ms, env.request_id));
                }
                if let Some(hit) = &c.cache {
                    self.touch_source(&hit.source, seq);
                } else if let (Some(p), Some(answer)) = (pending, prepared.answer) {
                    self.insert(seq, env, answer, p);
                }
            }
            Event::CacheFlushed(f) => {
                let doomed: Vec<(String, String)> = self
                    .partitions
                    .keys()
                    .filter(|(t, m)| {
                        f.tenant.as_ref().is_none_or(|x| x == t)
                            && f.model.as_ref().is_none_or(|x| x == m)
                    })
                    .cloned()
                    .collect();
                for key in doomed {
                    self.partitions.remove(&key);
                }
            }
            _ => {}
        }
    }

    fn expire_pending(&mut self, now_ms: u64) {
        while let Some(&(at, id)) = self.pending_by_time.first()
            && at.saturating_add(PENDING_FOR_MS) <= now_ms
        {
            self.pending_by_time.remove(&(at, id));
            self.pending.remove(&id);
        }
    }

    fn touch_source(&mut self, source: &str, seq: u64) {
        let Ok(source) = source.parse::<Ulid>() else {
            return;
        };
        for p in self.partitions.values_mut() {
            if let Some(&id) = p.sources.get(&source) {
                p.touch(id, seq);
                return;
            }
        }
    }

    fn insert(&mut self, seq: u64, env: &Envelope, cached: Cached, p: Pending) {
        let max = self.max_entries(&p.model);
        let key = p.key;
        let part = self
            .partitions
            .entry((key.tenant.clone(), p.model.clone()))
            .or_default();
        if let Some(old) = part.exact.get(&key.exact).copied() {
            part.remove(old);
        }
        let semantic = match (&key.context, &key.embedding, p.prompt) {
            (Some(ctx), Some(v), Some(prompt)) => Some((ctx.clone(), v, prompt)),
            _ => None,
        };
        if let Some((ctx, v, _)) = &semantic {
            let index = part
                .vectors
                .entry(ctx.clone())
                .or_insert_with(|| BruteForce::new(v.len()));
            if index.dim() != v.len() {
                // Vectors of another embedder (the config changed): start the bucket again.
                *index = BruteForce::new(v.len());
            }
            index.insert(seq, v);
        }
        let expires_at_ms = env.at_ms.saturating_add(key.ttl_ms);
        let (context, prompt) = match semantic {
            Some((ctx, _, prompt)) => (Some(ctx), Some(prompt)),
            None => (None, None),
        };
        part.exact.insert(key.exact.clone(), seq);
        part.by_use.insert(seq, seq);
        part.by_expiry.insert((expires_at_ms, seq));
        part.entries.insert(
            seq,
            Entry {
                source: env.request_id,
                exact: key.exact,
                context,
                prompt,
                answer: Arc::new(cached),
                expires_at_ms,
                used: seq,
            },
        );
        part.sources.insert(env.request_id, seq);
        part.trim(env.at_ms, max);
    }

    /// The answer for `q`, if one is cached: the exact request first, then, when asked, the
    /// closest last user turn of the same conversation that passes every check.
    pub fn lookup(&self, q: &Query<'_>, embedder: Option<&dyn Embedder>) -> Option<Hit> {
        let part = self
            .partitions
            .get(&(q.tenant.to_owned(), q.model.to_owned()))?;
        let live = |id: &u64| part.entries.get(id).filter(|e| e.expires_at_ms > q.now_ms);
        if let Some(e) = part.exact.get(q.exact).and_then(live) {
            return Some(Hit {
                answer: Arc::clone(&e.answer),
                matched: CacheMatch::Exact,
                similarity: 1.0,
                source: e.source,
            });
        }
        let (ctx, prompt, vector) = q.semantic?;
        let embedder = embedder?;
        let index = part.vectors.get(ctx)?;
        let mut found = Vec::with_capacity(CANDIDATES);
        index.search(vector, q.threshold, CANDIDATES, &mut found);
        found.into_iter().find_map(|(id, score)| {
            let e = live(&id)?;
            let theirs = e.prompt.as_ref()?;
            (prompt.conflict(theirs).is_none() && embedder.agree(prompt, theirs)).then(|| Hit {
                answer: Arc::clone(&e.answer),
                matched: CacheMatch::Semantic,
                similarity: score,
                source: e.source,
            })
        })
    }

    /// Answers served at `now_ms`, by tenant and model, and a digest of which (the same fold
    /// gives the same digest: `switchyard replay cache` and `GET /admin/cache` can be compared).
    pub fn summary(&self, now_ms: u64) -> Summary {
        let live = |p: &Partition| {
            p.entries
                .values()
                .filter(|e| e.expires_at_ms > now_ms)
                .count()
        };
        let mut partitions: Vec<PartitionSummary> = self
            .partitions
            .iter()
            .map(|((tenant, model), p)| PartitionSummary {
                tenant: tenant.clone(),
                model: model.clone(),
                entries: live(p),
            })
            .filter(|p| p.entries > 0)
            .collect();
        partitions.sort_by(|a, b| (&a.tenant, &a.model).cmp(&(&b.tenant, &b.model)));
        let mut sources: Vec<(&String, &String, Ulid)> = self
            .partitions
            .iter()
            .flat_map(|((t, m), p)| {
                p.entries
                    .values()
                    .filter(|e| e.expires_at_ms > now_ms)
                    .map(move |e| (t, m, e.source))
            })
            .collect();
        sources.sort();
        let mut h = Sha256::new();
        for (t, m, s) in sources {
            h.update(t.as_bytes());
            h.update([0]);
            h.update(m.as_bytes());
            h.update([0]);
            h.update(s.to_bytes());
        }
        Summary {
            applied: self.applied,
            entries: partitions.iter().map(|p| p.entries).sum(),
            digest: hex::encode(h.finalize()),
            partitions,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PartitionSummary {
    pub tenant: String,
    pub model: String,
    pub entries: usize,
}

/// What `/admin/cache` and `switchyard replay cache` print.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Summary {
    /// The last stream sequence folded in.
    pub applied: u64,
    pub entries: usize,
    /// SHA-256 over every held answer's tenant, model and source request, sorted.
    pub digest: String,
    pub partitions: Vec<PartitionSummary>,
}
