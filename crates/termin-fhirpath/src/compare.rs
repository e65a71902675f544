//! Equality (`=`), equivalence (`~`) and ordering of items.
//!
//! `Option<bool>` / `Option<Ordering>` results use `None` for FHIRPath's "unknown" (empty),
//! e.g. dates of different precision.

use std::cmp::Ordering;

use serde_json::Value;

use crate::decimal::Decimal;
use crate::error::EvalError;
use crate::item::Item;
use crate::temporal::{self, Date, DateTime, Time};
use crate::value::SystemValue;

/// What an item is compared as.
enum Comparable<'a> {
    Value(SystemValue<'a>),
    Json(&'a Value),
    /// A primitive with only an extension, or a type-only stub from `resolve()`.
    Nothing,
}

fn comparable<'a>(item: &Item<'a>) -> Comparable<'a> {
    match (item.system_value(), item.json()) {
        (Some(value), _) => Comparable::Value(value),
        (None, Some(json)) => Comparable::Json(json),
        (None, None) => Comparable::Nothing,
    }
}

/// The two items as system values, reading an untyped JSON string as a date or time when the
/// other side is one (without a type model FHIR dates arrive as plain strings).
fn comparable_pair<'a>(a: &Item<'a>, b: &Item<'a>) -> (Comparable<'a>, Comparable<'a>) {
    let (x, y) = (comparable(a), comparable(b));
    match (x, y) {
        (Comparable::Value(x), Comparable::Value(y)) => {
            let x = coerce_untyped(x, a.is_untyped_node(), &y);
            let y = coerce_untyped(y, b.is_untyped_node(), &x);
            (Comparable::Value(x), Comparable::Value(y))
        }
        pair => pair,
    }
}

fn coerce_untyped<'a>(value: SystemValue<'a>, untyped: bool, other: &SystemValue<'_>) -> SystemValue<'a> {
    let SystemValue::String(text) = &value else {
        return value;
    };
    if !untyped {
        return value;
    }
    let converted = match other {
        SystemValue::Date(_) => Date::parse(text).map(SystemValue::Date),
        SystemValue::DateTime(_) => DateTime::parse(text).map(SystemValue::DateTime),
        SystemValue::Time(_) => Time::parse(text).map(SystemValue::Time),
        _ => None,
    };
    converted.unwrap_or(value)
}

fn as_decimal(value: &SystemValue<'_>) -> Option<Decimal> {
    match value {
        SystemValue::Integer(integer) => Some(Decimal::from_integer(*integer)),
        SystemValue::Decimal(decimal) => Some(*decimal),
        _ => None,
    }
}

/// Date and DateTime compare with each other (a Date is a DateTime of day precision or less).
fn temporal_compare(a: &SystemValue<'_>, b: &SystemValue<'_>, default_offset_minutes: i32) -> Option<Option<Ordering>> {
    use SystemValue::{Date, DateTime, Time};
    Some(match (a, b) {
        (Date(a), Date(b)) => a.partial_compare(b),
        (Date(a), DateTime(b)) => temporal::DateTime::from(*a).partial_compare(b, default_offset_minutes),
        (DateTime(a), Date(b)) => a.partial_compare(&(*b).into(), default_offset_minutes),
        (DateTime(a), DateTime(b)) => a.partial_compare(b, default_offset_minutes),
        (Time(a), Time(b)) => a.partial_compare(b),
        _ => return None,
    })
}

fn values_equal(a: &SystemValue<'_>, b: &SystemValue<'_>, default_offset_minutes: i32) -> Option<bool> {
    if let (Some(x), Some(y)) = (as_decimal(a), as_decimal(b)) {
        return Some(x == y);
    }
    if let Some(ordering) = temporal_compare(a, b, default_offset_minutes) {
        return ordering.map(|ordering| ordering == Ordering::Equal);
    }
    match (a, b) {
        (SystemValue::Quantity(x), SystemValue::Quantity(y)) => x.same_unit(y).then(|| x.value() == y.value()),
        _ => Some(a == b),
    }
}

/// `=` on two items.
pub(crate) fn items_equal(a: &Item<'_>, b: &Item<'_>, default_offset_minutes: i32) -> Option<bool> {
    match comparable_pair(a, b) {
        (Comparable::Value(x), Comparable::Value(y)) => values_equal(&x, &y, default_offset_minutes),
        (Comparable::Json(x), Comparable::Json(y)) => Some(x == y),
        (Comparable::Nothing, _) | (_, Comparable::Nothing) => None,
        _ => Some(false),
    }
}

/// `~` on two items: never unknown; strings ignore case and treat all whitespace alike,
/// decimals compare at the lesser precision, dates of different precision differ.
pub(crate) fn items_equivalent(a: &Item<'_>, b: &Item<'_>, default_offset_minutes: i32) -> bool {
    match comparable_pair(a, b) {
        (Comparable::Value(x), Comparable::Value(y)) => values_equivalent(&x, &y, default_offset_minutes),
        (Comparable::Json(x), Comparable::Json(y)) => x == y,
        (Comparable::Nothing, Comparable::Nothing) => true,
        _ => false,
    }
}

fn values_equivalent(a: &SystemValue<'_>, b: &SystemValue<'_>, default_offset_minutes: i32) -> bool {
    use SystemValue::*;
    if let (Some(x), Some(y)) = (as_decimal(a), as_decimal(b)) {
        return x.equivalent(y);
    }
    let same_precision = match (a, b) {
        (String(x), String(y)) => {
            return normalize_for_equivalence(x) == normalize_for_equivalence(y);
        }
        (Quantity(x), Quantity(y)) => return x.same_unit(y) && x.value().equivalent(y.value()),
        (Date(x), Date(y)) => temporal::same_precision_dates(x, y),
        (DateTime(x), DateTime(y)) => temporal::same_precision_date_times(x, y),
        (Date(x), DateTime(y)) | (DateTime(y), Date(x)) => temporal::same_precision_date_times(&(*x).into(), y),
        (Time(x), Time(y)) => temporal::same_precision_times(x, y),
        _ => true,
    };
    same_precision && values_equal(a, b, default_offset_minutes) == Some(true)
}

fn normalize_for_equivalence(text: &str) -> String {
    text.chars().map(|c| if c.is_whitespace() { ' ' } else { c }).flat_map(char::to_lowercase).collect()
}

/// `=` on collections: pairwise in order; empty when either side is empty or any pair is
/// unknown (and none is known to differ).
pub(crate) fn collections_equal(left: &[Item<'_>], right: &[Item<'_>], default_offset_minutes: i32) -> Option<bool> {
    if left.is_empty() || right.is_empty() {
        return None;
    }
    if left.len() != right.len() {
        return Some(false);
    }
    let mut unknown = false;
    for (a, b) in left.iter().zip(right) {
        match items_equal(a, b, default_offset_minutes) {
            Some(false) => return Some(false),
            None => unknown = true,
            Some(true) => {}
        }
    }
    (!unknown).then_some(true)
}

/// `~` on collections: the same items in any order.
pub(crate) fn collections_equivalent(left: &[Item<'_>], right: &[Item<'_>], default_offset_minutes: i32) -> bool {
    if left.len() != right.len() {
        return false;
    }
    let mut matched = vec![false; right.len()];
    left.iter().all(|a| {
        let partner = right
            .iter()
            .enumerate()
            .position(|(index, b)| !matched[index] && items_equivalent(a, b, default_offset_minutes));
        partner.map(|index| matched[index] = true).is_some()
    })
}

/// Ordering for `<`, `>`, `<=`, `>=`; an error for values of types that cannot be ordered.
pub(crate) fn items_compare(
    a: &Item<'_>,
    b: &Item<'_>,
    default_offset_minutes: i32,
) -> Result<Option<Ordering>, EvalError> {
    let (Comparable::Value(x), Comparable::Value(y)) = comparable_pair(a, b) else {
        return Err(EvalError::Type("only primitive values can be compared with < > <= >=".to_string()));
    };
    if let (Some(x), Some(y)) = (as_decimal(&x), as_decimal(&y)) {
        return Ok(Some(x.cmp(&y)));
    }
    if let Some(ordering) = temporal_compare(&x, &y, default_offset_minutes) {
        return Ok(ordering);
    }
    match (&x, &y) {
        (SystemValue::String(p), SystemValue::String(q)) => Ok(Some(p.cmp(q))),
        (SystemValue::Quantity(p), SystemValue::Quantity(q)) => Ok(p.same_unit(q).then(|| p.value().cmp(&q.value()))),
        _ => Err(EvalError::Type(format!("cannot compare {} with {}", x.type_name(), y.type_name()))),
    }
}
