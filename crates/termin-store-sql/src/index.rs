//! Writing a resource's search-index rows, in the transaction that writes the resource: its
//! old rows are cleared, then one multi-row INSERT per index table that has rows.

use crate::query::{REFERENCE_DATE_PAIRS, micros};
use crate::{Dialect, PushValue, SqlResult, Value, Writer};
use termin_store::{DateIndex, IndexEntries, ReferenceIndex};

const INDEX_TABLES: [&str; 9] = [
    "search_token",
    "search_string",
    "search_date",
    "search_number",
    "search_quantity",
    "search_reference",
    "search_uri",
    "search_reference_date",
    "search_position",
];

/// Text as the dialect can store it: where text cannot hold NUL, a NUL inside an indexed value
/// (which JSON allows) is dropped rather than failing the write. No search can ask for one.
pub(crate) fn text<D: Dialect>(value: &str) -> Value {
    if !D::TEXT_HOLDS_NUL && value.contains('\0') {
        Value::Text(value.replace('\0', ""))
    } else {
        Value::Text(value.to_owned())
    }
}

fn optional_text<D: Dialect>(value: Option<&str>) -> Value {
    match value.map(text::<D>) {
        Some(Value::Text(text)) => Value::OptionalText(Some(text)),
        _ => Value::OptionalText(None),
    }
}

/// `DELETE FROM table WHERE res_type = … AND res_id = …`, as a statement or a CTE.
fn push_clear<D: Dialect>(q: &mut crate::Statement<D>, table: &str, res_type: &str, res_id: &str) {
    q.push(format!("DELETE FROM {table} WHERE res_type = "))
        .push_value(res_type)
        .push(" AND res_id = ")
        .push_value(res_id);
}

/// The statements that delete the resource's rows from every index table.
pub(crate) fn clear<D: Dialect>(res_type: &str, res_id: &str) -> Vec<crate::Statement<D>> {
    if D::DATA_MODIFYING_CTES {
        let (last, others) = INDEX_TABLES.split_last().expect("index tables");
        let mut q = D::builder("WITH ");
        for (i, table) in others.iter().enumerate() {
            q.push(if i == 0 { format!("t{i} AS (") } else { format!(", t{i} AS (") });
            push_clear(&mut q, table, res_type, res_id);
            q.push(")");
        }
        q.push(" ");
        push_clear(&mut q, last, res_type, res_id);
        vec![q]
    } else {
        INDEX_TABLES
            .iter()
            .map(|table| {
                let mut q = D::builder("");
                push_clear(&mut q, table, res_type, res_id);
                q
            })
            .collect()
    }
}

/// Rows per INSERT: at most 10 values a row stays far below the bound parameters a statement
/// may have (32,766 on SQLite, 65,535 on PostgreSQL), however many rows a resource indexes.
const ROWS_PER_INSERT: usize = 1000;

/// `INSERT INTO table (res_type, res_id, columns...) VALUES ...` for `rows` (each with the
/// type and id of its resource), one statement per [`ROWS_PER_INSERT`] of them.
fn insert<D: Dialect, T>(
    table: &str,
    columns: &str,
    rows: &[(&str, &str, T)],
    values: impl Fn(&T) -> Vec<Value>,
) -> Vec<crate::Statement<D>> {
    rows.chunks(ROWS_PER_INSERT)
        .map(|chunk| {
            let mut q = D::builder(format!("INSERT INTO {table} (res_type, res_id, {columns}) VALUES "));
            for (i, (res_type, res_id, row)) in chunk.iter().enumerate() {
                q.push(if i == 0 { "(" } else { ", (" }).push_value(*res_type).push(", ").push_value(*res_id);
                for value in values(row) {
                    q.push(", ").push_value(value);
                }
                q.push(")");
            }
            q
        })
        .collect()
}

/// The rows of one kind of every resource, each with its resource's type and id.
fn rows_of<'e, T: 'e, R>(
    resources: &[(&'e str, &'e str, &'e IndexEntries)],
    rows: impl Fn(&'e str, &'e IndexEntries) -> R,
) -> Vec<(&'e str, &'e str, T)>
where
    R: IntoIterator<Item = T>,
{
    resources
        .iter()
        .flat_map(|&(res_type, res_id, entries)| {
            rows(res_type, entries).into_iter().map(move |row| (res_type, res_id, row))
        })
        .collect()
}

/// `param, target_type, target_id, version, base` of a reference row: the columns
/// `search_reference` and `search_reference_date` share.
fn reference_target<D: Dialect>(reference: &ReferenceIndex) -> Vec<Value> {
    vec![
        text::<D>(&reference.param),
        optional_text::<D>(reference.target_type.as_deref()),
        optional_text::<D>(reference.target_id.as_deref()),
        optional_text::<D>(reference.version.as_deref()),
        optional_text::<D>(reference.base.as_deref().map(|b| b.trim_end_matches('/'))),
    ]
}

/// The rows of the scheduling projection: each literal reference of a paired parameter with
/// each date of its paired date parameter ([`REFERENCE_DATE_PAIRS`]).
fn reference_dates<'e>(res_type: &str, entries: &'e IndexEntries) -> Vec<(&'e ReferenceIndex, &'e DateIndex)> {
    REFERENCE_DATE_PAIRS
        .iter()
        .filter(|(paired_type, _, _)| paired_type.as_str() == res_type)
        .flat_map(|(_, reference_param, date_param)| {
            let references = entries
                .references
                .iter()
                .filter(move |r| r.param == *reference_param && r.target_type.is_some() && r.target_id.is_some());
            references.flat_map(move |reference| {
                entries.dates.iter().filter(move |d| d.param == *date_param).map(move |date| (reference, date))
            })
        })
        .collect()
}

/// Replaces the resource's search-index rows with `entries`.
pub async fn replace_index<D: Dialect, W: Writer<D>>(
    conn: &mut W,
    res_type: &str,
    res_id: &str,
    entries: &IndexEntries,
) -> SqlResult<(), D> {
    for statement in clear::<D>(res_type, res_id) {
        conn.execute(statement).await?;
    }
    insert_index(conn, res_type, res_id, entries).await
}

/// Writes the index rows of a resource that has none (its first version: every resource's
/// rows go with its last version, by deletion or purge), without first clearing the eight
/// tables: most of what a bulk creation such as slot generation would otherwise execute.
pub(crate) async fn insert_index<D: Dialect, W: Writer<D>>(
    conn: &mut W,
    res_type: &str,
    res_id: &str,
    entries: &IndexEntries,
) -> SqlResult<(), D> {
    insert_indexes(conn, &[(res_type, res_id, entries)]).await
}

/// Writes the index rows of several resources that have none (see [`insert_index`]), one
/// statement per index table for all of them.
pub(crate) async fn insert_indexes<D: Dialect, W: Writer<D>>(
    conn: &mut W,
    resources: &[(&str, &str, &IndexEntries)],
) -> SqlResult<(), D> {
    let statements = [
        insert::<D, _>(
            "search_token",
            "param, system, code, text, type_system, type_code, valid_from, valid_until",
            &rows_of(resources, |_, e| &e.tokens),
            |token| {
                vec![
                    text::<D>(&token.param),
                    optional_text::<D>(token.system.as_deref()),
                    optional_text::<D>(token.code.as_deref()),
                    optional_text::<D>(token.text.as_deref()),
                    optional_text::<D>(token.type_system.as_deref()),
                    optional_text::<D>(token.type_code.as_deref()),
                    token.valid_from.map(|t| t.as_microsecond()).into(),
                    token.valid_until.map(|t| t.as_microsecond()).into(),
                ]
            },
        ),
        insert::<D, _>("search_string", "param, value, normalized", &rows_of(resources, |_, e| &e.strings), |string| {
            vec![text::<D>(&string.param), text::<D>(&string.value), text::<D>(&string.normalized)]
        }),
        insert::<D, _>("search_date", "param, low, high", &rows_of(resources, |_, e| &e.dates), |date| {
            vec![text::<D>(&date.param), micros(date.low, i64::MIN).into(), micros(date.high, i64::MAX).into()]
        }),
        insert::<D, _>("search_number", "param, low, high", &rows_of(resources, |_, e| &e.numbers), |number| {
            vec![text::<D>(&number.param), number.low.into(), number.high.into()]
        }),
        insert::<D, _>(
            "search_quantity",
            "param, low, high, system, code, unit",
            &rows_of(resources, |_, e| &e.quantities),
            |quantity| {
                vec![
                    text::<D>(&quantity.param),
                    quantity.low.into(),
                    quantity.high.into(),
                    optional_text::<D>(quantity.system.as_deref()),
                    optional_text::<D>(quantity.code.as_deref()),
                    optional_text::<D>(quantity.unit.as_deref()),
                ]
            },
        ),
        insert::<D, _>(
            "search_reference",
            "param, target_type, target_id, version, base, url, identifier_system, identifier_value",
            &rows_of(resources, |_, e| &e.references),
            |reference| {
                let mut values = reference_target::<D>(reference);
                values.extend([
                    optional_text::<D>(reference.url.as_deref()),
                    optional_text::<D>(reference.identifier_system.as_deref()),
                    optional_text::<D>(reference.identifier_value.as_deref()),
                ]);
                values
            },
        ),
        insert::<D, _>("search_uri", "param, uri", &rows_of(resources, |_, e| &e.uris), |uri| {
            vec![text::<D>(&uri.param), text::<D>(&uri.uri)]
        }),
        insert::<D, _>(
            "search_reference_date",
            "param, target_type, target_id, version, base, date_param, low, high",
            &rows_of(resources, reference_dates),
            |(reference, date)| {
                let mut values = reference_target::<D>(reference);
                values.extend([
                    text::<D>(&date.param),
                    micros(date.low, i64::MIN).into(),
                    micros(date.high, i64::MAX).into(),
                ]);
                values
            },
        ),
        insert::<D, _>(
            "search_position",
            "param, latitude, longitude, x, y, z",
            &rows_of(resources, |_, e| &e.positions),
            |row| {
                let [x, y, z] = row.position.unit_vector();
                let coordinates = [row.position.latitude, row.position.longitude, x, y, z];
                std::iter::once(text::<D>(&row.param)).chain(coordinates.map(Value::from)).collect()
            },
        ),
    ];
    for statement in statements.into_iter().flatten() {
        conn.execute(statement).await?;
    }
    Ok(())
}
