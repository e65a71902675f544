//! [`Reader`]: where the statements of a search and of a read by key run; [`Writer`]: where a
//! unit of work's steps ([`crate::execute`]) run. The shared code runs them on a backend's
//! sqlx connection ([`Sqlx`]) or on a connection the backend drives itself (SQLite's reader
//! pool and its group writer), and decodes the rows through the same trait, so the statements
//! and their decoding stay written once.

use crate::{Column, Dialect, SqlResult, Statement};

pub trait Reader<D: Dialect>: Send {
    type Row: Send + Sync;

    /// Every row `statement` selects.
    fn fetch_all(&mut self, statement: Statement<D>) -> impl Future<Output = SqlResult<Vec<Self::Row>, D>> + Send;

    /// The first row `statement` selects, if any.
    fn fetch_optional(
        &mut self,
        statement: Statement<D>,
    ) -> impl Future<Output = SqlResult<Option<Self::Row>, D>> + Send {
        async { Ok(self.fetch_all(statement).await?.into_iter().next()) }
    }

    fn text(row: &Self::Row, column: Column<'_>) -> SqlResult<String, D>;

    fn optional_text(row: &Self::Row, column: Column<'_>) -> SqlResult<Option<String>, D>;

    fn integer(row: &Self::Row, column: Column<'_>) -> SqlResult<i64, D>;

    fn real(row: &Self::Row, column: Column<'_>) -> SqlResult<f64, D>;
}

/// A [`Reader`] that also writes: the connection of a unit of work. A step's statement that
/// fails reports the database's error as [`Failure::Sql`](crate::Failure), so that the shared
/// code can tell a unique violation (a lost race) from other failures on every connection.
pub trait Writer<D: Dialect>: Reader<D> {
    /// Runs a statement that selects nothing.
    fn execute(&mut self, statement: Statement<D>) -> impl Future<Output = SqlResult<(), D>> + Send;
}

/// A backend's sqlx connection (or transaction) as a [`Reader`] and [`Writer`].
pub struct Sqlx<'c, D: Dialect>(pub &'c mut D::Connection);

impl<D: Dialect> Reader<D> for Sqlx<'_, D> {
    type Row = D::Row;

    async fn fetch_all(&mut self, statement: Statement<D>) -> SqlResult<Vec<D::Row>, D> {
        Ok(D::fetch_all(self.0, statement).await?)
    }

    async fn fetch_optional(&mut self, statement: Statement<D>) -> SqlResult<Option<D::Row>, D> {
        Ok(D::fetch_optional(self.0, statement).await?)
    }

    fn text(row: &D::Row, column: Column<'_>) -> SqlResult<String, D> {
        Ok(D::text(row, column)?)
    }

    fn optional_text(row: &D::Row, column: Column<'_>) -> SqlResult<Option<String>, D> {
        Ok(D::optional_text(row, column)?)
    }

    fn integer(row: &D::Row, column: Column<'_>) -> SqlResult<i64, D> {
        Ok(D::integer(row, column)?)
    }

    fn real(row: &D::Row, column: Column<'_>) -> SqlResult<f64, D> {
        Ok(D::real(row, column)?)
    }
}

impl<D: Dialect> Writer<D> for Sqlx<'_, D> {
    async fn execute(&mut self, statement: Statement<D>) -> SqlResult<(), D> {
        Ok(D::execute(self.0, statement).await?)
    }
}
