//! The dataset before it becomes JSON: who works where, when, and who is a patient. Built once
//! per run (a few thousand entries at most, patients aside); slots are derived from it lazily.

use crate::calendar::{self, WEEKLY_HOURS};
use crate::data::{FAMILY, FEMALE_GIVEN, MALE_GIVEN, PLACES, SERVICES, STREETS};
use crate::{SeedOptions, svnr};
use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, ToSpan};
use rand::Rng;
use rand::seq::IndexedRandom;
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::SeedableRng;
use std::collections::HashSet;
use std::sync::Arc;

/// Every organization offers two services.
const SERVICES_PER_ORGANIZATION: usize = 2;

/// Independent random streams, so that e.g. a change in how patients are made leaves the
/// organizations and slots of a seed as they were.
#[derive(Clone, Copy)]
pub enum Stream {
    Structure = 1,
    Patients = 2,
    Bookings = 3,
}

pub fn rng(seed: u64, stream: Stream) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream as u64);
    rng
}

/// How many of each kind a scale has (slots follow from roles, opening hours and weeks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dimensions {
    pub organizations: usize,
    pub roles: usize,
    pub weeks: usize,
    pub patients: usize,
}

impl Dimensions {
    /// One role in five is a practitioner's second role, at another organization.
    pub fn practitioners(&self) -> usize {
        self.roles - self.roles / 5
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Gender {
    Female,
    Male,
}

impl Gender {
    pub fn code(self) -> &'static str {
        match self {
            Gender::Female => "female",
            Gender::Male => "male",
        }
    }
}

pub struct Person {
    pub given: &'static str,
    pub family: &'static str,
    pub gender: Gender,
}

impl Person {
    fn random(rng: &mut ChaCha8Rng) -> Person {
        let gender = if rng.random_bool(0.5) {
            Gender::Female
        } else {
            Gender::Male
        };
        let given = match gender {
            Gender::Female => FEMALE_GIVEN.choose(rng),
            Gender::Male => MALE_GIVEN.choose(rng),
        };
        Person {
            given: given.expect("name lists are not empty"),
            family: FAMILY.choose(rng).expect("name lists are not empty"),
            gender,
        }
    }

    pub fn full_name(&self) -> String {
        format!("{} {}", self.given, self.family)
    }
}

/// A street address at one of the [`PLACES`].
pub struct Address {
    pub place: usize,
    pub street: &'static str,
    pub house_number: u16,
}

impl Address {
    fn random(rng: &mut ChaCha8Rng, place: usize) -> Address {
        Address {
            place,
            street: STREETS.choose(rng).expect("street list is not empty"),
            house_number: rng.random_range(1..=120),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum OrganizationKind {
    /// An Allgemeine Krankenanstalt with a physiotherapy department: has a KANR.
    Hospital,
    /// A selbstständiges Ambulatorium for physiotherapy.
    Ambulatorium,
}

pub struct Organization {
    pub kind: OrganizationKind,
    pub name: String,
    pub address: Address,
    /// Vertragspartnernummer of the social insurance.
    pub vpnr: u32,
    /// Krankenanstaltennummer, hospitals only.
    pub kanr: Option<u16>,
}

pub struct Practitioner {
    pub person: Person,
    /// An academic degree, written before or after the name (`Mag.`, `BSc`).
    pub degree: Option<(&'static str, bool)>,
    pub vpnr: u32,
}

impl Practitioner {
    pub fn display(&self) -> String {
        match self.degree {
            Some((degree, true)) => format!("{degree} {}", self.person.full_name()),
            Some((degree, false)) => format!("{}, {degree}", self.person.full_name()),
            None => self.person.full_name(),
        }
    }
}

pub struct Service {
    pub organization: usize,
    pub name: &'static str,
}

/// A stretch of days a role does not work, with the reason shown in `notAvailableTime`.
pub struct Absence {
    pub description: String,
    pub first: Date,
    pub last: Date,
}


pub struct Role {
    pub practitioner: usize,
    pub organization: usize,
    pub service: usize,
    pub weekly_hours: usize,
    /// Own absences (training days, holidays); public holidays apply to every role.
    pub absences: Vec<Absence>,
}

pub struct Patient {
    pub person: Person,
    pub birth_date: Date,
    pub svnr: String,
    pub address: Address,
    pub mobile: (usize, u32),
}

pub struct Plan {
    pub seed: u64,
    pub zone: TimeZone,
    /// Every day with possible slots, from the start for the scale's number of weeks.
    pub days: Vec<Date>,
    pub holidays: Vec<Absence>,
    pub organizations: Vec<Organization>,
    pub practitioners: Vec<Practitioner>,
    pub services: Vec<Service>,
    pub roles: Vec<Role>,
    pub patients: Vec<Patient>,
}

impl Plan {
    pub fn new(options: &SeedOptions) -> Arc<Plan> {
        let dimensions = options.scale.dimensions();
        let mut rng = rng(options.seed, Stream::Structure);
        let days: Vec<Date> = (0..dimensions.weeks * 7)
            .map(|offset| add_days(options.start, offset as i64))
            .collect();
        let (first_day, last_day) = (days[0], days[days.len() - 1]);
        let holidays = (first_day.year()..=last_day.year())
            .flat_map(termin_calendar::public_holidays)
            .filter(|(day, _)| first_day <= *day && *day <= last_day)
            .map(|(day, name)| Absence {
                description: name.to_owned(),
                first: day,
                last: day,
            })
            .collect();

        let organizations: Vec<Organization> = (0..dimensions.organizations)
            .map(|index| organization(&mut rng, index))
            .collect();
        let practitioners: Vec<Practitioner> = (0..dimensions.practitioners())
            .map(|_| practitioner(&mut rng))
            .collect();
        let per_organization = SERVICES_PER_ORGANIZATION;
        let services: Vec<Service> = (0..organizations.len() * per_organization)
            .map(|index| Service {
                organization: index / per_organization,
                name: SERVICES
                    [(index / per_organization * 3 + index % per_organization) % SERVICES.len()],
            })
            .collect();
        let roles = (0..dimensions.roles)
            .map(|index| {
                let organization = index % organizations.len();
                Role {
                    practitioner: index % practitioners.len(),
                    organization,
                    service: organization * per_organization
                        + (index / organizations.len()) % per_organization,
                    weekly_hours: index % WEEKLY_HOURS.len(),
                    absences: absences(&mut rng, &days),
                }
            })
            .collect();
        let patients = patients(options.seed, dimensions.patients, options.start);
        Arc::new(Plan {
            seed: options.seed,
            zone: termin_calendar::vienna(),
            days,
            holidays,
            organizations,
            practitioners,
            services,
            roles,
            patients,
        })
    }

    /// The instant the planning horizon starts (the first day, 00:00 in Vienna).
    pub fn horizon_start(&self) -> Timestamp {
        calendar::instant(
            &self.zone,
            self.days[0].to_datetime(jiff::civil::Time::midnight()),
        )
    }

    /// The instant the planning horizon ends (the day after the last, 00:00 in Vienna).
    pub fn horizon_end(&self) -> Timestamp {
        let after = add_days(self.days[self.days.len() - 1], 1);
        calendar::instant(&self.zone, after.to_datetime(jiff::civil::Time::midnight()))
    }
}

pub fn add_days(day: Date, days: i64) -> Date {
    day.checked_add(days.days())
        .expect("generated dates stay within jiff's range")
}

fn organization(rng: &mut ChaCha8Rng, index: usize) -> Organization {
    let place = rng.random_range(0..PLACES.len());
    let city = PLACES[place].city;
    // One in five is a hospital department, the rest are outpatient centres.
    let kind = if index % 5 == 4 {
        OrganizationKind::Hospital
    } else {
        OrganizationKind::Ambulatorium
    };
    let name = match kind {
        OrganizationKind::Hospital => format!("Klinikum {city}"),
        OrganizationKind::Ambulatorium => {
            let family = FAMILY.choose(rng).expect("name list is not empty");
            match index % 3 {
                0 => format!("Physiotherapie {family}"),
                1 => format!("Therapiezentrum {city} {family}"),
                _ => format!("Ambulatorium für Physikalische Therapie {family}"),
            }
        }
    };
    Organization {
        kind,
        name,
        address: Address::random(rng, place),
        vpnr: rng.random_range(100_000..1_000_000),
        kanr: (kind == OrganizationKind::Hospital).then(|| rng.random_range(100..1000)),
    }
}

fn practitioner(rng: &mut ChaCha8Rng) -> Practitioner {
    const DEGREES: [Option<(&str, bool)>; 4] = [
        None,
        Some(("BSc", false)),
        Some(("Mag.", true)),
        Some(("MSc", false)),
    ];
    Practitioner {
        person: Person::random(rng),
        degree: *DEGREES.choose(rng).expect("degree list is not empty"),
        vpnr: rng.random_range(100_000..1_000_000),
    }
}

/// A training day for one role in three; for windows of four weeks or more, a week's holiday
/// for one role in five.
fn absences(rng: &mut ChaCha8Rng, days: &[Date]) -> Vec<Absence> {
    let mut absences = Vec::new();
    if rng.random_bool(1.0 / 3.0) {
        let day = days[rng.random_range(0..days.len())];
        absences.push(Absence {
            description: "Fortbildung".to_owned(),
            first: day,
            last: day,
        });
    }
    let weeks = days.len() / 7;
    if weeks >= 4 && rng.random_bool(0.2) {
        let monday = days[7 * rng.random_range(0..weeks)];
        absences.push(Absence {
            description: "Urlaub".to_owned(),
            first: monday,
            last: add_days(monday, 4),
        });
    }
    absences.sort_by_key(|absence| absence.first);
    absences
}

/// Patients aged 1 to 90 at `start`, each with a distinct SVNR.
fn patients(seed: u64, count: usize, start: Date) -> Vec<Patient> {
    let mut rng = rng(seed, Stream::Patients);
    let mut issued = HashSet::with_capacity(count);
    (0..count)
        .map(|_| {
            let person = Person::random(&mut rng);
            let birth_date = add_days(start, -rng.random_range(365..365 * 90));
            let mut serial = rng.random_range(100..1000);
            let svnr = loop {
                if let Some(number) = svnr::svnr(serial, birth_date)
                    && issued.insert(number.clone())
                {
                    break number;
                }
                serial = if serial == 999 { 100 } else { serial + 1 };
            };
            let place = rng.random_range(0..PLACES.len());
            let address = Address::random(&mut rng, place);
            let mobile = (
                rng.random_range(0..crate::data::MOBILE_PREFIXES.len()),
                rng.random_range(1_000_000..10_000_000),
            );
            Patient {
                person,
                birth_date,
                svnr,
                address,
                mobile,
            }
        })
        .collect()
}

/// One slot of a role, and the booking that makes it busy.
pub struct SlotPlan {
    pub role: usize,
    pub start: Timestamp,
    pub end: Timestamp,
    pub booking: Option<Booking>,
}

pub struct Booking {
    pub index: usize,
    pub patient: usize,
    /// When the appointment was made.
    pub created: Timestamp,
}

/// The share of slots generated as booked.
const BOOKED_SHARE: f64 = 0.05;

/// Every slot of the plan, role by role and day by day, from each role's weekly hours less
/// public holidays and its own absences; about [`BOOKED_SHARE`] of them booked.
pub fn slots(plan: Arc<Plan>) -> impl Iterator<Item = SlotPlan> + Send {
    let mut bookings = rng(plan.seed, Stream::Bookings);
    let mut booked = 0;
    let walk = Arc::clone(&plan);
    (0..plan.roles.len())
        .flat_map(move |role| {
            let availability = termin_calendar::Availability::read([&crate::resources::availability(&walk, role)])
                .expect("the seed's opening hours are valid Availability");
            let (first, last) = (walk.days[0], walk.days[walk.days.len() - 1]);
            // The role lists the public holidays itself, as its notAvailableTime.
            availability
                .slots(&walk.zone, first, last, calendar::slot_pattern(), false)
                .into_iter()
                .map(move |(start, end)| (role, start, end))
        })
        .map(move |(role, start, end)| {
            let booking = bookings.random_bool(BOOKED_SHARE).then(|| {
                booked += 1;
                let hours_before = bookings.random_range(2..24 * 28);
                Booking {
                    index: booked - 1,
                    patient: bookings.random_range(0..plan.patients.len()),
                    created: start - SignedDuration::from_hours(hours_before),
                }
            });
            SlotPlan {
                role,
                start,
                end,
                booking,
            }
        })
}
