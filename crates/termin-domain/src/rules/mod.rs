//! The scheduling rules: the only place where Slot and Appointment states change together.
//! Generic writes (POST, PUT, conditional update, delete) of Slots and Appointments pass
//! through [`guard_write`]; the scheduling service's `$hold`, `$book` and hold-expiry sweeper
//! build on the same slot transitions, so no route can bypass them.
//!
//! Slot states as Termin keeps them (see [`state::SlotState`]):
//! - `free`: no live hold, no booking;
//! - `busy-tentative`: a live hold (table `slot_hold`); once `held-until` has passed the slot
//!   is treated as free everywhere, whether or not the sweeper has stored that yet;
//! - `busy`: occupied by exactly one active Appointment (table `slot_booking`);
//! - `busy-unavailable`, `entered-in-error`: set by staff, never bookable.

pub(crate) mod guard;
pub(crate) mod offer;
pub(crate) mod policy;
pub(crate) mod sequence;
pub(crate) mod state;

pub(crate) use guard::guard_write;

use crate::DomainError;
use jiff::Timestamp;
use serde_json::{Map, Value, json};
use termin_fhir::ResourceType;
use crate::unit_of_work::UnitOfWork;
use state::SlotState;
use crate::model;
use termin_store::{DomainEvent, IndexEntries, ResourceVersion, SlotHold};

/// Extension (valueBoolean) on a Schedule or HealthcareService: bookings need a staff
/// confirmation, so `$book` answers `pending` instead of `booked`.
pub const MANUAL_CONFIRMATION_URL: &str = "https://termin.at/fhir/StructureDefinition/manual-confirmation";

/// Extension (valueBoolean) on a HealthcareService: `false` refuses booking requests, `$book`
/// without `Appointment.slot`, which are otherwise stored `pending` for staff to give a slot.
pub const BOOKING_REQUESTS_URL: &str = "https://termin.at/fhir/StructureDefinition/booking-requests";

pub(crate) fn hold_is_live(hold: &SlotHold, now: Timestamp) -> bool {
    hold.held_until > now
}


pub(crate) async fn record_event(
    tx: &mut UnitOfWork,
    kind: &str,
    resource_type: ResourceType,
    id: &str,
    version: u64,
    now: Timestamp,
    detail: Value,
) -> Result<(), DomainError> {
    tx.append_event(&DomainEvent {
        kind: kind.to_owned(),
        resource_type,
        resource_id: id.to_owned(),
        version,
        occurred_at: now,
        detail: detail.to_string(),
    })
    .await?;
    Ok(())
}

/// Writes a new version of a Slot with another status.
pub(crate) async fn set_slot_status(
    tx: &mut UnitOfWork,
    slot: &ResourceVersion,
    mut body: Map<String, Value>,
    status: &str,
    now: Timestamp,
) -> Result<Map<String, Value>, DomainError> {
    body.insert("status".into(), json!(status));
    let (mut new, written) = crate::version::new_version(tx.search_parameters(), ResourceType::Slot, &slot.id, body, Some(slot), now)?;
    apply_hold_window(tx, &slot.id, &mut new.index).await?;
    tx.write(new, Some(written.clone())).await?;
    Ok(written)
}

/// Makes a held Slot's `status` index row turn from `busy-tentative` to `free` when its hold
/// expires, so searches see the expiry at once, before the sweeper stores it.
pub(crate) async fn apply_hold_window(
    tx: &mut UnitOfWork,
    slot_id: &str,
    index: &mut IndexEntries,
) -> Result<(), DomainError> {
    // Also for a hold that has already expired: its rows then read free from the start.
    if let Some(hold) = tx.hold(slot_id).await? {
        termin_search::token_changes_at(index, "status", hold.held_until, "free");
    }
    Ok(())
}

/// Rewrites the stored status of Slots whose hold has expired, for reads and searches.
pub(crate) fn present_slot(body: &str, hold: Option<&SlotHold>, now: Timestamp) -> Option<String> {
    let mut slot = model::parse_object(body)?;
    if !SlotState::shown(model::status(&slot), hold, now).hold_expired_unswept() {
        return None;
    }
    slot.insert("status".into(), json!(state::FREE));
    serde_json::to_string(&slot).ok()
}

