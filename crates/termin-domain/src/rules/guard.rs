//! Scheduling rules for generic writes of Appointments and Slots.

use super::policy::{Release, booking_deadline, check_cancellation_deadline};
use super::sequence::{NamedSlot, check_sequence, slot_positions};
use super::state::{self, SlotState};
use super::{record_event, set_slot_status};
use crate::DomainError;
use crate::access;
use crate::caller::{Caller, PublicBooking};
use crate::model::{self, AppointmentId, SlotId, is_cancelled, occupies_slots, slot_ids};
use crate::unit_of_work::UnitOfWork;
use jiff::Timestamp;
use serde_json::{Map, Value, json};
use termin_fhir::instant::format_instant;
use termin_fhir::{Issue, IssueCode, ResourceType};

/// Applies the scheduling rules to a write inside its unit of work: checks it, adjusts the
/// new body where the server owns an element, moves Slot states along, and records events.
/// `new` is `None` for a deletion; `version` is the version being written.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn guard_write(
    tx: &mut UnitOfWork,
    ctx: &Caller,
    now: Timestamp,
    resource_type: ResourceType,
    id: &str,
    version: u64,
    previous: Option<&Map<String, Value>>,
    new: Option<&mut Map<String, Value>>,
) -> Result<(), DomainError> {
    crate::compartment::check_write(ctx.context(), resource_type, id, previous, new.as_deref())?;
    crate::organisation::check_write(tx, ctx.context(), resource_type, id, previous, new.as_deref()).await?;
    match resource_type {
        ResourceType::Appointment => guard_appointment(tx, ctx, now, id, version, previous, new).await,
        ResourceType::Slot => {
            if let Some(new) = new.as_deref() {
                super::policy::check_policy_values(resource_type, new)?;
            }
            guard_slot(tx, ctx, now, id, previous, new.map(|n| &*n)).await
        }
        ResourceType::HealthcareService => {
            if let Some(new) = new {
                super::policy::check_policy_values(resource_type, new)?;
            }
            directory_changed(tx, now, resource_type, id, version).await
        }
        ResourceType::Subscription => {
            crate::subscriptions::guard_subscription(tx, ctx, now, id, version, previous, new).await
        }
        t if crate::subscriptions::DIRECTORY.contains(&t) => {
            directory_changed(tx, now, resource_type, id, version).await
        }
        _ => Ok(()),
    }
}

/// Every directory write is an outbox event, so Subscriptions to `directory-changed` (a
/// platform's cache) hear of it.
async fn directory_changed(
    tx: &mut UnitOfWork,
    now: Timestamp,
    resource_type: ResourceType,
    id: &str,
    version: u64,
) -> Result<(), DomainError> {
    record_event(tx, crate::subscriptions::DIRECTORY_CHANGED, resource_type, id, version, now, json!({})).await
}

/// The access digest of an anonymous booking is the server's: a write keeps the stored one
/// (staff editing the Appointment do not cut its booker off), and only an anonymous `$book`
/// brings a new one.
fn keep_access_digest(ctx: &Caller, previous: Option<&Map<String, Value>>, new: Option<&mut Map<String, Value>>) {
    let Some(new) = new else {
        return;
    };
    let kept = match previous {
        Some(previous) => access::stored_digest(previous).map(str::to_owned),
        None if ctx.public_booking() == Some(&PublicBooking::Book) => access::stored_digest(new).map(str::to_owned),
        None => None,
    };
    access::set_digest(new, kept.as_deref());
}

/// An anonymous caller holding an Appointment's access secret reads, cancels or moves that
/// Appointment only (its patients are fixed for everyone: [`check_unchangeable`]).
fn check_opened(id: &str, opened: &str, new: Option<&Map<String, Value>>) -> Result<(), DomainError> {
    match new {
        Some(_) if id == opened => Ok(()),
        _ => Err(DomainError::forbidden(format!(
            "The access secret opens Appointment/{opened} for reading, cancelling and moving only"
        ))),
    }
}

async fn guard_appointment(
    tx: &mut UnitOfWork,
    ctx: &Caller,
    now: Timestamp,
    id: &str,
    version: u64,
    previous: Option<&Map<String, Value>>,
    mut new: Option<&mut Map<String, Value>>,
) -> Result<(), DomainError> {
    if let (Some(previous), Some(new)) = (previous, new.as_deref()) {
        check_unchangeable(previous, new)?;
    }
    if let Some(PublicBooking::Appointment(opened)) = ctx.public_booking() {
        check_opened(id, opened, new.as_deref())?;
    }
    keep_access_digest(ctx, previous, new.as_deref_mut());
    // Staff confirm pending bookings; a patient's token (or an anonymous booker) may only
    // decline (cancel) its own.
    if let (Some(previous), Some(new)) = (previous, new.as_deref())
        && model::status(previous) == Some("pending")
        && model::status(new) == Some("booked")
        && (ctx.is_patient_token() || ctx.public_booking().is_some())
    {
        return Err(DomainError::forbidden(
            "A pending booking is confirmed by staff or an integration (user/ or system/ scopes), not by a patient's token",
        ));
    }
    let was_cancelled = previous.is_some_and(is_cancelled);
    // A patient's client frees booked time only before the cancellation deadline, whether it
    // cancels (`cancelled` or `entered-in-error`), deletes, or moves the Appointment.
    if let Some(previous) = previous.filter(|p| occupies_slots(p))
        && ctx.acts_for_patient()
    {
        let release = match new.as_deref() {
            None => Some(Release::Delete),
            Some(new) if is_cancelled(new) => Some(Release::Cancel),
            Some(new) if occupies_slots(new) && slot_ids(previous).iter().any(|s| !slot_ids(new).contains(s)) => {
                Some(Release::Move)
            }
            Some(_) => None,
        };
        if let Some(release) = release {
            check_cancellation_deadline(tx, now, id, previous, release).await?;
        }
    }
    if let Some(new) = new.as_deref_mut()
        && is_cancelled(new)
        && !was_cancelled
    {
        // The server records when the cancellation happened.
        new.insert("cancellationDate".into(), json!(format_instant(now)));
    }
    let held: Vec<String> = previous.filter(|p| occupies_slots(p)).map(slot_ids).unwrap_or_default();
    let wanted: Vec<String> = new.as_deref().filter(|n| occupies_slots(n)).map(slot_ids).unwrap_or_default();
    let released: Vec<&String> = held.iter().filter(|s| !wanted.contains(s)).collect();
    let taken: Vec<&String> = wanted.iter().filter(|s| !held.contains(s)).collect();
    if previous.is_some()
        && !taken.is_empty()
        && let Some(new) = new.as_deref()
    {
        check_move(tx, ctx, now, new, &taken).await?;
    }
    // Take the new slots first: if one is unavailable nothing has been released yet, and the
    // whole unit of work is dropped.
    let deadline = match (&taken[..], new.as_deref()) {
        ([], _) | (_, None) => None,
        (_, Some(new)) => booking_deadline(tx, new, &wanted).await?,
    };
    for slot_id in &taken {
        take_slot(tx, ctx, now, slot_id, AppointmentId(id), deadline).await?;
    }
    for slot_id in &released {
        release_slot(tx, now, slot_id, AppointmentId(id)).await?;
    }
    if let (Some(previous), Some(new)) = (previous, new.as_deref_mut())
        && occupies_slots(new)
        && moves(previous, new)
    {
        align_times_with_slots(tx, previous, new, &wanted).await?;
    }
    let kind = appointment_event(previous, new.as_deref(), !taken.is_empty() && !held.is_empty());
    let detail = json!({
        "status": new.as_deref().and_then(model::status),
        "previousStatus": previous.and_then(model::status),
        "slotsTaken": taken,
        "slotsReleased": released,
        // Who made the change, for those told of it (e-mail says who cancelled).
        "by": if ctx.acts_for_patient() { "patient" } else { "practice" },
    });
    record_event(tx, kind, ResourceType::Appointment, id, version, now, detail).await
}

/// An Appointment moved to other slots keeps to the rules of `$book`: its slots are named
/// once, of one Schedule and contiguous, and a patient's client takes no slot that has started.
/// (Creating an Appointment with slots, as imports do, is taken as written.)
async fn check_move(
    tx: &mut UnitOfWork,
    ctx: &Caller,
    now: Timestamp,
    new: &Map<String, Value>,
    taken: &[&String],
) -> Result<(), DomainError> {
    let positions = slot_positions(new)?;
    let mut bodies = Vec::with_capacity(positions.len());
    for (position, id) in &positions {
        // A slot that does not exist is reported when it is taken.
        if let Some((_, body)) = tx.read_live(ResourceType::Slot, id).await? {
            bodies.push((*position, id.as_str(), body));
        }
    }
    let named: Vec<NamedSlot<'_>> =
        bodies.iter().map(|(position, id, body)| NamedSlot { position: *position, id, body }).collect();
    let not_started: Vec<&str> =
        if ctx.acts_for_patient() { taken.iter().map(|id| id.as_str()).collect() } else { Vec::new() };
    check_sequence(&named, &not_started, now)
}

fn appointment_event(
    previous: Option<&Map<String, Value>>,
    new: Option<&Map<String, Value>>,
    moved: bool,
) -> &'static str {
    match (previous, new) {
        (_, None) => "appointment-deleted",
        (None, Some(_)) => "appointment-created",
        (Some(p), Some(n)) if is_cancelled(n) && !is_cancelled(p) => "appointment-cancelled",
        (Some(p), Some(n)) if model::status(p) == Some("pending") && model::status(n) == Some("booked") => {
            "appointment-confirmed"
        }
        (Some(p), Some(n))
            if moved
                || model::instant(p, "start") != model::instant(n, "start")
                || model::instant(p, "end") != model::instant(n, "end") =>
        {
            "appointment-postponed"
        }
        _ => "appointment-updated",
    }
}

/// Whether an update moves the appointment: other slots or other times.
fn moves(previous: &Map<String, Value>, new: &Map<String, Value>) -> bool {
    slot_ids(previous) != slot_ids(new)
        || model::instant(previous, "start") != model::instant(new, "start")
        || model::instant(previous, "end") != model::instant(new, "end")
}

/// A moved appointment's start and end must span its slots exactly, so that times and slots
/// cannot drift apart. When only the slots change, the times follow them; times changed
/// without the slots to match are refused. Imported appointments are taken as written.
async fn align_times_with_slots(
    tx: &mut UnitOfWork,
    previous: &Map<String, Value>,
    appointment: &mut Map<String, Value>,
    slots: &[String],
) -> Result<(), DomainError> {
    let mut span: Option<((Timestamp, Value), (Timestamp, Value))> = None;
    for slot_id in slots {
        let Some((_, slot)) = tx.read_live(ResourceType::Slot, slot_id).await? else {
            continue;
        };
        let (Some(start), Some(end)) = (model::instant(&slot, "start"), model::instant(&slot, "end")) else {
            continue;
        };
        let (first, last) = span.get_or_insert_with(|| ((start, slot["start"].clone()), (end, slot["end"].clone())));
        if start < first.0 {
            *first = (start, slot["start"].clone());
        }
        if end > last.0 {
            *last = (end, slot["end"].clone());
        }
    }
    let Some(((start, start_text), (end, end_text))) = span else {
        return Ok(());
    };
    let times_kept = model::instant(previous, "start") == model::instant(appointment, "start")
        && model::instant(previous, "end") == model::instant(appointment, "end");
    if times_kept && slot_ids(previous) != slot_ids(appointment) {
        appointment.insert("start".into(), start_text);
        appointment.insert("end".into(), end_text);
        if appointment.contains_key("minutesDuration") {
            appointment.insert("minutesDuration".into(), json!((end - start).as_mins()));
        }
        return Ok(());
    }
    for (element, expected) in [("start", start), ("end", end)] {
        if model::instant(appointment, element) != Some(expected) {
            return Err(DomainError::unprocessable(
                Issue::error(
                    IssueCode::BusinessRule,
                    format!(
                        "Appointment.{element} must be {} to agree with its slots; to move the appointment, \
                         change its slots (the times follow) or both together",
                        format_instant(expected)
                    ),
                )
                .at(format!("Appointment.{element}")),
            ));
        }
    }
    Ok(())
}

/// The patient, the subject and the service of an Appointment never change (IG rule).
fn check_unchangeable(previous: &Map<String, Value>, new: &Map<String, Value>) -> Result<(), DomainError> {
    if is_cancelled(previous) {
        return Err(DomainError::unprocessable(
            Issue::error(IssueCode::BusinessRule, "A cancelled Appointment cannot be changed").at("Appointment.status"),
        ));
    }
    let fixed = [
        ("subject", "Appointment.subject", "the subject (patient)"),
        ("serviceType", "Appointment.serviceType", "the service type"),
    ];
    for (element, path, what) in fixed {
        if previous.get(element) != new.get(element) {
            return Err(DomainError::unprocessable(
                Issue::error(IssueCode::BusinessRule, format!("An Appointment's {what} cannot be changed")).at(path),
            ));
        }
    }
    if model::patient_participants(previous) != model::patient_participants(new) {
        return Err(DomainError::unprocessable(
            Issue::error(IssueCode::BusinessRule, "The participating Patient of an Appointment cannot be changed")
                .at("Appointment.participant.actor"),
        ));
    }
    Ok(())
}

/// Why a slot cannot be taken, or `None` if the caller may take it.
pub(crate) async fn slot_unavailability(
    tx: &mut UnitOfWork,
    ctx: &Caller,
    now: Timestamp,
    slot_id: &str,
    booking_for: Option<AppointmentId<'_>>,
) -> Result<Option<String>, DomainError> {
    let Some((_, slot)) = tx.read_live(ResourceType::Slot, slot_id).await? else {
        return Ok(Some(format!("Slot/{slot_id} does not exist")));
    };
    let slot_state = SlotState::read(tx, slot_id, model::status(&slot), now).await?;
    if slot_state.booking().is_some_and(|holder| Some(holder) != booking_for.map(|a| a.0)) {
        return Ok(Some(format!("Slot/{slot_id} is already booked")));
    }
    if let Some(hold) = slot_state.live_hold()
        && !ctx.owns_hold(hold)
    {
        return Ok(Some(format!("Slot/{slot_id} is held by another client until {}", format_instant(hold.held_until))));
    }
    match slot_state.is_open() {
        true => Ok(None),
        false => Ok(Some(format!("Slot/{slot_id} is {}", slot_state.status()))),
    }
}

/// Books the slot for the Appointment, recording the cancellation deadline of its policy.
async fn take_slot(
    tx: &mut UnitOfWork,
    ctx: &Caller,
    now: Timestamp,
    slot_id: &str,
    appointment: AppointmentId<'_>,
    cancel_deadline: Option<Timestamp>,
) -> Result<(), DomainError> {
    if let Some(reason) = slot_unavailability(tx, ctx, now, slot_id, Some(appointment)).await? {
        return Err(DomainError::conflict(Issue::error(IssueCode::Conflict, reason).at("Appointment.slot")));
    }
    let (slot, body) = tx
        .read_live(ResourceType::Slot, slot_id)
        .await?
        .ok_or_else(|| DomainError::Internal(format!("Slot/{slot_id} vanished")))?;
    if tx.slot_booking(slot_id).await?.is_none() {
        tx.put_slot_booking(SlotId(slot_id), appointment, cancel_deadline).await?;
    }
    tx.delete_hold(slot_id).await?;
    if model::status(&body) != Some(state::BOOKED) {
        set_slot_status(tx, &slot, body, state::BOOKED, now).await?;
    }
    Ok(())
}

async fn release_slot(
    tx: &mut UnitOfWork,
    now: Timestamp,
    slot_id: &str,
    appointment: AppointmentId<'_>,
) -> Result<(), DomainError> {
    if tx.slot_booking(slot_id).await?.as_deref() != Some(appointment.0) {
        return Ok(());
    }
    tx.delete_slot_booking(slot_id).await?;
    if let Some((slot, body)) = tx.read_live(ResourceType::Slot, slot_id).await?
        && model::status(&body) == Some(state::BOOKED)
    {
        let version = slot.version + 1;
        set_slot_status(tx, &slot, body, state::FREE, now).await?;
        record_event(
            tx,
            "slot-freed",
            ResourceType::Slot,
            slot_id,
            version,
            now,
            json!({"appointment": format!("Appointment/{}", appointment.0)}),
        )
        .await?;
    }
    Ok(())
}

/// A Slot does not end before it starts, and a bookable Slot that has not ended may not overlap another
/// bookable Slot of its Schedule (409), or two patients could book one provider at one time.
/// Checked when the period, Schedule or bookability changes, so that Slots stored before the
/// rule (or ended ones) can still be edited.
async fn check_period(
    tx: &mut UnitOfWork,
    now: Timestamp,
    id: &str,
    previous: Option<&Map<String, Value>>,
    new: &Map<String, Value>,
) -> Result<(), DomainError> {
    if let (Some(start), Some(end)) = (model::instant(new, "start"), model::instant(new, "end"))
        && end < start
    {
        return Err(DomainError::unprocessable(
            Issue::error(IssueCode::BusinessRule, "Slot.end cannot be before Slot.start").at("Slot.end"),
        ));
    }
    let Some(period) = termin_search::slot_period(new) else {
        return Ok(());
    };
    if period.2 <= now || previous.and_then(termin_search::slot_period).as_ref() == Some(&period) {
        return Ok(());
    }
    // The Schedule's row lock makes writers of its Slots take turns (PostgreSQL, several nodes).
    if let Some(schedule_id) = model::schedule_id(new) {
        tx.read_current(ResourceType::Schedule, &schedule_id).await?;
    }
    let (param, start, end) = period;
    let other = match tx.known_overlap(&param, (start, end), id) {
        Some(known) => known,
        None => tx.overlapping(ResourceType::Slot, &param, (start, end), id, 1).await?.into_iter().next(),
    };
    if let Some(other) = other {
        return Err(DomainError::conflict(
            Issue::error(
                IssueCode::Conflict,
                format!(
                    "The Slot ({} to {}) overlaps Slot/{other} of the same Schedule; bookable Slots of one \
                     Schedule may not overlap (staff block time with busy-unavailable)",
                    format_instant(start),
                    format_instant(end)
                ),
            )
            .at("Slot.start"),
        ));
    }
    Ok(())
}

/// Direct writes of a Slot may not contradict its booking or hold.
async fn guard_slot(
    tx: &mut UnitOfWork,
    ctx: &Caller,
    now: Timestamp,
    id: &str,
    previous: Option<&Map<String, Value>>,
    new: Option<&Map<String, Value>>,
) -> Result<(), DomainError> {
    if let Some(new) = new {
        check_period(tx, now, id, previous, new).await?;
    }
    let slot_state = SlotState::read(tx, id, previous.and_then(model::status), now).await?;
    let live_hold = slot_state.live_hold();
    let Some(new) = new else {
        if let Some(appointment) = slot_state.booking() {
            return Err(DomainError::conflict(
                Issue::error(
                    IssueCode::Conflict,
                    format!("Slot/{id} is booked by Appointment/{appointment}; cancel the appointment first"),
                )
                .at("Slot"),
            ));
        }
        // Only staff (the system principal) may delete a slot someone holds.
        if let Some(hold) = live_hold
            && ctx.acts_for_patient()
        {
            return Err(DomainError::conflict(
                Issue::error(
                    IssueCode::Conflict,
                    format!(
                        "Slot/{id} is held until {}; it cannot be deleted while the hold lasts",
                        format_instant(hold.held_until)
                    ),
                )
                .at("Slot"),
            ));
        }
        if slot_state.recorded_hold().is_some() {
            tx.delete_hold(id).await?;
        }
        return Ok(());
    };
    let status = model::status(new).unwrap_or_default();
    if let Some(appointment) = slot_state.booking() {
        let same = |element: &str| previous.and_then(|p| p.get(element)) == new.get(element);
        if status != state::BOOKED || !same("start") || !same("end") || !same("schedule") {
            return Err(DomainError::conflict(
                Issue::error(
                    IssueCode::Conflict,
                    format!(
                        "Slot/{id} is booked by Appointment/{appointment}: its status must stay busy and its \
                         schedule, start and end cannot change while the booking stands"
                    ),
                )
                .at("Slot.status"),
            ));
        }
        return Ok(());
    }
    if let Some(hold) = live_hold {
        if status != state::HELD {
            return Err(DomainError::conflict(
                Issue::error(
                    IssueCode::Conflict,
                    format!(
                        "Slot/{id} is held until {}; the holder releases it with $hold (slot-status free)",
                        format_instant(hold.held_until)
                    ),
                )
                .at("Slot.status"),
            ));
        }
        return Ok(());
    }
    if matches!(status, state::BOOKED | state::HELD) {
        return Err(DomainError::unprocessable(
            Issue::error(
                IssueCode::BusinessRule,
                format!(
                    "A Slot becomes {status} only through scheduling: $hold places holds and booking an \
                     Appointment makes slots busy; staff block time with busy-unavailable"
                ),
            )
            .at("Slot.status"),
        ));
    }
    if slot_state.recorded_hold().is_some() {
        tx.delete_hold(id).await?;
    }
    Ok(())
}
