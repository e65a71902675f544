//! PostgreSQL backend: the production store, shared by any number of stateless `termin` nodes.
//! It owns the pool, the transactions and everything they lock, the replay of units of work
//! (`write`), its schema (`migrations/*.sql`) and scratch databases for tests (feature
//! `scratch`); every statement on the shared tables comes from `termin-store-sql`. Must not
//! depend on the domain, HTTP or the other backend.
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

mod locks;
mod migrations;
mod notify;
#[cfg(any(test, feature = "scratch"))]
pub mod scratch;
mod write;

use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, PgPool, Postgres};
use std::str::FromStr;
use std::time::Duration;
use termin_fhir::ResourceType;
use termin_store::{
    HistoryPage, HistoryRequest, RequestContext, ResourceVersion, SearchPage, SearchRequest, StoreError, StoreResult,
    WriteTx,
};
use termin_store_sql::{self as sql, Dialect, Sqlx};

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
        Ok(PostgresStore { pool, query_timeout: None })
    }

    /// Stops each statement of a search (its page, count and includes), of a history page and
    /// of the criteria of a conditional write once it has run for `timeout`
    /// (`statement_timeout`, set for the transaction).
    pub fn with_query_timeout(self, timeout: Duration) -> Self {
        PostgresStore { query_timeout: Some(timeout), ..self }
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

pub(crate) fn db_error(e: sqlx::Error) -> StoreError {
    Postgres::store_error(e)
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

impl PostgresStore {
    async fn reader(&self) -> StoreResult<PoolConnection<Postgres>> {
        self.pool.acquire().await.map_err(db_error)
    }
}

sql::resource_store!(PostgresStore, Postgres, {
    async fn read_current(
        &self,
        _ctx: &RequestContext,
        resource_type: ResourceType,
        id: &str,
    ) -> StoreResult<Option<ResourceVersion>> {
        Ok(sql::read_current_on::<Postgres, _>(&mut Sqlx::<Postgres>(&mut *self.reader().await?), resource_type, id)
            .await?)
    }

    async fn search(&self, _ctx: &RequestContext, request: &SearchRequest) -> StoreResult<SearchPage> {
        // One snapshot for the page, the total and the includes.
        let mut tx = begin_read(&self.pool, self.query_timeout).await?;
        let page = sql::run_search::<Postgres>(&mut tx, request).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(page)
    }

    async fn history(&self, _ctx: &RequestContext, request: &HistoryRequest) -> StoreResult<HistoryPage> {
        // One snapshot for the page and the total.
        let mut tx = begin_read(&self.pool, self.query_timeout).await?;
        let page = sql::history::<Postgres, _>(&mut Sqlx::<Postgres>(&mut tx), request).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(page)
    }

    async fn begin_write(&self, _ctx: &RequestContext) -> StoreResult<Box<dyn WriteTx>> {
        Ok(Box::new(sql::Steps(write::PostgresWriteTx::begin(self.pool.clone(), self.query_timeout).await?)))
    }

    async fn ping(&self) -> StoreResult<()> {
        let answer = tokio::time::timeout(PING_TIMEOUT, sqlx::query("SELECT 1").execute(&self.pool)).await;
        match answer {
            // Whatever keeps the database from answering makes the node unready.
            Ok(result) => result.map(|_| ()).map_err(|e| StoreError::Unavailable(e.to_string())),
            Err(_) => Err(StoreError::Unavailable(format!("PostgreSQL did not answer within {PING_TIMEOUT:?}"))),
        }
    }
});

/// The `Postgres` executor type every module binds its queries to.
type Tx = sqlx::Transaction<'static, Postgres>;

#[cfg(test)]
mod tests;
