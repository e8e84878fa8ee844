//! redb tables of the budgets projection, and the queries the admin API and budget alerts ask.

use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

use crate::events::{Event, Period, Scope, ScopeKind, SpendRecorded};
use crate::governance::budgets::Window;
use crate::projections::{Applied, ProjectionError};

/// (day as yyyymmdd, dimension, name)
type SpendKey<'a> = (u32, u8, &'a str);
/// (requests, input, output, cached input, cost nanos)
type SpendValue = (u64, u64, u64, u64, u64);
const SPEND: TableDefinition<SpendKey, SpendValue> = TableDefinition::new("spend");
/// (dimension, name, period, window code) → (requests, cost nanos): spend per weekly, monthly
/// and lifetime budget window of every key, user, team and project, so a budget's spend is one
/// lookup (a day's is read from `spend`).
type WindowKey<'a> = (u8, &'a str, u8, u32);
const WINDOWS: TableDefinition<WindowKey, (u64, u64)> = TableDefinition::new("windows");
/// "checkpoint" → last applied stream sequence; "store_id" → this store's random id (names its
/// consumer); "windows" → 1 once `windows` holds every applied event (stores made before it
/// existed are brought up to date from `spend` when opened).
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const CHECKPOINT: &str = "checkpoint";
const STORE_ID: &str = "store_id";
const WINDOWS_BUILT: &str = "windows";
/// The periods kept in `windows`.
const WINDOW_PERIODS: [Period; 3] = [Period::Weekly, Period::Monthly, Period::Lifetime];

fn store_err(e: impl Into<redb::Error>) -> ProjectionError {
    ProjectionError::Store(e.into())
}

/// What spend can be grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dimension {
    Key,
    User,
    Team,
    Project,
    Model,
}

impl Dimension {
    pub const ALL: [Dimension; 5] = [
        Dimension::Key,
        Dimension::User,
        Dimension::Team,
        Dimension::Project,
        Dimension::Model,
    ];

    fn code(self) -> u8 {
        self as u8
    }

    /// The dimension spend of a scope is grouped by.
    pub fn of(kind: ScopeKind) -> Self {
        match kind {
            ScopeKind::Key => Dimension::Key,
            ScopeKind::User => Dimension::User,
            ScopeKind::Team => Dimension::Team,
            ScopeKind::Project => Dimension::Project,
            ScopeKind::Model => Dimension::Model,
        }
    }

    /// Whether budgets can be set on this dimension (and `windows` keeps its spend).
    fn has_budgets(self) -> bool {
        self != Dimension::Model
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Dimension::Key => "key",
            Dimension::User => "user",
            Dimension::Team => "team",
            Dimension::Project => "project",
            Dimension::Model => "model",
        }
    }

    /// The label of a spend event along this dimension ("" when the key has no such label).
    fn label(self, s: &SpendRecorded) -> &str {
        let p = &s.principal;
        match self {
            Dimension::Key => &p.key_id,
            Dimension::User => p.user.as_deref().unwrap_or(""),
            Dimension::Team => p.team.as_deref().unwrap_or(""),
            Dimension::Project => p.project.as_deref().unwrap_or(""),
            Dimension::Model => &s.model,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SpendTotals {
    pub requests: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_input_tokens: u64,
    pub cost_nanos: u64,
}

impl SpendTotals {
    fn add(&mut self, o: &SpendTotals) {
        self.requests += o.requests;
        self.input_tokens += o.input_tokens;
        self.output_tokens += o.output_tokens;
        self.cached_input_tokens += o.cached_input_tokens;
        self.cost_nanos += o.cost_nanos;
    }
    fn tuple(&self) -> (u64, u64, u64, u64, u64) {
        (
            self.requests,
            self.input_tokens,
            self.output_tokens,
            self.cached_input_tokens,
            self.cost_nanos,
        )
    }
    fn from_tuple(t: (u64, u64, u64, u64, u64)) -> Self {
        Self {
            requests: t.0,
            input_tokens: t.1,
            output_tokens: t.2,
            cached_input_tokens: t.3,
            cost_nanos: t.4,
        }
    }
}

/// One group in a spend report. `name` is `None` for requests whose key has no such label.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SpendRow {
    pub name: Option<String>,
    #[serde(flatten)]
    pub totals: SpendTotals,
}

pub struct BudgetsStore {
    db: Database,
    /// Random, made when the file is created: names this store's durable consumer, so that
    /// several gateways on one NATS (each with its own store) each get every event.
    id: u64,
}

fn period_code(p: Period) -> u8 {
    p as u8
}

/// Add one event's (requests, cost) to the weekly, monthly and lifetime windows of `name` along
/// `dim`, for the day `day` (yyyymmdd).
fn add_to_windows(
    windows: &mut redb::Table<WindowKey, (u64, u64)>,
    dim: Dimension,
    name: &str,
    day: u32,
    requests: u64,
    cost: u64,
) -> Result<(), ProjectionError> {
    if !dim.has_budgets() || name.is_empty() {
        return Ok(());
    }
    let at = Window::from_code(Period::Daily, day).map_or(0, |w| w.starts_ms());
    for period in WINDOW_PERIODS {
        let key = (
            dim.code(),
            name,
            period_code(period),
            Window::at(period, at).code(),
        );
        let (r, c) = windows
            .get(key)
            .map_err(store_err)?
            .map_or((0, 0), |v| v.value());
        windows
            .insert(key, (r + requests, c + cost))
            .map_err(store_err)?;
    }
    Ok(())
}

/// yyyymmdd of a Unix millisecond timestamp, in UTC.
pub fn day_of(at_ms: u64) -> u32 {
    let days = (at_ms / 86_400_000) as i64;
    // invariant: any u64 millisecond count / 86.4M fits the Date range checks below or clamps.
    let date = time::Date::from_julian_day(2_440_588 + days as i32).unwrap_or(time::Date::MIN);
    date.year() as u32 * 10_000 + u32::from(u8::from(date.month())) * 100 + u32::from(date.day())
}

/// Today (UTC) as yyyymmdd.
pub fn day_today() -> u32 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    day_of(now)
}

impl BudgetsStore {
    pub fn open(path: &Path) -> Result<Self, ProjectionError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let db = Database::create(path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => ProjectionError::Locked {
                path: path.to_owned(),
                projection: "budgets",
            },
            other => store_err(other),
        })?;
        let tx = db.begin_write().map_err(store_err)?;
        let id;
        {
            let spend = tx.open_table(SPEND).map_err(store_err)?;
            let mut windows = tx.open_table(WINDOWS).map_err(store_err)?;
            let mut meta = tx.open_table(META).map_err(store_err)?;
            let existing = meta.get(STORE_ID).map_err(store_err)?.map(|v| v.value());
            id = match existing {
                Some(id) => id,
                None => {
                    let id = rand::random::<u64>();
                    meta.insert(STORE_ID, id).map_err(store_err)?;
                    id
                }
            };
            if meta.get(WINDOWS_BUILT).map_err(store_err)?.is_none() {
                // A store from before `windows`: derive them from the daily rows, once.
                for row in spend.iter().map_err(store_err)? {
                    let (k, v) = row.map_err(store_err)?;
                    let (day, dim, name) = k.value();
                    let totals = SpendTotals::from_tuple(v.value());
                    if let Some(dim) = Dimension::ALL.into_iter().find(|d| d.code() == dim) {
                        add_to_windows(
                            &mut windows,
                            dim,
                            name,
                            day,
                            totals.requests,
                            totals.cost_nanos,
                        )?;
                    }
                }
                meta.insert(WINDOWS_BUILT, 1).map_err(store_err)?;
            }
        }
        tx.commit().map_err(store_err)?;
        Ok(Self { db, id })
    }

    /// The name of this store's durable consumer.
    pub fn consumer_name(&self) -> String {
        format!("budgets-{:016x}", self.id)
    }

    /// Commit nothing, durably: makes every earlier non-durable commit durable.
    pub fn flush(&self) -> Result<(), ProjectionError> {
        self.db
            .begin_write()
            .map_err(store_err)?
            .commit()
            .map_err(store_err)
    }

    /// Drop every row and the checkpoint, so the next run rebuilds from sequence 1. The file is
    /// kept (and stays locked by this process) so a running owner cannot be bypassed.
    pub fn reset(&self) -> Result<(), ProjectionError> {
        let tx = self.db.begin_write().map_err(store_err)?;
        tx.delete_table(SPEND).map_err(store_err)?;
        tx.delete_table(WINDOWS).map_err(store_err)?;
        tx.delete_table(META).map_err(store_err)?;
        tx.open_table(SPEND).map_err(store_err)?;
        tx.open_table(WINDOWS).map_err(store_err)?;
        {
            let mut meta = tx.open_table(META).map_err(store_err)?;
            meta.insert(STORE_ID, self.id).map_err(store_err)?;
            meta.insert(WINDOWS_BUILT, 1).map_err(store_err)?;
        }
        tx.commit().map_err(store_err)
    }

    pub fn checkpoint(&self) -> Result<u64, ProjectionError> {
        let tx = self.db.begin_read().map_err(store_err)?;
        let meta = tx.open_table(META).map_err(store_err)?;
        Ok(meta
            .get(CHECKPOINT)
            .map_err(store_err)?
            .map_or(0, |v| v.value()))
    }

    /// Apply a batch; sequences at or below the checkpoint were applied before and are skipped.
    pub fn apply(&self, batch: &[Applied], durable: bool) -> Result<(), ProjectionError> {
        let mut tx = self.db.begin_write().map_err(store_err)?;
        if !durable {
            tx.set_durability(Durability::None).map_err(store_err)?;
        }
        {
            let mut meta = tx.open_table(META).map_err(store_err)?;
            let mut spend = tx.open_table(SPEND).map_err(store_err)?;
            let mut windows = tx.open_table(WINDOWS).map_err(store_err)?;
            let mut checkpoint = meta
                .get(CHECKPOINT)
                .map_err(store_err)?
                .map_or(0, |v| v.value());
            for a in batch {
                if a.seq <= checkpoint {
                    continue;
                }
                checkpoint = a.seq;
                let Some(env) = &a.envelope else { continue };
                let Event::SpendRecorded(s) = &env.event else {
                    continue;
                };
                let day = day_of(env.at_ms);
                let delta = SpendTotals {
                    requests: 1,
                    input_tokens: s.usage.input_tokens,
                    output_tokens: s.usage.output_tokens,
                    cached_input_tokens: s.usage.cached_input_tokens,
                    cost_nanos: s.cost_nanos,
                };
                for dim in Dimension::ALL {
                    let key = (day, dim.code(), dim.label(s));
                    let mut totals = spend
                        .get(key)
                        .map_err(store_err)?
                        .map_or_else(SpendTotals::default, |v| SpendTotals::from_tuple(v.value()));
                    totals.add(&delta);
                    spend.insert(key, totals.tuple()).map_err(store_err)?;
                    add_to_windows(&mut windows, dim, dim.label(s), day, 1, s.cost_nanos)?;
                }
            }
            meta.insert(CHECKPOINT, checkpoint).map_err(store_err)?;
        }
        tx.commit().map_err(store_err)
    }

    /// The spend recorded in each budget window of `items` (nano-units), in one read.
    pub fn window_spend(&self, items: &[(Scope, Window)]) -> Result<Vec<u64>, ProjectionError> {
        let tx = self.db.begin_read().map_err(store_err)?;
        let spend = tx.open_table(SPEND).map_err(store_err)?;
        let windows = tx.open_table(WINDOWS).map_err(store_err)?;
        items
            .iter()
            .map(|(scope, w)| {
                let dim = Dimension::of(scope.kind).code();
                let name = scope.name.as_str();
                Ok(match w.period {
                    Period::Daily => spend
                        .get((w.code(), dim, name))
                        .map_err(store_err)?
                        .map_or(0, |v| v.value().4),
                    p => windows
                        .get((dim, name, period_code(p), w.code()))
                        .map_err(store_err)?
                        .map_or(0, |v| v.value().1),
                })
            })
            .collect()
    }

    /// Totals per group over the days `from..=to` (yyyymmdd), sorted by name.
    pub fn spend(
        &self,
        by: Dimension,
        from: u32,
        to: u32,
    ) -> Result<Vec<SpendRow>, ProjectionError> {
        let tx = self.db.begin_read().map_err(store_err)?;
        let spend = tx.open_table(SPEND).map_err(store_err)?;
        let mut groups: BTreeMap<String, SpendTotals> = BTreeMap::new();
        for row in spend
            .range((from, 0u8, "")..=(to, u8::MAX, ""))
            .map_err(store_err)?
        {
            let (k, v) = row.map_err(store_err)?;
            let (_, dim, name) = k.value();
            if dim != by.code() {
                continue;
            }
            groups
                .entry(name.to_owned())
                .or_default()
                .add(&SpendTotals::from_tuple(v.value()));
        }
        Ok(groups
            .into_iter()
            .map(|(name, totals)| SpendRow {
                name: (!name.is_empty()).then_some(name),
                totals,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::*;
    use ulid::Ulid;

    fn spend(key: &str, team: Option<&str>, cost: u64) -> Envelope {
        let mut env = Envelope::new(
            Ulid::generate(),
            Event::SpendRecorded(SpendRecorded {
                principal: Principal {
                    key_id: key.into(),
                    user: None,
                    team: team.map(Into::into),
                    project: None,
                },
                model: "m".into(),
                provider: "p".into(),
                provider_model: "pm".into(),
                usage: Usage {
                    input_tokens: 10,
                    output_tokens: 2,
                    ..Usage::default()
                },
                cost_nanos: cost,
                currency: "USD".into(),
                priced: true,
            }),
        );
        env.at_ms = 1_764_028_800_000; // 2025-11-25T00:00:00Z
        env
    }

    #[test]
    fn day_boundaries() {
        assert_eq!(day_of(0), 19_700_101);
        assert_eq!(day_of(1_764_028_800_000), 20_251_125);
        assert_eq!(day_of(1_764_028_800_000 - 1), 20_251_124);
    }

    #[test]
    fn redelivered_batches_apply_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = BudgetsStore::open(&dir.path().join("b.redb")).unwrap();
        let batch = vec![
            Applied {
                seq: 3,
                envelope: Some(spend("k1", Some("t"), 100)),
            },
            Applied {
                seq: 5,
                envelope: Some(spend("k2", None, 50)),
            },
            Applied {
                seq: 6,
                envelope: None,
            },
        ];
        store.apply(&batch, false).unwrap();
        store.apply(&batch, true).unwrap();
        assert_eq!(store.checkpoint().unwrap(), 6);
        let by_team = store
            .spend(Dimension::Team, 20_251_125, 20_251_125)
            .unwrap();
        assert_eq!(by_team.len(), 2);
        assert_eq!(by_team[0].name, None);
        assert_eq!(by_team[0].totals.cost_nanos, 50);
        assert_eq!(by_team[1].name.as_deref(), Some("t"));
        assert_eq!(by_team[1].totals.requests, 1);
        let by_model = store
            .spend(Dimension::Model, 20_251_125, 20_251_125)
            .unwrap();
        assert_eq!(by_model[0].totals.cost_nanos, 150);
        assert_eq!(by_model[0].totals.input_tokens, 20);
        assert!(
            store
                .spend(Dimension::Model, 20_251_126, 20_251_130)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn budget_windows_sum_days_weeks_months_and_lifetime() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.redb");
        let store = BudgetsStore::open(&path).unwrap();
        let at = |env: Envelope, ms: u64| Envelope { at_ms: ms, ..env };
        // Tuesday 2025-11-25, Monday 2025-12-01 (next ISO week, next month), 2025-12-02
        let (d1, d2, d3) = (1_764_028_800_000, 1_764_547_200_000, 1_764_633_600_000);
        let batch = vec![
            Applied {
                seq: 1,
                envelope: Some(at(spend("k1", Some("t"), 100), d1)),
            },
            Applied {
                seq: 2,
                envelope: Some(at(spend("k1", Some("t"), 20), d2)),
            },
            Applied {
                seq: 3,
                envelope: Some(at(spend("k1", None, 3), d3)),
            },
        ];
        store.apply(&batch, true).unwrap();
        let key = Scope::new(ScopeKind::Key, "k1");
        let team = Scope::new(ScopeKind::Team, "t");
        let ask = |scope: &Scope, p, ms| (scope.clone(), Window::at(p, ms));
        let got = store
            .window_spend(&[
                ask(&key, Period::Daily, d1),
                ask(&key, Period::Daily, d3),
                ask(&key, Period::Weekly, d1),
                ask(&key, Period::Weekly, d3),
                ask(&key, Period::Monthly, d1),
                ask(&key, Period::Monthly, d2),
                ask(&key, Period::Lifetime, d1),
                ask(&team, Period::Monthly, d3),
                ask(&team, Period::Lifetime, 0),
                ask(&Scope::new(ScopeKind::User, "nobody"), Period::Lifetime, 0),
            ])
            .unwrap();
        assert_eq!(got, vec![100, 3, 100, 23, 100, 23, 123, 20, 120, 0]);
        // a replay (reset, then the same events) gives the same windows; the store keeps its id
        let consumer = store.consumer_name();
        store.reset().unwrap();
        assert_eq!(
            store
                .window_spend(&[ask(&key, Period::Lifetime, 0)])
                .unwrap(),
            vec![0]
        );
        store.apply(&batch, true).unwrap();
        assert_eq!(
            store
                .window_spend(&[ask(&key, Period::Lifetime, 0)])
                .unwrap(),
            vec![123]
        );
        assert_eq!(store.consumer_name(), consumer);
        drop(store);

        // a store written before the windows table existed is brought up to date when opened
        {
            let db = Database::create(&path).unwrap();
            let tx = db.begin_write().unwrap();
            tx.delete_table(WINDOWS).unwrap();
            tx.open_table(META).unwrap().remove(WINDOWS_BUILT).unwrap();
            tx.commit().unwrap();
        }
        let store = BudgetsStore::open(&path).unwrap();
        assert_eq!(store.consumer_name(), consumer);
        assert_eq!(
            store
                .window_spend(&[
                    ask(&key, Period::Weekly, d3),
                    ask(&team, Period::Lifetime, 0)
                ])
                .unwrap(),
            vec![23, 120]
        );
        // and two stores have two consumers
        let other = BudgetsStore::open(&dir.path().join("c.redb")).unwrap();
        assert_ne!(other.consumer_name(), consumer);
    }
}
