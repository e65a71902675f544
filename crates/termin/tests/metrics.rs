//! Prometheus metrics at `/metrics` (issue 6): requests by interaction, bookings, holds and
//! conflicts, and on PostgreSQL the connection pool.

mod scheduling_support;
mod support;

use scheduling_support::*;
use support::*;

/// The value of the sample `name{labels}` in a Prometheus text exposition.
fn sample(exposition: &str, name_and_labels: &str) -> Option<f64> {
    exposition
        .lines()
        .find_map(|line| line.strip_prefix(name_and_labels)?.trim().parse().ok())
}

#[tokio::test]
async fn metrics_count_requests_bookings_holds_and_conflicts() {
    let s = TestServer::start().await;
    let world = setup(&s, 2).await;
    s.read("Slot", &world.slots[0]).await;
    hold_ok(&s, &world.slots[1]).await;
    book_ok(&s, &appointment(&world.anna, &[&world.slots[0]]), &[]).await;
    book(&s, &appointment(&world.bert, &[&world.slots[0]]), &[]).await.expect_status(409);

    let r = s.get_root("/metrics").await.expect_status(200);
    assert!(r.require_header("content-type").starts_with("text/plain"), "{:?}", r.headers);
    let text = r.text();
    let count = |name_and_labels: &str| {
        sample(&text, name_and_labels).unwrap_or_else(|| panic!("no sample {name_and_labels} in\n{text}"))
    };
    assert_eq!(count(r#"termin_http_requests_total{interaction="read",status="200"}"#), 1.0);
    assert_eq!(count(r#"termin_http_requests_total{interaction="$book",status="201"}"#), 1.0);
    assert_eq!(count(r#"termin_bookings_total{outcome="booked"}"#), 1.0);
    assert_eq!(count(r#"termin_bookings_total{outcome="rejected"}"#), 1.0);
    assert_eq!(count(r#"termin_holds_total{outcome="held"}"#), 1.0);
    assert_eq!(count(r#"termin_conflicts_total{interaction="$book"}"#), 1.0);
    assert!(count(r#"termin_http_request_duration_seconds_count{interaction="update"}"#) >= 5.0);
    if s.storage().backend == Backend::Postgres {
        assert!(count("termin_db_pool_max_connections") >= 1.0);
        assert!(count(r#"termin_db_pool_connections{state="idle"}"#) >= 0.0);
    }
}
