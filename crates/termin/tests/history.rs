//! Instance and type history: Bundle shape, order, deletes, paging.

mod support;

use std::collections::BTreeSet;

use serde_json::{Value, json};
use support::*;

#[track_caller]
fn assert_history_bundle(page: &Value) {
    assert_eq!(page["resourceType"], "Bundle", "{page}");
    assert_eq!(page["type"], "history", "{page}");
}

/// (id, versionId, is_delete) of a history entry, taken from fullUrl/response.etag for deletes.
fn key(e: &Value) -> (String, String, bool) {
    let etag = e["response"]["etag"].as_str().unwrap_or_default();
    let v = parse_weak_etag(etag).unwrap_or_else(|| panic!("history entry etag {etag:?}: {e}"));
    match e.get("resource") {
        Some(r) => {
            assert_eq!(version_id(r), v, "response.etag vs meta.versionId in {e}");
            (id_of(r), v, false)
        }
        None => {
            let full = e["fullUrl"].as_str().unwrap_or_default();
            let id = full
                .split('/')
                .skip_while(|seg| *seg != "Patient")
                .nth(1)
                .unwrap_or_else(|| panic!("delete entry without a Patient fullUrl: {e}"))
                .to_string();
            (id, v, true)
        }
    }
}

#[tokio::test]
async fn instance_history_lists_versions_newest_first() {
    let s = TestServer::start().await;
    let v1 = s.create(&patient(ID_SYSTEM, "h1", "Eins")).await;
    let id = id_of(&v1);
    let path = format!("Patient/{id}");
    let mut body = v1.clone();
    body["name"][0]["family"] = json!("Zwei");
    let v2 = s.put(&path, &body).await.expect_status(200).json();
    body["name"][0]["family"] = json!("Drei");
    let v3 = s.put(&path, &body).await.expect_status(200).json();
    s.delete(&path).await.expect_status(204);

    let r = s.get(&format!("{path}/_history")).await.expect_status(200);
    r.assert_fhir_json();
    let bundle = r.json();
    assert_history_bundle(&bundle);
    if let Some(total) = bundle.get("total") {
        assert_eq!(total, 4, "history total");
    }
    let es = entries(&bundle);
    assert_eq!(es.len(), 4, "{bundle}");
    let full_url_prefix = format!("{}/Patient/{id}", s.public_base());
    for e in &es {
        let fu = e["fullUrl"].as_str().unwrap_or_default();
        assert!(fu.starts_with(&full_url_prefix), "fullUrl {fu:?} does not start with {full_url_prefix}");
        let lm = e["response"]["lastModified"].as_str().unwrap_or_default();
        assert!(is_instant_with_offset(lm), "response.lastModified {lm:?}");
        assert!(e["request"]["url"].as_str().is_some_and(|u| u.contains("Patient")), "request.url in {e}");
        assert!(e["response"]["status"].as_str().is_some_and(|st| !st.is_empty()), "response.status in {e}");
    }

    // Newest first: delete, v3, v2, v1.
    let del = &es[0];
    assert!(del.get("resource").is_none(), "delete entry has a resource: {del}");
    assert_eq!(del["request"]["method"], "DELETE");
    assert_eq!(del["response"]["etag"], "W/\"4\"");
    let expect = [(&es[1], &v3, "PUT", "200"), (&es[2], &v2, "PUT", "200"), (&es[3], &v1, "POST", "201")];
    for (e, resource, method, status) in expect {
        assert_eq!(&e["resource"], resource, "history entry {e}");
        assert_eq!(e["request"]["method"], method, "request.method of {e}");
        let st = e["response"]["status"].as_str().unwrap();
        assert!(st.starts_with(status), "response.status {st:?}, expected {status}");
        assert_eq!(e["response"]["etag"], format!("W/\"{}\"", version_id(resource)));
        assert_eq!(e["response"]["lastModified"], resource["meta"]["lastUpdated"]);
    }
}

#[tokio::test]
async fn type_history_lists_all_resources_of_the_type_newest_first() {
    let s = TestServer::start().await;
    let a1 = s.create(&simple_patient("A")).await;
    let a = id_of(&a1);
    let b = id_of(&s.create(&simple_patient("B")).await);
    let mut body = a1.clone();
    body["name"][0]["family"] = json!("A2");
    s.put(&format!("Patient/{a}"), &body).await.expect_status(200);
    s.create(&minimal("Practitioner")).await;
    s.delete(&format!("Patient/{b}")).await.expect_status(204);
    body["name"][0]["family"] = json!("A3");
    s.put(&format!("Patient/{a}"), &body).await.expect_status(200);

    let bundle = s.get("Patient/_history").await.expect_status(200).json();
    assert_history_bundle(&bundle);
    let got: Vec<(String, String, bool)> = entries(&bundle).iter().map(key).collect();
    let want = vec![
        (a.clone(), "3".to_string(), false),
        (b.clone(), "2".to_string(), true),
        (a.clone(), "2".to_string(), false),
        (b.clone(), "1".to_string(), false),
        (a.clone(), "1".to_string(), false),
    ];
    assert_eq!(got, want, "type history (newest first)");
    for e in entries(&bundle) {
        if let Some(r) = e.get("resource") {
            assert_eq!(r["resourceType"], "Patient");
        }
    }
    let pr = s.get("Practitioner/_history").await.expect_status(200).json();
    assert_eq!(entries(&pr).len(), 1);
}

#[tokio::test]
async fn instance_history_paging_covers_every_version_exactly_once() {
    let s = TestServer::start().await;
    let v1 = s.create(&simple_patient("V1")).await;
    let id = id_of(&v1);
    let mut body = v1.clone();
    for v in 2..=10 {
        body["name"][0]["family"] = json!(format!("V{v}"));
        s.put(&format!("Patient/{id}"), &body).await.expect_status(200);
    }
    let pages = s.pages(&format!("Patient/{id}/_history?_count=3")).await;
    let sizes: Vec<usize> = pages.iter().map(|p| entries(p).len()).collect();
    assert_eq!(sizes, vec![3, 3, 3, 1], "page sizes for 10 versions with _count=3");
    for p in &pages {
        assert_history_bundle(p);
    }
    let versions: Vec<String> = pages.iter().flat_map(entries).map(|e| version_id(&e["resource"])).collect();
    let want: Vec<String> = (1..=10).rev().map(|v| v.to_string()).collect();
    assert_eq!(versions, want, "versions across pages, newest first");
}

#[tokio::test]
async fn type_history_paging_covers_every_version_exactly_once() {
    let s = TestServer::start().await;
    let mut expected = Vec::new();
    for n in 0..3 {
        let v1 = s.create(&simple_patient(&format!("P{n}"))).await;
        let id = id_of(&v1);
        expected.push((id.clone(), "1".to_string(), false));
        let mut body = v1.clone();
        for v in 2..=3 {
            body["name"][0]["family"] = json!(format!("P{n}v{v}"));
            s.put(&format!("Patient/{id}"), &body).await.expect_status(200);
            expected.push((id.clone(), v.to_string(), false));
        }
    }
    let gone = id_of(&s.create(&simple_patient("Gone")).await);
    expected.push((gone.clone(), "1".to_string(), false));
    s.delete(&format!("Patient/{gone}")).await.expect_status(204);
    expected.push((gone.clone(), "2".to_string(), true));
    expected.reverse(); // newest first

    let unpaged: Vec<_> = entries(&s.get("Patient/_history").await.expect_status(200).json()).iter().map(key).collect();
    assert_eq!(unpaged, expected, "unpaged type history");

    let pages = s.pages("Patient/_history?_count=4").await;
    let sizes: Vec<usize> = pages.iter().map(|p| entries(p).len()).collect();
    assert_eq!(sizes, vec![4, 4, 3], "page sizes for 11 entries with _count=4");
    let paged: Vec<_> = pages.iter().flat_map(entries).map(|e| key(&e)).collect();
    let distinct: BTreeSet<_> = paged.iter().cloned().collect();
    assert_eq!(distinct.len(), paged.len(), "an entry appears on two pages: {paged:?}");
    assert_eq!(paged, expected, "paged type history");
}

/// Writes between fetching two pages must not make entries repeat or vanish from the pages
/// (new entries may or may not show up).
#[tokio::test]
async fn history_paging_is_stable_when_writes_happen_between_pages() {
    let s = TestServer::start().await;
    let v1 = s.create(&simple_patient("S1")).await;
    let id = id_of(&v1);
    let mut body = v1.clone();
    for v in 2..=6 {
        body["name"][0]["family"] = json!(format!("S{v}"));
        s.put(&format!("Patient/{id}"), &body).await.expect_status(200);
    }
    let first = s.get(&format!("Patient/{id}/_history?_count=2")).await.expect_status(200).json();
    let mut next = link(&first, "next").expect("first page has a next link");
    let mut seen: Vec<String> = entries(&first).iter().map(|e| version_id(&e["resource"])).collect();
    // Two more versions arrive while the client is paging.
    for v in 7..=8 {
        body["name"][0]["family"] = json!(format!("S{v}"));
        s.put(&format!("Patient/{id}"), &body).await.expect_status(200);
    }
    loop {
        let page = s.get(&s.local(&next)).await.expect_status(200).json();
        seen.extend(entries(&page).iter().map(|e| version_id(&e["resource"])));
        match link(&page, "next") {
            Some(n) => next = n,
            None => break,
        }
        assert!(seen.len() < 100, "paging does not end");
    }
    let distinct: BTreeSet<&String> = seen.iter().collect();
    assert_eq!(distinct.len(), seen.len(), "a version appears twice across pages: {seen:?}");
    for v in 1..=6 {
        assert!(seen.contains(&v.to_string()), "version {v} missing across pages: {seen:?}");
    }
}

/// Waits (polling the clock, with a deadline) until the wall clock is past `instant`, so the
/// next write gets a later `lastUpdated` than the one just made.
fn wait_until_after(instant: &str) {
    let instant: jiff::Timestamp = instant.parse().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while jiff::Timestamp::now() <= instant + jiff::SignedDuration::from_millis(1) {
        assert!(std::time::Instant::now() < deadline, "the clock does not advance");
        std::thread::yield_now();
    }
}

/// (versionId, is_delete) of the instance history entries `_at` selects.
async fn versions_at(s: &TestServer, id: &str, at: &str) -> Vec<(String, bool)> {
    let page = s.get(&format!("Patient/{id}/_history?_at={at}")).await.expect_status(200).json();
    assert_history_bundle(&page);
    let entries = page["entry"].as_array().cloned().unwrap_or_default();
    entries.iter().map(key).map(|(_, version, gone)| (version, gone)).collect()
}

#[tokio::test]
async fn history_at_lists_the_versions_current_then_including_deletes() {
    let s = TestServer::start().await;
    let created = s.create(&patient("urn:oid:1.2.40.0.10.1.4.3.1", "at-1", "Erst")).await;
    let id = id_of(&created);
    let first = created["meta"]["lastUpdated"].as_str().unwrap().to_owned();
    wait_until_after(&first);
    let mut changed = created.clone();
    changed["name"][0]["family"] = json!("Zweit");
    let second = s.put(&format!("Patient/{id}"), &changed).await.expect_status(200).json();
    let second = second["meta"]["lastUpdated"].as_str().unwrap().to_owned();
    wait_until_after(&second);
    s.delete(&format!("Patient/{id}")).await.expect_status(204);

    assert_eq!(versions_at(&s, &id, &first).await, [("1".to_owned(), false)]);
    assert_eq!(versions_at(&s, &id, &second).await, [("2".to_owned(), false)]);
    // A whole year: every version, the delete among them with its request and response.
    let year = &first[..4];
    assert_eq!(
        versions_at(&s, &id, year).await,
        [("3".to_owned(), true), ("2".to_owned(), false), ("1".to_owned(), false)]
    );
    let page = s.get(&format!("Patient/{id}/_history?_at={year}&_count=1")).await.expect_status(200).json();
    assert_eq!(page["entry"][0]["request"]["method"], "DELETE", "{page}");
    assert_eq!(page["total"], 3);
    assert_eq!(s.all_entries(&format!("Patient/{id}/_history?_at={year}&_count=1")).await.len(), 3);
    // Type level and before the resource existed.
    let type_page = s.get(&format!("Patient/_history?_at={second}")).await.expect_status(200).json();
    assert_eq!(type_page["entry"].as_array().unwrap().iter().map(key).collect::<Vec<_>>(), [(id.clone(), "2".to_owned(), false)]);
    let before = s.get("Patient/_history?_at=2001").await.expect_status(200).json();
    assert_eq!(before["total"], 0, "{before}");

    s.get(&format!("Patient/{id}/_history?_at=banana")).await.outcome(400);
}
