//! Authorization: Termin as a SMART on FHIR resource server. Every routed request passes
//! [`authorize`], which maps it to the permission it needs (type and `c r u d s`) in one
//! place, checks the bearer token and its scopes, and hands the caller on to the handlers
//! through the [`RequestContext`](termin_store::RequestContext). Anonymous booking
//! (`--public-booking`) admits some requests without a token ([`public_booking`]).

mod keys;
pub mod public_booking;
mod token;

pub use keys::{Discovery, KeySource};
pub use public_booking::PublicBooking;
pub use token::{Authenticator, Caller};

use crate::SharedState;
use crate::error::ApiError;
use crate::operations::{self, Routed};
use crate::registry::Interaction;
use axum::RequestExt;
use crate::context::Ctx;
use axum::extract::{FromRequestParts, MatchedPath, RawPathParams, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::time::Instant;
use termin_domain::{AuditRecord, PublicBooking as Admitted};
use termin_fhir::{Issue, IssueCode, ResourceType};
use termin_store::{Condition, Permission, RequestContext};

/// The types of the public directory (`--public-read`): what booking portals show anyone.
pub const DIRECTORY: [ResourceType; 7] = [
    ResourceType::HealthcareService,
    ResourceType::Schedule,
    ResourceType::Slot,
    ResourceType::Practitioner,
    ResourceType::PractitionerRole,
    ResourceType::Organization,
    ResourceType::Location,
];

/// The scopes `.well-known/smart-configuration` lists: the context and identity scopes and
/// the resource scopes at every level (narrower ones, per type and permission, work as well).
pub const SCOPES_SUPPORTED: [&str; 7] = [
    "openid",
    "fhirUser",
    "launch/patient",
    "offline_access",
    "patient/*.cruds",
    "user/*.cruds",
    "system/*.cruds",
];

/// What Termin as a resource server supports of SMART App Launch (clients and launch are
/// the identity provider's business).
pub const CAPABILITIES: [&str; 5] =
    ["launch-standalone", "permission-v1", "permission-v2", "permission-user", "sso-openid-connect"];

/// Authorization settings; absent, the server runs unauthenticated.
pub struct Authorization {
    pub authenticator: Authenticator,
    /// Whether the directory types (and `$findHSP`) are readable without a token.
    pub public_read: bool,
    /// `Some`: `$hold` and `$book` work without a token, within this rate limit.
    pub public_booking: Option<PublicBooking>,
}

impl Authorization {
    fn is_public(&self, resource: ResourceType, permission: Permission) -> bool {
        self.public_read && matches!(permission, Permission::Read | Permission::Search) && DIRECTORY.contains(&resource)
    }

    /// Whether the caller may see resources of `resource` (for resources a search adds or
    /// reaches through other types: includes, chains, `_has`).
    pub fn may(&self, ctx: &RequestContext, resource: ResourceType, permission: Permission) -> bool {
        self.is_public(resource, permission) || ctx.may(resource, permission)
    }
}

/// A search that reaches other types through chains or `_has` needs to be allowed to search
/// them too: otherwise it could probe, say, whether a patient has appointments. `Err` names
/// the first type it may not search.
pub fn check_reach(auth: &Authorization, ctx: &RequestContext, conditions: &[Condition]) -> Result<(), ApiError> {
    for condition in conditions {
        let (reached, inner) = match condition {
            Condition::Chain { target_type, condition, .. } => (Some(*target_type), std::slice::from_ref(&**condition)),
            Condition::ReferencedBy { source_type, condition, .. } => (Some(*source_type), std::slice::from_ref(&**condition)),
            Condition::Not(condition) => (None, std::slice::from_ref(&**condition)),
            Condition::Any(conditions) => (None, conditions.as_slice()),
            _ => (None, &[][..]),
        };
        if let Some(resource) = reached
            && !auth.may(ctx, resource, Permission::Search)
        {
            return Err(forbidden_error(resource, Permission::Search));
        }
        check_reach(auth, ctx, inner)?;
    }
    Ok(())
}

/// What a request needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Need {
    /// Nothing: server metadata and health; tokens are not even looked at.
    Nothing,
    /// A valid token, whatever its scopes (the handler answers: unknown type or operation,
    /// `$validate`, which touches no data).
    Token,
    /// A scope granting the permission on the type (or the public directory).
    Access(ResourceType, Permission),
    /// A batch or transaction Bundle: the token, when one is sent, must be valid; each entry
    /// is then authorised as if sent alone ([`authorize_entry`]).
    Entries,
}

/// The one map from routes to permissions: interactions by the registry, operations by
/// their definitions.
fn need(method: &Method, path: &str, params: &RawPathParams) -> Need {
    if method == Method::POST && path.trim_end_matches('/') == crate::routes::bundle_request::PATH {
        return Need::Entries;
    }
    let param = |name: &str| params.iter().find(|(n, _)| *n == name).map(|(_, v)| v);
    let Some(type_name) = param("type") else {
        return Need::Nothing;
    };
    let Ok(resource_type) = type_name.parse::<ResourceType>() else {
        return Need::Token;
    };
    match operations::routed(method, path) {
        Some(Routed::Operation(op)) if op.resources.contains(&resource_type) => {
            op.needs.map_or(Need::Token, |(resource, permission)| Need::Access(resource, permission))
        }
        // The handler answers that there is no such operation.
        Some(_) => Need::Token,
        None => match Interaction::of(method, path) {
            Some(interaction) => Need::Access(resource_type, interaction.permission()),
            None => Need::Nothing,
        },
    }
}

/// What an anonymous request on this route could be admitted for under `--public-booking`:
/// the booking operations, and read, update and PATCH of one Appointment (with its secret).
fn public_booking_route(method: &Method, path: &str, params: &RawPathParams) -> Option<Admitted> {
    let param = |name: &str| params.iter().find(|(n, _)| *n == name).map(|(_, v)| v);
    let resource_type = param("type")?.parse::<ResourceType>().ok()?;
    match operations::routed(method, path) {
        Some(Routed::Operation(op)) if operations::PUBLIC_BOOKING.contains(&op) && op.resources.contains(&resource_type) => {
            Some(Admitted::Book)
        }
        Some(_) => None,
        None => match Interaction::of(method, path)? {
            Interaction::Read | Interaction::Update | Interaction::Patch if resource_type == ResourceType::Appointment => {
                Some(Admitted::Appointment(param("id")?.to_owned()))
            }
            _ => None,
        },
    }
}

/// Admits an anonymous request under `--public-booking` (marked with what it was admitted
/// for), or answers it: 429 over the rate limit, 401 without a secret, 404 with a wrong one.
async fn admit_anonymous(state: &SharedState, public: &PublicBooking, route: Admitted, mut request: Request) -> Result<Request, Response> {
    let address = crate::context::client_address(request.extensions());
    match &route {
        Admitted::Book => {
            if let Err(retry_after) = public.admit(address.as_deref().unwrap_or_default(), Instant::now()) {
                metrics::counter!("termin_public_booking_throttled_total").increment(1);
                return Err(public_booking::too_many_requests(retry_after));
            }
        }
        Admitted::Appointment(id) => {
            let Some(secret) = public_booking::access_secret(request.headers()) else {
                return Err(unauthorized("This request needs an access token (Authorization: Bearer <token>)"));
            };
            match state.domain.scheduling.opens_appointment(id, secret).await {
                Ok(true) => {}
                Ok(false) => {
                    // A wrong secret is recorded like any refused attempt, and answered as an
                    // unknown Appointment.
                    let (mut parts, _) = request.into_parts();
                    let Ok(Ctx(caller)) = <Ctx as FromRequestParts<()>>::from_request_parts(&mut parts, &()).await;
                    let path = parts.extensions.get::<MatchedPath>().map(|p| p.as_str().to_owned()).unwrap_or_default();
                    let (action, interaction) = crate::audit::action(&parts.method, Interaction::of(&parts.method, &path));
                    let mut record = AuditRecord::new(action, interaction);
                    record.resources.push(format!("Appointment/{id}"));
                    state.domain.audit_denied(&caller, record, StatusCode::NOT_FOUND.as_u16()).await;
                    return Err(public_booking::not_found(id));
                }
                Err(e) => return Err(ApiError::from(e).into_response()),
            }
        }
    }
    request.extensions_mut().insert(route);
    Ok(request)
}

/// `Authorization: Bearer <token>`: `Ok(None)` without the header.
fn bearer(headers: &HeaderMap) -> Result<Option<&str>, String> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let text = value.to_str().map_err(|_| "the Authorization header is not ASCII".to_owned())?;
    match text.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() => {
            Ok(Some(token.trim()))
        }
        _ => Err("the Authorization header must be \"Bearer <access token>\"".to_owned()),
    }
}

/// Middleware on every routed request (see the module documentation).
pub async fn authorize(State(state): State<SharedState>, mut request: Request, next: Next) -> Response {
    let Some(auth) = &state.auth else {
        return next.run(request).await;
    };
    let path = request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned()).unwrap_or_default();
    let (need, public_route) = match request.extract_parts::<RawPathParams>().await {
        Ok(params) => (need(request.method(), &path, &params), public_booking_route(request.method(), &path, &params)),
        // Undecodable path segments: the handler answers 400 whoever asks.
        Err(_) => (Need::Nothing, None),
    };
    if need == Need::Nothing {
        return next.run(request).await;
    }
    let caller = match bearer(request.headers()) {
        Ok(None) => None,
        Ok(Some(token)) => match auth.authenticator.validate(token).await {
            Ok(caller) => Some(caller),
            Err(why) => {
                tracing::info!(%why, "access token refused");
                return unauthorized(&format!("The access token was refused: {why}"));
            }
        },
        Err(why) => return unauthorized(&why),
    };
    match (need, caller) {
        (Need::Access(resource, permission), None) if auth.is_public(resource, permission) => next.run(request).await,
        (Need::Entries, None) => next.run(request).await,
        (_, None) => match (&auth.public_booking, public_route) {
            (Some(public), Some(route)) => match admit_anonymous(&state, public, route, request).await {
                Ok(request) => next.run(request).await,
                Err(response) => response,
            },
            _ => unauthorized("This request needs an access token (Authorization: Bearer <token>)"),
        },
        (Need::Access(resource, permission), Some(caller))
            if !auth.is_public(resource, permission) && !caller.scopes.iter().any(|s| s.grants(resource, permission)) =>
        {
            // The audit trail records who was refused.
            let mut response = forbidden(resource, permission);
            response.extensions_mut().insert(caller);
            response
        }
        (_, Some(caller)) => {
            request.extensions_mut().insert(caller.clone());
            let mut response = next.run(request).await;
            response.extensions_mut().insert(caller);
            response
        }
    }
}

/// Authorises one entry of a batch or transaction Bundle as [`authorize`] would the same
/// request sent alone: 401 without a token, 403 without a scope granting `permission`.
pub fn authorize_entry(
    auth: Option<&Authorization>,
    ctx: &RequestContext,
    resource: ResourceType,
    permission: Permission,
) -> Result<(), ApiError> {
    let Some(auth) = auth else {
        return Ok(());
    };
    match (auth.may(ctx, resource, permission), &ctx.principal) {
        (true, _) => Ok(()),
        (false, termin_store::Principal::Anonymous) => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            Issue::error(IssueCode::Login, "This request needs an access token (Authorization: Bearer <token>)"),
        )),
        (false, _) => Err(forbidden_error(resource, permission)),
    }
}

/// 401 with the `WWW-Authenticate` challenge of RFC 6750.
fn unauthorized(why: &str) -> Response {
    let mut response = ApiError::new(StatusCode::UNAUTHORIZED, Issue::error(IssueCode::Login, why)).into_response();
    let challenge = format!(
        "Bearer realm=\"termin\", error=\"invalid_token\", error_description=\"{}\"",
        why.replace(['"', '\\'], "'")
    );
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

fn forbidden_error(resource: ResourceType, permission: Permission) -> ApiError {
    let scope = format!("{resource}.{}", permission.letter());
    ApiError::new(
        StatusCode::FORBIDDEN,
        Issue::error(
            IssueCode::Forbidden,
            format!("This needs an access token with a scope granting {scope} (e.g. user/{scope})"),
        ),
    )
}

fn forbidden(resource: ResourceType, permission: Permission) -> Response {
    let scope = format!("{resource}.{}", permission.letter());
    let mut response = forbidden_error(resource, permission).into_response();
    if let Ok(value) = HeaderValue::from_str(&format!("Bearer realm=\"termin\", error=\"insufficient_scope\", scope=\"user/{scope}\"")) {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_bearer_headers() {
        let mut headers = HeaderMap::new();
        assert_eq!(bearer(&headers), Ok(None));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer abc.def.ghi"));
        assert_eq!(bearer(&headers), Ok(Some("abc.def.ghi")));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("bearer  x "));
        assert_eq!(bearer(&headers), Ok(Some("x")));
        for bad in ["Basic dXNlcjpwdw==", "Bearer", "Bearer ", "abc"] {
            headers.insert(header::AUTHORIZATION, HeaderValue::from_static(bad));
            assert!(bearer(&headers).is_err(), "{bad}");
        }
    }
}
