//! Hardening of resource content (issue 12): every write path keeps the limits of the request
//! parser, so nothing stored becomes unreadable; control characters are refused; numbers keep
//! the text they were written with; validation of huge invalid bodies neither stalls the server
//! nor answers huge outcomes.

mod support;

use reqwest::Method;
use reqwest::header::CONTENT_TYPE;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use support::*;

/// `levels` nested extensions, each an object inside an `extension` array (two levels apiece).
fn nested_extensions(levels: usize) -> Value {
    let mut extension = json!({"url": "https://termin.example/deep", "valueString": "x"});
    for _ in 1..levels {
        extension = json!({"url": "https://termin.example/deep", "extension": [extension]});
    }
    json!([extension])
}

async fn patch(server: &TestServer, path: &str, operations: &Value) -> Resp {
    server
        .send(
            server
                .request(Method::PATCH, path)
                .header(CONTENT_TYPE, "application/json-patch+json")
                .body(operations.to_string()),
        )
        .await
}

/// Adds `levels` nested extensions at the deepest existing `extension` of a Patient.
fn deepen(existing_levels: usize, levels: usize) -> Value {
    let mut path = String::from("/extension");
    for _ in 1..existing_levels {
        path.push_str("/0/extension");
    }
    if existing_levels == 0 {
        return json!([{"op": "add", "path": path, "value": nested_extensions(levels)}]);
    }
    json!([{"op": "add", "path": format!("{path}/0/extension"), "value": nested_extensions(levels)}])
}

#[tokio::test]
async fn a_patch_cannot_store_a_resource_nested_beyond_the_parser_limit() {
    let server = TestServer::start().await;
    let patient = server.create(&json!({"resourceType": "Patient", "name": [{"family": "Tief"}]})).await;
    let id = id_of(&patient);
    let path = format!("Patient/{id}");
    // 25 levels (51 deep) are fine; 40 more would nest far beyond the limit of 64.
    patch(&server, &path, &deepen(0, 25)).await.expect_status(200);
    let refused = patch(&server, &path, &deepen(25, 40)).await;
    let outcome = refused.outcome(422);
    assert!(diagnostics(&outcome).contains("deeper than the limit of 64"), "{outcome}");
    assert!(expressions(&outcome)[0].starts_with("Patient.extension[0].extension[0]"), "{outcome}");
    // Nothing changed, and everything that touches the resource still works.
    assert_eq!(server.history_len("Patient", &id).await, 2);
    let read = server.get(&path).await.expect_status(200).json();
    assert_eq!(version_id(&read), "2");
    server.get(&format!("Patient?_id={id}")).await.expect_status(200);
    server.get(&format!("Patient/{id}/_history")).await.expect_status(200);
    server.get("Patient/_history").await.expect_status(200);
    let mut updated = read.clone();
    updated["active"] = json!(true);
    server.put(&path, &updated).await.expect_status(200);
    patch(&server, &path, &json!([{"op": "replace", "path": "/active", "value": false}])).await.expect_status(200);
}

#[tokio::test]
async fn a_patch_cannot_grow_a_resource_past_the_body_limit() {
    let server = TestServer::start_with(ServerOptions::new().max_body_bytes(20_000)).await;
    let patient = server.create(&json!({"resourceType": "Patient", "name": [{"family": "Groß"}]})).await;
    let path = format!("Patient/{}", id_of(&patient));
    let text = "x".repeat(12_000);
    patch(&server, &path, &json!([{"op": "add", "path": "/name/0/given", "value": [text]}])).await.expect_status(200);
    let refused = patch(&server, &path, &json!([{"op": "add", "path": "/name/0/given/-", "value": text}])).await;
    assert!(diagnostics(&refused.outcome(422)).contains("more than the limit of 21024 bytes"));
    assert_eq!(version_id(&server.get(&path).await.expect_status(200).json()), "2");
}

#[tokio::test]
async fn strings_with_control_characters_are_refused_on_every_write_path() {
    let server = TestServer::start().await;
    let body = r#"{"resourceType":"Patient","name":[{"family":"Hu\u0007ber"}]}"#;
    let refused = server
        .send(server.request(Method::POST, "Patient").header(CONTENT_TYPE, FHIR_JSON).body(body))
        .await;
    let outcome = refused.outcome(400);
    assert_eq!(expressions(&outcome), vec!["Patient.name[0].family"]);
    assert!(diagnostics(&outcome).contains("U+0007"), "{outcome}");
    assert_eq!(server.get("Patient").await.expect_status(200).json()["total"], 0);

    let patient = server.create(&json!({"resourceType": "Patient", "name": [{"family": "Hu\tber\r\n"}]})).await;
    let path = format!("Patient/{}", id_of(&patient));
    let refused = patch(&server, &path, &json!([{"op": "add", "path": "/gender", "value": "fe\u{1b}male"}])).await;
    assert_eq!(expressions(&refused.outcome(422)), vec!["Patient.gender"]);
    assert_eq!(version_id(&server.get(&path).await.json()), "1");
}

#[tokio::test]
async fn numbers_keep_the_text_they_were_written_with() {
    let server = TestServer::start().await;
    let body = r#"{"resourceType":"Location","name":"Praxis","position":{"longitude":1E1,"latitude":-1.0E-0,"altitude":2.50e3}}"#;
    let created = server
        .send(server.request(Method::POST, "Location").header(CONTENT_TYPE, FHIR_JSON).body(body))
        .await
        .expect_status(201);
    let id = id_of(&created.json());
    let written = r#""position":{"longitude":1E1,"latitude":-1.0E-0,"altitude":2.50e3}"#;
    assert!(created.text().contains(written), "{}", created.text());
    for path in [format!("Location/{id}"), format!("Location?_id={id}"), format!("Location/{id}/_history")] {
        let text = server.get(&path).await.expect_status(200).text();
        assert!(text.contains(written), "{path}: {text}");
    }
    let pretty = server.get(&format!("Location/{id}?_pretty=true")).await.text();
    assert!(pretty.contains("\"longitude\": 1E1"), "{pretty}");
    // Sent as text: a serde_json value in this test would rewrite the exponent before sending.
    let operations = r#"[{"op": "replace", "path": "/position/altitude", "value": 3E2}]"#;
    let patched = server
        .send(
            server
                .request(Method::PATCH, &format!("Location/{id}"))
                .header(CONTENT_TYPE, "application/json-patch+json")
                .body(operations),
        )
        .await
        .expect_status(200);
    assert!(patched.text().contains(r#""altitude":3E2"#), "{}", patched.text());
}

/// A Patient of about 600 KB whose every name is empty: one error per element.
fn huge_invalid_patient() -> String {
    let names = vec!["{}"; 300_000].join(",");
    format!(r#"{{"resourceType":"Patient","name":[{names}]}}"#)
}

#[tokio::test]
async fn validating_huge_invalid_bodies_neither_stalls_the_server_nor_answers_huge_outcomes() {
    let server = TestServer::start_with(ServerOptions::new().validation()).await;
    let body = huge_invalid_patient();
    assert!(body.len() > 600_000);
    let posts: Vec<_> = (0..4)
        .map(|_| {
            let request = server.request(Method::POST, "Patient").header(CONTENT_TYPE, FHIR_JSON).body(body.clone());
            tokio::spawn(send(request))
        })
        .collect();
    // While the four are being parsed and validated, the server keeps answering at once.
    let health = server.root_url("/health");
    let mut slowest = Duration::ZERO;
    for _ in 0..10 {
        let started = Instant::now();
        server.send(server.client().get(&health)).await.expect_status(200);
        slowest = slowest.max(started.elapsed());
    }
    assert!(slowest < Duration::from_millis(200), "/health took {slowest:?} while validating");
    for post in posts {
        let refused = post.await.unwrap();
        let outcome = refused.outcome(422);
        let issues = outcome["issue"].as_array().unwrap();
        assert!(issues.len() <= 101, "{} issues", issues.len());
        assert!(refused.body.len() < 100_000, "an outcome of {} bytes", refused.body.len());
    }
    assert_eq!(server.get("Patient").await.expect_status(200).json()["total"], 0);
}
