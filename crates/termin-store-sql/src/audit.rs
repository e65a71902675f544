//! The statements of the audit trail's own tables (see [`termin_store::AuditEntry`]):
//! `audit_event`, one compact row per AuditEvent with the JSON served, and
//! `audit_event_link`, one row per patient, other resource and agent it names. Events are only
//! appended (in chunks of fixed sizes, so that a few prepared statements serve every batch),
//! read by id, searched (`query::audit`) and deleted past their retention.

use crate::index::text;
use crate::query::push_list;
use crate::{Dialect, PushValue, Reader, SqlResult, Statement, Writer, decode_version_from};
use jiff::Timestamp;
use termin_store::{AuditEntry, ResourceVersion, StoreError};

/// The columns of an `audit_event` row as a version of a resource (`decode_version`): every
/// event is the first and only version of its AuditEvent.
pub(crate) const AUDIT_VERSION_COLUMNS: &str =
    "'AuditEvent' AS res_type, a.id AS res_id, CAST(1 AS BIGINT) AS version, a.last_updated, a.body";

/// Rows per multi-row `INSERT`: a batch is written in chunks of these sizes, largest first, so
/// that whatever its size only these few statement texts are prepared (and then reused).
const CHUNKS: [usize; 4] = [64, 16, 4, 1];

/// `SELECT` of one AuditEvent by id, as a version (`read_current`); a unit of work may append
/// its lock clause.
pub fn select_audit_event<D: Dialect>(id: &str) -> Statement<D> {
    let mut q = D::builder(format!("SELECT {AUDIT_VERSION_COLUMNS} FROM audit_event a WHERE a.id = "));
    q.push_value(id);
    q
}

/// Splits `items` into chunks of the sizes of [`CHUNKS`], largest first.
fn fixed_chunks<T>(mut items: &[T]) -> Vec<&[T]> {
    let mut chunks = Vec::new();
    for size in CHUNKS {
        while items.len() >= size {
            let (chunk, rest) = items.split_at(size);
            chunks.push(chunk);
            items = rest;
        }
    }
    chunks
}

/// Appends the events and their link rows. An id taken already is a [`StoreError::Conflict`].
pub async fn append_audit<D: Dialect, W: Writer<D>>(conn: &mut W, entries: &[AuditEntry]) -> SqlResult<(), D> {
    for chunk in fixed_chunks(entries) {
        let mut q = D::builder(
            "INSERT INTO audit_event (id, recorded_low, recorded_high, last_updated, action, outcome, code, body) VALUES ",
        );
        for (i, entry) in chunk.iter().enumerate() {
            q.push(if i == 0 { "(" } else { ", (" })
                .push_value(entry.id.as_str())
                .push(", ")
                .push_value(entry.recorded_range.0)
                .push(", ")
                .push_value(entry.recorded_range.1)
                .push(", ")
                .push_value(termin_fhir::instant::format_instant(entry.recorded))
                .push(", ")
                .push_value(entry.action.as_str())
                .push(", ")
                .push_value(entry.outcome.as_str())
                .push(", ")
                .push_value(entry.code.as_str())
                .push(", ")
                .push_value(entry.body.as_str())
                .push(")");
        }
        match conn.execute(q).await {
            Err(e) if crate::statements::is_unique_violation(&e) => {
                return Err(StoreError::Conflict(format!(
                    "one of {} AuditEvents (AuditEvent/{} …) exists already",
                    chunk.len(),
                    chunk[0].id
                ))
                .into());
            }
            other => other?,
        }
    }
    let links: Vec<(&str, &termin_store::AuditLink)> =
        entries.iter().flat_map(|e| e.links.iter().map(move |link| (e.id.as_str(), link))).collect();
    for chunk in fixed_chunks(&links) {
        let mut q = D::builder("INSERT INTO audit_event_link (event_id, role, target_type, target_id) VALUES ");
        for (i, (event_id, link)) in chunk.iter().enumerate() {
            q.push(if i == 0 { "(" } else { ", (" })
                .push_value(*event_id)
                .push(", ")
                .push_value(link.role.code())
                .push(", ")
                .push_value(text::<D>(link.target_type.as_deref().unwrap_or("")))
                .push(", ")
                .push_value(text::<D>(&link.target_id))
                .push(")");
        }
        // An event naming one thing twice keeps one row.
        q.push(" ON CONFLICT DO NOTHING");
        conn.execute(q).await?;
    }
    Ok(())
}

/// The AuditEvent `id` as its first (and only) version.
pub async fn read_audit_event<D: Dialect, R: Reader<D>>(
    conn: &mut R,
    id: &str,
) -> SqlResult<Option<ResourceVersion>, D> {
    let row = conn.fetch_optional(select_audit_event(id)).await?;
    row.as_ref().map(decode_version_from::<D, R>).transpose()
}

/// Deletes at most `limit` AuditEvents recorded before `before`, the oldest first, with their
/// link rows; answers their ids.
pub async fn purge_audit_events<D: Dialect, W: Writer<D>>(
    conn: &mut W,
    before: Timestamp,
    limit: usize,
) -> SqlResult<Vec<String>, D> {
    let mut old = D::builder("SELECT id FROM audit_event WHERE recorded_low < ");
    old.push_value(before.as_microsecond())
        .push(format!(" ORDER BY recorded_low LIMIT {}", i64::try_from(limit).unwrap_or(i64::MAX)));
    let rows = conn.fetch_all(old).await?;
    let ids = rows.iter().map(|row| W::text(row, 0.into())).collect::<Result<Vec<_>, _>>()?;
    for chunk in ids.chunks(1000) {
        for table in ["audit_event_link WHERE event_id", "audit_event WHERE id"] {
            let mut delete = D::builder(format!("DELETE FROM {table} IN ("));
            push_list(&mut delete, chunk);
            delete.push(")");
            conn.execute(delete).await?;
        }
    }
    Ok(ids)
}
