//! `Appointment/$book`: book a proposed Appointment on the Slots it names.

use super::{Answer, Invocation, Operation, StateChangeInput, outcome_resource, param_path, parameter, parameters, resource_param};
use crate::SharedState;
use crate::error::ApiError;
use crate::format::FhirResponse;
use axum::http::{StatusCode, header};
use serde_json::{Value, json};
use termin_domain::BookingStatus;
use termin_fhir::{Issue, IssueCode, ResourceType};
use termin_store::Permission;

pub const BOOK: Operation = Operation {
    id: "appointment-book",
    code: "book",
    resources: &[ResourceType::Appointment],
    instance: false,
    safe: false,
    base: "https://fhir.hl7.at/tc/wg/scheduling/r5/OperationDefinition/appointment-book",
    needs_validator: false,
    needs: Some((ResourceType::Appointment, Permission::Create)),
    description: "Books a proposed Appointment on the Slots it names: 201 booked, 202 pending \
        (manual confirmation), 409 rejected with the Appointment as cancelled.",
    parameters: definition_parameters,
    handler: |state, call| Box::pin(book(state, call)),
};

fn definition_parameters() -> Value {
    json!([
        parameter("appointment-resource", "in", 1, "1", "Appointment",
            "The Appointment to book, with status proposed."),
        parameter("hold-token", "in", 0, "*", "string",
            "Termin: tokens of holds on the Appointment's slots (also accepted as the X-Hold-Token header)."),
        parameter("appointment", "out", 1, "1", "Appointment",
            "The Appointment: booked, pending (awaiting confirmation) or cancelled (rejected, not stored)."),
        parameter("outcome", "out", 1, "1", "OperationOutcome", "What happened."),
        parameter("access-secret", "out", 0, "1", "string",
            "Termin: for a booking without an access token (--public-booking), the secret that alone reaches the \
             Appointment again: send it as the X-Access-Secret header to read, cancel or move it. Returned once."),
        parameter("alternative", "out", 0, "*", "",
            "Termin: when the booking is rejected because a slot is taken, up to five free slots of the same \
             Schedule to offer instead, nearest to the wanted start first; one per slot, with parts slot \
             (Reference) and start (instant)."),
    ])
}

/// The body is the Parameters, or the Appointment itself.
async fn book(state: SharedState, call: Invocation) -> Answer {
    let body = call.body.unwrap_or_default();
    let input = StateChangeInput::read(&body, call.resource_type)?;
    let appointment = match &input {
        StateChangeInput::Resource(appointment) => Some(*appointment),
        StateChangeInput::Parameters(parameters) => {
            parameters.named("appointment-resource").find_map(|entry| entry.get("resource").and_then(Value::as_object))
        }
    }
    .cloned()
    .ok_or_else(|| {
        ApiError::bad_request(
            Issue::error(IssueCode::Required, "appointment-resource with the proposed Appointment is required")
                .at(param_path("appointment-resource")),
        )
    })?;
    let ctx = input.context(call.ctx);
    let booking = state.domain.scheduling.book(&ctx, appointment).await?;
    let (status, counted) = match booking.status {
        BookingStatus::Booked => (StatusCode::CREATED, "booked"),
        BookingStatus::Pending => (StatusCode::ACCEPTED, "pending"),
        BookingStatus::AlreadyBooked => (StatusCode::OK, "repeated"),
        BookingStatus::Rejected => (StatusCode::CONFLICT, "rejected"),
    };
    metrics::counter!("termin_bookings_total", "outcome" => counted).increment(1);
    let mut entries = vec![
        resource_param("appointment", Value::Object(booking.appointment)),
        resource_param("outcome", outcome_resource(&booking.outcome)),
    ];
    if let Some(secret) = &booking.access_secret {
        entries.push(json!({"name": "access-secret", "valueString": secret}));
    }
    entries.extend(booking.alternatives.iter().map(|alternative| {
        json!({"name": "alternative", "part": [
            {"name": "slot", "valueReference": {"reference": format!("Slot/{}", alternative.id)}},
            {"name": "start", "valueInstant": alternative.start},
        ]})
    }));
    let mut response = FhirResponse::new(status, call.format).json(parameters(entries));
    if let Some(version) = &booking.version {
        let location = format!("{}/Appointment/{}/_history/{}", call.base.0, version.id, version.version);
        response = response
            .header(header::LOCATION, &location)
            .header(header::ETAG, &format!("W/\"{}\"", version.version));
    }
    Ok(response)
}
