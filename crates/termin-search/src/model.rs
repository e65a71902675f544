//! Element types from the R5 StructureDefinitions, so FHIRPath results know whether they are
//! a `Coding`, an `Identifier` or a `ContactPoint` (which share JSON shapes) or a `date`, and
//! the mandatory top-level elements of the served types, which `_elements` always keeps, and
//! their summary elements (`isSummary`), which `_summary=true` returns.

use crate::definitions::LoadError;
use serde::Deserialize;
use std::collections::{HashMap, VecDeque};
use std::path::Path;
use termin_fhirpath::TypeModel;

/// `parent type → element name → element type`, for the served resource types and every data
/// type they reach. Backbone elements are named by their path (`Appointment.participant`), as
/// [`TypeModel`] expects.
#[derive(Debug, Default)]
pub(crate) struct ElementModel {
    children: HashMap<String, HashMap<String, String>>,
    /// `resource type → its top-level elements with min ≥ 1`, in definition order.
    mandatory: HashMap<String, Vec<String>>,
    /// `resource type → its top-level elements marked isSummary`, in definition order.
    summary: HashMap<String, Vec<String>>,
}

#[derive(Deserialize)]
struct StructureDefinition {
    snapshot: Snapshot,
}

#[derive(Deserialize)]
struct Snapshot {
    element: Vec<ElementDefinition>,
}

#[derive(Deserialize)]
struct ElementDefinition {
    path: String,
    #[serde(default, rename = "type")]
    types: Vec<TypeRef>,
    #[serde(rename = "contentReference")]
    content_reference: Option<String>,
    #[serde(default)]
    min: u32,
    #[serde(default, rename = "isSummary")]
    is_summary: bool,
}

#[derive(Deserialize)]
struct TypeRef {
    code: String,
}

const SYSTEM_TYPE_PREFIX: &str = "http://hl7.org/fhirpath/";

impl ElementModel {
    /// Loads `roots` and, transitively, the complex types their elements use.
    pub fn load(package: &Path, roots: &[&str]) -> Result<ElementModel, LoadError> {
        let mut model = ElementModel::default();
        let mut queue: VecDeque<String> = roots.iter().map(|r| r.to_string()).collect();
        // Primitives' `id`/`extension` are asked for with parent `Element`.
        queue.push_back("Element".into());
        let mut loaded: Vec<String> = Vec::new();
        while let Some(type_name) = queue.pop_front() {
            if loaded.contains(&type_name) {
                continue;
            }
            loaded.push(type_name.clone());
            let path = package.join(format!("StructureDefinition-{type_name}.json"));
            let text = std::fs::read_to_string(&path).map_err(|e| LoadError::file(&path, e))?;
            let definition: StructureDefinition =
                serde_json::from_str(&text).map_err(|e| LoadError::file(&path, e))?;
            for element in definition.snapshot.element {
                let Some((parent, name)) = element.path.rsplit_once('.') else {
                    continue;
                };
                if parent == type_name && roots.contains(&parent) {
                    if element.min >= 1 {
                        model.mandatory.entry(parent.to_owned()).or_default().push(name.to_owned());
                    }
                    if element.is_summary {
                        model.summary.entry(parent.to_owned()).or_default().push(name.to_owned());
                    }
                }
                let Some(child_type) = element_type(&element) else {
                    continue;
                };
                let is_complex = child_type.starts_with(|c: char| c.is_ascii_uppercase()) && !child_type.contains('.');
                if is_complex && !loaded.contains(&child_type) {
                    queue.push_back(child_type.clone());
                }
                model
                    .children
                    .entry(parent.to_owned())
                    .or_default()
                    .insert(name.to_owned(), child_type);
            }
        }
        Ok(model)
    }

    /// The top-level elements every instance of `resource_type` has (min ≥ 1 in its definition).
    pub fn mandatory_elements(&self, resource_type: &str) -> &[String] {
        self.mandatory.get(resource_type).map_or(&[], Vec::as_slice)
    }

    /// The top-level elements of `resource_type` its definition marks isSummary (choice
    /// elements as `name[x]`).
    pub fn summary_elements(&self, resource_type: &str) -> &[String] {
        self.summary.get(resource_type).map_or(&[], Vec::as_slice)
    }
}

/// The type an element declares; backbone elements are typed by their own path. Choice
/// elements (`value[x]`) get none: FHIRPath types them by their JSON suffix.
fn element_type(element: &ElementDefinition) -> Option<String> {
    if element.path.ends_with("[x]") {
        return None;
    }
    if let Some(reference) = &element.content_reference {
        return reference.rsplit_once('#').map(|(_, path)| path.to_owned());
    }
    let [single] = element.types.as_slice() else {
        return None;
    };
    let code = single.code.as_str();
    if code == "BackboneElement" || code == "Element" {
        return Some(element.path.clone());
    }
    Some(code.strip_prefix(SYSTEM_TYPE_PREFIX).unwrap_or(code).to_owned())
}

impl TypeModel for ElementModel {
    fn child_type(&self, parent_type: &str, element: &str) -> Option<&str> {
        self.children.get(parent_type)?.get(element).map(String::as_str)
    }
}
