//! Conditional read: `If-None-Match` and `If-Modified-Since` answer 304 while the client's copy
//! is current (R5 http.html#cread, RFC 9110 §13.1.2–3).

mod support;

use reqwest::Method;
use serde_json::json;
use support::*;

async fn read_with(s: &TestServer, path: &str, header: &str, value: &str) -> Resp {
    s.send(s.request(Method::GET, path).header(header, value)).await
}

#[tokio::test]
async fn a_current_copy_is_304_without_a_body_and_a_stale_one_gets_the_resource() {
    let s = TestServer::start().await;
    let created = s.create(&simple_patient("Bedingt")).await;
    let id = id_of(&created);
    let path = format!("Patient/{id}");
    let first = s.get(&path).await.expect_status(200);
    let last_modified = first.require_header("last-modified");

    for tag in ["W/\"1\"", "\"1\"", "W/\"7\", W/\"1\"", "*"] {
        let r = read_with(&s, &path, "If-None-Match", tag).await;
        assert_eq!(r.code(), 304, "If-None-Match {tag}: {}", r.text());
        assert!(r.body.is_empty(), "304 with a body: {}", r.text());
        assert_eq!(r.etag_version(), "1");
        assert_eq!(r.require_header("last-modified"), last_modified);
    }
    let r = read_with(&s, &path, "If-Modified-Since", &last_modified).await;
    assert_eq!(r.code(), 304, "If-Modified-Since {last_modified}: {}", r.text());
    let r = read_with(&s, &format!("{path}/_history/1"), "If-None-Match", "W/\"1\"").await;
    assert_eq!(r.code(), 304, "vread: {}", r.text());

    // A new version: the old tag and an older date get the resource.
    let mut changed = created.clone();
    changed["active"] = json!(true);
    s.put(&path, &changed).await.expect_status(200);
    let r = read_with(&s, &path, "If-None-Match", "W/\"1\"").await.expect_status(200);
    assert_eq!(r.etag_version(), "2");
    assert_eq!(r.json()["active"], true);
    let r = read_with(&s, &path, "If-Modified-Since", "Sat, 01 Jan 2000 00:00:00 GMT").await.expect_status(200);
    assert_eq!(id_of(&r.json()), id);
    // If-None-Match wins over If-Modified-Since; an unreadable date is ignored.
    let both = s
        .request(Method::GET, &path)
        .header("If-None-Match", "W/\"1\"")
        .header("If-Modified-Since", "Fri, 31 Dec 9999 23:59:59 GMT");
    s.send(both).await.expect_status(200);
    read_with(&s, &path, "If-Modified-Since", "tomorrow").await.expect_status(200);
    // A deleted resource stays 410 whatever the client holds.
    s.delete(&path).await;
    read_with(&s, &path, "If-None-Match", "*").await.outcome(410);
}
