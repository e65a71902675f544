//! `termin client …`: the Scheduling Client side of the AT Scheduling IG from the command line,
//! through `termin-client`: register a patient, find services, providers, schedules and free
//! slots, hold, book, cancel or postpone, list a patient's appointments, and send batch or
//! transaction Bundles.
//!
//! Results go to stdout as pretty JSON (searches: one searchset Bundle holding every page), or
//! with `--brief` as one tab-separated line per resource. Failures print the server's
//! OperationOutcome to stderr and exit with status 1.

use std::io::Write;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::{Value, json};
use termin_client::{
    AppointmentQuery, Booking, Client, ClientError, Hold, ProviderSearch, ScheduleQuery, SearchQuery, ServiceQuery,
    SlotQuery, austrian_patient,
};

#[derive(Debug, Args)]
pub struct ClientArgs {
    /// FHIR base URL of the scheduling server
    #[arg(long, env = "TERMIN_URL", default_value = "http://127.0.0.1:8080/fhir", global = true)]
    url: String,
    /// Access token for a server with authorization on, sent as `Authorization: Bearer`
    #[arg(long, env = "TERMIN_TOKEN", global = true, hide_env_values = true)]
    token: Option<String>,
    /// Print one tab-separated line per resource instead of pretty JSON
    #[arg(long, global = true)]
    brief: bool,
    #[command(subcommand)]
    command: ClientCommand,
}

#[derive(Debug, Subcommand)]
enum ClientCommand {
    /// Patients (AT Core Patient, identified by the social security number)
    #[command(subcommand)]
    Patient(PatientCommand),
    /// Search bookable HealthcareServices (only active ones unless --active false)
    Services(ServicesArgs),
    /// Find the providers of a service (HealthcareService/$findHSP)
    FindHsp(FindHspArgs),
    /// Search Schedules (only active ones unless --active false)
    Schedules(SchedulesArgs),
    /// Search the Slots of a Schedule (free ones unless --status says otherwise)
    Slots(SlotsArgs),
    /// Hold a slot for booking (Slot/$hold), or release a hold
    Hold(HoldArgs),
    /// Book a slot for a patient (Appointment/$book)
    Book(BookArgs),
    /// Cancel an appointment (its slots become free)
    Cancel(CancelArgs),
    /// Move an appointment onto other slots, taking their times
    Postpone(PostponeArgs),
    /// List the appointments of a patient by social security number
    Appointments(AppointmentsArgs),
    /// Send a batch or transaction Bundle (FHIR JSON) to the base; prints the response Bundle
    Bundle(BundleArgs),
}

#[derive(Debug, Subcommand)]
enum PatientCommand {
    /// Create the patient unless one with this social security number exists; prints it
    Create(PatientCreateArgs),
}

#[derive(Debug, Args)]
struct PatientCreateArgs {
    /// Social security number (10 digits)
    #[arg(long)]
    svnr: String,
    #[arg(long)]
    family: String,
    /// Given name; repeat for several
    #[arg(long, required = true)]
    given: Vec<String>,
    /// YYYY-MM-DD
    #[arg(long)]
    birth_date: String,
    /// AT Core requires a gender; `unknown` unless given
    #[arg(long, default_value = "unknown", value_parser = ["female", "male", "other", "unknown"])]
    gender: String,
}

#[derive(Debug, Args)]
struct ServicesArgs {
    /// Service type token: system|code, or code
    #[arg(long = "type")]
    service_type: Option<String>,
    /// Only active services (`--active`), or only inactive ones (`--active false`)
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    active: Option<bool>,
}

#[derive(Debug, Args)]
struct FindHspArgs {
    /// Service type: system|code; repeat for several
    #[arg(long = "type")]
    types: Vec<String>,
    /// Service category: system|code
    #[arg(long)]
    category: Vec<String>,
    /// Specialty: system|code
    #[arg(long)]
    specialty: Vec<String>,
    /// The service itself: HealthcareService/id
    #[arg(long)]
    service: Option<String>,
    /// Postal code or its leading digits (53 covers 5300-5399)
    #[arg(long)]
    zip: Vec<String>,
    /// Location/id, or a Location identifier system|value
    #[arg(long)]
    location: Vec<String>,
}

#[derive(Debug, Args)]
struct SchedulesArgs {
    /// Actor reference (PractitionerRole/x), or an actor identifier system|value
    #[arg(long)]
    actor: Option<String>,
    /// Service type token: system|code, or code
    #[arg(long)]
    service_type: Option<String>,
    /// A date the planning horizon contains
    #[arg(long)]
    date: Option<String>,
    /// Only active schedules (`--active`), or only inactive ones (`--active false`)
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    active: Option<bool>,
}

#[derive(Debug, Args)]
struct SlotsArgs {
    /// Schedule/id
    #[arg(long)]
    schedule: String,
    /// Slots starting on or after this date (or date-time)
    #[arg(long)]
    from: Option<String>,
    /// Slots starting on or before this date (or date-time)
    #[arg(long)]
    to: Option<String>,
    /// Slot status; several comma-separated
    #[arg(long, default_value = "free")]
    status: String,
    /// Service type token: system|code, or code
    #[arg(long)]
    service_type: Option<String>,
}

#[derive(Debug, Args)]
struct HoldArgs {
    /// The slot: id or Slot/id
    slot: String,
    /// Release the hold instead of placing it
    #[arg(long, requires = "token")]
    release: bool,
    /// The token of an earlier hold: renews it, or releases it with --release
    #[arg(long)]
    token: Option<String>,
}

#[derive(Debug, Args)]
struct BookArgs {
    /// The slot: id or Slot/id
    #[arg(long)]
    slot: String,
    /// The patient: Patient/id or id
    #[arg(long)]
    patient: String,
    /// The token of the hold on the slot
    #[arg(long)]
    token: Option<String>,
}

#[derive(Debug, Args)]
struct CancelArgs {
    /// The appointment: id or Appointment/id
    appointment: String,
}

#[derive(Debug, Args)]
struct PostponeArgs {
    /// The appointment: id or Appointment/id
    appointment: String,
    /// The new slot (id or Slot/id); repeat for an appointment over several slots
    #[arg(long, required = true)]
    slot: Vec<String>,
    /// Tokens of holds on the new slots
    #[arg(long)]
    token: Vec<String>,
}

#[derive(Debug, Args)]
struct AppointmentsArgs {
    /// The patient's social security number
    #[arg(long)]
    svnr: String,
    /// Date filter with optional prefix (ge2026-04-07); repeat to AND
    #[arg(long)]
    date: Vec<String>,
    /// Appointment status, several comma-separated
    #[arg(long)]
    status: Option<String>,
}

#[derive(Debug, Args)]
struct BundleArgs {
    /// The file holding the Bundle; `-` reads it from stdin
    file: std::path::PathBuf,
}

/// Why a command did not succeed.
enum Failure {
    Client(ClientError),
    /// The server answered, but refused (a slot taken by someone else): its OperationOutcome.
    Refused { what: String, outcome: Value },
}

impl From<ClientError> for Failure {
    fn from(error: ClientError) -> Self {
        Failure::Client(error)
    }
}

pub fn run(args: ClientArgs) -> ExitCode {
    let Some(runtime) = crate::setup::runtime("client", false) else {
        return ExitCode::FAILURE;
    };
    let client = match args.token {
        Some(token) => Client::new(args.url).with_bearer_token(token),
        None => Client::new(args.url),
    };
    match runtime.block_on(execute(&client, args.command)) {
        Ok(result) => {
            let text = if args.brief {
                brief_lines(&result).into_iter().map(|line| line + "\n").collect()
            } else {
                serde_json::to_string_pretty(&result).unwrap_or_default() + "\n"
            };
            // A closed pipe (`| head`) is the reader's choice, not a failure worth a panic.
            let _ = std::io::stdout().lock().write_all(text.as_bytes());
            ExitCode::SUCCESS
        }
        Err(failure) => {
            report(&client, failure);
            ExitCode::FAILURE
        }
    }
}

async fn execute(client: &Client, command: ClientCommand) -> Result<Value, Failure> {
    match command {
        ClientCommand::Patient(PatientCommand::Create(args)) => {
            let given: Vec<&str> = args.given.iter().map(String::as_str).collect();
            let patient = austrian_patient(&args.svnr, &args.family, &given, &args.birth_date, &args.gender);
            Ok(client.ensure_patient(&patient, &args.svnr).await?)
        }
        ClientCommand::Services(args) => {
            let query = ServiceQuery { service_type: args.service_type, active: args.active, ..ServiceQuery::default() };
            every_match(client, &query).await
        }
        ClientCommand::FindHsp(args) => {
            let search = ProviderSearch {
                service: args.service,
                categories: args.category,
                types: args.types,
                specialties: args.specialty,
                locations: args.location,
                zip_areas: args.zip,
                ..ProviderSearch::default()
            };
            let first = client.find_hsp(&search).await?;
            Ok(client.all_pages(first).await?)
        }
        ClientCommand::Schedules(args) => {
            let query = ScheduleQuery {
                actor: args.actor,
                service_type: args.service_type,
                date: args.date,
                active: args.active,
                ..ScheduleQuery::default()
            };
            every_match(client, &query).await
        }
        ClientCommand::Slots(args) => {
            let query = SlotQuery {
                schedule: Some(args.schedule),
                status: Some(args.status),
                start_from: args.from,
                start_to: args.to,
                service_type: args.service_type,
                sort: Some("start".into()),
                ..SlotQuery::default()
            };
            every_match(client, &query).await
        }
        ClientCommand::Hold(args) => hold(client, args).await,
        ClientCommand::Book(args) => {
            let patient = reference("Patient", &args.patient);
            let tokens: Vec<&str> = args.token.iter().map(String::as_str).collect();
            booked(client.book_slot(&args.slot, &patient, &tokens).await?)
        }
        ClientCommand::Cancel(args) => Ok(client.cancel(&args.appointment).await?),
        ClientCommand::Postpone(args) => {
            let mut slots = Vec::with_capacity(args.slot.len());
            for slot in &args.slot {
                slots.push(client.read("Slot", slot).await?.body);
            }
            let tokens: Vec<&str> = args.token.iter().map(String::as_str).collect();
            Ok(client.postpone(&args.appointment, &slots, &tokens).await?)
        }
        ClientCommand::Bundle(args) => {
            let text = match args.file.to_str() {
                Some("-") => std::io::read_to_string(std::io::stdin()),
                _ => std::fs::read_to_string(&args.file),
            }
            .map_err(|e| ClientError::Unexpected(format!("cannot read {}: {e}", args.file.display())))?;
            let bundle: Value = serde_json::from_str(&text)
                .map_err(|e| ClientError::Unexpected(format!("{} is not JSON: {e}", args.file.display())))?;
            Ok(client.send_bundle(&bundle).await?)
        }
        ClientCommand::Appointments(args) => {
            let query = AppointmentQuery {
                dates: args.date,
                status: args.status,
                sort: Some("date".into()),
                ..AppointmentQuery::for_patient(&args.svnr)
            };
            every_match(client, &query).await
        }
    }
}

/// One Bundle holding every page of the search.
async fn every_match<Q: SearchQuery>(client: &Client, query: &Q) -> Result<Value, Failure> {
    let first = client.search_with(query).await?;
    Ok(client.all_pages(first).await?)
}

/// A held slot prints as the `$hold` answer (slot, held-until, hold-token) so the token can be
/// passed on to `book`; a released one as the slot.
async fn hold(client: &Client, args: HoldArgs) -> Result<Value, Failure> {
    match client.hold(&args.slot, !args.release, args.token.as_deref()).await? {
        Hold::Held { slot, held_until, token } => {
            let mut parameters = vec![
                json!({"name": "slot", "resource": slot}),
                json!({"name": "held-until", "valueDateTime": held_until}),
            ];
            if let Some(token) = token {
                parameters.push(json!({"name": "hold-token", "valueString": token}));
            }
            Ok(json!({"resourceType": "Parameters", "parameter": parameters}))
        }
        Hold::Released { slot } => Ok(slot),
        Hold::Rejected { outcome, .. } => Err(Failure::Refused { what: format!("{} cannot be held", reference("Slot", &args.slot)), outcome }),
    }
}

fn booked(booking: Booking) -> Result<Value, Failure> {
    if booking.accepted() {
        Ok(booking.appointment)
    } else {
        Err(Failure::Refused { what: "the booking was rejected".into(), outcome: booking.outcome })
    }
}

/// `Type/id` for an `id` or `Type/id`.
fn reference(resource_type: &str, id: &str) -> String {
    if id.contains('/') { id.to_owned() } else { format!("{resource_type}/{id}") }
}

fn report(client: &Client, failure: Failure) {
    match failure {
        Failure::Client(ClientError::Status { status, outcome }) => {
            eprintln!("termin client: the server answered {status}");
            if let Some(outcome) = outcome {
                print_issues(&outcome);
            }
        }
        Failure::Client(ClientError::Transport(error)) => {
            eprintln!("termin client: cannot talk to {}: {error}", client.base());
        }
        Failure::Client(error) => eprintln!("termin client: {error}"),
        Failure::Refused { what, outcome } => {
            eprintln!("termin client: {what}");
            print_issues(&outcome);
        }
    }
}

fn print_issues(outcome: &Value) {
    for issue in outcome["issue"].as_array().into_iter().flatten() {
        let at = issue["expression"]
            .as_array()
            .map(|e| e.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", "))
            .filter(|e| !e.is_empty())
            .map(|e| format!(" (at {e})"))
            .unwrap_or_default();
        eprintln!(
            "  {} {}: {}{at}",
            text(&issue["severity"]),
            text(&issue["code"]),
            issue["diagnostics"].as_str().unwrap_or("(no diagnostics)")
        );
    }
}

// ---------------------------------------------------------------------------------------------
// --brief
// ---------------------------------------------------------------------------------------------

/// A Bundle: a line per match or include; Parameters: a line per resource, then the values
/// as `name=value`; any other resource: its line.
fn brief_lines(result: &Value) -> Vec<String> {
    match result["resourceType"].as_str() {
        Some("Bundle") => result["entry"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["search"]["mode"] != "outcome")
            .map(|e| brief_line(&e["resource"]))
            .collect(),
        Some("Parameters") => {
            let parameters = result["parameter"].as_array().map(Vec::as_slice).unwrap_or_default();
            let mut lines: Vec<String> = parameters.iter().filter_map(|p| p.get("resource")).map(brief_line).collect();
            let values: Vec<String> = parameters
                .iter()
                .filter_map(|p| {
                    let (_, value) = p.as_object()?.iter().find(|(key, _)| key.starts_with("value"))?;
                    Some(format!("{}={}", text(&p["name"]), text(value)))
                })
                .collect();
            if !values.is_empty() {
                lines.push(values.join("\t"));
            }
            lines
        }
        _ => vec![brief_line(result)],
    }
}

fn brief_line(resource: &Value) -> String {
    let id = format!("{}/{}", text(&resource["resourceType"]), text(&resource["id"]));
    let columns: Vec<String> = match resource["resourceType"].as_str().unwrap_or_default() {
        "Patient" => vec![
            identifier(resource, termin_client::SVNR_SYSTEM),
            human_name(&resource["name"][0]),
            text(&resource["birthDate"]),
            text(&resource["gender"]),
        ],
        "Slot" => vec![
            text(&resource["status"]),
            text(&resource["start"]),
            text(&resource["end"]),
            text(&resource["schedule"]["reference"]),
        ],
        "Appointment" => vec![
            text(&resource["status"]),
            text(&resource["start"]),
            text(&resource["end"]),
            joined(resource["participant"].as_array(), |p| p["actor"]["reference"].as_str().map(str::to_owned)),
        ],
        "Schedule" => vec![
            text(&resource["active"]),
            joined(resource["actor"].as_array(), |a| a["reference"].as_str().map(str::to_owned)),
            codes(&resource["serviceType"]),
        ],
        "HealthcareService" => vec![text(&resource["active"]), text(&resource["name"]), codes(&resource["type"])],
        "PractitionerRole" => vec![
            text(&resource["practitioner"]["reference"]),
            text(&resource["organization"]["reference"]),
            codes(&resource["code"]),
        ],
        "Practitioner" | "RelatedPerson" => vec![human_name(&resource["name"][0])],
        _ => vec![text(&resource["name"])],
    };
    std::iter::once(id).chain(columns).collect::<Vec<_>>().join("\t")
}

/// A JSON scalar as plain text; `-` when absent.
fn text(value: &Value) -> String {
    match value {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn joined(items: Option<&Vec<Value>>, each: impl Fn(&Value) -> Option<String>) -> String {
    let parts: Vec<String> = items.into_iter().flatten().filter_map(each).collect();
    if parts.is_empty() { "-".into() } else { parts.join(",") }
}

fn identifier(resource: &Value, system: &str) -> String {
    let identifiers = resource["identifier"].as_array();
    joined(identifiers, |i| (i["system"] == system).then(|| text(&i["value"])))
}

fn human_name(name: &Value) -> String {
    let given = joined(name["given"].as_array(), |g| g.as_str().map(str::to_owned)).replace(',', " ");
    match name["family"].as_str() {
        Some(family) => format!("{family}, {given}"),
        None => given,
    }
}

/// The codes of CodeableConcepts or CodeableReferences (`[{concept: {coding: [...]}}]`).
fn codes(concepts: &Value) -> String {
    joined(concepts.as_array(), |concept| {
        let concept = concept.get("concept").unwrap_or(concept);
        let codes: Vec<&str> = concept["coding"].as_array()?.iter().filter_map(|c| c["code"].as_str()).collect();
        (!codes.is_empty()).then(|| codes.join("+"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_bundle_is_one_line_per_slot_without_the_outcome() {
        let bundle = json!({"resourceType": "Bundle", "entry": [
            {"resource": {"resourceType": "Slot", "id": "a", "status": "free", "start": "S", "end": "E",
                          "schedule": {"reference": "Schedule/x"}}, "search": {"mode": "match"}},
            {"resource": {"resourceType": "OperationOutcome"}, "search": {"mode": "outcome"}}]});
        assert_eq!(brief_lines(&bundle), ["Slot/a\tfree\tS\tE\tSchedule/x"]);
    }

    #[test]
    fn hold_parameters_show_the_slot_and_the_token() {
        let held = json!({"resourceType": "Parameters", "parameter": [
            {"name": "slot", "resource": {"resourceType": "Slot", "id": "a", "status": "busy-tentative"}},
            {"name": "held-until", "valueDateTime": "T"},
            {"name": "hold-token", "valueString": "tok"}]});
        assert_eq!(brief_lines(&held), ["Slot/a\tbusy-tentative\t-\t-\t-", "held-until=T\thold-token=tok"]);
    }

    #[test]
    fn patients_and_schedules_show_their_identity() {
        let patient = json!({"resourceType": "Patient", "id": "p",
            "identifier": [{"system": "urn:other", "value": "x"}, {"system": termin_client::SVNR_SYSTEM, "value": "1234010180"}],
            "name": [{"family": "Huber", "given": ["Anna", "Maria"]}], "birthDate": "1980-01-01", "gender": "female"});
        assert_eq!(brief_line(&patient), "Patient/p\t1234010180\tHuber, Anna Maria\t1980-01-01\tfemale");
        let schedule = json!({"resourceType": "Schedule", "id": "s", "active": true,
            "actor": [{"reference": "Practitioner/p"}],
            "serviceType": [{"concept": {"coding": [{"system": "urn:st", "code": "65"}]}}]});
        assert_eq!(brief_line(&schedule), "Schedule/s\ttrue\tPractitioner/p\t65");
    }
}
