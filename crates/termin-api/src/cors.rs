//! CORS for browser apps on other origins (patient booking pages): which origins may call,
//! with which FHIR methods and headers, and which response headers they may read.

use axum::extract::Request;
use axum::http::header::{self, HeaderName, HeaderValue};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use tower_http::cors::{AllowOrigin, CorsLayer};

/// The origins allowed to call the API from a browser on another origin.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum CorsOrigins {
    /// No CORS: no CORS headers, `OPTIONS` is not served.
    #[default]
    None,
    /// Every origin (`*`).
    Any,
    /// These origins, as browsers send them: `https://booking.example.at`.
    Only(Vec<HeaderValue>),
}

impl CorsOrigins {
    /// Reads `--cors-allowed-origins`: no entries, `*` alone, or `scheme://host[:port]` origins.
    pub fn parse(entries: &[String]) -> Result<CorsOrigins, String> {
        let entries: Vec<&str> = entries.iter().map(|e| e.trim()).filter(|e| !e.is_empty()).collect();
        match entries.as_slice() {
            [] => Ok(CorsOrigins::None),
            ["*"] => Ok(CorsOrigins::Any),
            _ => entries
                .iter()
                .map(|entry| {
                    origin(entry).ok_or_else(|| {
                        format!("cors_allowed_origins: {entry:?} is not an origin like https://booking.example.at (or * alone)")
                    })
                })
                .collect::<Result<_, _>>()
                .map(CorsOrigins::Only),
        }
    }

    pub(crate) fn layer(&self) -> Option<CorsLayer> {
        let allow_origin = match self {
            CorsOrigins::None => return None,
            CorsOrigins::Any => AllowOrigin::any(),
            CorsOrigins::Only(origins) => AllowOrigin::list(origins.iter().cloned()),
        };
        Some(
            CorsLayer::new()
                .allow_origin(allow_origin)
                .allow_methods([Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE])
                .allow_headers([
                    header::AUTHORIZATION,
                    header::CONTENT_TYPE,
                    header::IF_MATCH,
                    header::IF_MODIFIED_SINCE,
                    HeaderName::from_static("if-none-exist"),
                    header::IF_NONE_MATCH,
                    HeaderName::from_static("prefer"),
                    crate::REQUEST_ID,
                    HeaderName::from_static(crate::context::HOLD_TOKEN),
                ])
                .expose_headers([
                    header::ETAG,
                    header::LOCATION,
                    header::CONTENT_LOCATION,
                    header::LAST_MODIFIED,
                    crate::REQUEST_ID,
                ]),
        )
    }
}

/// `scheme://host[:port]`, lower-cased as browsers send it; no path, no trailing slash.
fn origin(entry: &str) -> Option<HeaderValue> {
    let (scheme, authority) = entry.split_once("://")?;
    let scheme_ok = !scheme.is_empty() && scheme.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'-');
    if !scheme_ok || !crate::routes::is_plain_authority(authority) {
        return None;
    }
    HeaderValue::from_str(&entry.to_ascii_lowercase()).ok()
}

/// Middleware around the CORS layer, which answers every `OPTIONS` itself: preflights answer
/// `204`, and an answer without `Access-Control-Allow-Origin` (an origin not allowed) carries
/// no other CORS header either.
pub(crate) async fn finish_answer(request: Request, next: Next) -> Response {
    let preflight = request.method() == Method::OPTIONS;
    let mut response = next.run(request).await;
    if preflight {
        *response.status_mut() = StatusCode::NO_CONTENT;
    }
    let headers = response.headers_mut();
    if !headers.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN) {
        for name in [
            header::ACCESS_CONTROL_ALLOW_METHODS,
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
        ] {
            headers.remove(name);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(entries: &[&str]) -> Result<CorsOrigins, String> {
        CorsOrigins::parse(&entries.iter().map(|e| e.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn allowed_origins_are_none_any_or_plain_origins() {
        assert_eq!(parse(&[]).unwrap(), CorsOrigins::None);
        assert_eq!(parse(&["*"]).unwrap(), CorsOrigins::Any);
        assert_eq!(
            parse(&["https://Booking.example.at", " http://localhost:3000"]).unwrap(),
            CorsOrigins::Only(vec![
                HeaderValue::from_static("https://booking.example.at"),
                HeaderValue::from_static("http://localhost:3000"),
            ])
        );
        for bad in ["*,https://a.example", "booking.example.at", "https://a.example/", "https://a.example/app", "https://"] {
            let entries: Vec<&str> = bad.split(',').collect();
            assert!(parse(&entries).is_err(), "{bad:?}");
        }
    }
}
