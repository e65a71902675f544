//! `termin seed` and `termin bench` as a user runs them: the seeded dataset loads (validated
//! against the AT profiles), loads again without change, passes `$validate` resource by
//! resource, is what `serve --demo` offers, and every bench scenario runs on it (the CI smoke
//! run of the load generator: tiny data, a second per scenario, no double booking).

mod support;

use serde_json::Value;
use std::process::{Command, Output};
use support::*;

fn termin(args: &[&str]) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_termin"))
        .args(args)
        .env_remove("TERMIN_DATABASE")
        .env_remove("TERMIN_PACKAGES")
        .output()
        .expect("run termin");
    assert!(
        output.status.success(),
        "termin {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn seeding_validates_and_a_second_load_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Backend::from_env().provision(dir.path());
    // Validation is on by default, against the AT packages built into termin.
    let seed = ["seed", "--scale", "tiny", "--start", "2027-03-22", "--database", &storage.database];
    let first = stdout(&termin(&seed));
    assert!(first.contains(" 0 existing"), "{first}");
    assert!(!first.contains(": 0 created"), "{first}");
    let second = stdout(&termin(&seed));
    assert!(second.contains(": 0 created"), "{second}");
}

#[test]
fn ndjson_output_is_deterministic() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, seed: &str| {
        let path = dir.path().join(name);
        termin(&["seed", "--scale", "tiny", "--seed", seed, "--start", "2027-03-22", "--ndjson", path.to_str().unwrap()]);
        std::fs::read(path).unwrap()
    };
    let first = write("a.ndjson", "7");
    assert!(!first.is_empty());
    assert_eq!(first, write("b.ndjson", "7"), "the same seed must give the same bytes");
    assert_ne!(first, write("c.ndjson", "8"), "another seed must give other data");
}

#[tokio::test]
async fn every_seeded_resource_passes_validate() {
    let s = TestServer::start_with(ServerOptions::new().validation()).await;
    let path = s.dir().join("tiny.ndjson");
    termin(&["seed", "--scale", "tiny", "--start", "2027-03-22", "--ndjson", path.to_str().unwrap()]);
    let text = std::fs::read_to_string(&path).unwrap();
    let mut validated = 0;
    for line in text.lines() {
        let resource: Value = serde_json::from_str(line).unwrap();
        let resource_type = resource["resourceType"].as_str().unwrap();
        let outcome = s.post(&format!("{resource_type}/$validate"), &resource).await.expect_status(200).json();
        let errors: Vec<&Value> = outcome["issue"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|issue| matches!(issue["severity"].as_str(), Some("error" | "fatal")))
            .collect();
        assert!(errors.is_empty(), "{resource_type}/{}: {errors:?}", resource["id"]);
        validated += 1;
    }
    assert!(validated > 100, "only {validated} resources");
}

#[tokio::test]
async fn demo_serves_the_seeded_dataset() {
    let s = TestServer::start_with(ServerOptions::new().arg("--demo").flag("--demo-scale", "tiny")).await;
    let page = s.get("Slot?_total=accurate&_count=1").await.expect_status(200).json();
    assert!(page["total"].as_u64().unwrap() > 100, "{page}");
    let page = s.get("Patient?identifier=urn:oid:1.2.40.0.10.1.4.3.1|&_count=1").await.expect_status(200).json();
    assert_eq!(entries(&page).len(), 1, "{page}");
}

/// Parses the bench's first Markdown table: (scenario, ops, errors) per row.
fn bench_rows(table: &str) -> Vec<(String, u64, u64)> {
    table
        .lines()
        .take_while(|line| !line.starts_with("double bookings"))
        .filter(|line| line.starts_with("| ") && !line.starts_with("| scenario"))
        .map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            (cells[1].to_owned(), cells[3].parse().unwrap(), cells[8].parse().unwrap())
        })
        .collect()
}

#[test]
fn every_bench_scenario_runs_on_a_tiny_dataset() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Backend::from_env().provision(dir.path());
    let output = termin(&[
        "bench", "--scale", "tiny", "--duration", "1s", "--concurrency", "4", "--database", &storage.database,
    ]);
    let table = stdout(&output);
    let rows = bench_rows(&table);
    let names: Vec<&str> = rows.iter().map(|(name, ..)| name.as_str()).collect();
    assert_eq!(names.len(), 4, "{table}");
    assert!(names[0].starts_with("slot search") && names[3].starts_with("appointments by SVNR"), "{table}");
    for (name, ops, errors) in &rows {
        assert!(*ops > 0, "{name} did nothing: {table}");
        if name.starts_with("slot search") || name.starts_with("appointments by SVNR") {
            assert_eq!(*errors, 0, "{name}: {table}\n{}", String::from_utf8_lossy(&output.stderr));
        }
    }
    assert!(table.contains("double bookings: 0"), "{table}");
    // Then the issue 16 targets: every query answered without error, met or not.
    let targets: Vec<Vec<&str>> = table
        .lines()
        .skip_while(|line| !line.starts_with("targets of issue 16"))
        .filter(|line| line.starts_with("| ") && !line.starts_with("| query"))
        .map(|line| line.split('|').map(str::trim).collect())
        .collect();
    assert_eq!(targets.len(), 6, "{table}");
    for cells in &targets {
        assert_eq!(cells[4], "0", "errors in {cells:?}: {table}");
        assert!(matches!(cells[5], "yes" | "no"), "{cells:?}");
    }
}
