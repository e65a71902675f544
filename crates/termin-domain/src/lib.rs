//! The domain layer: every rule about how resources change lives here, behind the storage
//! port and independent of HTTP and SQL.

mod clock;
mod compartment;
mod cpu;
mod error;
mod providers;
mod resources;
mod scheduling;
pub mod subscriptions;
mod validation;

pub use clock::{Clock, SystemClock};
pub use error::DomainError;
pub use providers::near::Point;
pub use providers::{BusinessIdentifier, LocationSelector, ProviderMatches, ProviderQuery, ServiceMatch};
pub use resources::{ImportSummary, ResourceService, ServiceConfig, WriteOutcome, WriteStatus};
pub use validation::ResourceValidator;
pub use scheduling::{BOOKING_REQUESTS_URL, BookingOutcome, BookingStatus, HoldOutcome, MANUAL_CONFIRMATION_URL, SlotSelector};
