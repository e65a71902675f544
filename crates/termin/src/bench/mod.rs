//! `termin bench`: a load generator speaking to a Termin server through `termin-client`, as
//! many patients' apps would. It seeds a database (once), starts `termin serve` on it as a
//! child process, runs the scenarios one after the other for a fixed time each, and prints
//! throughput, latency percentiles, errors, conflicts and the server's memory, then the read
//! targets of issue 16 and whether they are met. The `generation` scenario instead times the
//! background slot generation in this process.

mod generation;
mod report;
mod scenarios;
mod server;
mod targets;

use crate::config::Database;
use crate::seed::{ScaleArg, Target, seed_database, this_monday};
use crate::setup;
use clap::{Args, ValueEnum};
use jiff::SignedDuration;
use report::Row;
use scenarios::Dataset;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;
use termin_seed::{Scale, SeedOptions};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScenarioArg {
    /// Every scenario, in the order below
    All,
    /// Free slots of one schedule in one week
    SlotSearch,
    /// The patient flow: find service, $findHSP, schedules and slots, $hold, $book
    Flow,
    /// Many clients racing for a few slots, then a check for double bookings
    Contended,
    /// Appointments of a patient found by social security number
    Svnr,
    /// Issue 16's read queries one by one (slot read, IG slot queries, appointments by actor
    /// and by SVNR, $findHSP), each judged against its target
    Targets,
    /// Not part of all: the background slot generation of --schedules Schedules to a horizon
    /// of --weeks, timed in this process on a new database (--database)
    Generation,
}

/// Flags of `termin bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Which scenario to run
    #[arg(long, value_enum, default_value = "all")]
    pub scenario: ScenarioArg,

    /// Dataset size, seeded into --database unless it holds that dataset already
    #[arg(long, value_enum, default_value = "small")]
    pub scale: ScaleArg,

    /// Random seed of the dataset
    #[arg(long, default_value_t = 1)]
    pub seed: u64,

    /// SQLite file or PostgreSQL URL to seed and serve; the scenarios book into it, so a
    /// database used before has fewer free slots [default: termin-bench-<scale>.db]
    #[arg(long, value_name = "PATH|URL")]
    pub database: Option<PathBuf>,

    /// Benchmark this running server instead (its FHIR base URL); it must hold a seeded
    /// dataset. The server's memory is then not reported.
    #[arg(long, value_name = "URL", conflicts_with = "database")]
    pub url: Option<String>,

    /// How long each scenario runs, e.g. "20s"
    #[arg(long, default_value = "20s")]
    pub duration: SignedDuration,

    /// Concurrent clients
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..))]
    pub concurrency: u32,

    /// Slots the clients of the contended scenario race for in each round
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..))]
    pub contended_slots: u32,

    /// Validation of writes by the server it starts, as for `termin serve` (on: R5 and the
    /// shipped AT profiles, as in production)
    #[arg(long, value_name = "on|off", default_value = "on",
          value_parser = clap::builder::PossibleValuesParser::new(["on", "off"]))]
    pub validation: String,

    /// Further FHIR package directories for the server it starts, as for `termin serve`
    #[arg(long = "packages", value_name = "DIR", value_delimiter = ',')]
    pub packages: Vec<PathBuf>,

    /// Schedules the generation scenario generates
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    pub schedules: u32,

    /// The horizon of the generation scenario's Schedules, in weeks
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=52))]
    pub weeks: u32,
}

pub fn run(args: BenchArgs) -> ExitCode {
    let Some(runtime) = setup::runtime("bench", true) else {
        return ExitCode::FAILURE;
    };
    match runtime.block_on(bench(args)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("termin bench: double bookings found");
            ExitCode::FAILURE
        }
        Err(message) => {
            eprintln!("termin bench: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the chosen scenarios; `Ok(false)` when a slot was booked twice.
async fn bench(args: BenchArgs) -> Result<bool, String> {
    if args.scenario == ScenarioArg::Generation {
        if args.url.is_some() {
            return Err("the generation scenario runs in this process: give --database, not --url".into());
        }
        let database = args.database.clone().unwrap_or_else(|| "termin-bench-generation.db".into());
        let run = generation::run(&Database::from(database), args.schedules as usize, args.weeks).await?;
        println!("{run}");
        return Ok(true);
    }
    let scale: Scale = args.scale.into();
    let duration = std::time::Duration::try_from(args.duration).map_err(|e| format!("--duration: {e}"))?;
    let mut server = None;
    let url = match &args.url {
        Some(url) => url.clone(),
        None => {
            let database = args
                .database
                .clone()
                .unwrap_or_else(|| format!("termin-bench-{scale}.db").into());
            seed_unless_present(&Database::from(database.clone()), scale, args.seed).await?;
            let started = server::Server::start(&database, &args.validation, &args.packages).await?;
            let url = started.base_url();
            eprintln!("server started in {:.0?} at {url}", started.start_up);
            server = Some(started);
            url
        }
    };
    let client = termin_client::Client::new(url);
    let dataset = std::sync::Arc::new(Dataset::discover(&client).await?);
    eprintln!("{dataset}");
    let selected = |s: ScenarioArg| args.scenario == ScenarioArg::All || args.scenario == s;
    let concurrency = args.concurrency as usize;
    let mut rows: Vec<Row> = Vec::new();
    let mut double_bookings = 0;
    let with_memory = |mut row: Row| {
        row.server_rss = server.as_ref().and_then(server::Server::memory);
        row
    };
    if selected(ScenarioArg::SlotSearch) {
        rows.push(with_memory(scenarios::slot_search(&client, &dataset, concurrency, duration).await));
    }
    if selected(ScenarioArg::Flow) {
        rows.push(with_memory(scenarios::patient_flow(&client, &dataset, concurrency, duration).await));
    }
    if selected(ScenarioArg::Contended) {
        let slots = args.contended_slots as usize;
        let (row, doubles) = scenarios::contended_booking(&client, &dataset, concurrency, slots, duration).await?;
        double_bookings = doubles;
        rows.push(with_memory(row));
    }
    if selected(ScenarioArg::Svnr) {
        rows.push(with_memory(scenarios::appointments_by_svnr(&client, &dataset, concurrency, duration).await));
    }
    if !rows.is_empty() {
        // A server given by --url holds whatever data it holds: no scale to name.
        println!("{}", report::table(&rows, args.url.is_none().then_some(scale), concurrency));
        println!("double bookings: {double_bookings}");
    }
    if selected(ScenarioArg::Targets) {
        println!();
        println!("{}", targets::run(&client, &dataset, scale, concurrency, duration).await);
    }
    Ok(double_bookings == 0)
}

/// Seeds the dataset unless it is there already (the bench then reuses it).
async fn seed_unless_present(database: &Database, scale: Scale, seed: u64) -> Result<(), String> {
    let options = SeedOptions::new(scale, seed, this_monday());
    // The generator's output is checked against the profiles by `termin seed`'s tests; loading
    // it unvalidated keeps the bench's set-up short.
    let target = Target { database, validation: false, packages: &[], time_zone: termin_search::DEFAULT_TIME_ZONE };
    let started = Instant::now();
    match seed_database(&target, &options, 2000, true).await? {
        None => eprintln!("{database} holds the {scale} dataset already"),
        Some(summary) => eprintln!("seeded {} resources into {database} in {:.1?}", summary.created, started.elapsed()),
    }
    Ok(())
}
