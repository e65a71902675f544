//! The SQL Termin's backends share, written once and generic over the [`Dialect`]: every
//! statement on the shared tables (reads, writes with their history and index rows, holds,
//! bookings, the outbox, job leases ([`lease`]), Subscription delivery ([`notify`]), the e-mail
//! queue ([`mail`])), row decoding, the history pager, searches (conditions, chains, `_has`,
//! sorting, keyset pages, totals, includes), the migration runner with the DDL both dialects
//! spell alike ([`shared_ddl`]), the `ResourceStore` reads by key ([`resource_store!`]), the
//! `NotificationStore`, `MailStore` and `LeaseStore` impls ([`notification_store!`]) and the
//! store conformance kit ([`conformance`]).
//!
//! Statements are built as [`Statement`]s (text and readable bound values); searches and reads
//! by key run on any [`Reader`], a unit of work's steps on any [`Writer`], so a backend may run
//! them on connections that are not sqlx's.
//!
//! Both backends keep the same tables and columns; what differs — placeholders, index hints,
//! join order, row locks, NUL in text, how errors read — is named once in [`Dialect`], with
//! its reason. Connections, transactions and locking stay with the backends, which run these
//! statements on the connection they hand in. Depends on the storage port (`termin-store`) and
//! sqlx; never on a backend crate, the domain or HTTP.

mod audit;
mod builder;
pub mod conformance;
mod index;
pub mod lease;
pub mod mail;
mod migrate;
pub mod notify;
mod query;
mod reader;
mod resource_store;
mod rows;
mod search;
mod statements;
#[cfg(test)]
mod tests;
mod unit;

pub use builder::Statement;
pub use index::replace_index;
pub use migrate::{Migration, migrate, shared as shared_ddl, steps as migration_steps};
pub use query::{SearchSql, Select, micros};
pub use reader::{Reader, Sqlx, Writer};
pub use resource_store::support;
pub use rows::{decode_version, decode_version_from};
pub use search::run as run_search;
pub use search::run_on as run_search_on;
pub use statements::*;
pub use unit::{RowLock, Seen, Step, Steps, UnitOfWork, execute};

use sqlx::{Postgres, Sqlite};
use std::marker::PhantomData;
use termin_store::{ChangeKind, StoreError, StoreResult};

/// How `resource_history.change` stores a [`ChangeKind`].
pub fn change_name(change: ChangeKind) -> &'static str {
    match change {
        ChangeKind::Create => "create",
        ChangeKind::Update => "update",
        ChangeKind::Delete => "delete",
    }
}

pub fn parse_change(name: &str) -> StoreResult<ChangeKind> {
    match name {
        "create" => Ok(ChangeKind::Create),
        "update" => Ok(ChangeKind::Update),
        "delete" => Ok(ChangeKind::Delete),
        other => Err(StoreError::Corrupt(format!("unknown change kind {other:?}"))),
    }
}

/// An optional instant stored as text (`format_instant`), e.g. `slot_booking.cancel_deadline`.
pub fn parse_instant_column(text: Option<String>) -> StoreResult<Option<jiff::Timestamp>> {
    text.map(|t| t.parse().map_err(|e| StoreError::Corrupt(format!("bad instant {t:?}: {e}")))).transpose()
}

/// A value bound to a placeholder (`?` on SQLite, `$n` on PostgreSQL).
pub enum Value {
    Text(String),
    OptionalText(Option<String>),
    Integer(i64),
    OptionalInteger(Option<i64>),
    Real(f64),
}

impl From<Option<String>> for Value {
    fn from(text: Option<String>) -> Self {
        Value::OptionalText(text)
    }
}

impl From<Option<i64>> for Value {
    fn from(integer: Option<i64>) -> Self {
        Value::OptionalInteger(integer)
    }
}

impl From<String> for Value {
    fn from(text: String) -> Self {
        Value::Text(text)
    }
}

impl From<&str> for Value {
    fn from(text: &str) -> Self {
        Value::Text(text.to_owned())
    }
}

impl From<i64> for Value {
    fn from(integer: i64) -> Self {
        Value::Integer(integer)
    }
}

impl From<f64> for Value {
    fn from(real: f64) -> Self {
        Value::Real(real)
    }
}

/// What differs between the backends' SQL, and how each runs a statement. Everything else —
/// the statements, their row decoding, the history pager, the search executor, the migration
/// runner — is written once, generic over the dialect.
pub trait Dialect: sqlx::Database {
    /// The function `f(haystack, needle)` that is the 1-based position of `needle` (0: absent).
    const POSITION: &'static str;
    /// A join whose written order the planner keeps.
    const ORDERED_JOIN: &'static str;
    /// Appended to a unit of work's reads of rows it may rewrite, and of rows it only checks.
    const LOCK_FOR_UPDATE: &'static str;
    const LOCK_FOR_SHARE: &'static str;
    /// Whether `search_index_state` has a key (its one row is upserted) or is rewritten.
    const INDEX_STATE_HAS_KEY: bool;
    /// Whether text columns can hold NUL (JSON strings can contain it).
    const TEXT_HOLDS_NUL: bool;
    /// The type of `termin_schema_version.version`, as the first schema created it.
    const VERSION_COLUMN: &'static str;

    /// Makes a probe use `index` where the planner cannot be trusted to choose it.
    fn index_hint(index: &str) -> String;

    /// Whether one statement can delete from several tables (data-modifying CTEs).
    const DATA_MODIFYING_CTES: bool;

    /// How the backend's failures read as store errors (unavailable, timeout, conflict, …).
    fn store_error(e: sqlx::Error) -> StoreError;

    fn builder(init: impl Into<String>) -> Statement<Self> {
        Statement::new(init)
    }

    /// Appends the placeholder of the `number`th bound value (from 1).
    fn push_placeholder(sql: &mut String, number: usize);

    fn fetch_all(
        conn: &mut Self::Connection,
        q: Statement<Self>,
    ) -> impl Future<Output = Result<Vec<Self::Row>, sqlx::Error>> + Send;

    fn fetch_optional(
        conn: &mut Self::Connection,
        q: Statement<Self>,
    ) -> impl Future<Output = Result<Option<Self::Row>, sqlx::Error>> + Send;

    fn execute(conn: &mut Self::Connection, q: Statement<Self>)
    -> impl Future<Output = Result<(), sqlx::Error>> + Send;

    /// Runs several statements of static SQL (a migration), without parameters.
    fn execute_script(
        conn: &mut Self::Connection,
        sql: &'static str,
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send;

    fn text(row: &Self::Row, column: Column<'_>) -> Result<String, sqlx::Error>;

    fn optional_text(row: &Self::Row, column: Column<'_>) -> Result<Option<String>, sqlx::Error>;

    fn integer(row: &Self::Row, column: Column<'_>) -> Result<i64, sqlx::Error>;

    fn optional_integer(row: &Self::Row, column: Column<'_>) -> Result<Option<i64>, sqlx::Error>;

    fn real(row: &Self::Row, column: Column<'_>) -> Result<f64, sqlx::Error>;
}

/// The [`Dialect`] methods that read the same for every sqlx database but only compile for a
/// concrete one (generic code could not carry sqlx's encoding, decoding and executor bounds).
macro_rules! concrete_sqlx {
    () => {
        async fn fetch_all(conn: &mut Self::Connection, q: Statement<Self>) -> Result<Vec<Self::Row>, sqlx::Error> {
            let (sql, values) = q.into_parts();
            sqlx::query_with(sqlx::AssertSqlSafe(sql), sqlx_arguments::<Self>(values)?).fetch_all(conn).await
        }

        async fn fetch_optional(
            conn: &mut Self::Connection,
            q: Statement<Self>,
        ) -> Result<Option<Self::Row>, sqlx::Error> {
            let (sql, values) = q.into_parts();
            sqlx::query_with(sqlx::AssertSqlSafe(sql), sqlx_arguments::<Self>(values)?).fetch_optional(conn).await
        }

        async fn execute(conn: &mut Self::Connection, q: Statement<Self>) -> Result<(), sqlx::Error> {
            let (sql, values) = q.into_parts();
            sqlx::query_with(sqlx::AssertSqlSafe(sql), sqlx_arguments::<Self>(values)?).execute(conn).await.map(drop)
        }

        async fn execute_script(conn: &mut Self::Connection, sql: &'static str) -> Result<(), sqlx::Error> {
            sqlx::raw_sql(sql).execute(conn).await.map(drop)
        }

        fn text(row: &Self::Row, column: Column<'_>) -> Result<String, sqlx::Error> {
            match column {
                Column::Named(name) => sqlx::Row::try_get(row, name),
                Column::At(position) => sqlx::Row::try_get(row, position),
            }
        }

        fn optional_text(row: &Self::Row, column: Column<'_>) -> Result<Option<String>, sqlx::Error> {
            match column {
                Column::Named(name) => sqlx::Row::try_get(row, name),
                Column::At(position) => sqlx::Row::try_get(row, position),
            }
        }

        fn integer(row: &Self::Row, column: Column<'_>) -> Result<i64, sqlx::Error> {
            match column {
                Column::Named(name) => sqlx::Row::try_get(row, name),
                Column::At(position) => sqlx::Row::try_get(row, position),
            }
        }

        fn optional_integer(row: &Self::Row, column: Column<'_>) -> Result<Option<i64>, sqlx::Error> {
            match column {
                Column::Named(name) => sqlx::Row::try_get(row, name),
                Column::At(position) => sqlx::Row::try_get(row, position),
            }
        }

        fn real(row: &Self::Row, column: Column<'_>) -> Result<f64, sqlx::Error> {
            match column {
                Column::Named(name) => sqlx::Row::try_get(row, name),
                Column::At(position) => sqlx::Row::try_get(row, position),
            }
        }
    };
}

/// SQLite plans without statistics (no `ANALYZE` is run), so probes name their index and the
/// identifier join is written as a `CROSS JOIN`, which SQLite never reorders. Units of work
/// are serialized (one writer, `BEGIN IMMEDIATE`), so reads take no row locks. SQLite has no
/// data-modifying CTEs: each index table is cleared by its own statement. Its
/// `search_index_state` was created without a key (one process rebuilds at a time).
impl Dialect for Sqlite {
    const POSITION: &'static str = "instr";
    const ORDERED_JOIN: &'static str = "CROSS JOIN";
    const LOCK_FOR_UPDATE: &'static str = "";
    const LOCK_FOR_SHARE: &'static str = "";
    const INDEX_STATE_HAS_KEY: bool = false;
    const TEXT_HOLDS_NUL: bool = true;
    const VERSION_COLUMN: &'static str = "INTEGER";
    const DATA_MODIFYING_CTES: bool = false;

    concrete_sqlx!();

    fn push_placeholder(sql: &mut String, _number: usize) {
        sql.push('?');
    }

    fn index_hint(index: &str) -> String {
        format!(" INDEXED BY {index}")
    }

    fn store_error(e: sqlx::Error) -> StoreError {
        match e {
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                StoreError::Unavailable(e.to_string())
            }
            // SQLITE_INTERRUPT: only the progress handler of the time limit interrupts statements.
            sqlx::Error::Database(ref db) if db.code().as_deref() == Some("9") => StoreError::Timeout(e.to_string()),
            other => StoreError::Database(other.to_string()),
        }
    }
}

/// PostgreSQL's planner chooses indexes and join orders from its statistics (kept by
/// autovacuum) and takes no hints. Several nodes write at once, so units of work lock the rows
/// they read; data-modifying CTEs clear every index table in one round trip; text cannot hold
/// NUL; `search_index_state` has a singleton key, so nodes rebuilding at once upsert its row.
impl Dialect for Postgres {
    const POSITION: &'static str = "strpos";
    const ORDERED_JOIN: &'static str = "JOIN";
    const LOCK_FOR_UPDATE: &'static str = " FOR UPDATE";
    const LOCK_FOR_SHARE: &'static str = " FOR SHARE";
    const INDEX_STATE_HAS_KEY: bool = true;
    const TEXT_HOLDS_NUL: bool = false;
    const VERSION_COLUMN: &'static str = "bigint";
    const DATA_MODIFYING_CTES: bool = true;

    concrete_sqlx!();

    fn push_placeholder(sql: &mut String, number: usize) {
        use std::fmt::Write;
        write!(sql, "${number}").expect("writing to a String cannot fail");
    }

    fn index_hint(_index: &str) -> String {
        String::new()
    }

    fn store_error(e: sqlx::Error) -> StoreError {
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
                if db
                    .code()
                    .is_some_and(|code| code.starts_with("08") || matches!(&*code, "57P01" | "57P02" | "57P03")) =>
            {
                StoreError::Unavailable(e.to_string())
            }
            _ => StoreError::Database(e.to_string()),
        }
    }
}

/// A column of a row, by name or by position (from 0).
#[derive(Debug, Clone, Copy)]
pub enum Column<'a> {
    Named(&'a str),
    At(usize),
}

impl<'a> From<&'a str> for Column<'a> {
    fn from(name: &'a str) -> Self {
        Column::Named(name)
    }
}

impl From<usize> for Column<'_> {
    fn from(position: usize) -> Self {
        Column::At(position)
    }
}

/// PostgreSQL deadlocks and serialization failures: the transaction was rolled back and may
/// be retried.
pub fn is_contention(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if matches!(db.code().as_deref(), Some("40P01" | "40001")))
}

/// Why a shared statement failed: the database's error, read by the backend's dialect when it
/// becomes a [`StoreError`] (PostgreSQL's units of work look at it first, to replay after a
/// deadlock), or an error of the store's own (corrupt data, a conflict).
#[derive(Debug)]
pub enum Failure<D> {
    Sql(sqlx::Error, PhantomData<D>),
    Store(StoreError),
}

pub type SqlResult<T, D> = Result<T, Failure<D>>;

impl<D> From<sqlx::Error> for Failure<D> {
    fn from(e: sqlx::Error) -> Self {
        Failure::Sql(e, PhantomData)
    }
}

impl<D> From<StoreError> for Failure<D> {
    fn from(e: StoreError) -> Self {
        Failure::Store(e)
    }
}

impl<D: Dialect> From<Failure<D>> for StoreError {
    fn from(failure: Failure<D>) -> Self {
        match failure {
            Failure::Sql(e, _) => D::store_error(e),
            Failure::Store(e) => e,
        }
    }
}

/// `push_value` binds anything [`Value`] takes, in the statement's dialect.
pub(crate) trait PushValue {
    fn push_value(&mut self, value: impl Into<Value>) -> &mut Self;
}

impl<D: Dialect> PushValue for Statement<D> {
    fn push_value(&mut self, value: impl Into<Value>) -> &mut Self {
        self.bind(value.into())
    }
}

/// sqlx's arguments of a statement's values, in the order of its placeholders.
pub fn sqlx_arguments<'q, D>(values: Vec<Value>) -> Result<D::Arguments, sqlx::Error>
where
    D: sqlx::Database,
    String: sqlx::Encode<'q, D> + sqlx::Type<D>,
    Option<String>: sqlx::Encode<'q, D> + sqlx::Type<D>,
    i64: sqlx::Encode<'q, D> + sqlx::Type<D>,
    Option<i64>: sqlx::Encode<'q, D> + sqlx::Type<D>,
    f64: sqlx::Encode<'q, D> + sqlx::Type<D>,
{
    use sqlx::Arguments;
    let mut arguments = D::Arguments::default();
    arguments.reserve(values.len(), 0);
    for value in values {
        match value {
            Value::Text(text) => arguments.add(text),
            Value::OptionalText(text) => arguments.add(text),
            Value::Integer(integer) => arguments.add(integer),
            Value::OptionalInteger(integer) => arguments.add(integer),
            Value::Real(real) => arguments.add(real),
        }
        .map_err(sqlx::Error::Encode)?;
    }
    Ok(arguments)
}
