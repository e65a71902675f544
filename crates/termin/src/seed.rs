//! `termin seed`: writes the deterministic Austrian dataset of `termin-seed` into a database
//! (through the domain service, so the index, the slot bookings and validation are exactly
//! those of the server, and the Slots come from the Schedules' rules through the server's slot
//! generation), or into an NDJSON file.

use crate::config::{DEFAULT_DATABASE, Database};
use crate::setup;
use crate::validation::Packages;
use clap::{Args, ValueEnum};
use jiff::ToSpan;
use jiff::civil::Date;
use jiff::Timestamp;
use serde_json::{Map, Value};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;
use termin_domain::{Domain, GenerationRequest, ImportSummary, ResourceService, ServiceConfig};
use termin_seed::{Scale, SeedOptions};
use termin_domain::Caller;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ScaleArg {
    /// A few hundred slots, for tests and smoke runs
    Tiny,
    /// About 10,000 slots (the demo dataset)
    Small,
    /// About 100,000 slots
    Medium,
    /// About 1,000,000 slots
    Large,
}

impl From<ScaleArg> for Scale {
    fn from(value: ScaleArg) -> Self {
        match value {
            ScaleArg::Tiny => Scale::Tiny,
            ScaleArg::Small => Scale::Small,
            ScaleArg::Medium => Scale::Medium,
            ScaleArg::Large => Scale::Large,
        }
    }
}

/// Flags of `termin seed`.
#[derive(Debug, Args)]
pub struct SeedArgs {
    /// How much data: tiny, small (~10k slots), medium (~100k), large (~1M)
    #[arg(long, value_enum, default_value = "small")]
    pub scale: ScaleArg,

    /// Random seed; the same seed, scale and start give the same resources
    #[arg(long, env = "TERMIN_SEED", default_value_t = 1)]
    pub seed: u64,

    /// First day with slots (YYYY-MM-DD) [default: Monday of the current week, Europe/Vienna]
    #[arg(long, value_name = "DATE")]
    pub start: Option<Date>,

    /// SQLite database file or PostgreSQL URL to load into, as for `termin serve` [default: termin.db]
    #[arg(long, env = "TERMIN_DATABASE", value_name = "PATH|URL")]
    pub database: Option<PathBuf>,

    /// Write the resources as NDJSON (one per line) to this file instead of a database
    #[arg(long, value_name = "FILE", conflicts_with = "database")]
    pub ndjson: Option<PathBuf>,

    /// Validate every resource while loading, as `termin serve` does its writes: against R5 and
    /// the AT profiles shipped with Termin (and those of --packages)
    #[arg(long, env = "TERMIN_VALIDATION", value_name = "on|off", default_value = "on",
          value_parser = clap::builder::PossibleValuesParser::new(["on", "off"]))]
    pub validation: String,

    /// FHIR package directories to validate against besides the shipped ones, as for `termin serve`
    #[arg(long = "packages", env = "TERMIN_PACKAGES", value_name = "DIR", value_delimiter = ',')]
    pub packages: Vec<PathBuf>,

    /// IANA time zone for dates without an offset, as for `termin serve` [default: Europe/Vienna]
    #[arg(long, env = "TERMIN_TIME_ZONE", value_name = "ZONE")]
    pub time_zone: Option<String>,

    /// Resources written per transaction
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u32).range(1..))]
    pub batch: u32,
}

pub fn run(args: SeedArgs) -> ExitCode {
    let Some(runtime) = setup::runtime("seed", false) else {
        return ExitCode::FAILURE;
    };
    match runtime.block_on(seed(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("termin seed: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The Monday of the current week in Europe/Vienna: demo slots start "now-ish".
pub fn this_monday() -> Date {
    let vienna = jiff::tz::TimeZone::get(termin_search::DEFAULT_TIME_ZONE).unwrap_or(jiff::tz::TimeZone::UTC);
    let today = Timestamp::now().to_zoned_datetime(vienna).date();
    today
        .checked_sub(i64::from(today.weekday().to_monday_zero_offset()).days())
        .unwrap_or(today)
}

async fn seed(args: SeedArgs) -> Result<(), String> {
    let options = SeedOptions::new(args.scale.into(), args.seed, args.start.unwrap_or_else(this_monday));
    let started = Instant::now();
    if let Some(path) = &args.ndjson {
        let written = write_ndjson(path, &options)?;
        println!("wrote {written} resources to {} in {:.1?}", path.display(), started.elapsed());
        return Ok(());
    }
    let database = Database::from(args.database.unwrap_or_else(|| DEFAULT_DATABASE.into()));
    let time_zone = args.time_zone.as_deref().unwrap_or(termin_search::DEFAULT_TIME_ZONE);
    let target = Target { database: &database, validation: args.validation == "on", packages: &args.packages, time_zone };
    let summary = seed_database(&target, &options, args.batch as usize, false).await?.unwrap_or_default();
    println!(
        "{database}: {} created, {} existing left as they were, in {:.1?} (scale {}, seed {}, start {})",
        summary.created,
        summary.existing,
        started.elapsed(),
        options.scale,
        options.seed,
        options.start
    );
    Ok(())
}

/// Where [`seed_database`] loads: the database, and the validation and time zone (search
/// index) of the server that will serve it.
pub struct Target<'a> {
    pub database: &'a Database,
    /// Validate against R5, the shipped AT packages and `packages`.
    pub validation: bool,
    pub packages: &'a [PathBuf],
    pub time_zone: &'a str,
}

/// Loads the dataset into `target.database`, then refreshes PostgreSQL's planner statistics.
/// With `unless_loaded`, a database already holding the dataset is left alone (`None`).
pub async fn seed_database(
    target: &Target<'_>,
    options: &SeedOptions,
    batch: usize,
    unless_loaded: bool,
) -> Result<Option<ImportSummary>, String> {
    // Seeding answers no request: its searches run as long as they need.
    let opened = setup::open_store(target.database, 1, 2, None).await?;
    let search = setup::install_search_parameters(target.packages, target.time_zone)?;
    let packages = if target.validation { Packages::Shipped(target.packages) } else { Packages::Off };
    let domain = setup::domain(opened.store, ServiceConfig::default(), search, packages, &[]).await?;
    if unless_loaded && is_loaded(&domain.resources, options).await? {
        return Ok(None);
    }
    let summary = load(&domain, options, batch).await?;
    if let Some(postgres) = opened.postgres {
        postgres.analyze().await.map_err(|e| e.to_string())?;
    }
    Ok(Some(summary))
}

/// Loads the dataset in batches of `batch` resources, the way a practice's data comes about:
/// the organisations, roles with their opening hours and Schedules with their generation rules
/// are imported; the Slots are generated from those rules by the server's slot generation
/// (`$generate-slots`, one unit of work per Schedule), not imported; the booked Appointments are
/// imported and take their slots. A slot that has started already is not generated, so the
/// Appointment of such a slot is left out.
pub async fn load(domain: &Domain, options: &SeedOptions, batch: usize) -> Result<ImportSummary, String> {
    let ctx = Caller::system("seed");
    let mut total = ImportSummary::default();
    let mut pending: Vec<Map<String, Value>> = Vec::with_capacity(batch);
    let mut schedules = Vec::new();
    let mut slots_generated = false;
    // Whether the Slot just passed (an Appointment follows its Slot) was generated.
    let mut slot_exists = false;
    let now = Timestamp::now();
    for resource in termin_seed::generate(options) {
        match resource.get("resourceType").and_then(Value::as_str) {
            Some("Schedule") => {
                schedules.push(resource.get("id").and_then(Value::as_str).unwrap_or_default().to_owned());
            }
            Some("Slot") => {
                if !slots_generated {
                    import(&domain.resources, &ctx, std::mem::take(&mut pending), &mut total).await?;
                    generate_slots(domain, &ctx, options, &schedules, &mut total).await?;
                    slots_generated = true;
                }
                let start = resource.get("start").and_then(Value::as_str).and_then(|start| start.parse::<Timestamp>().ok());
                slot_exists = start.is_some_and(|start| start >= now);
                continue;
            }
            Some("Appointment") if !slot_exists => continue,
            _ => {}
        }
        pending.push(resource);
        if pending.len() >= batch {
            import(&domain.resources, &ctx, std::mem::take(&mut pending), &mut total).await?;
        }
    }
    import(&domain.resources, &ctx, pending, &mut total).await?;
    Ok(total)
}

async fn import(service: &ResourceService, ctx: &Caller, chunk: Vec<Map<String, Value>>, total: &mut ImportSummary) -> Result<(), String> {
    let Some(first) = chunk.first().map(describe) else {
        return Ok(());
    };
    let summary = service.import(ctx, chunk).await.map_err(|e| format!("loading the batch starting at {first}: {e:?}"))?;
    total.created += summary.created;
    total.existing += summary.existing;
    Ok(())
}

/// Generates the Slots of every Schedule for the dataset's days.
async fn generate_slots(
    domain: &Domain,
    ctx: &Caller,
    options: &SeedOptions,
    schedules: &[String],
    total: &mut ImportSummary,
) -> Result<(), String> {
    let (first, last) = options.days();
    let request = GenerationRequest { first, last, slot_length: None, dry_run: false };
    for schedule in schedules {
        let summary = domain
            .scheduling
            .generate_slots(ctx, schedule, &request)
            .await
            .map_err(|e| format!("generating the slots of Schedule/{schedule}: {e:?}"))?;
        total.created += summary.created;
        total.existing += summary.kept;
    }
    Ok(())
}

/// Whether the dataset of `options` is loaded already: its first resource exists.
pub async fn is_loaded(service: &ResourceService, options: &SeedOptions) -> Result<bool, String> {
    let Some(first) = termin_seed::generate(options).next() else {
        return Ok(true);
    };
    let (Some(resource_type), Some(id)) = (
        first.get("resourceType").and_then(Value::as_str).and_then(|t| t.parse().ok()),
        first.get("id").and_then(Value::as_str),
    ) else {
        return Err("the dataset's first resource has no type or id".into());
    };
    Ok(service.read(&Caller::system("seed"), resource_type, id).await.is_ok())
}

/// Loads the dataset for `serve --demo` unless it is loaded already: a demo database keeps
/// the bookings made in it across restarts.
pub async fn load_demo(domain: &Domain, scale: Scale) -> Result<(), String> {
    let options = SeedOptions::new(scale, 1, this_monday());
    if is_loaded(&domain.resources, &options).await? {
        tracing::info!("the demo dataset is loaded already");
        return Ok(());
    }
    let started = Instant::now();
    let summary = load(domain, &options, 2000).await?;
    tracing::info!(created = summary.created, millis = started.elapsed().as_millis() as u64, start = %options.start, "loaded the demo dataset");
    Ok(())
}

fn describe(resource: &Map<String, Value>) -> String {
    format!(
        "{}/{}",
        resource.get("resourceType").and_then(Value::as_str).unwrap_or("?"),
        resource.get("id").and_then(Value::as_str).unwrap_or("?")
    )
}

fn write_ndjson(path: &PathBuf, options: &SeedOptions) -> Result<usize, String> {
    let file = std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = std::io::BufWriter::new(file);
    let mut written = 0;
    for resource in termin_seed::generate(options) {
        serde_json::to_writer(&mut out, &resource).map_err(|e| e.to_string())?;
        out.write_all(b"\n").map_err(|e| e.to_string())?;
        written += 1;
    }
    out.flush().map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(written)
}
