//! Query parameters → a backend-neutral [`SearchRequest`].

mod filter;
mod limits;
mod prefix;
mod results;
mod values;

pub use results::TotalMode;

use crate::cursor::decode_cursor;
use crate::registry::SearchParameters;
use filter::{FilterParser, Filtered};
use limits::ValueBudget;
use jiff::Timestamp;
use termin_fhir::ResourceType;
use termin_store::{Condition, Filter, SearchRequest, SystemMatch, TokenMatch};

/// How unknown or unsupported parameters are treated (`Prefer: handling=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Handling {
    /// Ignore them and say so in the result.
    #[default]
    Lenient,
    /// Reject the search.
    Strict,
}

/// What a search is parsed against.
#[derive(Debug, Clone)]
pub struct SearchOptions<'a> {
    /// This server's public FHIR base: references under it are local.
    pub server_base: Option<&'a str>,
    pub now: Timestamp,
    pub default_count: usize,
    pub max_count: usize,
    pub handling: Handling,
}

/// Why a search cannot run: the parameter at fault and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchError {
    pub param: String,
    pub message: String,
    pub kind: SearchErrorKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchErrorKind {
    /// The parameter is malformed.
    Invalid,
    /// The parameter is not supported.
    Unsupported,
    /// The search exceeds one of the limits on its complexity.
    TooCostly,
}

/// No FHIR value holds a control character below U+0020 other than tab, carriage return and
/// line feed, so a search for one cannot match; PostgreSQL would also refuse a U+0000 in a
/// statement's parameters.
fn refuse_control_characters<'p>(pairs: impl IntoIterator<Item = (&'p str, &'p str)>) -> Result<(), SearchError> {
    for (name, value) in pairs {
        let forbidden = |text: &str| text.chars().find(|c| (*c as u32) < 0x20 && !matches!(c, '\t' | '\r' | '\n'));
        if let Some(c) = forbidden(name).or_else(|| forbidden(value)) {
            let shown = name.escape_default().to_string();
            return Err(SearchError::invalid(
                &shown,
                format!("{shown} contains the control character U+{:04X}, which no FHIR value holds", c as u32),
            ));
        }
    }
    Ok(())
}

impl SearchError {
    pub(crate) fn invalid(param: &str, message: impl Into<String>) -> Self {
        Self::new(param, message.into(), SearchErrorKind::Invalid)
    }

    fn unsupported(param: &str, message: String) -> Self {
        Self::new(param, message, SearchErrorKind::Unsupported)
    }

    pub(crate) fn too_costly(param: &str, message: String) -> Self {
        Self::new(param, message, SearchErrorKind::TooCostly)
    }

    fn new(param: &str, message: String, kind: SearchErrorKind) -> Self {
        SearchError {
            param: param.to_owned(),
            message,
            kind,
        }
    }

    /// A limit exceeded inside a chain or `_has` is the whole parameter's.
    fn of_parameter(self, name: &str) -> Self {
        match self.kind {
            SearchErrorKind::TooCostly => SearchError {
                param: name.to_owned(),
                ..self
            },
            _ => self,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoteSeverity {
    /// A parameter was ignored.
    Warning,
    /// A parameter was read leniently.
    Information,
}

/// Something the client should know about how its search was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchNote {
    pub param: String,
    pub message: String,
    pub severity: NoteSeverity,
}

impl SearchNote {
    pub(crate) fn information(param: &str, message: impl Into<String>) -> Self {
        SearchNote {
            param: param.to_owned(),
            message: message.into(),
            severity: NoteSeverity::Information,
        }
    }
}

/// A parsed search: the request for the store plus what shapes the response.
#[derive(Debug, Clone)]
pub struct ParsedSearch {
    pub request: SearchRequest,
    pub total: TotalMode,
    /// `_summary=count`: only the total.
    pub summary_count: bool,
    /// `_summary=true|text|data`: which part of each resource to return.
    pub summary: Option<SummaryMode>,
    /// `_elements`: the top-level elements to return, the asked ones and the mandatory ones.
    pub elements: Option<Vec<String>>,
    pub notes: Vec<SearchNote>,
}

/// The subsets `_summary` asks for (`count` and `false` are not a subset of a resource).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SummaryMode {
    /// The elements marked isSummary, and the mandatory ones.
    True,
    /// `text`, `id`, `meta` and the mandatory top-level elements.
    Text,
    /// Everything but `text`.
    Data,
}

impl SummaryMode {
    /// Reads a `_summary` value other than `count`: `None` for `false` (the whole resource).
    pub fn parse(value: &str) -> Result<Option<SummaryMode>, SearchError> {
        match value {
            "true" => Ok(Some(SummaryMode::True)),
            "text" => Ok(Some(SummaryMode::Text)),
            "data" => Ok(Some(SummaryMode::Data)),
            "false" => Ok(None),
            other => Err(SearchError::invalid(
                "_summary",
                format!("_summary must be true, text, data, count or false, got {other:?}"),
            )),
        }
    }
}

/// Parameters the format layer handles.
const FORMAT_PARAMS: [&str; 2] = ["_format", "_pretty"];
/// The paging cursor Termin puts into `next`/`previous` links.
pub const CURSOR_PARAM: &str = "_cursor";

impl SearchParameters {
    /// Parses a type-level search (query string or `_search` form pairs, decoded, in order).
    pub fn parse_search(
        &self,
        resource_type: ResourceType,
        pairs: &[(String, String)],
        options: &SearchOptions<'_>,
    ) -> Result<ParsedSearch, SearchError> {
        refuse_control_characters(pairs.iter().map(|(name, value)| (name.as_str(), value.as_str())))?;
        limits::check_shape(
            pairs
                .iter()
                .filter(|(name, _)| !FORMAT_PARAMS.contains(&name.as_str()) && name != CURSOR_PARAM)
                .map(|(name, value)| (name.as_str(), value.as_str())),
        )?;
        let parser = FilterParser {
            registry: self,
            server_base: options.server_base,
            now: options.now,
            budget: ValueBudget::new(),
        };
        let mut notes = Vec::new();
        let mut conditions = Vec::new();
        let mut sort = None;
        let mut count = options.default_count;
        let mut cursor = None;
        let mut total = TotalMode::WhenKnown;
        let mut summary_count = false;
        let mut summary = None;
        let mut elements = None;
        let mut includes = Vec::new();
        let mut revincludes = Vec::new();
        let mut filters_active = false;
        let ignore = |param: &str, message: String, notes: &mut Vec<SearchNote>| match options.handling {
            Handling::Strict => Err(SearchError::unsupported(param, message)),
            Handling::Lenient => {
                notes.push(SearchNote {
                    param: param.to_owned(),
                    message: format!("{message}; the parameter was ignored"),
                    severity: NoteSeverity::Warning,
                });
                Ok(())
            }
        };
        for (name, value) in pairs {
            let name = name.as_str();
            let value = value.as_str();
            match name {
                _ if FORMAT_PARAMS.contains(&name) => {}
                CURSOR_PARAM => cursor = Some(value),
                "_count" => {
                    count = value
                        .parse::<usize>()
                        .map_err(|_| SearchError::invalid("_count", format!("_count must be a non-negative integer, got {value:?}")))?
                        .min(options.max_count);
                }
                "_sort" => sort = Some(results::parse_sort(self, resource_type, value)?),
                "_total" => total = results::parse_total(value)?,
                "_summary" => match value {
                    "count" => summary_count = true,
                    other => summary = SummaryMode::parse(other)?,
                },
                "_elements" => {
                    let mut names = results::parse_elements(value)?;
                    for mandatory in self.mandatory_elements(resource_type) {
                        if !names.contains(mandatory) {
                            names.push(mandatory.clone());
                        }
                    }
                    elements = Some(names);
                }
                "_include" | "_include:iterate" | "_include:recurse" => {
                    includes.push(results::parse_include(self, resource_type, name, value, false, name != "_include")?);
                }
                "_revinclude" | "_revinclude:iterate" | "_revinclude:recurse" => {
                    revincludes.push(results::parse_include(self, resource_type, name, value, true, name != "_revinclude")?);
                }
                _ => {
                    if name.split([':', '.']).next() == Some("active") {
                        filters_active = true;
                    }
                    match parser.parse(resource_type, name, value, &mut notes).map_err(|e| e.of_parameter(name))? {
                        Filtered::Condition(condition) => conditions.push(condition),
                        Filtered::Unsupported(message) => ignore(name, message, &mut notes)?,
                    }
                }
            }
        }
        if summary.is_some() && elements.is_some() {
            return Err(SearchError::invalid("_summary", "_summary and _elements each choose the elements returned: send one of them"));
        }
        if active_by_default(resource_type) && !filters_active && self.param(resource_type, "active").is_some() {
            conditions.push(inactive_excluded());
        }
        let sort = sort.unwrap_or_else(|| results::default_sort(&conditions));
        let page = match cursor {
            None => None,
            Some(text) => Some(decode_cursor(text, &sort).ok_or_else(|| {
                SearchError::invalid(CURSOR_PARAM, "the _cursor does not belong to this search; follow the Bundle's links")
            })?),
        };
        notes.dedup();
        Ok(ParsedSearch {
            request: SearchRequest {
                resource_type,
                filter: Filter {
                    conditions,
                    now: options.now,
                    server_base: options.server_base.map(str::to_owned),
                },
                sort,
                count: if summary_count { 0 } else { count },
                page,
                // `_count=0` asks for no page, so only counting can give the total.
                total: matches!(total, TotalMode::Estimate | TotalMode::Accurate) || summary_count || count == 0,
                includes,
                revincludes,
            },
            total: if summary_count { TotalMode::Accurate } else { total },
            summary_count,
            summary,
            elements,
            notes,
        })
    }

    /// Parses the criteria of a conditional write (`If-None-Exist`, `PUT Type?criteria`):
    /// filters only, every parameter must be understood.
    pub fn parse_criteria(
        &self,
        resource_type: ResourceType,
        pairs: &[(String, String)],
        server_base: Option<&str>,
        now: Timestamp,
    ) -> Result<Vec<Condition>, SearchError> {
        let pairs: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .filter(|(name, _)| !FORMAT_PARAMS.contains(name))
            .collect();
        refuse_control_characters(pairs.iter().copied())?;
        limits::check_shape(pairs.iter().copied())?;
        let parser = FilterParser {
            registry: self,
            server_base,
            now,
            budget: ValueBudget::new(),
        };
        let mut notes = Vec::new();
        let mut conditions = Vec::new();
        for (name, value) in pairs {
            match parser.parse(resource_type, name, value, &mut notes).map_err(|e| e.of_parameter(name))? {
                Filtered::Condition(condition) => conditions.push(condition),
                Filtered::Unsupported(message) => return Err(SearchError::unsupported(name, message)),
            }
        }
        if conditions.is_empty() {
            return Err(SearchError::invalid("", "search criteria are needed, e.g. identifier=system|value"));
        }
        Ok(conditions)
    }
}

/// The AT Scheduling IG: searches for these types without an `active` filter return only
/// resources whose `active` is true or absent.
fn active_by_default(resource_type: ResourceType) -> bool {
    matches!(resource_type, ResourceType::HealthcareService | ResourceType::Schedule)
}

fn inactive_excluded() -> Condition {
    Condition::Not(Box::new(Condition::TokenAny {
        param: "active".into(),
        alternatives: vec![TokenMatch {
            system: SystemMatch::Any,
            code: Some("false".into()),
        }],
    }))
}
