//! Errors as HTTP responses: a status and an OperationOutcome, always.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
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
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    OperationOutcome::single(Issue::error(
                        IssueCode::Exception,
                        "Internal server error; the request id in X-Request-Id identifies it in the server log",
                    )),
                )
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
        if self.status == StatusCode::PAYLOAD_TOO_LARGE {
            // The rest of the oversized body stays unread, so the connection cannot be reused.
            response
                .headers_mut()
                .insert(header::CONNECTION, axum::http::HeaderValue::from_static("close"));
        }
        response
    }
}
