//! Batch and transaction Bundles (`POST [base]`, issue 17): urn:uuid graphs, all-or-nothing
//! rollback, the scheduling rules inside a transaction (also with 16 clients racing the same
//! transaction), conditional entries, batches with mixed outcomes, XML and the entry limit.

mod scheduling_support;
mod support;

use reqwest::Method;
use scheduling_support::storm::join_all;
use scheduling_support::*;
use serde_json::{Value, json};
use std::sync::Arc;
use support::*;
use tokio::sync::Barrier;
use tokio::task::JoinSet;

const PATIENT_URN: &str = "urn:uuid:5f1c3a0e-2b7d-4c59-9d3e-7a1b2c3d4e5f";
const APPOINTMENT_URN: &str = "urn:uuid:0a9b8c7d-6e5f-4a3b-8c2d-1e0f9a8b7c6d";
const EXTENSION_URL: &str = "https://termin.at/fhir/StructureDefinition/test-companion";

fn bundle(kind: &str, entries: Vec<Value>) -> Value {
    json!({"resourceType": "Bundle", "type": kind, "entry": entries})
}

fn entry(full_url: Option<&str>, method: &str, url: &str, resource: Option<Value>) -> Value {
    let mut entry = json!({"request": {"method": method, "url": url}});
    if let Some(full_url) = full_url {
        entry["fullUrl"] = json!(full_url);
    }
    if let Some(resource) = resource {
        entry["resource"] = resource;
    }
    entry
}

/// A `booked` Appointment of `patient` (a reference) on `slots`.
fn booked_appointment(patient: &str, slots: &[&str]) -> Value {
    let mut a = appointment("placeholder", slots);
    a["status"] = json!("booked");
    a["subject"] = json!({"reference": patient});
    a["participant"][0]["actor"] = json!({"reference": patient});
    a
}

async fn post_bundle(s: &TestServer, bundle: &Value) -> Resp {
    s.post("", bundle).await
}

fn statuses(response: &Value) -> Vec<String> {
    entries(response).iter().map(|e| e["response"]["status"].as_str().unwrap_or_default().to_owned()).collect()
}

async fn count(s: &TestServer, query: &str) -> usize {
    s.all_entries(query).await.len()
}

/// Active Appointments per Slot id, over the whole database.
async fn bookings_per_slot(s: &TestServer) -> std::collections::BTreeMap<String, usize> {
    let mut per_slot = std::collections::BTreeMap::new();
    for appointment in all_of_type(s, "Appointment").await.values().filter(|a| is_active(a)) {
        for slot in slot_ids(appointment) {
            *per_slot.entry(slot).or_insert(0) += 1;
        }
    }
    per_slot
}

#[tokio::test]
async fn transaction_resolves_urn_uuid_references_everywhere_and_books() {
    let s = TestServer::start().await;
    let w = setup(&s, 2).await;
    let mut appointment = booked_appointment(PATIENT_URN, &[&w.slots[0]]);
    // References inside extensions and uri elements are resolved too.
    appointment["extension"] = json!([{"url": EXTENSION_URL, "valueReference": {"reference": PATIENT_URN}}]);
    appointment["supportingInformation"] = json!([{"reference": PATIENT_URN, "display": "the patient"}]);
    let transaction = bundle(
        "transaction",
        vec![
            entry(Some(APPOINTMENT_URN), "POST", "Appointment", Some(appointment)),
            entry(Some(PATIENT_URN), "POST", "Patient", Some(patient(ID_SYSTEM, "9999010180", "Neu"))),
        ],
    );
    let r = post_bundle(&s, &transaction).await.expect_status(200);
    let response = r.json();
    assert_eq!(response["type"], "transaction-response");
    assert_eq!(statuses(&response), ["201 Created", "201 Created"]);
    let answers = entries(&response);
    let patient_id = id_of(&answers[1]["resource"]);
    let appointment_id = id_of(&answers[0]["resource"]);
    assert_eq!(
        answers[1]["response"]["location"],
        format!("Patient/{patient_id}/_history/1"),
        "{response}"
    );
    assert_eq!(answers[0]["response"]["etag"], "W/\"1\"");
    assert!(is_instant_with_offset(answers[0]["response"]["lastModified"].as_str().unwrap_or_default()), "{response}");
    let stored = s.read("Appointment", &appointment_id).await;
    let reference = format!("Patient/{patient_id}");
    assert_eq!(stored["subject"]["reference"], reference);
    assert_eq!(stored["participant"][0]["actor"]["reference"], reference);
    assert_eq!(stored["extension"][0]["valueReference"]["reference"], reference);
    assert_eq!(stored["supportingInformation"][0]["reference"], reference);
    assert!(!stored.to_string().contains("urn:uuid"), "{stored}");
    assert_eq!(slot_status(&s, &w.slots[0]).await, "busy");
    assert_eq!(s.read("Patient", &patient_id).await["name"][0]["family"], "Neu");
}

#[tokio::test]
async fn a_failing_entry_rolls_the_whole_transaction_back() {
    let s = TestServer::start().await;
    let w = setup(&s, 1).await;
    let slot_before = s.read("Slot", &w.slots[0]).await;
    let transaction = bundle(
        "transaction",
        vec![
            entry(Some(PATIENT_URN), "POST", "Patient", Some(patient(ID_SYSTEM, "1111111111", "Roll"))),
            entry(None, "POST", "Appointment", Some(booked_appointment(PATIENT_URN, &[&w.slots[0]]))),
            // Version 7 of the Patient does not exist: 412, and nothing of the above stays.
            entry(None, "PUT", "Patient/pat-anna", Some(json!({"resourceType": "Patient", "id": "pat-anna"}))),
        ],
    );
    let mut transaction = transaction;
    transaction["entry"][2]["request"]["ifMatch"] = json!("W/\"7\"");
    let outcome = post_bundle(&s, &transaction).await.outcome(412);
    assert!(diagnostics(&outcome).contains("Bundle.entry[2]"), "{outcome}");
    assert!(expressions(&outcome).contains(&"Bundle.entry[2]".to_owned()), "{outcome}");
    assert_eq!(count(&s, &format!("Patient?identifier={ID_SYSTEM}|1111111111")).await, 0);
    assert!(all_of_type(&s, "Appointment").await.is_empty());
    assert_eq!(s.read("Slot", &w.slots[0]).await, slot_before);
    assert_eq!(s.history_len("Patient", "pat-anna").await, 1);
}

#[tokio::test]
async fn a_transaction_books_two_slots_and_a_conflicting_one_stores_nothing() {
    let s = TestServer::start().await;
    let w = setup(&s, 3).await;
    let anna = format!("Patient/{}", w.anna);
    let bert = format!("Patient/{}", w.bert);
    let both = bundle(
        "transaction",
        vec![
            entry(None, "POST", "Appointment", Some(booked_appointment(&anna, &[&w.slots[0]]))),
            entry(None, "POST", "Appointment", Some(booked_appointment(&bert, &[&w.slots[1]]))),
        ],
    );
    let response = post_bundle(&s, &both).await.expect_status(200).json();
    assert_eq!(statuses(&response), ["201 Created", "201 Created"]);
    assert_eq!(slot_status(&s, &w.slots[0]).await, "busy");
    assert_eq!(slot_status(&s, &w.slots[1]).await, "busy");

    // A new patient, a free slot and a taken one: the conflict undoes the rest.
    let conflicting = bundle(
        "transaction",
        vec![
            entry(Some(PATIENT_URN), "POST", "Patient", Some(patient(ID_SYSTEM, "2222222222", "Spät"))),
            entry(None, "POST", "Appointment", Some(booked_appointment(PATIENT_URN, &[&w.slots[2]]))),
            entry(Some(APPOINTMENT_URN), "POST", "Appointment", Some(booked_appointment(PATIENT_URN, &[&w.slots[0]]))),
        ],
    );
    let outcome = post_bundle(&s, &conflicting).await.outcome(409);
    let text = diagnostics(&outcome);
    assert!(text.contains("Bundle.entry[2]") && text.contains(APPOINTMENT_URN), "{outcome}");
    assert_eq!(slot_status(&s, &w.slots[2]).await, "free");
    assert_eq!(count(&s, &format!("Patient?identifier={ID_SYSTEM}|2222222222")).await, 0);
    let per_slot = bookings_per_slot(&s).await;
    assert_eq!(per_slot.len(), 2, "{per_slot:?}");
    assert!(per_slot.values().all(|n| *n == 1), "{per_slot:?}");
}

#[tokio::test]
async fn conditional_entries_create_update_and_delete_by_criteria() {
    let s = TestServer::start().await;
    let w = setup(&s, 1).await;
    let anna_svnr = "1234010180";
    let mut transaction = bundle(
        "transaction",
        vec![
            // Anna exists: the conditional create finds her, and references to it point to her.
            entry(Some(PATIENT_URN), "POST", "Patient", Some(patient(SVNR_SYSTEM, anna_svnr, "Doppelt"))),
            entry(None, "POST", "Appointment", Some(booked_appointment(PATIENT_URN, &[&w.slots[0]]))),
            // Conditional update: nothing matches, so it creates.
            entry(
                None,
                "PUT",
                &format!("Patient?identifier={ID_SYSTEM}|3333333333"),
                Some(patient(ID_SYSTEM, "3333333333", "Bedingt")),
            ),
            // Conditional delete of Bert.
            entry(None, "DELETE", "Patient?identifier=2345020290", None),
            // Create only if absent: Practitioner prac-new does not exist.
            entry(None, "PUT", "Practitioner/prac-new", Some(json!({"resourceType": "Practitioner", "id": "prac-new"}))),
        ],
    );
    transaction["entry"][0]["request"]["ifNoneExist"] = json!(format!("identifier={SVNR_SYSTEM}|{anna_svnr}"));
    transaction["entry"][4]["request"]["ifNoneMatch"] = json!("*");
    let response = post_bundle(&s, &transaction).await.expect_status(200).json();
    assert_eq!(statuses(&response), ["200 OK", "201 Created", "201 Created", "204 No Content", "201 Created"]);
    let answers = entries(&response);
    assert_eq!(id_of(&answers[0]["resource"]), w.anna);
    assert_eq!(answers[0]["resource"]["name"][0]["family"], "Huber", "the existing Patient is left as it is");
    assert_eq!(answers[1]["resource"]["subject"]["reference"], format!("Patient/{}", w.anna));
    assert_eq!(count(&s, &format!("Patient?identifier={ID_SYSTEM}|3333333333")).await, 1);
    s.get(&format!("Patient/{}", w.bert)).await.outcome(410);

    // The same ifNoneMatch again: 412, and the other entry is not stored.
    let mut again = bundle(
        "transaction",
        vec![
            entry(None, "POST", "Patient", Some(patient(ID_SYSTEM, "4444444444", "Nie"))),
            entry(None, "PUT", "Practitioner/prac-new", Some(json!({"resourceType": "Practitioner", "id": "prac-new", "active": true}))),
        ],
    );
    again["entry"][1]["request"]["ifNoneMatch"] = json!("*");
    post_bundle(&s, &again).await.outcome(412);
    assert_eq!(count(&s, &format!("Patient?identifier={ID_SYSTEM}|4444444444")).await, 0);

    // ifMatch with the current version updates.
    let mut update = bundle(
        "transaction",
        vec![entry(None, "PUT", "Practitioner/prac-new", Some(json!({"resourceType": "Practitioner", "id": "prac-new", "active": true})))],
    );
    update["entry"][0]["request"]["ifMatch"] = json!("W/\"1\"");
    let response = post_bundle(&s, &update).await.expect_status(200).json();
    assert_eq!(statuses(&response), ["200 OK"]);
    assert_eq!(s.read("Practitioner", "prac-new").await["active"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_clients_sending_the_same_booking_transaction_book_each_slot_once() {
    const CLIENTS: usize = 16;
    let s = Arc::new(TestServer::start().await);
    let w = setup(&s, 2).await;
    let transaction = bundle(
        "transaction",
        vec![
            entry(Some(PATIENT_URN), "POST", "Patient", Some(patient(ID_SYSTEM, "5555555555", "Eilig"))),
            entry(None, "POST", "Appointment", Some(booked_appointment(PATIENT_URN, &[&w.slots[0]]))),
            entry(None, "POST", "Appointment", Some(booked_appointment(PATIENT_URN, &[&w.slots[1]]))),
        ],
    );
    let barrier = Arc::new(Barrier::new(CLIENTS));
    let mut set = JoinSet::new();
    for _ in 0..CLIENTS {
        let (s, barrier, transaction) = (s.clone(), barrier.clone(), transaction.clone());
        set.spawn(async move {
            barrier.wait().await;
            post_bundle(&s, &transaction).await
        });
    }
    let mut codes: Vec<u16> = join_all(set).await.iter().map(Resp::code).collect();
    codes.sort_unstable();
    let mut expected = vec![200];
    expected.extend([409; CLIENTS - 1]);
    assert_eq!(codes, expected);
    let per_slot = bookings_per_slot(&s).await;
    assert_eq!(per_slot, [(w.slots[0].clone(), 1), (w.slots[1].clone(), 1)].into_iter().collect());
    assert_eq!(count(&s, &format!("Patient?identifier={ID_SYSTEM}|5555555555")).await, 1, "only the winner's Patient");
}

#[tokio::test]
async fn a_batch_runs_each_entry_on_its_own() {
    let s = TestServer::start().await;
    let w = setup(&s, 1).await;
    let batch = bundle(
        "batch",
        vec![
            entry(None, "POST", "Patient", Some(patient(ID_SYSTEM, "6666666666", "Einzeln"))),
            entry(None, "GET", "Patient/does-not-exist", None),
            entry(None, "PUT", "Patient/pat-anna", Some(json!({"resourceType": "Patient", "id": "someone-else"}))),
            entry(None, "GET", &format!("Patient?identifier={ID_SYSTEM}|6666666666"), None),
            entry(None, "DELETE", &format!("Slot/{}", w.slots[0]), None),
            entry(None, "GET", "Patient/pat-anna", None),
        ],
    );
    let response = post_bundle(&s, &batch).await.expect_status(200).json();
    assert_eq!(response["type"], "batch-response");
    assert_eq!(
        statuses(&response),
        ["201 Created", "404 Not Found", "400 Bad Request", "200 OK", "204 No Content", "200 OK"]
    );
    let answers = entries(&response);
    assert_outcome(&answers[1]["response"]["outcome"], "entry 1");
    assert_outcome(&answers[2]["response"]["outcome"], "entry 2");
    assert_eq!(answers[3]["resource"]["resourceType"], "Bundle");
    let self_link = link(&answers[3]["resource"], "self").unwrap_or_default();
    assert!(self_link.starts_with(&s.public_base()), "links are built on the request's base: {self_link}");
    assert_eq!(match_ids(&answers[3]["resource"]), [id_of(&answers[0]["resource"])]);
    assert_eq!(answers[5]["response"]["etag"], "W/\"1\"");
    assert_eq!(answers[5]["fullUrl"], format!("{}/Patient/pat-anna", s.public_base()));
    s.get(&format!("Slot/{}", w.slots[0])).await.outcome(410);
}

#[tokio::test]
async fn transactions_are_read_and_answered_in_xml() {
    let s = TestServer::start().await;
    let transaction = bundle(
        "transaction",
        vec![
            entry(Some(PATIENT_URN), "POST", "Patient", Some(patient(ID_SYSTEM, "7777777777", "Xml"))),
            entry(
                None,
                "POST",
                "RelatedPerson",
                Some(json!({"resourceType": "RelatedPerson", "patient": {"reference": PATIENT_URN}, "name": [{"family": "Angehörig"}]})),
            ),
        ],
    );
    let r = s
        .send(
            s.request(Method::POST, "")
                .header("Content-Type", "application/fhir+xml")
                .header("Accept", "application/fhir+xml")
                .body(to_xml(&transaction)),
        )
        .await
        .expect_status(200);
    let response = r.fhir_xml();
    assert_eq!(response["type"], "transaction-response");
    assert_eq!(statuses(&response), ["201 Created", "201 Created"]);
    let answers = entries(&response);
    let patient_id = id_of(&answers[0]["resource"]);
    assert_eq!(answers[1]["resource"]["patient"]["reference"], format!("Patient/{patient_id}"));
}

#[tokio::test]
async fn bundles_beyond_the_entry_limit_and_other_bodies_are_refused() {
    let s = TestServer::start_with(ServerOptions::new().flag("--max-bundle-entries", "2")).await;
    let three = bundle("batch", (0..3).map(|_| entry(None, "GET", "Patient", None)).collect());
    post_bundle(&s, &three).await.outcome(413);
    let history = bundle("history", vec![]);
    post_bundle(&s, &history).await.outcome(400);
    post_bundle(&s, &patient(ID_SYSTEM, "1", "Kein Bundle")).await.outcome(400);
    let nested = bundle("transaction", vec![entry(None, "POST", "", Some(bundle("batch", vec![])))]);
    post_bundle(&s, &nested).await.outcome(400);
    let no_request = json!({"resourceType": "Bundle", "type": "transaction", "entry": [{"resource": simple_patient("X")}]});
    post_bundle(&s, &no_request).await.outcome(400);
    assert!(all_of_type(&s, "Patient").await.is_empty());
}

#[tokio::test]
async fn the_capability_statement_lists_batch_and_transaction() {
    let s = TestServer::start().await;
    let statement = s.get("metadata").await.expect_status(200).json();
    let codes: Vec<&str> =
        statement["rest"][0]["interaction"].as_array().unwrap().iter().filter_map(|i| i["code"].as_str()).collect();
    assert_eq!(codes, ["transaction", "batch"]);
}

#[tokio::test]
async fn patches_conditional_references_reads_and_refused_entries() {
    let s = TestServer::start().await;
    let w = setup(&s, 1).await;
    let operations = json!([{"op": "add", "path": "/active", "value": false}]);
    let patch = json!({
        "resourceType": "Binary",
        "contentType": "application/json-patch+json",
        "data": base64_of(&operations.to_string())
    });
    let transaction = bundle(
        "transaction",
        vec![
            entry(None, "GET", &format!("Patient/{}", w.anna), None),
            entry(None, "PATCH", &format!("Patient/{}", w.anna), Some(patch)),
            // A conditional reference: resolved to Bert.
            entry(
                None,
                "POST",
                "RelatedPerson",
                Some(json!({"resourceType": "RelatedPerson", "patient": {"reference": "Patient?identifier=2345020290"}})),
            ),
        ],
    );
    let response = post_bundle(&s, &transaction).await.expect_status(200).json();
    assert_eq!(statuses(&response), ["200 OK", "200 OK", "201 Created"]);
    let answers = entries(&response);
    assert_eq!(answers[0]["resource"]["active"], false, "reads run after the writes: {response}");
    assert_eq!(answers[1]["response"]["etag"], "W/\"2\"");
    assert_eq!(answers[2]["resource"]["patient"]["reference"], format!("Patient/{}", w.bert));

    let refused = [
        // A urn:uuid no entry has.
        entry(None, "POST", "RelatedPerson", Some(json!({"resourceType": "RelatedPerson", "patient": {"reference": PATIENT_URN}}))),
        // An operation.
        entry(None, "POST", "Slot/$hold", Some(json!({"resourceType": "Parameters"}))),
        // A conditional reference without a match.
        entry(
            None,
            "POST",
            "RelatedPerson",
            Some(json!({"resourceType": "RelatedPerson", "patient": {"reference": "Patient?identifier=0000000000"}})),
        ),
    ];
    for (refused, status) in refused.into_iter().zip([400, 400, 412]) {
        let transaction = bundle(
            "transaction",
            vec![entry(None, "POST", "Patient", Some(patient(ID_SYSTEM, "8888888888", "Nie"))), refused],
        );
        let outcome = post_bundle(&s, &transaction).await.outcome(status);
        assert!(diagnostics(&outcome).contains("Bundle.entry[1]"), "{outcome}");
    }
    // Two entries writing one resource.
    let twice = bundle(
        "transaction",
        vec![
            entry(None, "PUT", "Practitioner/twice", Some(json!({"resourceType": "Practitioner", "id": "twice"}))),
            entry(None, "PUT", "Practitioner/twice", Some(json!({"resourceType": "Practitioner", "id": "twice", "active": true}))),
        ],
    );
    post_bundle(&s, &twice).await.outcome(400);
    assert_eq!(count(&s, &format!("Patient?identifier={ID_SYSTEM}|8888888888")).await, 0);
    s.get("Practitioner/twice").await.outcome(404);
    assert_eq!(s.read("Patient", &w.anna).await["active"], false);
}

fn base64_of(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}
