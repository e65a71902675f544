//! Time zones from the bundled database, and instants as FHIR text with the local offset.

use jiff::Timestamp;
use jiff::civil::Weekday;
use jiff::tz::{TimeZone, TimeZoneDatabase};

/// An IANA time zone from the bundled database, so results do not depend on the host's tzdata.
pub fn zone(name: &str) -> Option<TimeZone> {
    TimeZoneDatabase::bundled().get(name).ok()
}

/// Europe/Vienna, the zone of Austrian practices.
pub fn vienna() -> TimeZone {
    zone("Europe/Vienna").expect("the bundled time zone database has Europe/Vienna")
}

/// An instant as FHIR `instant`/`dateTime` text with the zone's offset at that instant
/// (`2027-03-22T08:00:00+01:00`).
pub fn local_text(zone: &TimeZone, instant: Timestamp) -> String {
    instant.display_with_offset(zone.to_offset(instant)).to_string()
}

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

/// The weekday of a FHIR `daysOfWeek` code.
pub fn weekday(code: &str) -> Option<Weekday> {
    Some(match code {
        "mon" => Weekday::Monday,
        "tue" => Weekday::Tuesday,
        "wed" => Weekday::Wednesday,
        "thu" => Weekday::Thursday,
        "fri" => Weekday::Friday,
        "sat" => Weekday::Saturday,
        "sun" => Weekday::Sunday,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    #[test]
    fn vienna_offsets_follow_daylight_saving_time() {
        let zone = vienna();
        let winter = zone.to_ambiguous_timestamp(date(2027, 3, 26).at(8, 0, 0, 0)).compatible().unwrap();
        let summer = zone.to_ambiguous_timestamp(date(2027, 3, 30).at(8, 0, 0, 0)).compatible().unwrap();
        assert_eq!(local_text(&zone, winter), "2027-03-26T08:00:00+01:00");
        assert_eq!(local_text(&zone, summer), "2027-03-30T08:00:00+02:00");
        assert_eq!(winter.to_string(), "2027-03-26T07:00:00Z");
    }

    #[test]
    fn day_codes_read_back() {
        for day in [Weekday::Monday, Weekday::Saturday, Weekday::Sunday] {
            assert_eq!(weekday(day_code(day)), Some(day));
        }
        assert_eq!(weekday("Monday"), None);
    }
}
