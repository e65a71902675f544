//! The HTTP side of the audit trail: AuditEvents are read-only over the API (405), and every
//! refused request (401, 403) on a resource type is recorded. Accesses that succeed are
//! recorded by the domain.

use crate::SharedState;
use crate::auth::Caller;
use crate::context::Ctx;
use crate::error::ApiError;
use crate::registry::Interaction;
use axum::RequestExt;
use axum::extract::{FromRequestParts, MatchedPath, RawPathParams, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use termin_domain::{AuditAction, AuditRecord};
use termin_fhir::{Issue, IssueCode, ResourceType};

/// The type and id a routed request names, and its matched route.
async fn target(request: &mut Request) -> (Option<ResourceType>, Option<String>, String) {
    let path = request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned()).unwrap_or_default();
    let Ok(params) = request.extract_parts::<RawPathParams>().await else {
        return (None, None, path);
    };
    let param = |name: &str| params.iter().find(|(n, _)| *n == name).map(|(_, v)| v.to_owned());
    (param("type").and_then(|t| t.parse().ok()), param("id"), path)
}

/// 405 for any change of an AuditEvent (operations are answered by their own resource lists).
pub async fn read_only_audit_events(mut request: Request, next: Next) -> Response {
    let (resource_type, _, path) = target(&mut request).await;
    let refused = Interaction::of(request.method(), &path)
        .is_some_and(|i| !Interaction::served_for(ResourceType::AuditEvent).contains(&i));
    if resource_type == Some(ResourceType::AuditEvent) && refused {
        let why = format!("AuditEvents are recorded by the server and read-only: {} is not allowed", request.method());
        return ApiError::new(StatusCode::METHOD_NOT_ALLOWED, Issue::error(IssueCode::NotSupported, why)).into_response();
    }
    next.run(request).await
}

/// The AuditEvent action and code of a request.
pub(crate) fn action(method: &Method, interaction: Option<Interaction>) -> (AuditAction, String) {
    match interaction {
        Some(i) => {
            let action = match i {
                Interaction::Create => AuditAction::Create,
                Interaction::Update | Interaction::Patch => AuditAction::Update,
                Interaction::Delete => AuditAction::Delete,
                _ => AuditAction::Read,
            };
            (action, i.code().to_owned())
        }
        None if method == Method::GET => (AuditAction::Read, "operation".to_owned()),
        None => (AuditAction::Execute, "operation".to_owned()),
    }
}

/// Records refused requests on resource types: the agent is the token's principal when
/// [`crate::auth::authorize`] accepted the token (it leaves it on the response), otherwise the
/// anonymous client.
pub async fn record_denials(State(state): State<SharedState>, mut request: Request, next: Next) -> Response {
    let (resource_type, id, path) = target(&mut request).await;
    let method = request.method().clone();
    let (mut parts, body) = request.into_parts();
    let Ok(Ctx(anonymous)) = Ctx::from_request_parts(&mut parts, &()).await;
    let response = next.run(Request::from_parts(parts, body)).await;
    let status = response.status();
    let Some(resource_type) = resource_type.filter(|_| matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN)) else {
        return response;
    };
    let caller = match response.extensions().get::<Caller>() {
        Some(token) => Ctx::of(anonymous.context().request_id.clone(), Some(token), anonymous.client_address()),
        None => anonymous,
    };
    let (action, interaction) = action(&method, Interaction::of(&method, &path));
    let mut record = AuditRecord::new(action, interaction);
    if let Some(id) = id {
        if resource_type == ResourceType::Patient {
            record.patients.push(id.clone());
        }
        record.resources.push(format!("{resource_type}/{id}"));
    }
    state.domain.audit_denied(&caller, record, status.as_u16()).await;
    response
}
