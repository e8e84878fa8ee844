//! redb tables of the budgets projection, and the queries the admin API asks.

use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

use crate::events::{Event, SpendRecorded};
use crate::projections::{Applied, ProjectionError};

/// (day as yyyymmdd, dimension, name)
type SpendKey<'a> = (u32, u8, &'a str);
/// (requests, input, output, cached input, cost nanos)
type SpendValue = (u64, u64, u64, u64, u64);
const SPEND: TableDefinition<SpendKey, SpendValue> = TableDefinition::new("spend");
/// "checkpoint" → last applied stream sequence
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const CHECKPOINT: &str = "checkpoint";

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
        tx.open_table(SPEND).map_err(store_err)?;
        tx.open_table(META).map_err(store_err)?;
        tx.commit().map_err(store_err)?;
        Ok(Self { db })
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
        tx.delete_table(META).map_err(store_err)?;
        tx.open_table(SPEND).map_err(store_err)?;
        tx.open_table(META).map_err(store_err)?;
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
                }
            }
            meta.insert(CHECKPOINT, checkpoint).map_err(store_err)?;
        }
        tx.commit().map_err(store_err)
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
}
