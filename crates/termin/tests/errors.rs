//! Rejected requests: status codes, OperationOutcome bodies, and "a rejected request changes
//! nothing".

mod support;

use reqwest::Method;
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use serde_json::{Value, json};
use support::*;

async fn raw(s: &TestServer, method: Method, path: &str, content_type: &str, body: &str) -> Resp {
    s.send(
        s.request(method, path)
            .header(CONTENT_TYPE, content_type)
            .body(body.to_string()),
    )
    .await
}

/// Current state of a Patient plus its history length, to show nothing changed.
async fn snapshot(s: &TestServer, id: &str) -> (Value, usize, usize) {
    (
        s.read("Patient", id).await,
        s.history_len("Patient", id).await,
        s.type_history_len("Patient").await,
    )
}

const BROKEN: &str = "{\n  \"resourceType\": \"Patient\",\n  \"name\": [\n    {\"family\": \"X\",}\n  ]\n}\n";

#[tokio::test]
async fn invalid_json_is_400_with_line_and_column() {
    let s = TestServer::start().await;
    let err = serde_json::from_str::<Value>(BROKEN).unwrap_err();
    let (line, column) = (err.line(), err.column());
    assert!(line >= 3, "fixture should fail on a later line");

    let oo = raw(&s, Method::POST, "Patient", FHIR_JSON, BROKEN).await.outcome(400);
    let d = diagnostics(&oo);
    assert!(
        d.contains(&format!("line {line}")) && d.contains(&format!("column {column}")),
        "diagnostics should name line {line} column {column}: {d:?}"
    );
    assert_eq!(s.type_history_len("Patient").await, 0);

    // Same on update; the resource stays as it was.
    let v1 = s.create(&simple_patient("Heil")).await;
    let id = id_of(&v1);
    let before = snapshot(&s, &id).await;
    let broken_put = BROKEN.replace(
        "\"resourceType\": \"Patient\",",
        &format!("\"resourceType\": \"Patient\", \"id\": \"{id}\","),
    );
    let oo = raw(&s, Method::PUT, &format!("Patient/{id}"), FHIR_JSON, &broken_put).await.outcome(400);
    let d = diagnostics(&oo);
    assert!(d.contains("line") && d.contains("column"), "PUT diagnostics: {d:?}");
    assert_eq!(snapshot(&s, &id).await, before);

    // Truncated document and plain garbage.
    raw(&s, Method::POST, "Patient", FHIR_JSON, "{\"resourceType\": \"Pat").await.outcome(400);
    raw(&s, Method::POST, "Patient", FHIR_JSON, "not json at all").await.outcome(400);
    raw(&s, Method::POST, "Patient", FHIR_JSON, "").await.outcome(400);
    assert_eq!(snapshot(&s, &id).await, before);
}

#[tokio::test]
async fn non_object_json_is_400() {
    let s = TestServer::start().await;
    for body in ["[]", "[{\"resourceType\":\"Patient\"}]", "\"Patient\"", "42", "null", "true"] {
        raw(&s, Method::POST, "Patient", FHIR_JSON, body).await.outcome(400);
        raw(&s, Method::PUT, "Patient/x1", FHIR_JSON, body).await.outcome(400);
    }
    assert_eq!(s.type_history_len("Patient").await, 0);
}

#[tokio::test]
async fn missing_or_wrong_resource_type_in_body_is_400() {
    let s = TestServer::start().await;
    let v1 = s.create(&simple_patient("Typ")).await;
    let id = id_of(&v1);
    let before = snapshot(&s, &id).await;
    let bodies = [
        json!({ "name": [{ "family": "OhneTyp" }] }),
        json!({ "resourceType": 7, "name": [{ "family": "ZahlTyp" }] }),
        json!({ "resourceType": "Observation", "status": "final" }),
        json!({ "resourceType": "Practitioner", "name": [{ "family": "FalscherTyp" }] }),
    ];
    for body in &bodies {
        s.post("Patient", body).await.outcome(400);
        let mut with_id = body.clone();
        with_id["id"] = json!(id);
        s.put(&format!("Patient/{id}"), &with_id).await.outcome(400);
    }
    assert_eq!(snapshot(&s, &id).await, before);
}

#[tokio::test]
async fn body_larger_than_max_body_bytes_is_413_and_changes_nothing() {
    const LIMIT: usize = 2048;
    let s = TestServer::start_with(ServerOptions::new().max_body_bytes(LIMIT)).await;
    let small = simple_patient("Klein");
    assert!(serde_json::to_vec(&small).unwrap().len() < LIMIT);
    let v1 = s.create(&small).await;
    let id = id_of(&v1);
    let before = snapshot(&s, &id).await;

    // Oversized requests go over their own connections: whether the server may drop a
    // connection after an early 413 is tested separately below.
    let c = s.unpooled_client();
    let mut big = simple_patient("Gross");
    big["name"][0]["text"] = json!("x".repeat(LIMIT * 2));
    assert!(serde_json::to_vec(&big).unwrap().len() > LIMIT);
    send(json_body(c.post(s.url("Patient")), &big)).await.outcome(413);
    big["id"] = json!(id);
    send(json_body(c.put(s.url(&format!("Patient/{id}"))), &big)).await.outcome(413);
    // Also far beyond the limit.
    big["name"][0]["text"] = json!("y".repeat(LIMIT * 20));
    send(json_body(c.post(s.url("Patient")), &big)).await.outcome(413);
    assert_eq!(snapshot(&s, &id).await, before);

    // Just below the limit is fine.
    let mut near = simple_patient("Knapp");
    let base_len = serde_json::to_vec(&near).unwrap().len();
    near["name"][0]["text"] = json!("z".repeat(LIMIT - base_len - 32));
    let n = serde_json::to_vec(&near).unwrap().len();
    assert!(n < LIMIT && n > LIMIT - 64, "fixture size {n}");
    s.create(&near).await;
}

/// After answering 413 without reading the body, the server must either say
/// `Connection: close` or keep serving the connection: a keep-alive client that reuses it for
/// the next request must not run into a silently closed socket.
#[tokio::test]
async fn connection_after_413_is_closed_announced_or_reusable() {
    const LIMIT: usize = 2048;
    let s = TestServer::start_with(ServerOptions::new().max_body_bytes(LIMIT)).await;
    for size in [LIMIT * 2, LIMIT * 20] {
        let body = serde_json::to_vec(&json!({
            "resourceType": "Patient",
            "name": [{ "family": "Gross", "text": "x".repeat(size) }]
        }))
        .unwrap();
        let mut first = format!(
            "POST /fhir/Patient HTTP/1.1\r\nHost: {}\r\nContent-Type: application/fhir+json\r\nContent-Length: {}\r\n\r\n",
            s.addr(),
            body.len()
        )
        .into_bytes();
        first.extend_from_slice(&body);
        let second = format!(
            "GET /fhir/metadata HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            s.addr()
        )
        .into_bytes();
        let addr = s.addr().to_string();
        let (bytes, err) = tokio::task::spawn_blocking(move || raw_exchange(&addr, &[first, second]))
            .await
            .unwrap();
        let responses = parse_responses(&bytes);
        let what = format!("body of {} bytes", body.len());
        assert!(
            !responses.is_empty(),
            "{what}: no response at all before the connection ended ({err:?})"
        );
        let (status, headers) = &responses[0];
        assert_eq!(*status, 413, "{what}: first response");
        let announced_close = headers
            .iter()
            .any(|(k, v)| k.eq_ignore_ascii_case("connection") && v.to_ascii_lowercase().contains("close"));
        if !announced_close {
            assert!(
                responses.len() >= 2 && responses[1].0 == 200,
                "{what}: the 413 response has no `Connection: close`, but the server did not \
                 answer the next request on the same connection (responses {:?}, io error {err:?}); \
                 413 headers: {headers:?}",
                responses.iter().map(|r| r.0).collect::<Vec<_>>()
            );
        }
    }
}

/// Writes every request to one TCP connection, then reads until the server closes it.
fn raw_exchange(addr: &str, requests: &[Vec<u8>]) -> (Vec<u8>, Option<String>) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(std::time::Duration::from_secs(60))).unwrap();
    let mut err = None;
    for r in requests {
        if let Err(e) = stream.write_all(r) {
            err = Some(format!("write: {e}"));
            break;
        }
    }
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) => {
                err = Some(format!("read: {e}"));
                break;
            }
        }
    }
    (out, err)
}

/// Splits raw HTTP/1.1 responses (Content-Length bodies only): [(status, headers)].
fn parse_responses(mut bytes: &[u8]) -> Vec<(u16, Vec<(String, String)>)> {
    let mut out = Vec::new();
    while let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
        let head = String::from_utf8_lossy(&bytes[..end]).into_owned();
        let mut lines = head.split("\r\n");
        let status: u16 = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        let len: usize = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        out.push((status, headers));
        let next = (end + 4 + len).min(bytes.len());
        bytes = &bytes[next..];
    }
    out
}

#[tokio::test]
async fn unsupported_resource_type_is_404_naming_the_supported_types() {
    let s = TestServer::start().await;
    let body = json!({ "resourceType": "Observation", "status": "final", "code": { "text": "x" } });
    let responses = vec![
        s.get("Observation").await,
        s.get("Observation/123").await,
        s.get("Observation/123/_history").await,
        s.get("Observation/_history").await,
        s.post("Observation", &body).await,
        s.put("Observation/123", &json!({ "resourceType": "Observation", "id": "123", "status": "final" })).await,
        s.delete("Observation/123").await,
        s.get("NotAType").await,
    ];
    for r in responses {
        let oo = r.outcome(404);
        let d = diagnostics(&oo);
        for ty in SUPPORTED_TYPES {
            assert!(d.contains(ty), "{}: diagnostics do not name {ty}: {d:?}", r.what());
        }
    }
}

#[tokio::test]
async fn unsupported_request_content_type_is_415_and_changes_nothing() {
    let s = TestServer::start().await;
    let v1 = s.create(&simple_patient("Inhalt")).await;
    let id = id_of(&v1);
    let before = snapshot(&s, &id).await;
    let body = serde_json::to_string(&simple_patient("Neu")).unwrap();
    let mut put_body = v1.clone();
    put_body["name"][0]["family"] = json!("Neu");
    let put_body = serde_json::to_string(&put_body).unwrap();
    for ct in ["text/plain", "text/html", "application/x-www-form-urlencoded", "application/fhir+turtle"] {
        raw(&s, Method::POST, "Patient", ct, &body).await.outcome(415);
        raw(&s, Method::PUT, &format!("Patient/{id}"), ct, &put_body).await.outcome(415);
    }
    // JSON declared as XML is read as XML: not well-formed, 400.
    for ct in ["application/xml", "application/fhir+xml"] {
        let post = s.request(Method::POST, "Patient").header(CONTENT_TYPE, ct).header(ACCEPT, FHIR_JSON);
        s.send(post.body(body.clone())).await.outcome(400);
        let put = s.request(Method::PUT, &format!("Patient/{id}")).header(CONTENT_TYPE, ct).header(ACCEPT, FHIR_JSON);
        s.send(put.body(put_body.clone())).await.outcome(400);
    }
    assert_eq!(snapshot(&s, &id).await, before);
}

#[tokio::test]
async fn error_responses_carry_fhir_json_content_type_and_request_id() {
    let s = TestServer::start().await;
    let rs = vec![
        s.get("Patient/missing").await,
        s.get("Observation").await,
        raw(&s, Method::POST, "Patient", FHIR_JSON, "{").await,
        raw(&s, Method::POST, "Patient", "text/plain", "{}").await,
    ];
    for r in rs {
        assert!(r.status.is_client_error(), "{}", r.what());
        r.outcome(r.code());
        assert!(r.header("x-request-id").is_some_and(|v| !v.is_empty()), "{}: no X-Request-Id", r.what());
    }
}
