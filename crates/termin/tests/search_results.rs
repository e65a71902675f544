//! What a search returns: chains, `_has`, `_include`/`_revinclude`, `_sort`, `_count`,
//! `_total`, `_summary=count`, `_elements`, `POST _search`, and lenient/strict handling.

mod support;

use reqwest::Method;
use serde_json::{Value, json};
use support::*;

async fn put(s: &TestServer, resource: Value) {
    let ty = resource["resourceType"].as_str().unwrap().to_owned();
    let id = id_of(&resource);
    let r = s.put(&format!("{ty}/{id}"), &resource).await;
    assert!(matches!(r.code(), 200 | 201), "PUT {ty}/{id}: {}", r.text());
}

fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}

fn included(bundle: &Value) -> Vec<String> {
    let mut out: Vec<String> = entries(bundle)
        .iter()
        .filter(|e| e["search"]["mode"] == "include")
        .map(|e| format!("{}/{}", e["resource"]["resourceType"].as_str().unwrap(), id_of(&e["resource"])))
        .collect();
    out.sort();
    out
}

fn outcome_entries(bundle: &Value) -> Vec<Value> {
    entries(bundle)
        .into_iter()
        .filter(|e| e["search"]["mode"] == "outcome")
        .map(|e| e["resource"].clone())
        .collect()
}

/// Two practitioners with roles and schedules, slots on them, a patient and appointments.
async fn practice(s: &TestServer) {
    put(s, json!({"resourceType": "Organization", "id": "org", "name": "Ordination", "active": true})).await;
    for (id, family) in [("doc1", "Gruber"), ("doc2", "Wagner")] {
        put(s, json!({"resourceType": "Practitioner", "id": id, "name": [{"family": family}],
                      "identifier": [{"system": "urn:oid:1.2.40.0.10.1.4.3.2", "value": format!("{id}-gda")}]})).await;
        put(s, json!({"resourceType": "PractitionerRole", "id": format!("{id}-role"), "active": true,
                      "practitioner": {"reference": format!("Practitioner/{id}")},
                      "organization": {"reference": "Organization/org"}})).await;
        put(s, json!({"resourceType": "Schedule", "id": format!("{id}-schedule"), "active": true,
                      "actor": [{"reference": format!("PractitionerRole/{id}-role")}]})).await;
    }
    for (i, doc) in ["doc1", "doc1", "doc1", "doc2", "doc2"].iter().enumerate() {
        put(s, json!({"resourceType": "Slot", "id": format!("slot{i}"),
                      "schedule": {"reference": format!("Schedule/{doc}-schedule")},
                      "status": if i == 0 { "busy-unavailable" } else { "free" },
                      "start": format!("2026-04-{:02}T09:00:00+02:00", 7 + (4 - i)),
                      "end": format!("2026-04-{:02}T09:30:00+02:00", 7 + (4 - i))})).await;
    }
    put(s, json!({"resourceType": "Patient", "id": "pat",
                  "identifier": [{"system": "urn:oid:1.2.40.0.10.1.4.3.1", "value": "1234010180"}]})).await;
    put(s, json!({"resourceType": "Appointment", "id": "appt", "status": "proposed",
                  "participant": [{"actor": {"reference": "Patient/pat"}, "status": "accepted"},
                                  {"actor": {"reference": "PractitionerRole/doc1-role"}, "status": "accepted"}]})).await;
}

#[tokio::test]
async fn chains_and_has() {
    let s = TestServer::start().await;
    practice(&s).await;
    let cases: &[(&str, &[&str])] = &[
        ("Slot?schedule.actor=PractitionerRole/doc1-role", &["slot0", "slot1", "slot2"]),
        ("Slot?schedule.actor:PractitionerRole.practitioner.name=wagner", &["slot3", "slot4"]),
        ("Slot?schedule:Schedule.actor=PractitionerRole/doc2-role&status=free", &["slot3", "slot4"]),
        ("Appointment?actor:Patient.identifier=urn:oid:1.2.40.0.10.1.4.3.1|1234010180", &["appt"]),
        ("Appointment?actor:PractitionerRole.practitioner=Practitioner/doc1", &["appt"]),
        ("Appointment?actor.identifier=1234010180", &["appt"]),
        ("Patient?_has:Appointment:actor:status=proposed", &["pat"]),
        ("Schedule?_has:Slot:schedule:status=busy-unavailable", &["doc1-schedule"]),
        ("Schedule?_has:Slot:schedule:status=free", &["doc1-schedule", "doc2-schedule"]),
        ("Practitioner?_has:PractitionerRole:practitioner:_has:Schedule:actor:_id=doc2-schedule", &["doc2"]),
    ];
    for (query, expected) in cases {
        let page = s.get(query).await.expect_status(200).json();
        let expected: Vec<String> = expected.iter().map(|e| e.to_string()).collect();
        assert_eq!(sorted(match_ids(&page)), expected, "{query}: {page}");
        assert!(outcome_entries(&page).is_empty(), "{query}: {page}");
    }
}

#[tokio::test]
async fn includes_and_revincludes_with_iterate() {
    let s = TestServer::start().await;
    practice(&s).await;
    let page = s.get("Slot?_id=slot3&_include=Slot:schedule").await.expect_status(200).json();
    assert_eq!(match_ids(&page), ["slot3"]);
    assert_eq!(included(&page), ["Schedule/doc2-schedule"]);
    assert_eq!(page["total"], 1, "includes do not count: {page}");
    let page = s
        .get("Slot?_id=slot3&_include=Slot:schedule&_include:iterate=Schedule:actor&_include:iterate=PractitionerRole:practitioner")
        .await
        .expect_status(200)
        .json();
    assert_eq!(included(&page), ["Practitioner/doc2", "PractitionerRole/doc2-role", "Schedule/doc2-schedule"]);
    let page = s
        .get("Schedule?_id=doc2-schedule&_revinclude=Slot:schedule&_include=Schedule:actor:PractitionerRole")
        .await
        .expect_status(200)
        .json();
    assert_eq!(match_ids(&page), ["doc2-schedule"]);
    assert_eq!(included(&page), ["PractitionerRole/doc2-role", "Slot/slot3", "Slot/slot4"]);
    let page = s
        .get("Practitioner?_id=doc1&_revinclude=PractitionerRole:practitioner&_revinclude:iterate=Schedule:actor")
        .await
        .expect_status(200)
        .json();
    assert_eq!(included(&page), ["PractitionerRole/doc1-role", "Schedule/doc1-schedule"]);
    // A resource that is a match is not repeated as an include.
    let page = s.get("Slot?_include=Slot:schedule&_revinclude=Slot:schedule").await.expect_status(200).json();
    assert_eq!(match_ids(&page).len(), 5);
    assert_eq!(included(&page), ["Schedule/doc1-schedule", "Schedule/doc2-schedule"]);
    for entry in entries(&page) {
        assert!(entry["fullUrl"].as_str().unwrap().starts_with(&s.public_base()), "{entry}");
    }
}

#[tokio::test]
async fn sort_by_any_parameter_with_direction_and_several_keys() {
    let s = TestServer::start().await;
    practice(&s).await;
    let ids = |page: &Value| match_ids(page);
    let page = s.get("Slot?_sort=start").await.expect_status(200).json();
    assert_eq!(ids(&page), ["slot4", "slot3", "slot2", "slot1", "slot0"]);
    let page = s.get("Slot?_sort=-start").await.expect_status(200).json();
    assert_eq!(ids(&page), ["slot0", "slot1", "slot2", "slot3", "slot4"]);
    let page = s.get("Slot?_sort=schedule,-start").await.expect_status(200).json();
    assert_eq!(ids(&page), ["slot0", "slot1", "slot2", "slot3", "slot4"]);
    let page = s.get("Slot?_sort=-status,start").await.expect_status(200).json();
    assert_eq!(ids(&page), ["slot4", "slot3", "slot2", "slot1", "slot0"]);
    let page = s.get("Slot?_sort=-_id").await.expect_status(200).json();
    assert_eq!(ids(&page), ["slot4", "slot3", "slot2", "slot1", "slot0"]);
    let page = s.get("Practitioner?_sort=-name").await.expect_status(200).json();
    assert_eq!(ids(&page), ["doc2", "doc1"]);
    // Resources without a value come last, in both directions.
    put(&s, json!({"resourceType": "Practitioner", "id": "anonymous"})).await;
    for query in ["Practitioner?_sort=name", "Practitioner?_sort=-name"] {
        let page = s.get(query).await.expect_status(200).json();
        assert_eq!(ids(&page).last().map(String::as_str), Some("anonymous"), "{query}");
    }
    // Sorted pages chain through next links without gaps.
    let pages = s.pages("Slot?_sort=-start&_count=2").await;
    let all: Vec<String> = pages.iter().flat_map(match_ids).collect();
    assert_eq!(all, ["slot0", "slot1", "slot2", "slot3", "slot4"]);
}

#[tokio::test]
async fn count_total_summary_and_elements() {
    let s = TestServer::start().await;
    practice(&s).await;
    // Without _total the server counts only what the page shows: a full page has no total,
    // a first page holding every match has its size.
    let page = s.get("Slot?_count=2").await.expect_status(200).json();
    assert_eq!(match_ids(&page).len(), 2);
    assert!(page.get("total").is_none(), "{page}");
    assert_eq!(s.get("Slot?_count=5").await.expect_status(200).json()["total"], 5);
    assert_eq!(s.get("Slot?_count=2&_total=accurate").await.expect_status(200).json()["total"], 5);
    let page = s.get("Slot?_total=none").await.expect_status(200).json();
    assert!(page.get("total").is_none(), "{page}");
    for mode in ["estimate", "accurate"] {
        let page = s.get(&format!("Slot?status=free&_total={mode}")).await.expect_status(200).json();
        assert_eq!(page["total"], 4, "{mode}");
    }
    let page = s.get("Slot?status=free&_summary=count").await.expect_status(200).json();
    assert_eq!(page["total"], 4);
    assert!(entries(&page).is_empty(), "{page}");
    let page = s.get("Slot?_id=slot1&_elements=status,start").await.expect_status(200).json();
    let slot = &entries(&page)[0]["resource"];
    assert_eq!(slot["status"], "free");
    // Slot's mandatory schedule and end come along (R5 search); ig_second_pass_search.rs has
    // subsets that leave elements out.
    assert!(slot.get("start").is_some() && slot.get("schedule").is_some() && slot.get("end").is_some(), "{slot}");
    assert_eq!(slot["id"], "slot1");
    assert!(
        slot["meta"]["tag"].as_array().unwrap().iter().any(|t| t["code"] == "SUBSETTED"),
        "_elements results are marked SUBSETTED: {slot}"
    );
}

#[tokio::test]
async fn count_is_capped_and_defaults_are_configurable() {
    let s = TestServer::start_with(
        ServerOptions::new().flag("--default-page-size", "2").flag("--max-page-size", "3"),
    )
    .await;
    practice(&s).await;
    assert_eq!(match_ids(&s.get("Slot").await.expect_status(200).json()).len(), 2);
    assert_eq!(match_ids(&s.get("Slot?_count=100").await.expect_status(200).json()).len(), 3);
    let page = s.get("Slot?_count=0").await.expect_status(200).json();
    assert!(match_ids(&page).is_empty());
    assert_eq!(page["total"], 5);
}

#[tokio::test]
async fn post_search_takes_form_parameters() {
    let s = TestServer::start().await;
    practice(&s).await;
    let form = "status=free&schedule=Schedule%2Fdoc1-schedule&_sort=start";
    let r = s
        .send(
            s.request(Method::POST, "Slot/_search")
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(form),
        )
        .await
        .expect_status(200);
    r.assert_fhir_json();
    let page = r.json();
    assert_eq!(match_ids(&page), ["slot2", "slot1"]);
    // Parameters in the URL and the body combine.
    let r = s
        .send(
            s.request(Method::POST, "Slot/_search?_count=1")
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body("status=free&_sort=start"),
        )
        .await
        .expect_status(200)
        .json();
    assert_eq!(match_ids(&r), ["slot4"]);
    let next = link(&r, "next").expect("a next link for the POSTed search");
    let second = s.get(&next).await.expect_status(200).json();
    assert_eq!(match_ids(&second), ["slot3"]);
    s.send(s.request(Method::POST, "Slot/_search").header("Content-Type", "application/fhir+json").body("{}"))
        .await
        .outcome(415);
}

#[tokio::test]
async fn unknown_parameters_are_ignored_leniently_and_rejected_strictly() {
    let s = TestServer::start().await;
    practice(&s).await;
    for prefer in [None, Some("handling=lenient")] {
        let mut request = s.request(Method::GET, "Slot?status=free&shoe-size=42&status:fuzzy=x");
        if let Some(prefer) = prefer {
            request = request.header("Prefer", prefer);
        }
        let page = s.send(request).await.expect_status(200).json();
        assert_eq!(match_ids(&page).len(), 4, "{prefer:?}: {page}");
        let outcomes = outcome_entries(&page);
        assert_eq!(outcomes.len(), 1, "{page}");
        let issues = outcomes[0]["issue"].as_array().unwrap();
        assert_eq!(issues.len(), 2, "{page}");
        for issue in issues {
            assert_eq!(issue["severity"], "warning");
            assert_eq!(issue["code"], "not-supported");
        }
        assert_eq!(issues[0]["expression"], json!(["shoe-size"]));
        assert_eq!(issues[1]["expression"], json!(["status:fuzzy"]));
    }
    let strict = s
        .send(s.request(Method::GET, "Slot?status=free&shoe-size=42").header("Prefer", "handling=strict"))
        .await
        .outcome(400);
    assert_eq!(expressions(&strict), ["shoe-size"]);
    assert!(diagnostics(&strict).contains("shoe-size"), "{strict}");
    // Known parameters pass strict handling.
    s.send(s.request(Method::GET, "Slot?status=free").header("Prefer", "handling=strict"))
        .await
        .expect_status(200);
}
