//! `termin client …` against the real server with the IG examples loaded (`--demo`): the
//! built binary registers a patient, lists the free slots of the example Schedule, holds one,
//! books it, finds the appointment by SVNR, postpones and cancels it; failures exit non-zero
//! with the server's OperationOutcome on stderr.

mod support;

use serde_json::Value;
use support::{ServerOptions, TestServer};

const SVNR: &str = "1234010180";
const SCHEDULE: &str = "Schedule/HL7ATSchedulingScheduleExample01";
const PHYSIOTHERAPY: &str = "http://terminology.hl7.org/CodeSystem/service-type|65";

/// The IG examples, validated against the AT profiles.
async fn demo_server() -> TestServer {
    // The IG examples only: the seeded demo dataset would add providers of the same service.
    TestServer::start_with(ServerOptions::new().arg("--demo").flag("--demo-scale", "none").validation()).await
}

struct Run {
    success: bool,
    stdout: String,
    stderr: String,
}

impl Run {
    #[track_caller]
    fn ok(self) -> Self {
        assert!(self.success, "termin client failed:\n{}", self.stderr);
        self
    }

    #[track_caller]
    fn json(self) -> Value {
        let stdout = self.ok().stdout;
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{stdout}"))
    }

    /// The `--brief` lines, split into their tab-separated columns.
    #[track_caller]
    fn rows(self) -> Vec<Vec<String>> {
        self.ok().stdout.lines().map(|line| line.split('\t').map(str::to_owned).collect()).collect()
    }
}

async fn client(s: &TestServer, args: &[&str]) -> Run {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_termin"))
        .arg("client")
        .args(["--url", &s.base()])
        .args(args)
        .env_remove("TERMIN_URL")
        .output()
        .await
        .expect("run termin client");
    Run {
        success: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// (id, status) of the slots of the example Schedule with one of `statuses`.
async fn slots(s: &TestServer, statuses: &str) -> Vec<(String, String)> {
    let rows = client(s, &["--brief", "slots", "--schedule", SCHEDULE, "--status", statuses]).await.rows();
    rows.into_iter().map(|row| (row[0].clone(), row[1].clone())).collect()
}

fn parameter<'a>(parameters: &'a Value, name: &str) -> &'a Value {
    parameters["parameter"]
        .as_array()
        .and_then(|all| all.iter().find(|p| p["name"] == name))
        .unwrap_or_else(|| panic!("no {name} in {parameters}"))
}

#[tokio::test]
async fn register_hold_book_find_postpone_and_cancel() {
    let s = demo_server().await;
    let patient_args =
        ["patient", "create", "--svnr", SVNR, "--family", "Huber", "--given", "Anna", "--birth-date", "1980-01-01", "--gender", "female"];
    let patient = client(&s, &patient_args).await.json();
    assert_eq!(patient["resourceType"], "Patient");
    assert_eq!(patient["identifier"][0]["value"], SVNR);
    let again = client(&s, &patient_args).await.json();
    assert_eq!(again["id"], patient["id"], "creating the patient is idempotent by SVNR");
    let patient_ref = format!("Patient/{}", patient["id"].as_str().unwrap());

    // The example slots are variants of one past hour; only slots that have not started can
    // be booked (issue 12), so the free ones move to hours of their own in the future.
    for (hour, id) in [(8, "HL7ATSchedulingSlotExample02-VirtualVisit"), (9, "HL7ATSchedulingSlotExample03-selectable-encounterClass"), (10, "HL7ATSchedulingSlotExample04-external-booking-URL")] {
        let mut slot = s.read("Slot", id).await;
        slot["start"] = format!("2030-09-16T{hour:02}:00:00Z").into();
        slot["end"] = format!("2030-09-16T{:02}:00:00Z", hour + 1).into();
        s.put(&format!("Slot/{id}"), &slot).await.expect_status(200);
    }
    // Slot 01 is taken by the example Appointment; the other example slots are free.
    let free = slots(&s, "free").await;
    let free_ids: Vec<&str> = free.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(
        free_ids,
        [
            "Slot/HL7ATSchedulingSlotExample02-VirtualVisit",
            "Slot/HL7ATSchedulingSlotExample03-selectable-encounterClass",
            "Slot/HL7ATSchedulingSlotExample04-external-booking-URL",
        ]
    );
    let (slot, other_slot) = (free_ids[0].to_owned(), free_ids[1].to_owned());

    let held = client(&s, &["hold", &slot]).await.json();
    assert_eq!(parameter(&held, "slot")["resource"]["status"], "busy-tentative");
    let token = parameter(&held, "hold-token")["valueString"].as_str().unwrap().to_owned();
    assert!(slots(&s, "free").await.iter().all(|(id, _)| *id != slot), "a held slot is not free");

    let appointment = client(&s, &["book", "--slot", &slot, "--patient", &patient_ref, "--token", &token]).await.json();
    assert_eq!(appointment["resourceType"], "Appointment");
    assert_eq!(appointment["status"], "booked");
    assert_eq!((appointment["start"].as_str(), appointment["end"].as_str()), (Some("2030-09-16T08:00:00Z"), Some("2030-09-16T09:00:00Z")));
    let actors: Vec<&str> = appointment["participant"].as_array().unwrap().iter().filter_map(|p| p["actor"]["reference"].as_str()).collect();
    assert_eq!(actors, [patient_ref.as_str(), "Practitioner/HL7ATCorePractitionerExample01"], "patient and the schedule's actor");
    let appointment_id = appointment["id"].as_str().unwrap().to_owned();

    let taken = client(&s, &["book", "--slot", &slot, "--patient", &patient_ref]).await;
    assert!(!taken.success, "booking a booked slot must fail");
    assert!(taken.stderr.contains("conflict") && taken.stderr.contains(&slot), "{}", taken.stderr);

    let found = client(&s, &["--brief", "appointments", "--svnr", SVNR]).await.rows();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0][..2], [format!("Appointment/{appointment_id}"), "booked".to_owned()]);
    let elsewhere = client(&s, &["--brief", "appointments", "--svnr", "9999999999"]).await.rows();
    assert!(elsewhere.is_empty(), "{elsewhere:?}");

    let moved = client(&s, &["postpone", &appointment_id, "--slot", &other_slot]).await.json();
    assert_eq!(moved["slot"][0]["reference"], other_slot.as_str());
    let states = slots(&s, "free,busy").await;
    assert!(states.contains(&(slot.clone(), "free".into())) && states.contains(&(other_slot.clone(), "busy".into())), "{states:?}");

    let cancelled = client(&s, &["cancel", &format!("Appointment/{appointment_id}")]).await.json();
    assert_eq!(cancelled["status"], "cancelled");
    let booked = client(&s, &["appointments", "--svnr", SVNR, "--status", "booked"]).await.json();
    assert_eq!(booked["resourceType"], "Bundle");
    assert!(booked["entry"].as_array().unwrap().iter().all(|e| e["search"]["mode"] == "outcome"), "{booked}");
    assert!(slots(&s, "free").await.iter().any(|(id, _)| *id == other_slot), "cancelling frees the slot");
}

#[tokio::test]
async fn services_providers_and_schedules_of_the_ig_examples() {
    let s = demo_server().await;
    let services = client(&s, &["--brief", "services", "--type", PHYSIOTHERAPY]).await.rows();
    assert_eq!(services.len(), 1, "{services:?}");
    assert_eq!(services[0][0], "HealthcareService/HL7ATSchedulingHealthcareServiceExample01");
    let inactive = client(&s, &["--brief", "services", "--active", "false"]).await.rows();
    assert!(inactive.is_empty(), "{inactive:?}");

    let providers = client(&s, &["find-hsp", "--type", PHYSIOTHERAPY, "--zip", "53"]).await.json();
    assert_eq!(providers["type"], "searchset");
    let matched: Vec<&Value> =
        providers["entry"].as_array().unwrap().iter().filter(|e| e["search"]["mode"] == "match").map(|e| &e["resource"]["id"]).collect();
    assert_eq!(matched, ["HL7ATSchedulingHealthcareServiceExample01"]);

    let schedules = client(&s, &["--brief", "schedules", "--actor", "Practitioner/HL7ATCorePractitionerExample01"]).await.rows();
    let ids: Vec<&str> = schedules.iter().map(|row| row[0].as_str()).collect();
    assert_eq!(ids, [SCHEDULE]);
}

#[tokio::test]
async fn failures_exit_non_zero_with_the_servers_diagnostics() {
    let s = TestServer::start().await;
    let missing = client(&s, &["cancel", "no-such-appointment"]).await;
    assert!(!missing.success);
    assert!(missing.stdout.is_empty(), "{}", missing.stdout);
    assert!(missing.stderr.contains("404") && missing.stderr.contains("no-such-appointment"), "{}", missing.stderr);

    let no_service = client(&s, &["find-hsp", "--zip", "53"]).await;
    assert!(!no_service.success);
    assert!(no_service.stderr.contains("400") && no_service.stderr.contains("error"), "{}", no_service.stderr);

    let nobody = client(&s, &["hold", "Slot/unknown"]).await;
    assert!(!nobody.success, "holding an unknown slot fails: {}", nobody.stdout);
}

#[tokio::test]
async fn bundle_sends_a_transaction_from_a_file() {
    let s = TestServer::start().await;
    let transaction = serde_json::json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a", "request": {"method": "POST", "url": "Patient"},
         "resource": {"resourceType": "Patient", "name": [{"family": "Kommandozeile"}]}},
        {"request": {"method": "POST", "url": "RelatedPerson"},
         "resource": {"resourceType": "RelatedPerson", "patient": {"reference": "urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a"}}}
    ]});
    let file = s.dir().join("transaction.json");
    std::fs::write(&file, transaction.to_string()).unwrap();
    let response = client(&s, &["bundle", file.to_str().unwrap()]).await.json();
    assert_eq!(response["type"], "transaction-response");
    let patient = response["entry"][0]["resource"]["id"].as_str().unwrap().to_owned();
    assert_eq!(response["entry"][1]["resource"]["patient"]["reference"], format!("Patient/{patient}"));

    let failing = serde_json::json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"request": {"method": "PUT", "url": "Patient/x"}, "resource": {"resourceType": "Patient", "id": "y"}}
    ]});
    std::fs::write(&file, failing.to_string()).unwrap();
    let refused = client(&s, &["bundle", file.to_str().unwrap()]).await;
    assert!(!refused.success);
    assert!(refused.stderr.contains("400") && refused.stderr.contains("Bundle.entry[0]"), "{}", refused.stderr);
}
