//! The HTTP layer under hostile input (issue 12, items 9 and 10): request ids, the `Host`
//! header, CORS, connection timeouts and the answers to oversized or malformed requests.
//! Backend-independent; runs on either backend like the other integration tests.

mod support;

use reqwest::Method;
use std::time::{Duration, Instant};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

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

const BOOKING_PAGE: &str = "https://booking.example.at";

fn cors_headers(r: &Resp) -> Vec<String> {
    r.headers
        .keys()
        .map(|name| name.as_str().to_string())
        .filter(|name| name.starts_with("access-control-"))
        .collect()
}

fn lower_list(value: &str) -> Vec<String> {
    value.split(',').map(|v| v.trim().to_ascii_lowercase()).collect()
}

#[tokio::test]
async fn cors_preflight_and_requests_from_an_allowed_origin() {
    let s = TestServer::start_with(
        ServerOptions::new().flag("--cors-allowed-origins", format!("{BOOKING_PAGE},http://localhost:3000")),
    )
    .await;
    let preflight = s
        .send(
            s.request(Method::OPTIONS, "Slot/some-slot/$hold")
                .header("origin", BOOKING_PAGE)
                .header("access-control-request-method", "POST")
                .header("access-control-request-headers", "content-type,x-hold-token,authorization"),
        )
        .await
        .expect_status(204);
    assert_eq!(preflight.require_header("access-control-allow-origin"), BOOKING_PAGE);
    let methods = lower_list(&preflight.require_header("access-control-allow-methods"));
    for method in ["get", "post", "put", "patch", "delete"] {
        assert!(methods.contains(&method.to_string()), "{methods:?}");
    }
    let headers = lower_list(&preflight.require_header("access-control-allow-headers"));
    for header in [
        "authorization",
        "content-type",
        "if-match",
        "if-none-exist",
        "if-none-match",
        "prefer",
        "x-request-id",
        "x-hold-token",
    ] {
        assert!(headers.contains(&header.to_string()), "{headers:?}");
    }

    let created = s
        .send(json_body(s.request(Method::POST, "Patient"), &simple_patient("Cors")).header("origin", BOOKING_PAGE))
        .await
        .expect_status(201);
    assert_eq!(created.require_header("access-control-allow-origin"), BOOKING_PAGE);
    let exposed = lower_list(&created.require_header("access-control-expose-headers"));
    for header in ["etag", "location", "content-location", "last-modified", "x-request-id"] {
        assert!(exposed.contains(&header.to_string()), "{exposed:?}");
    }
    // Error answers carry the CORS headers too, so the page can read the OperationOutcome.
    let missing = s.send(s.request(Method::GET, "Patient/none").header("origin", BOOKING_PAGE)).await;
    missing.outcome(404);
    assert_eq!(missing.require_header("access-control-allow-origin"), BOOKING_PAGE);
}

#[tokio::test]
async fn an_origin_not_allowed_gets_no_cors_headers() {
    let s = TestServer::start_with(ServerOptions::new().flag("--cors-allowed-origins", BOOKING_PAGE)).await;
    let preflight = s
        .send(
            s.request(Method::OPTIONS, "Patient")
                .header("origin", "https://evil.example")
                .header("access-control-request-method", "POST"),
        )
        .await;
    assert_eq!(cors_headers(&preflight), Vec::<String>::new());
    let read = s.send(s.request(Method::GET, "metadata").header("origin", "https://evil.example")).await.expect_status(200);
    assert_eq!(cors_headers(&read), Vec::<String>::new());
}

#[tokio::test]
async fn cors_for_any_origin_and_none_by_default() {
    let s = TestServer::start_with(ServerOptions::new().env("TERMIN_CORS_ALLOWED_ORIGINS", "*")).await;
    let read = s.send(s.request(Method::GET, "metadata").header("origin", "https://any.example")).await.expect_status(200);
    assert_eq!(read.require_header("access-control-allow-origin"), "*");

    let s = TestServer::start().await;
    let read = s.send(s.request(Method::GET, "metadata").header("origin", BOOKING_PAGE)).await.expect_status(200);
    assert_eq!(cors_headers(&read), Vec::<String>::new());
    // Without CORS an OPTIONS request is not served.
    let preflight = s
        .send(
            s.request(Method::OPTIONS, "Patient")
                .header("origin", BOOKING_PAGE)
                .header("access-control-request-method", "POST"),
        )
        .await;
    preflight.outcome(405);
    assert_eq!(cors_headers(&preflight), Vec::<String>::new());
}

/// Hang guard for reading a raw connection: only stops a broken server from hanging the test.
const CLOSE_LIMIT: Duration = Duration::from_secs(120);

/// Reads until the server closes the connection; returns everything it sent.
async fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut received = Vec::new();
    let read = tokio::time::timeout(CLOSE_LIMIT, async {
        let mut chunk = [0u8; 4096];
        // A reset counts as closed, like the end of the stream.
        while let Ok(n @ 1..) = stream.read(&mut chunk).await {
            received.extend_from_slice(&chunk[..n]);
        }
    })
    .await;
    assert!(read.is_ok(), "the server did not close the connection within {CLOSE_LIMIT:?}");
    received
}

#[tokio::test]
async fn a_request_head_that_does_not_arrive_in_time_closes_the_connection() {
    let s = TestServer::start_with(
        ServerOptions::new().flag("--header-read-timeout", "1s").flag("--idle-timeout", "10m"),
    )
    .await;
    let started = Instant::now();
    let mut trickling = TcpStream::connect(s.addr()).await.unwrap();
    trickling.write_all(b"GET /fhir/metadata HT").await.unwrap();
    read_until_closed(&mut trickling).await;
    // Generous: far below the idle timeout, so it was the header-read timeout that closed it.
    assert!(started.elapsed() < Duration::from_secs(60), "closed after {:?}", started.elapsed());
    // The server still serves others.
    s.get_root("health").await.expect_status(200);
}

#[tokio::test]
async fn a_request_body_that_does_not_arrive_in_time_answers_408_and_closes() {
    let s = TestServer::start_with(ServerOptions::new().flag("--body-read-timeout", "1s")).await;
    let mut trickling = TcpStream::connect(s.addr()).await.unwrap();
    let head = "POST /fhir/Patient HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/fhir+json\r\n\
                Content-Length: 100\r\n\r\n{\"resourceType\":";
    trickling.write_all(head.as_bytes()).await.unwrap();
    let received = String::from_utf8_lossy(&read_until_closed(&mut trickling).await).into_owned();
    assert!(received.starts_with("HTTP/1.1 408"), "{received}");
    assert!(received.contains("OperationOutcome") && received.contains("did not arrive"), "{received}");
    assert_eq!(s.get("Patient").await.expect_status(200).json()["total"], 0);
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let s = TestServer::start_with(
        ServerOptions::new().flag("--idle-timeout", "1s").flag("--header-read-timeout", "10m"),
    )
    .await;
    let started = Instant::now();
    let mut idle = TcpStream::connect(s.addr()).await.unwrap();
    idle.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n").await.unwrap();
    let received = String::from_utf8_lossy(&read_until_closed(&mut idle).await).into_owned();
    assert!(received.starts_with("HTTP/1.1 200"), "{received}");
    assert!(started.elapsed() < Duration::from_secs(60), "closed after {:?}", started.elapsed());
    // A connection that never sends anything is idle too.
    let mut silent = TcpStream::connect(s.addr()).await.unwrap();
    assert!(read_until_closed(&mut silent).await.is_empty());
}

#[tokio::test]
async fn oversized_and_garbled_request_heads_get_an_operation_outcome() {
    let s = TestServer::start().await;
    let long_uri = format!("Patient?name={}", "a".repeat(10 * 1024));
    let oo = s.get(&long_uri).await.outcome(414);
    assert!(diagnostics(&oo).contains("POST"), "{oo}");

    let big_header = s.send(s.request(Method::GET, "Patient").header("x-big", "a".repeat(50 * 1024))).await;
    big_header.outcome(431);
    let mut many = s.request(Method::GET, "Patient");
    for i in 0..150 {
        many = many.header(format!("x-field-{i}"), "1");
    }
    s.send(many).await.outcome(431);

    let binary = reqwest::header::HeaderValue::from_bytes(b"return=\xffminimal").unwrap();
    let create = json_body(s.request(Method::POST, "Patient"), &simple_patient("Binary")).header("prefer", binary);
    let oo = s.send(create).await.outcome(400);
    assert!(diagnostics(&oo).contains("prefer"), "{oo}");
    assert_eq!(s.type_history_len("Patient").await, 0, "a refused create stores nothing");
}
