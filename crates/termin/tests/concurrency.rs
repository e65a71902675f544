//! Optimistic locking with If-Match, and what concurrent writers may (not) lose.

mod support;

use std::collections::{BTreeMap, BTreeSet};

use reqwest::Method;
use serde_json::{Value, json};
use support::*;
use tokio::task::JoinSet;

const WRITERS: usize = 20;

async fn put_if_match(s: &TestServer, path: &str, body: &Value, if_match: &str) -> Resp {
    s.send(json_body(s.request(Method::PUT, path), body).header("If-Match", if_match))
        .await
}

#[tokio::test]
async fn if_match_with_current_version_updates() {
    let s = TestServer::start().await;
    let v1 = s.create(&simple_patient("Passt")).await;
    let id = id_of(&v1);
    let mut body = v1.clone();
    body["name"][0]["family"] = json!("Passt2");
    let r = put_if_match(&s, &format!("Patient/{id}"), &body, "W/\"1\"").await.expect_status(200);
    assert_eq!(r.etag_version(), "2");
    body["name"][0]["family"] = json!("Passt3");
    let r = put_if_match(&s, &format!("Patient/{id}"), &body, "W/\"2\"").await.expect_status(200);
    assert_eq!(r.etag_version(), "3");
}

#[tokio::test]
async fn if_match_with_stale_version_is_412_and_changes_nothing() {
    let s = TestServer::start().await;
    let v1 = s.create(&simple_patient("Alt")).await;
    let id = id_of(&v1);
    let mut body = v1.clone();
    body["name"][0]["family"] = json!("Zwischen");
    let v2 = s.put(&format!("Patient/{id}"), &body).await.expect_status(200).json();
    body["name"][0]["family"] = json!("Veraltet");
    put_if_match(&s, &format!("Patient/{id}"), &body, "W/\"1\"").await.outcome(412);
    put_if_match(&s, &format!("Patient/{id}"), &body, "W/\"7\"").await.outcome(412);
    assert_eq!(s.read("Patient", &id).await, v2);
    assert_eq!(s.history_len("Patient", &id).await, 2);
}

#[tokio::test]
async fn if_match_malformed_is_400_and_changes_nothing() {
    let s = TestServer::start().await;
    let v1 = s.create(&simple_patient("Banane")).await;
    let id = id_of(&v1);
    let mut body = v1.clone();
    body["name"][0]["family"] = json!("Banane2");
    for bad in ["banana", "W/1", "W/\"x\"", "\"\""] {
        put_if_match(&s, &format!("Patient/{id}"), &body, bad).await.outcome(400);
        s.send(s.request(Method::DELETE, &format!("Patient/{id}")).header("If-Match", bad))
            .await
            .outcome(400);
    }
    assert_eq!(s.read("Patient", &id).await, v1);
    assert_eq!(s.history_len("Patient", &id).await, 1);
}

#[tokio::test]
async fn delete_with_stale_if_match_is_412_and_current_if_match_deletes() {
    let s = TestServer::start().await;
    let v1 = s.create(&simple_patient("Loeschbar")).await;
    let id = id_of(&v1);
    let mut body = v1.clone();
    body["name"][0]["family"] = json!("Loeschbar2");
    let v2 = s.put(&format!("Patient/{id}"), &body).await.expect_status(200).json();
    s.send(s.request(Method::DELETE, &format!("Patient/{id}")).header("If-Match", "W/\"1\""))
        .await
        .outcome(412);
    assert_eq!(s.read("Patient", &id).await, v2, "stale conditional delete deleted");
    assert_eq!(s.history_len("Patient", &id).await, 2);
    s.send(s.request(Method::DELETE, &format!("Patient/{id}")).header("If-Match", "W/\"2\""))
        .await
        .expect_status(204);
    s.get(&format!("Patient/{id}")).await.outcome(410);
}

/// 20 writers each append their own identifiers with read-modify-write + If-Match, retrying on
/// 412. No contribution may be lost and every successful write is exactly one version.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_if_match_writers_lose_no_update() {
    const PER_WRITER: usize = 2;
    const MAX_ATTEMPTS: usize = 2_000;
    let s = TestServer::start().await;
    let v1 = s.create(&json!({
        "resourceType": "Patient",
        "identifier": [{ "system": "urn:test:seed", "value": "seed" }],
        "name": [{ "family": "Gemeinsam", "given": ["Start"] }]
    }))
    .await;
    let url = s.url(&format!("Patient/{}", id_of(&v1)));

    let mut tasks = JoinSet::new();
    for w in 0..WRITERS {
        let client = s.client().clone();
        let url = url.clone();
        tasks.spawn(async move {
            let mut successes = 0usize;
            let mut conflicts = 0usize;
            for k in 0..PER_WRITER {
                let mine = format!("w{w}-{k}");
                let mut attempts = 0;
                loop {
                    attempts += 1;
                    assert!(attempts <= MAX_ATTEMPTS, "writer {w}: no success after {MAX_ATTEMPTS} attempts");
                    let cur = send(client.get(&url)).await.expect_status(200);
                    let etag = cur.require_header("etag");
                    let mut body = cur.json();
                    body["identifier"]
                        .as_array_mut()
                        .unwrap()
                        .push(json!({ "system": "urn:test:writer", "value": mine }));
                    let r = send(json_body(client.put(&url), &body).header("If-Match", etag.as_str())).await;
                    match r.code() {
                        200 => {
                            successes += 1;
                            break;
                        }
                        412 => {
                            r.outcome(412);
                            conflicts += 1;
                        }
                        other => panic!("writer {w}: unexpected {other}: {}", r.text()),
                    }
                }
            }
            (successes, conflicts)
        });
    }
    let mut successes = 0;
    let mut conflicts = 0;
    while let Some(res) = tasks.join_next().await {
        let (ok, c) = res.expect("writer task panicked");
        successes += ok;
        conflicts += c;
    }
    assert_eq!(successes, WRITERS * PER_WRITER);

    let final_ = s.get(&url).await.expect_status(200).json();
    let values: Vec<String> = final_["identifier"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["system"] == "urn:test:writer")
        .map(|i| i["value"].as_str().unwrap().to_string())
        .collect();
    let distinct: BTreeSet<&String> = values.iter().collect();
    assert_eq!(values.len(), distinct.len(), "an entry was written twice: {values:?}");
    for w in 0..WRITERS {
        for k in 0..PER_WRITER {
            assert!(
                distinct.contains(&format!("w{w}-{k}")),
                "lost update: w{w}-{k} missing from {values:?} (conflicts seen: {conflicts})"
            );
        }
    }
    assert_eq!(version_id(&final_), (successes + 1).to_string(), "versionId vs successful writes + 1");
    let hist = s.all_entries(&format!("Patient/{}/_history", id_of(&v1))).await;
    assert_eq!(hist.len(), successes + 1, "history length vs successful writes + 1");
    let versions: BTreeSet<String> = hist.iter().map(|e| version_id(&e["resource"])).collect();
    let expected: BTreeSet<String> = (1..=successes + 1).map(|v| v.to_string()).collect();
    assert_eq!(versions, expected, "history versions are not 1..=n");
}

/// Plain PUTs (no If-Match) racing: last writer wins, but every acknowledged write must be a
/// distinct version that can be read back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_plain_puts_keep_every_acknowledged_write_as_a_version() {
    const PER_WRITER: usize = 3;
    let s = TestServer::start().await;
    let v1 = s.create(&simple_patient("Start")).await;
    let id = id_of(&v1);
    let url = s.url(&format!("Patient/{id}"));

    let mut tasks = JoinSet::new();
    for w in 0..WRITERS {
        let client = s.client().clone();
        let url = url.clone();
        let id = id.clone();
        tasks.spawn(async move {
            let mut acked = Vec::new();
            let mut refused = Vec::new();
            for k in 0..PER_WRITER {
                let family = format!("writer-{w}-{k}");
                let body = json!({
                    "resourceType": "Patient",
                    "id": id,
                    "name": [{ "family": family, "given": ["Simple"] }]
                });
                let r = send(json_body(client.put(&url), &body)).await;
                match r.code() {
                    200 => acked.push((family, r.etag_version(), r.json())),
                    // Tolerated refusals under contention (still must be OperationOutcomes).
                    409 | 429 | 503 => {
                        r.outcome(r.code());
                        refused.push(r.code());
                    }
                    other => panic!("writer {w}: unexpected {other}: {}", r.text()),
                }
            }
            (acked, refused)
        });
    }
    let mut acked = Vec::new();
    let mut refused = Vec::new();
    while let Some(res) = tasks.join_next().await {
        let (a, r) = res.expect("writer task panicked");
        acked.extend(a);
        refused.extend(r);
    }
    assert!(!acked.is_empty(), "no write acknowledged; refusals: {refused:?}");

    // Acknowledged versions are distinct, and each is that writer's content.
    let mut by_version = BTreeMap::new();
    for (family, etag_v, body) in &acked {
        assert_eq!(&version_id(body), etag_v, "ETag vs meta.versionId");
        assert_eq!(body["name"][0]["family"], family.as_str());
        let prev = by_version.insert(etag_v.clone(), family.clone());
        assert!(prev.is_none(), "version {etag_v} acknowledged twice ({prev:?} and {family})");
    }
    for (v, family) in &by_version {
        let r = s.get(&format!("Patient/{id}/_history/{v}")).await.expect_status(200).json();
        assert_eq!(r["name"][0]["family"], family.as_str(), "vread {v}");
    }
    let hist = s.all_entries(&format!("Patient/{id}/_history")).await;
    assert_eq!(
        hist.len(),
        acked.len() + 1,
        "history entries vs acknowledged writes + create (refused: {refused:?})"
    );
    let mut families: Vec<String> = hist
        .iter()
        .map(|e| e["resource"]["name"][0]["family"].as_str().unwrap_or("?").to_string())
        .collect();
    families.sort();
    let mut expected: Vec<String> = acked.iter().map(|(f, _, _)| f.clone()).collect();
    expected.push("Start".into());
    expected.sort();
    assert_eq!(families, expected, "history content vs acknowledged writes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creates_get_distinct_ids() {
    let s = TestServer::start().await;
    let mut tasks = JoinSet::new();
    for w in 0..WRITERS {
        let client = s.client().clone();
        let url = s.url("Patient");
        tasks.spawn(async move {
            let r = send(json_body(client.post(&url), &simple_patient(&format!("c{w}")))).await;
            id_of(&r.expect_status(201).json())
        });
    }
    let mut ids = BTreeSet::new();
    while let Some(res) = tasks.join_next().await {
        let id = res.expect("task panicked");
        assert!(ids.insert(id.clone()), "id {id} handed out twice");
    }
    assert_eq!(ids.len(), WRITERS);
    assert_eq!(s.type_history_len("Patient").await, WRITERS);
}

/// Racing conditional creates with the same condition must not produce duplicates.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_conditional_creates_make_exactly_one_resource() {
    let s = TestServer::start().await;
    let mut tasks = JoinSet::new();
    for _ in 0..WRITERS {
        let client = s.client().clone();
        let url = s.url("Patient");
        tasks.spawn(async move {
            let body = patient(ID_SYSTEM, "race-1", "Rennen");
            let r = send(
                json_body(client.post(&url), &body)
                    .header("If-None-Exist", format!("identifier={ID_SYSTEM}|race-1")),
            )
            .await;
            let code = r.code();
            assert!(matches!(code, 200 | 201), "conditional create answered {code}: {}", r.text());
            (code, id_of(&r.json()))
        });
    }
    let mut created = 0;
    let mut ids = BTreeSet::new();
    while let Some(res) = tasks.join_next().await {
        let (code, id) = res.expect("task panicked");
        if code == 201 {
            created += 1;
        }
        ids.insert(id);
    }
    assert_eq!(created, 1, "concurrent conditional creates created {created} resources");
    assert_eq!(ids.len(), 1, "responses name different resources: {ids:?}");
    let page = s
        .get(&format!("Patient?identifier={ID_SYSTEM}|race-1"))
        .await
        .expect_status(200)
        .json();
    assert_eq!(page["total"], 1);
}
