//! The FHIR REST API: HTTP in, domain calls, FHIR out.
//!
//! Format handling (content types, `_format`, `_pretty`, body limits, JSON parse errors) is
//! the [`format`] layer; handlers only see parsed resources and return [`FhirResponse`]s.

mod bundle;
mod capability;
mod context;
mod error;
mod format;
pub mod metrics;
mod operations;
mod prefer;
mod query;
mod registry;
mod routes;

pub use error::ApiError;
pub use format::FhirResponse;

use axum::Router;
use axum::http::HeaderName;
use std::sync::Arc;
use termin_domain::ResourceService;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

/// Settings the HTTP layer needs.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Public FHIR base URL used in links and `Location`; derived from `Host` when `None`.
    pub base_url: Option<String>,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Page size when the client gives no `_count`.
    pub default_count: usize,
    /// Largest page size a client may ask for.
    pub max_count: usize,
}

pub struct AppState {
    pub service: Arc<ResourceService>,
    pub config: ApiConfig,
    pub metrics: crate::metrics::Metrics,
}

pub type SharedState = Arc<AppState>;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Builds the complete HTTP application.
pub fn app(state: AppState) -> Router {
    registry::router()
        .with_state(Arc::new(state))
        .layer(axum::middleware::from_fn(format::render_errors))
        // Outside the error rendering, so it counts the status the client gets.
        .layer(axum::middleware::from_fn(crate::metrics::track))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(TraceLayer::new_for_http().make_span_with(context::request_span))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
}
