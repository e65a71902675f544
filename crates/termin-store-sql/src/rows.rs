//! Decoding the rows of the shared tables into the store's types. Stored instants are text
//! (`format_instant`) and counters are signed 64-bit integers on both backends.

use crate::{Dialect, Reader, SqlResult, Sqlx};
use jiff::Timestamp;
use termin_fhir::ResourceType;
use termin_store::{DomainEvent, ResourceVersion, SlotHold, StoreError};

fn resource_type(name: &str) -> Result<ResourceType, StoreError> {
    name.parse().map_err(|_| StoreError::Corrupt(format!("unknown resource type {name:?}")))
}

fn instant(column: &str, text: &str) -> Result<Timestamp, StoreError> {
    text.parse().map_err(|e| StoreError::Corrupt(format!("bad {column} {text:?}: {e}")))
}

pub(crate) fn unsigned(column: &str, value: i64) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("negative {column} {value}")))
}

/// Decodes `res_type, res_id, version, last_updated, body` columns.
pub fn decode_version<D: Dialect>(row: &D::Row) -> SqlResult<ResourceVersion, D> {
    decode_version_from::<D, Sqlx<'static, D>>(row)
}

/// [`decode_version`] of a row read by any [`Reader`].
pub fn decode_version_from<D: Dialect, R: Reader<D>>(row: &R::Row) -> SqlResult<ResourceVersion, D> {
    Ok(ResourceVersion {
        resource_type: resource_type(&R::text(row, "res_type".into())?)?,
        id: R::text(row, "res_id".into())?,
        version: unsigned("version", R::integer(row, "version".into())?)?,
        last_updated: instant("last_updated", &R::text(row, "last_updated".into())?)?,
        body: R::optional_text(row, "body".into())?,
    })
}

/// Decodes [`HOLD_COLUMNS`](crate::statements) of `slot_hold`.
pub(crate) fn decode_hold<D: Dialect, R: Reader<D>>(row: &R::Row) -> SqlResult<SlotHold, D> {
    Ok(SlotHold {
        slot_id: R::text(row, "slot_id".into())?,
        holder: R::text(row, "holder".into())?,
        token: R::text(row, "token".into())?,
        held_until: instant("held_until", &R::text(row, "held_until".into())?)?,
        placed_at: instant("placed_at", &R::text(row, "placed_at".into())?)?,
    })
}

/// Decodes an `outbox` row: its sequence number and event.
pub(crate) fn decode_event<D: Dialect, R: Reader<D>>(row: &R::Row) -> SqlResult<(u64, DomainEvent), D> {
    Ok((
        unsigned("seq", R::integer(row, "seq".into())?)?,
        DomainEvent {
            kind: R::text(row, "kind".into())?,
            resource_type: resource_type(&R::text(row, "res_type".into())?)?,
            resource_id: R::text(row, "res_id".into())?,
            version: unsigned("version", R::integer(row, "version".into())?)?,
            occurred_at: instant("occurred_at", &R::text(row, "occurred_at".into())?)?,
            detail: R::text(row, "detail".into())?,
        },
    ))
}
