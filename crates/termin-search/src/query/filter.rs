//! Filter parameters: `name[:modifier][.chain]=value[,value]`, and `_has`.

use super::limits::ValueBudget;
use super::prefix::{Prefix, date_test, number_test, overlap_test, parse_decimal, split_prefix};
use super::values::{parse_token, split_unescaped, unescape};
use super::{SearchError, SearchNote};
use crate::definitions::ParamType;
use termin_fhir::reference::{is_resource_type_name, parse_literal, split_canonical};
use crate::registry::{SearchParam, SearchParameters};
use crate::temporal::parse_range;
use crate::text::normalize;
use jiff::Timestamp;
use termin_fhir::ResourceType;
use termin_fhir::geo::{self, Near};
use termin_store::{
    Condition, IdentifierOfType, QuantityMatch, RangeTest, ReferenceMatch, StringMatch, SystemMatch, TokenMatch,
    UriMatch,
};

/// What a filter parameter turned into.
pub(crate) enum Filtered {
    Condition(Condition),
    /// Not supported here; the text says why (ignored when handling is lenient).
    Unsupported(String),
}

pub(crate) struct FilterParser<'a> {
    pub registry: &'a SearchParameters,
    pub server_base: Option<&'a str>,
    pub now: Timestamp,
    /// The values all parameters of the search may still have.
    pub budget: ValueBudget,
}

impl FilterParser<'_> {
    /// Parses one `name=value` pair on `resource_type`. `notes` collects lenient readings.
    pub fn parse(
        &self,
        resource_type: ResourceType,
        name: &str,
        value: &str,
        notes: &mut Vec<SearchNote>,
    ) -> Result<Filtered, SearchError> {
        if let Some(rest) = name.strip_prefix("_has:") {
            return self.parse_has(resource_type, name, rest, value, notes);
        }
        let (head, chain) = match name.split_once('.') {
            Some((head, chain)) => (head, Some(chain)),
            None => (name, None),
        };
        let (code, modifier) = match head.split_once(':') {
            Some((code, modifier)) => (code, Some(modifier)),
            None => (head, None),
        };
        if let Some(chain) = chain {
            return self.parse_chain(resource_type, name, code, modifier, chain, value, notes);
        }
        let filtered = self.parse_value(resource_type, name, code, modifier, value, notes)?;
        if let Filtered::Condition(condition) = &filtered {
            self.budget.spend(name, condition)?;
        }
        Ok(filtered)
    }

    /// Parses a parameter that is neither chained nor `_has`.
    fn parse_value(
        &self,
        resource_type: ResourceType,
        name: &str,
        code: &str,
        modifier: Option<&str>,
        value: &str,
        notes: &mut Vec<SearchNote>,
    ) -> Result<Filtered, SearchError> {
        if value.is_empty() {
            return Ok(Filtered::Unsupported(format!("the search parameter {name} has no value")));
        }
        if code == "_id" {
            let ids = || Condition::IdIn(alternatives(value).map(unescape).collect());
            return Ok(match modifier {
                None => Filtered::Condition(ids()),
                Some("not") => Filtered::Condition(Condition::Not(Box::new(ids()))),
                Some(modifier) => Filtered::Unsupported(format!("the modifier :{modifier} is not supported on _id")),
            });
        }
        let Some(param) = self.lookup(resource_type, code, notes) else {
            return Ok(Filtered::Unsupported(format!(
                "{resource_type} has no search parameter {code} that Termin supports"
            )));
        };
        if modifier == Some("missing") {
            let missing = match value {
                "true" => true,
                "false" => false,
                other => return Err(SearchError::invalid(name, format!(":missing takes true or false, not {other:?}"))),
            };
            let kind = param.index_kind().expect("supported parameters have an index");
            return Ok(Filtered::Condition(Condition::Missing {
                param: param.code.clone(),
                kind,
                missing,
            }));
        }
        let error = |message: String| SearchError::invalid(name, message);
        let unsupported = |modifier: &str| {
            Ok(Filtered::Unsupported(format!(
                "the modifier :{modifier} is not supported on the {} parameter {code}",
                param.kind.code()
            )))
        };
        let code = param.code.clone();
        let condition = match param.kind {
            ParamType::Token => match modifier {
                None | Some("not") => {
                    let mut tokens = Vec::new();
                    for alternative in alternatives(value) {
                        let token = value_set_reading(name, parse_token(alternative), notes);
                        if token.code.is_none() && token.system == SystemMatch::Any {
                            return Err(error(format!("{name} has an empty value")));
                        }
                        tokens.push(token);
                    }
                    let any = Condition::TokenAny {
                        param: code,
                        alternatives: tokens,
                    };
                    if modifier.is_some() { Condition::Not(Box::new(any)) } else { any }
                }
                Some("text") => Condition::TokenText {
                    param: code,
                    alternatives: alternatives(value).map(|a| normalize(&unescape(a))).collect(),
                },
                Some("of-type") => {
                    let mut typed = Vec::new();
                    for alternative in alternatives(value) {
                        let parts: Vec<String> = split_unescaped(alternative, '|').into_iter().map(unescape).collect();
                        match parts.as_slice() {
                            [system, type_code, value] if parts.iter().all(|p| !p.is_empty()) => {
                                typed.push(IdentifierOfType {
                                    type_system: system.clone(),
                                    type_code: type_code.clone(),
                                    value: value.clone(),
                                })
                            }
                            _ => return Err(error(format!(":of-type takes type-system|type-code|value, not {alternative:?}"))),
                        }
                    }
                    Condition::TokenOfType {
                        param: code,
                        alternatives: typed,
                    }
                }
                Some(other) => return unsupported(other),
            },
            ParamType::String => {
                let make: fn(&str) -> StringMatch = match modifier {
                    None => |v| StringMatch::StartsWith(normalize(v)),
                    Some("exact") => |v| StringMatch::Exact(v.to_owned()),
                    Some("contains") => |v| StringMatch::Contains(normalize(v)),
                    Some(other) => return unsupported(other),
                };
                Condition::StringAny {
                    param: code,
                    alternatives: alternatives(value).map(|a| make(&unescape(a))).collect(),
                }
            }
            ParamType::Date | ParamType::Number => {
                if let Some(other) = modifier {
                    return unsupported(other);
                }
                let horizon_reading = resource_type == ResourceType::Schedule && code == "date";
                let mut read_as_overlap = false;
                let mut tests = Vec::new();
                for alternative in alternatives(value) {
                    let (prefix, text) = split_prefix(alternative);
                    if horizon_reading && prefix == Prefix::Eq {
                        let (low, high) = self.date_range(text).map_err(error)?;
                        tests.push(overlap_test(low, high));
                        read_as_overlap = true;
                    } else {
                        tests.push(self.range_test(param.kind, prefix, text).map_err(error)?);
                    }
                }
                if read_as_overlap {
                    notes.push(SearchNote::information(
                        name,
                        format!(
                            "{name}={value}: Schedules whose planningHorizon overlaps the date or range \
                             (the AT Scheduling IG's reading; R5's eq would need the whole horizon inside it)"
                        ),
                    ));
                }
                Condition::RangeAny {
                    param: code,
                    kind: param.index_kind().expect("dates and numbers have an index"),
                    alternatives: tests,
                }
            }
            ParamType::Quantity => {
                if let Some(other) = modifier {
                    return unsupported(other);
                }
                let mut matches = Vec::new();
                for alternative in alternatives(value) {
                    let parts = split_unescaped(alternative, '|');
                    let (prefix, text) = split_prefix(parts[0]);
                    let (number, half) = parse_decimal(text).ok_or_else(|| error(format!("{text:?} is not a number")))?;
                    let non_empty = |i: usize| parts.get(i).filter(|p| !p.is_empty()).map(|p| unescape(p));
                    matches.push(QuantityMatch {
                        test: number_test(prefix, number, half),
                        system: non_empty(1),
                        code: non_empty(2),
                    });
                }
                Condition::QuantityAny {
                    param: code,
                    alternatives: matches,
                }
            }
            ParamType::Reference => {
                let type_modifier = match modifier {
                    None => None,
                    Some("identifier") => {
                        let mut identifiers = Vec::new();
                        for alternative in alternatives(value) {
                            identifiers.push(identifier_match(alternative).ok_or_else(|| {
                                error(format!(":identifier takes system|value or value, not {alternative:?}"))
                            })?);
                        }
                        return Ok(Filtered::Condition(Condition::ReferenceAny {
                            param: code,
                            alternatives: identifiers,
                        }));
                    }
                    Some(type_name) if is_resource_type_name(type_name) => {
                        if !param.targets.iter().any(|t| t == type_name) {
                            return Err(error(format!("{code} does not refer to {type_name}")));
                        }
                        Some(type_name)
                    }
                    Some(other) => return unsupported(other),
                };
                if let Some(reading) = self.service_type_reading(resource_type, name, param, value, notes) {
                    return Ok(Filtered::Condition(reading));
                }
                let mut matches = Vec::new();
                for alternative in alternatives(value) {
                    matches.push(self.reference_match(param, name, type_modifier, alternative, notes)?);
                }
                Condition::ReferenceAny {
                    param: code,
                    alternatives: matches,
                }
            }
            ParamType::Uri => {
                let make: fn(String) -> UriMatch = match modifier {
                    None => UriMatch::Exact,
                    Some("below") => UriMatch::Below,
                    Some("above") => UriMatch::Above,
                    Some(other) => return unsupported(other),
                };
                Condition::UriAny {
                    param: code,
                    alternatives: alternatives(value).map(|a| make(unescape(a))).collect(),
                }
            }
            // `near`, the one special parameter with an index.
            ParamType::Special => {
                if let Some(other) = modifier {
                    return unsupported(other);
                }
                let mut areas = Vec::new();
                for alternative in alternatives(value) {
                    let (centre, radius_km) = geo::parse_near(alternative).map_err(error)?;
                    let area = Near { centre, radius_km: radius_km.unwrap_or(geo::DEFAULT_NEAR_RADIUS_KM) };
                    areas.push(Condition::Near { param: code.clone(), area });
                }
                match <[Condition; 1]>::try_from(areas) {
                    Ok([one]) => one,
                    Err(several) => Condition::Any(several),
                }
            }
            ParamType::Composite => {
                return Ok(Filtered::Unsupported(format!("{code} is a {} parameter", param.kind.code())));
            }
        };
        Ok(Filtered::Condition(condition))
    }

    /// The instants a date search value covers (its precision).
    fn date_range(&self, text: &str) -> Result<(Timestamp, Timestamp), String> {
        let range = parse_range(text, self.registry.time_zone())
            .ok_or_else(|| format!("{text:?} is not a date (YYYY, YYYY-MM, YYYY-MM-DD or a date-time)"))?;
        Ok(range.low.zip(range.high).expect("parsed dates are bounded"))
    }

    /// A date or number value with its prefix as a test on index ranges.
    fn range_test(&self, kind: ParamType, prefix: Prefix, text: &str) -> Result<RangeTest, String> {
        if kind == ParamType::Date {
            let (low, high) = self.date_range(text)?;
            Ok(date_test(prefix, low, high, self.now))
        } else {
            let (number, half) = parse_decimal(text).ok_or_else(|| format!("{text:?} is not a number"))?;
            Ok(number_test(prefix, number, half))
        }
    }

    /// The parameter called `code` on `resource_type`, with the IG's `Slot?date=` read as `start`.
    fn lookup(&self, resource_type: ResourceType, code: &str, notes: &mut Vec<SearchNote>) -> Option<&SearchParam> {
        if let Some(param) = self.registry.param(resource_type, code) {
            return Some(param);
        }
        if resource_type == ResourceType::Slot && code == "date" {
            notes.push(SearchNote::information(
                code,
                "Slot has no search parameter date in R5; read as start (as the AT Scheduling IG's example uses it)",
            ));
            return self.registry.param(resource_type, "start");
        }
        None
    }

    /// The IG's `service-type-reference=<ValueSet URL>|<code>`: a reference parameter given a
    /// code of a value set means the code itself, so it is read as the token parameter of the
    /// same name without `-reference` (`service-type`).
    fn service_type_reading(
        &self,
        resource_type: ResourceType,
        name: &str,
        param: &SearchParam,
        value: &str,
        notes: &mut Vec<SearchNote>,
    ) -> Option<Condition> {
        let token_param = self
            .registry
            .param(resource_type, param.code.strip_suffix("-reference")?)
            .filter(|p| p.kind == ParamType::Token)?;
        let tokens = alternatives(value)
            .map(|alternative| {
                let token = parse_token(alternative);
                match &token.system {
                    SystemMatch::Exactly(system) if is_value_set_url(system) && token.code.is_some() => Some(token),
                    _ => None,
                }
            })
            .collect::<Option<Vec<_>>>()?;
        notes.push(SearchNote::information(
            name,
            format!(
                "{name}={value} names codes of a ValueSet, not a reference; read as {}={value} \
                 (as the AT Scheduling IG's example uses it)",
                token_param.code
            ),
        ));
        Some(Condition::TokenAny {
            param: token_param.code.clone(),
            alternatives: tokens.into_iter().map(|t| value_set_reading(&token_param.code, t, notes)).collect(),
        })
    }

    fn reference_match(
        &self,
        param: &SearchParam,
        name: &str,
        type_modifier: Option<&str>,
        alternative: &str,
        notes: &mut Vec<SearchNote>,
    ) -> Result<ReferenceMatch, SearchError> {
        let has_bar = split_unescaped(alternative, '|').len() > 1;
        if has_bar && !param.targets_canonical_resources() {
            let reading = identifier_match(alternative)
                .ok_or_else(|| SearchError::invalid(name, format!("{alternative:?} is not a reference")))?;
            notes.push(SearchNote::information(
                name,
                format!(
                    "{name}={alternative} read as {}:identifier={alternative} (a reference has no system|value form; \
                     the AT Scheduling IG's example uses it)",
                    param.code
                ),
            ));
            return Ok(reading);
        }
        let text = unescape(alternative);
        if param.targets_canonical_resources() {
            let (url, version) = split_canonical(&text);
            return Ok(ReferenceMatch::Url {
                url: url.to_owned(),
                version: version.map(str::to_owned),
            });
        }
        let local_path = self
            .server_base
            .and_then(|base| text.strip_prefix(base.trim_end_matches('/')))
            .and_then(|rest| rest.strip_prefix('/'));
        let relative = local_path.unwrap_or(&text);
        if let Some(literal) = parse_literal(relative).filter(|l| l.base.is_none()) {
            if type_modifier.is_some_and(|t| t != literal.resource_type) {
                return Err(SearchError::invalid(
                    name,
                    format!("{text:?} is not a reference to {}", type_modifier.unwrap_or_default()),
                ));
            }
            return Ok(ReferenceMatch::Local {
                target_type: Some(literal.resource_type.to_owned()),
                id: literal.id.to_owned(),
                version: literal.version.map(str::to_owned),
            });
        }
        if termin_fhir::is_valid_id(&text) {
            return Ok(ReferenceMatch::Local {
                target_type: type_modifier.map(str::to_owned),
                id: text,
                version: None,
            });
        }
        match parse_literal(&text) {
            Some(literal) => Ok(ReferenceMatch::Url {
                url: format!("{}/{}/{}", literal.base.unwrap_or_default(), literal.resource_type, literal.id),
                version: literal.version.map(str::to_owned),
            }),
            None if text.contains(':') => Ok(ReferenceMatch::Url { url: text, version: None }),
            None => Err(SearchError::invalid(
                name,
                format!("{text:?} is not a reference (id, Type/id or an absolute URL)"),
            )),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn parse_chain(
        &self,
        resource_type: ResourceType,
        name: &str,
        code: &str,
        modifier: Option<&str>,
        rest: &str,
        value: &str,
        notes: &mut Vec<SearchNote>,
    ) -> Result<Filtered, SearchError> {
        let Some(param) = self.lookup(resource_type, code, notes) else {
            return Ok(Filtered::Unsupported(format!("{resource_type} has no search parameter {code}")));
        };
        if param.kind != ParamType::Reference {
            return Err(SearchError::invalid(name, format!("{code} is not a reference parameter, so it cannot be chained")));
        }
        let targets: Vec<ResourceType> = match modifier {
            None => param.served_targets(),
            Some(type_name) => match type_name.parse::<ResourceType>() {
                Ok(t) if param.targets.iter().any(|target| target == type_name) => vec![t],
                _ => {
                    return Ok(Filtered::Unsupported(format!(
                        "{code}:{type_name} does not name a served type {code} refers to"
                    )));
                }
            },
        };
        let mut chains = Vec::new();
        let mut reasons = Vec::new();
        for target in targets {
            match self.parse(target, rest, value, notes)? {
                Filtered::Condition(condition) => chains.push(Condition::Chain {
                    param: param.code.clone(),
                    target_type: target,
                    condition: Box::new(condition),
                }),
                Filtered::Unsupported(reason) => reasons.push(reason),
            }
        }
        Ok(match chains.len() {
            0 => Filtered::Unsupported(format!("{name}: {}", reasons.join("; "))),
            1 => Filtered::Condition(chains.remove(0)),
            _ => Filtered::Condition(Condition::Any(chains)),
        })
    }

    fn parse_has(
        &self,
        resource_type: ResourceType,
        name: &str,
        rest: &str,
        value: &str,
        notes: &mut Vec<SearchNote>,
    ) -> Result<Filtered, SearchError> {
        let mut parts = rest.splitn(3, ':');
        let (Some(source), Some(reference), Some(inner)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(SearchError::invalid(name, "_has takes _has:Type:reference-parameter:parameter=value"));
        };
        let Ok(source_type) = source.parse::<ResourceType>() else {
            return Ok(Filtered::Unsupported(format!("{name}: {source} is not a served type")));
        };
        let Some(param) = self
            .registry
            .param(source_type, reference)
            .filter(|p| p.kind == ParamType::Reference && p.targets.iter().any(|t| t == resource_type.as_str()))
        else {
            return Ok(Filtered::Unsupported(format!(
                "{name}: {source} has no reference parameter {reference} that can refer to {resource_type}"
            )));
        };
        Ok(match self.parse(source_type, inner, value, notes)? {
            Filtered::Condition(condition) => Filtered::Condition(Condition::ReferencedBy {
                source_type,
                param: param.code.clone(),
                condition: Box::new(condition),
            }),
            Filtered::Unsupported(reason) => Filtered::Unsupported(format!("{name}: {reason}")),
        })
    }
}

fn alternatives(value: &str) -> impl Iterator<Item = &str> {
    split_unescaped(value, ',').into_iter()
}

/// `system|value` (or `value`) as an identifier match; `None` without a value.
fn identifier_match(text: &str) -> Option<ReferenceMatch> {
    let token = parse_token(text);
    Some(ReferenceMatch::Identifier {
        system: token.system,
        value: token.code?,
    })
}

/// A ValueSet's canonical URL where a code system belongs (`system|code`), as the IG's examples
/// write it.
fn is_value_set_url(system: &str) -> bool {
    system.contains("/ValueSet/")
}

/// `<ValueSet URL>|code`: a value set is no code system, so the code is matched in any system
/// (the lenient reading of the AT Scheduling IG's examples).
fn value_set_reading(name: &str, token: TokenMatch, notes: &mut Vec<SearchNote>) -> TokenMatch {
    match &token.system {
        SystemMatch::Exactly(system) if is_value_set_url(system) && token.code.is_some() => {
            notes.push(SearchNote::information(
                name,
                format!(
                    "{system} is a ValueSet, not a code system; the code {} was matched in any system",
                    token.code.as_deref().unwrap_or_default()
                ),
            ));
            TokenMatch {
                system: SystemMatch::Any,
                code: token.code,
            }
        }
        _ => token,
    }
}
