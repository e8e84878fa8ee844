//! The on-disk outbox: events JetStream has not acknowledged, keyed by event id (time-ordered),
//! kept in a redb file until their ack arrives. Blocking: call from `spawn_blocking`.

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use std::path::Path;
use ulid::Ulid;

/// ulid (as u128) → (subject, encoded envelope)
const OUTBOX: TableDefinition<u128, (&str, &[u8])> = TableDefinition::new("outbox");

#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("outbox: {0}")]
    Store(#[from] redb::Error),
    #[error("outbox directory: {0}")]
    Dir(#[from] std::io::Error),
}

fn err(e: impl Into<redb::Error>) -> OutboxError {
    OutboxError::Store(e.into())
}

/// One stored event.
#[derive(Debug, Clone)]
pub struct Stored {
    pub id: Ulid,
    pub subject: String,
    pub payload: bytes::Bytes,
}

pub struct Outbox {
    db: Database,
}

impl Outbox {
    pub fn open(path: &Path) -> Result<Self, OutboxError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let db = Database::create(path).map_err(err)?;
        let tx = db.begin_write().map_err(err)?;
        tx.open_table(OUTBOX).map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(Self { db })
    }

    /// Store events durably (one fsynced transaction).
    pub fn put(&self, items: &[(Ulid, &str, &[u8])]) -> Result<(), OutboxError> {
        let tx = self.db.begin_write().map_err(err)?;
        {
            let mut t = tx.open_table(OUTBOX).map_err(err)?;
            for (id, subject, payload) in items {
                t.insert(u128::from(*id), (*subject, *payload))
                    .map_err(err)?;
            }
        }
        tx.commit().map_err(err)
    }

    /// The oldest `limit` events.
    pub fn oldest(&self, limit: usize) -> Result<Vec<Stored>, OutboxError> {
        let tx = self.db.begin_read().map_err(err)?;
        let t = tx.open_table(OUTBOX).map_err(err)?;
        let mut out = Vec::new();
        for row in t.iter().map_err(err)?.take(limit) {
            let (k, v) = row.map_err(err)?;
            let (subject, payload) = v.value();
            out.push(Stored {
                id: Ulid::from(k.value()),
                subject: subject.to_owned(),
                payload: bytes::Bytes::copy_from_slice(payload),
            });
        }
        Ok(out)
    }

    /// Forget events JetStream acknowledged.
    pub fn remove(&self, ids: &[Ulid]) -> Result<(), OutboxError> {
        let tx = self.db.begin_write().map_err(err)?;
        {
            let mut t = tx.open_table(OUTBOX).map_err(err)?;
            for id in ids {
                t.remove(u128::from(*id)).map_err(err)?;
            }
        }
        tx.commit().map_err(err)
    }

    pub fn is_empty(&self) -> Result<bool, OutboxError> {
        self.len().map(|n| n == 0)
    }

    pub fn len(&self) -> Result<u64, OutboxError> {
        let tx = self.db.begin_read().map_err(err)?;
        let t = tx.open_table(OUTBOX).map_err(err)?;
        t.len().map_err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn survives_reopen_in_id_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("o.redb");
        let a = Ulid::generate();
        let b = Ulid::from(u128::from(a) + 1);
        {
            let o = Outbox::open(&path).unwrap();
            o.put(&[(b, "s.b", b"bb"), (a, "s.a", b"a")]).unwrap();
        }
        let o = Outbox::open(&path).unwrap();
        assert_eq!(o.len().unwrap(), 2);
        let all = o.oldest(10).unwrap();
        assert_eq!(all[0].id, a);
        assert_eq!(all[0].subject, "s.a");
        assert_eq!(&all[1].payload[..], b"bb");
        o.remove(&[a]).unwrap();
        assert_eq!(o.len().unwrap(), 1);
    }
}
