//! Central scheduling platform mode (issue 21) with real processes: two practices with their
//! own data, a platform aggregating them (plus an upstream that refuses connections and one
//! that never answers), a second platform cascaded on the first, and a platform that is its
//! own upstream (a loop). Everything speaks HTTP.

mod oidc_support;
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
    entries(bundle)
        .into_iter()
        .filter(|e| e["search"]["mode"] == "outcome")
        .map(|e| e["resource"].to_string())
        .collect()
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
        &[
            ("a", a.base()),
            ("b", b.base()),
            ("down", format!("http://{}/fhir", refusing_address())),
            ("slow", format!("http://{silent}/fhir")),
        ],
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
    let services: BTreeSet<String> = services
        .iter()
        .filter(|e| e["search"]["mode"] == "match")
        .map(|e| e["resource"]["id"].as_str().unwrap().to_owned())
        .collect();
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
        .map(|e| {
            format!("{}/{}", e["resource"]["resourceType"].as_str().unwrap(), e["resource"]["id"].as_str().unwrap())
        })
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
    assert!(
        documentation.contains("Central scheduling platform \"central\"") && documentation.contains("a, b"),
        "{documentation}"
    );
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
        let (direct, relayed) = tokio::join!(
            a.post("Appointment/$book", &direct_request),
            platform.post("Appointment/$book", &platform_request)
        );
        let codes = [direct.code(), relayed.code()];
        assert_eq!(
            codes.iter().filter(|c| **c == 201).count(),
            1,
            "{slot}: {codes:?} {} {}",
            direct.text(),
            relayed.text()
        );
        assert!(codes.contains(&409), "{slot}: the loser is told the slot is taken: {codes:?}");
        let booked_there =
            a.get(&format!("Appointment?slot=Slot/{slot}&status=booked")).await.expect_status(200).json();
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
    let ids: BTreeSet<String> = slots
        .iter()
        .filter(|e| e["search"]["mode"] == "match")
        .map(|e| e["resource"]["id"].as_str().unwrap().to_owned())
        .collect();
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
        platform_options("loop", &[("self", format!("http://{port}/fhir"))])
            .without_bind_flag()
            .flag("--bind", port.clone()),
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
    let platform = TestServer::start_with(
        platform_options("central", &[("a", a.base())])
            .flag("--directory-cache-ttl", "1h")
            .flag("--upstream-subscriptions", "false"),
    )
    .await;
    let services = |bundle: Value| ids_of(&match_resources(&bundle));
    assert_eq!(services(platform.get("HealthcareService").await.expect_status(200).json()), ["a.hcs"]);
    assert_eq!(
        ids_of(&match_resources(&platform.get("Slot?status=free").await.expect_status(200).json())).len(),
        SLOTS
    );
    // The practice changes its directory and books a slot.
    put_resource(&a, &json!({"resourceType": "HealthcareService", "id": "hcs-new", "active": true, "name": "Neu"}))
        .await;
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

/// A practice's `$findHSP` answer in comparable form: the matched services, the included
/// providers and the providers named with an earliest free slot, each without the `scope.`
/// prefix of the platform's ids.
fn providers_found(bundle: &Value, scope: &str) -> (Vec<String>, BTreeSet<String>, BTreeSet<String>) {
    let unscoped = |reference: &str| reference.replacen(&format!("/{scope}."), "/", 1);
    let services = ids_of(&match_resources(bundle))
        .into_iter()
        .filter_map(|id| id.strip_prefix(&format!("{scope}.")).map(str::to_owned))
        .collect();
    let included = entries(bundle)
        .into_iter()
        .filter(|e| e["search"]["mode"] == "include")
        .map(|e| {
            format!("{}/{}", e["resource"]["resourceType"].as_str().unwrap(), e["resource"]["id"].as_str().unwrap())
        })
        .filter(|reference| reference.contains(&format!("/{scope}.")))
        .map(|reference| unscoped(&reference))
        .collect();
    let earliest = entries(bundle)
        .into_iter()
        .filter(|e| e["search"]["mode"] == "match")
        .flat_map(|e| e["extension"].as_array().cloned().unwrap_or_default())
        .filter(|x| x["url"] == "https://termin.at/fhir/StructureDefinition/earliest-free-slot")
        .map(|x| {
            let part =
                |name: &str| x["extension"].as_array().unwrap().iter().find(|p| p["url"] == name).cloned().unwrap();
            format!(
                "{} {}",
                part("provider")["valueReference"]["reference"].as_str().unwrap(),
                part("slot")["valueReference"]["reference"].as_str().unwrap()
            )
        })
        .filter(|text| text.contains(&format!("/{scope}.")))
        .map(|text| text.replace(&format!("/{scope}."), "/"))
        .collect();
    (services, included, earliest)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_upstream_without_find_hsp_is_searched_for_providers() {
    // Practice C's server does not offer $findHSP (a plain FHIR Scheduling Server); its free
    // slots are the earliest.
    let (a, c) = tokio::join!(
        TestServer::start(),
        TestServer::start_with(ServerOptions::new().flag("--disable-operation", "findHSP"))
    );
    tokio::join!(practice(&a, "A", 3), practice(&c, "C", 1));
    let find = format!("HealthcareService/$findHSP?healthcareService-type={SERVICE_TYPE}%7C65");
    let refused = c.get(&find).await.expect_status(404).json();
    assert_issue_code(&refused, "not-found");
    let metadata = c.get("metadata").await.expect_status(200).json();
    assert!(!metadata.to_string().contains("findHSP"), "C's CapabilityStatement does not offer it");
    let platform = TestServer::start_with(platform_options("central", &[("a", a.base()), ("c", c.base())])).await;

    // Both practices' providers, C's first (earliest free slot), without a warning about C.
    let found = platform.get(&find).await.expect_status(200).json();
    assert_eq!(ids_of(&match_resources(&found)), ["c.hcs", "a.hcs"]);
    let notes = outcome_text(&found);
    assert!(notes.contains("PractitionerRole/c.role: earliest free slot Slot/c.slot-0"), "{notes}");
    let warned_about_c = entries(&found)
        .into_iter()
        .filter(|e| e["search"]["mode"] == "outcome")
        .flat_map(|e| e["resource"]["issue"].as_array().cloned().unwrap_or_default())
        .any(|issue| {
            issue["severity"] == "warning" && issue["diagnostics"].as_str().unwrap_or_default().contains("Upstream c")
        });
    assert!(!warned_about_c, "{notes}");
    // The answer built from C's searches has the shape of A's own $findHSP answer.
    let (from_a, from_c) = (providers_found(&found, "a"), providers_found(&found, "c"));
    assert_eq!(from_c.0, ["hcs"]);
    assert_eq!(from_a, from_c, "A: {from_a:?}, C: {from_c:?}");
    assert!(from_c.1.contains("PractitionerRole/role") && from_c.1.contains("Organization/org"), "{from_c:?}");
    assert!(from_c.2.contains("PractitionerRole/role Slot/slot-0"), "{from_c:?}");

    // The merged sequence pages across both kinds of upstream.
    let pages = platform.pages(&format!("{find}&_count=1")).await;
    let shown: Vec<String> = pages.iter().flat_map(|p| ids_of(&match_resources(p))).collect();
    assert_eq!(shown, ["c.hcs", "a.hcs"]);

    // A booked slot is no longer C's earliest.
    let mut direct = patient(SVNR_SYSTEM, "2345020290", "Berger");
    direct["id"] = json!("pat-direct");
    put_resource(&c, &direct).await;
    c.post("Appointment/$book", &book_request(&proposal("pat-direct", "slot-0", ""), &[])).await.expect_status(201);
    let notes = outcome_text(&platform.get(&find).await.expect_status(200).json());
    assert!(notes.contains("PractitionerRole/c.role: earliest free slot Slot/c.slot-1"), "{notes}");

    // What searches can express is applied (a zip code area where neither practice is);
    // what they cannot is named.
    let nowhere = platform.get(&format!("{find}&healthcareService-zipCodeArea=99")).await.expect_status(200).json();
    assert!(match_resources(&nowhere).is_empty(), "{nowhere}");
    let near = platform.get(&format!("{find}&near=47.8%7C13.0%7C5%7Ckm")).await.expect_status(200).json();
    let notes = outcome_text(&near);
    assert!(notes.contains("Upstream c") && notes.contains("near not applied"), "{notes}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_booked_at_the_providers_own_page_is_passed_through_and_not_booked_here() {
    let a = TestServer::start().await;
    practice(&a, "A", 3).await;
    const BOOKING_URL: &str = "https://fhir.hl7.at/tc/wg/scheduling/r5/StructureDefinition/appointment-booking-url";
    let page = "https://booking.example.com/slot/297c0007-f8d1-4e47-bddb-a47978607f65";
    let mut slot = a.read("Slot", "slot-2").await;
    slot["extension"] = json!([{"url": BOOKING_URL, "valueUri": page}]);
    put_resource(&a, &slot).await;
    let platform = TestServer::start_with(platform_options("central", &[("a", a.base())])).await;
    let mut anna = patient(SVNR_SYSTEM, "1234010180", "Huber");
    anna["id"] = json!("pat-anna");
    put_resource(&platform, &anna).await;

    // The extension reaches the client unchanged, in searches and reads.
    let read = platform.read("Slot", "a.slot-2").await;
    assert_eq!(read["extension"], json!([{"url": BOOKING_URL, "valueUri": page}]));
    let found = platform.get("Slot?schedule=Schedule/a.sch&status=free").await.expect_status(200).json();
    let listed = match_resources(&found).into_iter().find(|s| s["id"] == "a.slot-2").unwrap();
    assert_eq!(listed["extension"][0]["valueUri"], page);

    // $book of it tells the client to redirect; nothing is booked or created at the practice.
    let answer = platform.post("Appointment/$book", &book_request(&proposal("pat-anna", "a.slot-2", "a."), &[])).await;
    assert_eq!(answer.code(), 409, "{}", answer.text());
    let outcome = answer.json();
    assert_issue_code(&outcome, "business-rule");
    assert_eq!(outcome["issue"][0]["details"]["text"], page);
    assert_eq!(outcome["issue"][0]["expression"][0], "Appointment.slot[0]");
    assert_eq!(slot_status(&a, "slot-2").await, "free");
    let booked = a.get("Appointment").await.expect_status(200).json();
    assert!(match_resources(&booked).is_empty(), "{booked}");
    let patients = a.get("Patient").await.expect_status(200).json();
    assert!(match_resources(&patients).is_empty(), "no patient is created for a booking that does not happen");
    // Other slots of the same practice are booked through the platform as before.
    let other = platform.post("Appointment/$book", &book_request(&proposal("pat-anna", "a.slot-3", "a."), &[])).await;
    assert_eq!(other.code(), 201, "{}", other.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstreams_directory_change_refreshes_the_platforms_cache() {
    let a = TestServer::start_with(ServerOptions::new().flag("--notify-interval", "100ms")).await;
    practice(&a, "A", 3).await;
    let platform =
        TestServer::start_with(platform_options("central", &[("a", a.base())]).flag("--directory-cache-ttl", "1h"))
            .await;
    let services =
        async || ids_of(&match_resources(&platform.get("HealthcareService").await.expect_status(200).json()));
    assert_eq!(services().await, ["a.hcs"]);

    // The platform subscribed at the practice to its directory-changed topic, before caching.
    let subscriptions = match_resources(&a.get("Subscription").await.expect_status(200).json());
    assert_eq!(subscriptions.len(), 1, "{subscriptions:?}");
    assert_eq!(subscriptions[0]["topic"], format!("{}/SubscriptionTopic/directory-changed", a.base()));
    let id = subscriptions[0]["id"].as_str().unwrap().to_owned();
    until("the platform's Subscription is active", std::time::Duration::from_secs(30), async || {
        a.read("Subscription", &id).await["status"] == "active"
    })
    .await;
    let topic = a.get("SubscriptionTopic/directory-changed").await.expect_status(200).json();
    assert_eq!(topic["resourceTrigger"].as_array().unwrap().len(), 6, "{topic}");

    // The practice changes its directory: the cached answer changes, long before the hour.
    put_resource(&a, &json!({"resourceType": "HealthcareService", "id": "hcs-new", "active": true, "name": "Neu"}))
        .await;
    until("the platform shows the new service", std::time::Duration::from_secs(30), async || {
        services().await.len() == 2
    })
    .await;
    let mut renamed = a.read("HealthcareService", "hcs").await;
    renamed["name"] = json!("Physiotherapie A, neu");
    put_resource(&a, &renamed).await;
    until("the platform shows the new name", std::time::Duration::from_secs(30), async || {
        let found = platform.get("HealthcareService?_id=a.hcs").await.expect_status(200).json();
        match_resources(&found).first().is_some_and(|s| s["name"] == "Physiotherapie A, neu")
    })
    .await;

    // Notifications need the platform's secret and name an upstream it has.
    let notification = json!({"resourceType": "Bundle", "type": "subscription-notification", "entry": [
        {"resource": {"resourceType": "SubscriptionStatus", "type": "event-notification"}}]});
    let client = reqwest::Client::new();
    let root = platform.base().trim_end_matches("/fhir").to_owned();
    let guessed = client
        .post(format!("{root}/platform/notifications/a"))
        .header("X-Termin-Platform-Secret", "guess")
        .json(&notification)
        .send()
        .await
        .unwrap();
    assert_eq!(guessed.status().as_u16(), 401);
    let unknown = client.post(format!("{root}/platform/notifications/zz")).json(&notification).send().await.unwrap();
    assert_eq!(unknown.status().as_u16(), 404);
}

/// The subject and client of the platform's system token at the practice.
const PLATFORM_CLIENT: &str = "termin-platform";

/// A token signed with the test keys (`tests/auth_keys`) for `subject` of app `client` with
/// `scope`, launched for `patient` when given.
fn signed(subject: &str, client: &str, scope: &str, patient: Option<&str>) -> String {
    let mut claims = tokens::claims(subject, scope);
    claims["client_id"] = json!(client);
    if let Some(patient) = patient {
        claims["patient"] = json!(patient);
    }
    tokens::sign(&claims)
}

/// The AuditEvents recorded for request `request_id` (the platform relays the id), once at
/// least one is stored (read events are written in the background), as `auditor` finds them.
async fn audit_events_of(s: &TestServer, auditor: &str, request_id: &str) -> Vec<Value> {
    let mut found = Vec::new();
    until(&format!("an AuditEvent of {request_id}"), std::time::Duration::from_secs(20), async || {
        let all = call(s, Method::GET, "AuditEvent?_count=500", Some(auditor), None).await.expect_status(200).json();
        found = match_resources(&all)
            .into_iter()
            .filter(|e| {
                e["entity"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|entity| entity["what"]["identifier"]["value"] == request_id)
            })
            .collect();
        !found.is_empty()
    })
    .await;
    found
}

fn entity_references(event: &Value) -> BTreeSet<String> {
    event["entity"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["what"]["reference"].as_str().map(str::to_owned))
        .collect()
}

/// A practice with authorization on, the platform holding a static system token for it and
/// authorization of its own: a patient's token relays only for its patient (bookings, reads,
/// changes), the practice accepts the platform's system token acting for that patient, and
/// both record the relayed booking in their audit trails under the same request id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patient_relays_only_for_itself_and_both_sides_audit_the_relay() {
    let mut a = TestServer::start().await;
    practice(&a, "A", 3).await;
    let options = tokens::with_test_jwks(a.options().clone());
    a.restart_with(options).await;
    let practice_admin = signed("practice-admin", "practice-app", "system/*.cruds", None);
    let platform_token = signed(PLATFORM_CLIENT, PLATFORM_CLIENT, "system/*.cruds", None);
    let config = format!(
        "platform_name = \"central\"\nupstream_timeout = \"5s\"\n\n[[upstream]]\nname = \"a\"\nurl = \"{}\"\nauth = {{ type = \"bearer\", token = \"{platform_token}\" }}\n",
        a.base()
    );
    let platform = TestServer::start_with(
        tokens::with_test_jwks(ServerOptions::new())
            .config_file("platform.toml", config)
            .flag("--public-booking", "true"),
    )
    .await;
    let admin = signed("platform-admin", "platform-app", "system/*.cruds", None);
    for (id, svnr, family) in [("pat-anna", "1234010180", "Huber"), ("pat-berta", "2345020290", "Berger")] {
        let mut resource = patient(SVNR_SYSTEM, svnr, family);
        resource["id"] = json!(id);
        call(&platform, Method::PUT, &format!("Patient/{id}"), Some(&admin), Some(&resource)).await.expect_status(201);
    }
    let anna = signed("anna", "patient-app", "patient/*.cruds", Some("pat-anna"));
    let as_anna = |method: Method, path: &str, body: Option<&Value>, request_id: &str| {
        platform.request_as(method, path, Some(&anna), body).header("x-request-id", request_id.to_owned())
    };

    // Anna books at the practice through the platform, for herself.
    let booked = platform
        .send(as_anna(
            Method::POST,
            "Appointment/$book",
            Some(&book_request(&proposal("pat-anna", "a.slot-1", "a."), &[])),
            "relay-book",
        ))
        .await;
    assert_eq!(booked.code(), 201, "{}", booked.text());
    let appointment = param_resource(&booked.json(), "appointment");
    let id = appointment["id"].as_str().unwrap().to_owned();
    let own_id = id.strip_prefix("a.").unwrap().to_owned();
    let at_practice = call(&a, Method::GET, &format!("Appointment/{own_id}"), Some(&practice_admin), None)
        .await
        .expect_status(200)
        .json();
    let anna_there = at_practice["subject"]["reference"].as_str().unwrap().trim_start_matches("Patient/").to_owned();
    let anna_record = call(&a, Method::GET, &format!("Patient/{anna_there}"), Some(&practice_admin), None)
        .await
        .expect_status(200)
        .json();
    assert_eq!(
        anna_record["identifier"][0]["value"], "1234010180",
        "the practice's Patient is Anna's, matched by SVNR"
    );
    assert_eq!(appointment["subject"]["reference"], format!("Patient/a.{anna_there}"));

    // The platform recorded the relay once: Anna's token, her patient, the practice's Appointment.
    let events = audit_events_of(&platform, &admin, "relay-book").await;
    assert_eq!(events.len(), 1, "exactly one platform AuditEvent: {events:#?}");
    let event = &events[0];
    assert_eq!(event["code"]["coding"][0]["code"], "$book", "{event:#}");
    assert_eq!(event["action"], "E");
    assert_eq!(event["outcome"]["code"]["code"], "0", "{event:#}");
    assert_eq!(event["agent"][0]["who"]["identifier"]["value"], "anna", "{event:#}");
    assert_eq!(event["agent"][1]["who"]["identifier"]["value"], "patient-app", "{event:#}");
    assert_eq!(event["patient"]["reference"], "Patient/pat-anna", "{event:#}");
    let named = entity_references(event);
    for expected in
        [format!("Appointment/{id}"), format!("{}/Appointment/{own_id}", a.base()), format!("Patient/a.{anna_there}")]
    {
        assert!(named.contains(&expected), "{expected} not in {named:?}");
    }
    // The practice recorded its own: the platform's system token acting for Anna's record there.
    let there = audit_events_of(&a, &practice_admin, "relay-book").await;
    assert_eq!(there.len(), 1, "{there:#?}");
    assert_eq!(there[0]["code"]["coding"][0]["code"], "$book");
    assert_eq!(there[0]["agent"][0]["who"]["identifier"]["value"], PLATFORM_CLIENT, "{:#}", there[0]);
    assert_eq!(there[0]["patient"]["reference"], format!("Patient/{anna_there}"), "{:#}", there[0]);

    // Anna cannot book for Berta, by reference here or at the practice, or by identifier.
    let for_berta = book_request(&proposal("pat-berta", "a.slot-2", "a."), &[]);
    let refused = platform.send(as_anna(Method::POST, "Appointment/$book", Some(&for_berta), "refused-1")).await;
    assert_eq!(refused.code(), 403, "{}", refused.text());
    let mut by_identifier = proposal("pat-anna", "a.slot-2", "a.");
    by_identifier["subject"] = json!({"identifier": {"system": SVNR_SYSTEM, "value": "2345020290"}});
    by_identifier["participant"].as_array_mut().unwrap().remove(0);
    let refused = platform
        .send(as_anna(Method::POST, "Appointment/$book", Some(&book_request(&by_identifier, &[])), "refused-2"))
        .await;
    assert_eq!(refused.code(), 403, "{}", refused.text());
    assert_eq!(
        call(&a, Method::GET, "Slot/slot-2", Some(&practice_admin), None).await.expect_status(200).json()["status"],
        "free"
    );

    // Berta books at the practice directly; through the platform Anna neither sees nor changes it.
    let mut berta = patient(SVNR_SYSTEM, "2345020290", "Berger");
    berta["id"] = json!("berta-there");
    call(&a, Method::PUT, "Patient/berta-there", Some(&practice_admin), Some(&berta)).await.expect_status(201);
    let direct = call(
        &a,
        Method::POST,
        "Appointment/$book",
        Some(&practice_admin),
        Some(&book_request(&proposal("berta-there", "slot-3", ""), &[])),
    )
    .await;
    assert_eq!(direct.code(), 201, "{}", direct.text());
    let berta_appointment = param_resource(&direct.json(), "appointment")["id"].as_str().unwrap().to_owned();
    let hidden =
        platform.send(as_anna(Method::GET, &format!("Appointment/a.{berta_appointment}"), None, "hidden")).await;
    assert_eq!(hidden.code(), 404, "{}", hidden.text());
    let mut cancelled =
        call(&a, Method::GET, &format!("Appointment/{berta_appointment}"), Some(&practice_admin), None).await.json();
    let mut localized = cancelled.clone();
    localized["id"] = json!(format!("a.{berta_appointment}"));
    localized["status"] = json!("cancelled");
    let refused = platform
        .send(as_anna(Method::PUT, &format!("Appointment/a.{berta_appointment}"), Some(&localized), "refused-3"))
        .await;
    assert_eq!(refused.code(), 403, "{}", refused.text());
    cancelled =
        call(&a, Method::GET, &format!("Appointment/{berta_appointment}"), Some(&practice_admin), None).await.json();
    assert_eq!(cancelled["status"], "booked", "Berta's booking is untouched");
    platform.send(as_anna(Method::GET, "Patient/a.berta-there", None, "refused-4")).await.expect_status(403);
    let search =
        platform.send(as_anna(Method::GET, &format!("Appointment?_id=a.{berta_appointment}"), None, "refused-5")).await;
    assert_eq!(search.code(), 403, "{}", search.text());
    // Nor can she, or anyone without a token, probe Berta's bookings at the practice with _has.
    let probe = "Slot?_has:Appointment:slot:patient=Patient/a.berta-there";
    let probed = platform.send(as_anna(Method::GET, probe, None, "refused-6")).await;
    assert_eq!(probed.code(), 403, "{}", probed.text());
    let probed = platform.get(probe).await;
    assert_eq!(probed.code(), 403, "{}", probed.text());
    let chained = platform.get("Slot?schedule.actor:Patient.identifier=2345020290").await;
    assert_eq!(chained.code(), 403, "{}", chained.text());
    // Her own, she reads and cancels.
    let mut own = platform
        .send(as_anna(Method::GET, &format!("Appointment/{id}"), None, "own-read"))
        .await
        .expect_status(200)
        .json();
    assert_eq!(own["subject"]["reference"], format!("Patient/a.{anna_there}"));
    platform
        .send(as_anna(Method::GET, &format!("Patient/a.{anna_there}"), None, "own-patient"))
        .await
        .expect_status(200);
    own["status"] = json!("cancelled");
    own["cancellationReason"] = json!({"coding": [{"system": "http://terminology.hl7.org/CodeSystem/appointment-cancellation-reason", "code": "pat"}]});
    let cancelled = platform.send(as_anna(Method::PUT, &format!("Appointment/{id}"), Some(&own), "own-cancel")).await;
    assert_eq!(cancelled.code(), 200, "{}", cancelled.text());
    let read_event = &audit_events_of(&platform, &admin, "own-read").await[0];
    assert_eq!(read_event["action"], "R", "{read_event:#}");
    assert_eq!(read_event["patient"]["reference"], "Patient/pat-anna", "{read_event:#}");
    let refused_event = &audit_events_of(&platform, &admin, "refused-3").await[0];
    assert_eq!(refused_event["outcome"]["code"]["code"], "4", "refusals are recorded: {refused_event:#}");

    // An anonymous public booking is relayed with the platform's token too.
    let anonymous = platform
        .send(platform.request_as(
            Method::POST,
            "Appointment/$book",
            None,
            Some(&book_request(&proposal("pat-berta", "a.slot-4", "a."), &[])),
        ))
        .await;
    assert_eq!(anonymous.code(), 201, "{}", anonymous.text());
    assert_eq!(call(&a, Method::GET, "Slot/slot-4", Some(&practice_admin), None).await.json()["status"], "busy");

    // A relayed hold is recorded as a local one is.
    platform
        .send(as_anna(Method::POST, "Slot/$hold", Some(&hold_request("a.slot-0", "busy-tentative")), "relay-hold"))
        .await
        .expect_status(200);
    let hold_events = audit_events_of(&platform, &admin, "relay-hold").await;
    assert_eq!(hold_events.len(), 1, "{hold_events:#?}");
    assert_eq!(hold_events[0]["code"]["coding"][0]["code"], "$hold");
    let named = entity_references(&hold_events[0]);
    assert!(named.contains("Slot/a.slot-0") && named.contains(&format!("{}/Slot/slot-0", a.base())), "{named:?}");

    // A search that reaches an upstream's patient data (a system token may) is recorded too.
    let searched = platform
        .send(
            platform
                .request_as(Method::GET, &format!("Appointment?_id={id}"), Some(&admin), None)
                .header("x-request-id", "relay-search"),
        )
        .await
        .expect_status(200)
        .json();
    assert_eq!(ids_of(&match_resources(&searched)), std::slice::from_ref(&id));
    let search_events = audit_events_of(&platform, &admin, "relay-search").await;
    assert_eq!(search_events.len(), 1, "{search_events:#?}");
    assert_eq!(search_events[0]["code"]["coding"][0]["code"], "search-type");
    assert_eq!(search_events[0]["patient"]["reference"], format!("Patient/a.{anna_there}"), "{:#}", search_events[0]);
    assert!(entity_references(&search_events[0]).contains(&format!("{}/Appointment/{own_id}", a.base())));
    // A system token's read names the practice's patient record.
    platform
        .send(
            platform
                .request_as(Method::GET, &format!("Appointment/{id}"), Some(&admin), None)
                .header("x-request-id", "system-read"),
        )
        .await
        .expect_status(200);
    let read_events = audit_events_of(&platform, &admin, "system-read").await;
    assert_eq!(read_events.len(), 1, "{read_events:#?}");
    assert_eq!(read_events[0]["patient"]["reference"], format!("Patient/a.{anna_there}"), "{:#}", read_events[0]);
    assert_eq!(read_events[0]["agent"][0]["who"]["identifier"]["value"], "platform-admin");
}

/// The platform gets its token at the practice from a real identity provider (npm
/// `oidc-provider`) by the client-credentials grant, and the practice, which trusts that
/// provider, accepts it for a patient's booking relayed by the platform.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_platform_gets_its_upstream_token_by_client_credentials() {
    let provider = oidc_support::start_provider(&[(PLATFORM_CLIENT, "platform-secret", "system/*.cruds")]);
    let mut a = TestServer::start().await;
    practice(&a, "A", 3).await;
    let options = a.options().clone().flag("--auth-issuer", &provider.issuer).flag("--auth-audience", tokens::AUDIENCE);
    a.restart_with(options).await;
    a.get("Appointment").await.expect_status(401);
    let config = format!(
        "platform_name = \"central\"\n\n[[upstream]]\nname = \"a\"\nurl = \"{}\"\nauth = {{ type = \"client-credentials\", token_url = \"{}/token\", client_id = \"{PLATFORM_CLIENT}\", client_secret = \"platform-secret\", scope = \"system/*.cruds\" }}\n",
        a.base(),
        provider.issuer
    );
    let platform =
        TestServer::start_with(tokens::with_test_jwks(ServerOptions::new()).config_file("platform.toml", config)).await;
    let admin = signed("platform-admin", "platform-app", "system/*.cruds", None);
    let mut anna = patient(SVNR_SYSTEM, "1234010180", "Huber");
    anna["id"] = json!("pat-anna");
    call(&platform, Method::PUT, "Patient/pat-anna", Some(&admin), Some(&anna)).await.expect_status(201);
    let token = signed("anna", "patient-app", "patient/*.cruds", Some("pat-anna"));
    let request = book_request(&proposal("pat-anna", "a.slot-2", "a."), &[]);
    let booked = call(&platform, Method::POST, "Appointment/$book", Some(&token), Some(&request)).await;
    assert_eq!(booked.code(), 201, "{}", booked.text());
    let id = param_resource(&booked.json(), "appointment")["id"].as_str().unwrap().to_owned();
    let read =
        call(&platform, Method::GET, &format!("Appointment/{id}"), Some(&token), None).await.expect_status(200).json();
    assert_eq!(read["status"], "booked");
    let slot = call(&platform, Method::GET, "Slot/a.slot-2", Some(&admin), None).await.expect_status(200).json();
    assert_eq!(slot["status"], "busy");
}
