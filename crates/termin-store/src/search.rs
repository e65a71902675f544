//! The search part of the storage port: index rows a backend stores with each version, and the
//! backend-neutral search plan it evaluates. `termin-search` builds both; backends only
//! translate them (to SQL or anything else) and never interpret FHIR search syntax.

use crate::ResourceVersion;
use jiff::Timestamp;
use termin_fhir::ResourceType;
use termin_fhir::geo::{Near, Point};

/// A token index row: `system|code` of an element a search parameter points at, with the
/// text `:text` searches and the identifier type `:of-type` searches.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TokenIndex {
    pub param: String,
    pub system: Option<String>,
    /// `None` for a row that only carries text (a CodeableConcept with `text` but no coding).
    pub code: Option<String>,
    /// Normalized display text (`CodeableConcept.text`, `Coding.display`, `Identifier.type.text`).
    pub text: Option<String>,
    /// One coding of `Identifier.type`, for `:of-type`.
    pub type_system: Option<String>,
    pub type_code: Option<String>,
    /// The row only holds at and after this instant (e.g. a Slot that becomes free when its
    /// hold expires); searches evaluate it at [`Filter::now`].
    pub valid_from: Option<Timestamp>,
    /// The row only holds before this instant.
    pub valid_until: Option<Timestamp>,
}

impl TokenIndex {
    /// A plain `system|code` row, always valid.
    pub fn code(param: impl Into<String>, system: Option<String>, code: impl Into<String>) -> Self {
        TokenIndex {
            param: param.into(),
            system,
            code: Some(code.into()),
            text: None,
            type_system: None,
            type_code: None,
            valid_from: None,
            valid_until: None,
        }
    }
}

/// A string index row: the value as written (for `:exact`) and normalized (lower case,
/// accents removed) for the default starts-with and `:contains` searches.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StringIndex {
    pub param: String,
    pub value: String,
    pub normalized: String,
}

/// A date index row: the instants the value covers, `[low, high)`; `None` is unbounded.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DateIndex {
    pub param: String,
    pub low: Option<Timestamp>,
    pub high: Option<Timestamp>,
}

/// A number index row: the interval its written precision stands for, `[low, high)`.
#[derive(Debug, Clone, PartialEq)]
pub struct NumberIndex {
    pub param: String,
    pub low: f64,
    pub high: f64,
}

/// A quantity index row: value interval plus unit (`system|code`, or the human `unit`).
#[derive(Debug, Clone, PartialEq)]
pub struct QuantityIndex {
    pub param: String,
    pub low: f64,
    pub high: f64,
    pub system: Option<String>,
    pub code: Option<String>,
    pub unit: Option<String>,
}

/// A reference index row. A literal reference `[base/]Type/id[/_history/v]` fills
/// `target_type`/`target_id` (and `base` when absolute); other URLs and canonicals fill `url`;
/// `Reference.identifier` fills the identifier columns.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct ReferenceIndex {
    pub param: String,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    /// The `_history` version of a literal reference, or the `|version` of a canonical.
    pub version: Option<String>,
    /// The service base of an absolute literal reference (`None`: relative, so local).
    pub base: Option<String>,
    pub url: Option<String>,
    pub identifier_system: Option<String>,
    pub identifier_value: Option<String>,
}

/// A uri index row.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UriIndex {
    pub param: String,
    pub uri: String,
}

/// A position index row (R5's special parameter `near` on `Location.position`): a WGS84 point
/// in degrees.
#[derive(Debug, Clone, PartialEq)]
pub struct PositionIndex {
    pub param: String,
    pub position: Point,
}

/// Everything a backend needs to index a resource version for search.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IndexEntries {
    pub tokens: Vec<TokenIndex>,
    pub strings: Vec<StringIndex>,
    pub dates: Vec<DateIndex>,
    pub numbers: Vec<NumberIndex>,
    pub quantities: Vec<QuantityIndex>,
    pub references: Vec<ReferenceIndex>,
    pub uris: Vec<UriIndex>,
    pub positions: Vec<PositionIndex>,
}

/// The index table a parameter's rows live in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IndexKind {
    Token,
    String,
    Date,
    Number,
    Quantity,
    Reference,
    Uri,
    Position,
}

/// A condition on the current (non-deleted) resources of one type.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// Logical id is one of these.
    IdIn(Vec<String>),
    /// At least one token index row of `param` matches one of the alternatives.
    TokenAny {
        param: String,
        alternatives: Vec<TokenMatch>,
    },
    /// A token row whose normalized text starts with one of the (normalized) alternatives.
    TokenText { param: String, alternatives: Vec<String> },
    /// An identifier row of the given type (`:of-type`).
    TokenOfType {
        param: String,
        alternatives: Vec<IdentifierOfType>,
    },
    StringAny {
        param: String,
        alternatives: Vec<StringMatch>,
    },
    /// A date (or number, or quantity) row whose range satisfies one of the alternatives.
    RangeAny {
        param: String,
        kind: IndexKind,
        alternatives: Vec<RangeTest>,
    },
    /// A quantity row in one of the units whose range satisfies the test.
    QuantityAny {
        param: String,
        alternatives: Vec<QuantityMatch>,
    },
    ReferenceAny {
        param: String,
        alternatives: Vec<ReferenceMatch>,
    },
    UriAny {
        param: String,
        alternatives: Vec<UriMatch>,
    },
    /// A position row within the great-circle distance of the area's centre (`near`).
    Near { param: String, area: Near },
    /// `:missing`: whether `param` has no index row at all.
    Missing {
        param: String,
        kind: IndexKind,
        missing: bool,
    },
    /// Holds when the inner condition does not.
    Not(Box<Condition>),
    /// Holds when any of the conditions does.
    Any(Vec<Condition>),
    /// A chained parameter: `param` refers (locally) to a current `target_type` resource that
    /// satisfies `condition`.
    Chain {
        param: String,
        target_type: ResourceType,
        condition: Box<Condition>,
    },
    /// `_has`: a current `source_type` resource whose reference `param` points (locally) at
    /// this one satisfies `condition`.
    ReferencedBy {
        source_type: ResourceType,
        param: String,
        condition: Box<Condition>,
    },
}

/// A token alternative: `system|code`, `|code` (no system), `system|` or `code`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenMatch {
    pub system: SystemMatch,
    pub code: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SystemMatch {
    Any,
    None,
    Exactly(String),
}

/// `:of-type=type-system|type-code|value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentifierOfType {
    pub type_system: String,
    pub type_code: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StringMatch {
    /// Normalized value starts with this (normalized) text.
    StartsWith(String),
    /// Normalized value contains this (normalized) text.
    Contains(String),
    /// The value exactly as written.
    Exact(String),
}

/// Which end of an index row's range a bound constrains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeEnd {
    Low,
    High,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
}

/// A point on a range's axis: an instant for dates, a number otherwise; `None` is unbounded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RangePoint {
    Instant(Option<Timestamp>),
    Number(f64),
}

/// A test on one index row's `[low, high)`; search prefixes are compiled into these.
#[derive(Debug, Clone, PartialEq)]
pub enum RangeTest {
    /// `end comparison point`
    Bound {
        end: RangeEnd,
        comparison: Comparison,
        point: RangePoint,
    },
    All(Vec<RangeTest>),
    AnyOf(Vec<RangeTest>),
    Not(Box<RangeTest>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct QuantityMatch {
    pub test: RangeTest,
    /// `None` accepts any unit.
    pub system: Option<String>,
    /// Matched against the row's code, or its unit when it has no code.
    pub code: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReferenceMatch {
    /// A resource on this server (`id`, `Type/id`, or an absolute URL under this server's base).
    Local {
        /// `None` accepts any of the parameter's target types.
        target_type: Option<String>,
        id: String,
        version: Option<String>,
    },
    /// An absolute literal reference to another server, or a canonical/other URL.
    Url { url: String, version: Option<String> },
    /// `:identifier`: `Reference.identifier` matches, or the referenced local resource has a
    /// matching `identifier`.
    Identifier { system: SystemMatch, value: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UriMatch {
    Exact(String),
    /// The stored uri is this one or below it (`:below`).
    Below(String),
    /// The stored uri is this one or above it (`:above`): a prefix of the given value.
    Above(String),
}

/// What every condition of a search is evaluated against.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    pub conditions: Vec<Condition>,
    /// The instant validity windows of index rows are evaluated at.
    pub now: Timestamp,
    /// This server's public FHIR base: absolute references under it count as local.
    pub server_base: Option<String>,
}

/// A sort key: the parameter's lowest value ascending, its highest descending; resources
/// without a value come last either way.
#[derive(Debug, Clone, PartialEq)]
pub struct SortKey {
    pub param: SortParam,
    pub descending: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SortParam {
    Id,
    Indexed { param: String, kind: IndexKind },
    /// The great-circle distance of the parameter's nearest position row from `from`
    /// (ascending: nearest first).
    Distance { param: String, from: Point },
}

/// One value of a sort key as the backend orders it. Missing values are represented by the
/// backend's "last" sentinel, so every key of a row has a value.
#[derive(Debug, Clone, PartialEq)]
pub enum SortValue {
    Integer(i64),
    Real(f64),
    Text(String),
}

/// A keyset position: the sort values and id of a row. Pages continue strictly after (or,
/// going backwards, strictly before) it, so concurrent writes neither skip nor repeat rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Keyset {
    pub values: Vec<SortValue>,
    pub id: String,
    pub backwards: bool,
}

/// Adds resources referenced by the results (`_include`) or referring to them (`_revinclude`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Include {
    /// The type that holds the reference parameter.
    pub source_type: ResourceType,
    /// `None`: every reference parameter of `source_type` (`_include=Type:*`).
    pub param: Option<String>,
    pub target_type: Option<ResourceType>,
    /// Also apply to resources added by includes, until nothing new comes.
    pub iterate: bool,
}

/// A page request over the current resources of one type.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchRequest {
    pub resource_type: ResourceType,
    pub filter: Filter,
    /// The order of results; ties (and an empty list) are broken by id.
    pub sort: Vec<SortKey>,
    /// Page size; 0 returns no matches (e.g. `_summary=count`).
    pub count: usize,
    pub page: Option<Keyset>,
    /// Whether to count all matches (a first page that holds every match gives its total
    /// either way).
    pub total: bool,
    pub includes: Vec<Include>,
    pub revincludes: Vec<Include>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SearchPage {
    pub matches: Vec<ResourceVersion>,
    /// Resources added by `_include`/`_revinclude` that are not matches themselves.
    pub included: Vec<ResourceVersion>,
    /// The number of matches: counted when asked, or known from a first page that holds them all.
    pub total: Option<u64>,
    /// Where the next page starts, when more matches follow.
    pub next: Option<Keyset>,
    /// Where the previous page ends, when this page does not start at the beginning.
    pub previous: Option<Keyset>,
}
