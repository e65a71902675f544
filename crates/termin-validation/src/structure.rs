//! StructureDefinition snapshots compiled into element trees the validator walks.

use crate::package::unversioned;
use serde_json::Value;
use foldhash::HashMap;
use termin_fhirpath::Expression;

const FHIR_TYPE_EXTENSION: &str = "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type";
const SYSTEM_TYPE_PREFIX: &str = "http://hl7.org/fhirpath/";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    PrimitiveType,
    ComplexType,
    Resource,
    Logical,
}

/// Where an extension may be used (`StructureDefinition.context`).
#[derive(Debug)]
pub(crate) enum ExtensionContext {
    /// An element path or type name (`Patient`, `Address.line`, `Element`); a profile-qualified
    /// path (`<profile>#Patient.gender`) is kept as its path.
    Element(String),
    /// Inside the extension with this URL.
    Extension(String),
    /// A FHIRPath context, which Termin does not evaluate (any place is accepted).
    FhirPath,
}

pub(crate) struct Structure {
    pub url: String,
    pub type_name: String,
    pub kind: Kind,
    pub is_abstract: bool,
    pub contexts: Vec<ExtensionContext>,
    pub elements: Vec<Element>,
    /// Element (not slice) indices by path, for the type model.
    by_path: HashMap<String, usize>,
    /// Constraints whose expressions the FHIRPath engine cannot compile: `(key, reason)`.
    pub unsupported_constraints: Vec<(String, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Strength {
    Required,
    Extensible,
    Other,
}

pub(crate) struct Binding {
    pub strength: Strength,
    pub value_set: String,
}

pub(crate) struct Constraint {
    pub key: String,
    pub is_error: bool,
    pub human: String,
    pub expression: Expression,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DiscriminatorKind {
    Value,
    Pattern,
    Type,
    Profile,
    Exists,
}

pub(crate) struct Discriminator {
    pub kind: DiscriminatorKind,
    pub path: String,
}

pub(crate) struct Slicing {
    pub discriminators: Vec<Discriminator>,
    pub ordered: bool,
    pub closed: bool,
}

pub(crate) struct TypeRef {
    /// The FHIR type (`string`, `HumanName`, `Reference`); System.String elements carry the
    /// FHIR type named by their `structuredefinition-fhir-type` extension (`id`, `uri`).
    pub code: String,
    /// The type as FHIRPath sees it (`System.String` for those elements).
    pub fhirpath_code: String,
    pub profiles: Vec<String>,
    pub target_profiles: Vec<String>,
}

pub(crate) struct Element {
    pub id: String,
    pub path: String,
    /// The last path segment without `[x]`.
    pub name: String,
    pub is_choice: bool,
    pub slice_name: Option<String>,
    pub min: u32,
    /// `None` for `*`.
    pub max: Option<u32>,
    /// Whether JSON holds the element as an array (its base allows more than one).
    pub is_array: bool,
    pub types: Vec<TypeRef>,
    pub fixed: Option<Value>,
    pub pattern: Option<Value>,
    pub binding: Option<Binding>,
    pub constraints: Vec<Constraint>,
    pub slicing: Option<Slicing>,
    pub max_length: Option<usize>,
    /// Index of the element a `contentReference` names; its children are this element's.
    pub content_reference: Option<usize>,
    /// Whether XML holds the element as an attribute (`representation` `xmlAttr`: `id` of
    /// elements, `Extension.url`, the `value` of primitives).
    pub xml_attribute: bool,
    pub children: Vec<usize>,
    pub slices: Vec<usize>,
    /// Children by name, except choice elements (they are matched by prefix).
    child_names: foldhash::HashMap<String, usize>,
    choice_children: Vec<usize>,
}

impl Element {
    /// The type named by a choice property suffix (`Boolean` → `boolean`) among the allowed ones.
    pub fn choice_type(&self, suffix: &str) -> Option<&TypeRef> {
        self.types.iter().find(|t| {
            let mut chars = t.code.chars();
            chars.next().is_some_and(|first| {
                suffix.len() == t.code.len()
                    && suffix.starts_with(first.to_ascii_uppercase())
                    && suffix[first.len_utf8()..] == *chars.as_str()
            })
        })
    }
}

impl Structure {
    pub fn compile(json: Value) -> Result<Structure, String> {
        let text = |key: &str| json.get(key).and_then(Value::as_str).map(str::to_owned);
        let url = text("url").ok_or("StructureDefinition without url")?;
        let type_name = text("type").ok_or("StructureDefinition without type")?;
        let kind = match text("kind").as_deref() {
            Some("primitive-type") => Kind::PrimitiveType,
            Some("complex-type") => Kind::ComplexType,
            Some("resource") => Kind::Resource,
            _ => Kind::Logical,
        };
        let contexts = json
            .get("context")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|c| {
                let expression = c.get("expression")?.as_str()?;
                Some(match c.get("type")?.as_str()? {
                    "element" => ExtensionContext::Element(
                        expression.rsplit_once('#').map_or(expression, |(_, path)| path).to_owned(),
                    ),
                    "extension" => ExtensionContext::Extension(expression.to_owned()),
                    _ => ExtensionContext::FhirPath,
                })
            })
            .collect();
        let raw_elements = json
            .pointer("/snapshot/element")
            .and_then(Value::as_array)
            .ok_or("StructureDefinition without snapshot")?;
        let mut structure = Structure {
            url,
            type_name,
            kind,
            is_abstract: json.get("abstract").and_then(Value::as_bool).unwrap_or(false),
            contexts,
            elements: Vec::with_capacity(raw_elements.len()),
            by_path: HashMap::default(),
            unsupported_constraints: Vec::new(),
        };
        let mut by_id: HashMap<String, usize> = HashMap::default();
        let mut content_references: Vec<(usize, String)> = Vec::new();
        for raw in raw_elements {
            let element = structure.compile_element(raw)?;
            let index = structure.elements.len();
            if let Some(reference) = raw.get("contentReference").and_then(Value::as_str) {
                content_references.push((index, reference.rsplit_once('#').map_or(reference, |(_, id)| id).to_owned()));
            }
            let (parent_id, is_slice) = parent_of(&element.id);
            if let Some(parent_id) = parent_id {
                let parent = *by_id
                    .get(parent_id)
                    .ok_or_else(|| format!("element {} comes before its parent", element.id))?;
                if is_slice {
                    // Reslices (`a:b/c`) are not evaluated: their slice is `a:b` itself.
                    if !element.id.rsplit(':').next().unwrap_or_default().contains('/') {
                        structure.elements[parent].slices.push(index);
                    }
                } else {
                    structure.elements[parent].children.push(index);
                }
            }
            if element.slice_name.is_none() && !element.id.contains(':') {
                structure.by_path.insert(element.path.clone(), index);
            }
            by_id.insert(element.id.clone(), index);
            structure.elements.push(element);
        }
        for (index, target) in content_references {
            let target = by_id
                .get(&target)
                .or_else(|| structure.by_path.get(&target))
                .copied()
                .ok_or_else(|| format!("contentReference #{target} names no element"))?;
            structure.elements[index].content_reference = Some(target);
        }
        for index in 0..structure.elements.len() {
            let (names, choices): (Vec<usize>, Vec<usize>) = structure.elements[index]
                .children
                .iter()
                .partition(|&&child| !structure.elements[child].is_choice);
            let names = names
                .into_iter()
                .map(|child| (structure.elements[child].name.clone(), child))
                .collect();
            let element = &mut structure.elements[index];
            element.child_names = names;
            element.choice_children = choices;
        }
        Ok(structure)
    }

    fn compile_element(&mut self, raw: &Value) -> Result<Element, String> {
        let path = raw.get("path").and_then(Value::as_str).ok_or("element without path")?.to_owned();
        let id = raw.get("id").and_then(Value::as_str).unwrap_or(&path).to_owned();
        let last = path.rsplit('.').next().unwrap_or(&path);
        let (name, is_choice) = match last.strip_suffix("[x]") {
            Some(name) => (name.to_owned(), true),
            None => (last.to_owned(), false),
        };
        let max = match raw.get("max").and_then(Value::as_str) {
            None | Some("*") => None,
            Some(n) => Some(n.parse().map_err(|_| format!("{id}: max {n:?}"))?),
        };
        let base_max = raw.pointer("/base/max").and_then(Value::as_str).unwrap_or("*");
        let types = raw
            .get("type")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(compile_type)
            .collect();
        let mut fixed = None;
        let mut pattern = None;
        if let Value::Object(object) = raw {
            for (key, value) in object {
                if key.starts_with("fixed") && key.len() > 5 {
                    fixed = Some(value.clone());
                } else if key.starts_with("pattern") && key.len() > 7 {
                    pattern = Some(value.clone());
                }
            }
        }
        let binding = raw.get("binding").and_then(|b| {
            let value_set = b.get("valueSet")?.as_str()?;
            Some(Binding {
                strength: match b.get("strength").and_then(Value::as_str) {
                    Some("required") => Strength::Required,
                    Some("extensible") => Strength::Extensible,
                    _ => Strength::Other,
                },
                value_set: unversioned(value_set).to_owned(),
            })
        });
        let mut constraints = Vec::new();
        for raw_constraint in raw.get("constraint").and_then(Value::as_array).into_iter().flatten() {
            let field = |key: &str| raw_constraint.get(key).and_then(Value::as_str);
            let (Some(key), Some(expression)) = (field("key"), field("expression")) else {
                continue;
            };
            match Expression::parse(expression) {
                Ok(expression) => constraints.push(Constraint {
                    key: key.to_owned(),
                    is_error: field("severity") != Some("warning"),
                    human: field("human").unwrap_or(key).to_owned(),
                    expression,
                }),
                Err(e) => self.unsupported_constraints.push((key.to_owned(), e.to_string())),
            }
        }
        let slicing = raw.get("slicing").map(|s| Slicing {
            discriminators: s
                .get("discriminator")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|d| {
                    let kind = match d.get("type")?.as_str()? {
                        "value" => DiscriminatorKind::Value,
                        "pattern" => DiscriminatorKind::Pattern,
                        "type" => DiscriminatorKind::Type,
                        "profile" => DiscriminatorKind::Profile,
                        "exists" => DiscriminatorKind::Exists,
                        _ => return None,
                    };
                    Some(Discriminator {
                        kind,
                        path: d.get("path")?.as_str()?.to_owned(),
                    })
                })
                .collect(),
            ordered: s.get("ordered").and_then(Value::as_bool).unwrap_or(false),
            closed: s.get("rules").and_then(Value::as_str) == Some("closed"),
        });
        Ok(Element {
            slice_name: raw.get("sliceName").and_then(Value::as_str).map(str::to_owned),
            min: raw.get("min").and_then(Value::as_u64).unwrap_or(0) as u32,
            max,
            is_array: base_max != "1" && base_max != "0",
            types,
            fixed,
            pattern,
            binding,
            constraints,
            slicing,
            max_length: raw.get("maxLength").and_then(Value::as_u64).map(|n| n as usize),
            content_reference: None,
            xml_attribute: raw
                .get("representation")
                .and_then(Value::as_array)
                .is_some_and(|r| r.iter().any(|r| r == "xmlAttr")),
            children: Vec::new(),
            slices: Vec::new(),
            child_names: foldhash::HashMap::default(),
            choice_children: Vec::new(),
            id,
            path,
            name,
            is_choice,
        })
    }

    pub fn root(&self) -> usize {
        0
    }

    /// The children of an element, following a `contentReference`.
    pub fn children(&self, element: usize) -> &[usize] {
        let element = &self.elements[element];
        match element.content_reference {
            Some(target) => &self.elements[target].children,
            None => &element.children,
        }
    }

    /// The child of `element` a JSON property names (`deceasedBoolean` → `deceased[x]`), with
    /// the type a choice property's suffix selects (`None` when the suffix names no allowed
    /// type).
    pub fn child_named(&self, element: usize, property: &str) -> Option<(usize, Option<&TypeRef>)> {
        let owner = &self.elements[self.elements[element].content_reference.unwrap_or(element)];
        if let Some(&child) = owner.child_names.get(property) {
            return Some((child, None));
        }
        owner.choice_children.iter().find_map(|&child| {
            let definition = &self.elements[child];
            let suffix = property.strip_prefix(definition.name.as_str()).filter(|s| !s.is_empty())?;
            Some((child, definition.choice_type(suffix)))
        })
    }

    /// The index of the element (not a slice) at `path`, e.g. `Patient.contact`.
    pub fn index_of(&self, path: &str) -> Option<usize> {
        self.by_path.get(path).copied()
    }
}

/// The parent id of an element id and whether the element is a slice of it:
/// `Patient.identifier:ssn.system` → `Patient.identifier:ssn` (child),
/// `Patient.identifier:ssn` → `Patient.identifier` (slice).
fn parent_of(id: &str) -> (Option<&str>, bool) {
    let last_dot = id.rfind('.');
    let last_colon = id.rfind(':');
    match (last_dot, last_colon) {
        (_, Some(colon)) if last_dot.is_none_or(|dot| colon > dot) => (Some(&id[..colon]), true),
        (Some(dot), _) => (Some(&id[..dot]), false),
        _ => (None, false),
    }
}

fn compile_type(raw: &Value) -> Option<TypeRef> {
    let code = raw.get("code")?.as_str()?;
    let canonicals = |key: &str| -> Vec<String> {
        raw.get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(|c| unversioned(c).to_owned())
            .collect()
    };
    let (code, fhirpath_code) = match code.strip_prefix(SYSTEM_TYPE_PREFIX) {
        Some(system) => {
            let fhir_type = raw
                .get("extension")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .find(|e| e.get("url").and_then(Value::as_str) == Some(FHIR_TYPE_EXTENSION))
                .and_then(|e| e.get("valueUrl").or_else(|| e.get("valueUri")))
                .and_then(Value::as_str)
                .unwrap_or("string");
            (fhir_type.to_owned(), system.to_owned())
        }
        None => (code.to_owned(), code.to_owned()),
    };
    Some(TypeRef {
        code,
        fhirpath_code,
        profiles: canonicals("profile"),
        target_profiles: canonicals("targetProfile"),
    })
}

/// Whether a FHIR type name is a primitive type (`string`, `dateTime`, ...).
pub(crate) fn is_primitive(type_code: &str) -> bool {
    type_code.starts_with(|c: char| c.is_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_element_ids_into_parent_and_slice() {
        assert_eq!(parent_of("Patient.identifier:ssn.system"), (Some("Patient.identifier:ssn"), false));
        assert_eq!(parent_of("Patient.identifier:ssn"), (Some("Patient.identifier"), true));
        assert_eq!(parent_of("Patient.deceased[x]:deceasedBoolean"), (Some("Patient.deceased[x]"), true));
        assert_eq!(parent_of("Patient"), (None, false));
    }

    #[test]
    fn compiles_a_small_snapshot() {
        let json = serde_json::json!({
            "resourceType": "StructureDefinition", "url": "http://x/sd", "type": "Thing", "kind": "resource",
            "snapshot": {"element": [
                {"id": "Thing", "path": "Thing", "min": 0, "max": "*"},
                {"id": "Thing.value[x]", "path": "Thing.value[x]", "min": 1, "max": "1", "base": {"max": "1"},
                 "type": [{"code": "boolean"}, {"code": "dateTime"}]},
                {"id": "Thing.value[x]:valueBoolean", "path": "Thing.value[x]", "sliceName": "valueBoolean",
                 "min": 0, "max": "1", "type": [{"code": "boolean"}]},
                {"id": "Thing.code", "path": "Thing.code", "min": 0, "max": "*", "base": {"max": "*"},
                 "type": [{"code": "code"}], "fixedCode": "x",
                 "constraint": [{"key": "k-1", "severity": "error", "human": "h", "expression": "$this = 'x'"}]}
            ]}
        });
        let structure = Structure::compile(json).unwrap();
        let root = &structure.elements[0];
        assert_eq!(root.children, vec![1, 3]);
        assert_eq!(structure.elements[1].slices, vec![2]);
        assert!(structure.elements[1].is_choice);
        assert_eq!(structure.elements[1].choice_type("DateTime").unwrap().code, "dateTime");
        assert!(structure.elements[1].choice_type("Date").is_none());
        assert!(structure.elements[3].is_array);
        assert_eq!(structure.elements[3].fixed, Some(serde_json::json!("x")));
        assert_eq!(structure.elements[3].constraints[0].key, "k-1");
    }
}
