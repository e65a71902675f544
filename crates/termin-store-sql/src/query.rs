//! SQL for searches over current resources and history, built with bound parameters, in the
//! dialect of either backend ([`Dialect`]).
//!
//! Every search condition becomes a correlated `EXISTS` probe on an index table, except one
//! selective condition (an id, a reference, an identifier, a string prefix) that "drives" the
//! query as `r.res_id IN (subquery)`, so the database starts from the few candidate rows instead
//! of scanning the type. Without such a condition the type is walked in sort order and the probes
//! stop as soon as a page is full.

mod audit;

pub(crate) use audit::push_roles;

use crate::{Dialect, PushValue, Statement};
use jiff::{RoundMode, TimestampRound, Unit};
use std::marker::PhantomData;
use termin_fhir::ResourceType;
use termin_fhir::geo::Near;
use termin_fhir::instant::format_instant;
use termin_store::{
    Comparison, Condition, Filter, HistoryRequest, IndexKind, Keyset, QuantityMatch, RangeEnd, RangePoint, RangeTest,
    ReferenceMatch, SortKey, SortParam, SortValue, StringMatch, SystemMatch, TokenMatch, UriMatch,
};

const CURRENT_COLUMNS: &str = "r.res_type, r.res_id, r.version, r.last_updated, r.body";

/// Text that sorts after every stored text (stored texts are valid UTF-8 below U+10FFFF).
const TEXT_MAX: &str = "\u{10FFFF}";

pub fn micros(timestamp: Option<jiff::Timestamp>, unbounded: i64) -> i64 {
    timestamp.map_or(unbounded, |t| t.as_microsecond())
}

/// Ids of resources other than `exclude_id` with a date row of `param` overlapping
/// `[start, end)`: one range of `search_date_by_high` (rows of `param` ending after `start`).
pub fn overlapping<D: Dialect>(
    resource_type: &str,
    param: &str,
    (start, end): (jiff::Timestamp, jiff::Timestamp),
    exclude_id: &str,
    limit: usize,
) -> Statement<D> {
    let mut q =
        D::builder(format!("SELECT res_id FROM search_date{} WHERE res_type = ", D::index_hint("search_date_by_high")));
    q.push_value(resource_type);
    q.push(" AND param = ").push_value(param);
    q.push(" AND high > ").push_value(start.as_microsecond());
    q.push(" AND low < ").push_value(end.as_microsecond());
    q.push(" AND res_id <> ").push_value(exclude_id);
    push_limit(&mut q, limit);
    q
}

/// ` LIMIT n` with `n` written into the statement, not bound: SQLite reads a bound LIMIT while
/// planning and then re-prepares the statement every time a value is bound to it (about half
/// the instructions of a 20-entry slot page went there). Limits are page sizes, few distinct
/// values, so the prepared-statement cache still holds every variant.
fn push_limit<D: Dialect>(q: &mut Statement<D>, limit: usize) {
    q.push(format!(" LIMIT {}", i64::try_from(limit).unwrap_or(i64::MAX)));
}

fn table(kind: IndexKind) -> &'static str {
    match kind {
        IndexKind::Token => "search_token",
        IndexKind::String => "search_string",
        IndexKind::Date => "search_date",
        IndexKind::Number => "search_number",
        IndexKind::Quantity => "search_quantity",
        IndexKind::Reference => "search_reference",
        IndexKind::Uri => "search_uri",
        IndexKind::Position => "search_position",
    }
}

/// The table and, where the dialect needs it forced, its per-resource index: correlated probes
/// look up one resource's rows, and without statistics SQLite may otherwise pick a value index
/// and scan a range of it for every candidate.
fn rows_of<D: Dialect>(kind: IndexKind, alias: &str) -> String {
    let table = table(kind);
    format!("{table} {alias}{}", D::index_hint(&format!("{table}_by_resource")))
}

/// The pairs of a reference and a date parameter of one resource type that the scheduling
/// projection (`search_reference_date`) holds: the IG's slot and appointment searches. Each
/// date parameter has at most one value per resource (`Slot.start` is 1..1, Appointment's
/// `date` is `(start | requestedPeriod.start).first()`), so a projection row's `low` and `high`
/// are the resource's sort values for that date.
pub(crate) const REFERENCE_DATE_PAIRS: [(ResourceType, &str, &str); 2] =
    [(ResourceType::Slot, "schedule", "start"), (ResourceType::Appointment, "actor", "date")];

/// Builds the SQL of one search; aliases are numbered so conditions can nest (chains, `_has`).
pub struct SearchSql<'f, D> {
    filter: &'f Filter,
    next_alias: usize,
    /// While the candidates come from the projection: its date parameter, whose sort value is
    /// the projection row's own `low`/`high`.
    projected_date: Option<&'f str>,
    dialect: PhantomData<D>,
}

/// Where a search's candidates come from.
#[derive(Clone, Copy)]
enum Candidates {
    /// The ids the driving condition (its index) yields.
    Driver(usize),
    /// One range of the scheduling projection, for a reference condition to one local
    /// resource and the date conditions of its pair in [`REFERENCE_DATE_PAIRS`] (named here
    /// by the date parameter): all of them bound the range (a window's `ge` and `lt` alike).
    Projection { reference: usize, date: &'static str },
}

impl Candidates {
    fn covers(self, conditions: &[Condition], i: usize) -> bool {
        match self {
            Candidates::Driver(driver) => i == driver,
            Candidates::Projection { reference, date } => i == reference || is_date_of(&conditions[i], date),
        }
    }
}

/// A date condition on `date_param`.
fn is_date_of(condition: &Condition, date_param: &str) -> bool {
    matches!(condition, Condition::RangeAny { param, kind: IndexKind::Date, .. } if param == date_param)
}

/// The reference and date conditions the scheduling projection answers together, if the
/// search has them: a reference to one local resource of a named type and a date condition.
fn projection(resource_type: ResourceType, conditions: &[Condition]) -> Option<Candidates> {
    REFERENCE_DATE_PAIRS
        .iter()
        .filter(|(paired_type, _, _)| *paired_type == resource_type)
        .find_map(|&(_, reference_param, date_param)| {
            let reference = conditions.iter().position(|c| {
                matches!(c, Condition::ReferenceAny { param, alternatives } if param == reference_param
                    && matches!(alternatives.as_slice(), [ReferenceMatch::Local { target_type: Some(_), version: None, .. }]))
            })?;
            conditions.iter().any(|c| is_date_of(c, date_param)).then_some(())?;
            Some(Candidates::Projection { reference, date: date_param })
        })
}

/// How many resources an identifier may name for [`IdentifierReference::resolved`] to stand in
/// for it; beyond that the `:identifier` condition stays as it is.
pub(crate) const MAX_IDENTIFIED_TARGETS: usize = 100;

/// A `:identifier` condition on the reference parameter of a pair in [`REFERENCE_DATE_PAIRS`]
/// (`Appointment?actor:identifier=<SVNR>`), in a search that also has a date condition of
/// that pair. Once the identifier is resolved to the resources that carry it, the condition is
/// a reference to those (local) resources, and with one of them the scheduling projection
/// answers the search as it answers `actor=Patient/<id>`.
pub(crate) struct IdentifierReference<'f> {
    /// Its position among the filter's conditions.
    pub index: usize,
    param: &'f str,
    /// The identifiers (`system|value`, `|value`, `value`) it accepts.
    identifiers: Vec<(&'f SystemMatch, &'f str)>,
}

impl<'f> IdentifierReference<'f> {
    /// The first such condition of a search, if it has one.
    pub fn of(resource_type: ResourceType, conditions: &'f [Condition]) -> Option<Self> {
        let &(_, reference_param, date_param) =
            REFERENCE_DATE_PAIRS.iter().find(|(paired_type, _, _)| *paired_type == resource_type)?;
        if !conditions.iter().any(|c| is_date_of(c, date_param)) {
            return None;
        }
        conditions.iter().enumerate().find_map(|(index, condition)| match condition {
            Condition::ReferenceAny { param, alternatives } if param == reference_param && !alternatives.is_empty() => {
                let identifiers = alternatives
                    .iter()
                    .map(|alternative| match alternative {
                        ReferenceMatch::Identifier { system, value } => Some((system, value.as_str())),
                        _ => None,
                    })
                    .collect::<Option<Vec<_>>>()?;
                Some(IdentifierReference { index, param, identifiers })
            }
            _ => None,
        })
    }

    /// What the condition matches when a reference carries none of the identifiers itself
    /// except as a local reference to a resource that has one (which is what the statement of
    /// [`SearchSql::identified_targets`] checks): the local references to `targets`, the
    /// resources that carry one. No target: nothing matches.
    pub fn resolved(&self, targets: Vec<(String, String)>) -> Condition {
        if targets.is_empty() {
            return Condition::IdIn(Vec::new());
        }
        let alternatives = targets
            .into_iter()
            .map(|(target_type, id)| ReferenceMatch::Local { target_type: Some(target_type), id, version: None })
            .collect();
        Condition::ReferenceAny { param: self.param.to_owned(), alternatives }
    }
}

/// How a query selects its rows: the page, the total, or ids only.
pub enum Select<'s> {
    Page { sort: &'s [SortKey], after: Option<&'s Keyset>, limit: usize },
    Count,
    Ids { limit: usize },
}

impl<'f, D: Dialect> SearchSql<'f, D> {
    pub fn new(filter: &'f Filter) -> Self {
        SearchSql { filter, next_alias: 0, projected_date: None, dialect: PhantomData }
    }

    /// The resources of any type that carry one of the condition's identifiers (rows of
    /// `res_type`, `res_id`; at most [`MAX_IDENTIFIED_TARGETS`] + 1), and one row of two NULLs
    /// if a `resource_type` reference of the parameter matches one of the identifiers by its own
    /// `Reference.identifier` without referring locally to a resource that carries one: a
    /// match that local references to the targets would miss. Both are index lookups
    /// (`search_token_by_code`, `search_reference_by_identifier`).
    pub(crate) fn identified_targets(
        &mut self,
        resource_type: ResourceType,
        reference: &IdentifierReference<'_>,
    ) -> Statement<D> {
        let mut q = D::builder("SELECT res_type, res_id FROM (");
        for (i, (system, value)) in reference.identifiers.iter().enumerate() {
            if i > 0 {
                q.push(" UNION ");
            }
            let token = self.alias("i");
            q.push(format!(
                "SELECT {token}.res_type, {token}.res_id FROM search_token {token} WHERE {token}.res_type IN ("
            ));
            push_list(&mut q, ResourceType::ALL.iter().map(|t| t.as_str()));
            q.push(format!(") AND {token}.param = 'identifier' AND {token}.code = "));
            q.push_value((*value).to_owned());
            push_system(&mut q, &format!("{token}.system"), system);
        }
        push_limit(&mut q, MAX_IDENTIFIED_TARGETS + 1);
        let (link, token) = (self.alias("x"), self.alias("i"));
        q.push(format!(
            ") targets UNION ALL SELECT NULL, NULL WHERE EXISTS (SELECT 1 FROM search_reference {link} WHERE {link}.res_type = "
        ));
        q.push_value(resource_type.as_str());
        q.push(format!(" AND {link}.param = ")).push_value(reference.param.to_owned());
        q.push(" AND ");
        push_any(&mut q, &reference.identifiers, |q, (system, value)| {
            q.push(format!("{link}.identifier_value = "));
            q.push_value((*value).to_owned());
            push_system(q, &format!("{link}.identifier_system"), system);
        });
        q.push(format!(" AND NOT ({link}.target_id IS NOT NULL AND "));
        self.push_local(&mut q, &link);
        q.push(format!(
            " AND EXISTS (SELECT 1 FROM search_token {token}{} WHERE {token}.res_type = {link}.target_type \
             AND {token}.res_id = {link}.target_id AND {token}.param = 'identifier' AND ",
            D::index_hint("search_token_by_resource")
        ));
        push_any(&mut q, &reference.identifiers, |q, (system, value)| {
            q.push(format!("{token}.code = "));
            q.push_value((*value).to_owned());
            push_system(q, &format!("{token}.system"), system);
        });
        q.push(")))");
        q
    }

    fn alias(&mut self, prefix: &str) -> String {
        self.next_alias += 1;
        format!("{prefix}{}", self.next_alias)
    }

    /// The complete query over the current resources of `resource_type`.
    pub fn build(&mut self, resource_type: ResourceType, select: &Select<'_>) -> Statement<D> {
        if resource_type == ResourceType::AuditEvent {
            return self.build_audit(select);
        }
        let conditions = &self.filter.conditions;
        let driver = choose_driver(conditions);
        // A driver made of index rows yields only current resources (a deletion removes its
        // rows), so candidates can be filtered and ordered on the indexes alone; the resource
        // rows, bodies and all, are read for the page only.
        let index_driver =
            driver.filter(|&i| !matches!(conditions[i], Condition::IdIn(_) | Condition::ReferencedBy { .. }));
        let candidates = projection(resource_type, conditions).or(index_driver.map(Candidates::Driver));
        let mut q = D::builder("SELECT ");
        match (select, candidates) {
            (Select::Count, Some(candidates)) => {
                q.push("count(*) FROM (");
                self.push_candidates(&mut q, resource_type, candidates, None);
                // PostgreSQL wants every subquery in FROM named.
                q.push(") candidates");
                return q;
            }
            (Select::Page { sort, after, limit }, Some(candidates)) => {
                self.push_page_columns(&mut q, resource_type, sort);
                q.push(" FROM resource r WHERE r.res_type = ");
                q.push_value(resource_type.as_str());
                // The candidates carry their sort values along; IN wants the id alone.
                q.push(" AND r.res_id IN (SELECT res_id FROM (");
                self.push_candidates(&mut q, resource_type, candidates, Some((sort, *after, *limit)));
                q.push(") page)");
                self.push_order(&mut q, sort, *after, *limit, "r.res_id");
                return q;
            }
            (Select::Page { sort, .. }, None) => self.push_page_columns(&mut q, resource_type, sort),
            (Select::Count, None) => {
                q.push("count(*)");
            }
            (Select::Ids { .. }, _) => {
                q.push("r.res_id");
            }
        }
        q.push(" FROM resource r WHERE r.res_type = ");
        q.push_value(resource_type.as_str()).push(" AND r.body IS NOT NULL");
        for (i, condition) in conditions.iter().enumerate() {
            q.push(" AND ");
            if Some(i) == driver {
                q.push("r.res_id IN (");
                self.push_ids(&mut q, resource_type, condition);
                q.push(")");
            } else {
                self.push_condition(&mut q, resource_type, "r.res_id", condition);
            }
        }
        match select {
            Select::Page { sort, after, limit } => {
                if let Some(after) = after {
                    q.push(" AND ");
                    self.push_keyset(&mut q, resource_type, "r.res_id", sort, after);
                }
                self.push_order(&mut q, sort, *after, *limit, "r.res_id");
            }
            Select::Count => {}
            Select::Ids { limit } => {
                q.push(" ORDER BY r.res_id");
                push_limit(&mut q, *limit);
            }
        }
        q
    }

    fn push_page_columns(&mut self, q: &mut Statement<D>, resource_type: ResourceType, sort: &[SortKey]) {
        q.push(CURRENT_COLUMNS);
        for (i, key) in sort.iter().enumerate() {
            q.push(", ");
            self.push_sort_value(q, resource_type, "r.res_id", key);
            q.push(format!(" AS k{i}"));
        }
    }

    /// `ORDER BY k0, k1, ..., id LIMIT n` over selected sort columns `k<i>`.
    fn push_order(&self, q: &mut Statement<D>, sort: &[SortKey], after: Option<&Keyset>, limit: usize, id: &str) {
        let backwards = after.is_some_and(|a| a.backwards);
        q.push(" ORDER BY ");
        for (i, key) in sort.iter().enumerate() {
            q.push(format!("k{i} {}, ", direction(key.descending != backwards)));
        }
        q.push(format!("{id} {}", direction(backwards)));
        push_limit(q, limit);
    }

    /// The distinct candidate ids that satisfy every other condition; with a page, only that
    /// page's ids, in page order. From the projection, sorted by its date, the rows come in
    /// index order and the statement stops when the page is full.
    fn push_candidates(
        &mut self,
        q: &mut Statement<D>,
        resource_type: ResourceType,
        candidates: Candidates,
        page: Option<(&[SortKey], Option<&Keyset>, usize)>,
    ) {
        let conditions = &self.filter.conditions;
        if let Candidates::Projection { date, .. } = candidates {
            self.projected_date = Some(date);
        }
        q.push("SELECT DISTINCT c.res_id");
        if let Some((sort, _, _)) = page {
            for (i, key) in sort.iter().enumerate() {
                q.push(", ");
                self.push_sort_value(q, resource_type, "c.res_id", key);
                q.push(format!(" AS k{i}"));
            }
        }
        match candidates {
            Candidates::Driver(driver) => {
                q.push(" FROM (");
                self.push_ids(q, resource_type, &conditions[driver]);
                q.push(") c WHERE 1 = 1");
            }
            Candidates::Projection { reference, date } => {
                q.push(format!(
                    " FROM search_reference_date c{} WHERE c.res_type = ",
                    D::index_hint("search_reference_date_by_target")
                ));
                q.push_value(resource_type.as_str());
                q.push(" AND c.param = ").push_value(indexed(&conditions[reference]).0.to_owned());
                q.push(" AND c.date_param = ").push_value(date.to_owned());
                q.push(" AND ");
                self.push_row_match(q, "c", &conditions[reference]);
                // Every date condition of the pair tests the row's own `low`/`high` (the
                // resource's one value of that date), so a window's two bounds both limit the
                // range and the scan stops at the window's end.
                for condition in conditions.iter().filter(|c| is_date_of(c, date)) {
                    q.push(" AND ");
                    self.push_row_match(q, "c", condition);
                }
            }
        }
        for (i, condition) in conditions.iter().enumerate() {
            if !candidates.covers(conditions, i) {
                q.push(" AND ");
                self.push_condition(q, resource_type, "c.res_id", condition);
            }
        }
        if let Some((sort, after, limit)) = page {
            if let Some(after) = after {
                q.push(" AND ");
                self.push_keyset(q, resource_type, "c.res_id", sort, after);
            }
            self.push_order(q, sort, after, limit, "c.res_id");
        }
        self.projected_date = None;
    }

    /// `(k0, k1, ..., id)` strictly after (or before, going backwards) the keyset, spelled out
    /// because keys may sort in different directions.
    fn push_keyset(
        &mut self,
        q: &mut Statement<D>,
        resource_type: ResourceType,
        id: &str,
        sort: &[SortKey],
        at: &Keyset,
    ) {
        q.push("(");
        for (i, key) in sort.iter().enumerate() {
            let beyond = if key.descending != at.backwards { " < " } else { " > " };
            q.push("(");
            self.push_sort_value(q, resource_type, id, key);
            q.push(beyond);
            push_sort_bind(q, &at.values[i]);
            q.push(") OR (");
            self.push_sort_value(q, resource_type, id, key);
            q.push(" = ");
            push_sort_bind(q, &at.values[i]);
            q.push(" AND ");
        }
        q.push(format!("{id} {} ", if at.backwards { "<" } else { ">" }));
        q.push_value(at.id.clone());
        q.push(")".repeat(sort.len() + 1));
    }

    /// A sort key's value for the resource whose id is `id`: lowest ascending, highest
    /// descending; resources without a value get a sentinel that sorts last.
    fn push_sort_value(&mut self, q: &mut Statement<D>, resource_type: ResourceType, id: &str, key: &SortKey) {
        let (param, kind) = match &key.param {
            SortParam::Id => {
                q.push(id.to_owned());
                return;
            }
            SortParam::Indexed { param, kind } => (param, *kind),
            SortParam::Distance { param, from } => {
                // The nearest position's chord (see `termin_fhir::geo`), which orders as the
                // great-circle distance does.
                let alias = self.alias("s");
                q.push(format!("coalesce((SELECT {}(", if key.descending { "max" } else { "min" }));
                push_chord_squared(q, &alias, from.unit_vector());
                q.push(format!(") FROM {} WHERE ", rows_of::<D>(IndexKind::Position, &alias)));
                self.push_row_owner(q, &alias, resource_type, id, param);
                q.push("), ");
                q.push_value(if key.descending { f64::MIN } else { f64::MAX });
                q.push(")");
                return;
            }
        };
        if id == "c.res_id" && kind == IndexKind::Date && self.projected_date == Some(param.as_str()) {
            q.push(if key.descending { "c.high" } else { "c.low" });
            return;
        }
        let alias = self.alias("s");
        let aggregate = if key.descending { "max" } else { "min" };
        let column = match kind {
            IndexKind::Token => format!("{alias}.code"),
            IndexKind::String => format!("{alias}.normalized"),
            IndexKind::Date | IndexKind::Number | IndexKind::Quantity => {
                format!("{alias}.{}", if key.descending { "high" } else { "low" })
            }
            IndexKind::Reference => format!(
                "coalesce({alias}.target_type || '/' || {alias}.target_id, {alias}.url, {alias}.identifier_value)"
            ),
            IndexKind::Uri => format!("{alias}.uri"),
            // Positions have no order of their own (distances are `SortParam::Distance`):
            // south to north.
            IndexKind::Position => format!("{alias}.latitude"),
        };
        q.push(format!("coalesce((SELECT {aggregate}({column}) FROM {} WHERE ", rows_of::<D>(kind, &alias)));
        self.push_row_owner(q, &alias, resource_type, id, param);
        if kind == IndexKind::Token {
            self.push_valid_now(q, &alias);
        }
        q.push("), ");
        match (kind, key.descending) {
            (IndexKind::Date, false) => q.push_value(i64::MAX),
            (IndexKind::Date, true) => q.push_value(i64::MIN),
            (IndexKind::Number | IndexKind::Quantity | IndexKind::Position, false) => q.push_value(f64::MAX),
            (IndexKind::Number | IndexKind::Quantity | IndexKind::Position, true) => q.push_value(f64::MIN),
            (_, false) => q.push_value(TEXT_MAX),
            (_, true) => q.push_value(""),
        };
        q.push(")");
    }

    /// `alias.res_type = ? AND alias.res_id = <id> AND alias.param = ?`
    fn push_row_owner(&self, q: &mut Statement<D>, alias: &str, resource_type: ResourceType, id: &str, param: &str) {
        q.push(format!("{alias}.res_type = "));
        q.push_value(resource_type.as_str());
        q.push(format!(" AND {alias}.res_id = {id} AND {alias}.param = "));
        q.push_value(param.to_owned());
    }

    /// Token rows with a validity window count only inside it.
    fn push_valid_now(&self, q: &mut Statement<D>, alias: &str) {
        let now = self.filter.now.as_microsecond();
        q.push(format!(" AND ({alias}.valid_from IS NULL OR {alias}.valid_from <= "));
        q.push_value(now);
        q.push(format!(") AND ({alias}.valid_until IS NULL OR {alias}.valid_until > "));
        q.push_value(now);
        q.push(")");
    }

    /// A reference row that points at this server: relative, or under the server base.
    fn push_local(&self, q: &mut Statement<D>, alias: &str) {
        q.push(format!("({alias}.base IS NULL"));
        if let Some(base) = &self.filter.server_base {
            q.push(format!(" OR {alias}.base = "));
            q.push_value(base.trim_end_matches('/').to_owned());
        }
        q.push(")");
    }

    /// The condition as a predicate on the resource whose id is `id`.
    fn push_condition(&mut self, q: &mut Statement<D>, resource_type: ResourceType, id: &str, condition: &Condition) {
        match condition {
            // No id: nothing matches (`IN ()` is no SQL).
            Condition::IdIn(ids) if ids.is_empty() => {
                q.push("1 = 0");
            }
            Condition::IdIn(ids) => {
                q.push(format!("{id} IN ("));
                push_list(q, ids);
                q.push(")");
            }
            Condition::Not(inner) => {
                q.push("NOT (");
                self.push_condition(q, resource_type, id, inner);
                q.push(")");
            }
            Condition::Any(alternatives) => {
                push_any(q, alternatives, |q, alternative| self.push_condition(q, resource_type, id, alternative));
            }
            Condition::Missing { param, kind, missing } => {
                let alias = self.alias("m");
                q.push(if *missing { "NOT EXISTS (SELECT 1 FROM " } else { "EXISTS (SELECT 1 FROM " });
                q.push(format!("{} WHERE ", rows_of::<D>(*kind, &alias)));
                self.push_row_owner(q, &alias, resource_type, id, param);
                if *kind == IndexKind::Token {
                    self.push_valid_now(q, &alias);
                }
                q.push(")");
            }
            Condition::Chain { param, target_type, condition } => {
                let link = self.alias("c");
                let target = self.alias("t");
                q.push(format!(
                    "EXISTS (SELECT 1 FROM search_reference {link}{} \
                     JOIN resource {target} ON {target}.res_type = {link}.target_type AND {target}.res_id = {link}.target_id WHERE ",
                    D::index_hint("search_reference_by_resource")
                ));
                self.push_row_owner(q, &link, resource_type, id, param);
                q.push(format!(" AND {link}.target_type = "));
                q.push_value(target_type.as_str());
                q.push(" AND ");
                self.push_local(q, &link);
                q.push(format!(" AND {target}.body IS NOT NULL AND "));
                self.push_condition(q, *target_type, &format!("{target}.res_id"), condition);
                q.push(")");
            }
            Condition::ReferencedBy { source_type, param, condition } => {
                let link = self.alias("h");
                let source = self.alias("t");
                q.push(format!(
                    "EXISTS (SELECT 1 FROM search_reference {link}{} \
                     JOIN resource {source} ON {source}.res_type = {link}.res_type AND {source}.res_id = {link}.res_id \
                     WHERE {link}.target_type = ",
                    D::index_hint("search_reference_to_target")
                ));
                q.push_value(resource_type.as_str());
                q.push(format!(" AND {link}.target_id = {id} AND {link}.res_type = "));
                q.push_value(source_type.as_str());
                q.push(format!(" AND {link}.param = "));
                q.push_value(param.clone());
                q.push(" AND ");
                self.push_local(q, &link);
                q.push(format!(" AND {source}.body IS NOT NULL AND "));
                self.push_condition(q, *source_type, &format!("{source}.res_id"), condition);
                q.push(")");
            }
            _ => {
                let (param, kind) = indexed(condition);
                let alias = self.alias("x");
                q.push(format!("EXISTS (SELECT 1 FROM {} WHERE ", rows_of::<D>(kind, &alias)));
                self.push_row_owner(q, &alias, resource_type, id, param);
                q.push(" AND ");
                self.push_row_match(q, &alias, condition);
                q.push(")");
            }
        }
    }

    /// The ids of current `resource_type` resources that satisfy a drivable condition (see
    /// [`choose_driver`]), as a standalone subquery.
    fn push_ids(&mut self, q: &mut Statement<D>, resource_type: ResourceType, condition: &Condition) {
        match condition {
            Condition::IdIn(ids) => {
                q.push("VALUES ");
                for (i, id) in ids.iter().enumerate() {
                    if i > 0 {
                        q.push(", ");
                    }
                    q.push("(");
                    q.push_value(id.clone());
                    q.push(")");
                }
            }
            Condition::Chain { param, target_type, condition } => {
                let link = self.alias("c");
                q.push(format!("SELECT {link}.res_id"));
                self.push_links(q, &link, resource_type, param, *target_type);
                let target = self.alias("t");
                q.push(format!(
                    " AND EXISTS (SELECT 1 FROM resource {target} WHERE {target}.res_type = {link}.target_type \
                     AND {target}.res_id = {link}.target_id AND {target}.body IS NOT NULL) AND {link}.target_id IN ("
                ));
                self.push_ids(q, *target_type, condition);
                q.push(")");
            }
            Condition::ReferencedBy { source_type, param, condition } => {
                let link = self.alias("h");
                q.push(format!("SELECT {link}.target_id AS res_id"));
                self.push_links(q, &link, *source_type, param, resource_type);
                q.push(format!(" AND {link}.res_id IN ("));
                self.push_ids(q, *source_type, condition);
                q.push(")");
            }
            Condition::ReferenceAny { param, alternatives } => {
                // Local ids of one target type share a subquery (one index range per id, and a
                // statement that stays small for hundreds of ids); every other alternative gets
                // its own, so each uses its own index.
                let grouped = local_ids_by_type(alternatives);
                let others = alternatives.iter().filter(|a| !is_plain_local(a));
                for (i, subquery) in grouped.iter().map(Ok).chain(others.map(Err)).enumerate() {
                    if i > 0 {
                        q.push(" UNION ");
                    }
                    match subquery {
                        Ok((target_type, ids)) => self.push_local_ids(q, resource_type, param, *target_type, ids),
                        Err(alternative) => self.push_reference_ids(q, resource_type, param, alternative),
                    }
                }
            }
            _ => {
                let (param, kind) = indexed(condition);
                let alias = self.alias("x");
                q.push(format!("SELECT {alias}.res_id FROM {} {alias} WHERE {alias}.res_type = ", table(kind)));
                q.push_value(resource_type.as_str());
                q.push(format!(" AND {alias}.param = "));
                q.push_value(param.to_owned());
                q.push(" AND ");
                self.push_row_match(q, &alias, condition);
            }
        }
    }

    /// ` FROM` the local references of `source` resources through `param` to `target` ones.
    fn push_links(&self, q: &mut Statement<D>, link: &str, source: ResourceType, param: &str, target: ResourceType) {
        q.push(format!(" FROM search_reference {link} WHERE {link}.res_type = "));
        q.push_value(source.as_str());
        q.push(format!(" AND {link}.param = "));
        q.push_value(param.to_owned());
        q.push(format!(" AND {link}.target_type = "));
        q.push_value(target.as_str());
        q.push(" AND ");
        self.push_local(q, link);
    }

    /// The resources whose `param` refers locally to one of `ids` (of `target_type`, if given).
    fn push_local_ids(
        &mut self,
        q: &mut Statement<D>,
        resource_type: ResourceType,
        param: &str,
        target_type: Option<&str>,
        ids: &[&str],
    ) {
        let alias = self.alias("x");
        q.push(format!("SELECT {alias}.res_id FROM search_reference {alias} WHERE {alias}.res_type = "));
        q.push_value(resource_type.as_str());
        q.push(format!(" AND {alias}.param = "));
        q.push_value(param.to_owned());
        q.push(format!(" AND {alias}.target_id IN ("));
        push_list(q, ids.iter().copied());
        q.push(")");
        if let Some(target_type) = target_type {
            q.push(format!(" AND {alias}.target_type = "));
            q.push_value(target_type.to_owned());
        }
        q.push(" AND ");
        self.push_local(q, &alias);
    }

    fn push_reference_ids(
        &mut self,
        q: &mut Statement<D>,
        resource_type: ResourceType,
        param: &str,
        alternative: &ReferenceMatch,
    ) {
        let alias = self.alias("x");
        let owner = |q: &mut Statement<D>| {
            q.push(format!(" {alias}.res_type = "));
            q.push_value(resource_type.as_str());
            q.push(format!(" AND {alias}.param = "));
            q.push_value(param.to_owned());
        };
        match alternative {
            ReferenceMatch::Identifier { system, value } => {
                // Either the reference carries the identifier, or it points at a local resource
                // that has it.
                q.push(format!("SELECT {alias}.res_id FROM search_reference {alias} WHERE"));
                owner(q);
                q.push(format!(" AND {alias}.identifier_value = "));
                q.push_value(value.clone());
                push_system(q, &format!("{alias}.identifier_system"), system);
                let token = self.alias("i");
                // From the few resources with the identifier to the references to them, never the
                // other way round (a join order SQLite has to be told).
                q.push(format!(
                    " UNION SELECT {alias}.res_id FROM search_token {token} {} search_reference {alias}{} \
                     ON {alias}.target_type = {token}.res_type \
                     AND {alias}.target_id = {token}.res_id WHERE {token}.res_type IN (",
                    D::ORDERED_JOIN,
                    D::index_hint("search_reference_to_target")
                ));
                push_list(q, ResourceType::ALL.iter().map(|t| t.as_str().to_owned()));
                q.push(format!(") AND {token}.param = 'identifier' AND {token}.code = "));
                q.push_value(value.clone());
                push_system(q, &format!("{token}.system"), system);
                q.push(" AND");
                owner(q);
                q.push(" AND ");
                self.push_local(q, &alias);
            }
            _ => {
                q.push(format!("SELECT {alias}.res_id FROM search_reference {alias} WHERE"));
                owner(q);
                q.push(" AND ");
                self.push_reference_match(q, &alias, alternative);
            }
        }
    }

    /// The predicate one index row must satisfy for a value condition.
    fn push_row_match(&mut self, q: &mut Statement<D>, alias: &str, condition: &Condition) {
        q.push("(");
        match condition {
            Condition::TokenAny { alternatives, .. } => {
                push_any(q, alternatives, |q, token| push_token(q, alias, token));
                self.push_valid_now(q, alias);
            }
            Condition::TokenText { alternatives, .. } => {
                push_any(q, alternatives, |q, text| push_prefix(q, &format!("{alias}.text"), text));
                self.push_valid_now(q, alias);
            }
            Condition::TokenOfType { alternatives, .. } => {
                push_any(q, alternatives, |q, typed| {
                    q.push(format!("{alias}.type_system = "));
                    q.push_value(typed.type_system.clone());
                    q.push(format!(" AND {alias}.type_code = "));
                    q.push_value(typed.type_code.clone());
                    q.push(format!(" AND {alias}.code = "));
                    q.push_value(typed.value.clone());
                });
                self.push_valid_now(q, alias);
            }
            Condition::StringAny { alternatives, .. } => push_any(q, alternatives, |q, text| match text {
                StringMatch::StartsWith(prefix) => push_prefix(q, &format!("{alias}.normalized"), prefix),
                StringMatch::Contains(part) => {
                    q.push(format!("{}({alias}.normalized, ", D::POSITION));
                    q.push_value(part.clone());
                    q.push(") > 0");
                }
                StringMatch::Exact(value) => {
                    q.push(format!("{alias}.value = "));
                    q.push_value(value.clone());
                }
            }),
            Condition::RangeAny { alternatives, .. } => push_any(q, alternatives, |q, test| push_range(q, alias, test)),
            Condition::QuantityAny { alternatives, .. } => {
                push_any(q, alternatives, |q, quantity| push_quantity(q, alias, quantity))
            }
            Condition::ReferenceAny { alternatives, .. } => {
                push_any(q, alternatives, |q, alternative| self.push_reference_match(q, alias, alternative));
            }
            Condition::UriAny { alternatives, .. } => push_any(q, alternatives, |q, uri| match uri {
                UriMatch::Exact(value) => {
                    q.push(format!("{alias}.uri = "));
                    q.push_value(value.clone());
                }
                UriMatch::Below(value) => push_prefix(q, &format!("{alias}.uri"), value),
                UriMatch::Above(value) => {
                    q.push(format!("{}(", D::POSITION));
                    q.push_value(value.clone());
                    q.push(format!(", {alias}.uri) = 1"));
                }
            }),
            Condition::Near { area, .. } => push_near(q, alias, area),
            other => unreachable!("not a value condition: {other:?}"),
        }
        q.push(")");
    }

    fn push_reference_match(&mut self, q: &mut Statement<D>, alias: &str, alternative: &ReferenceMatch) {
        match alternative {
            ReferenceMatch::Local { target_type, id, version } => {
                q.push(format!("{alias}.target_id = "));
                q.push_value(id.clone());
                if let Some(target_type) = target_type {
                    q.push(format!(" AND {alias}.target_type = "));
                    q.push_value(target_type.clone());
                }
                if let Some(version) = version {
                    q.push(format!(" AND {alias}.version = "));
                    q.push_value(version.clone());
                }
                q.push(" AND ");
                self.push_local(q, alias);
            }
            ReferenceMatch::Url { url, version } => {
                q.push(format!("{alias}.url = "));
                q.push_value(url.clone());
                if let Some(version) = version {
                    q.push(format!(" AND {alias}.version = "));
                    q.push_value(version.clone());
                }
            }
            ReferenceMatch::Identifier { system, value } => {
                q.push(format!("({alias}.identifier_value = "));
                q.push_value(value.clone());
                push_system(q, &format!("{alias}.identifier_system"), system);
                let token = self.alias("i");
                q.push(format!(
                    ") OR ({alias}.target_id IS NOT NULL AND EXISTS (SELECT 1 FROM search_token {token}{} \
                     WHERE {token}.res_type = {alias}.target_type AND {token}.res_id = {alias}.target_id \
                     AND {token}.param = 'identifier' AND {token}.code = ",
                    D::index_hint("search_token_by_resource")
                ));
                q.push_value(value.clone());
                push_system(q, &format!("{token}.system"), system);
                q.push(") AND ");
                self.push_local(q, alias);
                q.push(")");
            }
        }
    }
}

fn direction(descending: bool) -> &'static str {
    if descending { "DESC" } else { "ASC" }
}

fn push_sort_bind<D: Dialect>(q: &mut Statement<D>, value: &SortValue) {
    match value {
        SortValue::Integer(i) => q.push_value(*i),
        SortValue::Real(r) => q.push_value(*r),
        SortValue::Text(t) => q.push_value(t.clone()),
    };
}

pub(crate) fn push_list<D: Dialect>(q: &mut Statement<D>, values: impl IntoIterator<Item = impl Into<String>>) {
    for (i, value) in values.into_iter().enumerate() {
        if i > 0 {
            q.push(", ");
        }
        q.push_value(value.into());
    }
}

/// A local reference without a version: `id` or `Type/id`.
fn is_plain_local(alternative: &ReferenceMatch) -> bool {
    matches!(alternative, ReferenceMatch::Local { version: None, .. })
}

/// The ids of the plain local alternatives, by target type, in order of appearance.
fn local_ids_by_type(alternatives: &[ReferenceMatch]) -> Vec<(Option<&str>, Vec<&str>)> {
    let mut groups: Vec<(Option<&str>, Vec<&str>)> = Vec::new();
    for alternative in alternatives {
        if let ReferenceMatch::Local { target_type, id, version: None } = alternative {
            let target_type = target_type.as_deref();
            match groups.iter_mut().find(|(t, _)| *t == target_type) {
                Some((_, ids)) => ids.push(id),
                None => groups.push((target_type, vec![id])),
            }
        }
    }
    groups
}

/// `((a) OR (b)) OR ((c) OR (d))`: the alternatives as a balanced tree. SQLite limits the depth
/// of an expression (1000) and counts the expressions enclosing a subquery again for each level
/// of nesting, so a chain `a OR b OR …` of 100 alternatives (as deep as it is long) inside a few
/// levels of chains and `_has` would exceed the limit; a balanced tree is 7 levels deep.
fn push_any<D: Dialect, T>(q: &mut Statement<D>, alternatives: &[T], mut each: impl FnMut(&mut Statement<D>, &T)) {
    fn balanced<D: Dialect, T>(q: &mut Statement<D>, items: &[T], each: &mut impl FnMut(&mut Statement<D>, &T)) {
        q.push("(");
        match items {
            [] => {}
            [one] => each(q, one),
            _ => {
                let (left, right) = items.split_at(items.len() / 2);
                balanced(q, left, each);
                q.push(" OR ");
                balanced(q, right, each);
            }
        }
        q.push(")");
    }
    balanced(q, alternatives, &mut each);
}

fn push_system<D: Dialect>(q: &mut Statement<D>, column: &str, system: &SystemMatch) {
    match system {
        SystemMatch::Any => {}
        SystemMatch::None => {
            q.push(format!(" AND {column} IS NULL"));
        }
        SystemMatch::Exactly(system) => {
            q.push(format!(" AND {column} = "));
            q.push_value(system.clone());
        }
    }
}

fn push_token<D: Dialect>(q: &mut Statement<D>, alias: &str, token: &TokenMatch) {
    match &token.code {
        Some(code) => {
            q.push(format!("{alias}.code = "));
            q.push_value(code.clone());
        }
        None => {
            q.push(format!("{alias}.code IS NOT NULL"));
        }
    }
    push_system(q, &format!("{alias}.system"), &token.system);
}

/// `column` starts with `prefix`, as an index range.
fn push_prefix<D: Dialect>(q: &mut Statement<D>, column: &str, prefix: &str) {
    q.push(format!("{column} >= "));
    q.push_value(prefix.to_owned());
    q.push(format!(" AND {column} < "));
    q.push_value(format!("{prefix}{TEXT_MAX}"));
}

fn push_range<D: Dialect>(q: &mut Statement<D>, alias: &str, test: &RangeTest) {
    push_range_of(q, (&format!("{alias}.low"), &format!("{alias}.high")), test);
}

/// [`push_range`] on the range whose ends are the columns `low` and `high`.
fn push_range_of<D: Dialect>(q: &mut Statement<D>, (low, high): (&str, &str), test: &RangeTest) {
    match test {
        RangeTest::Bound { end, comparison, point } => {
            let column = match end {
                RangeEnd::Low => low,
                RangeEnd::High => high,
            };
            let operator = match comparison {
                Comparison::Less => "<",
                Comparison::LessOrEqual => "<=",
                Comparison::Greater => ">",
                Comparison::GreaterOrEqual => ">=",
            };
            q.push(format!("{column} {operator} "));
            match point {
                RangePoint::Instant(instant) => q.push_value(micros(*instant, i64::MAX)),
                RangePoint::Number(number) => q.push_value(*number),
            };
        }
        RangeTest::All(tests) | RangeTest::AnyOf(tests) => {
            let joiner = if matches!(test, RangeTest::All(_)) { " AND " } else { " OR " };
            q.push("(");
            for (i, inner) in tests.iter().enumerate() {
                if i > 0 {
                    q.push(joiner);
                }
                push_range_of(q, (low, high), inner);
            }
            q.push(")");
        }
        RangeTest::Not(inner) => {
            q.push("NOT ");
            push_range_of(q, (low, high), inner);
        }
    }
}

fn push_quantity<D: Dialect>(q: &mut Statement<D>, alias: &str, quantity: &QuantityMatch) {
    push_range(q, alias, &quantity.test);
    if let Some(system) = &quantity.system {
        q.push(format!(" AND {alias}.system = "));
        q.push_value(system.clone());
    }
    if let Some(code) = &quantity.code {
        q.push(format!(" AND coalesce({alias}.code, {alias}.unit) = "));
        q.push_value(code.clone());
    }
}

/// The squared chord between a position row and a point of the unit sphere.
fn push_chord_squared<D: Dialect>(q: &mut Statement<D>, alias: &str, [x, y, z]: [f64; 3]) {
    q.push("(");
    for (i, (column, value)) in [("x", x), ("y", y), ("z", z)].into_iter().enumerate() {
        q.push(format!("{}({alias}.{column} - ", if i > 0 { " + " } else { "" }));
        q.push_value(value);
        q.push(format!(") * ({alias}.{column} - "));
        q.push_value(value);
        q.push(")");
    }
    q.push(")");
}

/// A position row within the area: inside its bounding box (an index range on latitude), then
/// exactly, by the chord to the centre.
fn push_near<D: Dialect>(q: &mut Statement<D>, alias: &str, area: &Near) {
    let bounds = area.bounding_box();
    q.push(format!("{alias}.latitude >= "));
    q.push_value(bounds.latitudes.0);
    q.push(format!(" AND {alias}.latitude <= "));
    q.push_value(bounds.latitudes.1);
    if let Some((west, east)) = bounds.longitudes {
        q.push(format!(" AND {alias}.longitude >= "));
        q.push_value(west);
        q.push(format!(" AND {alias}.longitude <= "));
        q.push_value(east);
    }
    q.push(" AND ");
    push_chord_squared(q, alias, area.centre.unit_vector());
    q.push(" <= ");
    q.push_value(area.max_chord_squared());
}

/// The parameter and index table of a value condition.
fn indexed(condition: &Condition) -> (&str, IndexKind) {
    match condition {
        Condition::TokenAny { param, .. }
        | Condition::TokenText { param, .. }
        | Condition::TokenOfType { param, .. } => (param, IndexKind::Token),
        Condition::StringAny { param, .. } => (param, IndexKind::String),
        Condition::RangeAny { param, kind, .. } => (param, *kind),
        Condition::QuantityAny { param, .. } => (param, IndexKind::Quantity),
        Condition::ReferenceAny { param, .. } => (param, IndexKind::Reference),
        Condition::UriAny { param, .. } => (param, IndexKind::Uri),
        Condition::Near { param, .. } => (param, IndexKind::Position),
        other => unreachable!("not a value condition: {other:?}"),
    }
}

/// How few rows a condition is likely to select when it drives the query (lower: fewer);
/// `None` when it cannot drive (negations, `:missing`, `:contains`, one-sided ranges).
fn selectivity(condition: &Condition) -> Option<u8> {
    match condition {
        Condition::IdIn(ids) if !ids.is_empty() => Some(0),
        Condition::ReferenceAny { .. } | Condition::TokenOfType { .. } => Some(1),
        Condition::TokenAny { param, alternatives } => {
            let all_codes = alternatives.iter().all(|a| a.code.is_some());
            // Identifiers are (nearly) unique; other tokens (status, gender) are not.
            (all_codes && param.ends_with("identifier")).then_some(1)
        }
        Condition::StringAny { alternatives, .. } => {
            alternatives.iter().all(|a| !matches!(a, StringMatch::Contains(_))).then_some(2)
        }
        Condition::UriAny { alternatives, .. } => {
            alternatives.iter().all(|a| matches!(a, UriMatch::Exact(_))).then_some(1)
        }
        // A latitude band of the position index.
        Condition::Near { .. } => Some(2),
        Condition::Chain { condition, .. } | Condition::ReferencedBy { condition, .. } => selectivity(condition),
        _ => None,
    }
}

/// The most selective drivable condition, if any.
fn choose_driver(conditions: &[Condition]) -> Option<usize> {
    conditions.iter().enumerate().filter_map(|(i, c)| selectivity(c).map(|s| (s, i))).min().map(|(_, i)| i)
}

pub fn select_history<D: Dialect>(request: &HistoryRequest) -> Statement<D> {
    history_with("seq, change, res_type, res_id, version, last_updated, body", request)
}

pub fn count_history<D: Dialect>(request: &HistoryRequest) -> Statement<D> {
    history_with("count(*)", request)
}

fn history_with<D: Dialect>(columns: &str, request: &HistoryRequest) -> Statement<D> {
    let mut q = D::builder(format!("SELECT {columns} FROM resource_history WHERE ("));
    if request.types.is_empty() {
        q.push("1 = 0");
    }
    for (i, scope) in request.types.iter().enumerate() {
        q.push(if i == 0 { "(res_type = " } else { " OR (res_type = " });
        q.push_value(scope.resource_type.as_str());
        match scope.only_ids.as_deref() {
            None => {}
            Some([]) => {
                q.push(" AND 1 = 0");
            }
            Some(ids) => {
                q.push(" AND res_id IN (");
                push_list(&mut q, ids);
                q.push(")");
            }
        }
        q.push(")");
    }
    q.push(")");
    if let Some(id) = &request.id {
        q.push(" AND res_id = ").push_value(id.clone());
    }
    if let Some(since) = request.since {
        // Stored instants have whole milliseconds: the first one not before `since`.
        let since =
            since.round(TimestampRound::new().smallest(Unit::Millisecond).mode(RoundMode::Ceil)).unwrap_or(since);
        q.push(" AND last_updated >= ").push_value(format_instant(since));
    }
    if let Some((low, high)) = request.at {
        q.push(" AND last_updated < ").push_value(format_instant(high));
        q.push(
            " AND NOT EXISTS (SELECT 1 FROM resource_history later WHERE later.res_type = resource_history.res_type \
             AND later.res_id = resource_history.res_id AND later.version > resource_history.version \
             AND later.last_updated <= ",
        );
        q.push_value(format_instant(low)).push(")");
    }
    q
}
