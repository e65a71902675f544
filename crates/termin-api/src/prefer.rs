//! The `Prefer` request header (RFC 7240) as FHIR uses it.

use axum::http::HeaderMap;

/// What a client wants back from POST/PUT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReturnPreference {
    /// The full resource: the default, since the AT Scheduling IG makes it a SHALL.
    #[default]
    Representation,
    Minimal,
    OperationOutcome,
}

pub fn return_preference(headers: &HeaderMap) -> ReturnPreference {
    for value in prefer_tokens(headers) {
        match value.as_str() {
            "return=minimal" => return ReturnPreference::Minimal,
            "return=operationoutcome" => return ReturnPreference::OperationOutcome,
            "return=representation" => return ReturnPreference::Representation,
            _ => {}
        }
    }
    ReturnPreference::default()
}

/// `Prefer: handling=strict` rejects searches with unknown or unsupported parameters;
/// `handling=lenient` (the default) ignores them.
pub fn search_handling(headers: &HeaderMap) -> termin_search::Handling {
    for value in prefer_tokens(headers) {
        match value.as_str() {
            "handling=strict" => return termin_search::Handling::Strict,
            "handling=lenient" => return termin_search::Handling::Lenient,
            _ => {}
        }
    }
    termin_search::Handling::default()
}

/// Lower-cased `name=value` tokens of every `Prefer` header, quotes removed.
fn prefer_tokens(headers: &HeaderMap) -> impl Iterator<Item = String> + '_ {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split([',', ';']))
        .map(|t| t.trim().replace(['"', ' '], "").to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefer(value: &str) -> ReturnPreference {
        let mut headers = HeaderMap::new();
        headers.insert("prefer", value.parse().unwrap());
        return_preference(&headers)
    }

    #[test]
    fn reads_return_preference() {
        assert_eq!(prefer("return=minimal"), ReturnPreference::Minimal);
        assert_eq!(prefer("respond-async, return=OperationOutcome"), ReturnPreference::OperationOutcome);
        assert_eq!(prefer("return=\"representation\""), ReturnPreference::Representation);
        assert_eq!(return_preference(&HeaderMap::new()), ReturnPreference::Representation);
    }

    #[test]
    fn reads_search_handling() {
        let mut headers = HeaderMap::new();
        assert_eq!(search_handling(&headers), termin_search::Handling::Lenient);
        headers.insert("prefer", "return=minimal, handling=strict".parse().unwrap());
        assert_eq!(search_handling(&headers), termin_search::Handling::Strict);
    }
}
