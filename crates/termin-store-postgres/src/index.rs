//! Writing a resource's search-index rows, in the transaction that writes the resource: one
//! statement clears them all, then one multi-row INSERT per index table that has rows.

use crate::query::micros;
use sqlx::{PgConnection, Postgres, QueryBuilder};
use std::borrow::Cow;
use termin_store::IndexEntries;

/// Data-modifying CTEs all run, so every table is cleared in one round trip.
const CLEAR_INDEX: &str = "WITH t AS (DELETE FROM search_token WHERE res_type = $1 AND res_id = $2), \
     s AS (DELETE FROM search_string WHERE res_type = $1 AND res_id = $2), \
     d AS (DELETE FROM search_date WHERE res_type = $1 AND res_id = $2), \
     n AS (DELETE FROM search_number WHERE res_type = $1 AND res_id = $2), \
     q AS (DELETE FROM search_quantity WHERE res_type = $1 AND res_id = $2), \
     r AS (DELETE FROM search_reference WHERE res_type = $1 AND res_id = $2) \
     DELETE FROM search_uri WHERE res_type = $1 AND res_id = $2";

/// PostgreSQL text cannot hold NUL; a NUL inside an indexed value (which JSON allows) is
/// dropped rather than failing the write. No search can ask for one anyway.
fn text(value: &str) -> Cow<'_, str> {
    if value.contains('\0') {
        Cow::Owned(value.replace('\0', ""))
    } else {
        Cow::Borrowed(value)
    }
}

fn optional_text(value: &Option<String>) -> Option<String> {
    value.as_deref().map(|v| text(v).into_owned())
}

/// `INSERT INTO table (res_type, res_id, columns...) VALUES ...` for `rows`, `None` if empty.
fn insert<'r, T>(
    table: &str,
    columns: &str,
    res_type: &str,
    res_id: &str,
    rows: &'r [T],
    mut push_row: impl FnMut(&mut sqlx::query_builder::Separated<'_, Postgres, &'static str>, &'r T),
) -> Option<QueryBuilder<Postgres>> {
    if rows.is_empty() {
        return None;
    }
    let mut q = QueryBuilder::new(format!("INSERT INTO {table} (res_type, res_id, {columns}) "));
    q.push_values(rows, |mut row, value| {
        row.push_bind(res_type.to_owned()).push_bind(res_id.to_owned());
        push_row(&mut row, value);
    });
    Some(q)
}

/// Replaces every index row of the resource with `entries` (none for a deletion).
pub async fn replace(
    conn: &mut PgConnection,
    res_type: &str,
    res_id: &str,
    entries: &IndexEntries,
) -> Result<(), sqlx::Error> {
    sqlx::query(CLEAR_INDEX).bind(res_type).bind(res_id).execute(&mut *conn).await?;
    let statements = [
        insert(
            "search_token",
            "param, system, code, text, type_system, type_code, valid_from, valid_until",
            res_type,
            res_id,
            &entries.tokens,
            |row, token| {
                row.push_bind(text(&token.param).into_owned())
                    .push_bind(optional_text(&token.system))
                    .push_bind(optional_text(&token.code))
                    .push_bind(optional_text(&token.text))
                    .push_bind(optional_text(&token.type_system))
                    .push_bind(optional_text(&token.type_code))
                    .push_bind(token.valid_from.map(|t| t.as_microsecond()))
                    .push_bind(token.valid_until.map(|t| t.as_microsecond()));
            },
        ),
        insert("search_string", "param, value, normalized", res_type, res_id, &entries.strings, |row, string| {
            row.push_bind(text(&string.param).into_owned())
                .push_bind(text(&string.value).into_owned())
                .push_bind(text(&string.normalized).into_owned());
        }),
        insert("search_date", "param, low, high", res_type, res_id, &entries.dates, |row, date| {
            row.push_bind(text(&date.param).into_owned())
                .push_bind(micros(date.low, i64::MIN))
                .push_bind(micros(date.high, i64::MAX));
        }),
        insert("search_number", "param, low, high", res_type, res_id, &entries.numbers, |row, number| {
            row.push_bind(text(&number.param).into_owned())
                .push_bind(number.low)
                .push_bind(number.high);
        }),
        insert(
            "search_quantity",
            "param, low, high, system, code, unit",
            res_type,
            res_id,
            &entries.quantities,
            |row, quantity| {
                row.push_bind(text(&quantity.param).into_owned())
                    .push_bind(quantity.low)
                    .push_bind(quantity.high)
                    .push_bind(optional_text(&quantity.system))
                    .push_bind(optional_text(&quantity.code))
                    .push_bind(optional_text(&quantity.unit));
            },
        ),
        insert(
            "search_reference",
            "param, target_type, target_id, version, base, url, identifier_system, identifier_value",
            res_type,
            res_id,
            &entries.references,
            |row, reference| {
                row.push_bind(text(&reference.param).into_owned())
                    .push_bind(optional_text(&reference.target_type))
                    .push_bind(optional_text(&reference.target_id))
                    .push_bind(optional_text(&reference.version))
                    .push_bind(reference.base.as_deref().map(|b| text(b.trim_end_matches('/')).into_owned()))
                    .push_bind(optional_text(&reference.url))
                    .push_bind(optional_text(&reference.identifier_system))
                    .push_bind(optional_text(&reference.identifier_value));
            },
        ),
        insert("search_uri", "param, uri", res_type, res_id, &entries.uris, |row, uri| {
            row.push_bind(text(&uri.param).into_owned()).push_bind(text(&uri.uri).into_owned());
        }),
    ];
    for mut statement in statements.into_iter().flatten() {
        statement.build().execute(&mut *conn).await?;
    }
    Ok(())
}
