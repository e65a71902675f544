//! `$findHSP` benchmark: 1,000 HealthcareServices and 5,000 PractitionerRoles over 100
//! Organizations in ten Austrian towns, each role with a Schedule of free slots; then a
//! zip-area + weekday-morning query, timed. Figures go to `docs/find-hsp-performance.md`.
//!
//! ```sh
//! cargo run --release -p termin-domain --example find_hsp_benchmark
//! ```
//!
//! Building the dataset takes minutes. With `FIND_HSP_BENCHMARK_DB=<file>` it is kept in that
//! file and reused by later runs on the same day (the slots lie in the coming week).

use jiff::Timestamp;
use serde_json::{Map, Value, json};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;
use termin_domain::{Caller, Domain, ProviderQuery, ResourceService, ServiceConfig, SystemClock};
use termin_fhir::ResourceType;
use termin_store::{SystemMatch, TokenMatch};
use termin_store_sqlite::SqliteStore;

const ORGANIZATIONS: usize = 100;
const SERVICES: usize = 1_000;
const ROLES: usize = 5_000;
const SERVICE_TYPES: usize = 20;
const SLOTS_PER_ROLE: usize = 10;
const RUNS: usize = 50;
const SERVICE_TYPE_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/service-type";
/// Real Austrian postal codes and towns.
const TOWNS: [(&str, &str); 10] = [
    ("1010", "Wien"),
    ("3100", "St. Pölten"),
    ("4020", "Linz"),
    ("5020", "Salzburg"),
    ("5350", "St. Wolfgang im Salzkammergut"),
    ("6020", "Innsbruck"),
    ("6900", "Bregenz"),
    ("7000", "Eisenstadt"),
    ("8010", "Graz"),
    ("9020", "Klagenfurt"),
];

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => unreachable!("resources are objects"),
    }
}

async fn put(service: &ResourceService, ctx: &Caller, resource: Value) {
    let resource_type: ResourceType = resource["resourceType"].as_str().unwrap().parse().unwrap();
    let id = resource["id"].as_str().unwrap().to_owned();
    service.update(ctx, resource_type, &id, object(resource), None).await.expect("write");
}

async fn build_dataset(service: &ResourceService, ctx: &Caller) {
    let building = Instant::now();
    for o in 0..ORGANIZATIONS {
        let (zip, city) = TOWNS[o % TOWNS.len()];
        put(service, ctx, json!({"resourceType": "Organization", "id": format!("org-{o}"), "name": format!("Praxis {o}"),
            "contact": [{"address": {"postalCode": zip, "city": city, "country": "AUT"}}]})).await;
    }
    for s in 0..SERVICES {
        put(service, ctx, json!({"resourceType": "HealthcareService", "id": format!("svc-{s}"), "active": true,
            "name": format!("Service {s}"), "providedBy": {"reference": format!("Organization/org-{}", s % ORGANIZATIONS)},
            "type": [{"coding": [{"system": SERVICE_TYPE_SYSTEM, "code": (s % SERVICE_TYPES).to_string()}]}]})).await;
    }
    let monday = Timestamp::now().to_zoned_datetime(jiff::tz::TimeZone::get("Europe/Vienna").unwrap()).date();
    for r in 0..ROLES {
        let s = r % SERVICES;
        // Half the roles work mornings, half afternoons.
        let (from, to) = if r % 2 == 0 { ("08:00:00", "12:00:00") } else { ("13:00:00", "17:00:00") };
        put(service, ctx, json!({"resourceType": "Practitioner", "id": format!("pr-{r}"), "name": [{"family": format!("Arzt {r}")}]})).await;
        put(service, ctx, json!({"resourceType": "PractitionerRole", "id": format!("role-{r}"), "active": true,
            "practitioner": {"reference": format!("Practitioner/pr-{r}")},
            "organization": {"reference": format!("Organization/org-{}", s % ORGANIZATIONS)},
            "healthcareService": [{"reference": format!("HealthcareService/svc-{s}")}],
            "availability": [{"availableTime": [{"daysOfWeek": ["mon", "tue", "wed", "thu", "fri"],
                "availableStartTime": from, "availableEndTime": to}]}]})).await;
        put(service, ctx, json!({"resourceType": "Schedule", "id": format!("sched-{r}"), "active": true,
            "actor": [{"reference": format!("PractitionerRole/role-{r}")}]})).await;
        for k in 0..SLOTS_PER_ROLE {
            let day = monday.checked_add(jiff::Span::new().days((k % 5 + 1) as i64)).unwrap();
            let hour = if r % 2 == 0 { 8 + (k % 4) } else { 13 + (k % 4) };
            let start = format!("{day}T{hour:02}:00:00+01:00");
            let end = format!("{day}T{hour:02}:30:00+01:00");
            put(service, ctx, json!({"resourceType": "Slot", "id": format!("slot-{r}-{k}"), "status": "free",
                "schedule": {"reference": format!("Schedule/sched-{r}")}, "start": start, "end": end})).await;
        }
    }
    println!(
        "dataset: {ORGANIZATIONS} organizations, {SERVICES} services, {ROLES} roles, {} slots, built in {:?}",
        ROLES * SLOTS_PER_ROLE,
        building.elapsed()
    );
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = std::env::var_os("FIND_HSP_BENCHMARK_DB").map_or_else(|| dir.path().join("find-hsp.db"), PathBuf::from);
    let reuse = path.exists();
    let store = SqliteStore::open(&path, 4).await.expect("store");
    let domain = Domain::new(Arc::new(store), Arc::new(SystemClock), ServiceConfig::default(), termin_search::registry());
    let ctx = Caller::system("benchmark");
    if !reuse {
        build_dataset(&domain.resources, &ctx).await;
    }
    let query = |code: usize| ProviderQuery {
        types: vec![TokenMatch { system: SystemMatch::Exactly(SERVICE_TYPE_SYSTEM.into()), code: Some(code.to_string()) }],
        zip_areas: vec!["53".into()],
        availability: vec![json!({"availableTime": [{"daysOfWeek": ["mon", "tue"],
            "availableStartTime": "08:00:00", "availableEndTime": "12:00:00"}]})],
        ..ProviderQuery::default()
    };
    let mut timings = Vec::with_capacity(RUNS);
    let mut found = 0;
    for run in 0..RUNS {
        let started = Instant::now();
        let answer = domain.providers.find_providers(&ctx, &query(run % SERVICE_TYPES)).await.expect("findHSP");
        timings.push(started.elapsed());
        found += answer.services.iter().map(|m| m.providers.len()).sum::<usize>();
    }
    timings.sort();
    println!(
        "zip area 53 + Mon/Tue mornings: median {:?}, p95 {:?}, max {:?} over {RUNS} runs ({} providers per answer on average)",
        timings[RUNS / 2],
        timings[RUNS * 95 / 100],
        timings[RUNS - 1],
        found / RUNS
    );
}
