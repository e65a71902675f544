//! The request context every handler passes to the domain.

use crate::REQUEST_ID;
use axum::extract::FromRequestParts;
use axum::http::Request;
use axum::http::request::Parts;
use std::convert::Infallible;
use termin_store::RequestContext;

/// Extracts the [`RequestContext`]. Authentication will fill in the principal here.
pub struct Ctx(pub RequestContext);

impl<S: Send + Sync> FromRequestParts<S> for Ctx {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let request_id = parts
            .headers
            .get(&REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        Ok(Ctx(RequestContext::anonymous(request_id)))
    }
}

/// The tracing span of a request: every log line inside carries the request id.
pub fn request_span<B>(request: &Request<B>) -> tracing::Span {
    let request_id = request
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    tracing::info_span!("request", method = %request.method(), uri = %request.uri(), request_id)
}
