//! PostgreSQL backend: the production store, shared by any number of stateless `termin` nodes.
//!
//! Everything that must hold across nodes is enforced by the database, never in process memory:
//! - Units of work run at READ COMMITTED and lock what they read (`SELECT … FOR UPDATE`, or
//!   `FOR SHARE` for what they only check), so two writers of one resource take turns and
//!   each sees the other's committed result.
//! - Conditional writes serialize per resource type on a transaction-scoped advisory lock, so
//!   two `If-None-Exist` creates cannot both find nothing and both create.
//! - The `slot_booking` primary key makes two active bookings of one slot impossible; holds and
//!   bookings of a slot are read under the Slot's row lock.
//! - A deadlock (or serialization failure) rolls the unit of work back; it is replayed once
//!   more in a new transaction when that reproduces everything the domain has seen so far
//!   (see [`write`]), and reported as [`StoreError::Conflict`] otherwise.
//! - Outbox events are appended at commit under an advisory lock, so their sequence numbers
//!   follow commit order and a reader polling "after position n" never skips one.
//!
//! Durability is PostgreSQL's: a commit returns once its WAL record is flushed
//! (`synchronous_commit = on`, the default).

mod index;
mod locks;
mod migrations;
mod notify;
mod query;
#[cfg(any(test, feature = "scratch"))]
pub mod scratch;
mod search;
mod write;

use async_trait::async_trait;
use jiff::Timestamp;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{AssertSqlSafe, PgPool, Postgres, Row};
use std::str::FromStr;
use std::time::Duration;
use termin_fhir::ResourceType;
use termin_store::{
    DomainEvent, HistoryEntry, HistoryPage, HistoryRequest, RequestContext, ResourceStore,
    ResourceVersion, SearchPage, SearchRequest, SlotHold, StoreError, StoreResult, WriteTx,
};
use termin_store_sql::parse_change;

/// How long a request waits for a free pooled connection before the store reports itself
/// unavailable (503) rather than letting requests pile up.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);

/// Readiness must answer quickly even when the database is gone and new connections hang.
const PING_TIMEOUT: Duration = Duration::from_secs(3);

pub struct PostgresStore {
    pool: PgPool,
    /// How long a search's statements may run (`None`: as the server's `statement_timeout` says).
    query_timeout: Option<Duration>,
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user:password@host:port/database?...`) with a pool of at
    /// most `pool_size` connections and brings the schema up to date.
    pub async fn open(url: &str, pool_size: u32) -> StoreResult<Self> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Unavailable(format!("invalid PostgreSQL URL: {e}")))?
            .application_name("termin")
            // A search's best plan depends on its values (one schedule's slots, or a week of
            // all slots); the generic plan PostgreSQL switches prepared statements to after
            // five runs was measured 10-100 times slower. Planning each run costs far less.
            .options([("plan_cache_mode", "force_custom_plan")]);
        let pool = PgPoolOptions::new()
            .max_connections(pool_size.max(1))
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(|e| StoreError::Unavailable(format!("cannot connect to PostgreSQL: {e}")))?;
        migrations::migrate(&pool).await?;
        Ok(PostgresStore {
            pool,
            query_timeout: None,
        })
    }

    /// Stops each statement of a search (its page, count and includes), of a history page and
    /// of the criteria of a conditional write once it has run for `timeout`
    /// (`statement_timeout`, set for the transaction).
    pub fn with_query_timeout(self, timeout: Duration) -> Self {
        PostgresStore {
            query_timeout: Some(timeout),
            ..self
        }
    }

    /// Refreshes the planner's statistics, as after a bulk load (autovacuum may be off, or
    /// not have caught up yet).
    pub async fn analyze(&self) -> StoreResult<()> {
        sqlx::query("ANALYZE")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(|e| StoreError::Unavailable(format!("ANALYZE failed: {e}")))
    }

    /// Records the connection pool's state in the `termin_db_pool_*` gauges.
    pub fn record_pool_metrics(&self) {
        let idle = self.pool.num_idle() as f64;
        metrics::gauge!("termin_db_pool_connections", "state" => "idle").set(idle);
        metrics::gauge!("termin_db_pool_connections", "state" => "in_use").set(f64::from(self.pool.size()) - idle);
        metrics::gauge!("termin_db_pool_max_connections").set(f64::from(self.pool.options().get_max_connections()));
    }
}

/// Deadlocks and serialization failures: the transaction was rolled back and may be retried.
fn is_contention(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if matches!(db.code().as_deref(), Some("40P01" | "40001")))
}

pub(crate) fn db_error(e: sqlx::Error) -> StoreError {
    if is_contention(&e) {
        return StoreError::Conflict(e.to_string());
    }
    // query_canceled: the statement_timeout of a search has passed.
    if matches!(&e, sqlx::Error::Database(db) if db.code().as_deref() == Some("57014")) {
        return StoreError::Timeout(e.to_string());
    }
    match &e {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::Tls(_) => {
            StoreError::Unavailable(e.to_string())
        }
        // Connection exceptions, and the server shutting down or starting up.
        sqlx::Error::Database(db)
            if db.code().is_some_and(|code| code.starts_with("08") || matches!(&*code, "57P01" | "57P02" | "57P03")) =>
        {
            StoreError::Unavailable(e.to_string())
        }
        _ => StoreError::Database(e.to_string()),
    }
}

/// `SET LOCAL statement_timeout = <ms>` for the rest of the transaction (PostgreSQL counts in
/// whole milliseconds; 0 would mean no limit).
fn set_statement_timeout(timeout: Duration) -> String {
    format!("SET LOCAL statement_timeout = {}", timeout.as_millis().max(1))
}

/// A read-only transaction on one snapshot whose statements stop after `timeout`.
async fn begin_read(pool: &PgPool, timeout: Option<Duration>) -> StoreResult<Tx> {
    let begin = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";
    let statement = match timeout {
        Some(timeout) => format!("{begin}; {}", set_statement_timeout(timeout)),
        None => begin.to_owned(),
    };
    pool.begin_with(AssertSqlSafe(statement)).await.map_err(db_error)
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn parse_type(name: &str) -> StoreResult<ResourceType> {
    name.parse()
        .map_err(|_| StoreError::Corrupt(format!("unknown resource type {name:?}")))
}

fn parse_instant(column: &str, text: &str) -> StoreResult<Timestamp> {
    text.parse()
        .map_err(|e| StoreError::Corrupt(format!("bad {column} {text:?}: {e}")))
}

fn to_u64(column: &str, value: i64) -> StoreResult<u64> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("negative {column} {value}")))
}

/// Decodes `res_type, res_id, version, last_updated, body` columns.
fn decode_version(row: &PgRow) -> StoreResult<ResourceVersion> {
    let res_type: String = row.try_get("res_type").map_err(db_error)?;
    let last_updated: String = row.try_get("last_updated").map_err(db_error)?;
    Ok(ResourceVersion {
        resource_type: parse_type(&res_type)?,
        id: row.try_get("res_id").map_err(db_error)?,
        version: to_u64("version", row.try_get("version").map_err(db_error)?)?,
        last_updated: parse_instant("last_updated", &last_updated)?,
        body: row.try_get("body").map_err(db_error)?,
    })
}

fn decode_hold(row: &PgRow) -> StoreResult<SlotHold> {
    let held_until: String = row.try_get("held_until").map_err(db_error)?;
    let placed_at: String = row.try_get("placed_at").map_err(db_error)?;
    Ok(SlotHold {
        slot_id: row.try_get("slot_id").map_err(db_error)?,
        holder: row.try_get("holder").map_err(db_error)?,
        token: row.try_get("token").map_err(db_error)?,
        held_until: parse_instant("held_until", &held_until)?,
        placed_at: parse_instant("placed_at", &placed_at)?,
    })
}

fn decode_event(row: &PgRow) -> StoreResult<(u64, DomainEvent)> {
    let res_type: String = row.try_get("res_type").map_err(db_error)?;
    let occurred_at: String = row.try_get("occurred_at").map_err(db_error)?;
    Ok((
        to_u64("seq", row.try_get("seq").map_err(db_error)?)?,
        DomainEvent {
            kind: row.try_get("kind").map_err(db_error)?,
            resource_type: parse_type(&res_type)?,
            resource_id: row.try_get("res_id").map_err(db_error)?,
            version: to_u64("version", row.try_get("version").map_err(db_error)?)?,
            occurred_at: parse_instant("occurred_at", &occurred_at)?,
            detail: row.try_get("detail").map_err(db_error)?,
        },
    ))
}

/// The current version of one resource: `$1` type, `$2` id (a macro, so that units of work can
/// append their lock clause at compile time).
macro_rules! select_current {
    () => {
        "SELECT res_type, res_id, version, last_updated, body FROM resource WHERE res_type = $1 AND res_id = $2"
    };
}
pub(crate) use select_current;

const SELECT_HOLD: &str = "SELECT slot_id, holder, token, held_until, placed_at FROM slot_hold WHERE slot_id = $1";

#[async_trait]
impl ResourceStore for PostgresStore {
    async fn read_current(
        &self,
        _ctx: &RequestContext,
        resource_type: ResourceType,
        id: &str,
    ) -> StoreResult<Option<ResourceVersion>> {
        let row = sqlx::query(select_current!())
            .bind(resource_type.as_str())
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?;
        row.as_ref().map(decode_version).transpose()
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
             WHERE res_type = $1 AND res_id = $2 AND version = $3",
        )
        .bind(resource_type.as_str())
        .bind(id)
        .bind(to_i64(version))
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        row.as_ref().map(decode_version).transpose()
    }

    async fn search(&self, _ctx: &RequestContext, request: &SearchRequest) -> StoreResult<SearchPage> {
        // One snapshot for the page, the total and the includes.
        let mut tx = begin_read(&self.pool, self.query_timeout).await?;
        let page = search::run(&mut tx, request).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(page)
    }

    async fn search_index_fingerprint(&self) -> StoreResult<Option<String>> {
        sqlx::query_scalar("SELECT fingerprint FROM search_index_state")
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)
    }

    async fn history(&self, _ctx: &RequestContext, request: &HistoryRequest) -> StoreResult<HistoryPage> {
        // One snapshot for the page and the total.
        let mut tx = begin_read(&self.pool, self.query_timeout).await?;
        let mut page_query = query::select_history::<Postgres>(request);
        if let Some(before) = request.before {
            page_query.push(" AND seq < ").push_bind(to_i64(before));
        }
        page_query
            .push(" ORDER BY seq DESC LIMIT ")
            .push_bind(i64::try_from(request.count + 1).unwrap_or(i64::MAX));
        let rows = page_query.build().fetch_all(&mut *tx).await.map_err(db_error)?;
        let mut entries = Vec::with_capacity(rows.len());
        let mut positions = Vec::with_capacity(rows.len());
        for row in &rows {
            let change: String = row.try_get("change").map_err(db_error)?;
            entries.push(HistoryEntry {
                version: decode_version(row)?,
                change: parse_change(&change)?,
            });
            positions.push(to_u64("seq", row.try_get("seq").map_err(db_error)?)?);
        }
        let next_before = if entries.len() > request.count {
            entries.truncate(request.count);
            positions.get(request.count - 1).copied()
        } else {
            None
        };
        let total: i64 = query::count_history::<Postgres>(request)
            .build_query_scalar()
            .fetch_one(&mut *tx)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(HistoryPage {
            entries,
            total: u64::try_from(total).unwrap_or(0),
            next_before,
        })
    }

    async fn begin_write(&self, _ctx: &RequestContext) -> StoreResult<Box<dyn WriteTx>> {
        Ok(Box::new(write::PostgresWriteTx::begin(self.pool.clone(), self.query_timeout).await?))
    }

    async fn ping(&self) -> StoreResult<()> {
        let answer = tokio::time::timeout(PING_TIMEOUT, sqlx::query("SELECT 1").execute(&self.pool)).await;
        match answer {
            // Whatever keeps the database from answering makes the node unready.
            Ok(result) => result.map(|_| ()).map_err(|e| StoreError::Unavailable(e.to_string())),
            Err(_) => Err(StoreError::Unavailable(format!(
                "PostgreSQL did not answer within {PING_TIMEOUT:?}"
            ))),
        }
    }

    async fn holds(&self, _ctx: &RequestContext, slot_ids: &[String]) -> StoreResult<Vec<SlotHold>> {
        if slot_ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows = sqlx::query("SELECT slot_id, holder, token, held_until, placed_at FROM slot_hold WHERE slot_id = ANY($1)")
            .bind(slot_ids)
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;
        rows.iter().map(decode_hold).collect()
    }

    /// Candidates only: every node's sweeper may list the same holds, and each release
    /// re-checks the hold under the Slot's row lock in its own unit of work, so a hold is
    /// released once however many nodes sweep.
    async fn expired_holds(&self, now: Timestamp, limit: usize) -> StoreResult<Vec<SlotHold>> {
        let rows = sqlx::query(
            "SELECT slot_id, holder, token, held_until, placed_at FROM slot_hold WHERE held_until <= $1 \
             ORDER BY held_until LIMIT $2",
        )
        .bind(termin_fhir::instant::format_instant(now))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        rows.iter().map(decode_hold).collect()
    }

    async fn events(&self, after: u64, limit: usize) -> StoreResult<Vec<(u64, DomainEvent)>> {
        let rows = sqlx::query(
            "SELECT seq, kind, res_type, res_id, version, occurred_at, detail FROM outbox \
             WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(to_i64(after))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        rows.iter().map(decode_event).collect()
    }
}

/// The `Postgres` executor type every module binds its queries to.
type Tx = sqlx::Transaction<'static, Postgres>;

#[cfg(test)]
mod tests;
