//! The FHIR operations Termin implements, with their OperationDefinitions. The router and
//! the CapabilityStatement are both built from [`OPERATIONS`].

use serde_json::{Value, json};
use termin_fhir::ResourceType;

/// Canonical base of the AT Scheduling IG (compiled package).
const IG_BASE: &str = "https://fhir.hl7.at/tc/wg/scheduling/r5/OperationDefinition";
/// Canonical base of Termin's own definitions (derived from the IG's, with Termin's extras).
const TERMIN_BASE: &str = "https://termin.at/fhir/OperationDefinition";

pub struct Operation {
    /// The OperationDefinition id, as served at `/fhir/OperationDefinition/[id]`.
    pub id: &'static str,
    /// The name after `$` in URLs.
    pub code: &'static str,
    pub resource: ResourceType,
    pub instance: bool,
    pub description: &'static str,
    pub parameters: fn() -> Value,
}

impl Operation {
    pub fn url(&self) -> String {
        format!("{TERMIN_BASE}/{}", self.id)
    }

    pub fn definition(&self) -> Value {
        json!({
            "resourceType": "OperationDefinition",
            "id": self.id,
            "url": self.url(),
            "name": self.id.replace('-', "_"),
            "title": format!("${} as implemented by Termin", self.code),
            "status": "active",
            "kind": "operation",
            "description": self.description,
            "base": format!("{IG_BASE}/{}", self.id),
            "code": self.code,
            "resource": [self.resource.as_str()],
            "system": false,
            "type": true,
            "instance": self.instance,
            "parameter": (self.parameters)(),
        })
    }
}

fn parameter(name: &str, use_: &str, min: u32, max: &str, type_: &str, documentation: &str) -> Value {
    json!({"name": name, "use": use_, "min": min, "max": max, "type": type_, "documentation": documentation})
}

fn hold_parameters() -> Value {
    json!([
        parameter("slot-reference", "in", 0, "1", "Reference",
            "The Slot to hold or release (Slot/[id] or an absolute URL on this server). Not needed on Slot/[id]/$hold."),
        parameter("slot-identifier", "in", 0, "*", "Identifier",
            "Identifiers that together name exactly one Slot."),
        parameter("slot-status", "in", 1, "1", "code",
            "busy-tentative to place a hold, free to release it."),
        parameter("hold-token", "in", 0, "1", "string",
            "Termin: the token of an earlier hold, to renew or release it (also accepted as the X-Hold-Token header)."),
        parameter("slot", "out", 1, "1", "Slot", "The Slot as it is now for the caller."),
        parameter("outcome", "out", 1, "1", "OperationOutcome", "What happened."),
        parameter("held-until", "out", 0, "1", "dateTime", "When the hold expires (holds only)."),
        parameter("hold-token", "out", 0, "1", "string",
            "Termin: proves ownership of the hold; pass it to $book (or as X-Hold-Token) to book the held slot."),
    ])
}

fn book_parameters() -> Value {
    json!([
        parameter("appointment-resource", "in", 1, "1", "Appointment",
            "The Appointment to book, with status proposed."),
        parameter("hold-token", "in", 0, "*", "string",
            "Termin: tokens of holds on the Appointment's slots (also accepted as the X-Hold-Token header)."),
        parameter("appointment", "out", 1, "1", "Appointment",
            "The Appointment: booked, pending (awaiting confirmation) or cancelled (rejected, not stored)."),
        parameter("outcome", "out", 1, "1", "OperationOutcome", "What happened."),
    ])
}

pub const OPERATIONS: &[Operation] = &[
    Operation {
        id: "slot-hold",
        code: "hold",
        resource: ResourceType::Slot,
        instance: true,
        description: "Places a hold on a Slot (busy-tentative) until held-until, or releases it (free). \
            A hold belongs to the caller that placed it, proven by the returned hold-token.",
        parameters: hold_parameters,
    },
    Operation {
        id: "appointment-book",
        code: "book",
        resource: ResourceType::Appointment,
        instance: false,
        description: "Books a proposed Appointment on the Slots it names: 201 booked, 202 pending \
            (manual confirmation), 409 rejected with the Appointment as cancelled.",
        parameters: book_parameters,
    },
];

pub fn find(resource: ResourceType, code: &str, instance: bool) -> Option<&'static Operation> {
    OPERATIONS
        .iter()
        .find(|op| op.resource == resource && op.code == code && (op.instance || !instance))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definitions_name_their_ig_base() {
        for op in OPERATIONS {
            let definition = op.definition();
            assert_eq!(definition["code"], op.code);
            assert!(definition["base"].as_str().unwrap().ends_with(op.id));
        }
        assert!(find(ResourceType::Slot, "hold", true).is_some());
        assert!(find(ResourceType::Appointment, "book", true).is_none());
    }
}
