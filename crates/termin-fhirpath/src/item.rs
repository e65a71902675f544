//! The items FHIRPath collections hold: nodes borrowed from the input JSON, or computed values.

use std::borrow::Cow;
use std::sync::Arc;

use serde_json::Value;

use crate::decimal::Decimal;
use crate::model;
use crate::temporal::{Date, DateTime, Time};
use crate::value::{Quantity, SystemValue};

/// One item of a FHIRPath collection.
#[derive(Debug, Clone)]
pub enum Item<'a> {
    /// An element or resource of the input (or of a resolved resource).
    Node(Node<'a>),
    /// A value computed by a literal, operator or function.
    Value(SystemValue<'a>),
}

/// An element of FHIR JSON. A primitive carries both its value and its `_name` sibling (which
/// holds `id` and `extension`); either may be missing, but not both.
#[derive(Debug, Clone)]
pub struct Node<'a> {
    value: Option<&'a Value>,
    element: Option<&'a Value>,
    fhir_type: Option<Cow<'a, str>>,
    location: Option<Arc<Location<'a>>>,
}

/// Where a node sits, as a chain back to its resource; rendered only on request because most
/// nodes are never asked for their location.
#[derive(Debug)]
pub(crate) struct Location<'a> {
    parent: Option<Arc<Location<'a>>>,
    name: &'a str,
    index: Option<usize>,
}

impl<'a> Location<'a> {
    pub(crate) fn child(parent: Option<&Arc<Location<'a>>>, name: &'a str, index: Option<usize>) -> Arc<Location<'a>> {
        Arc::new(Location { parent: parent.cloned(), name, index })
    }

    fn render(&self) -> String {
        let mut segments = vec![self];
        let mut current = self;
        while let Some(parent) = &current.parent {
            segments.push(parent);
            current = parent;
        }
        let mut text = String::new();
        for segment in segments.iter().rev() {
            if !text.is_empty() {
                text.push('.');
            }
            text.push_str(segment.name);
            if let Some(index) = segment.index {
                text.push_str(&format!("[{index}]"));
            }
        }
        text
    }
}

impl<'a> Item<'a> {
    /// A root node for a JSON value, typed by its `resourceType` when it has one.
    pub fn from_json(value: &'a Value) -> Item<'a> {
        let resource_type = resource_type_of(value);
        Item::Node(Node {
            value: Some(value),
            element: None,
            fhir_type: resource_type.map(Cow::Borrowed),
            location: resource_type.map(|name| Location::child(None, name, None)),
        })
    }

    /// A node for JSON the caller has already located and typed, such as a validator walking
    /// a resource: `value` is the JSON (`None` for a primitive that only has an extension),
    /// `primitive_element` its `_name` sibling, `fhir_type` as a [`TypeModel`] names it
    /// (`HumanName`, `code`, `Patient.contact`). The node has no location.
    ///
    /// [`TypeModel`]: crate::TypeModel
    pub fn typed_node(value: Option<&'a Value>, primitive_element: Option<&'a Value>, fhir_type: &'a str) -> Item<'a> {
        Item::Node(Node {
            value,
            element: primitive_element,
            fhir_type: Some(Cow::Borrowed(fhir_type)),
            location: None,
        })
    }

    /// The node's JSON value; `None` for computed values and for primitives that have only
    /// an extension.
    pub fn json(&self) -> Option<&'a Value> {
        match self {
            Item::Node(node) => node.value,
            Item::Value(_) => None,
        }
    }

    /// The `_name` sibling object of a primitive (its `id` and `extension`), if present.
    pub fn primitive_element(&self) -> Option<&'a Value> {
        match self {
            Item::Node(node) => node.element,
            Item::Value(_) => None,
        }
    }

    /// The FHIR type name when known (`dateTime`, `HumanName`, `Patient`; backbone elements
    /// report `BackboneElement`, elements FHIR declares with a System type report it qualified,
    /// like `System.String` for `Resource.id`). `None` for computed values and untyped JSON.
    pub fn fhir_type(&self) -> Option<&str> {
        match self {
            Item::Node(node) => node
                .fhir_type
                .as_deref()
                .map(|name| if name.contains('.') && !name.starts_with("System.") { "BackboneElement" } else { name }),
            Item::Value(_) => None,
        }
    }

    /// The namespace-qualified type as FHIRPath's `type()` would name it (`FHIR.string`,
    /// `System.Boolean`); `None` for JSON objects of unknown type.
    pub fn qualified_type(&self) -> Option<String> {
        match self {
            Item::Value(value) => Some(format!("System.{}", value.type_name())),
            Item::Node(node) => match node.fhir_type.as_deref() {
                Some(name) if name.starts_with("System.") => Some(name.to_string()),
                Some(_) => self.fhir_type().map(|name| format!("FHIR.{name}")),
                None => node.system_value().map(|value| format!("System.{}", value.type_name())),
            },
        }
    }

    /// The FHIRPath location of a node, e.g. `Patient.name[0].given[1]`; choice elements use
    /// the element name (`Patient.deceased`). `None` for computed values and for stubs made by
    /// `resolve()` that are not part of any document.
    pub fn location(&self) -> Option<String> {
        match self {
            Item::Node(node) => node.location.as_deref().map(Location::render),
            Item::Value(_) => None,
        }
    }

    /// The item as a System value: computed values as they are, FHIR primitives converted by
    /// their type (a `date` becomes a Date), Quantity-typed nodes as quantities.
    pub fn system_value(&self) -> Option<SystemValue<'a>> {
        match self {
            Item::Value(value) => Some(value.clone()),
            Item::Node(node) => node.system_value(),
        }
    }

    /// A JSON rendering: the node's own JSON (`null` for a primitive with only an extension),
    /// or [`SystemValue::to_json`] for computed values.
    pub fn to_json(&self) -> Value {
        match self {
            Item::Node(node) => node.value.cloned().unwrap_or(Value::Null),
            Item::Value(value) => value.to_json(),
        }
    }

    pub(crate) fn node(&self) -> Option<&Node<'a>> {
        match self {
            Item::Node(node) => Some(node),
            Item::Value(_) => None,
        }
    }

    /// Whether the item is a node of JSON whose type was not known (neither from a model,
    /// a choice suffix nor `resourceType`).
    pub(crate) fn is_untyped_node(&self) -> bool {
        matches!(self, Item::Node(node) if node.fhir_type.is_none())
    }

    /// The raw model type name (backbone elements keep their path).
    pub(crate) fn model_type(&self) -> Option<&str> {
        self.node().and_then(|node| node.fhir_type.as_deref())
    }

    /// The text of an item that holds a string: a computed String, or any JSON string node
    /// (so string functions also work on `code`, `uri` or `date` elements).
    pub(crate) fn string_text(&self) -> Option<Cow<'a, str>> {
        match self {
            Item::Value(SystemValue::String(text)) => Some(text.clone()),
            Item::Node(Node { value: Some(Value::String(text)), .. }) => Some(Cow::Borrowed(text.as_str())),
            _ => None,
        }
    }

    pub(crate) fn same_node(&self, other: &Item<'a>) -> bool {
        match (self, other) {
            (Item::Node(a), Item::Node(b)) => opt_ptr_eq(a.value, b.value) && opt_ptr_eq(a.element, b.element),
            _ => false,
        }
    }
}

fn opt_ptr_eq(a: Option<&Value>, b: Option<&Value>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => std::ptr::eq(a, b),
        (None, None) => true,
        _ => false,
    }
}

impl<'a> From<SystemValue<'a>> for Item<'a> {
    fn from(value: SystemValue<'a>) -> Self {
        Item::Value(value)
    }
}

impl<'a> Node<'a> {
    pub(crate) fn new(
        value: Option<&'a Value>,
        element: Option<&'a Value>,
        fhir_type: Option<Cow<'a, str>>,
        location: Option<Arc<Location<'a>>>,
    ) -> Node<'a> {
        Node { value, element, fhir_type, location }
    }

    pub(crate) fn value(&self) -> Option<&'a Value> {
        self.value
    }

    pub(crate) fn element(&self) -> Option<&'a Value> {
        self.element
    }

    pub(crate) fn fhir_type(&self) -> Option<&str> {
        self.fhir_type.as_deref()
    }

    pub(crate) fn location(&self) -> Option<&Arc<Location<'a>>> {
        self.location.as_ref()
    }

    fn system_value(&self) -> Option<SystemValue<'a>> {
        let fhir_type = self.fhir_type.as_deref().map(|name| name.trim_start_matches("System."));
        match self.value? {
            Value::Bool(value) => Some(SystemValue::Boolean(*value)),
            Value::Number(number) => {
                let text = number.to_string();
                let integer = match fhir_type {
                    Some("decimal" | "Decimal") => None,
                    _ => text.parse::<i64>().ok(),
                };
                match integer {
                    Some(value) => Some(SystemValue::Integer(value)),
                    None => Decimal::parse(&text).map(SystemValue::Decimal),
                }
            }
            Value::String(text) => Some(string_as_system_value(text, fhir_type)),
            Value::Object(object) => {
                let quantity_like = fhir_type.is_some_and(|name| model::system_type_of(name) == Some("Quantity"));
                if !quantity_like {
                    return None;
                }
                let value = object.get("value")?;
                let value = Decimal::parse(&value.as_number()?.to_string())?;
                let unit = object.get("code").or_else(|| object.get("unit")).and_then(Value::as_str).unwrap_or("1");
                Some(SystemValue::Quantity(Quantity::new(value, unit)))
            }
            _ => None,
        }
    }
}

/// FHIR keeps dates, times and 64-bit integers in JSON strings; their type says how to read
/// them. Text that does not parse stays a String.
fn string_as_system_value<'a>(text: &'a str, fhir_type: Option<&str>) -> SystemValue<'a> {
    let parsed = match fhir_type {
        Some("date" | "Date") => Date::parse(text).map(SystemValue::Date),
        Some("dateTime" | "instant" | "DateTime") => DateTime::parse(text).map(SystemValue::DateTime),
        Some("time" | "Time") => Time::parse(text).map(SystemValue::Time),
        Some("integer64") => text.parse().ok().map(SystemValue::Integer),
        _ => None,
    };
    parsed.unwrap_or(SystemValue::String(Cow::Borrowed(text)))
}

pub(crate) fn resource_type_of(value: &Value) -> Option<&str> {
    value.get("resourceType").and_then(Value::as_str)
}
