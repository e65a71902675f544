//! Bundles the server writes: searchset and history, with paging links.

use crate::error::ApiError;
use serde_json::{Map, Value, json};
use termin_fhir::instant::format_instant;
use termin_fhir::{Issue, IssueCode};
use termin_store::{ChangeKind, HistoryEntry, ResourceVersion};

/// Parses a stored body for embedding in a Bundle.
pub fn stored_json(version: &ResourceVersion) -> Result<Option<Value>, ApiError> {
    version.body.as_deref().map(|text| parse_stored(text, &version.id)).transpose()
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

/// A searchset Bundle; `total` is left out when not known or not wanted. Its entries keep
/// the stored text of their resources, so that a compact JSON answer splices that text in as
/// it is instead of parsing and writing every resource again.
#[derive(Debug)]
pub struct Searchset {
    pub total: Option<u64>,
    pub links: Value,
    pub entries: Vec<SearchEntry>,
}

/// One entry of a [`Searchset`].
#[derive(Debug)]
pub struct SearchEntry {
    /// `Bundle.entry.extension`: what Termin adds about a match (e.g. `$findHSP`'s earliest
    /// free slots); empty for most entries.
    extensions: Vec<Value>,
    full_url: Option<String>,
    resource: Option<EntryResource>,
    mode: &'static str,
}

#[derive(Debug)]
enum EntryResource {
    /// Compact JSON text as stored (with `meta`).
    Stored(String),
    Built(Value),
}

pub fn searchset(total: Option<u64>, links: Value, entries: Vec<SearchEntry>) -> Searchset {
    Searchset { total, links, entries }
}

impl Searchset {
    /// The Bundle as a JSON value, for the answers that transform it (XML, pretty printing).
    pub fn into_value(self) -> Result<Value, ApiError> {
        let entries = self
            .entries
            .into_iter()
            .map(SearchEntry::into_value)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(bundle("searchset", self.total, self.links, entries))
    }

    /// The Bundle as compact JSON text, byte for byte what `into_value()` would print, with
    /// the stored resources copied in unparsed.
    pub fn to_json_text(&self) -> String {
        let stored: usize = self.entries.iter().map(SearchEntry::stored_len).sum();
        let mut out = String::with_capacity(stored + 128 * (self.entries.len() + 2));
        out.push_str(r#"{"resourceType":"Bundle","type":"searchset""#);
        if let Some(total) = self.total {
            out.push_str(",\"total\":");
            out.push_str(&total.to_string());
        }
        out.push_str(",\"link\":");
        out.push_str(&self.links.to_string());
        // FHIR JSON has no empty arrays: an empty page has no `entry` at all.
        if !self.entries.is_empty() {
            out.push_str(",\"entry\":[");
            for (i, entry) in self.entries.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                entry.write_json(&mut out);
            }
            out.push(']');
        }
        out.push('}');
        out
    }
}

impl SearchEntry {
    /// The entry with `extensions` as its `Bundle.entry.extension`.
    pub fn with_extensions(self, extensions: Vec<Value>) -> SearchEntry {
        SearchEntry { extensions, ..self }
    }

    /// Applies `shape` (e.g. `_elements`) to the resource, which then has to be parsed.
    pub fn shaped(self, shape: impl FnOnce(Value) -> Value) -> Result<SearchEntry, ApiError> {
        let resource = match self.resource {
            Some(EntryResource::Stored(text)) => {
                let about = self.full_url.as_deref().unwrap_or_default();
                Some(EntryResource::Built(shape(parse_stored(&text, about)?)))
            }
            Some(EntryResource::Built(value)) => Some(EntryResource::Built(shape(value))),
            None => None,
        };
        Ok(SearchEntry { resource, ..self })
    }

    fn stored_len(&self) -> usize {
        match &self.resource {
            Some(EntryResource::Stored(text)) => text.len(),
            _ => 0,
        }
    }

    fn into_value(self) -> Result<Value, ApiError> {
        let about = self.full_url.as_deref().unwrap_or_default();
        let resource = match self.resource {
            Some(EntryResource::Stored(text)) => Some(parse_stored(&text, about)?),
            Some(EntryResource::Built(value)) => Some(value),
            None => None,
        };
        // Inserted, not embedded with `json!`, which would rewrite number texts.
        let mut entry = Map::new();
        if !self.extensions.is_empty() {
            entry.insert("extension".into(), Value::Array(self.extensions));
        }
        if let Some(full_url) = self.full_url {
            entry.insert("fullUrl".into(), Value::String(full_url));
        }
        if let Some(resource) = resource {
            entry.insert("resource".into(), resource);
        }
        entry.insert("search".into(), json!({"mode": self.mode}));
        Ok(Value::Object(entry))
    }

    fn write_json(&self, out: &mut String) {
        out.push('{');
        if !self.extensions.is_empty() {
            out.push_str("\"extension\":");
            out.push_str(&Value::Array(self.extensions.clone()).to_string());
            out.push(',');
        }
        if let Some(full_url) = &self.full_url {
            out.push_str("\"fullUrl\":");
            out.push_str(&Value::String(full_url.clone()).to_string());
            out.push(',');
        }
        match &self.resource {
            Some(EntryResource::Stored(text)) => {
                out.push_str("\"resource\":");
                out.push_str(text);
                out.push(',');
            }
            Some(EntryResource::Built(value)) => {
                out.push_str("\"resource\":");
                out.push_str(&value.to_string());
                out.push(',');
            }
            None => {}
        }
        out.push_str("\"search\":{\"mode\":\"");
        out.push_str(self.mode);
        out.push_str("\"}}");
    }
}

/// Parses stored resource text; `about` names the resource in the log.
fn parse_stored(text: &str, about: &str) -> Result<Value, ApiError> {
    termin_fhir::json::parse_stored(text).map_err(|e| {
        tracing::error!(resource = about, error = %e, "stored resource is not JSON");
        ApiError::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            Issue::error(IssueCode::Exception, "A stored resource could not be read"),
        )
    })
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

/// A match or an included resource, its stored text kept as it is.
pub fn search_entry(base: &str, version: &ResourceVersion, mode: SearchMode) -> SearchEntry {
    SearchEntry {
        extensions: Vec::new(),
        full_url: Some(full_url(base, version)),
        resource: version.body.clone().map(EntryResource::Stored),
        mode: match mode {
            SearchMode::Match => "match",
            SearchMode::Include => "include",
        },
    }
}

/// The entry that tells how the search was read (ignored or leniently read parameters).
pub fn outcome_entry(outcome: Value) -> SearchEntry {
    SearchEntry {
        extensions: Vec::new(),
        full_url: None,
        resource: Some(EntryResource::Built(outcome)),
        mode: "outcome",
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use termin_fhir::ResourceType;

    fn version(id: &str, body: &str) -> ResourceVersion {
        ResourceVersion {
            resource_type: ResourceType::Slot,
            id: id.into(),
            version: 1,
            last_updated: jiff::Timestamp::UNIX_EPOCH,
            body: Some(body.into()),
        }
    }

    #[test]
    fn spliced_text_is_what_the_parsed_bundle_prints() {
        // Exponents, escapes and non-ASCII text must come out as stored.
        let first = version("a", r#"{"resourceType":"Slot","id":"a","meta":{"versionId":"1"},"comment":"Zä\"\n","x":1E5}"#);
        let second = version("b", r#"{"resourceType":"Slot","id":"b","y":[1.50,-0.0]}"#);
        let build = |entries: Vec<SearchEntry>| {
            searchset(Some(7), paging_links("http://h/Slot?a=\"b\"".into(), Some("http://h/n".into()), None), entries)
        };
        let entries = || {
            vec![
                outcome_entry(json!({"resourceType": "OperationOutcome"})),
                search_entry("http://h", &first, SearchMode::Match),
                search_entry("http://h", &second, SearchMode::Include),
            ]
        };
        let text = build(entries()).to_json_text();
        assert_eq!(text, build(entries()).into_value().unwrap().to_string());
        assert!(text.contains(r#""x":1E5"#) && text.contains(r#""y":[1.50,-0.0]"#), "{text}");
        let empty = searchset(None, json!([]), Vec::new());
        assert_eq!(empty.to_json_text(), r#"{"resourceType":"Bundle","type":"searchset","link":[]}"#);
    }

    #[test]
    fn a_shaped_entry_is_parsed_and_rewritten() {
        let stored = version("a", r#"{"resourceType":"Slot","id":"a","status":"free"}"#);
        let entry = search_entry("http://h", &stored, SearchMode::Match)
            .shaped(|mut resource| {
                resource.as_object_mut().unwrap().remove("status");
                resource
            })
            .unwrap();
        let text = searchset(None, json!([]), vec![entry]).to_json_text();
        assert!(text.contains(r#""resource":{"resourceType":"Slot","id":"a"}"#), "{text}");
    }
}
