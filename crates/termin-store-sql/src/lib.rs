//! The SQL Termin's two backends share: searches over the current resources (conditions,
//! chains, `_has`, sorting, keyset pages, totals, includes) and history listings, built and run
//! for either database by the same code. Both backends keep the same tables and columns; only a few
//! spellings differ, and [`Dialect`] names them.

mod query;
pub mod notify;
mod search;

pub use query::{SearchSql, Select, count_history, micros, overlapping, select_history};
pub use search::{SearchExecutor, SortColumn, run as run_search, sort_columns};

use sqlx::{Postgres, QueryBuilder, Sqlite};
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
    text.map(|t| t.parse().map_err(|e| StoreError::Corrupt(format!("bad instant {t:?}: {e}"))))
        .transpose()
}

/// A value bound to a placeholder (`?` on SQLite, `$n` on PostgreSQL).
pub enum Value {
    Text(String),
    Integer(i64),
    Real(f64),
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

/// What differs between the backends' SQL.
pub trait Dialect: sqlx::Database {
    /// The function `f(haystack, needle)` that is the 1-based position of `needle` (0: absent).
    const POSITION: &'static str;
    /// A join whose written order the planner keeps.
    const ORDERED_JOIN: &'static str;

    /// Makes a probe use `index` where the planner cannot be trusted to choose it.
    fn index_hint(index: &str) -> String;

    fn builder(init: impl Into<String>) -> QueryBuilder<Self>;

    fn bind(q: &mut QueryBuilder<Self>, value: Value);
}

/// [`Dialect::builder`] and [`Dialect::bind`] read the same for every sqlx database but only
/// compile for a concrete one (generic code could not carry sqlx's encoding bounds).
macro_rules! concrete_binding {
    () => {
        fn builder(init: impl Into<String>) -> QueryBuilder<Self> {
            QueryBuilder::new(init)
        }

        fn bind(q: &mut QueryBuilder<Self>, value: Value) {
            match value {
                Value::Text(text) => q.push_bind(text),
                Value::Integer(integer) => q.push_bind(integer),
                Value::Real(real) => q.push_bind(real),
            };
        }
    };
}

/// SQLite plans without statistics (no `ANALYZE` is run), so probes name their index and the
/// identifier join is written as a `CROSS JOIN`, which SQLite never reorders.
impl Dialect for Sqlite {
    const POSITION: &'static str = "instr";
    const ORDERED_JOIN: &'static str = "CROSS JOIN";

    concrete_binding!();

    fn index_hint(index: &str) -> String {
        format!(" INDEXED BY {index}")
    }
}

/// PostgreSQL's planner chooses indexes and join orders from its statistics (kept by
/// autovacuum) and takes no hints.
impl Dialect for Postgres {
    const POSITION: &'static str = "strpos";
    const ORDERED_JOIN: &'static str = "JOIN";

    concrete_binding!();

    fn index_hint(_index: &str) -> String {
        String::new()
    }
}

/// `push_value` binds anything [`Value`] takes, in the builder's dialect.
pub(crate) trait PushValue {
    fn push_value(&mut self, value: impl Into<Value>) -> &mut Self;
}

impl<D: Dialect> PushValue for QueryBuilder<D> {
    fn push_value(&mut self, value: impl Into<Value>) -> &mut Self {
        D::bind(self, value.into());
        self
    }
}
