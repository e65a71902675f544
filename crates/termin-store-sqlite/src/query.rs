//! SQL text for searches over current resources and history, built with bound parameters.

use sqlx::{QueryBuilder, Sqlite};
use termin_fhir::ResourceType;
use termin_store::{Condition, HistoryRequest, SystemMatch, TokenMatch};

const CURRENT_COLUMNS: &str = "r.res_type, r.res_id, r.version, r.last_updated, r.body";

pub fn select_current(resource_type: ResourceType, conditions: &[Condition]) -> QueryBuilder<Sqlite> {
    current_with(CURRENT_COLUMNS, resource_type, conditions)
}

pub fn select_current_ids(resource_type: ResourceType, conditions: &[Condition]) -> QueryBuilder<Sqlite> {
    current_with("r.res_id", resource_type, conditions)
}

pub fn count_current(resource_type: ResourceType, conditions: &[Condition]) -> QueryBuilder<Sqlite> {
    current_with("count(*)", resource_type, conditions)
}

fn current_with(columns: &str, resource_type: ResourceType, conditions: &[Condition]) -> QueryBuilder<Sqlite> {
    let mut q = QueryBuilder::new(format!("SELECT {columns} FROM resource r WHERE r.res_type = "));
    q.push_bind(resource_type.as_str()).push(" AND r.body IS NOT NULL");
    for condition in conditions {
        q.push(" AND ");
        push_condition(&mut q, condition);
    }
    q
}

fn push_condition(q: &mut QueryBuilder<Sqlite>, condition: &Condition) {
    match condition {
        Condition::IdIn(ids) => {
            q.push("r.res_id IN (");
            let mut list = q.separated(", ");
            for id in ids {
                list.push_bind(id.clone());
            }
            q.push(")");
        }
        Condition::TokenAny { param, alternatives } => {
            q.push(
                "EXISTS (SELECT 1 FROM search_token t WHERE t.res_type = r.res_type AND t.res_id = r.res_id AND t.param = ",
            );
            q.push_bind(param.clone()).push(" AND (");
            for (i, alternative) in alternatives.iter().enumerate() {
                if i > 0 {
                    q.push(" OR ");
                }
                push_token_match(q, alternative);
            }
            q.push("))");
        }
    }
}

fn push_token_match(q: &mut QueryBuilder<Sqlite>, token: &TokenMatch) {
    q.push("(1 = 1");
    if let Some(code) = &token.code {
        q.push(" AND t.code = ").push_bind(code.clone());
    }
    match &token.system {
        SystemMatch::Any => {}
        SystemMatch::None => {
            q.push(" AND t.system IS NULL");
        }
        SystemMatch::Exactly(system) => {
            q.push(" AND t.system = ").push_bind(system.clone());
        }
    }
    q.push(")");
}

pub fn select_history(request: &HistoryRequest) -> QueryBuilder<Sqlite> {
    history_with(
        "seq, change, res_type, res_id, version, last_updated, body",
        request,
    )
}

pub fn count_history(request: &HistoryRequest) -> QueryBuilder<Sqlite> {
    history_with("count(*)", request)
}

fn history_with(columns: &str, request: &HistoryRequest) -> QueryBuilder<Sqlite> {
    let mut q = QueryBuilder::new(format!("SELECT {columns} FROM resource_history WHERE res_type = "));
    q.push_bind(request.resource_type.as_str());
    if let Some(id) = &request.id {
        q.push(" AND res_id = ").push_bind(id.clone());
    }
    q
}
