//! The domain services, built together over one kernel.

use crate::kernel::Kernel;
use crate::{Clock, ProviderService, ResourceService, ResourceValidator, SchedulingService, ServiceConfig};
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
    pub fn new(store: Arc<dyn ResourceStore>, clock: Arc<dyn Clock>, config: ServiceConfig, search: &'static SearchParameters) -> Self {
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
