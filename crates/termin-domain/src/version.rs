//! The next version of a resource: server-managed `meta`, identity elements and index rows.

use crate::DomainError;
use jiff::Timestamp;
use serde_json::{Map, Value};
use termin_fhir::resource::with_identity;
use termin_fhir::{Issue, IssueCode, ResourceType, instant::format_instant};
use termin_search::SearchParameters;
use termin_store::{ChangeKind, NewVersion, ResourceVersion};

/// Builds the next version of a resource: server-managed `meta.versionId` and
/// `meta.lastUpdated` (other meta kept), identity elements first, and its index rows.
pub(crate) fn new_version(
    search: &SearchParameters,
    resource_type: ResourceType,
    id: &str,
    mut body: Map<String, Value>,
    previous: Option<&ResourceVersion>,
    now: Timestamp,
) -> Result<(NewVersion, Map<String, Value>), DomainError> {
    let version = previous.map_or(1, |p| p.version + 1);
    let mut meta = match body.shift_remove("meta") {
        None => Map::new(),
        Some(Value::Object(meta)) => meta,
        Some(_) => {
            return Err(DomainError::invalid(
                Issue::error(IssueCode::Structure, "meta must be an object").at(format!("{resource_type}.meta")),
            ));
        }
    };
    meta.shift_remove("versionId");
    meta.shift_remove("lastUpdated");
    let mut managed = Map::with_capacity(meta.len() + 2);
    managed.insert("versionId".into(), Value::String(version.to_string()));
    managed.insert("lastUpdated".into(), Value::String(format_instant(now)));
    managed.extend(meta);
    let Value::Object(resource) = with_identity(body, id, managed) else {
        return Err(DomainError::Internal("with_identity did not answer an object".into()));
    };
    let index = search.index_entries(&resource);
    let text = serde_json::to_string(&resource).map_err(|e| DomainError::Internal(e.to_string()))?;
    // A deleted resource that is written again counts as re-created.
    let change = match previous {
        Some(p) if !p.is_deleted() => ChangeKind::Update,
        _ => ChangeKind::Create,
    };
    let new = NewVersion {
        version: ResourceVersion {
            resource_type,
            id: id.to_owned(),
            version,
            last_updated: now,
            body: Some(text),
        },
        change,
        index,
    };
    Ok((new, resource))
}
