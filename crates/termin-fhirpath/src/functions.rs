//! The FHIRPath functions.

use std::borrow::Cow;

use regex::Regex;
use serde_json::Value;

use crate::ast::{Call, Expr, Function};
use crate::compare;
use crate::decimal::Decimal;
use crate::error::EvalError;
use crate::eval::{Collection, Evaluator, Scope, singleton, singleton_value, to_boolean};
use crate::item::Item;
use crate::navigation;
use crate::parser::compile_regex;
use crate::resolve::{referenced_type, resolve_contained, type_only_stub};
use crate::temporal::{Date, DateTime};
use crate::value::SystemValue;

fn boolean<'a>(value: bool) -> Result<Collection<'a>, EvalError> {
    Ok(vec![Item::Value(SystemValue::Boolean(value))])
}

fn one<'a>(value: Option<SystemValue<'a>>) -> Result<Collection<'a>, EvalError> {
    Ok(value.map(Item::Value).into_iter().collect())
}

fn string<'a>(text: impl Into<Cow<'a, str>>) -> Item<'a> {
    Item::Value(SystemValue::String(text.into()))
}

impl<'c, 'a> Evaluator<'c, 'a> {
    pub(crate) fn call(
        &self,
        call: &Call,
        focus: &[Item<'a>],
        scope: Scope<'_, 'a>,
    ) -> Result<Collection<'a>, EvalError> {
        let input = match &call.target {
            Some(target) => self.eval(target, focus, scope)?,
            None => focus.to_vec(),
        };
        // Arguments that are not per-item lambdas are evaluated where the call appears.
        let argument = |index: usize| self.eval(&call.arguments[index], focus, scope);
        let name = call.function.name();
        use Function::*;
        match call.function {
            Empty => boolean(input.is_empty()),
            Exists => match call.arguments.first() {
                None => boolean(!input.is_empty()),
                Some(criteria) => boolean(!self.filter(&input, criteria)?.is_empty()),
            },
            All => {
                for (index, item) in input.iter().enumerate() {
                    let result = self.for_item(&call.arguments[0], item, index)?;
                    if to_boolean(&result, name)? != Some(true) {
                        return boolean(false);
                    }
                }
                boolean(true)
            }
            AllTrue | AnyTrue | AllFalse | AnyFalse => {
                let mut values = Vec::with_capacity(input.len());
                for item in &input {
                    match item.system_value() {
                        Some(SystemValue::Boolean(value)) => values.push(value),
                        _ => return Err(EvalError::Type(format!("{name}() needs Boolean items"))),
                    }
                }
                boolean(match call.function {
                    AllTrue => values.iter().all(|v| *v),
                    AnyTrue => values.iter().any(|v| *v),
                    AllFalse => values.iter().all(|v| !*v),
                    _ => values.iter().any(|v| !*v),
                })
            }
            Count => one(Some(SystemValue::Integer(input.len() as i64))),
            Distinct => Ok(self.distinct(input)),
            IsDistinct => {
                let count = input.len();
                boolean(self.distinct(input).len() == count)
            }
            Where => self.filter(&input, &call.arguments[0]),
            Select => {
                let mut out = Vec::new();
                for (index, item) in input.iter().enumerate() {
                    out.extend(self.for_item(&call.arguments[0], item, index)?);
                }
                Ok(out)
            }
            Repeat => self.repeat(input, &call.arguments[0]),
            First => Ok(input.into_iter().take(1).collect()),
            Last => Ok(input.into_iter().last().into_iter().collect()),
            Tail => Ok(input.into_iter().skip(1).collect()),
            Skip => {
                let count = self.count_argument(argument(0)?, name)?;
                Ok(input.into_iter().skip(count).collect())
            }
            Take => {
                let count = self.count_argument(argument(0)?, name)?;
                Ok(input.into_iter().take(count).collect())
            }
            Single => Ok(singleton(&input, "single()")?.cloned().into_iter().collect()),
            Union => {
                let mut out = Vec::new();
                for item in input.into_iter().chain(argument(0)?) {
                    self.push_distinct(&mut out, item);
                }
                Ok(out)
            }
            Combine => Ok(input.into_iter().chain(argument(0)?).collect()),
            Intersect => {
                let other = argument(0)?;
                let mut out = Vec::new();
                for item in input {
                    if self.contains_equal(&other, &item) {
                        self.push_distinct(&mut out, item);
                    }
                }
                Ok(out)
            }
            Exclude => {
                let other = argument(0)?;
                Ok(input.into_iter().filter(|item| !self.contains_equal(&other, item)).collect())
            }
            Iif => self.iif(call, input),
            Not => one(to_boolean(&input, "not()")?.map(|value| SystemValue::Boolean(!value))),
            HasValue => boolean(match input.as_slice() {
                [Item::Value(_)] => true,
                [item] => item.json().is_some_and(|value| !value.is_object() && !value.is_array()),
                _ => false,
            }),
            Children => Ok(self.children(&input)),
            Descendants => {
                let mut out = Vec::new();
                let mut level = self.children(&input);
                while !level.is_empty() {
                    let next = self.children(&level);
                    out.append(&mut level);
                    level = next;
                }
                Ok(out)
            }
            Trace => Ok(input),
            Extension => {
                let Some(url) = self.string_argument(argument(0)?, name)? else {
                    return Ok(Vec::new());
                };
                let mut extensions = Vec::new();
                for item in &input {
                    navigation::push_children_named(item, "extension", self.model(), &mut extensions);
                }
                extensions.retain(|extension| {
                    extension.json().and_then(|value| value.get("url")).and_then(Value::as_str) == Some(url.as_ref())
                });
                Ok(extensions)
            }
            Resolve => Ok(self.resolve(&input)),
            MemberOf => Err(EvalError::Unsupported(
                "memberOf() needs a terminology service, which this evaluator does not have".to_string(),
            )),
            // Narrative XHTML rules are checked (if at all) by the validator, not here.
            HtmlChecks => Ok(singleton(&input, "htmlChecks()")?
                .map(|_| Item::Value(SystemValue::Boolean(true)))
                .into_iter()
                .collect()),
            Today => one(Some(SystemValue::Date(Date::from_civil(self.now().date())))),
            Now => one(Some(SystemValue::DateTime(DateTime::from_zoned(self.now())))),
            ToString => one(singleton_value(&input, "toString()")?.map(|value| {
                SystemValue::String(match value {
                    SystemValue::String(text) => text,
                    other => Cow::Owned(other.to_string()),
                })
            })),
            ToInteger | ToDecimal | ToBoolean | ToDate | ToDateTime | ToTime => {
                one(self.convert(&input, call.function)?)
            }
            // Like the conversions, these are empty for empty input.
            _ if input.is_empty() && is_converts_to(call.function) => Ok(Vec::new()),
            ConvertsToString => boolean(singleton_value(&input, "convertsToString()")?.is_some()),
            ConvertsToInteger => boolean(self.convert(&input, ToInteger)?.is_some()),
            ConvertsToDecimal => boolean(self.convert(&input, ToDecimal)?.is_some()),
            ConvertsToBoolean => boolean(self.convert(&input, ToBoolean)?.is_some()),
            ConvertsToDate => boolean(self.convert(&input, ToDate)?.is_some()),
            ConvertsToDateTime => boolean(self.convert(&input, ToDateTime)?.is_some()),
            ConvertsToTime => boolean(self.convert(&input, ToTime)?.is_some()),
            _ => self.string_function(call, &input, &argument),
        }
    }

    /// Evaluates a per-item argument (`where`, `select`, ...) with `$this` and `$index` set.
    fn for_item(&self, expression: &Expr, item: &Item<'a>, index: usize) -> Result<Collection<'a>, EvalError> {
        let scope = Scope { this: Some(item), index: Some(index) };
        self.eval(expression, std::slice::from_ref(item), scope)
    }

    fn filter(&self, input: &[Item<'a>], criteria: &Expr) -> Result<Collection<'a>, EvalError> {
        let mut out = Vec::new();
        for (index, item) in input.iter().enumerate() {
            let result = self.for_item(criteria, item, index)?;
            if to_boolean(&result, "where()")? == Some(true) {
                out.push(item.clone());
            }
        }
        Ok(out)
    }

    /// Applies `projection` to the input, then to what it produced, until nothing new appears.
    fn repeat(&self, input: Collection<'a>, projection: &Expr) -> Result<Collection<'a>, EvalError> {
        let mut out: Collection<'a> = Vec::new();
        let mut current = input;
        while !current.is_empty() {
            let mut fresh = Vec::new();
            for (index, item) in current.iter().enumerate() {
                for produced in self.for_item(projection, item, index)? {
                    let before = out.len();
                    self.push_distinct(&mut out, produced.clone());
                    if out.len() > before {
                        fresh.push(produced);
                    }
                }
            }
            current = fresh;
        }
        Ok(out)
    }

    fn distinct(&self, input: Collection<'a>) -> Collection<'a> {
        let mut out = Vec::with_capacity(input.len());
        for item in input {
            self.push_distinct(&mut out, item);
        }
        out
    }

    fn contains_equal(&self, collection: &[Item<'a>], item: &Item<'a>) -> bool {
        collection
            .iter()
            .any(|candidate| compare::items_equal(candidate, item, self.default_offset_minutes) == Some(true))
    }

    fn children(&self, input: &[Item<'a>]) -> Collection<'a> {
        let mut out = Vec::new();
        for item in input {
            navigation::push_all_children(item, self.model(), &mut out);
        }
        out
    }

    /// `iif(criterion, true-result [, otherwise-result])`; the branches are evaluated lazily,
    /// with the (at most one) input item as focus.
    fn iif(&self, call: &Call, input: Collection<'a>) -> Result<Collection<'a>, EvalError> {
        let this = singleton(&input, "iif()")?;
        let scope = Scope { this, index: None };
        let criterion = self.eval(&call.arguments[0], &input, scope)?;
        if to_boolean(&criterion, "iif()")? == Some(true) {
            self.eval(&call.arguments[1], &input, scope)
        } else {
            match call.arguments.get(2) {
                Some(otherwise) => self.eval(otherwise, &input, scope),
                None => Ok(Vec::new()),
            }
        }
    }

    /// Contained references (`#id`) are looked up in `%rootResource`; others go to the
    /// resolver, and failing that become a content-less node of the type the reference names.
    fn resolve(&self, input: &[Item<'a>]) -> Collection<'a> {
        let mut out = Vec::new();
        for item in input {
            let reference = match item.json() {
                Some(Value::Object(object)) => object.get("reference").and_then(Value::as_str).map(Cow::Borrowed),
                _ => item.string_text(),
            };
            let Some(reference) = reference else {
                continue;
            };
            if let Some(fragment) = reference.strip_prefix('#') {
                out.extend(self.root_resource.and_then(|root| resolve_contained(root, fragment)));
                continue;
            }
            if let Some(resource) = self.resolver().and_then(|resolver| resolver.resolve(&reference)) {
                out.push(Item::from_json(resource));
                continue;
            }
            let resource_type = match reference {
                Cow::Borrowed(reference) => referenced_type(reference).map(Cow::Borrowed),
                Cow::Owned(reference) => referenced_type(&reference).map(|name| Cow::Owned(name.to_string())),
            };
            out.extend(resource_type.map(type_only_stub));
        }
        out
    }

    fn count_argument(&self, argument: Collection<'a>, name: &str) -> Result<usize, EvalError> {
        match singleton_value(&argument, name)? {
            Some(SystemValue::Integer(count)) => Ok(usize::try_from(count).unwrap_or(0)),
            _ => Err(EvalError::Type(format!("{name}() needs an Integer argument"))),
        }
    }

    fn string_argument(&self, argument: Collection<'a>, name: &str) -> Result<Option<Cow<'a, str>>, EvalError> {
        match singleton(&argument, name)? {
            None => Ok(None),
            Some(item) => {
                item.string_text().map(Some).ok_or_else(|| EvalError::Type(format!("{name}() needs String arguments")))
            }
        }
    }

    /// `toInteger()` and friends: `None` where the value does not convert.
    fn convert(&self, input: &[Item<'a>], target: Function) -> Result<Option<SystemValue<'a>>, EvalError> {
        let Some(value) = singleton_value(input, target.name())? else {
            return Ok(None);
        };
        use SystemValue::*;
        Ok(match (target, value) {
            (Function::ToInteger, Integer(value)) => Some(Integer(value)),
            (Function::ToInteger, Boolean(value)) => Some(Integer(i64::from(value))),
            (Function::ToInteger, String(text)) => integer_text(&text).map(Integer),
            (Function::ToDecimal, Integer(value)) => Some(Decimal(crate::decimal::Decimal::from_integer(value))),
            (Function::ToDecimal, Decimal(value)) => Some(Decimal(value)),
            (Function::ToDecimal, Boolean(value)) => {
                Some(Decimal(crate::decimal::Decimal::from_integer(i64::from(value))))
            }
            (Function::ToDecimal, String(text)) => decimal_text(&text).map(Decimal),
            (Function::ToBoolean, Boolean(value)) => Some(Boolean(value)),
            (Function::ToBoolean, Integer(value)) => match value {
                1 => Some(Boolean(true)),
                0 => Some(Boolean(false)),
                _ => None,
            },
            (Function::ToBoolean, Decimal(value)) => match value.to_integer() {
                Some(1) => Some(Boolean(true)),
                Some(0) => Some(Boolean(false)),
                _ => None,
            },
            (Function::ToBoolean, String(text)) => match text.to_ascii_lowercase().as_str() {
                "true" | "t" | "yes" | "y" | "1" | "1.0" => Some(Boolean(true)),
                "false" | "f" | "no" | "n" | "0" | "0.0" => Some(Boolean(false)),
                _ => None,
            },
            (Function::ToDate, Date(value)) => Some(Date(value)),
            (Function::ToDate, DateTime(value)) => Some(Date(value.date())),
            (Function::ToDate, String(text)) => crate::temporal::Date::parse(&text)
                .or_else(|| crate::temporal::DateTime::parse(&text).map(|value| value.date()))
                .map(Date),
            (Function::ToDateTime, DateTime(value)) => Some(DateTime(value)),
            (Function::ToDateTime, Date(value)) => Some(DateTime(value.into())),
            (Function::ToDateTime, String(text)) => crate::temporal::DateTime::parse(&text).map(DateTime),
            (Function::ToTime, Time(value)) => Some(Time(value)),
            (Function::ToTime, String(text)) => crate::temporal::Time::parse(&text).map(Time),
            _ => None,
        })
    }

    fn string_function(
        &self,
        call: &Call,
        input: &[Item<'a>],
        argument: &dyn Fn(usize) -> Result<Collection<'a>, EvalError>,
    ) -> Result<Collection<'a>, EvalError> {
        use Function::*;
        let name = call.function.name();
        if call.function == Join {
            return self.join(call, input, argument);
        }
        let Some(text) = input_string(input, name)? else {
            return Ok(Vec::new());
        };
        let text_argument = |index: usize| self.string_argument(argument(index)?, name);
        let integer_argument = |index: usize| -> Result<Option<i64>, EvalError> {
            match singleton_value(&argument(index)?, name)? {
                None => Ok(None),
                Some(SystemValue::Integer(value)) => Ok(Some(value)),
                Some(_) => Err(EvalError::Type(format!("{name}() needs Integer arguments"))),
            }
        };
        macro_rules! text_arg {
            ($index:expr) => {
                match text_argument($index)? {
                    Some(value) => value,
                    None => return Ok(Vec::new()),
                }
            };
        }
        Ok(match call.function {
            StartsWith => vec![bool_item(text.starts_with(text_arg!(0).as_ref()))],
            EndsWith => vec![bool_item(text.ends_with(text_arg!(0).as_ref()))],
            Contains => vec![bool_item(text.contains(text_arg!(0).as_ref()))],
            Matches => {
                let regex = self.regex(call, text_arg!(0).as_ref())?;
                vec![bool_item(regex.is_match(&text))]
            }
            ReplaceMatches => {
                let regex = self.regex(call, text_arg!(0).as_ref())?;
                let substitution = text_arg!(1);
                vec![string(regex.replace_all(&text, substitution.as_ref()).into_owned())]
            }
            Length => vec![Item::Value(SystemValue::Integer(text.chars().count() as i64))],
            Substring => {
                let Some(start) = integer_argument(0)? else {
                    return Ok(Vec::new());
                };
                let length = match call.arguments.get(1) {
                    Some(_) => integer_argument(1)?,
                    None => None,
                };
                let character_count = text.chars().count() as i64;
                if start < 0 || start >= character_count {
                    return Ok(Vec::new());
                }
                let taken = length.map_or(character_count, |length| length.max(0));
                let part: String = text.chars().skip(start as usize).take(taken as usize).collect();
                vec![string(part)]
            }
            Upper => vec![string(text.to_uppercase())],
            Lower => vec![string(text.to_lowercase())],
            IndexOf => {
                let needle = text_arg!(0);
                let index = text.find(needle.as_ref()).map_or(-1, |byte| text[..byte].chars().count() as i64);
                vec![Item::Value(SystemValue::Integer(index))]
            }
            Replace => {
                let pattern = text_arg!(0);
                let substitution = text_arg!(1);
                vec![string(text.replace(pattern.as_ref(), substitution.as_ref()))]
            }
            Split => {
                let separator = text_arg!(0);
                if separator.is_empty() {
                    text.chars().map(|c| string(c.to_string())).collect()
                } else {
                    text.split(separator.as_ref()).map(|part| string(part.to_string())).collect()
                }
            }
            Trim => vec![string(text.trim().to_string())],
            other => unreachable!("{other:?} is not a string function"),
        })
    }

    fn join(
        &self,
        call: &Call,
        input: &[Item<'a>],
        argument: &dyn Fn(usize) -> Result<Collection<'a>, EvalError>,
    ) -> Result<Collection<'a>, EvalError> {
        if input.is_empty() {
            return Ok(Vec::new());
        }
        let separator = match call.arguments.first() {
            Some(_) => self.string_argument(argument(0)?, "join")?.unwrap_or_default(),
            None => Cow::Borrowed(""),
        };
        let mut parts = Vec::with_capacity(input.len());
        for item in input {
            let text = item.string_text().ok_or_else(|| EvalError::Type("join() needs String items".to_string()))?;
            parts.push(text);
        }
        Ok(vec![string(parts.join(separator.as_ref()))])
    }

    fn regex<'r>(&self, call: &'r Call, pattern: &str) -> Result<Cow<'r, Regex>, EvalError> {
        match &call.literal_regex {
            Some(regex) => Ok(Cow::Borrowed(regex)),
            None => compile_regex(pattern).map(Cow::Owned).map_err(EvalError::Type),
        }
    }
}

fn is_converts_to(function: Function) -> bool {
    use Function::*;
    matches!(
        function,
        ConvertsToString
            | ConvertsToInteger
            | ConvertsToDecimal
            | ConvertsToBoolean
            | ConvertsToDate
            | ConvertsToDateTime
            | ConvertsToTime
    )
}

fn bool_item<'a>(value: bool) -> Item<'a> {
    Item::Value(SystemValue::Boolean(value))
}

fn input_string<'a>(input: &[Item<'a>], name: &str) -> Result<Option<Cow<'a, str>>, EvalError> {
    match singleton(input, name)? {
        None => Ok(None),
        // A primitive with only an extension has no text.
        Some(item) if item.json().is_none() && matches!(item, Item::Node(_)) => Ok(None),
        Some(item) => {
            item.string_text().map(Some).ok_or_else(|| EvalError::Type(format!("{name}() needs a String input")))
        }
    }
}

/// `[+-]digits`, as `toInteger()` accepts it.
fn integer_text(text: &str) -> Option<i64> {
    let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// `[+-]digits[.digits]`, as `toDecimal()` accepts it (no exponent).
fn decimal_text(text: &str) -> Option<Decimal> {
    if text.contains(['e', 'E']) {
        return None;
    }
    Decimal::parse(text)
}

#[cfg(test)]
mod tests;
