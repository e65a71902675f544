//! The example instances shipped in the IG packages (the repository's `packages/*/package/`) can be
//! stored with their own ids and read back unchanged apart from server meta.

mod support;

use std::path::{Path, PathBuf};

use serde_json::Value;
use support::*;

/// Types whose examples are exercised, in an order where referenced resources come first.
const EXAMPLE_TYPES: [&str; 9] = [
    "Organization",
    "Location",
    "Patient",
    "Practitioner",
    "PractitionerRole",
    "HealthcareService",
    "Schedule",
    "Slot",
    "Appointment",
];

fn examples() -> Vec<(PathBuf, Value)> {
    let mut ex: Vec<(PathBuf, Value)> = package_resources()
        .into_iter()
        .filter(|(_, v)| v["resourceType"].as_str().is_some_and(|t| EXAMPLE_TYPES.contains(&t)))
        .collect();
    ex.sort_by_key(|(p, v)| {
        let t = v["resourceType"].as_str().unwrap();
        (EXAMPLE_TYPES.iter().position(|x| *x == t).unwrap(), p.clone())
    });
    assert!(!ex.is_empty(), "no IG examples found under {}", packages_root().display());
    // Every package that has examples contributes; both known packages must be present.
    for pkg in ["hl7.at.fhir.core.r5", "hl7.at.fhir.tc.wg.scheduling.r5"] {
        assert!(
            ex.iter().any(|(p, _)| p.to_string_lossy().contains(pkg)),
            "no examples from {pkg} under {}",
            packages_root().display()
        );
    }
    ex
}

fn show(p: &Path) -> String {
    let s = p.to_string_lossy();
    s.rsplit("packages/").next().unwrap_or(&s).to_string()
}

#[tokio::test]
async fn ig_examples_round_trip_through_put_with_their_own_ids() {
    let s = TestServer::start().await;
    let mut failures = Vec::new();
    let mut done = 0;
    for (path, example) in examples() {
        let ty = example["resourceType"].as_str().unwrap();
        let id = id_of(&example);
        let r = s.put(&format!("{ty}/{id}"), &example).await;
        // The same id can occur in two packages (e.g. HL7ATCorePatientExample01): the second
        // PUT is then an update.
        if !matches!(r.code(), 200 | 201) {
            failures.push(format!("{}: PUT {ty}/{id} -> {}: {}", show(&path), r.status, r.text()));
            continue;
        }
        let stored = r.json();
        let read = s.get(&format!("{ty}/{id}")).await;
        if read.code() != 200 {
            failures.push(format!("{}: GET {ty}/{id} -> {}: {}", show(&path), read.status, read.text()));
            continue;
        }
        let read = read.json();
        let want = without_server_meta(&example);
        for (what, got) in [("PUT response", &stored), ("read", &read)] {
            let got = without_server_meta(got);
            if got != want {
                failures.push(format!(
                    "{}: {what} differs from the example: {}",
                    show(&path),
                    first_difference(&want, &got).unwrap_or_else(|| "?".into())
                ));
            }
        }
        // meta.profile in particular must survive.
        if read["meta"]["profile"] != example["meta"]["profile"] {
            failures.push(format!("{}: meta.profile not kept: {}", show(&path), read["meta"]));
        }
        if !read["meta"]["versionId"].is_string() || !read["meta"]["lastUpdated"].is_string() {
            failures.push(format!("{}: read lacks meta.versionId/lastUpdated: {}", show(&path), read["meta"]));
        }
        done += 1;
    }
    assert!(failures.is_empty(), "{} of {} IG examples failed:\n{}", failures.len(), done + failures.len(), failures.join("\n"));
}

#[tokio::test]
async fn ig_examples_can_be_created_with_post() {
    let s = TestServer::start().await;
    // A booked example Appointment occupies the example Slot it references, so the
    // Schedules and Slots it points to must exist under their own ids first.
    for (_, example) in examples() {
        let ty = example["resourceType"].as_str().unwrap();
        if matches!(ty, "Schedule" | "Slot") {
            s.put(&format!("{ty}/{}", id_of(&example)), &example).await.expect_status(201);
        }
    }
    let mut failures = Vec::new();
    let mut n = 0;
    for (path, example) in examples() {
        n += 1;
        let ty = example["resourceType"].as_str().unwrap();
        let r = s.post(ty, &example).await;
        if r.code() != 201 {
            failures.push(format!("{}: POST {ty} -> {}: {}", show(&path), r.status, r.text()));
            continue;
        }
        let id = id_of(&r.json());
        let read = s.get(&format!("{ty}/{id}")).await;
        if read.code() != 200 {
            failures.push(format!("{}: GET {ty}/{id} -> {}", show(&path), read.status));
            continue;
        }
        let got = without_id_and_server_meta(&read.json());
        let want = without_id_and_server_meta(&example);
        if got != want {
            failures.push(format!(
                "{}: POSTed example reads back differently: {}",
                show(&path),
                first_difference(&want, &got).unwrap_or_else(|| "?".into())
            ));
        }
    }
    assert!(failures.is_empty(), "{} of {n} IG examples failed:\n{}", failures.len(), failures.join("\n"));
}

#[tokio::test]
async fn ig_examples_are_found_by_identifier_search() {
    // Examples that carry identifiers can be found again by system|value.
    let s = TestServer::start().await;
    let mut checked = 0;
    let mut failures = Vec::new();
    for (path, example) in examples() {
        let ty = example["resourceType"].as_str().unwrap();
        let id = id_of(&example);
        s.put(&format!("{ty}/{id}"), &example).await;
        let Some(ident) = example["identifier"].as_array().and_then(|a| a.first()).cloned() else {
            continue;
        };
        let (Some(system), Some(value)) = (ident["system"].as_str(), ident["value"].as_str()) else {
            continue;
        };
        checked += 1;
        let q = format!(
            "{ty}?identifier={}%7C{}",
            encode(system),
            encode(value)
        );
        let page = s.get(&q).await;
        if page.code() != 200 {
            failures.push(format!("{}: GET {q} -> {}: {}", show(&path), page.status, page.text()));
            continue;
        }
        let found: Vec<String> = entries(&page.json()).iter().map(|e| id_of(&e["resource"])).collect();
        if !found.contains(&id) {
            failures.push(format!("{}: {q} did not find {id} (found {found:?})", show(&path)));
        }
    }
    assert!(checked > 0, "no example with identifier system|value");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Minimal percent-encoding for a query value.
fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
