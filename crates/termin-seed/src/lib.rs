//! Deterministic Austrian scheduling data: physiotherapy providers with their practitioners,
//! services, opening hours and schedules, the bookable slots those hours give, patients with
//! social security numbers, and booked appointments.
//!
//! Every resource conforms to the profiles Termin enforces by default (AT Core R5 for
//! Organization, Practitioner, PractitionerRole and Patient; AT Scheduling R5 for
//! HealthcareService, Schedule, Slot and Appointment; Location has no AT profile and is plain
//! R5), and claims its profile in `meta.profile` as the IG examples do.
//!
//! # What each scale holds
//!
//! | scale  | organizations = locations | practitioners | services | roles = schedules | weeks | patients | slots (target) | appointments |
//! |--------|------:|------:|----:|------:|---:|-------:|--------------------:|-------:|
//! | tiny   | 2     | 3     | 4   | 3     | 2  | 35     | 322 (350)           | 13     |
//! | small  | 10    | 36    | 20  | 45    | 4  | 1,000  | 9,447 (10,000)      | 472    |
//! | medium | 40    | 180   | 80  | 225   | 8  | 10,000 | 97,165 (100,000)    | 4,874  |
//! | large  | 200   | 1,088 | 400 | 1,360 | 13 | 50,000 | 954,051 (1,000,000) | 47,774 |
//!
//! (Slots and appointments for seed 2027 from Monday 2027-03-22, whose windows hold Easter
//! Monday and, for the longer ones, Ascension, Whit Monday and Corpus Christi.)
//!
//! Slots and appointments vary a little with the seed (absences, bookings) and with the start
//! date (public holidays); [`counts`] gives the exact numbers for a set of options.
//!
//! # How the data is made
//! - Each organization (an outpatient physiotherapy centre, every fifth a hospital with a
//!   KANR) has a VPNR, one Location at a real Austrian postal code (its `position` the town
//!   centre, so `$findHSP`'s near search works on the data), and two
//!   HealthcareServices, all coded `65` Physiotherapy (the one code of the IG's service-type
//!   value set) and told apart by name.
//! - Each PractitionerRole works one of five weekly patterns of opening hours
//!   (`availability.availableTime`), round-robin; its `notAvailableTime` lists the Austrian
//!   public holidays in the window and its own training days and holidays. One role in five
//!   is a practitioner's second role, at another organization.
//! - One Schedule per role (actors: the role and its practitioner; service type with a
//!   reference to the role's HealthcareService) with Termin's `slot-generation` extension
//!   (30-minute slots; the role lists the public holidays itself), and the 30-minute Slots
//!   those rules give on each day the role works, from [`SeedOptions::start`] for the scale's
//!   weeks ([`SeedOptions::days`]): exactly what the server's slot generation makes of them,
//!   with the same ids and identifiers (`termin_calendar::generated_slot_id`). `termin seed`
//!   loads a database through that generation rather than from these Slots. Local opening
//!   hours stay put across daylight-saving changes: start and end carry Vienna's offset of
//!   that instant (`+01:00` or `+02:00`).
//! - About 5% of the slots are `busy`, each followed by its `booked` Appointment (the patient
//!   and the practitioner role as participants, start and end those of the slot).
//!
//! Ids are assigned here (`seed-org-0`, `seed-appointment-12`, ...; a Slot's derives from its
//! Schedule and start), so loading with PUT by id is idempotent. The same options give byte-identical resources: randomness comes from ChaCha8
//! streams seeded by [`SeedOptions::seed`], and times from jiff's bundled time zone database.
//!
//! Depends only on `termin-calendar` (opening hours and holidays); must not depend on
//! storage, the domain or HTTP: it makes JSON, and the `termin` command loads it.

mod calendar;
mod data;
mod plan;
mod resources;
mod svnr;

pub use plan::Dimensions;

use serde_json::{Map, Value};
use std::str::FromStr;
use std::sync::Arc;

/// How much data to generate; see the crate documentation for the counts of each scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    /// A few resources of each kind: for tests and CI smoke runs.
    Tiny,
    /// About 10,000 slots: the demo dataset.
    Small,
    /// About 100,000 slots.
    Medium,
    /// About 1,000,000 slots.
    Large,
}

impl Scale {
    pub const ALL: [Scale; 4] = [Scale::Tiny, Scale::Small, Scale::Medium, Scale::Large];

    pub fn as_str(self) -> &'static str {
        match self {
            Scale::Tiny => "tiny",
            Scale::Small => "small",
            Scale::Medium => "medium",
            Scale::Large => "large",
        }
    }

    /// The number of slots the scale aims at.
    pub fn target_slots(self) -> usize {
        match self {
            Scale::Tiny => 350,
            Scale::Small => 10_000,
            Scale::Medium => 100_000,
            Scale::Large => 1_000_000,
        }
    }

    /// The sizes the scale is made of: roles and weeks chosen so that the mean of 58.8
    /// half-hour slots per role and week, less holidays and absences, meets the target.
    pub fn dimensions(self) -> Dimensions {
        let (organizations, roles, weeks) = match self {
            Scale::Tiny => (2, 3, 2),
            Scale::Small => (10, 45, 4),
            Scale::Medium => (40, 225, 8),
            Scale::Large => (200, 1360, 13),
        };
        // One patient per ten slots, capped: beyond that more patients add little to a test.
        let patients = (self.target_slots() / 10).min(50_000);
        Dimensions {
            organizations,
            roles,
            weeks,
            patients,
        }
    }
}

impl std::fmt::Display for Scale {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scale {
    type Err = String;

    fn from_str(text: &str) -> Result<Scale, String> {
        Scale::ALL
            .into_iter()
            .find(|scale| scale.as_str().eq_ignore_ascii_case(text))
            .ok_or_else(|| format!("unknown scale {text:?}: expected tiny, small, medium or large"))
    }
}

#[derive(Debug, Clone)]
pub struct SeedOptions {
    pub scale: Scale,
    /// The random seed: the same options give the same resources, byte for byte.
    pub seed: u64,
    /// The first day with slots (a Monday is usual), in Europe/Vienna.
    pub start: jiff::civil::Date,
}

impl SeedOptions {
    pub fn new(scale: Scale, seed: u64, start: jiff::civil::Date) -> SeedOptions {
        SeedOptions { scale, seed, start }
    }

    /// The first and the last day with slots (the scale's weeks from the start).
    pub fn days(&self) -> (jiff::civil::Date, jiff::civil::Date) {
        let days = self.scale.dimensions().weeks as i64 * 7 - 1;
        (self.start, self.start.checked_add(jiff::Span::new().days(days)).unwrap_or(self.start))
    }
}

/// The resource types in load order: each refers only to types before it (a Slot's
/// Appointment follows the Slot).
pub const LOAD_ORDER: [&str; 9] = [
    "Organization",
    "Location",
    "Practitioner",
    "HealthcareService",
    "PractitionerRole",
    "Schedule",
    "Patient",
    "Slot",
    "Appointment",
];

/// How many resources of each type [`generate`] yields for `options`, in [`LOAD_ORDER`].
/// Walks the slot times and booking draws but builds no JSON.
pub fn counts(options: &SeedOptions) -> Vec<(&'static str, usize)> {
    let plan = plan::Plan::new(options);
    let (mut slots, mut appointments) = (0, 0);
    for slot in plan::slots(Arc::clone(&plan)) {
        slots += 1;
        appointments += usize::from(slot.booking.is_some());
    }
    let sizes = [
        plan.organizations.len(),
        plan.organizations.len(),
        plan.practitioners.len(),
        plan.services.len(),
        plan.roles.len(),
        plan.roles.len(),
        plan.patients.len(),
        slots,
        appointments,
    ];
    LOAD_ORDER.into_iter().zip(sizes).collect()
}

/// Every resource of the dataset, in load order (referenced resources first). Organizations,
/// practitioners and patients are planned up front; slots and appointments are made one at a
/// time as the iterator is driven, so even the large scale never holds them all.
pub fn generate(options: &SeedOptions) -> impl Iterator<Item = Map<String, Value>> + Send + use<> {
    let plan = plan::Plan::new(options);
    let per_index = |count: usize, build: fn(&plan::Plan, usize) -> Map<String, Value>| {
        let plan = Arc::clone(&plan);
        (0..count).map(move |index| build(&plan, index))
    };
    let structure = per_index(plan.organizations.len(), resources::organization)
        .chain(per_index(plan.organizations.len(), resources::location))
        .chain(per_index(plan.practitioners.len(), resources::practitioner))
        .chain(per_index(
            plan.services.len(),
            resources::healthcare_service,
        ))
        .chain(per_index(plan.roles.len(), resources::practitioner_role))
        .chain(per_index(plan.roles.len(), resources::schedule))
        .chain(per_index(plan.patients.len(), resources::patient));
    let slot_plan = Arc::clone(&plan);
    let slots = plan::slots(Arc::clone(&plan)).flat_map(move |slot| {
        let appointment = resources::appointment(&slot_plan, &slot);
        std::iter::once(resources::slot(&slot_plan, &slot)).chain(appointment)
    });
    structure.chain(slots)
}

#[cfg(test)]
mod tests;
