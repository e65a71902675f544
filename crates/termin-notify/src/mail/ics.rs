//! The `.ics` attachment (RFC 5545 with the iTIP method of RFC 5546): one VEVENT per
//! appointment whose UID stays the same across messages and whose SEQUENCE is the
//! appointment's version, so calendars update the entry they have; times in UTC.

use super::content::AppointmentFacts;
use jiff::Timestamp;

/// `REQUEST` adds or updates the calendar entry, `CANCEL` removes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Request,
    Cancel,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Request => "REQUEST",
            Method::Cancel => "CANCEL",
        }
    }
}

/// Who sends the entry and whom it is for.
pub struct Parties<'a> {
    /// The practice's name and the address messages come from.
    pub organizer: (Option<&'a str>, &'a str),
    pub attendee: &'a str,
}

/// The calendar object; `domain` makes the UID globally unique (the server's host name).
pub fn calendar(method: Method, facts: &AppointmentFacts, summary: &str, parties: &Parties<'_>, domain: &str, now: Timestamp) -> String {
    let mut lines = vec![
        "BEGIN:VCALENDAR".to_owned(),
        "VERSION:2.0".to_owned(),
        "PRODID:-//Termin//Appointment messages//DE".to_owned(),
        "CALSCALE:GREGORIAN".to_owned(),
        format!("METHOD:{}", method.as_str()),
        "BEGIN:VEVENT".to_owned(),
        format!("UID:appointment-{}@{domain}", facts.id),
        format!("SEQUENCE:{}", facts.version),
        format!("DTSTAMP:{}", utc(now)),
    ];
    if let Some(start) = facts.start {
        lines.push(format!("DTSTART:{}", utc(start)));
    }
    if let Some(end) = facts.end {
        lines.push(format!("DTEND:{}", utc(end)));
    }
    lines.push(format!("SUMMARY:{}", text(summary)));
    if let Some(place) = &facts.place {
        lines.push(format!("LOCATION:{}", text(place)));
    }
    let (name, address) = parties.organizer;
    lines.push(match name {
        Some(name) => format!("ORGANIZER;CN={}:mailto:{address}", parameter(name)),
        None => format!("ORGANIZER:mailto:{address}"),
    });
    lines.push(format!("ATTENDEE;ROLE=REQ-PARTICIPANT:mailto:{}", parties.attendee));
    lines.push(format!("STATUS:{}", if method == Method::Cancel { "CANCELLED" } else { "CONFIRMED" }));
    lines.push("END:VEVENT".to_owned());
    lines.push("END:VCALENDAR".to_owned());
    lines.iter().map(|line| fold(line)).collect()
}

/// A UTC DATE-TIME (form #2 of RFC 5545 3.3.5).
fn utc(at: Timestamp) -> String {
    at.strftime("%Y%m%dT%H%M%SZ").to_string()
}

/// A TEXT value: backslash, semicolon, comma and line breaks escaped (RFC 5545 3.3.11).
fn text(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            ';' => out.push_str("\\;"),
            ',' => out.push_str("\\,"),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// A parameter value, quoted; a DQUOTE cannot appear in one (RFC 5545 3.2).
fn parameter(value: &str) -> String {
    format!("\"{}\"", value.chars().filter(|c| *c != '"' && !c.is_control()).collect::<String>())
}

/// A content line ended by CRLF and folded after at most 75 octets, never inside a
/// character (RFC 5545 3.1).
fn fold(line: &str) -> String {
    let mut out = String::with_capacity(line.len() + 8);
    let mut width = 0;
    for c in line.chars() {
        if width + c.len_utf8() > 75 {
            out.push_str("\r\n ");
            width = 1;
        }
        out.push(c);
        width += c.len_utf8();
    }
    out.push_str("\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::content::Practice;

    #[test]
    fn an_event_with_stable_uid_escaped_text_and_folded_lines() {
        let facts = AppointmentFacts {
            id: "a1".into(),
            version: 3,
            start: Some("2026-12-14T08:00:00Z".parse().unwrap()),
            end: Some("2026-12-14T08:30:00Z".parse().unwrap()),
            service: None,
            place: Some(format!("Praxis; Ringstraße 1, Wien {}", "ä".repeat(40))),
            practice: Practice::default(),
        };
        let parties = Parties { organizer: (Some("Praxis \"am\" Ring"), "termine@example.org"), attendee: "p@example.org" };
        let ics = calendar(Method::Cancel, &facts, "Physio", &parties, "termin.example", "2026-12-01T00:00:00Z".parse().unwrap());
        assert!(ics.starts_with("BEGIN:VCALENDAR\r\nVERSION:2.0\r\n"), "{ics}");
        assert!(ics.contains("\r\nMETHOD:CANCEL\r\n") && ics.contains("\r\nSTATUS:CANCELLED\r\n"));
        assert!(ics.contains("\r\nUID:appointment-a1@termin.example\r\nSEQUENCE:3\r\nDTSTAMP:20261201T000000Z\r\n"));
        assert!(ics.contains("\r\nDTSTART:20261214T080000Z\r\nDTEND:20261214T083000Z\r\n"));
        assert!(ics.contains("ORGANIZER;CN=\"Praxis am Ring\":mailto:termine@example.org"));
        assert!(ics.ends_with("END:VEVENT\r\nEND:VCALENDAR\r\n"));
        for line in ics.split("\r\n") {
            assert!(line.len() <= 75, "{line:?} is longer than 75 octets");
        }
        let unfolded = ics.replace("\r\n ", "");
        assert!(unfolded.contains(&format!("LOCATION:Praxis\\; Ringstraße 1\\, Wien {}\r\n", "ä".repeat(40))), "{unfolded}");
    }
}
