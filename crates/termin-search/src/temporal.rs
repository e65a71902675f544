//! FHIR dates as instant ranges: a value stands for every instant its precision covers
//! (`2026-04-07` is that whole day), `[low, high)`. A value without offset is read in the
//! server's time zone, with the zone's rules for that day (DST-correct: 2026-03-29 in
//! Europe/Vienna has 23 hours).

use jiff::civil::DateTime;
use jiff::tz::{Offset, TimeZone};
use jiff::{Span, Timestamp, ToSpan};

/// The instants a value covers: `[low, high)`; `None` is unbounded on that side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstantRange {
    pub low: Option<Timestamp>,
    pub high: Option<Timestamp>,
}

impl InstantRange {
    pub const UNBOUNDED: InstantRange = InstantRange { low: None, high: None };

    /// The smallest range holding both.
    pub fn hull(self, other: InstantRange) -> InstantRange {
        InstantRange {
            low: self.low.zip(other.low).map(|(a, b)| a.min(b)),
            high: self.high.zip(other.high).map(|(a, b)| a.max(b)),
        }
    }
}

/// Parses a FHIR `date`, `dateTime` or `instant` (or a date search value) into its range.
/// Search values may be cut at any precision down to the year; a `+` in an offset that
/// arrived as a space (an unencoded `+` in a query string) is accepted.
pub fn parse_range(text: &str, time_zone: &TimeZone) -> Option<InstantRange> {
    let parsed = Parsed::parse(text.trim())?;
    let start = parsed.start()?;
    let end = start.checked_add(parsed.precision).ok()?;
    let to_instant = |civil: DateTime| match parsed.offset {
        Some(offset) => offset.to_timestamp(civil).ok(),
        None => time_zone.to_timestamp(civil).ok(),
    };
    Some(InstantRange {
        low: Some(to_instant(start)?),
        high: Some(to_instant(end)?),
    })
}

struct Parsed {
    year: i16,
    month: i8,
    day: i8,
    hour: i8,
    minute: i8,
    second: i8,
    nanosecond: i32,
    precision: Span,
    offset: Option<Offset>,
}

impl Parsed {
    fn parse(text: &str) -> Option<Parsed> {
        let mut cursor = Cursor(text);
        let mut parsed = Parsed {
            year: cursor.digits(4)?.try_into().ok()?,
            month: 1,
            day: 1,
            hour: 0,
            minute: 0,
            second: 0,
            nanosecond: 0,
            precision: 1.year(),
            offset: None,
        };
        if cursor.eat('-') {
            parsed.month = cursor.digits(2)?.try_into().ok()?;
            parsed.precision = 1.month();
            if cursor.eat('-') {
                parsed.day = cursor.digits(2)?.try_into().ok()?;
                parsed.precision = 1.day();
                if cursor.eat('T') {
                    parsed.hour = cursor.digits(2)?.try_into().ok()?;
                    if !cursor.eat(':') {
                        return None;
                    }
                    parsed.minute = cursor.digits(2)?.try_into().ok()?;
                    parsed.precision = 1.minute();
                    if cursor.eat(':') {
                        parsed.second = cursor.digits(2)?.try_into().ok()?;
                        parsed.precision = 1.second();
                        if cursor.eat('.') {
                            let fraction = cursor.take_while(|c| c.is_ascii_digit());
                            if fraction.is_empty() {
                                return None;
                            }
                            // Nanoseconds are the finest jiff keeps; further digits add nothing.
                            let kept = &fraction[..fraction.len().min(9)];
                            let scale = 10i32.pow(9 - kept.len() as u32);
                            parsed.nanosecond = kept.parse::<i32>().ok()? * scale;
                            parsed.precision = i64::from(scale).nanoseconds();
                        }
                    }
                    parsed.offset = cursor.offset()?;
                }
            }
        }
        cursor.0.is_empty().then_some(parsed)
    }

    fn start(&self) -> Option<DateTime> {
        DateTime::new(self.year, self.month, self.day, self.hour, self.minute, self.second, self.nanosecond).ok()
    }
}

struct Cursor<'a>(&'a str);

impl<'a> Cursor<'a> {
    fn eat(&mut self, c: char) -> bool {
        match self.0.strip_prefix(c) {
            Some(rest) => {
                self.0 = rest;
                true
            }
            None => false,
        }
    }

    fn take_while(&mut self, keep: impl Fn(char) -> bool) -> &'a str {
        let end = self.0.find(|c| !keep(c)).unwrap_or(self.0.len());
        let (taken, rest) = self.0.split_at(end);
        self.0 = rest;
        taken
    }

    fn digits(&mut self, count: usize) -> Option<i32> {
        let digits = self.0.get(..count)?;
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        self.0 = &self.0[count..];
        digits.parse().ok()
    }

    /// `Z`, `+hh:mm`, `-hh:mm` (or ` hh:mm` for a decoded `+`); `Some(None)` when absent.
    fn offset(&mut self) -> Option<Option<Offset>> {
        if self.0.is_empty() {
            return Some(None);
        }
        if self.eat('Z') {
            return Some(Some(Offset::UTC));
        }
        let sign = if self.eat('+') || self.eat(' ') {
            1
        } else if self.eat('-') {
            -1
        } else {
            return None;
        };
        let hours = self.digits(2)?;
        if !self.eat(':') {
            return None;
        }
        let minutes = self.digits(2)?;
        if hours > 14 || minutes > 59 {
            return None;
        }
        Offset::from_seconds(sign * (hours * 3600 + minutes * 60)).ok().map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vienna() -> TimeZone {
        TimeZone::get("Europe/Vienna").unwrap()
    }

    fn range(text: &str) -> (String, String) {
        let r = parse_range(text, &vienna()).unwrap_or_else(|| panic!("{text} does not parse"));
        (r.low.unwrap().to_string(), r.high.unwrap().to_string())
    }

    #[test]
    fn precision_is_a_range_in_the_server_zone() {
        assert_eq!(range("2026-04-07"), ("2026-04-06T22:00:00Z".into(), "2026-04-07T22:00:00Z".into()));
        assert_eq!(range("2026"), ("2025-12-31T23:00:00Z".into(), "2026-12-31T23:00:00Z".into()));
        assert_eq!(range("2026-02"), ("2026-01-31T23:00:00Z".into(), "2026-02-28T23:00:00Z".into()));
        assert_eq!(range("2026-04-07T10:00"), ("2026-04-07T08:00:00Z".into(), "2026-04-07T08:01:00Z".into()));
        assert_eq!(
            range("2025-09-15T08:00:00Z"),
            ("2025-09-15T08:00:00Z".into(), "2025-09-15T08:00:01Z".into())
        );
        assert_eq!(
            range("2025-09-15T08:00:00.25+02:00"),
            ("2025-09-15T06:00:00.25Z".into(), "2025-09-15T06:00:00.26Z".into())
        );
        assert_eq!(range("2025-09-15T08:00:00 02:00").0, "2025-09-15T06:00:00Z");
    }

    #[test]
    fn days_around_daylight_saving_changes() {
        // Spring forward: 23 hours; fall back: 25 hours.
        assert_eq!(range("2026-03-29"), ("2026-03-28T23:00:00Z".into(), "2026-03-29T22:00:00Z".into()));
        assert_eq!(range("2026-10-25"), ("2026-10-24T22:00:00Z".into(), "2026-10-25T23:00:00Z".into()));
        // 02:30 does not exist on 2026-03-29 in Vienna: read as 03:30 CEST.
        assert_eq!(range("2026-03-29T02:30").0, "2026-03-29T01:30:00Z");
    }

    #[test]
    fn rejects_malformed_values() {
        for bad in ["", "26", "2026-4-7", "2026-04-07T10", "2026-13-01", "2026-04-07X", "2026-04-07T10:00+2"] {
            assert!(parse_range(bad, &vienna()).is_none(), "{bad}");
        }
    }
}
