//! GET /fhir/metadata and the health endpoints.

mod support;

use std::collections::BTreeSet;

use serde_json::Value;
use support::*;

const INTERACTIONS: [&str; 8] = [
    "read",
    "vread",
    "update",
    "delete",
    "create",
    "history-instance",
    "history-type",
    "search-type",
];

#[track_caller]
fn check_capability_statement(cs: &Value, update_create: bool) {
    assert_eq!(cs["resourceType"], "CapabilityStatement", "{cs}");
    assert_eq!(cs["fhirVersion"], "5.0.0");
    let formats: Vec<&str> = cs["format"].as_array().expect("format[]").iter().filter_map(Value::as_str).collect();
    for f in ["application/fhir+json", "json"] {
        assert!(formats.contains(&f), "format {formats:?} lacks {f}");
    }
    let rest = cs["rest"].as_array().expect("rest[]");
    assert!(!rest.is_empty());
    assert_eq!(rest[0]["mode"], "server");
    let resources = rest[0]["resource"].as_array().expect("rest[0].resource[]");
    let types: Vec<&str> = resources.iter().map(|r| r["type"].as_str().unwrap_or("?")).collect();
    assert_eq!(types.len(), SUPPORTED_TYPES.len() + 1, "one rest.resource per served type: {types:?}");
    assert_eq!(
        types.iter().copied().collect::<BTreeSet<_>>(),
        SUPPORTED_TYPES.iter().copied().chain([RECORDED_TYPE]).collect::<BTreeSet<_>>(),
        "rest.resource types"
    );
    let codes_of = |r: &Value| -> BTreeSet<String> {
        let ty = r["type"].as_str().unwrap();
        r["interaction"]
            .as_array()
            .unwrap_or_else(|| panic!("{ty}: no interaction[]"))
            .iter()
            .filter_map(|i| i["code"].as_str().map(str::to_owned))
            .collect()
    };
    let recorded = resources.iter().find(|r| r["type"] == RECORDED_TYPE).expect("AuditEvent");
    let reads: BTreeSet<String> =
        ["read", "vread", "history-instance", "history-type", "search-type"].map(str::to_owned).into();
    assert_eq!(codes_of(recorded), reads, "AuditEvents are only read");
    assert_eq!(recorded["conditionalCreate"], false);
    assert_eq!(recorded["conditionalUpdate"], false);
    assert_eq!(recorded["updateCreate"], false);
    for r in resources.iter().filter(|r| r["type"] != RECORDED_TYPE) {
        let ty = r["type"].as_str().unwrap();
        let codes = codes_of(r);
        for c in INTERACTIONS {
            assert!(codes.contains(c), "{ty}: interaction {c} missing from {codes:?}");
        }
        assert_eq!(r["conditionalCreate"], true, "{ty}.conditionalCreate");
        assert_eq!(r["conditionalUpdate"], true, "{ty}.conditionalUpdate");
        assert_eq!(r["conditionalRead"], "full-support", "{ty}.conditionalRead");
        assert_eq!(r["updateCreate"], update_create, "{ty}.updateCreate");
        assert_eq!(r["versioning"], "versioned-update", "{ty}.versioning");
    }
}

#[tokio::test]
async fn metadata_describes_the_server() {
    let s = TestServer::start().await;
    let r = s.get("metadata").await.expect_status(200);
    r.assert_fhir_json();
    check_capability_statement(&r.json(), true);
}

#[tokio::test]
async fn metadata_reflects_update_create_false() {
    let s = TestServer::start_with(ServerOptions::new().update_create(false)).await;
    check_capability_statement(&s.get("metadata").await.expect_status(200).json(), false);
}

#[tokio::test]
async fn metadata_reflects_explicit_update_create_true() {
    let s = TestServer::start_with(ServerOptions::new().update_create(true)).await;
    check_capability_statement(&s.get("metadata").await.expect_status(200).json(), true);
}

#[tokio::test]
async fn health_and_ready_answer_200() {
    let s = TestServer::start().await;
    s.get_root("/health").await.expect_status(200);
    s.get_root("/ready").await.expect_status(200);
    // Still ready after a write (database answering).
    s.create(&simple_patient("Bereit")).await;
    s.get_root("/ready").await.expect_status(200);
}
