//! The one reader of `Parameters` resources (operation inputs and outputs), by parameter name.

use serde_json::{Map, Value};

/// The `parameter` entries of a Parameters resource, borrowed. Entries that are not objects
/// are skipped.
#[derive(Debug, Clone, Copy)]
pub struct Parameters<'a> {
    entries: &'a [Value],
}

impl<'a> Parameters<'a> {
    /// `None` when `resource` is not a Parameters resource.
    pub fn read(resource: &'a Map<String, Value>) -> Option<Self> {
        if resource.get("resourceType").and_then(Value::as_str) != Some("Parameters") {
            return None;
        }
        let entries = resource.get("parameter").and_then(Value::as_array).map_or(&[][..], Vec::as_slice);
        Some(Parameters { entries })
    }

    /// [`Self::read`] for a resource that may not even be an object.
    pub fn read_value(resource: &'a Value) -> Option<Self> {
        resource.as_object().and_then(Self::read)
    }

    /// Every entry with its name, in order.
    pub fn all(self) -> impl Iterator<Item = (&'a str, &'a Map<String, Value>)> {
        self.entries.iter().filter_map(Value::as_object).map(|entry| {
            let name = entry.get("name").and_then(Value::as_str).unwrap_or_default();
            (name, entry)
        })
    }

    /// The entries named `name`, in order.
    pub fn named<'n>(self, name: &'n str) -> impl Iterator<Item = &'a Map<String, Value>> + 'n
    where
        'a: 'n,
    {
        self.all().filter(move |(entry_name, _)| *entry_name == name).map(|(_, entry)| entry)
    }

    /// The `resource` of the first entry named `name` that has one.
    pub fn resource(self, name: &str) -> Option<&'a Value> {
        self.named(name).find_map(|entry| entry.get("resource"))
    }

    /// The first text found under one of `keys` (`valueString`, `valueCode`, ...) in the
    /// entries named `name`, trying the keys in order within each entry.
    pub fn text(self, name: &str, keys: &[&str]) -> Option<&'a str> {
        self.named(name)
            .find_map(|entry| keys.iter().find_map(|key| entry.get(*key).and_then(Value::as_str)))
    }

    /// The `valueString` of every entry named `name`.
    pub fn strings(self, name: &str) -> Vec<&'a str> {
        self.named(name)
            .filter_map(|entry| entry.get("valueString").and_then(Value::as_str))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_parameters_by_name() {
        let body = json!({"resourceType": "Parameters", "parameter": [
            {"name": "hold-token", "valueString": "a"},
            "not an entry",
            {"name": "slot", "resource": {"resourceType": "Slot"}},
            {"name": "slot-status", "code": "free"},
            {"name": "hold-token", "valueString": "b"},
        ]});
        let parameters = Parameters::read_value(&body).unwrap();
        assert_eq!(parameters.strings("hold-token"), ["a", "b"]);
        assert_eq!(parameters.resource("slot").unwrap()["resourceType"], "Slot");
        assert_eq!(parameters.resource("outcome"), None);
        assert_eq!(parameters.text("slot-status", &["valueCode", "code"]), Some("free"));
        assert_eq!(parameters.all().count(), 4);
        assert!(Parameters::read_value(&json!({"resourceType": "Slot"})).is_none());
        assert_eq!(Parameters::read_value(&json!({"resourceType": "Parameters"})).unwrap().all().count(), 0);
    }
}
