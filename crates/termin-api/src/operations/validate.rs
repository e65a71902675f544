//! `[type]/$validate` and `[type]/[id]/$validate`: validate a resource, store nothing.

use super::{Answer, Invocation, Operation, param_path, parameter};
use crate::SharedState;
use crate::error::ApiError;
use crate::format::FhirResponse;
use crate::query::query_pairs;
use axum::http::StatusCode;
use serde_json::{Value, json};
use termin_fhir::{Issue, IssueCode, Parameters, ResourceType};

pub const VALIDATE: Operation = Operation {
    id: "resource-validate",
    code: "validate",
    resources: &ResourceType::ALL,
    instance: true,
    safe: false,
    base: "http://hl7.org/fhir/OperationDefinition/Resource-validate",
    needs_validator: true,
    needs: None,
    description: "Validates a resource against FHIR R5, the profile the server enforces for its type \
        and an optional profile, and returns the OperationOutcome (200 also when it has errors); \
        nothing is stored.",
    parameters: definition_parameters,
    handler: |state, call| Box::pin(validate(state, call)),
};

fn definition_parameters() -> Value {
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

/// The outcome of validating the posted resource (the Parameters `resource`, or the body
/// itself), answered with 200 whatever it says.
async fn validate(state: SharedState, call: Invocation) -> Answer {
    let resource_type = call.resource_type;
    let body = Value::Object(call.body.unwrap_or_default());
    let (resource, mut profile) = match Parameters::read_value(&body) {
        Some(parameters) => {
            let resource = parameters.resource("resource").cloned().ok_or_else(|| {
                ApiError::bad_request(
                    Issue::error(IssueCode::Required, "The resource parameter with the resource to validate is required")
                        .at(param_path("resource")),
                )
            })?;
            let profile = parameters.text("profile", &["valueCanonical", "valueUri", "valueString"]).map(str::to_owned);
            (resource, profile)
        }
        None => (body, None),
    };
    if profile.is_none() {
        profile = query_pairs(call.query.as_deref())
            .find(|(name, _)| name == "profile")
            .map(|(_, value)| value.into_owned());
    }
    if resource.get("resourceType").and_then(Value::as_str) != Some(resource_type.as_str()) {
        return Err(ApiError::bad_request(
            Issue::error(IssueCode::Invalid, format!("$validate on {resource_type} takes a {resource_type}")).at("resourceType"),
        ));
    }
    if let (Some(id), Some(body_id)) = (call.id.as_deref(), resource.get("id").and_then(Value::as_str))
        && id != body_id
    {
        return Err(ApiError::bad_request(
            Issue::error(IssueCode::Value, format!("The resource id {body_id:?} does not match the id {id:?} in the URL"))
                .at(format!("{resource_type}.id")),
        ));
    }
    let outcome = state
        .domain
        .resources
        .validate(resource, profile)
        .await?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_IMPLEMENTED,
                Issue::error(
                    IssueCode::NotSupported,
                    "Validation is off on this server: it validates once started with --packages",
                ),
            )
        })?
        .map_err(|why| ApiError::bad_request(Issue::error(IssueCode::NotSupported, why)))?;
    Ok(FhirResponse::new(StatusCode::OK, call.format).json(outcome.to_json()))
}
