//! What `serve`, `seed` and `bench` share: opening the store, installing the search
//! parameters and building the domain service with its validator.

use crate::config::Database;
use crate::validation::Packages;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use termin_domain::{Domain, ServiceConfig, SystemClock};
use termin_search::SearchParameters;
use termin_fhir::ResourceType;
use termin_store::{LeaseStore, MailStore, NotificationStore, ResourceStore};
use termin_store_postgres::PostgresStore;
use termin_store_sqlite::SqliteStore;

/// The async runtime of a `termin` command (several worker threads, or just this thread);
/// `None`, after saying why on stderr, if it cannot start.
pub fn runtime(command: &str, multi_thread: bool) -> Option<tokio::runtime::Runtime> {
    let built = if multi_thread {
        tokio::runtime::Runtime::new()
    } else {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    };
    built
        .map_err(|e| eprintln!("termin {command}: cannot start the async runtime: {e}"))
        .ok()
}

/// The opened store; `postgres` is the same store when it is PostgreSQL (for pool metrics).
pub struct OpenedStore {
    pub store: Arc<dyn ResourceStore>,
    /// The same store's Subscription delivery records.
    pub deliveries: Arc<dyn NotificationStore>,
    /// The same store's e-mail queue.
    pub mails: Arc<dyn MailStore>,
    /// The same store's job leases.
    pub leases: Arc<dyn LeaseStore>,
    pub postgres: Option<Arc<PostgresStore>>,
}

/// Opens the store; with `query_timeout`, the statements of searches stop after it.
pub async fn open_store(
    database: &Database,
    read_connections: u32,
    pool_size: u32,
    query_timeout: Option<Duration>,
) -> Result<OpenedStore, String> {
    let opened = match database {
        Database::Sqlite(path) => {
            let mut store = SqliteStore::open(path, read_connections).await.map_err(|e| e.to_string())?;
            if let Some(timeout) = query_timeout {
                store = store.with_query_timeout(timeout);
            }
            let store = Arc::new(store);
            OpenedStore {
                store: store.clone(),
                deliveries: store.clone(),
                mails: store.clone(),
                leases: store,
                postgres: None,
            }
        }
        Database::Postgres(url) => {
            let mut store = PostgresStore::open(url, pool_size).await.map_err(|e| e.to_string())?;
            if let Some(timeout) = query_timeout {
                store = store.with_query_timeout(timeout);
            }
            let store = Arc::new(store);
            OpenedStore {
                store: store.clone(),
                deliveries: store.clone(),
                mails: store.clone(),
                leases: store.clone(),
                postgres: Some(store),
            }
        }
    };
    tracing::info!(database = %database, "opened the store");
    Ok(opened)
}

/// Loads the R5 SearchParameters (from `--packages`, then the FHIR package cache) for the
/// domain, which indexes with them and hands them to the API's search parsing.
pub fn install_search_parameters(packages: &[PathBuf], time_zone: &str) -> Result<&'static SearchParameters, String> {
    let loading = std::time::Instant::now();
    let dirs: Vec<PathBuf> = packages.iter().cloned().chain(termin_search::default_package_cache()).collect();
    let search = termin_search::SearchParameters::load(&dirs, time_zone).map_err(|e| e.to_string())?;
    tracing::info!(
        fingerprint = search.fingerprint(),
        time_zone = search.time_zone_name(),
        millis = loading.elapsed().as_millis() as u64,
        "loaded search parameters"
    );
    // Loaded once per command and needed until the process ends.
    Ok(Box::leak(Box::new(search)))
}

/// Makes FHIR XML available. With validation on, it already shares validation's definitions;
/// otherwise the R5 core package is loaded for it when XML is first asked for.
pub fn install_xml() {
    if termin_xml::installed().is_ok() {
        return;
    }
    termin_xml::install_on_first_use(|| {
        let cache = termin_search::default_package_cache();
        termin_xml::XmlConverter::load(cache.as_deref()).map_err(|e| {
            tracing::error!(error = %e, "FHIR XML is not available");
            format!("the R5 core package cannot be loaded: {e}")
        })
    });
}

/// The domain services over `store`, validating writes against `packages` when there are any,
/// with the search index brought up to date with `search`.
pub async fn domain(
    store: Arc<dyn ResourceStore>,
    config: ServiceConfig,
    search: &'static SearchParameters,
    packages: Packages<'_>,
    profiles: &[(ResourceType, Option<String>)],
) -> Result<Domain, String> {
    let mut domain = Domain::new(store, Arc::new(SystemClock), config, search);
    if let Some(validator) = crate::validation::load(packages, profiles)? {
        domain = domain.with_validator(validator);
    }
    domain
        .resources
        .refresh_search_index()
        .await
        .map_err(|e| format!("cannot rebuild the search index: {e:?}"))?;
    Ok(domain)
}
