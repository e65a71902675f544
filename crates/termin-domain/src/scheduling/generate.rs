//! `Schedule/[id]/$generate-slots`: free Slots materialised from the opening hours
//! (`availability`) of the Schedule's actor and the Schedule's slot-generation rules.
//!
//! Everything runs in one unit of work that holds the Schedule's row lock, and every Slot is
//! written or deleted through the scheduling rules (`guard_write`) under its own row lock, so
//! a concurrent `$book` or `$hold` either finishes first (and its slot is then kept and
//! reported as a conflict) or waits for the generation.

mod horizon;
mod rules;

use super::SchedulingService;
use crate::DomainError;
use crate::caller::Caller;
use crate::model;
use crate::rules::state::{self, SlotState};
use crate::unit_of_work::UnitOfWork;
use jiff::civil::Date;
use jiff::{SignedDuration, Timestamp, ToSpan};
use rules::GenerationRules;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, HashMap};
use termin_calendar::{Availability, generated_slot_id, generated_slot_identifier, local_text};
use termin_fhir::instant::format_instant;
use termin_fhir::{Issue, IssueCode, ResourceType};

pub use horizon::{KeptSchedules, MAX_KEPT_SCHEDULES};
pub use rules::{SLOT_GENERATION_URL, read_duration};
/// The identifier system of generated Slots (their identity is `termin-calendar`'s).
pub use termin_calendar::GENERATED_SLOT_SYSTEM;

/// The most days one generation covers (a year): larger windows are refused (400).
pub const MAX_GENERATION_DAYS: i32 = 366;

/// The most existing Slots of one Schedule one generation considers in its window.
const MAX_EXISTING_SLOTS: usize = 100_000;

/// What `$generate-slots` is asked to do.
#[derive(Debug, Clone)]
pub struct GenerationRequest {
    /// The first local day.
    pub first: Date,
    /// The last local day, included.
    pub last: Date,
    /// Overrides the Schedule's slot length.
    pub slot_length: Option<SignedDuration>,
    /// Work out the summary but change nothing.
    pub dry_run: bool,
}

/// What a generation did (or, dry, would do).
#[derive(Debug, Default, Clone)]
pub struct GenerationSummary {
    pub created: usize,
    pub kept: usize,
    pub removed: usize,
    pub conflicts: Vec<SlotConflict>,
}

/// A booked or held Slot the rules no longer give: kept, for staff to resolve.
#[derive(Debug, Clone)]
pub struct SlotConflict {
    pub slot_id: String,
    pub start: Option<Timestamp>,
    pub reason: String,
}

impl SchedulingService {
    /// Generates the free Slots of `schedule_id` for the request's days; Slots that started
    /// before now are neither created nor removed.
    pub async fn generate_slots(
        &self,
        ctx: &Caller,
        schedule_id: &str,
        request: &GenerationRequest,
    ) -> Result<GenerationSummary, DomainError> {
        check_window(request.first, request.last)?;
        let now = self.kernel.clock().now();
        let mut tx = self.kernel.begin(ctx).await?;
        let param = termin_search::slot_period_param(schedule_id);
        // Locks in `$book`'s order, Slots before their Schedule: a booking holding its Slot and
        // waiting to read the Schedule must not wait for a generation waiting for that Slot.
        // The days are not yet known as instants (the zone is the Schedule's), so a day more
        // on either side.
        let around = (
            utc_midnight(request.first.yesterday().unwrap_or(request.first)),
            utc_midnight(next_day(next_day(request.last)?)?),
        );
        let mut early = tx.overlapping(ResourceType::Slot, &param, around, "", MAX_EXISTING_SLOTS).await?;
        early.sort();
        tx.read_current_many(ResourceType::Slot, &early).await?;
        // Then the Schedule's row lock: generations of one Schedule take turns, and bookings of
        // its Slots (which read it shared) wait for a generation in progress.
        match tx.read_current(ResourceType::Schedule, schedule_id).await? {
            None => return Err(DomainError::NotFound(format!("Schedule/{schedule_id}"))),
            Some(version) if version.is_deleted() => {
                return Err(DomainError::Gone(format!("Schedule/{schedule_id}")));
            }
            Some(_) => {}
        }
        let (_, schedule) = tx
            .read_live(ResourceType::Schedule, schedule_id)
            .await?
            .ok_or_else(|| DomainError::NotFound(format!("Schedule/{schedule_id}")))?;
        let rules = GenerationRules::read(&schedule, request.slot_length)?;
        let availability = actor_availability(&mut tx, schedule_id, &schedule).await?;
        let wanted: BTreeMap<String, (Timestamp, Timestamp)> = availability
            .slots(&rules.zone, request.first, request.last, rules.pattern, rules.public_holidays)
            .into_iter()
            .filter(|(start, _)| *start >= now)
            .map(|period| (generated_slot_id(schedule_id, period.0), period))
            .collect();

        let window = (rules.local_midnight(request.first), rules.local_midnight(next_day(request.last)?));
        let existing = tx.overlapping(ResourceType::Slot, &param, window, "", MAX_EXISTING_SLOTS).await?;
        tx.read_current_many(ResourceType::Slot, &existing).await?;
        tx.read_slot_states(&existing).await?;
        // Under the Schedule's lock these are all its Slot periods in the window: the overlap
        // check of each Slot created below needs no query.
        let mut periods = HashMap::new();
        let complete = existing.len() < MAX_EXISTING_SLOTS;
        let mut summary = GenerationSummary::default();
        let mut to_create = wanted.clone();
        let mut to_remove = Vec::new();
        // Periods taken by Slots that stay although the rules do not give them.
        let mut occupied = Vec::new();
        for id in existing {
            let Some((_, slot)) = tx.read_live(ResourceType::Slot, &id).await? else {
                continue;
            };
            if let Some((slot_param, start, end)) = termin_search::slot_period(&slot)
                && slot_param == param
            {
                periods.insert(id.clone(), (start, end));
            }
            let (Some(start), Some(end)) = (model::instant(&slot, "start"), model::instant(&slot, "end")) else {
                continue;
            };
            if start < now {
                continue;
            }
            if wanted.get(&id) == Some(&(start, end)) {
                summary.kept += 1;
                to_create.remove(&id);
                continue;
            }
            if !is_generated(&slot) {
                occupied.push((start, end));
                continue;
            }
            let slot_state = SlotState::read(&mut tx, &id, model::status(&slot), now).await?;
            match unremovable(&slot_state) {
                None => to_remove.push(id),
                Some(reason) => {
                    occupied.push((start, end));
                    to_create.remove(&id);
                    summary.conflicts.push(SlotConflict { slot_id: id, start: Some(start), reason });
                }
            }
        }
        to_create.retain(|_, (start, end)| !occupied.iter().any(|(s, e)| s < &*end && &*start < e));
        summary.removed = to_remove.len();
        if complete {
            tx.know_slot_periods(schedule_id, param.clone(), window, periods);
        }
        let creating: Vec<String> = to_create.keys().cloned().collect();
        tx.read_current_many(ResourceType::Slot, &creating).await?;
        tx.read_slot_states(&creating).await?;
        if !request.dry_run {
            for id in &to_remove {
                self.kernel.delete_in(ctx, &mut tx, ResourceType::Slot, id).await?;
            }
        }
        tx.gather_creations();
        for (id, (start, end)) in to_create {
            let previous = tx.read_current(ResourceType::Slot, &id).await?;
            // A generated Slot staff have since taken out of booking (busy-unavailable,
            // entered-in-error) stays as they left it.
            if previous.as_ref().is_some_and(|p| !p.is_deleted()) && !to_remove.contains(&id) {
                summary.kept += 1;
                continue;
            }
            summary.created += 1;
            if !request.dry_run {
                let body = generated_slot(schedule_id, &schedule, &rules, &id, start, end);
                self.kernel.stage_in(ctx, &mut tx, ResourceType::Slot, &id, body, previous.as_ref()).await?;
            }
        }
        if !request.dry_run {
            tx.commit().await?;
        }
        Ok(summary)
    }
}

fn check_window(first: Date, last: Date) -> Result<(), DomainError> {
    let days = first.until(last).map(|span| span.get_days()).unwrap_or(i32::MAX);
    if last < first || days >= MAX_GENERATION_DAYS {
        return Err(DomainError::invalid(Issue::error(
            IssueCode::Value,
            format!("end ({last}) must be on or after start ({first}) and at most {MAX_GENERATION_DAYS} days later"),
        )));
    }
    Ok(())
}

fn utc_midnight(day: Date) -> Timestamp {
    day.to_datetime(jiff::civil::Time::midnight())
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .map_or(Timestamp::MAX, |zoned| zoned.timestamp())
}

fn next_day(day: Date) -> Result<Date, DomainError> {
    day.checked_add(1.day())
        .map_err(|_| DomainError::invalid(Issue::error(IssueCode::Value, format!("{day} is the end of the calendar"))))
}

/// The `availability` of the Schedule's PractitionerRole and HealthcareService actors.
async fn actor_availability(
    tx: &mut UnitOfWork,
    schedule_id: &str,
    schedule: &Map<String, Value>,
) -> Result<Availability, DomainError> {
    let mut elements = Vec::new();
    let actors = schedule.get("actor").and_then(Value::as_array).into_iter().flatten();
    for reference in actors.filter_map(|actor| actor.get("reference").and_then(Value::as_str)) {
        let Some(literal) = termin_fhir::parse_literal(reference).filter(|l| l.base.is_none()) else {
            continue;
        };
        let resource_type = match literal.resource_type {
            "PractitionerRole" => ResourceType::PractitionerRole,
            "HealthcareService" => ResourceType::HealthcareService,
            _ => continue,
        };
        if let Some((_, actor)) = tx.read_live(resource_type, literal.id).await? {
            let availability = actor.get("availability").and_then(Value::as_array).cloned().unwrap_or_default();
            elements.extend(availability);
        }
    }
    if elements.is_empty() {
        return Err(DomainError::unprocessable(Issue::error(
            IssueCode::BusinessRule,
            format!(
                "Schedule/{schedule_id} has no PractitionerRole or HealthcareService actor with availability to generate slots from"
            ),
        )));
    }
    Availability::read(&elements).map_err(|problem| {
        DomainError::unprocessable(Issue::error(
            IssueCode::Value,
            format!("The availability of Schedule/{schedule_id}'s actor cannot be read: {problem}"),
        ))
    })
}

fn is_generated(slot: &Map<String, Value>) -> bool {
    let identifiers = slot.get("identifier").and_then(Value::as_array).into_iter().flatten();
    identifiers.into_iter().any(|i| i.get("system").and_then(Value::as_str) == Some(GENERATED_SLOT_SYSTEM))
}

/// Why a generated Slot the rules no longer give must stay; `None`: it is free and unheld.
fn unremovable(slot: &SlotState) -> Option<String> {
    if let Some(appointment) = slot.booking() {
        return Some(format!("booked by Appointment/{appointment}"));
    }
    if let Some(hold) = slot.live_hold() {
        return Some(format!("held until {}", format_instant(hold.held_until)));
    }
    match slot.status() {
        state::FREE => None,
        status => Some(format!("status {status}")),
    }
}

fn generated_slot(
    schedule_id: &str,
    schedule: &Map<String, Value>,
    rules: &GenerationRules,
    id: &str,
    start: Timestamp,
    end: Timestamp,
) -> Map<String, Value> {
    let mut slot = Map::new();
    slot.insert("resourceType".into(), json!("Slot"));
    slot.insert("id".into(), json!(id));
    slot.insert(
        "identifier".into(),
        json!([{"system": GENERATED_SLOT_SYSTEM, "value": generated_slot_identifier(schedule_id, start)}]),
    );
    if let Some(service_type) = rules.service_type.as_ref().or_else(|| schedule.get("serviceType")) {
        slot.insert("serviceType".into(), service_type.clone());
    }
    slot.insert("schedule".into(), json!({"reference": format!("Schedule/{schedule_id}")}));
    slot.insert("status".into(), json!(state::FREE));
    slot.insert("start".into(), json!(local_text(&rules.zone, start)));
    slot.insert("end".into(), json!(local_text(&rules.zone, end)));
    slot
}
