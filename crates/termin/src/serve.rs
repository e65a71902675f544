//! `termin serve`: open the store, build the API and serve until a shutdown signal.

use crate::config::ServeConfig;
use crate::connections::{self, Timeouts};
use crate::setup;
use crate::validation::Packages;
use std::process::ExitCode;
use std::sync::Arc;
use termin_api::auth::{Authenticator, Authorization, Discovery, KeySource, PublicBooking};
use termin_api::metrics::Metrics;
use termin_api::{ApiConfig, AppState};
use termin_domain::{AuditTrail, Domain, ServiceConfig};
use tracing_subscriber::EnvFilter;

pub fn run(config: ServeConfig) -> ExitCode {
    let filter = match EnvFilter::try_new(&config.log) {
        Ok(filter) => filter,
        Err(e) => {
            eprintln!("termin: invalid log filter {:?}: {e}", config.log);
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(true)
        .with_writer(std::io::stderr)
        .init();
    let Some(runtime) = setup::runtime("serve", true) else {
        return ExitCode::FAILURE;
    };
    match runtime.block_on(serve(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            tracing::error!(%message, "termin stopped");
            eprintln!("termin: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: ServeConfig) -> Result<(), String> {
    let mut metrics = Metrics::install()?;
    let opened =
        setup::open_store(&config.database, config.read_connections, config.pool_size, Some(config.query_timeout))
            .await?;
    let generation_in_flight = crate::slot_generation::in_flight(&opened);
    if let Some(postgres) = opened.postgres {
        metrics = metrics.sample_on_scrape(move || postgres.record_pool_metrics());
    }
    let search = setup::install_search_parameters(&config.packages, &config.time_zone)?;
    let service_config = ServiceConfig {
        update_create: config.update_create,
        conditional_delete: config.conditional_delete,
        hold_duration: config.hold_duration,
        max_holds_per_holder: config.max_holds_per_holder,
        max_hold_time: config.max_hold_time,
        max_resource_bytes: config.max_body_bytes,
    };
    let packages = if config.validation { Packages::Shipped(&config.packages) } else { Packages::Off };
    let audit = AuditTrail::start(opened.store.clone());
    let domain = setup::domain(opened.store.clone(), service_config, search, packages, &config.profiles)
        .await?
        .with_audit(audit.clone());
    setup::install_xml();
    if config.demo {
        crate::demo::load_examples(&domain.resources, &config.packages).await?;
        if let Some(scale) = config.demo_scale {
            crate::seed::load_demo(&domain, scale).await?;
        }
    }
    let domain = Arc::new(domain);
    tokio::spawn(sweep_expired_holds(domain.clone(), config.hold_sweep_interval));
    if let Some(every) = config.slot_generation_interval {
        let job = crate::slot_generation::SlotGeneration::new(
            domain.clone(),
            opened.leases.clone(),
            every,
            generation_in_flight,
        );
        tokio::spawn(job.run());
    }
    tokio::spawn(metrics.upkeep());
    if let Some(days) = config.audit_retention {
        tokio::spawn(sweep_audit_events(domain.clone(), days));
    }
    let auth = authorization(&config).await?;
    let platform = match &config.platform {
        Some(settings) => {
            let platform = termin_platform::Platform::new(settings.clone())?;
            let upstreams: Vec<&str> = platform.upstreams().iter().map(|u| u.name()).collect();
            tracing::info!(name = platform.name(), ?upstreams, "central platform mode");
            Some(Arc::new(platform))
        }
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(config.bind)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.bind))?;
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    if let Some(settings) = &config.notify {
        let notifier = termin_notify::Notifier::new(
            domain.clone(),
            opened.store.clone(),
            opened.deliveries.clone(),
            termin_notify::NotifyConfig {
                base_url: public_base(&config, address),
                interval: settings.interval,
                timeout: settings.timeout,
                max_failures: settings.max_failures,
                retry_base: settings.retry_base,
                max_backoff: settings.max_backoff,
                batch: settings.batch,
            },
        )?;
        tokio::spawn(notifier.run());
        if let Some(mail) = &config.mail {
            let mailer = termin_notify::mail::Mailer::new(
                domain.clone(),
                opened.store.clone(),
                opened.mails.clone(),
                termin_notify::mail::MailConfig {
                    smtp_url: mail.smtp_url.clone(),
                    starttls: mail.starttls,
                    from: mail.from.clone(),
                    base_url: public_base(&config, address),
                    interval: settings.interval,
                    timeout: settings.timeout,
                    retry_base: settings.retry_base,
                    max_backoff: settings.max_backoff,
                    give_up_after: crate::config::MAIL_GIVE_UP_AFTER,
                    reminder_before: mail.reminder_before,
                    time_zone: jiff::tz::TimeZone::get(&config.time_zone)
                        .map_err(|e| format!("time_zone {:?}: {e}", config.time_zone))?,
                },
            )
            .await?;
            tokio::spawn(mailer.run());
        }
    }
    let app = termin_api::app_with_pages(
        AppState {
            domain,
            metrics,
            auth,
            platform,
            notifications: config.notify.as_ref().map(|settings| {
                Arc::new(termin_notify::websocket::Hub::new(opened.deliveries.clone(), settings.interval))
            }),
            config: ApiConfig {
                base_url: config.base_url.clone(),
                max_body_bytes: config.max_body_bytes,
                default_count: config.default_page_size,
                max_count: config.max_page_size,
                cors_allowed_origins: config.cors_allowed_origins.clone(),
                body_read_timeout: config.body_read_timeout,
                trusted_proxies: config.trusted_proxies.clone(),
                max_bundle_entries: config.max_bundle_entries,
                disabled_operations: config.disabled_operations.clone(),
            },
        },
        crate::web::router(config.auth.as_ref().map(|settings| settings.issuer.as_str())),
    );
    tracing::info!(%address, "listening");
    // Tests and scripts read this line to learn the port when binding to port 0.
    println!("termin listening on http://{address}");
    let timeouts = Timeouts { header_read: config.header_read_timeout, idle: config.idle_timeout };
    connections::serve(listener, app, timeouts, shutdown_signal()).await;
    // Every answered read's audit event is stored before the process ends.
    audit.drain().await;
    Ok(())
}

/// The token checks of `--auth-issuer`; `None` (with a warning) when authorization is off.
async fn authorization(config: &ServeConfig) -> Result<Option<Authorization>, String> {
    let Some(settings) = &config.auth else {
        tracing::warn!(
            "authorization is OFF (no --auth-issuer): every caller may read and change all data; \
             use this for development and demos only"
        );
        if config.public_booking.is_some() {
            tracing::warn!(
                "--public-booking has no effect without authorization: every caller may hold and book anyway"
            );
        }
        return Ok(None);
    };
    let keys = match &settings.jwks {
        Some(path) => KeySource::from_file(path)?,
        None => {
            let discovery = Discovery::new(&settings.issuer)?;
            discovery.prefetch().await;
            KeySource::Discovery(Box::new(discovery))
        }
    };
    tracing::info!(
        issuer = %settings.issuer,
        audience = %settings.audience,
        public_read = config.public_read,
        public_booking_per_hour = config.public_booking,
        "authorization on"
    );
    Ok(Some(Authorization {
        authenticator: Authenticator::new(settings.issuer.clone(), settings.audience.clone(), keys),
        public_read: config.public_read,
        public_booking: config.public_booking.map(PublicBooking::new),
    }))
}

/// Periodically stores the release of expired holds (reads already treat them as free). Every
/// node sweeps: each release re-checks its hold under the Slot's lock in its own unit of work,
/// so a hold is released exactly once however many nodes try.
async fn sweep_expired_holds(domain: Arc<Domain>, every: jiff::SignedDuration) {
    let period = std::time::Duration::try_from(every).unwrap_or(std::time::Duration::from_secs(30));
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match domain.scheduling.release_expired_holds(500).await {
            Ok(0) => {}
            Ok(released) => {
                metrics::counter!("termin_hold_expiries_total").increment(released as u64);
                tracing::info!(released, "released expired slot holds");
            }
            Err(e) => tracing::warn!(error = ?e, "releasing expired holds failed; will retry"),
        }
    }
}

/// Deletes the AuditEvents older than the retention (`--audit-retention`), at start-up and then
/// hourly.
async fn sweep_audit_events(domain: Arc<Domain>, days: u32) {
    let retention = jiff::SignedDuration::from_hours(24 * i64::from(days));
    let mut ticks = tokio::time::interval(std::time::Duration::from_secs(3600));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let before = jiff::Timestamp::now().saturating_sub(retention).unwrap_or(jiff::Timestamp::MIN);
        match domain.sweep_audit_events(before).await {
            Ok(0) => {}
            Ok(swept) => tracing::info!(swept, days, "deleted AuditEvents past their retention"),
            Err(e) => tracing::warn!(error = ?e, "deleting old AuditEvents failed; will retry"),
        }
    }
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(_) => return interrupt.await.unwrap_or(()),
        };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    interrupt.await.unwrap_or(());
    tracing::info!("shutting down");
}

/// The FHIR base notifications and e-mail name: without --base-url, this node's address.
fn public_base(config: &ServeConfig, address: std::net::SocketAddr) -> String {
    config.base_url.as_deref().map_or_else(|| format!("http://{address}/fhir"), |b| b.trim_end_matches('/').to_owned())
}
