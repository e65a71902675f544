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

use scheduling_support::storm::*;
use scheduling_support::*;
use serde_json::json;
use support::*;
use tokio::sync::Barrier;
use tokio::task::JoinSet;

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
            // Each racer is its own client: it presents a token of its own.
            let me = format!("racer-{i}");
            let r = post_with_tokens(&s, "Slot/$hold", &hold_request(&slot, "busy-tentative"), &[&me]).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn storm_of_mixed_operations_keeps_the_invariant() {
    // Long holds: none expires while the storm runs (seconds), so the clients know exactly
    // which holds are live at the end and "free iff no live hold" can be checked exactly.
    let s = Arc::new(TestServer::start_with(ServerOptions::new().flag("--hold-duration", "30m")).await);
    let w = setup(&s, MAIN_SLOTS).await;
    put_resource(&s, &schedule_resource("sch-confirm", true, true)).await;
    let mut slots = w.slots.clone();
    for i in 0..CONFIRM_SLOTS {
        let id = format!("conf-{}", MAIN_SLOTS + i);
        put_resource(&s, &slot_resource(&id, "sch-confirm", MAIN_SLOTS + i, "free")).await;
        slots.push(id);
    }
    let slots = Arc::new(slots);
    let barrier = Arc::new(Barrier::new(TASKS));
    let mut set = JoinSet::new();
    for task in 0..TASKS {
        set.spawn(storm_client(s.clone(), slots.clone(), task, SEED, OPS_PER_TASK, barrier.clone()));
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

    check_storm_end_state(&s, &slots, &views).await;
}
