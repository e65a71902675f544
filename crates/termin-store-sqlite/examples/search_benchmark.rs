//! Search benchmark on SQLite: builds a large scheduling dataset directly through the store
//! (index rows from the real R5 search parameters), then times the AT Scheduling IG's searches
//! and prints SQLite's query plans. Figures are recorded in `docs/search-performance.md`.
//!
//! ```sh
//! cargo run --release -p termin-store-sqlite --example search_benchmark -- /tmp/bench.db 1000000
//! ```
//! The database is reused when it already holds the dataset (building 1,000,000 slots takes
//! minutes); delete it to rebuild.

use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::Instant;
use termin_fhir::ResourceType;
use termin_search::{SearchOptions, SearchParameters};
use termin_store::{
    ChangeKind, NewVersion, RequestContext, ResourceStore, ResourceVersion, SearchRequest,
};
use termin_store_sqlite::SqliteStore;

const SLOTS_PER_SCHEDULE: usize = 1000;
const PATIENTS: usize = 10_000;
const APPOINTMENTS_PER_PATIENT: usize = 10;
const BATCH: usize = 5000;
const SVNR: &str = "urn:oid:1.2.40.0.10.1.4.3.1";
const RUNS: usize = 200;

/// The query of one benchmark run, varied by the run number.
type QueryFor = Box<dyn Fn(usize) -> String>;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut args = std::env::args().skip(1);
    let path = PathBuf::from(args.next().unwrap_or_else(|| "search-benchmark.db".into()));
    let slots: usize = args.next().map_or(1_000_000, |n| n.parse().expect("slot count"));
    let schedules = slots.div_ceil(SLOTS_PER_SCHEDULE);
    let loading = Instant::now();
    let registry = termin_search::registry();
    println!("search parameters loaded in {:?} (start-up cost)", loading.elapsed());
    let store = SqliteStore::open(&path, 2).await.expect("open store");
    let ctx = RequestContext::system("benchmark");
    let probe = request(registry, "Slot?_count=1&_total=accurate");
    let existing = store.search(&ctx, &probe).await.expect("count").total.unwrap_or(0);
    if existing as usize != slots {
        assert_eq!(existing, 0, "{} holds another dataset; delete it first", path.display());
        build(&store, registry, schedules, slots).await;
    }
    println!("dataset: {slots} slots on {schedules} schedules, {PATIENTS} patients, {} appointments\n", PATIENTS * APPOINTMENTS_PER_PATIENT);
    let searches: Vec<(&str, QueryFor)> = vec![
        (
            "slots of a schedule by status and date window",
            Box::new(move |k| {
                format!("Slot?schedule=Schedule/sch{}&status=free&start=ge2026-04-07&start=le2026-04-14&_count=50", k % schedules)
            }),
        ),
        (
            "the same, sorted by start",
            Box::new(move |k| {
                format!(
                    "Slot?schedule=Schedule/sch{}&status=free&start=ge2026-04-07&start=le2026-04-14&_sort=start&_count=50",
                    k % schedules
                )
            }),
        ),
        (
            "appointments by patient identifier and date",
            Box::new(|k| {
                format!(
                    "Appointment?actor:identifier={SVNR}|{}&date=ge2026-04-01&date=le2026-06-30&_count=50",
                    svnr(k % PATIENTS)
                )
            }),
        ),
        (
            "schedules by actor and date",
            Box::new(move |k| {
                format!("Schedule?actor=PractitionerRole/role{}&date=ge2026-04-07&date=le2026-04-14&_count=50", k % schedules)
            }),
        ),
    ];
    for (name, make) in &searches {
        for total in ["accurate", "none"] {
            let mut times = Vec::with_capacity(RUNS);
            let mut found = 0;
            for run in 0..RUNS {
                let query = format!("{}&_total={total}", make(run * 7919));
                let request = request(registry, &query);
                let started = Instant::now();
                let page = store.search(&ctx, &request).await.expect("search");
                times.push(started.elapsed());
                found += page.matches.len();
            }
            times.sort();
            println!(
                "{name} (_total={total}): median {:?}, p95 {:?}, max {:?}; {:.1} matches per page",
                times[RUNS / 2],
                times[RUNS * 95 / 100],
                times[RUNS - 1],
                found as f64 / RUNS as f64
            );
        }
        let plan = store.explain_search(&request(registry, &make(1))).await.expect("plan");
        println!("  {}\n  plan:\n    {}\n", make(1), plan.join("\n    "));
    }
}

fn svnr(patient: usize) -> String {
    format!("{:04}010180", patient)
}

fn request(registry: &SearchParameters, query: &str) -> SearchRequest {
    let (type_name, query) = query.split_once('?').expect("Type?query");
    let resource_type: ResourceType = type_name.parse().expect("served type");
    let pairs: Vec<(String, String)> =
        form_urlencoded::parse(query.as_bytes()).map(|(n, v)| (n.into_owned(), v.into_owned())).collect();
    let options = SearchOptions {
        server_base: Some("http://localhost/fhir"),
        now: Timestamp::now(),
        default_count: 50,
        max_count: 500,
        handling: termin_search::Handling::Strict,
    };
    registry.parse_search(resource_type, &pairs, &options).expect("valid search").request
}

async fn build(store: &SqliteStore, registry: &SearchParameters, schedules: usize, slots: usize) {
    let started = Instant::now();
    let mut batch = Vec::with_capacity(BATCH);
    let day_start: Timestamp = "2026-03-01T07:00:00Z".parse().unwrap();
    for s in 0..schedules {
        batch.push(json!({"resourceType": "PractitionerRole", "id": format!("role{s}"), "active": true,
                          "practitioner": {"reference": format!("Practitioner/doc{s}")}}));
        batch.push(json!({"resourceType": "Schedule", "id": format!("sch{s}"), "active": true,
                          "actor": [{"reference": format!("PractitionerRole/role{s}")}],
                          "serviceType": [{"concept": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/service-type", "code": "65"}]}}],
                          "planningHorizon": {"start": "2026-03-01", "end": "2026-07-31"}}));
        flush_if_full(store, registry, &mut batch).await;
    }
    for i in 0..slots {
        // 20 slots of 30 minutes per working day, one schedule after the other.
        let index = i % SLOTS_PER_SCHEDULE;
        let start = day_start + SignedDuration::from_hours(24 * (index / 20) as i64) + SignedDuration::from_mins(30 * (index % 20) as i64);
        let end = start + SignedDuration::from_mins(30);
        batch.push(json!({"resourceType": "Slot", "id": format!("slot{i}"),
                          "schedule": {"reference": format!("Schedule/sch{}", i / SLOTS_PER_SCHEDULE)},
                          "serviceType": [{"concept": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/service-type", "code": "65"}]}}],
                          "status": if i % 3 == 0 { "busy-unavailable" } else { "free" },
                          "start": start.to_string(), "end": end.to_string()}));
        flush_if_full(store, registry, &mut batch).await;
        if i % 100_000 == 0 && i > 0 {
            println!("  {i} slots in {:?}", started.elapsed());
        }
    }
    for p in 0..PATIENTS {
        batch.push(json!({"resourceType": "Patient", "id": format!("pat{p}"),
                          "identifier": [{"system": SVNR, "value": svnr(p)}], "name": [{"family": format!("Name{p}")}]}));
        for a in 0..APPOINTMENTS_PER_PATIENT {
            let start = day_start + SignedDuration::from_hours(24 * ((p + a * 13) % 150) as i64);
            batch.push(json!({"resourceType": "Appointment", "id": format!("appt{p}-{a}"), "status": "booked",
                              "start": start.to_string(), "end": (start + SignedDuration::from_mins(30)).to_string(),
                              "participant": [{"actor": {"reference": format!("Patient/pat{p}")}, "status": "accepted"},
                                              {"actor": {"reference": format!("PractitionerRole/role{}", p % schedules)}, "status": "accepted"}]}));
        }
        flush_if_full(store, registry, &mut batch).await;
    }
    flush(store, registry, &mut batch).await;
    println!("built the dataset in {:?}", started.elapsed());
}

async fn flush_if_full(store: &SqliteStore, registry: &SearchParameters, batch: &mut Vec<Value>) {
    if batch.len() >= BATCH {
        flush(store, registry, batch).await;
    }
}

async fn flush(store: &SqliteStore, registry: &SearchParameters, batch: &mut Vec<Value>) {
    let ctx = RequestContext::system("benchmark");
    let mut tx = store.begin_write(&ctx).await.expect("begin");
    let now = Timestamp::now();
    for resource in batch.drain(..) {
        let Value::Object(mut map) = resource else { unreachable!() };
        map.insert("meta".into(), json!({"versionId": "1", "lastUpdated": now.to_string()}));
        let resource_type: ResourceType = map["resourceType"].as_str().unwrap().parse().unwrap();
        let id = map["id"].as_str().unwrap().to_owned();
        let index = registry.index_entries(&map);
        tx.write(NewVersion {
            version: ResourceVersion {
                resource_type,
                id,
                version: 1,
                last_updated: now,
                body: Some(Value::Object(map).to_string()),
            },
            change: ChangeKind::Create,
            index,
        })
        .await
        .expect("write");
    }
    tx.commit().await.expect("commit");
}
