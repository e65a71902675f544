//! Running a search: one page in keyset order, the total, and `_include`/`_revinclude`.

use crate::query::{SearchSql, Select};
use crate::{db_error, decode_version};
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite, Transaction};
use std::collections::HashSet;
use termin_fhir::ResourceType;
use termin_store::{
    Include, IndexKind, Keyset, ResourceVersion, SearchPage, SearchRequest, SortKey, SortParam, SortValue, StoreResult,
};

/// Includes stop after this many resources, and iteration after this many rounds, so a
/// reference cycle or a huge fan-out cannot make a page unbounded.
const MAX_INCLUDED: usize = 1000;
const MAX_INCLUDE_ROUNDS: usize = 8;

type Tx = Transaction<'static, Sqlite>;

pub async fn run(tx: &mut Tx, request: &SearchRequest) -> StoreResult<SearchPage> {
    let mut page = SearchPage {
        matches: Vec::new(),
        included: Vec::new(),
        total: None,
        next: None,
        previous: None,
    };
    if request.count > 0 {
        let backwards = request.page.as_ref().is_some_and(|p| p.backwards);
        let rows = SearchSql::new(&request.filter)
            .build(
                request.resource_type,
                &Select::Page {
                    sort: &request.sort,
                    after: request.page.as_ref(),
                    limit: request.count + 1,
                },
            )
            .build()
            .fetch_all(&mut **tx)
            .await
            .map_err(db_error)?;
        let mut rows = rows
            .iter()
            .map(|row| Ok((decode_version(row)?, sort_values(row, &request.sort)?)))
            .collect::<StoreResult<Vec<_>>>()?;
        let more = rows.len() > request.count;
        rows.truncate(request.count);
        if backwards {
            rows.reverse();
        }
        let position = |(version, values): &(ResourceVersion, Vec<SortValue>), backwards: bool| Keyset {
            values: values.clone(),
            id: version.id.clone(),
            backwards,
        };
        let first = rows.first().map(|r| position(r, true));
        let last = rows.last().map(|r| position(r, false));
        // A page reached through a cursor has rows on the side it came from.
        let came_from_cursor = request.page.is_some();
        (page.previous, page.next) = if backwards {
            (first.filter(|_| more), last.filter(|_| came_from_cursor))
        } else {
            (first.filter(|_| came_from_cursor), last.filter(|_| more))
        };
        page.matches = rows.into_iter().map(|(version, _)| version).collect();
    }
    if request.total {
        let total: i64 = SearchSql::new(&request.filter)
            .build(request.resource_type, &Select::Count)
            .build_query_scalar()
            .fetch_one(&mut **tx)
            .await
            .map_err(db_error)?;
        page.total = Some(u64::try_from(total).unwrap_or(0));
    }
    if !request.includes.is_empty() || !request.revincludes.is_empty() {
        page.included = includes(tx, request, &page.matches).await?;
    }
    Ok(page)
}

fn sort_values(row: &SqliteRow, sort: &[SortKey]) -> StoreResult<Vec<SortValue>> {
    sort.iter()
        .enumerate()
        .map(|(i, key)| {
            let column = format!("k{i}");
            let kind = match &key.param {
                SortParam::Id => None,
                SortParam::Indexed { kind, .. } => Some(*kind),
            };
            Ok(match kind {
                Some(IndexKind::Date) => SortValue::Integer(row.try_get(column.as_str()).map_err(db_error)?),
                Some(IndexKind::Number | IndexKind::Quantity) => {
                    SortValue::Real(row.try_get(column.as_str()).map_err(db_error)?)
                }
                _ => SortValue::Text(row.try_get(column.as_str()).map_err(db_error)?),
            })
        })
        .collect()
}

type Key = (ResourceType, String);

/// Follows `_include` and `_revinclude` from the matches, and `:iterate` ones from what they
/// add, until nothing new comes (or the limits are reached).
async fn includes(tx: &mut Tx, request: &SearchRequest, matches: &[ResourceVersion]) -> StoreResult<Vec<ResourceVersion>> {
    let mut seen: HashSet<Key> = matches.iter().map(|m| (m.resource_type, m.id.clone())).collect();
    let mut frontier: Vec<Key> = seen.iter().cloned().collect();
    let mut included = Vec::new();
    for round in 0..MAX_INCLUDE_ROUNDS {
        let mut found: Vec<Key> = Vec::new();
        for spec in request.includes.iter().filter(|s| round == 0 || s.iterate) {
            found.extend(referenced(tx, spec, &frontier, request.filter.server_base.as_deref()).await?);
        }
        for spec in request.revincludes.iter().filter(|s| round == 0 || s.iterate) {
            found.extend(referencing(tx, spec, &frontier, request.filter.server_base.as_deref()).await?);
        }
        found.retain(|key| seen.insert(key.clone()));
        found.truncate(MAX_INCLUDED.saturating_sub(included.len()));
        if found.is_empty() {
            break;
        }
        included.extend(load(tx, &found).await?);
        frontier = found;
    }
    Ok(included)
}

fn push_local(q: &mut QueryBuilder<Sqlite>, server_base: Option<&str>) {
    q.push(" AND (x.base IS NULL");
    if let Some(base) = server_base {
        q.push(" OR x.base = ").push_bind(base.trim_end_matches('/').to_owned());
    }
    q.push(")");
}

/// Resources that the `source_type` resources in `from` refer to through the parameter.
async fn referenced(tx: &mut Tx, spec: &Include, from: &[Key], server_base: Option<&str>) -> StoreResult<Vec<Key>> {
    let ids: Vec<&String> = from.iter().filter(|(t, _)| *t == spec.source_type).map(|(_, id)| id).collect();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut q = QueryBuilder::new("SELECT DISTINCT x.target_type, x.target_id FROM search_reference x WHERE x.res_type = ");
    q.push_bind(spec.source_type.as_str());
    q.push(" AND x.res_id IN (");
    let mut list = q.separated(", ");
    for id in ids {
        list.push_bind(id.clone());
    }
    q.push(") AND x.target_id IS NOT NULL");
    if let Some(param) = &spec.param {
        q.push(" AND x.param = ").push_bind(param.clone());
    }
    if let Some(target) = spec.target_type {
        q.push(" AND x.target_type = ").push_bind(target.as_str());
    }
    push_local(&mut q, server_base);
    let rows = q.build().fetch_all(&mut **tx).await.map_err(db_error)?;
    Ok(rows
        .iter()
        .filter_map(|row| {
            let target_type: String = row.try_get(0).ok()?;
            Some((target_type.parse().ok()?, row.try_get(1).ok()?))
        })
        .collect())
}

/// `source_type` resources whose parameter refers to one of `to`.
async fn referencing(tx: &mut Tx, spec: &Include, to: &[Key], server_base: Option<&str>) -> StoreResult<Vec<Key>> {
    let mut found = Vec::new();
    for target_type in ResourceType::ALL {
        if spec.target_type.is_some_and(|t| t != target_type) {
            continue;
        }
        let ids: Vec<&String> = to.iter().filter(|(t, _)| *t == target_type).map(|(_, id)| id).collect();
        if ids.is_empty() {
            continue;
        }
        let mut q = QueryBuilder::new("SELECT DISTINCT x.res_id FROM search_reference x WHERE x.target_type = ");
        q.push_bind(target_type.as_str());
        q.push(" AND x.target_id IN (");
        let mut list = q.separated(", ");
        for id in ids {
            list.push_bind(id.clone());
        }
        q.push(") AND x.res_type = ").push_bind(spec.source_type.as_str());
        if let Some(param) = &spec.param {
            q.push(" AND x.param = ").push_bind(param.clone());
        }
        push_local(&mut q, server_base);
        let rows = q.build().fetch_all(&mut **tx).await.map_err(db_error)?;
        for row in rows {
            found.push((spec.source_type, row.try_get(0).map_err(db_error)?));
        }
    }
    Ok(found)
}

/// The current versions of these resources (deleted or missing ones are skipped).
async fn load(tx: &mut Tx, keys: &[Key]) -> StoreResult<Vec<ResourceVersion>> {
    let mut out = Vec::new();
    for resource_type in ResourceType::ALL {
        let ids: Vec<&String> = keys.iter().filter(|(t, _)| *t == resource_type).map(|(_, id)| id).collect();
        if ids.is_empty() {
            continue;
        }
        let mut q = QueryBuilder::new(
            "SELECT res_type, res_id, version, last_updated, body FROM resource WHERE body IS NOT NULL AND res_type = ",
        );
        q.push_bind(resource_type.as_str());
        q.push(" AND res_id IN (");
        let mut list = q.separated(", ");
        for id in ids {
            list.push_bind(id.clone());
        }
        q.push(") ORDER BY res_id");
        let rows = q.build().fetch_all(&mut **tx).await.map_err(db_error)?;
        for row in &rows {
            out.push(decode_version(row)?);
        }
    }
    Ok(out)
}
