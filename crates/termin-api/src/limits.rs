//! Limits on the request head (and a query string holding U+0000), answered with an
//! OperationOutcome. The HTTP parser refuses
//! far larger heads by itself with a bare status and no body; these limits sit well below its
//! own, so that an oversized or garbled request a real client sends gets a readable answer.

use crate::error::ApiError;
use axum::extract::Request;
use axum::http::{HeaderName, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use termin_fhir::{Issue, IssueCode};

/// Longest request target (path and query) accepted, in bytes; longer ones get 414.
pub const MAX_URI_BYTES: usize = 8 * 1024;
/// Most request header fields accepted; more get 431.
pub const MAX_HEADERS: usize = 100;
/// Largest total size of the header fields (`name: value` lines), in bytes; larger gets 431.
pub const MAX_HEADER_BYTES: usize = 32 * 1024;

/// The headers Termin interprets: their values must be ASCII text (an opaque non-ASCII value
/// would otherwise be read as absent).
static INTERPRETED: [HeaderName; 9] = [
    header::ACCEPT,
    header::CONTENT_TYPE,
    header::HOST,
    header::IF_MATCH,
    header::IF_MODIFIED_SINCE,
    header::IF_NONE_MATCH,
    HeaderName::from_static("if-none-exist"),
    HeaderName::from_static("prefer"),
    HeaderName::from_static(crate::context::HOLD_TOKEN),
];

/// Middleware: refuses a request whose head exceeds the limits or whose interpreted headers
/// are not ASCII text.
pub async fn check_head(request: Request, next: Next) -> Response {
    match head_error(&request) {
        Some(error) => error.into_response(),
        None => next.run(request).await,
    }
}

fn head_error(request: &Request) -> Option<ApiError> {
    let uri_bytes = request.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if uri_bytes > MAX_URI_BYTES {
        return Some(ApiError::new(
            StatusCode::URI_TOO_LONG,
            Issue::error(
                IssueCode::TooLong,
                format!(
                    "The request URI has {uri_bytes} bytes; at most {MAX_URI_BYTES} are accepted. \
                     Send long searches as POST [type]/_search with the parameters in the body"
                ),
            ),
        ));
    }
    if request.uri().query().is_some_and(|q| q.to_ascii_lowercase().contains("%00")) {
        // No FHIR value holds U+0000, and PostgreSQL refuses it in a statement's parameters.
        return Some(ApiError::bad_request(Issue::error(
            IssueCode::Invalid,
            "The query string contains %00 (U+0000), which no FHIR value holds",
        )));
    }
    let headers = request.headers();
    if headers.len() > MAX_HEADERS {
        return Some(too_large(format!(
            "The request has {} header fields; at most {MAX_HEADERS} are accepted",
            headers.len()
        )));
    }
    let header_bytes: usize = headers.iter().map(|(name, value)| name.as_str().len() + value.len() + 4).sum();
    if header_bytes > MAX_HEADER_BYTES {
        return Some(too_large(format!(
            "The request header fields have {header_bytes} bytes; at most {MAX_HEADER_BYTES} are accepted"
        )));
    }
    let not_text = INTERPRETED.iter().find(|name| headers.get_all(*name).iter().any(|v| v.to_str().is_err()))?;
    Some(ApiError::bad_request(Issue::error(
        IssueCode::Invalid,
        format!("The {not_text} header must be ASCII text"),
    )))
}

fn too_large(diagnostics: String) -> ApiError {
    ApiError::new(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, Issue::error(IssueCode::TooLong, diagnostics))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;

    fn status(request: axum::http::request::Builder) -> Option<StatusCode> {
        head_error(&request.body(Body::empty()).unwrap()).map(|e| e.status)
    }

    #[test]
    fn heads_within_the_limits_pass() {
        let uri = format!("/fhir/Patient?name={}", "a".repeat(MAX_URI_BYTES - 19));
        assert_eq!(uri.len(), MAX_URI_BYTES);
        assert_eq!(status(Request::get(uri.as_str()).header("accept", "application/fhir+json")), None);
        assert_eq!(status(Request::get("/").header("user-agent", &b"\xc3\xa4"[..])), None, "not interpreted");
    }

    #[test]
    fn heads_beyond_the_limits_are_refused() {
        let uri = format!("/fhir/Patient?name={}", "a".repeat(MAX_URI_BYTES));
        assert_eq!(status(Request::get(uri.as_str())), Some(StatusCode::URI_TOO_LONG));
        let mut many = Request::get("/");
        for i in 0..=MAX_HEADERS {
            many = many.header(format!("x-{i}"), "1");
        }
        assert_eq!(status(many), Some(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE));
        let big = Request::get("/").header("x-big", "a".repeat(MAX_HEADER_BYTES));
        assert_eq!(status(big), Some(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE));
        let binary = Request::get("/").header("prefer", &b"return=\xff"[..]);
        assert_eq!(status(binary), Some(StatusCode::BAD_REQUEST));
    }
}
