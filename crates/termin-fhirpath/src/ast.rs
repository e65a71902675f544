//! The compiled form of an expression.

use regex::Regex;

use crate::value::SystemValue;

#[derive(Debug, Clone)]
pub(crate) enum Expr {
    /// `{}`
    Empty,
    Literal(SystemValue<'static>),
    This,
    Index,
    /// `%name`
    Variable(String),
    /// An identifier at the start of a path: a type name matching the focus, or a child.
    Identifier(String),
    /// `target.name`
    Member(Box<Expr>, String),
    Call(Box<Call>),
    /// `is`/`as` operators and the `is()`, `as()`, `ofType()` functions.
    TypeTest {
        target: Option<Box<Expr>>,
        operation: TypeOperation,
        type_specifier: TypeSpecifier,
    },
    /// `target[index]`
    Indexer(Box<Expr>, Box<Expr>),
    Negate(Box<Expr>),
    Binary(BinaryOperator, Box<Expr>, Box<Expr>),
}

#[derive(Debug, Clone)]
pub(crate) struct Call {
    /// `None` when the function is invoked on the focus (`exists()` rather than `x.exists()`).
    pub target: Option<Expr>,
    pub function: Function,
    pub arguments: Vec<Expr>,
    /// The pattern of `matches`/`replaceMatches`, compiled once when it is a literal.
    pub literal_regex: Option<Regex>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TypeOperation {
    Is,
    As,
    OfType,
}

/// A possibly namespace-qualified type name (`Patient`, `FHIR.Patient`, `System.String`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TypeSpecifier {
    pub namespace: Option<String>,
    pub name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BinaryOperator {
    Multiply,
    Divide,
    Div,
    Mod,
    Add,
    Subtract,
    Concatenate,
    Union,
    Less,
    Greater,
    LessOrEqual,
    GreaterOrEqual,
    Equal,
    NotEqual,
    Equivalent,
    NotEquivalent,
    In,
    Contains,
    And,
    Or,
    Xor,
    Implies,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Function {
    Empty,
    Exists,
    All,
    AllTrue,
    AnyTrue,
    AllFalse,
    AnyFalse,
    Count,
    Distinct,
    IsDistinct,
    Where,
    Select,
    Repeat,
    First,
    Last,
    Tail,
    Skip,
    Take,
    Single,
    Union,
    Combine,
    Intersect,
    Exclude,
    Iif,
    Not,
    HasValue,
    Children,
    Descendants,
    Trace,
    Extension,
    Resolve,
    MemberOf,
    HtmlChecks,
    Today,
    Now,
    ToString,
    ToInteger,
    ToDecimal,
    ToBoolean,
    ToDate,
    ToDateTime,
    ToTime,
    ConvertsToString,
    ConvertsToInteger,
    ConvertsToDecimal,
    ConvertsToBoolean,
    ConvertsToDate,
    ConvertsToDateTime,
    ConvertsToTime,
    StartsWith,
    EndsWith,
    Contains,
    Matches,
    ReplaceMatches,
    Length,
    Substring,
    Upper,
    Lower,
    IndexOf,
    Replace,
    Split,
    Join,
    Trim,
}

/// Every function name with its minimum and maximum argument count.
const FUNCTIONS: [(&str, Function, usize, usize); 63] = {
    use Function::*;
    [
        ("empty", Empty, 0, 0),
        ("exists", Exists, 0, 1),
        ("all", All, 1, 1),
        ("allTrue", AllTrue, 0, 0),
        ("anyTrue", AnyTrue, 0, 0),
        ("allFalse", AllFalse, 0, 0),
        ("anyFalse", AnyFalse, 0, 0),
        ("count", Count, 0, 0),
        ("distinct", Distinct, 0, 0),
        ("isDistinct", IsDistinct, 0, 0),
        ("where", Where, 1, 1),
        ("select", Select, 1, 1),
        ("repeat", Repeat, 1, 1),
        ("first", First, 0, 0),
        ("last", Last, 0, 0),
        ("tail", Tail, 0, 0),
        ("skip", Skip, 1, 1),
        ("take", Take, 1, 1),
        ("single", Single, 0, 0),
        ("union", Union, 1, 1),
        ("combine", Combine, 1, 1),
        ("intersect", Intersect, 1, 1),
        ("exclude", Exclude, 1, 1),
        ("iif", Iif, 2, 3),
        ("not", Not, 0, 0),
        ("hasValue", HasValue, 0, 0),
        ("children", Children, 0, 0),
        ("descendants", Descendants, 0, 0),
        ("trace", Trace, 1, 2),
        ("extension", Extension, 1, 1),
        ("resolve", Resolve, 0, 0),
        ("memberOf", MemberOf, 1, 1),
        ("htmlChecks", HtmlChecks, 0, 0),
        ("today", Today, 0, 0),
        ("now", Now, 0, 0),
        ("toString", ToString, 0, 0),
        ("toInteger", ToInteger, 0, 0),
        ("toDecimal", ToDecimal, 0, 0),
        ("toBoolean", ToBoolean, 0, 0),
        ("toDate", ToDate, 0, 0),
        ("toDateTime", ToDateTime, 0, 0),
        ("toTime", ToTime, 0, 0),
        ("convertsToString", ConvertsToString, 0, 0),
        ("convertsToInteger", ConvertsToInteger, 0, 0),
        ("convertsToDecimal", ConvertsToDecimal, 0, 0),
        ("convertsToBoolean", ConvertsToBoolean, 0, 0),
        ("convertsToDate", ConvertsToDate, 0, 0),
        ("convertsToDateTime", ConvertsToDateTime, 0, 0),
        ("convertsToTime", ConvertsToTime, 0, 0),
        ("startsWith", StartsWith, 1, 1),
        ("endsWith", EndsWith, 1, 1),
        ("contains", Contains, 1, 1),
        ("matches", Matches, 1, 1),
        ("replaceMatches", ReplaceMatches, 2, 2),
        ("length", Length, 0, 0),
        ("substring", Substring, 1, 2),
        ("upper", Upper, 0, 0),
        ("lower", Lower, 0, 0),
        ("indexOf", IndexOf, 1, 1),
        ("replace", Replace, 2, 2),
        ("split", Split, 1, 1),
        ("join", Join, 0, 1),
        ("trim", Trim, 0, 0),
    ]
};

impl Function {
    /// The function a name denotes, with its minimum and maximum argument count.
    pub(crate) fn lookup(name: &str) -> Option<(Function, usize, usize)> {
        FUNCTIONS.iter().find(|(candidate, ..)| *candidate == name).map(|&(_, function, min, max)| (function, min, max))
    }

    pub(crate) fn name(self) -> &'static str {
        FUNCTIONS
            .iter()
            .find(|(_, candidate, ..)| *candidate == self)
            .map(|(name, ..)| *name)
            .expect("every function is in FUNCTIONS")
    }
}
