//! The audit trail (issue 14): one AuditEvent per access to patient data — reads, searches,
//! writes, `$hold`, `$book`, cancellations and refused attempts — with the right agent and
//! patient; AuditEvents are read-only over the API, searchable by staff and system and by a
//! patient for its own data; read events survive a clean shutdown; old ones are swept.

mod support;

use reqwest::Method;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use support::*;

/// A token of `subject` (using the app `audit-test-app`) with `scope`, for `patient` when given.
fn bearer(subject: &str, scope: &str, patient: Option<&str>, fhir_user: Option<&str>) -> String {
    let mut claims = tokens::claims(subject, scope);
    claims["client_id"] = json!("audit-test-app");
    if let Some(patient) = patient {
        claims["patient"] = json!(patient);
    }
    if let Some(fhir_user) = fhir_user {
        claims["fhirUser"] = json!(fhir_user);
    }
    tokens::sign(&claims)
}

async fn start(extra: &[&str]) -> TestServer {
    let mut options = tokens::with_test_jwks(ServerOptions::new());
    for arg in extra {
        options = options.arg(*arg);
    }
    TestServer::start_with(options).await
}

/// Sends a request with `X-Request-Id: request_id`, by which its AuditEvent is found.
async fn call(
    s: &TestServer,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
    request_id: &str,
) -> Resp {
    s.send(s.request_as(method, path, token, body).header("x-request-id", request_id)).await
}

/// The request id an AuditEvent records.
fn request_id_of(event: &Value) -> Option<&str> {
    event["entity"].as_array()?.iter().find_map(|e| e["what"]["identifier"]["value"].as_str())
}

/// Every AuditEvent, as `token` finds them.
async fn audit_events(s: &TestServer, token: &str, query: &str) -> Vec<Value> {
    let r = call(s, Method::GET, &format!("AuditEvent?_count=500&{query}"), Some(token), None, "audit-search")
        .await
        .expect_status(200);
    entries(&r.json()).into_iter().map(|e| e["resource"].clone()).collect()
}

/// The AuditEvents of request `request_id`, once at least one is stored (read events are
/// written in the background), within a deadline.
async fn events_of(s: &TestServer, auditor: &str, request_id: &str) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let found: Vec<Value> =
            audit_events(s, auditor, "").await.into_iter().filter(|e| request_id_of(e) == Some(request_id)).collect();
        if !found.is_empty() || Instant::now() > deadline {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The patient references an AuditEvent names in its entities, sorted.
fn patients_named(event: &Value) -> Vec<String> {
    let mut patients: Vec<String> = event["entity"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["role"]["coding"][0]["code"] == "1")
        .filter_map(|e| e["what"]["reference"].as_str().map(str::to_owned))
        .collect();
    patients.sort();
    patients
}

/// Two patients with an Appointment each, a Schedule and free Slots, written by `admin`.
async fn two_patients(s: &TestServer, admin: &str) {
    let mut resources = vec![
        json!({"resourceType": "Schedule", "id": "sch-1", "active": true, "actor": [{"reference": "Practitioner/prac-1"}]}),
        json!({"resourceType": "Practitioner", "id": "prac-1", "name": [{"family": "Musterärztin"}]}),
    ];
    for (i, id) in ["slot-1", "slot-2", "slot-3"].into_iter().enumerate() {
        resources.push(json!({"resourceType": "Slot", "id": id, "schedule": {"reference": "Schedule/sch-1"}, "status": "free",
            "start": format!("2030-01-07T{:02}:00:00+01:00", 9 + i), "end": format!("2030-01-07T{:02}:30:00+01:00", 9 + i)}));
    }
    for n in [1, 2] {
        resources.push(
            json!({"resourceType": "Patient", "id": format!("pat-{n}"), "name": [{"family": format!("Huber{n}")}]}),
        );
        resources.push(json!({"resourceType": "Appointment", "id": format!("app-{n}"), "status": "booked",
            "subject": {"reference": format!("Patient/pat-{n}")},
            "participant": [{"actor": {"reference": format!("Patient/pat-{n}")}, "status": "accepted"}],
            "slot": [{"reference": format!("Slot/slot-{n}")}]}));
    }
    for resource in &resources {
        let path = format!("{}/{}", resource["resourceType"].as_str().unwrap(), resource["id"].as_str().unwrap());
        let r = call(s, Method::PUT, &path, Some(admin), Some(resource), "setup").await;
        assert!(matches!(r.code(), 200 | 201), "{}", r.what());
    }
}

/// Creates Patient/pat-1 as `admin` in request `request_id`.
async fn create_patient(s: &TestServer, admin: &str, request_id: &str) {
    let patient = json!({"resourceType": "Patient", "id": "pat-1"});
    call(s, Method::PUT, "Patient/pat-1", Some(admin), Some(&patient), request_id).await.expect_status(201);
}

/// The one AuditEvent of `request_id`, checked for its action, code, outcome, agent and patients.
async fn assert_audited(
    s: &TestServer,
    auditor: &str,
    request_id: &str,
    action: &str,
    code: &str,
    subject: &str,
    patients: &[&str],
) -> Value {
    let events = events_of(s, auditor, request_id).await;
    assert_eq!(events.len(), 1, "{request_id}: exactly one AuditEvent, found {events:#?}");
    let event = events.into_iter().next().unwrap();
    assert_eq!(event["action"], action, "{request_id}: {event:#}");
    assert_eq!(event["code"]["coding"][0]["code"], code, "{request_id}: {event:#}");
    assert_eq!(event["agent"][0]["who"]["identifier"]["value"], subject, "{request_id}: {event:#}");
    assert_eq!(event["agent"][0]["requestor"], true, "{request_id}");
    assert_eq!(event["agent"][1]["who"]["identifier"]["value"], "audit-test-app", "{request_id}: the client");
    assert_eq!(event["source"]["observer"]["display"], "Termin");
    let expected: Vec<String> = patients.iter().map(|p| format!("Patient/{p}")).collect();
    assert_eq!(patients_named(&event), expected, "{request_id}: {event:#}");
    event
}

#[tokio::test]
async fn every_access_to_patient_data_is_audited_once_with_its_agent_and_patients() {
    let s = start(&[]).await;
    let admin = bearer("admin", "system/*.cruds", None, None);
    two_patients(&s, &admin).await;
    let me = bearer(
        "user-pat-1",
        "launch/patient patient/Patient.rs patient/Appointment.cruds patient/Slot.rus patient/Schedule.rs",
        Some("pat-1"),
        Some("Patient/pat-1"),
    );
    let ok = |r: Resp, code: u16| r.expect_status(code);

    // Reads, searches and history: one event each, naming every patient whose data came back.
    ok(call(&s, Method::GET, "Patient/pat-1", Some(&me), None, "read-patient").await, 200);
    ok(call(&s, Method::GET, "Appointment/app-1/_history/1", Some(&me), None, "vread-appointment").await, 200);
    ok(call(&s, Method::GET, "Appointment?status=booked", Some(&me), None, "search-mine").await, 200);
    let both =
        call(&s, Method::GET, "Appointment?_include=Appointment:patient", Some(&admin), None, "search-all").await;
    assert_eq!(entries(&both.expect_status(200).json()).len(), 4);
    // The public directory is no patient's data.
    ok(call(&s, Method::GET, "Slot", Some(&me), None, "search-slots").await, 200);

    // $hold, $book and a cancellation by the patient's token; an update by staff.
    let hold = json!({"resourceType": "Parameters", "parameter": [
        {"name": "slot-reference", "valueReference": {"reference": "Slot/slot-3"}}, {"name": "slot-status", "valueCode": "busy-tentative"}]});
    ok(call(&s, Method::POST, "Slot/$hold", Some(&me), Some(&hold), "hold").await, 200);
    let book = json!({"resourceType": "Parameters", "parameter": [{"name": "appointment-resource", "resource": {
        "resourceType": "Appointment", "status": "proposed", "subject": {"reference": "Patient/pat-1"},
        "participant": [{"actor": {"reference": "Patient/pat-1"}, "status": "accepted"}],
        "slot": [{"reference": "Slot/slot-3"}]}}]});
    ok(call(&s, Method::POST, "Appointment/$book", Some(&me), Some(&book), "book").await, 201);
    let mut mine =
        call(&s, Method::GET, "Appointment/app-1", Some(&admin), None, "admin-read").await.expect_status(200).json();
    mine["status"] = json!("cancelled");
    ok(call(&s, Method::PUT, "Appointment/app-1", Some(&me), Some(&mine), "cancel").await, 200);
    ok(call(&s, Method::DELETE, "Appointment/app-2", Some(&admin), None, "delete").await, 204);

    // Refused attempts: no token (401), another patient (403 by the compartment), a scope the
    // token lacks (403).
    assert_eq!(call(&s, Method::GET, "Patient/pat-2", None, None, "no-token").await.code(), 401);
    assert_eq!(call(&s, Method::GET, "Patient/pat-2", Some(&me), None, "other-patient").await.code(), 403);
    assert_eq!(call(&s, Method::DELETE, "Schedule/sch-1", Some(&me), None, "no-scope").await.code(), 403);

    assert_audited(&s, &admin, "read-patient", "R", "read", "user-pat-1", &["pat-1"]).await;
    assert_audited(&s, &admin, "vread-appointment", "R", "vread", "user-pat-1", &["pat-1"]).await;
    assert_audited(&s, &admin, "search-mine", "R", "search-type", "user-pat-1", &["pat-1"]).await;
    assert_audited(&s, &admin, "search-all", "R", "search-type", "admin", &["pat-1", "pat-2"]).await;
    assert_audited(&s, &admin, "hold", "E", "$hold", "user-pat-1", &[]).await;
    let booked = assert_audited(&s, &admin, "book", "E", "$book", "user-pat-1", &["pat-1"]).await;
    assert_eq!(booked["patient"]["reference"], "Patient/pat-1");
    assert_eq!(booked["agent"][0]["who"]["reference"], "Patient/pat-1", "the fhirUser");
    assert_audited(&s, &admin, "cancel", "U", "update", "user-pat-1", &["pat-1"]).await;
    assert_audited(&s, &admin, "delete", "D", "delete", "admin", &["pat-2"]).await;
    assert_audited(&s, &admin, "other-patient", "R", "read", "user-pat-1", &["pat-2"]).await;
    assert_audited(&s, &admin, "no-scope", "D", "delete", "user-pat-1", &[]).await;
    let anonymous = events_of(&s, &admin, "no-token").await;
    assert_eq!(anonymous.len(), 1, "{anonymous:#?}");
    assert_eq!(anonymous[0]["agent"][0]["who"]["display"], "anonymous");
    assert!(anonymous[0]["agent"][0]["networkString"].is_string(), "{:#}", anonymous[0]);
    for denied in ["no-token", "other-patient", "no-scope"] {
        let event = &events_of(&s, &admin, denied).await[0];
        assert_eq!(event["outcome"]["code"]["code"], "4", "{denied}: {event:#}");
    }
    for unaudited in ["search-slots"] {
        let all = audit_events(&s, &admin, "").await;
        assert!(all.iter().all(|e| request_id_of(e) != Some(unaudited)), "{unaudited} is no patient's data");
    }

    // Search by patient, agent, action and date; a patient sees only the accesses to its data.
    let by = |query: &'static str| audit_events(&s, &admin, query);
    assert!(by("patient=pat-2").await.iter().all(|e| patients_named(e).contains(&"Patient/pat-2".to_owned())));
    assert_eq!(by("patient=pat-2&action=D").await.len(), 1);
    assert!(by("agent=Patient/pat-1").await.len() >= 5);
    assert!(by("date=lt2000-01-01").await.is_empty());
    assert!(!by("date=ge2020-01-01&action=R").await.is_empty());
    let reader = bearer("user-pat-2", "patient/AuditEvent.rs", Some("pat-2"), None);
    let theirs = audit_events(&s, &reader, "").await;
    assert!(!theirs.is_empty());
    assert!(theirs.iter().all(|e| patients_named(e).contains(&"Patient/pat-2".to_owned())), "{theirs:#?}");
    let r = call(&s, Method::GET, "AuditEvent?patient=pat-1", Some(&reader), None, "probe").await;
    assert_eq!(r.code(), 403, "{}", r.what());
}

/// Anonymous booking (`--public-booking`): the hold, the booking, the read and cancellation
/// with the access secret, and a wrong secret are recorded with the anonymous agent and the
/// client's address.
#[tokio::test]
async fn anonymous_bookings_are_audited_with_the_client_address() {
    let s = start(&["--public-booking", "true"]).await;
    let admin = bearer("admin", "system/*.cruds", None, None);
    two_patients(&s, &admin).await;
    let hold = json!({"resourceType": "Parameters", "parameter": [
        {"name": "slot-reference", "valueReference": {"reference": "Slot/slot-3"}}, {"name": "slot-status", "valueCode": "busy-tentative"}]});
    let held = call(&s, Method::POST, "Slot/$hold", None, Some(&hold), "anon-hold").await.expect_status(200).json();
    let param = |answer: &Value, name: &str| {
        answer["parameter"].as_array().unwrap().iter().find(|p| p["name"] == name).cloned().unwrap()
    };
    let hold_token = param(&held, "hold-token")["valueString"].clone();
    let book = json!({"resourceType": "Parameters", "parameter": [{"name": "appointment-resource", "resource": {
        "resourceType": "Appointment", "status": "proposed", "subject": {"reference": "Patient/pat-1"},
        "participant": [{"actor": {"reference": "Patient/pat-1"}, "status": "accepted"}],
        "slot": [{"reference": "Slot/slot-3"}]}}, {"name": "hold-token", "valueString": hold_token}]});
    let booked =
        call(&s, Method::POST, "Appointment/$book", None, Some(&book), "anon-book").await.expect_status(201).json();
    let secret = param(&booked, "access-secret")["valueString"].as_str().unwrap().to_owned();
    let path = format!("Appointment/{}", param(&booked, "appointment")["resource"]["id"].as_str().unwrap());
    let with_secret = |method: Method, secret: &str, request_id: &str| {
        s.request(method, &path).header("x-access-secret", secret).header("x-request-id", request_id)
    };
    let mut mine = s.send(with_secret(Method::GET, &secret, "anon-read")).await.expect_status(200).json();
    mine["status"] = json!("cancelled");
    s.send(json_body(with_secret(Method::PUT, &secret, "anon-cancel"), &mine)).await.expect_status(200);
    s.send(with_secret(Method::GET, "wrong", "anon-wrong")).await.expect_status(404);

    for (request_id, action, outcome) in [
        ("anon-hold", "E", "0"),
        ("anon-book", "E", "0"),
        ("anon-read", "R", "0"),
        ("anon-cancel", "U", "0"),
        ("anon-wrong", "R", "4"),
    ] {
        let events = events_of(&s, &admin, request_id).await;
        assert_eq!(events.len(), 1, "{request_id}: {events:#?}");
        let event = &events[0];
        assert_eq!(event["action"], action, "{request_id}: {event:#}");
        assert_eq!(event["outcome"]["code"]["code"], outcome, "{request_id}: {event:#}");
        assert_eq!(event["agent"][0]["who"]["display"], "anonymous", "{request_id}: {event:#}");
        assert_eq!(event["agent"][0]["networkString"], "127.0.0.1", "{request_id}: {event:#}");
    }
    assert_eq!(patients_named(&events_of(&s, &admin, "anon-read").await[0]), ["Patient/pat-1"]);
}

#[tokio::test]
async fn audit_events_cannot_be_changed_through_the_api() {
    let s = start(&[]).await;
    let admin = bearer("admin", "system/*.cruds", None, None);
    create_patient(&s, &admin, "create").await;
    let event = events_of(&s, &admin, "create").await.remove(0);
    let id = event["id"].as_str().unwrap().to_owned();
    let mut changed = event.clone();
    changed["action"] = json!("R");
    let path = format!("AuditEvent/{id}");
    let patch = json!([{"op": "replace", "path": "/action", "value": "R"}]);
    for (method, path, body) in [
        (Method::PUT, path.as_str(), Some(&changed)),
        (Method::DELETE, path.as_str(), None),
        (Method::POST, "AuditEvent", Some(&changed)),
        (Method::PUT, "AuditEvent?action=C", Some(&changed)),
    ] {
        let r = call(&s, method, path, Some(&admin), body, "tamper").await;
        r.outcome(405);
    }
    let r = s
        .send(
            s.request_as(Method::PATCH, &path, Some(&admin), None)
                .header("content-type", "application/json-patch+json")
                .body(patch.to_string()),
        )
        .await;
    r.outcome(405);
    let now = call(&s, Method::GET, &path, Some(&admin), None, "reread").await.expect_status(200).json();
    assert_eq!(now, event);
}

#[tokio::test]
async fn without_authorization_accesses_are_recorded_with_the_client_address_in_valid_audit_events() {
    let s = TestServer::start().await;
    s.put("Patient/pat-1", &json!({"resourceType": "Patient", "id": "pat-1"})).await.expect_status(201);
    call(&s, Method::GET, "Patient/pat-1", None, None, "anonymous-read").await.expect_status(200);
    let deadline = Instant::now() + Duration::from_secs(20);
    let event = loop {
        let found = s.all_entries("AuditEvent?action=R").await;
        if let Some(entry) = found.iter().find(|e| request_id_of(&e["resource"]) == Some("anonymous-read")) {
            break entry["resource"].clone();
        }
        assert!(Instant::now() < deadline, "no AuditEvent for the read");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(event["agent"][0]["who"]["display"], "anonymous");
    assert_eq!(event["agent"][0]["networkString"], "127.0.0.1");
    assert_eq!(event["patient"]["reference"], "Patient/pat-1");

    // The recorded event conforms to R5 AuditEvent.
    let validating = TestServer::start_with(ServerOptions::new().validation()).await;
    let outcome = validating.post("AuditEvent/$validate", &event).await.expect_status(200).json();
    let errors: Vec<&Value> =
        outcome["issue"].as_array().unwrap().iter().filter(|i| i["severity"] == "error").collect();
    assert!(errors.is_empty(), "{errors:#?}");
}

#[tokio::test]
async fn read_events_survive_a_clean_shutdown() {
    let mut s = start(&[]).await;
    let admin = bearer("admin", "system/*.cruds", None, None);
    create_patient(&s, &admin, "create").await;
    let reads: Vec<String> = (0..50).map(|n| format!("read-{n}")).collect();
    for id in &reads {
        call(&s, Method::GET, "Patient/pat-1", Some(&admin), None, id).await.expect_status(200);
    }
    s.terminate();
    s.restart().await;
    let stored = audit_events(&s, &admin, "action=R").await;
    for id in &reads {
        assert_eq!(stored.iter().filter(|e| request_id_of(e) == Some(id)).count(), 1, "{id}");
    }
}
#[tokio::test]
async fn the_retention_sweep_deletes_old_audit_events() {
    let mut s = start(&[]).await;
    let admin = bearer("admin", "system/*.cruds", None, None);
    create_patient(&s, &admin, "old").await;
    assert_eq!(events_of(&s, &admin, "old").await.len(), 1);
    // Kept for 0 days: everything recorded before the start is past its retention.
    let options = s.options().clone().flag("--audit-retention", "0");
    s.restart_with(options).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while audit_events(&s, &admin, "").await.iter().any(|e| request_id_of(e) == Some("old")) {
        assert!(Instant::now() < deadline, "the old AuditEvent was not swept");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let patient = call(&s, Method::GET, "Patient/pat-1", Some(&admin), None, "new").await;
    patient.expect_status(200);
}

#[tokio::test]
async fn each_entry_of_a_bundle_is_authorised_and_audited_as_if_sent_alone() {
    let s = start(&[]).await;
    let admin = bearer("admin", "system/*.cruds", None, None);
    let bundle = |kind: &str, entries: Vec<Value>| json!({"resourceType": "Bundle", "type": kind, "entry": entries});
    let put = |ty: &str, id: &str| json!({"request": {"method": "PUT", "url": format!("{ty}/{id}")}, "resource": {"resourceType": ty, "id": id}});

    // One AuditEvent per write, each naming its own patient.
    let two = bundle("transaction", vec![put("Patient", "pat-a"), put("Patient", "pat-b")]);
    call(&s, Method::POST, "", Some(&admin), Some(&two), "txn-two").await.expect_status(200);
    let events = events_of(&s, &admin, "txn-two").await;
    let mut named: Vec<Vec<String>> = events.iter().map(patients_named).collect();
    named.sort();
    assert_eq!(named, [vec!["Patient/pat-a".to_owned()], vec!["Patient/pat-b".to_owned()]], "{events:#?}");
    assert!(events.iter().all(|e| e["action"] == "C" && e["agent"][0]["who"]["identifier"]["value"] == "admin"));

    // A scope for Patients only: the Practitioner entry refuses the whole transaction.
    let clerk = bearer("clerk", "user/Patient.cruds", None, None);
    let mixed = bundle("transaction", vec![put("Patient", "pat-c"), put("Practitioner", "prac-x")]);
    let outcome = call(&s, Method::POST, "", Some(&clerk), Some(&mixed), "txn-refused").await.outcome(403);
    assert!(diagnostics(&outcome).contains("Bundle.entry[1]"), "{outcome}");
    call(&s, Method::GET, "Patient/pat-c", Some(&admin), None, "check").await.expect_status(404);
    let refused = events_of(&s, &admin, "txn-refused").await;
    assert_eq!(refused.len(), 1, "{refused:#?}");
    assert_eq!(refused[0]["outcome"]["code"]["code"], "4");
    call(&s, Method::POST, "", None, Some(&mixed), "txn-anonymous").await.outcome(401);

    // In a batch, each entry succeeds or is refused on its own.
    let reads = bundle(
        "batch",
        vec![
            json!({"request": {"method": "GET", "url": "Patient/pat-a"}}),
            json!({"request": {"method": "GET", "url": "Appointment"}}),
        ],
    );
    let response =
        call(&s, Method::POST, "", Some(&clerk), Some(&reads), "batch-reads").await.expect_status(200).json();
    let statuses: Vec<String> =
        entries(&response).iter().map(|e| e["response"]["status"].as_str().unwrap_or_default().to_owned()).collect();
    assert_eq!(statuses, ["200 OK", "403 Forbidden"], "{response}");
}

/// A search across types and the system history are audited like the type-level ones: one
/// event naming the patients whose data came back (issue 17).
#[tokio::test]
async fn system_searches_and_histories_are_audited_with_the_patients_returned() {
    let s = start(&[]).await;
    let admin = bearer("admin", "system/*.cruds", None, None);
    two_patients(&s, &admin).await;
    let me = bearer(
        "user-pat-1",
        "launch/patient patient/Patient.rs patient/Appointment.cruds patient/Slot.rus patient/Schedule.rs",
        Some("pat-1"),
        Some("Patient/pat-1"),
    );
    call(&s, Method::GET, "?_type=Patient,Appointment,Slot", Some(&me), None, "system-search-mine")
        .await
        .expect_status(200);
    call(&s, Method::GET, "_history?_type=Appointment", Some(&admin), None, "system-history-all")
        .await
        .expect_status(200);
    assert_audited(&s, &admin, "system-search-mine", "R", "search-system", "user-pat-1", &["pat-1"]).await;
    assert_audited(&s, &admin, "system-history-all", "R", "history-system", "admin", &["pat-1", "pat-2"]).await;
}

/// AuditEvents are kept as compact records of their own (issue 14): searches by patient, date,
/// agent and action and their combinations, paging, sorting by date, includes and reads by id
/// are answered from them; a parameter they cannot answer is refused; and they stay read-only.
#[tokio::test]
async fn audit_events_are_searched_from_their_compact_records() {
    let s = start(&[]).await;
    let admin = bearer("admin", "system/*.cruds", None, None);
    two_patients(&s, &admin).await;
    let doctor = bearer("doc-1", "user/Patient.rs", None, Some("Practitioner/prac-1"));
    for n in 0..3 {
        let request_id = format!("doc-read-{n}");
        call(&s, Method::GET, "Patient/pat-1", Some(&doctor), None, &request_id).await.expect_status(200);
    }
    call(&s, Method::GET, "Patient/pat-2", Some(&doctor), None, "doc-read-pat-2").await.expect_status(200);
    call(&s, Method::GET, "Patient?_count=10", Some(&admin), None, "search-both").await.expect_status(200);
    for request_id in ["doc-read-2", "doc-read-pat-2", "search-both"] {
        assert_eq!(events_of(&s, &admin, request_id).await.len(), 1, "{request_id}");
    }

    let by = |query: &'static str| audit_events(&s, &admin, query);
    let request_ids = |events: &[Value]| {
        let mut ids: Vec<String> = events.iter().filter_map(request_id_of).map(str::to_owned).collect();
        ids.sort();
        ids
    };
    let combined = by("patient=pat-1&agent=Practitioner/prac-1&action=R&date=ge2020-01-01").await;
    assert_eq!(request_ids(&combined), ["doc-read-0", "doc-read-1", "doc-read-2"]);
    assert_eq!(by("agent:identifier=doc-1").await.len(), 4);
    assert_eq!(request_ids(&by("patient=Patient/pat-2&agent=Practitioner/prac-1").await), ["doc-read-pat-2"]);
    // An event naming several patients is found by each of them.
    assert_eq!(request_ids(&by("patient=pat-2&code=search-type").await), ["search-both"]);
    assert_eq!(request_ids(&by("patient=pat-1&code=search-type").await), ["search-both"]);
    assert!(by("date=lt2000-01-01&agent=Practitioner/prac-1").await.is_empty());
    assert_eq!(by("outcome=0&agent=Practitioner/prac-1&action=R,D").await.len(), 4);
    assert!(by("agent=Practitioner/prac-1&action:not=R").await.is_empty());

    // Newest first, one per page, through the next links.
    let mut next = Some("AuditEvent?agent=Practitioner/prac-1&_sort=-date&_count=1".to_owned());
    let mut recorded = Vec::new();
    while let Some(path) = next {
        let page = call(&s, Method::GET, &path, Some(&admin), None, "page").await.expect_status(200).json();
        recorded.extend(entries(&page).iter().map(|e| e["resource"]["recorded"].as_str().unwrap().to_owned()));
        next = link(&page, "next").map(|url| s.local(&url));
        assert!(recorded.len() <= 4, "{recorded:?}");
    }
    assert_eq!(recorded.len(), 4);
    assert!(recorded.windows(2).all(|w| w[0] >= w[1]), "{recorded:?}");

    // The patients an event names, included; the event read by id as the search found it.
    let path = "AuditEvent?patient=pat-2&agent=Practitioner/prac-1&_include=AuditEvent:patient";
    let found = call(&s, Method::GET, path, Some(&admin), None, "include").await.expect_status(200).json();
    let modes: Vec<(String, String)> = entries(&found)
        .iter()
        .map(|e| {
            let resource = &e["resource"];
            (e["search"]["mode"].as_str().unwrap().to_owned(), format!("{}", resource["resourceType"]))
        })
        .collect();
    assert_eq!(modes.len(), 2, "{found:#}");
    assert!(modes.contains(&("include".to_owned(), "\"Patient\"".to_owned())), "{modes:?}");
    let event = entries(&found).into_iter().find(|e| e["search"]["mode"] == "match").unwrap()["resource"].clone();
    let path = format!("AuditEvent/{}", event["id"].as_str().unwrap());
    assert_eq!(call(&s, Method::GET, &path, Some(&admin), None, "by-id").await.expect_status(200).json(), event);
    let version = format!("{path}/_history/1");
    assert_eq!(call(&s, Method::GET, &version, Some(&admin), None, "vread").await.expect_status(200).json(), event);

    // What the compact records cannot answer is refused, not answered wrongly.
    for refused in ["AuditEvent?entity-role=1", "AuditEvent?_sort=action", "Patient?_has:AuditEvent:patient:action=R"] {
        call(&s, Method::GET, refused, Some(&admin), None, "refused").await.outcome(400);
    }

    // Read-only: no update or delete.
    let mut changed = event.clone();
    changed["action"] = json!("D");
    call(&s, Method::PUT, &path, Some(&admin), Some(&changed), "put").await.outcome(405);
    call(&s, Method::DELETE, &path, Some(&admin), None, "delete").await.outcome(405);
    assert_eq!(call(&s, Method::GET, &path, Some(&admin), None, "reread").await.expect_status(200).json(), event);
}
