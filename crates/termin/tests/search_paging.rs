//! Search paging: `self`/`next`/`previous` links with keyset cursors that neither skip nor
//! repeat matches while others write, also under `_sort`, and that work on any node.

mod support;

use std::collections::BTreeSet;

use serde_json::{Value, json};
use support::*;

fn slot(id: &str, start: &str) -> Value {
    json!({"resourceType": "Slot", "id": id, "schedule": {"reference": "Schedule/s"}, "status": "free",
           "start": start, "end": start})
}

async fn put(s: &TestServer, resource: &Value) {
    let path = format!("{}/{}", resource["resourceType"].as_str().unwrap(), id_of(resource));
    let r = s.put(&path, resource).await;
    assert!(matches!(r.code(), 200 | 201), "PUT {path}: {}", r.text());
}

/// Slots m00..m19 on 2026-05-01, one per 10 minutes.
async fn twenty_slots(s: &TestServer) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    for i in 0..20 {
        let id = format!("m{i:02}");
        put(s, &slot(&id, &format!("2026-05-01T{:02}:{:02}:00Z", 8 + i / 6, (i % 6) * 10))).await;
        ids.insert(id);
    }
    ids
}

#[tokio::test]
async fn next_and_previous_links_walk_both_ways() {
    let s = TestServer::start().await;
    twenty_slots(&s).await;
    let first = s.get("Slot?_sort=-start&_count=6&_total=accurate").await.expect_status(200).json();
    assert!(link(&first, "previous").is_none(), "the first page has no previous page");
    let self_link = link(&first, "self").unwrap();
    assert!(self_link.contains("_sort=-start") && self_link.contains("_count=6"), "{self_link}");
    let second = s.get(&s.local(&link(&first, "next").unwrap())).await.expect_status(200).json();
    let third = s.get(&s.local(&link(&second, "next").unwrap())).await.expect_status(200).json();
    assert_eq!(match_ids(&second), ["m13", "m12", "m11", "m10", "m09", "m08"]);
    let back = s.get(&s.local(&link(&third, "previous").unwrap())).await.expect_status(200).json();
    assert_eq!(match_ids(&back), match_ids(&second));
    let start = s.get(&s.local(&link(&back, "previous").unwrap())).await.expect_status(200).json();
    assert_eq!(match_ids(&start), match_ids(&first));
    assert!(link(&start, "previous").is_none());
    let last = s.get(&s.local(&link(&third, "next").unwrap())).await.expect_status(200).json();
    assert_eq!(match_ids(&last), ["m01", "m00"]);
    assert!(link(&last, "next").is_none());
    for page in [&first, &second, &third, &last] {
        assert_eq!(page["total"], 20);
    }
    // The Link header mirrors Bundle.link (RFC 8288), in JSON and XML answers alike.
    let middle = s.local(&link(&first, "next").unwrap());
    for path in [middle.clone(), format!("{middle}&_format=xml")] {
        let r = s.get(&path).await.expect_status(200);
        let header: BTreeSet<String> = r.require_header("link").split(", ").map(str::to_owned).collect();
        let page = if path.ends_with("_format=xml") { r.fhir_xml() } else { r.json() };
        let mirrored: BTreeSet<String> = page["link"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| format!("<{}>; rel=\"{}\"", l["url"].as_str().unwrap(), l["relation"].as_str().unwrap()))
            .collect();
        assert_eq!(header.len(), 3, "{header:?}");
        assert_eq!(header, mirrored);
    }
}

#[tokio::test]
async fn paging_while_others_insert_and_delete_neither_skips_nor_repeats() {
    // The schedule reference drives its queries from the index (candidates filtered and
    // ordered before any resource is read); status does not.
    for query in [
        "Slot?status=free&_count=4",
        "Slot?status=free&_sort=start&_count=4",
        "Slot?_sort=-start,_id&_count=3",
        "Slot?schedule=Schedule/s&_sort=-start&_count=4",
        "Slot?schedule=s&status=free&_count=5",
    ] {
        let s = TestServer::start().await;
        let original = twenty_slots(&s).await;
        let mut seen: Vec<String> = Vec::new();
        let mut next = Some(s.url(query));
        let mut round = 0;
        while let Some(url) = next {
            let page = s.get(&url).await.expect_status(200).json();
            seen.extend(match_ids(&page));
            next = link(&page, "next").map(|u| s.local(&u));
            // Another client writes between our pages: new matches before and after the
            // cursor, and an update that does not change the sort key.
            put(&s, &slot(&format!("early{round}"), "2026-04-01T08:00:00Z")).await;
            put(&s, &slot(&format!("late{round}"), "2026-06-01T08:00:00Z")).await;
            let mut touched = slot("m10", "2026-05-01T09:40:00Z");
            touched["comment"] = json!(format!("touched {round}"));
            put(&s, &touched).await;
            round += 1;
        }
        let distinct: BTreeSet<String> = seen.iter().cloned().collect();
        assert_eq!(seen.len(), distinct.len(), "{query}: a match came twice: {seen:?}");
        assert!(original.is_subset(&distinct), "{query}: skipped {:?}", original.difference(&distinct).collect::<Vec<_>>());
    }
}

#[tokio::test]
async fn links_carry_the_query_and_work_on_another_node() {
    let mut s = TestServer::start_with(ServerOptions::new().base_url("https://termin.example.test/fhir")).await;
    twenty_slots(&s).await;
    let first = s.get("Slot?status=free&_sort=start&_count=5").await.expect_status(200).json();
    let next = link(&first, "next").unwrap();
    assert!(next.starts_with("https://termin.example.test/fhir/Slot?"), "{next}");
    assert!(next.contains("status=free") && next.contains("_sort=start") && next.contains("_cursor="), "{next}");
    // Another process (a new port, nothing shared in memory) serves the link.
    s.restart().await;
    let second = s.get(&s.local(&next)).await.expect_status(200).json();
    assert_eq!(match_ids(&second), ["m05", "m06", "m07", "m08", "m09"]);
}

#[tokio::test]
async fn a_cursor_belongs_to_its_sort() {
    let s = TestServer::start().await;
    twenty_slots(&s).await;
    let first = s.get("Slot?_sort=start&_count=5").await.expect_status(200).json();
    let next = link(&first, "next").unwrap();
    let cursor = next.split("_cursor=").nth(1).unwrap();
    let outcome = s.get(&format!("Slot?_sort=status,start&_count=5&_cursor={cursor}")).await.outcome(400);
    assert_eq!(expressions(&outcome), ["_cursor"]);
}
