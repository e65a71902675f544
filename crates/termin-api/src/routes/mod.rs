//! Request handlers of the REST interactions, grouped by interaction family (operations are
//! in [`crate::operations`]).

pub mod bundle_request;
pub mod history;
pub mod instance;
pub mod search;
pub mod subscriptions;
pub mod system;
pub mod type_level;

use crate::error::ApiError;
use crate::SharedState;
use axum::extract::FromRequestParts;
use axum::http::{HeaderMap, header, request::Parts};
use termin_fhir::{Issue, IssueCode, ResourceType};

/// Resolves the `{type}` path segment; unknown types are 404 naming the served ones.
pub fn resource_type(name: &str) -> Result<ResourceType, ApiError> {
    name.parse().map_err(|_| {
        ApiError::not_found(format!(
            "Resource type {name:?} is not served here. Supported types: {}",
            ResourceType::supported_list()
        ))
    })
}

/// The public FHIR base URL for links: configured, or derived from the `Host` header.
pub struct BaseUrl(pub String);

impl FromRequestParts<SharedState> for BaseUrl {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &SharedState) -> Result<Self, Self::Rejection> {
        if let Some(base) = &state.config.base_url {
            return Ok(BaseUrl(base.trim_end_matches('/').to_owned()));
        }
        let host = match parts.headers.get(header::HOST) {
            Some(value) => value.to_str().unwrap_or_default(),
            None => parts.uri.authority().map_or("localhost", |a| a.as_str()),
        };
        if !is_plain_authority(host) {
            return Err(ApiError::bad_request(Issue::error(
                IssueCode::Invalid,
                "The Host header must be host[:port] (a DNS name, an IPv4 address or an [IPv6] address); \
                 it becomes the base of links and Location",
            )));
        }
        Ok(BaseUrl(format!("http://{host}/fhir")))
    }
}

/// Whether a `Host` value is a plain `host[:port]`: a DNS-style name, an IPv4 address or an
/// IPv6 address in brackets, then an optional decimal port. Stricter than RFC 3986's reg-name:
/// percent-encoding and sub-delimiters have no use in a server's name and would carry markup
/// and quotes into links.
pub(crate) fn is_plain_authority(authority: &str) -> bool {
    let (host_ok, port) = match authority.strip_prefix('[') {
        Some(bracketed) => match bracketed.split_once(']') {
            Some((address, port)) => (address.parse::<std::net::Ipv6Addr>().is_ok(), port),
            None => return false,
        },
        None => {
            let (name, port) = authority.split_at(authority.find(':').unwrap_or(authority.len()));
            let name_ok = (1..=253).contains(&name.len())
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
            (name_ok, port)
        }
    };
    let port_ok = match port.strip_prefix(':') {
        None => port.is_empty(),
        Some(digits) => {
            (1..=5).contains(&digits.len())
                && digits.bytes().all(|b| b.is_ascii_digit())
                && digits.parse::<u32>().is_ok_and(|p| p <= 65535)
        }
    };
    host_ok && port_ok
}

/// Parses `If-Match: W/"3"` (or `"3"`); a malformed value is 400.
pub fn if_match(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or_default().trim();
    let tag = text.strip_prefix("W/").unwrap_or(text);
    tag.strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .and_then(|t| t.parse::<u64>().ok())
        .map(Some)
        .ok_or_else(|| {
            ApiError::bad_request(Issue::error(
                IssueCode::Invalid,
                format!("If-Match must be a version ETag like W/\"3\", got {text:?}"),
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(value: &str) -> Result<Option<u64>, ApiError> {
        let mut headers = HeaderMap::new();
        headers.insert(header::IF_MATCH, value.parse().unwrap());
        if_match(&headers)
    }

    #[test]
    fn host_headers_are_plain_host_and_port() {
        for plain in ["localhost", "termin.example.at", "127.0.0.1:8080", "[::1]", "[2001:db8::7]:443", "my_host:1"] {
            assert!(is_plain_authority(plain), "{plain:?}");
        }
        for bad in [
            "",
            ":80",
            "evil.example\"><script>",
            "user@host",
            "host:",
            "host:http",
            "host:65536",
            "host:8080:1",
            "host/path",
            "ex%41mple",
            "[::1",
            "[not-v6]:80",
            "[::1]x",
            &"a".repeat(254),
        ] {
            assert!(!is_plain_authority(bad), "{bad:?}");
        }
    }

    #[test]
    fn parses_if_match() {
        assert_eq!(parse("W/\"3\"").unwrap(), Some(3));
        assert_eq!(parse("\"12\"").unwrap(), Some(12));
        assert!(parse("banana").is_err());
        assert!(parse("W/\"x\"").is_err());
        assert_eq!(if_match(&HeaderMap::new()).unwrap(), None);
    }
}
