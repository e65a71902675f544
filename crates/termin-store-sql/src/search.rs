//! Running a search: one page in keyset order, the total, and `_include`/`_revinclude`. The
//! steps and statements are the same on either backend; only the dialect differs.

use crate::Statement;
use crate::audit::AUDIT_VERSION_COLUMNS;
use crate::query::{IdentifierReference, MAX_IDENTIFIED_TARGETS, SearchSql, Select, push_list, push_roles};
use crate::{Dialect, PushValue, Reader, SqlResult, Sqlx, decode_version_from};
use std::borrow::Cow;
use std::collections::HashSet;
use termin_fhir::ResourceType;
use termin_store::{
    Filter, Include, IndexKind, Keyset, ResourceVersion, SearchPage, SearchRequest, SortKey, SortParam, SortValue,
    StoreResult,
};

/// Includes stop after this many resources, and iteration after this many rounds, so a
/// reference cycle or a huge fan-out cannot make a page unbounded.
const MAX_INCLUDED: usize = 1000;
const MAX_INCLUDE_ROUNDS: usize = 8;

/// Rows of `res_type, res_id, version, last_updated, body`, and the sort columns `k0, k1, …`
/// of `sort`.
async fn versions<D: Dialect, R: Reader<D>>(
    conn: &mut R,
    query: Statement<D>,
    sort: &[SortKey],
) -> StoreResult<Vec<(ResourceVersion, Vec<SortValue>)>> {
    let rows = conn.fetch_all(query).await?;
    rows.iter().map(|row| Ok((decode_version_from::<D, R>(row)?, sort_values::<D, R>(row, sort)?))).collect()
}

fn sort_values<D: Dialect, R: Reader<D>>(row: &R::Row, sort: &[SortKey]) -> SqlResult<Vec<SortValue>, D> {
    sort_columns(sort)
        .map(|(column, kind)| {
            let column = column.as_str();
            Ok(match kind {
                SortColumn::Integer => SortValue::Integer(R::integer(row, column.into())?),
                SortColumn::Real => SortValue::Real(R::real(row, column.into())?),
                SortColumn::Text => SortValue::Text(R::text(row, column.into())?),
            })
        })
        .collect()
}

/// The single integer the query selects.
async fn count<D: Dialect, R: Reader<D>>(conn: &mut R, query: Statement<D>) -> SqlResult<i64, D> {
    match conn.fetch_all(query).await?.first() {
        Some(row) => R::integer(row, 0.into()),
        None => Ok(0),
    }
}

/// Rows of two text columns: a resource type and an id.
async fn keys<D: Dialect, R: Reader<D>>(conn: &mut R, query: Statement<D>) -> SqlResult<Vec<(String, String)>, D> {
    let rows = conn.fetch_all(query).await?;
    rows.iter().map(|row| Ok((R::text(row, 0.into())?, R::text(row, 1.into())?))).collect()
}

/// How the sort column `k<i>` of a sort key is decoded.
enum SortColumn {
    Integer,
    Real,
    Text,
}

/// The sort columns of a page query (`k0`, `k1`, …) and how to decode each.
fn sort_columns(sort: &[SortKey]) -> impl Iterator<Item = (String, SortColumn)> + '_ {
    sort.iter().enumerate().map(|(i, key)| {
        let column = match &key.param {
            SortParam::Indexed { kind: IndexKind::Date, .. } => SortColumn::Integer,
            SortParam::Indexed { kind: IndexKind::Number | IndexKind::Quantity | IndexKind::Position, .. }
            | SortParam::Distance { .. } => SortColumn::Real,
            _ => SortColumn::Text,
        };
        (format!("k{i}"), column)
    })
}

/// Runs a search on `conn`, whose transaction gives all its statements one snapshot.
pub async fn run<D: Dialect>(conn: &mut D::Connection, request: &SearchRequest) -> StoreResult<SearchPage> {
    run_on::<D, _>(&mut Sqlx(conn), request).await
}

/// [`run`] on any [`Reader`] (one snapshot for all its statements: the caller's transaction).
pub async fn run_on<D: Dialect, R: Reader<D>>(conn: &mut R, request: &SearchRequest) -> StoreResult<SearchPage> {
    let mut page = SearchPage { matches: Vec::new(), included: Vec::new(), total: None, next: None, previous: None };
    let filter = resolve_identifier::<D, R>(conn, request).await?;
    // The number of all matches, when the first page holds them all.
    let mut everything_on_page = None;
    if request.count > 0 {
        let backwards = request.page.as_ref().is_some_and(|p| p.backwards);
        let query = SearchSql::<D>::new(&filter).build(
            request.resource_type,
            &Select::Page { sort: &request.sort, after: request.page.as_ref(), limit: request.count + 1 },
        );
        let mut rows = versions(conn, query, &request.sort).await?;
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
        if !came_from_cursor && !more {
            everything_on_page = Some(rows.len());
        }
        page.matches = rows.into_iter().map(|(version, _)| version).collect();
    }
    // A first page that is not full is every match: its size is the total, whether asked or
    // not, and counting again would only repeat the page's query.
    if let Some(total) = everything_on_page {
        page.total = Some(total as u64);
    } else if request.total {
        let total = count(conn, SearchSql::<D>::new(&filter).build(request.resource_type, &Select::Count)).await?;
        page.total = Some(u64::try_from(total).unwrap_or(0));
    }
    if !request.includes.is_empty() || !request.revincludes.is_empty() {
        page.included = includes::<D, R>(conn, request, &page.matches).await?;
    }
    Ok(page)
}

/// The request's filter, with its `:identifier` condition on the scheduling projection's
/// reference (`Appointment?actor:identifier=<SVNR>&date=…`, see [`IdentifierReference`])
/// replaced by local references to the resources that carry the identifier, found first by one
/// indexed lookup in the search's snapshot: then one resource is one range of the projection,
/// as for `actor=Patient/<id>`. The filter stays as it is when a reference carries the
/// identifier itself (not as a local reference to such a resource), or when the identifier names
/// more than [`MAX_IDENTIFIED_TARGETS`] resources.
async fn resolve_identifier<'r, D: Dialect, R: Reader<D>>(
    conn: &mut R,
    request: &'r SearchRequest,
) -> StoreResult<Cow<'r, Filter>> {
    let filter = &request.filter;
    let Some(reference) = IdentifierReference::of(request.resource_type, &filter.conditions) else {
        return Ok(Cow::Borrowed(filter));
    };
    let statement = SearchSql::<D>::new(filter).identified_targets(request.resource_type, &reference);
    let mut targets = Vec::new();
    for row in conn.fetch_all(statement).await? {
        match (R::optional_text(&row, 0.into())?, R::optional_text(&row, 1.into())?) {
            (Some(target_type), Some(id)) => targets.push((target_type, id)),
            _ => return Ok(Cow::Borrowed(filter)),
        }
    }
    if targets.len() > MAX_IDENTIFIED_TARGETS {
        return Ok(Cow::Borrowed(filter));
    }
    targets.sort();
    targets.dedup();
    let mut resolved = filter.clone();
    resolved.conditions[reference.index] = reference.resolved(targets);
    Ok(Cow::Owned(resolved))
}

type Key = (ResourceType, String);

/// Follows `_include` and `_revinclude` from the matches, and `:iterate` ones from what they
/// add, until nothing new comes (or the limits are reached).
async fn includes<D: Dialect, R: Reader<D>>(
    conn: &mut R,
    request: &SearchRequest,
    matches: &[ResourceVersion],
) -> StoreResult<Vec<ResourceVersion>> {
    let server_base = request.filter.server_base.as_deref();
    let mut seen: HashSet<Key> = matches.iter().map(|m| (m.resource_type, m.id.clone())).collect();
    let mut frontier: Vec<Key> = seen.iter().cloned().collect();
    let mut included = Vec::new();
    for round in 0..MAX_INCLUDE_ROUNDS {
        let mut found: Vec<Key> = Vec::new();
        for spec in request.includes.iter().filter(|s| round == 0 || s.iterate) {
            if let Some(query) = referenced::<D>(spec, &frontier, server_base) {
                found.extend(parse_keys(keys(conn, query).await?));
            }
        }
        for spec in request.revincludes.iter().filter(|s| round == 0 || s.iterate) {
            for query in referencing::<D>(spec, &frontier, server_base) {
                found.extend(parse_keys(keys(conn, query).await?));
            }
        }
        found.retain(|key| seen.insert(key.clone()));
        found.truncate(MAX_INCLUDED.saturating_sub(included.len()));
        if found.is_empty() {
            break;
        }
        for query in load::<D>(&found) {
            included.extend(versions(conn, query, &[]).await?.into_iter().map(|(version, _)| version));
        }
        frontier = found;
    }
    Ok(included)
}

/// Keys of served types (references to other types are not followed).
fn parse_keys(rows: Vec<(String, String)>) -> Vec<Key> {
    rows.into_iter().filter_map(|(resource_type, id)| Some((resource_type.parse().ok()?, id))).collect()
}

fn ids_of(keys: &[Key], resource_type: ResourceType) -> Vec<String> {
    keys.iter().filter(|(t, _)| *t == resource_type).map(|(_, id)| id.clone()).collect()
}

fn push_local<D: Dialect>(q: &mut Statement<D>, server_base: Option<&str>) {
    q.push(" AND (x.base IS NULL");
    if let Some(base) = server_base {
        q.push(" OR x.base = ").push_value(base.trim_end_matches('/'));
    }
    q.push(")");
}

/// Resources that the `source_type` resources in `from` refer to through the parameter.
fn referenced<D: Dialect>(spec: &Include, from: &[Key], server_base: Option<&str>) -> Option<Statement<D>> {
    let ids = ids_of(from, spec.source_type);
    if ids.is_empty() {
        return None;
    }
    if spec.source_type == ResourceType::AuditEvent {
        // What the events name, from their link rows (agents known by identifier are no
        // resources).
        let mut q = D::builder(
            "SELECT DISTINCT x.target_type, x.target_id FROM audit_event_link x WHERE x.target_type <> '' AND x.event_id IN (",
        );
        push_list(&mut q, ids);
        q.push(")");
        if let Some(param) = &spec.param {
            q.push(" AND ");
            push_roles(&mut q, "x", param);
        }
        if let Some(target) = spec.target_type {
            q.push(" AND x.target_type = ").push_value(target.as_str());
        }
        return Some(q);
    }
    let mut q = D::builder("SELECT DISTINCT x.target_type, x.target_id FROM search_reference x WHERE x.res_type = ");
    q.push_value(spec.source_type.as_str());
    q.push(" AND x.res_id IN (");
    push_list(&mut q, ids);
    q.push(") AND x.target_type IS NOT NULL AND x.target_id IS NOT NULL");
    if let Some(param) = &spec.param {
        q.push(" AND x.param = ").push_value(param.as_str());
    }
    if let Some(target) = spec.target_type {
        q.push(" AND x.target_type = ").push_value(target.as_str());
    }
    push_local(&mut q, server_base);
    Some(q)
}

/// `source_type` resources whose parameter refers to one of `to`: one query per target type.
fn referencing<D: Dialect>(spec: &Include, to: &[Key], server_base: Option<&str>) -> Vec<Statement<D>> {
    ResourceType::ALL
        .into_iter()
        .filter(|target_type| spec.target_type.is_none_or(|t| t == *target_type))
        .filter_map(|target_type| {
            let ids = ids_of(to, target_type);
            if ids.is_empty() {
                return None;
            }
            if spec.source_type == ResourceType::AuditEvent {
                let mut q = D::builder(
                    "SELECT DISTINCT 'AuditEvent' AS res_type, x.event_id FROM audit_event_link x WHERE x.target_type = ",
                );
                q.push_value(target_type.as_str());
                q.push(" AND x.target_id IN (");
                push_list(&mut q, ids);
                q.push(")");
                if let Some(param) = &spec.param {
                    q.push(" AND ");
                    push_roles(&mut q, "x", param);
                }
                return Some(q);
            }
            let mut q =
                D::builder("SELECT DISTINCT x.res_type, x.res_id FROM search_reference x WHERE x.target_type = ");
            q.push_value(target_type.as_str());
            q.push(" AND x.target_id IN (");
            push_list(&mut q, ids);
            q.push(") AND x.res_type = ").push_value(spec.source_type.as_str());
            if let Some(param) = &spec.param {
                q.push(" AND x.param = ").push_value(param.as_str());
            }
            push_local(&mut q, server_base);
            Some(q)
        })
        .collect()
}

/// The current versions of these resources (deleted or missing ones are skipped): one query
/// per type.
fn load<D: Dialect>(keys: &[Key]) -> Vec<Statement<D>> {
    ResourceType::ALL
        .into_iter()
        .filter_map(|resource_type| {
            let ids = ids_of(keys, resource_type);
            if ids.is_empty() {
                return None;
            }
            if resource_type == ResourceType::AuditEvent {
                let mut q = D::builder(format!("SELECT {AUDIT_VERSION_COLUMNS} FROM audit_event a WHERE a.id IN ("));
                push_list(&mut q, ids);
                q.push(") ORDER BY a.id");
                return Some(q);
            }
            let mut q = D::builder(
                "SELECT res_type, res_id, version, last_updated, body FROM resource WHERE body IS NOT NULL AND res_type = ",
            );
            q.push_value(resource_type.as_str());
            q.push(" AND res_id IN (");
            push_list(&mut q, ids);
            q.push(") ORDER BY res_id");
            Some(q)
        })
        .collect()
}
