//! SQLite backend: the embedded default store.
//!
//! Durability: WAL journal with `synchronous=FULL`, so a transaction is on disk (WAL fsynced)
//! before the commit returns — an acknowledged write survives power loss. Writes go through a
//! single-connection pool, which serializes units of work in the process; `BEGIN IMMEDIATE`
//! takes SQLite's write lock up front so that even another process on the same file cannot
//! interleave. Reads use a separate pool and see the last committed state (WAL snapshots).

mod index;
mod limit;
mod migrations;
mod notify;
mod query;
mod search;

use async_trait::async_trait;
use jiff::Timestamp;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous};
use limit::{Limit, TimedRead};
use sqlx::{Connection, Row, Sqlite, SqliteConnection, SqlitePool, Transaction};
use std::path::Path;
use std::time::Duration;
use termin_fhir::ResourceType;
use termin_store::{
    DomainEvent, Filter, HistoryEntry, HistoryPage, HistoryRequest, IndexEntries, NewVersion,
    RequestContext, ResourceStore, ResourceVersion, SearchPage, SearchRequest, SlotHold, StoreError, StoreResult,
    WriteTx,
};
use termin_store_sql::{change_name, parse_change};

/// Page cache per connection, in KiB. Each connection keeps its own, so five connections at
/// 64 MiB held over 500 MB on a 100,000-slot database (measured with `termin bench`); the
/// operating system's file cache serves the rest of the hot pages to all connections at once.
const CACHE_KIB: u32 = 16 * 1024;

/// How long a connection waits for SQLite's lock held by another process before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

pub struct SqliteStore {
    readers: SqlitePool,
    writer: SqlitePool,
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
        Ok(SqliteStore {
            readers,
            writer,
            query_timeout: None,
        })
    }

    /// Stops the statements of a search (with its count and includes), of a history page and
    /// of the criteria of a conditional write once they have run for `timeout`.
    pub fn with_query_timeout(self, timeout: Duration) -> Self {
        SqliteStore {
            query_timeout: Some(timeout),
            ..self
        }
    }
}

impl SqliteStore {
    /// SQLite's plan for the page query of a search (`EXPLAIN QUERY PLAN`), one line per step,
    /// indented by depth: for checking that searches use the indexes.
    pub async fn explain_search(&self, request: &SearchRequest) -> StoreResult<Vec<String>> {
        let mut q = query::SearchSql::new(&request.filter).build(
            request.resource_type,
            &query::Select::Page {
                sort: &request.sort,
                after: request.page.as_ref(),
                limit: request.count + 1,
            },
        );
        let sql = format!("EXPLAIN QUERY PLAN {}", q.sql().as_str());
        let mut page_query = q.build();
        let arguments = sqlx::Execute::take_arguments(&mut page_query).map_err(|e| StoreError::Database(e.to_string()))?;
        let rows = sqlx::query_with(sqlx::AssertSqlSafe(sql), arguments.unwrap_or_default())
            .fetch_all(&self.readers)
            .await
            .map_err(db_error)?;
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
    match e {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
            StoreError::Unavailable(e.to_string())
        }
        // SQLITE_INTERRUPT: only the progress handler of the time limit interrupts statements.
        sqlx::Error::Database(ref db) if db.code().as_deref() == Some("9") => StoreError::Timeout(e.to_string()),
        other => StoreError::Database(other.to_string()),
    }
}

/// Decodes `res_type, res_id, version, last_updated, body` columns.
fn decode_version(row: &SqliteRow) -> StoreResult<ResourceVersion> {
    let res_type: String = row.try_get("res_type").map_err(db_error)?;
    let resource_type = res_type
        .parse::<ResourceType>()
        .map_err(|_| StoreError::Corrupt(format!("unknown resource type {res_type:?}")))?;
    let version: i64 = row.try_get("version").map_err(db_error)?;
    let last_updated: String = row.try_get("last_updated").map_err(db_error)?;
    Ok(ResourceVersion {
        resource_type,
        id: row.try_get("res_id").map_err(db_error)?,
        version: u64::try_from(version)
            .map_err(|_| StoreError::Corrupt(format!("negative version {version}")))?,
        last_updated: last_updated
            .parse::<Timestamp>()
            .map_err(|e| StoreError::Corrupt(format!("bad last_updated {last_updated:?}: {e}")))?,
        body: row.try_get("body").map_err(db_error)?,
    })
}

fn decode_hold(row: &SqliteRow) -> StoreResult<SlotHold> {
    let held_until: String = row.try_get("held_until").map_err(db_error)?;
    let placed_at: String = row.try_get("placed_at").map_err(db_error)?;
    Ok(SlotHold {
        slot_id: row.try_get("slot_id").map_err(db_error)?,
        holder: row.try_get("holder").map_err(db_error)?,
        token: row.try_get("token").map_err(db_error)?,
        held_until: held_until
            .parse()
            .map_err(|e| StoreError::Corrupt(format!("bad held_until {held_until:?}: {e}")))?,
        placed_at: placed_at
            .parse()
            .map_err(|e| StoreError::Corrupt(format!("bad placed_at {placed_at:?}: {e}")))?,
    })
}

fn decode_event(row: &SqliteRow) -> StoreResult<(u64, DomainEvent)> {
    let seq: i64 = row.try_get("seq").map_err(db_error)?;
    let res_type: String = row.try_get("res_type").map_err(db_error)?;
    let version: i64 = row.try_get("version").map_err(db_error)?;
    let occurred_at: String = row.try_get("occurred_at").map_err(db_error)?;
    Ok((
        seq as u64,
        DomainEvent {
            kind: row.try_get("kind").map_err(db_error)?,
            resource_type: res_type
                .parse()
                .map_err(|_| StoreError::Corrupt(format!("unknown resource type {res_type:?}")))?,
            resource_id: row.try_get("res_id").map_err(db_error)?,
            version: version as u64,
            occurred_at: occurred_at
                .parse()
                .map_err(|e| StoreError::Corrupt(format!("bad occurred_at {occurred_at:?}: {e}")))?,
            detail: row.try_get("detail").map_err(db_error)?,
        },
    ))
}

async fn read_current_on<'c, E>(
    executor: E,
    resource_type: ResourceType,
    id: &str,
) -> StoreResult<Option<ResourceVersion>>
where
    E: sqlx::Executor<'c, Database = Sqlite>,
{
    let row = sqlx::query(
        "SELECT res_type, res_id, version, last_updated, body FROM resource WHERE res_type = ? AND res_id = ?",
    )
    .bind(resource_type.as_str())
    .bind(id)
    .fetch_optional(executor)
    .await
    .map_err(db_error)?;
    row.as_ref().map(decode_version).transpose()
}

/// A page of history and the number of all its entries.
async fn history(conn: &mut SqliteConnection, request: &HistoryRequest) -> StoreResult<HistoryPage> {
    let mut page_query = query::select_history::<Sqlite>(request);
    if let Some(before) = request.before {
        page_query
            .push(" AND seq < ")
            .push_bind(i64::try_from(before).unwrap_or(i64::MAX));
    }
    page_query
        .push(" ORDER BY seq DESC LIMIT ")
        .push_bind(i64::try_from(request.count + 1).unwrap_or(i64::MAX));
    let rows = page_query.build().fetch_all(&mut *conn).await.map_err(db_error)?;
    let mut entries = Vec::with_capacity(rows.len());
    let mut positions = Vec::with_capacity(rows.len());
    for row in &rows {
        let change: String = row.try_get("change").map_err(db_error)?;
        let seq: i64 = row.try_get("seq").map_err(db_error)?;
        entries.push(HistoryEntry {
            version: decode_version(row)?,
            change: parse_change(&change)?,
        });
        positions.push(seq);
    }
    let next_before = if entries.len() > request.count {
        entries.truncate(request.count);
        positions.get(request.count - 1).map(|s| *s as u64)
    } else {
        None
    };
    let total: i64 = query::count_history::<Sqlite>(request)
        .build_query_scalar()
        .fetch_one(&mut *conn)
        .await
        .map_err(db_error)?;
    Ok(HistoryPage {
        entries,
        total: u64::try_from(total).unwrap_or(0),
        next_before,
    })
}

#[async_trait]
impl ResourceStore for SqliteStore {
    async fn read_current(
        &self,
        _ctx: &RequestContext,
        resource_type: ResourceType,
        id: &str,
    ) -> StoreResult<Option<ResourceVersion>> {
        read_current_on(&self.readers, resource_type, id).await
    }

    async fn read_version(
        &self,
        _ctx: &RequestContext,
        resource_type: ResourceType,
        id: &str,
        version: u64,
    ) -> StoreResult<Option<ResourceVersion>> {
        let row = sqlx::query(
            "SELECT res_type, res_id, version, last_updated, body FROM resource_history \
             WHERE res_type = ? AND res_id = ? AND version = ?",
        )
        .bind(resource_type.as_str())
        .bind(id)
        .bind(i64::try_from(version).unwrap_or(i64::MAX))
        .fetch_optional(&self.readers)
        .await
        .map_err(db_error)?;
        row.as_ref().map(decode_version).transpose()
    }

    async fn search(&self, _ctx: &RequestContext, request: &SearchRequest) -> StoreResult<SearchPage> {
        let mut read = TimedRead::acquire(&self.readers, self.query_timeout).await?;
        let page = async {
            // One read transaction: the page, the total and the includes see the same snapshot.
            let mut tx = read.begin().await.map_err(db_error)?;
            let page = search::run(&mut tx, request).await?;
            tx.commit().await.map_err(db_error)?;
            Ok(page)
        }
        .await;
        read.finish();
        page
    }

    async fn search_index_fingerprint(&self) -> StoreResult<Option<String>> {
        sqlx::query_scalar("SELECT fingerprint FROM search_index_state")
            .fetch_optional(&self.readers)
            .await
            .map_err(db_error)
    }

    async fn history(&self, _ctx: &RequestContext, request: &HistoryRequest) -> StoreResult<HistoryPage> {
        let mut read = TimedRead::acquire(&self.readers, self.query_timeout).await?;
        let page = history(&mut read, request).await;
        read.finish();
        page
    }

    async fn begin_write(&self, _ctx: &RequestContext) -> StoreResult<Box<dyn WriteTx>> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await.map_err(db_error)?;
        // A handler of this unit's own: an earlier unit's may still say stop.
        let limit = Limit::install(&mut tx).await?;
        Ok(Box::new(SqliteWriteTx {
            tx,
            limit,
            query_timeout: self.query_timeout,
        }))
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.readers)
            .await
            .map(|_| ())
            .map_err(db_error)
    }

    async fn holds(&self, _ctx: &RequestContext, slot_ids: &[String]) -> StoreResult<Vec<SlotHold>> {
        if slot_ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut q = sqlx::QueryBuilder::<Sqlite>::new(
            "SELECT slot_id, holder, token, held_until, placed_at FROM slot_hold WHERE slot_id IN (",
        );
        let mut list = q.separated(", ");
        for id in slot_ids {
            list.push_bind(id.clone());
        }
        q.push(")");
        let rows = q.build().fetch_all(&self.readers).await.map_err(db_error)?;
        rows.iter().map(decode_hold).collect()
    }

    async fn expired_holds(&self, now: Timestamp, limit: usize) -> StoreResult<Vec<SlotHold>> {
        let rows = sqlx::query(
            "SELECT slot_id, holder, token, held_until, placed_at FROM slot_hold WHERE held_until <= ? \
             ORDER BY held_until LIMIT ?",
        )
        .bind(termin_fhir::instant::format_instant(now))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.readers)
        .await
        .map_err(db_error)?;
        rows.iter().map(decode_hold).collect()
    }

    async fn events(&self, after: u64, limit: usize) -> StoreResult<Vec<(u64, DomainEvent)>> {
        let rows = sqlx::query(
            "SELECT seq, kind, res_type, res_id, version, occurred_at, detail FROM outbox \
             WHERE seq > ? ORDER BY seq LIMIT ?",
        )
        .bind(i64::try_from(after).unwrap_or(i64::MAX))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.readers)
        .await
        .map_err(db_error)?;
        rows.iter().map(decode_event).collect()
    }
}

struct SqliteWriteTx {
    tx: Transaction<'static, Sqlite>,
    limit: Limit,
    query_timeout: Option<Duration>,
}

#[async_trait]
impl WriteTx for SqliteWriteTx {
    async fn read_current(
        &mut self,
        resource_type: ResourceType,
        id: &str,
    ) -> StoreResult<Option<ResourceVersion>> {
        read_current_on(&mut *self.tx, resource_type, id).await
    }

    async fn find_matching_ids(
        &mut self,
        resource_type: ResourceType,
        filter: &Filter,
        limit: usize,
    ) -> StoreResult<Vec<String>> {
        let timed = self.limit.timed(self.query_timeout);
        let ids = query::SearchSql::new(filter)
            .build(resource_type, &query::Select::Ids { limit })
            .build_query_scalar()
            .fetch_all(&mut *self.tx)
            .await
            .map_err(db_error);
        timed.done();
        ids
    }

    async fn overlapping(
        &mut self,
        resource_type: ResourceType,
        param: &str,
        period: (Timestamp, Timestamp),
        exclude_id: &str,
        limit: usize,
    ) -> StoreResult<Vec<String>> {
        termin_store_sql::overlapping::<Sqlite>(resource_type.as_str(), param, period, exclude_id, limit)
            .build_query_scalar()
            .fetch_all(&mut *self.tx)
            .await
            .map_err(db_error)
    }

    async fn current_after(
        &mut self,
        after: Option<(ResourceType, String)>,
        limit: usize,
    ) -> StoreResult<Vec<ResourceVersion>> {
        let (after_type, after_id) = after.map_or((String::new(), String::new()), |(t, id)| (t.as_str().to_owned(), id));
        let rows = sqlx::query(
            "SELECT res_type, res_id, version, last_updated, body FROM resource \
             WHERE body IS NOT NULL AND (res_type, res_id) > (?, ?) ORDER BY res_type, res_id LIMIT ?",
        )
        .bind(after_type)
        .bind(after_id)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&mut *self.tx)
        .await
        .map_err(db_error)?;
        rows.iter().map(decode_version).collect()
    }

    async fn replace_index(&mut self, resource_type: ResourceType, id: &str, entries: &IndexEntries) -> StoreResult<()> {
        index::replace(&mut self.tx, resource_type.as_str(), id, entries).await
    }

    async fn set_search_index_fingerprint(&mut self, fingerprint: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM search_index_state")
            .execute(&mut *self.tx)
            .await
            .map_err(db_error)?;
        sqlx::query("INSERT INTO search_index_state (fingerprint) VALUES (?)")
            .bind(fingerprint)
            .execute(&mut *self.tx)
            .await
            .map(|_| ())
            .map_err(db_error)
    }

    async fn write(&mut self, new: NewVersion) -> StoreResult<()> {
        let v = &new.version;
        let res_type = v.resource_type.as_str();
        let version = i64::try_from(v.version)
            .map_err(|_| StoreError::Database(format!("version {} out of range", v.version)))?;
        let last_updated = termin_fhir::instant::format_instant(v.last_updated);
        sqlx::query(
            "INSERT INTO resource (res_type, res_id, version, last_updated, body) VALUES (?, ?, ?, ?, ?) \
             ON CONFLICT (res_type, res_id) DO UPDATE SET \
             version = excluded.version, last_updated = excluded.last_updated, body = excluded.body",
        )
        .bind(res_type)
        .bind(&v.id)
        .bind(version)
        .bind(&last_updated)
        .bind(&v.body)
        .execute(&mut *self.tx)
        .await
        .map_err(db_error)?;
        sqlx::query(
            "INSERT INTO resource_history (res_type, res_id, version, last_updated, change, body) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(res_type)
        .bind(&v.id)
        .bind(version)
        .bind(&last_updated)
        .bind(change_name(new.change))
        .bind(&v.body)
        .execute(&mut *self.tx)
        .await
        .map_err(|e| match &e {
            sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(format!(
                "{res_type}/{} version {} was written concurrently",
                v.id, v.version
            )),
            _ => db_error(e),
        })?;
        index::replace(&mut self.tx, res_type, &v.id, &new.index).await
    }

    async fn hold(&mut self, slot_id: &str) -> StoreResult<Option<SlotHold>> {
        let row = sqlx::query("SELECT slot_id, holder, token, held_until, placed_at FROM slot_hold WHERE slot_id = ?")
            .bind(slot_id)
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(db_error)?;
        row.as_ref().map(decode_hold).transpose()
    }

    async fn put_hold(&mut self, hold: &SlotHold) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO slot_hold (slot_id, holder, token, held_until, placed_at) VALUES (?, ?, ?, ?, ?) \
             ON CONFLICT (slot_id) DO UPDATE SET holder = excluded.holder, token = excluded.token, \
             held_until = excluded.held_until, placed_at = excluded.placed_at",
        )
        .bind(&hold.slot_id)
        .bind(&hold.holder)
        .bind(&hold.token)
        .bind(termin_fhir::instant::format_instant(hold.held_until))
        .bind(termin_fhir::instant::format_instant(hold.placed_at))
        .execute(&mut *self.tx)
        .await
        .map(|_| ())
        .map_err(db_error)
    }

    async fn live_holds_of(&mut self, holder: &str, now: Timestamp) -> StoreResult<Vec<SlotHold>> {
        // Units of work are serialized on SQLite: nothing more is needed for the count to hold.
        let rows = sqlx::query(
            "SELECT slot_id, holder, token, held_until, placed_at FROM slot_hold \
             WHERE holder = ? AND held_until > ? ORDER BY held_until",
        )
        .bind(holder)
        .bind(termin_fhir::instant::format_instant(now))
        .fetch_all(&mut *self.tx)
        .await
        .map_err(db_error)?;
        rows.iter().map(decode_hold).collect()
    }

    async fn delete_hold(&mut self, slot_id: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM slot_hold WHERE slot_id = ?")
            .bind(slot_id)
            .execute(&mut *self.tx)
            .await
            .map(|_| ())
            .map_err(db_error)
    }

    async fn slot_booking(&mut self, slot_id: &str) -> StoreResult<Option<String>> {
        sqlx::query_scalar("SELECT appointment_id FROM slot_booking WHERE slot_id = ?")
            .bind(slot_id)
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(db_error)
    }

    async fn put_slot_booking(
        &mut self,
        slot_id: &str,
        appointment_id: &str,
        cancel_deadline: Option<Timestamp>,
    ) -> StoreResult<()> {
        sqlx::query("INSERT INTO slot_booking (slot_id, appointment_id, cancel_deadline) VALUES (?, ?, ?)")
            .bind(slot_id)
            .bind(appointment_id)
            .bind(cancel_deadline.map(termin_fhir::instant::format_instant))
            .execute(&mut *self.tx)
            .await
            .map(|_| ())
            .map_err(|e| match &e {
                sqlx::Error::Database(db) if db.is_unique_violation() => {
                    StoreError::Conflict(format!("Slot/{slot_id} is already booked"))
                }
                _ => db_error(e),
            })
    }

    async fn booking_cancel_deadline(&mut self, slot_id: &str) -> StoreResult<Option<Timestamp>> {
        let deadline: Option<Option<String>> = sqlx::query_scalar("SELECT cancel_deadline FROM slot_booking WHERE slot_id = ?")
            .bind(slot_id)
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(db_error)?;
        termin_store_sql::parse_instant_column(deadline.flatten())
    }

    async fn delete_slot_booking(&mut self, slot_id: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM slot_booking WHERE slot_id = ?")
            .bind(slot_id)
            .execute(&mut *self.tx)
            .await
            .map(|_| ())
            .map_err(db_error)
    }

    async fn append_event(&mut self, event: &DomainEvent) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO outbox (kind, res_type, res_id, version, occurred_at, detail) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&event.kind)
        .bind(event.resource_type.as_str())
        .bind(&event.resource_id)
        .bind(i64::try_from(event.version).unwrap_or(i64::MAX))
        .bind(termin_fhir::instant::format_instant(event.occurred_at))
        .bind(&event.detail)
        .execute(&mut *self.tx)
        .await
        .map(|_| ())
        .map_err(db_error)
    }

    async fn commit(self: Box<Self>) -> StoreResult<()> {
        self.tx.commit().await.map_err(db_error)
    }
}

#[cfg(test)]
mod tests;
