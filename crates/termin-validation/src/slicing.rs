//! Slicing: which slice each instance of a sliced element belongs to (by the value, pattern,
//! type, profile or exists discriminators), and the slices' cardinalities, closed and ordered
//! rules. `resolve()` in a discriminator path follows references to contained resources; a
//! reference to any other resource is known by the type its URL names.

use crate::definitions::{CORE_BASE, Definitions};
use crate::path::Path;
use crate::structure::{DiscriminatorKind, Element, Slicing, Structure, TypeRef};
use crate::walk::{Node, Run, matches_pattern, referenced_type, same_json};
use serde_json::Value;
use std::borrow::Cow;
use termin_fhir::IssueCode;

/// One instance of a sliced element.
pub(crate) struct Candidate<'a, 'p> {
    pub node: Node<'a>,
    pub path: Path<'p>,
    /// The type of a choice element instance (`deceasedBoolean` → boolean).
    pub choice: Option<&'a TypeRef>,
}

/// Assigns each candidate to its slice (or none) and checks the slicing rules.
#[allow(clippy::too_many_arguments)]
pub(crate) fn assign<'a>(
    run: &mut Run<'a>,
    structure: &'a Structure,
    element: usize,
    slicing: &Slicing,
    candidates: &[Candidate<'a, '_>],
    shown: &Path,
    resource: &'a Value,
) -> Vec<Option<usize>> {
    let definition = &structure.elements[element];
    let assigned: Vec<Option<usize>> = candidates
        .iter()
        .map(|candidate| {
            definition
                .slices
                .iter()
                .copied()
                .find(|&slice| matches(run, structure, slice, slicing, candidate, resource))
        })
        .collect();
    for &slice in &definition.slices {
        let count = assigned.iter().filter(|a| **a == Some(slice)).count();
        run.cardinality(&structure.elements[slice], count, shown, &structure.url);
    }
    let by_url = slicing.discriminators.iter().any(|d| d.path == "url");
    for (candidate, slice) in candidates.iter().zip(&assigned) {
        if slice.is_some() {
            continue;
        }
        if slicing.closed {
            run.error(
                IssueCode::Structure,
                candidate.path,
                format!(
                    "This {} matches none of the slices of {} (the slicing is closed, {})",
                    definition.name, definition.path, structure.url
                ),
            );
        } else if by_url && definition.name == "extension" {
            let url = candidate.node.value.and_then(|v| v.get("url")).and_then(Value::as_str);
            if let Some(url) = url.filter(|url| !url.contains(':')) {
                run.error(
                    IssueCode::Structure,
                    candidate.path,
                    format!("Sub-extension {url:?} is not defined for {} ({})", definition.path, structure.url),
                );
            }
        }
    }
    if slicing.ordered {
        let positions: Vec<usize> = assigned
            .iter()
            .filter_map(|slice| *slice)
            .map(|slice| definition.slices.iter().position(|s| *s == slice).unwrap_or(0))
            .collect();
        if positions.windows(2).any(|pair| pair[0] > pair[1]) {
            run.error(
                IssueCode::Structure,
                shown,
                format!("The slices of {} must appear in the order the profile defines ({})", definition.path, structure.url),
            );
        }
    }
    assigned
}

fn matches<'a>(
    run: &Run<'a>,
    structure: &'a Structure,
    slice: usize,
    slicing: &Slicing,
    candidate: &Candidate<'a, '_>,
    resource: &'a Value,
) -> bool {
    !slicing.discriminators.is_empty()
        && slicing.discriminators.iter().all(|discriminator| {
            let path = discriminator.path.as_str();
            match discriminator.kind {
                DiscriminatorKind::Value | DiscriminatorKind::Pattern => {
                    let Some(expected) = expectation(run.defs, structure, slice, path) else {
                        return false;
                    };
                    values_at(candidate.node.value, path).into_iter().any(|actual| {
                        if discriminator.kind == DiscriminatorKind::Value {
                            same_json(actual, &expected)
                        } else {
                            matches_pattern(actual, &expected)
                        }
                    })
                }
                DiscriminatorKind::Type => {
                    let expected = expected_types(run.defs, structure, slice, path);
                    instance_types(candidate, path, resource)
                        .iter()
                        .any(|actual| expected.iter().any(|e| e == actual))
                }
                DiscriminatorKind::Profile => conforms(run, structure, slice, path, candidate, resource),
                DiscriminatorKind::Exists => {
                    let present = !values_at(candidate.node.value, path).is_empty();
                    match find_descendant(structure, slice, path) {
                        Some(element) if element.min >= 1 => present,
                        Some(element) if element.max == Some(0) => !present,
                        _ => true,
                    }
                }
            }
        })
}

/// Path segments of a discriminator, without a trailing `resolve()`.
fn segments(path: &str) -> (Vec<&str>, bool) {
    let (path, resolves) = match path.strip_suffix(".resolve()") {
        Some(prefix) => (prefix, true),
        None if path == "resolve()" => ("$this", true),
        None => (path, false),
    };
    (path.split('.').filter(|s| !s.is_empty() && *s != "$this").collect(), resolves)
}

/// The element a discriminator path names inside a slice.
fn find_descendant<'s>(structure: &'s Structure, slice: usize, path: &str) -> Option<&'s Element> {
    let (segments, _) = segments(path);
    let mut current = slice;
    for segment in segments {
        let name = segment.strip_suffix("[x]").unwrap_or(segment);
        current = *structure
            .children(current)
            .iter()
            .find(|&&child| structure.elements[child].name == name)?;
    }
    Some(&structure.elements[current])
}

/// The value a slice requires at a discriminator path: its fixed or pattern value, from the
/// slice itself or its type profile. For extension slices whose definitions are not loaded,
/// the `url` is the profile's canonical, or for a sub-extension the slice name.
fn expectation<'s>(defs: &'s Definitions, structure: &'s Structure, slice: usize, path: &str) -> Option<Cow<'s, Value>> {
    let required = |element: &'s Element| element.fixed.as_ref().or(element.pattern.as_ref());
    if let Some(value) = find_descendant(structure, slice, path).and_then(required) {
        return Some(Cow::Borrowed(value));
    }
    let definition = &structure.elements[slice];
    let profile = definition.types.first().and_then(|t| t.profiles.first());
    if let Some(Some(Ok(profiled))) = profile.map(|url| defs.structure(url))
        && let Some(value) = find_descendant(profiled, profiled.root(), path).and_then(required)
    {
        return Some(Cow::Borrowed(value));
    }
    if path != "url" {
        return None;
    }
    match profile {
        Some(url) => Some(Cow::Owned(Value::String(url.clone()))),
        None if definition.name == "extension" => definition.slice_name.clone().map(|name| Cow::Owned(Value::String(name))),
        None => None,
    }
}

/// The JSON values at a discriminator path (`system`, `type.coding.code`,
/// `extension('url').value`); choice elements are found by their name (`value`).
fn values_at<'a>(value: Option<&'a Value>, path: &str) -> Vec<&'a Value> {
    let (segments, _) = segments(path);
    let mut current: Vec<&'a Value> = value.into_iter().collect();
    for segment in segments {
        let mut next = Vec::new();
        let extension_url = segment
            .strip_prefix("extension('")
            .and_then(|rest| rest.strip_suffix("')"));
        for value in current {
            let Some(object) = value.as_object() else {
                continue;
            };
            let found: Vec<&'a Value> = match extension_url {
                Some(url) => object
                    .get("extension")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter(|e| e.get("url").and_then(Value::as_str) == Some(url))
                    .collect(),
                None => {
                    let name = segment.strip_suffix("[x]").unwrap_or(segment);
                    match object.get(name) {
                        Some(found) => vec![found],
                        None => object
                            .iter()
                            .filter(|(key, _)| {
                                key.strip_prefix(name)
                                    .is_some_and(|suffix| suffix.starts_with(|c: char| c.is_ascii_uppercase()))
                            })
                            .map(|(_, v)| v)
                            .collect(),
                    }
                }
            };
            for item in found {
                match item {
                    Value::Array(items) => next.extend(items),
                    single => next.push(single),
                }
            }
        }
        current = next;
    }
    current
}

/// The type names a slice allows at a discriminator path (for `resolve()`: the types of its
/// target profiles).
fn expected_types<'s>(defs: &'s Definitions, structure: &'s Structure, slice: usize, path: &str) -> Vec<&'s str> {
    let (_, resolves) = segments(path);
    let Some(element) = find_descendant(structure, slice, path) else {
        return Vec::new();
    };
    if !resolves {
        return element.types.iter().map(|t| t.code.as_str()).collect();
    }
    element
        .types
        .iter()
        .flat_map(|t| &t.target_profiles)
        .filter_map(|profile| match defs.structure(profile) {
            Some(Ok(target)) => Some(target.type_name.as_str()),
            _ => profile.strip_prefix(CORE_BASE),
        })
        .collect()
}

/// The types of an instance at a discriminator path: the chosen type of a choice element,
/// a resource's `resourceType`, or (after `resolve()`) the type a reference points to.
fn instance_types<'a>(candidate: &Candidate<'a, '_>, path: &str, resource: &'a Value) -> Vec<&'a str> {
    let (segments, resolves) = segments(path);
    if resolves {
        return values_at(candidate.node.value, &segments.join("."))
            .into_iter()
            .filter_map(|reference| reference.get("reference").and_then(Value::as_str))
            .filter_map(|reference| referenced_type(reference, resource))
            .collect();
    }
    if segments.is_empty() {
        if let Some(resource_type) = candidate.node.value.and_then(|v| v.get("resourceType")).and_then(Value::as_str) {
            return vec![resource_type];
        }
        return candidate.choice.map(|t| t.code.as_str()).into_iter().collect();
    }
    Vec::new()
}

/// Profile discriminators: the instance (or the contained resource it references) validates
/// without errors against a profile the slice names. A reference to a resource that is not
/// contained is judged by its type alone.
fn conforms<'a>(
    run: &Run<'a>,
    structure: &'a Structure,
    slice: usize,
    path: &str,
    candidate: &Candidate<'a, '_>,
    resource: &'a Value,
) -> bool {
    let (segments, resolves) = segments(path);
    let Some(element) = find_descendant(structure, slice, path) else {
        return false;
    };
    let profiles: Vec<&String> = element
        .types
        .iter()
        .flat_map(|t| if resolves { &t.target_profiles } else { &t.profiles })
        .collect();
    let targets = values_at(candidate.node.value, &segments.join("."));
    targets.into_iter().any(|target| {
        profiles.iter().any(|profile| {
            let Some(Ok(profiled)) = run.defs.structure(profile) else {
                return false;
            };
            let mut check = Run::new(run.defs, resource);
            check.deadline = run.deadline;
            if resolves {
                let Some(reference) = target.get("reference").and_then(Value::as_str) else {
                    return false;
                };
                match run.contained_target(reference, resource) {
                    Some(contained) => check.resource(profiled, contained, &Path::root("resolve()")),
                    None => return referenced_type(reference, resource) == Some(profiled.type_name.as_str()),
                }
            } else {
                let node = Node {
                    value: Some(target),
                    extension: None,
                };
                check.type_root(profiled, node, &Path::root("$this"), resource);
            }
            !check.issues.iter().any(|issue| issue.severity == termin_fhir::Severity::Error)
        })
    })
}
