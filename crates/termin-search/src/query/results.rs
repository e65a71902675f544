//! Result parameters: `_sort`, `_include`, `_revinclude`, `_total`, `_elements`.

use super::SearchError;
use super::values::split_unescaped;
use crate::definitions::ParamType;
use crate::registry::SearchParameters;
use termin_fhir::ResourceType;
use termin_store::{Condition, Include, IndexKind, SortKey, SortParam};

/// How `Bundle.total` is reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TotalMode {
    None,
    Estimate,
    Accurate,
    /// No `_total` asked (R5 leaves the choice to the server): the total only when it is known
    /// without counting, i.e. the first page holds every match. Counting all matches costs
    /// more than the page itself once they are many.
    WhenKnown,
}

pub(crate) fn parse_total(value: &str) -> Result<TotalMode, SearchError> {
    match value {
        "none" => Ok(TotalMode::None),
        "estimate" => Ok(TotalMode::Estimate),
        "accurate" => Ok(TotalMode::Accurate),
        other => Err(SearchError::invalid("_total", format!("_total takes none, estimate or accurate, not {other:?}"))),
    }
}

/// `_sort=a,-b`: any parameter with an index, `_id` and `_lastUpdated`.
pub(crate) fn parse_sort(
    registry: &SearchParameters,
    resource_type: ResourceType,
    value: &str,
) -> Result<Vec<SortKey>, SearchError> {
    let mut keys = Vec::new();
    for item in split_unescaped(value, ',') {
        let (descending, code) = match item.strip_prefix('-') {
            Some(code) => (true, code),
            None => (false, item),
        };
        let param = if code == "_id" {
            SortParam::Id
        } else {
            let kind = registry
                .param(resource_type, code)
                .and_then(|p| p.index_kind())
                .ok_or_else(|| {
                    SearchError::invalid("_sort", format!("{resource_type} cannot be sorted by {code:?}: no such parameter"))
                })?;
            if kind == IndexKind::Position {
                return Err(SearchError::invalid(
                    "_sort",
                    format!("{code} has no order of its own; a search with one {code} value and no _sort is sorted by distance"),
                ));
            }
            SortParam::Indexed {
                param: code.to_owned(),
                kind,
            }
        };
        keys.push(SortKey { param, descending });
    }
    Ok(keys)
}

/// The order of a search without `_sort`: nearest first when it has a single `near` value.
pub(crate) fn default_sort(conditions: &[Condition]) -> Vec<SortKey> {
    let mut areas = conditions.iter().filter_map(|condition| match condition {
        Condition::Near { param, area } => Some((param, area)),
        _ => None,
    });
    match (areas.next(), areas.next()) {
        (Some((param, area)), None) => vec![SortKey {
            param: SortParam::Distance { param: param.clone(), from: area.centre },
            descending: false,
        }],
        _ => Vec::new(),
    }
}

/// `Source:param[:Target]` or `Source:*`, for `_include` (`reverse` false) and `_revinclude`.
pub(crate) fn parse_include(
    registry: &SearchParameters,
    searched: ResourceType,
    name: &str,
    value: &str,
    reverse: bool,
    iterate: bool,
) -> Result<Include, SearchError> {
    let error = |message: String| SearchError::invalid(name, message);
    let mut parts = value.split(':');
    let (Some(source), Some(code)) = (parts.next(), parts.next()) else {
        return Err(error(format!("{name} takes Type:parameter[:TargetType], not {value:?}")));
    };
    let target = parts.next();
    if parts.next().is_some() {
        return Err(error(format!("{name} takes Type:parameter[:TargetType], not {value:?}")));
    }
    let source_type: ResourceType = source
        .parse()
        .map_err(|_| error(format!("{source} is not a type served here")))?;
    let param = if code == "*" {
        None
    } else {
        let param = registry
            .param(source_type, code)
            .filter(|p| p.kind == ParamType::Reference)
            .ok_or_else(|| error(format!("{source} has no reference parameter {code}")))?;
        Some(param.code.clone())
    };
    let target_type = match target {
        None => None,
        Some(t) => Some(
            t.parse::<ResourceType>()
                .map_err(|_| error(format!("{t} is not a type served here")))?,
        ),
    };
    if !iterate {
        let anchored = if reverse { target_type.is_none_or(|t| t == searched) } else { source_type == searched };
        if !anchored {
            return Err(error(format!(
                "{name}={value} does not start from {searched}; use {name}:iterate to follow included resources"
            )));
        }
    }
    Ok(Include {
        source_type,
        param,
        target_type,
        iterate,
    })
}

/// `_elements=a,b`: top-level element names.
pub(crate) fn parse_elements(value: &str) -> Result<Vec<String>, SearchError> {
    let names: Vec<String> = value.split(',').map(|n| n.trim().to_owned()).collect();
    if names.iter().any(|n| n.is_empty() || n.contains('.')) {
        return Err(SearchError::invalid(
            "_elements",
            "_elements takes a comma-separated list of top-level element names",
        ));
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use crate::query::{SearchErrorKind, SearchOptions};
    use crate::registry;
    use jiff::Timestamp;
    use termin_fhir::ResourceType;
    use termin_fhir::geo::{Near, Point};
    use termin_store::{Condition, SortKey, SortParam};

    fn search(pairs: &[(&str, &str)]) -> Result<crate::ParsedSearch, crate::SearchError> {
        let pairs: Vec<(String, String)> = pairs.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect();
        let options = SearchOptions {
            server_base: None,
            now: Timestamp::UNIX_EPOCH,
            default_count: 20,
            max_count: 500,
            handling: Default::default(),
        };
        registry().parse_search(ResourceType::Location, &pairs, &options)
    }

    const VIENNA: Point = Point { latitude: 48.2, longitude: 16.37 };

    #[test]
    fn near_is_a_distance_around_a_point_sorted_nearest_first() {
        let parsed = search(&[("near", "48.2|16.37|5|[mi_i]")]).unwrap();
        let area = Near { centre: VIENNA, radius_km: 5.0 * 1.609_344 };
        assert_eq!(parsed.request.filter.conditions, [Condition::Near { param: "near".into(), area }]);
        let by_distance = SortKey { param: SortParam::Distance { param: "near".into(), from: VIENNA }, descending: false };
        assert_eq!(parsed.request.sort, [by_distance]);
        // Without a distance: the default radius; with _sort: that order.
        let parsed = search(&[("near", "48.2|16.37"), ("_sort", "name")]).unwrap();
        let area = Near { centre: VIENNA, radius_km: termin_fhir::geo::DEFAULT_NEAR_RADIUS_KM };
        assert_eq!(parsed.request.filter.conditions, [Condition::Near { param: "near".into(), area }]);
        assert!(matches!(&parsed.request.sort[..], [SortKey { param: SortParam::Indexed { .. }, .. }]));
        // Two centres: either one, and no single distance to sort by.
        let parsed = search(&[("near", "48.2|16.37|1,47|15|1")]).unwrap();
        assert!(matches!(&parsed.request.filter.conditions[..], [Condition::Any(areas)] if areas.len() == 2));
        assert!(parsed.request.sort.is_empty());
    }

    #[test]
    fn bad_near_values_and_sorting_by_near_are_invalid() {
        for value in ["abc", "91|0", "0|0|-2|km", "0|0|1|parsec"] {
            let error = search(&[("near", value)]).unwrap_err();
            assert_eq!((error.param.as_str(), error.kind), ("near", SearchErrorKind::Invalid), "{value}");
        }
        let error = search(&[("_sort", "near")]).unwrap_err();
        assert_eq!((error.param.as_str(), error.kind), ("_sort", SearchErrorKind::Invalid));
    }
}
