//! The evaluator: environment, paths and operators. Functions are in `functions.rs`.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::HashMap;

use serde_json::Value;

use crate::ast::{BinaryOperator, Expr, TypeOperation, TypeSpecifier};
use crate::compare;
use crate::decimal::Decimal;
use crate::error::{EvalError, ParseError};
use crate::item::Item;
use crate::model::{self, TypeModel};
use crate::navigation;
use crate::parser;
use crate::resolve::ReferenceResolver;
use crate::value::SystemValue;

/// A compiled expression; parse once, evaluate any number of times (also from several threads).
#[derive(Debug, Clone)]
pub struct Expression {
    source: String,
    root: Expr,
}

impl Expression {
    pub fn parse(source: &str) -> Result<Expression, ParseError> {
        Ok(Expression { source: source.to_string(), root: parser::parse(source)? })
    }

    /// The text the expression was parsed from.
    pub fn source(&self) -> &str {
        &self.source
    }
}

/// Everything an evaluation may consult besides its input. Built with the `with_*` methods;
/// all parts are optional.
#[derive(Clone)]
pub struct EvalContext<'a> {
    resource: Option<&'a Value>,
    root_resource: Option<&'a Value>,
    resolver: Option<&'a dyn ReferenceResolver>,
    model: Option<&'a dyn TypeModel>,
    now: jiff::ZonedDateTime,
    constants: HashMap<String, Vec<Item<'a>>>,
}

impl Default for EvalContext<'_> {
    fn default() -> Self {
        EvalContext {
            resource: None,
            root_resource: None,
            resolver: None,
            model: None,
            now: jiff::ZonedDateTime::now(),
            constants: HashMap::new(),
        }
    }
}

impl<'a> EvalContext<'a> {
    /// A context with the current time and nothing else.
    pub fn new() -> Self {
        Self::default()
    }

    /// `%resource`: the resource that contains the evaluated element. When not set,
    /// [`evaluate`] uses its input and [`evaluate_items`] leaves `%resource` empty.
    pub fn with_resource(mut self, resource: &'a Value) -> Self {
        self.resource = Some(resource);
        self
    }

    /// `%rootResource`: the container of a contained `%resource`, also where `#id`
    /// references are looked up. Defaults to `%resource`.
    pub fn with_root_resource(mut self, root_resource: &'a Value) -> Self {
        self.root_resource = Some(root_resource);
        self
    }

    /// Consulted by `resolve()` for references that are not `#contained`.
    pub fn with_resolver(mut self, resolver: &'a dyn ReferenceResolver) -> Self {
        self.resolver = Some(resolver);
        self
    }

    /// Types the nodes reached through ordinary elements.
    pub fn with_model(mut self, model: &'a dyn TypeModel) -> Self {
        self.model = Some(model);
        self
    }

    /// The instant `now()` and `today()` report; its offset is also the timezone assumed for
    /// date-times written without one.
    pub fn with_now(mut self, now: jiff::ZonedDateTime) -> Self {
        self.now = now;
        self
    }

    /// Defines `%name`. Built-in variables (`%resource`, `%context`, `%ucum`, ...) cannot be
    /// redefined.
    pub fn with_constant(mut self, name: impl Into<String>, items: Vec<Item<'a>>) -> Self {
        self.constants.insert(name.into(), items);
        self
    }
}

/// Evaluates `expression` with `input` (typically a resource; an array counts as the
/// collection of its elements) as focus and `%context`.
pub fn evaluate<'a>(
    expression: &Expression,
    context: &EvalContext<'a>,
    input: &'a Value,
) -> Result<Vec<Item<'a>>, EvalError> {
    let focus = match input {
        Value::Array(items) => items.iter().map(Item::from_json).collect(),
        single => vec![Item::from_json(single)],
    };
    let resource = context.resource.or(Some(input).filter(|input| !input.is_array()));
    evaluate_with(expression, context, focus, resource)
}

/// Evaluates `expression` on items from an earlier evaluation, e.g. an invariant on each node
/// its element path selects (nodes keep their type and location).
pub fn evaluate_items<'a>(
    expression: &Expression,
    context: &EvalContext<'a>,
    focus: Vec<Item<'a>>,
) -> Result<Vec<Item<'a>>, EvalError> {
    evaluate_with(expression, context, focus, context.resource)
}

fn evaluate_with<'a>(
    expression: &Expression,
    context: &EvalContext<'a>,
    focus: Vec<Item<'a>>,
    resource: Option<&'a Value>,
) -> Result<Vec<Item<'a>>, EvalError> {
    let root_resource = context.root_resource.or(resource);
    let evaluator = Evaluator {
        context,
        resource,
        root_resource,
        focus_items: &focus,
        default_offset_minutes: context.now.offset().seconds() / 60,
    };
    evaluator.eval(&expression.root, &focus, Scope::default())
}

/// The iteration variables of `where`, `select` and friends.
#[derive(Clone, Copy, Default)]
pub(crate) struct Scope<'s, 'a> {
    pub this: Option<&'s Item<'a>>,
    pub index: Option<usize>,
}

pub(crate) struct Evaluator<'c, 'a> {
    context: &'c EvalContext<'a>,
    resource: Option<&'a Value>,
    pub root_resource: Option<&'a Value>,
    /// `%context`
    focus_items: &'c [Item<'a>],
    pub default_offset_minutes: i32,
}

pub(crate) type Collection<'a> = Vec<Item<'a>>;

impl<'c, 'a> Evaluator<'c, 'a> {
    pub(crate) fn model(&self) -> Option<&'a dyn TypeModel> {
        self.context.model
    }

    pub(crate) fn resolver(&self) -> Option<&'a dyn ReferenceResolver> {
        self.context.resolver
    }

    pub(crate) fn now(&self) -> &jiff::ZonedDateTime {
        &self.context.now
    }

    pub(crate) fn eval(
        &self,
        expression: &Expr,
        focus: &[Item<'a>],
        scope: Scope<'_, 'a>,
    ) -> Result<Collection<'a>, EvalError> {
        match expression {
            Expr::Empty => Ok(Vec::new()),
            Expr::Literal(value) => Ok(vec![Item::Value(value.clone())]),
            Expr::This => Ok(match scope.this {
                Some(item) => vec![item.clone()],
                None => focus.to_vec(),
            }),
            Expr::Index => {
                Ok(scope.index.map(|index| Item::Value(SystemValue::Integer(index as i64))).into_iter().collect())
            }
            Expr::Variable(name) => self.variable(name),
            Expr::Identifier(name) => {
                let mut out = Vec::new();
                for item in focus {
                    if matches_type_name(item, name) {
                        out.push(item.clone());
                    } else {
                        navigation::push_children_named(item, name, self.model(), &mut out);
                    }
                }
                Ok(out)
            }
            Expr::Member(target, name) => {
                let mut out = Vec::new();
                for item in self.eval(target, focus, scope)? {
                    navigation::push_children_named(&item, name, self.model(), &mut out);
                }
                Ok(out)
            }
            Expr::Call(call) => self.call(call, focus, scope),
            Expr::TypeTest { target, operation, type_specifier } => {
                let input = match target {
                    Some(target) => self.eval(target, focus, scope)?,
                    None => focus.to_vec(),
                };
                type_test(input, *operation, type_specifier)
            }
            Expr::Indexer(target, index) => {
                let items = self.eval(target, focus, scope)?;
                let index = self.eval(index, focus, scope)?;
                let Some(index) = singleton_value(&index, "indexer")? else {
                    return Ok(Vec::new());
                };
                let SystemValue::Integer(index) = index else {
                    return Err(EvalError::Type("an index must be an Integer".to_string()));
                };
                Ok(usize::try_from(index).ok().and_then(|index| items.into_iter().nth(index)).into_iter().collect())
            }
            Expr::Negate(operand) => {
                let operand = self.eval(operand, focus, scope)?;
                let Some(value) = singleton_value(&operand, "unary -")? else {
                    return Ok(Vec::new());
                };
                let negated = match value {
                    SystemValue::Integer(value) => value.checked_neg().map(SystemValue::Integer),
                    SystemValue::Decimal(value) => Some(SystemValue::Decimal(value.negated())),
                    SystemValue::Quantity(value) => Some(SystemValue::Quantity(value.negated())),
                    other => {
                        return Err(EvalError::Type(format!("cannot negate a {}", other.type_name())));
                    }
                };
                Ok(negated.map(Item::Value).into_iter().collect())
            }
            Expr::Binary(operator, left, right) => self.binary(*operator, left, right, focus, scope),
        }
    }

    fn variable(&self, name: &str) -> Result<Collection<'a>, EvalError> {
        let text = |value: &'static str| Ok(vec![Item::Value(SystemValue::String(Cow::Borrowed(value)))]);
        match name {
            "context" => Ok(self.focus_items.to_vec()),
            "resource" => Ok(self.resource.map(Item::from_json).into_iter().collect()),
            "rootResource" => Ok(self.root_resource.map(Item::from_json).into_iter().collect()),
            "ucum" => text("http://unitsofmeasure.org"),
            "sct" => text("http://snomed.info/sct"),
            "loinc" => text("http://loinc.org"),
            _ => self.context.constants.get(name).cloned().ok_or_else(|| EvalError::UnknownVariable(name.to_string())),
        }
    }

    fn binary(
        &self,
        operator: BinaryOperator,
        left: &Expr,
        right: &Expr,
        focus: &[Item<'a>],
        scope: Scope<'_, 'a>,
    ) -> Result<Collection<'a>, EvalError> {
        use BinaryOperator::*;
        if matches!(operator, And | Or | Xor | Implies) {
            return self.logical(operator, left, right, focus, scope);
        }
        let left = self.eval(left, focus, scope)?;
        let right = self.eval(right, focus, scope)?;
        let offset = self.default_offset_minutes;
        let boolean = |value: Option<bool>| -> Result<Collection<'a>, EvalError> {
            Ok(value.map(|value| Item::Value(SystemValue::Boolean(value))).into_iter().collect())
        };
        match operator {
            Union => {
                let mut out = Vec::with_capacity(left.len() + right.len());
                for item in left.into_iter().chain(right) {
                    self.push_distinct(&mut out, item);
                }
                Ok(out)
            }
            Equal => boolean(compare::collections_equal(&left, &right, offset)),
            NotEqual => boolean(compare::collections_equal(&left, &right, offset).map(|equal| !equal)),
            Equivalent => boolean(Some(compare::collections_equivalent(&left, &right, offset))),
            NotEquivalent => boolean(Some(!compare::collections_equivalent(&left, &right, offset))),
            Less | Greater | LessOrEqual | GreaterOrEqual => {
                let (Some(a), Some(b)) = (singleton(&left, "comparison")?, singleton(&right, "comparison")?) else {
                    return Ok(Vec::new());
                };
                let ordering = compare::items_compare(a, b, offset)?;
                boolean(ordering.map(|ordering| match operator {
                    Less => ordering == Ordering::Less,
                    Greater => ordering == Ordering::Greater,
                    LessOrEqual => ordering != Ordering::Greater,
                    _ => ordering != Ordering::Less,
                }))
            }
            In => self.membership(&left, &right, "in"),
            Contains => self.membership(&right, &left, "contains"),
            Concatenate => {
                let text = |items: &[Item<'a>]| -> Result<String, EvalError> {
                    match singleton(items, "&")? {
                        None => Ok(String::new()),
                        Some(item) => item
                            .string_text()
                            .map(Cow::into_owned)
                            .ok_or_else(|| EvalError::Type("& needs String operands".to_string())),
                    }
                };
                let joined = text(&left)? + &text(&right)?;
                Ok(vec![Item::Value(SystemValue::String(Cow::Owned(joined)))])
            }
            Add | Subtract | Multiply | Divide | Div | Mod => {
                let (Some(a), Some(b)) =
                    (singleton_value(&left, "arithmetic")?, singleton_value(&right, "arithmetic")?)
                else {
                    return Ok(Vec::new());
                };
                Ok(arithmetic(operator, a, b)?.map(Item::Value).into_iter().collect())
            }
            And | Or | Xor | Implies => unreachable!("handled by logical()"),
        }
    }

    /// Three-valued logic; the right operand is skipped when the left one decides.
    fn logical(
        &self,
        operator: BinaryOperator,
        left: &Expr,
        right: &Expr,
        focus: &[Item<'a>],
        scope: Scope<'_, 'a>,
    ) -> Result<Collection<'a>, EvalError> {
        use BinaryOperator::*;
        let name = match operator {
            And => "and",
            Or => "or",
            Xor => "xor",
            _ => "implies",
        };
        let a = to_boolean(&self.eval(left, focus, scope)?, name)?;
        let decided = match (operator, a) {
            (And, Some(false)) => Some(false),
            (Or, Some(true)) => Some(true),
            (Implies, Some(false)) => Some(true),
            _ => None,
        };
        let result = match decided {
            Some(result) => Some(result),
            None => {
                let b = to_boolean(&self.eval(right, focus, scope)?, name)?;
                match operator {
                    And => match (a, b) {
                        (_, Some(false)) => Some(false),
                        (Some(true), Some(true)) => Some(true),
                        _ => None,
                    },
                    Or => match (a, b) {
                        (_, Some(true)) => Some(true),
                        (Some(false), Some(false)) => Some(false),
                        _ => None,
                    },
                    Xor => a.zip(b).map(|(a, b)| a != b),
                    _ => match (a, b) {
                        (_, Some(true)) => Some(true),
                        (Some(true), Some(false)) => Some(false),
                        _ => None,
                    },
                }
            }
        };
        Ok(result.map(|value| Item::Value(SystemValue::Boolean(value))).into_iter().collect())
    }

    /// `element in collection` (and `collection contains element`, with sides swapped).
    fn membership(
        &self,
        element: &[Item<'a>],
        collection: &[Item<'a>],
        operation: &str,
    ) -> Result<Collection<'a>, EvalError> {
        let Some(element) = singleton(element, operation)? else {
            return Ok(Vec::new());
        };
        let found = collection
            .iter()
            .any(|candidate| compare::items_equal(element, candidate, self.default_offset_minutes) == Some(true));
        Ok(vec![Item::Value(SystemValue::Boolean(found))])
    }

    /// Appends `item` unless an equal item is already there (union and distinct semantics).
    pub(crate) fn push_distinct(&self, out: &mut Collection<'a>, item: Item<'a>) {
        let duplicate = out.iter().any(|existing| {
            existing.same_node(&item)
                || compare::items_equal(existing, &item, self.default_offset_minutes) == Some(true)
        });
        if !duplicate {
            out.push(item);
        }
    }
}

/// A path may start with the type of its focus (`Patient.name` on a Patient, `Resource.id`
/// on anything); type names are capitalised, element names never are.
fn matches_type_name(item: &Item<'_>, name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_uppercase())
        && item.model_type().is_some_and(|type_name| model::is_subtype(type_name, name))
}

/// Whether `item` is of the specified type. `ofType` (`lenient`) also accepts FHIR primitives
/// for the System type they convert to (`ofType(String)` keeps `code` values), as the FHIR
/// mapping of FHIRPath types describes; `is` and `as` do not.
pub(crate) fn is_of_type(item: &Item<'_>, type_specifier: &TypeSpecifier, lenient: bool) -> bool {
    let namespace = type_specifier.namespace.as_deref();
    let name = type_specifier.name.as_str();
    let system_match = |system_name: &str| namespace != Some("FHIR") && system_name == name;
    match item.model_type() {
        Some(type_name) => match type_name.strip_prefix("System.") {
            Some(system_name) => system_match(system_name),
            None => {
                (namespace != Some("System") && model::is_subtype(type_name, name))
                    || (lenient && model::system_type_of(type_name).is_some_and(&system_match))
            }
        },
        None => item.system_value().is_some_and(|value| system_match(value.type_name())),
    }
}

fn type_test<'a>(
    input: Collection<'a>,
    operation: TypeOperation,
    type_specifier: &TypeSpecifier,
) -> Result<Collection<'a>, EvalError> {
    match operation {
        TypeOperation::OfType => Ok(input.into_iter().filter(|item| is_of_type(item, type_specifier, true)).collect()),
        TypeOperation::Is | TypeOperation::As => {
            let name = if operation == TypeOperation::Is { "is" } else { "as" };
            let Some(item) = singleton(&input, name)? else {
                return Ok(Vec::new());
            };
            let matches = is_of_type(item, type_specifier, false);
            Ok(if operation == TypeOperation::Is {
                vec![Item::Value(SystemValue::Boolean(matches))]
            } else if matches {
                vec![item.clone()]
            } else {
                Vec::new()
            })
        }
    }
}

/// The only item, `None` for an empty collection, an error for more than one.
pub(crate) fn singleton<'i, 'a>(items: &'i [Item<'a>], operation: &str) -> Result<Option<&'i Item<'a>>, EvalError> {
    match items {
        [] => Ok(None),
        [item] => Ok(Some(item)),
        _ => Err(EvalError::not_singleton(operation, items.len())),
    }
}

/// The only item as a system value; an item without one (an object) is a type error.
pub(crate) fn singleton_value<'a>(items: &[Item<'a>], operation: &str) -> Result<Option<SystemValue<'a>>, EvalError> {
    match singleton(items, operation)? {
        None => Ok(None),
        Some(item) => match item.system_value() {
            Some(value) => Ok(Some(value)),
            // A primitive with only an extension has no value to compute with.
            None if item.json().is_none() => Ok(None),
            None => Err(EvalError::Type(format!("{operation} needs a primitive value"))),
        },
    }
}

/// Singleton evaluation of collections as Boolean: empty is unknown, a single Boolean is
/// itself, any other single item is true.
pub(crate) fn to_boolean(items: &[Item<'_>], operation: &str) -> Result<Option<bool>, EvalError> {
    Ok(singleton(items, operation)?.map(|item| match item.system_value() {
        Some(SystemValue::Boolean(value)) => value,
        _ => true,
    }))
}

/// `+ - * / div mod` on two values; `Ok(None)` where FHIRPath yields empty (division by zero,
/// overflow).
fn arithmetic<'a>(
    operator: BinaryOperator,
    a: SystemValue<'a>,
    b: SystemValue<'a>,
) -> Result<Option<SystemValue<'a>>, EvalError> {
    use BinaryOperator::*;
    use SystemValue::{Decimal as Dec, Integer, Quantity, String as Str};
    let unsupported = |a: &SystemValue, b: &SystemValue| {
        let message = format!("cannot apply {operator:?} to {} and {}", a.type_name(), b.type_name());
        if matches!(a, SystemValue::Date(_) | SystemValue::DateTime(_) | SystemValue::Time(_)) {
            EvalError::Unsupported(format!("{message}: date/time arithmetic is not supported"))
        } else {
            EvalError::Type(message)
        }
    };
    Ok(match (operator, &a, &b) {
        (Add, Str(x), Str(y)) => Some(Str(Cow::Owned(format!("{x}{y}")))),
        (Add, Integer(x), Integer(y)) => x.checked_add(*y).map(Integer),
        (Subtract, Integer(x), Integer(y)) => x.checked_sub(*y).map(Integer),
        (Multiply, Integer(x), Integer(y)) => x.checked_mul(*y).map(Integer),
        (Div, Integer(x), Integer(y)) => x.checked_div(*y).map(Integer),
        (Mod, Integer(x), Integer(y)) => x.checked_rem(*y).map(Integer),
        (Add | Subtract, Quantity(x), Quantity(y)) if x.same_unit(y) => {
            let value =
                if operator == Add { x.value().checked_add(y.value()) } else { x.value().checked_sub(y.value()) };
            value.map(|value| Quantity(x.with_value(value)))
        }
        _ => {
            let (Some(x), Some(y)) = (decimal_of(&a), decimal_of(&b)) else {
                return Err(unsupported(&a, &b));
            };
            match operator {
                Add => x.checked_add(y).map(Dec),
                Subtract => x.checked_sub(y).map(Dec),
                Multiply => x.checked_mul(y).map(Dec),
                Divide => x.checked_div(y).map(Dec),
                Div if !y.is_zero() => x.checked_div(y).map(|q| Dec(q.truncated())),
                Mod if !y.is_zero() => x.checked_rem(y).map(Dec),
                _ => None,
            }
        }
    })
}

fn decimal_of(value: &SystemValue<'_>) -> Option<Decimal> {
    match value {
        SystemValue::Integer(integer) => Some(Decimal::from_integer(*integer)),
        SystemValue::Decimal(decimal) => Some(*decimal),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
