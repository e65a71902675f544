//! Content negotiation (Content-Type, Accept, _format, _pretty), Prefer, X-Request-Id. FHIR XML
//! itself is tested in xml.rs.

mod support;

use std::collections::BTreeSet;

use reqwest::Method;
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use serde_json::json;
use support::*;

#[tokio::test]
async fn responses_are_fhir_json_utf8() {
    let s = TestServer::start().await;
    let r = s.post("Patient", &patient(ID_SYSTEM, "f1", "Format")).await.expect_status(201);
    r.assert_fhir_json();
    let id = id_of(&r.json());
    let paths = [
        format!("Patient/{id}"),
        format!("Patient/{id}/_history/1"),
        format!("Patient/{id}/_history"),
        "Patient/_history".to_string(),
        format!("Patient?identifier={ID_SYSTEM}|f1"),
        "metadata".to_string(),
    ];
    for p in paths {
        let r = s.get(&p).await.expect_status(200);
        r.assert_fhir_json();
        r.json();
    }
    let r = s.put(&format!("Patient/{id}"), &s.read("Patient", &id).await).await.expect_status(200);
    r.assert_fhir_json();
}

#[tokio::test]
async fn json_request_content_types_are_accepted() {
    let s = TestServer::start().await;
    let body = serde_json::to_string(&simple_patient("Typen")).unwrap();
    for ct in [
        "application/fhir+json",
        "application/json",
        "application/fhir+json; charset=utf-8",
        "application/json; charset=utf-8",
        "application/fhir+json;charset=UTF-8",
        "application/json;charset=utf-8",
    ] {
        let r = s
            .send(s.request(Method::POST, "Patient").header(CONTENT_TYPE, ct).body(body.clone()))
            .await;
        assert_eq!(r.code(), 201, "Content-Type {ct}: {}", r.text());
        let created = r.json();
        let mut upd = created.clone();
        upd["active"] = json!(true);
        let r = s
            .send(
                s.request(Method::PUT, &format!("Patient/{}", id_of(&created)))
                    .header(CONTENT_TYPE, ct)
                    .body(serde_json::to_string(&upd).unwrap()),
            )
            .await;
        assert_eq!(r.code(), 200, "PUT with Content-Type {ct}: {}", r.text());
    }
    assert_eq!(s.type_history_len("Patient").await, 12);
}

#[tokio::test]
async fn accept_xml_answers_fhir_xml_and_json_accepts_work() {
    let s = TestServer::start().await;
    let id = id_of(&s.create(&simple_patient("Accept")).await);
    let path = format!("Patient/{id}");
    for accept in ["application/xml", "application/fhir+xml", "text/xml", "text/html, application/fhir+xml;q=0.5"] {
        let read = s.send(s.request(Method::GET, &path).header(ACCEPT, accept)).await.expect_status(200);
        assert!(read.text().starts_with("<Patient xmlns=\"http://hl7.org/fhir\">"), "Accept {accept}: {}", read.text());
        assert_eq!(id_of(&read.fhir_xml()), id);
        let metadata = s.send(s.request(Method::GET, "metadata").header(ACCEPT, accept)).await.expect_status(200);
        assert_eq!(metadata.fhir_xml()["resourceType"], "CapabilityStatement");
    }
    for accept in ["text/html", "image/png", "application/fhir+json;q=0"] {
        s.send(s.request(Method::GET, &path).header(ACCEPT, accept)).await.outcome(406);
    }
    for accept in [
        "application/fhir+json",
        "application/json",
        "application/fhir+json; charset=utf-8",
        "*/*",
        "application/*",
        "application/xml;q=0.5, application/fhir+json",
    ] {
        let r = s.send(s.request(Method::GET, &path).header(ACCEPT, accept)).await;
        assert_eq!(r.code(), 200, "Accept: {accept}: {}", r.text());
        r.assert_fhir_json();
        assert_eq!(id_of(&r.json()), id);
    }
}

#[tokio::test]
async fn an_unacceptable_format_on_create_is_406_and_creates_nothing() {
    let s = TestServer::start().await;
    s.send(json_body(s.request(Method::POST, "Patient"), &simple_patient("Html")).header(ACCEPT, "text/html"))
        .await
        .outcome(406);
    s.post("Patient?_format=turtle", &simple_patient("Turtle")).await.outcome(406);
    assert_eq!(s.type_history_len("Patient").await, 0);
}

#[tokio::test]
async fn format_parameter_json_and_xml() {
    let s = TestServer::start().await;
    let id = id_of(&s.create(&simple_patient("FormatParam")).await);
    for f in ["json", "application%2Ffhir%2Bjson", "application/json", "application%2Fjson"] {
        let r = s.get(&format!("Patient/{id}?_format={f}")).await;
        assert_eq!(r.code(), 200, "_format={f}: {}", r.text());
        r.assert_fhir_json();
        assert_eq!(id_of(&r.json()), id);
    }
    // _format overrides the Accept header.
    let r = s
        .send(s.request(Method::GET, &format!("Patient/{id}?_format=json")).header(ACCEPT, "application/fhir+xml"))
        .await;
    assert_eq!(r.code(), 200, "_format=json with Accept xml: {}", r.text());
    r.assert_fhir_json();
    for f in ["xml", "application/fhir+xml", "application%2Ffhir%2Bxml", "text/xml", "application/xml"] {
        let r = s
            .send(s.request(Method::GET, &format!("Patient/{id}?_format={f}")).header(ACCEPT, "application/fhir+json"))
            .await
            .expect_status(200);
        assert_eq!(id_of(&r.fhir_xml()), id, "_format={f}");
    }
    assert_eq!(s.get("metadata?_format=xml").await.expect_status(200).fhir_xml()["resourceType"], "CapabilityStatement");
    let bundle = s.get(&format!("Patient?_id={id}&_format=xml")).await.expect_status(200).fhir_xml();
    assert_eq!(id_of(&bundle["entry"][0]["resource"]), id);
    s.get(&format!("Patient/{id}?_format=turtle")).await.outcome(406);
}

/// `_format=application/fhir+json` written literally, as in the contract and in the FHIR spec's
/// examples: in a query string `+` decodes to a space, so the server has to be lenient.
#[tokio::test]
async fn format_parameter_with_a_literal_plus_is_accepted() {
    let s = TestServer::start().await;
    let id = id_of(&s.create(&simple_patient("Plus")).await);
    for p in [
        format!("Patient/{id}?_format=application/fhir+json"),
        format!("Patient?_id={id}&_format=application/fhir+json"),
        "metadata?_format=application/fhir+json".to_string(),
    ] {
        let r = s.get(&p).await;
        assert_eq!(r.code(), 200, "GET {p}: {}", r.text());
        r.assert_fhir_json();
    }
    let r = s.get(&format!("Patient/{id}?_format=application/fhir+xml")).await.expect_status(200);
    assert_eq!(id_of(&r.fhir_xml()), id);
}

#[tokio::test]
async fn pretty_parameter_indents_and_default_is_compact() {
    let s = TestServer::start().await;
    let id = id_of(&s.create(&patient(ID_SYSTEM, "pretty", "Huebsch")).await);
    let default = s.get(&format!("Patient/{id}")).await.expect_status(200);
    assert!(!default.text().contains('\n'), "default body is not compact: {}", default.text());
    let off = s.get(&format!("Patient/{id}?_pretty=false")).await.expect_status(200);
    assert!(!off.text().contains('\n'), "_pretty=false body is not compact");
    for p in [
        format!("Patient/{id}?_pretty=true"),
        format!("Patient?_id={id}&_pretty=true"),
        "metadata?_pretty=true".to_string(),
    ] {
        let r = s.get(&p).await.expect_status(200);
        assert!(r.text().contains("\n  \""), "{p}: not indented with two spaces: {}", r.text());
        r.json();
    }
    let pretty = s.get(&format!("Patient/{id}?_pretty=true")).await.json();
    assert_eq!(pretty, default.json(), "pretty and compact bodies differ in content");
}

#[tokio::test]
async fn pretty_parameter_applies_to_error_outcomes() {
    let s = TestServer::start().await;
    let r = s.get("Patient/nope?_pretty=true").await;
    r.outcome(404);
    assert!(r.text().contains("\n  \""), "404 OperationOutcome with _pretty=true not indented: {}", r.text());
    let r = s.get("Patient/nope").await;
    r.outcome(404);
    assert!(!r.text().contains('\n'), "404 OperationOutcome without _pretty is not compact");
}

#[tokio::test]
async fn prefer_return_on_create() {
    let s = TestServer::start().await;
    let body = simple_patient("Prefer");

    // Default and representation: the resource.
    for prefer in [None, Some("return=representation")] {
        let mut rb = json_body(s.request(Method::POST, "Patient"), &body);
        if let Some(p) = prefer {
            rb = rb.header("Prefer", p);
        }
        let r = s.send(rb).await.expect_status(201);
        let created = r.json();
        assert_eq!(created["resourceType"], "Patient", "Prefer {prefer:?}");
        assert_eq!(without_id_and_server_meta(&created), body);
    }

    // minimal: no body, still Location and ETag.
    let r = s
        .send(json_body(s.request(Method::POST, "Patient"), &body).header("Prefer", "return=minimal"))
        .await
        .expect_status(201);
    assert!(r.body.is_empty(), "return=minimal body: {:?}", r.text());
    assert_eq!(r.etag_version(), "1");
    let loc = r.require_header("location");
    assert!(loc.starts_with(&format!("{}/Patient/", s.public_base())), "Location {loc}");
    let id = loc
        .trim_start_matches(&format!("{}/Patient/", s.public_base()))
        .trim_end_matches("/_history/1")
        .to_string();
    assert_eq!(without_id_and_server_meta(&s.read("Patient", &id).await), body);

    // OperationOutcome: an OperationOutcome body, still 201 and the headers.
    let r = s
        .send(json_body(s.request(Method::POST, "Patient"), &body).header("Prefer", "return=OperationOutcome"))
        .await
        .expect_status(201);
    r.assert_fhir_json();
    assert_eq!(r.json()["resourceType"], "OperationOutcome", "{}", r.text());
    assert_eq!(r.etag_version(), "1");
    assert!(r.header("location").is_some());

    assert_eq!(s.type_history_len("Patient").await, 4);
}

#[tokio::test]
async fn prefer_return_on_update() {
    let s = TestServer::start().await;
    let v1 = s.create(&simple_patient("PreferPut")).await;
    let id = id_of(&v1);
    let path = format!("Patient/{id}");
    let mut body = v1.clone();

    body["name"][0]["family"] = json!("Rep");
    let r = s
        .send(json_body(s.request(Method::PUT, &path), &body).header("Prefer", "return=representation"))
        .await
        .expect_status(200);
    assert_eq!(version_id(&r.json()), "2");

    body["name"][0]["family"] = json!("Min");
    let r = s
        .send(json_body(s.request(Method::PUT, &path), &body).header("Prefer", "return=minimal"))
        .await
        .expect_status(200);
    assert!(r.body.is_empty(), "return=minimal body: {:?}", r.text());
    assert_eq!(r.etag_version(), "3");

    body["name"][0]["family"] = json!("Oo");
    let r = s
        .send(json_body(s.request(Method::PUT, &path), &body).header("Prefer", "return=OperationOutcome"))
        .await
        .expect_status(200);
    assert_eq!(r.json()["resourceType"], "OperationOutcome");
    assert_eq!(r.etag_version(), "4");

    // Update-as-create with minimal.
    let mut new = simple_patient("NeuMin");
    new["id"] = json!("prefer-new");
    let r = s
        .send(json_body(s.request(Method::PUT, "Patient/prefer-new"), &new).header("Prefer", "return=minimal"))
        .await
        .expect_status(201);
    assert!(r.body.is_empty());
    assert_eq!(
        r.require_header("location"),
        format!("{}/Patient/prefer-new/_history/1", s.public_base())
    );
    assert_eq!(s.read("Patient", &id).await["name"][0]["family"], "Oo");
}

#[tokio::test]
async fn every_response_has_a_request_id_and_incoming_ids_are_echoed() {
    let s = TestServer::start().await;
    let id = id_of(&s.create(&simple_patient("Rid")).await);
    let mut seen = BTreeSet::new();
    let responses = vec![
        s.get_root("/health").await,
        s.get_root("/ready").await,
        s.get("metadata").await,
        s.get(&format!("Patient/{id}")).await,
        s.get("Patient/missing").await,
        s.get("Observation").await,
        s.post("Patient", &simple_patient("Rid2")).await,
        s.delete(&format!("Patient/{id}")).await,
        s.get_root("/no-such-path").await,
    ];
    for r in &responses {
        let rid = r.header("x-request-id").unwrap_or_default();
        assert!(!rid.is_empty(), "{}: no X-Request-Id", r.what());
        assert!(seen.insert(rid.clone()), "{}: X-Request-Id {rid} reused", r.what());
    }
    for (method, path) in [(Method::GET, "Patient/missing"), (Method::GET, "metadata"), (Method::DELETE, "Patient/x")] {
        let mine = format!("itest-{}-{path}", method.as_str()).replace('/', "-");
        let r = s.send(s.request(method, path).header("X-Request-Id", mine.as_str())).await;
        assert_eq!(r.header("x-request-id").as_deref(), Some(mine.as_str()), "{}", r.what());
    }
    let r = s
        .send(s.client().get(s.root_url("/health")).header("X-Request-Id", "health-check-42"))
        .await;
    assert_eq!(r.header("x-request-id").as_deref(), Some("health-check-42"));
}
