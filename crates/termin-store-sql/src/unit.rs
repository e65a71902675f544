//! A unit of work as a sequence of [`Step`]s: every [`WriteTx`] call becomes one step that the
//! backend's [`UnitOfWork`] performs — SQLite runs it as it comes, PostgreSQL first takes the
//! locks the step needs and journals what it saw, to replay it after a deadlock. The SQL of
//! each step is the same on every backend ([`execute`]).

use crate::{Dialect, PushValue, SqlResult, Writer};
use async_trait::async_trait;
use jiff::Timestamp;
use std::sync::Arc;
use termin_fhir::ResourceType;
use termin_store::{
    AppointmentId, AuditEntry, DomainEvent, Filter, IndexEntries, NewVersion, ResourceVersion, SlotHold, SlotId,
    StoreResult, WriteTx,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
/// How a unit of work's read of a resource locks its row where writers run concurrently.
pub enum RowLock {
    Update,
    Share,
}

/// One call of a unit of work (a [`WriteTx`] method), which a backend may journal for replay.
#[derive(Debug)]
pub enum Step {
    ReadCurrent {
        resource_type: ResourceType,
        id: String,
        lock: RowLock,
    },
    /// `ReadCurrent` with [`RowLock::Update`] of several resources of one type.
    ReadCurrentMany {
        resource_type: ResourceType,
        ids: Vec<String>,
    },
    FindMatchingIds {
        resource_type: ResourceType,
        filter: Filter,
        limit: usize,
    },
    Overlapping {
        resource_type: ResourceType,
        param: String,
        period: (Timestamp, Timestamp),
        exclude_id: String,
        limit: usize,
    },
    CurrentAfter {
        after: Option<(ResourceType, String)>,
        limit: usize,
    },
    ReplaceIndex {
        resource_type: ResourceType,
        id: String,
        index: IndexEntries,
    },
    SetFingerprint(String),
    Write(NewVersion),
    /// AuditEvents appended to the audit trail's own table.
    AppendAudit(Arc<[AuditEntry]>),
    /// `Write` of several resources, in multi-row statements.
    WriteAll(Vec<NewVersion>),
    Hold(String),
    /// `Hold` of several slots.
    HoldsOf(Vec<String>),
    LiveHoldsOf {
        holder: String,
        now: Timestamp,
    },
    PutHold(SlotHold),
    DeleteHold(String),
    SlotBooking(String),
    /// `SlotBooking` of several slots.
    SlotBookings(Vec<String>),
    PutSlotBooking {
        slot_id: String,
        appointment_id: String,
        cancel_deadline: Option<Timestamp>,
    },
    BookingCancelDeadline(String),
    DeleteSlotBooking(String),
    PurgeOlderThan {
        resource_type: ResourceType,
        before: Timestamp,
        limit: usize,
    },
}

/// What a step returned (a replay must return the same).
#[derive(Debug, Clone, PartialEq)]
pub enum Seen {
    Done,
    Version(Option<ResourceVersion>),
    Versions(Vec<ResourceVersion>),
    Ids(Vec<String>),
    Hold(Option<SlotHold>),
    Holds(Vec<SlotHold>),
    Booking(Option<String>),
    /// (slot id, Appointment id) of the booked slots.
    Bookings(Vec<(String, String)>),
    Instant(Option<Timestamp>),
}

impl Step {
    /// The slot whose hold or booking the step reads or writes.
    pub fn slot(&self) -> Option<&str> {
        match self {
            Step::Hold(slot_id)
            | Step::DeleteHold(slot_id)
            | Step::SlotBooking(slot_id)
            | Step::BookingCancelDeadline(slot_id)
            | Step::DeleteSlotBooking(slot_id)
            | Step::PutSlotBooking { slot_id, .. } => Some(slot_id),
            Step::PutHold(hold) => Some(&hold.slot_id),
            _ => None,
        }
    }

    /// The slots whose holds or bookings the step reads, when it reads several.
    pub fn slots(&self) -> &[String] {
        match self {
            Step::HoldsOf(slot_ids) | Step::SlotBookings(slot_ids) => slot_ids,
            _ => &[],
        }
    }
}

/// A backend's unit of work: one transaction and how it performs each step.
#[async_trait]
pub trait UnitOfWork: Send + Sized {
    async fn perform(&mut self, step: Step) -> StoreResult<Seen>;

    async fn append_event(&mut self, event: &DomainEvent) -> StoreResult<()>;

    async fn commit(self) -> StoreResult<()>;
}

/// The [`WriteTx`] of a backend's [`UnitOfWork`]: each call is performed as its [`Step`].
pub struct Steps<U>(pub U);

/// Runs the SQL of `step` on `conn` (a backend's sqlx connection as [`Sqlx`](crate::Sqlx), or
/// a connection it drives itself), after whatever locks the backend took for it. A new step's
/// SQL is written here (or in the statements it calls) once, for every backend.
pub async fn execute<D: Dialect, W: Writer<D>>(conn: &mut W, step: &Step) -> SqlResult<Seen, D> {
    Ok(match step {
        Step::ReadCurrent { resource_type, id, lock } => {
            let mut q = crate::select_current::<D>(*resource_type, id);
            q.push(match lock {
                RowLock::Update => D::LOCK_FOR_UPDATE,
                RowLock::Share => D::LOCK_FOR_SHARE,
            });
            let row = conn.fetch_optional(q).await?;
            Seen::Version(row.as_ref().map(crate::decode_version_from::<D, W>).transpose()?)
        }
        Step::ReadCurrentMany { resource_type, ids } => {
            Seen::Versions(crate::read_current_many::<D, W>(conn, *resource_type, ids, D::LOCK_FOR_UPDATE).await?)
        }
        Step::FindMatchingIds { resource_type, filter, limit } => {
            Seen::Ids(crate::find_matching_ids::<D, W>(conn, *resource_type, filter, *limit).await?)
        }
        Step::Overlapping { resource_type, param, period, exclude_id, limit } => {
            Seen::Ids(crate::overlapping::<D, W>(conn, *resource_type, param, *period, exclude_id, *limit).await?)
        }
        Step::CurrentAfter { after, limit } => {
            Seen::Versions(crate::current_after::<D, W>(conn, after.as_ref(), *limit).await?)
        }
        Step::ReplaceIndex { resource_type, id, index } => {
            crate::replace_index::<D, W>(conn, resource_type.as_str(), id, index).await?;
            Seen::Done
        }
        Step::SetFingerprint(fingerprint) => {
            set_fingerprint::<D, W>(conn, fingerprint).await?;
            Seen::Done
        }
        Step::Write(new) => {
            crate::write_version::<D, W>(conn, new).await?;
            Seen::Done
        }
        Step::AppendAudit(entries) => {
            crate::audit::append_audit::<D, W>(conn, entries).await?;
            Seen::Done
        }
        Step::WriteAll(versions) => {
            crate::write_versions::<D, W>(conn, versions).await?;
            Seen::Done
        }
        Step::Hold(slot_id) => Seen::Hold(crate::hold::<D, W>(conn, slot_id).await?),
        Step::HoldsOf(slot_ids) => Seen::Holds(crate::holds::<D, W>(conn, slot_ids).await?),
        Step::SlotBookings(slot_ids) => Seen::Bookings(crate::slot_bookings::<D, W>(conn, slot_ids).await?),
        Step::LiveHoldsOf { holder, now } => Seen::Holds(crate::live_holds_of::<D, W>(conn, holder, *now).await?),
        Step::PutHold(hold) => {
            crate::put_hold::<D, W>(conn, hold).await?;
            Seen::Done
        }
        Step::DeleteHold(slot_id) => {
            crate::delete_hold::<D, W>(conn, slot_id).await?;
            Seen::Done
        }
        Step::SlotBooking(slot_id) => Seen::Booking(crate::slot_booking::<D, W>(conn, slot_id).await?),
        Step::PutSlotBooking { slot_id, appointment_id, cancel_deadline } => {
            crate::put_slot_booking::<D, W>(conn, SlotId(slot_id), AppointmentId(appointment_id), *cancel_deadline)
                .await?;
            Seen::Done
        }
        Step::BookingCancelDeadline(slot_id) => {
            Seen::Instant(crate::booking_cancel_deadline::<D, W>(conn, slot_id).await?)
        }
        Step::DeleteSlotBooking(slot_id) => {
            crate::delete_slot_booking::<D, W>(conn, slot_id).await?;
            Seen::Done
        }
        Step::PurgeOlderThan { resource_type, before, limit } => {
            Seen::Ids(crate::purge_older_than::<D, W>(conn, *resource_type, *before, *limit).await?)
        }
    })
}

/// Records the fingerprint of the search-parameter set the index rows were built with.
async fn set_fingerprint<D: Dialect, W: Writer<D>>(conn: &mut W, fingerprint: &str) -> SqlResult<(), D> {
    if D::INDEX_STATE_HAS_KEY {
        let mut upsert = D::builder("INSERT INTO search_index_state (fingerprint) VALUES (");
        upsert
            .push_value(fingerprint)
            .push(") ON CONFLICT (singleton) DO UPDATE SET fingerprint = excluded.fingerprint");
        conn.execute(upsert).await?;
    } else {
        conn.execute(D::builder("DELETE FROM search_index_state")).await?;
        let mut insert = D::builder("INSERT INTO search_index_state (fingerprint) VALUES (");
        insert.push_value(fingerprint).push(")");
        conn.execute(insert).await?;
    }
    Ok(())
}

#[async_trait]
impl<U: UnitOfWork + 'static> WriteTx for Steps<U> {
    async fn read_current(&mut self, resource_type: ResourceType, id: &str) -> StoreResult<Option<ResourceVersion>> {
        let step = Step::ReadCurrent { resource_type, id: id.to_owned(), lock: RowLock::Update };
        match self.0.perform(step).await? {
            Seen::Version(version) => Ok(version),
            other => unreachable!("a read returned {other:?}"),
        }
    }

    async fn read_current_shared(
        &mut self,
        resource_type: ResourceType,
        id: &str,
    ) -> StoreResult<Option<ResourceVersion>> {
        let step = Step::ReadCurrent { resource_type, id: id.to_owned(), lock: RowLock::Share };
        match self.0.perform(step).await? {
            Seen::Version(version) => Ok(version),
            other => unreachable!("a read returned {other:?}"),
        }
    }

    async fn read_current_many(
        &mut self,
        resource_type: ResourceType,
        ids: &[String],
    ) -> StoreResult<Vec<ResourceVersion>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        match self.0.perform(Step::ReadCurrentMany { resource_type, ids: ids.to_vec() }).await? {
            Seen::Versions(versions) => Ok(versions),
            other => unreachable!("a read returned {other:?}"),
        }
    }

    async fn find_matching_ids(
        &mut self,
        resource_type: ResourceType,
        filter: &Filter,
        limit: usize,
    ) -> StoreResult<Vec<String>> {
        let step = Step::FindMatchingIds { resource_type, filter: filter.clone(), limit };
        match self.0.perform(step).await? {
            Seen::Ids(ids) => Ok(ids),
            other => unreachable!("a search returned {other:?}"),
        }
    }

    async fn overlapping(
        &mut self,
        resource_type: ResourceType,
        param: &str,
        period: (Timestamp, Timestamp),
        exclude_id: &str,
        limit: usize,
    ) -> StoreResult<Vec<String>> {
        let step = Step::Overlapping {
            resource_type,
            param: param.to_owned(),
            period,
            exclude_id: exclude_id.to_owned(),
            limit,
        };
        match self.0.perform(step).await? {
            Seen::Ids(ids) => Ok(ids),
            other => unreachable!("an overlap query returned {other:?}"),
        }
    }

    async fn current_after(
        &mut self,
        after: Option<(ResourceType, String)>,
        limit: usize,
    ) -> StoreResult<Vec<ResourceVersion>> {
        match self.0.perform(Step::CurrentAfter { after, limit }).await? {
            Seen::Versions(versions) => Ok(versions),
            other => unreachable!("a walk returned {other:?}"),
        }
    }

    async fn replace_index(&mut self, resource_type: ResourceType, id: &str, index: &IndexEntries) -> StoreResult<()> {
        let step = Step::ReplaceIndex { resource_type, id: id.to_owned(), index: index.clone() };
        self.0.perform(step).await.map(drop)
    }

    async fn set_search_index_fingerprint(&mut self, fingerprint: &str) -> StoreResult<()> {
        self.0.perform(Step::SetFingerprint(fingerprint.to_owned())).await.map(drop)
    }

    async fn write(&mut self, new: NewVersion) -> StoreResult<()> {
        self.0.perform(Step::Write(new)).await.map(drop)
    }

    async fn append_audit(&mut self, entries: Arc<[AuditEntry]>) -> StoreResult<()> {
        if entries.is_empty() {
            return Ok(());
        }
        self.0.perform(Step::AppendAudit(entries)).await.map(drop)
    }

    async fn write_all(&mut self, versions: Vec<NewVersion>) -> StoreResult<()> {
        if versions.is_empty() {
            return Ok(());
        }
        self.0.perform(Step::WriteAll(versions)).await.map(drop)
    }

    async fn holds_of(&mut self, slot_ids: &[String]) -> StoreResult<Vec<SlotHold>> {
        if slot_ids.is_empty() {
            return Ok(Vec::new());
        }
        match self.0.perform(Step::HoldsOf(slot_ids.to_vec())).await? {
            Seen::Holds(holds) => Ok(holds),
            other => unreachable!("a holds lookup returned {other:?}"),
        }
    }

    async fn slot_bookings(&mut self, slot_ids: &[String]) -> StoreResult<Vec<(String, String)>> {
        if slot_ids.is_empty() {
            return Ok(Vec::new());
        }
        match self.0.perform(Step::SlotBookings(slot_ids.to_vec())).await? {
            Seen::Bookings(bookings) => Ok(bookings),
            other => unreachable!("a bookings lookup returned {other:?}"),
        }
    }

    async fn hold(&mut self, slot_id: &str) -> StoreResult<Option<SlotHold>> {
        match self.0.perform(Step::Hold(slot_id.to_owned())).await? {
            Seen::Hold(hold) => Ok(hold),
            other => unreachable!("a hold lookup returned {other:?}"),
        }
    }

    async fn live_holds_of(&mut self, holder: &str, now: Timestamp) -> StoreResult<Vec<SlotHold>> {
        match self.0.perform(Step::LiveHoldsOf { holder: holder.to_owned(), now }).await? {
            Seen::Holds(holds) => Ok(holds),
            other => unreachable!("a holder's holds lookup returned {other:?}"),
        }
    }

    async fn put_hold(&mut self, hold: &SlotHold) -> StoreResult<()> {
        self.0.perform(Step::PutHold(hold.clone())).await.map(drop)
    }

    async fn delete_hold(&mut self, slot_id: &str) -> StoreResult<()> {
        self.0.perform(Step::DeleteHold(slot_id.to_owned())).await.map(drop)
    }

    async fn slot_booking(&mut self, slot_id: &str) -> StoreResult<Option<String>> {
        match self.0.perform(Step::SlotBooking(slot_id.to_owned())).await? {
            Seen::Booking(booking) => Ok(booking),
            other => unreachable!("a booking lookup returned {other:?}"),
        }
    }

    async fn put_slot_booking(
        &mut self,
        slot: SlotId<'_>,
        appointment: AppointmentId<'_>,
        cancel_deadline: Option<Timestamp>,
    ) -> StoreResult<()> {
        let step = Step::PutSlotBooking {
            slot_id: slot.0.to_owned(),
            appointment_id: appointment.0.to_owned(),
            cancel_deadline,
        };
        self.0.perform(step).await.map(drop)
    }

    async fn booking_cancel_deadline(&mut self, slot_id: &str) -> StoreResult<Option<Timestamp>> {
        match self.0.perform(Step::BookingCancelDeadline(slot_id.to_owned())).await? {
            Seen::Instant(deadline) => Ok(deadline),
            other => unreachable!("a booking's deadline read returned {other:?}"),
        }
    }

    async fn delete_slot_booking(&mut self, slot_id: &str) -> StoreResult<()> {
        self.0.perform(Step::DeleteSlotBooking(slot_id.to_owned())).await.map(drop)
    }

    async fn append_event(&mut self, event: &DomainEvent) -> StoreResult<()> {
        self.0.append_event(event).await
    }

    async fn purge_older_than(
        &mut self,
        resource_type: ResourceType,
        before: Timestamp,
        limit: usize,
    ) -> StoreResult<Vec<String>> {
        match self.0.perform(Step::PurgeOlderThan { resource_type, before, limit }).await? {
            Seen::Ids(ids) => Ok(ids),
            other => unreachable!("a purge returned {other:?}"),
        }
    }

    async fn commit(self: Box<Self>) -> StoreResult<()> {
        self.0.commit().await
    }
}
