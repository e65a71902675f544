//! The one registry of REST interactions: the router is built from it and from the operation
//! list ([`crate::operations::OPERATIONS`]), and the CapabilityStatement describes both, so
//! they cannot disagree.

use crate::SharedState;
use crate::operations;
use crate::routes::{bundle_request, history, instance, search, system, type_level};
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::Method;
use axum::routing::{MethodRouter, delete, get, patch, post, put};
use termin_fhir::ResourceType;
use termin_store::Permission;

/// FHIR `type-restful-interaction` codes Termin implements for every served type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interaction {
    Read,
    Vread,
    Update,
    Patch,
    Delete,
    HistoryInstance,
    HistoryType,
    Create,
    SearchType,
}

impl Interaction {
    pub const ALL: [Interaction; 9] = [
        Interaction::Read,
        Interaction::Vread,
        Interaction::Update,
        Interaction::Patch,
        Interaction::Delete,
        Interaction::HistoryInstance,
        Interaction::HistoryType,
        Interaction::Create,
        Interaction::SearchType,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Interaction::Read => "read",
            Interaction::Vread => "vread",
            Interaction::Update => "update",
            Interaction::Patch => "patch",
            Interaction::Delete => "delete",
            Interaction::HistoryInstance => "history-instance",
            Interaction::HistoryType => "history-type",
            Interaction::Create => "create",
            Interaction::SearchType => "search-type",
        }
    }

    /// The SMART permission the interaction needs on its type: history reads like a read
    /// (instance) or a search (type); patch is an update.
    pub fn permission(self) -> Permission {
        match self {
            Interaction::Read | Interaction::Vread | Interaction::HistoryInstance => Permission::Read,
            Interaction::SearchType | Interaction::HistoryType => Permission::Search,
            Interaction::Create => Permission::Create,
            Interaction::Update | Interaction::Patch => Permission::Update,
            Interaction::Delete => Permission::Delete,
        }
    }

    /// Whether the interaction changes data (create, update, patch, delete).
    pub fn changes(self) -> bool {
        matches!(self, Interaction::Create | Interaction::Update | Interaction::Patch | Interaction::Delete)
    }

    /// The interactions served for `resource_type`: AuditEvents are recorded by the server
    /// and only read.
    pub fn served_for(resource_type: ResourceType) -> Vec<Interaction> {
        Interaction::ALL.into_iter().filter(|i| resource_type != ResourceType::AuditEvent || !i.changes()).collect()
    }

    /// The interaction a routed request (its method and matched route path) is.
    pub fn of(method: &Method, path: &str) -> Option<Interaction> {
        Interaction::ALL.into_iter().find(|i| i.endpoints().contains(&(method.clone(), path)))
    }

    /// The method and path of each route of [`Self::routes`], in the same order.
    fn endpoints(self) -> Vec<(Method, &'static str)> {
        match self {
            Interaction::Read => vec![(Method::GET, "/fhir/{type}/{id}")],
            Interaction::Vread => vec![(Method::GET, "/fhir/{type}/{id}/_history/{vid}")],
            Interaction::Update => vec![(Method::PUT, "/fhir/{type}/{id}"), (Method::PUT, "/fhir/{type}")],
            Interaction::Patch => vec![(Method::PATCH, "/fhir/{type}/{id}")],
            Interaction::Delete => vec![(Method::DELETE, "/fhir/{type}/{id}"), (Method::DELETE, "/fhir/{type}")],
            Interaction::HistoryInstance => vec![(Method::GET, "/fhir/{type}/{id}/_history")],
            Interaction::HistoryType => vec![(Method::GET, "/fhir/{type}/_history")],
            Interaction::Create => vec![(Method::POST, "/fhir/{type}")],
            Interaction::SearchType => vec![(Method::GET, "/fhir/{type}"), (Method::POST, "/fhir/{type}/_search")],
        }
    }

    /// The routes that implement this interaction. Update includes conditional update
    /// (`PUT [type]?criteria`), create conditional create (`If-None-Exist`) and delete
    /// conditional delete (`DELETE [type]?criteria`).
    fn routes(self) -> Vec<(&'static str, MethodRouter<SharedState>)> {
        match self {
            Interaction::Read => vec![("/fhir/{type}/{id}", get(instance::read))],
            Interaction::Vread => vec![("/fhir/{type}/{id}/_history/{vid}", get(instance::vread))],
            Interaction::Update => vec![
                ("/fhir/{type}/{id}", put(instance::update)),
                ("/fhir/{type}", put(type_level::conditional_update)),
            ],
            Interaction::Patch => vec![("/fhir/{type}/{id}", patch(instance::patch))],
            Interaction::Delete => vec![
                ("/fhir/{type}/{id}", delete(instance::delete)),
                ("/fhir/{type}", delete(type_level::conditional_delete)),
            ],
            Interaction::HistoryInstance => vec![("/fhir/{type}/{id}/_history", get(history::instance_history))],
            Interaction::HistoryType => vec![("/fhir/{type}/_history", get(history::type_history))],
            Interaction::Create => vec![("/fhir/{type}", post(type_level::create))],
            Interaction::SearchType => vec![
                ("/fhir/{type}", get(search::search)),
                ("/fhir/{type}/_search", post(search::search_post)),
            ],
        }
    }
}

/// FHIR `system-restful-interaction` codes Termin implements at the base, all served by
/// [`crate::routes::bundle_request`] (`POST [base]` with a Bundle).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SystemInteraction {
    Transaction,
    Batch,
}

impl SystemInteraction {
    pub const ALL: [SystemInteraction; 2] = [SystemInteraction::Transaction, SystemInteraction::Batch];

    pub fn code(self) -> &'static str {
        match self {
            SystemInteraction::Transaction => "transaction",
            SystemInteraction::Batch => "batch",
        }
    }

    pub fn documentation(self) -> &'static str {
        match self {
            SystemInteraction::Transaction => {
                "All or nothing in one database transaction, in the order DELETE, POST, PUT, PATCH, then GET/HEAD \
                 after the commit; urn:uuid/urn:oid fullUrls and conditional references resolved; ifNoneExist, \
                 ifMatch, ifNoneMatch and conditional update/delete supported; the scheduling rules apply to \
                 every entry. Operations ($hold, $book) are not run in transactions."
            }
            SystemInteraction::Batch => "Each entry processed on its own, as the request it describes, operations included.",
        }
    }
}

pub fn router() -> Router<SharedState> {
    let mut router = Router::new()
        .route("/health", get(system::health))
        .route("/ready", get(system::ready))
        .route("/metrics", get(crate::metrics::endpoint))
        .route(bundle_request::PATH, get(system::base_endpoint).post(bundle_request::process))
        .route("/fhir/", get(system::base_endpoint).post(bundle_request::process))
        .route("/fhir/metadata", get(system::metadata))
        .route("/fhir/.well-known/smart-configuration", get(system::smart_configuration))
        .route("/fhir/OperationDefinition/{id}", get(operations::operation_definition))
        .route("/fhir/StructureDefinition/{id}", get(crate::structure_definitions::structure_definition))
        .route("/fhir/SubscriptionTopic", get(crate::routes::subscriptions::topics))
        .route("/fhir/SubscriptionTopic/{id}", get(crate::routes::subscriptions::read_topic))
        .route(crate::routes::subscriptions::WEBSOCKET_PATH, get(crate::routes::subscriptions::websocket));
    // `[type]/$code` is a path of its own, so it wins over `[type]/[id]`.
    for (path, method_router) in operations::routes() {
        router = router.route(&path, method_router);
    }
    for interaction in Interaction::ALL {
        let routes = interaction.routes();
        debug_assert_eq!(
            routes.iter().map(|(path, _)| *path).collect::<Vec<_>>(),
            interaction.endpoints().iter().map(|(_, path)| *path).collect::<Vec<_>>(),
            "{interaction:?}: endpoints() lists the paths of routes()"
        );
        for (path, method_router) in routes {
            router = router.route(path, method_router);
        }
    }
    router
        .fallback(system::unknown_path)
        .method_not_allowed_fallback(system::method_not_allowed)
        // The format layer enforces the configured limit with an OperationOutcome.
        .layer(DefaultBodyLimit::disable())
}
