//! The request context every handler passes to the domain.

use crate::REQUEST_ID;
use axum::extract::FromRequestParts;
use axum::http::Request;
use axum::http::request::Parts;
use std::convert::Infallible;
use termin_store::RequestContext;

/// Header carrying slot-hold tokens from `$hold`, for bookings and postponements by PUT.
pub const HOLD_TOKEN: &str = "x-hold-token";

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
        let hold_tokens = parts
            .headers
            .get_all(HOLD_TOKEN)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty());
        Ok(Ctx(RequestContext::anonymous(request_id).with_hold_tokens(hold_tokens)))
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
