//! E-mail to people (issue 18), against a real SMTP server started by the test (Python
//! `aiosmtpd`, see `tests/smtp_receiver/`): the messages of bookings, requests,
//! confirmations, cancellations (saying who cancelled) and moves, in German and English, with
//! a valid `.ics`; exactly once per event and recipient; retries after 451 and giving up after
//! 550; reminders; a kill -9 while a message is in flight; two nodes sending one queue.

mod support;

use reqwest::Method;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use support::tokens::{bearer, with_test_jwks};
use support::{ServerOptions, TestServer, json_body, until};

const PRACTICE_ADDRESS: &str = "termine@praxis.test";
const CONTACT_PURPOSE_SYSTEM: &str = "https://termin.at/fhir/CodeSystem/contact-purpose";
/// A reason for the visit that no message may carry.
const DIAGNOSIS: &str = "Verdacht auf Bandscheibenvorfall";
const WAIT: Duration = Duration::from_secs(60);

/// The SMTP server and the JSON lines it writes, one per SMTP transaction.
struct Receiver {
    process: Child,
    port: u16,
    out: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

impl Receiver {
    /// Starts the server; `settings` as `receiver.py` describes (`out` is filled in).
    fn start(mut settings: Value) -> Receiver {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/smtp_receiver");
        let python = dir.join(".venv/bin/python");
        assert!(python.is_file(), "the SMTP receiver is not installed: run ./scripts/test-tools (./scripts/test does)");
        let temp = tempfile::tempdir().unwrap();
        let out = temp.path().join("received.jsonl");
        settings["out"] = json!(out.to_str().unwrap());
        let mut process = Command::new(python)
            .arg(dir.join("receiver.py"))
            .arg(settings.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start receiver.py");
        // It prints its port once it listens; a failed start closes stdout.
        let mut line = String::new();
        BufReader::new(process.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let port = line.trim().strip_prefix("listening ").unwrap_or_else(|| panic!("receiver did not start: {line:?}"));
        Receiver { port: port.parse().unwrap(), process, out, _dir: temp }
    }

    /// Every complete line written so far.
    fn entries(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        text.split_inclusive('\n').filter(|l| l.ends_with('\n')).map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    fn of_kind(&self, kind: &str) -> Vec<Value> {
        self.entries().into_iter().filter(|e| e["kind"] == kind).collect()
    }

    fn accepted(&self) -> Vec<Value> {
        self.of_kind("accepted")
    }

    fn accepted_to(&self, address: &str) -> Vec<Value> {
        self.accepted().into_iter().filter(|m| m["to"][0] == address).collect()
    }

    async fn wait_for_accepted(&self, count: usize) -> Vec<Value> {
        until(&format!("{count} messages"), WAIT, async || self.accepted().len() >= count).await;
        self.accepted()
    }
}

/// A server sending through `receiver`, with fast retries and leases.
fn mail_options(receiver: &Receiver, reminder_before: &str) -> ServerOptions {
    ServerOptions::new()
        .flag("--smtp-url", format!("smtp://127.0.0.1:{}", receiver.port))
        .flag("--smtp-from", "Termin <noreply@termin.test>")
        .flag("--smtp-starttls", "never")
        .flag("--mail-reminder-before", reminder_before)
        .flag("--notify-interval", "100ms")
        .flag("--notify-timeout", "1s")
        .flag("--notify-retry-base", "100ms")
        .flag("--notify-max-backoff", "400ms")
}

const STAFF_SCOPE: &str = "system/*.cruds";

/// Sends `body` with `method` to `path` as `token` (anonymous without).
async fn call(server: &TestServer, method: Method, path: &str, token: Option<&str>, body: &Value, status: u16) -> Value {
    let mut request = json_body(server.request(method, path), body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    server.send(request).await.expect_status(status).json()
}

/// The practice (with its notification address), its service, place and schedule, patients
/// in German and English, and free slots `slot-0..slots` an hour apart from `first_start`.
async fn directory(server: &TestServer, token: Option<&str>, first_start: jiff::Timestamp, slots: usize) {
    let mut resources = vec![
        json!({"resourceType": "Organization", "id": "org-1", "name": "Praxis am Ring",
               "telecom": [{"system": "phone", "value": "+43 1 2345"}],
               "contact": [{"purpose": {"coding": [{"system": CONTACT_PURPOSE_SYSTEM, "code": "appointment-notifications"}]},
                            "telecom": [{"system": "email", "value": PRACTICE_ADDRESS}]}]}),
        json!({"resourceType": "Location", "id": "loc-1", "name": "Praxis am Ring",
               "address": {"text": "Ringstraße 1, 1010 Wien"}}),
        json!({"resourceType": "HealthcareService", "id": "hcs-1", "name": "Physiotherapie",
               "providedBy": {"reference": "Organization/org-1"}, "location": [{"reference": "Location/loc-1"}]}),
        json!({"resourceType": "Schedule", "id": "sch-1", "active": true, "actor": [{"reference": "HealthcareService/hcs-1"}]}),
        json!({"resourceType": "Patient", "id": "pat-de", "name": [{"family": "Huber"}],
               "telecom": [{"system": "email", "value": "huber@patient.test"}]}),
        json!({"resourceType": "Patient", "id": "pat-en", "name": [{"family": "Smith"}],
               "telecom": [{"system": "phone", "value": "+44 20 1234"}, {"system": "email", "value": "smith@patient.test"}],
               "communication": [{"language": {"coding": [{"system": "urn:ietf:bcp:47", "code": "en"}]}, "preferred": true}]}),
    ];
    for i in 0..slots {
        let start = slot_start(first_start, i);
        resources.push(json!({"resourceType": "Slot", "id": format!("slot-{i}"), "schedule": {"reference": "Schedule/sch-1"},
            "status": "free", "start": start.to_string(), "end": (start + jiff::SignedDuration::from_mins(30)).to_string()}));
    }
    for resource in resources {
        let path = format!("{}/{}", resource["resourceType"].as_str().unwrap(), resource["id"].as_str().unwrap());
        call(server, Method::PUT, &path, token, &resource, 201).await;
    }
}

async fn read_as(server: &TestServer, token: &str, path: &str) -> Value {
    server.send(server.request(Method::GET, path).bearer_auth(token)).await.expect_status(200).json()
}

/// The start of slot `index` of [`directory`].
fn slot_start(first_start: jiff::Timestamp, index: usize) -> jiff::Timestamp {
    first_start + jiff::SignedDuration::from_hours(index as i64)
}

/// An Appointment of `patient` on slot `index` of [`directory`] (slots from `first_start`).
fn appointment(patient: &str, first_start: jiff::Timestamp, index: usize, status: &str) -> Value {
    let start = slot_start(first_start, index);
    let slot = format!("slot-{index}");
    json!({
        "resourceType": "Appointment", "status": status,
        "start": start.to_string(), "end": (start + jiff::SignedDuration::from_mins(30)).to_string(),
        "serviceType": [{"concept": {"text": "Physiotherapie"}}],
        "description": DIAGNOSIS,
        "reason": [{"concept": {"text": DIAGNOSIS}}],
        "subject": {"reference": format!("Patient/{patient}")},
        "participant": [{"actor": {"reference": format!("Patient/{patient}")}, "status": "accepted"},
                        {"actor": {"reference": "HealthcareService/hcs-1"}, "status": "accepted"}],
        "slot": [{"reference": format!("Slot/{slot}")}],
    })
}

fn future() -> jiff::Timestamp {
    "2030-01-07T08:00:00Z".parse().unwrap()
}

/// The content lines of an iCalendar object after checking its form (RFC 5545 3.1: CRLF
/// line ends, at most 75 octets a line, folds unfolded) and the nesting of its components;
/// each as (name with parameters, value).
fn calendar_lines(ics: &str) -> Vec<(String, String)> {
    assert!(ics.ends_with("\r\n"), "{ics:?}");
    for line in ics.split("\r\n") {
        assert!(line.len() <= 75, "a line of {} octets: {line:?}", line.len());
        assert!(!line.contains('\n') && !line.contains('\r'), "a bare line break: {line:?}");
    }
    let unfolded = ics.replace("\r\n ", "");
    let lines: Vec<(String, String)> = unfolded
        .split("\r\n")
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (name, value) = l.split_once(':').unwrap_or_else(|| panic!("no value: {l:?}"));
            (name.to_owned(), value.to_owned())
        })
        .collect();
    let mut open = Vec::new();
    for (name, value) in &lines {
        match name.as_str() {
            "BEGIN" => open.push(value.clone()),
            "END" => assert_eq!(open.pop().as_ref(), Some(value), "END:{value} closes nothing open"),
            _ => assert!(!open.is_empty(), "{name} outside a component"),
        }
    }
    assert!(open.is_empty(), "unclosed {open:?}");
    assert_eq!(lines.first().map(|l| l.1.as_str()), Some("VCALENDAR"));
    lines
}

/// The value of property `name` (parameters ignored).
fn property<'a>(lines: &'a [(String, String)], name: &str) -> Option<&'a str> {
    lines.iter().find(|(n, _)| n == name || n.starts_with(&format!("{name};"))).map(|(_, v)| v.as_str())
}

/// Checks a message's calendar: the properties RFC 5545 and iTIP need; returns (method, UID, SEQUENCE).
fn check_calendar(message: &Value) -> (String, String, u64) {
    let ics = message["ics"].as_str().unwrap_or_else(|| panic!("no .ics: {message}"));
    let lines = calendar_lines(ics);
    for required in ["VERSION", "PRODID", "METHOD", "UID", "DTSTAMP", "DTSTART", "DTEND", "SEQUENCE", "ORGANIZER", "SUMMARY"] {
        assert!(property(&lines, required).is_some(), "{required} missing in {ics}");
    }
    assert_eq!(property(&lines, "VERSION"), Some("2.0"));
    for stamp in ["DTSTAMP", "DTSTART", "DTEND"] {
        let value = property(&lines, stamp).unwrap();
        assert!(jiff::civil::DateTime::strptime("%Y%m%dT%H%M%SZ", value).is_ok(), "{stamp}:{value}");
    }
    let method = property(&lines, "METHOD").unwrap().to_owned();
    assert_eq!(message["ics_method"], method.as_str(), "the part's method parameter");
    (method, property(&lines, "UID").unwrap().to_owned(), property(&lines, "SEQUENCE").unwrap().parse().unwrap())
}

fn no_clinical_text(messages: &[Value]) {
    for message in messages {
        for part in ["subject", "text", "html", "ics"] {
            assert!(!message[part].as_str().unwrap_or_default().contains(DIAGNOSIS), "{part} carries the reason: {message}");
        }
    }
}

fn subject(message: &Value) -> &str {
    message["subject"].as_str().unwrap()
}

#[tokio::test]
async fn lifecycle_messages_in_german_and_english_with_calendar_entries() {
    let receiver = Receiver::start(json!({}));
    let server = TestServer::start_with(with_test_jwks(mail_options(&receiver, "0s"))).await;
    let staff = bearer("staff-1", STAFF_SCOPE, None);
    directory(&server, Some(&staff), future(), 4).await;

    // Booked (by staff): the patient in German, the practice.
    let booked = call(&server, Method::POST, "Appointment", Some(&staff), &appointment("pat-de", future(), 0, "booked"), 201).await;
    let booked_id = booked["id"].as_str().unwrap().to_owned();
    // A request from the English-speaking patient, confirmed by staff, then cancelled by staff.
    let request = call(&server, Method::POST, "Appointment", Some(&staff), &appointment("pat-en", future(), 1, "pending"), 201).await;
    let request_id = request["id"].as_str().unwrap().to_owned();
    let mut confirmed = read_as(&server, &staff, &format!("Appointment/{request_id}")).await;
    confirmed["status"] = json!("booked");
    let confirmed = call(&server, Method::PUT, &format!("Appointment/{request_id}"), Some(&staff), &confirmed, 200).await;
    let mut cancelled = confirmed.clone();
    cancelled["status"] = json!("cancelled");
    call(&server, Method::PUT, &format!("Appointment/{request_id}"), Some(&staff), &cancelled, 200).await;
    // The practice moves the German patient's appointment, and the patient cancels it herself.
    let mut moved = read_as(&server, &staff, &format!("Appointment/{booked_id}")).await;
    moved["slot"] = json!([{"reference": "Slot/slot-2"}]);
    let moved = call(&server, Method::PUT, &format!("Appointment/{booked_id}"), Some(&staff), &moved, 200).await;
    let patient = bearer("user-pat-de", "launch/patient patient/Appointment.cruds patient/Slot.rus", Some("pat-de"));
    let mut own_cancel = moved.clone();
    own_cancel["status"] = json!("cancelled");
    call(&server, Method::PUT, &format!("Appointment/{booked_id}"), Some(&patient), &own_cancel, 200).await;

    // 2 (booked) + 2 (request) + 1 (confirmed) + 2 (cancelled by the practice) + 2 (moved) + 1 (cancelled by the patient)
    receiver.wait_for_accepted(10).await;
    // One more event after them all: once its message is in, the ones before would have been
    // sent twice already, if they were.
    call(&server, Method::POST, "Appointment", Some(&staff), &appointment("pat-en", future(), 3, "booked"), 201).await;
    let messages = receiver.wait_for_accepted(12).await;
    assert_eq!(messages.len(), 12, "{messages:#?}");
    let ids: BTreeSet<&str> = messages.iter().map(|m| m["message_id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 12, "a message was sent twice");
    no_clinical_text(&messages);

    let german_messages = receiver.accepted_to("huber@patient.test");
    let german: Vec<&str> = german_messages.iter().map(subject).collect();
    assert_eq!(german.len(), 2, "booked and moved; not her own cancellation: {german:?}");
    assert!(german[0].starts_with("Termin gebucht: Physiotherapie, Montag, 07.01.2030, 09:00–09:30 Uhr"), "{german:?}");
    assert!(german[1].starts_with("Termin verschoben: Physiotherapie, Montag, 07.01.2030, 11:00–11:30 Uhr"), "{german:?}");
    let booked_mail = &german_messages[0];
    let text = booked_mail["text"].as_str().unwrap();
    for expected in ["Ihr Termin ist gebucht.", "Ort: Praxis am Ring, Ringstraße 1, 1010 Wien", "Tel. +43 1 2345", "sagen Sie ihn bitte rechtzeitig"] {
        assert!(text.contains(expected), "{expected:?} missing in {text}");
    }
    assert!(booked_mail["html"].as_str().unwrap().contains("<html lang=\"de\">"));
    assert_eq!(booked_mail["mail_from"], "noreply@termin.test");
    let moved_text = german_messages[1]["text"].as_str().unwrap();
    assert!(moved_text.contains("von der Ordination verschoben (bisher: Montag, 07.01.2030, 09:00 Uhr)"), "{moved_text}");

    let english = receiver.accepted_to("smith@patient.test");
    let english_subjects: Vec<&str> = english.iter().map(subject).collect();
    assert_eq!(english_subjects.len(), 4, "{english_subjects:?}");
    assert!(english_subjects[0].starts_with("Appointment request received: Physiotherapie, Monday, 7 January 2030, 10:00–10:30"));
    assert!(english_subjects[1].starts_with("Appointment confirmed"));
    assert!(english_subjects[2].starts_with("Appointment cancelled"));
    assert!(english[2]["text"].as_str().unwrap().contains("cancelled by the practice"), "{}", english[2]["text"]);
    assert!(english_subjects[3].starts_with("Appointment booked"));
    // One calendar entry per appointment: the same UID, a rising SEQUENCE, CANCEL at the end.
    let calendars: Vec<(String, String, u64)> = english[..3].iter().map(check_calendar).collect();
    assert_eq!(calendars.iter().map(|c| c.0.as_str()).collect::<Vec<_>>(), ["REQUEST", "REQUEST", "CANCEL"]);
    assert!(calendars.iter().all(|c| c.1 == calendars[0].1), "{calendars:?}");
    assert!(calendars[0].1.contains(&request_id));
    assert!(calendars[0].2 < calendars[1].2 && calendars[1].2 < calendars[2].2, "{calendars:?}");
    assert_ne!(check_calendar(&english[3]).1, calendars[0].1, "another appointment, another UID");
    assert!(english[2]["ics"].as_str().unwrap().contains("STATUS:CANCELLED"));

    // The practice: booked, request to confirm, cancelled by itself, moved, cancelled by the patient, booked.
    let practice = receiver.accepted_to(PRACTICE_ADDRESS);
    let practice_subjects: Vec<&str> = practice.iter().map(subject).collect();
    assert_eq!(practice_subjects.len(), 6, "{practice_subjects:?}");
    assert!(practice_subjects[0].starts_with("Neue Buchung"));
    assert!(practice_subjects[1].starts_with("Terminanfrage zu bestätigen"));
    assert!(practice[2]["text"].as_str().unwrap().contains("von der Ordination abgesagt"));
    assert!(practice_subjects[3].starts_with("Termin verschoben"));
    let by_patient = practice[4]["text"].as_str().unwrap();
    assert!(by_patient.contains("von der Patientin bzw. dem Patienten abgesagt"), "{by_patient}");
    assert!(by_patient.contains(&format!("Appointment/{booked_id}")));
    for message in &messages {
        check_calendar(message);
    }
}

#[tokio::test]
async fn temporary_failures_are_retried_and_permanent_ones_given_up() {
    let receiver = Receiver::start(json!({"fail_first": 2, "reject": ["huber@patient.test"]}));
    let server = TestServer::start_with(mail_options(&receiver, "0s")).await;
    directory(&server, None, future(), 2).await;
    server.create(&appointment("pat-de", future(), 0, "booked")).await;
    // The practice's message: 451 twice, then accepted; the patient's address: 550, given up.
    let accepted = receiver.wait_for_accepted(1).await;
    assert_eq!(accepted[0]["to"][0], PRACTICE_ADDRESS);
    assert_eq!(receiver.of_kind("deferred").len(), 2);
    let metrics = async || server.get_root("/metrics").await.expect_status(200).text();
    until("the failure recorded", WAIT, async || metrics().await.contains("termin_mail_failed_total 1")).await;
    assert!(metrics().await.contains("termin_mail_retries_total 2"), "{}", metrics().await);
    // Later messages go out; the rejected one is not tried again.
    server.create(&appointment("pat-en", future(), 1, "booked")).await;
    receiver.wait_for_accepted(3).await;
    assert_eq!(receiver.of_kind("rejected").len(), 1, "{:#?}", receiver.entries());
    assert_eq!(receiver.accepted().len(), 3);
}

#[tokio::test]
async fn the_patient_is_reminded_once_before_the_appointment() {
    let receiver = Receiver::start(json!({}));
    let server = TestServer::start_with(mail_options(&receiver, "24h")).await;
    let soon = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(2);
    directory(&server, None, soon, 1).await;
    server.create(&appointment("pat-en", soon, 0, "booked")).await;
    // booked (patient, practice) and the reminder
    until("the reminder", WAIT, async || receiver.accepted().iter().any(|m| subject(m).starts_with("Appointment reminder"))).await;
    let reminder = receiver.accepted().into_iter().find(|m| subject(m).starts_with("Appointment reminder")).unwrap();
    assert_eq!(reminder["to"][0], "smith@patient.test");
    assert!(reminder["text"].as_str().unwrap().contains("This is a reminder of your appointment."));
    assert_eq!(check_calendar(&reminder).0, "REQUEST");
    // A later event's messages come after further rounds of reminders: still one reminder.
    let far = slot_start(future(), 1);
    let far_slot = json!({"resourceType": "Slot", "id": "slot-1", "schedule": {"reference": "Schedule/sch-1"}, "status": "free",
                          "start": far.to_string(), "end": (far + jiff::SignedDuration::from_mins(30)).to_string()});
    call(&server, Method::PUT, "Slot/slot-1", None, &far_slot, 201).await;
    server.create(&appointment("pat-de", future(), 1, "booked")).await;
    until("the far booking's message", WAIT, async || !receiver.accepted_to("huber@patient.test").is_empty()).await;
    let reminders = receiver.accepted().iter().filter(|m| subject(m).contains("reminder") || subject(m).contains("erinnerung")).count();
    assert_eq!(reminders, 1, "{:#?}", receiver.accepted());
}

/// Bookings of `count` slots by the German patient (the practice is told as well).
async fn bookings(server: &TestServer, count: usize) {
    for i in 0..count {
        server.create(&appointment("pat-de", future(), i, "booked")).await;
    }
}

/// How often each Message-ID arrived.
fn arrivals(receiver: &Receiver) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for message in receiver.accepted() {
        *counts.entry(message["message_id"].as_str().unwrap().to_owned()).or_insert(0) += 1;
    }
    counts
}

#[tokio::test]
async fn kill_9_while_sending_resends_at_most_the_message_in_flight() {
    // A slow server: each message is recorded, then answered after 300 ms.
    let receiver = Receiver::start(json!({"delay": 0.3}));
    let mut server = TestServer::start_with(mail_options(&receiver, "0s")).await;
    directory(&server, None, future(), 16).await;
    bookings(&server, 15).await;
    until("some messages", WAIT, async || receiver.accepted().len() >= 4).await;
    server.kill();
    let before_restart = receiver.accepted().len();
    assert!(before_restart < 30, "all were sent before the kill");
    server.restart().await;
    until("every message", WAIT, async || arrivals(&receiver).len() >= 30).await;
    // Once the next event's messages are in, any further resend would have happened.
    server.create(&appointment("pat-en", future(), 15, "booked")).await;
    until("the last event's messages", WAIT, async || arrivals(&receiver).len() >= 32).await;
    let counts = arrivals(&receiver);
    assert_eq!(counts.len(), 32, "one message per event and recipient");
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    eprintln!("{} of 30 messages sent before the kill; sent twice: {}", before_restart, twice.len());
    assert!(twice.len() <= 1 && twice.iter().all(|(_, n)| **n == 2), "only the one in flight may come twice: {twice:?}");
}

#[tokio::test]
async fn two_nodes_send_each_message_once() {
    let receiver = Receiver::start(json!({}));
    let server = TestServer::start_with(mail_options(&receiver, "0s")).await;
    let _second = server.another_node(mail_options(&receiver, "0s")).await;
    directory(&server, None, future(), 11).await;
    bookings(&server, 10).await;
    until("every message", WAIT, async || arrivals(&receiver).len() >= 20).await;
    server.create(&appointment("pat-en", future(), 10, "booked")).await;
    until("the last event's messages", WAIT, async || arrivals(&receiver).len() >= 22).await;
    let counts = arrivals(&receiver);
    assert_eq!(counts.len(), 22);
    assert!(counts.values().all(|n| *n == 1), "sent by both nodes: {counts:?}");
}
