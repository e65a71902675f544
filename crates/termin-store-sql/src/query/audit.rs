//! The search path of AuditEvents: their conditions are answered from the compact rows of
//! `audit_event` (id, recorded, action, outcome, code) and `audit_event_link` (patients, other
//! resources and agents the event names), not from the generic index tables. Every condition on
//! what an event names is a range of the link rows' target index. A chain through `patient` or
//! `entity` reaches the named resources, searched as they always are (the confinement of staff
//! to their organisations' events is such a chain). The domain refuses
//! the conditions these rows cannot answer ([`termin_store::audit_condition_unsupported`]);
//! should one arrive here, it matches nothing.

use super::{SearchSql, Select, push_any, push_limit, push_list, push_range_of, push_sort_bind};
use crate::audit::AUDIT_VERSION_COLUMNS;
use crate::{Dialect, PushValue, Statement};
use termin_store::{
    AUDIT_ABSENT_PARAMS, Condition, IndexKind, Keyset, ReferenceMatch, SortKey, SortParam, SystemMatch, TokenMatch,
    audit_link_roles, audit_token_system,
};

/// The event's column a sort key orders by: its id, or its `recorded` instant (the low end
/// ascending, the high end descending, as a date index row sorts).
fn sort_column(key: &SortKey) -> &'static str {
    match &key.param {
        SortParam::Indexed { param, kind: IndexKind::Date } if matches!(param.as_str(), "date" | "_lastUpdated") => {
            if key.descending {
                "a.recorded_high"
            } else {
                "a.recorded_low"
            }
        }
        _ => "a.id",
    }
}

/// `l.role IN (...)` of the roles `param` finds.
pub(crate) fn push_roles<D: Dialect>(q: &mut Statement<D>, link: &str, param: &str) {
    q.push(format!("{link}.role IN ("));
    push_list(q, audit_link_roles(param).iter().map(|role| role.code()));
    q.push(")");
}

impl<D: Dialect> SearchSql<'_, D> {
    /// The complete query over the AuditEvents, in the shape [`SearchSql::build`] gives every
    /// other type's (the version columns, then the sort columns `k<i>`).
    pub(super) fn build_audit(&mut self, select: &Select<'_>) -> Statement<D> {
        let mut q = D::builder("SELECT ");
        match select {
            Select::Page { sort, .. } => {
                q.push(AUDIT_VERSION_COLUMNS);
                for (i, key) in sort.iter().enumerate() {
                    q.push(format!(", {} AS k{i}", sort_column(key)));
                }
            }
            Select::Count => {
                q.push("count(*)");
            }
            Select::Ids { .. } => {
                q.push("a.id");
            }
        }
        q.push(" FROM audit_event a WHERE 1 = 1");
        let filter = self.filter;
        for condition in &filter.conditions {
            q.push(" AND ");
            self.push_audit_condition(&mut q, condition);
        }
        match select {
            Select::Page { sort, after, limit } => {
                if let Some(after) = after {
                    q.push(" AND ");
                    push_audit_keyset(&mut q, sort, after);
                }
                self.push_order(&mut q, sort, *after, *limit, "a.id");
            }
            Select::Count => {}
            Select::Ids { limit } => {
                q.push(" ORDER BY a.id");
                push_limit(&mut q, *limit);
            }
        }
        q
    }

    /// The condition as a predicate on the event `a`.
    fn push_audit_condition(&mut self, q: &mut Statement<D>, condition: &Condition) {
        match condition {
            Condition::IdIn(ids) if ids.is_empty() => {
                q.push("1 = 0");
            }
            Condition::IdIn(ids) => {
                q.push("a.id IN (");
                push_list(q, ids);
                q.push(")");
            }
            Condition::Not(inner) => {
                q.push("NOT (");
                self.push_audit_condition(q, inner);
                q.push(")");
            }
            Condition::Any(alternatives) => {
                push_any(q, alternatives, |q, alternative| self.push_audit_condition(q, alternative));
            }
            Condition::TokenAny { param, alternatives } if audit_token_system(param).is_some() => {
                let system = audit_token_system(param).flatten();
                push_any(q, alternatives, |q, token| push_audit_token(q, param, system, token));
            }
            Condition::RangeAny { param, kind: IndexKind::Date, alternatives }
                if matches!(param.as_str(), "date" | "_lastUpdated") =>
            {
                push_any(q, alternatives, |q, test| push_range_of(q, ("a.recorded_low", "a.recorded_high"), test));
            }
            Condition::ReferenceAny { param, alternatives } if !audit_link_roles(param).is_empty() => {
                push_any(q, alternatives, |q, alternative| push_audit_reference(q, param, alternative));
            }
            Condition::Chain { param, target_type, condition } if matches!(param.as_str(), "patient" | "entity") => {
                // The events naming one of the resources that satisfy the condition: the
                // resources do not depend on the event, so the database finds them once (an
                // uncorrelated subquery) rather than once per event, and then their events by
                // the link rows' target index.
                let link = self.alias("l");
                let target = self.alias("t");
                q.push(format!("a.id IN (SELECT {link}.event_id FROM audit_event_link {link} WHERE "));
                push_roles(q, &link, param);
                q.push(format!(" AND {link}.target_type = "));
                q.push_value(target_type.as_str());
                q.push(format!(
                    " AND {link}.target_id IN (SELECT {target}.res_id FROM resource {target} WHERE {target}.res_type = "
                ));
                q.push_value(target_type.as_str());
                q.push(format!(" AND {target}.body IS NOT NULL AND "));
                self.push_condition(q, *target_type, &format!("{target}.res_id"), condition);
                q.push("))");
            }
            // No event has a value of these: only their absence matches.
            Condition::Missing { param, missing, .. } if AUDIT_ABSENT_PARAMS.contains(&param.as_str()) => {
                q.push(if *missing { "1 = 1" } else { "1 = 0" });
            }
            // A value of a parameter no event has (`_tag`, ...), or what the domain refuses.
            _ => {
                q.push("1 = 0");
            }
        }
    }
}

/// A token of `param`'s column, whose coding system is `system`.
fn push_audit_token<D: Dialect>(q: &mut Statement<D>, param: &str, system: Option<&str>, token: &TokenMatch) {
    let system_matches = match (&token.system, system) {
        (SystemMatch::Any, _) | (SystemMatch::None, None) => true,
        (SystemMatch::Exactly(wanted), Some(system)) => wanted == system,
        _ => false,
    };
    match (&token.code, system_matches) {
        (_, false) => q.push("1 = 0"),
        (None, true) => q.push("1 = 1"),
        (Some(code), true) => q.push(format!("a.{param} = ")).push_value(code.clone()),
    };
}

/// The event names the reference through `param`: `a.id IN` the events of one range of the
/// link rows by target.
fn push_audit_reference<D: Dialect>(q: &mut Statement<D>, param: &str, alternative: &ReferenceMatch) {
    let (target_type, id) = match alternative {
        ReferenceMatch::Local { target_type, id, version: None } => {
            // `patient=<id>` names a Patient; other parameters take any type.
            let target_type = target_type.clone().or_else(|| (param == "patient").then(|| "Patient".to_owned()));
            (target_type, id)
        }
        ReferenceMatch::Identifier { system: SystemMatch::Any | SystemMatch::None, value } if param == "agent" => {
            (Some(String::new()), value)
        }
        _ => {
            q.push("1 = 0");
            return;
        }
    };
    q.push("a.id IN (SELECT l.event_id FROM audit_event_link l WHERE l.target_id = ");
    q.push_value(id.clone());
    q.push(" AND ");
    push_roles(q, "l", param);
    match target_type {
        Some(target_type) => q.push(" AND l.target_type = ").push_value(target_type),
        // Any type, but not an agent's identifier.
        None => q.push(" AND l.target_type <> ''"),
    };
    q.push(")");
}

/// `(k0, k1, ..., id)` strictly after (or before, going backwards) the keyset.
fn push_audit_keyset<D: Dialect>(q: &mut Statement<D>, sort: &[SortKey], at: &Keyset) {
    q.push("(");
    for (i, key) in sort.iter().enumerate() {
        let beyond = if key.descending != at.backwards { " < " } else { " > " };
        let column = sort_column(key);
        q.push(format!("({column}{beyond}"));
        push_sort_bind(q, &at.values[i]);
        q.push(format!(") OR ({column} = "));
        push_sort_bind(q, &at.values[i]);
        q.push(" AND ");
    }
    q.push(format!("a.id {} ", if at.backwards { "<" } else { ">" }));
    q.push_value(at.id.clone());
    q.push(")".repeat(sort.len() + 1));
}
