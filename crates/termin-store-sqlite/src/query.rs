//! The search and history SQL, shared with the PostgreSQL backend (`termin-store-sql`), spoken in
//! SQLite's dialect.

pub use termin_store_sql::{Select, count_history, micros, select_history};

pub type SearchSql<'f> = termin_store_sql::SearchSql<'f, sqlx::Sqlite>;
