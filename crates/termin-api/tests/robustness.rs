//! Property-based robustness of the whole HTTP application (issue 12, "Beyond the list"):
//! generated hostile and careless requests — random and mutated JSON bodies, search and history
//! query strings, headers and JSON Patch documents — go through the real router, domain, validator
//! and store, in-process (`tower::ServiceExt::oneshot`). For every request:
//!
//! * the status is below 500, or exactly 503 (documented: database unavailable, time limit);
//! * nothing panics (a panic fails the case, as a 500 does);
//! * every 4xx/5xx body is an OperationOutcome with an issue (a `$hold`/`$book` conflict answers
//!   a Parameters whose `outcome` is one);
//! * a rejected write (4xx on POST, PUT, PATCH, DELETE or an operation) changes nothing: the
//!   history totals of every served type are the same before and after.
//!
//! Runs on SQLite, or on a scratch PostgreSQL database with `TERMIN_TEST_BACKEND=postgres`. For
//! CI the runs are deterministic: fixed case counts, a fixed seed (`TERMIN_ROBUSTNESS_SEED`
//! explores others) and no failure persistence. A failure names the shrunk request; it then
//! belongs in the regression cases at the end of this file.

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Method, Request, StatusCode};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, RngSeed, TestCaseError, TestError, TestRunner};
use serde_json::{Map, Value, json};
use std::fmt;
use std::sync::Arc;
use termin_api::metrics::Metrics;
use termin_api::{ApiConfig, AppState};
use termin_domain::{Domain, ResourceValidator, ServiceConfig, SystemClock};
use termin_fhir::{OperationOutcome, ResourceType};
use termin_store::ResourceStore;
use termin_store_postgres::PostgresStore;
use termin_store_postgres::scratch::ScratchDatabase;
use termin_store_sqlite::SqliteStore;
use termin_validation::{Definitions, Validator, default_profiles};
use tower::ServiceExt;

const DEFAULT_SEED: u64 = 0x7E57_2026_0012;
const MAX_BODY_BYTES: usize = 1 << 20;

// ---------------------------------------------------------------------------------------------
// The application under test
// ---------------------------------------------------------------------------------------------

/// The R5 validator behind the domain's port, as `termin serve` wires it.
struct R5Validator(Validator);

impl ResourceValidator for R5Validator {
    fn validate(&self, resource: &Value) -> OperationOutcome {
        self.0.validate(resource)
    }

    fn validate_against(&self, resource: &Value, profile: &str) -> Result<OperationOutcome, String> {
        self.0.validate_against(resource, profile)
    }

    fn enforced_profile(&self, resource_type: ResourceType) -> Option<&str> {
        self.0.enforced_profile(resource_type)
    }
}

/// Where the data lives; dropped after the application.
enum Storage {
    /// Kept until the end: dropping it deletes the database.
    Sqlite {
        _dir: tempfile::TempDir,
    },
    Postgres(ScratchDatabase),
}

struct World {
    runtime: tokio::runtime::Runtime,
    app: Router,
    storage: Option<Storage>,
}

impl World {
    /// The application over a fresh store with the R5 search parameters and validator, and
    /// the seed data of [`seed_requests`] written through it.
    fn start() -> World {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("start a runtime");
        let cache = termin_search::default_package_cache();
        let definitions = Definitions::load(&[], cache.as_deref()).expect("load the R5 definitions");
        let profiles = default_profiles(&definitions);
        let (validator, _) = Validator::new(definitions, profiles).expect("build the validator");
        let (store, storage): (Arc<dyn ResourceStore>, Storage) = runtime.block_on(async {
            if std::env::var("TERMIN_TEST_BACKEND").is_ok_and(|b| b.eq_ignore_ascii_case("postgres")) {
                let scratch = ScratchDatabase::create("termin_robustness").await.expect("a scratch database");
                let store = PostgresStore::open(&scratch.url, 4).await.expect("open PostgreSQL");
                (Arc::new(store) as Arc<dyn ResourceStore>, Storage::Postgres(scratch))
            } else {
                let dir = tempfile::tempdir().expect("a temporary directory");
                let store = SqliteStore::open(&dir.path().join("robustness.db"), 2).await.expect("open SQLite");
                (Arc::new(store) as Arc<dyn ResourceStore>, Storage::Sqlite { _dir: dir })
            }
        });
        let config = ServiceConfig { max_resource_bytes: MAX_BODY_BYTES, ..ServiceConfig::default() };
        let domain = Domain::new(store, Arc::new(SystemClock), config, termin_search::registry())
            .with_validator(Arc::new(R5Validator(validator)));
        runtime.block_on(domain.resources.refresh_search_index()).expect("index the search parameters");
        let app = termin_api::app(AppState {
            domain: Arc::new(domain),
            metrics: Metrics::install().expect("the only metrics recorder of this process"),
            auth: None,
            notifications: None,
            platform: None,
            config: ApiConfig {
                base_url: None,
                max_body_bytes: MAX_BODY_BYTES,
                default_count: 20,
                max_count: 100,
                cors_allowed_origins: Default::default(),
                body_read_timeout: std::time::Duration::from_secs(30),
                trusted_proxies: Vec::new(),
                max_bundle_entries: 1000,
            },
        });
        let world = World { runtime, app, storage: Some(storage) };
        for probe in seed_requests() {
            let answer = world.send(&probe);
            assert!(answer.status.is_success(), "seeding {probe:?} answered {}: {}", answer.status, answer.text());
        }
        world
    }

    fn send(&self, probe: &Probe) -> Answer {
        self.runtime.block_on(async {
            let response = self.app.clone().oneshot(probe.request()).await.expect("the router is infallible");
            let status = response.status();
            let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.expect("read the response body");
            Answer { status, body: body.to_vec() }
        })
    }

    /// History totals of every served type: any stored change adds a version somewhere.
    fn fingerprint(&self) -> Vec<u64> {
        ResourceType::ALL
            .iter()
            .map(|t| {
                let answer = self.send(&Probe::new(Method::GET, format!("/fhir/{t}/_history?_count=1")));
                assert_eq!(answer.status, StatusCode::OK, "history of {t}: {}", answer.text());
                answer.json()["total"].as_u64().expect("a history total")
            })
            .collect()
    }

    /// Sends `probe` and checks the robustness property on its answer.
    fn check(&self, probe: &Probe) -> Result<Answer, TestCaseError> {
        let before = probe.writes().then(|| self.fingerprint());
        let answer = self.send(probe);
        let status = answer.status;
        if status.is_server_error() && status != StatusCode::SERVICE_UNAVAILABLE {
            return Err(TestCaseError::fail(format!("answered {status}: {}", answer.text())));
        }
        if status.is_client_error() || status.is_server_error() {
            if !carries_outcome(&answer) {
                return Err(TestCaseError::fail(format!(
                    "answered {status} without an OperationOutcome: {}",
                    answer.text()
                )));
            }
            if let Some(before) = before {
                let after = self.fingerprint();
                if before != after {
                    return Err(TestCaseError::fail(format!(
                        "answered {status} but changed the history totals from {before:?} to {after:?}: {}",
                        answer.text()
                    )));
                }
            }
        }
        Ok(answer)
    }

    /// Runs `cases` generated probes; the failure, if any, with its shrunk probe.
    fn explore(&self, family: &str, cases: u32, probes: impl Strategy<Value = Probe>) -> Option<String> {
        self.explore_with(family, cases, probes, |probe| self.check(&probe).map(drop))
    }

    /// Runs `cases` generated inputs through `run`; the failure, if any, with its shrunk input.
    fn explore_with<T: fmt::Debug>(
        &self,
        family: &str,
        cases: u32,
        inputs: impl Strategy<Value = T>,
        run: impl Fn(T) -> Result<(), TestCaseError>,
    ) -> Option<String> {
        let mut runner = TestRunner::new(Config {
            cases,
            failure_persistence: None,
            rng_algorithm: RngAlgorithm::ChaCha,
            rng_seed: RngSeed::Fixed(seed()),
            // The application's state moves on with every accepted write, so a shrunk case is
            // a hint, not an exact replay; keep shrinking short.
            max_shrink_iters: 200,
            ..Config::default()
        });
        match runner.run(&inputs, run) {
            Ok(()) => None,
            Err(TestError::Fail(why, input)) => Some(format!("{family}: {why}\n  input: {input:?}")),
            Err(TestError::Abort(why)) => Some(format!("{family}: aborted: {why}")),
        }
    }
}

impl Drop for World {
    fn drop(&mut self) {
        if let Some(Storage::Postgres(scratch)) = self.storage.take()
            && let Err(why) = self.runtime.block_on(scratch.drop_database())
        {
            eprintln!("{why}");
        }
    }
}

fn seed() -> u64 {
    match std::env::var("TERMIN_ROBUSTNESS_SEED") {
        Ok(text) => text.parse().expect("TERMIN_ROBUSTNESS_SEED is a number"),
        Err(_) => DEFAULT_SEED,
    }
}

// ---------------------------------------------------------------------------------------------
// Requests and answers
// ---------------------------------------------------------------------------------------------

#[derive(Clone)]
struct Probe {
    method: Method,
    /// Path and query, already a valid request target.
    target: String,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Vec<u8>,
}

impl Probe {
    fn new(method: Method, target: impl Into<String>) -> Probe {
        Probe { method, target: target.into(), headers: Vec::new(), body: Vec::new() }
    }

    fn json(method: Method, target: impl Into<String>, body: &Value) -> Probe {
        Probe::new(method, target)
            .header("content-type", "application/fhir+json")
            .with_body(body.to_string().into_bytes())
    }

    fn header(mut self, name: &str, value: &str) -> Probe {
        self.headers.push((
            HeaderName::from_bytes(name.as_bytes()).expect("a header name"),
            HeaderValue::from_str(value).expect("a header value"),
        ));
        self
    }

    fn with_body(mut self, body: Vec<u8>) -> Probe {
        self.body = body;
        self
    }

    fn writes(&self) -> bool {
        self.method != Method::GET && !self.target.contains("/_search") && !self.target.contains("$validate")
    }

    fn request(&self) -> Request<Body> {
        let mut request = Request::builder()
            .method(self.method.clone())
            .uri(&self.target)
            .body(Body::from(self.body.clone()))
            .unwrap_or_else(|e| panic!("the generator made an invalid request target {:?}: {e}", self.target));
        for (name, value) in &self.headers {
            request.headers_mut().append(name.clone(), value.clone());
        }
        request
    }
}

impl fmt::Debug for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method, self.target)?;
        for (name, value) in &self.headers {
            write!(f, "\n    {name}: {}", String::from_utf8_lossy(value.as_bytes()))?;
        }
        if !self.body.is_empty() {
            let text = String::from_utf8_lossy(&self.body);
            let shown: String = text.chars().take(4000).collect();
            write!(f, "\n    body ({} bytes): {shown}", self.body.len())?;
        }
        Ok(())
    }
}

struct Answer {
    status: StatusCode,
    body: Vec<u8>,
}

impl Answer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).chars().take(2000).collect()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

fn is_outcome_with_issue(value: &Value) -> bool {
    value["resourceType"] == "OperationOutcome" && value["issue"].as_array().is_some_and(|issues| !issues.is_empty())
}

/// An OperationOutcome with an issue, or a Parameters carrying one as `outcome`.
fn carries_outcome(answer: &Answer) -> bool {
    let body = answer.json();
    is_outcome_with_issue(&body)
        || (body["resourceType"] == "Parameters"
            && body["parameter"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|p| p["name"] == "outcome" && is_outcome_with_issue(&p["resource"])))
}

// ---------------------------------------------------------------------------------------------
// Seed data: every served type, a schedule with free slots, a hold and a booking
// ---------------------------------------------------------------------------------------------

const SLOTS: usize = 6;

fn slot_times(i: usize) -> (String, String) {
    let at = |minute: usize| format!("2030-01-07T{:02}:{:02}:00Z", 8 + minute / 60, minute % 60);
    (at(i * 30), at(i * 30 + 30))
}

fn slot(i: usize) -> Value {
    let (start, end) = slot_times(i);
    json!({"resourceType": "Slot", "id": format!("slot-{i}"),
        "identifier": [{"system": "urn:termin:robustness:slot", "value": format!("slot-{i}")}],
        "schedule": {"reference": "Schedule/schedule"}, "status": "free", "start": start, "end": end})
}

/// One valid resource of every served type, with the ids the seed data uses.
fn templates() -> Vec<Value> {
    vec![
        json!({"resourceType": "Patient", "id": "patient", "active": true,
            "identifier": [{"system": "urn:oid:1.2.40.0.10.1.4.3.1", "value": "1234010180"}],
            "name": [{"family": "Huber", "given": ["Anna"]}], "gender": "female", "birthDate": "1980-01-01",
            "telecom": [{"system": "phone", "value": "+43 1 234"}],
            "address": [{"city": "Wien", "postalCode": "1010", "country": "AT"}]}),
        json!({"resourceType": "Practitioner", "id": "practitioner", "name": [{"family": "Musterärztin"}],
            "qualification": [{"code": {"text": "Physiotherapie"}}]}),
        json!({"resourceType": "Organization", "id": "organization", "active": true, "name": "Praxis",
            "contact": [{"address": {"postalCode": "5350"}}]}),
        json!({"resourceType": "Location", "id": "location", "status": "active", "name": "Praxis",
            "address": {"postalCode": "5350"}, "position": {"longitude": 13.4, "latitude": 47.7},
            "managingOrganization": {"reference": "Organization/organization"}}),
        json!({"resourceType": "HealthcareService", "id": "service", "active": true, "name": "Physiotherapie",
            "providedBy": {"reference": "Organization/organization"},
            "location": [{"reference": "Location/location"}],
            "type": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/service-type", "code": "65"}]}],
            "availability": [{"availableTime": [{"daysOfWeek": ["mon", "tue"],
                "availableStartTime": "08:00:00", "availableEndTime": "12:00:00"}]}]}),
        json!({"resourceType": "PractitionerRole", "id": "role", "active": true,
            "practitioner": {"reference": "Practitioner/practitioner"},
            "organization": {"reference": "Organization/organization"},
            "healthcareService": [{"reference": "HealthcareService/service"}]}),
        json!({"resourceType": "Schedule", "id": "schedule", "active": true,
            "actor": [{"reference": "Practitioner/practitioner"}, {"reference": "HealthcareService/service"}],
            "planningHorizon": {"start": "2030-01-01T00:00:00Z", "end": "2030-12-31T00:00:00Z"}}),
        json!({"resourceType": "RelatedPerson", "id": "related", "active": true,
            "patient": {"reference": "Patient/patient"}, "name": [{"family": "Huber"}]}),
        json!({"resourceType": "Subscription", "id": "subscription", "status": "requested",
            "topic": "http://localhost/fhir/SubscriptionTopic/appointment-booked",
            "filterBy": [{"filterParameter": "patient", "value": "Patient/patient"}],
            "channelType": {"system": "http://terminology.hl7.org/CodeSystem/subscription-channel-type", "code": "rest-hook"},
            "endpoint": "http://127.0.0.1:9/hook", "content": "id-only"}),
        slot(0),
        booked_appointment(),
    ]
}

/// The Appointment stored by PUT as booked on `slot-1`.
fn booked_appointment() -> Value {
    let mut booked = appointment(&["slot-1"]);
    booked["id"] = json!("booked");
    booked["status"] = json!("booked");
    let (start, end) = slot_times(1);
    booked["start"] = json!(start);
    booked["end"] = json!(end);
    booked["identifier"][0]["value"] = json!("booking-2");
    booked
}

fn appointment(slots: &[&str]) -> Value {
    json!({"resourceType": "Appointment", "status": "proposed",
        "identifier": [{"system": "urn:termin:robustness:booking", "value": "booking-1"}],
        "serviceType": [{"reference": {"reference": "HealthcareService/service"}}],
        "subject": {"reference": "Patient/patient"},
        "participant": [{"actor": {"reference": "Patient/patient"}, "status": "accepted"},
            {"actor": {"reference": "Practitioner/practitioner"}, "status": "accepted"}],
        "slot": slots.iter().map(|s| json!({"reference": format!("Slot/{s}")})).collect::<Vec<_>>()})
}

fn hold_parameters(slot: &str, status: &str) -> Value {
    json!({"resourceType": "Parameters", "parameter": [
        {"name": "slot-reference", "valueReference": {"reference": format!("Slot/{slot}")}},
        {"name": "slot-status", "valueCode": status}]})
}

fn book_parameters(appointment: Value) -> Value {
    json!({"resourceType": "Parameters", "parameter": [
        {"name": "appointment-resource", "resource": appointment},
        {"name": "hold-token", "valueString": "not-a-token"}]})
}

fn find_hsp_parameters() -> Value {
    json!({"resourceType": "Parameters", "parameter": [
        {"name": "healthcareService-type", "valueString": "http://terminology.hl7.org/CodeSystem/service-type|65"},
        {"name": "healthcareService-zipCodeArea", "valueString": "53"},
        {"name": "healthcareService-availability", "valueAvailability": {"availableTime": [{"daysOfWeek": ["mon"]}]}}]})
}

fn seed_requests() -> Vec<Probe> {
    let mut probes: Vec<Probe> = templates()
        .into_iter()
        .map(|t| {
            let target = format!("/fhir/{}/{}", t["resourceType"].as_str().unwrap(), t["id"].as_str().unwrap());
            Probe::json(Method::PUT, target, &t)
        })
        .collect();
    let booked = probes.pop().expect("the Appointment comes last");
    for i in 1..SLOTS {
        probes.push(Probe::json(Method::PUT, format!("/fhir/Slot/slot-{i}"), &slot(i)));
    }
    probes.push(booked);
    probes.push(Probe::json(Method::POST, "/fhir/Appointment/$book", &book_parameters(appointment(&["slot-0"]))));
    probes.push(Probe::json(Method::POST, "/fhir/Slot/$hold", &hold_parameters("slot-2", "busy-tentative")));
    probes
}

/// Ids that exist after seeding, by type.
fn seeded_id(resource_type: ResourceType) -> &'static str {
    match resource_type {
        ResourceType::Patient => "patient",
        ResourceType::Practitioner => "practitioner",
        ResourceType::PractitionerRole => "role",
        ResourceType::Organization => "organization",
        ResourceType::Location => "location",
        ResourceType::HealthcareService => "service",
        ResourceType::Schedule => "schedule",
        ResourceType::Slot => "slot-3",
        ResourceType::Appointment => "booked",
        ResourceType::RelatedPerson => "related",
        // The server records AuditEvents; none is seeded.
        ResourceType::AuditEvent => "audit-event",
        ResourceType::Subscription => "subscription",
    }
}

// ---------------------------------------------------------------------------------------------
// Generators: JSON
// ---------------------------------------------------------------------------------------------

/// Number texts that are valid JSON but hostile: out of f64 range, overlong, negative zero,
/// exponent spellings.
const NUMBER_TEXTS: [&str; 16] = [
    "0",
    "-0",
    "1",
    "-1",
    "1e400",
    "-1e400",
    "1E5",
    "-1.0E-0",
    "1e-400",
    "99999999999999999",
    "18446744073709551616",
    "-9223372036854775809",
    "0.30000000000000000000000000001",
    "1e18",
    "2147483648",
    "4.5",
];

fn number(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}

const STRINGS: [&str; 36] = [
    "",
    " ",
    "patient",
    "slot-3",
    "booked",
    "Patient/patient",
    "Slot/slot-4",
    "Schedule/schedule",
    "HealthcareService/service",
    "http://example.org/fhir/Slot/slot-5",
    "urn:uuid:0",
    "#contained",
    "free",
    "busy-tentative",
    "busy",
    "booked",
    "cancelled",
    "entered-in-error",
    "proposed",
    "2030-01-07T09:00:00Z",
    "2030-01-07",
    "2030-02-30T25:61:00Z",
    "9999-12-31T23:59:59+14:00",
    "0001-01-01",
    "T",
    "<div>x</div>",
    "<script>alert(1)</script>",
    "' OR 1=1 --",
    "%00",
    "\u{0}",
    "a\u{1}b",
    "\u{7f}",
    "\u{feff}",
    "ä𝄞\u{202e}",
    "http://terminology.hl7.org/CodeSystem/service-type|65",
    "Anna",
];

const KEYS: [&str; 30] = [
    "resourceType",
    "id",
    "meta",
    "versionId",
    "lastUpdated",
    "extension",
    "url",
    "valueString",
    "status",
    "start",
    "end",
    "slot",
    "schedule",
    "reference",
    "identifier",
    "system",
    "value",
    "name",
    "given",
    "family",
    "participant",
    "actor",
    "subject",
    "contained",
    "_status",
    "text",
    "div",
    "",
    "\u{0}",
    "ä",
];

fn string() -> BoxedStrategy<String> {
    prop_oneof![
        12 => proptest::sample::select(&STRINGS[..]).prop_map(str::to_owned),
        4 => "\\PC{0,16}",
        1 => proptest::collection::vec(0u32..0x20, 1..4).prop_map(|codes| codes.into_iter().filter_map(char::from_u32).collect()),
        1 => (1usize..5000).prop_map(|n| "x".repeat(n)),
    ]
    .boxed()
}

fn key() -> BoxedStrategy<String> {
    prop_oneof![4 => proptest::sample::select(&KEYS[..]).prop_map(str::to_owned), 1 => "\\PC{0,8}"].boxed()
}

fn leaf() -> BoxedStrategy<Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        proptest::sample::select(&NUMBER_TEXTS[..]).prop_map(number),
        any::<i64>().prop_map(Value::from),
        string().prop_map(Value::String),
    ]
    .boxed()
}

fn json_value() -> BoxedStrategy<Value> {
    leaf()
        .prop_recursive(4, 40, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::vec((key(), inner), 0..6)
                    .prop_map(|members| Value::Object(members.into_iter().collect())),
            ]
        })
        .boxed()
}

/// A structural change at one place of a resource; the `u32` picks the place.
#[derive(Debug, Clone)]
enum Mutation {
    Remove(u32),
    Replace(u32, Value),
    Duplicate(u32),
    WrapInArray(u32),
    /// Adds a member to the object at the place.
    Insert(u32, String, Value),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<u32>().prop_map(Mutation::Remove),
        (any::<u32>(), json_value()).prop_map(|(at, v)| Mutation::Replace(at, v)),
        (any::<u32>(), leaf()).prop_map(|(at, v)| Mutation::Replace(at, v)),
        any::<u32>().prop_map(Mutation::Duplicate),
        any::<u32>().prop_map(Mutation::WrapInArray),
        (any::<u32>(), key(), json_value()).prop_map(|(at, k, v)| Mutation::Insert(at, k, v)),
    ]
}

/// JSON Pointers of every element of `value`, the root first.
fn pointers(value: &Value) -> Vec<String> {
    fn walk(value: &Value, at: String, out: &mut Vec<String>) {
        out.push(at.clone());
        match value {
            Value::Object(members) => {
                for (k, v) in members {
                    walk(v, format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")), out);
                }
            }
            Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    walk(v, format!("{at}/{i}"), out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(value, String::new(), &mut out);
    out
}

fn apply(mut value: Value, mutation: &Mutation) -> Value {
    let places = pointers(&value);
    let pick = |at: u32| places[at as usize % places.len()].clone();
    match mutation {
        Mutation::Remove(at) => {
            let place = pick(*at);
            if let Some((parent, last)) = place.rsplit_once('/')
                && let Some(container) = value.pointer_mut(parent)
            {
                let last = last.replace("~1", "/").replace("~0", "~");
                match container {
                    Value::Object(members) => {
                        members.remove(&last);
                    }
                    Value::Array(items) => {
                        if let Ok(i) = last.parse::<usize>() {
                            items.remove(i);
                        }
                    }
                    _ => {}
                }
            }
        }
        Mutation::Replace(at, replacement) => {
            if let Some(target) = value.pointer_mut(&pick(*at)) {
                *target = replacement.clone();
            }
        }
        Mutation::Duplicate(at) => {
            if let Some(target) = value.pointer_mut(&pick(*at)) {
                let copy = target.clone();
                match target {
                    Value::Array(items) => items.extend(copy.as_array().cloned().unwrap_or_default()),
                    other => *other = Value::Array(vec![copy.clone(), copy]),
                }
            }
        }
        Mutation::WrapInArray(at) => {
            if let Some(target) = value.pointer_mut(&pick(*at)) {
                *target = Value::Array(vec![target.take()]);
            }
        }
        Mutation::Insert(at, key, member) => {
            if let Some(Value::Object(members)) = value.pointer_mut(&pick(*at)) {
                members.insert(key.clone(), member.clone());
            }
        }
    }
    value
}

/// Changes to the JSON text that no `Value` can express.
#[derive(Debug, Clone)]
enum TextChange {
    None,
    /// A second `resourceType` or `id` member before the first.
    DuplicateKey(&'static str, &'static str),
    /// The whole body nested in `depth` arrays or objects under an element.
    Nest {
        depth: usize,
        objects: bool,
    },
    Truncate(u32),
    InvalidUtf8(u32),
    LoneSurrogate,
    ByteOrderMark,
    TrailingGarbage(&'static str),
    Empty,
}

fn text_change() -> impl Strategy<Value = TextChange> {
    prop_oneof![
        24 => Just(TextChange::None),
        1 => proptest::sample::select(&[("resourceType", "\"Patient\""), ("resourceType", "\"Bundle\""), ("id", "\"other\""), ("id", "1")][..])
            .prop_map(|(k, v)| TextChange::DuplicateKey(k, v)),
        1 => (prop_oneof![50usize..80, Just(200), Just(5000)], any::<bool>()).prop_map(|(depth, objects)| TextChange::Nest { depth, objects }),
        1 => any::<u32>().prop_map(TextChange::Truncate),
        1 => any::<u32>().prop_map(TextChange::InvalidUtf8),
        1 => Just(TextChange::LoneSurrogate),
        1 => Just(TextChange::ByteOrderMark),
        1 => proptest::sample::select(&["x", "{}", "\u{0}", "]", " \n "][..]).prop_map(TextChange::TrailingGarbage),
        1 => Just(TextChange::Empty),
    ]
}

fn change_text(body: &Value, change: &TextChange) -> Vec<u8> {
    let text = body.to_string();
    let after_brace = |insert: &str| match text.strip_prefix('{') {
        Some("}") => format!("{{{insert}}}"),
        Some(rest) => format!("{{{insert},{rest}"),
        None => text.clone(),
    };
    match change {
        TextChange::None => text.into_bytes(),
        TextChange::DuplicateKey(key, value) => after_brace(&format!("\"{key}\":{value}")).into_bytes(),
        TextChange::Nest { depth, objects } => {
            let (open, close) = if *objects { ("{\"a\":", "}") } else { ("[", "]") };
            let nested = format!("{}{text}{}", open.repeat(*depth), close.repeat(*depth));
            after_brace(&format!("\"extension\":{nested}")).into_bytes()
        }
        TextChange::Truncate(at) => {
            let mut bytes = text.into_bytes();
            bytes.truncate(*at as usize % (bytes.len() + 1));
            bytes
        }
        TextChange::InvalidUtf8(at) => {
            let mut bytes = text.into_bytes();
            let at = *at as usize % (bytes.len() + 1);
            bytes.splice(at..at, [0xC3, 0x28, 0xFF]);
            bytes
        }
        TextChange::LoneSurrogate => after_brace("\"language\":\"\\ud800\"").into_bytes(),
        TextChange::ByteOrderMark => format!("\u{feff}{text}").into_bytes(),
        TextChange::TrailingGarbage(tail) => format!("{text}{tail}").into_bytes(),
        TextChange::Empty => Vec::new(),
    }
}

// ---------------------------------------------------------------------------------------------
// Generators: where bodies go
// ---------------------------------------------------------------------------------------------

/// Ids in URLs: seeded, unknown, and invalid ones (still valid in a request target).
const PATH_IDS: [&str; 10] = [
    "patient",
    "slot-4",
    "booked",
    "new-id",
    "x",
    "a.b-c",
    "%C3%A4",
    "%00",
    "..",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
];

/// Where a body can be sent: method, target, and the id an update's body should carry.
#[derive(Debug, Clone)]
struct Target {
    method: Method,
    path: String,
    id: Option<&'static str>,
}

impl Target {
    fn post(path: impl Into<String>) -> Target {
        Target { method: Method::POST, path: path.into(), id: None }
    }

    fn put(path: impl Into<String>, id: Option<&'static str>) -> Target {
        Target { method: Method::PUT, path: path.into(), id }
    }
}

/// Where a resource of a type can be sent.
fn resource_targets(resource_type: &str) -> Vec<Target> {
    let mut targets = vec![
        Target::post(format!("/fhir/{resource_type}")),
        Target::post(format!("/fhir/{resource_type}/$validate")),
        Target::put(format!("/fhir/{resource_type}?identifier=urn:termin:robustness:slot|slot-5"), None),
        Target::put(format!("/fhir/{resource_type}?_id=new-by-condition"), Some("new-by-condition")),
    ];
    targets.extend(PATH_IDS.iter().map(|id| Target::put(format!("/fhir/{resource_type}/{id}"), Some(*id))));
    if let Ok(t) = resource_type.parse::<ResourceType>() {
        targets.push(Target::put(format!("/fhir/{resource_type}/{}", seeded_id(t)), Some(seeded_id(t))));
        targets.push(Target::post(format!("/fhir/{resource_type}/{}/$validate", seeded_id(t))));
    }
    targets
}

/// Targets of the operations, which take Parameters.
fn operation_targets() -> Vec<Target> {
    [
        "/fhir/Slot/$hold",
        "/fhir/Slot/slot-4/$hold",
        "/fhir/Slot/unknown/$hold",
        "/fhir/Appointment/$book",
        "/fhir/HealthcareService/$findHSP",
        "/fhir/Patient/$validate",
        "/fhir/Slot/$book",
        "/fhir/Patient/patient/$everything",
    ]
    .into_iter()
    .map(Target::post)
    .collect()
}

/// Valid resources and operation inputs to mutate, each with the targets it is sent to.
fn body_seeds() -> Vec<(Value, Vec<Target>)> {
    let mut seeds: Vec<(Value, Vec<Target>)> = templates()
        .into_iter()
        .map(|t| {
            let targets = resource_targets(t["resourceType"].as_str().unwrap());
            (t, targets)
        })
        .collect();
    let hold = vec![Target::post("/fhir/Slot/$hold"), Target::post("/fhir/Slot/slot-4/$hold")];
    seeds.push((hold_parameters("slot-4", "busy-tentative"), hold.clone()));
    seeds.push((hold_parameters("slot-2", "free"), hold));
    let book = vec![Target::post("/fhir/Appointment/$book")];
    seeds.push((book_parameters(appointment(&["slot-4", "slot-5"])), book.clone()));
    seeds.push((appointment(&["slot-5"]), book));
    seeds.push((find_hsp_parameters(), vec![Target::post("/fhir/HealthcareService/$findHSP")]));
    let validate = json!({"resourceType": "Parameters", "parameter": [
        {"name": "profile", "valueCanonical": "http://hl7.org/fhir/StructureDefinition/Patient"},
        {"name": "resource", "resource": templates()[0]}]});
    seeds.push((validate, vec![Target::post("/fhir/Patient/$validate")]));
    seeds
}

fn body_probe(target: &Target, body: &Value, change: &TextChange) -> Probe {
    Probe::new(target.method.clone(), target.path.clone())
        .header("content-type", "application/fhir+json")
        .with_body(change_text(body, change))
}

/// Valid resources and operation inputs, mutated structurally and textually.
fn mutated_bodies() -> impl Strategy<Value = Probe> {
    let seeds = body_seeds();
    (0..seeds.len(), proptest::collection::vec(mutation(), 0..3), any::<prop::sample::Index>(), text_change()).prop_map(
        move |(which, mutations, target, change)| {
            let (template, targets) = &seeds[which];
            let target = target.get(targets);
            let mut body = template.clone();
            if let Some(id) = target.id {
                body["id"] = json!(id);
            }
            let body = mutations.iter().fold(body, apply);
            body_probe(target, &body, &change)
        },
    )
}

const TYPE_NAMES: [&str; 14] = [
    "Patient",
    "Practitioner",
    "PractitionerRole",
    "Organization",
    "Location",
    "HealthcareService",
    "Schedule",
    "Slot",
    "Appointment",
    "RelatedPerson",
    "Parameters",
    "Bundle",
    "patient",
    "",
];

/// Random JSON objects with some `resourceType`, to any body target.
fn random_bodies() -> impl Strategy<Value = Probe> {
    let mut targets: Vec<Target> = TYPE_NAMES[..10].iter().flat_map(|t| resource_targets(t)).collect();
    targets.extend(operation_targets());
    (
        proptest::sample::select(&TYPE_NAMES[..]),
        proptest::collection::vec((key(), json_value()), 0..8),
        proptest::sample::select(targets),
        text_change(),
    )
        .prop_map(|(resource_type, members, target, change)| {
            let mut body = Map::new();
            body.insert("resourceType".into(), json!(resource_type));
            body.extend(members);
            body_probe(&target, &Value::Object(body), &change)
        })
}

// ---------------------------------------------------------------------------------------------
// Generators: query strings
// ---------------------------------------------------------------------------------------------

/// The largest searches generated. The SQLite "Expression tree is too large" 500s and the
/// PostgreSQL blow-up of issue 12 item 2 start at hundreds of repeated parameters, OR values
/// or nested chains; until the search-complexity limits land (then answering 400), the
/// generated searches stay far below that.
const MAX_PARAMS: usize = 8;
const MAX_OR_VALUES: usize = 4;

const MODIFIERS: [&str; 18] = [
    ":missing",
    ":exact",
    ":contains",
    ":not",
    ":text",
    ":of-type",
    ":identifier",
    ":below",
    ":above",
    ":in",
    ":Patient",
    ":Slot",
    ":Practitioner",
    ":iterate",
    ":code-text",
    ":",
    "::",
    ":ä",
];

const PREFIXES: [&str; 11] = ["", "", "", "eq", "ne", "gt", "lt", "ge", "le", "sa", "ap"];

const VALUES: [&str; 45] = [
    "",
    "free",
    "busy-tentative",
    "booked",
    "true",
    "false",
    "Anna",
    "huber",
    "Müller",
    "2030-01-07",
    "2030-01-07T08:30:00Z",
    "2030-01-07T08:30:00+99:00",
    "2030",
    "2030-13",
    "2030-02-30",
    "T08:00",
    "1e400",
    "-0",
    "99999999999999999999",
    "5350",
    "53",
    "urn:oid:1.2.40.0.10.1.4.3.1|1234010180",
    "|1234010180",
    "urn:oid:1.2.40.0.10.1.4.3.1|",
    "|",
    "Patient/patient",
    "Slot/slot-3",
    "Schedule/schedule",
    "patient",
    "http://example.org/fhir/Patient/patient",
    "Appointment:slot",
    "Slot:schedule",
    "*",
    "Appointment:patient",
    "Schedule:actor:Practitioner",
    "Appointment:slot:Slot",
    "-start",
    "start,-_lastUpdated",
    "_id",
    "accurate",
    "text\\,with\\,escapes",
    "\\",
    "\\|",
    "\u{0}",
    "\u{1}",
];

const RESULT_PARAMETERS: [&str; 22] = [
    "_count",
    "_cursor",
    "_sort",
    "_include",
    "_revinclude",
    "_include:iterate",
    "_total",
    "_summary",
    "_elements",
    "_format",
    "_pretty",
    "_since",
    "_lastUpdated",
    "_id",
    "_tag",
    "_profile",
    "_list",
    "_text",
    "_content",
    "_filter",
    "_type",
    "_contained",
];

const CHAIN_TAILS: [&str; 9] = [
    "name",
    "identifier",
    "status",
    "actor.name",
    "schedule.actor",
    "actor:Practitioner.name",
    "_id",
    "slot.status",
    "organization.name",
];

const HAS_PARAMETERS: [&str; 6] = [
    "_has:Appointment:slot:status",
    "_has:Slot:schedule:status",
    "_has:Appointment:patient:_has:Appointment:patient:status",
    "_has:Schedule:actor:_has:Slot:schedule:status",
    "_has:Slot",
    "_has:Nothing:x:y",
];

/// Searchable parameter codes of a served type, from the installed R5 definitions.
fn parameter_codes(resource_type: ResourceType) -> Vec<String> {
    termin_search::registry().params(resource_type).iter().map(|p| p.code.clone()).collect()
}

fn value_text() -> BoxedStrategy<String> {
    prop_oneof![
        8 => (proptest::sample::select(&PREFIXES[..]), proptest::sample::select(&VALUES[..])).prop_map(|(p, v)| format!("{p}{v}")),
        1 => "\\PC{0,12}",
        1 => (0u64..5000).prop_map(|n| n.to_string()),
    ]
    .boxed()
}

fn parameter_name(codes: Vec<String>) -> BoxedStrategy<String> {
    let codes = proptest::sample::select(codes);
    prop_oneof![
        6 => (codes.clone(), proptest::option::weighted(0.3, proptest::sample::select(&MODIFIERS[..])))
            .prop_map(|(code, modifier)| format!("{code}{}", modifier.unwrap_or_default())),
        3 => proptest::sample::select(&RESULT_PARAMETERS[..]).prop_map(str::to_owned),
        1 => (codes, proptest::sample::select(&CHAIN_TAILS[..])).prop_map(|(code, tail)| format!("{code}.{tail}")),
        1 => proptest::sample::select(&HAS_PARAMETERS[..]).prop_map(str::to_owned),
        1 => "\\PC{0,10}",
    ]
    .boxed()
}

/// How a query text is written into the request target.
#[derive(Debug, Clone, Copy)]
enum Encoding {
    /// `application/x-www-form-urlencoded`, as clients usually send it.
    Form,
    /// Only what a request target cannot carry is percent-encoded; `,` `|` `:` `$` stay raw.
    Minimal,
}

fn encode(text: &str, encoding: Encoding) -> String {
    match encoding {
        Encoding::Form => form_urlencoded::byte_serialize(text.as_bytes()).collect(),
        Encoding::Minimal => text
            .bytes()
            .map(|b| match b {
                b'a'..=b'z'
                | b'A'..=b'Z'
                | b'0'..=b'9'
                | b'-'
                | b'.'
                | b'_'
                | b'~'
                | b':'
                | b'|'
                | b','
                | b'$'
                | b'*'
                | b'!'
                | b'/'
                | b'@'
                | b';'
                | b'\''
                | b'('
                | b')' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect(),
    }
}

/// Percent-encoding garbage spliced into an otherwise encoded query. `%00` once answered 500 on
/// PostgreSQL (`POST /fhir/Patient/_search` with body `_id=%00M%C3%BCller`).
const QUERY_GARBAGE: [&str; 10] = ["%", "%zz", "%C3%28", "%FF%FE", "%00", "%01", "&&", "==", "&=&", "%2"];

/// A query string for searches on `resource_type`: parameters, modifiers, prefixes, OR lists,
/// chains, `_has`, result parameters and cursor garbage, encoded properly or not.
fn query(resource_type: ResourceType) -> BoxedStrategy<String> {
    let pair =
        (parameter_name(parameter_codes(resource_type)), proptest::collection::vec(value_text(), 1..=MAX_OR_VALUES));
    (
        proptest::collection::vec(pair, 0..=MAX_PARAMS),
        prop_oneof![Just(Encoding::Form), Just(Encoding::Minimal)],
        proptest::option::weighted(0.15, (any::<prop::sample::Index>(), proptest::sample::select(&QUERY_GARBAGE[..]))),
    )
        .prop_map(|(pairs, encoding, garbage)| {
            let mut text = pairs
                .iter()
                .map(|(name, values)| format!("{}={}", encode(name, encoding), encode(&values.join(","), encoding)))
                .collect::<Vec<_>>()
                .join("&");
            if let Some((at, junk)) = garbage {
                let at = at.index(text.len() + 1);
                let at = (0..=at).rev().find(|i| text.is_char_boundary(*i)).unwrap_or(0);
                text.insert_str(at, junk);
            }
            text
        })
        .boxed()
}

fn with_query(path: String, query: &str) -> String {
    if query.is_empty() { path } else { format!("{path}?{query}") }
}

/// Searches (GET and POST `_search`), history and reads with generated query strings.
fn queries() -> impl Strategy<Value = Probe> {
    (proptest::sample::select(&ResourceType::ALL[..]), 0..10u8, any::<bool>()).prop_flat_map(
        |(resource_type, endpoint, strict)| {
            query(resource_type).prop_map(move |query| {
                let id = seeded_id(resource_type);
                let probe = match endpoint {
                    0 => Probe::new(Method::POST, format!("/fhir/{resource_type}/_search"))
                        .header("content-type", "application/x-www-form-urlencoded")
                        .with_body(query.into_bytes()),
                    1 => Probe::new(Method::GET, with_query(format!("/fhir/{resource_type}/_history"), &query)),
                    2 => Probe::new(Method::GET, with_query(format!("/fhir/{resource_type}/{id}/_history"), &query)),
                    3 => Probe::new(Method::GET, with_query(format!("/fhir/{resource_type}/{id}"), &query)),
                    _ => Probe::new(Method::GET, with_query(format!("/fhir/{resource_type}"), &query)),
                };
                if strict { probe.header("prefer", "handling=strict") } else { probe }
            })
        },
    )
}

const FIND_HSP_NAMES: [&str; 10] = [
    "healthcareService-reference",
    "healthcareService-category",
    "healthcareService-type",
    "healthcareService-specialty",
    "healthcareService-location",
    "healthcareService-zipCodeArea",
    "healthcareService-availability",
    "_parameters",
    "_cursor",
    "_count",
];

/// `GET HealthcareService/$findHSP` with generated inputs.
fn find_hsp_queries() -> impl Strategy<Value = Probe> {
    let name =
        prop_oneof![4 => proptest::sample::select(&FIND_HSP_NAMES[..]).prop_map(str::to_owned), 1 => "\\PC{0,10}"];
    (proptest::collection::vec((name, value_text()), 0..6), prop_oneof![Just(Encoding::Form), Just(Encoding::Minimal)])
        .prop_map(|(pairs, encoding)| {
            let query = pairs
                .iter()
                .map(|(n, v)| format!("{}={}", encode(n, encoding), encode(v, encoding)))
                .collect::<Vec<_>>()
                .join("&");
            Probe::new(Method::GET, with_query("/fhir/HealthcareService/$findHSP".into(), &query))
        })
}

// ---------------------------------------------------------------------------------------------
// Generators: headers
// ---------------------------------------------------------------------------------------------

/// Well-formed requests of every kind, to carry generated headers.
fn plain_requests() -> Vec<Probe> {
    let mut patient = templates()[0].clone();
    let new_patient = {
        let mut p = patient.clone();
        p.as_object_mut().unwrap().remove("id");
        p
    };
    patient["gender"] = json!("other");
    vec![
        Probe::new(Method::GET, "/fhir/Patient/patient"),
        Probe::new(Method::GET, "/fhir/Slot?status=free&_count=2&_include=Slot:schedule"),
        Probe::new(Method::GET, "/fhir/Slot/_history?_count=2"),
        Probe::new(Method::GET, "/fhir/metadata"),
        Probe::new(Method::GET, "/health"),
        Probe::json(Method::POST, "/fhir/Patient", &new_patient),
        Probe::json(Method::PUT, "/fhir/Patient/patient", &patient),
        Probe::json(Method::PUT, "/fhir/Patient?identifier=urn:oid:1.2.40.0.10.1.4.3.1|1234010180", &patient),
        Probe::new(Method::PATCH, "/fhir/Patient/patient")
            .header("content-type", "application/json-patch+json")
            .with_body(br#"[{"op":"replace","path":"/gender","value":"female"}]"#.to_vec()),
        Probe::new(Method::DELETE, "/fhir/RelatedPerson/new-id"),
        Probe::json(Method::POST, "/fhir/Slot/$hold", &hold_parameters("slot-4", "busy-tentative")),
        Probe::json(Method::POST, "/fhir/Slot/$hold", &hold_parameters("slot-2", "free")),
        Probe::json(Method::POST, "/fhir/Appointment/$book", &book_parameters(appointment(&["slot-5"]))),
        Probe::json(Method::POST, "/fhir/Patient/$validate", &templates()[0]),
        Probe::new(Method::POST, "/fhir/Slot/_search")
            .header("content-type", "application/x-www-form-urlencoded")
            .with_body(b"status=free".to_vec()),
    ]
}

const HEADER_VALUES: [(&str, &[&str]); 10] = [
    ("if-match", &["W/\"1\"", "\"2\"", "W/\"99999999999999999999999\"", "W/\"-1\"", "*", "", "W/", "W/\"1\", W/\"2\""]),
    (
        "if-none-exist",
        &[
            "identifier=urn:oid:1.2.40.0.10.1.4.3.1|1234010180",
            "_id=patient",
            "",
            "=",
            "name=%zz",
            "unknown=1",
            "_has:Appointment:patient:status=booked",
            "identifier",
        ],
    ),
    (
        "prefer",
        &[
            "return=minimal",
            "return=OperationOutcome",
            "return=representation",
            "handling=strict",
            "handling=lenient",
            "respond-async",
            "return=",
            "return=minimal, handling=strict; x",
        ],
    ),
    (
        "accept",
        &[
            "application/fhir+json",
            "application/fhir+xml",
            "text/html",
            "*/*;q=0",
            "application/json;fhirVersion=4.0",
            "",
            ";;;",
            "image/png, */*",
        ],
    ),
    (
        "content-type",
        &[
            "application/fhir+json",
            "application/json; charset=latin1",
            "text/plain",
            "application/json-patch+json",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=",
            "",
            "application/fhir+json;;;",
        ],
    ),
    ("x-request-id", &["abc", "", "<script>alert(1)</script>", "\"quoted\"", "a b c", "ä"]),
    ("x-hold-token", &["", ",", "not-a-token", "a,b,c", " , ,", "00000000-0000-0000-0000-000000000000"]),
    ("host", &["localhost", "", "evil.example\"><script>", "example.org:99999", "[::1]:8080", "a/b?c#d", "%00"]),
    ("authorization", &["Bearer x", "Basic Og==", ""]),
    ("content-encoding", &["gzip", "br", "identity"]),
];

fn header_value() -> BoxedStrategy<Vec<u8>> {
    prop_oneof![
        "[ -~]{0,40}".prop_map(String::into_bytes),
        proptest::collection::vec(0x80u8..=0xff, 1..8),
        (1usize..10_000).prop_map(|n| vec![b'a'; n]),
    ]
    .boxed()
}

/// Plain requests with generated `If-Match`, `If-None-Exist`, `Prefer`, `Accept`,
/// `Content-Type`, `X-Request-Id`, `X-Hold-Token`, `Host` and more.
fn headers() -> impl Strategy<Value = Probe> {
    let header = (
        proptest::sample::select(&HEADER_VALUES[..]),
        any::<prop::sample::Index>(),
        proptest::option::weighted(0.3, header_value()),
    )
        .prop_map(|((name, values), pick, random)| {
            let value = random.unwrap_or_else(|| pick.get(values).as_bytes().to_vec());
            (HeaderName::from_static(name), HeaderValue::from_bytes(&value).expect("a generated header value is valid"))
        });
    (proptest::sample::select(plain_requests()), proptest::collection::vec(header, 1..5)).prop_map(
        |(mut probe, headers)| {
            if headers.iter().any(|(name, _)| name == "content-type") {
                probe.headers.retain(|(name, _)| name != "content-type");
            }
            probe.headers.extend(headers);
            probe
        },
    )
}

// ---------------------------------------------------------------------------------------------
// Generators: JSON Patch
// ---------------------------------------------------------------------------------------------

const POINTERS: [&str; 26] = [
    "",
    "/",
    "/id",
    "/resourceType",
    "/meta",
    "/meta/versionId",
    "/status",
    "/start",
    "/end",
    "/active",
    "/name/0/family",
    "/name/-",
    "/name/0",
    "/identifier/0/value",
    "/extension",
    "/extension/-",
    "/slot/0/reference",
    "/slot/-",
    "/participant/0/actor/reference",
    "/schedule/reference",
    "/text/div",
    "/~01",
    "/a~",
    "/name/01",
    "/name/99999999999999999999",
    "/contained/0",
];

const PATCH_OPS: [&str; 6] = ["add", "remove", "replace", "move", "copy", "test"];
const NOT_PATCH_OPS: [&str; 3] = ["ADD", "", "delete"];

/// Extensions nested `depth` deep: the shape that once stored an unreadable resource through
/// PATCH (issue 12 item 1).
fn nested_extensions(depth: usize) -> Value {
    (0..depth)
        .fold(json!({"url": "urn:x", "valueString": "deep"}), |inner, _| json!({"url": "urn:x", "extension": [inner]}))
}

fn patch_value() -> BoxedStrategy<Value> {
    prop_oneof![
        6 => json_value(),
        2 => proptest::sample::select(templates()),
        1 => prop_oneof![20usize..40, Just(70)].prop_map(|depth| json!([nested_extensions(depth)])),
    ]
    .boxed()
}

/// One operation; mostly with the members its `op` needs, sometimes without.
fn patch_operation() -> BoxedStrategy<Value> {
    let pointer =
        prop_oneof![4 => proptest::sample::select(&POINTERS[..]).prop_map(str::to_owned), 1 => "(/\\PC{0,6}){0,3}"];
    let op =
        prop_oneof![8 => proptest::sample::select(&PATCH_OPS[..]), 1 => proptest::sample::select(&NOT_PATCH_OPS[..])];
    (op, pointer.clone(), patch_value(), pointer, proptest::bool::weighted(0.1))
        .prop_map(|(op, path, value, from, careless)| {
            let mut operation = Map::new();
            operation.insert("op".into(), json!(op));
            operation.insert("path".into(), json!(path));
            if matches!(op, "add" | "replace" | "test") != careless {
                operation.insert("value".into(), value);
            }
            if matches!(op, "move" | "copy") != careless {
                operation.insert("from".into(), json!(from));
            }
            Value::Object(operation)
        })
        .boxed()
}

/// JSON Patch documents (and things that are not) against seeded and unknown resources.
fn patches() -> impl Strategy<Value = Probe> {
    let document = prop_oneof![
        8 => proptest::collection::vec(patch_operation(), 0..5).prop_map(Value::Array),
        1 => json_value(),
    ];
    (
        proptest::sample::select(&ResourceType::ALL[..]),
        any::<bool>(),
        document,
        text_change(),
        proptest::option::weighted(0.2, proptest::sample::select(HEADER_VALUES[0].1)),
    )
        .prop_map(|(resource_type, seeded, document, change, if_match)| {
            let id = if seeded { seeded_id(resource_type) } else { "unknown" };
            let probe = Probe::new(Method::PATCH, format!("/fhir/{resource_type}/{id}"))
                .header("content-type", "application/json-patch+json")
                .with_body(change_text(&document, &change));
            match if_match {
                Some(tag) => probe.header("if-match", tag),
                None => probe,
            }
        })
}

// ---------------------------------------------------------------------------------------------
// Generators: booking flows with cancellation policies
// ---------------------------------------------------------------------------------------------

const CANCELLATION_POLICY: &str =
    "https://fhir.hl7.at/tc/wg/scheduling/r5/StructureDefinition/at-scheduling-ext-cancellationPolicy";

/// `cancelUntil` amounts, among them the out-of-range ones that once made cancelling panic.
const CANCEL_UNTIL_AMOUNTS: [&str; 11] =
    ["24", "0", "0.5", "48", "1000", "\"24\"", "99999999999999999", "1e300", "1e18", "1e400", "-1"];
const CANCEL_UNTIL_UNITS: [&str; 9] = ["h", "d", "wk", "min", "s", "mo", "a", "", "H"];

/// A Slot (or its HealthcareService) with a cancellation policy, booked and then ended.
#[derive(Debug, Clone)]
struct Flow {
    /// The `valueDuration` of `cancelUntil`, if any.
    cancel_until: Option<Value>,
    on_service: bool,
    /// How the booking ends: a PATCH or PUT to this status, or DELETE when `None`.
    ending: Option<&'static str>,
    by_patch: bool,
}

fn flows() -> impl Strategy<Value = Flow> {
    let duration =
        (proptest::sample::select(&CANCEL_UNTIL_AMOUNTS[..]), proptest::sample::select(&CANCEL_UNTIL_UNITS[..]))
            .prop_map(
                |(amount, unit)| json!({"value": number(amount), "system": "http://unitsofmeasure.org", "code": unit}),
            );
    (
        proptest::option::weighted(0.9, duration),
        any::<bool>(),
        proptest::option::weighted(
            0.8,
            proptest::sample::select(&["cancelled", "entered-in-error", "noshow", "fulfilled"][..]),
        ),
        any::<bool>(),
    )
        .prop_map(|(cancel_until, on_service, ending, by_patch)| Flow {
            cancel_until,
            on_service,
            ending,
            by_patch,
        })
}

impl World {
    /// Stores the flow's Slot (and HealthcareService), books it with `$book` and ends the
    /// booking, checking the property on every step. Each flow has slot times of its own.
    fn check_flow(&self, flow: Flow, number: usize) -> Result<(), TestCaseError> {
        let step =
            |probe: Probe| self.check(&probe).map_err(|e| TestCaseError::fail(format!("{e}\n  at step: {probe:?}")));
        let policy = flow.cancel_until.map(|duration| {
            json!([{"url": CANCELLATION_POLICY, "extension": [{"url": "cancelUntil", "valueDuration": duration}]}])
        });
        let start: jiff::Timestamp = "2031-01-01T00:00:00Z".parse().unwrap();
        let start = start + jiff::SignedDuration::from_hours(number as i64);
        let end = start + jiff::SignedDuration::from_mins(30);
        let slot_id = format!("flow-{number}");
        let mut slot = json!({"resourceType": "Slot", "id": slot_id, "schedule": {"reference": "Schedule/schedule"},
            "status": "free", "start": start.to_string(), "end": end.to_string()});
        let mut service = templates()[4].clone();
        service["id"] = json!(format!("flow-service-{number}"));
        match (policy, flow.on_service) {
            (Some(policy), true) => service["extension"] = policy,
            (Some(policy), false) => slot["extension"] = policy,
            (None, _) => {}
        }
        step(Probe::json(Method::PUT, format!("/fhir/Slot/{slot_id}"), &slot))?;
        step(Probe::json(Method::PUT, format!("/fhir/HealthcareService/flow-service-{number}"), &service))?;
        let mut proposed = appointment(&[&slot_id]);
        proposed["identifier"][0]["value"] = json!(slot_id);
        proposed["serviceType"][0]["reference"]["reference"] =
            json!(format!("HealthcareService/flow-service-{number}"));
        let booked = step(Probe::json(Method::POST, "/fhir/Appointment/$book", &book_parameters(proposed)))?;
        let parameters = booked.json();
        let appointment = parameters["parameter"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["name"] == "appointment")
            .map(|p| p["resource"].clone())
            .unwrap_or_default();
        let Some(id) = appointment["id"].as_str().filter(|_| booked.status.is_success()) else {
            return Ok(());
        };
        let target = format!("/fhir/Appointment/{id}");
        match (flow.ending, flow.by_patch) {
            (Some(status), true) => step(
                Probe::new(Method::PATCH, target)
                    .header("content-type", "application/json-patch+json")
                    .with_body(json!([{"op": "replace", "path": "/status", "value": status}]).to_string().into_bytes()),
            )?,
            (Some(status), false) => {
                let mut ended = appointment.clone();
                ended["status"] = json!(status);
                step(Probe::json(Method::PUT, target, &ended))?
            }
            (None, _) => step(Probe::new(Method::DELETE, target))?,
        };
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// The suite
// ---------------------------------------------------------------------------------------------

#[test]
fn hostile_requests_never_break_the_server() {
    let world = World::start();
    let flow_numbers = std::sync::atomic::AtomicUsize::new(0);
    let failures: Vec<String> = [
        world.explore("mutated bodies", 300, mutated_bodies()),
        world.explore("random bodies", 150, random_bodies()),
        world.explore("query strings", 400, queries()),
        world.explore("$findHSP queries", 100, find_hsp_queries()),
        world.explore("headers", 200, headers()),
        world.explore("JSON Patch", 300, patches()),
        world.explore_with("booking flows", 60, flows(), |flow| {
            world.check_flow(flow, flow_numbers.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
        }),
    ]
    .into_iter()
    .flatten()
    .collect();
    drop(world);
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
