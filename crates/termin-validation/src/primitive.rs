//! The lexical rules of the FHIR R5 primitive types in JSON (the `regex` extensions of the
//! primitive StructureDefinitions, plus what their definitions say in prose: a date-time
//! with a time has a time-zone offset, days exist in their month, strings are not empty).

use serde_json::Value;

/// Checks a primitive JSON value against its FHIR type. `Err` says what is wrong.
pub(crate) fn check(type_code: &str, value: &Value) -> Result<(), String> {
    match type_code {
        "boolean" => expect(value.is_boolean(), "a JSON boolean"),
        "integer" => integer(value, i64::from(i32::MIN)),
        "unsignedInt" => integer(value, 0),
        "positiveInt" => integer(value, 1),
        "decimal" => match value {
            Value::Number(_) => Ok(()),
            _ => Err("must be a JSON number".into()),
        },
        "integer64" => {
            let text = string(value)?;
            text.parse::<i64>()
                .map(|_| ())
                .map_err(|_| format!("{text:?} is not a 64-bit integer (integer64 is a JSON string of digits)"))
        }
        "date" => string(value).and_then(|text| date(text).map(|_| ())),
        "dateTime" => string(value).and_then(date_time),
        "instant" => string(value).and_then(instant),
        "time" => string(value).and_then(|text| time(text).map(|_| ())),
        "code" => string(value).and_then(code),
        "id" => string(value).and_then(id),
        "uri" | "url" | "canonical" => string(value).and_then(uri),
        "oid" => string(value).and_then(oid),
        "uuid" => string(value).and_then(uuid),
        "base64Binary" => string(value).and_then(base64),
        "xhtml" => string(value).and_then(xhtml),
        // string, markdown and anything else string-like.
        _ => string(value).and_then(|text| expect(!text.is_empty(), "not empty (FHIR strings have content)")),
    }
}

/// The JSON shape a primitive needs, for messages.
pub(crate) fn json_kind(type_code: &str) -> &'static str {
    match type_code {
        "boolean" => "boolean",
        "integer" | "unsignedInt" | "positiveInt" | "decimal" => "number",
        _ => "string",
    }
}

/// Whether the JSON value has the shape the primitive type needs (string, number, boolean).
pub(crate) fn has_json_kind(type_code: &str, value: &Value) -> bool {
    match json_kind(type_code) {
        "boolean" => value.is_boolean(),
        "number" => value.is_number(),
        _ => value.is_string(),
    }
}

fn expect(holds: bool, what: &str) -> Result<(), String> {
    if holds { Ok(()) } else { Err(format!("must be {what}")) }
}

fn string(value: &Value) -> Result<&str, String> {
    value.as_str().ok_or_else(|| "must be a JSON string".to_owned())
}

fn integer(value: &Value, min: i64) -> Result<(), String> {
    let Value::Number(number) = value else {
        return Err("must be a JSON number".into());
    };
    match number.to_string().parse::<i64>() {
        Ok(n) if n >= min && n <= i64::from(i32::MAX) => Ok(()),
        Ok(n) => Err(format!("{n} is out of range (at least {min}, at most {})", i32::MAX)),
        Err(_) => Err(format!("{number} is not an integer")),
    }
}

fn digits(text: &str, count: usize) -> Option<u32> {
    (text.len() == count && text.bytes().all(|b| b.is_ascii_digit())).then(|| text.parse().ok())?
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// `YYYY`, `YYYY-MM` or `YYYY-MM-DD`; returns whether it is a full date.
fn date(text: &str) -> Result<bool, String> {
    let bad = || format!("{text:?} is not a date (YYYY, YYYY-MM or YYYY-MM-DD)");
    let mut parts = text.split('-');
    let year = parts.next().and_then(|y| digits(y, 4)).filter(|&y| y > 0).ok_or_else(bad)?;
    let Some(month) = parts.next() else {
        return Ok(false);
    };
    let month = digits(month, 2).filter(|m| (1..=12).contains(m)).ok_or_else(bad)?;
    let Some(day) = parts.next() else {
        return Ok(false);
    };
    digits(day, 2)
        .filter(|&d| d >= 1 && d <= days_in_month(year, month))
        .ok_or_else(bad)?;
    if parts.next().is_some() {
        return Err(bad());
    }
    Ok(true)
}

/// `hh:mm:ss` with optional fraction.
fn time(text: &str) -> Result<(), String> {
    let bad = || format!("{text:?} is not a time (hh:mm:ss)");
    let (whole, fraction) = match text.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (text, None),
    };
    if fraction.is_some_and(|f| f.is_empty() || f.len() > 9 || !f.bytes().all(|b| b.is_ascii_digit())) {
        return Err(bad());
    }
    let mut parts = whole.split(':');
    let (Some(h), Some(m), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(bad());
    };
    let in_range = digits(h, 2).is_some_and(|h| h <= 23)
        && digits(m, 2).is_some_and(|m| m <= 59)
        && digits(s, 2).is_some_and(|s| s <= 60);
    expect(in_range, "hh:mm:ss").map_err(|_| bad())
}

/// `Z` or `+hh:mm`/`-hh:mm` (up to +14:00).
fn offset(text: &str) -> bool {
    if text == "Z" {
        return true;
    }
    let Some(rest) = text.strip_prefix(['+', '-']) else {
        return false;
    };
    match rest.split_once(':') {
        Some((h, m)) => digits(h, 2).is_some_and(|h| h <= 14) && digits(m, 2).is_some_and(|m| m <= 59),
        None => false,
    }
}

/// Splits `YYYY-MM-DDThh:mm:ss[.f](Z|±hh:mm)` into date, time and offset (offset may be empty).
fn split_date_time(text: &str) -> Option<(&str, &str, &str)> {
    let (date, rest) = text.split_once('T')?;
    let zone_start = rest.find(['Z', '+', '-']).unwrap_or(rest.len());
    Some((date, &rest[..zone_start], &rest[zone_start..]))
}

fn date_time(text: &str) -> Result<(), String> {
    let Some((date_part, time_part, zone)) = split_date_time(text) else {
        return date(text).map(|_| ());
    };
    let full_date = date(date_part)?;
    time(time_part)?;
    if !full_date {
        return Err(format!("{text:?}: a dateTime with a time needs a full date"));
    }
    if zone.is_empty() {
        return Err(format!("{text:?}: a dateTime with a time must have a time-zone offset (Z or +hh:mm)"));
    }
    expect(offset(zone), "a time-zone offset Z or ±hh:mm").map_err(|e| format!("{text:?}: {e}"))
}

fn instant(text: &str) -> Result<(), String> {
    let what = || format!("{text:?} is not an instant (YYYY-MM-DDThh:mm:ss[.sss] with Z or ±hh:mm)");
    let (date_part, time_part, zone) = split_date_time(text).ok_or_else(what)?;
    if !date(date_part)? {
        return Err(what());
    }
    time(time_part).map_err(|_| what())?;
    if zone.is_empty() {
        return Err(format!("{text:?}: an instant must have a time-zone offset (Z or +hh:mm)"));
    }
    expect(offset(zone), "a time-zone offset").map_err(|_| what())
}

fn code(text: &str) -> Result<(), String> {
    let valid = !text.is_empty()
        && !text.starts_with(' ')
        && !text.ends_with(' ')
        && !text.contains("  ")
        && !text.chars().any(|c| c.is_whitespace() && c != ' ');
    expect(valid, "a code (no leading, trailing or repeated whitespace)").map_err(|e| format!("{text:?} {e}"))
}

fn id(text: &str) -> Result<(), String> {
    expect(termin_fhir::is_valid_id(text), "an id (1-64 characters of A-Z, a-z, 0-9, '-' and '.')")
        .map_err(|e| format!("{text:?} {e}"))
}

fn uri(text: &str) -> Result<(), String> {
    expect(!text.is_empty() && !text.chars().any(char::is_whitespace), "a URI without whitespace")
        .map_err(|e| format!("{text:?} {e}"))
}

fn oid(text: &str) -> Result<(), String> {
    let arcs = text.strip_prefix("urn:oid:").map(|rest| rest.split('.').collect::<Vec<_>>());
    let valid = arcs.is_some_and(|arcs| {
        arcs.len() >= 2
            && matches!(arcs[0], "0" | "1" | "2")
            && arcs.iter().all(|arc| {
                !arc.is_empty() && arc.bytes().all(|b| b.is_ascii_digit()) && (arc.len() == 1 || !arc.starts_with('0'))
            })
    });
    expect(valid, "an OID (urn:oid:1.2.3)").map_err(|e| format!("{text:?} {e}"))
}

fn uuid(text: &str) -> Result<(), String> {
    let valid = text.strip_prefix("urn:uuid:").is_some_and(|rest| {
        let groups: Vec<&str> = rest.split('-').collect();
        groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
            && groups.iter().all(|g| g.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
    });
    expect(valid, "a UUID URI (urn:uuid: and lower-case hex)").map_err(|e| format!("{text:?} {e}"))
}

fn base64(text: &str) -> Result<(), String> {
    let compact: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    let padding = compact.iter().rev().take_while(|&&b| b == b'=').count();
    let valid = compact.len().is_multiple_of(4)
        && padding <= 2
        && compact[..compact.len() - padding]
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/');
    expect(valid, "base64").map_err(|e| format!("the value {e}"))
}

fn xhtml(text: &str) -> Result<(), String> {
    let valid = text.trim_start().starts_with("<div") && text.contains("http://www.w3.org/1999/xhtml");
    expect(valid, "an XHTML <div> in the XHTML namespace").map_err(|e| format!("the narrative {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ok(type_code: &str, value: Value) -> bool {
        check(type_code, &value).is_ok()
    }

    #[test]
    fn dates_and_times() {
        assert!(ok("date", json!("2024")));
        assert!(ok("date", json!("2024-02-29")));
        assert!(!ok("date", json!("2023-02-29")));
        assert!(!ok("date", json!("2024-13")));
        assert!(!ok("date", json!("0000")));
        assert!(ok("dateTime", json!("2025-06-01T09:00:00+02:00")));
        assert!(ok("dateTime", json!("2025-06")));
        assert!(!ok("dateTime", json!("2025-06-01T09:00:00")));
        assert!(!ok("dateTime", json!("2025-06-01T09:00+02:00")));
        assert!(ok("instant", json!("2025-06-01T09:00:00.123Z")));
        assert!(!ok("instant", json!("2025-06-01T09:00:00")));
        assert!(!ok("instant", json!("2025-06-01")));
        assert!(!ok("instant", json!("2025-06-01T09:00:00+15:00")));
        assert!(ok("time", json!("23:59:60")));
        assert!(!ok("time", json!("24:00:00")));
    }

    #[test]
    fn numbers_and_booleans() {
        assert!(ok("integer", json!(-5)));
        assert!(!ok("integer", json!("5")));
        assert!(!ok("integer", json!(2147483648_i64)));
        assert!(!ok("positiveInt", json!(0)));
        assert!(ok("unsignedInt", json!(0)));
        assert!(!ok("integer", json!(1.5)));
        assert!(ok("decimal", json!(1.5)));
        assert!(!ok("boolean", json!("true")));
        assert!(ok("integer64", json!("9007199254740993")));
        assert!(!ok("integer64", json!(5)));
    }

    #[test]
    fn string_like_types() {
        assert!(ok("code", json!("in-progress")));
        assert!(!ok("code", json!(" x")));
        assert!(!ok("code", json!("")));
        assert!(ok("id", json!("a-B.1")));
        assert!(!ok("id", json!("a_b")));
        assert!(ok("uri", json!("urn:oid:1.2.40.0.10.1.4.3.1")));
        assert!(!ok("uri", json!("has space")));
        assert!(ok("oid", json!("urn:oid:1.2.40.0")));
        assert!(!ok("oid", json!("urn:oid:1.02")));
        assert!(ok("uuid", json!("urn:uuid:0f3c9b1e-1111-2222-3333-444455556666")));
        assert!(!ok("uuid", json!("0f3c9b1e-1111-2222-3333-444455556666")));
        assert!(ok("base64Binary", json!("aGVsbG8=")));
        assert!(!ok("base64Binary", json!("aGVsbG8")));
        assert!(!ok("string", json!("")));
        assert!(ok("xhtml", json!("<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>")));
    }
}
