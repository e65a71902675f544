//! One validation: walks a resource's JSON along a StructureDefinition snapshot and collects
//! issues. Elements a profile does not constrain are walked along their type's definition
//! (or the type's profile); extensions along the definition their `url` names.

use crate::definitions::{CORE_BASE, Definitions};
use crate::path::Path;
use crate::primitive;
use crate::slicing::{self, Candidate};
use crate::structure::{Element, ExtensionContext, Kind, Strength, Structure, TypeRef, is_primitive};
use crate::terminology::{Membership, Terminology};
use serde_json::{Map, Value};
use termin_fhir::{Issue, IssueCode};
use termin_fhirpath::{EvalContext, Item, SystemValue, evaluate_items};

/// The JSON properties of one child element: `name` (or a choice `nameType`) and `_name`.
struct Property<'a> {
    child: usize,
    name: &'a str,
    choice: Option<&'a TypeRef>,
    value: Option<&'a Value>,
    extension: Option<&'a Value>,
}

/// One element instance: a JSON value and, for primitives, its `_name` sibling.
#[derive(Clone, Copy)]
pub(crate) struct Node<'a> {
    pub value: Option<&'a Value>,
    pub extension: Option<&'a Value>,
}

impl<'a> Node<'a> {
    /// A stable identity for "this node", for not evaluating one constraint twice on it.
    fn identity(&self) -> usize {
        self.value.or(self.extension).map_or(0, |v| v as *const Value as usize)
    }
}

/// A path from the nearest typed ancestor, `parent.name` (`Address.line` for the line of a
/// Patient's address), kept in two parts so that building it allocates nothing.
#[derive(Clone, Copy)]
pub(crate) struct TypePath<'s> {
    parent: &'s str,
    name: Option<&'s str>,
}

impl TypePath<'_> {
    fn is(&self, text: &str) -> bool {
        match self.name {
            None => text == self.parent,
            Some(name) => text
                .strip_suffix(name)
                .and_then(|rest| rest.strip_suffix('.'))
                .is_some_and(|rest| rest == self.parent),
        }
    }

    fn render(&self) -> String {
        match self.name {
            None => self.parent.to_owned(),
            Some(name) => format!("{}.{name}", self.parent),
        }
    }
}

/// What an extension's context is checked against: the element holding it.
#[derive(Clone, Copy)]
pub(crate) struct Host<'s> {
    /// The element's path in the definition being walked (`Patient.gender`, `Address.line`).
    pub element_path: &'s str,
    /// The element's path from its nearest typed ancestor.
    pub type_path: TypePath<'s>,
    /// What its children's type paths start with: its type, or its path for a backbone element.
    pub type_base: &'s str,
    /// The element's type (`code`, `Address`, `Patient`).
    pub type_name: &'s str,
    /// The URL of the extension whose sub-extensions these are.
    pub extension_url: Option<&'s str>,
    pub is_resource: bool,
}

impl<'s> Host<'s> {
    /// The root of a definition: a resource, or a data type walked along its own definition.
    fn root(structure: &'s Structure, extension_url: Option<&'s str>, is_resource: bool) -> Self {
        Host {
            element_path: &structure.elements[structure.root()].path,
            type_path: TypePath {
                parent: &structure.type_name,
                name: None,
            },
            type_base: &structure.type_name,
            type_name: &structure.type_name,
            extension_url,
            is_resource,
        }
    }
}

/// A run stops collecting issues of a severity after this many: a resource with thousands of
/// faults (an array of 100,000 empty elements) costs no more to reject than one with a hundred.
pub(crate) const MAX_ISSUES: usize = 100;

/// Why a run stopped before walking the whole resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// [`MAX_ISSUES`] errors found: the resource is rejected whatever follows.
    EnoughErrors,
    /// The deadline passed.
    OutOfTime,
}

pub(crate) struct Run<'a> {
    pub defs: &'a Definitions,
    /// The resource being validated (`%rootResource`).
    root: &'a Value,
    context: EvalContext<'a>,
    pub issues: Vec<Issue>,
    errors: usize,
    warnings: usize,
    /// `(node, constraint expression)` pairs already evaluated (a few dozen per resource, so
    /// a list beats a hash set).
    evaluated: Vec<(usize, &'a str)>,
    /// The run stops walking at this moment.
    pub deadline: Option<std::time::Instant>,
    /// Elements walked, to look at the clock only now and then.
    steps: u32,
    pub stopped: Option<Stop>,
}

impl<'a> Run<'a> {
    pub fn new(defs: &'a Definitions, root: &'a Value) -> Self {
        Run {
            defs,
            root,
            context: EvalContext::new().with_model(defs).with_root_resource(root),
            issues: Vec::new(),
            errors: 0,
            warnings: 0,
            evaluated: Vec::new(),
            deadline: None,
            steps: 0,
            stopped: None,
        }
    }

    pub fn error(&mut self, code: IssueCode, at: impl std::fmt::Display, message: String) {
        self.errors += 1;
        if self.errors <= MAX_ISSUES {
            self.issues.push(Issue::error(code, message).at(at.to_string()));
        }
    }

    pub fn warning(&mut self, code: IssueCode, at: impl std::fmt::Display, message: String) {
        self.warnings += 1;
        if self.warnings <= MAX_ISSUES {
            self.issues.push(Issue::warning(code, message).at(at.to_string()));
        }
    }

    /// Whether the run must stop walking: enough errors to reject, or out of time.
    fn exhausted(&mut self) -> bool {
        if self.stopped.is_some() {
            return true;
        }
        if self.errors >= MAX_ISSUES {
            self.stopped = Some(Stop::EnoughErrors);
            return true;
        }
        self.steps = self.steps.wrapping_add(1);
        if self.steps.is_multiple_of(64) && self.deadline.is_some_and(|d| std::time::Instant::now() > d) {
            self.stopped = Some(Stop::OutOfTime);
            return true;
        }
        false
    }

    /// Validates a resource (the root or a contained one) against a resource definition.
    pub fn resource(&mut self, structure: &'a Structure, resource: &'a Value, path: &Path) {
        let Some(object) = resource.as_object() else {
            self.error(IssueCode::Structure, path, "A resource must be a JSON object".into());
            return;
        };
        let node = Node {
            value: Some(resource),
            extension: None,
        };
        let root = &structure.elements[structure.root()];
        self.constraints(root, node, &structure.type_name, path, resource);
        let host = Host::root(structure, None, true);
        self.children(structure, structure.root(), object, path, &host, resource, false);
    }

    /// Validates an element instance against the root of a data-type definition or profile
    /// (`Address`, `at-core-address`, an extension definition).
    pub fn type_root(&mut self, structure: &'a Structure, node: Node<'a>, path: &Path, resource: &'a Value) {
        let root_index = structure.root();
        let root = &structure.elements[root_index];
        if let Some(value) = node.value {
            self.fixed_and_pattern(root, value, path, &structure.url);
        }
        self.constraints(root, node, &structure.type_name, path, resource);
        let extension_url = if structure.type_name == "Extension" {
            node.value.and_then(|v| v.get("url")).and_then(Value::as_str)
        } else {
            None
        };
        let own_host = Host::root(structure, extension_url, false);
        match (node.value, node.extension) {
            (Some(Value::Object(object)), _) => {
                self.children(structure, root_index, object, path, &own_host, resource, false);
            }
            (_, Some(extension)) if structure.kind == Kind::PrimitiveType => {
                self.primitive_extension(structure, root_index, extension, path, &own_host, resource);
            }
            _ => {}
        }
    }

    /// Walks the properties of `object` against the children of `element`.
    #[allow(clippy::too_many_arguments)]
    pub fn children(
        &mut self,
        structure: &'a Structure,
        element: usize,
        object: &'a Map<String, Value>,
        path: &Path,
        host: &Host,
        resource: &'a Value,
        primitive_children: bool,
    ) {
        let children = structure.children(element);
        // The properties of each child: (child, property name, choice type, value, `_name`).
        let mut matched: Vec<Property<'a>> = Vec::with_capacity(object.len());
        for (key, value) in object {
            if host.is_resource && key == "resourceType" {
                continue;
            }
            let (bare, is_sibling) = match key.strip_prefix('_') {
                Some(bare) => (bare, true),
                None => (key.as_str(), false),
            };
            if let Some(property) = matched.iter_mut().find(|p| p.name == bare) {
                if is_sibling {
                    property.extension = Some(value);
                } else {
                    property.value = Some(value);
                }
                continue;
            }
            let found = structure
                .child_named(element, bare)
                .filter(|(child, _)| !(primitive_children && structure.elements[*child].name == "value"));
            match found {
                Some((child, None)) if structure.elements[child].is_choice => {
                    let definition = &structure.elements[child];
                    let allowed: Vec<&str> = definition.types.iter().map(|t| t.code.as_str()).collect();
                    self.error(
                        IssueCode::Structure,
                        path.child(bare, None),
                        format!(
                            "{bare} is not an allowed type for {}[x] (allowed: {})",
                            definition.name,
                            allowed.join(", ")
                        ),
                    );
                }
                Some((child, choice)) => matched.push(Property {
                    child,
                    name: bare,
                    choice,
                    value: (!is_sibling).then_some(value),
                    extension: is_sibling.then_some(value),
                }),
                None => self.error(
                    IssueCode::Structure,
                    path.child(key, None),
                    format!("Unknown element {key:?}: {} has no such element", host.type_path.render()),
                ),
            }
        }
        for &child in children {
            let definition = &structure.elements[child];
            if primitive_children && definition.name == "value" {
                continue;
            }
            let mut properties = matched.iter().filter(|p| p.child == child);
            let Some(property) = properties.next() else {
                let slices_required = definition.slices.iter().any(|&slice| structure.elements[slice].min > 0);
                if definition.min > 0 || slices_required {
                    let shown = Self::label(definition, path, None);
                    self.cardinality(definition, 0, &shown, &structure.url);
                    for &slice in &definition.slices {
                        self.cardinality(&structure.elements[slice], 0, &shown, &structure.url);
                    }
                }
                continue;
            };
            if let Some(other) = properties.next() {
                self.error(
                    IssueCode::Structure,
                    path.child(&definition.name, None),
                    format!(
                        "{}[x] may have only one type, but has {} and {}",
                        definition.name, property.name, other.name
                    ),
                );
            }
            let choice = property.choice;
            let shown = Self::label(definition, path, choice);
            let items = self.items(property, definition, &shown);
            self.cardinality(definition, items.len(), &shown, &structure.url);
            let item_path = |index: Option<usize>| index.map_or(shown, |index| shown.at(index));
            let slices = match &definition.slicing {
                Some(slicing) if !definition.slices.is_empty() => {
                    let candidates: Vec<Candidate> = items
                        .iter()
                        .map(|(node, index)| Candidate {
                            node: *node,
                            path: item_path(*index),
                            choice,
                        })
                        .collect();
                    slicing::assign(self, structure, child, slicing, &candidates, &shown, resource)
                }
                _ => vec![None; items.len()],
            };
            for ((node, index), slice) in items.iter().zip(slices) {
                let at = item_path(*index);
                self.element(structure, child, *node, choice, &at, host, resource);
                if let Some(slice) = slice {
                    self.element(structure, slice, *node, choice, &at, host, resource);
                }
            }
        }
    }

    /// Where an element is: `Patient.name`, `Patient.deceased.ofType(boolean)`.
    fn label<'p>(definition: &'p Element, path: &'p Path<'p>, choice: Option<&'p TypeRef>) -> Path<'p> {
        let of_type = choice.filter(|_| definition.is_choice).map(|t| t.code.as_str());
        path.child(&definition.name, of_type)
    }

    /// The instances of one element (its property and `_name` sibling), with their paths
    /// (`element` is the path of the element itself). Wrong JSON shapes are reported and skipped.
    fn items(&mut self, property: &Property<'a>, definition: &Element, element: &Path) -> Vec<(Node<'a>, Option<usize>)> {
        let (value, extension, name) = (property.value, property.extension, property.name);
        let shown = |index: Option<usize>| match index {
            Some(index) => element.at(index),
            None => *element,
        };
        if !definition.is_array {
            if value.is_some_and(Value::is_array) || extension.is_some_and(Value::is_array) {
                self.error(
                    IssueCode::Structure,
                    shown(None),
                    format!("{name} holds a single value, not an array"),
                );
                return Vec::new();
            }
            if value.is_some_and(Value::is_null) {
                self.error(IssueCode::Structure, shown(None), format!("{name} must not be null"));
                return Vec::new();
            }
            return vec![(Node { value, extension }, None)];
        }
        let values = match value {
            None => None,
            Some(Value::Array(values)) => Some(values),
            Some(_) => {
                self.error(IssueCode::Structure, shown(None), format!("{name} must be an array"));
                return Vec::new();
            }
        };
        let extensions = match extension {
            None => None,
            Some(Value::Array(extensions)) => Some(extensions),
            Some(_) => {
                self.error(IssueCode::Structure, shown(None), format!("_{name} must be an array"));
                return Vec::new();
            }
        };
        let length = values.map_or(0, Vec::len).max(extensions.map_or(0, Vec::len));
        if values.is_some_and(|v| v.is_empty()) && extensions.is_none_or(|e| e.is_empty()) {
            self.error(IssueCode::Structure, shown(None), format!("{name} must not be an empty array"));
        }
        let mut items = Vec::with_capacity(length);
        for index in 0..length {
            let value = values.and_then(|v| v.get(index)).filter(|v| !v.is_null());
            let extension = extensions.and_then(|e| e.get(index)).filter(|e| !e.is_null());
            if value.is_none() && extension.is_none() {
                self.error(
                    IssueCode::Structure,
                    shown(Some(index)),
                    format!("{name}[{index}] is null without an extension"),
                );
                continue;
            }
            items.push((Node { value, extension }, Some(index)));
        }
        items
    }

    pub fn cardinality(&mut self, definition: &Element, count: usize, shown: &Path, profile: &str) {
        let min = definition.min as usize;
        let what = definition.slice_name.as_deref().map_or(String::new(), |s| format!(" (slice {s})"));
        if count < min {
            self.error(
                IssueCode::Required,
                shown,
                format!(
                    "{}{what} is required: at least {min} expected, {count} found ({profile})",
                    definition.path
                ),
            );
        }
        if let Some(max) = definition.max
            && count > max as usize
        {
            let message = if max == 0 {
                format!("{}{what} is not allowed here ({profile})", definition.path)
            } else {
                format!("{}{what} allows at most {max}, {count} found ({profile})", definition.path)
            };
            self.error(IssueCode::Structure, shown, message);
        }
    }

    /// Validates one instance of an element (or slice) definition.
    #[allow(clippy::too_many_arguments)]
    pub fn element(
        &mut self,
        structure: &'a Structure,
        index: usize,
        node: Node<'a>,
        choice: Option<&'a TypeRef>,
        path: &Path,
        host: &Host,
        resource: &'a Value,
    ) {
        if self.exhausted() {
            return;
        }
        let definition = &structure.elements[index];
        let type_ref = choice.or_else(|| definition.types.first());
        let has_children = !structure.children(index).is_empty();
        let (type_code, fhirpath_type) = match type_ref {
            Some(t) if t.code == "BackboneElement" || t.code == "Element" => (t.code.as_str(), definition.path.as_str()),
            Some(t) => (t.code.as_str(), t.fhirpath_code.as_str()),
            None if has_children => ("BackboneElement", definition.path.as_str()),
            None => return,
        };
        let is_backbone = matches!(type_code, "BackboneElement" | "Element");
        let own_host = Host {
            element_path: &definition.path,
            type_path: TypePath {
                parent: host.type_base,
                name: Some(&definition.name),
            },
            type_base: if is_backbone { &definition.path } else { type_code },
            type_name: type_code,
            extension_url: None,
            is_resource: false,
        };
        if is_primitive(type_code) {
            self.primitive(structure, index, type_code, node, path, &own_host, resource);
        } else if type_code == "Resource" || self.defs.base(type_code).is_some_and(|s| s.kind == Kind::Resource) {
            self.contained(node, path);
        } else if let Some(object) = self.object(definition, type_code, node, path) {
            let value = node.value.unwrap_or(&Value::Null);
            self.fixed_and_pattern(definition, value, path, &structure.url);
            self.binding(definition, type_code, value, path, &structure.url);
            if let Some(type_ref) = type_ref {
                self.reference_target(type_ref, type_code, object, path, resource);
            }
            let extension_url = object.get("url").and_then(Value::as_str).filter(|_| type_code == "Extension");
            let own_host = Host { extension_url, ..own_host };
            let checked_by_definition = if type_code == "Extension" {
                self.extension(definition, object, node, path, host, resource)
            } else {
                let mut found = false;
                for profile in type_ref.map(|t| t.profiles.as_slice()).unwrap_or_default() {
                    found |= self.profile(profile, node, path, resource);
                }
                found
            };
            if has_children {
                self.children(structure, index, object, path, &own_host, resource, false);
            } else if !checked_by_definition {
                match self.defs.base(type_code) {
                    Some(base) => self.type_root(base, node, path, resource),
                    None => self.warning(
                        IssueCode::NotSupported,
                        path,
                        format!("The definition of type {type_code} is not loaded; its content is not checked"),
                    ),
                }
            }
        }
        self.constraints(definition, node, fhirpath_type, path, resource);
    }

    /// The JSON object of a complex-typed instance; anything else is reported.
    fn object(&mut self, definition: &Element, type_code: &str, node: Node<'a>, path: &Path) -> Option<&'a Map<String, Value>> {
        if node.extension.is_some() {
            self.error(IssueCode::Structure, path, format!("_{} is only allowed for primitive types", definition.name));
        }
        let object = node.value.and_then(Value::as_object);
        if object.is_none() {
            self.error(
                IssueCode::Structure,
                path,
                format!("{} is a {type_code} and must be a JSON object", definition.path),
            );
        }
        object
    }

    /// Validates against a type profile by its canonical URL; false when it is not loaded.
    fn profile(&mut self, url: &str, node: Node<'a>, path: &Path, resource: &'a Value) -> bool {
        match self.defs.structure(url) {
            Some(Ok(structure)) => {
                self.type_root(structure, node, path, resource);
                true
            }
            Some(Err(e)) => {
                self.warning(IssueCode::NotSupported, path, format!("Profile {url} cannot be used: {e}"));
                false
            }
            None => {
                self.warning(
                    IssueCode::NotSupported,
                    path,
                    format!("Profile {url} is not loaded; the element is not checked against it"),
                );
                false
            }
        }
    }

    /// A primitive instance: JSON kind, lexical form, length, fixed value, binding, and the
    /// extensions in its `_name` sibling.
    #[allow(clippy::too_many_arguments)]
    fn primitive(
        &mut self,
        structure: &'a Structure,
        index: usize,
        type_code: &str,
        node: Node<'a>,
        path: &Path,
        own_host: &Host,
        resource: &'a Value,
    ) {
        let definition = &structure.elements[index];
        if let Some(value) = node.value {
            if !primitive::has_json_kind(type_code, value) {
                self.error(
                    IssueCode::Structure,
                    path,
                    format!(
                        "{} is a {type_code} and must be a JSON {}",
                        definition.path,
                        primitive::json_kind(type_code)
                    ),
                );
                return;
            }
            match primitive::check(type_code, value) {
                Ok(()) => {
                    if let (Some(max), Some(text)) = (definition.max_length, value.as_str())
                        && text.chars().count() > max
                    {
                        self.error(
                            IssueCode::TooLong,
                            path,
                            format!("{} is longer than {max} characters ({})", definition.path, structure.url),
                        );
                    }
                    self.fixed_and_pattern(definition, value, path, &structure.url);
                    self.binding(definition, type_code, value, path, &structure.url);
                }
                Err(problem) => self.error(IssueCode::Value, path, format!("{} ({type_code}): {problem}", definition.path)),
            }
        }
        let Some(extension) = node.extension else {
            return;
        };
        if !structure.children(index).is_empty() {
            self.primitive_extension(structure, index, extension, path, own_host, resource);
        } else if let Some(base) = self.defs.base(type_code) {
            self.primitive_extension(base, base.root(), extension, path, own_host, resource);
        }
    }

    fn primitive_extension(
        &mut self,
        structure: &'a Structure,
        index: usize,
        extension: &'a Value,
        path: &Path,
        host: &Host,
        resource: &'a Value,
    ) {
        match extension.as_object() {
            Some(object) => self.children(structure, index, object, path, host, resource, true),
            None => self.error(IssueCode::Structure, path, "The _ sibling of a primitive must be an object".into()),
        }
    }

    /// A contained resource (or any element typed as a resource): validated against the base
    /// definition of its `resourceType`.
    fn contained(&mut self, node: Node<'a>, path: &Path) {
        let Some(value) = node.value else {
            return;
        };
        let Some(resource_type) = value.get("resourceType").and_then(Value::as_str) else {
            self.error(IssueCode::Structure, path, "A contained resource needs a resourceType".into());
            return;
        };
        match self.defs.base(resource_type).filter(|s| s.kind == Kind::Resource) {
            Some(structure) => {
                self.resource(structure, value, &path.of_type(resource_type));
            }
            None => self.error(
                IssueCode::Structure,
                path,
                format!("{resource_type:?} is not a known resource type"),
            ),
        }
    }

    /// Checks an extension against the definition its `url` names, including where it is used.
    fn extension(
        &mut self,
        definition: &Element,
        object: &'a Map<String, Value>,
        node: Node<'a>,
        path: &Path,
        host: &Host,
        resource: &'a Value,
    ) -> bool {
        let Some(url) = object.get("url").and_then(Value::as_str) else {
            return false;
        };
        let is_modifier = definition.name == "modifierExtension";
        if !url.contains(':') {
            // A sub-extension name: the enclosing extension's definition decides (slicing).
            return false;
        }
        let structure = match self.defs.structure(url) {
            Some(Ok(structure)) => structure,
            Some(Err(e)) => {
                self.warning(IssueCode::NotSupported, path, format!("Extension {url} cannot be used: {e}"));
                return false;
            }
            None if is_modifier => {
                self.error(
                    IssueCode::NotSupported,
                    path,
                    format!("Modifier extension {url} is unknown; a modifier cannot be ignored"),
                );
                return false;
            }
            None => {
                self.warning(
                    IssueCode::NotSupported,
                    path,
                    format!("Extension {url} is not defined in any loaded package; its content is not checked"),
                );
                return false;
            }
        };
        if structure.type_name != "Extension" {
            self.error(IssueCode::Structure, path, format!("{url} is not an extension definition"));
            return false;
        }
        if !context_allows(&structure.contexts, host) {
            let allowed: Vec<&str> = structure
                .contexts
                .iter()
                .map(|c| match c {
                    ExtensionContext::Element(path) | ExtensionContext::Extension(path) => path.as_str(),
                    ExtensionContext::FhirPath => "(FHIRPath)",
                })
                .collect();
            self.error(
                IssueCode::Structure,
                path,
                format!(
                    "Extension {url} is not allowed on {} (its contexts: {})",
                    host.type_path.render(),
                    allowed.join(", ")
                ),
            );
        }
        self.type_root(structure, node, path, resource);
        true
    }

    /// `fixed[x]` must equal the instance; `pattern[x]` must be contained in it.
    pub fn fixed_and_pattern(&mut self, definition: &Element, value: &Value, path: &Path, profile: &str) {
        if let Some(fixed) = &definition.fixed
            && !same_json(value, fixed)
        {
            self.error(
                IssueCode::Value,
                path,
                format!("{} must be exactly {fixed} (fixed by {profile}), found {value}", definition.id),
            );
        }
        if let Some(pattern) = &definition.pattern
            && !matches_pattern(value, pattern)
        {
            self.error(
                IssueCode::Value,
                path,
                format!("{} must match the pattern {pattern} ({profile}), found {value}", definition.id),
            );
        }
    }

    /// Codes in a bound element: required bindings reject codes outside the value set,
    /// extensible ones warn.
    fn binding(&mut self, definition: &Element, type_code: &str, value: &Value, path: &Path, profile: &str) {
        let Some(binding) = &definition.binding else {
            return;
        };
        if binding.strength == Strength::Other {
            return;
        }
        let mut codes: Vec<(Option<&str>, &str)> = Vec::new();
        fn coding(c: &Value) -> Option<(Option<&str>, &str)> {
            Some((c.get("system").and_then(Value::as_str), c.get("code")?.as_str()?))
        }
        let concept = match type_code {
            "code" | "string" | "uri" | "url" | "canonical" => {
                codes.extend(value.as_str().map(|code| (None, code)));
                None
            }
            "Coding" => {
                codes.extend(coding(value));
                None
            }
            "CodeableConcept" => Some(value),
            "CodeableReference" => value.get("concept"),
            _ => return,
        };
        if let Some(concept) = concept {
            codes.extend(
                concept
                    .get("coding")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(coding),
            );
        }
        let strength = if binding.strength == Strength::Required { "required" } else { "extensible" };
        let Some(value_set) = self.defs.value_set(&binding.value_set) else {
            if binding.strength == Strength::Required {
                self.warning(
                    IssueCode::NotSupported,
                    path,
                    format!(
                        "The value set {} of the required binding on {} is in no loaded package; the code is not checked",
                        binding.value_set, definition.path
                    ),
                );
            }
            return;
        };
        if codes.is_empty() {
            if binding.strength == Strength::Required && concept.is_some() {
                self.error(
                    IssueCode::CodeInvalid,
                    path,
                    format!(
                        "{} needs a coding from {} (required binding, {profile})",
                        definition.path, binding.value_set
                    ),
                );
            }
            return;
        }
        let mut unknown = false;
        for (system, code) in &codes {
            match value_set.contains(self.defs, *system, code) {
                Membership::Member => return,
                Membership::Unknown => unknown = true,
                Membership::NotMember => {}
            }
        }
        if unknown {
            return;
        }
        let shown: Vec<String> = codes
            .iter()
            .map(|(system, code)| match system {
                Some(system) => format!("{system}#{code}"),
                None => (*code).to_owned(),
            })
            .collect();
        let message = format!(
            "{} is not in the value set {} ({strength} binding of {}, {profile})",
            shown.join(", "),
            binding.value_set,
            definition.path
        );
        match binding.strength {
            Strength::Required => self.error(IssueCode::CodeInvalid, path, message),
            _ => self.warning(IssueCode::CodeInvalid, path, message),
        }
    }

    /// A literal reference must point at one of the types its target profiles allow.
    fn reference_target(
        &mut self,
        type_ref: &TypeRef,
        type_code: &str,
        object: &Map<String, Value>,
        path: &Path,
        resource: &'a Value,
    ) {
        if type_ref.target_profiles.is_empty() {
            return;
        }
        let reference = match type_code {
            "Reference" => object.get("reference"),
            "CodeableReference" => object.get("reference").and_then(|r| r.get("reference")),
            _ => None,
        };
        let Some(reference) = reference.and_then(Value::as_str) else {
            return;
        };
        let Some(target_type) = referenced_type(reference, resource) else {
            return;
        };
        let mut allowed: Vec<&str> = Vec::new();
        for target in &type_ref.target_profiles {
            let name = match target.strip_prefix(CORE_BASE) {
                Some(name) => name,
                None => match self.defs.structure(target) {
                    Some(Ok(structure)) => structure.type_name.as_str(),
                    // An unknown profile: its type cannot be told, so any target may be right.
                    _ => return,
                },
            };
            if matches!(name, "Resource" | "DomainResource") || name == target_type {
                return;
            }
            allowed.push(name);
        }
        let reference_path = path.child("reference", None);
        let shown = if type_code == "CodeableReference" { &reference_path } else { path };
        self.error(
            IssueCode::Structure,
            shown,
            format!(
                "The reference {reference:?} points to a {target_type}, but only {} may be referenced here",
                allowed.join(", ")
            ),
        );
    }

    /// Evaluates the element's invariants with the instance as focus.
    pub fn constraints(&mut self, definition: &'a Element, node: Node<'a>, fhirpath_type: &'a str, path: &Path, resource: &'a Value) {
        if definition.constraints.is_empty() {
            return;
        }
        let identity = node.identity();
        for constraint in &definition.constraints {
            let source = constraint.expression.source();
            if self.evaluated.iter().any(|&(node, done)| node == identity && done == source) {
                continue;
            }
            self.evaluated.push((identity, source));
            if constraint.expression.source() == ELE_1 {
                if !ele_1_holds(node) {
                    self.error(
                        IssueCode::Invariant,
                        path,
                        format!("{}: {} [{ELE_1}]", constraint.key, constraint.human),
                    );
                }
                continue;
            }
            let focus = vec![Item::typed_node(node.value, node.extension, fhirpath_type)];
            let context = self.context.clone().with_resource(resource);
            let outcome = evaluate_items(&constraint.expression, &context, focus);
            let message = || format!("{}: {} [{}]", constraint.key, constraint.human, constraint.expression.source());
            match outcome {
                Ok(result) => {
                    let failed = matches!(
                        result.as_slice(),
                        [item] if matches!(item.system_value(), Some(SystemValue::Boolean(false)))
                    );
                    if failed && constraint.is_error {
                        self.error(IssueCode::Invariant, path, message());
                    } else if failed {
                        self.warning(IssueCode::Invariant, path, message());
                    }
                }
                Err(e) => self.warning(
                    IssueCode::Invariant,
                    path,
                    format!("{} could not be evaluated: {e}", constraint.key),
                ),
            }
        }
    }

    /// The resource a reference inside the current resource points to, when it is contained.
    pub fn contained_target(&self, reference: &str, resource: &'a Value) -> Option<&'a Value> {
        let id = reference.strip_prefix('#')?;
        let container = if resource.get("contained").is_some() { resource } else { self.root };
        container
            .get("contained")?
            .as_array()?
            .iter()
            .find(|c| c.get("id").and_then(Value::as_str) == Some(id))
    }
}

/// The expression of `ele-1`, the invariant on every element. The walk checks it natively:
/// it meets every node, and evaluating it through FHIRPath would cost most of a validation.
/// `ele_1_matches_fhirpath` (tests) shows both agree.
const ELE_1: &str = "hasValue() or (children().count() > id.count())";

/// `ele-1`: an element has a value, or children other than `id`.
fn ele_1_holds(node: Node) -> bool {
    let has_children = |value: Option<&Value>| value.and_then(Value::as_object).is_some_and(|o| o.keys().any(|k| k != "id"));
    match node.value {
        Some(Value::Object(_)) => has_children(node.value),
        Some(_) => true,
        None => has_children(node.extension),
    }
}

/// Whether an extension definition's contexts allow it on `host`.
fn context_allows(contexts: &[ExtensionContext], host: &Host) -> bool {
    if contexts.is_empty() {
        return true;
    }
    contexts.iter().any(|context| match context {
        ExtensionContext::FhirPath => true,
        ExtensionContext::Extension(url) => host.extension_url == Some(url.as_str()),
        ExtensionContext::Element(path) => match path.as_str() {
            "Element" | "Base" => true,
            "Resource" | "DomainResource" => host.is_resource,
            path => path == host.element_path || host.type_path.is(path) || path == host.type_name,
        },
    })
}

/// The type a reference names: `Type/id` (relative or absolute, possibly versioned), or the
/// `resourceType` of a contained `#id`.
pub(crate) fn referenced_type<'v>(reference: &'v str, resource: &'v Value) -> Option<&'v str> {
    if let Some(id) = reference.strip_prefix('#') {
        return resource
            .get("contained")?
            .as_array()?
            .iter()
            .find(|c| c.get("id").and_then(Value::as_str) == Some(id))?
            .get("resourceType")?
            .as_str();
    }
    termin_fhir::parse_literal(reference).map(|literal| literal.resource_type)
}

/// JSON equality where numbers compare by value (`1.0` = `1`).
pub(crate) fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            x == y || x.to_string().parse::<f64>().ok() == y.to_string().parse::<f64>().ok()
        }
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_json(x, y)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
        }
        _ => a == b,
    }
}

/// Whether `value` has everything `pattern` has (arrays: every pattern item is matched by
/// some value item).
pub(crate) fn matches_pattern(value: &Value, pattern: &Value) -> bool {
    match (value, pattern) {
        (Value::Object(v), Value::Object(p)) => p.iter().all(|(k, pv)| v.get(k).is_some_and(|vv| matches_pattern(vv, pv))),
        (Value::Array(v), Value::Array(p)) => p.iter().all(|pv| v.iter().any(|vv| matches_pattern(vv, pv))),
        // A pattern's single value may stand for an array element in the instance.
        (Value::Array(v), p) => v.iter().any(|vv| matches_pattern(vv, p)),
        _ => same_json(value, pattern),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn patterns_are_subsets_and_fixed_values_exact() {
        let concept = json!({"coding": [{"system": "s", "code": "a", "display": "A"}, {"system": "t", "code": "b"}], "text": "x"});
        assert!(matches_pattern(&concept, &json!({"coding": [{"system": "s", "code": "a"}]})));
        assert!(!matches_pattern(&concept, &json!({"coding": [{"system": "s", "code": "b"}]})));
        assert!(same_json(&json!({"a": 1.0}), &json!({"a": 1})));
        assert!(!same_json(&json!({"a": 1, "b": 2}), &json!({"a": 1})));
    }

    #[test]
    fn ele_1_matches_fhirpath() {
        let expression = termin_fhirpath::Expression::parse(ELE_1).unwrap();
        let cases = [
            (Some(json!("x")), None),
            (Some(json!(false)), None),
            (Some(json!({"id": "a"})), None),
            (Some(json!({})), None),
            (Some(json!({"id": "a", "family": "F"})), None),
            (Some(json!({"_family": {"extension": [{"url": "u", "valueString": "v"}]}})), None),
            (None, Some(json!({"id": "a"}))),
            (None, Some(json!({"extension": [{"url": "u", "valueString": "v"}]}))),
            (Some(json!("x")), Some(json!({"id": "a"}))),
        ];
        for (value, extension) in &cases {
            let node = Node {
                value: value.as_ref(),
                extension: extension.as_ref(),
            };
            let type_name = if matches!(value, Some(Value::Object(_))) { "HumanName" } else { "string" };
            let focus = vec![Item::typed_node(node.value, node.extension, type_name)];
            let result = evaluate_items(&expression, &EvalContext::new(), focus).unwrap();
            let by_fhirpath = matches!(result.as_slice(), [item] if matches!(item.system_value(), Some(SystemValue::Boolean(true))));
            assert_eq!(ele_1_holds(node), by_fhirpath, "{value:?} / {extension:?}");
        }
    }

    #[test]
    fn finds_the_referenced_type() {
        let resource = json!({"contained": [{"resourceType": "Patient", "id": "p"}]});
        assert_eq!(referenced_type("Patient/1", &resource), Some("Patient"));
        assert_eq!(referenced_type("http://x/fhir/Slot/1/_history/2", &resource), Some("Slot"));
        assert_eq!(referenced_type("#p", &resource), Some("Patient"));
        assert_eq!(referenced_type("urn:uuid:1", &resource), None);
    }
}
