//! Bundles the server writes: searchset and history, with paging links.

use crate::error::ApiError;
use serde_json::{Map, Value, json};
use termin_fhir::instant::format_instant;
use termin_fhir::{Issue, IssueCode};
use termin_store::{ChangeKind, HistoryEntry, ResourceVersion};

/// Parses a stored body for embedding in a Bundle.
pub fn stored_json(version: &ResourceVersion) -> Result<Option<Value>, ApiError> {
    version
        .body
        .as_deref()
        .map(serde_json::from_str)
        .transpose()
        .map_err(|e| {
            tracing::error!(id = %version.id, error = %e, "stored resource is not JSON");
            ApiError::new(
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                Issue::error(IssueCode::Exception, "A stored resource could not be read"),
            )
        })
}

pub fn full_url(base: &str, version: &ResourceVersion) -> String {
    format!("{base}/{}/{}", version.resource_type, version.id)
}

/// `self` and (when more follows) `next` links.
pub fn links(self_url: String, next_url: Option<String>) -> Value {
    let mut links = vec![json!({"relation": "self", "url": self_url})];
    if let Some(next) = next_url {
        links.push(json!({"relation": "next", "url": next}));
    }
    Value::Array(links)
}

pub fn searchset(total: u64, links: Value, entries: Vec<Value>) -> Value {
    bundle("searchset", total, links, entries)
}

fn bundle(kind: &str, total: u64, links: Value, entries: Vec<Value>) -> Value {
    let mut bundle = json!({
        "resourceType": "Bundle",
        "type": kind,
        "total": total,
        "link": links,
    });
    // FHIR JSON has no empty arrays: an empty page has no `entry` at all.
    if !entries.is_empty() {
        bundle["entry"] = Value::Array(entries);
    }
    bundle
}

pub fn search_entry(base: &str, version: &ResourceVersion) -> Result<Value, ApiError> {
    Ok(json!({
        "fullUrl": full_url(base, version),
        "resource": stored_json(version)?,
        "search": {"mode": "match"},
    }))
}

pub fn history(total: u64, links: Value, entries: Vec<Value>) -> Value {
    bundle("history", total, links, entries)
}

pub fn history_entry(base: &str, entry: &HistoryEntry) -> Result<Value, ApiError> {
    let v = &entry.version;
    let (method, url, status) = match entry.change {
        ChangeKind::Create => ("POST", v.resource_type.to_string(), "201 Created"),
        ChangeKind::Update => ("PUT", format!("{}/{}", v.resource_type, v.id), "200 OK"),
        ChangeKind::Delete => ("DELETE", format!("{}/{}", v.resource_type, v.id), "204 No Content"),
    };
    let mut out = Map::new();
    out.insert("fullUrl".into(), json!(full_url(base, v)));
    if let Some(resource) = stored_json(v)? {
        out.insert("resource".into(), resource);
    }
    out.insert("request".into(), json!({"method": method, "url": url}));
    out.insert(
        "response".into(),
        json!({
            "status": status,
            "etag": format!("W/\"{}\"", v.version),
            "lastModified": format_instant(v.last_updated),
        }),
    );
    Ok(Value::Object(out))
}
