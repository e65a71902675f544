//! The `termin` command: run the FHIR scheduling server and its tools.
//!
//! Owns the command line and configuration, start-up (the one place that picks a storage
//! backend and wires store, domain, notifier and API together), the web app's pages, and
//! the tools `seed`, `client` and `bench` (`bench/`, outside the server's path). The layers
//! below must never depend on it.

mod bench;
mod client_cli;
mod config;
mod connections;
mod demo;
mod packages;
mod seed;
mod serve;
mod setup;
mod slot_generation;
mod upstreams;
mod validation;
mod web;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Termin — a FHIR R5 appointment-scheduling server for the HL7 Austria
/// "Austrian Appointment Scheduling (R5)" implementation guide.
///
/// Start the server with `termin serve`; the FHIR API is then at http://127.0.0.1:8080/fhir
/// (try `curl http://127.0.0.1:8080/fhir/metadata`). Every option of `serve` can also be set
/// with a TERMIN_* environment variable or in a TOML file given with --config.
#[derive(Parser)]
#[command(name = "termin", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the FHIR server (SQLite database file by default)
    Serve(Box<config::ServeArgs>),
    /// Write a deterministic Austrian dataset (organizations to appointments) into a database
    Seed(seed::SeedArgs),
    /// Talk to a FHIR scheduling server as a Scheduling Client (patient, search, hold, book, ...)
    Client(client_cli::ClientArgs),
    /// Measure a server under load: slot search, the patient flow, contended booking, SVNR search
    Bench(bench::BenchArgs),
}

/// mimalloc instead of the system allocator: about a fifth fewer instructions per request,
/// most of it in the many small allocations of JSON values and rows (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            let config = match (*args).resolve() {
                Ok(config) => config,
                Err(message) => {
                    eprintln!("termin: {message}");
                    return ExitCode::from(2);
                }
            };
            serve::run(config)
        }
        Command::Seed(args) => seed::run(args),
        Command::Client(args) => client_cli::run(args),
        Command::Bench(args) => bench::run(args),
    }
}
