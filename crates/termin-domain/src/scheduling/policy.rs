//! The AT cancellation policy: `cancelUntil` (a Duration before the appointment's start) on
//! the Slot or the HealthcareService, enforced for patients' clients.

use super::{model, read_live};
use crate::DomainError;
use jiff::{SignedDuration, Timestamp};
use serde_json::{Map, Value};
use termin_fhir::instant::format_instant;
use termin_fhir::{Issue, IssueCode, ResourceType};
use termin_store::WriteTx;

pub const CANCELLATION_POLICY_URL: &str =
    "https://fhir.hl7.at/tc/wg/scheduling/r5/StructureDefinition/at-scheduling-ext-cancellationPolicy";
/// The same extension under the older canonical base used by the IG's XML examples.
const CANCELLATION_POLICY_URL_OLD: &str =
    "http://hl7.at/fhir/TC-FHIR-AG-Scheduling-R5/R5/StructureDefinition/at-scheduling-ext-cancellationPolicy";

/// A UCUM time Duration as a signed duration; calendar units are not fixed lengths and are
/// not accepted (`mo`, `a`).
fn duration(value: &Value) -> Option<(SignedDuration, String)> {
    let amount = value.get("value")?.as_f64()?;
    let unit = value.get("code").or_else(|| value.get("unit")).and_then(Value::as_str)?;
    let seconds = match unit {
        "s" => 1.0,
        "min" => 60.0,
        "h" => 3600.0,
        "d" => 86_400.0,
        "wk" => 604_800.0,
        _ => return None,
    };
    let text = format!("{} {unit}", value.get("value")?);
    Some((SignedDuration::from_secs_f64(amount * seconds), text))
}

/// The `cancelUntil` durations a resource declares.
fn cancel_until(resource: &Map<String, Value>) -> Vec<(SignedDuration, String)> {
    resource
        .get("extension")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|e| {
            let url = e.get("url").and_then(Value::as_str);
            url == Some(CANCELLATION_POLICY_URL) || url == Some(CANCELLATION_POLICY_URL_OLD)
        })
        .flat_map(|e| e.get("extension").and_then(Value::as_array).into_iter().flatten())
        .filter(|e| e.get("url").and_then(Value::as_str) == Some("cancelUntil"))
        .filter_map(|e| e.get("valueDuration").and_then(duration))
        .collect()
}

/// Rejects a cancellation after the strictest applicable deadline.
pub async fn check_cancellation_deadline(
    tx: &mut dyn WriteTx,
    now: Timestamp,
    appointment: &Map<String, Value>,
) -> Result<(), DomainError> {
    let Some(start) = model::instant(appointment, "start") else {
        return Ok(());
    };
    let mut policies = Vec::new();
    for slot_id in model::slot_ids(appointment) {
        if let Some((_, slot)) = read_live(tx, ResourceType::Slot, &slot_id).await? {
            policies.extend(cancel_until(&slot).into_iter().map(|p| (p, format!("Slot/{slot_id}"))));
        }
    }
    let services = appointment.get("serviceType").and_then(Value::as_array).into_iter().flatten();
    for reference in services.filter_map(|s| s.get("reference")?.get("reference")?.as_str()) {
        if let Some(id) = model::reference_id(reference, ResourceType::HealthcareService)
            && let Some((_, service)) = read_live(tx, ResourceType::HealthcareService, &id).await?
        {
            policies.extend(cancel_until(&service).into_iter().map(|p| (p, format!("HealthcareService/{id}"))));
        }
    }
    let strictest = policies.into_iter().max_by_key(|((before, _), _)| *before);
    if let Some(((before, text), source)) = strictest {
        let deadline = start - before;
        if now > deadline {
            return Err(DomainError::unprocessable(
                Issue::error(
                    IssueCode::BusinessRule,
                    format!(
                        "The cancellation policy of {source} allows cancelling until {text} before the start \
                         ({}); that was {}",
                        format_instant(start),
                        format_instant(deadline)
                    ),
                )
                .at("Appointment.status"),
            ));
        }
    }
    Ok(())
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
}
