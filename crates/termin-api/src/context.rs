//! The request context every handler passes to the domain.

use crate::REQUEST_ID;
use crate::auth::Caller;
use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequestParts};
use std::net::SocketAddr;
use axum::http::Request;
use axum::http::request::Parts;
use std::convert::Infallible;
use axum::http::Extensions;
use termin_domain::{Caller as DomainCaller, PublicBooking};
use termin_store::RequestContext;

/// Header carrying slot-hold tokens from `$hold`, for bookings and postponements by PUT.
pub const HOLD_TOKEN: &str = "x-hold-token";

/// Extracts the domain's caller, with the principal [`crate::auth::authorize`] found in the token.
pub struct Ctx(pub DomainCaller);

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
        let address = client_address(&parts.extensions);
        let mut caller = Ctx::of(request_id.to_owned(), parts.extensions.get::<Caller>(), address.as_deref());
        if let Some(admitted) = parts.extensions.get::<PublicBooking>() {
            caller = caller.with_public_booking(admitted.clone());
        }
        Ok(Ctx(caller.with_hold_tokens(hold_tokens)))
    }
}

impl Ctx {
    /// The domain's caller: the request, the principal of its accepted token, its address.
    pub fn of(request_id: String, token: Option<&Caller>, address: Option<&str>) -> DomainCaller {
        let mut ctx = RequestContext::anonymous(request_id);
        if let Some(caller) = token {
            ctx = ctx.with_token(caller.principal.clone(), caller.scopes.clone());
        }
        let ctx = DomainCaller::new(ctx);
        match address {
            Some(address) => ctx.with_client_address(address),
            None => ctx,
        }
    }
}

/// The network address of the client: the TCP peer's.
pub fn client_address(extensions: &Extensions) -> Option<String> {
    extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(peer)| peer.ip().to_string())
}

/// Longest `X-Request-Id` a client may send and have kept.
const MAX_REQUEST_ID_LEN: usize = 128;

/// Whether a client's `X-Request-Id` is kept: 1 to 128 characters of `[A-Za-z0-9._:-]`, which
/// are safe as they are in logs, headers and HTML. Anything else is replaced by a generated id.
fn is_acceptable_request_id(id: &[u8]) -> bool {
    (1..=MAX_REQUEST_ID_LEN).contains(&id.len())
        && id.iter().all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// Middleware in front of the request id layer: keeps the client's first `X-Request-Id` only
/// when it is acceptable, so that otherwise a new one is generated and used everywhere (response
/// header, log span, [`RequestContext`]).
pub async fn keep_acceptable_request_id(mut request: Request<Body>) -> Request<Body> {
    let headers = request.headers_mut();
    let kept = headers
        .get(&REQUEST_ID)
        .filter(|id| is_acceptable_request_id(id.as_bytes()))
        .cloned();
    headers.remove(&REQUEST_ID);
    if let Some(id) = kept {
        headers.insert(&REQUEST_ID, id);
    }
    request
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_short_tokens() {
        for kept in ["a", "3f2b9c1e-8d4a-4c5e-9f00-123456789abc", "node-1:req.42_x", &"x".repeat(128)] {
            assert!(is_acceptable_request_id(kept.as_bytes()), "{kept:?}");
        }
        for replaced in ["", "<script>", "a b", "id\"", "ä", "a/b", &"x".repeat(129)] {
            assert!(!is_acceptable_request_id(replaced.as_bytes()), "{replaced:?}");
        }
    }
}
