//! Configuration: command-line flags, `TERMIN_*` environment variables and an optional TOML
//! file. Precedence: flag, then environment, then file, then the built-in default.

use clap::Args;
use jiff::SignedDuration;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use termin_api::CorsOrigins;
use termin_domain::ConditionalDelete;
use termin_fhir::ResourceType;
use termin_seed::Scale;

pub const DEFAULT_BIND: &str = "127.0.0.1:8080";
pub const DEFAULT_DATABASE: &str = "termin.db";
pub const DEFAULT_LOG: &str = "info";
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
pub const DEFAULT_PAGE_SIZE: usize = 20;
pub const DEFAULT_MAX_PAGE_SIZE: usize = 500;
pub const DEFAULT_READ_CONNECTIONS: u32 = 4;
pub const DEFAULT_POOL_SIZE: u32 = 10;
pub const DEFAULT_HOLD_DURATION: &str = "10m";
pub const DEFAULT_HOLD_SWEEP_INTERVAL: &str = "30s";
pub const DEFAULT_MAX_HOLDS_PER_HOLDER: usize = 3;
pub const DEFAULT_MAX_HOLD_TIME: &str = "30m";
pub const DEFAULT_HEADER_READ_TIMEOUT: &str = "10s";
pub const DEFAULT_IDLE_TIMEOUT: &str = "60s";
pub const DEFAULT_BODY_READ_TIMEOUT: &str = "30s";
pub const DEFAULT_QUERY_TIMEOUT: &str = "5s";
pub const DEFAULT_DEMO_SCALE: &str = "small";
pub const DEFAULT_NOTIFY_INTERVAL: &str = "1s";
pub const DEFAULT_NOTIFY_TIMEOUT: &str = "10s";
pub const DEFAULT_NOTIFY_MAX_FAILURES: u32 = 5;
pub const DEFAULT_NOTIFY_RETRY_BASE: &str = "2s";
pub const DEFAULT_NOTIFY_MAX_BACKOFF: &str = "10m";
pub const DEFAULT_NOTIFY_BATCH: usize = 20;

/// Flags of `termin serve`. Every flag has an environment variable; neither has a default
/// here so that a config file value can fill the gap before the built-in default does.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Whether this node delivers Subscription notifications (any number of nodes may)
    /// [default: on]
    #[arg(long, env = "TERMIN_NOTIFY", value_name = "on|off")]
    pub notify: Option<String>,

    /// How often a node looks for notifications to deliver [default: 1s]
    #[arg(long, env = "TERMIN_NOTIFY_INTERVAL", value_name = "DURATION")]
    pub notify_interval: Option<SignedDuration>,

    /// The longest a rest-hook POST may take; a Subscription's timeout may shorten it
    /// [default: 10s]
    #[arg(long, env = "TERMIN_NOTIFY_TIMEOUT", value_name = "DURATION")]
    pub notify_timeout: Option<SignedDuration>,

    /// Failed deliveries in a row after which a Subscription's status becomes error [default: 5]
    #[arg(long, env = "TERMIN_NOTIFY_MAX_FAILURES", value_name = "N")]
    pub notify_max_failures: Option<u32>,

    /// The first retry delay after a failed delivery; it doubles with each failure
    /// [default: 2s]
    #[arg(long, env = "TERMIN_NOTIFY_RETRY_BASE", value_name = "DURATION")]
    pub notify_retry_base: Option<SignedDuration>,

    /// The longest retry delay [default: 10m]
    #[arg(long, env = "TERMIN_NOTIFY_MAX_BACKOFF", value_name = "DURATION")]
    pub notify_max_backoff: Option<SignedDuration>,

    /// Events per notification at most; a Subscription's maxCount may lower it [default: 20]
    #[arg(long, env = "TERMIN_NOTIFY_BATCH", value_name = "N")]
    pub notify_batch: Option<usize>,

    /// TOML configuration file; its keys are the flag names with '_' for '-'
    #[arg(long, env = "TERMIN_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Address and port to listen on; port 0 picks a free port [default: 127.0.0.1:8080]
    #[arg(long, env = "TERMIN_BIND", value_name = "ADDR")]
    pub bind: Option<SocketAddr>,

    /// Public FHIR base URL used in links and Location headers, e.g. https://termin.example.at/fhir
    /// [default: http://<Host header>/fhir]
    #[arg(long, env = "TERMIN_BASE_URL", value_name = "URL")]
    pub base_url: Option<String>,

    /// SQLite database file, created if missing, or a PostgreSQL URL
    /// (postgres://user:password@host:port/database) that any number of nodes may share
    /// [default: termin.db]
    #[arg(long, env = "TERMIN_DATABASE", value_name = "PATH|URL")]
    pub database: Option<PathBuf>,

    /// Log filter: a level (error, warn, info, debug, trace) or per-module directives
    /// such as "info,termin_api=debug" [default: info]
    #[arg(long, env = "TERMIN_LOG", value_name = "FILTER")]
    pub log: Option<String>,

    /// Largest request body accepted, in bytes; larger bodies get 413 [default: 1048576]
    #[arg(long, env = "TERMIN_MAX_BODY_BYTES", value_name = "BYTES")]
    pub max_body_bytes: Option<usize>,

    /// Whether PUT to an unknown id creates the resource with that id [default: true]
    #[arg(long, env = "TERMIN_UPDATE_CREATE", value_name = "BOOL")]
    pub update_create: Option<bool>,

    /// What DELETE [type]?criteria may delete: off (405), single (412 when more than one
    /// matches) or multiple (every match, at most 1000) [default: single]
    #[arg(long, env = "TERMIN_CONDITIONAL_DELETE", value_name = "off|single|multiple")]
    pub conditional_delete: Option<ConditionalDelete>,

    /// Search and history page size when the client sends no _count [default: 20]
    #[arg(long, env = "TERMIN_DEFAULT_PAGE_SIZE", value_name = "N")]
    pub default_page_size: Option<usize>,

    /// Largest _count a client may ask for; larger values are capped [default: 500]
    #[arg(long, env = "TERMIN_MAX_PAGE_SIZE", value_name = "N")]
    pub max_page_size: Option<usize>,

    /// SQLite read connections (writes always use one connection) [default: 4]
    #[arg(long, env = "TERMIN_READ_CONNECTIONS", value_name = "N")]
    pub read_connections: Option<u32>,

    /// PostgreSQL connections of this node; a request holds at most one while it runs. Keep
    /// the sum over all nodes below the server's max_connections [default: 10]
    #[arg(long, env = "TERMIN_POOL_SIZE", value_name = "N")]
    pub pool_size: Option<u32>,

    /// How long $hold keeps a slot for its holder, e.g. "10m", "90s", "PT15M" [default: 10m]
    #[arg(long, env = "TERMIN_HOLD_DURATION", value_name = "DURATION")]
    pub hold_duration: Option<SignedDuration>,

    /// How often expired holds are released in storage (reads treat them as free at once)
    /// [default: 30s]
    #[arg(long, env = "TERMIN_HOLD_SWEEP_INTERVAL", value_name = "DURATION")]
    pub hold_sweep_interval: Option<SignedDuration>,

    /// Live holds one client may have at a time; 0 for no limit. While authorization is off a
    /// client is its network address, so behind a reverse proxy all clients count as one
    /// [default: 3]
    #[arg(long, env = "TERMIN_MAX_HOLDS_PER_HOLDER", value_name = "N")]
    pub max_holds_per_holder: Option<usize>,

    /// The longest a hold may last from when it was placed, renewals included [default: 30m]
    #[arg(long, env = "TERMIN_MAX_HOLD_TIME", value_name = "DURATION")]
    pub max_hold_time: Option<SignedDuration>,

    /// How long a client may take to send a request's head (request line and headers) once it
    /// has begun; then the connection is closed [default: 10s]
    #[arg(long, env = "TERMIN_HEADER_READ_TIMEOUT", value_name = "DURATION")]
    pub header_read_timeout: Option<SignedDuration>,

    /// How long a connection may stay without traffic while no request is being handled (after
    /// connecting, between keep-alive requests, or while the client reads no response); then it
    /// is closed [default: 60s]
    #[arg(long, env = "TERMIN_IDLE_TIMEOUT", value_name = "DURATION")]
    pub idle_timeout: Option<SignedDuration>,

    /// How long a request body may take to arrive once the request head is read; then the
    /// request answers 408 and the connection is closed [default: 30s]
    #[arg(long, env = "TERMIN_BODY_READ_TIMEOUT", value_name = "DURATION")]
    pub body_read_timeout: Option<SignedDuration>,

    /// How long a statement of a search (its page, count and includes), a history page or the
    /// criteria of a conditional write may run before it is stopped and the request answers 503,
    /// e.g. "5s", "500ms" [default: 5s]
    #[arg(long, env = "TERMIN_QUERY_TIMEOUT", value_name = "DURATION")]
    pub query_timeout: Option<SignedDuration>,

    /// Load demo data at start-up: the example resources of the AT packages shipped with Termin
    /// and of the FHIR packages in --packages, and the seeded Austrian dataset of --demo-scale
    #[arg(long, env = "TERMIN_DEMO")]
    pub demo: bool,

    /// Size of the seeded dataset --demo loads: none, tiny, small (about 10,000 slots from the
    /// Monday of the current week), medium or large; see `termin seed` [default: small]
    #[arg(long, env = "TERMIN_DEMO_SCALE", value_name = "SCALE")]
    pub demo_scale: Option<String>,

    /// Validation of writes against R5 and the enforced profiles: on or off [default: on]
    #[arg(long, env = "TERMIN_VALIDATION", value_name = "on|off")]
    pub validation: Option<String>,

    /// Directory of FHIR packages in package-cache layout (<name>#<version>/package/) to
    /// validate against besides the AT Core and AT Scheduling packages shipped with Termin;
    /// repeat for several. The R5 core package (hl7.fhir.r5.core#5.0.0, whose SearchParameters
    /// drive search) is looked up here and then in the FHIR package cache
    /// $TERMIN_FHIR_PACKAGES, else $HOME/.fhir/packages (scripts/fhir-packages installs it there)
    /// [default: none]
    #[arg(long = "packages", env = "TERMIN_PACKAGES", value_name = "DIR", value_delimiter = ',')]
    pub packages: Vec<PathBuf>,

    /// IANA time zone in which search dates without an offset (date=2026-04-07) and stored
    /// dates without one are read [default: Europe/Vienna]
    #[arg(long, env = "TERMIN_TIME_ZONE", value_name = "ZONE")]
    pub time_zone: Option<String>,

    /// Profile a resource type must conform to, as Type=canonical-URL (Type=none: R5 only);
    /// repeat or comma-separate. Applies when validation is on; types not named keep the
    /// default (the AT Core / AT Scheduling profile, when its package is loaded)
    #[arg(long = "profiles", env = "TERMIN_PROFILES", value_name = "TYPE=URL", value_delimiter = ',')]
    pub profiles: Vec<String>,

    /// Browser origins (https://booking.example.at) allowed to call the API cross-origin, or *
    /// for any; repeat or comma-separate. Without it no CORS headers are sent [default: none]
    #[arg(long = "cors-allowed-origins", env = "TERMIN_CORS_ALLOWED_ORIGINS", value_name = "ORIGIN", value_delimiter = ',')]
    pub cors_allowed_origins: Vec<String>,

    /// OpenID Connect issuer whose access tokens Termin accepts (the required `iss`), e.g.
    /// https://login.example.at/realms/termin. Its keys are found by OpenID discovery unless
    /// --auth-jwks is given. Without it authorization is off: every caller may do everything
    /// [default: none]
    #[arg(long, env = "TERMIN_AUTH_ISSUER", value_name = "URL")]
    pub auth_issuer: Option<String>,

    /// The audience access tokens must be issued for (the required `aud`); required with
    /// --auth-issuer [default: none]
    #[arg(long, env = "TERMIN_AUTH_AUDIENCE", value_name = "AUDIENCE")]
    pub auth_audience: Option<String>,

    /// JWKS file with the issuer's public signing keys, instead of OpenID discovery (offline
    /// setups, tests) [default: none]
    #[arg(long, env = "TERMIN_AUTH_JWKS", value_name = "FILE")]
    pub auth_jwks: Option<PathBuf>,

    /// With authorization on: whether HealthcareService, Schedule, Slot, Practitioner,
    /// PractitionerRole, Organization, Location and $findHSP can be read and searched without a
    /// token (the public directory booking portals show) [default: true]
    #[arg(long, env = "TERMIN_PUBLIC_READ", value_name = "BOOL")]
    pub public_read: Option<bool>,

    /// Days AuditEvents are kept; older ones are deleted for good by an hourly sweep (and one
    /// at start-up) [default: kept forever]
    #[arg(long, env = "TERMIN_AUDIT_RETENTION", value_name = "DAYS")]
    pub audit_retention: Option<u32>,
}

/// The config file: same names as the flags, with '_' instead of '-'.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    bind: Option<SocketAddr>,
    base_url: Option<String>,
    database: Option<PathBuf>,
    log: Option<String>,
    max_body_bytes: Option<usize>,
    update_create: Option<bool>,
    conditional_delete: Option<String>,
    default_page_size: Option<usize>,
    max_page_size: Option<usize>,
    read_connections: Option<u32>,
    pool_size: Option<u32>,
    hold_duration: Option<String>,
    hold_sweep_interval: Option<String>,
    max_holds_per_holder: Option<usize>,
    max_hold_time: Option<String>,
    header_read_timeout: Option<String>,
    idle_timeout: Option<String>,
    body_read_timeout: Option<String>,
    query_timeout: Option<String>,
    demo: Option<bool>,
    demo_scale: Option<String>,
    validation: Option<String>,
    packages: Option<Vec<PathBuf>>,
    time_zone: Option<String>,
    profiles: Option<Vec<String>>,
    cors_allowed_origins: Option<Vec<String>>,
    auth_issuer: Option<String>,
    auth_audience: Option<String>,
    auth_jwks: Option<PathBuf>,
    public_read: Option<bool>,
    audit_retention: Option<u32>,
    notify: Option<String>,
    notify_interval: Option<String>,
    notify_timeout: Option<String>,
    notify_max_failures: Option<u32>,
    notify_retry_base: Option<String>,
    notify_max_backoff: Option<String>,
    notify_batch: Option<usize>,
}

/// Where the data lives.
#[derive(Debug, Clone, PartialEq)]
pub enum Database {
    /// A SQLite file of this node's own.
    Sqlite(PathBuf),
    /// A PostgreSQL server, as a `postgres://` or `postgresql://` URL.
    Postgres(String),
}

impl From<PathBuf> for Database {
    fn from(value: PathBuf) -> Self {
        match value.to_str() {
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Database::Postgres(url.to_owned())
            }
            _ => Database::Sqlite(value),
        }
    }
}

impl std::fmt::Display for Database {
    /// The path, or the URL without its password (for logs).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Database::Sqlite(path) => write!(f, "{}", path.display()),
            Database::Postgres(url) => {
                let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
                match rest.split_once('@') {
                    Some((user_info, host)) if user_info.contains(':') => {
                        let user = user_info.split(':').next().unwrap_or_default();
                        write!(f, "{scheme}://{user}:***@{host}")
                    }
                    _ => write!(f, "{url}"),
                }
            }
        }
    }
}

/// The effective configuration of `termin serve`.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub bind: SocketAddr,
    pub base_url: Option<String>,
    pub database: Database,
    pub log: String,
    pub max_body_bytes: usize,
    pub update_create: bool,
    pub conditional_delete: ConditionalDelete,
    pub default_page_size: usize,
    pub max_page_size: usize,
    pub read_connections: u32,
    pub pool_size: u32,
    pub hold_duration: SignedDuration,
    pub hold_sweep_interval: SignedDuration,
    pub max_holds_per_holder: usize,
    pub max_hold_time: SignedDuration,
    pub header_read_timeout: std::time::Duration,
    pub idle_timeout: std::time::Duration,
    pub body_read_timeout: std::time::Duration,
    pub query_timeout: std::time::Duration,
    pub demo: bool,
    /// The seeded dataset `--demo` loads, if any.
    pub demo_scale: Option<Scale>,
    /// Whether writes are validated.
    pub validation: bool,
    pub packages: Vec<PathBuf>,
    pub time_zone: String,
    /// Enforced profiles that differ from the default: `None` enforces R5 only.
    pub profiles: Vec<(ResourceType, Option<String>)>,
    pub cors_allowed_origins: CorsOrigins,
    /// `None`: authorization is off.
    pub auth: Option<AuthSettings>,
    pub public_read: bool,
    /// Days AuditEvents are kept; `None`: forever.
    pub audit_retention: Option<u32>,
    /// `None`: this node delivers no notifications.
    pub notify: Option<NotifySettings>,
}

/// How this node delivers Subscription notifications (`--notify-*`).
#[derive(Debug, Clone, PartialEq)]
pub struct NotifySettings {
    pub interval: std::time::Duration,
    pub timeout: std::time::Duration,
    pub max_failures: u32,
    pub retry_base: std::time::Duration,
    pub max_backoff: std::time::Duration,
    pub batch: usize,
}

/// Where access tokens come from and whom they must be for.
#[derive(Debug, Clone, PartialEq)]
pub struct AuthSettings {
    pub issuer: String,
    pub audience: String,
    /// Keys from this file instead of OpenID discovery.
    pub jwks: Option<PathBuf>,
}

fn auth_settings(issuer: Option<String>, audience: Option<String>, jwks: Option<PathBuf>) -> Result<Option<AuthSettings>, String> {
    match (issuer, audience) {
        (None, None) if jwks.is_none() => Ok(None),
        (None, _) => Err("auth_audience and auth_jwks need auth_issuer (the issuer tokens must name)".into()),
        (Some(_), None) => Err("auth_issuer needs auth_audience (the audience tokens must be issued for)".into()),
        (Some(issuer), Some(audience)) => {
            if !(issuer.starts_with("https://") || issuer.starts_with("http://")) {
                return Err(format!("auth_issuer {issuer:?} must be an http(s) URL"));
            }
            Ok(Some(AuthSettings { issuer, audience, jwks }))
        }
    }
}

fn read_file(path: &Path) -> Result<FileConfig, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
    toml::from_str(&text).map_err(|e| format!("config file {}: {e}", path.display()))
}

fn duration(name: &str, flag: Option<SignedDuration>, file: Option<String>, default: &str) -> Result<SignedDuration, String> {
    if let Some(value) = flag {
        return Ok(value);
    }
    let text = file.unwrap_or_else(|| default.to_owned());
    let value: SignedDuration = text.parse().map_err(|e| format!("{name} {text:?} is not a duration: {e}"))?;
    if value.is_negative() {
        return Err(format!("{name} must not be negative"));
    }
    Ok(value)
}

fn positive(name: &str, value: SignedDuration) -> Result<SignedDuration, String> {
    if value.is_positive() { Ok(value) } else { Err(format!("{name} must be longer than zero")) }
}

/// A positive duration as the standard library's type, for the network timeouts.
fn timeout(name: &str, value: SignedDuration) -> Result<std::time::Duration, String> {
    std::time::Duration::try_from(positive(name, value)?).map_err(|e| format!("{name}: {e}"))
}

impl ServeArgs {
    pub fn resolve(self) -> Result<ServeConfig, String> {
        let file = match &self.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let default_page_size = self.default_page_size.or(file.default_page_size).unwrap_or(DEFAULT_PAGE_SIZE);
        let max_page_size = self.max_page_size.or(file.max_page_size).unwrap_or(DEFAULT_MAX_PAGE_SIZE);
        if default_page_size == 0 || max_page_size < default_page_size {
            return Err(format!(
                "page sizes must satisfy 0 < default-page-size ({default_page_size}) <= max-page-size ({max_page_size})"
            ));
        }
        Ok(ServeConfig {
            bind: self
                .bind
                .or(file.bind)
                .unwrap_or_else(|| DEFAULT_BIND.parse().expect("default bind address parses")),
            base_url: self.base_url.or(file.base_url),
            database: Database::from(self.database.or(file.database).unwrap_or_else(|| DEFAULT_DATABASE.into())),
            log: self.log.or(file.log).unwrap_or_else(|| DEFAULT_LOG.into()),
            max_body_bytes: self.max_body_bytes.or(file.max_body_bytes).unwrap_or(DEFAULT_MAX_BODY_BYTES),
            update_create: self.update_create.or(file.update_create).unwrap_or(true),
            conditional_delete: match (self.conditional_delete, file.conditional_delete) {
                (Some(mode), _) => mode,
                (None, Some(text)) => text.parse()?,
                (None, None) => ConditionalDelete::Single,
            },
            default_page_size,
            max_page_size,
            read_connections: self.read_connections.or(file.read_connections).unwrap_or(DEFAULT_READ_CONNECTIONS),
            pool_size: self.pool_size.or(file.pool_size).unwrap_or(DEFAULT_POOL_SIZE),
            hold_duration: duration("hold_duration", self.hold_duration, file.hold_duration, DEFAULT_HOLD_DURATION)?,
            hold_sweep_interval: positive(
                "hold_sweep_interval",
                duration(
                    "hold_sweep_interval",
                    self.hold_sweep_interval,
                    file.hold_sweep_interval,
                    DEFAULT_HOLD_SWEEP_INTERVAL,
                )?,
            )?,
            max_holds_per_holder: self
                .max_holds_per_holder
                .or(file.max_holds_per_holder)
                .unwrap_or(DEFAULT_MAX_HOLDS_PER_HOLDER),
            max_hold_time: positive(
                "max_hold_time",
                duration("max_hold_time", self.max_hold_time, file.max_hold_time, DEFAULT_MAX_HOLD_TIME)?,
            )?,
            header_read_timeout: timeout(
                "header_read_timeout",
                duration(
                    "header_read_timeout",
                    self.header_read_timeout,
                    file.header_read_timeout,
                    DEFAULT_HEADER_READ_TIMEOUT,
                )?,
            )?,
            idle_timeout: timeout(
                "idle_timeout",
                duration("idle_timeout", self.idle_timeout, file.idle_timeout, DEFAULT_IDLE_TIMEOUT)?,
            )?,
            body_read_timeout: timeout(
                "body_read_timeout",
                duration("body_read_timeout", self.body_read_timeout, file.body_read_timeout, DEFAULT_BODY_READ_TIMEOUT)?,
            )?,
            query_timeout: timeout(
                "query_timeout",
                duration("query_timeout", self.query_timeout, file.query_timeout, DEFAULT_QUERY_TIMEOUT)?,
            )?,
            demo: self.demo || file.demo.unwrap_or(false),
            demo_scale: parse_demo_scale(self.demo_scale.or(file.demo_scale).as_deref().unwrap_or(DEFAULT_DEMO_SCALE))?,
            validation: parse_switch("validation", self.validation.or(file.validation).as_deref().unwrap_or("on"))?,
            packages: if self.packages.is_empty() { file.packages.unwrap_or_default() } else { self.packages },
            time_zone: self
                .time_zone
                .or(file.time_zone)
                .unwrap_or_else(|| termin_search::DEFAULT_TIME_ZONE.into()),
            profiles: parse_profiles(if self.profiles.is_empty() { file.profiles.unwrap_or_default() } else { self.profiles })?,
            cors_allowed_origins: CorsOrigins::parse(&if self.cors_allowed_origins.is_empty() {
                file.cors_allowed_origins.unwrap_or_default()
            } else {
                self.cors_allowed_origins
            })?,
            auth: auth_settings(
                self.auth_issuer.or(file.auth_issuer),
                self.auth_audience.or(file.auth_audience),
                self.auth_jwks.or(file.auth_jwks),
            )?,
            public_read: self.public_read.or(file.public_read).unwrap_or(true),
            audit_retention: self.audit_retention.or(file.audit_retention),
            notify: if parse_switch("notify", self.notify.or(file.notify).as_deref().unwrap_or("on"))? {
                Some(NotifySettings {
                    interval: timeout(
                        "notify_interval",
                        duration("notify_interval", self.notify_interval, file.notify_interval, DEFAULT_NOTIFY_INTERVAL)?,
                    )?,
                    timeout: timeout(
                        "notify_timeout",
                        duration("notify_timeout", self.notify_timeout, file.notify_timeout, DEFAULT_NOTIFY_TIMEOUT)?,
                    )?,
                    max_failures: self
                        .notify_max_failures
                        .or(file.notify_max_failures)
                        .unwrap_or(DEFAULT_NOTIFY_MAX_FAILURES)
                        .max(1),
                    retry_base: timeout(
                        "notify_retry_base",
                        duration("notify_retry_base", self.notify_retry_base, file.notify_retry_base, DEFAULT_NOTIFY_RETRY_BASE)?,
                    )?,
                    max_backoff: timeout(
                        "notify_max_backoff",
                        duration("notify_max_backoff", self.notify_max_backoff, file.notify_max_backoff, DEFAULT_NOTIFY_MAX_BACKOFF)?,
                    )?,
                    batch: self.notify_batch.or(file.notify_batch).unwrap_or(DEFAULT_NOTIFY_BATCH).max(1),
                })
            } else {
                None
            },
        })
    }
}

fn parse_switch(name: &str, text: &str) -> Result<bool, String> {
    match text {
        "on" => Ok(true),
        "off" => Ok(false),
        other => Err(format!("{name}: {other:?} is neither on nor off")),
    }
}

fn parse_demo_scale(text: &str) -> Result<Option<Scale>, String> {
    match text {
        "none" => Ok(None),
        other => other.parse().map(Some).map_err(|e| format!("demo_scale: {e}, or none")),
    }
}

/// `Type=URL` (or `Type=none`) pairs of `--profiles`.
fn parse_profiles(entries: Vec<String>) -> Result<Vec<(ResourceType, Option<String>)>, String> {
    entries
        .iter()
        .map(|entry| {
            let (type_name, url) = entry
                .split_once('=')
                .ok_or_else(|| format!("profiles entry {entry:?} is not Type=URL (or Type=none)"))?;
            let resource_type = type_name.trim().parse::<ResourceType>().map_err(|_| {
                format!("profiles entry {entry:?}: {type_name:?} is not a served type ({})", ResourceType::supported_list())
            })?;
            let url = url.trim();
            Ok((resource_type, (url != "none" && !url.is_empty()).then(|| url.to_owned())))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        serve: ServeArgs,
    }

    fn parse(args: &[&str]) -> ServeArgs {
        Cli::parse_from(std::iter::once("termin").chain(args.iter().copied())).serve
    }

    #[test]
    fn flags_beat_file_and_file_beats_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("termin.toml");
        std::fs::write(&file, "bind = \"127.0.0.1:9999\"\nmax_body_bytes = 10\nupdate_create = false\n").unwrap();
        let config = parse(&["--config", file.to_str().unwrap(), "--max-body-bytes", "20"])
            .resolve()
            .unwrap();
        assert_eq!(config.bind.port(), 9999);
        assert_eq!(config.max_body_bytes, 20);
        assert!(!config.update_create);
        assert_eq!(config.default_page_size, DEFAULT_PAGE_SIZE);
    }

    #[test]
    fn conditional_delete_comes_from_flag_over_file_and_defaults_to_single() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("termin.toml");
        let config_flag = ["--config", file.to_str().unwrap()];
        std::fs::write(&file, "conditional_delete = \"multiple\"\n").unwrap();
        assert_eq!(parse(&config_flag).resolve().unwrap().conditional_delete, ConditionalDelete::Multiple);
        let flagged = parse(&[config_flag[0], config_flag[1], "--conditional-delete", "off"]).resolve().unwrap();
        assert_eq!(flagged.conditional_delete, ConditionalDelete::Off);
        assert_eq!(parse(&[]).resolve().unwrap().conditional_delete, ConditionalDelete::Single);
        std::fs::write(&file, "conditional_delete = \"all\"\n").unwrap();
        assert!(parse(&config_flag).resolve().unwrap_err().contains("off, single or multiple"));
    }

    #[test]
    fn profiles_are_type_url_pairs() {
        let config = parse(&["--profiles", "Patient=http://example.org/p,Location=none"]).resolve().unwrap();
        assert_eq!(
            config.profiles,
            vec![(ResourceType::Patient, Some("http://example.org/p".into())), (ResourceType::Location, None)]
        );
        assert!(parse(&["--profiles", "Patient"]).resolve().is_err());
        assert!(parse(&["--profiles", "Bundle=x"]).resolve().is_err());
    }

    #[test]
    fn validation_is_on_unless_switched_off() {
        assert!(parse(&[]).resolve().unwrap().validation);
        assert!(!parse(&["--validation", "off"]).resolve().unwrap().validation);
        assert!(parse(&["--validation", "no"]).resolve().is_err());
    }

    #[test]
    fn postgres_urls_select_postgres_and_anything_else_is_a_sqlite_file() {
        let config = parse(&["--database", "postgres://termin:secret@db:5432/termin"]).resolve().unwrap();
        assert_eq!(config.database, Database::Postgres("postgres://termin:secret@db:5432/termin".into()));
        assert_eq!(config.database.to_string(), "postgres://termin:***@db:5432/termin");
        let config = parse(&["--database", "data/termin.db", "--pool-size", "25"]).resolve().unwrap();
        assert_eq!(config.database, Database::Sqlite("data/termin.db".into()));
        assert_eq!(config.pool_size, 25);
    }

    #[test]
    fn authorization_needs_issuer_and_audience_together() {
        let config = parse(&[]).resolve().unwrap();
        assert_eq!(config.auth, None);
        assert!(config.public_read);
        let config = parse(&["--auth-issuer", "https://idp.example/realms/t", "--auth-audience", "termin"])
            .resolve()
            .unwrap();
        let auth = config.auth.unwrap();
        assert_eq!((auth.issuer.as_str(), auth.audience.as_str(), auth.jwks), ("https://idp.example/realms/t", "termin", None));
        assert!(parse(&["--auth-issuer", "https://idp.example"]).resolve().is_err());
        assert!(parse(&["--auth-audience", "termin"]).resolve().is_err());
        assert!(parse(&["--auth-jwks", "keys.json"]).resolve().is_err());
        assert!(parse(&["--auth-issuer", "idp.example", "--auth-audience", "t"]).resolve().is_err());
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("termin.toml");
        std::fs::write(&file, "auth_issuer = \"http://idp\"\nauth_audience = \"a\"\nauth_jwks = \"k.json\"\npublic_read = false\n").unwrap();
        let config = parse(&["--config", file.to_str().unwrap()]).resolve().unwrap();
        assert_eq!(config.auth.unwrap().jwks, Some(PathBuf::from("k.json")));
        assert!(!config.public_read);
    }

    #[test]
    fn cors_origins_are_a_list_or_a_star() {
        assert_eq!(parse(&[]).resolve().unwrap().cors_allowed_origins, CorsOrigins::None);
        assert_eq!(parse(&["--cors-allowed-origins", "*"]).resolve().unwrap().cors_allowed_origins, CorsOrigins::Any);
        let config = parse(&["--cors-allowed-origins", "https://a.example,http://localhost:3000"]).resolve().unwrap();
        assert!(matches!(config.cors_allowed_origins, CorsOrigins::Only(origins) if origins.len() == 2));
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("termin.toml");
        std::fs::write(&file, "cors_allowed_origins = [\"https://a.example\"]\n").unwrap();
        let config = parse(&["--config", file.to_str().unwrap()]).resolve().unwrap();
        assert!(matches!(config.cors_allowed_origins, CorsOrigins::Only(origins) if origins.len() == 1));
        assert!(parse(&["--cors-allowed-origins", "a.example"]).resolve().is_err());
    }

    #[test]
    fn query_timeout_is_a_positive_duration() {
        assert_eq!(parse(&[]).resolve().unwrap().query_timeout, std::time::Duration::from_secs(5));
        let config = parse(&["--query-timeout", "250ms"]).resolve().unwrap();
        assert_eq!(config.query_timeout, std::time::Duration::from_millis(250));
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("termin.toml");
        std::fs::write(&file, "query_timeout = \"PT2S\"\n").unwrap();
        let config = parse(&["--config", file.to_str().unwrap()]).resolve().unwrap();
        assert_eq!(config.query_timeout, std::time::Duration::from_secs(2));
        assert!(parse(&["--query-timeout", "0s"]).resolve().is_err());
        std::fs::write(&file, "query_timeout = \"soon\"\n").unwrap();
        assert!(parse(&["--config", file.to_str().unwrap()]).resolve().is_err());
    }

    #[test]
    fn unknown_file_keys_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("termin.toml");
        std::fs::write(&file, "bnid = \"x\"\n").unwrap();
        let err = parse(&["--config", file.to_str().unwrap()]).resolve().unwrap_err();
        assert!(err.contains("bnid"), "{err}");
    }
}
