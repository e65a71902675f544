//! The identity of a generated slot: its id and identifier derive from the Schedule and the
//! start, so that regenerating finds what an earlier generation made, and the seed data and the
//! server's generation name the same slot alike.

use jiff::Timestamp;

/// The identifier system of generated Slots; the value is `Schedule/[id]/[start in UTC]`.
pub const GENERATED_SLOT_SYSTEM: &str = "https://termin.at/fhir/sid/generated-slot";

/// The identifier value: `Schedule/[id]/[start in UTC, milliseconds]`.
pub fn generated_slot_identifier(schedule_id: &str, start: Timestamp) -> String {
    format!("Schedule/{schedule_id}/{}", start.strftime("%Y-%m-%dT%H:%M:%S%.3fZ"))
}

/// The Slot id: a name-based (v5) UUID of the identifier value.
pub fn generated_slot_id(schedule_id: &str, start: Timestamp) -> String {
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, generated_slot_identifier(schedule_id, start).as_bytes()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_identity_derives_from_schedule_and_start() {
        let start: Timestamp = "2030-03-31T01:00:00Z".parse().unwrap();
        assert_eq!(generated_slot_identifier("sch-1", start), "Schedule/sch-1/2030-03-31T01:00:00.000Z");
        assert_eq!(generated_slot_id("sch-1", start), generated_slot_id("sch-1", start));
        assert_ne!(generated_slot_id("sch-1", start), generated_slot_id("sch-2", start));
    }
}
