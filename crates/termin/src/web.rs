//! The web app served beside the FHIR API: the patients' booking page (`/`), the practice
//! calendar (`/staff`) and their scripts and styles (`/app/...`), all from the repository's
//! `web/` folder compiled into the binary. The pages are plain HTML, CSS and ES modules that
//! call `/fhir` themselves, so there is nothing to build and nothing to fetch at run time.
//! With authorization on, the pages log in by SMART on FHIR (authorization code with PKCE) at
//! the identity provider, whose origin their Content-Security-Policy then lets them reach for
//! the token exchange.

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use include_dir::{Dir, include_dir};
use std::hash::{Hash, Hasher};

static WEB: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/../../web");

/// Scripts and styles may come from this server only (no CDN, no inline code); the FHIR API is
/// on the same origin, and the identity provider (when there is one) is reached for tokens.
fn content_security_policy(identity_provider: Option<&str>) -> HeaderValue {
    let connect = identity_provider.map(|origin| format!("; connect-src 'self' {origin}")).unwrap_or_default();
    let policy = format!(
        "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'{connect}"
    );
    HeaderValue::from_str(&policy).unwrap_or_else(|_| HeaderValue::from_static("default-src 'self'"))
}

/// The origin (`scheme://host[:port]`) of an issuer URL; `None` when it is not an http(s) URL
/// or holds characters a header cannot carry.
fn origin(issuer: &str) -> Option<String> {
    let (scheme, rest) = issuer.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let valid = matches!(scheme, "http" | "https")
        && !authority.is_empty()
        && authority.chars().all(|c| c.is_ascii_alphanumeric() || ".-:[]_".contains(c));
    valid.then(|| format!("{scheme}://{authority}"))
}

/// The routes of the web app; `issuer` is the `--auth-issuer` when authorization is on.
pub fn router(issuer: Option<&str>) -> Router {
    let policy = content_security_policy(issuer.and_then(origin).as_deref());
    let (index, staff, assets) = (policy.clone(), policy.clone(), policy);
    Router::new()
        .route("/", get(|headers: HeaderMap| async move { page("index.html", &headers, &index) }))
        .route("/staff", get(|headers: HeaderMap| async move { page("staff.html", &headers, &staff) }))
        .route("/app/{*file}", get(|Path(file): Path<String>, headers: HeaderMap| async move { page(&file, &headers, &assets) }))
}

/// One embedded file, or `404`. Every answer is revalidated (`no-cache` with an `ETag`): file
/// names carry no version, so a cached copy must never outlive an upgrade of the server, and
/// an unchanged file costs a `304` without body.
fn page(file: &str, headers: &HeaderMap, policy: &HeaderValue) -> Response {
    let (Some(found), Some(content_type)) = (WEB.get_file(file), content_type(file)) else {
        return (StatusCode::NOT_FOUND, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], "Not found\n").into_response();
    };
    let etag = etag(found.contents());
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.split(',').any(|tag| tag.trim() == etag || tag.trim() == "*"));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, content_type)], found.contents()).into_response()
    };
    let answer = response.headers_mut();
    answer.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(value) = HeaderValue::from_str(&etag) {
        answer.insert(header::ETAG, value);
    }
    answer.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    answer.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    if content_type.starts_with("text/html") {
        answer.insert(header::CONTENT_SECURITY_POLICY, policy.clone());
    }
    response
}

/// The types of the files `web/` holds; anything else there is not served.
fn content_type(file: &str) -> Option<&'static str> {
    match file.rsplit_once('.')?.1 {
        "html" => Some("text/html; charset=utf-8"),
        "js" => Some("text/javascript; charset=utf-8"),
        "css" => Some("text/css; charset=utf-8"),
        "svg" => Some("image/svg+xml"),
        _ => None,
    }
}

/// A strong validator from the content (the same bytes give the same tag in one binary).
fn etag(contents: &[u8]) -> String {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    contents.hash(&mut hasher);
    format!("\"{:016x}\"", hasher.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    fn get(path: &str, if_none_match: Option<&str>) -> Response {
        let mut request = Request::get(path);
        if let Some(tag) = if_none_match {
            request = request.header(header::IF_NONE_MATCH, tag);
        }
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime.block_on(router(None).oneshot(request.body(Body::empty()).unwrap())).unwrap()
    }

    #[test]
    fn the_identity_providers_origin_may_be_connected_to() {
        assert_eq!(origin("https://login.example.at/realms/praxis").as_deref(), Some("https://login.example.at"));
        assert_eq!(origin("http://127.0.0.1:8080").as_deref(), Some("http://127.0.0.1:8080"));
        assert_eq!(origin("https://evil.example; script-src *"), None);
        assert_eq!(origin("file:///etc"), None);
        let policy = content_security_policy(Some("https://login.example.at"));
        assert!(policy.to_str().unwrap().ends_with("; connect-src 'self' https://login.example.at"));
        assert!(!content_security_policy(None).to_str().unwrap().contains("connect-src"));
    }

    #[test]
    fn pages_and_assets_have_their_types_and_are_revalidated() {
        for (path, expected) in [
            ("/", "text/html; charset=utf-8"),
            ("/staff", "text/html; charset=utf-8"),
            ("/app/booking.js", "text/javascript; charset=utf-8"),
            ("/app/style.css", "text/css; charset=utf-8"),
        ] {
            let response = get(path, None);
            assert_eq!(response.status(), StatusCode::OK, "{path}");
            assert_eq!(response.headers()[header::CONTENT_TYPE], expected, "{path}");
            assert_eq!(response.headers()[header::CACHE_CONTROL], "no-cache", "{path}");
            let tag = response.headers()[header::ETAG].to_str().unwrap().to_owned();
            assert_eq!(get(path, Some(&tag)).status(), StatusCode::NOT_MODIFIED, "{path}");
        }
        assert!(get("/", None).headers()[header::CONTENT_SECURITY_POLICY].to_str().unwrap().contains("default-src 'self'"));
    }

    #[test]
    fn unknown_files_are_not_found() {
        for path in ["/app/nothing.js", "/app/../Cargo.toml", "/app/"] {
            assert_eq!(get(path, None).status(), StatusCode::NOT_FOUND, "{path}");
        }
    }
}
