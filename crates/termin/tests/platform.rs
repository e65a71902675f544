//! Central scheduling platform mode (issue 21) with real processes: two practices with their
//! own data, a platform aggregating them (plus an upstream that refuses connections and one
//! that never answers), a second platform cascaded on the first, and a platform that is its
//! own upstream (a loop). Everything speaks HTTP.

mod scheduling_support;
mod support;

use std::collections::BTreeSet;

use reqwest::Method;
use scheduling_support::*;
use serde_json::{Value, json};
use support::*;

const SERVICE_TYPE: &str = "http://terminology.hl7.org/CodeSystem/service-type";
const SLOTS: usize = 5;

/// A practice's directory and free slots, with the same ids in every practice (the platform
/// tells them apart): Organization `org`, HealthcareService `hcs` (physiotherapy), Practitioner
/// `prac`, PractitionerRole `role`, Schedule `sch` of the role, and Slots `slot-0..` hourly
/// from `days_ahead` days from now.
async fn practice(s: &TestServer, label: &str, days_ahead: i64) {
    let first = jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_hours(24 * days_ahead))
        .unwrap()
        .round(jiff::Unit::Hour)
        .unwrap();
    for resource in [
        json!({"resourceType": "Organization", "id": "org", "active": true, "name": format!("Praxis {label}")}),
        json!({"resourceType": "HealthcareService", "id": "hcs", "active": true, "name": format!("Physiotherapie {label}"),
               "providedBy": {"reference": "Organization/org"},
               "type": [{"coding": [{"system": SERVICE_TYPE, "code": "65"}]}]}),
        json!({"resourceType": "Practitioner", "id": "prac", "name": [{"family": format!("Therapeut {label}")}]}),
        json!({"resourceType": "PractitionerRole", "id": "role", "active": true,
               "practitioner": {"reference": "Practitioner/prac"}, "organization": {"reference": "Organization/org"},
               "healthcareService": [{"reference": "HealthcareService/hcs"}]}),
        json!({"resourceType": "Schedule", "id": "sch", "active": true, "actor": [{"reference": "PractitionerRole/role"}],
               "serviceType": [{"reference": {"reference": "HealthcareService/hcs"}}]}),
    ] {
        put_resource(s, &resource).await;
    }
    for i in 0..SLOTS {
        let start = first.checked_add(jiff::SignedDuration::from_hours(i as i64)).unwrap();
        let end = start.checked_add(jiff::SignedDuration::from_mins(30)).unwrap();
        put_resource(
            s,
            &json!({"resourceType": "Slot", "id": format!("slot-{i}"), "schedule": {"reference": "Schedule/sch"},
                    "status": "free", "start": start.to_string(), "end": end.to_string()}),
        )
        .await;
    }
}

/// An address where nothing listens: connections are refused.
fn refusing_address() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    address.to_string()
}

/// A server that accepts connections and never answers, for as long as the returned task runs.
async fn silent_server() -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((connection, _)) = listener.accept().await {
            held.push(connection);
        }
    });
    (address, task)
}

fn platform_options(name: &str, upstreams: &[(&str, String)]) -> ServerOptions {
    let mut options = ServerOptions::new().flag("--platform-name", name).flag("--upstream-timeout", "2s");
    for (upstream, url) in upstreams {
        options = options.flag("--upstream", format!("{upstream}={url}"));
    }
    options
}

/// A proposed Appointment of `patient` on `slot`, naming the practice's service and
/// practitioner with `scope` (`a.` at the platform, empty at the practice).
fn proposal(patient: &str, slot: &str, scope: &str) -> Value {
    let mut proposed = appointment(patient, &[slot]);
    proposed["serviceType"][0]["reference"] = json!({"reference": format!("HealthcareService/{scope}hcs")});
    proposed["participant"][1]["actor"] = json!({"reference": format!("Practitioner/{scope}prac")});
    proposed
}

fn match_resources(bundle: &Value) -> Vec<Value> {
    entries(bundle).into_iter().filter(|e| e["search"]["mode"] == "match").map(|e| e["resource"].clone()).collect()
}

fn outcome_text(bundle: &Value) -> String {
    entries(bundle).into_iter().filter(|e| e["search"]["mode"] == "outcome").map(|e| e["resource"].to_string()).collect()
}

fn ids_of(resources: &[Value]) -> Vec<String> {
    resources.iter().map(|r| r["id"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_platform_aggregates_both_practices_and_reports_the_missing_ones() {
    let (a, b) = tokio::join!(TestServer::start(), TestServer::start());
    tokio::join!(practice(&a, "A", 3), practice(&b, "B", 2));
    let (silent, _silent_task) = silent_server().await;
    let platform = TestServer::start_with(platform_options(
        "central",
        &[("a", a.base()), ("b", b.base()), ("down", format!("http://{}/fhir", refusing_address())), ("slow", format!("http://{silent}/fhir"))],
    ))
    .await;

    // Every free slot of both practices, in pages of 3, each once, under platform ids.
    let pages = platform.pages("Slot?status=free&_count=3").await;
    assert!(pages.len() >= 4, "10 slots in pages of 3: {} pages", pages.len());
    assert!(pages.iter().all(|p| match_resources(p).len() <= 3));
    let shown: Vec<String> = pages.iter().flat_map(|p| ids_of(&match_resources(p))).collect();
    let expected: BTreeSet<String> =
        ["a", "b"].iter().flat_map(|u| (0..SLOTS).map(move |i| format!("{u}.slot-{i}"))).collect();
    assert_eq!(shown.len(), expected.len(), "no slot twice: {shown:?}");
    assert_eq!(shown.iter().cloned().collect::<BTreeSet<_>>(), expected);
    // The failing upstreams are named in a warning, and the first page has no total (partial).
    let first = &pages[0];
    let warnings = outcome_text(first);
    assert!(warnings.contains("down") && warnings.contains("could not be reached"), "{warnings}");
    assert!(warnings.contains("slow") && warnings.contains("did not answer"), "{warnings}");
    assert!(first.get("total").is_none(), "a partial result has no total: {first}");

    // Resources keep their owner's identity: references are scoped, meta.source is the owner.
    let slot = match_resources(first)
        .into_iter()
        .find(|s| s["id"] == "a.slot-0")
        .expect("a.slot-0 is on the first page (sources alternate, a first)");
    assert_eq!(slot["schedule"]["reference"], "Schedule/a.sch");
    assert_eq!(slot["meta"]["source"], format!("{}/Slot/slot-0", a.base()));
    let entry = entries(first).into_iter().find(|e| e["resource"]["id"] == "a.slot-0").unwrap();
    assert_eq!(entry["fullUrl"], format!("{}/Slot/a.slot-0", platform.base()));

    // Searches naming one practice's resources go there only; reads are relayed.
    let only_b = platform.get("Slot?schedule=Schedule/b.sch&_count=50").await.expect_status(200).json();
    assert_eq!(ids_of(&match_resources(&only_b)).len(), SLOTS);
    assert!(ids_of(&match_resources(&only_b)).iter().all(|id| id.starts_with("b.")));
    assert!(!outcome_text(&only_b).contains("down"), "upstreams that cannot match are not asked");
    let read = platform.get("Slot/b.slot-1").await.expect_status(200);
    assert_eq!(read.json()["id"], "b.slot-1");
    assert_eq!(read.json()["schedule"]["reference"], "Schedule/b.sch");
    platform.get("Slot/b.no-such-slot").await.expect_status(404);

    // The directory: both practices' services.
    let services = platform.all_entries("HealthcareService?_count=10").await;
    let services: BTreeSet<String> =
        services.iter().filter(|e| e["search"]["mode"] == "match").map(|e| e["resource"]["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(services, BTreeSet::from(["a.hcs".to_owned(), "b.hcs".to_owned()]));

    // $findHSP: both practices' providers, B first (its free slots are a day earlier).
    let found = platform
        .get(&format!("HealthcareService/$findHSP?healthcareService-type={SERVICE_TYPE}%7C65"))
        .await
        .expect_status(200)
        .json();
    assert_eq!(ids_of(&match_resources(&found)), ["b.hcs", "a.hcs"]);
    let included: BTreeSet<String> = entries(&found)
        .into_iter()
        .filter(|e| e["search"]["mode"] == "include")
        .map(|e| format!("{}/{}", e["resource"]["resourceType"].as_str().unwrap(), e["resource"]["id"].as_str().unwrap()))
        .collect();
    for provider in ["Organization/a.org", "PractitionerRole/a.role", "Organization/b.org", "PractitionerRole/b.role"] {
        assert!(included.contains(provider), "{provider} missing from {included:?}");
    }
    let notes = outcome_text(&found);
    assert!(notes.contains("PractitionerRole/b.role: earliest free slot Slot/b.slot-0"), "{notes}");
    assert!(notes.contains("down"), "{notes}");

    // A cursor this platform did not make is refused.
    platform.get("Slot?_platform-cursor=bogus").await.expect_status(400);
    // A request for an unreachable upstream's resource: 502, or 504 when it is too slow.
    let refused = platform.get("Slot/down.slot-0").await.expect_status(502).json();
    assert_issue_code(&refused, "exception");
    let timed_out = platform.get("Slot/slow.slot-0").await.expect_status(504).json();
    assert_issue_code(&timed_out, "timeout");
    // The CapabilityStatement says what the platform aggregates.
    let metadata = platform.get("metadata").await.expect_status(200).json();
    let documentation = metadata["rest"][0]["documentation"].as_str().unwrap_or_default();
    assert!(documentation.contains("Central scheduling platform \"central\"") && documentation.contains("a, b"), "{documentation}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_booking_through_the_platform_lands_in_the_owning_practice() {
    let (a, b) = tokio::join!(TestServer::start(), TestServer::start());
    tokio::join!(practice(&a, "A", 3), practice(&b, "B", 2));
    let platform = TestServer::start_with(platform_options("central", &[("a", a.base()), ("b", b.base())])).await;
    // The patient is the platform's own.
    let mut anna = patient(SVNR_SYSTEM, "1234010180", "Huber");
    anna["id"] = json!("pat-anna");
    put_resource(&platform, &anna).await;
    let mut direct = patient(SVNR_SYSTEM, "2345020290", "Berger");
    direct["id"] = json!("pat-direct");
    put_resource(&a, &direct).await;

    // With every upstream answering (and counting, as `_total=accurate` asks), the merged
    // search has a total, in any format.
    let all = platform.get("Slot?status=free&_count=2&_total=accurate").await.expect_status(200).json();
    assert_eq!(all["total"], 2 * SLOTS);
    assert_eq!(match_resources(&all).len(), 2);
    let xml = platform.get("Slot?status=free&_count=2&_format=xml").await.expect_status(200);
    assert!(xml.text().contains("<Bundle xmlns=\"http://hl7.org/fhir\">"), "{}", xml.text());

    // $hold is relayed; its answer (held-until, hold-token) comes back as the practice gave it.
    let held = platform.post("Slot/$hold", &hold_request("a.slot-1", "busy-tentative")).await.expect_status(200).json();
    let token = token_of(&held);
    held_until_of(&held);
    assert_eq!(param_resource(&held, "slot")["id"], "a.slot-1");
    assert_eq!(slot_status(&a, "slot-1").await, "busy-tentative");

    // $book creates the patient at the practice (by SVNR) and books there.
    let proposed = proposal("pat-anna", "a.slot-1", "a.");
    let booked = post_with_tokens(&platform, "Appointment/$book", &book_request(&proposed, &[]), &[&token]).await;
    assert_eq!(booked.code(), 201, "{}", booked.text());
    let appointment_at_platform = param_resource(&booked.json(), "appointment");
    let id = appointment_at_platform["id"].as_str().unwrap().to_owned();
    let own_id = id.strip_prefix("a.").unwrap_or_else(|| panic!("{id} is not a.'s"));
    assert_eq!(appointment_at_platform["status"], "booked");
    assert_eq!(slot_status(&a, "slot-1").await, "busy");
    let at_practice = a.read("Appointment", own_id).await;
    let patient_reference = at_practice["subject"]["reference"].as_str().unwrap().to_owned();
    let patient_there = a.get(&patient_reference).await.expect_status(200).json();
    assert_eq!(patient_there["identifier"][0]["value"], "1234010180");
    assert!(b.get(&format!("Appointment/{own_id}")).await.code() == 404, "nothing lands in the other practice");
    // Read and cancel through the platform; the practice frees the slot.
    let mut read = platform.read("Appointment", &id).await;
    assert_eq!(read["subject"]["reference"], format!("Patient/a.{}", patient_reference.trim_start_matches("Patient/")));
    read["status"] = json!("cancelled");
    read["cancellationReason"] = json!({"coding": [{"system": "http://terminology.hl7.org/CodeSystem/appointment-cancellation-reason", "code": "pat"}]});
    let cancelled = platform.put(&format!("Appointment/{id}"), &read).await;
    assert_eq!(cancelled.code(), 200, "{}", cancelled.text());
    assert_eq!(a.read("Appointment", own_id).await["status"], "cancelled");
    assert_eq!(slot_status(&a, "slot-1").await, "free");
    // A second booking of the same patient matches the patient created the first time.
    let again = platform.post("Appointment/$book", &book_request(&proposal("pat-anna", "a.slot-3", "a."), &[])).await;
    assert_eq!(again.code(), 201, "{}", again.text());
    let second = param_resource(&again.json(), "appointment");
    assert_eq!(second["subject"], read["subject"], "the same patient record at the practice");
    // A JSON Patch is relayed as one.
    let second_id = second["id"].as_str().unwrap();
    let patch = json!([{"op": "replace", "path": "/description", "value": "Physiotherapie, Knie"}]);
    let patched = platform
        .send(
            platform
                .request(Method::PATCH, &format!("Appointment/{second_id}"))
                .header("Content-Type", "application/json-patch+json")
                .body(patch.to_string()),
        )
        .await;
    assert_eq!(patched.code(), 200, "{}", patched.text());
    assert_eq!(patched.json()["id"], second_id);
    assert_eq!(a.read("Appointment", second_id.trim_start_matches("a.")).await["description"], "Physiotherapie, Knie");

    // A direct client of the practice and a platform client race for one slot: booked once.
    for round in 0..3 {
        let slot = format!("slot-{}", [0, 2, 4][round]);
        let direct_request = book_request(&proposal("pat-direct", &slot, ""), &[]);
        let platform_request = book_request(&proposal("pat-anna", &format!("a.{slot}"), "a."), &[]);
        let (direct, relayed) =
            tokio::join!(a.post("Appointment/$book", &direct_request), platform.post("Appointment/$book", &platform_request));
        let codes = [direct.code(), relayed.code()];
        assert_eq!(codes.iter().filter(|c| **c == 201).count(), 1, "{slot}: {codes:?} {} {}", direct.text(), relayed.text());
        assert!(codes.contains(&409), "{slot}: the loser is told the slot is taken: {codes:?}");
        let booked_there = a.get(&format!("Appointment?slot=Slot/{slot}&status=booked")).await.expect_status(200).json();
        assert_eq!(match_resources(&booked_there).len(), 1, "{slot} is booked once at the practice");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn platforms_cascade_and_a_loop_is_refused() {
    let (a, b) = tokio::join!(TestServer::start(), TestServer::start());
    tokio::join!(practice(&a, "A", 3), practice(&b, "B", 2));
    let inner = TestServer::start_with(platform_options("inner", &[("a", a.base()), ("b", b.base())])).await;
    let outer = TestServer::start_with(platform_options("outer", &[("region", inner.base())])).await;

    let slots = outer.all_entries("Slot?status=free&_count=4").await;
    let ids: BTreeSet<String> =
        slots.iter().filter(|e| e["search"]["mode"] == "match").map(|e| e["resource"]["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ids.len(), 2 * SLOTS, "{ids:?}");
    assert!(ids.contains("region.a.slot-0") && ids.contains("region.b.slot-4"), "{ids:?}");
    // The resource names its origin, not the platform in between.
    let read = outer.read("Slot", "region.b.slot-2").await;
    assert_eq!(read["meta"]["source"], format!("{}/Slot/slot-2", b.base()));
    assert_eq!(read["schedule"]["reference"], "Schedule/region.b.sch");
    // A hold through both platforms lands at the practice.
    outer.post("Slot/$hold", &hold_request("region.b.slot-2", "busy-tentative")).await.expect_status(200);
    assert_eq!(slot_status(&b, "slot-2").await, "busy-tentative");

    // A platform that is its own upstream: the relayed request comes back and is refused.
    let port = refusing_address();
    let looped = TestServer::start_with(
        platform_options("loop", &[("self", format!("http://{port}/fhir"))]).without_bind_flag().flag("--bind", port.clone()),
    )
    .await;
    let answer = looped.get("Slot?status=free").await.expect_status(200).json();
    let warnings = outcome_text(&answer);
    assert!(warnings.contains("508") && warnings.contains("loop"), "{warnings}");
    let refused = looped.send(looped.request(Method::GET, "Slot").header("X-Termin-Via", "elsewhere, loop")).await;
    assert_eq!(refused.code(), 508, "{}", refused.text());
    assert_issue_code(&refused.json(), "processing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_platform_may_cache_the_directory_but_not_free_slots() {
    let a = TestServer::start().await;
    practice(&a, "A", 3).await;
    let platform =
        TestServer::start_with(platform_options("central", &[("a", a.base())]).flag("--directory-cache-ttl", "1h")).await;
    let services = |bundle: Value| ids_of(&match_resources(&bundle));
    assert_eq!(services(platform.get("HealthcareService").await.expect_status(200).json()), ["a.hcs"]);
    assert_eq!(ids_of(&match_resources(&platform.get("Slot?status=free").await.expect_status(200).json())).len(), SLOTS);
    // The practice changes its directory and books a slot.
    put_resource(&a, &json!({"resourceType": "HealthcareService", "id": "hcs-new", "active": true, "name": "Neu"})).await;
    let mut direct = patient(SVNR_SYSTEM, "2345020290", "Berger");
    direct["id"] = json!("pat-direct");
    put_resource(&a, &direct).await;
    a.post("Appointment/$book", &book_request(&proposal("pat-direct", "slot-0", ""), &[])).await.expect_status(201);
    // The directory search is answered from the cache; free slots are asked for again; reads
    // are always relayed.
    assert_eq!(services(platform.get("HealthcareService").await.expect_status(200).json()), ["a.hcs"]);
    let free = ids_of(&match_resources(&platform.get("Slot?status=free").await.expect_status(200).json()));
    assert_eq!(free.len(), SLOTS - 1, "{free:?}");
    assert!(!free.contains(&"a.slot-0".to_owned()));
    assert_eq!(platform.read("HealthcareService", "a.hcs-new").await["name"], "Neu");
    // Another query is not cached yet: it sees the new service.
    let fresh = services(platform.get("HealthcareService?_count=5").await.expect_status(200).json());
    assert_eq!(fresh.len(), 2, "{fresh:?}");
}
