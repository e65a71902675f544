//! `_summary=true|text|data|count|false` on searches and reads: the elements chosen by the
//! R5 definitions, the `SUBSETTED` tag, and results that are still structurally valid R5.

mod support;

use serde_json::{Value, json};
use support::*;

const SUBSETTED: &str = "SUBSETTED";

fn is_subsetted(resource: &Value) -> bool {
    resource["meta"]["tag"].as_array().is_some_and(|tags| tags.iter().any(|t| t["code"] == SUBSETTED))
}

/// A Patient with summary elements (identifier, name, gender), non-summary ones (photo is not,
/// communication is not) and a narrative.
fn patient_with_everything() -> Value {
    json!({
        "resourceType": "Patient",
        "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">Anna Huber</div>"},
        "identifier": [{"system": "urn:oid:1.2.40.0.10.1.4.3.1", "value": "1234010180"}],
        "name": [{"family": "Huber", "given": ["Anna"]}],
        "gender": "female",
        "communication": [{"language": {"coding": [{"system": "urn:ietf:bcp:47", "code": "de"}]}}],
    })
}

/// Whether an issue is raised by an AT profile rather than by the R5 base definitions.
fn from_at_profile(issue: &Value) -> bool {
    issue["diagnostics"].as_str().is_some_and(|d| d.contains("(http://hl7.at/fhir/HL7ATCoreProfiles/"))
}

fn names(resource: &Value) -> Vec<&str> {
    let mut names: Vec<&str> = resource.as_object().unwrap().keys().map(String::as_str).collect();
    names.sort_unstable();
    names
}

#[tokio::test]
async fn summary_modes_on_search_and_read() {
    let s = TestServer::start_with(ServerOptions::new().validation()).await;
    let id = id_of(&s.create(&patient_with_everything()).await);

    let only = |bundle: Value| bundle["entry"][0]["resource"].clone();
    let summary = only(s.get("Patient?_summary=true").await.expect_status(200).json());
    assert_eq!(names(&summary), ["gender", "id", "identifier", "meta", "name", "resourceType"], "{summary}");
    assert!(is_subsetted(&summary), "{summary}");

    let text = only(s.get("Patient?_summary=text").await.expect_status(200).json());
    assert_eq!(names(&text), ["id", "meta", "resourceType", "text"], "{text}");
    assert!(is_subsetted(&text));

    let data = only(s.get("Patient?_summary=data").await.expect_status(200).json());
    assert_eq!(names(&data), ["communication", "gender", "id", "identifier", "meta", "name", "resourceType"]);
    assert!(is_subsetted(&data));

    let full = only(s.get("Patient?_summary=false").await.expect_status(200).json());
    assert!(full.get("text").is_some() && !is_subsetted(&full), "{full}");

    let count = s.get("Patient?_summary=count").await.expect_status(200).json();
    assert_eq!(count["total"], 1);
    assert!(count.get("entry").is_none(), "{count}");

    // Reads and vreads too; the stored resource is unchanged.
    let read = s.get(&format!("Patient/{id}?_summary=true")).await.expect_status(200).json();
    assert_eq!(read, summary);
    let vread = s.get(&format!("Patient/{id}/_history/1?_summary=text")).await.expect_status(200).json();
    assert_eq!(vread, text);
    assert!(!is_subsetted(&s.read("Patient", &id).await));

    // A subset is still a structurally valid R5 resource (mandatory elements are kept); what
    // the AT profile adds (Patient.name and gender required) a `text` subset need not meet.
    for subset in [&summary, &text, &data] {
        let mut bare = subset.clone();
        bare.as_object_mut().unwrap().remove("id");
        let outcome = s.post("Patient/$validate", &bare).await.expect_status(200).json();
        let errors: Vec<&Value> = outcome["issue"].as_array().unwrap().iter().filter(|i| i["severity"] == "error" && !from_at_profile(i)).collect();
        assert!(errors.is_empty(), "{subset}: {outcome}");
    }

    s.get("Patient?_summary=maybe").await.outcome(400);
    s.get(&format!("Patient/{id}?_summary=maybe")).await.outcome(400);
    s.get("Patient?_summary=true&_elements=name").await.outcome(400);
}

#[tokio::test]
async fn summary_keeps_the_mandatory_elements_of_a_slot() {
    let s = TestServer::start().await;
    let schedule = s.create(&json!({"resourceType": "Schedule", "actor": [{"display": "Dr. A"}]})).await;
    let slot = s
        .create(&json!({
            "resourceType": "Slot",
            "schedule": {"reference": format!("Schedule/{}", id_of(&schedule))},
            "status": "free",
            "start": "2030-01-07T09:00:00Z",
            "end": "2030-01-07T09:30:00Z",
            "comment": "bring the referral",
        }))
        .await;
    let text = s.get(&format!("Slot/{}?_summary=text", id_of(&slot))).await.expect_status(200).json();
    assert_eq!(names(&text), ["end", "id", "meta", "resourceType", "schedule", "start", "status"], "{text}");
    let summary = s.get(&format!("Slot/{}?_summary=true", id_of(&slot))).await.expect_status(200).json();
    assert!(summary.get("comment").is_none(), "{summary}");
    assert_eq!(summary["status"], "free");
}
