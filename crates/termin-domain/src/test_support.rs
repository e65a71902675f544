//! A store for domain tests that passes everything to a real store, notes which resources,
//! holds and slot bookings were read, and can fail reads of one resource type as a
//! database outage would.

use async_trait::async_trait;
use jiff::Timestamp;
use std::sync::{Arc, Mutex};
use termin_fhir::ResourceType;
use termin_store::{
    AppointmentId, AuditEntry, Condition, DomainEvent, Filter, HistoryPage, HistoryRequest, IndexEntries, NewVersion,
    RequestContext, ResourceStore, ResourceVersion, SearchPage, SearchRequest, SlotHold, SlotId, StoreError,
    StoreResult, WriteTx,
};

#[derive(Default)]
struct Probe {
    /// `read Slot/a`, `hold a`, `booking a`, `overlap query`, `write Slot/a`, and one entry
    /// per bulk call (`read 3 Slots`, `holds of 3`, `bookings of 3`, `write 3`), in order.
    reads: Mutex<Vec<String>>,
    failing: Mutex<Option<ResourceType>>,
}

impl Probe {
    fn read(&self, what: String) {
        self.reads.lock().unwrap().push(what);
    }

    fn resource(&self, resource_type: ResourceType, id: &str) -> StoreResult<()> {
        if *self.failing.lock().unwrap() == Some(resource_type) {
            return Err(StoreError::Unavailable(format!("reading {resource_type} failed (test outage)")));
        }
        self.read(format!("read {resource_type}/{id}"));
        Ok(())
    }
}

pub struct ProbeStore {
    inner: Arc<dyn ResourceStore>,
    probe: Arc<Probe>,
}

impl ProbeStore {
    pub fn new(inner: Arc<dyn ResourceStore>) -> Self {
        ProbeStore { inner, probe: Arc::default() }
    }

    /// Reads of `resource_type` fail from now on.
    pub fn fail_reads_of(&self, resource_type: ResourceType) {
        *self.probe.failing.lock().unwrap() = Some(resource_type);
    }

    /// How often `what` (e.g. `read Slot/a`, `hold a`, `booking a`) was read since the last call.
    pub fn take_reads(&self) -> Vec<String> {
        std::mem::take(&mut *self.probe.reads.lock().unwrap())
    }
}

#[async_trait]
impl ResourceStore for ProbeStore {
    async fn read_current(
        &self,
        ctx: &RequestContext,
        resource_type: ResourceType,
        id: &str,
    ) -> StoreResult<Option<ResourceVersion>> {
        self.probe.resource(resource_type, id)?;
        self.inner.read_current(ctx, resource_type, id).await
    }

    async fn read_version(
        &self,
        ctx: &RequestContext,
        resource_type: ResourceType,
        id: &str,
        version: u64,
    ) -> StoreResult<Option<ResourceVersion>> {
        self.probe.resource(resource_type, id)?;
        self.inner.read_version(ctx, resource_type, id, version).await
    }

    async fn search(&self, ctx: &RequestContext, request: &SearchRequest) -> StoreResult<SearchPage> {
        self.inner.search(ctx, request).await
    }

    async fn search_index_fingerprint(&self) -> StoreResult<Option<String>> {
        self.inner.search_index_fingerprint().await
    }

    async fn history(&self, ctx: &RequestContext, request: &HistoryRequest) -> StoreResult<HistoryPage> {
        self.inner.history(ctx, request).await
    }

    async fn begin_write(&self, ctx: &RequestContext) -> StoreResult<Box<dyn WriteTx>> {
        let inner = self.inner.begin_write(ctx).await?;
        Ok(Box::new(ProbeTx { inner, probe: self.probe.clone() }))
    }

    async fn ping(&self) -> StoreResult<()> {
        self.inner.ping().await
    }

    async fn holds(&self, ctx: &RequestContext, slot_ids: &[String]) -> StoreResult<Vec<SlotHold>> {
        self.inner.holds(ctx, slot_ids).await
    }

    async fn expired_holds(&self, now: Timestamp, limit: usize) -> StoreResult<Vec<SlotHold>> {
        self.inner.expired_holds(now, limit).await
    }

    async fn events(&self, after: u64, limit: usize) -> StoreResult<Vec<(u64, DomainEvent)>> {
        self.inner.events(after, limit).await
    }
}

struct ProbeTx {
    inner: Box<dyn WriteTx>,
    probe: Arc<Probe>,
}

#[async_trait]
impl WriteTx for ProbeTx {
    async fn read_current(&mut self, resource_type: ResourceType, id: &str) -> StoreResult<Option<ResourceVersion>> {
        self.probe.resource(resource_type, id)?;
        self.inner.read_current(resource_type, id).await
    }

    async fn read_current_shared(
        &mut self,
        resource_type: ResourceType,
        id: &str,
    ) -> StoreResult<Option<ResourceVersion>> {
        self.probe.resource(resource_type, id)?;
        self.inner.read_current_shared(resource_type, id).await
    }

    async fn find_matching_ids(
        &mut self,
        resource_type: ResourceType,
        filter: &Filter,
        limit: usize,
    ) -> StoreResult<Vec<String>> {
        self.inner.find_matching_ids(resource_type, filter, limit).await
    }

    async fn find_ids(
        &mut self,
        resource_type: ResourceType,
        conditions: &[Condition],
        limit: usize,
    ) -> StoreResult<Vec<String>> {
        self.inner.find_ids(resource_type, conditions, limit).await
    }

    async fn overlapping(
        &mut self,
        resource_type: ResourceType,
        param: &str,
        period: (Timestamp, Timestamp),
        exclude_id: &str,
        limit: usize,
    ) -> StoreResult<Vec<String>> {
        self.probe.read("overlap query".into());
        self.inner.overlapping(resource_type, param, period, exclude_id, limit).await
    }

    async fn current_after(
        &mut self,
        after: Option<(ResourceType, String)>,
        limit: usize,
    ) -> StoreResult<Vec<ResourceVersion>> {
        self.inner.current_after(after, limit).await
    }

    async fn replace_index(&mut self, resource_type: ResourceType, id: &str, index: &IndexEntries) -> StoreResult<()> {
        self.inner.replace_index(resource_type, id, index).await
    }

    async fn set_search_index_fingerprint(&mut self, fingerprint: &str) -> StoreResult<()> {
        self.inner.set_search_index_fingerprint(fingerprint).await
    }

    async fn write(&mut self, new: NewVersion) -> StoreResult<()> {
        self.probe.read(format!("write {}/{}", new.version.resource_type, new.version.id));
        self.inner.write(new).await
    }

    async fn append_audit(&mut self, entries: Arc<[AuditEntry]>) -> StoreResult<()> {
        self.inner.append_audit(entries).await
    }

    async fn write_all(&mut self, versions: Vec<NewVersion>) -> StoreResult<()> {
        self.probe.read(format!("write {}", versions.len()));
        self.inner.write_all(versions).await
    }

    async fn read_current_many(
        &mut self,
        resource_type: ResourceType,
        ids: &[String],
    ) -> StoreResult<Vec<ResourceVersion>> {
        self.probe.read(format!("read {} {resource_type}s", ids.len()));
        self.inner.read_current_many(resource_type, ids).await
    }

    async fn holds_of(&mut self, slot_ids: &[String]) -> StoreResult<Vec<SlotHold>> {
        self.probe.read(format!("holds of {}", slot_ids.len()));
        self.inner.holds_of(slot_ids).await
    }

    async fn slot_bookings(&mut self, slot_ids: &[String]) -> StoreResult<Vec<(String, String)>> {
        self.probe.read(format!("bookings of {}", slot_ids.len()));
        self.inner.slot_bookings(slot_ids).await
    }

    async fn hold(&mut self, slot_id: &str) -> StoreResult<Option<SlotHold>> {
        self.probe.read(format!("hold {slot_id}"));
        self.inner.hold(slot_id).await
    }

    async fn live_holds_of(&mut self, holder: &str, now: Timestamp) -> StoreResult<Vec<SlotHold>> {
        self.inner.live_holds_of(holder, now).await
    }

    async fn put_hold(&mut self, hold: &SlotHold) -> StoreResult<()> {
        self.inner.put_hold(hold).await
    }

    async fn delete_hold(&mut self, slot_id: &str) -> StoreResult<()> {
        self.inner.delete_hold(slot_id).await
    }

    async fn slot_booking(&mut self, slot_id: &str) -> StoreResult<Option<String>> {
        self.probe.read(format!("booking {slot_id}"));
        self.inner.slot_booking(slot_id).await
    }

    async fn put_slot_booking(
        &mut self,
        slot: SlotId<'_>,
        appointment: AppointmentId<'_>,
        cancel_deadline: Option<Timestamp>,
    ) -> StoreResult<()> {
        self.inner.put_slot_booking(slot, appointment, cancel_deadline).await
    }

    async fn booking_cancel_deadline(&mut self, slot_id: &str) -> StoreResult<Option<Timestamp>> {
        self.inner.booking_cancel_deadline(slot_id).await
    }

    async fn delete_slot_booking(&mut self, slot_id: &str) -> StoreResult<()> {
        self.inner.delete_slot_booking(slot_id).await
    }

    async fn append_event(&mut self, event: &DomainEvent) -> StoreResult<()> {
        self.inner.append_event(event).await
    }

    async fn purge_older_than(
        &mut self,
        resource_type: ResourceType,
        before: jiff::Timestamp,
        limit: usize,
    ) -> StoreResult<Vec<String>> {
        self.inner.purge_older_than(resource_type, before, limit).await
    }

    async fn commit(self: Box<Self>) -> StoreResult<()> {
        self.inner.commit().await
    }
}
