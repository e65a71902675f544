//! Raw query-string handling: FHIR needs repeated parameters and their order.

use std::borrow::Cow;

/// Decoded `name=value` pairs of a query string, in order, repetitions kept.
pub fn query_pairs(query: Option<&str>) -> impl Iterator<Item = (Cow<'_, str>, Cow<'_, str>)> {
    form_urlencoded::parse(query.unwrap_or_default().as_bytes())
}

/// Parameters that shape the result rather than select resources.
pub fn is_result_parameter(name: &str) -> bool {
    matches!(name, "_format" | "_pretty" | "_count" | "_cursor")
}

/// Re-encodes pairs as a query string.
pub fn encode(pairs: &[(String, String)]) -> String {
    let mut serializer = form_urlencoded::Serializer::new(String::new());
    for (name, value) in pairs {
        serializer.append_pair(name, value);
    }
    serializer.finish()
}
