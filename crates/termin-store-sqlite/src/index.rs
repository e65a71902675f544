//! Writing a resource's search-index rows, in the transaction that writes the resource.

use crate::db_error;
use crate::query::micros;
use sqlx::{Sqlite, Transaction};
use termin_store::{IndexEntries, StoreResult};

/// One DELETE per index table (literal statements, as sqlx wants for static SQL).
const CLEAR_INDEX: [&str; 7] = [
    "DELETE FROM search_token WHERE res_type = ? AND res_id = ?",
    "DELETE FROM search_string WHERE res_type = ? AND res_id = ?",
    "DELETE FROM search_date WHERE res_type = ? AND res_id = ?",
    "DELETE FROM search_number WHERE res_type = ? AND res_id = ?",
    "DELETE FROM search_quantity WHERE res_type = ? AND res_id = ?",
    "DELETE FROM search_reference WHERE res_type = ? AND res_id = ?",
    "DELETE FROM search_uri WHERE res_type = ? AND res_id = ?",
];

/// Replaces every index row of the resource with `entries` (none for a deletion).
pub async fn replace(
    tx: &mut Transaction<'static, Sqlite>,
    res_type: &str,
    res_id: &str,
    entries: &IndexEntries,
) -> StoreResult<()> {
    for statement in CLEAR_INDEX {
        sqlx::query(statement)
            .bind(res_type)
            .bind(res_id)
            .execute(&mut **tx)
            .await
            .map_err(db_error)?;
    }
    for row in &entries.tokens {
        sqlx::query(
            "INSERT INTO search_token (res_type, res_id, param, system, code, text, type_system, type_code, \
             valid_from, valid_until) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(res_type)
        .bind(res_id)
        .bind(&row.param)
        .bind(&row.system)
        .bind(&row.code)
        .bind(&row.text)
        .bind(&row.type_system)
        .bind(&row.type_code)
        .bind(row.valid_from.map(|t| t.as_microsecond()))
        .bind(row.valid_until.map(|t| t.as_microsecond()))
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
    }
    for row in &entries.strings {
        sqlx::query("INSERT INTO search_string (res_type, res_id, param, value, normalized) VALUES (?, ?, ?, ?, ?)")
            .bind(res_type)
            .bind(res_id)
            .bind(&row.param)
            .bind(&row.value)
            .bind(&row.normalized)
            .execute(&mut **tx)
            .await
            .map_err(db_error)?;
    }
    for row in &entries.dates {
        sqlx::query("INSERT INTO search_date (res_type, res_id, param, low, high) VALUES (?, ?, ?, ?, ?)")
            .bind(res_type)
            .bind(res_id)
            .bind(&row.param)
            .bind(micros(row.low, i64::MIN))
            .bind(micros(row.high, i64::MAX))
            .execute(&mut **tx)
            .await
            .map_err(db_error)?;
    }
    for row in &entries.numbers {
        sqlx::query("INSERT INTO search_number (res_type, res_id, param, low, high) VALUES (?, ?, ?, ?, ?)")
            .bind(res_type)
            .bind(res_id)
            .bind(&row.param)
            .bind(row.low)
            .bind(row.high)
            .execute(&mut **tx)
            .await
            .map_err(db_error)?;
    }
    for row in &entries.quantities {
        sqlx::query(
            "INSERT INTO search_quantity (res_type, res_id, param, low, high, system, code, unit) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(res_type)
        .bind(res_id)
        .bind(&row.param)
        .bind(row.low)
        .bind(row.high)
        .bind(&row.system)
        .bind(&row.code)
        .bind(&row.unit)
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
    }
    for row in &entries.references {
        sqlx::query(
            "INSERT INTO search_reference (res_type, res_id, param, target_type, target_id, version, base, url, \
             identifier_system, identifier_value) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(res_type)
        .bind(res_id)
        .bind(&row.param)
        .bind(&row.target_type)
        .bind(&row.target_id)
        .bind(&row.version)
        .bind(row.base.as_deref().map(|b| b.trim_end_matches('/')))
        .bind(&row.url)
        .bind(&row.identifier_system)
        .bind(&row.identifier_value)
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
    }
    for row in &entries.uris {
        sqlx::query("INSERT INTO search_uri (res_type, res_id, param, uri) VALUES (?, ?, ?, ?)")
            .bind(res_type)
            .bind(res_id)
            .bind(&row.param)
            .bind(&row.uri)
            .execute(&mut **tx)
            .await
            .map_err(db_error)?;
    }
    Ok(())
}
