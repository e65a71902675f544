//! The HTTP layer under hostile input (issue 12, items 9 and 10): request ids, the `Host`
//! header, CORS, connection timeouts and the answers to oversized or malformed requests.
//! Backend-independent; runs on either backend like the other integration tests.

mod support;

use reqwest::Method;
use support::*;

const REQUEST_ID: &str = "x-request-id";

#[tokio::test]
async fn an_acceptable_request_id_is_echoed_and_anything_else_is_replaced() {
    let mut s = TestServer::start_with(ServerOptions::new().flag("--log", "info,tower_http=debug")).await;
    let sent = "client-7:req.42_a";
    let r = s.send(s.request(Method::GET, "metadata").header(REQUEST_ID, sent)).await.expect_status(200);
    assert_eq!(r.require_header(REQUEST_ID), sent);

    let script = "<script>alert(1)</script>".to_string();
    let long = "a".repeat(10 * 1024);
    let mut generated = Vec::new();
    for hostile in [&script, &long] {
        let r = s.send(s.request(Method::GET, "Patient/none").header(REQUEST_ID, hostile)).await;
        r.outcome(404);
        let id = r.require_header(REQUEST_ID);
        assert!(
            id.len() == 36 && id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-'),
            "a new UUID replaces {hostile:.40}, got {id:?}"
        );
        generated.push(id);
    }
    // Stopping the server collects its whole log: the request spans carry the generated ids,
    // never the ones sent.
    s.kill();
    let log = s.stderr_lines();
    for id in &generated {
        assert!(log.iter().any(|line| line.contains(id.as_str())), "no log line names {id}");
    }
    assert!(!log.iter().any(|line| line.contains(&script) || line.contains(&long)), "the log holds an id as sent");
}
