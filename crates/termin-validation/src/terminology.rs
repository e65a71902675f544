//! ValueSet membership from the ValueSets and CodeSystems of the loaded packages: explicit
//! concept lists, whole code systems, `is-a`/`descendent-of`/`is-not-a`/`=` filters on
//! hierarchical code systems, imported value sets and excludes. Whatever needs a code system
//! that no package carries (SNOMED CT, UCUM, most of terminology.hl7.org) is `Unknown`.

use serde_json::Value;
use std::collections::{HashMap, HashSet};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Membership {
    Member,
    NotMember,
    /// The value set cannot be evaluated for this code without a terminology server.
    Unknown,
}

impl Membership {
    /// Membership in both (for `valueSet` imports that must all hold).
    fn and(self, other: Membership) -> Membership {
        match (self, other) {
            (Membership::NotMember, _) | (_, Membership::NotMember) => Membership::NotMember,
            (Membership::Unknown, _) | (_, Membership::Unknown) => Membership::Unknown,
            _ => Membership::Member,
        }
    }
}

struct Filter {
    property: String,
    op: String,
    value: String,
}

struct Include {
    system: Option<String>,
    concepts: Option<HashSet<String>>,
    filters: Vec<Filter>,
    value_sets: Vec<String>,
}

pub(crate) struct ValueSetDef {
    includes: Vec<Include>,
    excludes: Vec<Include>,
    /// `system → codes` of a stored expansion, used when there is no compose.
    expansion: HashMap<String, HashSet<String>>,
}

pub(crate) struct CodeSystemDef {
    /// Whether the resource lists every code (`content = complete`).
    complete: bool,
    /// Every code with its parents.
    parents: HashMap<String, Vec<String>>,
}

/// Looks up what membership needs: other value sets and code systems by canonical URL.
pub(crate) trait Terminology {
    fn value_set(&self, url: &str) -> Option<&ValueSetDef>;
    fn code_system(&self, url: &str) -> Option<&CodeSystemDef>;
}

/// Imports deeper than this are taken as a cycle and answer `Unknown`.
const MAX_IMPORT_DEPTH: usize = 8;

impl ValueSetDef {
    pub fn compile(json: Value) -> Result<ValueSetDef, String> {
        let includes = |key: &str| -> Vec<Include> {
            json.pointer(&format!("/compose/{key}"))
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(compile_include)
                .collect()
        };
        let mut expansion: HashMap<String, HashSet<String>> = HashMap::new();
        let mut pending: Vec<&Value> = json
            .pointer("/expansion/contains")
            .and_then(Value::as_array)
            .map(|a| a.iter().collect())
            .unwrap_or_default();
        while let Some(entry) = pending.pop() {
            if let (Some(system), Some(code)) = (
                entry.get("system").and_then(Value::as_str),
                entry.get("code").and_then(Value::as_str),
            ) {
                expansion.entry(system.to_owned()).or_default().insert(code.to_owned());
            }
            pending.extend(entry.get("contains").and_then(Value::as_array).into_iter().flatten());
        }
        Ok(ValueSetDef {
            includes: includes("include"),
            excludes: includes("exclude"),
            expansion,
        })
    }

    /// Whether `code` (from `system`, when the element carries one) is in this value set.
    pub fn contains(&self, terminology: &dyn Terminology, system: Option<&str>, code: &str) -> Membership {
        self.contains_at(terminology, system, code, 0)
    }

    fn contains_at(&self, terminology: &dyn Terminology, system: Option<&str>, code: &str, depth: usize) -> Membership {
        if depth > MAX_IMPORT_DEPTH {
            return Membership::Unknown;
        }
        if self.includes.is_empty() {
            let found = match system {
                Some(system) => self.expansion.get(system).is_some_and(|codes| codes.contains(code)),
                None => self.expansion.values().any(|codes| codes.contains(code)),
            };
            return if found { Membership::Member } else { Membership::NotMember };
        }
        let mut result = Membership::NotMember;
        for include in &self.includes {
            match include.contains(terminology, system, code, depth) {
                Membership::Member => {
                    let excluded = self
                        .excludes
                        .iter()
                        .any(|exclude| exclude.contains(terminology, system, code, depth) == Membership::Member);
                    if !excluded {
                        return Membership::Member;
                    }
                }
                Membership::Unknown => result = Membership::Unknown,
                Membership::NotMember => {}
            }
        }
        result
    }
}

fn compile_include(raw: &Value) -> Include {
    let text = |value: &Value, key: &str| value.get(key).and_then(Value::as_str).map(str::to_owned);
    Include {
        system: text(raw, "system"),
        concepts: raw.get("concept").and_then(Value::as_array).map(|concepts| {
            concepts
                .iter()
                .filter_map(|c| c.get("code").and_then(Value::as_str).map(str::to_owned))
                .collect()
        }),
        filters: raw
            .get("filter")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|f| {
                Some(Filter {
                    property: text(f, "property")?,
                    op: text(f, "op")?,
                    value: text(f, "value")?,
                })
            })
            .collect(),
        value_sets: raw
            .get("valueSet")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(|url| crate::package::unversioned(url).to_owned())
            .collect(),
    }
}

impl Include {
    fn contains(&self, terminology: &dyn Terminology, system: Option<&str>, code: &str, depth: usize) -> Membership {
        if let (Some(wanted), Some(own)) = (system, &self.system)
            && wanted != own
        {
            return Membership::NotMember;
        }
        let mut result = Membership::Member;
        for url in &self.value_sets {
            let imported = match terminology.value_set(url) {
                Some(value_set) => value_set.contains_at(terminology, system, code, depth + 1),
                None => Membership::Unknown,
            };
            result = result.and(imported);
        }
        let Some(own_system) = &self.system else {
            return result;
        };
        if let Some(concepts) = &self.concepts {
            let listed = if concepts.contains(code) { Membership::Member } else { Membership::NotMember };
            return result.and(listed);
        }
        let Some(code_system) = terminology.code_system(own_system) else {
            return result.and(Membership::Unknown);
        };
        if self.filters.is_empty() {
            let known = match (code_system.parents.contains_key(code), code_system.complete) {
                (true, _) => Membership::Member,
                (false, true) => Membership::NotMember,
                (false, false) => Membership::Unknown,
            };
            return result.and(known);
        }
        for filter in &self.filters {
            result = result.and(code_system.filter(filter, code));
        }
        result
    }
}

impl CodeSystemDef {
    pub fn compile(json: Value) -> Result<CodeSystemDef, String> {
        let mut parents: HashMap<String, Vec<String>> = HashMap::new();
        let mut pending: Vec<(&Value, Option<&str>)> = json
            .get("concept")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|c| (c, None))
            .collect();
        while let Some((concept, parent)) = pending.pop() {
            let Some(code) = concept.get("code").and_then(Value::as_str) else {
                continue;
            };
            let entry = parents.entry(code.to_owned()).or_default();
            entry.extend(parent.map(str::to_owned));
            // Hierarchies may also be stated as `parent`/`subsumedBy` properties.
            for property in concept.get("property").and_then(Value::as_array).into_iter().flatten() {
                if matches!(property.get("code").and_then(Value::as_str), Some("parent" | "subsumedBy"))
                    && let Some(value) = property.get("valueCode").and_then(Value::as_str)
                {
                    entry.push(value.to_owned());
                }
            }
            pending.extend(
                concept
                    .get("concept")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .map(|child| (child, Some(code))),
            );
        }
        Ok(CodeSystemDef {
            complete: json.get("content").and_then(Value::as_str) == Some("complete"),
            parents,
        })
    }

    /// Whether `code` is `ancestor` or below it.
    fn is_a(&self, code: &str, ancestor: &str) -> bool {
        let mut pending = vec![code];
        let mut seen: HashSet<&str> = HashSet::new();
        while let Some(current) = pending.pop() {
            if current == ancestor {
                return true;
            }
            if seen.insert(current) {
                pending.extend(self.parents.get(current).into_iter().flatten().map(String::as_str));
            }
        }
        false
    }

    fn filter(&self, filter: &Filter, code: &str) -> Membership {
        if !self.parents.contains_key(code) {
            return if self.complete { Membership::NotMember } else { Membership::Unknown };
        }
        let holds = match (filter.property.as_str(), filter.op.as_str()) {
            ("concept" | "code", "is-a") => self.is_a(code, &filter.value),
            ("concept" | "code", "descendent-of") => code != filter.value && self.is_a(code, &filter.value),
            ("concept" | "code", "is-not-a") => !self.is_a(code, &filter.value),
            ("concept" | "code", "=") => code == filter.value,
            ("concept" | "code", "in") => filter.value.split(',').any(|v| v.trim() == code),
            _ => return Membership::Unknown,
        };
        if holds { Membership::Member } else { Membership::NotMember }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct Fixed {
        value_sets: HashMap<String, ValueSetDef>,
        code_systems: HashMap<String, CodeSystemDef>,
    }

    impl Terminology for Fixed {
        fn value_set(&self, url: &str) -> Option<&ValueSetDef> {
            self.value_sets.get(url)
        }
        fn code_system(&self, url: &str) -> Option<&CodeSystemDef> {
            self.code_systems.get(url)
        }
    }

    fn terminology() -> Fixed {
        let code_system = CodeSystemDef::compile(json!({
            "content": "complete",
            "concept": [{"code": "a", "concept": [{"code": "a1"}, {"code": "a2"}]}, {"code": "b"}]
        }))
        .unwrap();
        let whole = ValueSetDef::compile(json!({"compose": {"include": [{"system": "http://cs"}]}})).unwrap();
        Fixed {
            value_sets: HashMap::from([("http://vs/whole".to_owned(), whole)]),
            code_systems: HashMap::from([("http://cs".to_owned(), code_system)]),
        }
    }

    #[test]
    fn whole_systems_filters_imports_and_excludes() {
        let t = terminology();
        let whole = t.value_set("http://vs/whole").unwrap();
        assert_eq!(whole.contains(&t, Some("http://cs"), "a2"), Membership::Member);
        assert_eq!(whole.contains(&t, Some("http://cs"), "zz"), Membership::NotMember);
        assert_eq!(whole.contains(&t, Some("http://other"), "a"), Membership::NotMember);
        assert_eq!(whole.contains(&t, None, "b"), Membership::Member);

        let below_a = ValueSetDef::compile(json!({"compose": {"include": [
            {"system": "http://cs", "filter": [{"property": "concept", "op": "descendent-of", "value": "a"}]}
        ]}}))
        .unwrap();
        assert_eq!(below_a.contains(&t, Some("http://cs"), "a1"), Membership::Member);
        assert_eq!(below_a.contains(&t, Some("http://cs"), "a"), Membership::NotMember);

        let imported = ValueSetDef::compile(json!({"compose": {
            "include": [{"valueSet": ["http://vs/whole|5.0.0"]}],
            "exclude": [{"system": "http://cs", "concept": [{"code": "b"}]}]
        }}))
        .unwrap();
        assert_eq!(imported.contains(&t, Some("http://cs"), "a"), Membership::Member);
        assert_eq!(imported.contains(&t, Some("http://cs"), "b"), Membership::NotMember);

        let external = ValueSetDef::compile(json!({"compose": {"include": [{"system": "http://snomed.info/sct"}]}})).unwrap();
        assert_eq!(external.contains(&t, Some("http://snomed.info/sct"), "123"), Membership::Unknown);
    }
}
