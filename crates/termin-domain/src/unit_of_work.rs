//! The unit of work every domain write runs in: the store's transaction plus what it has
//! read so far. Each resource, hold and slot booking is read (and each resource parsed) once
//! per unit of work; writes through it keep what it remembers current, so later rules see
//! them without reading again.

use crate::DomainError;
use crate::audit::{AuditAction, AuditRecord, audit_event};
use crate::caller::Caller;
use crate::model::{self, AppointmentId, SlotId};
use jiff::Timestamp;
use serde_json::{Map, Value};
use std::collections::HashMap;
use termin_fhir::ResourceType;
use termin_search::SearchParameters;
use termin_store::{
    Condition, DomainEvent, Filter, IndexEntries, NewVersion, ResourceStore, ResourceVersion, SlotHold, WriteTx,
};

/// A current resource as the unit of work knows it.
#[derive(Clone)]
struct Known {
    /// `None`: no version stored.
    version: Option<ResourceVersion>,
    /// The parsed body, once someone asked for it (`None` also for a deleted resource).
    body: Option<Map<String, Value>>,
    /// Read with [`WriteTx::read_current`] (the row is the unit of work's to write), not
    /// only shared.
    exclusive: bool,
}

/// The bookable periods of one Schedule's Slots that overlap a window, read under the
/// Schedule's row lock (which every writer of a Slot period of it takes first), so that the
/// overlap check of a Slot inside the window needs no query.
struct SlotPeriods {
    /// The Slots' period parameter (`termin_search::slot_period_param`).
    param: String,
    window: (Timestamp, Timestamp),
    periods: HashMap<String, (Timestamp, Timestamp)>,
}

/// A current, non-deleted resource: its version and its parsed body.
pub(crate) type Live = (ResourceVersion, Map<String, Value>);

pub(crate) struct UnitOfWork {
    tx: Box<dyn WriteTx>,
    search: &'static SearchParameters,
    resources: HashMap<(ResourceType, String), Known>,
    holds: HashMap<String, Option<SlotHold>>,
    bookings: HashMap<String, Option<String>>,
    caller: Caller,
    /// When the unit of work began: the time of its audit event.
    began: Timestamp,
    /// The access committing records; `None` until something is written.
    audit: Option<AuditRecord>,
    /// The accesses of earlier entries of a transaction Bundle, each recorded as if sent alone.
    earlier_audits: Vec<AuditRecord>,
    /// Record the access even when it reaches no patient data (`$hold`, `$book`).
    audit_always: bool,
    /// Gather first versions in `pending` and write them together (see [`Self::gather_creations`]).
    gather: bool,
    /// First versions not yet handed to the store: written before anything else reaches it.
    pending: Vec<NewVersion>,
    slot_periods: Vec<SlotPeriods>,
}

impl UnitOfWork {
    /// Begins a unit of work whose index rows are built with `search`.
    pub async fn begin(
        store: &dyn ResourceStore,
        ctx: &Caller,
        search: &'static SearchParameters,
        now: Timestamp,
    ) -> Result<Self, DomainError> {
        Ok(UnitOfWork {
            tx: store.begin_write(ctx.context()).await?,
            search,
            resources: HashMap::new(),
            holds: HashMap::new(),
            bookings: HashMap::new(),
            caller: ctx.clone(),
            began: now,
            audit: None,
            earlier_audits: Vec::new(),
            audit_always: false,
            gather: false,
            pending: Vec::new(),
            slot_periods: Vec::new(),
        })
    }

    /// Names the access the commit records (an operation such as `$book`); it is recorded even
    /// when it reaches no patient's data.
    pub fn audit_as(&mut self, action: AuditAction, interaction: &str) {
        let record = self.audit.get_or_insert_with(|| AuditRecord::new(action, interaction));
        record.action = action;
        record.interaction = interaction.to_owned();
        self.audit_always = true;
    }

    /// Starts the access of the next entry of a transaction Bundle: what is written from now on
    /// is recorded in an AuditEvent of its own, as a request of its own would be.
    pub fn next_access(&mut self) {
        if let Some(record) = self.audit.take() {
            self.earlier_audits.push(record);
        }
    }

    /// Notes a written version in the access the commit records.
    fn audit_write(&mut self, new: &NewVersion, body: Option<&Map<String, Value>>) {
        let (action, interaction) = match (new.version.is_deleted(), new.change) {
            (true, _) => (AuditAction::Delete, "delete"),
            (false, termin_store::ChangeKind::Create) => (AuditAction::Create, "create"),
            (false, _) => (AuditAction::Update, "update"),
        };
        let record = self.audit.get_or_insert_with(|| AuditRecord::new(action, interaction));
        // The first write of patient data names the access (a cancellation may free its Slot
        // first); an operation named with `audit_as` keeps its name.
        if !self.audit_always && !record.concerns_patients() {
            record.action = action;
            record.interaction = interaction.to_owned();
        }
        let parsed;
        let body = match body {
            Some(body) => Some(body),
            None => {
                parsed = new.version.body.as_deref().and_then(model::parse_object);
                parsed.as_ref()
            }
        };
        record.reached(new.version.resource_type, &new.version.id, body);
    }

    /// The search parameters the index rows of what it writes are built with.
    pub fn search_parameters(&self) -> &'static SearchParameters {
        self.search
    }

    /// The current version, the row now the unit of work's to write.
    pub async fn read_current(
        &mut self,
        resource_type: ResourceType,
        id: &str,
    ) -> Result<Option<ResourceVersion>, DomainError> {
        Ok(self.known(resource_type, id, true).await?.version.clone())
    }

    /// Reads a current, non-deleted resource. Scheduling writes only Slots and Appointments;
    /// everything else it reads (Schedule, HealthcareService, Patient) is only checked, so
    /// concurrent bookings may check it together instead of queueing behind it.
    pub async fn read_live(&mut self, resource_type: ResourceType, id: &str) -> Result<Option<Live>, DomainError> {
        let exclusive = matches!(resource_type, ResourceType::Slot | ResourceType::Appointment);
        let known = self.known(resource_type, id, exclusive).await?;
        let Some(version) = known.version.as_ref().filter(|v| !v.is_deleted()) else {
            return Ok(None);
        };
        if known.body.is_none() {
            let text = version.body.as_deref().unwrap_or_default();
            let parsed = model::parse_object(text)
                .ok_or_else(|| DomainError::Internal(format!("stored {resource_type}/{id} is not a JSON object")))?;
            known.body = Some(parsed);
        }
        Ok(Some((version.clone(), known.body.clone().unwrap_or_default())))
    }

    async fn known(
        &mut self,
        resource_type: ResourceType,
        id: &str,
        exclusive: bool,
    ) -> Result<&mut Known, DomainError> {
        let key = (resource_type, id.to_owned());
        let stale = self.resources.get(&key).is_none_or(|k| exclusive && !k.exclusive);
        if stale {
            self.flush().await?;
            let version = match exclusive {
                true => self.tx.read_current(resource_type, id).await?,
                false => self.tx.read_current_shared(resource_type, id).await?,
            };
            self.resources.insert(key.clone(), Known { version, body: None, exclusive });
        }
        Ok(self.resources.get_mut(&key).expect("just read"))
    }

    /// From now on, first versions of resources are written to the store together, when the
    /// unit of work next reaches the store or commits, instead of one by one: for units of work
    /// that create many resources (slot generation). What it remembers is kept current at
    /// once, so its rules see them as written; a conflict surfaces at that later call.
    pub fn gather_creations(&mut self) {
        self.gather = true;
    }

    /// Hands the gathered first versions to the store.
    async fn flush(&mut self) -> Result<(), DomainError> {
        if !self.pending.is_empty() {
            let pending = std::mem::take(&mut self.pending);
            self.tx.write_all(pending).await?;
        }
        Ok(())
    }

    /// Reads the current versions of `ids` (as [`Self::read_current`] would, rows now the unit
    /// of work's to write) with as few statements as the store can, for the reads that follow.
    pub async fn read_current_many(&mut self, resource_type: ResourceType, ids: &[String]) -> Result<(), DomainError> {
        let unknown: Vec<String> = ids
            .iter()
            .filter(|id| !self.resources.get(&(resource_type, (*id).clone())).is_some_and(|k| k.exclusive))
            .cloned()
            .collect();
        if unknown.is_empty() {
            return Ok(());
        }
        self.flush().await?;
        let mut found: HashMap<String, ResourceVersion> =
            self.tx.read_current_many(resource_type, &unknown).await?.into_iter().map(|v| (v.id.clone(), v)).collect();
        for id in unknown {
            let version = found.remove(&id);
            self.resources.insert((resource_type, id), Known { version, body: None, exclusive: true });
        }
        Ok(())
    }

    /// Reads the holds and bookings of `slot_ids` with as few statements as the store can,
    /// for the reads that follow.
    pub async fn read_slot_states(&mut self, slot_ids: &[String]) -> Result<(), DomainError> {
        let holds_unknown: Vec<String> = slot_ids.iter().filter(|id| !self.holds.contains_key(*id)).cloned().collect();
        let bookings_unknown: Vec<String> =
            slot_ids.iter().filter(|id| !self.bookings.contains_key(*id)).cloned().collect();
        if holds_unknown.is_empty() && bookings_unknown.is_empty() {
            return Ok(());
        }
        self.flush().await?;
        let mut holds: HashMap<String, SlotHold> =
            self.tx.holds_of(&holds_unknown).await?.into_iter().map(|h| (h.slot_id.clone(), h)).collect();
        for id in holds_unknown {
            let hold = holds.remove(&id);
            self.holds.insert(id, hold);
        }
        let mut bookings: HashMap<String, String> =
            self.tx.slot_bookings(&bookings_unknown).await?.into_iter().collect();
        for id in bookings_unknown {
            let booking = bookings.remove(&id);
            self.bookings.insert(id, booking);
        }
        Ok(())
    }

    /// Takes `periods` as every bookable Slot period of `param` (of Schedule `schedule_id`)
    /// overlapping `window`, so that [`Self::known_overlap`] answers for periods inside it.
    /// Only while the unit of work holds the Schedule's row ([`Self::read_current`]), which
    /// writers of its Slot periods take first; otherwise nothing is taken.
    pub fn know_slot_periods(
        &mut self,
        schedule_id: &str,
        param: String,
        window: (Timestamp, Timestamp),
        periods: HashMap<String, (Timestamp, Timestamp)>,
    ) {
        let locked = self.resources.get(&(ResourceType::Schedule, schedule_id.to_owned())).is_some_and(|k| k.exclusive);
        if locked {
            self.slot_periods.retain(|known| known.param != param);
            self.slot_periods.push(SlotPeriods { param, window, periods });
        }
    }

    /// A Slot other than `exclude_id` whose bookable period of `param` overlaps `period`
    /// (the first by id): `Some` when the unit of work knows, `None` when the store must be
    /// asked.
    pub fn known_overlap(
        &self,
        param: &str,
        period: (Timestamp, Timestamp),
        exclude_id: &str,
    ) -> Option<Option<String>> {
        let known = self
            .slot_periods
            .iter()
            .find(|known| known.param == param && known.window.0 <= period.0 && period.1 <= known.window.1)?;
        let overlapping = known
            .periods
            .iter()
            .filter(|(id, (start, end))| id.as_str() != exclude_id && *start < period.1 && period.0 < *end)
            .map(|(id, _)| id)
            .min();
        Some(overlapping.cloned())
    }

    /// Keeps the known Slot periods current through a write of the Slot `id`.
    fn track_slot_period(&mut self, id: &str, body: Option<&Map<String, Value>>) {
        if self.slot_periods.is_empty() {
            return;
        }
        let period = body.and_then(termin_search::slot_period);
        for known in &mut self.slot_periods {
            known.periods.remove(id);
            if let Some((param, start, end)) = &period
                && *param == known.param
            {
                known.periods.insert(id.to_owned(), (*start, *end));
            }
        }
    }

    /// Writes a version; `body` is its content when the caller has it parsed already.
    pub async fn write(&mut self, new: NewVersion, body: Option<Map<String, Value>>) -> Result<(), DomainError> {
        let key = (new.version.resource_type, new.version.id.clone());
        let version = new.version.clone();
        // The patients of a deleted resource are those of its last content.
        let last_content = match version.is_deleted() {
            true => self.resources.get(&key).and_then(|known| {
                let stored = || known.version.as_ref().and_then(|v| v.body.as_deref()).and_then(model::parse_object);
                known.body.clone().or_else(stored)
            }),
            false => None,
        };
        self.audit_write(&new, body.as_ref().or(last_content.as_ref()));
        let body = match body {
            None if version.resource_type == ResourceType::Slot && !self.slot_periods.is_empty() => {
                version.body.as_deref().and_then(model::parse_object)
            }
            body => body,
        };
        let body = body.filter(|_| !version.is_deleted());
        if version.resource_type == ResourceType::Slot {
            self.track_slot_period(&version.id, body.as_ref());
        }
        // A first version is the only write of its resource so far: gathered ones never meet.
        if self.gather && version.version == 1 && !version.is_deleted() {
            self.pending.push(new);
        } else {
            self.flush().await?;
            self.tx.write(new).await?;
        }
        self.resources.insert(key, Known { version: Some(version), body, exclusive: true });
        Ok(())
    }

    pub async fn hold(&mut self, slot_id: &str) -> Result<Option<SlotHold>, DomainError> {
        if let Some(known) = self.holds.get(slot_id) {
            return Ok(known.clone());
        }
        self.flush().await?;
        let hold = self.tx.hold(slot_id).await?;
        self.holds.insert(slot_id.to_owned(), hold.clone());
        Ok(hold)
    }

    pub async fn put_hold(&mut self, hold: &SlotHold) -> Result<(), DomainError> {
        self.flush().await?;
        self.tx.put_hold(hold).await?;
        self.holds.insert(hold.slot_id.clone(), Some(hold.clone()));
        Ok(())
    }

    pub async fn delete_hold(&mut self, slot_id: &str) -> Result<(), DomainError> {
        self.flush().await?;
        self.tx.delete_hold(slot_id).await?;
        self.holds.insert(slot_id.to_owned(), None);
        Ok(())
    }

    /// The id of the active Appointment that booked the slot.
    pub async fn slot_booking(&mut self, slot_id: &str) -> Result<Option<String>, DomainError> {
        if let Some(known) = self.bookings.get(slot_id) {
            return Ok(known.clone());
        }
        self.flush().await?;
        let booking = self.tx.slot_booking(slot_id).await?;
        self.bookings.insert(slot_id.to_owned(), booking.clone());
        Ok(booking)
    }

    /// Records that `appointment` booked the slot, with its policy's cancellation deadline.
    pub async fn put_slot_booking(
        &mut self,
        slot: SlotId<'_>,
        appointment: AppointmentId<'_>,
        cancel_deadline: Option<Timestamp>,
    ) -> Result<(), DomainError> {
        self.flush().await?;
        self.tx.put_slot_booking(slot, appointment, cancel_deadline).await?;
        self.bookings.insert(slot.0.to_owned(), Some(appointment.0.to_owned()));
        Ok(())
    }

    pub async fn delete_slot_booking(&mut self, slot_id: &str) -> Result<(), DomainError> {
        self.flush().await?;
        self.tx.delete_slot_booking(slot_id).await?;
        self.bookings.insert(slot_id.to_owned(), None);
        Ok(())
    }

    pub async fn booking_cancel_deadline(&mut self, slot_id: &str) -> Result<Option<Timestamp>, DomainError> {
        self.flush().await?;
        Ok(self.tx.booking_cancel_deadline(slot_id).await?)
    }

    pub async fn live_holds_of(&mut self, holder: &str, now: Timestamp) -> Result<Vec<SlotHold>, DomainError> {
        self.flush().await?;
        Ok(self.tx.live_holds_of(holder, now).await?)
    }

    pub async fn find_matching_ids(
        &mut self,
        resource_type: ResourceType,
        filter: &Filter,
        limit: usize,
    ) -> Result<Vec<String>, DomainError> {
        self.flush().await?;
        Ok(self.tx.find_matching_ids(resource_type, filter, limit).await?)
    }

    pub async fn find_ids(
        &mut self,
        resource_type: ResourceType,
        conditions: &[Condition],
        limit: usize,
    ) -> Result<Vec<String>, DomainError> {
        self.flush().await?;
        Ok(self.tx.find_ids(resource_type, conditions, limit).await?)
    }

    pub async fn overlapping(
        &mut self,
        resource_type: ResourceType,
        param: &str,
        period: (Timestamp, Timestamp),
        exclude_id: &str,
        limit: usize,
    ) -> Result<Vec<String>, DomainError> {
        self.flush().await?;
        Ok(self.tx.overlapping(resource_type, param, period, exclude_id, limit).await?)
    }

    pub async fn current_after(
        &mut self,
        after: Option<(ResourceType, String)>,
        limit: usize,
    ) -> Result<Vec<ResourceVersion>, DomainError> {
        self.flush().await?;
        Ok(self.tx.current_after(after, limit).await?)
    }

    pub async fn replace_index(
        &mut self,
        resource_type: ResourceType,
        id: &str,
        index: &IndexEntries,
    ) -> Result<(), DomainError> {
        self.flush().await?;
        Ok(self.tx.replace_index(resource_type, id, index).await?)
    }

    pub async fn set_search_index_fingerprint(&mut self, fingerprint: &str) -> Result<(), DomainError> {
        self.flush().await?;
        Ok(self.tx.set_search_index_fingerprint(fingerprint).await?)
    }

    pub async fn append_event(&mut self, event: &DomainEvent) -> Result<(), DomainError> {
        self.flush().await?;
        Ok(self.tx.append_event(event).await?)
    }

    pub async fn purge_older_than(
        &mut self,
        resource_type: ResourceType,
        before: Timestamp,
        limit: usize,
    ) -> Result<Vec<String>, DomainError> {
        self.flush().await?;
        Ok(self.tx.purge_older_than(resource_type, before, limit).await?)
    }

    /// Commits, with the audit event of the access when it reached patient data (or was named
    /// with [`Self::audit_as`]).
    pub async fn commit(mut self) -> Result<(), DomainError> {
        self.flush().await?;
        // The server's own jobs (demo loading, seeding, hold expiry) are no one's access.
        let someone = self.caller.context().principal != termin_store::Principal::System;
        let always = self.audit_always;
        let records = std::mem::take(&mut self.earlier_audits).into_iter().chain(self.audit.take());
        let events = records
            .filter(|r| someone && (always || r.concerns_patients()))
            .map(|record| audit_event(self.search, &self.caller, &record, self.began))
            .collect::<Result<Vec<_>, _>>()?;
        self.tx.append_audit(events.into()).await?;
        Ok(self.tx.commit().await?)
    }
}
