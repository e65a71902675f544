//! Conditional create (If-None-Exist) and conditional update (PUT <type>?criteria).

mod support;

use reqwest::Method;
use serde_json::json;
use support::*;

const SYS: &str = "urn:oid:1.2.40.0.10.1.4.3.1";
const OTHER_SYS: &str = "urn:oid:1.2.40.0.10.2.1.1.149";

async fn create_if_none_exist(s: &TestServer, body: &serde_json::Value, cond: &str) -> Resp {
    s.send(json_body(s.request(Method::POST, "Patient"), body).header("If-None-Exist", cond))
        .await
}

#[tokio::test]
async fn conditional_create_without_match_creates_201() {
    let s = TestServer::start().await;
    s.create(&patient(SYS, "other", "Andere")).await;
    let body = patient(SYS, "1111", "Neu");
    let r = create_if_none_exist(&s, &body, &format!("identifier={SYS}|1111")).await.expect_status(201);
    let created = r.json();
    let id = id_of(&created);
    assert_eq!(
        r.require_header("location"),
        format!("{}/Patient/{id}/_history/1", s.public_base())
    );
    assert_eq!(r.etag_version(), "1");
    assert_eq!(without_id_and_server_meta(&created), body);
    assert_eq!(s.type_history_len("Patient").await, 2);
}

#[tokio::test]
async fn conditional_create_with_one_match_returns_existing_with_200_and_creates_nothing() {
    let s = TestServer::start().await;
    let existing = s.create(&patient(SYS, "2222", "Vorhanden")).await;
    // A different body: the server must neither create it nor change the existing one.
    let r = create_if_none_exist(&s, &patient(SYS, "2222", "Doppelt"), &format!("identifier={SYS}|2222"))
        .await
        .expect_status(200);
    let body = r.json();
    assert_eq!(body, existing, "conditional create with one match must return the existing resource");
    assert_eq!(s.type_history_len("Patient").await, 1, "a new version or resource was written");
    assert_eq!(s.read("Patient", &id_of(&existing)).await, existing);
}

#[tokio::test]
async fn conditional_create_with_several_matches_is_412_and_creates_nothing() {
    let s = TestServer::start().await;
    s.create(&patient(SYS, "3333", "Erster")).await;
    s.create(&patient(SYS, "3333", "Zweiter")).await;
    create_if_none_exist(&s, &patient(SYS, "3333", "Dritter"), &format!("identifier={SYS}|3333"))
        .await
        .outcome(412);
    assert_eq!(s.type_history_len("Patient").await, 2);
}

#[tokio::test]
async fn conditional_create_token_forms_and_id() {
    let s = TestServer::start().await;
    let existing = s.create(&patient(SYS, "4444", "Token")).await;
    let id = id_of(&existing);
    let dup = patient(SYS, "4444", "Nochmal");
    for cond in [
        format!("identifier={SYS}|4444"),
        "identifier=4444".to_string(),
        format!("identifier={SYS}|"),
        // percent-encoded form of the same condition
        "identifier=urn%3Aoid%3A1.2.40.0.10.1.4.3.1%7C4444".to_string(),
        format!("_id={id}"),
        format!("_id={id}&identifier={SYS}|4444"),
    ] {
        let r = create_if_none_exist(&s, &dup, &cond).await;
        assert_eq!(r.code(), 200, "If-None-Exist: {cond}: {}", r.text());
        assert_eq!(id_of(&r.json()), id, "If-None-Exist: {cond}");
    }
    assert_eq!(s.type_history_len("Patient").await, 1, "a matching condition created something");

    // Non-matching conditions create.
    for cond in [
        format!("identifier={OTHER_SYS}|4444"),
        format!("identifier={SYS}|4445"),
        "_id=no-such-id".to_string(),
        format!("_id={id}&identifier={SYS}|9999"),
    ] {
        let r = create_if_none_exist(&s, &simple_patient("Frisch"), &cond).await;
        assert_eq!(r.code(), 201, "If-None-Exist: {cond}: {}", r.text());
        assert_ne!(id_of(&r.json()), id);
    }
    assert_eq!(s.type_history_len("Patient").await, 5);
}

#[tokio::test]
async fn conditional_create_with_unsupported_parameter_is_400_and_creates_nothing() {
    let s = TestServer::start().await;
    // Unlike a search (lenient by default), criteria that cannot be fully understood never
    // select a resource: unknown parameters, unsupported modifiers and special parameters.
    for cond in ["foo=bar", "family:fuzzy=Mustermann", "_text=Mustermann", "_sort=family", "birthdate=tomorrow"] {
        let r = create_if_none_exist(&s, &simple_patient("Unerlaubt"), cond).await;
        r.outcome(400);
    }
    assert_eq!(s.type_history_len("Patient").await, 0);
}

#[tokio::test]
async fn conditional_create_accepts_every_search_parameter() {
    let s = TestServer::start().await;
    let existing = s.create(&patient(SYS, "4545", "Mustermann")).await;
    for cond in ["family=mustermann", "name=MUSTER&birthdate=1980-02-29", "gender=unknown&active=true"] {
        let r = create_if_none_exist(&s, &simple_patient("Doppelt"), cond).await;
        assert_eq!(r.code(), 200, "If-None-Exist: {cond}: {}", r.text());
        assert_eq!(id_of(&r.json()), id_of(&existing), "If-None-Exist: {cond}");
    }
    assert_eq!(s.type_history_len("Patient").await, 1);
}

#[tokio::test]
async fn conditional_create_works_on_every_supported_type() {
    let s = TestServer::start().await;
    for ty in SUPPORTED_TYPES {
        let mut body = minimal(ty);
        body["identifier"] = json!([{ "system": SYS, "value": format!("{ty}-1") }]);
        let cond = format!("identifier={SYS}|{ty}-1");
        let first = s
            .send(json_body(s.request(Method::POST, ty), &body).header("If-None-Exist", &cond))
            .await
            .expect_status(201)
            .json();
        let second = s
            .send(json_body(s.request(Method::POST, ty), &body).header("If-None-Exist", &cond))
            .await
            .expect_status(200)
            .json();
        assert_eq!(second, first, "{ty}");
        assert_eq!(s.type_history_len(ty).await, 1, "{ty}");
    }
}

#[tokio::test]
async fn conditional_update_without_match_creates_201() {
    let s = TestServer::start().await;
    s.create(&patient(SYS, "other", "Andere")).await;
    let body = patient(SYS, "5555", "BedingtNeu");
    let r = s.put(&format!("Patient?identifier={SYS}|5555"), &body).await.expect_status(201);
    let created = r.json();
    let id = id_of(&created);
    assert_eq!(
        r.require_header("location"),
        format!("{}/Patient/{id}/_history/1", s.public_base())
    );
    assert_eq!(version_id(&created), "1");
    assert_eq!(without_id_and_server_meta(&created), body);
    assert_eq!(s.read("Patient", &id).await, created);
}

#[tokio::test]
async fn conditional_update_without_match_uses_a_new_body_id() {
    let s = TestServer::start().await;
    let mut body = patient(SYS, "5656", "MitId");
    body["id"] = json!("cond-new-id");
    let r = s.put(&format!("Patient?identifier={SYS}|5656"), &body).await.expect_status(201);
    let created = r.json();
    assert_eq!(id_of(&created), "cond-new-id");
    assert_eq!(without_server_meta(&created), body);
    assert_eq!(s.read("Patient", "cond-new-id").await, created);
}

#[tokio::test]
async fn conditional_update_without_match_rejects_a_clashing_body_id() {
    let s = TestServer::start().await;
    let existing = s.create(&patient(SYS, "5757", "Besetzt")).await;
    let id = id_of(&existing);
    let mut body = patient(SYS, "no-match-5757", "Eindringling");
    body["id"] = json!(id);
    let r = s.put(&format!("Patient?identifier={SYS}|no-match-5757"), &body).await;
    assert!(
        matches!(r.code(), 400 | 409),
        "{}: expected 400 or 409 for an id that clashes with another resource; body {}",
        r.what(),
        r.text()
    );
    r.outcome(r.code());
    assert_eq!(s.read("Patient", &id).await, existing, "clashing conditional update changed the resource");
    assert_eq!(s.type_history_len("Patient").await, 1);
}

#[tokio::test]
async fn conditional_update_with_one_match_updates_it() {
    let s = TestServer::start().await;
    let v1 = s.create(&patient(SYS, "6666", "Einzig")).await;
    let id = id_of(&v1);
    s.create(&patient(SYS, "6667", "Nachbar")).await;

    // Body without id.
    let mut body = patient(SYS, "6666", "Einzig2");
    let r = s.put(&format!("Patient?identifier={SYS}|6666"), &body).await.expect_status(200);
    assert_eq!(r.etag_version(), "2");
    let v2 = r.json();
    assert_eq!(id_of(&v2), id);
    assert_eq!(version_id(&v2), "2");
    assert_eq!(without_id_and_server_meta(&v2), body);

    // Body with the matching id.
    body["id"] = json!(id);
    body["name"][0]["family"] = json!("Einzig3");
    let v3 = s.put(&format!("Patient?identifier={SYS}|6666"), &body).await.expect_status(200).json();
    assert_eq!(id_of(&v3), id);
    assert_eq!(version_id(&v3), "3");

    // _id as the criterion.
    body["name"][0]["family"] = json!("Einzig4");
    let v4 = s.put(&format!("Patient?_id={id}"), &body).await.expect_status(200).json();
    assert_eq!(version_id(&v4), "4");

    assert_eq!(s.read("Patient", &id).await, v4);
    assert_eq!(s.type_history_len("Patient").await, 5, "4 versions + the neighbour");
}

#[tokio::test]
async fn conditional_update_with_one_match_and_a_different_body_id_is_400() {
    let s = TestServer::start().await;
    let v1 = s.create(&patient(SYS, "7777", "Falsch")).await;
    let id = id_of(&v1);
    let mut body = patient(SYS, "7777", "FalschNeu");
    body["id"] = json!("not-the-match");
    s.put(&format!("Patient?identifier={SYS}|7777"), &body).await.outcome(400);
    assert_eq!(s.read("Patient", &id).await, v1);
    assert_eq!(s.type_history_len("Patient").await, 1);
    s.get("Patient/not-the-match").await.outcome(404);
}

#[tokio::test]
async fn conditional_update_with_several_matches_is_412() {
    let s = TestServer::start().await;
    let a = s.create(&patient(SYS, "8888", "A")).await;
    let b = s.create(&patient(SYS, "8888", "B")).await;
    s.put(&format!("Patient?identifier={SYS}|8888"), &patient(SYS, "8888", "C"))
        .await
        .outcome(412);
    assert_eq!(s.read("Patient", &id_of(&a)).await, a);
    assert_eq!(s.read("Patient", &id_of(&b)).await, b);
    assert_eq!(s.type_history_len("Patient").await, 2);
}

#[tokio::test]
async fn conditional_update_with_unsupported_parameter_is_400() {
    let s = TestServer::start().await;
    let a = s.create(&patient(SYS, "9999", "Name")).await;
    s.put("Patient?shoe-size=42", &patient(SYS, "9999", "Name2")).await.outcome(400);
    s.put("Patient?name:phonetic=Name", &patient(SYS, "9999", "Name2")).await.outcome(400);
    assert_eq!(s.read("Patient", &id_of(&a)).await, a);
    assert_eq!(s.type_history_len("Patient").await, 1);
}
