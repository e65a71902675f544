//! FHIR XML → JSON.

use crate::{FHIR_NAMESPACE, XHTML_NAMESPACE, fault};
use quick_xml::XmlVersion;
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::{Namespace, ResolveResult};
use quick_xml::reader::NsReader;
use serde_json::{Map, Value};
use termin_fhir::json::{MAX_DEPTH, number_from_text};
use termin_fhir::{Issue, IssueCode};
use termin_validation::{Definitions, JsonKind, TypeLayout, is_primitive_type, primitive_json_kind};

pub(crate) fn resource_from_xml(definitions: &Definitions, bytes: &[u8]) -> Result<Map<String, Value>, Issue> {
    let text = std::str::from_utf8(bytes)
        .map_err(|e| Issue::error(IssueCode::Structure, format!("The XML body is not UTF-8 text: {e}")))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = XmlReader {
        definitions,
        input: text,
        reader: NsReader::from_str(text),
    };
    let resource = loop {
        let (namespace, event) = reader.next()?;
        match event {
            Event::Start(start) | Event::Empty(start) if namespace != Space::Fhir => {
                let name = start.name().as_ref().to_owned();
                return Err(outside_fhir(&name, &name));
            }
            Event::Start(start) => break reader.resource(&start, false, "", 1)?,
            Event::Empty(start) => break reader.resource(&start, true, "", 1)?,
            Event::Decl(_) | Event::Comment(_) | Event::PI(_) => {}
            Event::Text(text) if is_blank(&text) => {}
            Event::DocType(_) => return Err(reader.refuse("A DTD (<!DOCTYPE>) is not accepted in FHIR XML")),
            Event::Eof => return Err(reader.refuse("The XML body holds no resource")),
            _ => return Err(reader.refuse("The XML body must start with a resource element")),
        }
    };
    loop {
        match reader.next()?.1 {
            Event::Eof => return Ok(resource),
            Event::Comment(_) | Event::PI(_) => {}
            Event::Text(text) if is_blank(&text) => {}
            _ => return Err(reader.refuse("Nothing may follow the resource element")),
        }
    }
}

/// The namespace of an element, as far as FHIR XML cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Space {
    Fhir,
    Xhtml,
    Other,
}

fn space(namespace: &ResolveResult) -> Space {
    match namespace {
        ResolveResult::Bound(Namespace(ns)) if *ns == FHIR_NAMESPACE => Space::Fhir,
        ResolveResult::Bound(Namespace(ns)) if *ns == XHTML_NAMESPACE => Space::Xhtml,
        _ => Space::Other,
    }
}

fn is_blank(text: &str) -> bool {
    text.bytes().all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
}

fn outside_fhir(name: &str, path: &str) -> Issue {
    fault(format!("<{name}> is not in the FHIR namespace {FHIR_NAMESPACE}"), path)
}

/// A child element's start tag, where it begins in the document, and whether it is empty (`<a/>`).
struct Child<'a> {
    namespace: Space,
    start: BytesStart<'a>,
    empty: bool,
    offset: usize,
}

/// The primitives of a repeating element read so far: values and `_name` objects by position.
struct PrimitiveList {
    name: String,
    values: Vec<Value>,
    extras: Vec<Value>,
}

struct XmlReader<'a> {
    definitions: &'a Definitions,
    input: &'a str,
    reader: NsReader<&'a [u8]>,
}

impl<'a> XmlReader<'a> {
    /// The next event with its element's namespace.
    fn next(&mut self) -> Result<(Space, Event<'a>), Issue> {
        match self.reader.read_resolved_event() {
            Ok((namespace, event)) => Ok((space(&namespace), event)),
            Err(e) => Err(self.refuse(format!("The body is not well-formed XML: {e}"))),
        }
    }

    /// The next child element of the element `path`, `None` at its end tag. Comments,
    /// processing instructions and whitespace between elements are skipped.
    fn next_child(&mut self, path: &str) -> Result<Option<Child<'a>>, Issue> {
        loop {
            let offset = self.reader.buffer_position() as usize;
            let (namespace, event) = self.next()?;
            let (start, empty) = match event {
                Event::End(_) => return Ok(None),
                Event::Start(start) => (start, false),
                Event::Empty(start) => (start, true),
                Event::Comment(_) | Event::PI(_) => continue,
                Event::Text(text) if is_blank(&text) => continue,
                Event::Eof => return Err(self.refuse(format!("The body is not well-formed XML: it ends inside {path}"))),
                _ => return Err(fault("Text is not allowed here: FHIR XML holds values in value attributes", path)),
            };
            return Ok(Some(Child { namespace, start, empty, offset }));
        }
    }

    /// A fault in the document, located by byte offset.
    fn refuse(&self, message: impl std::fmt::Display) -> Issue {
        Issue::error(
            IssueCode::Structure,
            format!("{message} (at byte {})", self.reader.error_position().max(self.reader.buffer_position())),
        )
    }

    /// A resource element; `inside` is the path of the element holding it ("" for the root).
    fn resource(&mut self, start: &BytesStart, empty: bool, inside: &str, depth: usize) -> Result<Map<String, Value>, Issue> {
        let name = start.local_name().as_ref().to_owned();
        let layout = self
            .definitions
            .layout(&name)
            .filter(TypeLayout::is_resource)
            .ok_or_else(|| fault(format!("<{name}> is not a FHIR R5 resource type"), inside_or(inside, &name)))?;
        let path = if inside.is_empty() { name.clone() } else { format!("{inside}.ofType({name})") };
        self.complex(start, empty, layout, &path, depth)
    }

    /// An element of a complex type or a resource: its attributes and child elements.
    fn complex(
        &mut self,
        start: &BytesStart,
        empty: bool,
        layout: TypeLayout<'a>,
        path: &str,
        depth: usize,
    ) -> Result<Map<String, Value>, Issue> {
        check_depth(depth, path)?;
        let mut object = Map::new();
        if layout.is_resource() {
            object.insert("resourceType".into(), Value::String(layout.type_name().to_owned()));
        }
        for attribute in start.attributes() {
            let attribute = attribute.map_err(|e| self.refuse(format!("The body is not well-formed XML: {e}")))?;
            let key = attribute.key;
            // Namespace declarations and prefixed attributes (xsi:schemaLocation) are not FHIR content.
            if key.as_namespace_binding().is_some() || key.prefix().is_some() {
                continue;
            }
            let name = key.local_name().as_ref().to_owned();
            if !layout.element(&name).is_some_and(|(element, _)| element.is_xml_attribute()) {
                return Err(fault(format!("Unknown attribute {name:?}"), format!("{path}.{name}")));
            }
            let value = attribute
                .normalized_value(XmlVersion::Implicit1_0)
                .map_err(|e| fault(format!("The attribute {name:?} cannot be read: {e}"), format!("{path}.{name}")))?;
            object.insert(name, Value::String(value.into_owned()));
        }
        if !empty {
            self.children(layout, &mut object, path, depth)?;
        }
        Ok(object)
    }

    /// The child elements of a complex element, up to its end tag.
    fn children(&mut self, layout: TypeLayout<'a>, object: &mut Map<String, Value>, path: &str, depth: usize) -> Result<(), Issue> {
        let mut lists: Vec<PrimitiveList> = Vec::new();
        while let Some(Child { namespace, start, empty, offset: before }) = self.next_child(path)? {
            let name = start.local_name().as_ref().to_owned();
            let child_path = format!("{path}.{name}");
            let Some((element, choice)) = layout.element(&name) else {
                if namespace != Space::Fhir {
                    return Err(outside_fhir(start.name().as_ref(), &child_path));
                }
                let item = self.unknown(&start, empty, &child_path, depth + 1)?;
                append(object, name, item);
                continue;
            };
            if element.is_xml_attribute() {
                return Err(fault(format!("{name} must be an attribute, not an element"), child_path));
            }
            let type_code = choice.or_else(|| element.type_codes().next()).unwrap_or_default();
            if type_code == "xhtml" {
                if namespace != Space::Xhtml {
                    return Err(fault(format!("<{name}> must be in the XHTML namespace {XHTML_NAMESPACE}"), child_path));
                }
                let text = self.xhtml(&start, empty, before, &child_path)?;
                set_once(object, &name, Value::String(text), &child_path)?;
                continue;
            }
            if namespace != Space::Fhir {
                return Err(outside_fhir(start.name().as_ref(), &child_path));
            }
            if is_primitive_type(type_code) {
                let (value, extra) = self.primitive(&start, empty, type_code, &child_path, depth + 1)?;
                if element.is_array() {
                    let list = match lists.iter().position(|list| list.name == name) {
                        Some(at) => &mut lists[at],
                        None => {
                            // Placeholders keep the properties in document order.
                            object.insert(name.clone(), Value::Null);
                            object.insert(format!("_{name}"), Value::Null);
                            lists.push(PrimitiveList { name: name.clone(), values: Vec::new(), extras: Vec::new() });
                            lists.last_mut().expect("just pushed")
                        }
                    };
                    list.values.push(value.unwrap_or(Value::Null));
                    list.extras.push(extra.unwrap_or(Value::Null));
                } else {
                    if let Some(value) = value {
                        set_once(object, &name, value, &child_path)?;
                    }
                    if let Some(extra) = extra {
                        set_once(object, &format!("_{name}"), extra, &child_path)?;
                    }
                }
                continue;
            }
            let content = element
                .content(self.definitions, type_code)
                .ok_or_else(|| fault(format!("no definition of the type {type_code:?} is loaded"), child_path.clone()))?;
            let item = if content.is_resource() {
                self.contained(empty, &child_path, depth + 1)?
            } else {
                self.complex(&start, empty, content, &child_path, depth + 1)?
            };
            if element.is_array() {
                match object.entry(name).or_insert_with(|| Value::Array(Vec::new())) {
                    Value::Array(items) => items.push(Value::Object(item)),
                    _ => return Err(fault("repeats, but may occur only once", child_path)),
                }
            } else {
                set_once(object, &name, Value::Object(item), &child_path)?;
            }
        }
        for list in lists {
            for (key, items) in [(list.name.clone(), list.values), (format!("_{}", list.name), list.extras)] {
                if items.iter().any(|item| !item.is_null()) {
                    object.insert(key, Value::Array(items));
                } else {
                    object.shift_remove(&key);
                }
            }
        }
        Ok(())
    }

    /// An element no definition knows, carried over as JSON would carry it (`<x value="a"/>` →
    /// `"x": "a"`, children as an object) so that validation judges it as it judges JSON: the
    /// reader is no stricter than the JSON parser (operations read parameters leniently).
    fn unknown(&mut self, start: &BytesStart, empty: bool, path: &str, depth: usize) -> Result<Value, Issue> {
        check_depth(depth, path)?;
        let mut object = Map::new();
        for attribute in start.attributes() {
            let attribute = attribute.map_err(|e| self.refuse(format!("The body is not well-formed XML: {e}")))?;
            if attribute.key.as_namespace_binding().is_some() || attribute.key.prefix().is_some() {
                continue;
            }
            let value = attribute
                .normalized_value(XmlVersion::Implicit1_0)
                .map_err(|e| fault(format!("An attribute cannot be read: {e}"), path))?;
            object.insert(attribute.key.local_name().as_ref().to_owned(), Value::String(value.into_owned()));
        }
        if !empty {
            while let Some(inner) = self.next_child(path)? {
                let name = inner.start.local_name().as_ref().to_owned();
                let inner_path = format!("{path}.{name}");
                if inner.namespace != Space::Fhir {
                    return Err(outside_fhir(inner.start.name().as_ref(), &inner_path));
                }
                let item = self.unknown(&inner.start, inner.empty, &inner_path, depth + 1)?;
                append(&mut object, name, item);
            }
        }
        if object.len() == 1 && let Some(Value::String(_)) = object.get("value") {
            return Ok(object.shift_remove("value").unwrap_or_default());
        }
        Ok(Value::Object(object))
    }

    /// A primitive element: its JSON value (typed) and its `_name` object (id and extensions).
    fn primitive(
        &mut self,
        start: &BytesStart,
        empty: bool,
        type_code: &str,
        path: &str,
        depth: usize,
    ) -> Result<(Option<Value>, Option<Value>), Issue> {
        let layout = self
            .definitions
            .layout(type_code)
            .ok_or_else(|| fault(format!("no definition of the type {type_code:?} is loaded"), path))?;
        let mut object = self.complex(start, empty, layout, path, depth)?;
        let value = match object.shift_remove("value") {
            Some(Value::String(text)) => Some(typed(type_code, text, path)?),
            _ => None,
        };
        if value.is_none() && object.is_empty() {
            return Err(fault("has neither a value attribute nor an id or extensions", path));
        }
        Ok((value, Some(Value::Object(object)).filter(|extra| extra.as_object().is_some_and(|o| !o.is_empty()))))
    }

    /// A resource inside an element (`contained`, `entry.resource`): its only child element.
    fn contained(&mut self, empty: bool, path: &str, depth: usize) -> Result<Map<String, Value>, Issue> {
        let holds_nothing = || fault("must hold one resource", path);
        if empty {
            return Err(holds_nothing());
        }
        let mut resource = None;
        while let Some(inner) = self.next_child(path)? {
            if inner.namespace != Space::Fhir {
                return Err(outside_fhir(inner.start.name().as_ref(), path));
            }
            if resource.is_some() {
                return Err(fault("holds more than one resource", path));
            }
            resource = Some(self.resource(&inner.start, inner.empty, path, depth)?);
        }
        resource.ok_or_else(holds_nothing)
    }

    /// The narrative element's XML text, copied from the document; `before` is where its start
    /// tag begins. A `div` that inherits the XHTML namespace gets the declaration JSON needs.
    fn xhtml(&mut self, start: &BytesStart, empty: bool, before: usize, path: &str) -> Result<String, Issue> {
        if !empty {
            let end = start.to_end().into_owned();
            self.reader
                .read_to_end(end.name())
                .map_err(|e| self.refuse(format!("The narrative is not well-formed XML: {e}")))?;
        }
        let after = self.reader.buffer_position() as usize;
        let text = self
            .input
            .get(before..after)
            .ok_or_else(|| fault("The narrative cannot be read", path))?;
        let declares = start.attributes().flatten().any(|a| a.key.as_ref() == "xmlns");
        if start.name().prefix().is_some() {
            return Err(fault(format!("write the narrative as <div xmlns=\"{XHTML_NAMESPACE}\">, without a prefix"), path));
        }
        Ok(if declares {
            text.to_owned()
        } else {
            let name_end = 1 + start.name().as_ref().len();
            format!("{} xmlns=\"{XHTML_NAMESPACE}\"{}", &text[..name_end], &text[name_end..])
        })
    }
}

fn check_depth(depth: usize, path: &str) -> Result<(), Issue> {
    if depth > MAX_DEPTH {
        let message = format!("The resource nests elements deeper than the limit of {MAX_DEPTH}");
        return Err(Issue::error(IssueCode::TooLong, message).at(path));
    }
    Ok(())
}

/// Adds `item` under `name`; a name met again becomes an array.
fn append(object: &mut Map<String, Value>, name: String, item: Value) {
    match object.get_mut(&name) {
        Some(Value::Array(items)) => items.push(item),
        Some(single) => *single = Value::Array(vec![single.take(), item]),
        None => {
            object.insert(name, item);
        }
    }
}

fn inside_or(inside: &str, name: &str) -> String {
    if inside.is_empty() { name.to_owned() } else { inside.to_owned() }
}

fn set_once(object: &mut Map<String, Value>, key: &str, value: Value, path: &str) -> Result<(), Issue> {
    if object.contains_key(key) {
        return Err(fault("repeats, but may occur only once", path));
    }
    object.insert(key.to_owned(), value);
    Ok(())
}

/// A `value` attribute as the JSON value of its FHIR type.
fn typed(type_code: &str, text: String, path: &str) -> Result<Value, Issue> {
    let wrong = |what: &str| {
        Issue::error(IssueCode::Value, format!("{text:?} is not a valid {type_code}: {what}")).at(path)
    };
    match primitive_json_kind(type_code) {
        JsonKind::Boolean => match text.as_str() {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => Err(wrong("it must be true or false")),
        },
        JsonKind::Number => number_from_text(&text).map(Value::Number).ok_or_else(|| wrong("it must be a number")),
        JsonKind::String => Ok(Value::String(text)),
    }
}
