//! Several `termin` nodes and crashes (issue 6), over HTTP against the real binary:
//! * three nodes on one PostgreSQL database, 200 clients spread over them running the seeded
//!   scheduling storm on 50 slots; a fixed number of operations bounds the run without any
//!   timing. Afterwards the whole database must satisfy the scheduling invariant and agree with
//!   what every client was told, whichever node told it, and every node must read the same;
//! * a node killed with SIGKILL in the middle of a booking load (on either backend): after a
//!   restart every booking it acknowledged (201/202) is stored and the invariant holds.
//!
//! No sleeps: clients start at a barrier, and the kill waits for a count of acknowledgements.

mod scheduling_support;
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use scheduling_support::storm::*;
use scheduling_support::*;
use serde_json::Value;
use support::*;
use tokio::sync::{Barrier, Notify};
use tokio::task::JoinSet;

const NODES: usize = 3;
const CLIENTS: usize = 200;
const SLOTS: usize = 50;
const OPS_PER_CLIENT: usize = 12;
const SEED: u64 = 0x7E12_0006_2026;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_on_one_database_keep_the_scheduling_invariant() {
    if Backend::from_env() != Backend::Postgres {
        println!("skipped: nodes share a PostgreSQL database; this runs with TERMIN_TEST_BACKEND=postgres");
        return;
    }
    // Long holds: none expires during the run, so every client knows exactly what it holds.
    let options = ServerOptions::new().flag("--hold-duration", "30m");
    let first = TestServer::start_with(options.clone()).await;
    let (second, third) = tokio::join!(first.another_node(options.clone()), first.another_node(options));
    let nodes = [Arc::new(first), Arc::new(second), Arc::new(third)];
    let world = setup(&nodes[0], SLOTS).await;
    let slots = Arc::new(world.slots);
    let barrier = Arc::new(Barrier::new(CLIENTS));
    let mut set = JoinSet::new();
    for client in 0..CLIENTS {
        let node = nodes[client % NODES].clone();
        set.spawn(storm_client(node, slots.clone(), client, SEED, OPS_PER_CLIENT, barrier.clone()));
    }
    let views = join_all(set).await;

    let mut counts: BTreeMap<(&str, u16), usize> = BTreeMap::new();
    for view in &views {
        for (key, n) in &view.counts {
            *counts.entry(*key).or_default() += n;
        }
    }
    let total: usize = counts.values().sum();
    let conflicts: usize = counts.iter().filter(|((_, code), _)| *code == 409).map(|(_, n)| n).sum();
    println!(
        "{NODES} nodes, {CLIENTS} clients, {SLOTS} slots (seed {SEED:#x}): {total} operations, \
         {} succeeded, {conflicts} conflicts (409)",
        total - conflicts
    );
    for ((op, code), n) in &counts {
        println!("  {op:<18} {code}: {n}");
    }
    assert_eq!(total, CLIENTS * OPS_PER_CLIENT);
    for op in ["hold", "book"] {
        assert!(counts.get(&(op, 409)).is_some_and(|n| *n > 0), "no conflicts for {op}: the nodes did not contend");
    }

    check_storm_end_state(&nodes[0], &slots, &views).await;
    // Every node reads the same database (the check above held one more slot through node 0).
    let slots_seen = all_of_type(&nodes[0], "Slot").await;
    let appointments_seen = all_of_type(&nodes[0], "Appointment").await;
    for node in &nodes[1..] {
        assert_eq!(all_of_type(node, "Slot").await, slots_seen, "nodes disagree on the Slots");
        assert_eq!(all_of_type(node, "Appointment").await, appointments_seen, "nodes disagree on the Appointments");
    }
}

const CRASH_CLIENTS: usize = 16;
const CRASH_SLOTS: usize = 48;
/// The node is killed once this many bookings have been acknowledged: mid-load.
const KILL_AFTER: usize = 12;

/// What one booking request of the crash load came to.
enum Answer {
    /// 201/202: the Appointment the server acknowledged.
    Acknowledged(String),
    Rejected,
    /// The connection died with the node: stored or not, nobody knows.
    Unknown,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bookings_acknowledged_before_a_crash_survive_it() {
    let mut node = TestServer::start().await;
    let world = setup(&node, CRASH_SLOTS).await;
    let base = node.base();
    let client = node.unpooled_client();
    let acknowledged = Arc::new(AtomicUsize::new(0));
    let enough = Arc::new(Notify::new());
    let barrier = Arc::new(Barrier::new(CRASH_CLIENTS));
    let mut set = JoinSet::new();
    for c in 0..CRASH_CLIENTS {
        // Two clients want each slot, so the load has conflicts as well as bookings.
        let wanted: Vec<String> = (0..CRASH_SLOTS / CRASH_CLIENTS * 2)
            .map(|k| world.slots[(c / 2 + k * CRASH_CLIENTS / 2) % CRASH_SLOTS].clone())
            .collect();
        let (base, client, acknowledged, enough, barrier) =
            (base.clone(), client.clone(), acknowledged.clone(), enough.clone(), barrier.clone());
        let patient = world.anna.clone();
        set.spawn(async move {
            barrier.wait().await;
            let mut answers = Vec::new();
            for slot in wanted {
                let request = book_request(&appointment(&patient, &[&slot]), &[]);
                let sent = client
                    .post(format!("{base}/Appointment/$book"))
                    .header("content-type", FHIR_JSON)
                    .body(serde_json::to_vec(&request).unwrap())
                    .send()
                    .await;
                let answer = match sent {
                    Ok(response) => match (response.status().as_u16(), response.json::<Value>().await) {
                        (201 | 202, Ok(body)) => Answer::Acknowledged(id_of(&param_resource(&body, "appointment"))),
                        (409, Ok(_)) => Answer::Rejected,
                        (_, Err(_)) => Answer::Unknown,
                        (other, Ok(body)) => panic!("Slot/{slot}: unexpected {other}: {body}"),
                    },
                    Err(_) => Answer::Unknown,
                };
                let gone = matches!(answer, Answer::Unknown);
                if matches!(answer, Answer::Acknowledged(_)) && acknowledged.fetch_add(1, Ordering::SeqCst) + 1 == KILL_AFTER {
                    enough.notify_one();
                }
                answers.push((slot, answer));
                if gone {
                    break;
                }
            }
            answers
        });
    }
    enough.notified().await;
    node.kill();
    let answers: Vec<(String, Answer)> = join_all(set).await.into_iter().flatten().collect();
    let unknown = answers.iter().filter(|(_, a)| matches!(a, Answer::Unknown)).count();
    let rejected = answers.iter().filter(|(_, a)| matches!(a, Answer::Rejected)).count();
    let acked: BTreeMap<String, String> = answers
        .iter()
        .filter_map(|(slot, a)| match a {
            Answer::Acknowledged(id) => Some((id.clone(), slot.clone())),
            _ => None,
        })
        .collect();
    println!(
        "crash under load ({:?}): {} acknowledged, {rejected} rejected, {unknown} cut off by the kill",
        Backend::from_env(),
        acked.len()
    );
    assert!(acked.len() >= KILL_AFTER);

    node.restart().await;
    let (slots, appointments) = assert_invariant(&node, &BTreeSet::new()).await;
    for (id, slot) in &acked {
        let stored = appointments
            .get(id)
            .unwrap_or_else(|| panic!("Appointment/{id} was acknowledged before the crash but is gone"));
        assert!(is_active(stored), "Appointment/{id}: {}", stored["status"]);
        assert_eq!(slot_ids(stored), std::slice::from_ref(slot), "Appointment/{id}");
        assert_eq!(slots[slot]["status"], "busy", "Slot/{slot}");
    }
    // Anything else stored was cut off mid-request, never rejected.
    assert!(appointments.len() <= acked.len() + unknown, "rejected bookings were stored");
    // The restarted node books what is still free.
    if let Some((free, _)) = slots.iter().find(|(_, s)| s["status"] == "free") {
        book_ok(&node, &appointment(&world.anna, &[free]), &[]).await;
    }
}
