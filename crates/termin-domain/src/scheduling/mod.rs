//! The scheduling service: `Slot/$hold`, `Appointment/$book`, `Schedule/$generate-slots` and
//! the hold-expiry sweeper,
//! over the scheduling rules ([`crate::rules`]) every write of Slots and Appointments keeps.

mod book;
mod generate;
mod hold;
mod sweep;

pub use crate::rules::{BOOKING_REQUESTS_URL, MANUAL_CONFIRMATION_URL};
pub use book::{AlternativeSlot, BookingOutcome, BookingStatus};
pub use generate::{
    GENERATED_SLOT_SYSTEM, GenerationRequest, GenerationSummary, KeptSchedules, MAX_GENERATION_DAYS, MAX_KEPT_SCHEDULES,
    SLOT_GENERATION_URL, SlotConflict, read_duration,
};
pub use hold::{HoldOutcome, SlotSelector};

use crate::DomainError;
use crate::kernel::Kernel;
use std::sync::Arc;
use termin_fhir::ResourceType;
use termin_store::RequestContext;

/// Holds, bookings and the release of expired holds.
pub struct SchedulingService {
    kernel: Arc<Kernel>,
}

impl SchedulingService {
    pub(crate) fn over(kernel: Arc<Kernel>) -> Self {
        SchedulingService { kernel }
    }

    /// Whether `secret` is the access secret of the current Appointment `id` (an anonymous
    /// booking's); `false` alike for a wrong secret and an unknown or deleted Appointment.
    pub async fn opens_appointment(&self, id: &str, secret: &str) -> Result<bool, DomainError> {
        let ctx = RequestContext::system("appointment access check");
        let current = self.kernel.store().read_current(&ctx, ResourceType::Appointment, id).await?;
        let body = current.and_then(|v| v.body).and_then(|b| crate::model::parse_object(&b));
        Ok(body.is_some_and(|body| crate::access::opens(&body, secret)))
    }
}

#[cfg(test)]
mod tests;
