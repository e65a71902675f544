//! Typed search parameters for the searches of the Scheduling Client (IG "Search parameters"
//! sections of the HealthcareService, Schedule, Slot and Appointment profiles). Each query is a
//! plain struct with public fields and `Default`, so callers name only what they filter on:
//!
//! ```
//! use termin_client::{SearchQuery, SlotQuery};
//! let query = SlotQuery {
//!     schedule: Some("Schedule/HL7ATSchedulingScheduleExample01".into()),
//!     status: Some("free".into()),
//!     start_from: Some("2026-04-07".into()),
//!     ..SlotQuery::default()
//! };
//! assert_eq!(query.pairs()[2], ("start", "ge2026-04-07".to_owned()));
//! ```
//!
//! Values are passed as the FHIR search syntax expects them: tokens as `system|code` (or just
//! `code`), references as `Type/id`, dates with an optional prefix (`ge2026-04-07`). Commas
//! inside a value mean OR; several pairs with the same name mean AND.

use crate::SVNR_SYSTEM;

/// Search parameters of one resource type, as query pairs for [`crate::Client::search_with`].
pub trait SearchQuery {
    /// The resource type searched, e.g. `Slot`.
    const RESOURCE_TYPE: &'static str;

    /// The query as `(name, value)` pairs, in a stable order.
    fn pairs(&self) -> Vec<(&'static str, String)>;
}

/// Collects the set fields of a query.
#[derive(Default)]
struct Pairs(Vec<(&'static str, String)>);

impl Pairs {
    fn text(mut self, name: &'static str, value: &Option<String>) -> Self {
        if let Some(value) = value {
            self.0.push((name, value.clone()));
        }
        self
    }

    fn prefixed(mut self, name: &'static str, prefix: &str, value: &Option<String>) -> Self {
        if let Some(value) = value {
            self.0.push((name, format!("{prefix}{value}")));
        }
        self
    }

    fn each(mut self, name: &'static str, values: &[String]) -> Self {
        self.0.extend(values.iter().map(|value| (name, value.clone())));
        self
    }

    fn flag(mut self, name: &'static str, value: Option<bool>) -> Self {
        if let Some(value) = value {
            self.0.push((name, value.to_string()));
        }
        self
    }

    fn paging(mut self, count: Option<u32>, sort: &Option<String>) -> Vec<(&'static str, String)> {
        if let Some(count) = count {
            self.0.push(("_count", count.to_string()));
        }
        self.text("_sort", sort).0
    }
}

/// `HealthcareService?…`: the bookable services. Without `active` the server answers only
/// active services (IG rule).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceQuery {
    /// `service-type`: token, e.g. `http://terminology.hl7.org/CodeSystem/service-type|65`.
    pub service_type: Option<String>,
    /// `service-category`: token.
    pub category: Option<String>,
    /// `specialty`: token.
    pub specialty: Option<String>,
    /// `location`: reference, e.g. `Location/x`.
    pub location: Option<String>,
    /// `organization`: reference to the providing Organization.
    pub organization: Option<String>,
    /// `name`: starts-with, case- and accent-insensitive.
    pub name: Option<String>,
    /// `active`: `Some(false)` lists inactive services.
    pub active: Option<bool>,
    /// `_count`: page size.
    pub count: Option<u32>,
    /// `_sort`: parameter names, `-` for descending, comma-separated.
    pub sort: Option<String>,
}

impl SearchQuery for ServiceQuery {
    const RESOURCE_TYPE: &'static str = "HealthcareService";

    fn pairs(&self) -> Vec<(&'static str, String)> {
        Pairs::default()
            .text("service-type", &self.service_type)
            .text("service-category", &self.category)
            .text("specialty", &self.specialty)
            .text("location", &self.location)
            .text("organization", &self.organization)
            .text("name", &self.name)
            .flag("active", self.active)
            .paging(self.count, &self.sort)
    }
}

/// `Schedule?…`: the calendars of actors or services. Without `active` the server answers
/// only active schedules (IG rule).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScheduleQuery {
    /// `actor`: reference (`PractitionerRole/x`); `system|value` finds it by identifier.
    pub actor: Option<String>,
    /// `service-type`: token.
    pub service_type: Option<String>,
    /// `service-type-reference`: reference to the HealthcareService.
    pub service_type_reference: Option<String>,
    /// `date`: a date the planning horizon contains, optionally prefixed (`eq2026-04-07`).
    pub date: Option<String>,
    /// `active`: `Some(false)` lists inactive schedules.
    pub active: Option<bool>,
    /// `_count`: page size.
    pub count: Option<u32>,
    /// `_sort`: parameter names, `-` for descending, comma-separated.
    pub sort: Option<String>,
}

impl SearchQuery for ScheduleQuery {
    const RESOURCE_TYPE: &'static str = "Schedule";

    fn pairs(&self) -> Vec<(&'static str, String)> {
        Pairs::default()
            .text("actor", &self.actor)
            .text("service-type", &self.service_type)
            .text("service-type-reference", &self.service_type_reference)
            .text("date", &self.date)
            .flag("active", self.active)
            .paging(self.count, &self.sort)
    }
}

/// `Slot?…`: bookable time of a schedule.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SlotQuery {
    /// `schedule`: reference, e.g. `Schedule/x`.
    pub schedule: Option<String>,
    /// `status`: `free` (what the IG asks clients to search for), or several comma-separated.
    pub status: Option<String>,
    /// Slots starting at or after this date/time (`start=ge…`); a date covers its whole day.
    pub start_from: Option<String>,
    /// Slots starting at or before this date/time (`start=le…`); a date covers its whole day.
    pub start_to: Option<String>,
    /// `service-type`: token.
    pub service_type: Option<String>,
    /// `_count`: page size.
    pub count: Option<u32>,
    /// `_sort`, e.g. `start`.
    pub sort: Option<String>,
}

impl SearchQuery for SlotQuery {
    const RESOURCE_TYPE: &'static str = "Slot";

    fn pairs(&self) -> Vec<(&'static str, String)> {
        Pairs::default()
            .text("schedule", &self.schedule)
            .text("status", &self.status)
            .prefixed("start", "ge", &self.start_from)
            .prefixed("start", "le", &self.start_to)
            .text("service-type", &self.service_type)
            .paging(self.count, &self.sort)
    }
}

/// `Appointment?…`: existing appointments ("Find existing Appointments").
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppointmentQuery {
    /// The patient's social security number: `actor:identifier=urn:oid:1.2.40.0.10.1.4.3.1|…`.
    pub patient_svnr: Option<String>,
    /// `actor`: reference to any participant, e.g. `Patient/x` or `Practitioner/y`.
    pub actor: Option<String>,
    /// `date` values, each with an optional prefix; several are ANDed
    /// (`["ge2026-04-07", "le2026-04-14"]` is that week).
    pub dates: Vec<String>,
    /// `status`, e.g. `booked` or `booked,pending`.
    pub status: Option<String>,
    /// `service-type`: token.
    pub service_type: Option<String>,
    /// `_count`: page size.
    pub count: Option<u32>,
    /// `_sort`, e.g. `date`.
    pub sort: Option<String>,
}

impl AppointmentQuery {
    /// The appointments of the patient with this social security number.
    pub fn for_patient(svnr: &str) -> Self {
        AppointmentQuery { patient_svnr: Some(svnr.to_owned()), ..AppointmentQuery::default() }
    }
}

impl SearchQuery for AppointmentQuery {
    const RESOURCE_TYPE: &'static str = "Appointment";

    fn pairs(&self) -> Vec<(&'static str, String)> {
        Pairs::default()
            .prefixed("actor:identifier", &format!("{SVNR_SYSTEM}|"), &self.patient_svnr)
            .text("actor", &self.actor)
            .each("date", &self.dates)
            .text("status", &self.status)
            .text("service-type", &self.service_type)
            .paging(self.count, &self.sort)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_query_has_no_pairs() {
        assert!(SlotQuery::default().pairs().is_empty());
        assert!(ServiceQuery::default().pairs().is_empty());
        assert!(ScheduleQuery::default().pairs().is_empty());
        assert!(AppointmentQuery::default().pairs().is_empty());
    }

    #[test]
    fn slot_query_reads_like_the_ig_example() {
        let query = SlotQuery {
            schedule: Some("Schedule/HL7ATSchedulingScheduleExample01".into()),
            status: Some("free".into()),
            start_from: Some("2026-04-07".into()),
            start_to: Some("2026-04-14".into()),
            service_type: Some("65".into()),
            count: Some(20),
            sort: Some("start".into()),
        };
        assert_eq!(
            query.pairs(),
            [
                ("schedule", "Schedule/HL7ATSchedulingScheduleExample01".to_owned()),
                ("status", "free".to_owned()),
                ("start", "ge2026-04-07".to_owned()),
                ("start", "le2026-04-14".to_owned()),
                ("service-type", "65".to_owned()),
                ("_count", "20".to_owned()),
                ("_sort", "start".to_owned()),
            ]
        );
    }

    #[test]
    fn appointment_query_searches_by_svnr_as_the_ig_example() {
        let query = AppointmentQuery {
            dates: vec!["ge2026-04-07".into(), "le2026-04-14".into()],
            status: Some("booked".into()),
            ..AppointmentQuery::for_patient("1234010100")
        };
        assert_eq!(
            query.pairs(),
            [
                ("actor:identifier", "urn:oid:1.2.40.0.10.1.4.3.1|1234010100".to_owned()),
                ("date", "ge2026-04-07".to_owned()),
                ("date", "le2026-04-14".to_owned()),
                ("status", "booked".to_owned()),
            ]
        );
    }

    #[test]
    fn service_and_schedule_queries_spell_active_as_a_boolean() {
        let services = ServiceQuery { service_type: Some("urn:x|65".into()), active: Some(false), ..ServiceQuery::default() };
        assert_eq!(services.pairs(), [("service-type", "urn:x|65".to_owned()), ("active", "false".to_owned())]);
        let schedules = ScheduleQuery { actor: Some("Practitioner/p".into()), active: Some(true), ..ScheduleQuery::default() };
        assert_eq!(schedules.pairs(), [("actor", "Practitioner/p".to_owned()), ("active", "true".to_owned())]);
    }
}
