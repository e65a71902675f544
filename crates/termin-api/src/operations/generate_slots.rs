//! `Schedule/[id]/$generate-slots`: materialise free Slots from the availability of the
//! Schedule's actor and the Schedule's slot-generation extension.

use super::{Answer, Invocation, Operation, param_path, parameter, parameters};
use crate::SharedState;
use crate::error::ApiError;
use crate::format::FhirResponse;
use axum::http::StatusCode;
use jiff::civil::Date;
use serde_json::{Value, json};
use termin_domain::{GenerationRequest, GenerationSummary, SLOT_GENERATION_URL};
use termin_fhir::instant::format_instant;
use termin_fhir::{Issue, IssueCode, Parameters, ResourceType};
use termin_store::Permission;

pub const GENERATE_SLOTS: Operation = Operation {
    id: "schedule-generate-slots",
    code: "generate-slots",
    resources: &[ResourceType::Schedule],
    instance: true,
    safe: false,
    base: "https://termin.at/fhir/OperationDefinition/schedule-generate-slots",
    needs_validator: false,
    needs: Some((ResourceType::Slot, Permission::Create)),
    description: "Generates the free Slots of a Schedule for a window of days from the availability \
        (availableTime, notAvailableTime) of its PractitionerRole or HealthcareService actor and its \
        slot-generation extension. Idempotent: Slot ids derive from schedule and start. Free, unheld \
        generated Slots the rules no longer give are removed; booked or held ones are kept and listed \
        as conflicts.",
    parameters: definition_parameters,
    handler: |state, call| Box::pin(generate_slots(state, call)),
};

fn definition_parameters() -> Value {
    json!([
        parameter("start", "in", 1, "1", "date", "The first day to generate (local to the Schedule's time zone)."),
        parameter("end", "in", 1, "1", "date", "The last day to generate, included (at most a year after start)."),
        parameter("slot-duration", "in", 0, "1", "Duration",
            &format!("The slot length (min, h or d), overriding slot-duration of the {SLOT_GENERATION_URL} extension.")),
        parameter("dry-run", "in", 0, "1", "boolean", "true: answer what would change, change nothing."),
        parameter("created", "out", 1, "1", "integer", "Slots created."),
        parameter("kept", "out", 1, "1", "integer", "Slots that already matched the rules."),
        parameter("removed", "out", 1, "1", "integer", "Free, unheld generated Slots removed."),
        parameter("conflicts", "out", 1, "1", "integer", "Booked or held Slots the rules no longer give, kept."),
        parameter("conflict", "out", 0, "*", "",
            "One per conflict: parts slot (Reference), start (dateTime) and reason (string)."),
    ])
}

async fn generate_slots(state: SharedState, call: Invocation) -> Answer {
    let body = call.body.unwrap_or_default();
    let input = Parameters::read(&body).ok_or_else(|| {
        ApiError::bad_request(Issue::error(IssueCode::Invalid, "$generate-slots takes a Parameters resource").at("resourceType"))
    })?;
    let request = GenerationRequest {
        first: date(input, "start")?,
        last: date(input, "end")?,
        slot_length: slot_length(input)?,
        dry_run: dry_run(input)?,
    };
    let schedule_id = call.id.unwrap_or_default();
    let summary = state.domain.scheduling.generate_slots(&call.ctx, &schedule_id, &request).await?;
    Ok(FhirResponse::new(StatusCode::OK, call.format).json(parameters(summary_entries(&summary))))
}

fn summary_entries(summary: &GenerationSummary) -> Vec<Value> {
    let count = |name: &str, value: usize| json!({"name": name, "valueInteger": value});
    let mut entries = vec![
        count("created", summary.created),
        count("kept", summary.kept),
        count("removed", summary.removed),
        count("conflicts", summary.conflicts.len()),
    ];
    for conflict in &summary.conflicts {
        let mut parts = vec![json!({"name": "slot", "valueReference": {"reference": format!("Slot/{}", conflict.slot_id)}})];
        if let Some(start) = conflict.start {
            parts.push(json!({"name": "start", "valueDateTime": format_instant(start)}));
        }
        parts.push(json!({"name": "reason", "valueString": conflict.reason}));
        entries.push(json!({"name": "conflict", "part": parts}));
    }
    entries
}

fn date(input: Parameters, name: &str) -> Result<Date, ApiError> {
    let text = input
        .text(name, &["valueDate"])
        .ok_or_else(|| ApiError::bad_request(Issue::error(IssueCode::Required, format!("{name} (valueDate) is required")).at(param_path(name))))?;
    text.parse::<Date>().map_err(|_| {
        ApiError::bad_request(Issue::error(IssueCode::Value, format!("{name} {text:?} is not a date (YYYY-MM-DD)")).at(param_path(name)))
    })
}

fn slot_length(input: Parameters) -> Result<Option<jiff::SignedDuration>, ApiError> {
    let Some(entry) = input.named("slot-duration").next() else {
        return Ok(None);
    };
    entry
        .get("valueDuration")
        .and_then(termin_domain::read_duration)
        .filter(|length| length.is_positive())
        .map(Some)
        .ok_or_else(|| {
            ApiError::bad_request(
                Issue::error(IssueCode::Value, "slot-duration must be a positive valueDuration in min, h or d")
                    .at(param_path("slot-duration")),
            )
        })
}

fn dry_run(input: Parameters) -> Result<bool, ApiError> {
    match input.named("dry-run").next() {
        None => Ok(false),
        Some(entry) => entry.get("valueBoolean").and_then(Value::as_bool).ok_or_else(|| {
            ApiError::bad_request(Issue::error(IssueCode::Value, "dry-run must be a valueBoolean").at(param_path("dry-run")))
        }),
    }
}
