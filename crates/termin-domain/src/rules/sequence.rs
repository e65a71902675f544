//! Which slots one Appointment may occupy: each slot once, all of one Schedule, contiguous,
//! and, for patients' clients, none that has started.

use crate::model;
use crate::DomainError;
use jiff::Timestamp;
use serde_json::{Map, Value};
use termin_fhir::instant::format_instant;
use termin_fhir::{Issue, IssueCode, ResourceType};

/// A slot named by an Appointment: its position in `Appointment.slot`, id and body.
pub(crate) struct NamedSlot<'a> {
    pub position: usize,
    pub id: &'a str,
    pub body: &'a Map<String, Value>,
}

fn refused(position: usize, message: String) -> DomainError {
    DomainError::unprocessable(Issue::error(IssueCode::BusinessRule, message).at(format!("Appointment.slot[{position}]")))
}

/// The positions in `Appointment.slot` of the slot ids [`model::slot_ids`] lists, in its order;
/// refuses a slot named twice.
pub(crate) fn slot_positions(appointment: &Map<String, Value>) -> Result<Vec<(usize, String)>, DomainError> {
    let mut positions: Vec<(usize, String)> = Vec::new();
    for (position, slot) in appointment.get("slot").and_then(Value::as_array).into_iter().flatten().enumerate() {
        let Some(id) = slot
            .get("reference")
            .and_then(Value::as_str)
            .and_then(|r| model::reference_id(r, ResourceType::Slot))
        else {
            continue;
        };
        if let Some((first, _)) = positions.iter().find(|(_, known)| *known == id) {
            return Err(refused(position, format!("Slot/{id} is named twice (also at Appointment.slot[{first}])")));
        }
        positions.push((position, id));
    }
    Ok(positions)
}

/// Checks that the slots are of one Schedule and follow each other without gaps (sorted by
/// start, each ends where the next starts), and that none in `not_started` (ids) has started
/// at `now`.
pub(crate) fn check_sequence(slots: &[NamedSlot<'_>], not_started: &[&str], now: Timestamp) -> Result<(), DomainError> {
    let mut timed = Vec::with_capacity(slots.len());
    let schedule = slots.first().and_then(|s| model::schedule_id(s.body));
    for slot in slots {
        let (Some(start), Some(end)) = (model::instant(slot.body, "start"), model::instant(slot.body, "end")) else {
            return Err(refused(slot.position, format!("Slot/{} has no valid start and end", slot.id)));
        };
        if model::schedule_id(slot.body) != schedule {
            return Err(refused(
                slot.position,
                format!("Slot/{} is of another Schedule: the slots of one Appointment are of one Schedule", slot.id),
            ));
        }
        if not_started.contains(&slot.id) && start <= now {
            return Err(refused(
                slot.position,
                format!("Slot/{} started at {}; only slots that have not started can be booked", slot.id, format_instant(start)),
            ));
        }
        timed.push((start, end, slot));
    }
    timed.sort_by_key(|(start, end, _)| (*start, *end));
    for pair in timed.windows(2) {
        let ((_, end, before), (start, _, after)) = (&pair[0], &pair[1]);
        if end != start {
            return Err(refused(
                after.position,
                format!(
                    "Slot/{} does not follow Slot/{} (which ends at {}): the slots of one Appointment must be contiguous",
                    after.id,
                    before.id,
                    format_instant(*end)
                ),
            ));
        }
    }
    Ok(())
}
