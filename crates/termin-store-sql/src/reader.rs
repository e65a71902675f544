//! [`Reader`]: where the statements of a search and of a read by key run. The shared executor
//! runs them on a backend's sqlx connection ([`Sqlx`]) or on a connection the backend drives
//! itself (SQLite's reader pool), and decodes the rows through the same trait, so the
//! statements and their decoding stay written once.

use crate::{Column, Dialect, SqlResult, Statement};

pub trait Reader<D: Dialect>: Send {
    type Row: Send + Sync;

    /// Every row `statement` selects.
    fn fetch_all(&mut self, statement: Statement<D>) -> impl Future<Output = SqlResult<Vec<Self::Row>, D>> + Send;

    fn text(row: &Self::Row, column: Column<'_>) -> SqlResult<String, D>;

    fn optional_text(row: &Self::Row, column: Column<'_>) -> SqlResult<Option<String>, D>;

    fn integer(row: &Self::Row, column: Column<'_>) -> SqlResult<i64, D>;

    fn real(row: &Self::Row, column: Column<'_>) -> SqlResult<f64, D>;
}

/// A backend's sqlx connection (or transaction) as a [`Reader`].
pub struct Sqlx<'c, D: Dialect>(pub &'c mut D::Connection);

impl<D: Dialect> Reader<D> for Sqlx<'_, D> {
    type Row = D::Row;

    async fn fetch_all(&mut self, statement: Statement<D>) -> SqlResult<Vec<D::Row>, D> {
        Ok(D::fetch_all(self.0, statement).await?)
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
