//! Errors as HTTP responses: a status and an OperationOutcome, always.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::any::Any;
use termin_domain::DomainError;
use termin_fhir::{Issue, IssueCode, OperationOutcome};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub outcome: OperationOutcome,
}

impl ApiError {
    pub fn new(status: StatusCode, issue: Issue) -> Self {
        ApiError {
            status,
            outcome: OperationOutcome::single(issue),
        }
    }

    pub fn bad_request(issue: Issue) -> Self {
        Self::new(StatusCode::BAD_REQUEST, issue)
    }

    pub fn not_found(diagnostics: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, Issue::error(IssueCode::NotFound, diagnostics))
    }

    /// A 500 whose cause is in the server log only; the caller logs it.
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            Issue::error(
                IssueCode::Exception,
                "Internal server error; the request id in X-Request-Id identifies it in the server log",
            ),
        )
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        let (status, outcome) = match e {
            DomainError::Invalid(outcome) => (StatusCode::BAD_REQUEST, outcome),
            DomainError::NotFound(what) => (
                StatusCode::NOT_FOUND,
                OperationOutcome::single(Issue::error(IssueCode::NotFound, format!("{what} is not known"))),
            ),
            DomainError::Gone(what) => (
                StatusCode::GONE,
                OperationOutcome::single(Issue::error(IssueCode::Deleted, format!("{what} has been deleted"))),
            ),
            DomainError::PreconditionFailed(outcome) => (StatusCode::PRECONDITION_FAILED, outcome),
            DomainError::Conflict(outcome) => (StatusCode::CONFLICT, outcome),
            DomainError::Forbidden(outcome) => (StatusCode::FORBIDDEN, outcome),
            DomainError::Unprocessable(outcome) | DomainError::NotConformant(outcome) => {
                (StatusCode::UNPROCESSABLE_ENTITY, outcome)
            }
            DomainError::NotAllowed(why) => (
                StatusCode::METHOD_NOT_ALLOWED,
                OperationOutcome::single(Issue::error(IssueCode::NotSupported, why)),
            ),
            DomainError::Unavailable(why) => {
                tracing::error!(%why, "storage unavailable");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    OperationOutcome::single(Issue::error(
                        IssueCode::Exception,
                        "The database is unavailable; try again later",
                    )),
                )
            }
            DomainError::Timeout(why) => {
                tracing::warn!(%why, "query stopped at the time limit");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    OperationOutcome::single(Issue::error(
                        IssueCode::TooCostly,
                        "The query took longer than the server's time limit and was stopped; narrow the search",
                    )),
                )
            }
            DomainError::Internal(why) => {
                tracing::error!(%why, "internal error");
                return ApiError::internal();
            }
        };
        ApiError { status, outcome }
    }
}

/// The OperationOutcome of an error response, kept so the format layer can re-render it.
#[derive(Clone)]
pub struct ErrorOutcome(pub serde_json::Value);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let outcome = self.outcome.to_json();
        let mut response =
            (self.status, [(header::CONTENT_TYPE, crate::format::FHIR_JSON)], outcome.to_string()).into_response();
        response.extensions_mut().insert(ErrorOutcome(outcome));
        if matches!(self.status, StatusCode::PAYLOAD_TOO_LARGE | StatusCode::REQUEST_TIMEOUT) {
            // The rest of the body stays unread, so the connection cannot be reused.
            response
                .headers_mut()
                .insert(header::CONNECTION, axum::http::HeaderValue::from_static("close"));
        }
        response
    }
}

/// The answer to a handler that panicked: a 500 OperationOutcome, so the client gets a
/// response and keeps its connection. Logged (inside the request's span, so with its request
/// id) and counted in `termin_http_panics_total`.
pub fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)");
    tracing::error!(panic = message, "request handler panicked");
    metrics::counter!("termin_http_panics_total").increment(1);
    ApiError::internal().into_response()
}
