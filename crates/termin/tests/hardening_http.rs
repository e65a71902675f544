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

#[tokio::test]
async fn a_host_header_that_is_not_host_and_port_is_refused_and_never_reflected() {
    let s = TestServer::start().await;
    let hostile = "evil.example\"><script>alert(1)</script>";
    let r = s.send(s.request(Method::GET, "Patient").header("host", hostile)).await;
    assert!(!r.text().contains("<script>"), "{}", r.text());
    r.outcome(400);
    let create = json_body(s.request(Method::POST, "Patient"), &simple_patient("Host")).header("host", hostile);
    s.send(create).await.outcome(400);
    assert_eq!(s.type_history_len("Patient").await, 0, "a refused create stores nothing");

    // A plain host[:port] becomes the base of links and Location.
    let create = json_body(s.request(Method::POST, "Patient"), &simple_patient("Host")).header("host", "termin.example:8443");
    let created = s.send(create).await.expect_status(201);
    assert!(created.require_header("location").starts_with("http://termin.example:8443/fhir/Patient/"));
    let bundle = s.send(s.request(Method::GET, "Patient?family=Host").header("host", "[::1]:8080")).await.expect_status(200).json();
    assert_eq!(link(&bundle, "self").unwrap(), "http://[::1]:8080/fhir/Patient?family=Host");
}

#[tokio::test]
async fn with_a_configured_base_url_the_host_header_is_not_used() {
    let s = TestServer::start_with(ServerOptions::new().base_url("https://termin.example.at/fhir")).await;
    let bundle = s
        .send(s.request(Method::GET, "Patient").header("host", "evil.example\"><script>"))
        .await
        .expect_status(200)
        .json();
    assert_eq!(link(&bundle, "self").unwrap(), "https://termin.example.at/fhir/Patient");
}

#[tokio::test]
async fn everything_a_client_puts_into_a_search_link_is_percent_encoded() {
    let s = TestServer::start().await;
    let bundle = s.get("Patient?family=%22%3E%3Cscript%3E&_cursor=%22%3E%3Cb%3E").await;
    // The cursor is not one the server wrote; whatever the answer, no markup comes back raw.
    assert!(!bundle.text().contains("<script>") && !bundle.text().contains("<b>"), "{}", bundle.text());
    let bundle = s.get("Patient?family=a%22b%3Cc%20d&_count=1").await.expect_status(200).json();
    assert_eq!(link(&bundle, "self").unwrap(), format!("{}/Patient?family=a%22b%3Cc+d&_count=1", s.base()));
}
