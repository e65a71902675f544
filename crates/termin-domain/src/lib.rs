//! The domain layer: every rule about how resources change lives here, behind the storage
//! port (`termin-store`'s traits) and independent of HTTP and SQL.
//!
//! Owns: the services with one job each — [`ResourceService`] (CRUD, history, patch, import,
//! search index rebuild, `$validate`, and [`Transaction`]: several writes of a FHIR transaction
//! Bundle in one unit of work), [`SchedulingService`] (`$hold`, `$book`,
//! `$generate-slots` from availability rules and the background generation's pass to each
//! Schedule's horizon, hold expiry)
//! and [`ProviderService`] (`$findHSP`) — built together as a [`Domain`] over one kernel
//! (store, clock, configuration, validator, search parameters); the unit of work every change
//! runs in, which reads and parses each resource once; the scheduling rules and the slot state
//! machine that every write of Slots and Appointments passes; the patient compartment and the
//! organisations staff tokens are confined to; the access secrets of anonymous bookings
//! (`--public-booking`).
//!
//! Must not depend on: HTTP (axum, `termin-api`), SQL or a particular store backend (only the
//! `termin-store` traits), process-wide state (the search parameters are passed in).

mod access;
mod audit;
mod caller;
mod clock;
mod compartment;
mod cpu;
mod domain;
mod error;
mod kernel;
mod model;
mod organisation;
mod providers;
mod resources;
mod rules;
mod scheduling;
pub mod subscriptions;
#[cfg(test)]
mod test_support;
mod unit_of_work;
mod validation;
mod version;

pub use audit::{AuditAction, AuditRecord, AuditTrail};
pub use access::ACCESS_DIGEST_URL;
pub use caller::{Caller, PublicBooking};
pub use clock::{Clock, SystemClock};
pub use domain::Domain;
pub use error::DomainError;
pub use kernel::{ConditionalDelete, ServiceConfig, WriteOutcome, WriteStatus};
pub use termin_fhir::geo::Point;
pub use providers::{BusinessIdentifier, EarliestFreeSlot, LocationSelector, ProviderMatches, ProviderQuery, ProviderService, ServiceMatch};
pub use resources::{CreateTarget, ImportSummary, ResourceService, Transaction, WriteTarget};
pub use scheduling::{
    AlternativeSlot, BOOKING_REQUESTS_URL, BookingOutcome, BookingStatus, GENERATED_SLOT_SYSTEM, GenerationRequest, GenerationSummary,
    HoldOutcome, KeptSchedules, MANUAL_CONFIRMATION_URL, MAX_GENERATION_DAYS, MAX_KEPT_SCHEDULES, SLOT_GENERATION_URL,
    SchedulingService, SlotConflict,
    SlotSelector, read_duration,
};
pub use validation::ResourceValidator;
