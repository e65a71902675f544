//! The FHIR resource lifecycle: create, read, update, delete, conditional variants and
//! history, with server-managed `meta.versionId` / `meta.lastUpdated`.

use crate::audit::{AuditAction, AuditRecord};
use crate::caller::Caller;
use crate::compartment;
use crate::kernel::{ConditionalDelete, Kernel, WriteOutcome, WriteStatus, label};
use crate::model;
use crate::organisation;
use crate::DomainError;
use serde_json::{Map, Value};
use std::sync::Arc;
use termin_fhir::{Issue, IssueCode, OperationOutcome, ResourceType, is_valid_id};
use termin_store::{
    Condition, HistoryPage, HistoryRequest, Permission, ResourceVersion, SearchPage,
    SearchRequest,
};
use crate::unit_of_work::UnitOfWork;

/// The most resources of one patient's compartment (or, for staff, of their organisations) a
/// type history lists (the history of each is still readable one by one).
const REACHABLE_HISTORY_LIMIT: usize = 1000;

/// Resource CRUD, history, patch, import and the search index rebuild.
pub struct ResourceService {
    kernel: Arc<Kernel>,
}

impl ResourceService {
    pub(crate) fn over(kernel: Arc<Kernel>) -> Self {
        ResourceService { kernel }
    }

    /// The current version; 404 if it never existed, 410 if deleted.
    pub async fn read(&self, ctx: &Caller, resource_type: ResourceType, id: &str) -> Result<ResourceVersion, DomainError> {
        let version = self.kernel.read(ctx, resource_type, id).await?;
        self.audit_reads(ctx, "read", std::slice::from_ref(&version)).await;
        Ok(version)
    }

    /// Records that `ctx` saw `versions` (when they include patient data).
    async fn audit_reads(&self, ctx: &Caller, interaction: &str, versions: impl IntoIterator<Item = &ResourceVersion>) {
        let mut record = AuditRecord::new(AuditAction::Read, interaction);
        for version in versions {
            record.reached_version(version);
        }
        self.kernel.audit_read(ctx, record).await;
    }

    /// Runs a search; index rows with a validity window (Slot holds) are judged at the
    /// domain clock's now. A caller confined to a patient's compartment finds only what is in
    /// it, also through chains, `_has` and `_include`/`_revinclude`.
    pub async fn search(&self, ctx: &Caller, request: &SearchRequest) -> Result<SearchPage, DomainError> {
        let page = self.kernel.search(ctx, request).await?;
        self.audit_reads(ctx, "search-type", page.matches.iter().chain(&page.included)).await;
        Ok(page)
    }

    /// `$validate`: the outcome of checking `resource` (also against `profile`, when given),
    /// off the async workers like every validation. `None` when validation is off; the inner
    /// `Err` says the profile is not known.
    pub async fn validate(
        &self,
        resource: Value,
        profile: Option<String>,
    ) -> Result<Option<Result<OperationOutcome, String>>, DomainError> {
        let Some(validator) = self.kernel.validator.clone() else {
            return Ok(None);
        };
        let outcome = self
            .kernel
            .cpu
            .run(move || match profile {
                Some(profile) => validator.validate_against(&resource, &profile),
                None => Ok(validator.validate(&resource)),
            })
            .await?;
        Ok(Some(outcome))
    }

    pub async fn ready(&self) -> Result<(), DomainError> {
        Ok(self.kernel.store.ping().await?)
    }

    pub async fn vread(
        &self,
        ctx: &Caller,
        resource_type: ResourceType,
        id: &str,
        version: u64,
    ) -> Result<ResourceVersion, DomainError> {
        self.kernel.check_visible(ctx, resource_type, id).await?;
        let name = || format!("{}/_history/{version}", label(resource_type, id));
        match self.kernel.store.read_version(ctx.context(), resource_type, id, version).await? {
            None => Err(DomainError::NotFound(name())),
            Some(v) if v.is_deleted() => Err(DomainError::Gone(name())),
            Some(v) => {
                self.audit_reads(ctx, "vread", std::slice::from_ref(&v)).await;
                Ok(v)
            }
        }
    }

    /// Rebuilds the search index when it was built for other search parameters (or never,
    /// e.g. right after an upgrade). Runs at start-up, before requests are served; returns how
    /// many resources were indexed.
    pub async fn refresh_search_index(&self) -> Result<usize, DomainError> {
        const BATCH: usize = 500;
        let fingerprint = self.kernel.search.fingerprint();
        if self.kernel.store.search_index_fingerprint().await?.as_deref() == Some(fingerprint) {
            return Ok(0);
        }
        let ctx = Caller::system("search-index-rebuild");
        let mut after = None;
        let mut indexed = 0;
        loop {
            let mut tx = self.kernel.begin(&ctx).await?;
            let batch = tx.current_after(after.take(), BATCH).await?;
            for version in &batch {
                let body = version.body.as_deref().and_then(model::parse_object).ok_or_else(|| {
                    DomainError::Internal(format!("stored {} is not a JSON object", label(version.resource_type, &version.id)))
                })?;
                tx.replace_index(version.resource_type, &version.id, &self.kernel.search.index_entries(&body)).await?;
            }
            indexed += batch.len();
            let done = batch.len() < BATCH;
            after = batch.last().map(|v| (v.resource_type, v.id.clone()));
            if done {
                tx.set_search_index_fingerprint(fingerprint).await?;
            }
            tx.commit().await?;
            if done {
                tracing::info!(indexed, %fingerprint, "search index rebuilt");
                return Ok(indexed);
            }
        }
    }

    /// A history; a caller confined to a patient's compartment, or staff to their
    /// organisations' Appointments, sees only the history of resources in them.
    pub async fn history(&self, ctx: &Caller, request: &HistoryRequest) -> Result<HistoryPage, DomainError> {
        let mut request = request.clone();
        match &request.id {
            Some(id) => self.kernel.check_visible(ctx, request.resource_type, id).await?,
            None => {
                let mut conditions = Vec::new();
                if let Some(patient) = compartment::confined_to(ctx.context(), request.resource_type, Permission::Search)? {
                    conditions.push(compartment::condition(request.resource_type, patient));
                }
                if organisation::READ_CONFINED.contains(&request.resource_type)
                    && let Some(confinement) = organisation::confinement(ctx.context(), request.resource_type, Permission::Search)
                {
                    conditions.push(confinement);
                }
                if !conditions.is_empty() {
                    request.only_ids = Some(self.reachable_ids(ctx, request.resource_type, conditions).await?);
                }
            }
        }
        let page = self.kernel.store.history(ctx.context(), &request).await?;
        let interaction = if request.id.is_some() { "history-instance" } else { "history-type" };
        self.audit_reads(ctx, interaction, page.entries.iter().map(|e| &e.version)).await;
        Ok(page)
    }

    /// The ids of the current resources of one type the caller may reach (`conditions`).
    async fn reachable_ids(&self, ctx: &Caller, resource_type: ResourceType, conditions: Vec<Condition>) -> Result<Vec<String>, DomainError> {
        let (ids, more) = self.kernel.find_ids(ctx, resource_type, conditions, REACHABLE_HISTORY_LIMIT).await?;
        if more {
            return Err(DomainError::invalid(Issue::error(
                IssueCode::TooCostly,
                format!(
                    "The {resource_type} history of a patient or an organisation lists at most {REACHABLE_HISTORY_LIMIT} \
                     resources; read the history of each {resource_type} instead"
                ),
            )));
        }
        Ok(ids)
    }

    /// Creates a resource with a server-assigned id. With `if_none_exist`, an existing single
    /// match is returned instead (several matches: 412).
    pub async fn create(
        &self,
        ctx: &Caller,
        resource_type: ResourceType,
        body: Map<String, Value>,
        if_none_exist: Option<&[Condition]>,
    ) -> Result<WriteOutcome, DomainError> {
        check_type(resource_type, &body)?;
        let (body, warnings) = self.kernel.conform(resource_type, body).await?;
        Ok(self.create_conformant(ctx, resource_type, body, if_none_exist).await?.with_warnings(warnings))
    }

    async fn create_conformant(
        &self,
        ctx: &Caller,
        resource_type: ResourceType,
        body: Map<String, Value>,
        if_none_exist: Option<&[Condition]>,
    ) -> Result<WriteOutcome, DomainError> {
        let mut tx = self.kernel.begin(ctx).await?;
        let target = self.resolve_create(ctx, &mut tx, resource_type, if_none_exist).await?;
        let outcome = self.create_staged(ctx, &mut tx, resource_type, target, body).await?;
        tx.commit().await?;
        Ok(outcome)
    }

    /// Where a create goes: with `if_none_exist`, an existing single match (several: 412);
    /// otherwise a new server-assigned id.
    async fn resolve_create(
        &self,
        ctx: &Caller,
        tx: &mut UnitOfWork,
        resource_type: ResourceType,
        if_none_exist: Option<&[Condition]>,
    ) -> Result<CreateTarget, DomainError> {
        if let Some(conditions) = if_none_exist {
            let criteria = self.kernel.confined(ctx, resource_type, Permission::Create, conditions)?;
            let ids = tx.find_matching_ids(resource_type, &criteria, 2).await?;
            match ids.as_slice() {
                [] => {}
                [id] => {
                    let existing = tx
                        .read_current(resource_type, id)
                        .await?
                        .ok_or_else(|| DomainError::Internal(format!("{} vanished", label(resource_type, id))))?;
                    return Ok(CreateTarget::Existing(existing));
                }
                _ => {
                    return Err(DomainError::precondition(
                        IssueCode::MultipleMatches,
                        format!("If-None-Exist matches more than one {resource_type}"),
                    ));
                }
            }
        }
        Ok(CreateTarget::New(uuid::Uuid::new_v4().to_string()))
    }

    /// Writes a create resolved by [`Self::resolve_create`] inside `tx`, without committing.
    async fn create_staged(
        &self,
        ctx: &Caller,
        tx: &mut UnitOfWork,
        resource_type: ResourceType,
        target: CreateTarget,
        body: Map<String, Value>,
    ) -> Result<WriteOutcome, DomainError> {
        match target {
            CreateTarget::Existing(existing) => Ok(WriteOutcome::new(WriteStatus::AlreadyExists, existing)),
            CreateTarget::New(id) => self.kernel.stage_in(ctx, tx, resource_type, &id, body, None).await,
        }
    }

    /// Updates (or, if allowed, creates) the resource with a client-known id.
    pub async fn update(
        &self,
        ctx: &Caller,
        resource_type: ResourceType,
        id: &str,
        body: Map<String, Value>,
        if_match: Option<u64>,
    ) -> Result<WriteOutcome, DomainError> {
        check_type(resource_type, &body)?;
        check_url_id(resource_type, id, &body)?;
        let (body, warnings) = self.kernel.conform(resource_type, body).await?;
        let tx = self.kernel.begin(ctx).await?;
        Ok(self.update_in(ctx, tx, resource_type, id, body, if_match).await?.with_warnings(warnings))
    }

    /// `PUT` with `If-None-Match: *`: creates the resource with a client-known id only when it
    /// has no current version (never written, or deleted); otherwise 412 and nothing changes.
    pub async fn create_with_id(
        &self,
        ctx: &Caller,
        resource_type: ResourceType,
        id: &str,
        body: Map<String, Value>,
    ) -> Result<WriteOutcome, DomainError> {
        check_type(resource_type, &body)?;
        check_url_id(resource_type, id, &body)?;
        let (body, warnings) = self.kernel.conform(resource_type, body).await?;
        let mut tx = self.kernel.begin(ctx).await?;
        check_absent(&mut tx, resource_type, id).await?;
        Ok(self.update_in(ctx, tx, resource_type, id, body, None).await?.with_warnings(warnings))
    }

    /// `PUT Type?criteria`: create when nothing matches, update the one match, 412 for several.
    pub async fn conditional_update(
        &self,
        ctx: &Caller,
        resource_type: ResourceType,
        conditions: &[Condition],
        body: Map<String, Value>,
        if_match: Option<u64>,
    ) -> Result<WriteOutcome, DomainError> {
        check_type(resource_type, &body)?;
        let (body, warnings) = self.kernel.conform(resource_type, body).await?;
        let mut tx = self.kernel.begin(ctx).await?;
        let target = self.resolve_conditional_update(ctx, &mut tx, resource_type, conditions, &body).await?;
        let outcome = self.update_target_staged(ctx, &mut tx, resource_type, target, body, if_match).await?;
        tx.commit().await?;
        Ok(outcome.with_warnings(warnings))
    }

    /// Which resource a conditional update writes: a new one when nothing matches (with the
    /// body's id, when it carries one that is not taken), the one match, 412 for several.
    async fn resolve_conditional_update(
        &self,
        ctx: &Caller,
        tx: &mut UnitOfWork,
        resource_type: ResourceType,
        conditions: &[Condition],
        body: &Map<String, Value>,
    ) -> Result<WriteTarget, DomainError> {
        let body_id = match body.get("id") {
            None => None,
            Some(Value::String(id)) => Some(id.clone()),
            Some(_) => {
                return Err(DomainError::invalid(
                    Issue::error(IssueCode::Structure, "id must be a string").at(format!("{resource_type}.id")),
                ));
            }
        };
        let criteria = self.kernel.confined(ctx, resource_type, Permission::Update, conditions)?;
        let ids = tx.find_matching_ids(resource_type, &criteria, 2).await?;
        match ids.as_slice() {
            [] => match body_id {
                None => Ok(WriteTarget::New(uuid::Uuid::new_v4().to_string())),
                Some(id) => {
                    check_id(resource_type, &id)?;
                    if tx.read_current(resource_type, &id).await?.is_some() {
                        return Err(DomainError::invalid(
                            Issue::error(
                                IssueCode::Duplicate,
                                format!(
                                    "No resource matches the criteria, but {} exists and does not match them",
                                    label(resource_type, &id)
                                ),
                            )
                            .at(format!("{resource_type}.id")),
                        ));
                    }
                    Ok(WriteTarget::Id(id))
                }
            },
            [id] => {
                if body_id.as_ref().is_some_and(|b| b != id) {
                    return Err(DomainError::invalid(
                        Issue::error(
                            IssueCode::Value,
                            format!("The criteria match {} but the body carries another id", label(resource_type, id)),
                        )
                        .at(format!("{resource_type}.id")),
                    ));
                }
                Ok(WriteTarget::Id(id.clone()))
            }
            _ => Err(DomainError::precondition(
                IssueCode::MultipleMatches,
                format!("The criteria match more than one {resource_type}"),
            )),
        }
    }

    /// Writes a resolved update target inside `tx`, without committing.
    async fn update_target_staged(
        &self,
        ctx: &Caller,
        tx: &mut UnitOfWork,
        resource_type: ResourceType,
        target: WriteTarget,
        body: Map<String, Value>,
        if_match: Option<u64>,
    ) -> Result<WriteOutcome, DomainError> {
        match target {
            WriteTarget::New(id) => self.kernel.stage_in(ctx, tx, resource_type, &id, body, None).await,
            WriteTarget::Id(id) => self.update_staged(ctx, tx, resource_type, &id, body, if_match).await,
        }
    }

    /// Applies a JSON Patch (RFC 6902) to the current version; the result goes through the same
    /// rules as an update (If-Match, no-op detection, scheduling).
    pub async fn patch(
        &self,
        ctx: &Caller,
        resource_type: ResourceType,
        id: &str,
        operations: Value,
        if_match: Option<u64>,
    ) -> Result<WriteOutcome, DomainError> {
        /// Concurrent writers that may overtake one patch before it gives up (409).
        const ATTEMPTS: usize = 3;
        let patch = parse_patch(operations)?;
        // The result is validated outside the unit of work, which holds the write lock (on
        // SQLite, of the whole database): it is written only if the version it was built from
        // is still current, else the patch is applied again to the newer version.
        for _ in 0..ATTEMPTS {
            let current = live(resource_type, id, self.kernel.store.read_current(ctx.context(), resource_type, id).await?)?;
            check_if_match(resource_type, id, Some(&current), if_match)?;
            let body = apply_patch(resource_type, id, &current, &patch)?;
            let (body, warnings) = self.kernel.conform(resource_type, body).await?;
            let mut tx = self.kernel.begin(ctx).await?;
            let still_current = tx.read_current(resource_type, id).await?.is_some_and(|c| c.version == current.version);
            if still_current {
                return Ok(self.update_in(ctx, tx, resource_type, id, body, if_match).await?.with_warnings(warnings));
            }
        }
        Err(DomainError::conflict(Issue::error(
            IssueCode::Conflict,
            format!("{} changed while the patch was applied; send it again", label(resource_type, id)),
        )))
    }

    /// Deletes a resource. Deleting something absent or already deleted succeeds and changes nothing.
    pub async fn delete(
        &self,
        ctx: &Caller,
        resource_type: ResourceType,
        id: &str,
        if_match: Option<u64>,
    ) -> Result<(), DomainError> {
        let mut tx = self.kernel.begin(ctx).await?;
        if self.delete_staged(ctx, &mut tx, resource_type, id, if_match).await? {
            tx.commit().await?;
        }
        Ok(())
    }

    /// Deletes inside `tx` without committing; answers whether there was something to delete.
    async fn delete_staged(
        &self,
        ctx: &Caller,
        tx: &mut UnitOfWork,
        resource_type: ResourceType,
        id: &str,
        if_match: Option<u64>,
    ) -> Result<bool, DomainError> {
        let current = tx.read_current(resource_type, id).await?;
        check_if_match(resource_type, id, current.as_ref(), if_match)?;
        if current.is_none_or(|c| c.is_deleted()) {
            return Ok(false);
        }
        self.kernel.delete_in(ctx, tx, resource_type, id).await?;
        Ok(true)
    }

    /// `DELETE [type]?criteria`: deletes the matches the caller may delete, in one unit of work
    /// (a match the scheduling rules protect, such as a held or booked Slot, fails the whole
    /// request and nothing is deleted). Returns how many were deleted; none matching is no error.
    pub async fn conditional_delete(
        &self,
        ctx: &Caller,
        resource_type: ResourceType,
        conditions: &[Condition],
    ) -> Result<usize, DomainError> {
        let mode = self.kernel.config.conditional_delete;
        let limit = match mode {
            ConditionalDelete::Off => {
                return Err(DomainError::NotAllowed(
                    "Conditional delete is off on this server (--conditional-delete); delete by id".into(),
                ));
            }
            ConditionalDelete::Single => 1,
            ConditionalDelete::Multiple => ConditionalDelete::MAX_MATCHES,
        };
        let criteria = self.kernel.confined(ctx, resource_type, Permission::Delete, conditions)?;
        let mut tx = self.kernel.begin(ctx).await?;
        let ids = tx.find_matching_ids(resource_type, &criteria, limit + 1).await?;
        if ids.len() > limit {
            let message = match mode {
                ConditionalDelete::Single => format!(
                    "The criteria match more than one {resource_type}; this server deletes one at a time \
                     (--conditional-delete single)"
                ),
                _ => format!("The criteria match more than {limit} {resource_type}s, the most one conditional delete removes"),
            };
            return Err(DomainError::precondition(IssueCode::MultipleMatches, message));
        }
        for id in &ids {
            self.kernel.delete_in(ctx, &mut tx, resource_type, id).await?;
        }
        tx.commit().await?;
        Ok(ids.len())
    }

    async fn update_in(
        &self,
        ctx: &Caller,
        mut tx: UnitOfWork,
        resource_type: ResourceType,
        id: &str,
        body: Map<String, Value>,
        if_match: Option<u64>,
    ) -> Result<WriteOutcome, DomainError> {
        let outcome = self.update_staged(ctx, &mut tx, resource_type, id, body, if_match).await?;
        if outcome.status != WriteStatus::Unchanged {
            tx.commit().await?;
            tracing::debug!(resource = %label(resource_type, id), version = outcome.version.version, "stored");
        }
        Ok(outcome)
    }

    /// Updates inside `tx` without committing; a body equal to the current one writes nothing.
    async fn update_staged(
        &self,
        ctx: &Caller,
        tx: &mut UnitOfWork,
        resource_type: ResourceType,
        id: &str,
        body: Map<String, Value>,
        if_match: Option<u64>,
    ) -> Result<WriteOutcome, DomainError> {
        check_id(resource_type, id)?;
        let current = tx.read_current(resource_type, id).await?;
        check_if_match(resource_type, id, current.as_ref(), if_match)?;
        match current {
            None if !self.kernel.config.update_create => Err(DomainError::NotAllowed(format!(
                "{} does not exist and this server does not create resources with client-assigned ids (update-create is off)",
                label(resource_type, id)
            ))),
            None => self.kernel.stage_in(ctx, tx, resource_type, id, body, None).await,
            Some(current) => {
                if let Some(stored) = &current.body
                    && same_content(stored, &body)?
                {
                    return Ok(WriteOutcome::new(WriteStatus::Unchanged, current));
                }
                self.kernel.stage_in(ctx, tx, resource_type, id, body, Some(&current)).await
            }
        }
    }

    /// Loads resources with their own ids in one unit of work, creating those not stored yet
    /// as a series of PUTs would (validation, scheduling rules: a booked Appointment takes its
    /// Slots), but committed together: bulk loads (`termin seed`) then cost one commit per
    /// batch, not per resource. A resource already stored is left as it is, changed since or
    /// not (a loaded slot may have been booked), so loading twice changes nothing. The first
    /// invalid resource fails the whole batch and nothing is written.
    pub async fn import(
        &self,
        ctx: &Caller,
        resources: Vec<Map<String, Value>>,
    ) -> Result<ImportSummary, DomainError> {
        let mut staged = Vec::with_capacity(resources.len());
        for body in resources {
            let resource_type = body
                .get("resourceType")
                .and_then(Value::as_str)
                .and_then(|t| t.parse::<ResourceType>().ok())
                .ok_or_else(|| {
                    DomainError::invalid(Issue::error(IssueCode::Invalid, "An imported resource needs a supported resourceType"))
                })?;
            let id = match body.get("id") {
                Some(Value::String(id)) => id.clone(),
                _ => {
                    return Err(DomainError::invalid(
                        Issue::error(IssueCode::Required, "An imported resource must carry its id").at(format!("{resource_type}.id")),
                    ));
                }
            };
            check_id(resource_type, &id)?;
            let (body, _warnings) = self.kernel.conform(resource_type, body).await?;
            staged.push((resource_type, id, body));
        }
        let mut summary = ImportSummary::default();
        let mut tx = self.kernel.begin(ctx).await?;
        for (resource_type, id, body) in staged {
            let current = tx.read_current(resource_type, &id).await?;
            if current.as_ref().is_some_and(|c| !c.is_deleted()) {
                summary.existing += 1;
                continue;
            }
            self.kernel.stage_in(ctx, &mut tx, resource_type, &id, body, current.as_ref()).await?;
            summary.created += 1;
        }
        tx.commit().await?;
        Ok(summary)
    }
}

/// Where a create goes (see [`Transaction::resolve_create`]).
#[derive(Debug, Clone)]
pub enum CreateTarget {
    /// A new resource with this server-assigned id.
    New(String),
    /// The one resource an `If-None-Exist` matched: nothing is written.
    Existing(ResourceVersion),
}

impl CreateTarget {
    pub fn id(&self) -> &str {
        match self {
            CreateTarget::New(id) => id,
            CreateTarget::Existing(version) => &version.id,
        }
    }
}

/// Which resource an update writes (see [`Transaction::resolve_conditional_update`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteTarget {
    /// A new resource with this server-assigned id.
    New(String),
    /// The resource with this id, created when absent as a `PUT` would.
    Id(String),
}

impl WriteTarget {
    pub fn id(&self) -> &str {
        match self {
            WriteTarget::New(id) | WriteTarget::Id(id) => id,
        }
    }
}

/// 412 unless `resource_type/id` has no current version (`If-None-Match: *`).
async fn check_absent(tx: &mut UnitOfWork, resource_type: ResourceType, id: &str) -> Result<(), DomainError> {
    match tx.read_current(resource_type, id).await?.filter(|c| !c.is_deleted()) {
        None => Ok(()),
        Some(current) => Err(DomainError::precondition(
            IssueCode::Duplicate,
            format!(
                "If-None-Match: * asks to create {} only if it does not exist, but it exists (version {})",
                label(resource_type, id),
                current.version
            ),
        )),
    }
}

/// The current version if it is not deleted; 404 or 410 otherwise.
fn live(resource_type: ResourceType, id: &str, current: Option<ResourceVersion>) -> Result<ResourceVersion, DomainError> {
    match current {
        None => Err(DomainError::NotFound(label(resource_type, id))),
        Some(c) if c.is_deleted() => Err(DomainError::Gone(label(resource_type, id))),
        Some(c) => Ok(c),
    }
}

/// A JSON Patch document, with its values as written.
fn parse_patch(operations: Value) -> Result<json_patch::Patch, DomainError> {
    let written_values: Vec<Option<Value>> = operations
        .as_array()
        .map(|ops| ops.iter().map(|op| op.get("value").cloned()).collect())
        .unwrap_or_default();
    let mut patch: json_patch::Patch = serde_json::from_value(operations).map_err(|e| {
        DomainError::invalid(Issue::error(IssueCode::Structure, format!("The body is not a JSON Patch document: {e}")))
    })?;
    // Deserializing rewrites number texts (`3E2` → `3e+2`); the values go in as written.
    for (operation, written) in patch.0.iter_mut().zip(written_values) {
        match (operation, written) {
            (json_patch::PatchOperation::Add(op), Some(value)) => op.value = value,
            (json_patch::PatchOperation::Replace(op), Some(value)) => op.value = value,
            (json_patch::PatchOperation::Test(op), Some(value)) => op.value = value,
            _ => {}
        }
    }
    Ok(patch)
}

/// The resource a JSON Patch makes of `current`; it must stay the same resource.
fn apply_patch(
    resource_type: ResourceType,
    id: &str,
    current: &ResourceVersion,
    patch: &json_patch::Patch,
) -> Result<Map<String, Value>, DomainError> {
    let mut document: Value = termin_fhir::json::parse_stored(current.body.as_deref().unwrap_or_default())
        .map_err(|e| DomainError::Internal(format!("stored resource is not JSON: {e}")))?;
    json_patch::patch(&mut document, &patch.0).map_err(|e| {
        DomainError::unprocessable(Issue::error(IssueCode::Processing, format!("The patch cannot be applied: {e}")))
    })?;
    let Value::Object(body) = document else {
        return Err(DomainError::unprocessable(Issue::error(
            IssueCode::Processing,
            "The patch must leave a resource (a JSON object)",
        )));
    };
    if body.get("resourceType").and_then(Value::as_str) != Some(resource_type.as_str())
        || body.get("id").and_then(Value::as_str) != Some(id)
    {
        return Err(DomainError::unprocessable(
            Issue::error(IssueCode::Processing, "A patch cannot change resourceType or id").at(format!("{resource_type}.id")),
        ));
    }
    Ok(body)
}

/// What [`ResourceService::import`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportSummary {
    pub created: usize,
    /// Stored already, and left as they were.
    pub existing: usize,
}


fn check_type(resource_type: ResourceType, body: &Map<String, Value>) -> Result<(), DomainError> {
    match body.get("resourceType").and_then(Value::as_str) {
        Some(t) if t == resource_type.as_str() => Ok(()),
        other => Err(DomainError::invalid(
            Issue::error(
                IssueCode::Invalid,
                format!(
                    "The body is a {} but the URL addresses {resource_type}",
                    other.unwrap_or("resource without resourceType")
                ),
            )
            .at("resourceType"),
        )),
    }
}

fn check_id(resource_type: ResourceType, id: &str) -> Result<(), DomainError> {
    if is_valid_id(id) {
        Ok(())
    } else {
        Err(DomainError::invalid(
            Issue::error(
                IssueCode::Value,
                format!("{id:?} is not a valid FHIR id (1-64 characters of A-Z, a-z, 0-9, '-' and '.')"),
            )
            .at(format!("{resource_type}.id")),
        ))
    }
}

/// An update's body carries the id of its URL.
fn check_url_id(resource_type: ResourceType, id: &str, body: &Map<String, Value>) -> Result<(), DomainError> {
    match body.get("id") {
        Some(Value::String(body_id)) if body_id == id => Ok(()),
        Some(Value::String(body_id)) => Err(DomainError::invalid(
            Issue::error(IssueCode::Value, format!("The resource id {body_id:?} does not match the id {id:?} in the URL"))
                .at(format!("{resource_type}.id")),
        )),
        _ => Err(DomainError::invalid(
            Issue::error(IssueCode::Required, "An update must carry the resource id, equal to the id in the URL")
                .at(format!("{resource_type}.id")),
        )),
    }
}

fn check_if_match(
    resource_type: ResourceType,
    id: &str,
    current: Option<&ResourceVersion>,
    if_match: Option<u64>,
) -> Result<(), DomainError> {
    let Some(expected) = if_match else {
        return Ok(());
    };
    match current {
        Some(c) if c.version == expected && !c.is_deleted() => Ok(()),
        Some(c) => Err(DomainError::precondition(
            IssueCode::Conflict,
            format!(
                "If-Match expects version {expected} of {} but the current version is {}{}",
                label(resource_type, id),
                c.version,
                if c.is_deleted() { " (deleted)" } else { "" }
            ),
        )),
        None => Err(DomainError::precondition(
            IssueCode::NotFound,
            format!("If-Match expects version {expected} of {}, which does not exist", label(resource_type, id)),
        )),
    }
}

/// Whether a new body says the same as the stored one, ignoring the server-managed meta.
fn same_content(stored: &str, incoming: &Map<String, Value>) -> Result<bool, DomainError> {
    let Value::Object(stored) = termin_fhir::json::parse_stored(stored)
        .map_err(|e| DomainError::Internal(format!("stored resource is not JSON: {e}")))?
    else {
        return Err(DomainError::Internal("stored resource is not a JSON object".into()));
    };
    Ok(without_managed_meta(stored) == without_managed_meta(incoming.clone()))
}

fn without_managed_meta(mut resource: Map<String, Value>) -> Map<String, Value> {
    if let Some(Value::Object(meta)) = resource.get_mut("meta") {
        meta.shift_remove("versionId");
        meta.shift_remove("lastUpdated");
        if meta.is_empty() {
            resource.shift_remove("meta");
        }
    }
    resource
}

mod transaction;
#[cfg(test)]
mod tests;

pub use transaction::Transaction;
