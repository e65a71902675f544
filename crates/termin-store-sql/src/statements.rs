//! The statements both backends run on the shared tables, each executed on the [`Writer`] (a
//! connection or transaction) the backend hands in. A backend adds only its locking around them.

use crate::query::{SearchSql, Select, push_list};
use crate::rows::{decode_event, decode_hold, unsigned};
use crate::{
    Dialect, Failure, PushValue, Reader, SqlResult, Writer, change_name, decode_version_from, parse_change,
    parse_instant_column,
};
use jiff::Timestamp;
use termin_fhir::ResourceType;
use termin_fhir::instant::format_instant;
use termin_store::{
    AppointmentId, DomainEvent, Filter, HistoryEntry, HistoryPage, HistoryRequest, NewVersion, ResourceVersion,
    SlotHold, SlotId, StoreError,
};

const VERSION_COLUMNS: &str = "res_type, res_id, version, last_updated, body";
const HOLD_COLUMNS: &str = "slot_id, holder, token, held_until, placed_at";

/// Counts and limits are bound as SQL integers; anything beyond `i64` means "no limit".
fn integer(value: impl TryInto<i64>) -> i64 {
    value.try_into().unwrap_or(i64::MAX)
}

/// `SELECT` of the current version of one resource (an AuditEvent from its own table); a unit
/// of work may append its lock clause.
pub fn select_current<D: Dialect>(resource_type: ResourceType, id: &str) -> crate::Statement<D> {
    if resource_type == ResourceType::AuditEvent {
        return crate::audit::select_audit_event(id);
    }
    let mut q = D::builder(format!("SELECT {VERSION_COLUMNS} FROM resource WHERE res_type = "));
    q.push_value(resource_type.as_str()).push(" AND res_id = ").push_value(id);
    q
}

/// Ids per `IN (...)` list of a bulk read: far below the bound parameters a statement may have.
const IDS_PER_STATEMENT: usize = 1000;

/// The current versions (possibly deletions) of those of `ids` ever written, in id order, the
/// rows read with `lock` (a dialect's `FOR UPDATE` or nothing).
pub async fn read_current_many<D: Dialect, R: Reader<D>>(
    conn: &mut R,
    resource_type: ResourceType,
    ids: &[String],
    lock: &str,
) -> SqlResult<Vec<ResourceVersion>, D> {
    let mut versions = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(IDS_PER_STATEMENT) {
        let mut q = D::builder(format!("SELECT {VERSION_COLUMNS} FROM resource WHERE res_type = "));
        q.push_value(resource_type.as_str()).push(" AND res_id IN (");
        push_list(&mut q, chunk);
        q.push(") ORDER BY res_id").push(lock);
        for row in conn.fetch_all(q).await? {
            versions.push(decode_version_from::<D, R>(&row)?);
        }
    }
    versions.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(versions)
}

/// The current version of a resource (possibly a deletion), if it was ever written, read on
/// any [`Reader`](crate::Reader).
pub async fn read_current_on<D: Dialect, R: crate::Reader<D>>(
    reader: &mut R,
    resource_type: ResourceType,
    id: &str,
) -> SqlResult<Option<ResourceVersion>, D> {
    let rows = reader.fetch_all(select_current(resource_type, id)).await?;
    rows.first().map(crate::decode_version_from::<D, R>).transpose()
}

pub async fn read_version<D: Dialect, R: Reader<D>>(
    conn: &mut R,
    resource_type: ResourceType,
    id: &str,
    version: u64,
) -> SqlResult<Option<ResourceVersion>, D> {
    if resource_type == ResourceType::AuditEvent {
        // An AuditEvent has one version, never changed.
        return match version {
            1 => crate::audit::read_audit_event(conn, id).await,
            _ => Ok(None),
        };
    }
    let mut q = D::builder(format!("SELECT {VERSION_COLUMNS} FROM resource_history WHERE res_type = "));
    q.push_value(resource_type.as_str())
        .push(" AND res_id = ")
        .push_value(id)
        .push(" AND version = ")
        .push_value(integer(version));
    let row = conn.fetch_optional(q).await?;
    row.as_ref().map(decode_version_from::<D, R>).transpose()
}

/// Current versions with a body, in `(res_type, res_id)` order after `after`: the walk of an
/// index rebuild (rows locked where writers run concurrently, see [`Dialect::LOCK_FOR_UPDATE`]).
pub async fn current_after<D: Dialect, R: Reader<D>>(
    conn: &mut R,
    after: Option<&(ResourceType, String)>,
    limit: usize,
) -> SqlResult<Vec<ResourceVersion>, D> {
    let (after_type, after_id) = after.map_or(("", ""), |(t, id)| (t.as_str(), id.as_str()));
    let mut q =
        D::builder(format!("SELECT {VERSION_COLUMNS} FROM resource WHERE body IS NOT NULL AND (res_type, res_id) > ("));
    q.push_value(after_type)
        .push(", ")
        .push_value(after_id)
        .push(") ORDER BY res_type, res_id LIMIT ")
        .push_value(integer(limit))
        .push(D::LOCK_FOR_UPDATE);
    let rows = conn.fetch_all(q).await?;
    rows.iter().map(decode_version_from::<D, R>).collect()
}

/// Ids of current resources of `resource_type` that `filter` matches (conditional writes).
pub async fn find_matching_ids<D: Dialect, R: Reader<D>>(
    conn: &mut R,
    resource_type: ResourceType,
    filter: &Filter,
    limit: usize,
) -> SqlResult<Vec<String>, D> {
    let q = SearchSql::<D>::new(filter).build(resource_type, &Select::Ids { limit });
    first_texts(conn, q).await
}

/// Ids of other resources whose `param` period overlaps `period` (see [`crate::overlapping`]).
pub async fn overlapping<D: Dialect, R: Reader<D>>(
    conn: &mut R,
    resource_type: ResourceType,
    param: &str,
    period: (Timestamp, Timestamp),
    exclude_id: &str,
    limit: usize,
) -> SqlResult<Vec<String>, D> {
    let q = crate::query::overlapping::<D>(resource_type.as_str(), param, period, exclude_id, limit);
    first_texts(conn, q).await
}

/// The first column of every row, as text.
async fn first_texts<D: Dialect, R: Reader<D>>(conn: &mut R, q: crate::Statement<D>) -> SqlResult<Vec<String>, D> {
    let rows = conn.fetch_all(q).await?;
    rows.iter().map(|row| R::text(row, 0.into())).collect()
}

/// [`write_version`] of each of `versions` (of distinct resources) with one multi-row
/// `INSERT` per table for every [`IDS_PER_STATEMENT`] of them: what slot generation writes per
/// Schedule. A second writer of one of the versions gets [`StoreError::Conflict`].
pub async fn write_versions<D: Dialect, W: Writer<D>>(conn: &mut W, versions: &[NewVersion]) -> SqlResult<(), D> {
    insert_versions(conn, versions).await?;
    // As in `write_version`: only a later version can find rows of an earlier one to clear.
    for new in versions.iter().filter(|new| new.version.version > 1) {
        for statement in crate::index::clear::<D>(new.version.resource_type.as_str(), &new.version.id) {
            conn.execute(statement).await?;
        }
    }
    insert_indexes_of(conn, versions).await
}

/// Writes a new version: the current row, its history entry and its search-index rows. A
/// second writer of the same version (a lost race) gets [`StoreError::Conflict`].
pub async fn write_version<D: Dialect, W: Writer<D>>(conn: &mut W, new: &NewVersion) -> SqlResult<(), D> {
    let v = &new.version;
    let res_type = v.resource_type.as_str();
    let version =
        i64::try_from(v.version).map_err(|_| StoreError::Database(format!("version {} out of range", v.version)))?;
    let last_updated = format_instant(v.last_updated);
    let mut current = D::builder("INSERT INTO resource (res_type, res_id, version, last_updated, body) VALUES (");
    current
        .push_value(res_type)
        .push(", ")
        .push_value(v.id.as_str())
        .push(", ")
        .push_value(version)
        .push(", ")
        .push_value(last_updated.as_str())
        .push(", ")
        .push_value(v.body.clone())
        .push(
            ") ON CONFLICT (res_type, res_id) DO UPDATE SET \
             version = excluded.version, last_updated = excluded.last_updated, body = excluded.body",
        );
    conn.execute(current).await?;
    let mut history =
        D::builder("INSERT INTO resource_history (res_type, res_id, version, last_updated, change, body) VALUES (");
    history
        .push_value(res_type)
        .push(", ")
        .push_value(v.id.as_str())
        .push(", ")
        .push_value(version)
        .push(", ")
        .push_value(last_updated)
        .push(", ")
        .push_value(change_name(new.change))
        .push(", ")
        .push_value(v.body.clone())
        .push(")");
    match conn.execute(history).await {
        Err(e) if is_unique_violation(&e) => {
            return Err(StoreError::Conflict(format!(
                "{res_type}/{} version {} was written concurrently",
                v.id, v.version
            ))
            .into());
        }
        other => other?,
    }
    // Version 1 was just inserted into the history, so no earlier version left index rows.
    match v.version {
        1 => crate::index::insert_index(conn, res_type, &v.id, &new.index).await,
        _ => crate::replace_index(conn, res_type, &v.id, &new.index).await,
    }
}

/// The current rows and history entries of `versions`, one multi-row `INSERT` per table for
/// every [`IDS_PER_STATEMENT`] of them; current rows are replaced. A history entry that exists
/// already is a [`StoreError::Conflict`]: another writer got there first.
async fn insert_versions<D: Dialect, W: Writer<D>>(conn: &mut W, versions: &[NewVersion]) -> SqlResult<(), D> {
    let mut rows = Vec::with_capacity(versions.len());
    for new in versions {
        let v = &new.version;
        let version = i64::try_from(v.version)
            .map_err(|_| StoreError::Database(format!("version {} out of range", v.version)))?;
        rows.push((new, version, format_instant(v.last_updated)));
    }
    for chunk in rows.chunks(IDS_PER_STATEMENT) {
        for history in [false, true] {
            let (table, columns) = if history {
                ("resource_history", "res_type, res_id, version, last_updated, change, body")
            } else {
                ("resource", VERSION_COLUMNS)
            };
            let mut q = D::builder(format!("INSERT INTO {table} ({columns}) VALUES "));
            for (i, (new, version, last_updated)) in chunk.iter().enumerate() {
                let v = &new.version;
                q.push(if i == 0 { "(" } else { ", (" })
                    .push_value(v.resource_type.as_str())
                    .push(", ")
                    .push_value(v.id.as_str())
                    .push(", ")
                    .push_value(*version)
                    .push(", ")
                    .push_value(last_updated.as_str());
                if history {
                    q.push(", ").push_value(change_name(new.change));
                }
                q.push(", ").push_value(v.body.clone()).push(")");
            }
            if !history {
                q.push(
                    " ON CONFLICT (res_type, res_id) DO UPDATE SET \
                     version = excluded.version, last_updated = excluded.last_updated, body = excluded.body",
                );
            }
            match conn.execute(q).await {
                Err(e) if is_unique_violation(&e) => {
                    let first = &chunk[0].0.version;
                    return Err(StoreError::Conflict(format!(
                        "one of {} resources ({}/{} …) exists already or was written concurrently",
                        chunk.len(),
                        first.resource_type,
                        first.id
                    ))
                    .into());
                }
                other => other?,
            }
        }
    }
    Ok(())
}

/// The index rows of `versions` (whose earlier rows are cleared), one statement per index table.
async fn insert_indexes_of<D: Dialect, W: Writer<D>>(conn: &mut W, versions: &[NewVersion]) -> SqlResult<(), D> {
    let indexed: Vec<(&str, &str, &termin_store::IndexEntries)> =
        versions.iter().map(|new| (new.version.resource_type.as_str(), new.version.id.as_str(), &new.index)).collect();
    crate::index::insert_indexes(conn, &indexed).await
}

pub(crate) fn is_unique_violation<D>(e: &Failure<D>) -> bool {
    matches!(e, Failure::Sql(sqlx::Error::Database(db), _) if db.is_unique_violation())
}

/// A page of history (newest first) and the number of all its entries.
pub async fn history<D: Dialect, R: Reader<D>>(conn: &mut R, request: &HistoryRequest) -> SqlResult<HistoryPage, D> {
    let mut page_query = crate::query::select_history::<D>(request);
    if let Some(before) = request.before {
        page_query.push(" AND seq < ").push_value(integer(before));
    }
    page_query.push(" ORDER BY seq DESC LIMIT ").push_value(integer(request.count + 1));
    let rows = conn.fetch_all(page_query).await?;
    let mut entries = Vec::with_capacity(rows.len());
    let mut positions = Vec::with_capacity(rows.len());
    for row in &rows {
        entries.push(HistoryEntry {
            version: decode_version_from::<D, R>(row)?,
            change: parse_change(&R::text(row, "change".into())?)?,
        });
        positions.push(unsigned("seq", R::integer(row, "seq".into())?)?);
    }
    let next_before = if entries.len() > request.count {
        entries.truncate(request.count);
        positions.get(request.count - 1).copied()
    } else {
        None
    };
    let total = match conn.fetch_optional(crate::query::count_history::<D>(request)).await? {
        Some(row) => R::integer(&row, 0.into())?,
        None => 0,
    };
    Ok(HistoryPage { entries, total: u64::try_from(total).unwrap_or(0), next_before })
}

/// The holds of the given slots (those that have one).
pub async fn holds<D: Dialect, R: Reader<D>>(conn: &mut R, slot_ids: &[String]) -> SqlResult<Vec<SlotHold>, D> {
    let mut holds = Vec::new();
    for chunk in slot_ids.chunks(IDS_PER_STATEMENT) {
        let mut q = D::builder(format!("SELECT {HOLD_COLUMNS} FROM slot_hold WHERE slot_id IN ("));
        push_list(&mut q, chunk);
        q.push(") ORDER BY slot_id");
        holds.extend(decode_holds(conn, q).await?);
    }
    Ok(holds)
}

/// Holds whose time ran out by `now`, the longest expired first.
pub async fn expired_holds<D: Dialect, R: Reader<D>>(
    conn: &mut R,
    now: Timestamp,
    limit: usize,
) -> SqlResult<Vec<SlotHold>, D> {
    let mut q = D::builder(format!("SELECT {HOLD_COLUMNS} FROM slot_hold WHERE held_until <= "));
    q.push_value(format_instant(now)).push(" ORDER BY held_until LIMIT ").push_value(integer(limit));
    decode_holds(conn, q).await
}

/// The holds of `holder` still live at `now`, the soonest to expire first.
pub async fn live_holds_of<D: Dialect, R: Reader<D>>(
    conn: &mut R,
    holder: &str,
    now: Timestamp,
) -> SqlResult<Vec<SlotHold>, D> {
    let mut q = D::builder(format!("SELECT {HOLD_COLUMNS} FROM slot_hold WHERE holder = "));
    q.push_value(holder).push(" AND held_until > ").push_value(format_instant(now)).push(" ORDER BY held_until");
    decode_holds(conn, q).await
}

async fn decode_holds<D: Dialect, R: Reader<D>>(conn: &mut R, q: crate::Statement<D>) -> SqlResult<Vec<SlotHold>, D> {
    let rows = conn.fetch_all(q).await?;
    rows.iter().map(decode_hold::<D, R>).collect()
}

pub async fn hold<D: Dialect, R: Reader<D>>(conn: &mut R, slot_id: &str) -> SqlResult<Option<SlotHold>, D> {
    let mut q = D::builder(format!("SELECT {HOLD_COLUMNS} FROM slot_hold WHERE slot_id = "));
    q.push_value(slot_id);
    let row = conn.fetch_optional(q).await?;
    row.as_ref().map(decode_hold::<D, R>).transpose()
}

/// Places or renews the hold of its slot.
pub async fn put_hold<D: Dialect, W: Writer<D>>(conn: &mut W, hold: &SlotHold) -> SqlResult<(), D> {
    let mut q = D::builder(format!("INSERT INTO slot_hold ({HOLD_COLUMNS}) VALUES ("));
    q.push_value(hold.slot_id.as_str())
        .push(", ")
        .push_value(hold.holder.as_str())
        .push(", ")
        .push_value(hold.token.as_str())
        .push(", ")
        .push_value(format_instant(hold.held_until))
        .push(", ")
        .push_value(format_instant(hold.placed_at))
        .push(
            ") ON CONFLICT (slot_id) DO UPDATE SET holder = excluded.holder, token = excluded.token, \
             held_until = excluded.held_until, placed_at = excluded.placed_at",
        );
    conn.execute(q).await
}

pub async fn delete_hold<D: Dialect, W: Writer<D>>(conn: &mut W, slot_id: &str) -> SqlResult<(), D> {
    delete_by_slot(conn, "slot_hold", slot_id).await
}

/// The id of the Appointment that books the slot, if any.
pub async fn slot_booking<D: Dialect, R: Reader<D>>(conn: &mut R, slot_id: &str) -> SqlResult<Option<String>, D> {
    let mut q = D::builder("SELECT appointment_id FROM slot_booking WHERE slot_id = ");
    q.push_value(slot_id);
    let row = conn.fetch_optional(q).await?;
    row.map(|row| R::text(&row, "appointment_id".into())).transpose()
}

/// (slot id, Appointment id) of those of the slots that are booked.
pub async fn slot_bookings<D: Dialect, R: Reader<D>>(
    conn: &mut R,
    slot_ids: &[String],
) -> SqlResult<Vec<(String, String)>, D> {
    let mut bookings = Vec::new();
    for chunk in slot_ids.chunks(IDS_PER_STATEMENT) {
        let mut q = D::builder("SELECT slot_id, appointment_id FROM slot_booking WHERE slot_id IN (");
        push_list(&mut q, chunk);
        q.push(") ORDER BY slot_id");
        for row in conn.fetch_all(q).await? {
            bookings.push((R::text(&row, "slot_id".into())?, R::text(&row, "appointment_id".into())?));
        }
    }
    Ok(bookings)
}

/// Records the slot's booking; a slot already booked gets [`StoreError::Conflict`].
pub async fn put_slot_booking<D: Dialect, W: Writer<D>>(
    conn: &mut W,
    SlotId(slot_id): SlotId<'_>,
    AppointmentId(appointment_id): AppointmentId<'_>,
    cancel_deadline: Option<Timestamp>,
) -> SqlResult<(), D> {
    let mut q = D::builder("INSERT INTO slot_booking (slot_id, appointment_id, cancel_deadline) VALUES (");
    q.push_value(slot_id)
        .push(", ")
        .push_value(appointment_id)
        .push(", ")
        .push_value(cancel_deadline.map(format_instant))
        .push(")");
    match conn.execute(q).await {
        Err(e) if is_unique_violation(&e) => {
            Err(StoreError::Conflict(format!("Slot/{slot_id} is already booked")).into())
        }
        other => Ok(other?),
    }
}

/// The cancellation deadline recorded with the slot's booking (`None`: no booking, or none set).
pub async fn booking_cancel_deadline<D: Dialect, R: Reader<D>>(
    conn: &mut R,
    slot_id: &str,
) -> SqlResult<Option<Timestamp>, D> {
    let mut q = D::builder("SELECT cancel_deadline FROM slot_booking WHERE slot_id = ");
    q.push_value(slot_id);
    let deadline = match conn.fetch_optional(q).await? {
        Some(row) => R::optional_text(&row, "cancel_deadline".into())?,
        None => None,
    };
    Ok(parse_instant_column(deadline)?)
}

pub async fn delete_slot_booking<D: Dialect, W: Writer<D>>(conn: &mut W, slot_id: &str) -> SqlResult<(), D> {
    delete_by_slot(conn, "slot_booking", slot_id).await
}

async fn delete_by_slot<D: Dialect, W: Writer<D>>(conn: &mut W, table: &str, slot_id: &str) -> SqlResult<(), D> {
    let mut q = D::builder(format!("DELETE FROM {table} WHERE slot_id = "));
    q.push_value(slot_id);
    conn.execute(q).await
}

/// Appends events to the outbox in one statement, in this order.
pub async fn append_events<D: Dialect, W: Writer<D>>(conn: &mut W, events: &[DomainEvent]) -> SqlResult<(), D> {
    if events.is_empty() {
        return Ok(());
    }
    let mut insert = D::builder("INSERT INTO outbox (kind, res_type, res_id, version, occurred_at, detail) VALUES ");
    for (i, event) in events.iter().enumerate() {
        insert
            .push(if i == 0 { "(" } else { ", (" })
            .push_value(event.kind.as_str())
            .push(", ")
            .push_value(event.resource_type.as_str())
            .push(", ")
            .push_value(event.resource_id.as_str())
            .push(", ")
            .push_value(integer(event.version))
            .push(", ")
            .push_value(format_instant(event.occurred_at))
            .push(", ")
            .push_value(event.detail.as_str())
            .push(")");
    }
    conn.execute(insert).await
}

/// The outbox events after sequence number `after`, in order.
pub async fn events<D: Dialect, R: Reader<D>>(
    conn: &mut R,
    after: u64,
    limit: usize,
) -> SqlResult<Vec<(u64, DomainEvent)>, D> {
    let mut q = D::builder("SELECT seq, kind, res_type, res_id, version, occurred_at, detail FROM outbox WHERE seq > ");
    q.push_value(integer(after)).push(" ORDER BY seq LIMIT ").push_value(integer(limit));
    let rows = conn.fetch_all(q).await?;
    rows.iter().map(decode_event::<D, R>).collect()
}

/// The fingerprint of the search-parameter set the index rows were built with.
pub async fn search_index_fingerprint<D: Dialect, R: Reader<D>>(conn: &mut R) -> SqlResult<Option<String>, D> {
    let row = conn.fetch_optional(D::builder("SELECT fingerprint FROM search_index_state")).await?;
    row.map(|row| R::text(&row, "fingerprint".into())).transpose()
}

/// Deletes at most `limit` resources of `resource_type` last changed before `before`, with
/// their history and index rows; answers their ids. `last_updated` is a fixed-width UTC instant,
/// so text order is time order.
pub async fn purge_older_than<D: Dialect, W: Writer<D>>(
    conn: &mut W,
    resource_type: ResourceType,
    before: Timestamp,
    limit: usize,
) -> SqlResult<Vec<String>, D> {
    if resource_type == ResourceType::AuditEvent {
        return crate::audit::purge_audit_events(conn, before, limit).await;
    }
    let res_type = resource_type.as_str();
    let mut old = D::builder("SELECT res_id FROM resource WHERE res_type = ");
    old.push_value(res_type)
        .push(" AND last_updated < ")
        .push_value(format_instant(before))
        .push(" ORDER BY last_updated LIMIT ")
        .push_value(i64::try_from(limit).unwrap_or(i64::MAX));
    let ids = first_texts(conn, old).await?;
    for id in &ids {
        for statement in crate::index::clear::<D>(res_type, id) {
            conn.execute(statement).await?;
        }
        for table in ["resource_history", "resource"] {
            let mut delete = D::builder(format!("DELETE FROM {table} WHERE res_type = "));
            delete.push_value(res_type).push(" AND res_id = ").push_value(id.as_str());
            conn.execute(delete).await?;
        }
    }
    Ok(ids)
}
