//! The StructureDefinitions of Termin's own extensions, served at
//! `/fhir/StructureDefinition/[id]`. They live in the repository's `packages/termin#0.1.0`,
//! which `termin` also embeds for validation, so what is served is what is enforced.

use crate::error::ApiError;
use crate::format::{FhirResponse, ResponseFormat};
use axum::extract::Path;
use axum::http::StatusCode;
use serde_json::Value;

/// `(id, JSON)` of every StructureDefinition Termin defines.
const DEFINITIONS: &[(&str, &str)] = &[(
    "slot-generation",
    include_str!("../../../packages/termin#0.1.0/package/StructureDefinition-slot-generation.json"),
)];

pub async fn structure_definition(Path(id): Path<String>, format: ResponseFormat) -> Result<FhirResponse, ApiError> {
    let (_, text) = DEFINITIONS
        .iter()
        .find(|(known, _)| *known == id)
        .ok_or_else(|| ApiError::not_found(format!("StructureDefinition/{id} is not one Termin defines")))?;
    let definition: Value = serde_json::from_str(text).map_err(|_| ApiError::internal())?;
    Ok(FhirResponse::new(StatusCode::OK, format).json(definition))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_definitions_are_json_with_their_id() {
        for (id, text) in DEFINITIONS {
            let definition: Value = serde_json::from_str(text).unwrap();
            assert_eq!(definition["id"], *id);
            assert_eq!(definition["url"], termin_domain::SLOT_GENERATION_URL);
        }
    }
}
