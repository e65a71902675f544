//! A search across several types (`GET [base]?_type=...`): one search per type, each confined
//! exactly as the type-level search is, merged into one order. The position of each type is
//! kept on its own (a keyset of its own order), so paging is stateless and stable under
//! concurrent writes like a type-level search: no match is skipped or repeated because of
//! what another type holds.

use super::ResourceService;
use crate::DomainError;
use crate::caller::Caller;
use std::cmp::Ordering;
use termin_fhir::{Issue, IssueCode, ResourceType};
use termin_store::{Keyset, ResourceVersion, SearchRequest, SortKey, SortParam};

/// Where a system search continues in one of its types.
#[derive(Debug, Clone, PartialEq)]
pub enum Continuation {
    /// From the type's first match.
    Start,
    /// Strictly after this position of the type's order.
    After(Keyset),
    /// Every match of the type has been returned.
    Done,
}

/// A page request of a system search: one search per type (their `page` is ignored; the
/// continuation says where each resumes), in the order that breaks ties between types.
#[derive(Debug, Clone)]
pub struct SystemSearch {
    pub searches: Vec<(SearchRequest, Continuation)>,
    /// Page size; 0 only counts (`_summary=count`).
    pub count: usize,
}

#[derive(Debug, Clone)]
pub struct SystemPage {
    pub matches: Vec<ResourceVersion>,
    /// The number of matches of all types: when every type's is known (counted or from a
    /// first page holding them all).
    pub total: Option<u64>,
    /// Where each type continues, when any has more matches.
    pub next: Option<Vec<(ResourceType, Continuation)>>,
}

/// The orders a merge can reproduce from the resources alone, exactly as the backends sort.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MergeOrder {
    Id { descending: bool },
    LastUpdated { descending: bool },
}

impl MergeOrder {
    fn of(sort: &[SortKey]) -> Result<MergeOrder, DomainError> {
        match sort {
            [] => Ok(MergeOrder::Id { descending: false }),
            [SortKey { param: SortParam::Id, descending }] => Ok(MergeOrder::Id { descending: *descending }),
            [SortKey { param: SortParam::Indexed { param, .. }, descending }] if param == "_lastUpdated" => {
                Ok(MergeOrder::LastUpdated { descending: *descending })
            }
            _ => Err(DomainError::invalid(
                Issue::error(
                    IssueCode::NotSupported,
                    "A search across types sorts by one of _id, -_id, _lastUpdated or -_lastUpdated",
                )
                .at("_sort"),
            )),
        }
    }

    /// As the backends order one type: the key, then the id ascending (so `-_id` is simply
    /// descending ids). Ids compare bytewise, as both backends' collations do.
    fn compare(self, a: &ResourceVersion, b: &ResourceVersion) -> Ordering {
        let by_id = a.id.as_bytes().cmp(b.id.as_bytes());
        match self {
            MergeOrder::Id { descending: false } => by_id,
            MergeOrder::Id { descending: true } => by_id.reverse(),
            MergeOrder::LastUpdated { descending } => {
                let by_time = a.last_updated.cmp(&b.last_updated);
                if descending { by_time.reverse() } else { by_time }.then(by_id)
            }
        }
    }
}

/// One type's part of a page.
struct TypePart {
    request: SearchRequest,
    continuation: Continuation,
    matches: Vec<ResourceVersion>,
    next: Option<Keyset>,
    taken: usize,
}

impl ResourceService {
    /// Runs a system search page (see the module documentation); every type's search is
    /// confined as [`ResourceService::search`] confines it, and the returned matches are
    /// audited as one `search-system` access.
    pub async fn search_system(&self, ctx: &Caller, search: &SystemSearch) -> Result<SystemPage, DomainError> {
        let mut parts = Vec::with_capacity(search.searches.len());
        let mut total = Some(0u64);
        for (request, continuation) in &search.searches {
            let order = MergeOrder::of(&request.sort)?;
            let mut request = request.clone();
            request.page = match continuation {
                Continuation::Start => None,
                Continuation::After(keyset) => Some(keyset.clone()),
                // Only counted, when a total is asked for.
                Continuation::Done => None,
            };
            request.count = if *continuation == Continuation::Done { 0 } else { search.count };
            let page = if *continuation == Continuation::Done && !request.total {
                None
            } else {
                Some(self.kernel.search(ctx, &request).await?)
            };
            total = match (total, page.as_ref().and_then(|p| p.total)) {
                (Some(sum), Some(count)) => Some(sum + count),
                _ => None,
            };
            let (matches, next) = page.map_or((Vec::new(), None), |p| (p.matches, p.next));
            parts.push((order, TypePart { request, continuation: continuation.clone(), matches, next, taken: 0 }));
        }
        let Some(order) = parts.first().map(|(order, _)| *order) else {
            return Ok(SystemPage { matches: Vec::new(), total, next: None });
        };
        let mut merged: Vec<(usize, &ResourceVersion)> = Vec::new();
        for (index, (_, part)) in parts.iter().enumerate() {
            merged.extend(part.matches.iter().map(|version| (index, version)));
        }
        // Stable: equal keys keep the type order.
        merged.sort_by(|(_, a), (_, b)| order.compare(a, b));
        merged.truncate(search.count);
        let matches: Vec<ResourceVersion> = merged.iter().map(|(_, version)| (*version).clone()).collect();
        let taken: Vec<usize> = merged.iter().map(|(index, _)| *index).collect();
        for index in taken {
            parts[index].1.taken += 1;
        }
        let mut next = Vec::with_capacity(parts.len());
        for (_, part) in parts {
            let resource_type = part.request.resource_type;
            next.push((resource_type, self.continuation(ctx, part).await?));
        }
        let more = search.count > 0 && next.iter().any(|(_, c)| *c != Continuation::Done);
        self.audit_reads(ctx, "search-system", &matches).await;
        Ok(SystemPage { matches, total, next: more.then_some(next) })
    }

    /// Where a type continues after `part.taken` of its fetched matches went into the page.
    async fn continuation(&self, ctx: &Caller, part: TypePart) -> Result<Continuation, DomainError> {
        if part.continuation == Continuation::Done || part.taken == 0 {
            return Ok(part.continuation);
        }
        if part.taken == part.matches.len() {
            return Ok(part.next.map_or(Continuation::Done, Continuation::After));
        }
        // The backend's keyset after the last match taken: the same search cut at that match.
        let mut request = part.request;
        request.count = part.taken;
        request.total = false;
        let page = self.kernel.search(ctx, &request).await?;
        // Without one (matches deleted meanwhile), resume where this page began: a match may
        // come twice, none is skipped.
        Ok(page.next.map_or(part.continuation, Continuation::After))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use termin_store::IndexKind;

    fn version(resource_type: ResourceType, id: &str, at: &str) -> ResourceVersion {
        ResourceVersion { resource_type, id: id.into(), version: 1, last_updated: at.parse().unwrap(), body: None }
    }

    #[test]
    fn merge_orders_follow_the_backends_order() {
        let a = version(ResourceType::Slot, "a", "2026-01-01T10:00:00Z");
        let b = version(ResourceType::Schedule, "b", "2026-01-01T09:00:00Z");
        let c = version(ResourceType::Slot, "c", "2026-01-01T09:00:00Z");
        let by_time = MergeOrder::LastUpdated { descending: false };
        assert_eq!(by_time.compare(&a, &b), Ordering::Greater);
        assert_eq!(by_time.compare(&b, &c), Ordering::Less, "ties by id");
        let newest = MergeOrder::LastUpdated { descending: true };
        assert_eq!(newest.compare(&a, &b), Ordering::Less);
        assert_eq!(newest.compare(&b, &c), Ordering::Less, "ties by id ascending, as the backends break them");
        assert_eq!(MergeOrder::Id { descending: true }.compare(&a, &c), Ordering::Greater);
    }

    #[test]
    fn only_sorts_by_id_or_last_updated_merge() {
        let key = |param: SortParam, descending| SortKey { param, descending };
        assert_eq!(MergeOrder::of(&[]).unwrap(), MergeOrder::Id { descending: false });
        let updated = SortParam::Indexed { param: "_lastUpdated".into(), kind: IndexKind::Date };
        assert_eq!(MergeOrder::of(&[key(updated, true)]).unwrap(), MergeOrder::LastUpdated { descending: true });
        let start = SortParam::Indexed { param: "start".into(), kind: IndexKind::Date };
        assert!(MergeOrder::of(&[key(start, false)]).is_err());
        assert!(MergeOrder::of(&[key(SortParam::Id, false), key(SortParam::Id, true)]).is_err());
    }
}
