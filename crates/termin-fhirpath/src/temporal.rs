//! FHIRPath Date, DateTime and Time values, which keep the precision they were written with.
//!
//! Comparing values of different precision is "unknown" (`None`) unless an earlier component
//! already decides the result; that is how FHIRPath turns `@2020 < @2020-01` into `{}`.

use std::cmp::Ordering;
use std::fmt;

/// A calendar date of year, month or day precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Date {
    year: u16,
    month: Option<u8>,
    day: Option<u8>,
}

/// A time of day of hour, minute, second or sub-second precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Time {
    hour: u8,
    minute: Option<u8>,
    second: Option<u8>,
    fraction: Option<Fraction>,
}

/// Sub-second digits; the digit count is kept so values print as they were written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fraction {
    nanos: u32,
    digits: u8,
}

/// A timezone offset; `Utc` is the `Z` form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeZone {
    Utc,
    OffsetMinutes(i16),
}

/// A date with an optional time of day and timezone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateTime {
    date: Date,
    time: Option<Time>,
    zone: Option<TimeZone>,
}

impl Date {
    /// Parses `YYYY`, `YYYY-MM` or `YYYY-MM-DD`.
    pub fn parse(text: &str) -> Option<Date> {
        let mut cursor = Cursor::new(text);
        let date = cursor.date()?;
        cursor.at_end().then_some(date)
    }

    pub fn year(&self) -> u16 {
        self.year
    }

    pub fn month(&self) -> Option<u8> {
        self.month
    }

    pub fn day(&self) -> Option<u8> {
        self.day
    }

    pub(crate) fn from_civil(date: jiff::civil::Date) -> Date {
        Date { year: date.year() as u16, month: Some(date.month() as u8), day: Some(date.day() as u8) }
    }

    fn components(&self) -> [Option<i64>; 3] {
        [Some(i64::from(self.year)), self.month.map(i64::from), self.day.map(i64::from)]
    }

    /// Orders two dates; `None` when their precisions differ and the shared part is equal.
    pub fn partial_compare(&self, other: &Date) -> Option<Ordering> {
        compare_components(&self.components(), &other.components())
    }

    fn precision(&self) -> usize {
        precision_of(&self.components())
    }
}

impl Time {
    /// Parses `hh`, `hh:mm`, `hh:mm:ss` or `hh:mm:ss.fff`.
    pub fn parse(text: &str) -> Option<Time> {
        let mut cursor = Cursor::new(text);
        let time = cursor.time()?;
        cursor.at_end().then_some(time)
    }

    pub(crate) fn from_civil(time: jiff::civil::Time) -> Time {
        Time {
            hour: time.hour() as u8,
            minute: Some(time.minute() as u8),
            second: Some(time.second() as u8),
            fraction: Some(Fraction { nanos: time.millisecond() as u32 * 1_000_000, digits: 3 }),
        }
    }

    fn components(&self) -> [Option<i64>; 3] {
        [Some(i64::from(self.hour)), self.minute.map(i64::from), self.second_nanos()]
    }

    /// Seconds and fractions are one precision in FHIRPath, so they compare as one number.
    fn second_nanos(&self) -> Option<i64> {
        self.second.map(|second| i64::from(second) * 1_000_000_000 + i64::from(self.fraction.map_or(0, |f| f.nanos)))
    }

    /// Orders two times; `None` when their precisions differ and the shared part is equal.
    pub fn partial_compare(&self, other: &Time) -> Option<Ordering> {
        compare_components(&self.components(), &other.components())
    }

    fn precision(&self) -> usize {
        precision_of(&self.components())
    }
}

impl TimeZone {
    fn offset_minutes(self) -> i32 {
        match self {
            TimeZone::Utc => 0,
            TimeZone::OffsetMinutes(minutes) => i32::from(minutes),
        }
    }
}

impl DateTime {
    /// Parses a date, optionally followed by `T`, a time and a timezone
    /// (`2020`, `2020-01-02T10:00:00.123+01:00`, or the FHIRPath literal form `2020T`).
    pub fn parse(text: &str) -> Option<DateTime> {
        let mut cursor = Cursor::new(text);
        let date = cursor.date()?;
        let mut time = None;
        let mut zone = None;
        if cursor.eat(b'T') && !cursor.at_end() {
            // A time needs a complete date.
            date.day?;
            time = Some(cursor.time()?);
            zone = cursor.zone();
        }
        cursor.at_end().then_some(DateTime { date, time, zone })
    }

    pub fn date(&self) -> Date {
        self.date
    }

    pub fn time(&self) -> Option<Time> {
        self.time
    }

    pub fn zone(&self) -> Option<TimeZone> {
        self.zone
    }

    pub(crate) fn from_zoned(now: &jiff::ZonedDateTime) -> DateTime {
        DateTime {
            date: Date::from_civil(now.date()),
            time: Some(Time::from_civil(now.time())),
            zone: Some(TimeZone::OffsetMinutes((now.offset().seconds() / 60) as i16)),
        }
    }

    /// Components from year to second; values with a time are shifted to UTC first when
    /// `shift_to_utc` is set (a missing zone counts as `default_offset_minutes`).
    fn components(&self, shift_to_utc: bool, default_offset_minutes: i32) -> [Option<i64>; 6] {
        let local = self.local_components();
        let Some(time) = self.time.filter(|_| shift_to_utc) else {
            return local;
        };
        let offset = self.zone.map_or(default_offset_minutes, TimeZone::offset_minutes);
        let shifted = jiff::civil::DateTime::new(
            self.date.year as i16,
            self.date.month.unwrap_or(1) as i8,
            self.date.day.unwrap_or(1) as i8,
            time.hour as i8,
            time.minute.unwrap_or(0) as i8,
            time.second.unwrap_or(0) as i8,
            time.fraction.map_or(0, |f| f.nanos) as i32,
        )
        .ok()
        .and_then(|civil| civil.checked_sub(jiff::Span::new().minutes(offset)).ok());
        let Some(utc) = shifted else {
            return local;
        };
        let present = local.map(|component| component.is_some());
        let values = [
            i64::from(utc.year()),
            i64::from(utc.month()),
            i64::from(utc.day()),
            i64::from(utc.hour()),
            i64::from(utc.minute()),
            i64::from(utc.second()) * 1_000_000_000 + i64::from(utc.subsec_nanosecond()),
        ];
        std::array::from_fn(|i| present[i].then_some(values[i]))
    }

    fn local_components(&self) -> [Option<i64>; 6] {
        let [year, month, day] = self.date.components();
        let [hour, minute, second] = match &self.time {
            Some(time) => time.components(),
            None => [None, None, None],
        };
        [year, month, day, hour, minute, second]
    }

    /// Orders two date-times, normalising timezones to UTC; `None` when their precisions
    /// differ and the shared part is equal.
    pub fn partial_compare(&self, other: &DateTime, default_offset_minutes: i32) -> Option<Ordering> {
        let shift = self.zone.is_some() || other.zone.is_some();
        compare_components(
            &self.components(shift, default_offset_minutes),
            &other.components(shift, default_offset_minutes),
        )
    }

    fn precision(&self) -> usize {
        precision_of(&self.local_components())
    }
}

impl From<Date> for DateTime {
    fn from(date: Date) -> Self {
        DateTime { date, time: None, zone: None }
    }
}

/// Whether two values were written with the same precision (needed by `~`, which calls
/// values of different precision "not equivalent" instead of "unknown").
pub(crate) fn same_precision_dates(a: &Date, b: &Date) -> bool {
    a.precision() == b.precision()
}

pub(crate) fn same_precision_date_times(a: &DateTime, b: &DateTime) -> bool {
    a.precision() == b.precision()
}

pub(crate) fn same_precision_times(a: &Time, b: &Time) -> bool {
    a.precision() == b.precision()
}

fn precision_of(components: &[Option<i64>]) -> usize {
    components.iter().take_while(|c| c.is_some()).count()
}

fn compare_components(a: &[Option<i64>], b: &[Option<i64>]) -> Option<Ordering> {
    for (x, y) in a.iter().zip(b) {
        match (x, y) {
            (Some(x), Some(y)) if x != y => return Some(x.cmp(y)),
            (Some(_), Some(_)) => {}
            (None, None) => return Some(Ordering::Equal),
            _ => return None,
        }
    }
    Some(Ordering::Equal)
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}", self.year)?;
        if let Some(month) = self.month {
            write!(f, "-{month:02}")?;
        }
        if let Some(day) = self.day {
            write!(f, "-{day:02}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}", self.hour)?;
        if let Some(minute) = self.minute {
            write!(f, ":{minute:02}")?;
        }
        if let Some(second) = self.second {
            write!(f, ":{second:02}")?;
        }
        if let Some(fraction) = self.fraction {
            let digits = usize::from(fraction.digits);
            let text = format!("{:09}", fraction.nanos);
            write!(f, ".{}", &text[..digits])?;
        }
        Ok(())
    }
}

impl fmt::Display for TimeZone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            TimeZone::Utc => f.write_str("Z"),
            TimeZone::OffsetMinutes(minutes) => {
                let sign = if minutes < 0 { '-' } else { '+' };
                let minutes = minutes.unsigned_abs();
                write!(f, "{sign}{:02}:{:02}", minutes / 60, minutes % 60)
            }
        }
    }
}

impl fmt::Display for DateTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.date)?;
        if let Some(time) = &self.time {
            write!(f, "T{time}")?;
        }
        if let Some(zone) = &self.zone {
            write!(f, "{zone}")?;
        }
        Ok(())
    }
}

/// Byte cursor shared by the three parsers.
struct Cursor<'s> {
    bytes: &'s [u8],
    position: usize,
}

impl<'s> Cursor<'s> {
    fn new(text: &'s str) -> Self {
        Cursor { bytes: text.as_bytes(), position: 0 }
    }

    fn at_end(&self) -> bool {
        self.position == self.bytes.len()
    }

    fn eat(&mut self, byte: u8) -> bool {
        if self.bytes.get(self.position) == Some(&byte) {
            self.position += 1;
            true
        } else {
            false
        }
    }

    fn digits(&mut self, count: usize) -> Option<u32> {
        let end = self.position + count;
        let slice = self.bytes.get(self.position..end)?;
        if !slice.iter().all(u8::is_ascii_digit) {
            return None;
        }
        self.position = end;
        Some(slice.iter().fold(0, |acc, d| acc * 10 + u32::from(d - b'0')))
    }

    fn ranged(&mut self, count: usize, range: std::ops::RangeInclusive<u32>) -> Option<u8> {
        self.digits(count).filter(|value| range.contains(value)).map(|value| value as u8)
    }

    fn date(&mut self) -> Option<Date> {
        let year = self.digits(4)? as u16;
        let mut date = Date { year, month: None, day: None };
        if self.eat(b'-') {
            let month = self.ranged(2, 1..=12)?;
            date.month = Some(month);
            if self.eat(b'-') {
                let last_day = days_in_month(year, month);
                date.day = Some(self.ranged(2, 1..=u32::from(last_day))?);
            }
        }
        Some(date)
    }

    fn time(&mut self) -> Option<Time> {
        let mut time = Time { hour: self.ranged(2, 0..=23)?, minute: None, second: None, fraction: None };
        if self.eat(b':') {
            time.minute = Some(self.ranged(2, 0..=59)?);
            if self.eat(b':') {
                time.second = Some(self.ranged(2, 0..=59)?);
                if self.eat(b'.') {
                    time.fraction = Some(self.fraction()?);
                }
            }
        }
        Some(time)
    }

    /// Reads at least one digit; digits past nanoseconds are dropped.
    fn fraction(&mut self) -> Option<Fraction> {
        let start = self.position;
        while self.bytes.get(self.position).is_some_and(u8::is_ascii_digit) {
            self.position += 1;
        }
        let digits = &self.bytes[start..self.position];
        if digits.is_empty() {
            return None;
        }
        let kept = &digits[..digits.len().min(9)];
        let value = kept.iter().fold(0u32, |acc, d| acc * 10 + u32::from(d - b'0'));
        Some(Fraction { nanos: value * 10u32.pow(9 - kept.len() as u32), digits: kept.len() as u8 })
    }

    fn zone(&mut self) -> Option<TimeZone> {
        if self.eat(b'Z') {
            return Some(TimeZone::Utc);
        }
        let sign = if self.eat(b'+') {
            1
        } else if self.eat(b'-') {
            -1
        } else {
            return None;
        };
        let hours = self.ranged(2, 0..=14)?;
        if !self.eat(b':') {
            return None;
        }
        let minutes = self.ranged(2, 0..=59)?;
        Some(TimeZone::OffsetMinutes(sign * (i16::from(hours) * 60 + i16::from(minutes))))
    }
}

fn days_in_month(year: u16, month: u8) -> u8 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dt(text: &str) -> DateTime {
        DateTime::parse(text).unwrap_or_else(|| panic!("{text} should parse"))
    }

    #[test]
    fn parses_and_prints_every_precision() {
        for text in [
            "2020",
            "2020-02",
            "2020-02-29",
            "2020-02-29T10:00",
            "2020-01-01T10:00:00.120Z",
            "2020-01-01T10:00:00-05:30",
        ] {
            assert_eq!(dt(text).to_string(), text);
        }
        assert_eq!(dt("2020T").to_string(), "2020");
        assert_eq!(Time::parse("10:00:00.5").unwrap().to_string(), "10:00:00.5");
        assert_eq!(Date::parse("2021-02-29"), None);
        assert_eq!(Date::parse("2021-13"), None);
        assert_eq!(DateTime::parse("2021-01T10:00"), None);
        assert_eq!(DateTime::parse("2021-01-01T25:00"), None);
        assert_eq!(DateTime::parse("2021-01-01 10:00"), None);
    }

    #[test]
    fn different_precision_is_unknown_unless_already_decided() {
        assert_eq!(dt("2020").partial_compare(&dt("2020-01"), 0), None);
        assert_eq!(dt("2019").partial_compare(&dt("2020-01"), 0), Some(Ordering::Less));
        assert_eq!(dt("2020-01-01T10:30").partial_compare(&dt("2020-01-01T10:30:00"), 0), None);
        let date = Date::parse("2020-01").unwrap();
        assert_eq!(date.partial_compare(&Date::parse("2020-01").unwrap()), Some(Ordering::Equal));
    }

    #[test]
    fn timezones_are_normalised_before_comparing() {
        let utc = dt("2020-01-01T10:00:00Z");
        let plus_one = dt("2020-01-01T11:00:00+01:00");
        assert_eq!(utc.partial_compare(&plus_one, 0), Some(Ordering::Equal));
        let next_day = dt("2020-01-02T00:30:00+01:00");
        assert_eq!(dt("2020-01-01T23:45:00Z").partial_compare(&next_day, 0), Some(Ordering::Greater));
        // A value without zone is taken to be in the evaluation environment's zone.
        assert_eq!(dt("2020-01-01T11:00:00").partial_compare(&utc, 60), Some(Ordering::Equal));
    }

    #[test]
    fn seconds_and_fractions_are_one_precision() {
        assert_eq!(dt("2020-01-01T10:00:00").partial_compare(&dt("2020-01-01T10:00:00.000"), 0), Some(Ordering::Equal));
        let a = Time::parse("10:00:01").unwrap();
        assert_eq!(a.partial_compare(&Time::parse("10:00:00.999").unwrap()), Some(Ordering::Greater));
    }
}
