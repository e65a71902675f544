//! The seeded scheduling storm shared by the single-server storm (`scheduling_concurrency.rs`)
//! and the cluster tests (`cluster.rs`): clients that hold, renew, release, book, cancel,
//! confirm and postpone at random, each knowing exactly what it owns, and the check of the
//! whole database against what they were told.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde_json::{Value, json};
use tokio::sync::Barrier;
use tokio::task::JoinSet;

use super::*;

/// Collects the results of all tasks, re-raising the first panic.
pub async fn join_all<T: 'static>(mut set: JoinSet<T>) -> Vec<T> {
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

/// What one client believes at the end; exact, because only the client owning a hold token
/// or an Appointment ever uses it, and with a 30-minute hold duration no hold expires during
/// the test (it runs for seconds), so a hold ends only when its owner releases, books or
/// moves onto it.
#[derive(Default)]
pub struct ClientView {
    /// Live holds: slot id → token.
    pub holds: BTreeMap<String, String>,
    /// Active Appointments: id → current stored body.
    pub active: BTreeMap<String, Value>,
    /// Appointments this client cancelled.
    pub cancelled: BTreeSet<String>,
    /// (operation, status code) → count.
    pub counts: BTreeMap<(&'static str, u16), usize>,
}

/// Start and end of a storm slot: `slot-<i>` on the main schedule or `conf-<i>` on the
/// confirmation schedule, `i` being its half hour (see [`slot_times`]).
fn times_of(slot: &str) -> (String, String) {
    let index = slot.strip_prefix("conf-").or_else(|| slot.strip_prefix("slot-")).unwrap();
    slot_times(index.parse().unwrap())
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

/// One storm client: `ops` seeded operations (seed + task) on `s`, after the barrier.
pub async fn storm_client(
    s: Arc<TestServer>,
    slots: Arc<Vec<String>>,
    task: usize,
    seed: u64,
    ops: usize,
    barrier: Arc<Barrier>,
) -> ClientView {
    let mut rng = Lcg::new(seed.wrapping_add(task as u64));
    let mut me = ClientView::default();
    let patient = if task.is_multiple_of(2) { "pat-anna" } else { "pat-bert" };
    // Every request comes from the test's one address; a client that shows none of its hold
    // tokens presents this one of its own, so it is not taken for the holder of others' holds.
    let me_token = format!("storm-client-{task}");
    barrier.wait().await;
    for _ in 0..ops {
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
            // Hold a random slot: won or lost.
            0..=19 => {
                let r = post_with_tokens(&s, "Slot/$hold", &hold_request(&random_slot, "busy-tentative"), &[&me_token]).await;
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
            // Release a random slot without its hold token: a no-op on a free slot, else rejected.
            34..=38 => {
                let r = release(&s, &random_slot, Some(&me_token)).await;
                expect_code("release without hold token", &r, &[200, 409]);
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
            // Book a random slot (sometimes two adjacent ones) without a hold token.
            39..=62 => {
                let mut wanted = vec![random_slot.clone()];
                let pos = slots.iter().position(|x| *x == random_slot).unwrap();
                // Two slots of one booking are of one schedule (issue 12).
                if rng.chance(20) && pos + 1 < slots.len() && is_confirm_slot(&slots[pos + 1]) == is_confirm_slot(&random_slot) {
                    wanted.push(slots[pos + 1].clone());
                }
                let refs: Vec<&str> = wanted.iter().map(String::as_str).collect();
                let r = book(&s, &appointment(patient, &refs), &[&me_token]).await;
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
            // Postpone to a random slot without a hold token: moved, or nothing changes (409).
            75..=89 if own_appt.is_some() => {
                let (id, mut body) = own_appt.unwrap();
                if slot_ids(&body).contains(&random_slot) || me.holds.contains_key(&random_slot) {
                    let r = s.get(&format!("Appointment/{id}")).await;
                    expect_code("read own appointment", &r, &[200]);
                    assert_eq!(r.json(), body, "Appointment/{id} changed behind its owner's back");
                    ("read-appointment", 200)
                } else {
                    move_to(&mut body, &random_slot);
                    let r = put_with_tokens(&s, &format!("Appointment/{id}"), &body, &[&me_token]).await;
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

/// Checks the database against what the storm's clients were told: the structural invariant,
/// every acknowledged booking (201/202) stored as its owner last left it and nothing else,
/// each slot's status, and that the holds are live.
pub async fn check_storm_end_state(s: &TestServer, slots: &[String], views: &[ClientView]) {
    // What the clients were told, merged.
    let mut live_holds: BTreeSet<String> = BTreeSet::new();
    let mut active: BTreeMap<String, Value> = BTreeMap::new();
    let mut cancelled: BTreeSet<String> = BTreeSet::new();
    for v in views {
        for slot in v.holds.keys() {
            assert!(live_holds.insert(slot.clone()), "two clients believe they hold Slot/{slot}");
        }
        for (id, a) in &v.active {
            assert!(active.insert(id.clone(), a.clone()).is_none());
        }
        cancelled.extend(v.cancelled.iter().cloned());
    }

    // 1. The structural invariant over the whole database.
    let (db_slots, db_appointments) = assert_invariant(s, &live_holds).await;
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
        assert_eq!(hold_as_other(s, sid).await.code(), 409, "Slot/{sid} should be held");
    }
    if let Some(free) = db_slots.iter().find(|(_, v)| v["status"] == "free").map(|(k, _)| k.clone()) {
        hold(s, &free).await.expect_status(200);
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
