//! SQLite backend: the embedded default store. It owns the connections (the group writer's
//! plain connection for units of work, `group`; a sqlx connection for the other writers and the
//! migrations; a pool of sqlx readers; and the reader pool of plain connections for searches and
//! reads by id, `reader`; plain connections run the shared statements through `plain`), the
//! statement time limit (`limit`), its schema (`migrations/*.sql`) and the temporary store for
//! tests (feature `temporary`); every statement on the shared tables comes from
//! `termin-store-sql`. Must not depend on the domain, HTTP or the other backend.
//!
//! Durability: WAL journal with `synchronous=FULL`, so a transaction is on disk (WAL fsynced)
//! before its commit returns — an acknowledged write survives power loss. Units of work go
//! through the group-commit writer (`group`): serialized on the one writer connection, each in
//! a savepoint of a transaction shared by the units waiting at the time, acknowledged only once
//! that transaction's commit is durable; `BEGIN IMMEDIATE` takes SQLite's write lock up front so
//! that even another process on the same file cannot interleave. The other writers (delivery,
//! e-mail queue, job leases) take turns with the group writer in the process (`WriteTurn`), so
//! there is one writer at a time; every connection has `synchronous=FULL` and the busy timeout.
//! Reads use separate pools and see the last committed state (WAL snapshots).

mod group;
mod limit;
mod migrations;
mod notify;
mod plain;
mod reader;
#[cfg(any(test, feature = "temporary"))]
pub mod temporary;

use async_trait::async_trait;
use group::{GroupWriter, Lent, WriteTurn};
use limit::TimedRead;
use plain::Plain;
use reader::ReaderPool;
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, Sqlite, SqlitePool};
use std::path::Path;
use std::time::Duration;
use termin_fhir::ResourceType;
use termin_store::{
    DomainEvent, HistoryPage, HistoryRequest, RequestContext, ResourceVersion, SearchPage, SearchRequest, StoreError,
    StoreResult, WriteTx,
};
use termin_store_sql::{self as sql, Dialect, Seen, Sqlx, Step, UnitOfWork};

/// Page cache per connection, in KiB. Each connection keeps its own, so five connections at
/// 64 MiB held over 500 MB on a 100,000-slot database (measured with `termin bench`); the
/// operating system's file cache serves the rest of the hot pages to all connections at once.
const CACHE_KIB: u32 = 16 * 1024;

/// The writer's page cache from its first bulk write on (slot generation), as the pragma
/// that sets it: a Schedule's new index rows land on pages all over the index B-trees, which
/// the 16 MiB cache would read from the file again for every Schedule. Only the pages
/// touched are held, at most 256 MiB, by the one writer connection.
const BULK_WRITER_CACHE: &str = "PRAGMA cache_size = -262144";

/// How long a connection waits for SQLite's lock held by another process before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

pub struct SqliteStore {
    /// Searches and reads of current versions: one hand-off to a blocking thread per request.
    plain_readers: ReaderPool,
    /// The other reads (history, holds, events), through sqlx.
    readers: SqlitePool,
    /// The connection of Subscription delivery, the e-mail queue and job leases, which write
    /// between groups in their `turn`.
    writer: SqlitePool,
    /// Units of work, on a plain connection of its own.
    group_writer: GroupWriter,
    /// One writer of this process at a time (see `group`).
    turn: WriteTurn,
    /// How long a search's statements may run (`None`: unlimited).
    query_timeout: Option<Duration>,
}

impl SqliteStore {
    /// Opens (creating if missing) the database file and brings its schema up to date.
    pub async fn open(path: &Path, read_connections: u32) -> StoreResult<Self> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true)
            // Searches probe index pages all over the file; SQLite's default 2 MB page cache
            // per connection is far too small for that.
            .pragma("cache_size", format!("-{}", CACHE_KIB));
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await
            .map_err(|e| StoreError::Unavailable(format!("{}: {e}", path.display())))?;
        {
            let mut conn = writer.acquire().await.map_err(db_error)?;
            migrations::migrate(&mut conn).await?;
        }
        let readers = SqlitePoolOptions::new()
            .max_connections(read_connections.max(1))
            .connect_with(options.read_only(true))
            .await
            .map_err(|e| StoreError::Unavailable(format!("{}: {e}", path.display())))?;
        let plain_readers = ReaderPool::open(path, read_connections)?;
        let turn = WriteTurn::default();
        Ok(SqliteStore {
            plain_readers,
            readers,
            group_writer: GroupWriter::start(path, turn.clone())?,
            writer,
            turn,
            query_timeout: None,
        })
    }

    /// Stops the statements of a search (with its count and includes), of a history page and
    /// of the criteria of a conditional write once they have run for `timeout`.
    pub fn with_query_timeout(self, timeout: Duration) -> Self {
        SqliteStore { query_timeout: Some(timeout), ..self }
    }
}

pub use group::CommitCounts;

impl SqliteStore {
    /// How many groups and units of work have been committed since the store was opened (one
    /// WAL fsync per group).
    pub fn commit_counts(&self) -> CommitCounts {
        self.group_writer.commit_counts()
    }

    /// Units of work waiting for the writer connection (for tests that fill a group).
    pub fn waiting_units(&self) -> usize {
        self.group_writer.waiting()
    }
}

impl SqliteStore {
    /// SQLite's plan for the page query of a search (`EXPLAIN QUERY PLAN`), one line per step,
    /// indented by depth: for checking that searches use the indexes.
    pub async fn explain_search(&self, request: &SearchRequest) -> StoreResult<Vec<String>> {
        let q = sql::SearchSql::<Sqlite>::new(&request.filter).build(
            request.resource_type,
            &sql::Select::Page { sort: &request.sort, after: request.page.as_ref(), limit: request.count + 1 },
        );
        let (sql, values) = q.into_parts();
        let sql = format!("EXPLAIN QUERY PLAN {sql}");
        let arguments = sql::sqlx_arguments::<Sqlite>(values).map_err(db_error)?;
        let rows =
            sqlx::query_with(sqlx::AssertSqlSafe(sql), arguments).fetch_all(&self.readers).await.map_err(db_error)?;
        let mut depth: Vec<(i64, usize)> = Vec::new();
        let mut lines = Vec::new();
        for row in rows {
            let id: i64 = row.try_get("id").map_err(db_error)?;
            let parent: i64 = row.try_get("parent").map_err(db_error)?;
            let detail: String = row.try_get("detail").map_err(db_error)?;
            let level = depth.iter().find(|(node, _)| *node == parent).map_or(0, |(_, level)| level + 1);
            depth.push((id, level));
            lines.push(format!("{}{detail}", "  ".repeat(level)));
        }
        Ok(lines)
    }
}

pub(crate) fn db_error(e: sqlx::Error) -> StoreError {
    Sqlite::store_error(e)
}

impl SqliteStore {
    async fn reader(&self) -> StoreResult<PoolConnection<Sqlite>> {
        self.readers.acquire().await.map_err(db_error)
    }
}

sql::resource_store!(SqliteStore, Sqlite, {
    async fn read_current(
        &self,
        _ctx: &RequestContext,
        resource_type: ResourceType,
        id: &str,
    ) -> StoreResult<Option<ResourceVersion>> {
        let id = id.to_owned();
        self.plain_readers
            .run(None, move |conn| {
                plain::complete(async {
                    Ok(sql::read_current_on::<Sqlite, _>(&mut Plain(conn), resource_type, &id).await?)
                })
            })
            .await
    }

    async fn search(&self, _ctx: &RequestContext, request: &SearchRequest) -> StoreResult<SearchPage> {
        let request = request.clone();
        self.plain_readers
            .run(self.query_timeout, move |conn| {
                // One read transaction: the page, the total and the includes see the same snapshot.
                reader::in_snapshot(conn, |conn| {
                    plain::complete(sql::run_search_on::<Sqlite, _>(&mut Plain(conn), &request))
                })
            })
            .await
    }

    async fn history(&self, _ctx: &RequestContext, request: &HistoryRequest) -> StoreResult<HistoryPage> {
        let mut read = TimedRead::acquire(&self.readers, self.query_timeout).await?;
        let page = sql::history::<Sqlite, _>(&mut Sqlx::<Sqlite>(&mut read), request).await;
        read.finish();
        Ok(page?)
    }

    async fn begin_write(&self, _ctx: &RequestContext) -> StoreResult<Box<dyn WriteTx>> {
        let lent = self.group_writer.begin().await?;
        Ok(Box::new(sql::Steps(SqliteWriteTx { lent, query_timeout: self.query_timeout })))
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.readers).await.map(|_| ()).map_err(db_error)
    }
});

struct SqliteWriteTx {
    lent: Lent,
    query_timeout: Option<Duration>,
}

/// Whether a step's statements may run long — a search, a bulk write, a walk or a purge —
/// and so go to a blocking thread; every other step reads or writes a few rows by key.
fn runs_long(step: &Step) -> bool {
    matches!(
        step,
        Step::FindMatchingIds { .. } | Step::CurrentAfter { .. } | Step::WriteAll(_) | Step::PurgeOlderThan { .. }
    )
}

/// Runs the shared SQL of `step` on the writer connection.
fn execute(conn: &mut rusqlite::Connection, step: &Step) -> StoreResult<Seen> {
    plain::complete(async { Ok(sql::execute::<Sqlite, _>(&mut Plain(conn), step).await?) })
}

/// Units of work are serialized on SQLite (one writer connection, lent to one unit at a time):
/// what a unit reads cannot change before it commits, so each step runs as it comes, unlocked,
/// on the unit's own thread unless it [`runs_long`].
#[async_trait]
impl UnitOfWork for SqliteWriteTx {
    async fn perform(&mut self, step: Step) -> StoreResult<Seen> {
        if !runs_long(&step) {
            return self.lent.run(|conn| execute(conn, &step));
        }
        // Of a unit of work's statements, only a conditional write's search is limited in time.
        let timed = matches!(step, Step::FindMatchingIds { .. }).then(|| self.lent.limit().timed(self.query_timeout));
        let seen = self
            .lent
            .run_blocking(move |conn| {
                if matches!(step, Step::WriteAll(_)) {
                    plain::run(conn, BULK_WRITER_CACHE)?;
                }
                execute(conn, &step)
            })
            .await;
        if let Some(timed) = timed {
            timed.done();
        }
        seen
    }

    async fn append_event(&mut self, event: &DomainEvent) -> StoreResult<()> {
        self.lent.run(|conn| {
            plain::complete(async {
                Ok(sql::append_events::<Sqlite, _>(&mut Plain(conn), std::slice::from_ref(event)).await?)
            })
        })
    }

    async fn commit(self) -> StoreResult<()> {
        self.lent.commit().await
    }
}

#[cfg(test)]
mod tests;
