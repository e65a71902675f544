//! The element layout of the FHIR base types for format converters: which elements a type
//! has, in definition order, with their cardinality, types and XML representation — read from
//! the same compiled StructureDefinitions validation walks.

use crate::definitions::Definitions;
use crate::structure::{Kind, Structure, is_primitive};

/// How JSON holds a primitive type's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonKind {
    Boolean,
    Number,
    String,
}

/// The JSON shape of a primitive type (`decimal` → number, `integer64` → string).
pub fn primitive_json_kind(type_code: &str) -> JsonKind {
    match crate::primitive::json_kind(type_code) {
        "boolean" => JsonKind::Boolean,
        "number" => JsonKind::Number,
        _ => JsonKind::String,
    }
}

/// The content model of a type, or of a backbone element inside one.
#[derive(Clone, Copy)]
pub struct TypeLayout<'a> {
    structure: &'a Structure,
    element: usize,
}

/// One element of a [`TypeLayout`].
#[derive(Clone, Copy)]
pub struct ElementLayout<'a> {
    structure: &'a Structure,
    index: usize,
}

impl Definitions {
    /// The layout of a base type (`Patient`, `HumanName`, `string`, `Resource`).
    pub fn layout(&self, type_name: &str) -> Option<TypeLayout<'_>> {
        let structure = self.base(type_name)?;
        Some(TypeLayout { structure, element: structure.root() })
    }
}

impl<'a> TypeLayout<'a> {
    /// The name of the type (for a backbone element, of the type it is part of).
    pub fn type_name(&self) -> &'a str {
        &self.structure.type_name
    }

    /// Whether this is a resource type (abstract ones such as `Resource` included).
    pub fn is_resource(&self) -> bool {
        self.structure.kind == Kind::Resource && self.element == self.structure.root()
    }

    /// Whether this is a primitive type (`string`, `decimal`, ...).
    pub fn is_primitive(&self) -> bool {
        self.structure.kind == Kind::PrimitiveType && self.element == self.structure.root()
    }

    /// The elements in definition order (which is the order of XML).
    pub fn elements(&self) -> impl Iterator<Item = ElementLayout<'a>> + 'a {
        let structure = self.structure;
        structure.children(self.element).iter().map(move |&index| ElementLayout { structure, index })
    }

    /// The element a JSON property or XML element name names (`deceasedBoolean` →
    /// `deceased[x]`), with the type a choice name's suffix selects.
    pub fn element(&self, name: &str) -> Option<(ElementLayout<'a>, Option<&'a str>)> {
        let (index, choice) = self.structure.child_named(self.element, name)?;
        let element = ElementLayout { structure: self.structure, index };
        match (element.is_choice(), choice) {
            (true, None) => None,
            (_, choice) => Some((element, choice.map(|t| t.code.as_str()))),
        }
    }
}

impl<'a> ElementLayout<'a> {
    fn definition(&self) -> &'a crate::structure::Element {
        &self.structure.elements[self.index]
    }

    /// The name without `[x]` (`deceased` for `deceased[x]`).
    pub fn name(&self) -> &'a str {
        &self.definition().name
    }

    /// Whether this is a choice element (`value[x]`), named by its type in JSON and XML.
    pub fn is_choice(&self) -> bool {
        self.definition().is_choice
    }

    /// Whether it may repeat (a JSON array).
    pub fn is_array(&self) -> bool {
        self.definition().is_array
    }

    /// Whether XML holds it as an attribute.
    pub fn is_xml_attribute(&self) -> bool {
        self.definition().xml_attribute
    }

    /// The allowed type codes (`string`, `HumanName`, `BackboneElement`, `Resource`).
    pub fn type_codes(&self) -> impl Iterator<Item = &'a str> + 'a {
        self.definition().types.iter().map(|t| t.code.as_str())
    }

    /// The name a choice element has with the type `type_code` (`value` + `dateTime` →
    /// `valueDateTime`); other elements keep their name.
    pub fn name_for(&self, type_code: &str) -> String {
        if !self.is_choice() {
            return self.name().to_owned();
        }
        let mut chars = type_code.chars();
        let first = chars.next().map(|c| c.to_ascii_uppercase()).into_iter();
        format!("{}{}", self.name(), first.chain(chars).collect::<String>())
    }

    /// The layout of the element's content with type `type_code`: its own children for backbone
    /// elements and content references, the type's base definition otherwise.
    pub fn content(&self, definitions: &'a Definitions, type_code: &str) -> Option<TypeLayout<'a>> {
        let definition = self.definition();
        if let Some(target) = definition.content_reference {
            return Some(TypeLayout { structure: self.structure, element: target });
        }
        if !definition.children.is_empty() {
            return Some(TypeLayout { structure: self.structure, element: self.index });
        }
        definitions.layout(type_code)
    }
}

/// Whether the type `type_code` is primitive (its value is a JSON string, number or boolean).
pub fn is_primitive_type(type_code: &str) -> bool {
    is_primitive(type_code)
}
