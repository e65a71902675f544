//! `resolve()`: contained references, a caller-supplied resolver, and the type-only fallback.

use std::borrow::Cow;

use serde_json::Value;

use crate::item::{Item, Location, Node};

/// Looks up the resource a literal reference (`Patient/123`, an absolute URL, `urn:uuid:...`)
/// points to. It hands out borrows, so it owns what it resolves (a preloaded bundle, a cache).
pub trait ReferenceResolver: Send + Sync {
    fn resolve(&self, reference: &str) -> Option<&Value>;
}

/// The resource type named by a literal reference: the type segment of `Type/id`, possibly
/// after a base URL and before `/_history/version`.
pub(crate) fn referenced_type(reference: &str) -> Option<&str> {
    termin_fhir::parse_literal(reference).map(|literal| literal.resource_type)
}

/// A node standing for a resource known only by its type, so `resolve() is Patient` works
/// without fetching anything. It has no content and no location.
pub(crate) fn type_only_stub<'a>(resource_type: Cow<'a, str>) -> Item<'a> {
    Item::Node(Node::new(None, None, Some(resource_type), None))
}

/// The contained resource `#id` names inside `container` (`#` alone is the container itself).
pub(crate) fn resolve_contained<'a>(container: &'a Value, fragment: &str) -> Option<Item<'a>> {
    if fragment.is_empty() {
        return Some(Item::from_json(container));
    }
    let container_type = container.get("resourceType").and_then(Value::as_str)?;
    let contained = container.get("contained")?.as_array()?;
    let (index, resource) = contained
        .iter()
        .enumerate()
        .find(|(_, resource)| resource.get("id").and_then(Value::as_str) == Some(fragment))?;
    let root = Location::child(None, container_type, None);
    let location = Location::child(Some(&root), "contained", Some(index));
    let resource_type = resource.get("resourceType").and_then(Value::as_str);
    Some(Item::Node(Node::new(Some(resource), None, resource_type.map(Cow::Borrowed), Some(location))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_type_in_relative_absolute_and_versioned_references() {
        assert_eq!(referenced_type("Patient/123"), Some("Patient"));
        assert_eq!(referenced_type("http://example.org/fhir/Practitioner/a.b-c"), Some("Practitioner"));
        assert_eq!(referenced_type("Location/1/_history/2"), Some("Location"));
        assert_eq!(referenced_type("#contained"), None);
        assert_eq!(referenced_type("urn:uuid:0f3c9b1e-1111-2222-3333-444455556666"), None);
        assert_eq!(referenced_type("patient/123"), None);
        assert_eq!(referenced_type("123"), None);
    }
}
