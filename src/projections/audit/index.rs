//! The audit index: tantivy documents of [`AuditRecord`]s, and the searches the admin API runs.
//!
//! Schema: prompt, response, error message and an admin change's detail are tokenised text
//! (full-text search); ids and labels (request id, outcome, surface, key, user, team, project,
//! models, provider, rule, error code, admin action, guardrail detectors) are exact-match strings, fast where the API facets or filters on them; time,
//! status, latency, tokens and cost are fast numbers for range filters and sorting. The whole
//! record is stored as JSON, so one document answers `GET /admin/audit/{id}`.
//!
//! Ordering and cursors use `order`, one fast number per record: its arrival time in ms times
//! 10^6 plus its closing sequence modulo 10^6, unique in practice (a million events would have to
//! close within one millisecond for two records to collide) and stable across rebuilds.

use serde::Serialize;
use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::Path;
use tantivy::aggregation::AggregationCollector;
use tantivy::aggregation::agg_req::Aggregations;
use tantivy::collector::{Count, TopDocs};
use tantivy::query::{AllQuery, BooleanQuery, Occur, Query, QueryParser, RangeQuery, TermQuery};
use tantivy::schema::{
    FAST, Field, INDEXED, IndexRecordOption, NumericOptions, STORED, STRING, Schema, TEXT, Value,
};
use tantivy::{Index, IndexReader, IndexWriter, Order, ReloadPolicy, TantivyDocument, Term};

use super::record::AuditRecord;

/// Memory the index writer may buffer before it writes a segment.
const WRITER_MEMORY: usize = 64 * 1024 * 1024;
/// The most records one search returns.
pub const MAX_LIMIT: usize = 1000;
/// Facet buckets returned per facet.
const FACET_SIZE: u32 = 20;

/// The exact-match fields a search can filter on, by their API name.
pub const FILTERS: [&str; 11] = [
    "key",
    "user",
    "team",
    "project",
    "model",
    "provider",
    "outcome",
    "error",
    "surface",
    "action",
    "guardrail",
];

#[derive(Clone, Copy)]
pub(super) struct Fields {
    request_id: Field,
    order: Field,
    at_ms: Field,
    seq: Field,
    outcome: Field,
    surface: Field,
    key: Field,
    user: Field,
    team: Field,
    project: Field,
    model: Field,
    routed_model: Field,
    served_model: Field,
    provider: Field,
    rule: Field,
    error: Field,
    action: Field,
    guardrail: Field,
    status: Field,
    latency_us: Field,
    input_tokens: Field,
    output_tokens: Field,
    cost_nanos: Field,
    prompt: Field,
    response: Field,
    message: Field,
    record: Field,
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let exact = STRING | FAST;
    let number: NumericOptions = (INDEXED | FAST).into();
    let fields = Fields {
        request_id: b.add_text_field("request_id", STRING),
        order: b.add_u64_field("order", number.clone()),
        at_ms: b.add_u64_field("at_ms", number.clone()),
        seq: b.add_u64_field("seq", number.clone()),
        outcome: b.add_text_field("outcome", exact.clone()),
        surface: b.add_text_field("surface", exact.clone()),
        key: b.add_text_field("key", exact.clone()),
        user: b.add_text_field("user", exact.clone()),
        team: b.add_text_field("team", exact.clone()),
        project: b.add_text_field("project", exact.clone()),
        model: b.add_text_field("model", exact.clone()),
        routed_model: b.add_text_field("routed_model", exact.clone()),
        served_model: b.add_text_field("served_model", exact.clone()),
        provider: b.add_text_field("provider", exact.clone()),
        rule: b.add_text_field("rule", exact.clone()),
        error: b.add_text_field("error", exact.clone()),
        action: b.add_text_field("action", exact.clone()),
        guardrail: b.add_text_field("guardrail", exact),
        status: b.add_u64_field("status", number.clone()),
        latency_us: b.add_u64_field("latency_us", number.clone()),
        input_tokens: b.add_u64_field("input_tokens", number.clone()),
        output_tokens: b.add_u64_field("output_tokens", number.clone()),
        cost_nanos: b.add_u64_field("cost_nanos", number.clone()),
        prompt: b.add_text_field("prompt", TEXT),
        response: b.add_text_field("response", TEXT),
        message: b.add_text_field("message", TEXT),
        record: b.add_bytes_field("record", STORED),
    };
    (b.build(), fields)
}

/// Where a record sorts: see the module docs.
pub fn order_of(r: &AuditRecord) -> u64 {
    r.at_ms
        .saturating_mul(1_000_000)
        .saturating_add(r.seq % 1_000_000)
}

fn surface_name(e: crate::events::Endpoint) -> &'static str {
    match e {
        crate::events::Endpoint::ChatCompletions => "chat_completions",
        crate::events::Endpoint::Embeddings => "embeddings",
        crate::events::Endpoint::Messages => "messages",
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("audit index: {0}")]
    Tantivy(#[from] tantivy::TantivyError),
    #[error("audit index directory: {0}")]
    Dir(#[from] std::io::Error),
    #[error("audit search: {0}")]
    Query(#[from] tantivy::query::QueryParserError),
    #[error("audit index: a stored record does not decode: {0}")]
    Record(#[from] serde_json::Error),
    #[error("{0}")]
    BadRequest(String),
    /// An index has one writer process.
    #[error(
        "{} is open in another process: stop the process that runs the audit projection (`switchyard serve` or `switchyard consume audit`) first",
        .0.display()
    )]
    Locked(std::path::PathBuf),
}

/// The index on disk, a writer and a reader.
pub struct AuditIndex {
    index: Index,
    fields: Fields,
    writer: std::sync::Mutex<IndexWriter<TantivyDocument>>,
    reader: IndexReader,
}

/// A search as the admin API takes it.
#[derive(Debug, Default, Clone)]
pub struct Search {
    /// Full-text query (tantivy's syntax) over prompt, response and error message; `field:value`
    /// reaches any field.
    pub q: Option<String>,
    /// Exact filters by API name (see [`FILTERS`]).
    pub filters: Vec<(&'static str, String)>,
    pub status: Option<u16>,
    pub from_ms: Option<u64>,
    pub to_ms: Option<u64>,
    pub oldest_first: bool,
    pub limit: usize,
    /// Continue after this `order` (from the previous page's `next_cursor`).
    pub cursor: Option<u64>,
}

/// One page of results.
#[derive(Debug, Serialize)]
pub struct Page {
    /// Records matching the search (all pages).
    pub count: usize,
    pub records: Vec<AuditRecord>,
    /// Pass as `cursor` for the next page; absent on the last one.
    pub next_cursor: Option<String>,
    /// Record counts by model, team and status over all matching records (top 20 each).
    pub facets: BTreeMap<&'static str, Vec<(String, u64)>>,
}

impl AuditIndex {
    /// Open the index in `dir`, creating it when missing.
    pub fn open(dir: &Path) -> Result<Self, IndexError> {
        std::fs::create_dir_all(dir)?;
        let (schema, fields) = schema();
        let mmap = tantivy::directory::MmapDirectory::open(dir)
            .map_err(|e| IndexError::Tantivy(e.into()))?;
        let index = Index::open_or_create(mmap, schema)?;
        let writer = index
            .writer_with_num_threads(1, WRITER_MEMORY)
            .map_err(|e| match e {
                tantivy::TantivyError::LockFailure(..) => IndexError::Locked(dir.to_owned()),
                other => other.into(),
            })?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        Ok(Self {
            index,
            fields,
            writer: std::sync::Mutex::new(writer),
            reader,
        })
    }

    fn writer(&self) -> std::sync::MutexGuard<'_, IndexWriter<TantivyDocument>> {
        self.writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The payload of the last commit (the projection's checkpoint and chain).
    pub fn payload(&self) -> Result<Option<String>, IndexError> {
        Ok(self.index.load_metas()?.payload)
    }

    /// Add records (not visible to searches until [`commit`](Self::commit)).
    pub fn add(&self, records: &[AuditRecord]) -> Result<(), IndexError> {
        let w = self.writer();
        for r in records {
            w.add_document(self.document(r)?)?;
        }
        Ok(())
    }

    /// Delete every record (visible at the next commit).
    pub fn delete_all(&self) -> Result<(), IndexError> {
        self.writer().delete_all_documents()?;
        Ok(())
    }

    /// Make everything added durable and searchable, with `payload`.
    pub fn commit(&self, payload: &str) -> Result<(), IndexError> {
        {
            let mut w = self.writer();
            let mut prepared = w.prepare_commit()?;
            prepared.set_payload(payload);
            prepared.commit()?;
        }
        self.reader.reload()?;
        Ok(())
    }

    fn document(&self, r: &AuditRecord) -> Result<TantivyDocument, IndexError> {
        let f = &self.fields;
        let mut d = TantivyDocument::new();
        d.add_text(f.request_id, &r.request_id);
        d.add_u64(f.order, order_of(r));
        d.add_u64(f.at_ms, r.at_ms);
        d.add_u64(f.seq, r.seq);
        d.add_text(f.outcome, r.outcome.as_str());
        if let Some(e) = r.endpoint {
            d.add_text(f.surface, surface_name(e));
        }
        for g in &r.guardrail_findings {
            d.add_text(f.guardrail, &g.detector);
        }
        let labels = [
            (f.key, &r.key_id),
            (f.user, &r.user),
            (f.team, &r.team),
            (f.project, &r.project),
            (f.model, &r.model),
            (f.routed_model, &r.routed_model),
            (f.served_model, &r.served_model),
            (f.provider, &r.provider),
            (f.rule, &r.rule),
            (f.error, &r.error),
            (f.action, &r.action),
        ];
        for (field, value) in labels {
            if let Some(v) = value {
                d.add_text(field, v);
            }
        }
        d.add_u64(f.status, u64::from(r.status));
        let numbers = [
            (f.latency_us, r.latency_us),
            (f.input_tokens, r.input_tokens),
            (f.output_tokens, r.output_tokens),
            (f.cost_nanos, r.cost_nanos),
        ];
        for (field, value) in numbers {
            if let Some(v) = value {
                d.add_u64(field, v);
            }
        }
        for (field, value) in [
            (f.prompt, &r.prompt),
            (f.response, &r.response),
            (f.message, &r.error_message),
            (f.message, &r.detail),
        ] {
            if let Some(v) = value {
                d.add_text(field, v);
            }
        }
        d.add_bytes(f.record, &serde_json::to_vec(r)?);
        Ok(d)
    }

    fn field_of(&self, filter: &str) -> Option<Field> {
        let f = &self.fields;
        Some(match filter {
            "key" => f.key,
            "user" => f.user,
            "team" => f.team,
            "project" => f.project,
            "model" => f.model,
            "provider" => f.provider,
            "outcome" => f.outcome,
            "error" => f.error,
            "surface" => f.surface,
            "action" => f.action,
            "guardrail" => f.guardrail,
            _ => return None,
        })
    }

    fn query(&self, s: &Search) -> Result<Box<dyn Query>, IndexError> {
        let f = &self.fields;
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        if let Some(q) = s.q.as_deref().filter(|q| !q.trim().is_empty()) {
            let mut parser =
                QueryParser::for_index(&self.index, vec![f.prompt, f.response, f.message]);
            parser.set_conjunction_by_default();
            clauses.push((Occur::Must, parser.parse_query(q)?));
        }
        for (name, value) in &s.filters {
            let field = self
                .field_of(name)
                .ok_or_else(|| IndexError::BadRequest(format!("unknown filter `{name}`")))?;
            clauses.push((
                Occur::Must,
                Box::new(TermQuery::new(
                    Term::from_field_text(field, value),
                    IndexRecordOption::Basic,
                )),
            ));
        }
        if let Some(status) = s.status {
            clauses.push((
                Occur::Must,
                Box::new(TermQuery::new(
                    Term::from_field_u64(f.status, u64::from(status)),
                    IndexRecordOption::Basic,
                )),
            ));
        }
        let range = |field, lo: Bound<u64>, hi: Bound<u64>| -> Box<dyn Query> {
            let term = |v| Term::from_field_u64(field, v);
            Box::new(RangeQuery::new(lo.map(term), hi.map(term)))
        };
        if s.from_ms.is_some() || s.to_ms.is_some() {
            clauses.push((
                Occur::Must,
                range(
                    f.at_ms,
                    s.from_ms.map_or(Bound::Unbounded, Bound::Included),
                    s.to_ms.map_or(Bound::Unbounded, Bound::Excluded),
                ),
            ));
        }
        let base: Box<dyn Query> = if clauses.is_empty() {
            Box::new(AllQuery)
        } else {
            Box::new(BooleanQuery::new(clauses))
        };
        Ok(base)
    }

    /// Run `s`: its count and facets over every match, and one page of records.
    pub fn search(&self, s: &Search) -> Result<Page, IndexError> {
        let f = &self.fields;
        let searcher = self.reader.searcher();
        let matching = self.query(s)?;
        let limit = s.limit.clamp(1, MAX_LIMIT);
        // The page: everything matching, past the cursor.
        let page_query: Box<dyn Query> = match s.cursor {
            None => matching.box_clone(),
            Some(c) => {
                let term = |v| Term::from_field_u64(f.order, v);
                let past: Box<dyn Query> = if s.oldest_first {
                    Box::new(RangeQuery::new(Bound::Excluded(term(c)), Bound::Unbounded))
                } else {
                    Box::new(RangeQuery::new(Bound::Unbounded, Bound::Excluded(term(c))))
                };
                Box::new(BooleanQuery::new(vec![
                    (Occur::Must, matching.box_clone()),
                    (Occur::Must, past),
                ]))
            }
        };
        let order = if s.oldest_first {
            Order::Asc
        } else {
            Order::Desc
        };
        let top = TopDocs::with_limit(limit + 1).order_by_fast_field::<u64>("order", order);
        let aggs: Aggregations = serde_json::from_value(serde_json::json!({
            "model": {"terms": {"field": "model", "size": FACET_SIZE}},
            "team": {"terms": {"field": "team", "size": FACET_SIZE}},
            "status": {"terms": {"field": "status", "size": FACET_SIZE}},
        }))?;
        let facets_collector = AggregationCollector::from_aggs(aggs, Default::default());
        let (count, facet_results) = searcher.search(&*matching, &(Count, facets_collector))?;
        let hits = searcher.search(&*page_query, &top)?;
        let mut records = Vec::with_capacity(hits.len().min(limit));
        let mut next_cursor = None;
        for (i, (key, addr)) in hits.into_iter().enumerate() {
            if i == limit {
                break;
            }
            let doc: TantivyDocument = searcher.doc(addr)?;
            if let Some(bytes) = doc.get_first(f.record).and_then(|v| v.as_bytes()) {
                records.push(serde_json::from_slice(bytes)?);
            }
            if i + 1 == limit {
                next_cursor = key.map(|k| k.to_string());
            }
        }
        if records.len() < limit {
            next_cursor = None;
        }
        let facets = facet_buckets(&serde_json::to_value(facet_results)?);
        Ok(Page {
            count,
            records,
            next_cursor,
            facets,
        })
    }

    /// The record of one request.
    pub fn get(&self, request_id: &str) -> Result<Option<AuditRecord>, IndexError> {
        let f = &self.fields;
        let searcher = self.reader.searcher();
        let q = TermQuery::new(
            Term::from_field_text(f.request_id, request_id),
            IndexRecordOption::Basic,
        );
        let hits = searcher.search(&q, &TopDocs::with_limit(1).order_by_score())?;
        let Some((_, addr)) = hits.first() else {
            return Ok(None);
        };
        let doc: TantivyDocument = searcher.doc(*addr)?;
        Ok(match doc.get_first(f.record).and_then(|v| v.as_bytes()) {
            Some(bytes) => Some(serde_json::from_slice(bytes)?),
            None => None,
        })
    }

    /// Every record closed at a sequence in `from..=to`, in sequence order.
    pub fn records_by_seq(&self, from: u64, to: u64) -> Result<Vec<AuditRecord>, IndexError> {
        const PAGE: usize = 10_000;
        let f = &self.fields;
        let searcher = self.reader.searcher();
        // Several records can close at one sequence (requests closed as incomplete): a page
        // that ends inside one is read again from that sequence, de-duplicated by request.
        let mut out: BTreeMap<(u64, String), AuditRecord> = BTreeMap::new();
        let mut lo = Bound::Included(from);
        loop {
            let term = |v| Term::from_field_u64(f.seq, v);
            let q = RangeQuery::new(lo.map(term), Bound::Included(term(to)));
            let top = TopDocs::with_limit(PAGE).order_by_fast_field::<u64>("seq", Order::Asc);
            let hits = searcher.search(&q, &top)?;
            let full = hits.len() == PAGE;
            let (first, last) = (
                hits.first().and_then(|h| h.0),
                hits.last().and_then(|h| h.0),
            );
            for (_, addr) in hits {
                let doc: TantivyDocument = searcher.doc(addr)?;
                if let Some(bytes) = doc.get_first(f.record).and_then(|v| v.as_bytes()) {
                    let r: AuditRecord = serde_json::from_slice(bytes)?;
                    out.insert((r.seq, r.request_id.clone()), r);
                }
            }
            match (full, first, last) {
                (true, Some(a), Some(b)) if a != b => lo = Bound::Included(b),
                (true, _, Some(b)) => lo = Bound::Excluded(b),
                _ => break,
            }
        }
        Ok(out.into_values().collect())
    }

    /// Delete one request's record (visible at the next commit). `switchyard audit verify`
    /// reports the deletion against the stream.
    pub fn delete_request(&self, request_id: &str) {
        let term = Term::from_field_text(self.fields.request_id, request_id);
        self.writer().delete_term(term);
    }

    /// Delete the records of requests that arrived before `cutoff_ms` (visible at the next
    /// commit); how many there were.
    pub fn delete_before(&self, cutoff_ms: u64) -> Result<u64, IndexError> {
        let f = &self.fields;
        let term = |v| Term::from_field_u64(f.at_ms, v);
        let q = RangeQuery::new(Bound::Unbounded, Bound::Excluded(term(cutoff_ms)));
        let n = self.reader.searcher().search(&q, &Count)? as u64;
        if n > 0 {
            self.writer().delete_query(Box::new(q))?;
        }
        Ok(n)
    }

    /// Records in the index.
    pub fn len(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// `{"model": {"buckets": [{"key": …, "doc_count": n}]}, …}` as name → [(key, count)].
fn facet_buckets(v: &serde_json::Value) -> BTreeMap<&'static str, Vec<(String, u64)>> {
    let mut out = BTreeMap::new();
    for name in ["model", "team", "status"] {
        let buckets = v[name]["buckets"].as_array().cloned().unwrap_or_default();
        let list = buckets
            .iter()
            .map(|b| {
                let key = match &b["key"] {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (key, b["doc_count"].as_u64().unwrap_or(0))
            })
            .collect();
        out.insert(name, list);
    }
    out
}
