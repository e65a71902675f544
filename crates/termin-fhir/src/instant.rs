//! FHIR `instant` values written by the server (meta.lastUpdated and friends).

use jiff::Timestamp;

/// Formats a timestamp as a FHIR instant in UTC with millisecond precision.
///
/// Fixed width and UTC make stored instants sort lexically in time order.
pub fn format_instant(ts: Timestamp) -> String {
    ts.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// Formats a timestamp as an HTTP date (RFC 9110 IMF-fixdate) for `Last-Modified`.
pub fn format_http_date(ts: Timestamp) -> String {
    ts.strftime("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

/// Reads an HTTP date (`If-Modified-Since`) in the IMF-fixdate form RFC 9110 requires senders
/// to use; `None` for anything else (RFC 9110 says to ignore an invalid date).
pub fn parse_http_date(text: &str) -> Option<Timestamp> {
    let civil = jiff::civil::DateTime::strptime("%a, %d %b %Y %H:%M:%S GMT", text.trim()).ok()?;
    jiff::tz::TimeZone::UTC.to_timestamp(civil).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_fixed_width_utc() {
        let ts: Timestamp = "2026-03-29T01:00:00.5+01:00".parse().unwrap();
        assert_eq!(format_instant(ts), "2026-03-29T00:00:00.500Z");
        assert_eq!(format_http_date(ts), "Sun, 29 Mar 2026 00:00:00 GMT");
    }

    #[test]
    fn reads_http_dates_it_writes() {
        let ts: Timestamp = "2026-03-29T00:00:07Z".parse().unwrap();
        assert_eq!(parse_http_date(&format_http_date(ts)), Some(ts));
        assert_eq!(parse_http_date("Sunday, 29-Mar-26 00:00:07 GMT"), None);
        assert_eq!(parse_http_date("yesterday"), None);
    }
}
