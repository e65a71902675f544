//! Configuration: command-line flags, `TERMIN_*` environment variables and an optional TOML
//! file. Precedence: flag, then environment, then file, then the built-in default.

use clap::Args;
use jiff::SignedDuration;
use serde::Deserialize;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use termin_api::CorsOrigins;
use termin_domain::ConditionalDelete;
use termin_fhir::ResourceType;
use termin_seed::Scale;

pub const DEFAULT_BIND: &str = "127.0.0.1:8080";
pub const DEFAULT_DATABASE: &str = "termin.db";
pub const DEFAULT_LOG: &str = "info";
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
pub const DEFAULT_MAX_BUNDLE_ENTRIES: usize = 1000;
pub const DEFAULT_PAGE_SIZE: usize = 20;
pub const DEFAULT_MAX_PAGE_SIZE: usize = 500;
pub const DEFAULT_READ_CONNECTIONS: u32 = 4;
pub const DEFAULT_POOL_SIZE: u32 = 10;
pub const DEFAULT_HOLD_DURATION: &str = "10m";
pub const DEFAULT_HOLD_SWEEP_INTERVAL: &str = "30s";
pub const DEFAULT_SLOT_GENERATION_INTERVAL: &str = "1h";
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
pub const DEFAULT_MAIL_REMINDER_BEFORE: &str = "24h";
/// Temporary SMTP failures are retried for this long, then the message is given up.
pub const MAIL_GIVE_UP_AFTER: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

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

    /// SMTP server for e-mail to patients and practices: smtp://user:pass@host:port, or
    /// smtps://... for TLS from the start; without it no e-mail is sent
    #[arg(long, env = "TERMIN_SMTP_URL", value_name = "URL")]
    pub smtp_url: Option<String>,

    /// The sender of e-mail, e.g. "Praxis <termine@example.org>" (needed with --smtp-url)
    #[arg(long, env = "TERMIN_SMTP_FROM", value_name = "MAILBOX")]
    pub smtp_from: Option<String>,

    /// STARTTLS on an smtp:// connection [default: opportunistic]
    #[arg(long, env = "TERMIN_SMTP_STARTTLS", value_name = "required|opportunistic|never")]
    pub smtp_starttls: Option<String>,

    /// How long before an appointment the patient is reminded by e-mail; 0s: no reminders
    /// [default: 24h]
    #[arg(long, env = "TERMIN_MAIL_REMINDER_BEFORE", value_name = "DURATION")]
    pub mail_reminder_before: Option<SignedDuration>,

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

    /// The most entries a batch or transaction Bundle (POST to the base) may have; larger
    /// Bundles get 413 [default: 1000]
    #[arg(long, env = "TERMIN_MAX_BUNDLE_ENTRIES", value_name = "N")]
    pub max_bundle_entries: Option<usize>,

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

    /// How often the background slot generation brings every Schedule with a horizon rule
    /// (slot-generation extension) up to its horizon; one node of a cluster at a time. 0s: off
    /// [default: 1h]
    #[arg(long, env = "TERMIN_SLOT_GENERATION_INTERVAL", value_name = "DURATION")]
    pub slot_generation_interval: Option<SignedDuration>,

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

    /// With authorization on: whether $hold and $book work without a token (anonymous booking,
    /// rate-limited per client address); such a booking is reached again only with the access
    /// secret $book returns. Without authorization everyone may book anyway [default: false]
    #[arg(long, env = "TERMIN_PUBLIC_BOOKING", value_name = "BOOL")]
    pub public_booking: Option<bool>,

    /// Anonymous $hold and $book requests a client address may make per hour (a burst of that
    /// many, then refilled evenly) under --public-booking; more answer 429 [default: 60]
    #[arg(long, env = "TERMIN_PUBLIC_BOOKING_LIMIT", value_name = "N")]
    pub public_booking_limit: Option<u32>,

    /// Addresses of reverse proxies in front of Termin; repeat or comma-separate. A request from
    /// one of them comes from the right-most X-Forwarded-For address that is not one of them
    /// (for rate limits and the audit trail); otherwise the header is ignored [default: none]
    #[arg(long = "trusted-proxies", env = "TERMIN_TRUSTED_PROXIES", value_name = "IP", value_delimiter = ',')]
    pub trusted_proxies: Vec<String>,

    /// Days AuditEvents are kept; older ones are deleted for good by an hourly sweep (and one
    /// at start-up) [default: kept forever]
    #[arg(long, env = "TERMIN_AUDIT_RETENTION", value_name = "DAYS")]
    pub audit_retention: Option<u32>,

    /// Central platform mode: an upstream Scheduling Server as NAME=URL (its FHIR base); repeat
    /// or comma-separate. Its resources appear here as Type/NAME.id; searches and $findHSP fan
    /// out to every upstream, and requests for its resources are relayed to it. Replaces the
    /// config file's [[upstream]] tables, which also set auth and priority [default: none]
    #[arg(long = "upstream", env = "TERMIN_UPSTREAM", value_name = "NAME=URL", value_delimiter = ',')]
    pub upstreams: Vec<String>,

    /// How long one request to an upstream may take; a slower upstream's results are left out
    /// with a warning [default: 5s]
    #[arg(long, env = "TERMIN_UPSTREAM_TIMEOUT", value_name = "DURATION")]
    pub upstream_timeout: Option<SignedDuration>,

    /// This platform's name in the X-Termin-Via chain of cascaded platforms, which refuses
    /// loops; must differ between cascaded platforms [default: a random name per start]
    #[arg(long, env = "TERMIN_PLATFORM_NAME", value_name = "NAME")]
    pub platform_name: Option<String>,

    /// How long a platform reuses an upstream's answer to a directory search (HealthcareService,
    /// PractitionerRole, Practitioner, Organization, Location, Schedule); 0s: asks every time
    /// [default: 0s]
    #[arg(long, env = "TERMIN_DIRECTORY_CACHE_TTL", value_name = "DURATION")]
    pub directory_cache_ttl: Option<SignedDuration>,

    /// How long a platform reuses an upstream's answer to a Slot search or $findHSP (free
    /// slots), at most 60s; 0s: asks every time [default: 0s]
    #[arg(long, env = "TERMIN_SLOT_CACHE_TTL", value_name = "DURATION")]
    pub slot_cache_ttl: Option<SignedDuration>,
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
    max_bundle_entries: Option<usize>,
    update_create: Option<bool>,
    conditional_delete: Option<String>,
    default_page_size: Option<usize>,
    max_page_size: Option<usize>,
    read_connections: Option<u32>,
    pool_size: Option<u32>,
    hold_duration: Option<String>,
    hold_sweep_interval: Option<String>,
    slot_generation_interval: Option<String>,
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
    public_booking: Option<bool>,
    public_booking_limit: Option<u32>,
    trusted_proxies: Option<Vec<String>>,
    audit_retention: Option<u32>,
    notify: Option<String>,
    notify_interval: Option<String>,
    notify_timeout: Option<String>,
    notify_max_failures: Option<u32>,
    notify_retry_base: Option<String>,
    notify_max_backoff: Option<String>,
    notify_batch: Option<usize>,
    smtp_url: Option<String>,
    smtp_from: Option<String>,
    smtp_starttls: Option<String>,
    mail_reminder_before: Option<String>,
    upstream: Option<Vec<crate::upstreams::FileUpstream>>,
    upstream_timeout: Option<String>,
    platform_name: Option<String>,
    directory_cache_ttl: Option<String>,
    slot_cache_ttl: Option<String>,
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
    pub max_bundle_entries: usize,
    pub update_create: bool,
    pub conditional_delete: ConditionalDelete,
    pub default_page_size: usize,
    pub max_page_size: usize,
    pub read_connections: u32,
    pub pool_size: u32,
    pub hold_duration: SignedDuration,
    pub hold_sweep_interval: SignedDuration,
    /// `None`: no background slot generation on this node.
    pub slot_generation_interval: Option<SignedDuration>,
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
    /// `Some`: anonymous `$hold`/`$book` (with authorization on), at most this many per client
    /// address and hour.
    pub public_booking: Option<u32>,
    /// Reverse proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpAddr>,
    /// Days AuditEvents are kept; `None`: forever.
    pub audit_retention: Option<u32>,
    /// `None`: this node delivers no notifications.
    pub notify: Option<NotifySettings>,
    /// `None`: no e-mail is sent (a node with notifications off sends none either).
    pub mail: Option<MailSettings>,
    /// `None`: no upstreams, not a central platform.
    pub platform: Option<termin_platform::PlatformConfig>,
}

/// Where and how e-mail is sent (`--smtp-*`, `--mail-*`).
#[derive(Debug, Clone, PartialEq)]
pub struct MailSettings {
    pub smtp_url: String,
    pub from: String,
    pub starttls: termin_notify::mail::StartTls,
    /// `None`: no reminders.
    pub reminder_before: Option<std::time::Duration>,
}

fn mail_settings(
    smtp_url: Option<String>,
    from: Option<String>,
    starttls: Option<String>,
    reminder_before: SignedDuration,
) -> Result<Option<MailSettings>, String> {
    let Some(smtp_url) = smtp_url else {
        return match from {
            Some(_) => Err("smtp_from needs smtp_url (the server e-mail is sent through)".into()),
            None => Ok(None),
        };
    };
    if !(smtp_url.starts_with("smtp://") || smtp_url.starts_with("smtps://")) {
        return Err("smtp_url must start with smtp:// or smtps://".into());
    }
    let from = from.ok_or("smtp_url needs smtp_from (the sender of e-mail)")?;
    let starttls = match starttls.as_deref().unwrap_or("opportunistic") {
        "required" => termin_notify::mail::StartTls::Required,
        "opportunistic" => termin_notify::mail::StartTls::Opportunistic,
        "never" => termin_notify::mail::StartTls::Never,
        other => return Err(format!("smtp_starttls: {other:?} is none of required, opportunistic, never")),
    };
    let reminder_before = match reminder_before.is_zero() {
        true => None,
        false => Some(std::time::Duration::try_from(reminder_before).map_err(|e| format!("mail_reminder_before: {e}"))?),
    };
    Ok(Some(MailSettings { smtp_url, from, starttls, reminder_before }))
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
            max_bundle_entries: self
                .max_bundle_entries
                .or(file.max_bundle_entries)
                .unwrap_or(DEFAULT_MAX_BUNDLE_ENTRIES),
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
            slot_generation_interval: Some(duration(
                "slot_generation_interval",
                self.slot_generation_interval,
                file.slot_generation_interval,
                DEFAULT_SLOT_GENERATION_INTERVAL,
            )?)
            .filter(|every| every.is_positive()),
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
            public_booking: public_booking(
                self.public_booking.or(file.public_booking).unwrap_or(false),
                self.public_booking_limit.or(file.public_booking_limit),
            )?,
            trusted_proxies: parse_trusted_proxies(if self.trusted_proxies.is_empty() {
                file.trusted_proxies.unwrap_or_default()
            } else {
                self.trusted_proxies
            })?,
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
            mail: mail_settings(
                self.smtp_url.or(file.smtp_url),
                self.smtp_from.or(file.smtp_from),
                self.smtp_starttls.or(file.smtp_starttls),
                duration(
                    "mail_reminder_before",
                    self.mail_reminder_before,
                    file.mail_reminder_before,
                    DEFAULT_MAIL_REMINDER_BEFORE,
                )?,
            )?,
            platform: crate::upstreams::platform_config(crate::upstreams::PlatformSettings {
                flags: self.upstreams,
                tables: file.upstream.unwrap_or_default(),
                timeout: duration("upstream_timeout", self.upstream_timeout, file.upstream_timeout, crate::upstreams::DEFAULT_UPSTREAM_TIMEOUT)?,
                name: self.platform_name.or(file.platform_name),
                directory_ttl: duration("directory_cache_ttl", self.directory_cache_ttl, file.directory_cache_ttl, "0s")?,
                slot_ttl: duration("slot_cache_ttl", self.slot_cache_ttl, file.slot_cache_ttl, "0s")?,
            })?,
        })
    }
}

/// `--public-booking` with its limit (a limit of 0 would refuse every anonymous booking: use
/// `--public-booking false` for that).
fn public_booking(on: bool, limit: Option<u32>) -> Result<Option<u32>, String> {
    match (on, limit) {
        (_, Some(0)) => Err("public_booking_limit must be at least 1 (turn anonymous booking off with public_booking = false)".into()),
        (true, limit) => Ok(Some(limit.unwrap_or(termin_api::auth::public_booking::DEFAULT_LIMIT_PER_HOUR))),
        (false, _) => Ok(None),
    }
}

fn parse_trusted_proxies(entries: Vec<String>) -> Result<Vec<IpAddr>, String> {
    entries
        .iter()
        .map(|entry| entry.trim().parse().map_err(|_| format!("trusted_proxies: {entry:?} is not an IP address")))
        .collect()
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
    fn mail_needs_an_smtp_url_and_a_sender_together() {
        assert_eq!(parse(&[]).resolve().unwrap().mail, None);
        let config = parse(&["--smtp-url", "smtp://u:p@mail:587", "--smtp-from", "Praxis <t@example.org>"]).resolve().unwrap();
        let mail = config.mail.unwrap();
        assert_eq!(mail.starttls, termin_notify::mail::StartTls::Opportunistic);
        assert_eq!(mail.reminder_before, Some(std::time::Duration::from_secs(24 * 3600)));
        let off = parse(&["--smtp-url", "smtps://mail", "--smtp-from", "t@example.org", "--mail-reminder-before", "0s"]);
        assert_eq!(off.resolve().unwrap().mail.unwrap().reminder_before, None);
        assert!(parse(&["--smtp-url", "smtp://mail"]).resolve().is_err(), "no sender");
        assert!(parse(&["--smtp-from", "t@example.org"]).resolve().is_err(), "no server");
        assert!(parse(&["--smtp-url", "http://mail", "--smtp-from", "t@example.org"]).resolve().is_err());
        let bad_tls = parse(&["--smtp-url", "smtp://mail", "--smtp-from", "t@example.org", "--smtp-starttls", "always"]);
        assert!(bad_tls.resolve().is_err());
    }

    #[test]
    fn slot_generation_runs_hourly_unless_switched_off_with_zero() {
        assert_eq!(parse(&[]).resolve().unwrap().slot_generation_interval, Some(SignedDuration::from_hours(1)));
        let every = parse(&["--slot-generation-interval", "15m"]).resolve().unwrap().slot_generation_interval;
        assert_eq!(every, Some(SignedDuration::from_mins(15)));
        assert_eq!(parse(&["--slot-generation-interval", "0s"]).resolve().unwrap().slot_generation_interval, None);
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
    fn public_booking_is_off_unless_asked_for_with_a_positive_limit() {
        assert_eq!(parse(&[]).resolve().unwrap().public_booking, None);
        assert_eq!(parse(&["--public-booking", "true"]).resolve().unwrap().public_booking, Some(60));
        let config = parse(&["--public-booking", "true", "--public-booking-limit", "5"]).resolve().unwrap();
        assert_eq!(config.public_booking, Some(5));
        assert!(parse(&["--public-booking", "true", "--public-booking-limit", "0"]).resolve().is_err());
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("termin.toml");
        std::fs::write(&file, "public_booking = true\npublic_booking_limit = 7\n").unwrap();
        assert_eq!(parse(&["--config", file.to_str().unwrap()]).resolve().unwrap().public_booking, Some(7));
    }

    #[test]
    fn trusted_proxies_are_ip_addresses() {
        assert!(parse(&[]).resolve().unwrap().trusted_proxies.is_empty());
        let config = parse(&["--trusted-proxies", "10.0.0.1, ::1"]).resolve().unwrap();
        assert_eq!(config.trusted_proxies, ["10.0.0.1".parse::<IpAddr>().unwrap(), "::1".parse().unwrap()]);
        assert!(parse(&["--trusted-proxies", "proxy.example"]).resolve().is_err());
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
