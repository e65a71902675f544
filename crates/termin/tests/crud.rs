//! create / read / vread / update / delete over HTTP, and persistence across a restart.

mod support;

use serde_json::{Value, json};
use support::*;

/// Asserts the headers a successful create/update/read carries and returns the version.
#[track_caller]
fn assert_version_headers(r: &Resp, version: &str) {
    assert_eq!(r.etag_version(), version, "{}: ETag", r.what());
    let lm = r.require_header("last-modified");
    assert!(is_http_date(&lm), "{}: Last-Modified {lm:?} is not an HTTP date", r.what());
    r.assert_fhir_json();
}

#[track_caller]
fn assert_server_meta(resource: &Value, version: &str) {
    assert_eq!(resource["meta"]["versionId"], version, "meta.versionId in {resource}");
    let lu = resource["meta"]["lastUpdated"].as_str().unwrap_or("");
    assert!(
        is_instant_with_offset(lu),
        "meta.lastUpdated {lu:?} is not an instant with offset in {resource}"
    );
}

#[tokio::test]
async fn create_returns_201_with_location_etag_last_modified_and_meta() {
    let s = TestServer::start().await;
    let sent = patient(ID_SYSTEM, "1001", "Mustermann");
    let r = s.post("Patient", &sent).await.expect_status(201);
    let body = r.json();
    let id = id_of(&body);
    assert!(!id.is_empty());
    assert_eq!(
        r.require_header("location"),
        format!("{}/Patient/{id}/_history/1", s.public_base()),
        "Location header"
    );
    assert_eq!(r.require_header("etag"), "W/\"1\"");
    assert_version_headers(&r, "1");
    assert_eq!(body["resourceType"], "Patient");
    assert_server_meta(&body, "1");
    assert_eq!(
        without_id_and_server_meta(&body),
        sent,
        "created resource differs from what was sent: {:?}",
        first_difference(&without_id_and_server_meta(&body), &sent)
    );
}

#[tokio::test]
async fn create_replaces_client_supplied_id() {
    let s = TestServer::start().await;
    let mut sent = simple_patient("Eigenid");
    sent["id"] = json!("client-chosen-id");
    let body = s.post("Patient", &sent).await.expect_status(201).json();
    let id = id_of(&body);
    assert_ne!(id, "client-chosen-id", "server kept the client's id on POST");
    s.read("Patient", &id).await;
    s.get("Patient/client-chosen-id").await.outcome(404);
}

#[tokio::test]
async fn create_with_mismatched_resource_type_is_400_and_creates_nothing() {
    let s = TestServer::start().await;
    let r = s.post("Patient", &minimal("Practitioner")).await;
    r.outcome(400);
    assert_eq!(s.type_history_len("Patient").await, 0, "Patient history after rejected create");
    assert_eq!(s.type_history_len("Practitioner").await, 0, "Practitioner history after rejected create");
}

#[tokio::test]
async fn create_and_read_every_supported_type() {
    let s = TestServer::start().await;
    for ty in SUPPORTED_TYPES {
        let sent = minimal(ty);
        let r = s.post(ty, &sent).await.expect_status(201);
        let created = r.json();
        assert_eq!(created["resourceType"], ty);
        let id = id_of(&created);
        assert!(
            r.require_header("location").starts_with(&format!("{}/{ty}/{id}/_history/1", s.public_base())),
            "{ty}: Location {:?}",
            r.header("location")
        );
        let read = s.read(ty, &id).await;
        assert_eq!(read, created, "{ty}: read differs from create response");
        assert_eq!(without_id_and_server_meta(&read), sent, "{ty}: content not kept");
    }
}

#[tokio::test]
async fn read_returns_current_version_with_etag_and_last_modified() {
    let s = TestServer::start().await;
    let created = s.create(&patient(ID_SYSTEM, "2001", "Lesbar")).await;
    let id = id_of(&created);
    let r = s.get(&format!("Patient/{id}")).await.expect_status(200);
    assert_version_headers(&r, "1");
    assert_eq!(r.json(), created);
}

#[tokio::test]
async fn read_unknown_id_is_404_outcome() {
    let s = TestServer::start().await;
    s.get("Patient/does-not-exist").await.outcome(404);
    // Same for every supported type.
    for ty in SUPPORTED_TYPES {
        s.get(&format!("{ty}/nope")).await.outcome(404);
    }
}

#[tokio::test]
async fn read_deleted_is_410_outcome() {
    let s = TestServer::start().await;
    let id = id_of(&s.create(&simple_patient("Geloescht")).await);
    s.delete(&format!("Patient/{id}")).await.expect_status(204);
    s.get(&format!("Patient/{id}")).await.outcome(410);
}

#[tokio::test]
async fn vread_returns_each_version() {
    let s = TestServer::start().await;
    let v1 = s.create(&patient(ID_SYSTEM, "3001", "Erst")).await;
    let id = id_of(&v1);
    let mut next = v1.clone();
    next["name"][0]["family"] = json!("Zweit");
    let v2 = s.put(&format!("Patient/{id}"), &next).await.expect_status(200).json();
    next["name"][0]["family"] = json!("Dritt");
    let v3 = s.put(&format!("Patient/{id}"), &next).await.expect_status(200).json();
    assert_eq!(version_id(&v2), "2");
    assert_eq!(version_id(&v3), "3");
    for (vid, expected) in [("1", &v1), ("2", &v2), ("3", &v3)] {
        let r = s.get(&format!("Patient/{id}/_history/{vid}")).await.expect_status(200);
        assert_version_headers(&r, vid);
        assert_eq!(&r.json(), expected, "vread version {vid}");
    }
    assert_eq!(s.read("Patient", &id).await, v3, "read returns the newest version");
}

#[tokio::test]
async fn vread_unknown_version_or_id_is_404() {
    let s = TestServer::start().await;
    let id = id_of(&s.create(&simple_patient("Einmal")).await);
    s.get(&format!("Patient/{id}/_history/2")).await.outcome(404);
    s.get(&format!("Patient/{id}/_history/99")).await.outcome(404);
    s.get("Patient/unknown-id/_history/1").await.outcome(404);
}

#[tokio::test]
async fn vread_of_deleted_version_is_410_and_older_versions_stay_readable() {
    let s = TestServer::start().await;
    let v1 = s.create(&simple_patient("Vergangen")).await;
    let id = id_of(&v1);
    s.delete(&format!("Patient/{id}")).await.expect_status(204);
    s.get(&format!("Patient/{id}/_history/2")).await.outcome(410);
    let r = s.get(&format!("Patient/{id}/_history/1")).await.expect_status(200);
    assert_eq!(r.json(), v1);
}

#[tokio::test]
async fn update_existing_returns_200_with_next_version() {
    let s = TestServer::start().await;
    let v1 = s.create(&patient(ID_SYSTEM, "4001", "Alt")).await;
    let id = id_of(&v1);
    let mut changed = v1.clone();
    changed["name"][0]["family"] = json!("Neu");
    changed["telecom"] = json!([{"system": "phone", "value": "+43 1 234567"}]);
    let r = s.put(&format!("Patient/{id}"), &changed).await.expect_status(200);
    assert_version_headers(&r, "2");
    let v2 = r.json();
    assert_eq!(id_of(&v2), id);
    assert_server_meta(&v2, "2");
    assert_eq!(without_server_meta(&v2), without_server_meta(&changed));
    assert_eq!(s.read("Patient", &id).await, v2);
}

#[tokio::test]
async fn update_without_id_in_body_is_400_and_changes_nothing() {
    let s = TestServer::start().await;
    let v1 = s.create(&simple_patient("OhneId")).await;
    let id = id_of(&v1);
    let mut body = v1.clone();
    body.as_object_mut().unwrap().remove("id");
    body["name"][0]["family"] = json!("Geaendert");
    let oo = s.put(&format!("Patient/{id}"), &body).await.outcome(400);
    assert!(
        expressions(&oo).iter().any(|e| e == "Patient.id"),
        "expected issue.expression Patient.id, got {oo}"
    );
    assert_eq!(s.read("Patient", &id).await, v1, "rejected update changed the resource");
    assert_eq!(s.history_len("Patient", &id).await, 1);
}

#[tokio::test]
async fn update_with_different_id_in_body_is_400_and_changes_nothing() {
    let s = TestServer::start().await;
    let v1 = s.create(&simple_patient("AndereId")).await;
    let id = id_of(&v1);
    let mut body = v1.clone();
    body["id"] = json!("some-other-id");
    body["name"][0]["family"] = json!("Geaendert");
    let oo = s.put(&format!("Patient/{id}"), &body).await.outcome(400);
    assert!(
        expressions(&oo).iter().any(|e| e == "Patient.id"),
        "expected issue.expression Patient.id, got {oo}"
    );
    assert_eq!(s.read("Patient", &id).await, v1);
    assert_eq!(s.history_len("Patient", &id).await, 1);
    s.get("Patient/some-other-id").await.outcome(404);
}

#[tokio::test]
async fn update_of_nonexistent_id_creates_it_with_201() {
    let s = TestServer::start().await;
    let mut body = patient(ID_SYSTEM, "5001", "PerPut");
    body["id"] = json!("client-id-5001");
    let r = s.put("Patient/client-id-5001", &body).await.expect_status(201);
    assert_eq!(
        r.require_header("location"),
        format!("{}/Patient/client-id-5001/_history/1", s.public_base())
    );
    assert_version_headers(&r, "1");
    let created = r.json();
    assert_server_meta(&created, "1");
    assert_eq!(without_server_meta(&created), body);
    assert_eq!(s.read("Patient", "client-id-5001").await, created);
}

#[tokio::test]
async fn update_create_disabled_answers_405_and_creates_nothing() {
    let s = TestServer::start_with(ServerOptions::new().update_create(false)).await;
    let mut body = simple_patient("Verboten");
    body["id"] = json!("not-allowed");
    s.put("Patient/not-allowed", &body).await.outcome(405);
    s.get("Patient/not-allowed").await.outcome(404);
    assert_eq!(s.type_history_len("Patient").await, 0);
    // Ordinary updates of existing resources still work.
    let v1 = s.create(&simple_patient("Erlaubt")).await;
    let mut changed = v1.clone();
    changed["name"][0]["family"] = json!("Erlaubt2");
    let v2 = s.put(&format!("Patient/{}", id_of(&v1)), &changed).await.expect_status(200).json();
    assert_eq!(version_id(&v2), "2");
}

#[tokio::test]
async fn identical_update_creates_no_new_version() {
    let s = TestServer::start().await;
    let v1 = s.create(&patient(ID_SYSTEM, "6001", "Gleich")).await;
    let id = id_of(&v1);
    let path = format!("Patient/{id}");

    // Same content, sent exactly as returned (with meta.versionId/lastUpdated).
    let r = s.put(&path, &v1).await.expect_status(200);
    assert_eq!(r.etag_version(), "1");
    assert_eq!(version_id(&r.json()), "1");

    // Same content with different / absent server meta.
    let mut other_meta = v1.clone();
    other_meta["meta"]["versionId"] = json!("17");
    other_meta["meta"]["lastUpdated"] = json!("2001-01-01T00:00:00Z");
    let r = s.put(&path, &other_meta).await.expect_status(200);
    assert_eq!(r.etag_version(), "1");
    assert_eq!(version_id(&r.json()), "1");
    let r = s.put(&path, &without_server_meta(&v1)).await.expect_status(200);
    assert_eq!(r.etag_version(), "1");

    assert_eq!(s.history_len("Patient", &id).await, 1, "no-op updates added history entries");
    assert_eq!(s.read("Patient", &id).await, v1);

    // A real change still makes version 2.
    let mut changed = v1.clone();
    changed["active"] = json!(false);
    let r = s.put(&path, &changed).await.expect_status(200);
    assert_eq!(r.etag_version(), "2");
    assert_eq!(s.history_len("Patient", &id).await, 2);
}

#[tokio::test]
async fn delete_returns_204_then_read_410_and_history_shows_delete() {
    let s = TestServer::start().await;
    let v1 = s.create(&simple_patient("Weg")).await;
    let id = id_of(&v1);
    let r = s.delete(&format!("Patient/{id}")).await.expect_status(204);
    assert!(r.body.is_empty(), "204 with a body: {:?}", r.text());
    s.get(&format!("Patient/{id}")).await.outcome(410);
    let hist = s.all_entries(&format!("Patient/{id}/_history")).await;
    assert_eq!(hist.len(), 2, "history after delete: {hist:?}");
    assert!(hist[0].get("resource").is_none(), "delete entry has a resource: {}", hist[0]);
    assert_eq!(hist[0]["request"]["method"], "DELETE");
    assert_eq!(hist[1]["resource"], v1);
}

#[tokio::test]
async fn delete_of_deleted_or_unknown_is_204() {
    let s = TestServer::start().await;
    let id = id_of(&s.create(&simple_patient("Zweimal")).await);
    s.delete(&format!("Patient/{id}")).await.expect_status(204);
    s.delete(&format!("Patient/{id}")).await.expect_status(204);
    s.delete("Patient/never-existed").await.expect_status(204);
    s.get(&format!("Patient/{id}")).await.outcome(410);
    s.get("Patient/never-existed").await.outcome(404);
}

#[tokio::test]
async fn data_survives_restart() {
    let mut s = TestServer::start().await;
    let v1 = s.create(&patient(ID_SYSTEM, "7001", "Dauerhaft")).await;
    let id = id_of(&v1);
    let mut changed = v1.clone();
    changed["name"][0]["family"] = json!("Dauerhaft2");
    let v2 = s.put(&format!("Patient/{id}"), &changed).await.expect_status(200).json();
    let gone = id_of(&s.create(&simple_patient("Geloescht")).await);
    s.delete(&format!("Patient/{gone}")).await.expect_status(204);

    s.restart().await;

    assert_eq!(s.read("Patient", &id).await, v2, "current version after restart");
    let r = s.get(&format!("Patient/{id}/_history/1")).await.expect_status(200);
    assert_eq!(r.json(), v1, "version 1 after restart");
    assert_eq!(s.history_len("Patient", &id).await, 2);
    s.get(&format!("Patient/{gone}")).await.outcome(410);

    // Writes continue from the stored state.
    let mut again = v2.clone();
    again["name"][0]["family"] = json!("Dauerhaft3");
    let v3 = s.put(&format!("Patient/{id}"), &again).await.expect_status(200).json();
    assert_eq!(version_id(&v3), "3");
    let other = s.create(&simple_patient("Neu")).await;
    assert_ne!(id_of(&other), id);
    assert_ne!(id_of(&other), gone);
}
