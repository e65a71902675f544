//! The demo's opening hours; their expansion into slots, the holidays and Vienna's time are
//! `termin-calendar`'s, which the server's slot generation uses too.

use jiff::civil::{DateTime, Time, Weekday, time};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use termin_calendar::SlotPattern;

/// The length of every generated slot.
pub const SLOT_LENGTH: SignedDuration = SignedDuration::from_mins(30);

/// One recurring opening window: the same local hours on each of `days`.
pub struct Window {
    pub days: &'static [Weekday],
    pub start: Time,
    pub end: Time,
}

const fn window(days: &'static [Weekday], start: Time, end: Time) -> Window {
    Window { days, start, end }
}

use Weekday::{Friday as FRI, Monday as MON, Thursday as THU, Tuesday as TUE, Wednesday as WED};

/// Weekly opening hours a role works by, assigned round-robin so that every scale has the same
/// mix (30-minute slots per week: 64, 56, 66, 35, 73; mean 58.8).
pub const WEEKLY_HOURS: [&[Window]; 5] = [
    &[
        window(
            &[MON, TUE, WED, THU, FRI],
            time(8, 0, 0, 0),
            time(12, 0, 0, 0),
        ),
        window(&[MON, TUE, THU], time(13, 0, 0, 0), time(17, 0, 0, 0)),
    ],
    &[
        window(&[MON, TUE, WED, THU], time(7, 0, 0, 0), time(13, 0, 0, 0)),
        window(&[FRI], time(7, 0, 0, 0), time(11, 0, 0, 0)),
    ],
    &[
        window(&[MON, WED, THU], time(12, 0, 0, 0), time(19, 0, 0, 0)),
        window(&[TUE, FRI], time(8, 0, 0, 0), time(14, 0, 0, 0)),
    ],
    &[
        window(&[TUE, WED, THU], time(8, 0, 0, 0), time(12, 30, 0, 0)),
        window(&[WED], time(14, 0, 0, 0), time(18, 0, 0, 0)),
    ],
    &[
        window(
            &[MON, TUE, WED, THU, FRI],
            time(7, 30, 0, 0),
            time(12, 0, 0, 0),
        ),
        window(&[MON, TUE, WED, THU], time(13, 0, 0, 0), time(16, 30, 0, 0)),
    ],
];

/// The pattern every generated slot follows: [`SLOT_LENGTH`], no gap.
pub fn slot_pattern() -> SlotPattern {
    SlotPattern::new(SLOT_LENGTH, SignedDuration::ZERO).expect("the slot length is positive")
}

/// The instant of a Vienna wall-clock time (a time skipped by the spring change is read as the
/// later one, a repeated one as the earlier).
pub fn instant(zone: &TimeZone, local: DateTime) -> Timestamp {
    zone.to_ambiguous_timestamp(local)
        .compatible()
        .expect("opening hours are far from the ends of the supported range")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn weekly_hours_have_the_documented_slot_counts() {
        let (monday, sunday) = (jiff::civil::date(2026, 1, 5), jiff::civil::date(2026, 1, 11));
        let per_week: Vec<usize> = WEEKLY_HOURS
            .iter()
            .map(|hours| {
                let available: Vec<_> = hours
                    .iter()
                    .map(|w| {
                        json!({
                            "daysOfWeek": w.days.iter().map(|d| termin_calendar::day_code(*d)).collect::<Vec<_>>(),
                            "availableStartTime": w.start.to_string(),
                            "availableEndTime": w.end.to_string(),
                        })
                    })
                    .collect();
                let availability = termin_calendar::Availability::read([&json!({"availableTime": available})]).unwrap();
                availability.slots(&termin_calendar::vienna(), monday, sunday, slot_pattern(), false).len()
            })
            .collect();
        assert_eq!(per_week, [64, 56, 66, 35, 73]);
    }
}
