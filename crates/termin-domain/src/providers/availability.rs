//! R5 `Availability` as concrete time: weekly `availableTime` patterns expanded day by day in
//! the server's time zone (DST-correct: a Vienna "08:00" is 07:00Z in winter, 06:00Z in
//! summer), minus the `notAvailableTime` periods.

use jiff::civil::{Date, Time, Weekday};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};
use serde_json::Value;
use termin_calendar::weekday;

/// A half-open interval `[start, end)` of instants.
pub type Interval = (Timestamp, Timestamp);

fn local_instant(date: Date, time: Time, zone: &TimeZone) -> Option<Timestamp> {
    date.to_datetime(time).to_zoned_datetime(zone.clone()).ok().map(|z| z.timestamp())
}

/// A FHIR date or dateTime as an instant (dates and offset-less times read in `zone`);
/// `end` reads a bare date as the end of that day.
pub fn period_bound(text: &str, zone: &TimeZone, end: bool) -> Option<Timestamp> {
    if let Ok(ts) = text.parse::<Timestamp>() {
        return Some(ts);
    }
    if let Ok(date) = text.parse::<Date>() {
        let date = if end { date.tomorrow().ok()? } else { date };
        return local_instant(date, Time::midnight(), zone);
    }
    let datetime = text.parse::<jiff::civil::DateTime>().ok()?;
    datetime.to_zoned_datetime(zone.clone()).ok().map(|z| z.timestamp())
}

/// The concrete intervals of a list of Availability values between `from` and `until`.
pub fn expand(availabilities: &[Value], from: Timestamp, until: Timestamp, zone: &TimeZone) -> Vec<Interval> {
    let mut intervals = Vec::new();
    let mut excluded = Vec::new();
    let first_day = from.to_zoned_datetime(zone.clone()).date();
    let last_day = until.to_zoned_datetime(zone.clone()).date();
    for availability in availabilities {
        for available in availability["availableTime"].as_array().into_iter().flatten() {
            let days: Vec<Weekday> = match available["daysOfWeek"].as_array() {
                Some(codes) => codes.iter().filter_map(|c| c.as_str().and_then(weekday)).collect(),
                None => vec![
                    Weekday::Monday,
                    Weekday::Tuesday,
                    Weekday::Wednesday,
                    Weekday::Thursday,
                    Weekday::Friday,
                    Weekday::Saturday,
                    Weekday::Sunday,
                ],
            };
            let all_day = available["allDay"].as_bool().unwrap_or(false);
            let start_time = available["availableStartTime"].as_str().and_then(|t| t.parse::<Time>().ok());
            let end_time = available["availableEndTime"].as_str().and_then(|t| t.parse::<Time>().ok());
            let mut day = first_day;
            while day <= last_day {
                if days.contains(&day.weekday()) {
                    let start = if all_day { Time::midnight() } else { start_time.unwrap_or(Time::midnight()) };
                    let start = local_instant(day, start, zone);
                    let end = match (all_day, end_time) {
                        (false, Some(end)) => local_instant(day, end, zone),
                        _ => day.tomorrow().ok().and_then(|d| local_instant(d, Time::midnight(), zone)),
                    };
                    if let (Some(start), Some(end)) = (start, end)
                        && start < end
                    {
                        intervals.push((start.max(from), end.min(until)));
                    }
                }
                let Ok(next) = day.checked_add(1.day()) else { break };
                day = next;
            }
        }
        for gap in availability["notAvailableTime"].as_array().into_iter().flatten() {
            let during = &gap["during"];
            let start = during["start"].as_str().and_then(|t| period_bound(t, zone, false));
            let end = during["end"].as_str().and_then(|t| period_bound(t, zone, true));
            excluded.push((start.unwrap_or(from), end.unwrap_or(until)));
        }
    }
    intervals.retain(|(start, end)| start < end);
    subtract(normalize(intervals), &normalize(excluded))
}

/// Sorts and merges overlapping intervals.
fn normalize(mut intervals: Vec<Interval>) -> Vec<Interval> {
    intervals.sort();
    let mut merged: Vec<Interval> = Vec::with_capacity(intervals.len());
    for (start, end) in intervals {
        match merged.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => merged.push((start, end)),
        }
    }
    merged
}

fn subtract(intervals: Vec<Interval>, excluded: &[Interval]) -> Vec<Interval> {
    let mut out = Vec::new();
    for (mut start, end) in intervals {
        for &(gap_start, gap_end) in excluded {
            if gap_end <= start || gap_start >= end {
                continue;
            }
            if gap_start > start {
                out.push((start, gap_start));
            }
            start = start.max(gap_end);
        }
        if start < end {
            out.push((start, end));
        }
    }
    out
}

/// Whether any interval of `a` overlaps any of `b` (both normalized).
pub fn overlaps(a: &[Interval], b: &[Interval]) -> bool {
    a.iter().any(|(s1, e1)| b.iter().any(|(s2, e2)| s1 < e2 && s2 < e1))
}

/// Whether `[start, end)` lies inside one of the intervals.
pub fn contains(intervals: &[Interval], start: Timestamp, end: Timestamp) -> bool {
    intervals.iter().any(|(s, e)| *s <= start && end <= *e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vienna() -> TimeZone {
        TimeZone::get("Europe/Vienna").unwrap()
    }

    fn ts(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn mornings_follow_daylight_saving_time() {
        let mornings = json!([{"availableTime": [{"daysOfWeek": ["mon"], "availableStartTime": "08:00:00", "availableEndTime": "12:00:00"}]}]);
        // The week of the spring-forward (Sunday 2026-03-29).
        let got = expand(mornings.as_array().unwrap(), ts("2026-03-23T00:00:00Z"), ts("2026-04-06T00:00:00Z"), &vienna());
        assert_eq!(
            got,
            vec![
                (ts("2026-03-23T07:00:00Z"), ts("2026-03-23T11:00:00Z")),
                (ts("2026-03-30T06:00:00Z"), ts("2026-03-30T10:00:00Z")),
            ]
        );
    }

    #[test]
    fn not_available_time_cuts_days_out() {
        let weekdays = json!([{
            "availableTime": [{"daysOfWeek": ["mon", "tue"], "allDay": true}],
            "notAvailableTime": [{"description": "Urlaub", "during": {"start": "2026-04-06", "end": "2026-04-06"}}]
        }]);
        let got = expand(weekdays.as_array().unwrap(), ts("2026-04-06T00:00:00Z"), ts("2026-04-08T00:00:00Z"), &vienna());
        assert_eq!(got, vec![(ts("2026-04-06T22:00:00Z"), ts("2026-04-07T22:00:00Z"))]);
        let monday_morning = [(ts("2026-04-06T06:00:00Z"), ts("2026-04-06T10:00:00Z"))];
        assert!(!overlaps(&got, &monday_morning));
        assert!(contains(&got, ts("2026-04-07T08:00:00Z"), ts("2026-04-07T08:30:00Z")));
    }
}
