//! R5's `near` search parameter on Location, over HTTP on the configured backend
//! (`TERMIN_TEST_BACKEND`): which Austrian Locations lie within a distance, in which order,
//! paged, and how bad values are refused.

mod support;

use serde_json::{Value, json};
use support::*;

/// Vienna's centre (Stephansplatz), the point every search here starts from.
const VIENNA: &str = "48.2085|16.3721";

/// Locations and their distance from [`VIENNA`] in km (great circle): Floridsdorf ≈ 5.8,
/// Graz ≈ 145, Linz ≈ 156, Salzburg ≈ 252, Innsbruck ≈ 386.
const PLACES: [(&str, f64, f64); 6] = [
    ("innsbruck", 47.2692, 11.4041),
    ("graz", 47.0707, 15.4395),
    ("linz", 48.3069, 14.2858),
    ("vienna", 48.2082, 16.3738),
    ("floridsdorf", 48.2565, 16.3999),
    ("salzburg", 47.8095, 13.0550),
];

fn location(id: &str, position: Option<(f64, f64)>) -> Value {
    let mut location = json!({"resourceType": "Location", "id": id, "name": id, "status": "active"});
    if let Some((latitude, longitude)) = position {
        location["position"] = json!({"latitude": latitude, "longitude": longitude});
    }
    location
}

async fn put(s: &TestServer, resource: &Value) {
    let path = format!("Location/{}", id_of(resource));
    let r = s.put(&path, resource).await;
    assert!(matches!(r.code(), 200 | 201), "PUT {path}: {}", r.text());
}

async fn austria(s: &TestServer) {
    for (id, latitude, longitude) in PLACES {
        put(s, &location(id, Some((latitude, longitude)))).await;
    }
    put(s, &location("nowhere", None)).await;
}

/// `Location?near=<value>&<more>` with the value's `|`, `[` and `]` escaped.
fn near(value: &str, more: &str) -> String {
    let escaped = value.replace('|', "%7C").replace('[', "%5B").replace(']', "%5D");
    format!("Location?near={escaped}{more}")
}

async fn found(s: &TestServer, query: &str) -> Vec<String> {
    let bundle = s.get(query).await.expect_status(200).json();
    assert!(issues(&bundle).is_empty(), "{query}: {:?}", issues(&bundle));
    match_ids(&bundle)
}

#[tokio::test]
async fn near_finds_the_locations_within_the_distance_nearest_first() {
    let s = TestServer::start().await;
    austria(&s).await;
    let within = |distance: &str| near(&format!("{VIENNA}|{distance}"), "");
    assert_eq!(found(&s, &within("10|km")).await, ["vienna", "floridsdorf"]);
    assert_eq!(found(&s, &within("200|km")).await, ["vienna", "floridsdorf", "graz", "linz"]);
    assert_eq!(found(&s, &within("300")).await, ["vienna", "floridsdorf", "graz", "linz", "salzburg"]);
    assert_eq!(found(&s, &within("500|m")).await, ["vienna"]);
    // 95 miles are about 153 km: Graz (145 km) is within, Linz (156 km) is not.
    assert_eq!(found(&s, &within("95|[mi_i]")).await, ["vienna", "floridsdorf", "graz"]);
    assert_eq!(found(&s, &within("95|[mi_us]")).await, ["vienna", "floridsdorf", "graz"]);
    // No distance: 10 km.
    assert_eq!(found(&s, &near(VIENNA, "")).await, ["vienna", "floridsdorf"]);
    // Around Innsbruck: Salzburg is about 140 km away.
    assert_eq!(found(&s, &near("47.26|11.39|100|km", "")).await, ["innsbruck"]);
    assert_eq!(found(&s, &near("47.26|11.39|150|km", "")).await, ["innsbruck", "salzburg"]);
    // An explicit _sort wins over the distance; other parameters combine as usual.
    assert_eq!(found(&s, &near(&format!("{VIENNA}|200|km"), "&_sort=-name")).await, ["vienna", "linz", "graz", "floridsdorf"]);
    assert_eq!(found(&s, &near(&format!("{VIENNA}|200|km"), "&name=graz,linz")).await, ["graz", "linz"]);
    // Commas are OR: around Vienna or around Innsbruck.
    assert_eq!(
        found(&s, &near(&format!("{VIENNA}|10|km,47.26|11.39|10|km"), "&_sort=name")).await,
        ["floridsdorf", "innsbruck", "vienna"]
    );
    assert_eq!(found(&s, "Location?near:missing=true").await, ["nowhere"]);
}

#[tokio::test]
async fn pages_of_a_near_search_keep_the_distance_order() {
    let s = TestServer::start().await;
    austria(&s).await;
    let pages = s.pages(&near(&format!("{VIENNA}|1000|km"), "&_count=2&_total=accurate")).await;
    let paged: Vec<Vec<String>> = pages.iter().map(match_ids).collect();
    assert_eq!(paged, [vec!["vienna", "floridsdorf"], vec!["graz", "linz"], vec!["salzburg", "innsbruck"]]);
    assert_eq!(pages[0]["total"], 6);
    // And back again from the last page.
    let back = s.get(&s.local(&link(&pages[2], "previous").unwrap())).await.expect_status(200).json();
    assert_eq!(match_ids(&back), ["graz", "linz"]);
}

#[tokio::test]
async fn a_moved_location_is_found_at_its_new_position_at_once() {
    let s = TestServer::start().await;
    austria(&s).await;
    put(&s, &location("linz", Some((48.21, 16.37)))).await;
    assert_eq!(found(&s, &near(&format!("{VIENNA}|10|km"), "")).await, ["vienna", "linz", "floridsdorf"]);
    put(&s, &location("linz", None)).await;
    assert_eq!(found(&s, &near(&format!("{VIENNA}|10|km"), "")).await, ["vienna", "floridsdorf"]);
    s.delete("Location/vienna").await.expect_status(204);
    assert_eq!(found(&s, &near(&format!("{VIENNA}|10|km"), "")).await, ["floridsdorf"]);
}

#[tokio::test]
async fn bad_near_values_are_refused_with_an_outcome() {
    let s = TestServer::start().await;
    austria(&s).await;
    for (value, says) in [
        ("abc", "latitude|longitude"),
        ("48.2", "latitude|longitude"),
        ("91|16|10|km", "latitude within ±90"),
        ("48|181", "longitude within ±180"),
        ("48|16|-1|km", "at least 0"),
        ("48|16|ten|km", "at least 0"),
        ("48|16|10|furlong", "unit \"furlong\""),
        ("48|16|10|km|x", "latitude|longitude"),
    ] {
        let outcome = s.get(&near(value, "")).await.outcome(400);
        let text = diagnostics(&outcome);
        assert!(text.contains(says), "near={value}: {text}");
        assert_eq!(outcome["issue"][0]["expression"][0], "near", "near={value}: {outcome}");
    }
    let sorted = s.get(&near(VIENNA, "&_sort=near")).await.outcome(400);
    assert!(diagnostics(&sorted).contains("sorted by distance"), "{sorted}");
    let modified = s.get("Location?near:below=48|16").await.expect_status(200).json();
    assert!(issues(&modified).iter().any(|i| i.to_string().contains(":below")), "{modified}");
    assert_eq!(match_ids(&modified).len(), PLACES.len() + 1, "the unsupported modifier is ignored");
}

#[tokio::test]
async fn the_capability_statement_lists_near_for_location() {
    let s = TestServer::start().await;
    let metadata = s.get("metadata").await.expect_status(200).json();
    let location = metadata["rest"][0]["resource"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["type"] == "Location")
        .unwrap();
    let near = location["searchParam"].as_array().unwrap().iter().find(|p| p["name"] == "near").expect("near is listed");
    assert_eq!(near["type"], "special");
    assert_eq!(near["definition"], "http://hl7.org/fhir/SearchParameter/Location-near");
}
