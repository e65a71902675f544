//! Units of work at READ COMMITTED that lock what they read, and their replay after a deadlock.
//!
//! Locks: [`WriteTx::read_current`] takes the row `FOR UPDATE` (a resource that does not exist
//! yet: an advisory lock on its id, so two creators of one id take turns), shared reads take it
//! `FOR SHARE`; a search inside a unit of work first takes its type's advisory lock; holds and
//! bookings of a slot are read and written under the Slot's row lock. A Slot write that checks
//! for overlapping Slots first reads its Schedule with `read_current` (`FOR UPDATE`, or the
//! advisory lock of a Schedule id not stored yet), so writers of one Schedule's Slots take
//! turns and each one's overlap query sees the Slots the previous one committed. A unit of
//! work that counts a holder's live holds first takes the holder's advisory lock, so two
//! holds of one holder cannot both pass its limit. Every
//! statement after a lock wait sees what the previous holder committed.
//!
//! Replay: PostgreSQL resolves a deadlock by aborting one of the transactions. Every call of
//! the unit of work is journaled with what it returned; after an abort the journal is replayed
//! in a new transaction, and the interrupted call is run again, only if every replayed call
//! returns exactly what the domain saw before. The domain's decisions rest on nothing else, so
//! the replayed unit of work is one it could have run from the start. When anything differs,
//! or after [`MAX_REPLAYS`] aborts, the unit of work fails with [`StoreError::Conflict`] and
//! nothing is written.

use crate::locks::AdvisoryLock;
use crate::{Tx, db_error, set_statement_timeout};
use async_trait::async_trait;
use jiff::Timestamp;
use sqlx::{AssertSqlSafe, PgConnection, PgPool, Postgres};
use std::collections::HashSet;
use std::time::Duration;
use termin_fhir::ResourceType;
use termin_store::{
    DomainEvent, Filter, IndexEntries, NewVersion, ResourceVersion, SlotHold, StoreError, StoreResult, WriteTx,
};
use termin_store_sql::{self as sql, Dialect, is_contention};

/// Aborts (deadlocks) a unit of work survives by replay before its conflict is reported.
const MAX_REPLAYS: u32 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RowLock {
    Update,
    Share,
}

/// One call of the unit of work, journaled for replay.
#[derive(Debug)]
enum Step {
    ReadCurrent {
        resource_type: ResourceType,
        id: String,
        lock: RowLock,
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
    Hold(String),
    LiveHoldsOf {
        holder: String,
        now: Timestamp,
    },
    PutHold(SlotHold),
    DeleteHold(String),
    SlotBooking(String),
    PutSlotBooking {
        slot_id: String,
        appointment_id: String,
        cancel_deadline: Option<Timestamp>,
    },
    BookingCancelDeadline(String),
    DeleteSlotBooking(String),
}

/// What a step returned; its replay must return the same.
#[derive(Debug, Clone, PartialEq)]
enum Seen {
    Done,
    Version(Option<ResourceVersion>),
    Versions(Vec<ResourceVersion>),
    Ids(Vec<String>),
    Hold(Option<SlotHold>),
    Holds(Vec<SlotHold>),
    Booking(Option<String>),
    Instant(Option<Timestamp>),
}

enum Failure {
    /// The transaction was aborted by a deadlock or serialization failure.
    Aborted(String),
    Store(StoreError),
}

impl From<sqlx::Error> for Failure {
    fn from(e: sqlx::Error) -> Self {
        if is_contention(&e) {
            Failure::Aborted(e.to_string())
        } else {
            Failure::Store(db_error(e))
        }
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure::Store(e)
    }
}

impl From<sql::Failure<Postgres>> for Failure {
    fn from(failure: sql::Failure<Postgres>) -> Self {
        match failure {
            sql::Failure::Sql(e, _) => e.into(),
            sql::Failure::Store(e) => Failure::Store(e),
        }
    }
}

fn replays(outcome: &'static str) {
    metrics::counter!("termin_db_replays_total", "outcome" => outcome).increment(1);
}

pub struct PostgresWriteTx {
    pool: PgPool,
    /// How long the statement of a search inside the unit of work may run.
    query_timeout: Option<Duration>,
    /// `None` once an aborted transaction is rolled back and no new one could be begun.
    tx: Option<Tx>,
    journal: Vec<(Step, Seen)>,
    /// Resource types whose advisory lock the transaction holds.
    locked_types: HashSet<ResourceType>,
    /// Slots whose row the transaction holds `FOR UPDATE`.
    locked_slots: HashSet<String>,
    /// Appended to the outbox at commit, in this order.
    events: Vec<DomainEvent>,
}

async fn begin(pool: &PgPool) -> StoreResult<Tx> {
    // Explicit: the locking above relies on READ COMMITTED whatever the database's default.
    pool.begin_with("BEGIN ISOLATION LEVEL READ COMMITTED")
        .await
        .map_err(db_error)
}

impl PostgresWriteTx {
    pub async fn begin(pool: PgPool, query_timeout: Option<Duration>) -> StoreResult<Self> {
        let tx = begin(&pool).await?;
        Ok(PostgresWriteTx {
            pool,
            query_timeout,
            tx: Some(tx),
            journal: Vec::new(),
            locked_types: HashSet::new(),
            locked_slots: HashSet::new(),
            events: Vec::new(),
        })
    }

    fn conn(&mut self) -> Result<&mut PgConnection, Failure> {
        match self.tx.as_mut() {
            Some(tx) => Ok(&mut **tx),
            None => Err(Failure::Store(StoreError::Unavailable(
                "the unit of work was rolled back and could not be resumed".into(),
            ))),
        }
    }

    /// Runs a step, replaying the journal first whenever the transaction is aborted.
    async fn perform(&mut self, step: Step) -> StoreResult<Seen> {
        let mut aborts = 0;
        loop {
            match self.execute(&step).await {
                Ok(seen) => {
                    self.journal.push((step, seen.clone()));
                    return Ok(seen);
                }
                Err(Failure::Store(e)) => return Err(e),
                Err(Failure::Aborted(why)) => {
                    aborts += 1;
                    self.resume(&mut aborts, why).await?;
                }
            }
        }
    }

    /// Rolls the aborted transaction back and replays the journal in a new one.
    pub(crate) async fn resume(&mut self, aborts: &mut u32, mut why: String) -> StoreResult<()> {
        let journal = std::mem::take(&mut self.journal);
        loop {
            if *aborts > MAX_REPLAYS {
                replays("exhausted");
                return Err(StoreError::Conflict(format!("the unit of work kept colliding with others: {why}")));
            }
            if let Some(aborted) = self.tx.take() {
                aborted.rollback().await.map_err(db_error)?;
            }
            self.tx = Some(begin(&self.pool).await?);
            self.locked_types.clear();
            self.locked_slots.clear();
            let mut replayed = 0;
            for (step, seen) in &journal {
                match self.execute(step).await {
                    Ok(again) if again == *seen => replayed += 1,
                    Ok(_) => {
                        replays("diverged");
                        return Err(StoreError::Conflict(format!(
                            "a concurrent change intervened after a deadlock ({why})"
                        )));
                    }
                    Err(Failure::Store(e)) => return Err(e),
                    Err(Failure::Aborted(again)) => {
                        why = again;
                        break;
                    }
                }
            }
            if replayed == journal.len() {
                replays("resumed");
                self.journal = journal;
                return Ok(());
            }
            *aborts += 1;
        }
    }

    async fn execute(&mut self, step: &Step) -> Result<Seen, Failure> {
        match step {
            Step::ReadCurrent { resource_type, id, lock } => self.read(*resource_type, id, *lock).await.map(Seen::Version),
            Step::FindMatchingIds {
                resource_type,
                filter,
                limit,
            } => {
                // A conditional write must not race another that searches the same type: both
                // would find nothing and both create.
                if self.locked_types.insert(*resource_type) {
                    AdvisoryLock::ResourceType(*resource_type).acquire(self.conn()?).await?;
                }
                // Only the search is limited in time, not the lock waits around it.
                if let Some(timeout) = self.query_timeout {
                    sqlx::query(AssertSqlSafe(set_statement_timeout(timeout))).execute(self.conn()?).await?;
                }
                let ids = sql::find_matching_ids::<Postgres>(self.conn()?, *resource_type, filter, *limit).await?;
                if self.query_timeout.is_some() {
                    sqlx::query("SET LOCAL statement_timeout TO DEFAULT").execute(self.conn()?).await?;
                }
                Ok(Seen::Ids(ids))
            }
            Step::Overlapping {
                resource_type,
                param,
                period,
                exclude_id,
                limit,
            } => {
                let ids =
                    sql::overlapping::<Postgres>(self.conn()?, *resource_type, param, *period, exclude_id, *limit).await?;
                Ok(Seen::Ids(ids))
            }
            Step::CurrentAfter { after, limit } => {
                // Locked, so that a write on another node cannot slip in between reading a
                // resource and re-indexing it.
                Ok(Seen::Versions(sql::current_after::<Postgres>(self.conn()?, after.as_ref(), *limit).await?))
            }
            Step::ReplaceIndex {
                resource_type,
                id,
                index: entries,
            } => {
                sql::replace_index::<Postgres>(self.conn()?, resource_type.as_str(), id, entries).await?;
                Ok(Seen::Done)
            }
            Step::SetFingerprint(fingerprint) => {
                sqlx::query(
                    "INSERT INTO search_index_state (fingerprint) VALUES ($1) \
                     ON CONFLICT (singleton) DO UPDATE SET fingerprint = excluded.fingerprint",
                )
                .bind(fingerprint)
                .execute(self.conn()?)
                .await?;
                Ok(Seen::Done)
            }
            Step::Write(new) => {
                sql::write_version::<Postgres>(self.conn()?, new).await?;
                Ok(Seen::Done)
            }
            Step::Hold(slot_id) => {
                self.lock_slot(slot_id).await?;
                Ok(Seen::Hold(sql::hold::<Postgres>(self.conn()?, slot_id).await?))
            }
            Step::LiveHoldsOf { holder, now } => {
                AdvisoryLock::Holder(holder).acquire(self.conn()?).await?;
                Ok(Seen::Holds(sql::live_holds_of::<Postgres>(self.conn()?, holder, *now).await?))
            }
            Step::PutHold(hold) => {
                self.lock_slot(&hold.slot_id).await?;
                sql::put_hold::<Postgres>(self.conn()?, hold).await?;
                Ok(Seen::Done)
            }
            Step::DeleteHold(slot_id) => {
                self.lock_slot(slot_id).await?;
                sql::delete_hold::<Postgres>(self.conn()?, slot_id).await?;
                Ok(Seen::Done)
            }
            Step::SlotBooking(slot_id) => {
                self.lock_slot(slot_id).await?;
                Ok(Seen::Booking(sql::slot_booking::<Postgres>(self.conn()?, slot_id).await?))
            }
            Step::PutSlotBooking {
                slot_id,
                appointment_id,
                cancel_deadline,
            } => {
                self.lock_slot(slot_id).await?;
                sql::put_slot_booking::<Postgres>(self.conn()?, slot_id, appointment_id, *cancel_deadline).await?;
                Ok(Seen::Done)
            }
            Step::BookingCancelDeadline(slot_id) => {
                self.lock_slot(slot_id).await?;
                Ok(Seen::Instant(sql::booking_cancel_deadline::<Postgres>(self.conn()?, slot_id).await?))
            }
            Step::DeleteSlotBooking(slot_id) => {
                self.lock_slot(slot_id).await?;
                sql::delete_slot_booking::<Postgres>(self.conn()?, slot_id).await?;
                Ok(Seen::Done)
            }
        }
    }

    async fn read(&mut self, resource_type: ResourceType, id: &str, lock: RowLock) -> Result<Option<ResourceVersion>, Failure> {
        let locked_select = || {
            let mut q = sql::select_current::<Postgres>(resource_type, id);
            q.push(match lock {
                RowLock::Update => " FOR UPDATE",
                RowLock::Share => " FOR SHARE",
            });
            q
        };
        let mut row = Postgres::fetch_optional(self.conn()?, locked_select()).await?;
        if row.is_none() && lock == RowLock::Update {
            // No row to lock yet: creators of this id take turns, and the later one finds the
            // earlier one's resource.
            AdvisoryLock::NewResource(resource_type, id).acquire(self.conn()?).await?;
            row = Postgres::fetch_optional(self.conn()?, locked_select()).await?;
        }
        let version = row.as_ref().map(sql::decode_version::<Postgres>).transpose()?;
        if resource_type == ResourceType::Slot && lock == RowLock::Update && version.is_some() {
            self.locked_slots.insert(id.to_owned());
        }
        Ok(version)
    }

    /// Takes the Slot's row lock (once per transaction), under which its hold and booking are
    /// read and written.
    async fn lock_slot(&mut self, slot_id: &str) -> Result<(), Failure> {
        if self.locked_slots.contains(slot_id) {
            return Ok(());
        }
        let found = sqlx::query("SELECT 1 FROM resource WHERE res_type = 'Slot' AND res_id = $1 FOR UPDATE")
            .bind(slot_id)
            .fetch_optional(self.conn()?)
            .await?;
        if found.is_some() {
            self.locked_slots.insert(slot_id.to_owned());
        }
        Ok(())
    }
}

#[async_trait]
impl WriteTx for PostgresWriteTx {
    async fn read_current(&mut self, resource_type: ResourceType, id: &str) -> StoreResult<Option<ResourceVersion>> {
        let step = Step::ReadCurrent {
            resource_type,
            id: id.to_owned(),
            lock: RowLock::Update,
        };
        match self.perform(step).await? {
            Seen::Version(version) => Ok(version),
            other => unreachable!("a read returned {other:?}"),
        }
    }

    async fn read_current_shared(
        &mut self,
        resource_type: ResourceType,
        id: &str,
    ) -> StoreResult<Option<ResourceVersion>> {
        let step = Step::ReadCurrent {
            resource_type,
            id: id.to_owned(),
            lock: RowLock::Share,
        };
        match self.perform(step).await? {
            Seen::Version(version) => Ok(version),
            other => unreachable!("a read returned {other:?}"),
        }
    }

    async fn find_matching_ids(
        &mut self,
        resource_type: ResourceType,
        filter: &Filter,
        limit: usize,
    ) -> StoreResult<Vec<String>> {
        let step = Step::FindMatchingIds {
            resource_type,
            filter: filter.clone(),
            limit,
        };
        match self.perform(step).await? {
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
        match self.perform(step).await? {
            Seen::Ids(ids) => Ok(ids),
            other => unreachable!("an overlap query returned {other:?}"),
        }
    }

    async fn current_after(
        &mut self,
        after: Option<(ResourceType, String)>,
        limit: usize,
    ) -> StoreResult<Vec<ResourceVersion>> {
        match self.perform(Step::CurrentAfter { after, limit }).await? {
            Seen::Versions(versions) => Ok(versions),
            other => unreachable!("a walk returned {other:?}"),
        }
    }

    async fn replace_index(&mut self, resource_type: ResourceType, id: &str, index: &IndexEntries) -> StoreResult<()> {
        let step = Step::ReplaceIndex {
            resource_type,
            id: id.to_owned(),
            index: index.clone(),
        };
        self.perform(step).await.map(drop)
    }

    async fn set_search_index_fingerprint(&mut self, fingerprint: &str) -> StoreResult<()> {
        self.perform(Step::SetFingerprint(fingerprint.to_owned())).await.map(drop)
    }

    async fn write(&mut self, new: NewVersion) -> StoreResult<()> {
        self.perform(Step::Write(new)).await.map(drop)
    }

    async fn hold(&mut self, slot_id: &str) -> StoreResult<Option<SlotHold>> {
        match self.perform(Step::Hold(slot_id.to_owned())).await? {
            Seen::Hold(hold) => Ok(hold),
            other => unreachable!("a hold lookup returned {other:?}"),
        }
    }

    async fn live_holds_of(&mut self, holder: &str, now: Timestamp) -> StoreResult<Vec<SlotHold>> {
        match self.perform(Step::LiveHoldsOf { holder: holder.to_owned(), now }).await? {
            Seen::Holds(holds) => Ok(holds),
            other => unreachable!("a holder's holds lookup returned {other:?}"),
        }
    }

    async fn put_hold(&mut self, hold: &SlotHold) -> StoreResult<()> {
        self.perform(Step::PutHold(hold.clone())).await.map(drop)
    }

    async fn delete_hold(&mut self, slot_id: &str) -> StoreResult<()> {
        self.perform(Step::DeleteHold(slot_id.to_owned())).await.map(drop)
    }

    async fn slot_booking(&mut self, slot_id: &str) -> StoreResult<Option<String>> {
        match self.perform(Step::SlotBooking(slot_id.to_owned())).await? {
            Seen::Booking(booking) => Ok(booking),
            other => unreachable!("a booking lookup returned {other:?}"),
        }
    }

    async fn put_slot_booking(
        &mut self,
        slot_id: &str,
        appointment_id: &str,
        cancel_deadline: Option<Timestamp>,
    ) -> StoreResult<()> {
        let step = Step::PutSlotBooking {
            slot_id: slot_id.to_owned(),
            appointment_id: appointment_id.to_owned(),
            cancel_deadline,
        };
        self.perform(step).await.map(drop)
    }

    async fn booking_cancel_deadline(&mut self, slot_id: &str) -> StoreResult<Option<Timestamp>> {
        match self.perform(Step::BookingCancelDeadline(slot_id.to_owned())).await? {
            Seen::Instant(deadline) => Ok(deadline),
            other => unreachable!("a booking's deadline read returned {other:?}"),
        }
    }

    async fn delete_slot_booking(&mut self, slot_id: &str) -> StoreResult<()> {
        self.perform(Step::DeleteSlotBooking(slot_id.to_owned())).await.map(drop)
    }

    async fn append_event(&mut self, event: &DomainEvent) -> StoreResult<()> {
        self.events.push(event.clone());
        Ok(())
    }

    /// Appends the events under the outbox lock, the last lock the transaction takes and held
    /// only until this commit, so sequence numbers are handed out in commit order.
    async fn commit(mut self: Box<Self>) -> StoreResult<()> {
        let Some(mut tx) = self.tx.take() else {
            return Err(StoreError::Unavailable("the unit of work was rolled back".into()));
        };
        if !self.events.is_empty() {
            AdvisoryLock::Outbox.acquire(&mut tx).await.map_err(db_error)?;
            sql::append_events::<Postgres>(&mut tx, &self.events).await?;
        }
        tx.commit().await.map_err(db_error)
    }
}
