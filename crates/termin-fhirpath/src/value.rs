//! FHIRPath system values: the results of literals, operators and functions, and the form
//! FHIR primitives take when they are compared or computed with.

use std::borrow::Cow;
use std::fmt;

use serde_json::Value;

use crate::decimal::Decimal;
use crate::temporal::{Date, DateTime, Time};

/// A FHIRPath value of one of the System types.
#[derive(Debug, Clone, PartialEq)]
pub enum SystemValue<'a> {
    Boolean(bool),
    String(Cow<'a, str>),
    Integer(i64),
    Decimal(Decimal),
    Date(Date),
    DateTime(DateTime),
    Time(Time),
    Quantity(Quantity),
}

impl SystemValue<'_> {
    /// The System type name, e.g. `String`.
    pub fn type_name(&self) -> &'static str {
        match self {
            SystemValue::Boolean(_) => "Boolean",
            SystemValue::String(_) => "String",
            SystemValue::Integer(_) => "Integer",
            SystemValue::Decimal(_) => "Decimal",
            SystemValue::Date(_) => "Date",
            SystemValue::DateTime(_) => "DateTime",
            SystemValue::Time(_) => "Time",
            SystemValue::Quantity(_) => "Quantity",
        }
    }

    /// JSON form: booleans, strings and numbers as themselves; dates, times and quantities
    /// as their FHIRPath text (`2020-01-02`, `5 'mg'`).
    pub fn to_json(&self) -> Value {
        match self {
            SystemValue::Boolean(value) => Value::Bool(*value),
            SystemValue::String(value) => Value::String(value.to_string()),
            SystemValue::Integer(value) => Value::from(*value),
            SystemValue::Decimal(value) => value.to_json(),
            other => Value::String(other.to_string()),
        }
    }
}

/// The text `toString()` produces.
impl fmt::Display for SystemValue<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SystemValue::Boolean(value) => write!(f, "{value}"),
            SystemValue::String(value) => f.write_str(value),
            SystemValue::Integer(value) => write!(f, "{value}"),
            SystemValue::Decimal(value) => write!(f, "{value}"),
            SystemValue::Date(value) => write!(f, "{value}"),
            SystemValue::DateTime(value) => write!(f, "{value}"),
            SystemValue::Time(value) => write!(f, "{value}"),
            SystemValue::Quantity(value) => write!(f, "{value}"),
        }
    }
}

/// A number with a unit: a UCUM code, or a calendar duration keyword (`day`, `year`, ...).
#[derive(Debug, Clone, PartialEq)]
pub struct Quantity {
    value: Decimal,
    unit: String,
    calendar: bool,
}

/// Calendar duration keywords in singular form, with the UCUM code each one equals.
/// `year` and `month` have none: FHIRPath does not equate them with `a` and `mo`.
const CALENDAR_UNITS: [(&str, Option<&str>); 8] = [
    ("year", None),
    ("month", None),
    ("week", Some("wk")),
    ("day", Some("d")),
    ("hour", Some("h")),
    ("minute", Some("min")),
    ("second", Some("s")),
    ("millisecond", Some("ms")),
];

impl Quantity {
    /// A quantity with a UCUM unit code.
    pub fn new(value: Decimal, unit: impl Into<String>) -> Quantity {
        Quantity { value, unit: unit.into(), calendar: false }
    }

    /// A quantity with a calendar duration keyword such as `days`; `None` for other words.
    pub fn calendar(value: Decimal, keyword: &str) -> Option<Quantity> {
        let singular = keyword.strip_suffix('s').unwrap_or(keyword);
        CALENDAR_UNITS.iter().any(|(name, _)| *name == singular).then(|| Quantity {
            value,
            unit: singular.to_string(),
            calendar: true,
        })
    }

    pub fn value(&self) -> Decimal {
        self.value
    }

    pub fn unit(&self) -> &str {
        &self.unit
    }

    pub(crate) fn negated(&self) -> Quantity {
        self.with_value(self.value.negated())
    }

    /// The same unit with another value.
    pub(crate) fn with_value(&self, value: Decimal) -> Quantity {
        Quantity { value, ..self.clone() }
    }

    /// The unit in a form where equal units compare equal: calendar keywords that have a
    /// UCUM counterpart become that code. Other unit conversions are not attempted.
    fn comparable_unit(&self) -> &str {
        if self.calendar {
            CALENDAR_UNITS.iter().find(|(name, _)| *name == self.unit).and_then(|(_, ucum)| *ucum).unwrap_or(&self.unit)
        } else {
            &self.unit
        }
    }

    pub(crate) fn same_unit(&self, other: &Quantity) -> bool {
        self.comparable_unit() == other.comparable_unit()
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.calendar {
            let plural = if self.value == Decimal::from_integer(1) { "" } else { "s" };
            write!(f, "{} {}{}", self.value, self.unit, plural)
        } else {
            write!(f, "{} '{}'", self.value, self.unit)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_units_match_their_ucum_codes_except_year_and_month() {
        let one = Decimal::from_integer(1);
        let days = Quantity::calendar(one, "days").unwrap();
        assert!(days.same_unit(&Quantity::new(one, "d")));
        assert_eq!(days.to_string(), "1 day");
        let year = Quantity::calendar(one, "year").unwrap();
        assert!(!year.same_unit(&Quantity::new(one, "a")));
        assert_eq!(Quantity::calendar(one, "fortnight"), None);
        assert_eq!(Quantity::new(one, "mg").to_string(), "1 'mg'");
    }
}
