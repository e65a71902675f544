//! The FHIR resource lifecycle: create, read, update, delete, conditional variants and
//! history, with server-managed `meta.versionId` / `meta.lastUpdated`.

use crate::compartment;
use crate::scheduling::{self, guard_write, model};
use crate::cpu::CpuWork;
use crate::validation::{ResourceValidator, conform};
use crate::{Clock, DomainError};
use jiff::{SignedDuration, Timestamp};
use serde_json::{Map, Value};
use std::sync::Arc;
use termin_fhir::resource::with_identity;
use termin_fhir::{Issue, IssueCode, OperationOutcome, ResourceType, instant::format_instant, is_valid_id};
use termin_search::index_entries;
use termin_store::{
    ChangeKind, Condition, Filter, HistoryPage, HistoryRequest, NewVersion, Permission, RequestContext, ResourceStore,
    ResourceVersion, SearchPage, SearchRequest,
};
use crate::unit_of_work::UnitOfWork;

/// The most resources of one patient's compartment a type history lists (the history of each
/// is still readable one by one).
const COMPARTMENT_HISTORY_LIMIT: usize = 1000;

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
    fn new(status: WriteStatus, version: ResourceVersion) -> Self {
        WriteOutcome {
            status,
            version,
            warnings: Vec::new(),
        }
    }

    fn with_warnings(mut self, warnings: Vec<Issue>) -> Self {
        self.warnings = warnings;
        self
    }
}

pub struct ResourceService {
    store: Arc<dyn ResourceStore>,
    clock: Arc<dyn Clock>,
    config: ServiceConfig,
    validator: Option<Arc<dyn ResourceValidator>>,
    cpu: CpuWork,
}

fn label(resource_type: ResourceType, id: &str) -> String {
    format!("{resource_type}/{id}")
}

impl ResourceService {
    pub fn new(store: Arc<dyn ResourceStore>, clock: Arc<dyn Clock>, config: ServiceConfig) -> Self {
        ResourceService {
            store,
            clock,
            config,
            validator: None,
            cpu: CpuWork::new(),
        }
    }

    /// Validates every created, updated or booked resource with `validator` before anything
    /// is written; a resource with errors is rejected (422).
    pub fn with_validator(mut self, validator: Arc<dyn ResourceValidator>) -> Self {
        self.validator = Some(validator);
        self
    }

    pub fn validator(&self) -> Option<&dyn ResourceValidator> {
        self.validator.as_deref()
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

    /// `$validate`: the outcome of checking `resource` (also against `profile`, when given),
    /// off the async workers like every validation. `None` when validation is off; the inner
    /// `Err` says the profile is not known.
    pub async fn validate(
        &self,
        resource: Value,
        profile: Option<String>,
    ) -> Result<Option<Result<OperationOutcome, String>>, DomainError> {
        let Some(validator) = self.validator.clone() else {
            return Ok(None);
        };
        let outcome = self
            .cpu
            .run(move || match profile {
                Some(profile) => validator.validate_against(&resource, &profile),
                None => Ok(validator.validate(&resource)),
            })
            .await?;
        Ok(Some(outcome))
    }

    pub fn config(&self) -> &ServiceConfig {
        &self.config
    }

    pub(crate) fn clock(&self) -> &dyn Clock {
        self.clock.as_ref()
    }

    pub(crate) fn store(&self) -> &dyn ResourceStore {
        self.store.as_ref()
    }

    /// Shows a Slot whose hold has expired as free, whether or not the sweeper has run.
    async fn present(&self, ctx: &RequestContext, mut versions: Vec<ResourceVersion>) -> Result<Vec<ResourceVersion>, DomainError> {
        let tentative: Vec<String> = versions
            .iter()
            .filter(|v| v.resource_type == ResourceType::Slot)
            .filter(|v| v.body.as_deref().is_some_and(|b| b.contains("busy-tentative")))
            .map(|v| v.id.clone())
            .collect();
        if tentative.is_empty() {
            return Ok(versions);
        }
        let holds = self.store.holds(ctx, &tentative).await?;
        let now = self.clock.now();
        for version in versions.iter_mut().filter(|v| tentative.contains(&v.id)) {
            let hold = holds.iter().find(|h| h.slot_id == version.id);
            if let Some(shown) = version.body.as_deref().and_then(|b| scheduling::present_slot(b, hold, now)) {
                version.body = Some(shown);
            }
        }
        Ok(versions)
    }

    pub async fn ready(&self) -> Result<(), DomainError> {
        Ok(self.store.ping().await?)
    }

    /// The current version; 404 if it never existed, 410 if deleted.
    pub async fn read(
        &self,
        ctx: &RequestContext,
        resource_type: ResourceType,
        id: &str,
    ) -> Result<ResourceVersion, DomainError> {
        self.check_visible(ctx, resource_type, id).await?;
        match self.store.read_current(ctx, resource_type, id).await? {
            None => Err(DomainError::NotFound(label(resource_type, id))),
            Some(v) if v.is_deleted() => Err(DomainError::Gone(label(resource_type, id))),
            Some(v) => Ok(self.present(ctx, vec![v]).await?.remove(0)),
        }
    }

    pub async fn vread(
        &self,
        ctx: &RequestContext,
        resource_type: ResourceType,
        id: &str,
        version: u64,
    ) -> Result<ResourceVersion, DomainError> {
        self.check_visible(ctx, resource_type, id).await?;
        let name = || format!("{}/_history/{version}", label(resource_type, id));
        match self.store.read_version(ctx, resource_type, id, version).await? {
            None => Err(DomainError::NotFound(name())),
            Some(v) if v.is_deleted() => Err(DomainError::Gone(name())),
            Some(v) => Ok(v),
        }
    }

    /// 403 or 404 unless the caller may see `resource_type/id`: a caller confined to a
    /// patient's compartment reads only its own Patient (another id answers 403: the request
    /// names another patient) and Appointments and RelatedPersons in the compartment (others
    /// answer 404, as if they did not exist).
    async fn check_visible(&self, ctx: &RequestContext, resource_type: ResourceType, id: &str) -> Result<(), DomainError> {
        let Some(patient) = compartment::confined_to(ctx, resource_type, Permission::Read)? else {
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
        let last_content = match self.store.read_current(ctx, resource_type, id).await? {
            Some(v) if v.is_deleted() && v.version > 1 => self.store.read_version(ctx, resource_type, id, v.version - 1).await?,
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

    /// Runs a search; index rows with a validity window (Slot holds) are judged at the
    /// domain clock's now. A caller confined to a patient's compartment finds only what is in
    /// it, also through chains, `_has` and `_include`/`_revinclude`.
    pub async fn search(&self, ctx: &RequestContext, request: &SearchRequest) -> Result<SearchPage, DomainError> {
        let mut request = request.clone();
        let server_base = request.filter.server_base.take();
        request.filter = self.confined(ctx, request.resource_type, Permission::Search, &request.filter.conditions)?;
        // Absolute references under the server's own base match as local ones.
        request.filter.server_base = server_base;
        let mut page = self.store.search(ctx, &request).await?;
        page.included.retain(|version| compartment::may_see(ctx, version));
        page.matches = self.present(ctx, page.matches).await?;
        page.included = self.present(ctx, page.included).await?;
        Ok(page)
    }

    /// Search or conditional-write criteria, judged at the domain clock's now, confined to the
    /// caller's patient compartment (403 when they name another patient).
    fn confined(
        &self,
        ctx: &RequestContext,
        resource_type: ResourceType,
        permission: Permission,
        conditions: &[Condition],
    ) -> Result<Filter, DomainError> {
        let mut conditions = conditions
            .iter()
            .map(|c| compartment::confine_reach(ctx, c.clone()))
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(patient) = compartment::confined_to(ctx, resource_type, permission)? {
            compartment::check_named_patients(resource_type, &conditions, patient)?;
            conditions.push(compartment::condition(resource_type, patient));
        }
        Ok(Filter {
            conditions,
            now: self.clock.now(),
            server_base: None,
        })
    }

    /// Rebuilds the search index when it was built for other search parameters (or never,
    /// e.g. right after an upgrade). Runs at start-up, before requests are served; returns how
    /// many resources were indexed.
    pub async fn refresh_search_index(&self) -> Result<usize, DomainError> {
        const BATCH: usize = 500;
        let fingerprint = termin_search::registry().fingerprint();
        if self.store.search_index_fingerprint().await?.as_deref() == Some(fingerprint) {
            return Ok(0);
        }
        let ctx = RequestContext::system("search-index-rebuild");
        let mut after = None;
        let mut indexed = 0;
        loop {
            let mut tx = UnitOfWork::begin(self.store.as_ref(), &ctx).await?;
            let batch = tx.current_after(after.take(), BATCH).await?;
            for version in &batch {
                let body = version.body.as_deref().and_then(model::parse_object).ok_or_else(|| {
                    DomainError::Internal(format!("stored {} is not a JSON object", label(version.resource_type, &version.id)))
                })?;
                tx.replace_index(version.resource_type, &version.id, &index_entries(&body)).await?;
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

    /// A history; a caller confined to a patient's compartment sees only the history of
    /// resources in it.
    pub async fn history(&self, ctx: &RequestContext, request: &HistoryRequest) -> Result<HistoryPage, DomainError> {
        let mut request = request.clone();
        match &request.id {
            Some(id) => self.check_visible(ctx, request.resource_type, id).await?,
            None => {
                if let Some(patient) = compartment::confined_to(ctx, request.resource_type, Permission::Search)? {
                    request.only_ids = Some(self.compartment_ids(ctx, request.resource_type, patient).await?);
                }
            }
        }
        Ok(self.store.history(ctx, &request).await?)
    }

    /// The ids of the current resources of `patient`'s compartment of one type.
    async fn compartment_ids(&self, ctx: &RequestContext, resource_type: ResourceType, patient: &str) -> Result<Vec<String>, DomainError> {
        let request = SearchRequest {
            resource_type,
            filter: Filter {
                conditions: vec![compartment::condition(resource_type, patient)],
                now: self.clock.now(),
                server_base: None,
            },
            sort: Vec::new(),
            count: COMPARTMENT_HISTORY_LIMIT,
            page: None,
            total: false,
            includes: Vec::new(),
            revincludes: Vec::new(),
        };
        let page = self.store.search(ctx, &request).await?;
        if page.next.is_some() {
            return Err(DomainError::invalid(Issue::error(
                IssueCode::TooCostly,
                format!(
                    "The {resource_type} history of a patient lists at most {COMPARTMENT_HISTORY_LIMIT} resources; \
                     read the history of each {resource_type} instead"
                ),
            )));
        }
        Ok(page.matches.into_iter().map(|v| v.id).collect())
    }

    /// Creates a resource with a server-assigned id. With `if_none_exist`, an existing single
    /// match is returned instead (several matches: 412).
    pub async fn create(
        &self,
        ctx: &RequestContext,
        resource_type: ResourceType,
        body: Map<String, Value>,
        if_none_exist: Option<&[Condition]>,
    ) -> Result<WriteOutcome, DomainError> {
        check_type(resource_type, &body)?;
        let (body, warnings) = self.conform(resource_type, body).await?;
        Ok(self.create_conformant(ctx, resource_type, body, if_none_exist).await?.with_warnings(warnings))
    }

    async fn create_conformant(
        &self,
        ctx: &RequestContext,
        resource_type: ResourceType,
        body: Map<String, Value>,
        if_none_exist: Option<&[Condition]>,
    ) -> Result<WriteOutcome, DomainError> {
        let mut tx = UnitOfWork::begin(self.store.as_ref(), ctx).await?;
        if let Some(conditions) = if_none_exist {
            let criteria = self.confined(ctx, resource_type, Permission::Create, conditions)?;
            let ids = tx.find_matching_ids(resource_type, &criteria, 2).await?;
            match ids.as_slice() {
                [] => {}
                [id] => {
                    let existing = tx
                        .read_current(resource_type, id)
                        .await?
                        .ok_or_else(|| DomainError::Internal(format!("{} vanished", label(resource_type, id))))?;
                    return Ok(WriteOutcome::new(WriteStatus::AlreadyExists, existing));
                }
                _ => {
                    return Err(DomainError::precondition(
                        IssueCode::MultipleMatches,
                        format!("If-None-Exist matches more than one {resource_type}"),
                    ));
                }
            }
        }
        let id = uuid::Uuid::new_v4().to_string();
        self.write_in(ctx, tx, resource_type, &id, body, None).await
    }

    /// Updates (or, if allowed, creates) the resource with a client-known id.
    pub async fn update(
        &self,
        ctx: &RequestContext,
        resource_type: ResourceType,
        id: &str,
        body: Map<String, Value>,
        if_match: Option<u64>,
    ) -> Result<WriteOutcome, DomainError> {
        check_type(resource_type, &body)?;
        check_url_id(resource_type, id, &body)?;
        let (body, warnings) = self.conform(resource_type, body).await?;
        let tx = UnitOfWork::begin(self.store.as_ref(), ctx).await?;
        Ok(self.update_in(ctx, tx, resource_type, id, body, if_match).await?.with_warnings(warnings))
    }

    /// `PUT` with `If-None-Match: *`: creates the resource with a client-known id only when it
    /// has no current version (never written, or deleted); otherwise 412 and nothing changes.
    pub async fn create_with_id(
        &self,
        ctx: &RequestContext,
        resource_type: ResourceType,
        id: &str,
        body: Map<String, Value>,
    ) -> Result<WriteOutcome, DomainError> {
        check_type(resource_type, &body)?;
        check_url_id(resource_type, id, &body)?;
        let (body, warnings) = self.conform(resource_type, body).await?;
        let mut tx = UnitOfWork::begin(self.store.as_ref(), ctx).await?;
        if let Some(current) = tx.read_current(resource_type, id).await?.filter(|c| !c.is_deleted()) {
            return Err(DomainError::precondition(
                IssueCode::Duplicate,
                format!(
                    "If-None-Match: * asks to create {} only if it does not exist, but it exists (version {})",
                    label(resource_type, id),
                    current.version
                ),
            ));
        }
        Ok(self.update_in(ctx, tx, resource_type, id, body, None).await?.with_warnings(warnings))
    }

    /// `PUT Type?criteria`: create when nothing matches, update the one match, 412 for several.
    pub async fn conditional_update(
        &self,
        ctx: &RequestContext,
        resource_type: ResourceType,
        conditions: &[Condition],
        body: Map<String, Value>,
        if_match: Option<u64>,
    ) -> Result<WriteOutcome, DomainError> {
        check_type(resource_type, &body)?;
        let (body, warnings) = self.conform(resource_type, body).await?;
        Ok(self
            .conditional_update_conformant(ctx, resource_type, conditions, body, if_match)
            .await?
            .with_warnings(warnings))
    }

    async fn conditional_update_conformant(
        &self,
        ctx: &RequestContext,
        resource_type: ResourceType,
        conditions: &[Condition],
        body: Map<String, Value>,
        if_match: Option<u64>,
    ) -> Result<WriteOutcome, DomainError> {
        let body_id = match body.get("id") {
            None => None,
            Some(Value::String(id)) => Some(id.clone()),
            Some(_) => {
                return Err(DomainError::invalid(
                    Issue::error(IssueCode::Structure, "id must be a string").at(format!("{resource_type}.id")),
                ));
            }
        };
        let criteria = self.confined(ctx, resource_type, Permission::Update, conditions)?;
        let mut tx = UnitOfWork::begin(self.store.as_ref(), ctx).await?;
        let ids = tx.find_matching_ids(resource_type, &criteria, 2).await?;
        match ids.as_slice() {
            [] => match body_id {
                None => {
                    let id = uuid::Uuid::new_v4().to_string();
                    self.write_in(ctx, tx, resource_type, &id, body, None).await
                }
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
                    self.update_in(ctx, tx, resource_type, &id, body, if_match).await
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
                let id = id.clone();
                self.update_in(ctx, tx, resource_type, &id, body, if_match).await
            }
            _ => Err(DomainError::precondition(
                IssueCode::MultipleMatches,
                format!("The criteria match more than one {resource_type}"),
            )),
        }
    }

    /// Applies a JSON Patch (RFC 6902) to the current version; the result goes through the same
    /// rules as an update (If-Match, no-op detection, scheduling).
    pub async fn patch(
        &self,
        ctx: &RequestContext,
        resource_type: ResourceType,
        id: &str,
        operations: Value,
        if_match: Option<u64>,
    ) -> Result<WriteOutcome, DomainError> {
        /// Concurrent writers that may overtake one patch before it gives up (409).
        const ATTEMPTS: usize = 3;
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
        // The result is validated outside the unit of work, which holds the write lock (on
        // SQLite, of the whole database): it is written only if the version it was built from
        // is still current, else the patch is applied again to the newer version.
        for _ in 0..ATTEMPTS {
            let current = match self.store.read_current(ctx, resource_type, id).await? {
                None => return Err(DomainError::NotFound(label(resource_type, id))),
                Some(c) if c.is_deleted() => return Err(DomainError::Gone(label(resource_type, id))),
                Some(c) => c,
            };
            check_if_match(resource_type, id, Some(&current), if_match)?;
            let body = apply_patch(resource_type, id, &current, &patch)?;
            let (body, warnings) = self.conform(resource_type, body).await?;
            let mut tx = UnitOfWork::begin(self.store.as_ref(), ctx).await?;
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
        ctx: &RequestContext,
        resource_type: ResourceType,
        id: &str,
        if_match: Option<u64>,
    ) -> Result<(), DomainError> {
        let mut tx = UnitOfWork::begin(self.store.as_ref(), ctx).await?;
        let current = tx.read_current(resource_type, id).await?;
        check_if_match(resource_type, id, current.as_ref(), if_match)?;
        let Some(current) = current.filter(|c| !c.is_deleted()) else {
            return Ok(());
        };
        let now = self.clock.now();
        let previous = current.body.as_deref().and_then(model::parse_object);
        guard_write(&mut tx, ctx, now, resource_type, id, current.version + 1, previous.as_ref(), None).await?;
        tx.write(NewVersion {
            version: ResourceVersion {
                resource_type,
                id: id.to_owned(),
                version: current.version + 1,
                last_updated: now,
                body: None,
            },
            change: ChangeKind::Delete,
            index: Default::default(),
        }, None)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn update_in(
        &self,
        ctx: &RequestContext,
        mut tx: UnitOfWork,
        resource_type: ResourceType,
        id: &str,
        body: Map<String, Value>,
        if_match: Option<u64>,
    ) -> Result<WriteOutcome, DomainError> {
        check_id(resource_type, id)?;
        let current = tx.read_current(resource_type, id).await?;
        check_if_match(resource_type, id, current.as_ref(), if_match)?;
        match current {
            None if !self.config.update_create => Err(DomainError::NotAllowed(format!(
                "{} does not exist and this server does not create resources with client-assigned ids (update-create is off)",
                label(resource_type, id)
            ))),
            None => self.write_in(ctx, tx, resource_type, id, body, None).await,
            Some(current) => {
                if let Some(stored) = &current.body
                    && same_content(stored, &body)?
                {
                    return Ok(WriteOutcome::new(WriteStatus::Unchanged, current));
                }
                self.write_in(ctx, tx, resource_type, id, body, Some(&current)).await
            }
        }
    }

    /// Writes the next version inside `tx` (after the scheduling rules) and commits.
    pub(crate) async fn write_in(
        &self,
        ctx: &RequestContext,
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

    /// Writes the next version inside `tx` after the scheduling rules, without committing.
    async fn stage_in(
        &self,
        ctx: &RequestContext,
        tx: &mut UnitOfWork,
        resource_type: ResourceType,
        id: &str,
        mut body: Map<String, Value>,
        previous: Option<&ResourceVersion>,
    ) -> Result<WriteOutcome, DomainError> {
        let now = self.clock.now();
        let version = previous.map_or(1, |p| p.version + 1);
        let previous_body = previous.and_then(|p| p.body.as_deref()).and_then(model::parse_object);
        guard_write(tx, ctx, now, resource_type, id, version, previous_body.as_ref(), Some(&mut body)).await?;
        let (mut new, written_body) = new_version(resource_type, id, body, previous, now)?;
        let size = new.version.body.as_deref().map_or(0, str::len);
        let limit = self.config.max_resource_bytes.saturating_add(SERVER_ELEMENTS_ALLOWANCE);
        if size > limit {
            return Err(DomainError::unprocessable(Issue::error(
                IssueCode::TooLong,
                format!("The resource would take {size} bytes, more than the limit of {limit} bytes"),
            )));
        }
        if resource_type == ResourceType::Slot {
            scheduling::apply_hold_window(tx, id, &mut new.index).await?;
        }
        let status = if new.change == ChangeKind::Create {
            WriteStatus::Created
        } else {
            WriteStatus::Updated
        };
        let written = new.version.clone();
        tx.write(new, Some(written_body)).await?;
        Ok(WriteOutcome::new(status, written))
    }

    /// Loads resources with their own ids in one unit of work, creating those not stored yet
    /// as a series of PUTs would (validation, scheduling rules: a booked Appointment takes its
    /// Slots), but committed together: bulk loads (`termin seed`) then cost one commit per
    /// batch, not per resource. A resource already stored is left as it is, changed since or
    /// not (a loaded slot may have been booked), so loading twice changes nothing. The first
    /// invalid resource fails the whole batch and nothing is written.
    pub async fn import(
        &self,
        ctx: &RequestContext,
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
            let (body, _warnings) = self.conform(resource_type, body).await?;
            staged.push((resource_type, id, body));
        }
        let mut summary = ImportSummary::default();
        let mut tx = UnitOfWork::begin(self.store.as_ref(), ctx).await?;
        for (resource_type, id, body) in staged {
            let current = tx.read_current(resource_type, &id).await?;
            if current.as_ref().is_some_and(|c| !c.is_deleted()) {
                summary.existing += 1;
                continue;
            }
            self.stage_in(ctx, &mut tx, resource_type, &id, body, current.as_ref()).await?;
            summary.created += 1;
        }
        tx.commit().await?;
        Ok(summary)
    }
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

/// Builds the next version of a resource: server-managed `meta.versionId` and
/// `meta.lastUpdated` (other meta kept), identity elements first, and its index rows.
pub(crate) fn new_version(
    resource_type: ResourceType,
    id: &str,
    mut body: Map<String, Value>,
    previous: Option<&ResourceVersion>,
    now: Timestamp,
) -> Result<(NewVersion, Map<String, Value>), DomainError> {
    let version = previous.map_or(1, |p| p.version + 1);
    let mut meta = match body.shift_remove("meta") {
        None => Map::new(),
        Some(Value::Object(meta)) => meta,
        Some(_) => {
            return Err(DomainError::invalid(
                Issue::error(IssueCode::Structure, "meta must be an object").at(format!("{resource_type}.meta")),
            ));
        }
    };
    meta.shift_remove("versionId");
    meta.shift_remove("lastUpdated");
    let mut managed = Map::with_capacity(meta.len() + 2);
    managed.insert("versionId".into(), Value::String(version.to_string()));
    managed.insert("lastUpdated".into(), Value::String(format_instant(now)));
    managed.extend(meta);
    let Value::Object(resource) = with_identity(body, id, managed) else {
        return Err(DomainError::Internal("with_identity did not answer an object".into()));
    };
    let index = index_entries(&resource);
    let text = serde_json::to_string(&resource).map_err(|e| DomainError::Internal(e.to_string()))?;
    // A deleted resource that is written again counts as re-created.
    let change = match previous {
        Some(p) if !p.is_deleted() => ChangeKind::Update,
        _ => ChangeKind::Create,
    };
    let new = NewVersion {
        version: ResourceVersion {
            resource_type,
            id: id.to_owned(),
            version,
            last_updated: now,
            body: Some(text),
        },
        change,
        index,
    };
    Ok((new, resource))
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

#[cfg(test)]
mod tests;
