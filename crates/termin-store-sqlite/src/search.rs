//! Running a search, the same steps as the PostgreSQL backend's (`termin-store-sql`): here
//! SQLite executes the statements and its rows are decoded.

use crate::{db_error, decode_version};
use async_trait::async_trait;
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection};
use termin_store::{ResourceVersion, SearchPage, SearchRequest, SortKey, SortValue, StoreResult};
use termin_store_sql::{SearchExecutor, SortColumn, sort_columns};

/// Runs a search on `conn`, in its read transaction.
pub async fn run(conn: &mut SqliteConnection, request: &SearchRequest) -> StoreResult<SearchPage> {
    termin_store_sql::run_search(&mut Executor(conn), request).await
}

/// Runs a search's statements in its read transaction.
struct Executor<'t>(&'t mut SqliteConnection);

#[async_trait]
impl SearchExecutor<Sqlite> for Executor<'_> {
    async fn versions(
        &mut self,
        mut query: QueryBuilder<Sqlite>,
        sort: &[SortKey],
    ) -> StoreResult<Vec<(ResourceVersion, Vec<SortValue>)>> {
        let rows = query.build().fetch_all(&mut *self.0).await.map_err(db_error)?;
        rows.iter()
            .map(|row| Ok((decode_version(row)?, sort_values(row, sort)?)))
            .collect()
    }

    async fn count(&mut self, mut query: QueryBuilder<Sqlite>) -> StoreResult<i64> {
        query.build_query_scalar().fetch_one(&mut *self.0).await.map_err(db_error)
    }

    async fn keys(&mut self, mut query: QueryBuilder<Sqlite>) -> StoreResult<Vec<(String, String)>> {
        query.build_query_as().fetch_all(&mut *self.0).await.map_err(db_error)
    }
}

fn sort_values(row: &SqliteRow, sort: &[SortKey]) -> StoreResult<Vec<SortValue>> {
    sort_columns(sort)
        .map(|(column, kind)| {
            let column = column.as_str();
            Ok(match kind {
                SortColumn::Integer => SortValue::Integer(row.try_get(column).map_err(db_error)?),
                SortColumn::Real => SortValue::Real(row.try_get(column).map_err(db_error)?),
                SortColumn::Text => SortValue::Text(row.try_get(column).map_err(db_error)?),
            })
        })
        .collect()
}
