//! Index rows from a resource: each search parameter's FHIRPath expression selects elements,
//! and each element becomes rows by its FHIR type (the spec's "search type × data type" table).

use crate::definitions::ParamType;
use crate::registry::SearchParam;
use crate::temporal::{InstantRange, parse_range};
use crate::text::normalize;
use jiff::tz::TimeZone;
use serde_json::Value;
use termin_fhir::geo::Point;
use termin_fhir::reference::{parse_literal, split_canonical};
use termin_fhirpath::{EvalContext, Item, SystemValue, evaluate};
use termin_store::{
    DateIndex, IndexEntries, NumberIndex, PositionIndex, QuantityIndex, ReferenceIndex, StringIndex, TokenIndex,
    UriIndex,
};

/// Evaluates every parameter of the resource's type and collects the rows.
pub(crate) fn index_entries(
    params: &[SearchParam],
    resource: &Value,
    context: &EvalContext<'_>,
    time_zone: &TimeZone,
) -> IndexEntries {
    let mut entries = IndexEntries::default();
    for param in params {
        let Some(expression) = param.expression() else {
            continue;
        };
        let items = match evaluate(expression, context, resource) {
            Ok(items) => items,
            Err(error) => {
                // A resource the expression cannot be evaluated on (e.g. several values where
                // one is expected) is not findable by this parameter; the write still succeeds.
                tracing::warn!(param = %param.code, %error, "search parameter not indexed");
                continue;
            }
        };
        for item in &items {
            push_item(param, item, time_zone, &mut entries);
        }
    }
    dedup(&mut entries);
    entries
}

fn push_item(param: &SearchParam, item: &Item<'_>, time_zone: &TimeZone, entries: &mut IndexEntries) {
    let code = param.code.as_str();
    let json = item.json();
    let kind = item_type(item);
    match param.kind {
        ParamType::Token => token_rows(code, kind, item, &mut entries.tokens),
        ParamType::String => {
            if let Some(json) = json {
                string_rows(code, kind, json, &mut entries.strings);
            }
        }
        ParamType::Date => {
            if let Some(range) = date_range(kind, item, time_zone) {
                entries.dates.push(DateIndex { param: code.to_owned(), low: range.low, high: range.high });
            }
        }
        ParamType::Reference => {
            if let Some(json) = json {
                reference_rows(code, kind, json, &mut entries.references);
            }
        }
        ParamType::Uri => {
            if let Some(uri) = json.and_then(Value::as_str) {
                entries.uris.push(UriIndex { param: code.to_owned(), uri: uri.to_owned() });
            }
        }
        ParamType::Number => {
            if let Some(value) = json.and_then(number_value) {
                entries.numbers.push(NumberIndex { param: code.to_owned(), low: value, high: value });
            }
        }
        ParamType::Quantity => {
            if let Some(row) = json.and_then(|j| quantity_row(code, j)) {
                entries.quantities.push(row);
            }
        }
        // `near`, the one special parameter served: a `Location.position`.
        ParamType::Special => {
            let position = json.and_then(|j| Point::new(j.get("latitude")?.as_f64()?, j.get("longitude")?.as_f64()?));
            if let Some(position) = position {
                entries.positions.push(PositionIndex { param: code.to_owned(), position });
            }
        }
        ParamType::Composite => {}
    }
}

/// The item's FHIR type: declared by the model, else guessed from the JSON shape.
fn item_type<'i>(item: &'i Item<'_>) -> &'i str {
    if let Some(known) = item.fhir_type() {
        return known;
    }
    match item.json() {
        Some(Value::Object(object)) => {
            let has = |key: &str| object.contains_key(key);
            if has("reference") || (has("identifier") && !has("system")) {
                "Reference"
            } else if has("concept") {
                "CodeableReference"
            } else if has("coding") || (has("text") && object.len() == 1) {
                "CodeableConcept"
            } else if has("code") && !has("value") {
                "Coding"
            } else if has("start") || has("end") {
                "Period"
            } else if has("family") || has("given") {
                "HumanName"
            } else if has("city") || has("line") || has("postalCode") {
                "Address"
            } else if object.get("value").is_some_and(Value::is_number) {
                "Quantity"
            } else {
                "Identifier"
            }
        }
        Some(Value::Bool(_)) => "boolean",
        Some(Value::Number(_)) => "decimal",
        Some(_) => "string",
        None => match item.system_value() {
            Some(SystemValue::Boolean(_)) => "boolean",
            Some(SystemValue::Date(_)) => "date",
            Some(SystemValue::DateTime(_)) => "dateTime",
            _ => "string",
        },
    }
}

fn text_of(value: Option<&Value>) -> Option<String> {
    value.and_then(Value::as_str).map(normalize).filter(|t| !t.is_empty())
}

pub(crate) fn str_of(value: Option<&Value>) -> Option<String> {
    value.and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned)
}

fn token_rows(param: &str, kind: &str, item: &Item<'_>, out: &mut Vec<TokenIndex>) {
    let json = item.json();
    let row = |system: Option<String>, code: Option<String>, text: Option<String>| TokenIndex {
        text,
        code,
        ..TokenIndex::code(param, system, String::new())
    };
    match kind {
        "Coding" => out.extend(coding_row(param, json)),
        "CodeableConcept" => codeable_concept_rows(param, json, out),
        "CodeableReference" => codeable_concept_rows(param, json.and_then(|j| j.get("concept")), out),
        "Identifier" => {
            let Some(json) = json else { return };
            let base = row(
                str_of(json.get("system")),
                str_of(json.get("value")),
                text_of(json.get("type").and_then(|t| t.get("text"))),
            );
            if base.code.is_none() && base.text.is_none() {
                return;
            }
            let types: Vec<&Value> = json
                .get("type")
                .and_then(|t| t.get("coding"))
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .collect();
            for coding in &types {
                out.push(TokenIndex {
                    type_system: str_of(coding.get("system")),
                    type_code: str_of(coding.get("code")),
                    ..base.clone()
                });
            }
            if types.is_empty() {
                out.push(base);
            }
        }
        "ContactPoint" => {
            if let Some(value) = json.and_then(|j| str_of(j.get("value"))) {
                out.push(row(None, Some(value), None));
            }
        }
        _ => {
            let code = match (json, item.system_value()) {
                (Some(Value::String(text)), _) => Some(text.clone()),
                (Some(Value::Bool(flag)), _) => Some(flag.to_string()),
                (None, Some(SystemValue::Boolean(flag))) => Some(flag.to_string()),
                (Some(Value::Number(number)), _) => Some(number.to_string()),
                _ => None,
            };
            if let Some(code) = code.filter(|c| !c.is_empty()) {
                out.push(row(None, Some(code), None));
            }
        }
    }
}

fn coding_row(param: &str, coding: Option<&Value>) -> Option<TokenIndex> {
    let coding = coding?;
    let part = |key: &str| coding.get(key).and_then(Value::as_str);
    coding_index(param, part("system"), part("code"), part("display"))
}

/// The token row of a `Coding` given by its parts, as extraction builds it from the element
/// (empty parts count as absent, the display is normalized): for resources the server writes
/// itself, whose elements it knows without evaluating FHIRPath.
pub fn coding_index(
    param: &str,
    system: Option<&str>,
    code: Option<&str>,
    display: Option<&str>,
) -> Option<TokenIndex> {
    let present = |part: Option<&str>| part.filter(|p| !p.is_empty()).map(str::to_owned);
    let code = present(code);
    let text = display.map(normalize).filter(|t| !t.is_empty());
    (code.is_some() || text.is_some()).then(|| TokenIndex {
        code,
        text,
        ..TokenIndex::code(param, present(system), String::new())
    })
}

/// The token row of a `code` (or other primitive) value, as extraction builds it.
pub fn code_index(param: &str, code: &str) -> Option<TokenIndex> {
    (!code.is_empty()).then(|| TokenIndex::code(param, None, code))
}

pub(crate) fn codeable_concept_rows(param: &str, concept: Option<&Value>, out: &mut Vec<TokenIndex>) {
    let Some(concept) = concept else { return };
    for coding in concept.get("coding").and_then(Value::as_array).into_iter().flatten() {
        out.extend(coding_row(param, Some(coding)));
    }
    if let Some(text) = text_of(concept.get("text")) {
        out.push(TokenIndex { code: None, text: Some(text), ..TokenIndex::code(param, None, String::new()) });
    }
}

/// String parameters on complex types search their text parts (HumanName, Address).
const HUMAN_NAME_PARTS: [&str; 5] = ["family", "given", "prefix", "suffix", "text"];
const ADDRESS_PARTS: [&str; 7] = ["line", "city", "district", "state", "postalCode", "country", "text"];

fn string_rows(param: &str, kind: &str, json: &Value, out: &mut Vec<StringIndex>) {
    let parts: &[&str] = match kind {
        "HumanName" => &HUMAN_NAME_PARTS,
        "Address" => &ADDRESS_PARTS,
        _ => &[],
    };
    let mut push = |text: &str| {
        let normalized = normalize(text);
        if !normalized.is_empty() {
            out.push(StringIndex { param: param.to_owned(), value: text.to_owned(), normalized });
        }
    };
    if parts.is_empty() {
        if let Some(text) = json.as_str() {
            push(text);
        }
        return;
    }
    for part in parts {
        match json.get(part) {
            Some(Value::String(text)) => push(text),
            Some(Value::Array(values)) => values.iter().filter_map(Value::as_str).for_each(&mut push),
            _ => {}
        }
    }
}

fn date_range(kind: &str, item: &Item<'_>, time_zone: &TimeZone) -> Option<InstantRange> {
    let json = item.json();
    let text_range = |value: Option<&Value>| value.and_then(Value::as_str).and_then(|t| parse_range(t, time_zone));
    match kind {
        "Period" => {
            let json = json?;
            let start = text_range(json.get("start"));
            let end = text_range(json.get("end"));
            if start.is_none() && end.is_none() {
                return None;
            }
            Some(InstantRange { low: start.and_then(|s| s.low), high: end.and_then(|e| e.high) })
        }
        "Timing" => {
            let json = json?;
            let events =
                json.get("event").and_then(Value::as_array).into_iter().flatten().filter_map(|e| text_range(Some(e)));
            let bounds = json.get("repeat").and_then(|r| r.get("boundsPeriod")).map(|period| InstantRange {
                low: text_range(period.get("start")).and_then(|s| s.low),
                high: text_range(period.get("end")).and_then(|e| e.high),
            });
            events.chain(bounds).reduce(InstantRange::hull)
        }
        _ => match json {
            Some(value) => text_range(Some(value)),
            None => text_range(Some(&item.to_json())),
        },
    }
}

fn reference_rows(param: &str, kind: &str, json: &Value, out: &mut Vec<ReferenceIndex>) {
    match kind {
        "Reference" => {
            let identifier = |key: &str| json.get("identifier").and_then(|i| i.get(key)).and_then(Value::as_str);
            out.extend(reference_index(
                param,
                json.get("type").and_then(Value::as_str),
                json.get("reference").and_then(Value::as_str),
                identifier("system"),
                identifier("value"),
            ));
        }
        "CodeableReference" => {
            if let Some(reference) = json.get("reference") {
                reference_rows(param, "Reference", reference, out);
            }
        }
        _ => {
            // canonical, uri, url: the text itself.
            if let Some(text) = json.as_str().filter(|t| !t.is_empty()) {
                let mut row = ReferenceIndex { param: param.to_owned(), ..ReferenceIndex::default() };
                apply_reference_text(&mut row, text);
                out.push(row);
            }
        }
    }
}

/// The reference row of a `Reference` given by its parts (`type`, `reference`,
/// `identifier.system`, `identifier.value`), as extraction builds it from the element; `None`
/// when it names nothing searchable (only a display, or a contained resource).
pub fn reference_index(
    param: &str,
    target_type: Option<&str>,
    reference: Option<&str>,
    identifier_system: Option<&str>,
    identifier_value: Option<&str>,
) -> Option<ReferenceIndex> {
    let present = |part: Option<&str>| part.filter(|p| !p.is_empty()).map(str::to_owned);
    let mut row =
        ReferenceIndex { param: param.to_owned(), target_type: present(target_type), ..ReferenceIndex::default() };
    if let Some(reference) = reference {
        if reference.starts_with('#') {
            // Contained resources are not searchable on their own.
            return None;
        }
        apply_reference_text(&mut row, reference);
    }
    row.identifier_system = present(identifier_system);
    row.identifier_value = present(identifier_value);
    (row.target_id.is_some() || row.url.is_some() || row.identifier_value.is_some()).then_some(row)
}

fn apply_reference_text(row: &mut ReferenceIndex, reference: &str) {
    match parse_literal(reference) {
        Some(literal) => {
            row.target_type = Some(literal.resource_type.to_owned());
            row.target_id = Some(literal.id.to_owned());
            row.version = literal.version.map(str::to_owned);
            row.base = literal.base.map(str::to_owned);
            // Absolute references are also found by their URL (without the version).
            row.url = literal.base.map(|base| format!("{base}/{}/{}", literal.resource_type, literal.id));
        }
        None => {
            let (url, version) = split_canonical(reference);
            row.url = Some(url.to_owned());
            row.version = version.map(str::to_owned);
        }
    }
}

fn number_value(json: &Value) -> Option<f64> {
    match json {
        Value::Number(number) => number.to_string().parse().ok(),
        Value::String(text) => text.parse().ok(),
        _ => None,
    }
}

fn quantity_row(param: &str, json: &Value) -> Option<QuantityIndex> {
    let value = number_value(json.get("value")?)?;
    Some(QuantityIndex {
        param: param.to_owned(),
        low: value,
        high: value,
        system: str_of(json.get("system")),
        code: str_of(json.get("code")),
        unit: str_of(json.get("unit")),
    })
}

/// Repeated values (a code in two codings, a name part twice) add nothing.
pub fn dedup(entries: &mut IndexEntries) {
    fn unique<T: PartialEq>(rows: &mut Vec<T>) {
        let mut kept: Vec<T> = Vec::with_capacity(rows.len());
        for row in rows.drain(..) {
            if !kept.contains(&row) {
                kept.push(row);
            }
        }
        *rows = kept;
    }
    unique(&mut entries.tokens);
    unique(&mut entries.strings);
    unique(&mut entries.dates);
    unique(&mut entries.references);
    unique(&mut entries.uris);
    unique(&mut entries.numbers);
    unique(&mut entries.quantities);
}
