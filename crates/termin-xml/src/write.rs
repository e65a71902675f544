//! FHIR JSON → XML.

use crate::{FHIR_NAMESPACE, XHTML_NAMESPACE, fault};
use quick_xml::Writer;
use quick_xml::events::attributes::Attribute;
use quick_xml::events::{BytesEnd, BytesStart, BytesText, Event};
use quick_xml::name::{Namespace, QName, ResolveResult};
use quick_xml::reader::NsReader;
use serde_json::{Map, Value};
use std::borrow::Cow;
use termin_fhir::{Issue, IssueCode};
use termin_validation::{Definitions, ElementLayout, TypeLayout, is_primitive_type};

pub(crate) fn resource_to_xml(definitions: &Definitions, resource: &Value, pretty: bool) -> Result<String, Issue> {
    let Value::Object(resource) = resource else {
        return Err(fault("The resource must be a JSON object", "Resource"));
    };
    let out = if pretty { Writer::new_with_indent(Vec::new(), b' ', 2) } else { Writer::new(Vec::new()) };
    let mut writer = XmlWriter { definitions, out };
    writer.resource(resource, None)?;
    String::from_utf8(writer.out.into_inner())
        .map_err(|e| Issue::error(IssueCode::Exception, format!("the XML written is not UTF-8: {e}")))
}

/// The JSON properties of one element, as XML writes them: the value (`name`) and, for
/// primitives, the id and extensions (`_name`).
struct Field<'a> {
    name: &'a str,
    element: ElementLayout<'a>,
    /// The element's position among its parent's elements (XML order).
    position: usize,
    type_code: Option<&'a str>,
    value: Option<&'a Value>,
    extra: Option<&'a Value>,
}

struct XmlWriter<'a> {
    definitions: &'a Definitions,
    out: Writer<Vec<u8>>,
}

impl<'a> XmlWriter<'a> {
    fn emit<'e>(&mut self, event: impl Into<Event<'e>>) -> Result<(), Issue> {
        self.out
            .write_event(event)
            .map_err(|e| Issue::error(IssueCode::Exception, format!("writing XML failed: {e}")))
    }

    /// A resource; `inside` is the path of the element holding it (`None` for the document's root).
    fn resource(&mut self, resource: &'a Map<String, Value>, inside: Option<&str>) -> Result<(), Issue> {
        let place = inside.unwrap_or("Resource");
        let resource_type = match resource.get("resourceType") {
            Some(Value::String(name)) => name.as_str(),
            _ => return Err(fault("The resource has no resourceType", place)),
        };
        let layout = self
            .definitions
            .layout(resource_type)
            .filter(TypeLayout::is_resource)
            .ok_or_else(|| fault(format!("{resource_type:?} is not a FHIR R5 resource type"), place))?;
        let mut start = BytesStart::new(resource_type);
        if inside.is_none() {
            start.push_attribute(("xmlns", FHIR_NAMESPACE));
        }
        let path = match inside {
            Some(inside) => format!("{inside}.ofType({resource_type})"),
            None => resource_type.to_owned(),
        };
        self.complex(start, resource, layout, &path)
    }

    /// An element of a complex type (or a resource) whose XML element starts with `start`.
    fn complex(
        &mut self,
        mut start: BytesStart<'_>,
        object: &'a Map<String, Value>,
        layout: TypeLayout<'a>,
        path: &str,
    ) -> Result<(), Issue> {
        let fields = self.fields(object, layout, path)?;
        let (attributes, children): (Vec<Field>, Vec<Field>) =
            fields.into_iter().partition(|field| field.element.is_xml_attribute());
        for field in &attributes {
            let at = || format!("{path}.{}", field.name);
            let text = field.value.and_then(scalar_text).ok_or_else(|| fault("must be a primitive value", at()))?;
            if field.extra.is_some() {
                return Err(fault(format!("_{} is not allowed: XML holds {0} as an attribute", field.name), at()));
            }
            start.push_attribute(attribute(field.name, &text));
        }
        if children.is_empty() {
            return self.emit(Event::Empty(start));
        }
        let end = start.to_end().into_owned();
        self.emit(Event::Start(start))?;
        for field in &children {
            self.field(field, path)?;
        }
        self.emit(Event::End(end))
    }

    /// The object's properties grouped by element, in the order of the layout.
    fn fields(&self, object: &'a Map<String, Value>, layout: TypeLayout<'a>, path: &str) -> Result<Vec<Field<'a>>, Issue> {
        let elements: Vec<ElementLayout> = layout.elements().collect();
        let mut fields: Vec<Field> = Vec::new();
        for (key, value) in object {
            if key == "resourceType" && layout.is_resource() {
                continue;
            }
            let (name, is_extra) = match key.strip_prefix('_') {
                Some(name) => (name, true),
                None => (key.as_str(), false),
            };
            let unknown = || fault(format!("Unknown element {key:?}"), format!("{path}.{key}"));
            let (element, choice) = layout.element(name).ok_or_else(unknown)?;
            let position = elements.iter().position(|e| e.name() == element.name()).ok_or_else(unknown)?;
            let field = match fields.iter_mut().find(|f| f.position == position) {
                Some(field) if field.name != name => {
                    return Err(fault(
                        format!("{} has more than one type ({} and {name})", element.name(), field.name),
                        format!("{path}.{name}"),
                    ));
                }
                Some(field) => field,
                None => {
                    fields.push(Field {
                        name,
                        element,
                        position,
                        type_code: choice.or_else(|| element.type_codes().next()),
                        value: None,
                        extra: None,
                    });
                    fields.last_mut().expect("just pushed")
                }
            };
            let slot = if is_extra { &mut field.extra } else { &mut field.value };
            *slot = Some(value).filter(|v| !v.is_null());
        }
        fields.sort_by_key(|field| field.position);
        Ok(fields)
    }

    fn field(&mut self, field: &Field<'a>, parent: &str) -> Result<(), Issue> {
        let path = format!("{parent}.{}", field.name);
        let type_code = field.type_code.unwrap_or_default();
        if type_code == "xhtml" {
            let Some(Value::String(text)) = field.value else {
                return Err(fault("The narrative div must be a string of XHTML", path));
            };
            return self.xhtml(field.name, text, &path);
        }
        if is_primitive_type(type_code) {
            if !field.element.is_array() {
                return self.primitive(field.name, field.value, field.extra, &path);
            }
            let values = primitive_array(field.value, &path)?;
            let extras = primitive_array(field.extra, &format!("{parent}._{}", field.name))?;
            if !values.is_empty() && !extras.is_empty() && values.len() != extras.len() {
                return Err(fault(
                    format!("{0} and _{0} must have the same length", field.name),
                    format!("{parent}._{}", field.name),
                ));
            }
            for index in 0..values.len().max(extras.len()) {
                let value = values.get(index).copied().flatten();
                let extra = extras.get(index).copied().flatten();
                self.primitive(field.name, value, extra, &format!("{path}[{index}]"))?;
            }
            return Ok(());
        }
        if field.extra.is_some() {
            return Err(fault(format!("_{} is only allowed beside primitive values", field.name), path));
        }
        let content = field
            .element
            .content(self.definitions, type_code)
            .ok_or_else(|| fault(format!("no definition of the type {type_code:?} is loaded"), path.clone()))?;
        let items: Vec<(&Value, String)> = match field.value {
            Some(Value::Array(items)) => items.iter().enumerate().map(|(i, item)| (item, format!("{path}[{i}]"))).collect(),
            Some(item) => vec![(item, path.clone())],
            None => Vec::new(),
        };
        for (item, path) in items {
            let Value::Object(object) = item else {
                return Err(fault("must be a JSON object", path));
            };
            if content.is_resource() {
                let end = BytesEnd::new(field.name);
                self.emit(Event::Start(BytesStart::new(field.name)))?;
                self.resource(object, Some(&path))?;
                self.emit(Event::End(end))?;
            } else {
                self.complex(BytesStart::new(field.name), object, content, &path)?;
            }
        }
        Ok(())
    }

    /// A primitive: its value and id as attributes, its extensions as children.
    fn primitive(&mut self, name: &str, value: Option<&'a Value>, extra: Option<&'a Value>, path: &str) -> Result<(), Issue> {
        let mut start = BytesStart::new(name);
        let mut extensions: &[Value] = &[];
        match extra {
            None => {}
            Some(Value::Object(extra)) => {
                for (key, item) in extra {
                    match (key.as_str(), item) {
                        ("id", Value::String(id)) => start.push_attribute(attribute("id", id)),
                        ("extension", Value::Array(items)) => extensions = items,
                        _ => return Err(fault(format!("{key:?} is not allowed here"), format!("{path}.{key}"))),
                    }
                }
            }
            Some(_) => return Err(fault("must be a JSON object (id and extension of the primitive)", path)),
        }
        match value {
            Some(value) => {
                let text = scalar_text(value).ok_or_else(|| fault("must be a primitive value", path))?;
                start.push_attribute(attribute("value", &text));
            }
            None if extra.is_none() => return Err(fault("has neither a value nor an id or extensions", path)),
            None => {}
        }
        if extensions.is_empty() {
            return self.emit(Event::Empty(start));
        }
        let extension_layout = self
            .definitions
            .layout("Extension")
            .ok_or_else(|| fault("the definition of Extension is not loaded", path))?;
        let end = start.to_end().into_owned();
        self.emit(Event::Start(start))?;
        for (index, extension) in extensions.iter().enumerate() {
            let at = format!("{path}.extension[{index}]");
            let Value::Object(extension) = extension else {
                return Err(fault("must be a JSON object", at));
            };
            self.complex(BytesStart::new("extension"), extension, extension_layout, &at)?;
        }
        self.emit(Event::End(end))
    }

    /// The narrative, copied as it is once it is known to be one well-formed XHTML element.
    fn xhtml(&mut self, name: &str, text: &str, path: &str) -> Result<(), Issue> {
        check_xhtml(name, text).map_err(|why| fault(format!("The narrative is not XHTML XML: {why}"), path))?;
        self.out
            .write_indent()
            .map_err(|e| Issue::error(IssueCode::Exception, format!("writing XML failed: {e}")))?;
        self.emit(Event::Text(BytesText::from_escaped(text)))
    }
}

/// Whether `text` is exactly one well-formed element `name` in the XHTML namespace.
fn check_xhtml(name: &str, text: &str) -> Result<(), String> {
    let mut reader = NsReader::from_str(text);
    let (namespace, event) = reader.read_resolved_event().map_err(|e| e.to_string())?;
    let in_xhtml = matches!(namespace, ResolveResult::Bound(Namespace(ns)) if ns == XHTML_NAMESPACE);
    match event {
        Event::Start(start) | Event::Empty(start) if start.local_name().as_ref() != name || !in_xhtml => {
            Err(format!("it must be a <{name}> element in the namespace {XHTML_NAMESPACE}"))
        }
        Event::Start(start) => {
            let end = start.to_end().into_owned();
            reader.read_to_end(end.name()).map_err(|e| e.to_string())?;
            expect_end(&mut reader)
        }
        Event::Empty(_) => expect_end(&mut reader),
        _ => Err(format!("it must start with <{name}")),
    }
}

fn expect_end(reader: &mut NsReader<&[u8]>) -> Result<(), String> {
    match reader.read_event().map_err(|e| e.to_string())? {
        Event::Eof => Ok(()),
        _ => Err("nothing may follow the element".to_owned()),
    }
}

/// A primitive JSON array's items (`null` as `None`); an absent property has none.
fn primitive_array<'v>(value: Option<&'v Value>, path: &str) -> Result<Vec<Option<&'v Value>>, Issue> {
    match value {
        None => Ok(Vec::new()),
        Some(Value::Array(items)) => Ok(items.iter().map(|item| Some(item).filter(|v| !v.is_null())).collect()),
        Some(_) => Err(fault("must be a JSON array", path)),
    }
}

/// The XML text of a JSON primitive; numbers keep their exact text.
fn scalar_text(value: &Value) -> Option<Cow<'_, str>> {
    match value {
        Value::String(text) => Some(Cow::Borrowed(text)),
        Value::Number(number) => Some(Cow::Owned(number.to_string())),
        Value::Bool(flag) => Some(Cow::Borrowed(if *flag { "true" } else { "false" })),
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    }
}

/// An attribute with its value escaped so that reading gives it back exactly: besides markup
/// characters, tab, carriage return and line feed are written as character references (an
/// XML reader turns them into spaces otherwise).
fn attribute<'n>(name: &'n str, value: &str) -> Attribute<'n> {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\t' => escaped.push_str("&#9;"),
            '\n' => escaped.push_str("&#10;"),
            '\r' => escaped.push_str("&#13;"),
            c => escaped.push(c),
        }
    }
    Attribute {
        key: QName(name),
        value: Cow::Owned(escaped),
    }
}
