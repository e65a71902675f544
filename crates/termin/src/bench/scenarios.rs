//! The four scenarios. Each runs `concurrency` clients in a loop until its time is up; an
//! operation's latency is recorded when it completes, whatever its outcome.

use super::report::{Row, Tally};
use jiff::civil::Date;
use jiff::{Timestamp, ToSpan};
use serde_json::Value;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use termin_client::{Client, ClientError, Hold, SVNR_SYSTEM, proposed_appointment};

/// How many of each kind the discovery reads: enough to spread the load.
const DISCOVERY_PAGE: &str = "500";

/// What the scenarios draw from, read from the server before they start.
pub struct Dataset {
    pub(super) schedules: Vec<String>,
    /// The earliest slots, to read.
    pub(super) slots: Vec<String>,
    /// The first week with slots: [week_start, week_end).
    pub(super) week_start: Date,
    pub(super) week_end: Date,
    /// `system|code` of the services' types.
    pub(super) service_types: Vec<String>,
    /// (Patient id, SVNR) pairs.
    pub(super) patients: Vec<(String, String)>,
    /// Two-digit postal code areas of the Locations: "near me" in the flow's `$findHSP`.
    pub(super) zip_areas: Vec<String>,
}

impl fmt::Display for Dataset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "dataset: {} schedules, {} service types, {} patients, {} zip areas sampled; first week {}",
            self.schedules.len(),
            self.service_types.len(),
            self.patients.len(),
            self.zip_areas.len(),
            self.week_start
        )
    }
}

fn resources(bundle: &Value) -> impl Iterator<Item = &Value> {
    bundle["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|entry| &entry["resource"])
}

fn ids(bundle: &Value) -> Vec<String> {
    resources(bundle).filter_map(|r| r["id"].as_str().map(str::to_owned)).collect()
}

impl Dataset {
    pub async fn discover(client: &Client) -> Result<Dataset, String> {
        let failed = |what: &str, e: ClientError| format!("reading the dataset's {what}: {e}");
        let schedules = ids(&client
            .search("Schedule", &[("active", "true"), ("_count", DISCOVERY_PAGE)])
            .await
            .map_err(|e| failed("schedules", e))?);
        let first_slots = client
            .search("Slot", &[("_sort", "start"), ("_count", DISCOVERY_PAGE)])
            .await
            .map_err(|e| failed("slots", e))?;
        let week_start: Date = resources(&first_slots)
            .next()
            .and_then(|slot| slot["start"].as_str())
            .and_then(|start| start.get(..10))
            .and_then(|day| day.parse().ok())
            .ok_or("the server holds no slots: seed it first (termin seed)")?;
        let services = client
            .search("HealthcareService", &[("_count", DISCOVERY_PAGE)])
            .await
            .map_err(|e| failed("services", e))?;
        let mut service_types: Vec<String> = resources(&services)
            .flat_map(|service| service["type"].as_array().into_iter().flatten())
            .flat_map(|concept| concept["coding"].as_array().into_iter().flatten())
            .filter_map(|coding| Some(format!("{}|{}", coding["system"].as_str()?, coding["code"].as_str()?)))
            .collect();
        service_types.sort();
        service_types.dedup();
        let patients = client
            .search("Patient", &[("identifier", &format!("{SVNR_SYSTEM}|")), ("_count", DISCOVERY_PAGE)])
            .await
            .map_err(|e| failed("patients", e))?;
        let patients: Vec<(String, String)> = resources(&patients)
            .filter_map(|patient| {
                let svnr = patient["identifier"]
                    .as_array()?
                    .iter()
                    .find(|identifier| identifier["system"] == SVNR_SYSTEM)?["value"]
                    .as_str()?;
                Some((patient["id"].as_str()?.to_owned(), svnr.to_owned()))
            })
            .collect();
        let locations = client
            .search("Location", &[("_count", DISCOVERY_PAGE)])
            .await
            .map_err(|e| failed("locations", e))?;
        let mut zip_areas: Vec<String> = resources(&locations)
            .filter_map(|location| location["address"]["postalCode"].as_str()?.get(..2).map(str::to_owned))
            .collect();
        zip_areas.sort();
        zip_areas.dedup();
        if schedules.is_empty() || service_types.is_empty() || patients.is_empty() || zip_areas.is_empty() {
            return Err(format!(
                "the dataset lacks schedules ({}), service types ({}), patients with an SVNR ({}) or located \
                 providers ({}): seed it first",
                schedules.len(),
                service_types.len(),
                patients.len(),
                zip_areas.len()
            ));
        }
        Ok(Dataset {
            schedules,
            slots: ids(&first_slots),
            week_end: week_start.checked_add(7.days()).map_err(|e| e.to_string())?,
            week_start,
            service_types,
            patients,
            zip_areas,
        })
    }
}

/// How one operation ended.
pub(super) enum Outcome {
    Done,
    /// Lost a race for a slot to another client.
    Conflict,
    Failed(String),
}

impl From<ClientError> for Outcome {
    fn from(e: ClientError) -> Self {
        Outcome::Failed(e.to_string())
    }
}

/// Runs `operation(client number, iteration)` on `concurrency` clients until `duration` ends.
pub(super) async fn run_clients<F, Fut>(concurrency: usize, duration: Duration, operation: F) -> (Tally, Duration)
where
    F: Fn(usize, usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Outcome> + Send,
{
    let operation = Arc::new(operation);
    let started = Instant::now();
    let deadline = started + duration;
    let mut clients = tokio::task::JoinSet::new();
    for number in 0..concurrency {
        let operation = operation.clone();
        clients.spawn(async move {
            let mut tally = Tally::default();
            let mut iteration = 0;
            while Instant::now() < deadline {
                let began = Instant::now();
                let outcome = operation(number, iteration).await;
                tally.latencies.push(began.elapsed());
                match outcome {
                    Outcome::Done => {}
                    Outcome::Conflict => tally.conflicts += 1,
                    Outcome::Failed(message) => tally.error(message),
                }
                iteration += 1;
            }
            tally
        });
    }
    let mut total = Tally::default();
    while let Some(result) = clients.join_next().await {
        match result {
            Ok(tally) => total.merge(tally),
            Err(e) => total.error(format!("a client task failed: {e}")),
        }
    }
    (total, started.elapsed())
}

/// Picks the `k`-th element, spread so that clients do not walk in step.
pub(super) fn pick<T>(items: &[T], client: usize, iteration: usize) -> &T {
    &items[(client * 7919 + iteration * 104_729) % items.len()]
}

/// (a) Free slots of one schedule in the dataset's first week.
pub async fn slot_search(client: &Client, dataset: &Arc<Dataset>, concurrency: usize, duration: Duration) -> Row {
    let (client, data) = (client.clone(), dataset.clone());
    let (tally, elapsed) = run_clients(concurrency, duration, move |number, iteration| {
        let (client, data) = (client.clone(), data.clone());
        async move {
            let schedule = format!("Schedule/{}", pick(&data.schedules, number, iteration));
            let (from, to) = (format!("ge{}", data.week_start), format!("lt{}", data.week_end));
            let query = [("schedule", schedule.as_str()), ("status", "free"), ("start", &from), ("start", &to), ("_count", "50")];
            match client.search("Slot", &query).await {
                Ok(_) => Outcome::Done,
                Err(e) => e.into(),
            }
        }
    })
    .await;
    Row::new("slot search", "request", tally, elapsed)
}

/// (d) A patient's appointments by social security number.
pub async fn appointments_by_svnr(client: &Client, dataset: &Arc<Dataset>, concurrency: usize, duration: Duration) -> Row {
    let (client, data) = (client.clone(), dataset.clone());
    let (tally, elapsed) = run_clients(concurrency, duration, move |number, iteration| {
        let (client, data) = (client.clone(), data.clone());
        async move {
            let (_, svnr) = pick(&data.patients, number, iteration);
            let actor = format!("{SVNR_SYSTEM}|{svnr}");
            match client.search("Appointment", &[("actor:identifier", &actor), ("_count", "50")]).await {
                Ok(_) => Outcome::Done,
                Err(e) => e.into(),
            }
        }
    })
    .await;
    Row::new("appointments by SVNR", "request", tally, elapsed)
}

/// Holds `slot` of `schedule` and books it for `patient` (a Patient id).
async fn hold_and_book(client: &Client, slot: &Value, schedule: &Value, patient: &str) -> Outcome {
    let slot_id = slot["id"].as_str().unwrap_or_default();
    // All simulated patients connect from one address, which would make a token-less caller
    // the owner of every other client's hold: each presents a token of its own instead.
    let own_token = format!("bench-{patient}");
    let token = match client.hold(slot_id, true, Some(&own_token)).await {
        Ok(Hold::Held { token, .. }) => token,
        Ok(Hold::Rejected { .. }) => return Outcome::Conflict,
        Ok(Hold::Released { .. }) => return Outcome::Failed("a hold request released the slot".into()),
        Err(e) => return e.into(),
    };
    let appointment = proposed_appointment(&format!("Patient/{patient}"), slot, schedule);
    let tokens: Vec<&str> = token.as_deref().into_iter().collect();
    match client.book(&appointment, &tokens).await {
        Ok(booking) if booking.accepted() => Outcome::Done,
        Ok(booking) if booking.status.as_u16() == 409 => Outcome::Conflict,
        Ok(booking) => Outcome::Failed(format!("$book answered {}: {}", booking.status, booking.outcome)),
        Err(e) => e.into(),
    }
}

pub(super) fn now_param() -> String {
    format!("ge{}", Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ"))
}

/// (b) The patient flow: search services by type, `$findHSP` for that type near a place (a
/// postal code area of the dataset), a provider's schedule and its next free slots, `$hold`
/// one, `$book` it. One operation is the flow.
pub async fn patient_flow(client: &Client, dataset: &Arc<Dataset>, concurrency: usize, duration: Duration) -> Row {
    let (client, data) = (client.clone(), dataset.clone());
    let (tally, elapsed) = run_clients(concurrency, duration, move |number, iteration| {
        let (client, data) = (client.clone(), data.clone());
        async move {
            match flow_once(&client, &data, number, iteration).await {
                Ok(outcome) => outcome,
                Err(e) => e.into(),
            }
        }
    })
    .await;
    Row::new("patient flow", "flow (6 requests)", tally, elapsed)
}

async fn flow_once(client: &Client, data: &Dataset, number: usize, iteration: usize) -> Result<Outcome, ClientError> {
    let service_type = pick(&data.service_types, number, iteration);
    client.search("HealthcareService", &[("service-type", service_type), ("_count", "10")]).await?;
    let zip_area = pick(&data.zip_areas, number, iteration);
    let providers = client
        .search(
            "HealthcareService/$findHSP",
            &[("healthcareService-type", service_type), ("healthcareService-zipCodeArea", zip_area), ("_count", "10")],
        )
        .await?;
    let roles: Vec<String> = resources(&providers)
        .filter(|r| r["resourceType"] == "PractitionerRole")
        .filter_map(|r| r["id"].as_str().map(str::to_owned))
        .collect();
    if roles.is_empty() {
        return Ok(Outcome::Failed(format!("$findHSP found no PractitionerRole for {service_type} in {zip_area}")));
    }
    let role = pick(&roles, number, iteration);
    let schedules = client
        .search("Schedule", &[("actor", &format!("PractitionerRole/{role}")), ("_count", "5")])
        .await?;
    let Some(schedule) = resources(&schedules).next() else {
        return Ok(Outcome::Failed(format!("PractitionerRole/{role} has no schedule")));
    };
    let reference = format!("Schedule/{}", schedule["id"].as_str().unwrap_or_default());
    let slots = client
        .search(
            "Slot",
            &[("schedule", &reference), ("status", "free"), ("start", &now_param()), ("_sort", "start"), ("_count", "20")],
        )
        .await?;
    let slots: Vec<&Value> = resources(&slots).collect();
    if slots.is_empty() {
        return Ok(Outcome::Failed(format!("{reference} has no free slot left")));
    }
    let (patient, _) = pick(&data.patients, number, iteration);
    let slot = pick(&slots, number, iteration);
    Ok(hold_and_book(client, slot, schedule, patient).await)
}

/// (c) Rounds in which every client races for the same few free slots (hold, then book),
/// each client until it has booked one or lost them all; after each round every raced slot
/// is checked for more than one booking. Returns the row and the number of double bookings.
pub async fn contended_booking(
    client: &Client,
    dataset: &Arc<Dataset>,
    concurrency: usize,
    slots_per_round: usize,
    duration: Duration,
) -> Result<(Row, usize), String> {
    let started = Instant::now();
    let mut total = Tally::default();
    let mut double_bookings = 0;
    // Schedules from the end of the list, so that the flow scenario's bookings rarely interfere.
    let mut schedules = dataset.schedules.iter().rev().cycle().take(dataset.schedules.len() * 4);
    while started.elapsed() < duration {
        let Some(schedule) = schedules.next() else { break };
        let query = [
            ("schedule", format!("Schedule/{schedule}")),
            ("status", "free".into()),
            ("start", now_param()),
            ("_count", slots_per_round.to_string()),
        ];
        let query: Vec<(&str, &str)> = query.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let page = client.search("Slot", &query).await.map_err(|e| e.to_string())?;
        let slots: Arc<Vec<Value>> = Arc::new(resources(&page).cloned().collect());
        if slots.is_empty() {
            continue;
        }
        let schedule = Arc::new(client.read("Schedule", schedule).await.map_err(|e| e.to_string())?.body);
        let mut racers = tokio::task::JoinSet::new();
        for number in 0..concurrency {
            let (client, slots, schedule, data) = (client.clone(), slots.clone(), schedule.clone(), dataset.clone());
            racers.spawn(async move {
                let mut tally = Tally::default();
                let (patient, _) = pick(&data.patients, number, 0);
                // Every client goes for the slots in the same order: the first slot sees all
                // of them race, the later ones the losers.
                for slot in slots.iter() {
                    let began = Instant::now();
                    let outcome = hold_and_book(&client, slot, &schedule, patient).await;
                    tally.latencies.push(began.elapsed());
                    match outcome {
                        Outcome::Done => break,
                        Outcome::Conflict => tally.conflicts += 1,
                        Outcome::Failed(message) => tally.error(message),
                    }
                }
                tally
            });
        }
        while let Some(result) = racers.join_next().await {
            total.merge(result.map_err(|e| format!("a racing client failed: {e}"))?);
        }
        for slot in slots.iter() {
            let reference = format!("Slot/{}", slot["id"].as_str().unwrap_or_default());
            let bookings = client
                .search_all("Appointment", &[("slot", &reference), ("status", "booked,pending")])
                .await
                .map_err(|e| e.to_string())?;
            double_bookings += bookings.len().saturating_sub(1);
        }
    }
    let name = format!("contended booking ({slots_per_round} slots per round)");
    Ok((Row::new(name, "hold + book attempt", total, started.elapsed()), double_bookings))
}
