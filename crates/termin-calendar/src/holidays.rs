//! Austria's nationwide public holidays.

use jiff::ToSpan;
use jiff::civil::{Date, date};

/// Austria's nationwide public holidays in `year`, with their names.
pub fn public_holidays(year: i16) -> [(Date, &'static str); 13] {
    let easter = easter_sunday(year);
    let after_easter = |days: i64| easter.checked_add(days.days()).expect("Easter is far from the end of the calendar");
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn easter_dates() {
        assert_eq!(easter_sunday(2025), date(2025, 4, 20));
        assert_eq!(easter_sunday(2026), date(2026, 4, 5));
        assert_eq!(easter_sunday(2027), date(2027, 3, 28));
        assert_eq!(public_holidays(2027)[2], (date(2027, 3, 29), "Ostermontag"));
    }
}
