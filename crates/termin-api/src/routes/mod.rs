//! Request handlers, grouped by interaction family.

pub mod find_hsp;
pub mod history;
pub mod instance;
pub mod operations;
pub mod search;
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
        let host = parts
            .headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| parts.uri.authority().map(|a| a.as_str()))
            .unwrap_or("localhost");
        Ok(BaseUrl(format!("http://{host}/fhir")))
    }
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
    fn parses_if_match() {
        assert_eq!(parse("W/\"3\"").unwrap(), Some(3));
        assert_eq!(parse("\"12\"").unwrap(), Some(12));
        assert!(parse("banana").is_err());
        assert!(parse("W/\"x\"").is_err());
        assert_eq!(if_match(&HeaderMap::new()).unwrap(), None);
    }
}
