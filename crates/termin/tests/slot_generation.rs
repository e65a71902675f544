//! `Schedule/[id]/$generate-slots` over HTTP (issue 19): slots from a PractitionerRole's
//! availability across daylight-saving changes and holidays, idempotent regeneration, narrowing
//! rules around a booked slot, and generation racing bookings on the same Schedule; the
//! background generation (`--slot-generation-interval`) keeping a Schedule to its horizon
//! without any request, on one node of two at a time.

mod scheduling_support;
mod support;

use scheduling_support::*;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::Duration;
use support::*;

const SLOT_GENERATION: &str = "https://termin.at/fhir/StructureDefinition/slot-generation";

/// A PractitionerRole `role-gen` with these opening hours and a Schedule `sch-gen` generating
/// 30-minute slots from it (after the patients, service and practitioner of [`setup`]).
async fn world(s: &TestServer, available: Value, public_holidays: bool) {
    world_with_rules(s, available, rules(public_holidays)).await;
}

/// [`world`] with the Schedule's slot-generation rules (sub-extensions) as given.
async fn world_with_rules(s: &TestServer, available: Value, rules: Vec<Value>) {
    setup(s, 0).await;
    set_hours(s, available).await;
    put_resource(
        s,
        &json!({
            "resourceType": "Schedule",
            "id": "sch-gen",
            "active": true,
            "extension": [{"url": SLOT_GENERATION, "extension": rules}],
            "actor": [{"reference": "PractitionerRole/role-gen"}, {"reference": "Practitioner/prac-melanie"}]
        }),
    )
    .await;
}

/// 30-minute slots, with or without Austria's public holidays.
fn rules(public_holidays: bool) -> Vec<Value> {
    vec![
        json!({"url": "slot-duration", "valueDuration": {"value": 30, "system": "http://unitsofmeasure.org", "code": "min"}}),
        json!({"url": "public-holidays", "valueBoolean": public_holidays}),
    ]
}

/// [`rules`] without holidays (the days ahead are whatever today is), kept `days` ahead by the
/// background generation.
fn rules_with_horizon(days: u32) -> Vec<Value> {
    let mut rules = rules(false);
    rules.push(json!({"url": "horizon", "valueDuration": {"value": days, "system": "http://unitsofmeasure.org", "code": "d"}}));
    rules
}

async fn set_hours(s: &TestServer, available: Value) {
    put_resource(
        s,
        &json!({
            "resourceType": "PractitionerRole",
            "id": "role-gen",
            "active": true,
            "practitioner": {"reference": "Practitioner/prac-melanie"},
            "availability": [available]
        }),
    )
    .await;
}

fn generation(start: &str, end: &str, dry_run: bool) -> Value {
    json!({"resourceType": "Parameters", "parameter": [
        {"name": "start", "valueDate": start},
        {"name": "end", "valueDate": end},
        {"name": "dry-run", "valueBoolean": dry_run}
    ]})
}

async fn generate(s: &TestServer, start: &str, end: &str) -> Value {
    s.post("Schedule/sch-gen/$generate-slots", &generation(start, end, false)).await.expect_status(200).json()
}

#[track_caller]
fn count(summary: &Value, name: &str) -> i64 {
    param(summary, name).and_then(|p| p["valueInteger"].as_i64()).unwrap_or_else(|| panic!("no {name} in {summary}"))
}

/// `(created, kept, removed, conflicts)` of a summary.
#[track_caller]
fn counts(summary: &Value) -> (i64, i64, i64, i64) {
    (count(summary, "created"), count(summary, "kept"), count(summary, "removed"), count(summary, "conflicts"))
}

/// The starts of the Schedule's Slots as stored, in order, with their status.
async fn slots(s: &TestServer) -> Vec<(String, String)> {
    let mut slots: Vec<(String, String)> = all_of_type(s, "Slot")
        .await
        .into_values()
        .filter(|slot| slot["schedule"]["reference"] == "Schedule/sch-gen")
        .map(|slot| (slot["start"].as_str().unwrap().to_owned(), slot["status"].as_str().unwrap().to_owned()))
        .collect();
    slots.sort();
    slots
}

async fn starts(s: &TestServer) -> Vec<String> {
    slots(s).await.into_iter().map(|(start, _)| start).collect()
}

fn night_hours() -> Value {
    json!({"availableTime": [{"availableStartTime": "01:30:00", "availableEndTime": "03:30:00"}]})
}

#[tokio::test]
async fn spring_forward_has_no_slot_in_the_missing_hour() {
    let s = TestServer::start().await;
    world(&s, night_hours(), false).await;
    // Vienna moves from +01:00 to +02:00 at 02:00 on Sunday 2030-03-31.
    let summary = generate(&s, "2030-03-31", "2030-03-31").await;
    assert_eq!(counts(&summary), (2, 0, 0, 0), "{summary}");
    assert_eq!(starts(&s).await, ["2030-03-31T01:30:00+01:00", "2030-03-31T03:00:00+02:00"]);
}

#[tokio::test]
async fn fall_back_gives_the_repeated_hour_once() {
    let s = TestServer::start().await;
    world(&s, night_hours(), false).await;
    // Vienna moves from +02:00 back to +01:00 at 03:00 on Sunday 2030-10-27.
    let summary = generate(&s, "2030-10-27", "2030-10-27").await;
    assert_eq!(counts(&summary), (4, 0, 0, 0), "{summary}");
    assert_eq!(
        starts(&s).await,
        ["2030-10-27T01:30:00+02:00", "2030-10-27T02:00:00+02:00", "2030-10-27T02:30:00+02:00", "2030-10-27T03:00:00+01:00"]
    );
}

fn weekday_mornings() -> Value {
    json!({"availableTime": [{"daysOfWeek": ["mon", "tue", "wed", "thu", "fri"], "availableStartTime": "08:00:00", "availableEndTime": "09:00:00"}]})
}

#[tokio::test]
async fn public_holidays_close_the_practice_and_regeneration_is_a_no_op() {
    let s = TestServer::start().await;
    world(&s, weekday_mornings(), true).await;
    // Monday 2030-12-23 to Friday 2030-12-27; the 25th and 26th are public holidays.
    let dry = s.post("Schedule/sch-gen/$generate-slots", &generation("2030-12-23", "2030-12-27", true)).await.expect_status(200).json();
    assert_eq!(counts(&dry), (6, 0, 0, 0), "{dry}");
    assert!(starts(&s).await.is_empty(), "a dry run writes nothing");
    let first = generate(&s, "2030-12-23", "2030-12-27").await;
    assert_eq!(counts(&first), (6, 0, 0, 0), "{first}");
    let days: Vec<String> = starts(&s).await.iter().map(|start| start[..10].to_owned()).collect();
    assert_eq!(days, ["2030-12-23", "2030-12-23", "2030-12-24", "2030-12-24", "2030-12-27", "2030-12-27"]);
    let before = all_of_type(&s, "Slot").await;
    let again = generate(&s, "2030-12-23", "2030-12-27").await;
    assert_eq!(counts(&again), (0, 6, 0, 0), "{again}");
    assert_eq!(all_of_type(&s, "Slot").await, before, "regeneration changes no Slot, not even its version");
}

#[tokio::test]
async fn narrowing_keeps_the_booked_slot_and_reports_it() {
    let s = TestServer::start().await;
    world(&s, weekday_mornings(), true).await;
    generate(&s, "2030-12-23", "2030-12-23").await;
    let all = all_of_type(&s, "Slot").await;
    let late = all.values().find(|slot| slot["start"] == "2030-12-23T08:30:00+01:00").unwrap();
    let late_id = late["id"].as_str().unwrap().to_owned();
    book_ok(&s, &appointment("pat-anna", &[&late_id]), &[]).await;

    set_hours(&s, json!({"availableTime": [{"availableStartTime": "07:00:00", "availableEndTime": "08:00:00"}]})).await;
    let summary = generate(&s, "2030-12-23", "2030-12-23").await;
    assert_eq!(counts(&summary), (2, 0, 1, 1), "07:00 and 07:30 added, free 08:00 removed, booked 08:30 kept: {summary}");
    let conflict = param(&summary, "conflict").expect("the conflict is listed");
    assert_eq!(conflict["part"][0]["valueReference"]["reference"], format!("Slot/{late_id}"), "{summary}");
    assert!(conflict["part"][2]["valueString"].as_str().unwrap().starts_with("booked by Appointment/"), "{summary}");
    assert_eq!(
        slots(&s).await,
        [
            ("2030-12-23T07:00:00+01:00".to_owned(), "free".to_owned()),
            ("2030-12-23T07:30:00+01:00".to_owned(), "free".to_owned()),
            ("2030-12-23T08:30:00+01:00".to_owned(), "busy".to_owned()),
        ]
    );
}

#[tokio::test]
async fn staff_block_a_vacation_with_not_available_time() {
    let s = TestServer::start().await;
    world(&s, weekday_mornings(), true).await;
    generate(&s, "2031-01-06", "2031-01-10").await;
    let mut hours = weekday_mornings();
    hours["notAvailableTime"] = json!([{"description": "Urlaub", "during": {"start": "2031-01-07", "end": "2031-01-09"}}]);
    set_hours(&s, hours).await;
    // Monday 2031-01-06 is Epiphany (a public holiday): 8 slots before, Friday's 2 after.
    let summary = generate(&s, "2031-01-06", "2031-01-10").await;
    assert_eq!(counts(&summary), (0, 2, 6, 0), "{summary}");
}

#[tokio::test]
async fn a_slot_staff_blocked_stays_blocked() {
    let s = TestServer::start().await;
    world(&s, weekday_mornings(), true).await;
    generate(&s, "2030-12-23", "2030-12-23").await;
    let mut blocked = all_of_type(&s, "Slot").await.into_values().next().unwrap();
    blocked["status"] = json!("busy-unavailable");
    put_resource(&s, &blocked).await;
    let summary = generate(&s, "2030-12-23", "2030-12-23").await;
    assert_eq!(counts(&summary), (0, 2, 0, 0), "{summary}");
    assert_eq!(s.read("Slot", blocked["id"].as_str().unwrap()).await["status"], "busy-unavailable");
}

#[tokio::test]
async fn bad_input_is_refused_and_changes_nothing() {
    let s = TestServer::start().await;
    world(&s, weekday_mornings(), true).await;
    let reversed = s.post("Schedule/sch-gen/$generate-slots", &generation("2030-12-27", "2030-12-23", false)).await;
    reversed.expect_status(400);
    let no_start = json!({"resourceType": "Parameters", "parameter": [{"name": "end", "valueDate": "2030-12-27"}]});
    s.post("Schedule/sch-gen/$generate-slots", &no_start).await.expect_status(400);
    let too_long = s.post("Schedule/sch-gen/$generate-slots", &generation("2030-01-01", "2031-06-01", false)).await;
    too_long.expect_status(400);
    s.post("Schedule/nowhere/$generate-slots", &generation("2030-12-23", "2030-12-27", false)).await.expect_status(404);
    assert!(starts(&s).await.is_empty());
}

/// Bookings of generated slots race a generation that narrows the hours away from them: every
/// booking that succeeded still has its busy slot afterwards, whichever went first.
#[tokio::test]
async fn concurrent_generation_and_booking_lose_no_booking() {
    let s = TestServer::start().await;
    world(&s, json!({"availableTime": [{"availableStartTime": "08:00:00", "availableEndTime": "12:00:00"}]}), false).await;
    generate(&s, "2030-12-02", "2030-12-02").await;
    let ids: Vec<String> = all_of_type(&s, "Slot").await.into_keys().collect();
    assert_eq!(ids.len(), 8);
    set_hours(&s, json!({"availableTime": [{"availableStartTime": "13:00:00", "availableEndTime": "14:00:00"}]})).await;

    let bookings = ids.iter().map(|id| {
        let s = &s;
        async move { book(s, &appointment(if id.len() % 2 == 0 { "pat-anna" } else { "pat-bert" }, &[id]), &[]).await }
    });
    let (results, summary) = tokio::join!(futures::future::join_all(bookings), generate(&s, "2030-12-02", "2030-12-02"));
    let booked: Vec<&Resp> = results.iter().filter(|r| r.code() == 201).collect();
    for r in &results {
        assert!(r.code() == 201 || r.code() == 409 || r.code() == 404 || r.code() == 422, "{}: {}", r.what(), r.text());
    }
    let after = all_of_type(&s, "Slot").await;
    for r in &booked {
        let appointment = param_resource(&r.json(), "appointment");
        for slot in slot_ids(&appointment) {
            assert_eq!(after.get(&slot).map(|s| s["status"].clone()), Some(json!("busy")), "booked Slot/{slot} lost: {summary}");
        }
    }
    let (_, _, removed, conflicts) = counts(&summary);
    assert_eq!(removed + conflicts, 8, "every old slot is either removed or a conflict: {summary}");
}

/// The extension's StructureDefinition is served, and with validation on a Schedule whose rules
/// break it is refused (422) while a correct one is stored.
#[tokio::test]
async fn the_extension_is_served_and_validated() {
    let s = TestServer::start_with(ServerOptions::new().validation()).await;
    let definition = s.get("StructureDefinition/slot-generation").await.expect_status(200).json();
    assert_eq!(definition["url"], SLOT_GENERATION);
    assert_eq!(definition["context"][0]["expression"], "Schedule");
    s.get("StructureDefinition/nothing-here").await.expect_status(404);

    let schedule = |duration: Value| {
        json!({
            "resourceType": "Schedule",
            "active": true,
            "extension": [{"url": SLOT_GENERATION, "extension": [{"url": "slot-duration", "valueDuration": duration}]}],
            "actor": [{"reference": "Practitioner/nobody"}]
        })
    };
    let wrong_type = json!({"resourceType": "Schedule", "active": true,
        "extension": [{"url": SLOT_GENERATION, "extension": [{"url": "slot-duration", "valueString": "30 minutes"}]}],
        "actor": [{"reference": "Practitioner/nobody"}]});
    let refused = s.post("Schedule", &wrong_type).await;
    assert_eq!(refused.code(), 422, "{}", refused.text());
    let unknown_rule = json!({"resourceType": "Schedule", "active": true,
        "extension": [{"url": SLOT_GENERATION, "extension": [{"url": "lunch-break", "valueBoolean": true}]}],
        "actor": [{"reference": "Practitioner/nobody"}]});
    let refused = s.post("Schedule", &unknown_rule).await;
    assert_eq!(refused.code(), 422, "{}", refused.text());
    let stored = s.post("Schedule", &schedule(json!({"value": 30, "system": "http://unitsofmeasure.org", "code": "min"}))).await;
    assert_eq!(stored.code(), 201, "{}", stored.text());
}

fn every_day(from: &str, to: &str) -> Value {
    json!({"availableTime": [{"availableStartTime": from, "availableEndTime": to}]})
}

fn background_generation() -> ServerOptions {
    ServerOptions::new().flag("--slot-generation-interval", "200ms")
}

/// Whether generating today to the horizon's last day would change nothing (a dry run): the
/// background generation has been there.
async fn horizon_settled(s: &TestServer, days: u32) -> bool {
    let today = jiff::tz::TimeZone::get("Europe/Vienna").unwrap().to_datetime(jiff::Timestamp::now()).date();
    let last = today.checked_add(jiff::Span::new().days(i64::from(days) - 1)).unwrap();
    let dry = s.post("Schedule/sch-gen/$generate-slots", &generation(&today.to_string(), &last.to_string(), true)).await;
    let dry = dry.expect_status(200).json();
    let (created, kept, removed, conflicts) = counts(&dry);
    created == 0 && removed == 0 && conflicts == 0 && kept > 0
}

/// The background generation makes a Schedule's Slots up to its horizon with no
/// `$generate-slots` request, and follows a change of the opening hours by itself.
#[tokio::test]
async fn the_background_generation_keeps_the_horizon_without_a_request() {
    let s = TestServer::start_with(background_generation()).await;
    world_with_rules(&s, every_day("08:00:00", "09:00:00"), rules_with_horizon(3)).await;
    until("the generated slots of three days", Duration::from_secs(60), async || slots(&s).await.len() >= 4).await;
    until("the horizon generated completely", Duration::from_secs(60), async || horizon_settled(&s, 3).await).await;
    let generated = slots(&s).await;
    assert!(generated.len() <= 6, "two slots a day for three days at most: {generated:?}");
    assert!(generated.iter().all(|(_, status)| status == "free"), "{generated:?}");

    set_hours(&s, every_day("08:00:00", "10:00:00")).await;
    until("the widened hours generated", Duration::from_secs(60), async || slots(&s).await.len() > generated.len()).await;
    until("the widened horizon generated completely", Duration::from_secs(60), async || horizon_settled(&s, 3).await).await;
}

/// Two nodes on one database both run the background generation: one of them holds the job's
/// lease and generates; the Slots exist once each, whichever node's rules change they follow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_running_the_background_generation_do_not_duplicate_slots() {
    let first = TestServer::start_with(background_generation()).await;
    let second = first.another_node(background_generation()).await;
    world_with_rules(&first, every_day("08:00:00", "09:00:00"), rules_with_horizon(3)).await;
    until("the horizon generated completely", Duration::from_secs(60), async || horizon_settled(&second, 3).await).await;
    set_hours(&second, every_day("07:00:00", "09:00:00")).await;
    until("the widened hours generated", Duration::from_secs(60), async || {
        slots(&first).await.iter().any(|(start, _)| start.contains("T07:00:00"))
    })
    .await;
    until("the widened horizon generated completely", Duration::from_secs(60), async || horizon_settled(&first, 3).await).await;

    let stored = slots(&second).await;
    let starts: BTreeSet<&String> = stored.iter().map(|(start, _)| start).collect();
    assert_eq!(starts.len(), stored.len(), "a start twice: {stored:?}");
    let passes = |node: &TestServer| {
        node.stderr_lines().iter().filter(|line| line.contains("generated slots to the schedules' horizons")).count()
    };
    let (by_first, by_second) = (passes(&first), passes(&second));
    assert!(
        (by_first == 0) != (by_second == 0),
        "one node holds the lease and runs every pass: {by_first} passes on the first node, {by_second} on the second"
    );
}
