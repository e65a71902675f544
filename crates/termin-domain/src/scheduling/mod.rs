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
    GENERATED_SLOT_SYSTEM, GenerationRequest, GenerationSummary, MAX_GENERATION_DAYS, SLOT_GENERATION_URL, SlotConflict,
    read_duration,
};
pub use hold::{HoldOutcome, SlotSelector};

use crate::kernel::Kernel;
use std::sync::Arc;

/// Holds, bookings and the release of expired holds.
pub struct SchedulingService {
    kernel: Arc<Kernel>,
}

impl SchedulingService {
    pub(crate) fn over(kernel: Arc<Kernel>) -> Self {
        SchedulingService { kernel }
    }
}

#[cfg(test)]
mod tests;
