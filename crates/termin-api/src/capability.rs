//! The CapabilityStatement, generated from the interaction registry and the search registry.

use crate::operations::OPERATIONS;
use crate::registry::Interaction;
use serde_json::{Value, json};
use termin_domain::ServiceConfig;
use termin_fhir::ResourceType;
use termin_fhir::instant::format_instant;
use termin_search::SEARCH_PARAMS;

pub fn capability_statement(base: &str, config: &ServiceConfig) -> Value {
    let interactions: Vec<Value> = Interaction::ALL.iter().map(|i| json!({"code": i.code()})).collect();
    let search_params: Vec<Value> = SEARCH_PARAMS
        .iter()
        .map(|(name, kind)| json!({"name": name, "type": kind}))
        .collect();
    let resources: Vec<Value> = ResourceType::ALL
        .iter()
        .map(|t| {
            let operations: Vec<Value> = OPERATIONS
                .iter()
                .filter(|op| op.resource == *t)
                .map(|op| json!({"name": op.code, "definition": op.url()}))
                .collect();
            let mut resource = json!({
                "type": t.as_str(),
                "interaction": interactions,
                "versioning": "versioned-update",
                "readHistory": true,
                "updateCreate": config.update_create,
                "conditionalCreate": true,
                "conditionalRead": "not-supported",
                "conditionalUpdate": true,
                "conditionalDelete": "not-supported",
                "searchParam": search_params,
            });
            // FHIR JSON has no empty arrays.
            if !operations.is_empty() {
                resource["operation"] = Value::Array(operations);
            }
            resource
        })
        .collect();
    json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": format_instant(jiff::Timestamp::now()),
        "publisher": "Termin",
        "kind": "instance",
        "software": {"name": "Termin", "version": env!("CARGO_PKG_VERSION")},
        "implementation": {"description": "Termin FHIR R5 appointment scheduling server", "url": base},
        "fhirVersion": "5.0.0",
        "format": ["application/fhir+json", "json"],
        "rest": [{
            "mode": "server",
            "resource": resources,
        }],
    })
}
