//! Resources a Scheduling Client sends: the AT Core Patient it registers and the `proposed`
//! Appointment it books.

use serde_json::{Map, Value, json};

use crate::SVNR_SYSTEM;

/// An AT Core Patient identified by the social security number (identifier type `SS`).
/// `gender` is an AdministrativeGender code (`female`, `male`, `other`, `unknown`); AT Core
/// requires one.
pub fn austrian_patient(svnr: &str, family: &str, given: &[&str], birth_date: &str, gender: &str) -> Value {
    json!({
        "resourceType": "Patient",
        "identifier": [{
            "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "SS"}]},
            "system": SVNR_SYSTEM,
            "value": svnr
        }],
        "name": [{"family": family, "given": given}],
        "gender": gender,
        "birthDate": birth_date
    })
}

/// A `proposed` Appointment for `$book`, shaped like the IG's `$book` request example: the
/// slot's time and service type, the patient as subject and participant, and the slot's
/// Schedule actors (practitioner, role, service, ...) as required, accepting participants.
/// `patient` is a reference such as `Patient/123`.
pub fn proposed_appointment(patient: &str, slot: &Value, schedule: &Value) -> Value {
    let mut appointment = Map::new();
    appointment.insert("resourceType".into(), json!("Appointment"));
    appointment.insert("status".into(), json!("proposed"));
    if let Some(service_type) = slot.get("serviceType").or_else(|| schedule.get("serviceType")) {
        appointment.insert("serviceType".into(), service_type.clone());
    }
    for time in ["start", "end"] {
        if let Some(value) = slot.get(time) {
            appointment.insert(time.into(), value.clone());
        }
    }
    let slot_id = slot["id"].as_str().unwrap_or_default();
    appointment.insert("slot".into(), json!([{"reference": format!("Slot/{slot_id}")}]));
    appointment.insert("subject".into(), json!({"reference": patient}));
    let participant = |actor: Value| json!({"actor": actor, "required": true, "status": "accepted"});
    let mut participants = vec![participant(json!({"reference": patient}))];
    participants.extend(schedule["actor"].as_array().into_iter().flatten().cloned().map(participant));
    appointment.insert("participant".into(), Value::Array(participants));
    Value::Object(appointment)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_patient_carries_the_svnr_as_an_ss_identifier() {
        let patient = austrian_patient("1234010180", "Huber", &["Anna", "Maria"], "1980-01-01", "female");
        assert_eq!(patient["identifier"][0]["system"], SVNR_SYSTEM);
        assert_eq!(patient["identifier"][0]["value"], "1234010180");
        assert_eq!(patient["identifier"][0]["type"]["coding"][0]["code"], "SS");
        assert_eq!(patient["name"][0]["given"], json!(["Anna", "Maria"]));
        assert_eq!((&patient["gender"], &patient["birthDate"]), (&json!("female"), &json!("1980-01-01")));
    }

    #[test]
    fn the_appointment_takes_time_service_and_actors_from_slot_and_schedule() {
        let service_type = json!([{"concept": {"coding": [{"system": "urn:st", "code": "65"}]}}]);
        let slot = json!({"resourceType": "Slot", "id": "s1", "serviceType": service_type,
            "start": "2026-04-07T08:00:00+02:00", "end": "2026-04-07T08:30:00+02:00"});
        let schedule = json!({"resourceType": "Schedule", "id": "sch",
            "actor": [{"reference": "Practitioner/p", "display": "Dr. P"}]});
        let appointment = proposed_appointment("Patient/anna", &slot, &schedule);
        assert_eq!(appointment["status"], "proposed");
        assert_eq!(appointment["serviceType"], service_type);
        assert_eq!(appointment["start"], "2026-04-07T08:00:00+02:00");
        assert_eq!(appointment["end"], "2026-04-07T08:30:00+02:00");
        assert_eq!(appointment["slot"], json!([{"reference": "Slot/s1"}]));
        assert_eq!(appointment["subject"], json!({"reference": "Patient/anna"}));
        let actors: Vec<&Value> = appointment["participant"].as_array().unwrap().iter().map(|p| &p["actor"]).collect();
        assert_eq!(actors, [&json!({"reference": "Patient/anna"}), &json!({"reference": "Practitioner/p", "display": "Dr. P"})]);
        assert!(appointment["participant"].as_array().unwrap().iter().all(|p| p["required"] == true && p["status"] == "accepted"));
    }

    #[test]
    fn without_a_slot_service_type_the_schedules_is_used() {
        let schedule = json!({"serviceType": [{"concept": {"text": "Physio"}}], "actor": []});
        let appointment = proposed_appointment("Patient/a", &json!({"id": "s"}), &schedule);
        assert_eq!(appointment["serviceType"], schedule["serviceType"]);
        assert_eq!(appointment["participant"].as_array().unwrap().len(), 1);
    }
}
