//! Child navigation over FHIR JSON: arrays flatten, primitives pair with their `_name`
//! siblings, and choice elements are found by their type suffix.

use std::borrow::Cow;

use serde_json::{Map, Value};

use crate::item::{Item, Location, Node, resource_type_of};
use crate::model::{TypeModel, choice_suffix_type};

/// The JSON object whose properties are a node's children, and the type to ask the model
/// about them. A primitive's children (`id`, `extension`) live in its `_name` sibling.
fn container<'n, 'a>(node: &'n Node<'a>) -> Option<(&'a Map<String, Value>, Option<&'n str>)> {
    match (node.value(), node.element()) {
        (Some(Value::Object(object)), _) => Some((object, node.fhir_type())),
        (_, Some(Value::Object(element))) => Some((element, Some("Element"))),
        _ => None,
    }
}

/// Appends the children called `name` (an element name, so `deceased` finds `deceasedBoolean`).
pub(crate) fn push_children_named<'a>(
    item: &Item<'a>,
    name: &str,
    model: Option<&'a dyn TypeModel>,
    out: &mut Vec<Item<'a>>,
) {
    let Some(node) = item.node() else {
        return;
    };
    let Some((object, parent_type)) = container(node) else {
        return;
    };
    if let Some((key, value)) = object.get_key_value(name) {
        let declared = declared_type(model, parent_type, key);
        let element = primitive_sibling(object, key, value);
        push_property(node, key, Some(value), element, declared, out);
        return;
    }
    let mut extension_only: Option<(&'a str, &'a Value, Option<&'static str>)> = None;
    for (key, value) in object {
        let (bare, is_sibling) = match key.strip_prefix('_') {
            Some(bare) => (bare, true),
            None => (key.as_str(), false),
        };
        let Some(suffix) = bare.strip_prefix(name) else {
            continue;
        };
        let choice_type = if suffix.is_empty() {
            None
        } else {
            match choice_suffix_type(suffix) {
                Some(choice_type) => Some(choice_type),
                None => continue,
            }
        };
        let element_name = &bare[..name.len()];
        if is_sibling {
            extension_only.get_or_insert((element_name, value, choice_type));
            continue;
        }
        let element = primitive_sibling(object, key, value);
        push_property(node, element_name, Some(value), element, choice_type.map(Cow::Borrowed), out);
        return;
    }
    if let Some((element_name, element, choice_type)) = extension_only {
        let declared = match choice_type {
            Some(choice_type) => Some(Cow::Borrowed(choice_type)),
            None => declared_type(model, parent_type, element_name),
        };
        push_property(node, element_name, None, Some(element), declared, out);
    }
}

/// Appends all children in property order. Without a model a property like `deceasedBoolean`
/// keeps its JSON name, since only a model can tell a choice suffix from an element name that
/// happens to end in a type name (`recordedDate`).
pub(crate) fn push_all_children<'a>(item: &Item<'a>, model: Option<&'a dyn TypeModel>, out: &mut Vec<Item<'a>>) {
    let Some(node) = item.node() else {
        return;
    };
    let Some((object, parent_type)) = container(node) else {
        return;
    };
    for (key, value) in object {
        if key == "resourceType" {
            continue;
        }
        let (name, value, element) = match key.strip_prefix('_') {
            Some(bare) if object.contains_key(bare) => continue,
            Some(bare) => (bare, None, Some(value)),
            None => (key.as_str(), Some(value), primitive_sibling(object, key, value)),
        };
        let (name, declared) = match declared_type(model, parent_type, name) {
            Some(declared) => (name, Some(declared)),
            None => split_choice(model, name),
        };
        push_property(node, name, value, element, declared, out);
    }
}

/// Splits `deceasedBoolean` into (`deceased`, `boolean`) when a model is in use.
fn split_choice<'a>(model: Option<&'a dyn TypeModel>, key: &'a str) -> (&'a str, Option<Cow<'a, str>>) {
    if model.is_some() {
        let split =
            key.char_indices().skip(1).filter(|(_, character)| character.is_ascii_uppercase()).find_map(
                |(position, _)| choice_suffix_type(&key[position..]).map(|choice_type| (position, choice_type)),
            );
        if let Some((position, choice_type)) = split {
            return (&key[..position], Some(Cow::Borrowed(choice_type)));
        }
    }
    (key, None)
}

fn declared_type<'a>(
    model: Option<&'a dyn TypeModel>,
    parent_type: Option<&str>,
    element: &str,
) -> Option<Cow<'a, str>> {
    let model = model?;
    model.child_type(parent_type?, element).map(Cow::Borrowed)
}

/// The `_key` sibling of a primitive property; objects never have one, so the lookup (and its
/// key allocation) is skipped for them.
fn primitive_sibling<'a>(object: &'a Map<String, Value>, key: &str, value: &Value) -> Option<&'a Value> {
    let may_be_primitive = match value {
        Value::Object(_) => false,
        Value::Array(items) => !items.iter().any(Value::is_object),
        _ => true,
    };
    if may_be_primitive { object.get(&format!("_{key}")) } else { None }
}

/// Pushes one node per array entry (pairing values with siblings by index), or one node for
/// a single value; entries where both are null are not elements and are skipped.
fn push_property<'a>(
    parent: &Node<'a>,
    name: &'a str,
    value: Option<&'a Value>,
    element: Option<&'a Value>,
    declared: Option<Cow<'a, str>>,
    out: &mut Vec<Item<'a>>,
) {
    let present = |v: Option<&'a Value>| v.filter(|v| !v.is_null());
    let values = value.and_then(Value::as_array);
    let elements = element.and_then(Value::as_array);
    if values.is_none() && elements.is_none() {
        let (value, element) = (present(value), present(element));
        if value.is_some() || element.is_some() {
            out.push(make_node(parent, name, None, value, element, &declared));
        }
        return;
    }
    let length = values.map_or(0, Vec::len).max(elements.map_or(0, Vec::len));
    for index in 0..length {
        let value = present(values.and_then(|items| items.get(index)));
        let element = present(elements.and_then(|items| items.get(index)));
        if value.is_some() || element.is_some() {
            out.push(make_node(parent, name, Some(index), value, element, &declared));
        }
    }
}

fn make_node<'a>(
    parent: &Node<'a>,
    name: &'a str,
    index: Option<usize>,
    value: Option<&'a Value>,
    element: Option<&'a Value>,
    declared: &Option<Cow<'a, str>>,
) -> Item<'a> {
    // Contained and inline resources are typed by their own resourceType, whatever the
    // model says the element holds (usually just `Resource`).
    let fhir_type = match value.and_then(resource_type_of) {
        Some(resource_type) => Some(Cow::Borrowed(resource_type)),
        None => declared.clone(),
    };
    let location = Location::child(parent.location(), name, index);
    Item::Node(Node::new(value, element, fhir_type, Some(location)))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::testing::eval;

    #[test]
    fn value_and_sibling_arrays_pair_by_index_even_when_lengths_differ() {
        let name = json!({"given": ["A"], "_given": [null, {"id": "second"}], "family": null});
        assert_eq!(eval("given.count()", &name), vec![json!(2)]);
        assert_eq!(eval("given[1].id", &name), vec![json!("second")]);
        assert_eq!(eval("family.exists()", &name), vec![json!(false)]);
        assert_eq!(eval("children().count()", &name), vec![json!(2)]);
    }

    #[test]
    fn extension_only_choice_elements_are_found() {
        let extension = json!({"url": "u", "_valueCode": {"extension": [{"url": "why", "valueString": "masked"}]}});
        assert_eq!(eval("value.extension.value", &extension), vec![json!("masked")]);
        assert_eq!(eval("value.hasValue()", &extension), vec![json!(false)]);
        assert_eq!(eval("value is code", &extension), vec![json!(true)]);
    }

    #[test]
    fn a_type_suffix_must_name_a_data_type() {
        let binding = json!({"valueSet": "http://example.org/vs", "valueQuantity": {"value": 1, "unit": "mg"}});
        assert_eq!(eval("value.unit", &binding), vec![json!("mg")]);
        assert_eq!(eval("value > 0.5 'mg'", &binding), vec![json!(true)]);
        assert_eq!(eval("valueSet", &binding), vec![json!("http://example.org/vs")]);
    }

    #[test]
    fn inline_resources_are_typed_by_their_resource_type() {
        let bundle = json!({
            "resourceType": "Bundle",
            "entry": [
                {"resource": {"resourceType": "Patient", "id": "p"}},
                {"resource": {"resourceType": "Slot", "id": "s"}}
            ]
        });
        assert_eq!(eval("Bundle.entry.resource.ofType(Slot).id", &bundle), vec![json!("s")]);
        assert_eq!(eval("Bundle.entry.resource.where($this is Patient).id", &bundle), vec![json!("p")]);
        assert_eq!(eval("entry.resource.ofType(DomainResource).count()", &bundle), vec![json!(2)]);
    }
}
