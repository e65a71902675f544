//! The storage port: the operations the domain needs from a database, free of SQL types.
//!
//! Reads go through [`ResourceStore`]; every change goes through a [`WriteTx`] unit of work
//! so the domain can check preconditions (versions, conditional matches, and later slot
//! state) and write in one atomic step. Backends live in their own crates; this crate knows
//! no SQL (no sqlx) and, of the workspace, depends only on `termin-fhir`.

mod audit;
mod context;
mod lease;
mod mail;
mod notify;
mod scope;
mod search;

pub use audit::{
    AUDIT_ABSENT_PARAMS, AUDIT_CODE_SYSTEM, AUDIT_OUTCOME_SYSTEM, AUDIT_SEARCH_PARAMS, AuditEntry, AuditLink,
    AuditRole, audit_condition_unsupported, audit_link_roles, audit_token_system,
};
pub use context::{
    COMPARTMENT_TYPES, ORGANISATION_TYPES, OrganisationReach, PatientReach, Principal, RequestContext, StaffMember,
    TokenPrincipal,
};
pub use lease::LeaseStore;
pub use mail::{ClaimedMail, MailOutcome, MailStore, OutgoingMail};
pub use notify::{AttemptRecord, DeliveryState, NewNotification, Notification, NotificationStore};
pub use scope::{Permission, Scope, ScopeLevel};
pub use search::*;

use async_trait::async_trait;
use jiff::Timestamp;
use std::sync::Arc;
use termin_fhir::ResourceType;

/// The id of a Slot where it sits beside another id (a booking), so the two cannot be swapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotId<'a>(pub &'a str);

/// The id of an Appointment where it sits beside a Slot's id (booking a slot, releasing it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppointmentId<'a>(pub &'a str);

/// One stored version of a resource. Deleted versions carry no body.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceVersion {
    pub resource_type: ResourceType,
    pub id: String,
    pub version: u64,
    pub last_updated: Timestamp,
    /// The stored JSON text including the server-managed `meta`; `None` for a deletion.
    pub body: Option<String>,
}

impl ResourceVersion {
    pub fn is_deleted(&self) -> bool {
        self.body.is_none()
    }
}

/// The change that produced a history entry, as reported in `Bundle.entry.request.method`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Create,
    Update,
    Delete,
}

/// A history entry: a version and how it came to be.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryEntry {
    pub version: ResourceVersion,
    pub change: ChangeKind,
}

/// A new version to write; the backend stores it and replaces the current version.
#[derive(Debug, Clone)]
pub struct NewVersion {
    pub version: ResourceVersion,
    pub change: ChangeKind,
    pub index: IndexEntries,
}

/// Which history to list, newest first. The history position (`before`, `next_before`) is
/// one sequence over all types, so a system history pages across types in the order the
/// versions were written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryRequest {
    /// The types whose history is listed: one for an instance or type history, several (or
    /// none, listing nothing) for the system history.
    pub types: Vec<TypeHistory>,
    /// `Some`: the history of this one resource (of the single type in `types`).
    pub id: Option<String>,
    pub count: usize,
    /// Resume before this history position (keyset paging).
    pub before: Option<u64>,
    /// Only entries last updated at or after this instant (`_since`).
    pub since: Option<Timestamp>,
    /// Only versions current at some instant of `[low, high)` (`_at`): written before `high`
    /// and not replaced by a later version at or before `low`.
    pub at: Option<(Timestamp, Timestamp)>,
}

/// One type of a [`HistoryRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeHistory {
    pub resource_type: ResourceType,
    /// Lists only the history of these resources (a history limited to a compartment or to
    /// an organisation's resources).
    pub only_ids: Option<Vec<String>>,
}

impl TypeHistory {
    /// Every resource of the type.
    pub fn all(resource_type: ResourceType) -> Self {
        TypeHistory { resource_type, only_ids: None }
    }
}

impl HistoryRequest {
    /// The first page of `count` entries of one type's history (or, with `id`, one resource's).
    pub fn of_type(resource_type: ResourceType, id: Option<String>, count: usize) -> Self {
        HistoryRequest { types: vec![TypeHistory::all(resource_type)], id, count, before: None, since: None, at: None }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct HistoryPage {
    pub entries: Vec<HistoryEntry>,
    pub total: u64,
    /// Set when older entries follow: the cursor for the next page.
    pub next_before: Option<u64>,
}

/// A hold on a slot: who holds it, the token that proves it, and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotHold {
    pub slot_id: String,
    /// Who placed the hold: the key its holder's limit of live holds is counted under (see the
    /// domain's scheduling rules).
    pub holder: String,
    /// Secret handed to the holder; presenting it proves ownership of the hold.
    pub token: String,
    pub held_until: Timestamp,
    /// When the hold was first placed; renewals keep it, so a hold cannot be renewed forever.
    pub placed_at: Timestamp,
}

/// A domain event recorded in the outbox in the same transaction as the change it reports,
/// so that notifications can later be delivered exactly once.
#[derive(Debug, Clone, PartialEq)]
pub struct DomainEvent {
    /// What happened, e.g. `appointment-booked`, `slot-hold-expired`.
    pub kind: String,
    pub resource_type: ResourceType,
    pub resource_id: String,
    pub version: u64,
    pub occurred_at: Timestamp,
    /// Event details as JSON text.
    pub detail: String,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// A statement ran longer than the store's time limit and was stopped.
    #[error("a statement exceeded the time limit: {0}")]
    Timeout(String),
    #[error("the write conflicted with a concurrent transaction: {0}")]
    Conflict(String),
    #[error("database error: {0}")]
    Database(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Read access to the resource store. Every call carries the request context so that
/// authorization (patient compartments) and auditing can be enforced at this layer.
#[async_trait]
pub trait ResourceStore: Send + Sync {
    /// The current version of a resource (possibly a deletion), or `None` if it never existed.
    async fn read_current(
        &self,
        ctx: &RequestContext,
        resource_type: ResourceType,
        id: &str,
    ) -> StoreResult<Option<ResourceVersion>>;

    async fn read_version(
        &self,
        ctx: &RequestContext,
        resource_type: ResourceType,
        id: &str,
        version: u64,
    ) -> StoreResult<Option<ResourceVersion>>;

    async fn search(&self, ctx: &RequestContext, request: &SearchRequest) -> StoreResult<SearchPage>;

    /// The fingerprint of the search-parameter set the stored index rows were built with
    /// (`None`: never recorded); when it differs from the current one, the index is rebuilt.
    async fn search_index_fingerprint(&self) -> StoreResult<Option<String>>;

    async fn history(&self, ctx: &RequestContext, request: &HistoryRequest) -> StoreResult<HistoryPage>;

    /// Starts a unit of work. Units of work are serializable: no other write interleaves.
    async fn begin_write(&self, ctx: &RequestContext) -> StoreResult<Box<dyn WriteTx>>;

    /// Checks that the database answers (for readiness).
    async fn ping(&self) -> StoreResult<()>;

    /// The holds recorded for these slots (live or expired).
    async fn holds(&self, ctx: &RequestContext, slot_ids: &[String]) -> StoreResult<Vec<SlotHold>>;

    /// Holds that expired at or before `now`, oldest first, at most `limit`.
    async fn expired_holds(&self, now: Timestamp, limit: usize) -> StoreResult<Vec<SlotHold>>;

    /// Outbox events in the order they were recorded, after position `after`, at most `limit`.
    async fn events(&self, after: u64, limit: usize) -> StoreResult<Vec<(u64, DomainEvent)>>;
}

/// A unit of work. Dropping it without [`WriteTx::commit`] discards every write.
#[async_trait]
pub trait WriteTx: Send {
    async fn read_current(&mut self, resource_type: ResourceType, id: &str) -> StoreResult<Option<ResourceVersion>>;

    /// Like [`WriteTx::read_current`], for a resource the unit of work only checks and does not
    /// write (the Schedule or HealthcareService of a booking): it cannot change before commit,
    /// yet other units of work may check it at the same time. Backends that serialize units of
    /// work need nothing beyond `read_current`.
    async fn read_current_shared(
        &mut self,
        resource_type: ResourceType,
        id: &str,
    ) -> StoreResult<Option<ResourceVersion>> {
        self.read_current(resource_type, id).await
    }

    /// [`WriteTx::read_current`] of each of `ids` at once: the versions of those ever written,
    /// in id order, each row then the unit of work's to write.
    async fn read_current_many(
        &mut self,
        resource_type: ResourceType,
        ids: &[String],
    ) -> StoreResult<Vec<ResourceVersion>> {
        let mut versions = Vec::new();
        for id in ids {
            versions.extend(self.read_current(resource_type, id).await?);
        }
        versions.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(versions)
    }

    /// Ids of current resources matching the filter, in id order, at most `limit` of them.
    async fn find_matching_ids(
        &mut self,
        resource_type: ResourceType,
        filter: &Filter,
        limit: usize,
    ) -> StoreResult<Vec<String>>;

    /// Ids of current resources matching every condition, at most `limit` of them. Index rows
    /// with a validity window are evaluated at the wall-clock time: use
    /// [`WriteTx::find_matching_ids`] with the domain clock when the conditions can meet them
    /// (Slot `status`).
    async fn find_ids(
        &mut self,
        resource_type: ResourceType,
        conditions: &[Condition],
        limit: usize,
    ) -> StoreResult<Vec<String>> {
        let filter = Filter { conditions: conditions.to_vec(), now: Timestamp::now(), server_base: None };
        self.find_matching_ids(resource_type, &filter, limit).await
    }

    /// Ids of current resources of the type, other than `exclude_id`, with a date index row of
    /// `param` whose `[low, high)` overlaps `[start, end)`; at most `limit`, in no particular
    /// order. Reads one range of the date index by `param`, so `param` should be selective (the
    /// periods of one Schedule's Slots).
    async fn overlapping(
        &mut self,
        resource_type: ResourceType,
        param: &str,
        period: (Timestamp, Timestamp),
        exclude_id: &str,
        limit: usize,
    ) -> StoreResult<Vec<String>>;

    /// Current (non-deleted) resources after `after` in (type, id) order, at most `limit`:
    /// the walk that rebuilds the search index.
    async fn current_after(
        &mut self,
        after: Option<(ResourceType, String)>,
        limit: usize,
    ) -> StoreResult<Vec<ResourceVersion>>;

    /// Replaces the index rows of a current resource (index rebuild).
    async fn replace_index(&mut self, resource_type: ResourceType, id: &str, index: &IndexEntries) -> StoreResult<()>;

    /// Records the fingerprint the index now corresponds to.
    async fn set_search_index_fingerprint(&mut self, fingerprint: &str) -> StoreResult<()>;

    async fn write(&mut self, new: NewVersion) -> StoreResult<()>;

    /// Appends AuditEvents to the audit trail's own table (see [`AuditEntry`]): a write's event
    /// in its unit of work, or a batch of the background writer. The entries are shared so
    /// that a caller can retry them in another unit of work; a taken id is a
    /// [`StoreError::Conflict`].
    async fn append_audit(&mut self, entries: Arc<[AuditEntry]>) -> StoreResult<()>;

    /// [`WriteTx::write`] of each version in turn, in as few statements as the backend can:
    /// the bulk path of slot generation. The versions are of distinct resources.
    async fn write_all(&mut self, versions: Vec<NewVersion>) -> StoreResult<()> {
        for new in versions {
            self.write(new).await?;
        }
        Ok(())
    }

    /// [`WriteTx::hold`] of each slot at once: the holds of those that have one.
    async fn holds_of(&mut self, slot_ids: &[String]) -> StoreResult<Vec<SlotHold>> {
        let mut holds = Vec::new();
        for slot_id in slot_ids {
            holds.extend(self.hold(slot_id).await?);
        }
        Ok(holds)
    }

    /// [`WriteTx::slot_booking`] of each slot at once: (slot id, Appointment id) of those booked.
    async fn slot_bookings(&mut self, slot_ids: &[String]) -> StoreResult<Vec<(String, String)>> {
        let mut bookings = Vec::new();
        for slot_id in slot_ids {
            if let Some(appointment) = self.slot_booking(slot_id).await? {
                bookings.push((slot_id.clone(), appointment));
            }
        }
        Ok(bookings)
    }

    async fn hold(&mut self, slot_id: &str) -> StoreResult<Option<SlotHold>>;

    /// The holds of `holder` still live at `now`. Units of work of one holder that ask this
    /// take turns until they end (a backend shared by several nodes locks the holder), so a
    /// limit on live holds checked with it cannot be overrun by concurrent requests.
    async fn live_holds_of(&mut self, holder: &str, now: Timestamp) -> StoreResult<Vec<SlotHold>>;

    /// Records or replaces the hold on a slot.
    async fn put_hold(&mut self, hold: &SlotHold) -> StoreResult<()>;

    async fn delete_hold(&mut self, slot_id: &str) -> StoreResult<()>;

    /// The active Appointment that has booked this slot, if any.
    async fn slot_booking(&mut self, slot_id: &str) -> StoreResult<Option<String>>;

    /// Records that an active Appointment occupies a slot, with the cancellation deadline its
    /// policy set at booking time (`None`: no policy). The store rejects a second booking of
    /// one slot with [`StoreError::Conflict`] (a database constraint, not only a check in
    /// process memory).
    async fn put_slot_booking(
        &mut self,
        slot: SlotId<'_>,
        appointment: AppointmentId<'_>,
        cancel_deadline: Option<Timestamp>,
    ) -> StoreResult<()>;

    /// The cancellation deadline recorded with the slot's booking, if any.
    async fn booking_cancel_deadline(&mut self, slot_id: &str) -> StoreResult<Option<Timestamp>>;

    async fn delete_slot_booking(&mut self, slot_id: &str) -> StoreResult<()>;

    async fn append_event(&mut self, event: &DomainEvent) -> StoreResult<()>;

    /// Removes for good, with their history and index rows, at most `limit` resources of
    /// `resource_type` last changed before `before` (the audit trail's retention: AuditEvents
    /// recorded before it, from their own table); answers their ids.
    async fn purge_older_than(
        &mut self,
        resource_type: ResourceType,
        before: Timestamp,
        limit: usize,
    ) -> StoreResult<Vec<String>>;

    async fn commit(self: Box<Self>) -> StoreResult<()>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_without_a_body_is_a_deletion() {
        let mut version = ResourceVersion {
            resource_type: ResourceType::Slot,
            id: "s1".into(),
            version: 2,
            last_updated: Timestamp::UNIX_EPOCH,
            body: Some(r#"{"resourceType":"Slot"}"#.into()),
        };
        assert!(!version.is_deleted());
        version.body = None;
        assert!(version.is_deleted());
    }

    #[test]
    fn a_plain_token_row_holds_at_every_instant() {
        let row = TokenIndex::code("status", None, "free");
        assert_eq!((row.param.as_str(), row.code.as_deref()), ("status", Some("free")));
        assert_eq!((row.valid_from, row.valid_until), (None, None));
        assert_eq!((row.text, row.type_system, row.type_code), (None, None, None));
    }
}
