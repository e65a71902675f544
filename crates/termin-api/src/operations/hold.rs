//! `Slot/$hold` and `Slot/[id]/$hold`: place, renew or release a hold on a Slot.

use super::{Answer, Invocation, Operation, StateChangeInput, outcome_resource, param_path, parameter, parameters, resource_param};
use crate::SharedState;
use crate::error::ApiError;
use crate::format::FhirResponse;
use axum::http::StatusCode;
use serde_json::{Map, Value, json};
use termin_domain::{HoldOutcome, SlotSelector};
use termin_fhir::instant::format_instant;
use termin_fhir::{Issue, IssueCode, OperationOutcome, Parameters, ResourceType};
use termin_store::Permission;

pub const HOLD: Operation = Operation {
    id: "slot-hold",
    code: "hold",
    resources: &[ResourceType::Slot],
    instance: true,
    safe: false,
    base: "https://fhir.hl7.at/tc/wg/scheduling/r5/OperationDefinition/slot-hold",
    needs_validator: false,
    needs: Some((ResourceType::Slot, Permission::Update)),
    description: "Places a hold on a Slot (busy-tentative) until held-until, or releases it (free). \
        A hold belongs to the caller that placed it, proven by the returned hold-token.",
    parameters: definition_parameters,
    handler: |state, call| Box::pin(hold(state, call)),
};

fn definition_parameters() -> Value {
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

async fn hold(state: SharedState, call: Invocation) -> Answer {
    let body = call.body.unwrap_or_default();
    let input = StateChangeInput::read(&body, call.resource_type)?;
    let ctx = input.context(call.ctx);
    let want_hold = wants_hold(input.parameters())?;
    let selector = slot_selector(call.id, input.parameters())?;
    let outcome = state.domain.scheduling.hold_slot(&ctx, &selector, want_hold).await?;
    let counted = match &outcome {
        HoldOutcome::Held { .. } => "held",
        HoldOutcome::Released { .. } => "released",
        HoldOutcome::Rejected { .. } => "rejected",
    };
    metrics::counter!("termin_holds_total", "outcome" => counted).increment(1);
    let (status, entries) = match outcome {
        HoldOutcome::Held { slot, held_until, token } => (
            StatusCode::OK,
            vec![
                resource_param("slot", Value::Object(slot)),
                resource_param("outcome", outcome_resource(&OperationOutcome::success("Slot hold completed successfully"))),
                json!({"name": "held-until", "valueDateTime": format_instant(held_until)}),
                json!({"name": "hold-token", "valueString": token}),
            ],
        ),
        HoldOutcome::Released { slot } => (
            StatusCode::OK,
            vec![
                resource_param("slot", Value::Object(slot)),
                resource_param("outcome", outcome_resource(&OperationOutcome::success("Slot hold released successfully"))),
            ],
        ),
        HoldOutcome::Rejected { slot, outcome } => (
            StatusCode::CONFLICT,
            vec![resource_param("slot", Value::Object(slot)), resource_param("outcome", outcome_resource(&outcome))],
        ),
    };
    Ok(FhirResponse::new(status, call.format).json(parameters(entries)))
}

/// `slot-status`: busy-tentative holds, free releases. The IG's hold-release example writes
/// `code` for `valueCode`; Termin reads that, and `valueString`, leniently.
fn wants_hold(parameters: Option<Parameters>) -> Result<bool, ApiError> {
    match parameters.and_then(|p| p.text("slot-status", &["valueCode", "valueString", "code"])) {
        Some("busy-tentative") => Ok(true),
        Some("free") => Ok(false),
        Some(other) => Err(ApiError::bad_request(
            Issue::error(
                IssueCode::CodeInvalid,
                format!("slot-status must be busy-tentative (hold) or free (release), not {other:?}"),
            )
            .at(param_path("slot-status")),
        )),
        None => Err(ApiError::bad_request(
            Issue::error(IssueCode::Required, "slot-status is required: busy-tentative or free")
                .at(param_path("slot-status")),
        )),
    }
}

fn slot_selector(path_id: Option<String>, parameters: Option<Parameters>) -> Result<SlotSelector, ApiError> {
    let reference = parameters.and_then(|p| {
        p.named("slot-reference")
            .find_map(|entry| entry.get("valueReference").and_then(|r| r.get("reference")).and_then(Value::as_str))
    });
    let identifiers: Vec<(Option<String>, String)> = parameters
        .into_iter()
        .flat_map(|p| p.named("slot-identifier"))
        .filter_map(|entry| entry.get("valueIdentifier").and_then(Value::as_object))
        .filter_map(identifier)
        .collect();
    let from_reference = match reference {
        None => None,
        Some(reference) => Some(slot_reference_id(reference).ok_or_else(|| {
            ApiError::bad_request(
                Issue::error(IssueCode::Value, format!("slot-reference {reference:?} is not a reference to a Slot"))
                    .at(param_path("slot-reference")),
            )
        })?),
    };
    match (path_id, from_reference, identifiers.is_empty()) {
        (Some(path), Some(named), _) if path != named => Err(ApiError::bad_request(
            Issue::error(IssueCode::Value, format!("slot-reference names Slot/{named} but the URL names Slot/{path}"))
                .at(param_path("slot-reference")),
        )),
        (Some(id), _, _) | (None, Some(id), _) => Ok(SlotSelector::Id(id)),
        (None, None, false) => Ok(SlotSelector::Identifiers(identifiers)),
        (None, None, true) => Err(ApiError::bad_request(
            Issue::error(IssueCode::Required, "Name the slot with slot-reference or slot-identifier")
                .at("Parameters.parameter"),
        )),
    }
}

/// `(system, value)` of an Identifier with a value.
fn identifier(identifier: &Map<String, Value>) -> Option<(Option<String>, String)> {
    let value = identifier.get("value").and_then(Value::as_str)?;
    Some((identifier.get("system").and_then(Value::as_str).map(str::to_owned), value.to_owned()))
}

/// `Slot/[id]` (also absolute, or with the IG example's `Slt/` typo read leniently).
fn slot_reference_id(reference: &str) -> Option<String> {
    termin_fhir::parse_literal(reference.trim_end_matches('/'))
        .filter(|literal| matches!(literal.resource_type, "Slot" | "Slt"))
        .map(|literal| literal.id.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_slot_references_leniently() {
        assert_eq!(slot_reference_id("Slot/a").as_deref(), Some("a"));
        assert_eq!(slot_reference_id("http://h/fhir/Slot/a").as_deref(), Some("a"));
        assert_eq!(slot_reference_id("Slt/a").as_deref(), Some("a"));
        assert_eq!(slot_reference_id("Appointment/a"), None);
    }
}
