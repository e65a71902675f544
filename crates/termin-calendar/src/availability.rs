//! R5 `Availability` read from JSON and expanded into slot periods.

use crate::zone::weekday;
use jiff::civil::{Date, DateTime, Time, Weekday};
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{SignedDuration, Timestamp, ToSpan};
use serde_json::Value;
use std::collections::BTreeSet;

/// One `availableTime`: the same local hours on each of `days`.
#[derive(Debug, Clone, PartialEq)]
pub struct AvailableTime {
    /// `daysOfWeek`; empty: every day.
    pub days: Vec<Weekday>,
    pub start: Time,
    /// `None`: until the end of the day (`allDay`, or no `availableEndTime`).
    pub end: Option<Time>,
}

/// One `notAvailableTime.during`: a closure, a day given as a date covering the whole local day.
#[derive(Debug, Clone, PartialEq)]
pub struct Closure {
    pub start: Option<Moment>,
    pub end: Option<Moment>,
}

/// A bound of a closure as FHIR `dateTime` gives it: a whole local day, or an instant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Moment {
    Day(Date),
    Instant(Timestamp),
}

/// The opening hours and closures of one or more `Availability` elements taken together.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Availability {
    pub available: Vec<AvailableTime>,
    pub closures: Vec<Closure>,
}

/// How opening hours are cut into slots: each `length` long, `gap` between them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SlotPattern {
    length: SignedDuration,
    gap: SignedDuration,
}

impl SlotPattern {
    /// `None` unless the length is positive and the gap not negative.
    pub fn new(length: SignedDuration, gap: SignedDuration) -> Option<Self> {
        (length.is_positive() && !gap.is_negative()).then_some(SlotPattern { length, gap })
    }

    pub fn length(&self) -> SignedDuration {
        self.length
    }
}

impl Availability {
    /// Reads `Availability` elements (as on PractitionerRole and HealthcareService). An error
    /// names the element (`availableTime[0].availableStartTime`) and what is wrong with it.
    pub fn read<'a>(elements: impl IntoIterator<Item = &'a Value>) -> Result<Self, String> {
        let mut availability = Availability::default();
        for element in elements {
            for (index, time) in array(element, "availableTime").enumerate() {
                let at = |name: &str| format!("availableTime[{index}].{name}");
                availability.available.push(available_time(time).map_err(|(name, problem)| format!("{}: {problem}", at(name)))?);
            }
            for (index, closure) in array(element, "notAvailableTime").enumerate() {
                let during = closure.get("during").unwrap_or(&Value::Null);
                let bound = |name: &str| match during.get(name).and_then(Value::as_str) {
                    None => Ok(None),
                    Some(text) => moment(text)
                        .map(Some)
                        .ok_or_else(|| format!("notAvailableTime[{index}].during.{name}: {text:?} is neither a date nor a dateTime with a time zone")),
                };
                availability.closures.push(Closure { start: bound("start")?, end: bound("end")? });
            }
        }
        Ok(availability)
    }

    /// The periods of the slots from `first` to `last` (local days, both included), in start
    /// order, none overlapping: opening hours cut by `pattern`, less closures and, with
    /// `public_holidays`, Austria's public holidays.
    pub fn slots(
        &self,
        zone: &TimeZone,
        first: Date,
        last: Date,
        pattern: SlotPattern,
        public_holidays: bool,
    ) -> Vec<(Timestamp, Timestamp)> {
        let holidays: BTreeSet<Date> = match public_holidays {
            true => (first.year()..=last.year())
                .flat_map(crate::public_holidays)
                .map(|(day, _)| day)
                .collect(),
            false => BTreeSet::new(),
        };
        let closures: Vec<(Option<Timestamp>, Option<Timestamp>)> = self
            .closures
            .iter()
            .map(|c| (c.start.map(|m| m.start(zone)), c.end.map(|m| m.end(zone))))
            .collect();
        let closed = |start: Timestamp, end: Timestamp| {
            closures
                .iter()
                .any(|(from, until)| from.is_none_or(|from| from < end) && until.is_none_or(|until| start < until))
        };
        let mut slots = Vec::new();
        let mut day = first;
        while day <= last {
            if !holidays.contains(&day) {
                for time in self.available.iter().filter(|t| t.days.is_empty() || t.days.contains(&day.weekday())) {
                    for start in local_starts(day, time, pattern) {
                        // A start the spring change skips gives no slot; a repeated one the earlier instant.
                        let ambiguous = zone.to_ambiguous_timestamp(start);
                        if matches!(ambiguous.offset(), AmbiguousOffset::Gap { .. }) {
                            continue;
                        }
                        let Ok(start) = ambiguous.earlier() else { continue };
                        let end = start + pattern.length;
                        if !closed(start, end) {
                            slots.push((start, end));
                        }
                    }
                }
            }
            let Some(next) = next_day(day) else { break };
            day = next;
        }
        slots.sort();
        // Overlapping opening hours must not give overlapping slots.
        let mut kept: Vec<(Timestamp, Timestamp)> = Vec::with_capacity(slots.len());
        for slot in slots {
            if kept.last().is_none_or(|last| last.1 <= slot.0) {
                kept.push(slot);
            }
        }
        kept
    }
}

fn array<'a>(element: &'a Value, name: &str) -> impl Iterator<Item = &'a Value> {
    element.get(name).and_then(Value::as_array).into_iter().flatten()
}

fn available_time(time: &Value) -> Result<AvailableTime, (&'static str, String)> {
    let mut days = Vec::new();
    for code in array(time, "daysOfWeek") {
        let day = code.as_str().and_then(weekday).ok_or(("daysOfWeek", format!("{code} is not a day code (mon … sun)")))?;
        days.push(day);
    }
    let clock = |name: &'static str| match time.get(name).and_then(Value::as_str) {
        None => Ok(None),
        Some(text) => text.parse::<Time>().map(Some).map_err(|_| (name, format!("{text:?} is not a time"))),
    };
    if time.get("allDay").and_then(Value::as_bool) == Some(true) {
        return Ok(AvailableTime { days, start: Time::midnight(), end: None });
    }
    let start = clock("availableStartTime")?.unwrap_or(Time::midnight());
    let end = clock("availableEndTime")?.filter(|end| *end != Time::midnight());
    if end.is_some_and(|end| end <= start) {
        return Err(("availableEndTime", "ends before availableStartTime".into()));
    }
    Ok(AvailableTime { days, start, end })
}

/// A `dateTime` of day precision, or with a time and offset.
fn moment(text: &str) -> Option<Moment> {
    if text.len() == 10 {
        return text.parse::<Date>().ok().map(Moment::Day);
    }
    text.parse::<Timestamp>().ok().map(Moment::Instant)
}

impl Moment {
    fn start(self, zone: &TimeZone) -> Timestamp {
        match self {
            Moment::Day(day) => local_midnight(zone, day),
            Moment::Instant(instant) => instant,
        }
    }

    /// A day as an end bound includes the day.
    fn end(self, zone: &TimeZone) -> Timestamp {
        match self {
            Moment::Day(day) => next_day(day).map_or(Timestamp::MAX, |next| local_midnight(zone, next)),
            Moment::Instant(instant) => instant,
        }
    }
}

fn local_midnight(zone: &TimeZone, day: Date) -> Timestamp {
    zone.to_ambiguous_timestamp(day.to_datetime(Time::midnight()))
        .compatible()
        .unwrap_or(Timestamp::MAX)
}

fn next_day(day: Date) -> Option<Date> {
    day.checked_add(1.day()).ok()
}

/// The wall-clock starts of the slots that fit in `time` on `day`.
fn local_starts(day: Date, time: &AvailableTime, pattern: SlotPattern) -> impl Iterator<Item = DateTime> + use<> {
    let close = match time.end {
        Some(end) => day.to_datetime(end),
        None => next_day(day).map_or(DateTime::MAX, |next| next.to_datetime(Time::midnight())),
    };
    let step = pattern.length + pattern.gap;
    let length = pattern.length;
    std::iter::successors(Some(day.to_datetime(time.start)), move |t| t.checked_add(step).ok())
        .take_while(move |t| t.checked_add(length).is_ok_and(|end| end <= close))
}

#[cfg(test)]
mod tests;
