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
use sqlx::{AssertSqlSafe, PgConnection, PgPool, Postgres};
use std::collections::HashSet;
use std::time::Duration;
use termin_fhir::ResourceType;
use termin_store::{DomainEvent, StoreError, StoreResult};
use termin_store_sql::{self as sql, RowLock, Seen, Sqlx, Step, UnitOfWork, is_contention};

/// Aborts (deadlocks) a unit of work survives by replay before its conflict is reported.
const MAX_REPLAYS: u32 = 3;

enum Failure {
    /// The transaction was aborted by a deadlock or serialization failure.
    Aborted(String),
    Store(StoreError),
}

impl From<sqlx::Error> for Failure {
    fn from(e: sqlx::Error) -> Self {
        if is_contention(&e) { Failure::Aborted(e.to_string()) } else { Failure::Store(db_error(e)) }
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
    pool.begin_with("BEGIN ISOLATION LEVEL READ COMMITTED").await.map_err(db_error)
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

    /// Takes the locks `step` needs, then runs its SQL.
    async fn execute(&mut self, step: &Step) -> Result<Seen, Failure> {
        if let Some(slot_id) = step.slot() {
            self.lock_slot(slot_id).await?;
        }
        self.lock_slots(step.slots()).await?;
        match step {
            Step::ReadCurrent { resource_type, id, lock } => self.read(*resource_type, id, *lock, step).await,
            Step::ReadCurrentMany { resource_type, ids } => self.read_many(*resource_type, ids, step).await,
            Step::FindMatchingIds { resource_type, .. } => {
                // A conditional write must not race another that searches the same type: both
                // would find nothing and both create.
                if self.locked_types.insert(*resource_type) {
                    AdvisoryLock::ResourceType(*resource_type).acquire(self.conn()?).await?;
                }
                // Only the search is limited in time, not the lock waits around it.
                if let Some(timeout) = self.query_timeout {
                    sqlx::query(AssertSqlSafe(set_statement_timeout(timeout))).execute(self.conn()?).await?;
                }
                let ids = sql::execute(&mut Sqlx::<Postgres>(self.conn()?), step).await?;
                if self.query_timeout.is_some() {
                    sqlx::query("SET LOCAL statement_timeout TO DEFAULT").execute(self.conn()?).await?;
                }
                Ok(ids)
            }
            Step::LiveHoldsOf { holder, .. } => {
                AdvisoryLock::Holder(holder).acquire(self.conn()?).await?;
                Ok(sql::execute(&mut Sqlx::<Postgres>(self.conn()?), step).await?)
            }
            // Re-index walks read `FOR UPDATE`, so that a write on another node cannot slip in
            // between reading a resource and re-indexing it.
            _ => Ok(sql::execute(&mut Sqlx::<Postgres>(self.conn()?), step).await?),
        }
    }

    /// Reads a resource under its row lock; a resource not stored yet under the advisory lock
    /// of its id.
    async fn read(
        &mut self,
        resource_type: ResourceType,
        id: &str,
        lock: RowLock,
        step: &Step,
    ) -> Result<Seen, Failure> {
        let mut seen = sql::execute(&mut Sqlx::<Postgres>(self.conn()?), step).await?;
        if seen == Seen::Version(None) && lock == RowLock::Update {
            // No row to lock yet: creators of this id take turns, and the later one finds the
            // earlier one's resource.
            AdvisoryLock::NewResource(resource_type, id).acquire(self.conn()?).await?;
            seen = sql::execute(&mut Sqlx::<Postgres>(self.conn()?), step).await?;
        }
        if resource_type == ResourceType::Slot && lock == RowLock::Update && matches!(seen, Seen::Version(Some(_))) {
            self.locked_slots.insert(id.to_owned());
        }
        Ok(seen)
    }

    /// [`Self::read`] of several resources: the rows found are locked by the read, the ids not
    /// stored yet by their advisory locks (in id order, as the rows), then read again.
    async fn read_many(&mut self, resource_type: ResourceType, ids: &[String], step: &Step) -> Result<Seen, Failure> {
        let mut seen = sql::execute(&mut Sqlx::<Postgres>(self.conn()?), step).await?;
        let Seen::Versions(found) = &seen else { unreachable!("a read returned {seen:?}") };
        let stored: HashSet<&str> = found.iter().map(|v| v.id.as_str()).collect();
        let mut missing: Vec<&String> = ids.iter().filter(|id| !stored.contains(id.as_str())).collect();
        if !missing.is_empty() {
            missing.sort();
            missing.dedup();
            for id in missing {
                AdvisoryLock::NewResource(resource_type, id).acquire(self.conn()?).await?;
            }
            seen = sql::execute(&mut Sqlx::<Postgres>(self.conn()?), step).await?;
        }
        if resource_type == ResourceType::Slot
            && let Seen::Versions(found) = &seen
        {
            self.locked_slots.extend(found.iter().map(|v| v.id.clone()));
        }
        Ok(seen)
    }

    /// Takes the row locks of the Slots not locked yet, in one statement.
    async fn lock_slots(&mut self, slot_ids: &[String]) -> Result<(), Failure> {
        let wanted: Vec<String> = slot_ids.iter().filter(|id| !self.locked_slots.contains(*id)).cloned().collect();
        if wanted.is_empty() {
            return Ok(());
        }
        let found: Vec<(String,)> = sqlx::query_as(
            "SELECT res_id FROM resource WHERE res_type = 'Slot' AND res_id = ANY($1) ORDER BY res_id FOR UPDATE",
        )
        .bind(&wanted)
        .fetch_all(self.conn()?)
        .await?;
        self.locked_slots.extend(found.into_iter().map(|(id,)| id));
        Ok(())
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
impl UnitOfWork for PostgresWriteTx {
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

    async fn append_event(&mut self, event: &DomainEvent) -> StoreResult<()> {
        self.events.push(event.clone());
        Ok(())
    }

    /// Appends the events under the outbox lock, the last lock the transaction takes and held
    /// only until this commit, so sequence numbers are handed out in commit order.
    async fn commit(mut self) -> StoreResult<()> {
        let Some(mut tx) = self.tx.take() else {
            return Err(StoreError::Unavailable("the unit of work was rolled back".into()));
        };
        if !self.events.is_empty() {
            AdvisoryLock::Outbox.acquire(&mut tx).await.map_err(db_error)?;
            sql::append_events(&mut Sqlx::<Postgres>(&mut tx), &self.events).await?;
        }
        tx.commit().await.map_err(db_error)
    }
}
