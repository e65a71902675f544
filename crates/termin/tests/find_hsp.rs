//! `HealthcareService/$findHSP` against the real server, on the IG example data.

mod support;

use serde_json::{Value, json};
use support::{TestServer, packages_root};

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
}

fn next_weekday_date(day: jiff::civil::Weekday) -> String {
    let today = jiff::Timestamp::now().to_zoned_datetime(jiff::tz::TimeZone::UTC).date();
    let mut date = today.tomorrow().unwrap();
    while date.weekday() != day {
        date = date.tomorrow().unwrap();
    }
    date.to_string()
}
