//! The read targets of issue 16: each query of the IG's scheduling read path runs alone for
//! the scenario time, and a table says whether the target for the seeded scale is met. The
//! issue states the targets for 8 concurrent keep-alive clients (`--concurrency 8`) on a quiet
//! 2-core machine with the load generator on it.

use super::report::{Row, percentile};
use super::scenarios::{Dataset, Outcome, now_param, pick, run_clients};
use std::fmt::Write;
use std::sync::Arc;
use std::time::Duration;
use termin_client::{Client, SVNR_SYSTEM};
use termin_seed::Scale;

/// Entries per page, as in the measurements.
const PAGE: &str = "20";

/// What a query must reach.
#[derive(Debug, Clone, Copy)]
enum Target {
    /// Requests per second, and a p99 latency bound in ms where the issue sets one.
    Throughput { per_second: f64, p99_ms: Option<f64> },
    /// A share of the measured read throughput.
    ShareOfRead(f64),
    /// A p95 latency bound in ms.
    P95 { ms: f64 },
}

/// One request of a measured query.
enum Request {
    Read { resource_type: &'static str, id: String },
    Search { path: &'static str, params: Vec<(&'static str, String)> },
}

/// Builds the request of client `number`'s `iteration`-th operation.
type Build = fn(&Dataset, usize, usize) -> Request;

/// Runs one query on every client for `duration`.
async fn measure(client: &Client, data: &Arc<Dataset>, concurrency: usize, duration: Duration, name: &str, build: Build) -> Row {
    let (client, data) = (client.clone(), data.clone());
    let (tally, elapsed) = run_clients(concurrency, duration, move |number, iteration| {
        let (client, data) = (client.clone(), data.clone());
        async move {
            let answered = match build(&data, number, iteration) {
                Request::Read { resource_type, id } => client.read(resource_type, &id).await.map(drop),
                Request::Search { path, params } => {
                    let params: Vec<(&str, &str)> = params.iter().map(|(name, value)| (*name, value.as_str())).collect();
                    client.search(path, &params).await.map(drop)
                }
            };
            match answered {
                Ok(()) => Outcome::Done,
                Err(e) => e.into(),
            }
        }
    })
    .await;
    Row::new(name, "request", tally, elapsed)
}

fn slot_read(data: &Dataset, number: usize, iteration: usize) -> Request {
    Request::Read {
        resource_type: "Slot",
        id: pick(&data.slots, number, iteration).clone(),
    }
}

/// A schedule's free slots within the `start` conditions, earliest first.
fn free_slots(data: &Dataset, number: usize, iteration: usize, start: Vec<String>) -> Request {
    let mut params = vec![
        ("schedule", format!("Schedule/{}", pick(&data.schedules, number, iteration))),
        ("status", "free".into()),
    ];
    params.extend(start.into_iter().map(|condition| ("start", condition)));
    params.extend([("_sort", "start".into()), ("_count", PAGE.into())]);
    Request::Search { path: "Slot", params }
}

/// The IG's main query: a schedule's next free slots from now.
fn slot_main(data: &Dataset, number: usize, iteration: usize) -> Request {
    free_slots(data, number, iteration, vec![now_param()])
}

/// The same within the dataset's first week.
fn slot_window(data: &Dataset, number: usize, iteration: usize) -> Request {
    free_slots(data, number, iteration, vec![format!("ge{}", data.week_start), format!("lt{}", data.week_end)])
}

/// A patient's appointments from the dataset's first week on, the patient named by `actor`.
fn appointments(data: &Dataset, actor: (&'static str, String)) -> Request {
    Request::Search {
        path: "Appointment",
        params: vec![actor, ("date", format!("ge{}", data.week_start)), ("_count", PAGE.into())],
    }
}

fn appointments_of_patient(data: &Dataset, number: usize, iteration: usize) -> Request {
    let (patient, _) = pick(&data.patients, number, iteration);
    appointments(data, ("actor", format!("Patient/{patient}")))
}

fn appointments_by_svnr(data: &Dataset, number: usize, iteration: usize) -> Request {
    let (_, svnr) = pick(&data.patients, number, iteration);
    appointments(data, ("actor:identifier", format!("{SVNR_SYSTEM}|{svnr}")))
}

/// Providers of a service type in a postal code area, ranked by their earliest free slot.
fn find_hsp(data: &Dataset, number: usize, iteration: usize) -> Request {
    Request::Search {
        path: "HealthcareService/$findHSP",
        params: vec![
            ("healthcareService-type", pick(&data.service_types, number, iteration).clone()),
            ("healthcareService-zipCodeArea", pick(&data.zip_areas, number, iteration).clone()),
            ("_count", "10".into()),
        ],
    }
}

/// The targets: the ones for 5k slots up to the small scale, those for 100k
/// appointments and 1M slots above it.
fn queries(scale: Scale) -> [(&'static str, Build, Target); 6] {
    let large = matches!(scale, Scale::Medium | Scale::Large);
    let slots = if large { 3_000.0 } else { 5_000.0 };
    let appointments = if large { 3_000.0 } else { 4_500.0 };
    [
        ("Slot read", slot_read, Target::Throughput { per_second: 18_500.0, p99_ms: None }),
        (
            "IG main: Slot?schedule&status=free&start=ge<now>&_sort=start",
            slot_main,
            Target::Throughput { per_second: slots, p99_ms: Some(5.0) },
        ),
        ("IG window: …&start=ge<week>&start=lt<week end>", slot_window, Target::ShareOfRead(0.3)),
        (
            "Appointment?actor=Patient/…&date=ge…",
            appointments_of_patient,
            Target::Throughput { per_second: appointments, p99_ms: None },
        ),
        (
            "Appointment?actor:identifier=<SVNR>&date=ge…",
            appointments_by_svnr,
            Target::Throughput { per_second: appointments, p99_ms: None },
        ),
        ("$findHSP (type, postal code area)", find_hsp, Target::P95 { ms: 20.0 }),
    ]
}

/// Measures every query and returns the table (Markdown).
pub async fn run(client: &Client, data: &Arc<Dataset>, scale: Scale, concurrency: usize, duration: Duration) -> String {
    let mut measured = Vec::new();
    for (name, build, target) in queries(scale) {
        let row = measure(client, data, concurrency, duration, name, build).await;
        measured.push((row, target));
    }
    let read_rate = measured.first().map(|(row, _)| row.throughput()).unwrap_or_default();
    let mut out = String::new();
    let _ = writeln!(out, "targets of issue 16 at scale {scale}, {concurrency} concurrent clients, {PAGE} per page");
    let _ = writeln!(out, "| query | target | measured | errors | met |");
    let _ = writeln!(out, "|---|---|---|---:|---|");
    for (row, target) in &measured {
        let (wanted, got, met) = judge(row, *target, read_rate);
        let met = if met && row.tally.errors == 0 { "yes" } else { "no" };
        let _ = writeln!(out, "| {} | {wanted} | {got} | {} | {met} |", row.name, row.tally.errors);
    }
    out
}

/// (target, measured, met) as table cells.
fn judge(row: &Row, target: Target, read_rate: f64) -> (String, String, bool) {
    let mut sorted = row.tally.latencies.clone();
    sorted.sort_unstable();
    let millis = |q: f64| percentile(&sorted, q).as_secs_f64() * 1000.0;
    let rate = row.throughput();
    match target {
        Target::Throughput { per_second, p99_ms } => {
            let p99 = millis(0.99);
            let got = format!("{rate:.0} req/s, p99 {p99:.2} ms");
            match p99_ms {
                Some(bound) => (format!("≥ {per_second:.0} req/s, p99 < {bound} ms"), got, rate >= per_second && p99 < bound),
                None => (format!("≥ {per_second:.0} req/s"), got, rate >= per_second),
            }
        }
        Target::ShareOfRead(share) => (
            format!("≥ {share} × read = {:.0} req/s", share * read_rate),
            format!("{rate:.0} req/s, p99 {:.2} ms", millis(0.99)),
            rate >= share * read_rate,
        ),
        Target::P95 { ms } => {
            let p95 = millis(0.95);
            (format!("p95 < {ms} ms"), format!("p95 {p95:.2} ms, {rate:.0} req/s"), p95 < ms)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::report::Tally;

    fn row(latencies_ms: &[u64], seconds: u64) -> Row {
        let tally = Tally {
            latencies: latencies_ms.iter().map(|ms| Duration::from_millis(*ms)).collect(),
            ..Tally::default()
        };
        Row::new("q", "request", tally, Duration::from_secs(seconds))
    }

    #[test]
    fn targets_are_judged_on_rate_and_tail() {
        let fast = row(&[1; 100], 1);
        let throughput = Target::Throughput { per_second: 100.0, p99_ms: Some(5.0) };
        assert!(judge(&fast, throughput, 0.0).2);
        assert!(!judge(&row(&[1; 99], 1), throughput, 0.0).2, "99 req/s is below 100");
        let mut slow_tail = vec![1; 98];
        slow_tail.extend([9, 9]);
        assert!(!judge(&row(&slow_tail, 1), throughput, 0.0).2, "p99 of 9 ms");
        assert!(judge(&fast, Target::ShareOfRead(0.3), 300.0).2);
        assert!(!judge(&fast, Target::ShareOfRead(0.3), 400.0).2);
        assert!(judge(&fast, Target::P95 { ms: 20.0 }, 0.0).2);
    }
}
