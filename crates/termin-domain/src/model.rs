//! Reading the scheduling facts out of Slot and Appointment JSON.

use jiff::Timestamp;
use serde_json::{Map, Value};
use termin_fhir::ResourceType;

/// Appointment statuses in which the appointment occupies its slots.
const OCCUPYING: [&str; 6] = ["pending", "booked", "arrived", "checked-in", "fulfilled", "noshow"];

pub use termin_store::{AppointmentId, SlotId};

pub fn status(resource: &Map<String, Value>) -> Option<&str> {
    resource.get("status").and_then(Value::as_str)
}

pub fn occupies_slots(appointment: &Map<String, Value>) -> bool {
    status(appointment).is_some_and(|s| OCCUPYING.contains(&s))
}

pub fn is_cancelled(appointment: &Map<String, Value>) -> bool {
    matches!(status(appointment), Some("cancelled" | "entered-in-error"))
}

/// The logical id of a reference to `expected`, owned (see [`termin_fhir::reference_id`]).
pub fn reference_id(reference: &str, expected: ResourceType) -> Option<String> {
    termin_fhir::reference_id(reference, expected).map(str::to_owned)
}

/// The permission a write needs: it creates (nothing before), deletes (nothing after) or updates.
pub(crate) fn write_permission(previous: Option<&Map<String, Value>>, new: Option<&Map<String, Value>>) -> termin_store::Permission {
    use termin_store::Permission;
    match (previous, new) {
        (None, _) => Permission::Create,
        (Some(_), None) => Permission::Delete,
        (Some(_), Some(_)) => Permission::Update,
    }
}

/// Ids of the slots an Appointment lists, in order, without repeats.
pub fn slot_ids(appointment: &Map<String, Value>) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    for slot in appointment.get("slot").and_then(Value::as_array).into_iter().flatten() {
        if let Some(id) = slot
            .get("reference")
            .and_then(Value::as_str)
            .and_then(|r| reference_id(r, ResourceType::Slot))
            && !ids.contains(&id)
        {
            ids.push(id);
        }
    }
    ids
}

pub fn instant(resource: &Map<String, Value>, element: &str) -> Option<Timestamp> {
    resource.get(element).and_then(Value::as_str).and_then(|s| s.parse().ok())
}

pub fn schedule_id(slot: &Map<String, Value>) -> Option<String> {
    slot.get("schedule")
        .and_then(|s| s.get("reference"))
        .and_then(Value::as_str)
        .and_then(|r| reference_id(r, ResourceType::Schedule))
}

/// `active` true or absent (the IG reads an absent flag as active).
pub fn is_active(resource: &Map<String, Value>) -> bool {
    resource.get("active").and_then(Value::as_bool).unwrap_or(true)
}

/// The Patient references among the Appointment's participants, sorted, for comparison.
pub fn patient_participants(appointment: &Map<String, Value>) -> Vec<Value> {
    let mut actors: Vec<Value> = appointment
        .get("participant")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| p.get("actor"))
        .filter(|actor| {
            let by_reference = actor
                .get("reference")
                .and_then(Value::as_str)
                .is_some_and(|r| reference_id(r, ResourceType::Patient).is_some());
            let by_type = actor.get("type").and_then(Value::as_str) == Some("Patient");
            by_reference || by_type
        })
        .cloned()
        .collect();
    actors.sort_by_key(|a| a.to_string());
    actors
}

pub fn parse_object(text: &str) -> Option<Map<String, Value>> {
    termin_fhir::json::parse_stored_object(text)
}

/// The resource's extension with `url`, if it has one.
pub(crate) fn extension<'a>(resource: &'a Map<String, Value>, url: &str) -> Option<&'a Value> {
    resource
        .get("extension")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|e| e.get("url").and_then(Value::as_str) == Some(url))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_references() {
        assert_eq!(reference_id("Slot/a-1", ResourceType::Slot).as_deref(), Some("a-1"));
        assert_eq!(reference_id("http://x/fhir/Slot/b/_history/3", ResourceType::Slot).as_deref(), Some("b"));
        assert_eq!(reference_id("Schedule/a", ResourceType::Slot), None);
        assert_eq!(reference_id("#contained", ResourceType::Slot), None);
    }
}
