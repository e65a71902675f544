//! References: the one parser of literal references (`Type/id`, `[base]/Type/id`, with an
//! optional `/_history/version`) and of canonicals (`url|version`) that every Termin crate uses.

use crate::ResourceType;

/// A literal reference taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiteralReference<'a> {
    /// The service base of an absolute reference (`https://x.org/fhir`); `None` when relative.
    pub base: Option<&'a str>,
    pub resource_type: &'a str,
    pub id: &'a str,
    pub version: Option<&'a str>,
}

/// Parses `[base/]Type/id[/_history/version]`; `None` for anything else (contained `#id`,
/// `urn:uuid:...`, URLs that do not end in a type and an id).
pub fn parse_literal(reference: &str) -> Option<LiteralReference<'_>> {
    let (path, version) = match reference.split_once("/_history/") {
        Some((path, version)) if !version.is_empty() && !version.contains('/') => (path, Some(version)),
        Some(_) => return None,
        None => (reference, None),
    };
    let (rest, id) = path.rsplit_once('/')?;
    let (base, resource_type) = match rest.rsplit_once('/') {
        Some((base, resource_type)) => (Some(base), resource_type),
        None => (None, rest),
    };
    let is_absolute = base.is_some_and(|b| b.contains("://"));
    if base.is_some() && !is_absolute {
        return None;
    }
    (is_resource_type_name(resource_type) && crate::is_valid_id(id)).then_some(LiteralReference {
        base,
        resource_type,
        id,
        version,
    })
}

/// The id of a literal reference to `expected` (relative, absolute or versioned); `None` for
/// other types and for what is not a literal reference.
pub fn reference_id(reference: &str, expected: ResourceType) -> Option<&str> {
    parse_literal(reference)
        .filter(|literal| literal.resource_type == expected.as_str())
        .map(|literal| literal.id)
}

/// `Patient`, `PractitionerRole`: an upper-case ASCII letter followed by letters.
pub fn is_resource_type_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_uppercase()) && name.chars().all(|c| c.is_ascii_alphabetic())
}

/// Splits a canonical `url|version`.
pub fn split_canonical(canonical: &str) -> (&str, Option<&str>) {
    match canonical.split_once('|') {
        Some((url, version)) => (url, Some(version)),
        None => (canonical, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_literal_references_apart() {
        assert_eq!(
            parse_literal("Patient/p-1"),
            Some(LiteralReference { base: None, resource_type: "Patient", id: "p-1", version: None })
        );
        assert_eq!(
            parse_literal("https://x.org/fhir/Slot/s/_history/3"),
            Some(LiteralReference {
                base: Some("https://x.org/fhir"),
                resource_type: "Slot",
                id: "s",
                version: Some("3")
            })
        );
        for not_literal in ["#c", "urn:uuid:123", "p-1", "a/b/Patient/1", "https://x.org", "patient/1"] {
            assert_eq!(parse_literal(not_literal), None, "{not_literal}");
        }
        assert_eq!(reference_id("http://x.org/fhir/Slot/s/_history/3", ResourceType::Slot), Some("s"));
        assert_eq!(reference_id("Schedule/s", ResourceType::Slot), None);
        assert_eq!(split_canonical("http://a/SD/x|1.0"), ("http://a/SD/x", Some("1.0")));
    }
}
