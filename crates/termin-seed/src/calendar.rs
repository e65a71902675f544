//! Opening hours, Austrian public holidays, and wall-clock times in Europe/Vienna.

use jiff::civil::{Date, DateTime, Time, Weekday, date, time};
use jiff::tz::{TimeZone, TimeZoneDatabase};
use jiff::{SignedDuration, Timestamp};

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

/// The FHIR `daysOfWeek` code of a weekday.
pub fn day_code(day: Weekday) -> &'static str {
    match day {
        Weekday::Monday => "mon",
        Weekday::Tuesday => "tue",
        Weekday::Wednesday => "wed",
        Weekday::Thursday => "thu",
        Weekday::Friday => "fri",
        Weekday::Saturday => "sat",
        Weekday::Sunday => "sun",
    }
}

/// The start times of the slots that fit in `window` on one day, in local wall-clock time.
pub fn slot_starts(day: Date, window: &Window) -> impl Iterator<Item = DateTime> + use<> {
    let last_start = day.to_datetime(window.end) - SLOT_LENGTH;
    let first = day.to_datetime(window.start);
    std::iter::successors(Some(first), |t| Some(*t + SLOT_LENGTH))
        .take_while(move |t| *t <= last_start)
}

/// Austria's nationwide public holidays in `year`, with their names.
pub fn public_holidays(year: i16) -> [(Date, &'static str); 13] {
    let easter = easter_sunday(year);
    let after_easter = |days: i64| crate::plan::add_days(easter, days);
    [
        (date(year, 1, 1), "Neujahr"),
        (date(year, 1, 6), "Heilige Drei Könige"),
        (after_easter(1), "Ostermontag"),
        (date(year, 5, 1), "Staatsfeiertag"),
        (after_easter(39), "Christi Himmelfahrt"),
        (after_easter(50), "Pfingstmontag"),
        (after_easter(60), "Fronleichnam"),
        (date(year, 8, 15), "Mariä Himmelfahrt"),
        (date(year, 10, 26), "Nationalfeiertag"),
        (date(year, 11, 1), "Allerheiligen"),
        (date(year, 12, 8), "Mariä Empfängnis"),
        (date(year, 12, 25), "Christtag"),
        (date(year, 12, 26), "Stefanitag"),
    ]
}

/// Easter Sunday of the Gregorian calendar (the anonymous Gregorian computus).
fn easter_sunday(year: i16) -> Date {
    let y = i32::from(year);
    let (a, b, c) = (y % 19, y / 100, y % 100);
    let (d, e) = (b / 4, b % 4);
    let f = (b + 8) / 25;
    let g = (b - f + 1) / 3;
    let h = (19 * a + b - d - g + 15) % 30;
    let (i, k) = (c / 4, c % 4);
    let l = (32 + 2 * e + 2 * i - h - k) % 7;
    let m = (a + 11 * h + 22 * l) / 451;
    let month = (h + l - 7 * m + 114) / 31;
    let day = (h + l - 7 * m + 114) % 31 + 1;
    date(year, month as i8, day as i8)
}

/// Europe/Vienna from the bundled database, so results do not depend on the host's tzdata.
pub fn vienna() -> TimeZone {
    TimeZoneDatabase::bundled()
        .get("Europe/Vienna")
        .expect("the bundled time zone database has Europe/Vienna")
}

/// The instant of a Vienna wall-clock time (a time skipped by the spring change is read as the
/// later one, a repeated one as the earlier).
pub fn instant(zone: &TimeZone, local: DateTime) -> Timestamp {
    zone.to_ambiguous_timestamp(local)
        .compatible()
        .expect("opening hours are far from the ends of the supported range")
}

/// An instant as FHIR `instant`/`dateTime` text with Vienna's offset at that instant
/// (`2027-03-22T08:00:00+01:00`).
pub fn vienna_text(zone: &TimeZone, instant: Timestamp) -> String {
    instant
        .display_with_offset(zone.to_offset(instant))
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn easter_dates() {
        assert_eq!(easter_sunday(2025), date(2025, 4, 20));
        assert_eq!(easter_sunday(2026), date(2026, 4, 5));
        assert_eq!(easter_sunday(2027), date(2027, 3, 28));
    }

    #[test]
    fn weekly_hours_have_the_documented_slot_counts() {
        let monday = date(2026, 1, 5);
        let per_week: Vec<usize> = WEEKLY_HOURS
            .iter()
            .map(|hours| {
                (0..7)
                    .map(|offset| crate::plan::add_days(monday, offset))
                    .map(|day| {
                        hours
                            .iter()
                            .filter(|w| w.days.contains(&day.weekday()))
                            .map(|w| slot_starts(day, w).count())
                            .sum::<usize>()
                    })
                    .sum()
            })
            .collect();
        assert_eq!(per_week, [64, 56, 66, 35, 73]);
    }

    #[test]
    fn vienna_offsets_follow_daylight_saving_time() {
        let zone = vienna();
        let winter = instant(&zone, date(2027, 3, 26).at(8, 0, 0, 0));
        let summer = instant(&zone, date(2027, 3, 30).at(8, 0, 0, 0));
        assert_eq!(vienna_text(&zone, winter), "2027-03-26T08:00:00+01:00");
        assert_eq!(vienna_text(&zone, summer), "2027-03-30T08:00:00+02:00");
        assert_eq!(winter.to_string(), "2027-03-26T07:00:00Z");
        assert_eq!(summer.to_string(), "2027-03-30T06:00:00Z");
    }
}
