//! Helpers shared by the scheduling integration tests (`scheduling_*.rs`, issue 4): Parameters
//! for `$hold` / `$book`, a small world of Patient, HealthcareService, Schedule and Slots, and
//! whole-database views of Slots and Appointments for invariant checks.
//!
//! Included next to `support` as `mod scheduling_support;`; everything talks HTTP only.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};

use reqwest::Method;
use serde_json::{Value, json};

use super::support::*;

pub mod storm;

/// Extension (valueBoolean) on a Schedule or HealthcareService that makes bookings `pending`.
pub const MANUAL_CONFIRMATION: &str = "https://termin.at/fhir/StructureDefinition/manual-confirmation";
/// Header carrying hold tokens (comma-separated for several).
pub const HOLD_TOKEN_HEADER: &str = "X-Hold-Token";
/// Appointment statuses in which an Appointment occupies its slots (README / domain model).
pub const ACTIVE: [&str; 6] = ["pending", "booked", "arrived", "checked-in", "fulfilled", "noshow"];
pub const SVNR_SYSTEM: &str = "urn:oid:1.2.40.0.10.1.4.3.1";
pub const POSTPONEMENT_REASON: &str =
    "https://fhir.hl7.at/tc/wg/scheduling/r5/StructureDefinition/appointment-postponementReason";

pub fn is_active(appointment: &Value) -> bool {
    appointment["status"].as_str().is_some_and(|s| ACTIVE.contains(&s))
}

// ---------------------------------------------------------------------------------------------
// Parameters
// ---------------------------------------------------------------------------------------------

/// The first `Parameters.parameter` called `name`.
pub fn param<'a>(params: &'a Value, name: &str) -> Option<&'a Value> {
    params["parameter"].as_array()?.iter().find(|p| p["name"] == name)
}

/// `Parameters.parameter[name].resource`, panicking with the body if absent.
#[track_caller]
pub fn param_resource(params: &Value, name: &str) -> Value {
    param(params, name)
        .and_then(|p| p.get("resource"))
        .cloned()
        .unwrap_or_else(|| panic!("Parameters without resource parameter {name:?}: {params}"))
}

/// The `hold-token` output of a `$hold` response.
#[track_caller]
pub fn token_of(params: &Value) -> String {
    param(params, "hold-token")
        .and_then(|p| p["valueString"].as_str())
        .unwrap_or_else(|| panic!("no hold-token in {params}"))
        .to_string()
}

/// The `held-until` output of a `$hold` response.
#[track_caller]
pub fn held_until_of(params: &Value) -> String {
    param(params, "held-until")
        .and_then(|p| p["valueDateTime"].as_str())
        .unwrap_or_else(|| panic!("no held-until valueDateTime in {params}"))
        .to_string()
}

/// Asserts that `outcome` is an OperationOutcome with an issue coded `code`.
#[track_caller]
pub fn assert_issue_code(outcome: &Value, code: &str) {
    assert_eq!(outcome["resourceType"], "OperationOutcome", "not an OperationOutcome: {outcome}");
    assert!(
        outcome["issue"].as_array().into_iter().flatten().any(|i| i["code"] == code),
        "no issue coded {code:?} in {outcome}"
    );
}

/// Parameters for `$hold` naming the slot by reference.
pub fn hold_request(slot_id: &str, status: &str) -> Value {
    json!({
        "resourceType": "Parameters",
        "parameter": [
            {"name": "slot-reference", "valueReference": {"reference": format!("Slot/{slot_id}")}},
            {"name": "slot-status", "valueCode": status}
        ]
    })
}

/// Adds a `hold-token` parameter (valueString).
pub fn with_token(mut params: Value, token: &str) -> Value {
    params["parameter"]
        .as_array_mut()
        .expect("Parameters.parameter")
        .push(json!({"name": "hold-token", "valueString": token}));
    params
}

/// A hold token no hold has, presented to act as another client. While authorization is off,
/// a token-less request owns the holds a token-less request from its network address placed
/// (IG clients know nothing of tokens), and every test request comes from one address; so a
/// test showing that a hold is protected presents this token rather than none.
pub const OTHER_CLIENT: &str = "someone-else";

/// `POST Slot/$hold` with slot-status busy-tentative as another client ([`OTHER_CLIENT`]).
pub async fn hold_as_other(s: &TestServer, slot_id: &str) -> Resp {
    post_with_tokens(s, "Slot/$hold", &hold_request(slot_id, "busy-tentative"), &[OTHER_CLIENT]).await
}

/// POST with the hold tokens in the `X-Hold-Token` header (comma-separated).
pub async fn post_with_tokens(s: &TestServer, path: &str, body: &Value, tokens: &[&str]) -> Resp {
    let mut rb = json_body(s.request(Method::POST, path), body);
    if !tokens.is_empty() {
        rb = rb.header(HOLD_TOKEN_HEADER, tokens.join(","));
    }
    s.send(rb).await
}

/// PUT with the hold tokens in the `X-Hold-Token` header (comma-separated).
pub async fn put_with_tokens(s: &TestServer, path: &str, body: &Value, tokens: &[&str]) -> Resp {
    let mut rb = json_body(s.request(Method::PUT, path), body);
    if !tokens.is_empty() {
        rb = rb.header(HOLD_TOKEN_HEADER, tokens.join(","));
    }
    s.send(rb).await
}

/// `POST Slot/$hold` with slot-status busy-tentative and no token.
pub async fn hold(s: &TestServer, slot_id: &str) -> Resp {
    s.post("Slot/$hold", &hold_request(slot_id, "busy-tentative")).await
}

/// Holds the slot (asserting 200 and a busy-tentative slot) and returns the hold token.
pub async fn hold_ok(s: &TestServer, slot_id: &str) -> String {
    let r = hold(s, slot_id).await.expect_status(200);
    let body = r.json();
    assert_eq!(param_resource(&body, "slot")["status"], "busy-tentative", "{body}");
    token_of(&body)
}

/// `POST Slot/$hold` with slot-status free and the token (if any) as a parameter.
pub async fn release(s: &TestServer, slot_id: &str, token: Option<&str>) -> Resp {
    let mut req = hold_request(slot_id, "free");
    if let Some(t) = token {
        req = with_token(req, t);
    }
    s.post("Slot/$hold", &req).await
}

/// Parameters for `$book`, with the tokens as `hold-token` parameters.
pub fn book_request(appointment: &Value, tokens: &[&str]) -> Value {
    let mut parameter = vec![json!({"name": "appointment-resource", "resource": appointment})];
    for t in tokens {
        parameter.push(json!({"name": "hold-token", "valueString": t}));
    }
    json!({"resourceType": "Parameters", "parameter": parameter})
}

/// `POST Appointment/$book` with the tokens as parameters.
pub async fn book(s: &TestServer, appointment: &Value, tokens: &[&str]) -> Resp {
    s.post("Appointment/$book", &book_request(appointment, tokens)).await
}

/// Books (asserting 201) and returns the stored Appointment.
pub async fn book_ok(s: &TestServer, appointment: &Value, tokens: &[&str]) -> Value {
    let r = book(s, appointment, tokens).await.expect_status(201);
    let appt = param_resource(&r.json(), "appointment");
    assert_eq!(appt["status"], "booked", "{appt}");
    appt
}

/// The status of a Slot as a read shows it.
pub async fn slot_status(s: &TestServer, id: &str) -> String {
    s.read("Slot", id).await["status"].as_str().unwrap_or_default().to_string()
}

/// PUTs a resource under its own id (asserting 200 or 201); returns the stored resource.
/// Stores the IG package's examples a booking flow needs (no Appointment), by PUT with their own
/// ids. The example Slots are variants of one past hour (2025-09-15T08:00Z); only slots that have
/// not started can be booked, and bookable Slots of one Schedule may not overlap, so each moves
/// to an hour of its own from 2030-09-16T08:00Z on, in the order of the package's files.
pub async fn load_ig_examples_with_future_slots(s: &TestServer) {
    let wanted = ["Organization", "Patient", "Practitioner", "PractitionerRole", "HealthcareService", "Schedule", "Slot"];
    let mut examples: Vec<Value> = package_resources()
        .into_iter()
        .map(|(_, r)| r)
        .filter(|r| r["resourceType"].as_str().is_some_and(|t| wanted.contains(&t)))
        .collect();
    examples.sort_by_key(|r| wanted.iter().position(|t| r["resourceType"] == *t));
    for (hour, r) in (8..).zip(examples.iter_mut().filter(|r| r["resourceType"] == "Slot")) {
        r["start"] = json!(format!("2030-09-16T{hour:02}:00:00Z"));
        r["end"] = json!(format!("2030-09-16T{:02}:00:00Z", hour + 1));
    }
    for r in &examples {
        put_resource(s, r).await;
    }
}

pub async fn put_resource(s: &TestServer, resource: &Value) -> Value {
    let ty = resource["resourceType"].as_str().expect("resourceType");
    let id = resource["id"].as_str().expect("id");
    let r = s.put(&format!("{ty}/{id}"), resource).await;
    assert!(
        r.code() == 200 || r.code() == 201,
        "{}: expected 200/201; body: {}",
        r.what(),
        r.text()
    );
    r.json()
}

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

/// Start and end of the `i`-th half-hour slot, from 2030-01-07T00:00Z on, 48 a day.
pub fn slot_times(i: usize) -> (String, String) {
    let at = |m: usize| {
        let day = 7 + m / (24 * 60);
        let minute = m % (24 * 60);
        format!("2030-01-{day:02}T{:02}:{:02}:00Z", minute / 60, minute % 60)
    };
    (at(i * 30), at(i * 30 + 30))
}

pub fn slot_resource(id: &str, schedule: &str, i: usize, status: &str) -> Value {
    let (start, end) = slot_times(i);
    json!({
        "resourceType": "Slot",
        "id": id,
        "identifier": [{"system": "urn:termin:test:slot", "value": id}],
        "schedule": {"reference": format!("Schedule/{schedule}")},
        "status": status,
        "start": start,
        "end": end
    })
}

pub fn schedule_resource(id: &str, active: bool, manual_confirmation: bool) -> Value {
    let mut s = json!({
        "resourceType": "Schedule",
        "id": id,
        "active": active,
        "actor": [{"reference": "Practitioner/prac-melanie"}]
    });
    if manual_confirmation {
        s["extension"] = json!([{"url": MANUAL_CONFIRMATION, "valueBoolean": true}]);
    }
    s
}

pub fn service_resource(id: &str, active: bool, manual_confirmation: bool) -> Value {
    let mut s = json!({"resourceType": "HealthcareService", "id": id, "active": active, "name": "Physiotherapie"});
    if manual_confirmation {
        s["extension"] = json!([{"url": MANUAL_CONFIRMATION, "valueBoolean": true}]);
    }
    s
}

/// What [`setup`] created.
pub struct World {
    /// Patient ids: `pat-anna` (SVNR 1234010180) and `pat-bert`.
    pub anna: String,
    pub bert: String,
    /// Active HealthcareService without manual confirmation.
    pub service: String,
    /// Active Schedule without manual confirmation.
    pub schedule: String,
    /// Free slots `slot-0` .. on `schedule`, consecutive half hours.
    pub slots: Vec<String>,
}

/// Patients, a Practitioner, a HealthcareService, a Schedule and `n` free Slots (PUT by id).
pub async fn setup(s: &TestServer, n: usize) -> World {
    let mut anna = patient(SVNR_SYSTEM, "1234010180", "Huber");
    anna["id"] = json!("pat-anna");
    put_resource(s, &anna).await;
    let mut bert = patient(SVNR_SYSTEM, "2345020290", "Berger");
    bert["id"] = json!("pat-bert");
    put_resource(s, &bert).await;
    put_resource(
        s,
        &json!({"resourceType": "Practitioner", "id": "prac-melanie", "name": [{"family": "Musterärztin"}]}),
    )
    .await;
    put_resource(s, &service_resource("hcs-physio", true, false)).await;
    put_resource(s, &schedule_resource("sch-main", true, false)).await;
    let mut slots = Vec::new();
    for i in 0..n {
        let id = format!("slot-{i}");
        put_resource(s, &slot_resource(&id, "sch-main", i, "free")).await;
        slots.push(id);
    }
    World {
        anna: "pat-anna".into(),
        bert: "pat-bert".into(),
        service: "hcs-physio".into(),
        schedule: "sch-main".into(),
        slots,
    }
}

/// A `proposed` Appointment for `patient` on `slots`, with the service by reference and a
/// practitioner participant; start/end are left for the server to fill in from the slots.
pub fn appointment(patient: &str, slots: &[&str]) -> Value {
    json!({
        "resourceType": "Appointment",
        "status": "proposed",
        "serviceType": [{
            "concept": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/service-type", "code": "65", "display": "Physiotherapy"}]},
            "reference": {"reference": "HealthcareService/hcs-physio"}
        }],
        "subject": {"reference": format!("Patient/{patient}")},
        "participant": [
            {"actor": {"reference": format!("Patient/{patient}")}, "required": true, "status": "accepted"},
            {"actor": {"reference": "Practitioner/prac-melanie"}, "required": true, "status": "accepted"}
        ],
        "description": "Physiotherapie",
        "slot": slots.iter().map(|s| json!({"reference": format!("Slot/{s}")})).collect::<Vec<_>>()
    })
}

// ---------------------------------------------------------------------------------------------
// Whole-database views
// ---------------------------------------------------------------------------------------------

/// Every resource of a type by id, through paged search (`_count=500`, following `next`).
pub async fn all_of_type(s: &TestServer, ty: &str) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for entry in s.all_entries(&format!("{ty}?_count=500")).await {
        let r = entry["resource"].clone();
        assert_eq!(r["resourceType"], ty, "search {ty} returned {r}");
        let id = id_of(&r);
        assert!(out.insert(id.clone(), r).is_none(), "paging over {ty} returned {id} twice");
    }
    out
}

/// Slot ids an Appointment references (`Slot/<id>` or an absolute URL ending in it).
pub fn slot_ids(appointment: &Value) -> Vec<String> {
    appointment["slot"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["reference"].as_str())
        .filter_map(|r| r.rsplit_once("Slot/").map(|(_, id)| id.to_string()))
        .collect()
}

/// Checks the scheduling invariant over the whole database and returns the violations:
/// * every slot of an active Appointment exists and is `busy`;
/// * no slot is referenced by two active Appointments;
/// * a `busy` slot is referenced by exactly one active Appointment;
/// * a `busy-tentative` slot has a live hold (its id is in `live_holds`) and no active booking;
/// * a `free` slot has neither an active Appointment nor a live hold;
/// * a staff-set `busy-unavailable` / `entered-in-error` slot has neither either.
///
/// `live_holds` is what the caller knows to be held (see each test for why it knows).
pub fn invariant_violations(
    slots: &BTreeMap<String, Value>,
    appointments: &BTreeMap<String, Value>,
    live_holds: &BTreeSet<String>,
) -> Vec<String> {
    let mut problems = Vec::new();
    let mut occupants: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (aid, a) in appointments {
        if !is_active(a) {
            continue;
        }
        for sid in slot_ids(a) {
            occupants.entry(sid).or_default().push(aid.clone());
        }
    }
    for (sid, by) in &occupants {
        if by.len() > 1 {
            problems.push(format!("Slot/{sid} is referenced by {} active Appointments: {by:?}", by.len()));
        }
        match slots.get(sid) {
            None => problems.push(format!("Slot/{sid} of active Appointment(s) {by:?} is missing")),
            Some(slot) if slot["status"] != "busy" => problems.push(format!(
                "Slot/{sid} is {} but active Appointment(s) {by:?} reference it",
                slot["status"]
            )),
            Some(_) => {}
        }
    }
    for (sid, slot) in slots {
        let n = occupants.get(sid).map_or(0, Vec::len);
        let held = live_holds.contains(sid);
        match slot["status"].as_str().unwrap_or_default() {
            "busy" if n != 1 => problems.push(format!("Slot/{sid} is busy with {n} active Appointments")),
            "busy-tentative" if !held || n != 0 => problems.push(format!(
                "Slot/{sid} is busy-tentative (live hold known: {held}, active Appointments: {n})"
            )),
            "free" if n != 0 || held => problems.push(format!(
                "Slot/{sid} is free (live hold known: {held}, active Appointments: {n})"
            )),
            // Staff states: never booked nor held.
            "busy-unavailable" | "entered-in-error" if n != 0 || held => problems.push(format!(
                "Slot/{sid} is {} (live hold known: {held}, active Appointments: {n})",
                slot["status"]
            )),
            "busy" | "busy-tentative" | "free" | "busy-unavailable" | "entered-in-error" => {}
            other => problems.push(format!("Slot/{sid} has unexpected status {other:?}")),
        }
    }
    for sid in live_holds {
        if !slots.contains_key(sid) {
            problems.push(format!("held Slot/{sid} is missing"));
        }
    }
    problems
}

/// Fetches all Slots and Appointments and asserts [`invariant_violations`] finds nothing.
pub async fn assert_invariant(s: &TestServer, live_holds: &BTreeSet<String>) -> (BTreeMap<String, Value>, BTreeMap<String, Value>) {
    let slots = all_of_type(s, "Slot").await;
    let appointments = all_of_type(s, "Appointment").await;
    let problems = invariant_violations(&slots, &appointments, live_holds);
    assert!(
        problems.is_empty(),
        "scheduling invariant violated ({} problems):\n{}",
        problems.len(),
        problems.join("\n")
    );
    (slots, appointments)
}

/// A small deterministic generator (64-bit LCG, Knuth's MMIX constants) for reproducible runs.
#[derive(Clone, Debug)]
pub struct Lcg(u64);

impl Lcg {
    pub fn new(seed: u64) -> Self {
        Lcg(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5DEE_CE66_D1CE_4E5B)
    }

    pub fn next_u32(&mut self) -> u32 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) as u32
    }

    /// Uniform-ish in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u32() as usize) % n
    }

    pub fn chance(&mut self, percent: u32) -> bool {
        self.next_u32() % 100 < percent
    }
}
