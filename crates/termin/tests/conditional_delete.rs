//! Conditional delete (`DELETE [type]?criteria`) under each `--conditional-delete` setting,
//! with the scheduling rules guarding Slots as on a delete by id.

mod scheduling_support;
mod support;

use scheduling_support::*;
use serde_json::Value;
use support::*;

const SYS: &str = "urn:oid:1.2.40.0.10.1.4.3.1";

async fn conditional_delete_code(s: &TestServer) -> Value {
    let cs = s.get("metadata").await.expect_status(200).json();
    let slot = cs["rest"][0]["resource"].as_array().unwrap().iter().find(|r| r["type"] == "Slot").unwrap().clone();
    slot["conditionalDelete"].clone()
}

#[tokio::test]
async fn single_mode_deletes_the_one_match_and_refuses_several() {
    let s = TestServer::start().await;
    assert_eq!(conditional_delete_code(&s).await, "single");
    let one = id_of(&s.create(&patient(SYS, "1", "Eins")).await);
    let twin_a = id_of(&s.create(&patient(SYS, "2", "Zwei")).await);
    let twin_b = id_of(&s.create(&patient(SYS, "2", "Zwilling")).await);

    s.delete(&format!("Patient?identifier={SYS}|1")).await.expect_status(204);
    s.get(&format!("Patient/{one}")).await.expect_status(410);

    let outcome = s.delete(&format!("Patient?identifier={SYS}|2")).await.outcome(412);
    assert_eq!(outcome["issue"][0]["code"], "multiple-matches", "{outcome}");
    s.get(&format!("Patient/{twin_a}")).await.expect_status(200);
    s.get(&format!("Patient/{twin_b}")).await.expect_status(200);

    // Nothing matching deletes nothing, as a delete of an absent id does.
    s.delete(&format!("Patient?identifier={SYS}|none")).await.expect_status(204);
    // Without criteria it would be "delete everything": refused.
    s.delete("Patient").await.outcome(400);
    let unknown = s.delete("Patient?no-such-param=1").await.outcome(400);
    assert!(unknown.to_string().contains("no-such-param"), "{unknown}");
    assert_eq!(s.type_history_len("Patient").await, 4, "three creates and one delete");
}

#[tokio::test]
async fn multiple_mode_deletes_every_match_unless_a_slot_is_held_or_booked() {
    let s = TestServer::start_with(ServerOptions::new().flag("--conditional-delete", "multiple")).await;
    assert_eq!(conditional_delete_code(&s).await, "multiple");
    let w = setup(&s, 3).await;
    let token = hold_ok(&s, &w.slots[0]).await;
    let by_schedule = format!("Slot?schedule=Schedule/{}", w.schedule);

    // One held Slot among the matches: nothing is deleted.
    s.delete(&by_schedule).await.outcome(409);
    for slot in &w.slots {
        s.get(&format!("Slot/{slot}")).await.expect_status(200);
    }

    release(&s, &w.slots[0], Some(&token)).await.expect_status(200);
    s.delete(&by_schedule).await.expect_status(204);
    for slot in &w.slots {
        s.get(&format!("Slot/{slot}")).await.expect_status(410);
    }
    assert!(s.all_entries(&by_schedule).await.is_empty());
}

#[tokio::test]
async fn off_mode_refuses_conditional_deletes() {
    let s = TestServer::start_with(ServerOptions::new().flag("--conditional-delete", "off")).await;
    assert_eq!(conditional_delete_code(&s).await, "not-supported");
    let id = id_of(&s.create(&patient(SYS, "3", "Drei")).await);
    s.delete(&format!("Patient?identifier={SYS}|3")).await.outcome(405);
    s.get(&format!("Patient/{id}")).await.expect_status(200);
    // Deleting by id is not affected.
    s.delete(&format!("Patient/{id}")).await.expect_status(204);
}
