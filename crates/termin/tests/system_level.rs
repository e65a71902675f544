//! System-level interactions (issue 17): the search across types (`GET [base]?_type=...`,
//! `POST [base]/_search`) and the history of all types (`GET [base]/_history`). Authorization
//! of both is in tests/authorization.rs.

mod support;

use reqwest::Method;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use support::*;

fn schedule(id: &str) -> Value {
    json!({"resourceType": "Schedule", "id": id, "active": true, "actor": [{"reference": "Practitioner/sys-doc"}]})
}

fn slot(id: &str, hour: u32) -> Value {
    json!({"resourceType": "Slot", "id": id, "schedule": {"reference": "Schedule/sys-a"}, "status": "free",
           "start": format!("2030-02-04T{hour:02}:00:00+01:00"), "end": format!("2030-02-04T{hour:02}:30:00+01:00")})
}

/// Schedules sys-a..sys-c and Slots sys-s1..sys-s4, written one after the other; returns
/// `Type/id` in the order written.
async fn schedules_and_slots(s: &TestServer) -> Vec<String> {
    let mut written = Vec::new();
    let resources = [
        schedule("sys-a"),
        slot("sys-s1", 9),
        schedule("sys-b"),
        slot("sys-s2", 10),
        slot("sys-s3", 11),
        schedule("sys-c"),
        slot("sys-s4", 12),
    ];
    for resource in resources {
        let name = format!("{}/{}", resource["resourceType"].as_str().unwrap(), resource["id"].as_str().unwrap());
        s.put(&name, &resource).await.expect_status(201);
        written.push(name);
    }
    written
}

/// `Type/id` of each entry's resource, in order.
fn names(entries: &[Value]) -> Vec<String> {
    entries
        .iter()
        .map(|e| {
            format!("{}/{}", e["resource"]["resourceType"].as_str().unwrap(), e["resource"]["id"].as_str().unwrap())
        })
        .collect()
}

/// (meta.lastUpdated, id) of each entry: what `_sort=_lastUpdated` orders by.
fn updated_and_id(entries: &[Value]) -> Vec<(jiff::Timestamp, String)> {
    entries
        .iter()
        .map(|e| {
            let updated = e["resource"]["meta"]["lastUpdated"].as_str().unwrap().parse().unwrap();
            (updated, e["resource"]["id"].as_str().unwrap().to_owned())
        })
        .collect()
}

#[tokio::test]
async fn a_search_across_types_merges_their_matches_and_pages_by_cursor() {
    let s = TestServer::start().await;
    let written = schedules_and_slots(&s).await;
    s.put("Patient/sys-p", &json!({"resourceType": "Patient", "id": "sys-p"})).await.expect_status(201);

    // Oldest first across both types, two per page; every match once.
    let pages = s.pages("?_type=Slot,Schedule&_sort=_lastUpdated&_count=2").await;
    assert_eq!(pages.len(), 4, "7 matches, 2 per page");
    for page in &pages {
        assert_eq!(page["type"], "searchset");
        assert!(entries(page).iter().all(|e| e["search"]["mode"] == "match"), "{page}");
    }
    let all: Vec<Value> = pages.iter().flat_map(entries).collect();
    let found = names(&all);
    assert_eq!(
        found.iter().collect::<BTreeSet<_>>(),
        written.iter().collect::<BTreeSet<_>>(),
        "no Patient, nothing twice"
    );
    assert_eq!(found.len(), written.len());
    let order = updated_and_id(&all);
    assert!(order.windows(2).all(|w| w[0] <= w[1]), "sorted by lastUpdated, then id: {order:?}");

    // Newest first is the reverse order of time (ties by id ascending, as type-level searches).
    let newest = s.all_entries("?_type=Slot,Schedule&_sort=-_lastUpdated&_count=3").await;
    let order = updated_and_id(&newest);
    assert!(order.windows(2).all(|w| w[0].0 > w[1].0 || (w[0].0 == w[1].0 && w[0].1 < w[1].1)), "{order:?}");
    assert_eq!(newest.len(), 7);

    // Without _sort: by id across the types; -_id reverses it.
    let by_id: Vec<String> = s
        .all_entries("?_type=Schedule,Slot&_count=3")
        .await
        .iter()
        .map(|e| e["resource"]["id"].as_str().unwrap().to_owned())
        .collect();
    let mut sorted = by_id.clone();
    sorted.sort();
    assert_eq!(by_id, sorted);
    let descending: Vec<String> = s
        .all_entries("?_type=Schedule,Slot&_sort=-_id&_count=4")
        .await
        .iter()
        .map(|e| e["resource"]["id"].as_str().unwrap().to_owned())
        .collect();
    sorted.reverse();
    assert_eq!(descending, sorted);

    // A page link stays valid while resources are written: what is added after the cursor's
    // position comes on a later page, nothing is skipped or repeated.
    let first = s.get("?_type=Slot,Schedule&_sort=_lastUpdated&_count=4").await.expect_status(200).json();
    let next = link(&first, "next").expect("a next link");
    assert!(next.contains("_cursor="), "{next}");
    s.put("Slot/sys-s5", &slot("sys-s5", 13)).await.expect_status(201);
    let rest = s.all_entries(&s.local(&next)).await;
    let mut paged = names(&entries(&first));
    paged.extend(names(&rest));
    assert_eq!(paged.len(), 8, "{paged:?}");
    assert_eq!(paged.last().map(String::as_str), Some("Slot/sys-s5"));
    assert_eq!(paged.iter().collect::<BTreeSet<_>>().len(), 8, "{paged:?}");

    // The Link header mirrors Bundle.link.
    let r = s.get("?_type=Slot,Schedule&_count=2").await.expect_status(200);
    let header = r.header("link").unwrap_or_default();
    assert!(header.contains("rel=\"next\"") && header.contains("rel=\"self\""), "{header}");

    // Common parameters: _id, _lastUpdated, _tag, _profile, _security, _source.
    let r = s.get("?_type=Slot,Schedule,Patient&_id=sys-a,sys-s1,sys-p").await.expect_status(200).json();
    assert_eq!(matches(&r), ["sys-a", "sys-p", "sys-s1"]);
    let r = s.get("?_type=Slot,Schedule&_lastUpdated=gt2000-01-01&_tag=x|y&_count=1").await.expect_status(200).json();
    assert!(entries(&r).is_empty(), "{r}");
    for common in
        ["_profile=http://example.org/p", "_security=http://example.org/s|x", "_source=http://example.org/src"]
    {
        let r = s.get(&format!("?_type=Slot,Schedule&{common}")).await.expect_status(200).json();
        assert!(entries(&r).is_empty(), "{common}: {r}");
    }

    // _total, _summary=count, _summary=true, _elements.
    let counted = s.get("?_type=Slot,Schedule&_count=2&_total=accurate").await.expect_status(200).json();
    assert_eq!(counted["total"], 8);
    assert_eq!(entries(&counted).len(), 2);
    let count_only = s.get("?_type=Slot,Schedule&_summary=count").await.expect_status(200).json();
    assert_eq!(count_only["total"], 8);
    assert!(entries(&count_only).is_empty() && link(&count_only, "next").is_none(), "{count_only}");
    let summary = s.get("?_type=Slot,Schedule&_id=sys-s1,sys-a&_summary=true").await.expect_status(200).json();
    for e in entries(&summary) {
        assert_eq!(e["resource"]["meta"]["tag"][0]["code"], "SUBSETTED", "{e}");
    }
    let schedule_with = |summary: &str| {
        let s = &s;
        let url = format!("?_type=Slot,Schedule&_id=sys-a&_summary={summary}");
        async move { entries(&s.get(&url).await.expect_status(200).json())[0]["resource"].clone() }
    };
    let text = schedule_with("text").await;
    assert!(text.get("active").is_none() && text.get("actor").is_some(), "text keeps the mandatory actor: {text}");
    let data = schedule_with("data").await;
    assert_eq!(data["active"], true);
    assert_eq!(data["meta"]["tag"][0]["code"], "SUBSETTED");
    let whole = schedule_with("false").await;
    assert!(whole["meta"].get("tag").is_none() && whole["active"] == true, "{whole}");
    let elements = s.get("?_type=Slot,Schedule&_id=sys-s1,sys-a&_elements=active").await.expect_status(200).json();
    let by_id =
        |id: &str| entries(&elements).into_iter().find(|e| e["resource"]["id"] == id).unwrap()["resource"].clone();
    assert_eq!(by_id("sys-a")["active"], true);
    assert_eq!(by_id("sys-s1")["status"], "free", "Slot.status is mandatory");
    assert_eq!(by_id("sys-s1")["meta"]["tag"][0]["code"], "SUBSETTED");

    // Without _type: every served type (here all are readable).
    let r = s.get("?_id=sys-p,sys-c").await.expect_status(200).json();
    assert_eq!(matches(&r), ["sys-c", "sys-p"]);
    // POST [base]/_search, form-encoded, is the same search.
    let posted = s
        .send(
            s.client()
                .post(format!("{}/_search", s.base()))
                .header("content-type", "application/x-www-form-urlencoded")
                .body("_type=Slot,Schedule&_id=sys-a,sys-s2"),
        )
        .await
        .expect_status(200)
        .json();
    assert_eq!(matches(&posted), ["sys-a", "sys-s2"]);
}

#[tokio::test]
async fn a_search_across_types_refuses_what_it_cannot_answer_for_every_type() {
    let s = TestServer::start().await;
    schedules_and_slots(&s).await;
    let refused = [
        // Slot defines status, Schedule does not.
        ("?_type=Slot,Schedule&status=free", "status"),
        ("?_type=Slot,Practitioner&_include=Slot:schedule", "_include"),
        ("?_type=Slot,Banana", "_type"),
        ("?_type=Slot&_type=Schedule", "_type"),
        ("?_type=Slot,Schedule&_sort=start", "_sort"),
        ("?_type=Slot,Schedule&_cursor=garbage", "_cursor"),
        ("?_type=Slot,Schedule&_count=many", "_count"),
        ("?_type=Slot,Schedule&_summary=maybe", "_summary"),
    ];
    for (query, param) in refused {
        let r = s.get(query).await;
        let outcome = r.outcome(400);
        assert_eq!(expressions(&outcome), [param], "{query}: {outcome}");
    }
    // A cursor of one search does not continue another.
    let first = s.get("?_type=Slot,Schedule&_count=2").await.expect_status(200).json();
    let next = link(&first, "next").unwrap();
    let cursor = next.split("_cursor=").nth(1).unwrap();
    let r = s.get(&format!("?_type=Slot,Practitioner&_count=2&_cursor={cursor}")).await;
    assert_eq!(expressions(&r.outcome(400)), ["_cursor"]);
    // With a single type it answers as that type's search does (here: a parameter of Slot).
    let r = s.get("?_type=Slot&status=free&_count=100").await.expect_status(200).json();
    assert_eq!(entries(&r).len(), 4);
}

#[tokio::test]
async fn the_system_history_lists_every_type_newest_first_with_deletes() {
    let s = TestServer::start().await;
    let start = jiff::Timestamp::now();
    s.put("Patient/hist-p", &json!({"resourceType": "Patient", "id": "hist-p", "active": true}))
        .await
        .expect_status(201);
    s.put("Schedule/hist-s", &schedule("hist-s")).await.expect_status(201);
    s.put("Patient/hist-p", &json!({"resourceType": "Patient", "id": "hist-p", "active": false}))
        .await
        .expect_status(200);
    s.delete("Schedule/hist-s").await.expect_status(204);

    let pages = s.pages("_history?_count=2").await;
    assert!(pages.len() >= 2, "paged by _count");
    for page in &pages {
        assert_eq!(page["type"], "history", "{page}");
    }
    let all: Vec<Value> = pages.iter().flat_map(entries).collect();
    // (fullUrl, method, etag) of our entries, newest first.
    let ours: Vec<(String, String, String)> = all
        .iter()
        .filter(|e| e["fullUrl"].as_str().is_some_and(|u| u.contains("/hist-")))
        .map(|e| {
            let full_url = e["fullUrl"].as_str().unwrap().to_owned();
            (
                full_url,
                e["request"]["method"].as_str().unwrap().to_owned(),
                e["response"]["etag"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected = [
        ("/Schedule/hist-s", "DELETE", "W/\"2\""),
        ("/Patient/hist-p", "PUT", "W/\"2\""),
        ("/Schedule/hist-s", "PUT", "W/\"1\""),
        ("/Patient/hist-p", "PUT", "W/\"1\""),
    ];
    assert_eq!(ours.len(), expected.len(), "{ours:?}");
    for ((full_url, method, etag), (want_url, want_method, want_etag)) in ours.iter().zip(expected) {
        assert!(full_url.ends_with(want_url), "{ours:?}");
        assert!(method == want_method || (want_method == "PUT" && method == "POST"), "{ours:?}");
        assert_eq!(etag, want_etag, "{ours:?}");
    }
    let delete = all.iter().find(|e| e["request"]["method"] == "DELETE").unwrap();
    assert!(delete.get("resource").is_none(), "{delete}");

    // _type narrows it; _since and _at bound it in time as for a type history.
    let patients = s.all_entries("_history?_type=Patient").await;
    assert!(patients.iter().all(|e| e["fullUrl"].as_str().unwrap().contains("/Patient/")), "{patients:?}");
    assert_eq!(patients.len(), 2);
    let since = s.all_entries(&format!("_history?_since={}", urlencoding(&start.to_string()))).await;
    assert!(since.len() >= 4, "{since:?}");
    let later = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(1);
    assert!(s.all_entries(&format!("_history?_since={}", urlencoding(&later.to_string()))).await.is_empty());
    let before_start = start - jiff::SignedDuration::from_hours(1);
    let at = s.all_entries(&format!("_history?_at={}", urlencoding(&before_start.to_string()))).await;
    assert!(
        at.iter().all(|e| !e["fullUrl"].as_str().unwrap().contains("/hist-")),
        "nothing of ours existed then: {at:?}"
    );

    // Type and instance histories are the same entries, filtered.
    let type_history = s.all_entries("Patient/_history").await;
    assert_eq!(
        names(&type_history.iter().filter(|e| e.get("resource").is_some()).cloned().collect::<Vec<_>>()),
        names(&patients)
    );
    for bad in ["_history?_since=yesterday", "_history?_count=-1", "_history?_cursor=x", "_history?_type=Banana"] {
        let r = s.get(bad).await;
        assert_eq!(r.code(), 400, "{bad}: {}", r.what());
    }
    s.send(s.client().post(format!("{}/_history", s.base()))).await.outcome(405);
}

fn urlencoding(text: &str) -> String {
    text.replace('+', "%2B").replace(':', "%3A")
}

#[tokio::test]
async fn the_capability_statement_lists_the_system_interactions() {
    let s = TestServer::start().await;
    let statement = call(&s, Method::GET, "metadata", None, None).await.expect_status(200).json();
    let codes: Vec<&str> =
        statement["rest"][0]["interaction"].as_array().unwrap().iter().map(|i| i["code"].as_str().unwrap()).collect();
    assert_eq!(codes, ["transaction", "batch", "search-system", "history-system"]);
    let params: Vec<&str> =
        statement["rest"][0]["searchParam"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    for common in ["_id", "_lastUpdated", "_tag", "_profile", "_security", "_source"] {
        assert!(params.contains(&common), "{common} in {params:?}");
    }
    for resource in statement["rest"][0]["resource"].as_array().unwrap() {
        assert!(resource["interaction"].as_array().unwrap().iter().any(|i| i["code"] == "history-type"), "{resource}");
    }
}
