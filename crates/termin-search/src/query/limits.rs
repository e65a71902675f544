//! Limits on the complexity of one search (and of the criteria of a conditional write).
//!
//! Every parameter, value, chain link and `_has` becomes SQL: without bounds, a request of a few
//! kilobytes builds statements that run for minutes on PostgreSQL or exceed SQLite's expression
//! tree limit. The limits lie far above what a client needs (the IG's example searches use at
//! most four parameters with one value each) and low enough that the SQL of a search at every
//! limit at once stays within SQLite's limits. A search beyond one answers `400` naming the
//! limit and the parameter.

use super::SearchError;
use super::values::split_unescaped;
use std::cell::Cell;
use termin_store::Condition;

/// Parameters of one search, result parameters included (the paging cursor and the format
/// parameters do not count).
pub const MAX_PARAMETERS: usize = 30;
/// Comma-separated values of one parameter.
pub const MAX_VALUES_PER_PARAMETER: usize = 100;
/// Values of all parameters together; a chain through a reference that may point to several
/// types counts its values once per type.
pub const MAX_VALUES: usize = 200;
/// References one chained parameter follows (`schedule.actor.name` follows two).
pub const MAX_CHAIN_DEPTH: usize = 4;
/// `_has` nested in one parameter.
pub const MAX_HAS_DEPTH: usize = 3;
/// `_include` and `_revinclude` parameters together.
pub const MAX_INCLUDES: usize = 10;
/// Keys of `_sort`.
pub const MAX_SORT_KEYS: usize = 5;

/// Checks what can be checked before any parameter is parsed: the number of parameters,
/// values per parameter, chain and `_has` depth, includes and sort keys.
pub(crate) fn check_shape<'p>(pairs: impl IntoIterator<Item = (&'p str, &'p str)>) -> Result<(), SearchError> {
    let mut parameters = 0;
    let mut includes = 0;
    for (name, value) in pairs {
        parameters += 1;
        if parameters > MAX_PARAMETERS {
            return Err(SearchError::too_costly(
                name,
                format!("a search may have at most {MAX_PARAMETERS} parameters; {name} is one too many"),
            ));
        }
        let values = split_unescaped(value, ',').len();
        if values > MAX_VALUES_PER_PARAMETER {
            return Err(SearchError::too_costly(
                name,
                format!("{name} has {values} values; a parameter may have at most {MAX_VALUES_PER_PARAMETER}"),
            ));
        }
        if name == "_sort" && values > MAX_SORT_KEYS {
            return Err(SearchError::too_costly(
                name,
                format!("_sort has {values} keys; at most {MAX_SORT_KEYS} are allowed"),
            ));
        }
        if name.starts_with("_include") || name.starts_with("_revinclude") {
            includes += 1;
            if includes > MAX_INCLUDES {
                return Err(SearchError::too_costly(
                    name,
                    format!("a search may have at most {MAX_INCLUDES} _include and _revinclude parameters"),
                ));
            }
            continue;
        }
        let chain = name.matches('.').count();
        if chain > MAX_CHAIN_DEPTH {
            return Err(SearchError::too_costly(
                name,
                format!("{name} chains {chain} references; at most {MAX_CHAIN_DEPTH} are allowed"),
            ));
        }
        let has = name.matches("_has:").count();
        if has > MAX_HAS_DEPTH {
            return Err(SearchError::too_costly(
                name,
                format!("{name} nests _has {has} deep; at most {MAX_HAS_DEPTH} are allowed"),
            ));
        }
    }
    Ok(())
}

/// What is left of [`MAX_VALUES`] while a search's conditions are built: chains multiply
/// values, so they are counted on the conditions, not in the query text.
pub(crate) struct ValueBudget(Cell<usize>);

impl ValueBudget {
    pub fn new() -> Self {
        ValueBudget(Cell::new(MAX_VALUES))
    }

    /// Takes the values of a condition on one parameter (`name`) from the budget.
    pub fn spend(&self, name: &str, condition: &Condition) -> Result<(), SearchError> {
        let left = self.0.get().checked_sub(values(condition)).ok_or_else(|| {
            SearchError::too_costly(
                name,
                format!(
                    "the search has more than {MAX_VALUES} values in all (a chain through a reference to \
                     several types counts its values once per type)"
                ),
            )
        })?;
        self.0.set(left);
        Ok(())
    }
}

/// The alternatives a condition tests.
fn values(condition: &Condition) -> usize {
    match condition {
        Condition::IdIn(ids) => ids.len(),
        Condition::TokenAny { alternatives, .. } => alternatives.len(),
        Condition::TokenText { alternatives, .. } => alternatives.len(),
        Condition::TokenOfType { alternatives, .. } => alternatives.len(),
        Condition::StringAny { alternatives, .. } => alternatives.len(),
        Condition::RangeAny { alternatives, .. } => alternatives.len(),
        Condition::QuantityAny { alternatives, .. } => alternatives.len(),
        Condition::ReferenceAny { alternatives, .. } => alternatives.len(),
        Condition::UriAny { alternatives, .. } => alternatives.len(),
        Condition::Missing { .. } | Condition::Near { .. } => 1,
        Condition::Not(inner) => values(inner),
        Condition::Any(conditions) => conditions.iter().map(values).sum(),
        Condition::Chain { condition, .. } | Condition::ReferencedBy { condition, .. } => values(condition),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::{SearchErrorKind, SearchOptions};
    use crate::registry;
    use jiff::Timestamp;
    use termin_fhir::ResourceType;

    fn search(resource_type: ResourceType, pairs: &[(String, String)]) -> Result<(), SearchError> {
        let options = SearchOptions {
            server_base: Some("http://termin.test/fhir"),
            now: Timestamp::UNIX_EPOCH,
            default_count: 20,
            max_count: 500,
            handling: Default::default(),
        };
        registry().parse_search(resource_type, pairs, &options).map(|_| ())
    }

    fn criteria(resource_type: ResourceType, pairs: &[(String, String)]) -> Result<(), SearchError> {
        registry().parse_criteria(resource_type, pairs, None, Timestamp::UNIX_EPOCH).map(|_| ())
    }

    fn pair(name: impl Into<String>, value: impl Into<String>) -> (String, String) {
        (name.into(), value.into())
    }

    /// `n` comma-separated values.
    fn values(n: usize) -> String {
        (0..n).map(|i| format!("v{i}")).collect::<Vec<_>>().join(",")
    }

    #[track_caller]
    fn assert_too_costly(result: Result<(), SearchError>, param: &str, says: &str) {
        let error = result.expect_err("beyond a limit");
        assert_eq!(error.kind, SearchErrorKind::TooCostly, "{error:?}");
        assert_eq!(error.param, param, "{error:?}");
        assert!(error.message.contains(says), "{error:?}");
    }

    #[test]
    fn parameters_up_to_the_limit_pass_and_one_more_is_refused() {
        let mut pairs: Vec<_> = (0..MAX_PARAMETERS).map(|i| pair("name", format!("a{i}"))).collect();
        pairs.push(pair("_format", "json"));
        pairs.push(pair("_cursor", "x"));
        // The cursor is checked after the limits, and this one is not valid.
        assert_eq!(search(ResourceType::Patient, &pairs).unwrap_err().param, "_cursor");
        pairs.truncate(MAX_PARAMETERS);
        search(ResourceType::Patient, &pairs).unwrap();
        criteria(ResourceType::Patient, &pairs).unwrap();
        pairs.push(pair("_count", "10"));
        assert_too_costly(search(ResourceType::Patient, &pairs), "_count", "at most 30 parameters");
        pairs.pop();
        pairs.push(pair("family", "x"));
        assert_too_costly(criteria(ResourceType::Patient, &pairs), "family", "at most 30 parameters");
    }

    #[test]
    fn values_per_parameter_and_in_all_are_limited() {
        let hundred = values(MAX_VALUES_PER_PARAMETER);
        search(ResourceType::Patient, &[pair("name", &hundred), pair("_id", &hundred)]).unwrap();
        assert_too_costly(
            search(ResourceType::Patient, &[pair("name", values(MAX_VALUES_PER_PARAMETER + 1))]),
            "name",
            "has 101 values",
        );
        // Escaped commas separate nothing.
        search(ResourceType::Patient, &[pair("name", vec![r"a\,b"; 100].join(","))]).unwrap();
        assert_too_costly(
            search(ResourceType::Patient, &[pair("name", &hundred), pair("_id", &hundred), pair("gender", "male")]),
            "gender",
            "more than 200 values in all",
        );
        assert_too_costly(
            criteria(ResourceType::Patient, &[pair("name", &hundred), pair("_id", &hundred), pair("gender", "male")]),
            "gender",
            "more than 200 values in all",
        );
    }

    #[test]
    fn a_chain_to_several_types_counts_its_values_per_type() {
        // `supporting-info` may refer to any of the served types.
        let types = ResourceType::ALL.len();
        let fanned_out = |n| vec![pair("supporting-info._id", values(n))];
        search(ResourceType::Appointment, &fanned_out(MAX_VALUES / types)).unwrap();
        assert_too_costly(
            search(ResourceType::Appointment, &fanned_out(MAX_VALUES / types + 1)),
            "supporting-info._id",
            "more than 200 values in all",
        );
        // Inside _has too, reported on the whole parameter.
        let nested = [pair("_has:Appointment:patient:supporting-info._id", values(MAX_VALUES / types + 1))];
        assert_too_costly(
            search(ResourceType::Patient, &nested),
            "_has:Appointment:patient:supporting-info._id",
            "more than 200 values in all",
        );
    }

    #[test]
    fn chain_and_has_depth_are_limited() {
        let chain = |links: usize| format!("{}name", "partof.".repeat(links));
        search(ResourceType::Organization, &[pair(chain(MAX_CHAIN_DEPTH), "x")]).unwrap();
        let too_long = chain(MAX_CHAIN_DEPTH + 1);
        assert_too_costly(
            search(ResourceType::Organization, &[pair(&too_long, "x")]),
            &too_long,
            "chains 5 references",
        );
        let has = |depth: usize| format!("{}name", "_has:Organization:partof:".repeat(depth));
        search(ResourceType::Organization, &[pair(has(MAX_HAS_DEPTH), "x")]).unwrap();
        let too_deep = has(MAX_HAS_DEPTH + 1);
        assert_too_costly(
            search(ResourceType::Organization, &[pair(&too_deep, "x")]),
            &too_deep,
            "nests _has 4 deep",
        );
        assert_too_costly(
            criteria(ResourceType::Organization, &[pair(&too_deep, "x")]),
            &too_deep,
            "nests _has 4 deep",
        );
    }

    #[test]
    fn includes_and_sort_keys_are_limited() {
        let mut pairs: Vec<_> = (0..MAX_INCLUDES / 2)
            .flat_map(|_| [pair("_include", "Slot:schedule"), pair("_revinclude:iterate", "Appointment:slot")])
            .collect();
        search(ResourceType::Slot, &pairs).unwrap();
        pairs.push(pair("_include:iterate", "Schedule:actor"));
        assert_too_costly(search(ResourceType::Slot, &pairs), "_include:iterate", "at most 10 _include");
        let sort = |keys: usize| vec![pair("_sort", vec!["start"; keys].join(","))];
        search(ResourceType::Slot, &sort(MAX_SORT_KEYS)).unwrap();
        assert_too_costly(search(ResourceType::Slot, &sort(MAX_SORT_KEYS + 1)), "_sort", "_sort has 6 keys");
    }
}
