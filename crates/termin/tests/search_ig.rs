//! The AT Scheduling IG's search rules: `active` defaults for HealthcareService and Schedule,
//! patients found by social security number through literal references, and every example
//! search URL of the IG's interaction pages, verbatim, against the IG's example data.

mod support;

use serde_json::{Value, json};
use support::*;

const SVNR: &str = "urn:oid:1.2.40.0.10.1.4.3.1";


async fn put(s: &TestServer, resource: Value) {
    let path = format!("{}/{}", resource["resourceType"].as_str().unwrap(), id_of(&resource));
    let r = s.put(&path, &resource).await;
    assert!(matches!(r.code(), 200 | 201), "PUT {path}: {}", r.text());
}

#[tokio::test]
async fn healthcare_services_and_schedules_are_active_unless_asked_otherwise() {
    let s = TestServer::start().await;
    for (ty, extra) in [("HealthcareService", json!({"name": "Physiotherapie"})), ("Schedule", json!({}))] {
        for (id, active) in [("on", Some(true)), ("off", Some(false)), ("unsaid", None)] {
            let mut resource = json!({"resourceType": ty, "id": id});
            if let Some(active) = active {
                resource["active"] = json!(active);
            }
            for (k, v) in extra.as_object().unwrap() {
                resource[k] = v.clone();
            }
            put(&s, resource).await;
        }
        let cases: &[(&str, &[&str])] = &[
            ("", &["on", "unsaid"]),
            ("?_sort=_id", &["on", "unsaid"]),
            ("?active=true", &["on"]),
            ("?active=false", &["off"]),
            ("?active:missing=true", &["unsaid"]),
            ("?active:not=true", &["off", "unsaid"]),
            ("?_id=off", &[]),
        ];
        for (query, expected) in cases {
            let page = s.get(&format!("{ty}{query}")).await.expect_status(200).json();
            assert_eq!(matches(&page), *expected, "{ty}{query}");
        }
    }
    // Other types have no such default.
    put(&s, json!({"resourceType": "Organization", "id": "closed", "active": false})).await;
    assert_eq!(matches(&s.get("Organization").await.expect_status(200).json()), ["closed"]);
}

#[tokio::test]
async fn appointments_of_a_patient_by_social_security_number() {
    let s = TestServer::start().await;
    put(&s, json!({"resourceType": "Patient", "id": "max", "identifier": [{"system": SVNR, "value": "1234010100"}]})).await;
    put(&s, json!({"resourceType": "Patient", "id": "other", "identifier": [{"system": SVNR, "value": "9999010100"}]})).await;
    let appointment = |id: &str, patient: &str, start: &str| {
        json!({"resourceType": "Appointment", "id": id, "status": "proposed",
               "start": start, "end": start,
               "participant": [{"actor": {"reference": format!("Patient/{patient}")}, "status": "needs-action"}]})
    };
    put(&s, appointment("in-week", "max", "2026-04-08T10:00:00+02:00")).await;
    put(&s, appointment("later", "max", "2026-05-08T10:00:00+02:00")).await;
    put(&s, appointment("someone-else", "other", "2026-04-08T11:00:00+02:00")).await;
    let page = s
        .get(&format!("Appointment?actor:identifier={SVNR}|1234010100&date=ge2026-04-07&date=le2026-04-14"))
        .await
        .expect_status(200)
        .json();
    assert_eq!(matches(&page), ["in-week"]);
    let page = s
        .get(&format!("Appointment?patient:identifier={SVNR}|1234010100"))
        .await
        .expect_status(200)
        .json();
    assert_eq!(matches(&page), ["in-week", "later"]);
}

/// The example search URLs of the IG's interaction pages, without their `https://example.com/R5/`.
fn ig_example_searches() -> Vec<String> {
    let dir = ig_pages().join("interactions");
    let mut urls = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().map(|e| e.path()).collect();
    files.sort();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for line in text.lines() {
            if let Some(path) = line.trim().strip_prefix("https://example.com/R5/") {
                urls.push(path.to_owned());
            }
        }
    }
    urls
}

async fn ig_server() -> TestServer {
    // The IG examples only (those built into termin), as the IG pages search them.
    let options = ServerOptions::new().validation().arg("--demo").flag("--demo-scale", "none");
    TestServer::start_with(options).await
}

#[tokio::test]
async fn every_ig_example_search_works_verbatim() {
    let s = ig_server().await;
    let searches = ig_example_searches();
    assert_eq!(searches.len(), 4, "the IG pages' example searches: {searches:?}");
    for search in &searches {
        let page = s.get(search).await.expect_status(200).json();
        assert_eq!(page["type"], "searchset", "{search}");
        for issue in issues(&page) {
            assert_eq!(issue["severity"], "information", "{search}: nothing may be ignored: {page}");
        }
    }
    let search_for = |prefix: &str| {
        searches
            .iter()
            .find(|s| s.starts_with(prefix))
            .unwrap_or_else(|| panic!("no example search starts with {prefix}"))
            .clone()
    };
    // The IG's HealthcareService example offers service type 65.
    let services = s.get(&search_for("HealthcareService?")).await.expect_status(200).json();
    assert_eq!(matches(&services), ["HL7ATSchedulingHealthcareServiceExample01"]);
    // The lenient readings are reported.
    let slots = s.get(&search_for("Slot?")).await.expect_status(200).json();
    assert!(issues(&slots).iter().any(|i| i["expression"] == json!(["date"])), "{slots}");
    let schedules = s.get(&search_for("Schedule?")).await.expect_status(200).json();
    assert!(issues(&schedules).iter().any(|i| i["expression"] == json!(["actor"])), "{schedules}");
}

#[tokio::test]
async fn ig_example_searches_find_the_ig_examples_in_their_time_window() {
    let s = ig_server().await;
    // The IG's URLs ask for April 2026; the example data lies in 2025. The same searches in the
    // examples' window find them.
    let cases: &[(&str, &[&str])] = &[
        (
            "Slot?schedule=Schedule/HL7ATSchedulingScheduleExample01&service-type-reference=http://hl7.at/fhir/TC-FHIR-AG-Scheduling-R5/R5/ValueSet/AtSchedulingServiceType|65&date=ge2025-09-15&date=le2025-09-16",
            &[
                "HL7ATSchedulingSlotExample01-free",
                "HL7ATSchedulingSlotExample02-VirtualVisit",
                "HL7ATSchedulingSlotExample03-selectable-encounterClass",
                "HL7ATSchedulingSlotExample04-external-booking-URL",
            ],
        ),
        (
            "Appointment?actor:identifier=urn:oid:1.2.40.0.10.1.4.3.1|1234010100&date=ge2025-06-01&date=le2025-06-02",
            &["HL7ATSchedulingAppointmentExample01"],
        ),
        (
            // The IG's reading of Schedule date: the planning horizon (May to September) includes June.
            "Schedule?service-type-reference=http://hl7.at/fhir/TC-FHIR-AG-Scheduling-R5/R5/ValueSet/AtSchedulingServiceType|65&actor=Practitioner/HL7ATCorePractitionerExample01&date=eq2025-06",
            &["HL7ATSchedulingScheduleExample01"],
        ),
        (
            "Schedule?service-type=65&actor=Practitioner/HL7ATCorePractitionerExample01&date=ge2025-06-01&date=le2025-06-30",
            &["HL7ATSchedulingScheduleExample01"],
        ),
        (
            "Slot?schedule.actor=Practitioner/HL7ATCorePractitionerExample01&_count=2&_sort=_id",
            &["HL7ATSchedulingSlotExample01-free", "HL7ATSchedulingSlotExample02-VirtualVisit"],
        ),
    ];
    for (search, expected) in cases {
        let page = s.get(search).await.expect_status(200).json();
        assert_eq!(matches(&page), *expected, "{search}: {page}");
    }
}
