//! FHIR search by parameter type: token, string, reference, date (prefixes, precision, time
//! zone, DST), uri and the common `_` parameters; modifiers; OR with commas, AND by repetition.

mod support;

use std::collections::BTreeSet;

use serde_json::{Value, json};
use support::*;

const SVNR: &str = "urn:oid:1.2.40.0.10.1.4.3.1";

/// Ids of the matches of a search (all pages), asserting a searchset without outcome warnings.
async fn found(s: &TestServer, query: &str) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    for page in s.pages(query).await {
        assert_eq!(page["type"], "searchset", "{query}: {page}");
        for entry in entries(&page) {
            match entry["search"]["mode"].as_str() {
                Some("match") => {
                    ids.insert(id_of(&entry["resource"]));
                }
                Some("outcome") => panic!("{query}: unexpected outcome entry {}", entry["resource"]),
                other => panic!("{query}: entry with search.mode {other:?}"),
            }
        }
    }
    ids
}

fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

async fn put(s: &TestServer, resource: Value) {
    let ty = resource["resourceType"].as_str().unwrap().to_owned();
    let id = id_of(&resource);
    let r = s.put(&format!("{ty}/{id}"), &resource).await;
    assert!(matches!(r.code(), 200 | 201), "PUT {ty}/{id}: {}", r.text());
}

async fn patients(s: &TestServer) {
    put(s, json!({
        "resourceType": "Patient", "id": "anna",
        "meta": {"tag": [{"system": "urn:tags", "code": "vip"}], "security": [{"system": "urn:sec", "code": "R"}],
                 "profile": ["https://fhir.hl7.at/r5-core/StructureDefinition/at-core-patient"], "source": "urn:app:kis"},
        "identifier": [{"system": SVNR, "value": "1234010180",
                        "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "SS"}], "text": "Sozialversicherungsnummer"}}],
        "active": true,
        "name": [{"family": "Müller", "given": ["Anna", "Maria"]}],
        "telecom": [{"system": "email", "value": "anna@example.at"}],
        "gender": "female",
        "birthDate": "1980-02-29",
        "address": [{"city": "Wien", "postalCode": "1010"}],
        "maritalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus", "code": "M", "display": "Married"}]},
        "generalPractitioner": [{"reference": "Practitioner/doc"}]
    })).await;
    put(s, json!({
        "resourceType": "Patient", "id": "bernd",
        "identifier": [{"system": "urn:oid:1.2.3", "value": "1234010180"}],
        "active": false,
        "name": [{"family": "Mullner", "given": ["Bernd"]}],
        "gender": "male",
        "birthDate": "1975-07",
        "address": [{"city": "Graz"}],
        "communication": [{"language": {"coding": [{"system": "urn:ietf:bcp:47", "code": "de-AT"}], "text": "Deutsch"}}]
    })).await;
    put(s, json!({
        "resourceType": "Patient", "id": "carla",
        "name": [{"family": "Schmidt", "given": ["Carla"]}],
        "gender": "female",
        "deceasedDateTime": "2020-01-01T10:00:00+01:00"
    })).await;
}

#[tokio::test]
async fn token_forms_modifiers_and_booleans() {
    let s = TestServer::start().await;
    patients(&s).await;
    let cases: &[(&str, &[&str])] = &[
        ("Patient?identifier=1234010180", &["anna", "bernd"]),
        (&format!("Patient?identifier={SVNR}|1234010180"), &["anna"]),
        ("Patient?identifier=urn:oid:1.2.3|", &["bernd"]),
        ("Patient?identifier=|1234010180", &[]),
        ("Patient?gender=female", &["anna", "carla"]),
        ("Patient?gender=female,male", &["anna", "bernd", "carla"]),
        ("Patient?gender:not=female", &["bernd"]),
        ("Patient?gender:not=female,male", &[]),
        ("Patient?active=true", &["anna"]),
        ("Patient?active=false", &["bernd"]),
        ("Patient?active:missing=true", &["carla"]),
        ("Patient?active:missing=false", &["anna", "bernd"]),
        ("Patient?deceased=true", &["carla"]),
        ("Patient?deceased=false", &["anna", "bernd"]),
        ("Patient?email=anna@example.at", &["anna"]),
        ("Patient?telecom=anna@example.at", &["anna"]),
        ("Patient?language:text=deut", &["bernd"]),
        ("Patient?language=de-AT", &["bernd"]),
        ("Patient?identifier:text=sozialvers", &["anna"]),
        ("Patient?identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|SS|1234010180", &["anna"]),
        ("Patient?identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|SS|999", &[]),
        ("Patient?_tag=urn:tags|vip", &["anna"]),
        ("Patient?_security=R", &["anna"]),
        ("Patient?_id=anna,carla", &["anna", "carla"]),
        // AND by repetition
        ("Patient?gender=female&active=true", &["anna"]),
        ("Patient?identifier=1234010180&identifier=urn:oid:1.2.3|", &["bernd"]),
    ];
    for (query, expected) in cases {
        assert_eq!(found(&s, query).await, set(expected), "{query}");
    }
}

#[tokio::test]
async fn strings_are_case_and_accent_insensitive_prefixes() {
    let s = TestServer::start().await;
    patients(&s).await;
    let cases: &[(&str, &[&str])] = &[
        ("Patient?family=muller", &["anna"]),
        ("Patient?family=MÜL", &["anna", "bernd"]),
        ("Patient?family=mul", &["anna", "bernd"]),
        ("Patient?family:exact=Müller", &["anna"]),
        ("Patient?family:exact=muller", &[]),
        ("Patient?family:contains=LLN", &["bernd"]),
        ("Patient?name=maria", &["anna"]),
        ("Patient?name=schm,bern", &["bernd", "carla"]),
        ("Patient?given=ann&family=mü", &["anna"]),
        ("Patient?address-city=wie", &["anna"]),
        ("Patient?address=1010", &["anna"]),
        ("Patient?address=gr", &["bernd"]),
        ("Patient?family:missing=true", &[]),
    ];
    for (query, expected) in cases {
        assert_eq!(found(&s, query).await, set(expected), "{query}");
    }
}

#[tokio::test]
async fn references_by_id_type_url_identifier_and_type_modifier() {
    let s = TestServer::start().await;
    put(&s, json!({"resourceType": "Patient", "id": "p1", "identifier": [{"system": SVNR, "value": "1111010180"}]})).await;
    put(&s, json!({"resourceType": "Practitioner", "id": "doc", "identifier": [{"system": "urn:oid:1.2.40.0.10.1.4.3.2", "value": "987654321"}]})).await;
    let appointment = |id: &str, actors: Value| json!({"resourceType": "Appointment", "id": id, "status": "booked", "participant": actors});
    put(&s, appointment("a1", json!([{"actor": {"reference": "Patient/p1"}, "status": "accepted"}]))).await;
    put(&s, appointment("a2", json!([{"actor": {"reference": format!("{}/Patient/p1", s.public_base())}, "status": "accepted"}]))).await;
    put(&s, appointment("a3", json!([{"actor": {"reference": "https://elsewhere.example/fhir/Patient/p1"}, "status": "accepted"}]))).await;
    put(&s, appointment("a4", json!([{"actor": {"identifier": {"system": SVNR, "value": "2222010180"}}, "status": "accepted"}]))).await;
    put(&s, appointment("a5", json!([{"actor": {"reference": "Practitioner/doc"}, "status": "accepted"}]))).await;
    let base = s.public_base();
    let cases: Vec<(String, &[&str])> = vec![
        ("Appointment?actor=Patient/p1".into(), &["a1", "a2"]),
        ("Appointment?actor=p1".into(), &["a1", "a2"]),
        (format!("Appointment?actor={base}/Patient/p1"), &["a1", "a2"]),
        ("Appointment?actor=https://elsewhere.example/fhir/Patient/p1".into(), &["a3"]),
        ("Appointment?actor:Patient=p1".into(), &["a1", "a2"]),
        ("Appointment?actor:Practitioner=p1".into(), &[]),
        ("Appointment?patient=p1".into(), &["a1", "a2"]),
        ("Appointment?practitioner=doc".into(), &["a5"]),
        // :identifier matches the reference's identifier and the identifier of the local target.
        (format!("Appointment?actor:identifier={SVNR}|2222010180"), &["a4"]),
        (format!("Appointment?actor:identifier={SVNR}|1111010180"), &["a1", "a2"]),
        ("Appointment?actor:identifier=urn:oid:1.2.40.0.10.1.4.3.2|987654321".into(), &["a5"]),
        ("Appointment?actor:missing=true".into(), &[]),
        ("Appointment?actor=Patient/p1,Practitioner/doc".into(), &["a1", "a2", "a5"]),
    ];
    for (query, expected) in cases {
        assert_eq!(found(&s, &query).await, set(expected), "{query}");
    }
}

#[tokio::test]
async fn dates_are_ranges_with_prefixes() {
    let s = TestServer::start().await;
    let slot = |id: &str, start: &str| {
        json!({"resourceType": "Slot", "id": id, "schedule": {"reference": "Schedule/s"}, "status": "free",
               "start": start, "end": start})
    };
    // Vienna is UTC+2 in April.
    put(&s, slot("early", "2026-04-06T21:59:59Z")).await; // 23:59:59 on the 6th, Vienna
    put(&s, slot("first", "2026-04-06T22:00:00Z")).await; // 00:00 on the 7th, Vienna
    put(&s, slot("noon", "2026-04-07T12:00:00+02:00")).await;
    put(&s, slot("last", "2026-04-07T21:59:59Z")).await;
    put(&s, slot("next", "2026-04-07T22:00:00Z")).await;
    let cases: &[(&str, &[&str])] = &[
        ("Slot?start=2026-04-07", &["first", "noon", "last"]),
        ("Slot?start=eq2026-04-07", &["first", "noon", "last"]),
        ("Slot?start=ne2026-04-07", &["early", "next"]),
        ("Slot?start=gt2026-04-07", &["next"]),
        ("Slot?start=ge2026-04-07", &["first", "noon", "last", "next"]),
        ("Slot?start=lt2026-04-07", &["early"]),
        ("Slot?start=le2026-04-07", &["early", "first", "noon", "last"]),
        ("Slot?start=sa2026-04-07", &["next"]),
        ("Slot?start=eb2026-04-07", &["early"]),
        ("Slot?start=2026-04", &["early", "first", "noon", "last", "next"]),
        ("Slot?start=2026-04-07T12:00", &["noon"]),
        ("Slot?start=2026-04-07T12:00:00%2B02:00", &["noon"]),
        // An unencoded '+' arrives as a space; the offset is still read.
        ("Slot?start=2026-04-07T12:00:00+02:00", &["noon"]),
        ("Slot?start=2026-04-07T10:00:00Z", &["noon"]),
        ("Slot?start=ge2026-04-07T12:00&start=lt2026-04-08", &["noon", "last"]),
        ("Slot?start=2026-04-06,2026-04-08", &["early", "next"]),
        ("Slot?start=ap2026-04-07", &["early", "first", "noon", "last", "next"]),
    ];
    for (query, expected) in cases {
        assert_eq!(found(&s, query).await, set(expected), "{query}");
    }
    let bad = s.get("Slot?start=07.04.2026").await.outcome(400);
    assert_eq!(expressions(&bad), ["start"]);
    s.get("Slot?start=xx2026").await.outcome(400);
}

#[tokio::test]
async fn dates_around_the_vienna_daylight_saving_changes() {
    let s = TestServer::start().await;
    let slot = |id: &str, start: &str| {
        json!({"resourceType": "Slot", "id": id, "schedule": {"reference": "Schedule/s"}, "status": "free", "start": start, "end": start})
    };
    // 2026-03-29: clocks jump from 02:00 CET to 03:00 CEST; the local day starts 23:00Z the day before.
    put(&s, slot("before", "2026-03-28T22:59:59Z")).await;
    put(&s, slot("midnight", "2026-03-28T23:00:00Z")).await;
    put(&s, slot("after-jump", "2026-03-29T01:00:00Z")).await; // 03:00 CEST
    put(&s, slot("day-end", "2026-03-29T21:59:59Z")).await; // 23:59:59 CEST
    put(&s, slot("next-day", "2026-03-29T22:00:00Z")).await;
    // 2026-10-25: clocks fall back; that local day has 25 hours and ends 23:00Z.
    put(&s, slot("autumn-late", "2026-10-25T22:59:59Z")).await;
    put(&s, slot("autumn-next", "2026-10-25T23:00:00Z")).await;
    let cases: &[(&str, &[&str])] = &[
        ("Slot?start=ge2026-03-29&start=lt2026-03-30", &["midnight", "after-jump", "day-end"]),
        ("Slot?start=2026-03-29", &["midnight", "after-jump", "day-end"]),
        ("Slot?start=lt2026-03-29", &["before"]),
        ("Slot?start=ge2026-03-29T03:00&start=lt2026-03-29T04:00", &["after-jump"]),
        ("Slot?start=2026-10-25", &["autumn-late"]),
        ("Slot?start=ge2026-10-26", &["autumn-next"]),
    ];
    for (query, expected) in cases {
        assert_eq!(found(&s, query).await, set(expected), "{query}");
    }
}

#[tokio::test]
async fn periods_and_partial_dates_match_as_ranges() {
    let s = TestServer::start().await;
    let schedule = |id: &str, horizon: Value| json!({"resourceType": "Schedule", "id": id, "active": true, "planningHorizon": horizon});
    put(&s, schedule("spring", json!({"start": "2026-04-01T08:00:00+02:00", "end": "2026-04-30T17:00:00+02:00"}))).await;
    put(&s, schedule("open-ended", json!({"start": "2026-05-01"}))).await;
    put(&s, schedule("until-march", json!({"end": "2026-03-31"}))).await;
    let role = |id: &str, period: Value| json!({"resourceType": "PractitionerRole", "id": id, "period": period});
    put(&s, role("april", json!({"start": "2026-04-01T08:00:00+02:00", "end": "2026-04-30T17:00:00+02:00"}))).await;
    put(&s, role("spring", json!({"start": "2026-03-01", "end": "2026-06-30"}))).await;
    patients(&s).await;
    let cases: &[(&str, &[&str])] = &[
        // R5's eq: the period lies within the searched range. (Schedule date=[eq] follows the
        // AT Scheduling IG instead: ig_second_pass_search.rs.)
        ("PractitionerRole?date=2026-04", &["april"]),
        ("Schedule?date=ge2026-04-15", &["spring", "open-ended"]),
        ("Schedule?date=le2026-04-15", &["spring", "until-march"]),
        ("Schedule?date=gt2027-01-01", &["open-ended"]),
        ("Schedule?date=sa2026-04-30", &["open-ended"]),
        ("Schedule?date=eb2026-04-01", &["until-march"]),
        ("Schedule?date:missing=true", &[]),
        ("Patient?birthdate=1980", &["anna"]),
        ("Patient?birthdate=1980-02-29", &["anna"]),
        ("Patient?birthdate=1975-07-14", &[]),
        ("Patient?birthdate=1975", &["bernd"]),
        ("Patient?birthdate=le1976&birthdate=ge1970", &["bernd"]),
        ("Patient?death-date=2020-01-01", &["carla"]),
    ];
    for (query, expected) in cases {
        assert_eq!(found(&s, query).await, set(expected), "{query}");
    }
}

#[tokio::test]
async fn common_parameters_last_updated_profile_source() {
    let s = TestServer::start().await;
    patients(&s).await;
    let anna = s.read("Patient", "anna").await;
    let updated = anna["meta"]["lastUpdated"].as_str().unwrap().to_owned();
    let profile = "https://fhir.hl7.at/r5-core/StructureDefinition/at-core-patient";
    let cases: Vec<(String, &[&str])> = vec![
        (format!("Patient?_profile={profile}"), &["anna"]),
        ("Patient?_source=urn:app:kis".into(), &["anna"]),
        ("Patient?_source:below=urn:app".into(), &["anna"]),
        (format!("Patient?_lastUpdated={}", updated.replace('+', "%2B")), &["anna"]),
        ("Patient?_lastUpdated=gt2000-01-01".into(), &["anna", "bernd", "carla"]),
        ("Patient?_lastUpdated=lt2000-01-01".into(), &[]),
    ];
    for (query, expected) in cases {
        assert_eq!(found(&s, &query).await, set(expected), "{query}");
    }
}

#[tokio::test]
async fn updates_and_deletes_change_what_is_found() {
    let s = TestServer::start().await;
    patients(&s).await;
    let mut anna = s.read("Patient", "anna").await;
    anna["name"][0]["family"] = json!("Huber");
    s.put("Patient/anna", &anna).await.expect_status(200);
    assert_eq!(found(&s, "Patient?family=müller").await, set(&[]));
    assert_eq!(found(&s, "Patient?family=huber").await, set(&["anna"]));
    s.delete("Patient/anna").await.expect_status(204);
    assert_eq!(found(&s, "Patient?family=huber").await, set(&[]));
    assert_eq!(found(&s, "Patient?gender=female").await, set(&["carla"]));
}

#[tokio::test]
async fn malformed_values_are_400_with_the_parameter_as_expression() {
    let s = TestServer::start().await;
    for (query, param) in [
        ("Patient?active:missing=maybe", "active:missing"),
        ("Patient?identifier:of-type=only|two", "identifier:of-type"),
        ("Patient?birthdate=tomorrow", "birthdate"),
        ("Patient?_count=-1", "_count"),
        ("Patient?_sort=shoe-size", "_sort"),
        ("Patient?_total=some", "_total"),
        ("Patient?_cursor=garbage", "_cursor"),
        ("Patient?_include=Patient:name", "_include"),
    ] {
        let outcome = s.get(query).await.outcome(400);
        assert_eq!(expressions(&outcome), [param], "{query}: {outcome}");
    }
}
