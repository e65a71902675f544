//! Domain failures. The API layer maps each to an HTTP status and an OperationOutcome.

use termin_fhir::{Issue, IssueCode, OperationOutcome};
use termin_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    /// The request is malformed (400).
    #[error("invalid request")]
    Invalid(OperationOutcome),
    /// The resource never existed (404).
    #[error("{0} is not known")]
    NotFound(String),
    /// The resource existed and was deleted (410).
    #[error("{0} was deleted")]
    Gone(String),
    /// A precondition such as If-Match or a conditional match failed (412).
    #[error("precondition failed")]
    PreconditionFailed(OperationOutcome),
    /// The request conflicts with the current state, e.g. a slot already taken (409).
    #[error("conflict")]
    Conflict(OperationOutcome),
    /// The request is well-formed but breaks a business rule (422).
    #[error("unprocessable")]
    Unprocessable(OperationOutcome),
    /// The resource does not conform to FHIR R5 or its enforced profile (422); the outcome
    /// has one issue per problem.
    #[error("resource does not conform to its profile")]
    NotConformant(OperationOutcome),
    /// The caller may not do this to these resources, e.g. another patient's (403).
    #[error("forbidden")]
    Forbidden(OperationOutcome),
    /// The interaction is switched off by configuration (405).
    #[error("not allowed: {0}")]
    NotAllowed(String),
    /// The store is unreachable (503).
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// A statement ran longer than the store's time limit (503).
    #[error("the query took too long: {0}")]
    Timeout(String),
    /// Anything else went wrong on the server side (500).
    #[error("internal error: {0}")]
    Internal(String),
}

impl DomainError {
    pub fn invalid(issue: Issue) -> Self {
        DomainError::Invalid(OperationOutcome::single(issue))
    }

    pub fn conflict(issue: Issue) -> Self {
        DomainError::Conflict(OperationOutcome::single(issue))
    }

    pub fn forbidden(diagnostics: impl Into<String>) -> Self {
        DomainError::Forbidden(OperationOutcome::single(Issue::error(IssueCode::Forbidden, diagnostics)))
    }

    pub fn unprocessable(issue: Issue) -> Self {
        DomainError::Unprocessable(OperationOutcome::single(issue))
    }

    pub fn precondition(code: IssueCode, diagnostics: impl Into<String>) -> Self {
        DomainError::PreconditionFailed(OperationOutcome::single(Issue::error(code, diagnostics)))
    }
}

impl From<StoreError> for DomainError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(m) => DomainError::Unavailable(m),
            StoreError::Timeout(m) => DomainError::Timeout(m),
            StoreError::Conflict(m) => DomainError::conflict(Issue::error(IssueCode::Conflict, m)),
            other => DomainError::Internal(other.to_string()),
        }
    }
}
