//! The FHIR operations Termin implements, with their OperationDefinitions. The router and
//! the CapabilityStatement are both built from [`OPERATIONS`].

use serde_json::{Value, json};
use termin_fhir::ResourceType;
use termin_store::Permission;

/// Canonical base of Termin's own definitions (derived from the IG's, with Termin's extras).
const TERMIN_BASE: &str = "https://termin.at/fhir/OperationDefinition";

/// How the documentation of a parameter Termin adds to the definition it derives from starts.
const TERMIN_PARAMETER: &str = "Termin: ";

pub struct Operation {
    /// The OperationDefinition id, as served at `/fhir/OperationDefinition/[id]`.
    pub id: &'static str,
    /// The name after `$` in URLs.
    pub code: &'static str,
    /// The types it is invoked on (`[type]/$code`).
    pub resources: &'static [ResourceType],
    pub instance: bool,
    /// The definition it is derived from (its `base`): the AT Scheduling IG's own canonical
    /// (R5's for `$validate`), which the CapabilityStatement names as the definition.
    pub base: &'static str,
    /// Only offered when resources are validated (`--packages`).
    pub needs_validator: bool,
    /// The SMART permission a caller needs; `None`: any valid token (it touches no data).
    pub needs: Option<(ResourceType, Permission)>,
    pub description: &'static str,
    pub parameters: fn() -> Value,
}

impl Operation {
    pub fn url(&self) -> String {
        format!("{TERMIN_BASE}/{}", self.id)
    }

    /// The parameters Termin adds to the definition it derives from (`name (use)`).
    pub fn termin_parameters(&self) -> Vec<String> {
        let parameters = (self.parameters)();
        parameters
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["documentation"].as_str().is_some_and(|d| d.starts_with(TERMIN_PARAMETER)))
            .map(|p| format!("{} ({})", p["name"].as_str().unwrap_or_default(), p["use"].as_str().unwrap_or_default()))
            .collect()
    }

    /// What Termin adds to the base definition, for the served definition and the
    /// CapabilityStatement.
    pub fn additions(&self) -> String {
        let added = self.termin_parameters();
        if added.is_empty() {
            format!("Implements {} as defined", self.base)
        } else {
            format!("Implements {} and adds the parameters {}", self.base, added.join(", "))
        }
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
            "description": format!("{} {}.", self.description, self.additions()),
            "base": self.base,
            "code": self.code,
            "resource": self.resources.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
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

fn validate_parameters() -> Value {
    json!([
        parameter("resource", "in", 0, "1", "Resource",
            "The resource to validate; the request body may also be the resource itself."),
        parameter("mode", "in", 0, "1", "code",
            "Accepted for compatibility; Termin validates the content in every mode."),
        parameter("profile", "in", 0, "1", "canonical",
            "A profile to validate against as well as R5 and the profile the server enforces for the type (also as ?profile=)."),
        parameter("return", "out", 1, "1", "OperationOutcome",
            "One issue per problem (errors, warnings), or a single information issue when there is none."),
    ])
}

fn find_hsp_parameters() -> Value {
    json!([
        parameter("healthcareService-reference", "in", 0, "1", "Reference",
            "The HealthcareService (a reference, a logical reference by identifier — `system|value` in a GET — \
             or the resource inline as `resource`); it SHALL be active."),
        parameter("healthcareService-category", "in", 0, "1", "string", "Category code as system|code."),
        parameter("healthcareService-type", "in", 0, "1", "string",
            "Type code as system|code (the IG example's `healthcareService-type=system|code` form is read too)."),
        parameter("healthcareService-specialty", "in", 0, "1", "string", "Specialty code as system|code."),
        parameter("healthcareService-location", "in", 0, "*", "Reference", "Wanted Location (reference or identifier)."),
        parameter("healthcareService-zipCodeArea", "in", 0, "*", "string",
            "Wanted zip code area; a prefix covers the area (53 covers 5300-5399)."),
        parameter("healthcareService-availability", "in", 0, "*", "Availability", "Wanted times (POST only)."),
        parameter("availability-until", "in", 0, "1", "dateTime",
            "Termin: how far ahead availability and free slots are looked at (a date includes that day); \
             default 28 days, at most 90 days ahead (else 400)."),
        parameter("near", "in", 0, "1", "string",
            "Termin: latitude|longitude|distance|unit as R5's `near` (unit km, m or [mi_i], default km; distance \
             default near-distance, else 10 km): providers at Locations whose position lies within the distance, \
             nearest first."),
        parameter("near-distance", "in", 0, "1", "string",
            "Termin: distance|unit around `near` (when it names none) and around each healthcareService-location \
             that has a position (default 10 km): Locations within it are wanted places too, nearest first."),
        parameter("return", "out", 1, "1", "Bundle",
            "searchset: matching HealthcareServices (match), their providers (include) and an OperationOutcome \
             (outcome) naming each provider's earliest free slot in the wanted time."),
    ])
}

fn subscription_status_parameters() -> Value {
    json!([
        parameter("return", "out", 1, "1", "Bundle",
            "searchset with one SubscriptionStatus (type query-status): status, eventsSinceSubscriptionStart, \
             topic and the last delivery error, if any."),
    ])
}

fn subscription_events_parameters() -> Value {
    json!([
        parameter("eventsSinceNumber", "in", 0, "1", "integer64", "The first event number wanted (default 1)."),
        parameter("eventsUntilNumber", "in", 0, "1", "integer64",
            "The last event number wanted (default the latest); at most 100 events are returned per call."),
        parameter("content", "in", 0, "1", "code", "empty, id-only or full-resource (default: the Subscription's)."),
        parameter("return", "out", 1, "1", "Bundle",
            "subscription-notification Bundle: a SubscriptionStatus (type query-event) with the events, then the \
             focus resources for full-resource."),
    ])
}

fn ws_binding_token_parameters() -> Value {
    json!([
        parameter("token", "out", 1, "1", "string", "Send `bind-with-token <token>` on the websocket."),
        parameter("expiration", "out", 1, "1", "dateTime", "The token is accepted until then (5 minutes)."),
        parameter("subscription", "out", 0, "*", "string", "The Subscription the token binds to."),
        parameter("websocket-url", "out", 1, "1", "url", "Where to connect: [server]/fhir/$subscription-ws."),
    ])
}

pub const OPERATIONS: &[Operation] = &[
    Operation {
        id: "slot-hold",
        code: "hold",
        resources: &[ResourceType::Slot],
        instance: true,
        base: "https://fhir.hl7.at/tc/wg/scheduling/r5/OperationDefinition/slot-hold",
        needs_validator: false,
        needs: Some((ResourceType::Slot, Permission::Update)),
        description: "Places a hold on a Slot (busy-tentative) until held-until, or releases it (free). \
            A hold belongs to the caller that placed it, proven by the returned hold-token.",
        parameters: hold_parameters,
    },
    Operation {
        id: "appointment-book",
        code: "book",
        resources: &[ResourceType::Appointment],
        instance: false,
        base: "https://fhir.hl7.at/tc/wg/scheduling/r5/OperationDefinition/appointment-book",
        needs_validator: false,
        needs: Some((ResourceType::Appointment, Permission::Create)),
        description: "Books a proposed Appointment on the Slots it names: 201 booked, 202 pending \
            (manual confirmation), 409 rejected with the Appointment as cancelled.",
        parameters: book_parameters,
    },
    Operation {
        id: "healthcareService-provider-find",
        code: "findHSP",
        resources: &[ResourceType::HealthcareService],
        instance: false,
        base: "https://fhir.hl7.at/tc/wg/scheduling/r5/OperationDefinition/healthcareService-provider-find",
        needs_validator: false,
        needs: Some((ResourceType::HealthcareService, Permission::Read)),
        description: "Finds the providers (Organization, PractitionerRole, Practitioner) of the active \
            HealthcareServices matching the wanted codes, near the wanted place, at the wanted time; GET or POST.",
        parameters: find_hsp_parameters,
    },
    Operation {
        id: "resource-validate",
        code: "validate",
        resources: &ResourceType::ALL,
        instance: true,
        base: "http://hl7.org/fhir/OperationDefinition/Resource-validate",
        needs_validator: true,
        needs: None,
        description: "Validates a resource against FHIR R5, the profile the server enforces for its type \
            and an optional profile, and returns the OperationOutcome (200 also when it has errors); \
            nothing is stored.",
        parameters: validate_parameters,
    },
    Operation {
        id: "Subscription-status",
        code: "status",
        resources: &[ResourceType::Subscription],
        instance: true,
        base: "http://hl7.org/fhir/OperationDefinition/Subscription-status",
        needs_validator: false,
        needs: Some((ResourceType::Subscription, Permission::Read)),
        description: "The delivery status of a Subscription (GET or POST on Subscription/[id]).",
        parameters: subscription_status_parameters,
    },
    Operation {
        id: "Subscription-events",
        code: "events",
        resources: &[ResourceType::Subscription],
        instance: true,
        base: "http://hl7.org/fhir/OperationDefinition/Subscription-events",
        needs_validator: false,
        needs: Some((ResourceType::Subscription, Permission::Read)),
        description: "Replays a Subscription's numbered events, e.g. those a receiver missed (GET or POST on \
            Subscription/[id]).",
        parameters: subscription_events_parameters,
    },
    Operation {
        id: "Subscription-get-ws-binding-token",
        code: "get-ws-binding-token",
        resources: &[ResourceType::Subscription],
        instance: true,
        base: "http://hl7.org/fhir/OperationDefinition/Subscription-get-ws-binding-token",
        needs_validator: false,
        needs: Some((ResourceType::Subscription, Permission::Read)),
        description: "A token that binds a websocket to a websocket-channel Subscription (POST on \
            Subscription/[id]); the token is valid on the node that issued it.",
        parameters: ws_binding_token_parameters,
    },
];

pub fn find(resource: ResourceType, code: &str, instance: bool) -> Option<&'static Operation> {
    OPERATIONS
        .iter()
        .find(|op| op.resources.contains(&resource) && op.code == code && (op.instance || !instance))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definitions_name_their_base() {
        for op in OPERATIONS {
            let definition = op.definition();
            assert_eq!(definition["code"], op.code);
            assert!(definition["base"].as_str().unwrap().to_lowercase().ends_with(&op.id.to_lowercase()));
        }
        assert!(find(ResourceType::Slot, "hold", true).is_some());
        assert!(find(ResourceType::Appointment, "book", true).is_none());
        assert!(find(ResourceType::Location, "validate", true).is_some());
    }

    #[test]
    fn termin_additions_are_named() {
        let hold = find(ResourceType::Slot, "hold", false).unwrap();
        assert_eq!(hold.termin_parameters(), ["hold-token (in)", "hold-token (out)"]);
        assert!(hold.definition()["description"].as_str().unwrap().contains("adds the parameters hold-token (in)"));
        let find_hsp = find(ResourceType::HealthcareService, "findHSP", false).unwrap();
        assert_eq!(find_hsp.termin_parameters(), ["availability-until (in)", "near (in)", "near-distance (in)"]);
    }
}
