//! Merging the pages of several sources (the platform's own data and its upstreams) into one
//! page, and the stateless cursor that continues the merged sequence.
//!
//! The cursor lists, for every source not yet exhausted, the query of the source page the
//! merged sequence stands in and how many of its results were already shown. Each next page
//! asks every source for that page again and skips what was shown, so paging needs no state at
//! the platform and works on any node. The sources' own cursors (Termin's keyset cursors) make
//! the sequence stable while data changes. A source that fails leaves the sequence (the page
//! says so in a warning) so that paging always ends.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};

/// Query parameter of the merged sequence's next links.
pub const CURSOR_PARAM: &str = "_platform-cursor";

/// Where the merged sequence stands in one source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    /// The upstream's name; empty for the platform's own data.
    pub source: String,
    /// The query string of the source page.
    pub query: String,
    /// Results of that page already shown.
    pub skip: usize,
}

/// Encodes the positions of a next link.
pub fn encode_cursor(positions: &[Position]) -> String {
    let list: Vec<Value> = positions.iter().map(|p| json!([p.source, p.query, p.skip])).collect();
    URL_SAFE_NO_PAD.encode(Value::Array(list).to_string())
}

/// Reads a cursor this platform made; `None` for anything else.
pub fn decode_cursor(text: &str) -> Option<Vec<Position>> {
    let bytes = URL_SAFE_NO_PAD.decode(text.as_bytes()).ok()?;
    let Value::Array(list) = serde_json::from_slice::<Value>(&bytes).ok()? else {
        return None;
    };
    list.iter()
        .map(|item| {
            Some(Position {
                source: item.get(0)?.as_str()?.to_owned(),
                query: item.get(1)?.as_str()?.to_owned(),
                skip: usize::try_from(item.get(2)?.as_u64()?).ok()?,
            })
        })
        .collect()
}

/// One result with what comes with it: a search match (the page's includes ride with its
/// first match), or a `$findHSP` service with its providers.
#[derive(Debug, Clone)]
pub struct Group {
    pub entries: Vec<Value>,
    /// Sort key across sources (`$findHSP`: the earliest free slot); `None` sorts last.
    pub key: Option<String>,
}

/// One source's page, as fetched.
#[derive(Debug, Clone, Default)]
pub struct SourcePage {
    pub groups: Vec<Group>,
    /// The query of the source's next page.
    pub next_query: Option<String>,
    pub total: Option<u64>,
    /// The source's own notes (its `outcome` entry's issues).
    pub issues: Vec<Value>,
}

/// How results of different sources are interleaved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// One from each source in turn (sources in their configured order).
    Alternate,
    /// By [`Group::key`], ties in source order.
    ByKey,
}

/// One merged page.
#[derive(Debug, Default)]
pub struct MergedPage {
    pub entries: Vec<Value>,
    /// Positions for the next link; `None`: every source is exhausted.
    pub next: Option<Vec<Position>>,
    /// Sum of the sources' totals when every source gave one.
    pub total: Option<u64>,
    pub issues: Vec<Value>,
}

/// Merges up to `count` groups from the sources' pages (in source order; `Err` holds the
/// failure's issue, which the page reports).
pub fn merge(pages: Vec<(Position, Result<SourcePage, Value>)>, count: usize, order: Order) -> MergedPage {
    let mut merged = MergedPage::default();
    let mut total = Some(0u64);
    let mut live: Vec<(Position, SourcePage, usize, usize)> = Vec::new();
    for (position, fetched) in pages {
        match fetched {
            Ok(page) => {
                total = total.zip(page.total).map(|(a, b)| a + b);
                merged.issues.extend(page.issues.iter().cloned());
                let start = position.skip.min(page.groups.len());
                live.push((position, page, start, 0));
            }
            Err(issue) => {
                total = None;
                merged.issues.push(issue);
            }
        }
    }
    let mut shown = 0;
    while shown < count {
        let candidate = live
            .iter()
            .enumerate()
            .filter(|(_, (_, page, next, _))| *next < page.groups.len())
            .min_by(|(i, (_, a, an, a_taken)), (j, (_, b, bn, b_taken))| match order {
                Order::Alternate => a_taken.cmp(b_taken).then(i.cmp(j)),
                Order::ByKey => {
                    let (ka, kb) = (&a.groups[*an].key, &b.groups[*bn].key);
                    ka.is_none().cmp(&kb.is_none()).then(ka.cmp(kb)).then(i.cmp(j))
                }
            })
            .map(|(i, _)| i);
        let Some(i) = candidate else { break };
        let (_, page, next, taken) = &mut live[i];
        merged.entries.extend(page.groups[*next].entries.iter().cloned());
        shown += 1;
        *next += 1;
        *taken += 1;
    }
    let positions: Vec<Position> = live
        .into_iter()
        .filter_map(|(position, page, next, _)| {
            if next < page.groups.len() {
                Some(Position { skip: next, ..position })
            } else {
                page.next_query.map(|query| Position { source: position.source, query, skip: 0 })
            }
        })
        .collect();
    // `_count=0` shows nothing and so has nothing to continue.
    merged.next = (count > 0 && !positions.is_empty()).then_some(positions);
    merged.total = total;
    merged.entries = dedupe_includes(std::mem::take(&mut merged.entries));
    merged
}

/// An include may come with several matches (the same provider of two services): it is
/// shown once per page.
fn dedupe_includes(entries: Vec<Value>) -> Vec<Value> {
    let mut seen: Vec<String> = Vec::new();
    entries
        .into_iter()
        .filter(|entry| {
            if entry["search"]["mode"] != "include" {
                return true;
            }
            let Some(url) = entry["fullUrl"].as_str() else { return true };
            if seen.iter().any(|s| s == url) {
                return false;
            }
            seen.push(url.to_owned());
            true
        })
        .collect()
}

/// A searchset's entries as groups: each match, the page's includes with its first match
/// (so they come with the page's first shown result), outcome entries as issues.
pub fn search_groups(bundle: &Map<String, Value>) -> (Vec<Group>, Vec<Value>) {
    let mut groups: Vec<Group> = Vec::new();
    let mut includes = Vec::new();
    let mut issues = Vec::new();
    for entry in bundle.get("entry").and_then(Value::as_array).into_iter().flatten() {
        match entry["search"]["mode"].as_str() {
            Some("include") => includes.push(entry.clone()),
            Some("outcome") => issues.extend(outcome_issues(&entry["resource"])),
            _ => groups.push(Group { entries: vec![entry.clone()], key: None }),
        }
    }
    if let Some(first) = groups.first_mut() {
        first.entries.extend(includes);
    }
    (groups, issues)
}

/// The issues of an OperationOutcome.
pub fn outcome_issues(outcome: &Value) -> Vec<Value> {
    outcome["issue"].as_array().cloned().unwrap_or_default()
}

/// The query string of a Bundle's `next` link (whatever host it names: the platform asks the
/// configured upstream, never a host a link names).
pub fn next_query(bundle: &Map<String, Value>) -> Option<String> {
    bundle
        .get("link")?
        .as_array()?
        .iter()
        .find(|link| link["relation"] == "next")?
        .get("url")?
        .as_str()?
        .split_once('?')
        .map(|(_, query)| query.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(id: &str, key: Option<&str>) -> Group {
        Group { entries: vec![json!({"fullUrl": id, "search": {"mode": "match"}})], key: key.map(str::to_owned) }
    }

    fn page(ids: &[(&str, Option<&str>)], next: Option<&str>) -> SourcePage {
        SourcePage {
            groups: ids.iter().map(|(id, key)| group(id, *key)).collect(),
            next_query: next.map(str::to_owned),
            total: Some(ids.len() as u64),
            issues: Vec::new(),
        }
    }

    fn at(source: &str, skip: usize) -> Position {
        Position { source: source.into(), query: format!("q-{source}"), skip }
    }

    fn urls(page: &MergedPage) -> Vec<&str> {
        page.entries.iter().map(|e| e["fullUrl"].as_str().unwrap()).collect()
    }

    #[test]
    fn sources_alternate_and_the_cursor_continues_where_the_page_stopped() {
        let merged = merge(
            vec![
                (at("a", 0), Ok(page(&[("a1", None), ("a2", None), ("a3", None)], None))),
                (at("b", 1), Ok(page(&[("b0", None), ("b1", None)], Some("b-next")))),
            ],
            3,
            Order::Alternate,
        );
        assert_eq!(urls(&merged), ["a1", "b1", "a2"]);
        assert_eq!(merged.total, Some(5));
        let next = merged.next.unwrap();
        assert_eq!(next, [at("a", 2), Position { source: "b".into(), query: "b-next".into(), skip: 0 }]);
        assert_eq!(decode_cursor(&encode_cursor(&next)).unwrap(), next);
        assert_eq!(decode_cursor("not a cursor"), None);
    }

    #[test]
    fn a_failed_source_is_reported_and_leaves_the_sequence() {
        let merged = merge(
            vec![
                (at("a", 0), Ok(page(&[("a1", None)], None))),
                (at("b", 0), Err(json!({"severity": "warning", "diagnostics": "b is down"}))),
            ],
            10,
            Order::Alternate,
        );
        assert_eq!(urls(&merged), ["a1"]);
        assert_eq!(merged.total, None);
        assert!(merged.next.is_none());
        assert_eq!(merged.issues[0]["diagnostics"], "b is down");
        let nothing = merge(vec![(at("a", 0), Ok(page(&[("a1", None)], None)))], 0, Order::Alternate);
        assert!(nothing.entries.is_empty() && nothing.next.is_none(), "_count=0 pages nowhere");
        assert_eq!(nothing.total, Some(1));
    }

    #[test]
    fn keyed_groups_merge_in_key_order_with_keyless_last() {
        let merged = merge(
            vec![
                (at("a", 0), Ok(page(&[("a1", Some("2027-01-02")), ("a2", None)], None))),
                (at("b", 0), Ok(page(&[("b1", Some("2027-01-01")), ("b2", Some("2027-01-03"))], None))),
            ],
            10,
            Order::ByKey,
        );
        assert_eq!(urls(&merged), ["b1", "a1", "b2", "a2"]);
    }

    #[test]
    fn includes_ride_with_the_first_match_once() {
        let bundle = json!({"entry": [
            {"fullUrl": "m1", "search": {"mode": "match"}},
            {"fullUrl": "m2", "search": {"mode": "match"}},
            {"fullUrl": "i1", "search": {"mode": "include"}},
            {"resource": {"issue": [{"diagnostics": "note"}]}, "search": {"mode": "outcome"}}
        ], "link": [{"relation": "next", "url": "http://x/fhir/Slot?_cursor=abc"}]});
        let (groups, issues) = search_groups(bundle.as_object().unwrap());
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].entries.len(), 2);
        assert_eq!(issues[0]["diagnostics"], "note");
        assert_eq!(next_query(bundle.as_object().unwrap()).as_deref(), Some("_cursor=abc"));
    }
}
