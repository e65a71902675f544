//! Plain SQLite connections (rusqlite) as the shared code's [`Reader`] and [`Writer`]: the
//! reader pool runs searches and reads by key on them, the group writer a unit of work's steps.
//! Their statements never wait for anything but SQLite, so the shared (async) code over them
//! runs to its end in one poll ([`complete`]) on the thread that holds the connection. Their
//! failures read as sqlx's SQLite errors do ([`failure`]).

use rusqlite::{Connection, ffi, types::ValueRef};
use sqlx::Sqlite;
use sqlx::error::{DatabaseError, ErrorKind};
use std::borrow::Cow;
use std::ffi::c_int;
use std::fmt::{self, Display, Formatter};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use termin_store::{StoreError, StoreResult};
use termin_store_sql::{Column, Failure, Reader, SqlResult, Statement, Value, Writer};

/// Runs `future` — shared code over a [`Plain`] connection, whose statements never wait — to
/// its end on this thread.
pub(crate) fn complete<T>(future: impl Future<Output = StoreResult<T>>) -> StoreResult<T> {
    let mut future = std::pin::pin!(future);
    match future.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(result) => result,
        Poll::Pending => Err(StoreError::Database("a statement on a plain connection waited".into())),
    }
}

/// A plain connection as the shared code's [`Reader`] and [`Writer`].
pub(crate) struct Plain<'c>(pub &'c mut Connection);

/// A row read by [`Plain`]: owned cells and the statement's column names.
pub(crate) struct PlainRow {
    names: Arc<[String]>,
    cells: Vec<Cell>,
}

enum Cell {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
}

/// Binds `values` to the placeholders of `prepared`, the first value to the first.
fn bind(prepared: &mut rusqlite::CachedStatement<'_>, values: &[Value]) -> rusqlite::Result<()> {
    for (i, value) in values.iter().enumerate() {
        let index = i + 1;
        match value {
            Value::Text(text) => prepared.raw_bind_parameter(index, text.as_str())?,
            Value::OptionalText(text) => prepared.raw_bind_parameter(index, text.as_deref())?,
            Value::Integer(integer) => prepared.raw_bind_parameter(index, integer)?,
            Value::OptionalInteger(integer) => prepared.raw_bind_parameter(index, integer)?,
            Value::Real(real) => prepared.raw_bind_parameter(index, real)?,
        }
    }
    Ok(())
}

impl Plain<'_> {
    fn rows(&mut self, statement: Statement<Sqlite>) -> rusqlite::Result<Vec<PlainRow>> {
        let (sql, values) = statement.into_parts();
        let mut prepared = self.0.prepare_cached(&sql)?;
        bind(&mut prepared, &values)?;
        let names: Arc<[String]> = prepared.column_names().into_iter().map(str::to_owned).collect();
        let width = names.len();
        let mut rows = prepared.raw_query();
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let mut cells = Vec::with_capacity(width);
            for i in 0..width {
                cells.push(match row.get_ref(i)? {
                    ValueRef::Null => Cell::Null,
                    ValueRef::Integer(integer) => Cell::Integer(integer),
                    ValueRef::Real(real) => Cell::Real(real),
                    ValueRef::Text(bytes) => {
                        Cell::Text(std::str::from_utf8(bytes).map_err(|e| rusqlite::Error::Utf8Error(i, e))?.to_owned())
                    }
                    ValueRef::Blob(_) => {
                        return Err(rusqlite::Error::InvalidColumnType(
                            i,
                            names[i].clone(),
                            rusqlite::types::Type::Blob,
                        ));
                    }
                });
            }
            out.push(PlainRow { names: names.clone(), cells });
        }
        Ok(out)
    }
}

impl PlainRow {
    fn cell(&self, column: Column<'_>) -> SqlResult<&Cell, Sqlite> {
        let position = match column {
            Column::Named(name) => self.names.iter().position(|n| n == name),
            Column::At(position) => Some(position).filter(|p| *p < self.cells.len()),
        };
        position
            .map(|p| &self.cells[p])
            .ok_or_else(|| Failure::Store(StoreError::Database(format!("no column {column:?} in the row"))))
    }
}

fn wrong_type(column: Column<'_>, wanted: &str) -> Failure<Sqlite> {
    Failure::Store(StoreError::Corrupt(format!("column {column:?} is not {wanted}")))
}

impl Reader<Sqlite> for Plain<'_> {
    type Row = PlainRow;

    async fn fetch_all(&mut self, statement: Statement<Sqlite>) -> SqlResult<Vec<PlainRow>, Sqlite> {
        self.rows(statement).map_err(failure)
    }

    fn text(row: &PlainRow, column: Column<'_>) -> SqlResult<String, Sqlite> {
        Self::optional_text(row, column)?.ok_or_else(|| wrong_type(column, "text"))
    }

    fn optional_text(row: &PlainRow, column: Column<'_>) -> SqlResult<Option<String>, Sqlite> {
        match row.cell(column)? {
            Cell::Null => Ok(None),
            Cell::Text(text) => Ok(Some(text.clone())),
            _ => Err(wrong_type(column, "text")),
        }
    }

    fn integer(row: &PlainRow, column: Column<'_>) -> SqlResult<i64, Sqlite> {
        match row.cell(column)? {
            Cell::Integer(integer) => Ok(*integer),
            _ => Err(wrong_type(column, "an integer")),
        }
    }

    fn real(row: &PlainRow, column: Column<'_>) -> SqlResult<f64, Sqlite> {
        match row.cell(column)? {
            Cell::Real(real) => Ok(*real),
            // SQLite keeps a whole REAL as an integer in an expression's result.
            Cell::Integer(integer) => Ok(*integer as f64),
            _ => Err(wrong_type(column, "a number")),
        }
    }
}

impl Writer<Sqlite> for Plain<'_> {
    async fn execute(&mut self, statement: Statement<Sqlite>) -> SqlResult<(), Sqlite> {
        let (sql, values) = statement.into_parts();
        let mut prepared = self.0.prepare_cached(&sql).map_err(failure)?;
        bind(&mut prepared, &values).map_err(failure)?;
        prepared.raw_execute().map(drop).map_err(failure)
    }
}

/// Runs one statement of fixed text without values (`BEGIN IMMEDIATE`, `SAVEPOINT unit`, …).
pub(crate) fn run(conn: &Connection, sql: &str) -> StoreResult<()> {
    conn.prepare_cached(sql).and_then(|mut s| s.execute([])).map(drop).map_err(store_error)
}

/// A failure of a plain connection as sqlx reports SQLite's, so that the shared code (a unique
/// violation is a lost race) and `Dialect::store_error` (an interrupt is the time limit) read
/// it alike on every connection.
pub(crate) fn failure(e: rusqlite::Error) -> Failure<Sqlite> {
    let code = match &e {
        rusqlite::Error::SqliteFailure(error, _) => Some(error.extended_code),
        _ => None,
    };
    Failure::from(sqlx::Error::Database(Box::new(PlainError { message: e.to_string(), code })))
}

pub(crate) fn store_error(e: rusqlite::Error) -> StoreError {
    failure(e).into()
}

/// SQLite's error on a plain connection: its message and extended result code.
#[derive(Debug)]
struct PlainError {
    message: String,
    code: Option<c_int>,
}

impl Display for PlainError {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for PlainError {}

impl DatabaseError for PlainError {
    fn message(&self) -> &str {
        &self.message
    }

    /// The extended result code, as sqlx's SQLite errors give it.
    fn code(&self) -> Option<Cow<'_, str>> {
        self.code.map(|code| code.to_string().into())
    }

    fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        self
    }

    fn kind(&self) -> ErrorKind {
        match self.code {
            Some(ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY) => ErrorKind::UniqueViolation,
            Some(ffi::SQLITE_CONSTRAINT_FOREIGNKEY) => ErrorKind::ForeignKeyViolation,
            Some(ffi::SQLITE_CONSTRAINT_NOTNULL) => ErrorKind::NotNullViolation,
            Some(ffi::SQLITE_CONSTRAINT_CHECK) => ErrorKind::CheckViolation,
            _ => ErrorKind::Other,
        }
    }
}
