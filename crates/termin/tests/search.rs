//! The minimal search of the foundation issue: `_id`, `identifier`, `_count`, searchset Bundles.

mod support;

use std::collections::BTreeSet;

use serde_json::{Value, json};
use support::*;

const SYS: &str = "urn:oid:1.2.40.0.10.1.4.3.1";
const OTHER_SYS: &str = "urn:oid:1.2.40.0.10.2.1.1.149";

#[track_caller]
fn assert_searchset(page: &Value, s: &TestServer, ty: &str) {
    assert_eq!(page["resourceType"], "Bundle", "{page}");
    assert_eq!(page["type"], "searchset", "{page}");
    assert!(page["total"].is_u64(), "searchset without total: {page}");
    assert!(link(page, "self").is_some(), "searchset without self link: {page}");
    for e in entries(page) {
        assert_eq!(e["search"]["mode"], "match", "entry without search.mode=match: {e}");
        let res = &e["resource"];
        assert_eq!(res["resourceType"], ty, "{e}");
        assert_eq!(
            e["fullUrl"].as_str().unwrap_or(""),
            format!("{}/{ty}/{}", s.public_base(), id_of(res)),
            "fullUrl of {e}"
        );
    }
}

fn ids(entries: &[Value]) -> Vec<String> {
    entries.iter().map(|e| id_of(&e["resource"])).collect()
}

#[tokio::test]
async fn search_by_identifier_returns_a_searchset_bundle() {
    let s = TestServer::start().await;
    let a = s.create(&patient(SYS, "shared", "A")).await;
    let b = s.create(&patient(SYS, "shared", "B")).await;
    s.create(&patient(SYS, "single", "C")).await;
    let r = s.get(&format!("Patient?identifier={SYS}|shared")).await.expect_status(200);
    r.assert_fhir_json();
    let page = r.json();
    assert_searchset(&page, &s, "Patient");
    assert_eq!(page["total"], 2, "{page}");
    let found: BTreeSet<String> = ids(&entries(&page)).into_iter().collect();
    assert_eq!(found, BTreeSet::from([id_of(&a), id_of(&b)]));
    for e in entries(&page) {
        let expected = if id_of(&e["resource"]) == id_of(&a) { &a } else { &b };
        assert_eq!(&e["resource"], expected);
    }
}

#[tokio::test]
async fn search_identifier_token_forms() {
    let s = TestServer::start().await;
    let a = id_of(&s.create(&patient(SYS, "111", "A")).await);
    let b = id_of(&s.create(&patient(OTHER_SYS, "111", "B")).await);
    let c = id_of(&s.create(&patient(SYS, "222", "C")).await);
    s.create(&simple_patient("OhneIdentifier")).await;
    let cases: Vec<(String, BTreeSet<String>)> = vec![
        (format!("identifier={SYS}|111"), BTreeSet::from([a.clone()])),
        ("identifier=111".into(), BTreeSet::from([a.clone(), b.clone()])),
        (format!("identifier={SYS}|"), BTreeSet::from([a.clone(), c.clone()])),
        (format!("identifier={OTHER_SYS}|"), BTreeSet::from([b.clone()])),
        (format!("identifier={OTHER_SYS}|222"), BTreeSet::new()),
        ("identifier=urn%3Aoid%3A1.2.40.0.10.1.4.3.1%7C222".into(), BTreeSet::from([c.clone()])),
    ];
    for (q, expected) in cases {
        let page = s.get(&format!("Patient?{q}")).await.expect_status(200).json();
        assert_searchset(&page, &s, "Patient");
        let found: BTreeSet<String> = ids(&entries(&page)).into_iter().collect();
        assert_eq!(found, expected, "Patient?{q}");
        assert_eq!(page["total"], expected.len(), "total for Patient?{q}");
    }
}

#[tokio::test]
async fn search_by_id() {
    let s = TestServer::start().await;
    let a = s.create(&simple_patient("A")).await;
    s.create(&simple_patient("B")).await;
    let page = s.get(&format!("Patient?_id={}", id_of(&a))).await.expect_status(200).json();
    assert_searchset(&page, &s, "Patient");
    assert_eq!(page["total"], 1);
    assert_eq!(entries(&page)[0]["resource"], a);
    let empty = s.get("Patient?_id=unknown").await.expect_status(200).json();
    assert_searchset(&empty, &s, "Patient");
    assert_eq!(empty["total"], 0);
    assert!(entries(&empty).is_empty());
}

#[tokio::test]
async fn search_on_every_supported_type() {
    let s = TestServer::start().await;
    for ty in SUPPORTED_TYPES {
        let mut body = minimal(ty);
        body["identifier"] = json!([{ "system": SYS, "value": "every" }]);
        let created = s.create(&body).await;
        s.create(&minimal(ty)).await;
        let page = s.get(&format!("{ty}?identifier={SYS}|every")).await.expect_status(200).json();
        assert_searchset(&page, &s, ty);
        assert_eq!(page["total"], 1, "{ty}: {page}");
        assert_eq!(entries(&page)[0]["resource"], created, "{ty}");
        // A search of the whole type (no parameters) sees both.
        let all = s.get(ty).await.expect_status(200).json();
        assert_searchset(&all, &s, ty);
        assert_eq!(all["total"], 2, "{ty} without parameters: {all}");
    }
}

#[tokio::test]
async fn search_paging_with_count_covers_every_match_once() {
    let s = TestServer::start().await;
    let mut expected = BTreeSet::new();
    for i in 0..7 {
        expected.insert(id_of(&s.create(&patient(SYS, "paged", &format!("P{i}"))).await));
    }
    s.create(&patient(SYS, "not-paged", "X")).await;
    let pages = s.pages(&format!("Patient?identifier={SYS}|paged&_count=3&_total=accurate")).await;
    assert_eq!(pages.len(), 3, "7 matches with _count=3 must give 3 pages");
    let sizes: Vec<usize> = pages.iter().map(|p| entries(p).len()).collect();
    assert_eq!(sizes, vec![3, 3, 1]);
    for p in &pages {
        assert_searchset(p, &s, "Patient");
        assert_eq!(p["total"], 7);
    }
    assert!(link(&pages[0], "next").is_some());
    assert!(link(&pages[2], "next").is_none(), "last page has a next link");
    let all: Vec<String> = pages.iter().flat_map(|p| ids(&entries(p))).collect();
    let distinct: BTreeSet<String> = all.iter().cloned().collect();
    assert_eq!(all.len(), distinct.len(), "a match appeared on two pages: {all:?}");
    assert_eq!(distinct, expected);
}

#[tokio::test]
async fn search_skips_deleted_and_returns_current_versions() {
    let s = TestServer::start().await;
    let a = s.create(&patient(SYS, "cur", "A")).await;
    let b = s.create(&patient(SYS, "cur", "B")).await;
    s.delete(&format!("Patient/{}", id_of(&a))).await.expect_status(204);
    let mut b2 = b.clone();
    b2["name"][0]["family"] = json!("B2");
    let b2 = s.put(&format!("Patient/{}", id_of(&b)), &b2).await.expect_status(200).json();
    let page = s.get(&format!("Patient?identifier={SYS}|cur")).await.expect_status(200).json();
    assert_eq!(page["total"], 1, "{page}");
    assert_eq!(entries(&page)[0]["resource"], b2);
    // An identifier removed by an update no longer matches.
    let mut b3 = b2.clone();
    b3["identifier"] = json!([{ "system": SYS, "value": "changed" }]);
    s.put(&format!("Patient/{}", id_of(&b)), &b3).await.expect_status(200);
    let page = s.get(&format!("Patient?identifier={SYS}|cur")).await.expect_status(200).json();
    assert_eq!(page["total"], 0, "{page}");
}
