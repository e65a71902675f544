//! Concurrency acceptance tests of issue 4, over HTTP against the real binary:
//! * 100 clients racing to book 10 slots: exactly 10 bookings, every slot in exactly one;
//! * racing holds of one slot, racing overlapping multi-slot bookings, racing idempotent
//!   repeats;
//! * a seeded storm of > 2,000 mixed operations (hold, renew, release, book with and without
//!   a hold token, cancel, confirm, postpone by PUT, reads) from 32 concurrent clients over 30
//!   slots, after which the whole database (all Slots and Appointments, paged) must satisfy
//!   "a Slot is busy iff exactly one active Appointment references it; free iff none and no
//!   live hold" and agree with what the clients were told.
//!
//! No sleeps: clients start together at a barrier; nothing asserts on timing.

mod scheduling_support;
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use scheduling_support::*;
use serde_json::{Value, json};
use support::*;
use tokio::sync::Barrier;
use tokio::task::JoinSet;

/// Collects the results of all tasks, re-raising the first panic.
async fn join_all<T: 'static>(mut set: JoinSet<T>) -> Vec<T> {
    let mut out = Vec::new();
    while let Some(r) = set.join_next().await {
        match r {
            Ok(v) => out.push(v),
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => panic!("task failed: {e}"),
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hundred_clients_race_to_book_ten_slots() {
    const CLIENTS: usize = 100;
    const SLOTS: usize = 10;
    let s = Arc::new(TestServer::start().await);
    let w = setup(&s, SLOTS).await;
    let barrier = Arc::new(Barrier::new(CLIENTS));
    let mut set = JoinSet::new();
    for i in 0..CLIENTS {
        let (s, barrier) = (s.clone(), barrier.clone());
        let slot = w.slots[i % SLOTS].clone();
        let patient = if i % 2 == 0 { w.anna.clone() } else { w.bert.clone() };
        set.spawn(async move {
            let mut a = appointment(&patient, &[&slot]);
            a["description"] = json!(format!("client {i}"));
            barrier.wait().await;
            let r = book(&s, &a, &[]).await;
            (i, slot, r)
        });
    }
    let results = join_all(set).await;
    let mut winners: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let (mut booked, mut rejected) = (0, 0);
    for (i, slot, r) in &results {
        let body = r.json();
        match r.code() {
            201 => {
                booked += 1;
                let appt = param_resource(&body, "appointment");
                assert_eq!(appt["status"], "booked");
                assert_eq!(appt["description"], format!("client {i}"));
                winners.entry(slot.clone()).or_default().push(id_of(&appt));
            }
            409 => {
                rejected += 1;
                let appt = param_resource(&body, "appointment");
                assert_eq!(appt["status"], "cancelled", "client {i}: {body}");
                let outcome = param_resource(&body, "outcome");
                assert_issue_code(&outcome, "conflict");
                assert!(diagnostics(&outcome).contains(&format!("Slot/{slot}")), "client {i}: {outcome}");
            }
            other => panic!("client {i}: unexpected {other}: {}", r.text()),
        }
    }
    println!("100 clients / 10 slots: {booked} booked (201), {rejected} rejected (409)");
    assert_eq!(booked, SLOTS, "exactly one booking per slot");
    assert_eq!(rejected, CLIENTS - SLOTS);
    for slot in &w.slots {
        assert_eq!(winners.get(slot).map_or(0, Vec::len), 1, "Slot/{slot} winners: {winners:?}");
    }
    // The whole database: 10 booked Appointments, each slot in exactly one, all slots busy.
    let (slots, appointments) = assert_invariant(&s, &BTreeSet::new()).await;
    assert_eq!(appointments.len(), SLOTS, "rejected bookings must not be stored");
    assert!(appointments.values().all(|a| a["status"] == "booked"));
    let mut referenced: BTreeMap<String, usize> = BTreeMap::new();
    for a in appointments.values() {
        for sid in slot_ids(a) {
            *referenced.entry(sid).or_default() += 1;
        }
    }
    for slot in &w.slots {
        assert_eq!(referenced.get(slot), Some(&1), "Slot/{slot}");
        assert_eq!(slots[slot]["status"], "busy");
    }
    let winner_ids: BTreeSet<String> = winners.values().flatten().cloned().collect();
    assert_eq!(winner_ids, appointments.keys().cloned().collect(), "every 201 is stored, nothing else");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_holds_of_one_slot_have_one_winner_who_alone_can_book() {
    const CLIENTS: usize = 40;
    let s = Arc::new(TestServer::start().await);
    let w = setup(&s, 1).await;
    let slot = w.slots[0].clone();
    let barrier = Arc::new(Barrier::new(CLIENTS));
    let mut set = JoinSet::new();
    for i in 0..CLIENTS {
        let (s, barrier, slot) = (s.clone(), barrier.clone(), slot.clone());
        set.spawn(async move {
            barrier.wait().await;
            let r = hold(&s, &slot).await;
            (i, r)
        });
    }
    let results = join_all(set).await;
    let mut tokens = Vec::new();
    for (i, r) in &results {
        match r.code() {
            200 => tokens.push(token_of(&r.json())),
            409 => assert_eq!(param_resource(&r.json(), "slot")["status"], "busy-unavailable", "client {i}"),
            other => panic!("client {i}: unexpected {other}: {}", r.text()),
        }
    }
    println!("{CLIENTS} racing holds: {} held, {} rejected", tokens.len(), CLIENTS - tokens.len());
    assert_eq!(tokens.len(), 1, "exactly one hold wins");
    let token = tokens.pop().unwrap();

    // Now everybody tries to book it at once; only the holder's token works.
    let barrier = Arc::new(Barrier::new(CLIENTS));
    let mut set = JoinSet::new();
    for i in 0..CLIENTS {
        let (s, barrier, slot) = (s.clone(), barrier.clone(), slot.clone());
        let t = if i == 17 { token.clone() } else { format!("guess-{i}") };
        let patient = w.anna.clone();
        set.spawn(async move {
            barrier.wait().await;
            (i, book(&s, &appointment(&patient, &[&slot]), &[&t]).await)
        });
    }
    let results = join_all(set).await;
    for (i, r) in &results {
        let expected = if *i == 17 { 201 } else { 409 };
        assert_eq!(r.code(), expected, "client {i}: {}", r.text());
    }
    let (_, appointments) = assert_invariant(&s, &BTreeSet::new()).await;
    assert_eq!(appointments.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_overlapping_multi_slot_bookings_stay_atomic() {
    const CLIENTS: usize = 45;
    const SLOTS: usize = 10;
    let s = Arc::new(TestServer::start().await);
    let w = setup(&s, SLOTS).await;
    let barrier = Arc::new(Barrier::new(CLIENTS));
    let mut set = JoinSet::new();
    for i in 0..CLIENTS {
        let (s, barrier) = (s.clone(), barrier.clone());
        // Pairs (j, j+1) overlap their neighbours; triples every fifth client.
        let j = i % (SLOTS - 2);
        let mut wanted = vec![w.slots[j].clone(), w.slots[j + 1].clone()];
        if i % 5 == 0 {
            wanted.push(w.slots[j + 2].clone());
        }
        let patient = w.bert.clone();
        set.spawn(async move {
            let refs: Vec<&str> = wanted.iter().map(String::as_str).collect();
            let a = appointment(&patient, &refs);
            barrier.wait().await;
            let r = book(&s, &a, &[]).await;
            (i, wanted, r)
        });
    }
    let results = join_all(set).await;
    let mut taken: BTreeMap<String, String> = BTreeMap::new();
    let mut booked = 0;
    for (i, wanted, r) in &results {
        match r.code() {
            201 => {
                booked += 1;
                let appt = param_resource(&r.json(), "appointment");
                for sid in wanted {
                    assert!(
                        taken.insert(sid.clone(), id_of(&appt)).is_none(),
                        "client {i}: Slot/{sid} was acknowledged to two bookings"
                    );
                }
            }
            409 => {}
            other => panic!("client {i}: unexpected {other}: {}", r.text()),
        }
    }
    println!("{CLIENTS} overlapping multi-slot bookings: {booked} booked, {} rejected", CLIENTS - booked);
    assert!(booked >= 1);
    let (slots, appointments) = assert_invariant(&s, &BTreeSet::new()).await;
    assert_eq!(appointments.len(), booked, "rejected bookings must not be stored");
    for (sid, slot) in &slots {
        let expected = if taken.contains_key(sid) { "busy" } else { "free" };
        assert_eq!(slot["status"], expected, "Slot/{sid}: a failed multi-slot booking left a trace");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_repeats_of_one_booking_book_it_once() {
    const CLIENTS: usize = 20;
    let s = Arc::new(TestServer::start().await);
    let w = setup(&s, 1).await;
    let mut a = appointment(&w.anna, &[&w.slots[0]]);
    a["identifier"] = json!([{"system": "urn:termin:test:booking", "value": "retry-storm"}]);
    let barrier = Arc::new(Barrier::new(CLIENTS));
    let mut set = JoinSet::new();
    for i in 0..CLIENTS {
        let (s, barrier, a) = (s.clone(), barrier.clone(), a.clone());
        set.spawn(async move {
            barrier.wait().await;
            (i, book(&s, &a, &[]).await)
        });
    }
    let results = join_all(set).await;
    let mut ids = BTreeSet::new();
    let mut created = 0;
    for (i, r) in &results {
        match r.code() {
            201 => created += 1,
            200 => {}
            other => panic!("client {i}: a repeat of the same booking answered {other}: {}", r.text()),
        }
        ids.insert(id_of(&param_resource(&r.json(), "appointment")));
    }
    assert_eq!(created, 1, "exactly one 201; the repeats answer 200");
    assert_eq!(ids.len(), 1, "every answer names the same Appointment: {ids:?}");
    let (_, appointments) = assert_invariant(&s, &BTreeSet::new()).await;
    assert_eq!(appointments.len(), 1);
}

// ---------------------------------------------------------------------------------------------
// The storm
// ---------------------------------------------------------------------------------------------

const SEED: u64 = 0x7E12_311A_2026;
const TASKS: usize = 32;
const OPS_PER_TASK: usize = 70;
const MAIN_SLOTS: usize = 24;
const CONFIRM_SLOTS: usize = 6;

/// What one client believes at the end; exact, because only the client owning a hold token
/// or an Appointment ever uses it, and with a 30-minute hold duration no hold expires during
/// the test (it runs for seconds), so a hold ends only when its owner releases, books or
/// moves onto it.
#[derive(Default)]
struct ClientView {
    /// Live holds: slot id → token.
    holds: BTreeMap<String, String>,
    /// Active Appointments: id → current stored body.
    active: BTreeMap<String, Value>,
    /// Appointments this client cancelled.
    cancelled: BTreeSet<String>,
    /// (operation, status code) → count.
    counts: BTreeMap<(&'static str, u16), usize>,
}

/// Start and end of a storm slot (`slot-<i>` on the main schedule, `conf-<i>` after them).
fn times_of(slot: &str) -> (String, String) {
    match slot.strip_prefix("conf-") {
        Some(n) => slot_times(MAIN_SLOTS + n.parse::<usize>().unwrap()),
        None => slot_times(slot.strip_prefix("slot-").unwrap().parse().unwrap()),
    }
}

/// Points an Appointment at one slot, with start/end moved along.
fn move_to(body: &mut Value, slot: &str) {
    let (start, end) = times_of(slot);
    body["slot"] = json!([{"reference": format!("Slot/{slot}")}]);
    body["start"] = json!(start);
    body["end"] = json!(end);
}

fn is_confirm_slot(slot: &str) -> bool {
    slot.starts_with("conf-")
}

#[track_caller]
fn expect_code(op: &str, r: &Resp, allowed: &[u16]) {
    assert!(
        allowed.contains(&r.code()),
        "{op}: {} answered {}, expected one of {allowed:?}: {}",
        r.what(),
        r.code(),
        r.text()
    );
}

/// The status `$book` must answer for slots that can be taken: 202 on the confirmation
/// schedule, else 201.
fn booking_code(slots: &[&str]) -> u16 {
    if slots.iter().any(|s| is_confirm_slot(s)) { 202 } else { 201 }
}

async fn storm_client(s: Arc<TestServer>, slots: Arc<Vec<String>>, task: usize, barrier: Arc<Barrier>) -> ClientView {
    let mut rng = Lcg::new(SEED.wrapping_add(task as u64));
    let mut me = ClientView::default();
    let patient = if task.is_multiple_of(2) { "pat-anna" } else { "pat-bert" };
    barrier.wait().await;
    for _ in 0..OPS_PER_TASK {
        let roll = rng.below(100);
        let random_slot = slots[rng.below(slots.len())].clone();
        let own_hold = (!me.holds.is_empty()).then(|| {
            let k = rng.below(me.holds.len());
            me.holds.iter().nth(k).map(|(a, b)| (a.clone(), b.clone())).unwrap()
        });
        let own_appt = (!me.active.is_empty()).then(|| {
            let k = rng.below(me.active.len());
            me.active.iter().nth(k).map(|(a, b)| (a.clone(), b.clone())).unwrap()
        });
        // Operations on own holds / appointments fall back to taking something when the
        // client has none, so that most of the storm writes rather than reads.
        let roll = match roll {
            20..=33 if own_hold.is_none() => rng.below(20),
            63..=89 if own_appt.is_none() => 53 + rng.below(10),
            r => r,
        };
        let (op, code): (&'static str, u16) = match roll {
            // Hold a random slot, no token: won or lost.
            0..=19 => {
                let r = hold(&s, &random_slot).await;
                expect_code("hold", &r, &[200, 409]);
                if r.code() == 200 {
                    let token = token_of(&r.json());
                    assert!(me.holds.insert(random_slot.clone(), token).is_none(), "held Slot/{random_slot} twice");
                }
                ("hold", r.code())
            }
            // Renew an own hold: must succeed with the same token.
            20..=25 if own_hold.is_some() => {
                let (slot, token) = own_hold.unwrap();
                let r = s.post("Slot/$hold", &with_token(hold_request(&slot, "busy-tentative"), &token)).await;
                expect_code("renew own hold", &r, &[200]);
                assert_eq!(token_of(&r.json()), token, "renewal changed the token");
                ("renew", 200)
            }
            // Release an own hold: must succeed.
            26..=33 if own_hold.is_some() => {
                let (slot, token) = own_hold.unwrap();
                let r = if rng.chance(50) {
                    release(&s, &slot, Some(&token)).await
                } else {
                    post_with_tokens(&s, "Slot/$hold", &hold_request(&slot, "free"), &[&token]).await
                };
                expect_code("release own hold", &r, &[200]);
                assert_eq!(param_resource(&r.json(), "slot")["status"], "free");
                me.holds.remove(&slot);
                ("release", 200)
            }
            // Release a random slot without a token: a no-op on a free slot, else rejected.
            34..=38 => {
                let r = release(&s, &random_slot, None).await;
                expect_code("release without token", &r, &[200, 409]);
                if r.code() == 200 {
                    assert_eq!(param_resource(&r.json(), "slot")["status"], "free");
                }
                ("release-foreign", r.code())
            }
            // Book an own held slot with its token: must succeed.
            39..=52 if own_hold.is_some() => {
                let (slot, token) = own_hold.unwrap();
                let a = appointment(patient, &[&slot]);
                let r = if rng.chance(50) {
                    book(&s, &a, &[&token]).await
                } else {
                    post_with_tokens(&s, "Appointment/$book", &book_request(&a, &[]), &[&token]).await
                };
                let expected = booking_code(&[&slot]);
                expect_code("book own held slot", &r, &[expected]);
                let appt = param_resource(&r.json(), "appointment");
                me.holds.remove(&slot);
                me.active.insert(id_of(&appt), appt);
                ("book-held", expected)
            }
            // Book a random slot (sometimes two adjacent ones) without a token.
            39..=62 => {
                let mut wanted = vec![random_slot.clone()];
                let pos = slots.iter().position(|x| *x == random_slot).unwrap();
                if rng.chance(20) && pos + 1 < slots.len() {
                    wanted.push(slots[pos + 1].clone());
                }
                let refs: Vec<&str> = wanted.iter().map(String::as_str).collect();
                let r = book(&s, &appointment(patient, &refs), &[]).await;
                let expected = booking_code(&refs);
                expect_code("book", &r, &[expected, 409]);
                let appt = param_resource(&r.json(), "appointment");
                if r.code() == 409 {
                    assert_eq!(appt["status"], "cancelled");
                } else {
                    for w in &wanted {
                        assert!(!me.holds.contains_key(w), "booked own held Slot/{w} without the token");
                    }
                    me.active.insert(id_of(&appt), appt);
                }
                ("book", r.code())
            }
            // Staff confirm a pending appointment, or the client cancels one: must succeed.
            63..=74 if own_appt.is_some() => {
                let (id, mut body) = own_appt.unwrap();
                if body["status"] == "pending" && rng.chance(50) {
                    body["status"] = json!("booked");
                    let r = s.put(&format!("Appointment/{id}"), &body).await;
                    expect_code("confirm", &r, &[200]);
                    me.active.insert(id, r.json());
                    ("confirm", 200)
                } else {
                    body["status"] = json!(if rng.chance(80) { "cancelled" } else { "entered-in-error" });
                    let r = s.put(&format!("Appointment/{id}"), &body).await;
                    expect_code("cancel", &r, &[200]);
                    assert!(r.json()["cancellationDate"].is_string());
                    me.active.remove(&id);
                    me.cancelled.insert(id);
                    ("cancel", 200)
                }
            }
            // Postpone onto an own held slot with its token (header): must succeed.
            75..=80 if own_appt.is_some() && own_hold.is_some() => {
                let (id, mut body) = own_appt.unwrap();
                let (slot, token) = own_hold.unwrap();
                move_to(&mut body, &slot);
                body["extension"] = json!([{"url": POSTPONEMENT_REASON, "valueCodeableConcept": {"text": "storm"}}]);
                let r = put_with_tokens(&s, &format!("Appointment/{id}"), &body, &[&token]).await;
                expect_code("postpone onto own hold", &r, &[200]);
                me.holds.remove(&slot);
                me.active.insert(id, r.json());
                ("postpone-held", 200)
            }
            // Postpone to a random slot without a token: moved, or nothing changes (409).
            75..=89 if own_appt.is_some() => {
                let (id, mut body) = own_appt.unwrap();
                if slot_ids(&body).contains(&random_slot) || me.holds.contains_key(&random_slot) {
                    let r = s.get(&format!("Appointment/{id}")).await;
                    expect_code("read own appointment", &r, &[200]);
                    assert_eq!(r.json(), body, "Appointment/{id} changed behind its owner's back");
                    ("read-appointment", 200)
                } else {
                    move_to(&mut body, &random_slot);
                    let r = s.put(&format!("Appointment/{id}"), &body).await;
                    expect_code("postpone", &r, &[200, 409]);
                    if r.code() == 200 {
                        me.active.insert(id, r.json());
                    }
                    ("postpone", r.code())
                }
            }
            // Read a slot (and anything whose precondition above did not hold).
            _ => {
                let r = s.get(&format!("Slot/{random_slot}")).await;
                expect_code("read slot", &r, &[200]);
                let status = r.json()["status"].as_str().unwrap_or_default().to_string();
                assert!(["free", "busy", "busy-tentative"].contains(&status.as_str()), "Slot/{random_slot}: {status}");
                if me.holds.contains_key(&random_slot) {
                    assert_eq!(status, "busy-tentative", "own live hold on Slot/{random_slot} reads {status}");
                }
                if me.active.values().any(|a| slot_ids(a).contains(&random_slot)) {
                    assert_eq!(status, "busy", "Slot/{random_slot} of an own active appointment reads {status}");
                }
                ("read", 200)
            }
        };
        *me.counts.entry((op, code)).or_default() += 1;
    }
    me
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn storm_of_mixed_operations_keeps_the_invariant() {
    // Long holds: none expires while the storm runs (seconds), so the clients know exactly
    // which holds are live at the end and "free iff no live hold" can be checked exactly.
    let s = Arc::new(TestServer::start_with(ServerOptions::new().flag("--hold-duration", "30m")).await);
    let w = setup(&s, MAIN_SLOTS).await;
    put_resource(&s, &schedule_resource("sch-confirm", true, true)).await;
    let mut slots = w.slots.clone();
    for i in 0..CONFIRM_SLOTS {
        let id = format!("conf-{i}");
        put_resource(&s, &slot_resource(&id, "sch-confirm", MAIN_SLOTS + i, "free")).await;
        slots.push(id);
    }
    let slots = Arc::new(slots);
    let barrier = Arc::new(Barrier::new(TASKS));
    let mut set = JoinSet::new();
    for task in 0..TASKS {
        set.spawn(storm_client(s.clone(), slots.clone(), task, barrier.clone()));
    }
    let views = join_all(set).await;

    // Totals.
    let mut counts: BTreeMap<(&str, u16), usize> = BTreeMap::new();
    for v in &views {
        for (k, n) in &v.counts {
            *counts.entry(*k).or_default() += n;
        }
    }
    let total: usize = counts.values().sum();
    println!("storm (seed {SEED:#x}, {TASKS} clients, {} slots): {total} operations", slots.len());
    for ((op, code), n) in &counts {
        println!("  {op:<18} {code}: {n}");
    }
    assert!(total >= 2000, "only {total} operations");
    for op in ["hold", "book", "postpone"] {
        assert!(counts.get(&(op, 409)).is_some_and(|n| *n > 0), "no conflicts for {op}: the storm did not contend");
    }
    for (op, code) in [("hold", 200), ("book-held", 201), ("cancel", 200), ("postpone", 200), ("release", 200)] {
        assert!(counts.get(&(op, code)).is_some_and(|n| *n > 0), "no {op} {code} in the storm");
    }

    // What the clients were told, merged.
    let mut live_holds: BTreeSet<String> = BTreeSet::new();
    let mut active: BTreeMap<String, Value> = BTreeMap::new();
    let mut cancelled: BTreeSet<String> = BTreeSet::new();
    for v in &views {
        for slot in v.holds.keys() {
            assert!(live_holds.insert(slot.clone()), "two clients believe they hold Slot/{slot}");
        }
        for (id, a) in &v.active {
            assert!(active.insert(id.clone(), a.clone()).is_none());
        }
        cancelled.extend(v.cancelled.iter().cloned());
    }

    // 1. The structural invariant over the whole database.
    let (db_slots, db_appointments) = assert_invariant(&s, &live_holds).await;
    assert_eq!(db_slots.len(), slots.len());

    // 2. Every acknowledged booking (201/202) is stored, active unless this test cancelled it,
    //    with the slots its owner last moved it to; nothing else is stored.
    let acknowledged: BTreeSet<String> = active.keys().chain(cancelled.iter()).cloned().collect();
    let stored: BTreeSet<String> = db_appointments.keys().cloned().collect();
    assert_eq!(stored, acknowledged, "stored Appointments differ from the acknowledged bookings");
    for (id, a) in &active {
        let db = &db_appointments[id];
        assert!(is_active(db), "Appointment/{id} was acknowledged and never cancelled, but is {}", db["status"]);
        assert_eq!(db["status"], a["status"], "Appointment/{id}");
        assert_eq!(slot_ids(db), slot_ids(a), "Appointment/{id} slots");
        assert_eq!(version_id(db), version_id(a), "Appointment/{id} changed behind its owner's back");
    }
    for id in &cancelled {
        let status = db_appointments[id]["status"].as_str().unwrap_or_default();
        assert!(matches!(status, "cancelled" | "entered-in-error"), "cancelled Appointment/{id} is {status}");
    }

    // 3. Each slot's status is exactly what the clients' view implies.
    let occupied: BTreeSet<String> = active.values().flat_map(slot_ids).collect();
    for (sid, slot) in &db_slots {
        let expected = if occupied.contains(sid) {
            "busy"
        } else if live_holds.contains(sid) {
            "busy-tentative"
        } else {
            "free"
        };
        assert_eq!(slot["status"], expected, "Slot/{sid}");
    }
    // 4. The holds really are live and owned: a stranger cannot take a held slot, while a
    //    free one can still be held.
    for sid in &live_holds {
        assert_eq!(hold(&s, sid).await.code(), 409, "Slot/{sid} should be held");
    }
    if let Some(free) = db_slots.iter().find(|(_, v)| v["status"] == "free").map(|(k, _)| k.clone()) {
        hold(&s, &free).await.expect_status(200);
    }
    println!(
        "end state: {} busy, {} held, {} free; {} active and {} cancelled appointments",
        occupied.len(),
        live_holds.len(),
        db_slots.len() - occupied.len() - live_holds.len(),
        active.len(),
        cancelled.len()
    );
}
