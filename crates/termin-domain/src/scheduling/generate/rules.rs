//! The Schedule's slot-generation extension: slot length, gap, service types, time zone,
//! whether Austrian public holidays close the practice, and the rolling horizon the background
//! generation keeps generated.

use crate::DomainError;
use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use serde_json::{Map, Value, json};
use termin_calendar::SlotPattern;
use termin_fhir::{Issue, IssueCode};

/// Extension on a Schedule: how its Slots are generated from its actor's availability
/// (sub-extensions `slot-duration`, `gap`, `service-type`, `time-zone`, `public-holidays`,
/// `horizon`).
pub const SLOT_GENERATION_URL: &str = "https://termin.at/fhir/StructureDefinition/slot-generation";

const DEFAULT_TIME_ZONE: &str = "Europe/Vienna";

pub(super) struct GenerationRules {
    pub pattern: SlotPattern,
    pub public_holidays: bool,
    pub zone: TimeZone,
    /// `Slot.serviceType` of generated Slots; `None`: the Schedule's.
    pub service_type: Option<Value>,
    /// Whole days ahead of today the background generation keeps generated; `None`: the
    /// Schedule is generated only on request.
    pub horizon_days: Option<i32>,
}

fn extension(schedule: &Map<String, Value>) -> Option<&Value> {
    crate::model::extension(schedule, SLOT_GENERATION_URL)
}

impl GenerationRules {
    /// Whether the Schedule carries the slot-generation extension at all.
    pub fn present(schedule: &Map<String, Value>) -> bool {
        extension(schedule).is_some()
    }

    /// The Schedule's rules; `slot_length` overrides its `slot-duration`.
    pub fn read(schedule: &Map<String, Value>, slot_length: Option<SignedDuration>) -> Result<Self, DomainError> {
        let extension = extension(schedule);
        let parts: Vec<&Value> = extension
            .and_then(|e| e.get("extension"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .collect();
        let part = |name: &'static str| parts.iter().copied().filter(move |p| p.get("url").and_then(Value::as_str) == Some(name));
        let duration_of = |name: &'static str| -> Result<Option<SignedDuration>, DomainError> {
            match part(name).next().and_then(|p| p.get("valueDuration")) {
                None => Ok(None),
                Some(quantity) => read_duration(quantity).map(Some).ok_or_else(|| invalid_rule(name, "must be a Duration in min, h or d")),
            }
        };
        let length = match slot_length {
            Some(length) => length,
            None => duration_of("slot-duration")?.ok_or_else(|| {
                DomainError::unprocessable(Issue::error(
                    IssueCode::BusinessRule,
                    format!("The Schedule has no slot length: add the {SLOT_GENERATION_URL} extension with slot-duration, or pass slot-duration"),
                ))
            })?,
        };
        let gap = duration_of("gap")?.unwrap_or(SignedDuration::ZERO);
        let horizon_days = match duration_of("horizon")? {
            None => None,
            Some(horizon) => Some(horizon_days(horizon)?),
        };
        let pattern = SlotPattern::new(length, gap)
            .ok_or_else(|| invalid_rule("slot-duration", "must be positive, and the gap not negative"))?;
        let zone_name = part("time-zone").next().and_then(|p| p.get("valueCode")).and_then(Value::as_str);
        let zone = termin_calendar::zone(zone_name.unwrap_or(DEFAULT_TIME_ZONE))
            .ok_or_else(|| invalid_rule("time-zone", "must be an IANA time zone such as Europe/Vienna"))?;
        let public_holidays = part("public-holidays").next().and_then(|p| p.get("valueBoolean")).and_then(Value::as_bool);
        let service_types: Vec<Value> = part("service-type")
            .filter_map(|p| p.get("valueCodeableConcept"))
            .map(|concept| json!({"concept": concept}))
            .collect();
        Ok(GenerationRules {
            pattern,
            public_holidays: public_holidays.unwrap_or(true),
            zone,
            service_type: (!service_types.is_empty()).then(|| Value::Array(service_types)),
            horizon_days,
        })
    }

    /// 00:00 of `day` in the rules' zone (or the first instant after, should midnight be skipped).
    pub fn local_midnight(&self, day: Date) -> Timestamp {
        self.zone
            .to_ambiguous_timestamp(day.to_datetime(Time::midnight()))
            .compatible()
            .unwrap_or(Timestamp::MAX)
    }
}

/// A horizon of whole days, at least one and shorter than the longest generation.
fn horizon_days(horizon: SignedDuration) -> Result<i32, DomainError> {
    const DAY: i64 = 86_400;
    let seconds = horizon.as_secs();
    let days = seconds / DAY;
    if seconds % DAY != 0 || days < 1 || days >= i64::from(super::MAX_GENERATION_DAYS) {
        let most = super::MAX_GENERATION_DAYS - 1;
        return Err(invalid_rule("horizon", &format!("must be whole days (d or wk), from 1 to {most} days")));
    }
    Ok(days as i32)
}

fn invalid_rule(part: &str, problem: &str) -> DomainError {
    DomainError::unprocessable(
        Issue::error(IssueCode::Value, format!("{SLOT_GENERATION_URL} {part} {problem}"))
            .at(format!("Schedule.extension('{SLOT_GENERATION_URL}').extension('{part}')")),
    )
}

/// A FHIR Duration (UCUM `min`, `h`, `d` or `wk`) of whole seconds.
pub fn read_duration(quantity: &Value) -> Option<SignedDuration> {
    let value = quantity.get("value")?.as_f64()?;
    let unit = quantity.get("code").or_else(|| quantity.get("unit")).and_then(Value::as_str)?;
    let seconds = match unit {
        "min" => 60.0,
        "h" => 3600.0,
        "d" => 86_400.0,
        "wk" => 604_800.0,
        _ => return None,
    } * value;
    (seconds.is_finite() && seconds.fract() == 0.0 && seconds.abs() < 1e9).then(|| SignedDuration::from_secs(seconds as i64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(parts: Value) -> Map<String, Value> {
        json!({"resourceType": "Schedule", "extension": [{"url": SLOT_GENERATION_URL, "extension": parts}]})
            .as_object()
            .cloned()
            .unwrap()
    }

    #[test]
    fn reads_the_extension() {
        let rules = GenerationRules::read(
            &schedule(json!([
                {"url": "slot-duration", "valueDuration": {"value": 20, "system": "http://unitsofmeasure.org", "code": "min"}},
                {"url": "gap", "valueDuration": {"value": 10, "code": "min"}},
                {"url": "public-holidays", "valueBoolean": false},
                {"url": "service-type", "valueCodeableConcept": {"text": "Massage"}}
            ])),
            None,
        )
        .unwrap();
        assert_eq!(rules.pattern, SlotPattern::new(SignedDuration::from_mins(20), SignedDuration::from_mins(10)).unwrap());
        assert!(!rules.public_holidays);
        assert_eq!(rules.service_type, Some(json!([{"concept": {"text": "Massage"}}])));
        assert_eq!(rules.horizon_days, None);
    }

    #[test]
    fn reads_the_horizon_in_days_or_weeks() {
        let with_horizon = |quantity: Value| {
            let length = json!({"url": "slot-duration", "valueDuration": {"value": 30, "code": "min"}});
            GenerationRules::read(&schedule(json!([length, {"url": "horizon", "valueDuration": quantity}])), None)
        };
        assert_eq!(with_horizon(json!({"value": 8, "code": "wk"})).unwrap().horizon_days, Some(56));
        assert_eq!(with_horizon(json!({"value": 10, "code": "d"})).unwrap().horizon_days, Some(10));
        for refused in [json!({"value": 36, "code": "h"}), json!({"value": 0, "code": "d"}), json!({"value": 60, "code": "wk"})] {
            assert!(matches!(with_horizon(refused.clone()), Err(DomainError::Unprocessable(_))), "{refused}");
        }
    }

    #[test]
    fn refuses_what_it_cannot_use() {
        let no_length = GenerationRules::read(&schedule(json!([])), None);
        assert!(matches!(no_length, Err(DomainError::Unprocessable(_))));
        let bad_unit = schedule(json!([{"url": "slot-duration", "valueDuration": {"value": 1, "code": "mo"}}]));
        assert!(matches!(GenerationRules::read(&bad_unit, None), Err(DomainError::Unprocessable(_))));
        let bad_zone = schedule(json!([{"url": "time-zone", "valueCode": "Mars/Olympus"}]));
        assert!(GenerationRules::read(&bad_zone, Some(SignedDuration::from_mins(30))).is_err());
        assert_eq!(read_duration(&json!({"value": 1.5, "code": "h"})), Some(SignedDuration::from_mins(90)));
    }
}
