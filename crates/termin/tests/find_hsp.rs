//! `HealthcareService/$findHSP` against the real server, on the IG example data.

mod support;

use serde_json::{Value, json};
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use support::{TestServer, ig_xml, packages_root};

const SERVICE_TYPE: &str = "http://terminology.hl7.org/CodeSystem/service-type";

fn example(package: &str, file: &str) -> Value {
    let path = packages_root().join(package).join("package").join(file);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

async fn put(s: &TestServer, resource: &Value) {
    let path = format!("{}/{}", resource["resourceType"].as_str().unwrap(), resource["id"].as_str().unwrap());
    let r = s.put(&path, resource).await;
    assert!(r.code() == 200 || r.code() == 201, "PUT {path}: {}", r.text());
}

/// The IG example providers: Organization 01 in 5350 St. Wolfgang, HealthcareService 01
/// (physiotherapy, provided by it), Practitioner 01, and PractitionerRole 01 offering the
/// service (as in the IG's $findHSP response example), available Monday and Tuesday mornings.
async fn ig_world(s: &TestServer) {
    let core = "hl7.at.fhir.core.r5#2.0.0";
    let scheduling = "hl7.at.fhir.tc.wg.scheduling.r5#0.2.0";
    put(s, &example(core, "Organization-HL7ATCoreOrganizationExample01.json")).await;
    put(s, &example(core, "Organization-HL7ATCoreOrganizationExample02-MultipleVPNR.json")).await;
    put(s, &example(core, "Practitioner-HL7ATCorePractitionerExample01.json")).await;
    put(s, &example(scheduling, "HealthcareService-HL7ATSchedulingHealthcareServiceExample01.json")).await;
    let mut role = example(core, "PractitionerRole-HL7ATCorePractitionerRoleExample01.json");
    role["healthcareService"] = json!([{"reference": "HealthcareService/HL7ATSchedulingHealthcareServiceExample01"}]);
    put(s, &role).await;
}

fn parameters(entries: Value) -> Value {
    json!({"resourceType": "Parameters", "parameter": entries})
}

/// The IG's request example, converted to JSON (the value keeps the example's
/// `healthcareService-type=` prefix and ValueSet-as-system, both read leniently).
fn ig_request() -> Value {
    parameters(json!([
        {"name": "healthcareService-type",
         "valueString": "healthcareService-type=http://hl7.at/fhir/TC-FHIR-AG-Scheduling-R5/R5/ValueSet/AtSchedulingServiceType|65"},
        {"name": "healthcareService-zipCodeArea", "valueString": "5350"},
        {"name": "healthcareService-availability", "valueAvailability": {"availableTime": [
            {"daysOfWeek": ["mon"], "availableStartTime": "08:00:00", "availableEndTime": "10:00:00"},
            {"daysOfWeek": ["tue"], "availableStartTime": "08:00:00", "availableEndTime": "10:00:00"}]}}
    ]))
}

fn ids(bundle: &Value, mode: &str) -> Vec<String> {
    bundle["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["search"]["mode"] == mode && e["resource"]["resourceType"] != "OperationOutcome")
        .map(|e| format!("{}/{}", e["resource"]["resourceType"].as_str().unwrap(), e["resource"]["id"].as_str().unwrap()))
        .collect()
}

fn outcome_text(bundle: &Value) -> String {
    bundle["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["search"]["mode"] == "outcome")
        .map(|e| e["resource"].to_string())
        .collect()
}

#[tokio::test]
async fn the_ig_example_request_finds_the_ig_example_providers() {
    let s = TestServer::start().await;
    ig_world(&s).await;
    let posted = s.post("HealthcareService/$findHSP", &ig_request()).await.expect_status(200).json();
    assert_eq!(posted["type"], "searchset");
    assert_eq!(ids(&posted, "match"), ["HealthcareService/HL7ATSchedulingHealthcareServiceExample01"]);
    let included = ids(&posted, "include");
    for provider in [
        "Organization/HL7ATCoreOrganizationExample01",
        "PractitionerRole/HL7ATCorePractitionerRoleExample01",
        "Practitioner/HL7ATCorePractitionerExample01",
    ] {
        assert!(included.contains(&provider.to_owned()), "{provider} missing from {included:?}");
    }
    // The IG's example as published, in XML and answered in XML: the same providers.
    let request = s
        .request(reqwest::Method::POST, "HealthcareService/$findHSP")
        .header(CONTENT_TYPE, "application/fhir+xml")
        .header(ACCEPT, "application/fhir+xml")
        .body(ig_xml("HealthcareService-operationFindHCP-request.xml"));
    let in_xml = s.send(request).await.expect_status(200).fhir_xml();
    assert_eq!((ids(&in_xml, "match"), ids(&in_xml, "include")), (ids(&posted, "match"), included));
    // The same without availability, as a GET (availability is POST-only).
    let got = s
        .get(&format!("HealthcareService/$findHSP?healthcareService-type={SERVICE_TYPE}%7C65&healthcareService-zipCodeArea=5350"))
        .await
        .expect_status(200)
        .json();
    assert_eq!(ids(&got, "match"), ids(&posted, "match"));
}

#[tokio::test]
async fn each_filter_narrows_the_answer() {
    let s = TestServer::start().await;
    ig_world(&s).await;
    let find = |query: &str| {
        let s = &s;
        let query = query.to_owned();
        async move { s.get(&format!("HealthcareService/$findHSP?{query}")).await.expect_status(200).json() }
    };
    let physio = format!("healthcareService-type={SERVICE_TYPE}%7C65");
    assert_eq!(ids(&find(&physio).await, "match").len(), 1);
    assert!(ids(&find(&format!("healthcareService-type={SERVICE_TYPE}%7C99")).await, "match").is_empty());
    // A zip code area prefix covers the area; another area excludes the providers.
    assert_eq!(ids(&find(&format!("{physio}&healthcareService-zipCodeArea=53")).await, "match").len(), 1);
    let elsewhere = find(&format!("{physio}&healthcareService-zipCodeArea=9999")).await;
    assert!(ids(&elsewhere, "match").is_empty());
    assert!(outcome_text(&elsewhere).contains("9999"), "{}", outcome_text(&elsewhere));
    // By reference.
    let by_reference = find("healthcareService-reference=HealthcareService/HL7ATSchedulingHealthcareServiceExample01").await;
    assert_eq!(ids(&by_reference, "match").len(), 1);
}

#[tokio::test]
async fn no_service_information_is_400_and_an_inactive_service_is_422() {
    let s = TestServer::start().await;
    ig_world(&s).await;
    s.get("HealthcareService/$findHSP?healthcareService-zipCodeArea=5350").await.outcome(400);
    let mut inactive = example("hl7.at.fhir.tc.wg.scheduling.r5#0.2.0", "HealthcareService-HL7ATSchedulingHealthcareServiceExample01.json");
    inactive["id"] = json!("closed");
    inactive["active"] = json!(false);
    put(&s, &inactive).await;
    s.get("HealthcareService/$findHSP?healthcareService-reference=HealthcareService/closed").await.outcome(422);
}

/// Availability windows follow Vienna time across the DST change, and declared holidays
/// (`notAvailableTime`) count: a role off on every wanted day does not match unless it has a
/// free slot then.
#[tokio::test]
async fn availability_windows_and_free_slots() {
    let s = TestServer::start().await;
    ig_world(&s).await;
    let wanted = |days: &[&str], from: &str, to: &str| {
        parameters(json!([
            {"name": "healthcareService-type", "valueString": format!("{SERVICE_TYPE}|65")},
            {"name": "healthcareService-availability", "valueAvailability": {"availableTime": [
                {"daysOfWeek": days, "availableStartTime": from, "availableEndTime": to}]}}
        ]))
    };
    // The role works Monday and Tuesday mornings: Sunday wishes find nobody.
    let sunday = s.post("HealthcareService/$findHSP", &wanted(&["sun"], "08:00:00", "10:00:00")).await.json();
    assert!(ids(&sunday, "include").iter().all(|p| !p.starts_with("PractitionerRole/")), "{sunday}");
    let monday = s.post("HealthcareService/$findHSP", &wanted(&["mon"], "08:00:00", "10:00:00")).await.json();
    assert!(ids(&monday, "include").contains(&"PractitionerRole/HL7ATCorePractitionerRoleExample01".to_owned()));

    // A schedule of the role with a free Sunday slot: now the role matches, and the outcome
    // names the slot.
    put(&s, &json!({"resourceType": "Schedule", "id": "role-schedule", "active": true,
        "actor": [{"reference": "PractitionerRole/HL7ATCorePractitionerRoleExample01"}]})).await;
    let next_sunday = next_weekday_date(jiff::civil::Weekday::Sunday);
    put(&s, &json!({"resourceType": "Slot", "id": "sunday-slot", "status": "free",
        "schedule": {"reference": "Schedule/role-schedule"},
        "start": format!("{next_sunday}T08:30:00+02:00"), "end": format!("{next_sunday}T09:00:00+02:00")})).await;
    let sunday = s.post("HealthcareService/$findHSP", &wanted(&["sun"], "06:00:00", "12:00:00")).await.json();
    assert!(ids(&sunday, "include").contains(&"PractitionerRole/HL7ATCorePractitionerRoleExample01".to_owned()), "{sunday}");
    assert!(outcome_text(&sunday).contains("Slot/sunday-slot"), "{}", outcome_text(&sunday));
    // The same, structured on the service's match entry for programs (the web app reads it).
    let earliest: Vec<&Value> = sunday["entry"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["search"]["mode"] == "match")
        .flat_map(|e| e["extension"].as_array().into_iter().flatten())
        .filter(|x| x["url"] == "https://termin.at/fhir/StructureDefinition/earliest-free-slot")
        .collect();
    let sub = |x: &Value, url: &str| x["extension"].as_array().unwrap().iter().find(|s| s["url"] == url).cloned().unwrap();
    let named = earliest
        .iter()
        .find(|x| sub(x, "provider")["valueReference"]["reference"] == "PractitionerRole/HL7ATCorePractitionerRoleExample01")
        .unwrap_or_else(|| panic!("no earliest-free-slot extension for the role: {sunday}"));
    assert_eq!(sub(named, "slot")["valueReference"]["reference"], "Slot/sunday-slot");
    let start: jiff::Timestamp = sub(named, "start")["valueInstant"].as_str().unwrap().parse().unwrap();
    assert_eq!(start, format!("{next_sunday}T08:30:00+02:00").parse::<jiff::Timestamp>().unwrap());
}

fn next_weekday_date(day: jiff::civil::Weekday) -> String {
    let today = jiff::Timestamp::now().to_zoned_datetime(jiff::tz::TimeZone::UTC).date();
    let mut date = today.tomorrow().unwrap();
    while date.weekday() != day {
        date = date.tomorrow().unwrap();
    }
    date.to_string()
}

/// `availability-until` (Termin's input) moves the horizon beyond the default 28 days, up to 90
/// days; further, or not a date, is 400 naming the input.
#[tokio::test]
async fn availability_until_moves_the_horizon() {
    let s = TestServer::start().await;
    ig_world(&s).await;
    put(&s, &json!({"resourceType": "Schedule", "id": "role-schedule", "active": true,
        "actor": [{"reference": "PractitionerRole/HL7ATCorePractitionerRoleExample01"}]})).await;
    let (in_six_weeks, slot_end) = (hours_ahead(24 * 42), hours_ahead(24 * 42 + 1));
    put(&s, &json!({"resourceType": "Slot", "id": "later-slot", "status": "free",
        "schedule": {"reference": "Schedule/role-schedule"}, "start": in_six_weeks, "end": slot_end})).await;
    let physio = format!("healthcareService-type={SERVICE_TYPE}%7C65");
    let default = s.get(&format!("HealthcareService/$findHSP?{physio}")).await.expect_status(200).json();
    assert!(!outcome_text(&default).contains("Slot/later-slot"), "{}", outcome_text(&default));

    let in_seven_weeks = hours_ahead(24 * 49);
    let request = parameters(json!([
        {"name": "healthcareService-type", "valueString": format!("{SERVICE_TYPE}|65")},
        {"name": "availability-until", "valueDateTime": in_seven_weeks}
    ]));
    let further = s.post("HealthcareService/$findHSP", &request).await.expect_status(200).json();
    assert!(outcome_text(&further).contains("Slot/later-slot"), "{}", outcome_text(&further));

    let too_far = hours_ahead(24 * 91);
    for refused in [too_far.as_str(), "soon"] {
        let outcome = s
            .get(&format!("HealthcareService/$findHSP?{physio}&availability-until={}", refused.replace('+', "%2B")))
            .await
            .outcome(400);
        assert!(outcome.to_string().contains("availability-until"), "{outcome}");
    }
}

/// An instant this many hours from now, to the second.
fn hours_ahead(hours: i64) -> String {
    jiff::Timestamp::from_second(jiff::Timestamp::now().as_second() + hours * 3600).unwrap().to_string()
}

/// `healthcareService-reference` by business identifier (POST `valueReference.identifier`, GET
/// `system|value`): one match is used, none or several are 422 naming the input.
#[tokio::test]
async fn a_service_reference_by_identifier() {
    let s = TestServer::start().await;
    ig_world(&s).await;
    let system = "https://termin.example/services";
    let mut service =
        example("hl7.at.fhir.tc.wg.scheduling.r5#0.2.0", "HealthcareService-HL7ATSchedulingHealthcareServiceExample01.json");
    service["identifier"] = json!([{"system": system, "value": "physio-1"}]);
    put(&s, &service).await;
    let by_identifier = |value: &str| {
        parameters(json!([{"name": "healthcareService-reference",
            "valueReference": {"identifier": {"system": system, "value": value}}}]))
    };
    let found = s.post("HealthcareService/$findHSP", &by_identifier("physio-1")).await.expect_status(200).json();
    assert_eq!(ids(&found, "match"), ["HealthcareService/HL7ATSchedulingHealthcareServiceExample01"]);
    let got = s
        .get(&format!("HealthcareService/$findHSP?healthcareService-reference={system}%7Cphysio-1"))
        .await
        .expect_status(200)
        .json();
    assert_eq!(ids(&got, "match"), ids(&found, "match"));

    let unknown = s.post("HealthcareService/$findHSP", &by_identifier("nobody")).await.outcome(422);
    assert!(unknown.to_string().contains("healthcareService-reference") && unknown.to_string().contains("nobody"), "{unknown}");
    service["id"] = json!("twin");
    put(&s, &service).await;
    let several = s.post("HealthcareService/$findHSP", &by_identifier("physio-1")).await.outcome(422);
    assert!(several.to_string().contains("Several"), "{several}");
}

/// `near` (Termin's input, as R5's `near` search parameter) and `near-distance` around a wanted
/// Location with a position: providers within the distance, nearest first; bad values are 400.
#[tokio::test]
async fn near_a_point_or_a_location() {
    let s = TestServer::start().await;
    for (id, latitude, longitude) in [("wolfgang", 47.7394, 13.4478), ("ischl", 47.7111, 13.6197)] {
        put(&s, &json!({"resourceType": "Location", "id": id, "position": {"latitude": latitude, "longitude": longitude}})).await;
        put(&s, &json!({"resourceType": "Organization", "id": format!("org-{id}")})).await;
        put(&s, &json!({"resourceType": "HealthcareService", "id": format!("physio-{id}"), "active": true,
            "location": [{"reference": format!("Location/{id}")}], "providedBy": {"reference": format!("Organization/org-{id}")},
            "type": [{"coding": [{"system": SERVICE_TYPE, "code": "65"}]}]}))
            .await;
    }
    put(&s, &json!({"resourceType": "Location", "id": "unplaced"})).await;
    put(&s, &json!({"resourceType": "Organization", "id": "org-unplaced"})).await;
    put(&s, &json!({"resourceType": "HealthcareService", "id": "physio-unplaced", "active": true,
        "location": [{"reference": "Location/unplaced"}], "providedBy": {"reference": "Organization/org-unplaced"}, "type": [{"coding": [{"system": SERVICE_TYPE, "code": "65"}]}]}))
        .await;
    let find = |query: String| {
        let s = &s;
        async move { s.get(&format!("HealthcareService/$findHSP?healthcareService-type={SERVICE_TYPE}%7C65&{query}")).await }
    };
    // Bad Ischl is about 13 km from St. Wolfgang.
    let near_ischl = find("near=47.7111%7C13.6197%7C20%7Ckm".into()).await.expect_status(200).json();
    assert_eq!(ids(&near_ischl, "match"), ["HealthcareService/physio-ischl", "HealthcareService/physio-wolfgang"]);
    let in_metres = find("near=47.7394%7C13.4478%7C5000%7Cm".into()).await.expect_status(200).json();
    assert_eq!(ids(&in_metres, "match"), ["HealthcareService/physio-wolfgang"]);
    let in_miles = find("near=47.7394%7C13.4478%7C10%7C%5Bmi_i%5D".into()).await.expect_status(200).json();
    assert_eq!(ids(&in_miles, "match"), ["HealthcareService/physio-wolfgang", "HealthcareService/physio-ischl"]);

    let around_location = parameters(json!([
        {"name": "healthcareService-type", "valueString": format!("{SERVICE_TYPE}|65")},
        {"name": "healthcareService-location", "valueReference": {"reference": "Location/wolfgang"}},
        {"name": "near-distance", "valueString": "15|km"}
    ]));
    let around = s.post("HealthcareService/$findHSP", &around_location).await.expect_status(200).json();
    assert_eq!(ids(&around, "match"), ["HealthcareService/physio-wolfgang", "HealthcareService/physio-ischl"]);
    // Without a distance, the default 10 km leaves Bad Ischl out.
    let exact = find("healthcareService-location=Location/wolfgang".into()).await.expect_status(200).json();
    assert_eq!(ids(&exact, "match"), ["HealthcareService/physio-wolfgang"]);

    for refused in ["near=91%7C13", "near=47.7%7C13.4%7C10%7Cyards", "near=47.7%7C13.4%7C-1", "near-distance=far"] {
        let outcome = find(refused.into()).await.outcome(400);
        assert!(outcome.to_string().contains("near"), "{refused}: {outcome}");
    }
}
