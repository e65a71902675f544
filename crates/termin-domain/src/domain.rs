//! The domain services, built together over one kernel.

use crate::kernel::Kernel;
use crate::{
    AuditRecord, AuditTrail, Caller, Clock, ProviderService, ResourceService, ResourceValidator, SchedulingService,
    ServiceConfig,
};
use std::sync::Arc;
use termin_search::SearchParameters;
use termin_store::ResourceStore;

/// Every domain service, sharing one store, clock, configuration, validator and set of
/// search parameters.
pub struct Domain {
    pub resources: ResourceService,
    pub scheduling: SchedulingService,
    pub providers: ProviderService,
    kernel: Arc<Kernel>,
}

impl Domain {
    /// The services over `store`, building index rows with `search`.
    pub fn new(
        store: Arc<dyn ResourceStore>,
        clock: Arc<dyn Clock>,
        config: ServiceConfig,
        search: &'static SearchParameters,
    ) -> Self {
        Domain::over(Kernel::new(store, clock, config, search))
    }

    fn over(kernel: Kernel) -> Self {
        let kernel = Arc::new(kernel);
        Domain {
            resources: ResourceService::over(kernel.clone()),
            scheduling: SchedulingService::over(kernel.clone()),
            providers: ProviderService::over(kernel.clone()),
            kernel,
        }
    }

    /// Validates every created, updated or booked resource with `validator` before anything
    /// is written; a resource with errors is rejected (422).
    pub fn with_validator(self, validator: Arc<dyn ResourceValidator>) -> Self {
        let mut kernel = (*self.kernel).clone();
        kernel.validator = Some(validator);
        Domain::over(kernel)
    }

    /// Records every access to patient data: writes in their own transaction, reads and
    /// denials through `trail`.
    pub fn with_audit(self, trail: AuditTrail) -> Self {
        let mut kernel = (*self.kernel).clone();
        kernel.audit = Some(trail);
        Domain::over(kernel)
    }

    /// The queue of read and denial events, when auditing is on.
    pub fn audit(&self) -> Option<&AuditTrail> {
        self.kernel.audit.as_ref()
    }

    /// Records a refused request (401, 403) by `ctx`.
    pub async fn audit_denied(&self, ctx: &Caller, mut record: AuditRecord, status: u16) {
        record.denied = Some(status);
        if let Some(trail) = &self.kernel.audit {
            match crate::audit::audit_event(self.kernel.search, ctx, &record, self.kernel.clock.now()) {
                Ok(event) => trail.record(event).await,
                Err(e) => tracing::error!(error = %e, "an audit event could not be built"),
            }
        }
    }

    /// Records an access that this server relayed to another server (central platform mode)
    /// for `ctx`: `record.denied` carries the status of a refusal, if the access failed.
    pub async fn audit_relayed(&self, ctx: &Caller, record: AuditRecord) {
        if let Some(trail) = &self.kernel.audit {
            match crate::audit::audit_event(self.kernel.search, ctx, &record, self.kernel.clock.now()) {
                Ok(event) => trail.record(event).await,
                Err(e) => tracing::error!(error = %e, "an audit event of a relay could not be built"),
            }
        }
    }

    /// Deletes for good the AuditEvents recorded before `before` (the retention of the audit
    /// trail), in batches of one transaction each; answers how many.
    pub async fn sweep_audit_events(&self, before: jiff::Timestamp) -> Result<usize, crate::DomainError> {
        const BATCH: usize = 500;
        let caller = Caller::system("audit-retention");
        let mut swept = 0;
        loop {
            let mut tx = self.kernel.begin(&caller).await?;
            let purged = tx.purge_older_than(termin_fhir::ResourceType::AuditEvent, before, BATCH).await?.len();
            tx.commit().await?;
            swept += purged;
            if purged < BATCH {
                return Ok(swept);
            }
        }
    }

    pub fn config(&self) -> &ServiceConfig {
        &self.kernel.config
    }

    pub fn validator(&self) -> Option<&dyn ResourceValidator> {
        self.kernel.validator.as_deref()
    }

    /// The search parameters the domain indexes with, which searches must be parsed with too.
    pub fn search_parameters(&self) -> &'static SearchParameters {
        self.kernel.search
    }
}
