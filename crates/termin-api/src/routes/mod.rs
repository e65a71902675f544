//! Request handlers of the REST interactions, grouped by interaction family (operations are
//! in [`crate::operations`]).

pub mod bundle_request;
pub mod history;
pub mod instance;
pub mod search;
pub mod subscriptions;
pub mod system;
pub mod system_search;
pub mod type_level;

use crate::SharedState;
use crate::context::Ctx;
use crate::error::ApiError;
use crate::format::ResponseFormat;
use axum::extract::{FromRequestParts, OriginalUri, Path};
use axum::http::{HeaderMap, Uri, header, request::Parts};
use axum::response::{IntoResponse, Response};
use termin_domain::Caller;
use termin_fhir::{Issue, IssueCode, ResourceType};
use termin_store::Permission;

/// Resolves the `{type}` path segment; unknown types are 404 naming the served ones.
pub fn resource_type(name: &str) -> Result<ResourceType, ApiError> {
    name.parse().map_err(|_| {
        ApiError::not_found(format!(
            "Resource type {name:?} is not served here. Supported types: {}",
            ResourceType::supported_list()
        ))
    })
}

/// A request on a resource type (`/fhir/{type}`, `/fhir/{type}/_search`, `/fhir/{type}/_history`):
/// what the type-level handlers (search, create, conditional update and delete, type history)
/// all take from it, extracted in the order of the lists they had (caller, path, URI, response
/// format, base URL). The type is resolved by [`TypeRequest::resource_type`] in the handler, as
/// before, so that a bad body of a create or conditional update is still answered first.
pub struct TypeRequest {
    pub state: SharedState,
    pub ctx: Caller,
    type_name: String,
    /// The URI as the client sent it (before any nesting of routers).
    pub uri: Uri,
    pub format: ResponseFormat,
    pub base: BaseUrl,
}

impl TypeRequest {
    /// The `{type}` of the path; unknown types are 404 naming the served ones.
    pub fn resource_type(&self) -> Result<ResourceType, ApiError> {
        resource_type(&self.type_name)
    }
}

impl FromRequestParts<SharedState> for TypeRequest {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &SharedState) -> Result<Self, Self::Rejection> {
        let Ok(Ctx(ctx)) = Ctx::from_request_parts(parts, state).await;
        let Path(type_name) =
            Path::<String>::from_request_parts(parts, state).await.map_err(IntoResponse::into_response)?;
        let Ok(OriginalUri(uri)) = OriginalUri::from_request_parts(parts, state).await;
        let format = ResponseFormat::from_request_parts(parts, state).await.map_err(IntoResponse::into_response)?;
        let base = BaseUrl::from_request_parts(parts, state).await.map_err(IntoResponse::into_response)?;
        Ok(TypeRequest { state: state.clone(), ctx, type_name, uri, format, base })
    }
}

/// The types a system-level search or history covers. Named by `_type` (comma-separated),
/// each must be served and searchable by the caller, exactly as the type-level interaction
/// would demand (`401` without a token, `403` without a scope); without `_type`, every served
/// type the caller may search.
pub fn system_types(state: &SharedState, ctx: &Caller, named: Option<&str>) -> Result<Vec<ResourceType>, ApiError> {
    let auth = state.auth.as_ref();
    let Some(named) = named else {
        let readable: Vec<ResourceType> = ResourceType::ALL
            .into_iter()
            .filter(|t| auth.is_none_or(|auth| auth.may(ctx.context(), *t, Permission::Search)))
            .collect();
        if readable.is_empty() {
            // Nothing is readable: answer as a type-level search would (401 or 403).
            crate::auth::authorize_entry(auth, ctx.context(), ResourceType::Patient, Permission::Search)?;
        }
        return Ok(readable);
    };
    let mut types = Vec::new();
    for name in named.split(',').map(str::trim) {
        let resource_type = name.parse::<ResourceType>().map_err(|_| {
            ApiError::bad_request(
                Issue::error(
                    IssueCode::NotSupported,
                    format!(
                        "_type names {name:?}, which is not served here. Supported types: {}",
                        ResourceType::supported_list()
                    ),
                )
                .at("_type"),
            )
        })?;
        crate::auth::authorize_entry(auth, ctx.context(), resource_type, Permission::Search)?;
        if !types.contains(&resource_type) {
            types.push(resource_type);
        }
    }
    Ok(types)
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
    tag.strip_prefix('"').and_then(|t| t.strip_suffix('"')).and_then(|t| t.parse::<u64>().ok()).map(Some).ok_or_else(
        || {
            ApiError::bad_request(Issue::error(
                IssueCode::Invalid,
                format!("If-Match must be a version ETag like W/\"3\", got {text:?}"),
            ))
        },
    )
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
