//! A store on a temporary SQLite file, removed when dropped: the stand-in database for tests
//! of the crates above the store (domain, API) and for this crate's conformance run.

use crate::SqliteStore;
use std::path::PathBuf;
use std::sync::Arc;
use termin_store::{StoreError, StoreResult};

pub struct TemporaryStore {
    pub store: Arc<SqliteStore>,
    /// Keeps the file; dropped last.
    directory: tempfile::TempDir,
}

impl TemporaryStore {
    /// An empty store with two read connections.
    pub async fn open() -> StoreResult<TemporaryStore> {
        let directory = tempfile::tempdir().map_err(|e| StoreError::Unavailable(format!("temporary directory: {e}")))?;
        let store = SqliteStore::open(&directory.path().join("termin.db"), 2).await?;
        Ok(TemporaryStore {
            store: Arc::new(store),
            directory,
        })
    }

    /// The database file, to open it again (e.g. after dropping [`TemporaryStore::store`]).
    pub fn path(&self) -> PathBuf {
        self.directory.path().join("termin.db")
    }
}

#[cfg(test)]
impl termin_store_sql::conformance::Fixture for TemporaryStore {
    async fn open() -> Option<Self> {
        Some(TemporaryStore::open().await.expect("a temporary SQLite store"))
    }

    fn store(&self) -> &dyn termin_store::ResourceStore {
        &*self.store
    }

    async fn close(self) {}
}
