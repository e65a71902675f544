//! The request context every handler passes to the domain.

use crate::REQUEST_ID;
use crate::auth::Caller;
use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequestParts};
use std::net::SocketAddr;
use axum::http::Request;
use axum::http::request::Parts;
use std::convert::Infallible;
use axum::http::{Extensions, HeaderMap};
use axum::middleware::Next;
use axum::response::Response;
use std::net::IpAddr;
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

/// The client's address found behind a trusted proxy ([`resolve_client_address`]).
#[derive(Debug, Clone, Copy)]
struct ForwardedFor(IpAddr);

/// The network address of the client: the TCP peer's, or behind a trusted proxy
/// (`--trusted-proxies`) the one it forwarded.
pub fn client_address(extensions: &Extensions) -> Option<String> {
    match extensions.get::<ForwardedFor>() {
        Some(ForwardedFor(client)) => Some(client.to_string()),
        None => extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(peer)| peer.ip().to_string()),
    }
}

/// Middleware: a request whose TCP peer is a trusted proxy comes from the right-most
/// `X-Forwarded-For` address that is not a trusted proxy itself (addresses further left were
/// written by the client and could be forged). Without trusted proxies the header is ignored.
pub async fn resolve_client_address(
    axum::extract::State(state): axum::extract::State<crate::SharedState>,
    mut request: Request<Body>,
    next: Next,
) -> Response {
    let trusted = &state.config.trusted_proxies;
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(peer)| peer.ip());
    if let Some(peer) = peer
        && trusted.contains(&peer)
        && let Some(client) = forwarded_client(request.headers(), trusted)
    {
        request.extensions_mut().insert(ForwardedFor(client));
    }
    next.run(request).await
}

/// The right-most `X-Forwarded-For` address that is not a trusted proxy; `None` when there is
/// none or the chain is garbled at that point.
fn forwarded_client(headers: &HeaderMap, trusted: &[IpAddr]) -> Option<IpAddr> {
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    for hop in hops.iter().rev() {
        let address = hop.parse::<IpAddr>().ok()?;
        if !trusted.contains(&address) {
            return Some(address);
        }
    }
    None
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
    fn the_client_is_the_last_hop_before_the_trusted_proxies() {
        let trusted: Vec<IpAddr> = vec!["10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap()];
        let with = |values: &[&str]| {
            let mut headers = HeaderMap::new();
            for value in values {
                headers.append("x-forwarded-for", value.parse().unwrap());
            }
            forwarded_client(&headers, &trusted).map(|a| a.to_string())
        };
        assert_eq!(with(&["203.0.113.7"]).as_deref(), Some("203.0.113.7"));
        assert_eq!(with(&["198.51.100.1, 203.0.113.7, 10.0.0.2"]).as_deref(), Some("203.0.113.7"), "the left is the client's word");
        assert_eq!(with(&["198.51.100.1", "2001:db8::1"]).as_deref(), Some("2001:db8::1"));
        assert_eq!(with(&["10.0.0.2"]), None);
        assert_eq!(with(&["203.0.113.7, garbage"]), None);
        assert_eq!(with(&[]), None);
    }

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
