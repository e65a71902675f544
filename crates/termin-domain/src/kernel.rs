//! What every domain service builds on: the store, clock, configuration, validator and
//! search parameters, the compartment-aware reads, and the write pipeline every change passes
//! (content checks and validation, the scheduling rules, server-managed `meta`, index rows).

use crate::audit::{AuditRecord, AuditTrail, audit_event};
use crate::caller::Caller;
use crate::compartment;
use crate::cpu::CpuWork;
use crate::model;
use crate::organisation;
use crate::rules::{self, guard_write};
use crate::unit_of_work::UnitOfWork;
use crate::validation::{ResourceValidator, conform};
use crate::version::new_version;
use crate::{Clock, DomainError};
use jiff::SignedDuration;
use serde_json::{Map, Value};
use std::sync::Arc;
use termin_fhir::{Issue, IssueCode, ResourceType};
use termin_search::SearchParameters;
use termin_store::{
    ChangeKind, Condition, Filter, NewVersion, Permission, ResourceStore, ResourceVersion, SearchPage, SearchRequest,
};

#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// Whether `PUT` to an unknown id creates the resource with that client-chosen id.
    pub update_create: bool,
    /// How long `$hold` keeps a slot for its holder.
    pub hold_duration: SignedDuration,
    /// Live holds one holder may have at a time (0: no limit).
    pub max_holds_per_holder: usize,
    /// The longest a hold may last from its first placement, renewals included.
    pub max_hold_time: SignedDuration,
    /// The largest resource stored, in bytes of compact JSON, plus 1 KiB for the id and `meta`
    /// the server adds: the request body limit, enforced again on what PATCH builds.
    pub max_resource_bytes: usize,
    /// What `DELETE [type]?criteria` may delete.
    pub conditional_delete: ConditionalDelete,
}

/// How many resources one conditional delete (`DELETE [type]?criteria`) may remove, as FHIR's
/// `conditional-delete-status` codes name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConditionalDelete {
    /// Refused (405).
    Off,
    /// One match at most; several are 412 (the criteria are not selective enough).
    Single,
    /// Every match, up to [`ConditionalDelete::MAX_MATCHES`], in one unit of work.
    Multiple,
}

impl ConditionalDelete {
    /// The most resources one multiple conditional delete removes; more matches are 412, so a
    /// careless query cannot empty a table in one request.
    pub const MAX_MATCHES: usize = 1000;

    /// The CapabilityStatement's `conditionalDelete` code.
    pub fn code(self) -> &'static str {
        match self {
            ConditionalDelete::Off => "not-supported",
            ConditionalDelete::Single => "single",
            ConditionalDelete::Multiple => "multiple",
        }
    }
}

impl std::str::FromStr for ConditionalDelete {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "off" => Ok(ConditionalDelete::Off),
            "single" => Ok(ConditionalDelete::Single),
            "multiple" => Ok(ConditionalDelete::Multiple),
            other => Err(format!("conditional delete must be off, single or multiple, not {other:?}")),
        }
    }
}

impl Default for ServiceConfig {
    /// The server's defaults (`termin serve --help`).
    fn default() -> Self {
        ServiceConfig {
            update_create: true,
            hold_duration: SignedDuration::from_mins(10),
            max_holds_per_holder: 3,
            max_hold_time: SignedDuration::from_mins(30),
            max_resource_bytes: 1 << 20,
            conditional_delete: ConditionalDelete::Single,
        }
    }
}

/// Room beyond [`ServiceConfig::max_resource_bytes`] for what the server adds to a body that
/// was within the request limit: its id and `meta` (version, time, the enforced profile).
const SERVER_ELEMENTS_ALLOWANCE: usize = 1024;

/// How a write ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteStatus {
    Created,
    Updated,
    /// The update carried no change; no version was created.
    Unchanged,
    /// A conditional create found this existing resource; nothing was written.
    AlreadyExists,
}

#[derive(Debug, Clone)]
pub struct WriteOutcome {
    pub status: WriteStatus,
    pub version: ResourceVersion,
    /// Validation warnings about the written resource (they did not block the write).
    pub warnings: Vec<Issue>,
}

impl WriteOutcome {
    pub(crate) fn new(status: WriteStatus, version: ResourceVersion) -> Self {
        WriteOutcome { status, version, warnings: Vec::new() }
    }

    pub(crate) fn with_warnings(mut self, warnings: Vec<Issue>) -> Self {
        self.warnings = warnings;
        self
    }
}

pub(crate) fn label(resource_type: ResourceType, id: &str) -> String {
    format!("{resource_type}/{id}")
}

/// The shared part of the domain services.
#[derive(Clone)]
pub(crate) struct Kernel {
    pub store: Arc<dyn ResourceStore>,
    pub clock: Arc<dyn Clock>,
    pub config: ServiceConfig,
    /// The search parameters index rows are built with.
    pub search: &'static SearchParameters,
    pub validator: Option<Arc<dyn ResourceValidator>>,
    pub cpu: Arc<CpuWork>,
    /// Where reads and denials are recorded; `None`: not audited (tools such as `termin seed`).
    pub audit: Option<AuditTrail>,
}

impl Kernel {
    /// Begins a unit of work for `ctx`.
    pub(crate) async fn begin(&self, ctx: &Caller) -> Result<UnitOfWork, DomainError> {
        UnitOfWork::begin(self.store.as_ref(), ctx, self.search, self.clock.now()).await
    }

    pub(crate) fn new(
        store: Arc<dyn ResourceStore>,
        clock: Arc<dyn Clock>,
        config: ServiceConfig,
        search: &'static SearchParameters,
    ) -> Self {
        Kernel { store, clock, config, search, validator: None, cpu: Arc::new(CpuWork::new()), audit: None }
    }

    /// Queues the audit event of a read or search by `ctx` when it reached patient data.
    pub(crate) async fn audit_read(&self, ctx: &Caller, record: AuditRecord) {
        if let Some(trail) = &self.audit
            && record.concerns_patients()
        {
            match audit_event(self.search, ctx, &record, self.clock.now()) {
                Ok(event) => trail.record(event).await,
                Err(e) => tracing::error!(error = %e, "an audit event could not be built"),
            }
        }
    }

    pub(crate) fn config(&self) -> &ServiceConfig {
        &self.config
    }

    pub(crate) fn clock(&self) -> &dyn Clock {
        self.clock.as_ref()
    }

    pub(crate) fn store(&self) -> &dyn ResourceStore {
        self.store.as_ref()
    }

    /// Checks incoming content — every write path passes here: the content limits every stored
    /// resource keeps (a PATCH result or an import did not pass the request parser), then
    /// validation when a validator is configured. Answers the body to write, tagged with its
    /// enforced profile, and the warnings.
    pub(crate) async fn conform(
        &self,
        resource_type: ResourceType,
        body: Map<String, Value>,
    ) -> Result<(Map<String, Value>, Vec<Issue>), DomainError> {
        termin_fhir::json::check_content(&body).map_err(DomainError::unprocessable)?;
        match &self.validator {
            Some(validator) => {
                let validator = validator.clone();
                self.cpu.run(move || conform(validator.as_ref(), resource_type, body)).await?
            }
            None => Ok((body, Vec::new())),
        }
    }

    /// Shows a Slot whose hold has expired as free, whether or not the sweeper has run.
    pub(crate) async fn present(
        &self,
        ctx: &Caller,
        mut versions: Vec<ResourceVersion>,
    ) -> Result<Vec<ResourceVersion>, DomainError> {
        let tentative: Vec<String> = versions
            .iter()
            .filter(|v| v.resource_type == ResourceType::Slot)
            .filter(|v| v.body.as_deref().is_some_and(|b| b.contains("busy-tentative")))
            .map(|v| v.id.clone())
            .collect();
        if tentative.is_empty() {
            return Ok(versions);
        }
        let holds = self.store.holds(ctx.context(), &tentative).await?;
        let now = self.clock.now();
        for version in versions.iter_mut().filter(|v| tentative.contains(&v.id)) {
            let hold = holds.iter().find(|h| h.slot_id == version.id);
            if let Some(shown) = version.body.as_deref().and_then(|b| rules::present_slot(b, hold, now)) {
                version.body = Some(shown);
            }
        }
        Ok(versions)
    }

    /// The current version; 404 if it never existed, 410 if deleted.
    pub(crate) async fn read(
        &self,
        ctx: &Caller,
        resource_type: ResourceType,
        id: &str,
    ) -> Result<ResourceVersion, DomainError> {
        self.check_visible(ctx, resource_type, id).await?;
        match self.store.read_current(ctx.context(), resource_type, id).await? {
            None => Err(DomainError::NotFound(label(resource_type, id))),
            Some(v) if v.is_deleted() => Err(DomainError::Gone(label(resource_type, id))),
            Some(v) => Ok(self.present(ctx, vec![v]).await?.remove(0)),
        }
    }

    /// 403 or 404 unless the caller may see `resource_type/id`: a caller confined to a
    /// patient's compartment reads only its own Patient (another id answers 403: the request
    /// names another patient) and Appointments and RelatedPersons in the compartment (others
    /// answer 404, as if they did not exist).
    pub(crate) async fn check_visible(
        &self,
        ctx: &Caller,
        resource_type: ResourceType,
        id: &str,
    ) -> Result<(), DomainError> {
        self.check_organisation_visible(ctx, resource_type, id).await?;
        let Some(patient) = compartment::confined_to(ctx.context(), resource_type, Permission::Read)? else {
            return Ok(());
        };
        if resource_type == ResourceType::Patient {
            return match id == patient {
                true => Ok(()),
                false => Err(compartment::other_patient(resource_type, patient)),
            };
        }
        // The patients of an Appointment cannot change, so its last content decides, also
        // once it is deleted.
        let last_content = match self.store.read_current(ctx.context(), resource_type, id).await? {
            Some(v) if v.is_deleted() && v.version > 1 => {
                self.store.read_version(ctx.context(), resource_type, id, v.version - 1).await?
            }
            other => other,
        };
        let visible = last_content
            .and_then(|v| v.body)
            .and_then(|body| model::parse_object(&body))
            .is_some_and(|body| compartment::belongs(resource_type, id, &body, patient));
        match visible {
            true => Ok(()),
            false => Err(DomainError::NotFound(label(resource_type, id))),
        }
    }

    /// 404 for an Appointment or AuditEvent outside the organisations of staff (see
    /// [`organisation`]); a deleted one has no index rows left and is not found either.
    async fn check_organisation_visible(
        &self,
        ctx: &Caller,
        resource_type: ResourceType,
        id: &str,
    ) -> Result<(), DomainError> {
        if !organisation::READ_CONFINED.contains(&resource_type) {
            return Ok(());
        }
        let Some(confinement) = organisation::confinement(ctx.context(), resource_type, Permission::Read) else {
            return Ok(());
        };
        match self
            .find_ids(ctx, resource_type, vec![Condition::IdIn(vec![id.to_owned()]), confinement], 1)
            .await?
            .0
            .is_empty()
        {
            true => Err(DomainError::NotFound(label(resource_type, id))),
            false => Ok(()),
        }
    }

    /// The ids of current resources meeting `conditions`, at most `limit`, and whether more meet them.
    pub(crate) async fn find_ids(
        &self,
        ctx: &Caller,
        resource_type: ResourceType,
        conditions: Vec<Condition>,
        limit: usize,
    ) -> Result<(Vec<String>, bool), DomainError> {
        let request = SearchRequest {
            resource_type,
            filter: Filter { conditions, now: self.clock.now(), server_base: None },
            sort: Vec::new(),
            count: limit,
            page: None,
            total: false,
            includes: Vec::new(),
            revincludes: Vec::new(),
        };
        let page = self.store.search(ctx.context(), &request).await?;
        Ok((page.matches.into_iter().map(|v| v.id).collect(), page.next.is_some()))
    }

    /// Drops included Appointments and AuditEvents outside the organisations of staff.
    async fn retain_organisations(&self, ctx: &Caller, included: &mut Vec<ResourceVersion>) -> Result<(), DomainError> {
        for resource_type in organisation::READ_CONFINED {
            let Some(confinement) = organisation::confinement(ctx.context(), resource_type, Permission::Read) else {
                continue;
            };
            let ids: Vec<String> =
                included.iter().filter(|v| v.resource_type == resource_type).map(|v| v.id.clone()).collect();
            if ids.is_empty() {
                continue;
            }
            let limit = ids.len();
            let (visible, _) =
                self.find_ids(ctx, resource_type, vec![Condition::IdIn(ids), confinement], limit).await?;
            included.retain(|v| v.resource_type != resource_type || visible.contains(&v.id));
        }
        Ok(())
    }

    /// Runs a search; index rows with a validity window (Slot holds) are judged at the
    /// domain clock's now. A caller confined to a patient's compartment finds only what is in
    /// it, also through chains, `_has` and `_include`/`_revinclude`.
    pub(crate) async fn search(&self, ctx: &Caller, request: &SearchRequest) -> Result<SearchPage, DomainError> {
        let mut request = request.clone();
        request.filter.conditions.iter_mut().for_each(skip_audit_targets_of_untyped_chains);
        audit_search_supported(&request)?;
        let server_base = request.filter.server_base.take();
        request.filter = self.confined(ctx, request.resource_type, Permission::Search, &request.filter.conditions)?;
        // Absolute references under the server's own base match as local ones.
        request.filter.server_base = server_base;
        let mut page = self.store.search(ctx.context(), &request).await?;
        page.included.retain(|version| compartment::may_see(ctx.context(), version));
        self.retain_organisations(ctx, &mut page.included).await?;
        page.matches = self.present(ctx, page.matches).await?;
        page.included = self.present(ctx, page.included).await?;
        Ok(page)
    }

    /// Search or conditional-write criteria, judged at the domain clock's now, confined to the
    /// caller's patient compartment (403 when they name another patient).
    pub(crate) fn confined(
        &self,
        ctx: &Caller,
        resource_type: ResourceType,
        permission: Permission,
        conditions: &[Condition],
    ) -> Result<Filter, DomainError> {
        let mut conditions = conditions
            .iter()
            .map(|c| compartment::confine_reach(ctx.context(), c.clone()))
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(patient) = compartment::confined_to(ctx.context(), resource_type, permission)? {
            compartment::check_named_patients(resource_type, &conditions, patient)?;
            conditions.push(compartment::condition(resource_type, patient));
        }
        // Staff search the Appointments and AuditEvents of their organisations; the directory
        // types stay public.
        if organisation::READ_CONFINED.contains(&resource_type)
            && let Some(confinement) = organisation::confinement(ctx.context(), resource_type, permission)
        {
            conditions.push(confinement);
        }
        Ok(Filter { conditions, now: self.clock.now(), server_base: None })
    }

    /// Writes the next version inside `tx` (after the scheduling rules) and commits.
    pub(crate) async fn write_in(
        &self,
        ctx: &Caller,
        mut tx: UnitOfWork,
        resource_type: ResourceType,
        id: &str,
        body: Map<String, Value>,
        previous: Option<&ResourceVersion>,
    ) -> Result<WriteOutcome, DomainError> {
        let outcome = self.stage_in(ctx, &mut tx, resource_type, id, body, previous).await?;
        tx.commit().await?;
        tracing::debug!(resource = %label(resource_type, id), version = outcome.version.version, "stored");
        Ok(outcome)
    }

    /// Deletes the current version inside `tx` after the scheduling rules, without committing;
    /// nothing when there is none.
    pub(crate) async fn delete_in(
        &self,
        ctx: &Caller,
        tx: &mut UnitOfWork,
        resource_type: ResourceType,
        id: &str,
    ) -> Result<(), DomainError> {
        let Some(current) = tx.read_current(resource_type, id).await?.filter(|c| !c.is_deleted()) else {
            return Ok(());
        };
        let now = self.clock.now();
        let previous = current.body.as_deref().and_then(model::parse_object);
        guard_write(tx, ctx, now, resource_type, id, current.version + 1, previous.as_ref(), None).await?;
        let tombstone = ResourceVersion {
            resource_type,
            id: id.to_owned(),
            version: current.version + 1,
            last_updated: now,
            body: None,
        };
        tx.write(NewVersion { version: tombstone, change: ChangeKind::Delete, index: Default::default() }, None).await
    }

    /// Writes the next version inside `tx` after the scheduling rules, without committing.
    pub(crate) async fn stage_in(
        &self,
        ctx: &Caller,
        tx: &mut UnitOfWork,
        resource_type: ResourceType,
        id: &str,
        mut body: Map<String, Value>,
        previous: Option<&ResourceVersion>,
    ) -> Result<WriteOutcome, DomainError> {
        if resource_type == ResourceType::AuditEvent {
            return Err(DomainError::NotAllowed("AuditEvents are recorded by the server and cannot be written".into()));
        }
        let now = self.clock.now();
        let version = previous.map_or(1, |p| p.version + 1);
        let previous_body = previous.and_then(|p| p.body.as_deref()).and_then(model::parse_object);
        guard_write(tx, ctx, now, resource_type, id, version, previous_body.as_ref(), Some(&mut body)).await?;
        let (mut new, written_body) = new_version(self.search, resource_type, id, body, previous, now)?;
        let size = new.version.body.as_deref().map_or(0, str::len);
        let limit = self.config.max_resource_bytes.saturating_add(SERVER_ELEMENTS_ALLOWANCE);
        if size > limit {
            return Err(DomainError::unprocessable(Issue::error(
                IssueCode::TooLong,
                format!("The resource would take {size} bytes, more than the limit of {limit} bytes"),
            )));
        }
        if resource_type == ResourceType::Slot {
            rules::apply_hold_window(tx, id, &mut new.index).await?;
        }
        let status = if new.change == ChangeKind::Create { WriteStatus::Created } else { WriteStatus::Updated };
        let written = new.version.clone();
        tx.write(new, Some(written_body)).await?;
        Ok(WriteOutcome::new(status, written))
    }
}

/// A chain without a type modifier (`supporting-info._id=x`) stands for one alternative per
/// served type the parameter may refer to; the AuditEvent alternative is dropped when others
/// remain, since AuditEvents are kept apart from other resources and cannot be reached by a
/// chain. A chain to AuditEvents alone, or named with `:AuditEvent`, stays and is refused.
fn skip_audit_targets_of_untyped_chains(condition: &mut Condition) {
    match condition {
        Condition::Any(alternatives) => {
            let untyped_chain = alternatives.len() > 1
                && alternatives.iter().all(|alternative| matches!(alternative, Condition::Chain { .. }));
            if untyped_chain {
                alternatives.retain(|alternative| {
                    !matches!(alternative, Condition::Chain { target_type: ResourceType::AuditEvent, .. })
                });
            }
            alternatives.iter_mut().for_each(skip_audit_targets_of_untyped_chains);
        }
        Condition::ReferencedBy { condition, .. } | Condition::Chain { condition, .. } | Condition::Not(condition) => {
            skip_audit_targets_of_untyped_chains(condition)
        }
        _ => {}
    }
}

/// 400 for what the audit trail's compact rows cannot answer: AuditEvent conditions and sort
/// keys other than those of [`termin_store::AUDIT_SEARCH_PARAMS`], and `_has` or chains that
/// would search AuditEvents from another type.
fn audit_search_supported(request: &SearchRequest) -> Result<(), DomainError> {
    fn reaches_audit_events(condition: &Condition) -> bool {
        match condition {
            Condition::ReferencedBy { source_type: ResourceType::AuditEvent, .. }
            | Condition::Chain { target_type: ResourceType::AuditEvent, .. } => true,
            Condition::ReferencedBy { condition, .. }
            | Condition::Chain { condition, .. }
            | Condition::Not(condition) => reaches_audit_events(condition),
            Condition::Any(alternatives) => alternatives.iter().any(reaches_audit_events),
            _ => false,
        }
    }
    let refused = |why: String| DomainError::invalid(Issue::error(IssueCode::NotSupported, why));
    if request.resource_type == ResourceType::AuditEvent {
        if let Some(why) = request.filter.conditions.iter().find_map(termin_store::audit_condition_unsupported) {
            return Err(refused(why));
        }
        let sortable = |key: &termin_store::SortKey| match &key.param {
            termin_store::SortParam::Id => true,
            termin_store::SortParam::Indexed { param, .. } => matches!(param.as_str(), "date" | "_lastUpdated"),
            termin_store::SortParam::Distance { .. } => false,
        };
        if !request.sort.iter().all(sortable) {
            return Err(refused("AuditEvents sort by _id, date or _lastUpdated only".to_owned()));
        }
    } else if request.filter.conditions.iter().any(reaches_audit_events) {
        return Err(refused("AuditEvents cannot be searched through _has or a chain from another type".to_owned()));
    }
    Ok(())
}
