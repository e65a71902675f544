//! The audit trail's storage: AuditEvents are not stored as generic resources (current row,
//! history, search index rows) but appended as compact rows of a table of their own, one per
//! event with the few columns an AuditEvent search needs, plus one link row per patient, other
//! resource and agent the event names. Searches of AuditEvents are answered from these rows by
//! a search path of their own, which understands the parameters of [`AUDIT_SEARCH_PARAMS`].

use crate::{Condition, ReferenceMatch, SystemMatch};
use jiff::Timestamp;

/// The AuditEvent search parameters the compact rows answer; a search with any other
/// AuditEvent parameter is refused. `patient` and `entity` may be chained to the resources
/// they name; the common parameters of [`AUDIT_ABSENT_PARAMS`] find no event.
pub const AUDIT_SEARCH_PARAMS: [&str; 13] = [
    "_id",
    "_lastUpdated",
    "date",
    "action",
    "outcome",
    "code",
    "patient",
    "entity",
    "agent",
    "_tag",
    "_profile",
    "_security",
    "_source",
];

/// The parameters every type takes (a search across types) of elements the server never
/// writes into an AuditEvent (`meta.tag`, `meta.profile`, `meta.security`, `meta.source`): no
/// event has a value, so only `:missing=true` (or a negation) matches.
pub const AUDIT_ABSENT_PARAMS: [&str; 4] = ["_tag", "_profile", "_security", "_source"];

/// What a link row says the event names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditRole {
    /// A patient whose data was reached (`entity` role 1, and `AuditEvent.patient` when it is
    /// the only one): found by `patient` and `entity`.
    Patient,
    /// Another resource reached: found by `entity`.
    Entity,
    /// An agent's `who`: found by `agent`.
    Agent,
}

impl AuditRole {
    /// The code stored in the link row.
    pub fn code(self) -> &'static str {
        match self {
            AuditRole::Patient => "P",
            AuditRole::Entity => "E",
            AuditRole::Agent => "A",
        }
    }
}

/// One thing an event names: a local reference (`target_type` and id), or, for an agent known
/// by identifier only, `target_type` `None` and the identifier's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditLink {
    pub role: AuditRole,
    pub target_type: Option<String>,
    pub target_id: String,
}

/// One AuditEvent to append: its id, when it was recorded (the `[low, high)` of its `recorded`
/// instant, as the `date` parameter compares it), its action, outcome and code, what it names,
/// and the AuditEvent as served (JSON text, `meta` included).
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    pub id: String,
    pub recorded: Timestamp,
    pub recorded_range: (i64, i64),
    pub action: String,
    pub outcome: String,
    pub code: String,
    pub links: Vec<AuditLink>,
    pub body: String,
}

/// The coding system of `AuditEvent.outcome.code`.
pub const AUDIT_OUTCOME_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/audit-event-outcome";
/// The coding system of `AuditEvent.code`: the `restful-interaction` codes, and operations.
pub const AUDIT_CODE_SYSTEM: &str = "http://hl7.org/fhir/restful-interaction";

/// The coding system the compact row's column of token parameter `param` is in (`action` is a
/// plain code); `None` for a parameter without such a column.
pub fn audit_token_system(param: &str) -> Option<Option<&'static str>> {
    match param {
        "action" => Some(None),
        "outcome" => Some(Some(AUDIT_OUTCOME_SYSTEM)),
        "code" => Some(Some(AUDIT_CODE_SYSTEM)),
        _ => None,
    }
}

/// The link roles reference parameter `param` of AuditEvent finds; empty for other parameters.
pub fn audit_link_roles(param: &str) -> &'static [AuditRole] {
    match param {
        "patient" => &[AuditRole::Patient],
        "entity" => &[AuditRole::Patient, AuditRole::Entity],
        "agent" => &[AuditRole::Agent],
        _ => &[],
    }
}

/// Why the compact rows cannot answer `condition` of an AuditEvent search, if they cannot:
/// only the parameters of [`AUDIT_SEARCH_PARAMS`] without modifiers that need index rows the
/// compact rows do not keep (`:missing`, `:text`, `:of-type`, versioned or absolute
/// references, `_has`). Conditions on the resources a chain reaches are searched as those
/// resources always are.
pub fn audit_condition_unsupported(condition: &Condition) -> Option<String> {
    use crate::{Condition::*, RangeTest};
    let refused = |what: &str| Some(format!("AuditEvent search does not support {what}"));
    match condition {
        IdIn(_) => None,
        Not(inner) => audit_condition_unsupported(inner),
        Any(alternatives) => alternatives.iter().find_map(audit_condition_unsupported),
        TokenAny { param, .. } if audit_token_system(param).is_some() => None,
        RangeAny { param, kind: crate::IndexKind::Date, alternatives }
            if matches!(param.as_str(), "date" | "_lastUpdated") =>
        {
            fn instants(test: &RangeTest) -> bool {
                match test {
                    RangeTest::Bound { point, .. } => matches!(point, crate::RangePoint::Instant(_)),
                    RangeTest::All(tests) | RangeTest::AnyOf(tests) => tests.iter().all(instants),
                    RangeTest::Not(inner) => instants(inner),
                }
            }
            (!alternatives.iter().all(instants)).then(|| format!("AuditEvent search: {param} takes dates"))
        }
        ReferenceAny { param, alternatives } if !audit_link_roles(param).is_empty() => {
            alternatives.iter().find_map(|alternative| match alternative {
                ReferenceMatch::Local { version: None, .. } => None,
                ReferenceMatch::Identifier { system: SystemMatch::Any | SystemMatch::None, .. } if param == "agent" => {
                    None
                }
                _ => refused(&format!("this kind of {param} reference (only local ones, and agent:identifier)")),
            })
        }
        Chain { param, .. } if matches!(param.as_str(), "patient" | "entity") => None,
        TokenAny { param, .. } | UriAny { param, .. } | ReferenceAny { param, .. } | Missing { param, .. }
            if AUDIT_ABSENT_PARAMS.contains(&param.as_str()) =>
        {
            None
        }
        TokenAny { param, .. }
        | TokenText { param, .. }
        | TokenOfType { param, .. }
        | StringAny { param, .. }
        | RangeAny { param, .. }
        | QuantityAny { param, .. }
        | ReferenceAny { param, .. }
        | UriAny { param, .. }
        | Near { param, .. }
        | Missing { param, .. }
        | Chain { param, .. } => refused(&format!(
            "{param} as given (AuditEvents are kept as compact records: {} with their usual modifiers)",
            AUDIT_SEARCH_PARAMS.join(", ")
        )),
        ReferencedBy { .. } => refused("_has"),
    }
}
