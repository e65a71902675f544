//! An internal index row per bookable Slot: its `[start, end)` under a parameter named after
//! its Schedule, so the Slots of one Schedule that overlap a period are found in one range of
//! the date index (`search_date_by_high`), however many Slots other Schedules have. Clients
//! cannot search it: the name is no search parameter.

use termin_fhir::reference::parse_literal;
use jiff::Timestamp;
use serde_json::{Map, Value};
use termin_store::DateIndex;

/// Slot statuses whose time can be booked (now or after a hold): they must not overlap.
/// Staff blocks (`busy-unavailable`) and `entered-in-error` Slots may overlap anything.
const BOOKABLE: [&str; 3] = ["free", "busy-tentative", "busy"];

/// The index parameter holding the periods of the bookable Slots of one Schedule.
pub fn slot_period_param(schedule_id: &str) -> String {
    format!("_period:Schedule/{schedule_id}")
}

/// The parameter, start and end of a bookable Slot with a Schedule reference and a period of
/// positive length; `None` for anything else.
pub fn slot_period(slot: &Map<String, Value>) -> Option<(String, Timestamp, Timestamp)> {
    let status = slot.get("status").and_then(Value::as_str)?;
    if !BOOKABLE.contains(&status) {
        return None;
    }
    let reference = slot.get("schedule")?.get("reference")?.as_str()?;
    let schedule = parse_literal(reference).filter(|r| r.resource_type == "Schedule")?;
    let instant = |element: &str| slot.get(element)?.as_str()?.parse::<Timestamp>().ok();
    let (start, end) = (instant("start")?, instant("end")?);
    (start < end).then(|| (slot_period_param(schedule.id), start, end))
}

pub(crate) fn slot_period_row(slot: &Map<String, Value>) -> Option<DateIndex> {
    let (param, start, end) = slot_period(slot)?;
    Some(DateIndex {
        param,
        low: Some(start),
        high: Some(end),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn slot(status: &str) -> Map<String, Value> {
        let Value::Object(slot) = json!({"resourceType": "Slot", "status": status,
            "schedule": {"reference": "https://x.org/fhir/Schedule/s-1"},
            "start": "2030-01-07T09:00:00+01:00", "end": "2030-01-07T08:30:00Z"}) else { unreachable!() };
        slot
    }

    #[test]
    fn bookable_slots_have_a_period_under_their_schedule() {
        let (param, start, end) = slot_period(&slot("free")).unwrap();
        assert_eq!(param, "_period:Schedule/s-1");
        assert_eq!(start, "2030-01-07T08:00:00Z".parse::<Timestamp>().unwrap());
        assert_eq!(end, "2030-01-07T08:30:00Z".parse::<Timestamp>().unwrap());
        assert!(slot_period(&slot("busy-unavailable")).is_none());
        let mut backwards = slot("busy");
        backwards.insert("end".into(), json!("2030-01-07T08:00:00Z"));
        assert!(slot_period(&backwards).is_none());
    }
}
