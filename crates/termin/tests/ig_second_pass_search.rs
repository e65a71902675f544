//! Issue 15 (AT Scheduling IG, second pass): searches as the IG means them (Schedule `date`,
//! `_elements` keeping the mandatory elements, `_id:not`), the small REST points the IG
//! clients found (`If-None-Match: *`, a create with a query string, `GET [base]`), and the
//! CapabilityStatement naming the IG.

mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;

use reqwest::Method;
use serde_json::{Value, json};
use support::*;
use termin_validation::{Definitions, Validator};


async fn put(s: &TestServer, resource: &Value) {
    let path = format!("{}/{}", resource["resourceType"].as_str().unwrap(), id_of(resource));
    let r = s.put(&path, resource).await;
    assert!(matches!(r.code(), 200 | 201), "PUT {path}: {}", r.text());
}

fn schedule(id: &str, horizon: Option<(&str, &str)>) -> Value {
    let mut schedule = json!({"resourceType": "Schedule", "id": id, "active": true,
        "actor": [{"reference": "Practitioner/doc"}]});
    if let Some((start, end)) = horizon {
        schedule["planningHorizon"] = json!({"start": start, "end": end});
    }
    schedule
}

#[tokio::test]
async fn schedule_date_finds_planning_horizons_that_include_the_date() {
    let s = TestServer::start().await;
    put(&s, &schedule("april", Some(("2026-04-01T00:00:00+02:00", "2026-04-30T23:59:59+02:00")))).await;
    put(&s, &schedule("one-day", Some(("2026-04-07T08:00:00+02:00", "2026-04-07T17:00:00+02:00")))).await;
    put(&s, &schedule("may", Some(("2026-05-01T00:00:00+02:00", "2026-05-31T23:59:59+02:00")))).await;
    let mut open_ended = schedule("open-ended", None);
    open_ended["planningHorizon"] = json!({"start": "2026-04-20T00:00:00+02:00"});
    put(&s, &open_ended).await;
    put(&s, &schedule("no-horizon", None)).await;
    let cases: &[(&str, &[&str])] = &[
        // The IG's reading of eq (written or not): the horizon overlaps the searched date or range.
        ("date=eq2026-04-07", &["april", "one-day"]),
        ("date=2026-04-07", &["april", "one-day"]),
        ("date=2026-04-07T12:00:00%2B02:00", &["april", "one-day"]),
        ("date=2026-04-25", &["april", "open-ended"]),
        ("date=2026-04", &["april", "one-day", "open-ended"]),
        ("date=eq2026-04-07,2026-05-15", &["april", "may", "one-day", "open-ended"]),
        ("date=2026-03-31", &[]),
        // Other prefixes keep their R5 meaning.
        ("date=ge2026-05-01", &["may", "open-ended"]),
        ("date=sa2026-04-30", &["may"]),
        ("date=ne2026-04-07", &["april", "may", "open-ended"]),
    ];
    for (query, expected) in cases {
        let page = s.get(&format!("Schedule?{query}&_count=50")).await.expect_status(200).json();
        assert_eq!(matches(&page), *expected, "Schedule?{query}: {page}");
        let reported = issues(&page)
            .iter()
            .any(|i| i["severity"] == "information" && i["expression"] == json!(["date"]));
        let reads_eq = !query.starts_with("date=ge") && !query.starts_with("date=sa") && !query.starts_with("date=ne");
        assert_eq!(reported, reads_eq, "Schedule?{query}: the IG's reading is reported as information: {page}");
    }
    // Through a chain as well: the Slots of the Schedules planned for that day.
    put(&s, &json!({"resourceType": "Slot", "id": "in-may", "schedule": {"reference": "Schedule/may"},
        "status": "busy-unavailable", "start": "2026-05-04T08:00:00+02:00", "end": "2026-05-04T09:00:00+02:00"}))
    .await;
    put(&s, &json!({"resourceType": "Slot", "id": "in-april", "schedule": {"reference": "Schedule/april"},
        "status": "busy-unavailable", "start": "2026-04-08T08:00:00+02:00", "end": "2026-04-08T09:00:00+02:00"}))
    .await;
    let page = s.get("Slot?schedule.date=2026-04-07").await.expect_status(200).json();
    assert_eq!(matches(&page), ["in-april"], "{page}");
}

#[tokio::test]
async fn the_ig_schedule_example_search_finds_a_schedule_planned_for_that_day() {
    let s = TestServer::start().await;
    put(&s, &json!({"resourceType": "Practitioner", "id": "doc",
        "identifier": [{"system": "urn:oid:1.2.40.0.10.1.4.3.2", "value": "987654321"}]}))
    .await;
    let physiotherapy = json!([{"concept": {"coding": [
        {"system": "http://terminology.hl7.org/CodeSystem/service-type", "code": "65"}]}}]);
    for (id, start, end) in [
        ("spring", "2026-03-01T08:00:00+01:00", "2026-06-30T17:00:00+02:00"),
        ("summer", "2026-07-01T08:00:00+02:00", "2026-09-30T17:00:00+02:00"),
    ] {
        let mut resource = schedule(id, Some((start, end)));
        resource["serviceType"] = physiotherapy.clone();
        put(&s, &resource).await;
    }
    // Verbatim from the IG's find-schedules page (without https://example.com/R5/).
    let search = "Schedule?service-type-reference=http://hl7.at/fhir/TC-FHIR-AG-Scheduling-R5/R5/ValueSet/AtSchedulingServiceType|65&actor=urn:oid:1.2.40.0.10.1.4.3.2|987654321&date=eq2026-04-07";
    let page = s.get(search).await.expect_status(200).json();
    assert_eq!(matches(&page), ["spring"], "{page}");
    for issue in issues(&page) {
        assert_eq!(issue["severity"], "information", "nothing may be ignored: {page}");
    }
}

/// R5 structural validation (no profiles) with the core package from the FHIR package cache.
fn r5_validator() -> Validator {
    let cache = std::env::var_os("TERMIN_FHIR_PACKAGES")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".fhir/packages"));
    let definitions = Definitions::load(&[], Some(&cache)).expect("the R5 core package (scripts/fhir-packages)");
    Validator::new(definitions, BTreeMap::new()).expect("an R5 validator").0
}

#[track_caller]
fn assert_valid(validator: &Validator, resource: &Value, what: &str) {
    let outcome = validator.validate(resource);
    assert!(!outcome.has_errors(), "{what} fails R5 validation: {:?}\n{resource}", outcome.to_json());
}

#[tokio::test]
async fn elements_keeps_the_mandatory_elements_and_the_bundles_are_valid_r5() {
    let s = TestServer::start().await;
    put(&s, &json!({"resourceType": "Practitioner", "id": "doc", "name": [{"family": "Huber"}]})).await;
    put(&s, &json!({"resourceType": "Patient", "id": "anna", "name": [{"family": "Berger"}], "gender": "female"}))
        .await;
    put(&s, &schedule("cal", Some(("2026-04-01T00:00:00+02:00", "2026-04-30T23:59:59+02:00")))).await;
    put(&s, &json!({"resourceType": "Slot", "id": "s1", "schedule": {"reference": "Schedule/cal"},
        "status": "busy-unavailable", "start": "2026-04-08T08:00:00+02:00", "end": "2026-04-08T09:00:00+02:00",
        "comment": "left out by _elements"}))
    .await;
    put(&s, &json!({"resourceType": "Appointment", "id": "a1", "status": "proposed",
        "description": "left out by _elements",
        "start": "2026-04-08T08:00:00+02:00", "end": "2026-04-08T09:00:00+02:00",
        "participant": [{"actor": {"reference": "Patient/anna"}, "status": "needs-action"}]}))
    .await;
    put(&s, &json!({"resourceType": "RelatedPerson", "id": "mum", "patient": {"reference": "Patient/anna"},
        "gender": "female"}))
    .await;
    let validator = r5_validator();
    // What the subsets used to be: a Slot without its mandatory elements is not valid R5, alone
    // or in a Bundle.
    let bare_slot = json!({"resourceType": "Slot", "id": "s1"});
    assert!(validator.validate(&bare_slot).has_errors());
    let bundle = json!({"resourceType": "Bundle", "type": "searchset",
        "entry": [{"fullUrl": s.url("Slot/s1"), "resource": bare_slot, "search": {"mode": "match"}}]});
    assert!(validator.validate(&bundle).has_errors());
    let cases: &[(&str, &[&str], &[&str])] = &[
        ("Slot?_elements=id,meta", &["schedule", "status", "start", "end"], &["comment"]),
        ("Slot?_elements=comment", &["schedule", "status", "start", "end", "comment"], &[]),
        ("Schedule?_elements=id", &["actor"], &["planningHorizon", "active"]),
        ("Appointment?_elements=id", &["status", "participant"], &["description", "start"]),
        ("Appointment?_elements=start,end", &["status", "participant", "start", "end"], &["description"]),
        ("RelatedPerson?_elements=id", &["patient"], &["gender"]),
        ("Patient?_elements=name", &["name"], &["gender"]),
    ];
    for (search, kept, dropped) in cases {
        let bundle = s.get(search).await.expect_status(200).json();
        let found = entries(&bundle);
        assert_eq!(found.len(), 1, "{search}: {bundle}");
        let resource = &found[0]["resource"];
        for name in *kept {
            assert!(resource.get(name).is_some(), "{search}: {name} is kept: {resource}");
        }
        for name in *dropped {
            assert!(resource.get(name).is_none(), "{search}: {name} is left out: {resource}");
        }
        let tags = resource["meta"]["tag"].as_array().cloned().unwrap_or_default();
        assert!(tags.iter().any(|t| t["code"] == "SUBSETTED"), "{search}: tagged SUBSETTED: {resource}");
        assert_valid(&validator, resource, search);
        assert_valid(&validator, &bundle, search);
    }
}

#[tokio::test]
async fn id_not_excludes_the_named_ids() {
    let s = TestServer::start().await;
    for id in ["p1", "p2", "p3"] {
        put(&s, &json!({"resourceType": "Patient", "id": id, "gender": "other"})).await;
    }
    let cases: &[(&str, &[&str])] = &[
        ("_id:not=p1", &["p2", "p3"]),
        ("_id:not=p1,p3", &["p2"]),
        ("_id:not=p1&_id:not=p2", &["p3"]),
        ("_id:not=unknown", &["p1", "p2", "p3"]),
        ("_id:not=p1&gender=other", &["p2", "p3"]),
    ];
    for (query, expected) in cases {
        let page = s.get(&format!("Patient?{query}")).await.expect_status(200).json();
        assert_eq!(matches(&page), *expected, "Patient?{query}: {page}");
        assert!(issues(&page).is_empty(), "Patient?{query}: nothing ignored: {page}");
    }
    // Still unsupported modifiers on _id are reported, or refused when strict.
    let strict = s
        .send(s.request(Method::GET, "Patient?_id:exact=p1").header("Prefer", "handling=strict"))
        .await;
    strict.outcome(400);
    // The CapabilityStatement says which modifiers _id takes.
    let cs = s.get("metadata").await.expect_status(200).json();
    let patient = cs["rest"][0]["resource"].as_array().unwrap().iter().find(|r| r["type"] == "Patient").unwrap().clone();
    let id_param = patient["searchParam"].as_array().unwrap().iter().find(|p| p["name"] == "_id").unwrap().clone();
    assert_eq!(id_param["type"], "token", "{id_param}");
    assert!(id_param["documentation"].as_str().is_some_and(|d| d.contains("not")), "{id_param}");
}

fn put_if_none_match(s: &TestServer, path: &str, resource: &Value, value: &str) -> reqwest::RequestBuilder {
    json_body(s.request(Method::PUT, path), resource).header("If-None-Match", value)
}

#[tokio::test]
async fn put_with_if_none_match_star_creates_only_what_does_not_exist() {
    let s = TestServer::start().await;
    let patient = json!({"resourceType": "Patient", "id": "anna", "gender": "female"});
    let created = s.send(put_if_none_match(&s, "Patient/anna", &patient, "*")).await.expect_status(201);
    assert_eq!(created.etag_version(), "1");
    let mut changed = patient.clone();
    changed["gender"] = json!("other");
    let refused = s.send(put_if_none_match(&s, "Patient/anna", &changed, "*")).await;
    let outcome = refused.outcome(412);
    assert!(diagnostics(&outcome).contains("exists"), "{outcome}");
    let stored = s.read("Patient", "anna").await;
    assert_eq!(stored["gender"], "female", "a refused create changes nothing");
    assert_eq!(s.history_len("Patient", "anna").await, 1);
    // A deleted resource has no current version: creating it again is what was asked.
    s.delete("Patient/anna").await.expect_status(204);
    let again = s.send(put_if_none_match(&s, "Patient/anna", &changed, "*")).await;
    assert!(matches!(again.code(), 200 | 201), "{}", again.text());
    assert_eq!(s.read("Patient", "anna").await["gender"], "other");
    // Without the header an update is an update.
    s.put("Patient/anna", &patient).await.expect_status(200);
    // Only * is understood, and not together with If-Match.
    s.send(put_if_none_match(&s, "Patient/anna", &patient, "W/\"1\"")).await.outcome(400);
    let both = put_if_none_match(&s, "Patient/anna", &patient, "*").header("If-Match", "W/\"4\"");
    s.send(both).await.outcome(400);
    let bert = json!({"resourceType": "Patient", "id": "bert", "gender": "male"});
    s.send(put_if_none_match(&s, "Patient/other-id", &bert, "*")).await.outcome(400);
    s.send(put_if_none_match(&s, "Patient/bert", &bert, "*")).await.expect_status(201);
}

#[tokio::test]
async fn a_create_with_search_parameters_in_the_url_is_refused_pointing_to_if_none_exist() {
    let s = TestServer::start().await;
    let identifier = "urn:oid:1.2.40.0.10.1.4.3.1|1234010180";
    let patient = patient("urn:oid:1.2.40.0.10.1.4.3.1", "1234010180", "Huber");
    // What fhirpy's get_or_create sends: twice the same create with the criteria in the query.
    for _ in 0..2 {
        let r = s.post(&format!("Patient?identifier={identifier}"), &patient).await;
        let outcome = r.outcome(400);
        let text = diagnostics(&outcome);
        assert!(text.contains("If-None-Exist") && text.contains(identifier), "{outcome}");
        assert_eq!(expressions(&outcome), ["identifier"], "{outcome}");
    }
    let found = s.get(&format!("Patient?identifier={identifier}")).await.expect_status(200).json();
    assert!(match_ids(&found).is_empty(), "nothing was created: {found}");
    // The header the outcome names does what the client meant.
    for expected in [201, 200] {
        let rb = json_body(s.request(Method::POST, "Patient"), &patient).header("If-None-Exist", format!("identifier={identifier}"));
        s.send(rb).await.expect_status(expected);
    }
    // _format and _pretty shape the response and are no criteria.
    s.post("Patient?_format=json&_pretty=true", &simple_patient("Berger")).await.expect_status(201);
}

#[tokio::test]
async fn the_base_url_answers_the_capability_statement() {
    let s = TestServer::start().await;
    let metadata = s.get("metadata").await.expect_status(200).json();
    for path in ["", "/", "?_format=json", "?_pretty=true"] {
        let r = s.send(s.client().get(format!("{}{path}", s.base()))).await.expect_status(200);
        r.assert_fhir_json();
        let cs = r.json();
        assert_eq!(cs["resourceType"], "CapabilityStatement", "GET [base]{path}: {cs}");
        assert_eq!(cs["rest"], metadata["rest"], "GET [base]{path} is the CapabilityStatement of /metadata");
    }
    // A query there would be a search across all types, which is not served.
    let r = s.send(s.client().get(format!("{}?_type=Patient", s.base()))).await;
    let outcome = r.outcome(400);
    assert_eq!(expressions(&outcome), ["_type"], "{outcome}");
    // POST to the base takes batches and transactions (tests/transaction.rs); other writes there
    // are not served.
    let r = s.send(json_body(s.client().post(s.base()), &json!({"resourceType": "Bundle", "type": "batch"}))).await;
    assert_eq!(r.expect_status(200).json()["type"], "batch-response");
    s.send(s.client().delete(s.base())).await.outcome(405);
}

/// The IG package's resources of one type.
fn ig_package(resource_type: &str) -> Vec<Value> {
    package_resources()
        .into_iter()
        .map(|(_, resource)| resource)
        .filter(|r| r["resourceType"] == resource_type && r["url"].as_str().is_some_and(|u| u.contains("/scheduling/")))
        .collect()
}

#[tokio::test]
async fn the_capability_statement_names_the_ig_and_its_operation_definitions() {
    let s = TestServer::start().await;
    let cs = s.get("metadata").await.expect_status(200).json();
    let guides = ig_package("ImplementationGuide");
    assert_eq!(guides.len(), 1, "one ImplementationGuide in the IG package");
    assert_eq!(cs["implementationGuide"], json!([guides[0]["url"]]), "{}", cs["implementationGuide"]);
    assert_eq!(cs["patchFormat"], json!(["application/json-patch+json"]));
    let resources = cs["rest"][0]["resource"].as_array().unwrap().clone();
    let definitions = ig_package("OperationDefinition");
    assert_eq!(definitions.len(), 3, "$hold, $book, $findHSP");
    for ig in &definitions {
        let code = ig["code"].as_str().unwrap();
        for ty in ig["resource"].as_array().unwrap() {
            let resource = resources.iter().find(|r| r["type"] == *ty).unwrap_or_else(|| panic!("{ty} not served"));
            let listed = resource["operation"]
                .as_array()
                .and_then(|ops| ops.iter().find(|op| op["name"] == code))
                .unwrap_or_else(|| panic!("{ty} does not list ${code}: {resource}"));
            assert_eq!(listed["definition"], ig["url"], "${code} names the IG's canonical: {listed}");
            // What Termin adds is described in its served OperationDefinition, which it links.
            let documentation = listed["documentation"].as_str().unwrap_or_default();
            let id = ig["id"].as_str().unwrap();
            assert!(documentation.contains(&format!("/fhir/OperationDefinition/{id}")), "{listed}");
            let served = s.get(&format!("OperationDefinition/{id}")).await.expect_status(200).json();
            assert_eq!(served["base"], ig["url"], "{served}");
            assert_eq!(served["code"], code);
            let ig_inputs: Vec<&Value> = ig["parameter"].as_array().unwrap().iter().filter(|p| p["use"] == "in").map(|p| &p["name"]).collect();
            let description = served["description"].as_str().unwrap_or_default();
            for parameter in served["parameter"].as_array().unwrap().iter().filter(|p| p["use"] == "in") {
                if ig_inputs.contains(&&parameter["name"]) {
                    continue;
                }
                let name = parameter["name"].as_str().unwrap();
                assert!(
                    parameter["documentation"].as_str().is_some_and(|d| d.starts_with("Termin: ")),
                    "${code}: {name} is Termin's addition and documented so: {parameter}"
                );
                assert!(description.contains(&format!("{name} (in)")), "${code}: the description names {name}: {description}");
                assert!(documentation.contains(&format!("{name} (in)")), "${code}: {listed}");
            }
        }
    }
    // The search parameters keep their R5 definitions.
    let slot = resources.iter().find(|r| r["type"] == "Slot").unwrap();
    let start = slot["searchParam"].as_array().unwrap().iter().find(|p| p["name"] == "start").unwrap();
    assert_eq!(start["definition"], "http://hl7.org/fhir/SearchParameter/Slot-start");
}
