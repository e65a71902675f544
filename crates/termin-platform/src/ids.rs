//! The platform's identity scheme. A resource of upstream `NAME` whose id there is `x` is
//! `Type/NAME.x` at the platform: reads, `$hold`, `$book` and changes of it are routed by the
//! prefix, and the resource keeps its owner's identity in `meta.source` (its absolute URL at the
//! owning server). References inside the resources are rewritten the same way, both directions.
//! A cascade nests the prefixes (`OUTER.INNER.x`). FHIR ids are at most 64 characters, so an
//! upstream id longer than 63 minus the name leaves the scheme (the resource is still shown,
//! with its absolute reference, but cannot be routed).

use serde_json::{Map, Value};
use termin_fhir::parse_literal;

/// Between the upstream's name and the id it gave.
pub const SEPARATOR: char = '.';

/// `NAME.id`.
pub fn scoped(upstream: &str, id: &str) -> String {
    format!("{upstream}{SEPARATOR}{id}")
}

/// The upstream's own id of `NAME.id`, when `id` is scoped by `upstream`.
pub fn unscoped<'a>(upstream: &str, id: &'a str) -> Option<&'a str> {
    id.strip_prefix(upstream)?.strip_prefix(SEPARATOR).filter(|rest| !rest.is_empty())
}

/// The name part of a scoped id (`NAME` of `NAME.x`).
pub fn scope_of(id: &str) -> Option<&str> {
    id.split_once(SEPARATOR).map(|(name, _)| name).filter(|name| !name.is_empty())
}

/// Rewrites what upstream `name` (FHIR base `base`) answered into platform ids: the ids of the
/// resources in it (not of contained ones) and every reference relative to, or absolute on, the
/// upstream. `public_base`: the platform's base, for `fullUrl`s.
pub fn localize(value: &mut Value, name: &str, base: &str, public_base: &str) {
    let rewrite_reference = |reference: &str| -> Option<String> {
        let literal = parse_literal(reference)?;
        if literal.base.is_some_and(|b| b != base) {
            return None;
        }
        let id = scoped(name, literal.id);
        let relative = match literal.version {
            Some(version) => format!("{}/{id}/_history/{version}", literal.resource_type),
            None => format!("{}/{id}", literal.resource_type),
        };
        Some(relative)
    };
    walk(
        value,
        false,
        &|id| Some(scoped(name, id)),
        &rewrite_reference,
        &|full_url| rewrite_reference(full_url).map(|relative| format!("{public_base}/{relative}")),
    );
}

/// The inverse of [`localize`] for what goes to upstream `name`: ids and references scoped by
/// it lose the prefix. References to other upstreams' or to the platform's own resources stay.
pub fn delocalize(value: &mut Value, name: &str) {
    let rewrite_reference = |reference: &str| -> Option<String> {
        let literal = parse_literal(reference).filter(|l| l.base.is_none())?;
        let id = unscoped(name, literal.id)?;
        Some(match literal.version {
            Some(version) => format!("{}/{id}/_history/{version}", literal.resource_type),
            None => format!("{}/{id}", literal.resource_type),
        })
    };
    walk(value, false, &|id| unscoped(name, id).map(str::to_owned), &rewrite_reference, &|_| None);
}

/// A search parameter value (one alternative) for upstream `name`: `Type/NAME.x` becomes
/// `Type/x`, and a bare `NAME.x` (for `_id`) becomes `x`.
pub fn delocalize_search_value(value: &str, name: &str, bare_ids: bool) -> Option<String> {
    if let Some(literal) = parse_literal(value).filter(|l| l.base.is_none()) {
        return unscoped(name, literal.id).map(|id| format!("{}/{id}", literal.resource_type));
    }
    if bare_ids { unscoped(name, value).map(str::to_owned) } else { None }
}

/// The upstream a search value names: the scope of a relative literal reference's id, or of a
/// bare id when `bare_ids` (the `_id` parameter).
pub fn named_scope(value: &str, bare_ids: bool) -> Option<&str> {
    match parse_literal(value).filter(|l| l.base.is_none()) {
        Some(literal) => scope_of(literal.id),
        None if bare_ids => scope_of(value),
        None => None,
    }
}

/// Whether a search value names a resource: a relative literal reference, or any value of
/// `_id` (`bare_ids`).
pub fn is_id_value(value: &str, bare_ids: bool) -> bool {
    bare_ids || parse_literal(value).is_some_and(|l| l.base.is_none())
}

fn walk(
    value: &mut Value,
    contained: bool,
    ids: &dyn Fn(&str) -> Option<String>,
    references: &dyn Fn(&str) -> Option<String>,
    full_urls: &dyn Fn(&str) -> Option<String>,
) {
    match value {
        Value::Object(map) => walk_object(map, contained, ids, references, full_urls),
        Value::Array(items) => {
            for item in items {
                walk(item, contained, ids, references, full_urls);
            }
        }
        _ => {}
    }
}

fn walk_object(
    map: &mut Map<String, Value>,
    contained: bool,
    ids: &dyn Fn(&str) -> Option<String>,
    references: &dyn Fn(&str) -> Option<String>,
    full_urls: &dyn Fn(&str) -> Option<String>,
) {
    let is_resource = map.get("resourceType").is_some_and(Value::is_string);
    for (key, child) in map.iter_mut() {
        let replacement = match (key.as_str(), &*child) {
            ("id", Value::String(id)) if is_resource && !contained => ids(id),
            ("reference", Value::String(reference)) => references(reference),
            ("fullUrl", Value::String(url)) => full_urls(url),
            _ => None,
        };
        match replacement {
            Some(text) => *child = Value::String(text),
            None => walk(child, contained || key == "contained", ids, references, full_urls),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scoped_ids_round_trip() {
        assert_eq!(scoped("a", "x.y"), "a.x.y");
        assert_eq!(unscoped("a", "a.x.y"), Some("x.y"));
        assert_eq!(unscoped("a", "ab.x"), None);
        assert_eq!(unscoped("a", "a."), None);
        assert_eq!(scope_of("a.x"), Some("a"));
        assert_eq!(scope_of("plain"), None);
    }

    #[test]
    fn answers_are_localized_and_requests_delocalized() {
        let mut slot = json!({
            "resourceType": "Slot", "id": "s1",
            "schedule": {"reference": "Schedule/c1"},
            "contained": [{"resourceType": "Location", "id": "inner"}],
            "extension": [{"valueReference": {"reference": "http://up/fhir/Location/l1/_history/2"}}],
            "other": {"reference": "http://elsewhere/fhir/Location/l1"},
            "local": {"reference": "#inner"}
        });
        localize(&mut slot, "up", "http://up/fhir", "http://platform/fhir");
        assert_eq!(slot["id"], "up.s1");
        assert_eq!(slot["schedule"]["reference"], "Schedule/up.c1");
        assert_eq!(slot["contained"][0]["id"], "inner", "contained ids stay");
        assert_eq!(slot["extension"][0]["valueReference"]["reference"], "Location/up.l1/_history/2");
        assert_eq!(slot["other"]["reference"], "http://elsewhere/fhir/Location/l1");
        assert_eq!(slot["local"]["reference"], "#inner");
        delocalize(&mut slot, "up");
        assert_eq!(slot["id"], "s1");
        assert_eq!(slot["schedule"]["reference"], "Schedule/c1");
        let mut entry = json!({"fullUrl": "http://up/fhir/Slot/s1", "resource": {"resourceType": "Slot", "id": "s1"}});
        localize(&mut entry, "up", "http://up/fhir", "http://platform/fhir");
        assert_eq!(entry["fullUrl"], "http://platform/fhir/Slot/up.s1");
    }

    #[test]
    fn search_values_name_their_upstream() {
        assert_eq!(named_scope("Schedule/up.c1", false), Some("up"));
        assert_eq!(named_scope("up.c1", false), None, "bare values only for _id");
        assert_eq!(named_scope("up.c1", true), Some("up"));
        assert_eq!(delocalize_search_value("Schedule/up.c1", "up", false).as_deref(), Some("Schedule/c1"));
        assert_eq!(delocalize_search_value("up.c1", "up", true).as_deref(), Some("c1"));
        assert_eq!(delocalize_search_value("Schedule/other.c1", "up", false), None);
    }
}
