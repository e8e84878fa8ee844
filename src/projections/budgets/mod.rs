//! The budgets projection: spend totals per key, user, team, project and model per UTC day,
//! from SpendRecorded events, in redb.

mod store;

pub use store::{BudgetsStore, Dimension, SpendRow, SpendTotals, day_of, day_today};

use super::{Applied, Projection, ProjectionError};
use crate::events::SPEND_SUBJECT;

impl Projection for BudgetsStore {
    fn name(&self) -> &'static str {
        "budgets"
    }

    fn consumer(&self) -> String {
        self.consumer_name()
    }

    fn filter_subject(&self) -> &'static str {
        SPEND_SUBJECT
    }

    fn checkpoint(&self) -> Result<u64, ProjectionError> {
        BudgetsStore::checkpoint(self)
    }

    fn apply(&self, batch: &[Applied], durable: bool) -> Result<(), ProjectionError> {
        BudgetsStore::apply(self, batch, durable)
    }

    fn flush(&self) -> Result<(), ProjectionError> {
        BudgetsStore::flush(self)
    }
}
