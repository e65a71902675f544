//! Server-level endpoints: liveness, readiness, the CapabilityStatement, and the answers
//! for unknown paths and methods.

use super::BaseUrl;
use crate::capability::capability_statement;
use crate::error::ApiError;
use crate::format::{FhirResponse, ResponseFormat};
use crate::SharedState;
use crate::query::query_pairs;
use axum::extract::{OriginalUri, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use termin_fhir::{Issue, IssueCode};

/// Liveness: the process answers HTTP.
pub async fn health(format: ResponseFormat) -> FhirResponse {
    FhirResponse::new(StatusCode::OK, format).json(json!({"status": "up"}))
}

/// Readiness: the database answers too.
pub async fn ready(State(state): State<SharedState>, format: ResponseFormat) -> Result<FhirResponse, ApiError> {
    state.domain.resources.ready().await?;
    Ok(FhirResponse::new(StatusCode::OK, format).json(json!({"status": "ready"})))
}

pub async fn metadata(
    State(state): State<SharedState>,
    format: ResponseFormat,
    base: BaseUrl,
) -> FhirResponse {
    let statement = capability_statement(&base.0, &state.domain, state.auth.as_ref(), state.platform.as_deref());
    FhirResponse::new(StatusCode::OK, format).json(statement)
}

/// `GET /fhir/.well-known/smart-configuration`: how clients get tokens for this server (the
/// provider's endpoints, as found by OpenID discovery) and what Termin understands.
pub async fn smart_configuration(State(state): State<SharedState>) -> Result<Response, ApiError> {
    let Some(auth) = &state.auth else {
        return Err(ApiError::not_found(
            "Authorization is not configured on this server (no --auth-issuer): it needs no tokens",
        ));
    };
    let mut configuration = json!({
        "issuer": auth.authenticator.issuer(),
        "grant_types_supported": ["authorization_code", "client_credentials"],
        "scopes_supported": crate::auth::SCOPES_SUPPORTED,
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
        "capabilities": crate::auth::CAPABILITIES,
    });
    if let Some(provider) = auth.authenticator.keys().metadata().await {
        let endpoints = [
            ("jwks_uri", Some(provider.jwks_uri)),
            ("authorization_endpoint", provider.authorization_endpoint),
            ("token_endpoint", provider.token_endpoint),
            ("introspection_endpoint", provider.introspection_endpoint),
            ("revocation_endpoint", provider.revocation_endpoint),
        ];
        for (name, url) in endpoints {
            if let Some(url) = url {
                configuration[name] = json!(url);
            }
        }
    }
    Ok(([(header::CONTENT_TYPE, "application/json")], configuration.to_string()).into_response())
}

/// `GET [base]` (also with a trailing `/`): the CapabilityStatement, as at `[base]/metadata`, so
/// a client pointed at the base learns what the server does. A query there other than `_format`
/// and `_pretty` would be a search across all types, which is not served.
pub async fn base_endpoint(
    State(state): State<SharedState>,
    OriginalUri(uri): OriginalUri,
    format: ResponseFormat,
    base: BaseUrl,
) -> Result<FhirResponse, ApiError> {
    if let Some((name, _)) = query_pairs(uri.query()).find(|(name, _)| !matches!(name.as_ref(), "_format" | "_pretty")) {
        return Err(ApiError::bad_request(
            Issue::error(
                IssueCode::NotSupported,
                "A search across all types (GET [base]?...) is not supported; search one type: GET [base]/[type]?...",
            )
            .at(name.into_owned()),
        ));
    }
    Ok(metadata(State(state), format, base).await)
}

pub async fn unknown_path(OriginalUri(uri): OriginalUri) -> ApiError {
    ApiError::not_found(format!("There is no FHIR endpoint at {}", uri.path()))
}

pub async fn method_not_allowed(method: Method, OriginalUri(uri): OriginalUri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        Issue::error(IssueCode::NotSupported, format!("{method} is not supported on {}", uri.path())),
    )
}
