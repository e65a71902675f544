//! The AT cancellation policy: `cancelUntil` (a Duration before the appointment's start) on
//! the Slot or the HealthcareService, enforced for patients' clients.

use crate::model;
use crate::DomainError;
use crate::unit_of_work::UnitOfWork;
use jiff::{SignedDuration, Timestamp};
use serde_json::{Map, Value};
use termin_fhir::instant::format_instant;
use termin_fhir::{Issue, IssueCode, ResourceType};

pub const CANCELLATION_POLICY_URL: &str =
    "https://fhir.hl7.at/tc/wg/scheduling/r5/StructureDefinition/at-scheduling-ext-cancellationPolicy";
/// The same extension under the older canonical base used by the IG's XML examples.
const CANCELLATION_POLICY_URL_OLD: &str =
    "http://hl7.at/fhir/TC-FHIR-AG-Scheduling-R5/R5/StructureDefinition/at-scheduling-ext-cancellationPolicy";

/// The longest `cancelUntil` a policy may state: a year before the start.
pub const MAX_CANCEL_UNTIL: SignedDuration = SignedDuration::from_hours(365 * 24);

/// Seconds per UCUM time unit; calendar units (`mo`, `a`) are not fixed lengths and are not
/// accepted.
fn unit_seconds(unit: &str) -> Option<f64> {
    match unit {
        "s" => Some(1.0),
        "min" => Some(60.0),
        "h" => Some(3600.0),
        "d" => Some(86_400.0),
        "wk" => Some(604_800.0),
        _ => None,
    }
}

/// The amount and unit of a Duration as written, the amount only when it is a finite number.
fn amount_and_unit(value: &Value) -> (Option<f64>, Option<&str>) {
    let amount = value.get("value").and_then(Value::as_f64).filter(|a| a.is_finite());
    let unit = value.get("code").or_else(|| value.get("unit")).and_then(Value::as_str);
    (amount, unit)
}

/// Why a written `cancelUntil` Duration cannot be enforced, or `None` when it is fine.
fn duration_problem(value: &Value) -> Option<String> {
    let (amount, unit) = amount_and_unit(value);
    let Some(seconds) = unit.and_then(unit_seconds) else {
        return Some("cancelUntil needs a fixed time unit: s, min, h, d or wk".into());
    };
    let Some(amount) = amount else {
        return Some("cancelUntil needs a numeric value".into());
    };
    if amount < 0.0 {
        return Some("cancelUntil cannot be negative".into());
    }
    if amount * seconds > MAX_CANCEL_UNTIL.as_secs_f64() {
        return Some("cancelUntil can be at most 365 d (one year) before the start".into());
    }
    None
}

/// A stored `cancelUntil` as a duration, read safely whatever was stored before values were
/// checked on write: negative values count as zero, values too large for a duration as the
/// largest one. Units that are not fixed lengths are ignored.
fn duration(value: &Value) -> Option<(SignedDuration, String)> {
    let (amount, unit) = amount_and_unit(value);
    let (amount, unit) = (amount?, unit?);
    let seconds = amount.max(0.0) * unit_seconds(unit)?;
    let before = SignedDuration::try_from_secs_f64(seconds).unwrap_or(SignedDuration::MAX);
    Some((before, format!("{} {unit}", value.get("value")?)))
}

/// The `cancelUntil` Durations a resource declares, with their FHIRPath location.
fn cancel_until_values(resource: &Map<String, Value>) -> Vec<(String, &Value)> {
    let mut found = Vec::new();
    let extensions = resource.get("extension").and_then(Value::as_array).into_iter().flatten();
    for (i, policy) in extensions.enumerate() {
        let url = policy.get("url").and_then(Value::as_str);
        if url != Some(CANCELLATION_POLICY_URL) && url != Some(CANCELLATION_POLICY_URL_OLD) {
            continue;
        }
        let parts = policy.get("extension").and_then(Value::as_array).into_iter().flatten();
        for (j, part) in parts.enumerate() {
            if part.get("url").and_then(Value::as_str) == Some("cancelUntil")
                && let Some(value) = part.get("valueDuration")
            {
                found.push((format!("extension[{i}].extension[{j}].valueDuration"), value));
            }
        }
    }
    found
}

/// The `cancelUntil` durations a resource declares.
fn cancel_until(resource: &Map<String, Value>) -> Vec<(SignedDuration, String)> {
    cancel_until_values(resource).into_iter().filter_map(|(_, value)| duration(value)).collect()
}

/// Rejects a written cancellation policy that cannot be enforced as stated (422).
pub fn check_policy_values(resource_type: ResourceType, resource: &Map<String, Value>) -> Result<(), DomainError> {
    for (path, value) in cancel_until_values(resource) {
        if let Some(problem) = duration_problem(value) {
            return Err(DomainError::unprocessable(
                Issue::error(IssueCode::Value, format!("{problem}; got {value}")).at(format!("{resource_type}.{path}")),
            ));
        }
    }
    Ok(())
}

/// The last moment a cancellation is allowed, `before` ahead of `start`; a deadline before
/// the earliest representable instant clamps to it (no cancellation is then in time).
fn deadline(start: Timestamp, before: SignedDuration) -> Timestamp {
    start.checked_sub(before).unwrap_or(Timestamp::MIN)
}

/// The strictest `cancelUntil` the current policies of the slots and of the Appointment's
/// HealthcareServices state, with where it comes from.
async fn strictest_policy(
    tx: &mut UnitOfWork,
    appointment: &Map<String, Value>,
    slot_ids: &[String],
) -> Result<Option<((SignedDuration, String), String)>, DomainError> {
    let mut policies = Vec::new();
    for slot_id in slot_ids {
        if let Some((_, slot)) = tx.read_live(ResourceType::Slot, slot_id).await? {
            policies.extend(cancel_until(&slot).into_iter().map(|p| (p, format!("Slot/{slot_id}"))));
        }
    }
    let services = appointment.get("serviceType").and_then(Value::as_array).into_iter().flatten();
    for reference in services.filter_map(|s| s.get("reference")?.get("reference")?.as_str()) {
        if let Some(id) = model::reference_id(reference, ResourceType::HealthcareService)
            && let Some((_, service)) = tx.read_live(ResourceType::HealthcareService, &id).await?
        {
            policies.extend(cancel_until(&service).into_iter().map(|p| (p, format!("HealthcareService/{id}"))));
        }
    }
    Ok(policies.into_iter().max_by_key(|((before, _), _)| *before))
}

/// The cancellation deadline to record when an Appointment books `slot_ids`: the strictest
/// current policy, counted back from the earliest slot start.
pub async fn booking_deadline(
    tx: &mut UnitOfWork,
    appointment: &Map<String, Value>,
    slot_ids: &[String],
) -> Result<Option<Timestamp>, DomainError> {
    let mut start = None;
    for slot_id in slot_ids {
        if let Some((_, slot)) = tx.read_live(ResourceType::Slot, slot_id).await?
            && let Some(slot_start) = model::instant(&slot, "start")
        {
            start = Some(start.map_or(slot_start, |s: Timestamp| s.min(slot_start)));
        }
    }
    let Some(start) = start.or_else(|| model::instant(appointment, "start")) else {
        return Ok(None);
    };
    let policy = strictest_policy(tx, appointment, slot_ids).await?;
    Ok(policy.map(|((before, _), _)| deadline(start, before)))
}

/// What a patient's client does to a booked Appointment that the cancellation policy governs:
/// each frees the booked time, as a cancellation does.
#[derive(Debug, Clone, Copy)]
pub enum Release {
    Cancel,
    Delete,
    Move,
}

impl Release {
    fn verb(self) -> &'static str {
        match self {
            Release::Cancel => "cancelling",
            Release::Delete => "deleting",
            Release::Move => "moving",
        }
    }

    fn expression(self) -> &'static str {
        match self {
            Release::Cancel => "Appointment.status",
            Release::Delete => "Appointment",
            Release::Move => "Appointment.slot",
        }
    }
}

/// Rejects releasing the booked Appointment `appointment_id` (its stored body `appointment`)
/// after the strictest deadline: the one recorded when its slots were booked, or the one its
/// current policies set, whichever is earlier (a policy changed or removed since booking
/// cannot loosen it).
pub async fn check_cancellation_deadline(
    tx: &mut UnitOfWork,
    now: Timestamp,
    appointment_id: &str,
    appointment: &Map<String, Value>,
    release: Release,
) -> Result<(), DomainError> {
    let slot_ids = model::slot_ids(appointment);
    let mut strictest: Option<(Timestamp, String)> = None;
    let mut consider = |deadline: Timestamp, why: String| {
        if strictest.as_ref().is_none_or(|(known, _)| deadline < *known) {
            strictest = Some((deadline, why));
        }
    };
    if let Some(start) = model::instant(appointment, "start")
        && let Some(((before, text), source)) = strictest_policy(tx, appointment, &slot_ids).await?
    {
        consider(
            deadline(start, before),
            format!("The cancellation policy of {source} allows {} until {text} before the start ({})", release.verb(), format_instant(start)),
        );
    }
    for slot_id in &slot_ids {
        if tx.slot_booking(slot_id).await?.as_deref() == Some(appointment_id)
            && let Some(recorded) = tx.booking_cancel_deadline(slot_id).await?
        {
            consider(
                recorded,
                format!("The cancellation policy in force when Slot/{slot_id} was booked allows {} until then", release.verb()),
            );
        }
    }
    match strictest {
        Some((deadline, why)) if now > deadline => Err(DomainError::unprocessable(
            Issue::error(IssueCode::BusinessRule, format!("{why}; the deadline was {}", format_instant(deadline)))
                .at(release.expression()),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_cancel_until_in_fixed_units() {
        let Value::Object(slot) = json!({"extension": [{
            "url": CANCELLATION_POLICY_URL,
            "extension": [{"url": "cancelUntil", "valueDuration": {"value": 24, "unit": "h", "system": "http://unitsofmeasure.org", "code": "h"}}]
        }]}) else { unreachable!() };
        let policies = cancel_until(&slot);
        assert_eq!(policies.len(), 1);
        assert_eq!(policies[0].0, SignedDuration::from_hours(24));
        assert_eq!(policies[0].1, "24 h");
        assert!(duration(&json!({"value": 1, "code": "mo"})).is_none());
    }

    #[test]
    fn written_values_out_of_range_are_refused() {
        for bad in [
            json!({"value": 99999999999999999_u64, "code": "wk"}),
            json!({"value": 1e300, "code": "s"}),
            json!({"value": 1e18, "code": "s"}),
            json!({"value": -1, "code": "h"}),
            json!({"value": "NaN", "code": "h"}),
            json!({"value": 366, "code": "d"}),
            json!({"value": 1, "code": "mo"}),
            json!({"value": 1}),
        ] {
            assert!(duration_problem(&bad).is_some(), "{bad} accepted");
        }
        for good in [json!({"value": 0, "code": "s"}), json!({"value": 365, "code": "d"}), json!({"value": 1.5, "unit": "h"})] {
            assert_eq!(duration_problem(&good), None, "{good}");
        }
        let Value::Object(slot) = json!({"extension": [{"url": "urn:other"}, {
            "url": CANCELLATION_POLICY_URL,
            "extension": [{"url": "note", "valueString": "x"}, {"url": "cancelUntil", "valueDuration": {"value": -3, "code": "d"}}]
        }]}) else { unreachable!() };
        let DomainError::Unprocessable(outcome) = check_policy_values(ResourceType::Slot, &slot).unwrap_err() else {
            panic!("not a 422")
        };
        assert_eq!(outcome.issues[0].expression, ["Slot.extension[1].extension[1].valueDuration"]);
    }

    #[test]
    fn stored_values_out_of_range_read_safely() {
        let start: Timestamp = "2026-03-10T09:00:00Z".parse().unwrap();
        for huge in [json!({"value": 99999999999999999_u64, "code": "wk"}), json!({"value": 1e300, "code": "s"}), json!({"value": 1e18, "code": "s"})] {
            let (before, _) = duration(&huge).unwrap();
            assert_eq!(deadline(start, before), Timestamp::MIN, "{huge}");
        }
        let (before, text) = duration(&json!({"value": -5, "code": "h"})).unwrap();
        assert_eq!((before, text.as_str()), (SignedDuration::ZERO, "-5 h"));
        assert_eq!(deadline(start, before), start);
    }
}
