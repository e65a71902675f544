//! The domain layer: every rule about how resources change lives here, behind the storage
//! port and independent of HTTP and SQL.

mod clock;
mod error;
mod resources;
mod scheduling;

pub use clock::{Clock, SystemClock};
pub use error::DomainError;
pub use resources::{ResourceService, ServiceConfig, WriteOutcome, WriteStatus};
pub use scheduling::{BookingOutcome, BookingStatus, HoldOutcome, MANUAL_CONFIRMATION_URL, SlotSelector};
