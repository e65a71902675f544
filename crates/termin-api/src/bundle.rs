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
        .map(termin_fhir::json::parse_stored)
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
    paging_links(self_url, next_url, None)
}

/// `self`, and `next`/`previous` where those pages exist.
pub fn paging_links(self_url: String, next_url: Option<String>, previous_url: Option<String>) -> Value {
    let mut links = vec![json!({"relation": "self", "url": self_url})];
    if let Some(next) = next_url {
        links.push(json!({"relation": "next", "url": next}));
    }
    if let Some(previous) = previous_url {
        links.push(json!({"relation": "previous", "url": previous}));
    }
    Value::Array(links)
}

/// A searchset Bundle; `total` is left out when the client asked for `_total=none`.
pub fn searchset(total: Option<u64>, links: Value, entries: Vec<Value>) -> Value {
    bundle("searchset", total, links, entries)
}

fn bundle(kind: &str, total: Option<u64>, links: Value, entries: Vec<Value>) -> Value {
    let mut bundle = json!({
        "resourceType": "Bundle",
        "type": kind,
    });
    if let Some(total) = total {
        bundle["total"] = json!(total);
    }
    bundle["link"] = links;
    // FHIR JSON has no empty arrays: an empty page has no `entry` at all.
    if !entries.is_empty() {
        bundle["entry"] = Value::Array(entries);
    }
    bundle
}

/// Which part of a search result an entry is (`Bundle.entry.search.mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchMode {
    Match,
    Include,
}

/// A match or an included resource; `shape` may trim the resource (`_elements`).
pub fn search_entry(
    base: &str,
    version: &ResourceVersion,
    mode: SearchMode,
    shape: impl FnOnce(Value) -> Value,
) -> Result<Value, ApiError> {
    let mode = match mode {
        SearchMode::Match => "match",
        SearchMode::Include => "include",
    };
    // Inserted, not embedded with `json!`, which would rewrite number texts.
    let mut entry = Map::new();
    entry.insert("fullUrl".into(), json!(full_url(base, version)));
    if let Some(resource) = stored_json(version)? {
        entry.insert("resource".into(), shape(resource));
    }
    entry.insert("search".into(), json!({"mode": mode}));
    Ok(Value::Object(entry))
}

/// The entry that tells how the search was read (ignored or leniently read parameters).
pub fn outcome_entry(outcome: Value) -> Value {
    json!({
        "resource": outcome,
        "search": {"mode": "outcome"},
    })
}

pub fn history(total: u64, links: Value, entries: Vec<Value>) -> Value {
    bundle("history", Some(total), links, entries)
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
