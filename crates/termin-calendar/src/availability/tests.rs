use super::*;
use crate::{local_text, vienna};
use jiff::civil::date;
use serde_json::json;

fn half_hours() -> SlotPattern {
    SlotPattern::new(SignedDuration::from_mins(30), SignedDuration::ZERO).unwrap()
}

fn texts(slots: &[(Timestamp, Timestamp)]) -> Vec<String> {
    let zone = vienna();
    slots.iter().map(|(start, _)| local_text(&zone, *start)).collect()
}

fn night_hours() -> Availability {
    Availability::read([&json!({"availableTime": [{"availableStartTime": "01:30:00", "availableEndTime": "03:30:00"}]})]).unwrap()
}

#[test]
fn the_spring_change_skips_the_missing_hour() {
    let day = date(2027, 3, 28);
    let slots = night_hours().slots(&vienna(), day, day, half_hours(), false);
    assert_eq!(texts(&slots), ["2027-03-28T01:30:00+01:00", "2027-03-28T03:00:00+02:00"]);
}

#[test]
fn the_autumn_change_gives_the_repeated_hour_once() {
    let day = date(2027, 10, 31);
    let slots = night_hours().slots(&vienna(), day, day, half_hours(), false);
    assert_eq!(
        texts(&slots),
        ["2027-10-31T01:30:00+02:00", "2027-10-31T02:00:00+02:00", "2027-10-31T02:30:00+02:00", "2027-10-31T03:00:00+01:00"]
    );
    assert!(slots.windows(2).all(|pair| pair[0].1 <= pair[1].0), "no overlaps");
}

#[test]
fn opening_hours_keep_their_local_time_across_the_change() {
    let hours = Availability::read([&json!({"availableTime": [{"daysOfWeek": ["fri", "tue"], "availableStartTime": "08:00:00", "availableEndTime": "09:00:00"}]})]).unwrap();
    let slots = hours.slots(&vienna(), date(2027, 3, 26), date(2027, 3, 30), half_hours(), false);
    assert_eq!(
        texts(&slots),
        ["2027-03-26T08:00:00+01:00", "2027-03-26T08:30:00+01:00", "2027-03-30T08:00:00+02:00", "2027-03-30T08:30:00+02:00"]
    );
}

#[test]
fn holidays_and_closures_remove_whole_days_or_periods() {
    let hours = Availability::read([&json!({
        "availableTime": [{"availableStartTime": "08:00:00", "availableEndTime": "10:00:00"}],
        "notAvailableTime": [
            {"description": "Fortbildung", "during": {"start": "2027-03-30", "end": "2027-03-30"}},
            {"during": {"start": "2027-03-31T08:30:00+02:00", "end": "2027-03-31T09:30:00+02:00"}}
        ]
    })])
    .unwrap();
    // Easter Monday 2027-03-29 is a public holiday.
    let with_holidays = hours.slots(&vienna(), date(2027, 3, 29), date(2027, 3, 31), half_hours(), true);
    assert_eq!(texts(&with_holidays), ["2027-03-31T08:00:00+02:00", "2027-03-31T09:30:00+02:00"]);
    let without = hours.slots(&vienna(), date(2027, 3, 29), date(2027, 3, 29), half_hours(), false);
    assert_eq!(without.len(), 4);
}

#[test]
fn gaps_and_all_day_hours() {
    let hours = Availability::read([&json!({"availableTime": [{"daysOfWeek": ["mon"], "allDay": true}]})]).unwrap();
    let pattern = SlotPattern::new(SignedDuration::from_hours(5), SignedDuration::from_hours(1)).unwrap();
    let slots = hours.slots(&vienna(), date(2027, 1, 4), date(2027, 1, 10), pattern, false);
    assert_eq!(texts(&slots), ["2027-01-04T00:00:00+01:00", "2027-01-04T06:00:00+01:00", "2027-01-04T12:00:00+01:00", "2027-01-04T18:00:00+01:00"]);
}

#[test]
fn overlapping_hours_give_no_overlapping_slots() {
    let hours = Availability::read([&json!({"availableTime": [
        {"availableStartTime": "08:00:00", "availableEndTime": "09:00:00"},
        {"availableStartTime": "08:15:00", "availableEndTime": "09:45:00"}
    ]})])
    .unwrap();
    let day = date(2027, 1, 4);
    let slots = hours.slots(&vienna(), day, day, half_hours(), false);
    assert_eq!(texts(&slots), ["2027-01-04T08:00:00+01:00", "2027-01-04T08:30:00+01:00", "2027-01-04T09:15:00+01:00"]);
}

#[test]
fn bad_rules_name_the_element() {
    let problem = |rules: Value| Availability::read([&rules]).unwrap_err();
    assert!(problem(json!({"availableTime": [{"daysOfWeek": ["monday"]}]})).starts_with("availableTime[0].daysOfWeek"));
    assert!(problem(json!({"availableTime": [{"availableStartTime": "10:00:00", "availableEndTime": "09:00:00"}]}))
        .starts_with("availableTime[0].availableEndTime"));
    assert!(problem(json!({"notAvailableTime": [{"during": {"start": "2027-03"}}]})).starts_with("notAvailableTime[0].during.start"));
    assert!(SlotPattern::new(SignedDuration::ZERO, SignedDuration::ZERO).is_none());
}
