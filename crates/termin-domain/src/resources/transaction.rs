//! A FHIR transaction: the writes of several Bundle entries in one unit of work, committed
//! together or not at all. Each write passes exactly the rules it passes when sent alone
//! (content checks and validation, If-Match, the scheduling rules, the patient compartment),
//! and each is audited as an access of its own.

use super::{
    CreateTarget, ResourceService, WriteTarget, apply_patch, check_absent, check_id, check_if_match, check_type,
    check_url_id, live, parse_patch,
};
use crate::caller::Caller;
use crate::kernel::WriteOutcome;
use crate::unit_of_work::UnitOfWork;
use crate::DomainError;
use serde_json::{Map, Value};
use termin_fhir::{IssueCode, ResourceType};
use termin_store::{Condition, Permission, ResourceVersion};

/// Writes sharing one database transaction; dropped without [`Transaction::commit`], nothing
/// of it is stored.
pub struct Transaction<'s> {
    service: &'s ResourceService,
    ctx: Caller,
    tx: UnitOfWork,
}

impl ResourceService {
    /// Begins a transaction for `ctx`. On SQLite it holds the database's write lock, on
    /// PostgreSQL the rows it writes, until it commits or is dropped.
    pub async fn transaction(&self, ctx: &Caller) -> Result<Transaction<'_>, DomainError> {
        Ok(Transaction { service: self, ctx: ctx.clone(), tx: self.kernel.begin(ctx).await? })
    }
}

impl Transaction<'_> {
    /// Where a create goes: the one match of `if_none_exist` (several: 412), or a new id.
    pub async fn resolve_create(
        &mut self,
        resource_type: ResourceType,
        if_none_exist: Option<&[Condition]>,
    ) -> Result<CreateTarget, DomainError> {
        self.service.resolve_create(&self.ctx, &mut self.tx, resource_type, if_none_exist).await
    }

    /// Which resource `PUT Type?criteria` with `body` writes (several matches: 412).
    pub async fn resolve_conditional_update(
        &mut self,
        resource_type: ResourceType,
        conditions: &[Condition],
        body: &Map<String, Value>,
    ) -> Result<WriteTarget, DomainError> {
        self.service.resolve_conditional_update(&self.ctx, &mut self.tx, resource_type, conditions, body).await
    }

    /// The one resource a conditional delete (or a conditional reference) names: `None` when
    /// nothing matches, 412 when several do.
    pub async fn resolve_one(
        &mut self,
        resource_type: ResourceType,
        permission: Permission,
        conditions: &[Condition],
    ) -> Result<Option<String>, DomainError> {
        let criteria = self.service.kernel.confined(&self.ctx, resource_type, permission, conditions)?;
        let mut ids = self.tx.find_matching_ids(resource_type, &criteria, 2).await?;
        match ids.len() {
            0 | 1 => Ok(ids.pop()),
            _ => Err(DomainError::precondition(
                IssueCode::MultipleMatches,
                format!("The criteria match more than one {resource_type}"),
            )),
        }
    }

    /// Creates as resolved by [`Self::resolve_create`] (an existing match is left as it is).
    pub async fn create(
        &mut self,
        resource_type: ResourceType,
        target: CreateTarget,
        body: Map<String, Value>,
    ) -> Result<WriteOutcome, DomainError> {
        self.tx.next_access();
        check_type(resource_type, &body)?;
        let (body, warnings) = self.service.kernel.conform(resource_type, body).await?;
        let outcome = self.service.create_staged(&self.ctx, &mut self.tx, resource_type, target, body).await?;
        Ok(outcome.with_warnings(warnings))
    }

    /// `PUT Type/id` (with `create_only`: `If-None-Match: *`) or a resolved conditional
    /// update, whose body need not carry the id.
    pub async fn update(
        &mut self,
        resource_type: ResourceType,
        target: WriteTarget,
        body: Map<String, Value>,
        if_match: Option<u64>,
        create_only: bool,
    ) -> Result<WriteOutcome, DomainError> {
        self.tx.next_access();
        check_type(resource_type, &body)?;
        if let WriteTarget::Id(id) = &target
            && body.contains_key("id")
        {
            check_url_id(resource_type, id, &body)?;
        }
        if create_only {
            check_absent(&mut self.tx, resource_type, target.id()).await?;
        }
        let (body, warnings) = self.service.kernel.conform(resource_type, body).await?;
        let outcome =
            self.service.update_target_staged(&self.ctx, &mut self.tx, resource_type, target, body, if_match).await?;
        Ok(outcome.with_warnings(warnings))
    }

    /// Applies a JSON Patch to the current version, as [`ResourceService::patch`] does.
    pub async fn patch(
        &mut self,
        resource_type: ResourceType,
        id: &str,
        operations: Value,
        if_match: Option<u64>,
    ) -> Result<WriteOutcome, DomainError> {
        self.tx.next_access();
        check_id(resource_type, id)?;
        let patch = parse_patch(operations)?;
        let current = live(resource_type, id, self.tx.read_current(resource_type, id).await?)?;
        check_if_match(resource_type, id, Some(&current), if_match)?;
        let body = apply_patch(resource_type, id, &current, &patch)?;
        let (body, warnings) = self.service.kernel.conform(resource_type, body).await?;
        let outcome = self.service.update_staged(&self.ctx, &mut self.tx, resource_type, id, body, if_match).await?;
        Ok(outcome.with_warnings(warnings))
    }

    /// Deletes; something absent or deleted already is no error.
    pub async fn delete(&mut self, resource_type: ResourceType, id: &str, if_match: Option<u64>) -> Result<(), DomainError> {
        self.tx.next_access();
        check_id(resource_type, id)?;
        self.service.delete_staged(&self.ctx, &mut self.tx, resource_type, id, if_match).await?;
        Ok(())
    }

    /// The current version as this transaction sees it (its own writes included).
    pub async fn current(&mut self, resource_type: ResourceType, id: &str) -> Result<Option<ResourceVersion>, DomainError> {
        self.tx.read_current(resource_type, id).await
    }

    /// Stores every write, with the audit event of each access.
    pub async fn commit(self) -> Result<(), DomainError> {
        self.tx.commit().await
    }
}
