//! The FHIR REST API: HTTP in, domain calls, FHIR out. It owns routing, content negotiation,
//! authorization (SMART scopes, anonymous booking's rate limit and access secrets, the client
//! address behind trusted proxies), the CapabilityStatement and the operations; it depends on the
//! domain (and, for the caller context and search criteria the domain's signatures still
//! name, on `termin-store` and `termin-search`), never on a storage backend or on SQL.
//!
//! The REST interactions are listed in [`registry`], the operations in [`operations`], one
//! module each; the router, the CapabilityStatement and authorization are built from those
//! two lists; batch and transaction Bundles (`POST [base]`) are [`routes::bundle_request`].
//! Format handling (content types, `_format`, `_pretty`, body limits, JSON parse errors) is
//! the [`format`] layer; handlers only see parsed resources and return [`FhirResponse`]s.
//! Resources go out as stored text where no transformation is needed: a read as it is, a
//! searchset with the stored entries spliced into its JSON text (`bundle::Searchset`).
//!
//! In central platform mode the [`platform`] middleware routes searches, `$findHSP` and requests
//! for upstream resources to `termin-platform` before the handlers see them.

mod audit;
pub mod auth;
mod bundle;
mod capability;
mod context;
mod cors;
mod error;
mod format;
pub mod limits;
pub mod metrics;
mod operations;
mod platform;
mod prefer;
mod query;
mod registry;
mod routes;
mod structure_definitions;
mod summary;

pub use cors::CorsOrigins;
pub use error::ApiError;
pub use format::FhirResponse;

use axum::Router;
use axum::http::HeaderName;
use std::sync::Arc;
use termin_domain::Domain;
use tower_http::catch_panic::CatchPanicLayer;
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
    /// Browser origins allowed to call cross-origin.
    pub cors_allowed_origins: CorsOrigins,
    /// How long a request body may take to arrive once its head is read (then `408`).
    pub body_read_timeout: std::time::Duration,
    /// Reverse proxies whose `X-Forwarded-For` names the client (`--trusted-proxies`).
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// The most entries a batch or transaction Bundle may have (more: `413`).
    pub max_bundle_entries: usize,
}

pub struct AppState {
    pub domain: Arc<Domain>,
    pub config: ApiConfig,
    pub metrics: crate::metrics::Metrics,
    /// `None`: no authorization configured, every caller is anonymous.
    pub auth: Option<auth::Authorization>,
    /// Subscription delivery records and websocket bindings (`$status`, `$events`,
    /// `$get-ws-binding-token`); `None`: notifications are off.
    pub notifications: Option<Arc<termin_notify::websocket::Hub>>,
    /// Upstream Scheduling Servers this server aggregates and relays to (central platform
    /// mode, [`platform`]); `None`: a plain Scheduling Server.
    pub platform: Option<Arc<termin_platform::Platform>>,
}

pub type SharedState = Arc<AppState>;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Builds the complete HTTP application.
pub fn app(state: AppState) -> Router {
    app_with_pages(state, Router::new())
}

/// The HTTP application plus `pages`: routes outside the FHIR API (the binary's web app),
/// which pass through the same request-id, tracing, metrics and head-limit layers. They are
/// public: the pages only call the FHIR API, where authorization applies.
pub fn app_with_pages(state: AppState, pages: Router) -> Router {
    let cors = state.config.cors_allowed_origins.clone();
    let router = fhir_api(Arc::new(state)).merge(pages);
    with_layers(router, &cors)
}

/// The FHIR API's routes with authorization and the audit of refusals: what each request, and
/// each entry of a batch, passes.
fn fhir_api(state: SharedState) -> Router {
    registry::router()
        // Innermost: it sees only authorized requests, and its own data's pages run the handlers.
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), platform::route))
        .route_layer(axum::middleware::from_fn(audit::read_only_audit_events))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), auth::authorize))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), audit::record_denials))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), context::resolve_client_address))
        .with_state(state)
}

/// The layers every request passes through (the last one added is the outermost).
fn with_layers(router: Router, cors: &CorsOrigins) -> Router {
    let mut router = router
        .layer(axum::middleware::from_fn(format::render_errors))
        .layer(CatchPanicLayer::custom(error::panic_response))
        .layer(axum::middleware::from_fn(limits::check_head));
    if let Some(cors_layer) = cors.layer() {
        router = router.layer(cors_layer).layer(axum::middleware::from_fn(cors::finish_answer));
    }
    router
        // Outside the error rendering and the panic catcher, so it counts the status the client gets.
        .layer(axum::middleware::from_fn(crate::metrics::track))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(TraceLayer::new_for_http().make_span_with(context::request_span))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .layer(axum::middleware::map_request(context::keep_acceptable_request_id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::{Request, StatusCode, header};
    use axum::routing::get;
    use http_body_util::BodyExt;
    use metrics_exporter_prometheus::PrometheusBuilder;
    use tower::ServiceExt;

    async fn buggy_handler() -> String {
        panic!("a handler bug")
    }

    fn panicking_router() -> Router {
        with_layers(Router::new().route("/panic", get(buggy_handler)), &CorsOrigins::None)
    }

    #[test]
    fn a_panicking_handler_answers_500_with_an_operation_outcome_and_is_counted() {
        let recorder = PrometheusBuilder::new().build_recorder();
        let metrics = recorder.handle();
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let response = ::metrics::with_local_recorder(&recorder, || {
            runtime.block_on(panicking_router().oneshot(Request::get("/panic").body(Body::empty()).unwrap()))
        })
        .unwrap();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(response.headers()[header::CONTENT_TYPE], format::FHIR_JSON);
        assert!(response.headers().contains_key(&REQUEST_ID));
        let body = runtime.block_on(response.into_body().collect()).unwrap().to_bytes();
        let outcome: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(outcome["resourceType"], "OperationOutcome");
        assert_eq!(outcome["issue"][0]["code"], "exception");
        let rendered = metrics.render();
        assert!(rendered.contains("termin_http_panics_total 1"), "{rendered}");
        assert!(rendered.contains(r#"termin_http_requests_total{interaction="other",status="500"} 1"#), "{rendered}");
    }
}
