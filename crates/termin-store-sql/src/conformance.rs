//! The store conformance kit: one suite of store-level tests that every backend must pass
//! (always compiled, so that the backends' tests and the server's build the same crate),
//! written against the `termin-store` traits only. A backend runs it with
//! [`store_conformance!`](crate::store_conformance) and a [`Fixture`] that opens a store on an
//! empty database (or says why it cannot here, and the test is skipped).

use jiff::Timestamp;
use termin_fhir::ResourceType;
use termin_fhir::geo::{Near, Point};
use termin_store::{
    AppointmentId, AuditEntry, AuditLink, AuditRole, ChangeKind, Comparison, Condition, DateIndex, DomainEvent, Filter,
    HistoryRequest, Include, IndexEntries, IndexKind, Keyset, MailOutcome, MailStore, NewVersion, OutgoingMail,
    PositionIndex, RangeEnd, RangePoint, RangeTest, ReferenceIndex, ReferenceMatch, RequestContext, ResourceStore,
    ResourceVersion, SearchPage, SearchRequest, SlotHold, SlotId, SortKey, SortParam, StoreError, SystemMatch,
    TokenIndex, TokenMatch, TypeHistory,
};

/// A store on an empty database, for one test.
pub trait Fixture: Sized {
    /// `None` when the backend cannot run here (the reason printed): the test is skipped.
    fn open() -> impl Future<Output = Option<Self>>;

    fn store(&self) -> &dyn ResourceStore;

    /// Releases the database; every unit of work on it has been dropped.
    fn close(self) -> impl Future<Output = ()>;
}

/// Generates one `#[tokio::test]` per case of the kit, each on a fresh `$fixture`.
#[macro_export]
macro_rules! store_conformance {
    ($fixture:ty) => {
        $crate::store_conformance!(@cases $fixture; history_pages_newest_first, versions_stay_readable, a_version_is_written_once, audit_events_are_appended_read_and_searched, a_resource_may_index_many_rows, holds_are_placed_renewed_listed_and_released, a_slot_is_booked_once, many_are_written_and_read_at_once, outbox_events_follow_their_append_order, overlapping_periods_are_found, writes_are_visible_after_commit_only, token_conditions_match_system_and_code, keyset_pages_follow_the_sort_both_ways, chains_references_dates_and_has, token_rows_hold_only_inside_their_validity_window, includes_follow_references_and_iterate, absolute_references_are_local_only_under_the_server_base, the_index_can_be_rebuilt_resource_by_resource, backwards_cursor_from_the_first_row_finds_nothing_before, driven_searches_page_in_sort_order, reference_and_date_searches_page_through_the_projection, identifier_references_are_resolved_for_the_projection, positions_are_found_near_a_point_nearest_first);
    };
    (@cases $fixture:ty; $($case:ident),*) => {
        $(
            #[tokio::test]
            async fn $case() {
                let Some(fixture) = <$fixture as $crate::conformance::Fixture>::open().await else {
                    return;
                };
                $crate::conformance::$case($crate::conformance::Fixture::store(&fixture)).await;
                $crate::conformance::Fixture::close(fixture).await;
            }
        )*
    };
}

/// The context of the kit's calls.
pub fn ctx() -> RequestContext {
    RequestContext::anonymous("test")
}

/// Version `version` of Patient `id`, its identifier `urn:sys|identifier` indexed.
pub fn patient(id: &str, version: u64, identifier: Option<&str>) -> NewVersion {
    let tokens =
        identifier.map(|code| TokenIndex::code("identifier", Some("urn:sys".into()), code)).into_iter().collect();
    NewVersion {
        version: ResourceVersion {
            resource_type: ResourceType::Patient,
            id: id.into(),
            version,
            last_updated: Timestamp::now(),
            body: Some(format!(r#"{{"resourceType":"Patient","id":"{id}","v":{version}}}"#)),
        },
        change: if version == 1 { ChangeKind::Create } else { ChangeKind::Update },
        index: IndexEntries { tokens, ..IndexEntries::default() },
    }
}

pub fn request(resource_type: ResourceType, conditions: Vec<Condition>) -> SearchRequest {
    SearchRequest {
        resource_type,
        filter: Filter { conditions, now: Timestamp::now(), server_base: Some("http://termin.test/fhir".into()) },
        sort: Vec::new(),
        count: 10,
        page: None,
        total: true,
        includes: Vec::new(),
        revincludes: Vec::new(),
    }
}

pub fn version(resource_type: ResourceType, id: &str, index: IndexEntries) -> NewVersion {
    NewVersion {
        version: ResourceVersion {
            resource_type,
            id: id.into(),
            version: 1,
            last_updated: Timestamp::now(),
            body: Some(format!(r#"{{"resourceType":"{resource_type}","id":"{id}"}}"#)),
        },
        change: ChangeKind::Create,
        index,
    }
}

pub fn at(text: &str) -> Timestamp {
    text.parse().unwrap()
}

fn date(param: &str, low: &str, high: &str) -> DateIndex {
    DateIndex { param: param.into(), low: Some(at(low)), high: Some(at(high)) }
}

fn reference(param: &str, target: &str, base: Option<&str>) -> ReferenceIndex {
    let (target_type, target_id) = target.split_once('/').unwrap();
    ReferenceIndex {
        param: param.into(),
        target_type: Some(target_type.into()),
        target_id: Some(target_id.into()),
        base: base.map(str::to_owned),
        ..ReferenceIndex::default()
    }
}

/// Slots whose `start` is at or after `instant`.
fn starts_from(instant: &str) -> Condition {
    Condition::RangeAny {
        param: "start".into(),
        kind: IndexKind::Date,
        alternatives: vec![RangeTest::Bound {
            end: RangeEnd::Low,
            comparison: Comparison::GreaterOrEqual,
            point: RangePoint::Instant(Some(at(instant))),
        }],
    }
}

/// Writes `versions` in one unit of work.
pub async fn write_all(store: &dyn ResourceStore, versions: Vec<NewVersion>) {
    let mut tx = store.begin_write(&ctx()).await.unwrap();
    for v in versions {
        tx.write(v).await.unwrap();
    }
    tx.commit().await.unwrap();
}

pub fn ids(page: &SearchPage) -> Vec<String> {
    page.matches.iter().map(|m| m.id.clone()).collect()
}

/// Slots s0..s9 starting an hour apart, on schedules a (even) and b (odd).
pub async fn slots(store: &dyn ResourceStore) {
    let mut versions = Vec::new();
    for i in 0..10 {
        let start = format!("2026-04-07T{:02}:00:00Z", 8 + i);
        let end = format!("2026-04-07T{:02}:00:01Z", 8 + i);
        let schedule = if i % 2 == 0 { "Schedule/a" } else { "Schedule/b" };
        versions.push(version(
            ResourceType::Slot,
            &format!("s{i}"),
            IndexEntries {
                dates: vec![date("start", &start, &end)],
                references: vec![reference("schedule", schedule, None)],
                tokens: vec![TokenIndex::code("status", None, if i < 5 { "free" } else { "busy" })],
                ..IndexEntries::default()
            },
        ));
    }
    versions.push(version(
        ResourceType::Schedule,
        "a",
        IndexEntries { references: vec![reference("actor", "Practitioner/p", None)], ..IndexEntries::default() },
    ));
    versions.push(version(ResourceType::Schedule, "b", IndexEntries::default()));
    write_all(store, versions).await;
}

pub async fn history_pages_newest_first(store: &dyn ResourceStore) {
    for v in 1..=5 {
        write_all(store, vec![patient("p1", v, None)]).await;
    }
    write_all(store, vec![patient("p2", 1, None)]).await;
    let mut request = HistoryRequest::of_type(ResourceType::Patient, Some("p1".into()), 2);
    let mut versions = Vec::new();
    loop {
        let page = store.history(&ctx(), &request).await.unwrap();
        assert_eq!(page.total, 5);
        versions.extend(page.entries.iter().map(|e| e.version.version));
        match page.next_before {
            Some(before) => request.before = Some(before),
            None => break,
        }
    }
    assert_eq!(versions, [5, 4, 3, 2, 1]);
    request.id = None;
    request.count = 10;
    request.before = None;
    let every = store.history(&ctx(), &request).await.unwrap();
    assert_eq!(every.total, 6);
    assert_eq!(every.entries[0].version.id, "p2");
    assert_eq!(every.entries[0].change, ChangeKind::Create);
    assert_eq!(every.entries[1].change, ChangeKind::Update);

    // A system history pages across its types in the order the versions were written, each
    // type limited to its own resources when asked.
    write_all(store, vec![version(ResourceType::Schedule, "s1", IndexEntries::default())]).await;
    write_all(store, vec![version(ResourceType::Slot, "not-listed", IndexEntries::default())]).await;
    write_all(store, vec![patient("p3", 1, None)]).await;
    let mut system = HistoryRequest {
        types: vec![
            TypeHistory { resource_type: ResourceType::Patient, only_ids: Some(vec!["p1".into(), "p3".into()]) },
            TypeHistory::all(ResourceType::Schedule),
        ],
        id: None,
        count: 2,
        before: None,
        since: None,
        at: None,
    };
    let mut seen = Vec::new();
    loop {
        let page = store.history(&ctx(), &system).await.unwrap();
        assert_eq!(page.total, 7);
        seen.extend(
            page.entries.iter().map(|e| format!("{}/{}/{}", e.version.resource_type, e.version.id, e.version.version)),
        );
        match page.next_before {
            Some(before) => system.before = Some(before),
            None => break,
        }
    }
    assert_eq!(
        seen,
        [
            "Patient/p3/1",
            "Schedule/s1/1",
            "Patient/p1/5",
            "Patient/p1/4",
            "Patient/p1/3",
            "Patient/p1/2",
            "Patient/p1/1"
        ]
    );
    system.types.clear();
    system.before = None;
    assert_eq!(store.history(&ctx(), &system).await.unwrap().total, 0);
}

pub async fn versions_stay_readable(store: &dyn ResourceStore) {
    write_all(store, vec![patient("p1", 1, None)]).await;
    write_all(store, vec![patient("p1", 2, None)]).await;
    let first = store.read_version(&ctx(), ResourceType::Patient, "p1", 1).await.unwrap().unwrap();
    assert_eq!((first.version, first.body), (1, patient("p1", 1, None).version.body));
    assert!(store.read_version(&ctx(), ResourceType::Patient, "p1", 3).await.unwrap().is_none());
    let mut deletion = patient("p1", 3, None);
    deletion.version.body = None;
    deletion.change = ChangeKind::Delete;
    write_all(store, vec![deletion]).await;
    let current = store.read_current(&ctx(), ResourceType::Patient, "p1").await.unwrap().unwrap();
    assert_eq!((current.version, current.body), (3, None));
}

pub async fn a_version_is_written_once(store: &dyn ResourceStore) {
    write_all(store, vec![patient("p1", 1, None)]).await;
    let mut tx = store.begin_write(&ctx()).await.unwrap();
    let again = tx.write(patient("p1", 1, None)).await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
}

/// An AuditEvent of the audit trail's own table, recorded at `recorded`, naming `links`.
fn audit_entry(id: &str, recorded: &str, action: &str, links: &[(AuditRole, &str)]) -> AuditEntry {
    let recorded = at(recorded);
    let low = recorded.as_microsecond();
    AuditEntry {
        id: id.into(),
        recorded,
        recorded_range: (low, low + 1000),
        action: action.into(),
        outcome: "0".into(),
        code: "read".into(),
        links: links
            .iter()
            .map(|(role, target)| match target.split_once('/') {
                Some((target_type, target_id)) => {
                    AuditLink { role: *role, target_type: Some(target_type.into()), target_id: target_id.into() }
                }
                None => AuditLink { role: *role, target_type: None, target_id: (*target).into() },
            })
            .collect(),
        body: format!(r#"{{"resourceType":"AuditEvent","id":"{id}"}}"#),
    }
}

/// AuditEvents appended in batches of any size (fixed-size statements) are read by id, found by
/// patient, entity, agent, action and date, through a chain to what they name, paged, and
/// swept past their retention; a taken id fails the unit of work and appends none of its batch.
pub async fn audit_events_are_appended_read_and_searched(store: &dyn ResourceStore) {
    use AuditRole::{Agent, Entity, Patient};
    let mut events: Vec<AuditEntry> = (0..150)
        .map(|i| audit_entry(&format!("e{i:03}"), "2026-12-01T10:00:00Z", "R", &[(Patient, "Patient/p1")]))
        .collect();
    events.push(audit_entry(
        "x1",
        "2026-12-02T10:00:00.123Z",
        "D",
        &[(Patient, "Patient/p2"), (Entity, "Appointment/a2"), (Agent, "Practitioner/doc"), (Agent, "user-7")],
    ));
    events.push(audit_entry("x2", "2026-12-03T10:00:00Z", "R", &[(Patient, "Patient/p1"), (Patient, "Patient/p2")]));
    let mut tx = store.begin_write(&ctx()).await.unwrap();
    tx.append_audit(events.into()).await.unwrap();
    tx.commit().await.unwrap();
    write_all(store, vec![version(ResourceType::Appointment, "a2", IndexEntries::default())]).await;

    let read = store.read_current(&ctx(), ResourceType::AuditEvent, "x1").await.unwrap().unwrap();
    assert_eq!((read.version, read.body.as_deref()), (1, Some(r#"{"resourceType":"AuditEvent","id":"x1"}"#)));
    assert_eq!(read.last_updated, at("2026-12-02T10:00:00.123Z"));
    assert_eq!(store.read_version(&ctx(), ResourceType::AuditEvent, "x1", 1).await.unwrap(), Some(read));
    assert!(store.read_current(&ctx(), ResourceType::AuditEvent, "nope").await.unwrap().is_none());

    let search = |conditions: Vec<Condition>| async move {
        let mut request = request(ResourceType::AuditEvent, conditions);
        request.count = 500;
        ids(&store.search(&ctx(), &request).await.unwrap())
    };
    let local = |param: &str, target_type: Option<&str>, id: &str| Condition::ReferenceAny {
        param: param.into(),
        alternatives: vec![ReferenceMatch::Local {
            target_type: target_type.map(str::to_owned),
            id: id.into(),
            version: None,
        }],
    };
    let action = |code: &str| Condition::TokenAny {
        param: "action".into(),
        alternatives: vec![TokenMatch { system: SystemMatch::Any, code: Some(code.into()) }],
    };
    assert_eq!(search(vec![local("patient", None, "p2")]).await, ["x1", "x2"]);
    assert_eq!(search(vec![local("patient", None, "p2"), action("D")]).await, ["x1"]);
    assert_eq!(search(vec![local("patient", None, "p1")]).await.len(), 151);
    assert_eq!(search(vec![local("entity", Some("Appointment"), "a2")]).await, ["x1"]);
    assert_eq!(search(vec![local("entity", None, "p2")]).await, ["x1", "x2"]);
    assert_eq!(search(vec![local("agent", Some("Practitioner"), "doc")]).await, ["x1"]);
    let by_identifier = Condition::ReferenceAny {
        param: "agent".into(),
        alternatives: vec![ReferenceMatch::Identifier { system: SystemMatch::Any, value: "user-7".into() }],
    };
    assert_eq!(search(vec![by_identifier]).await, ["x1"]);
    assert!(search(vec![local("agent", None, "user-7")]).await.is_empty(), "an identifier is no reference");
    let recorded = |comparison, end, instant: &str| Condition::RangeAny {
        param: "date".into(),
        kind: IndexKind::Date,
        alternatives: vec![RangeTest::Bound { end, comparison, point: RangePoint::Instant(Some(at(instant))) }],
    };
    assert_eq!(search(vec![recorded(Comparison::Greater, RangeEnd::High, "2026-12-02T00:00:00Z")]).await, ["x1", "x2"]);
    assert_eq!(search(vec![recorded(Comparison::Less, RangeEnd::Low, "2026-12-01T11:00:00Z")]).await.len(), 150);
    let chained = Condition::Chain {
        param: "entity".into(),
        target_type: ResourceType::Appointment,
        condition: Box::new(Condition::IdIn(vec!["a2".into()])),
    };
    assert_eq!(search(vec![chained]).await, ["x1"]);
    assert_eq!(search(vec![Condition::Not(Box::new(action("R")))]).await, ["x1"]);

    // Newest first, in pages.
    let mut newest = request(ResourceType::AuditEvent, Vec::new());
    newest.sort =
        vec![SortKey { param: SortParam::Indexed { param: "date".into(), kind: IndexKind::Date }, descending: true }];
    newest.count = 100;
    let first = store.search(&ctx(), &newest).await.unwrap();
    assert_eq!(first.total, Some(152));
    assert_eq!(ids(&first)[..2], ["x2", "x1"]);
    newest.page = first.next.clone();
    let second = store.search(&ctx(), &newest).await.unwrap();
    assert_eq!(second.matches.len(), 52);
    assert!(second.next.is_none());

    let mut tx = store.begin_write(&ctx()).await.unwrap();
    let again = tx
        .append_audit(
            vec![
                audit_entry("fresh", "2026-12-04T00:00:00Z", "R", &[]),
                audit_entry("x2", "2026-12-04T00:00:00Z", "R", &[]),
            ]
            .into(),
        )
        .await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    drop(tx);
    assert!(store.read_current(&ctx(), ResourceType::AuditEvent, "fresh").await.unwrap().is_none());

    let mut tx = store.begin_write(&ctx()).await.unwrap();
    let swept = tx.purge_older_than(ResourceType::AuditEvent, at("2026-12-02T00:00:00Z"), 1000).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(swept.len(), 150);
    assert_eq!(search(vec![local("patient", None, "p1")]).await, ["x2"]);
}

/// An AuditEvent as it was stored before the audit trail had tables of its own: a resource,
/// its history and its index rows (what the audit3 migration moves to those tables).
pub fn stored_audit_event() -> NewVersion {
    let body = r#"{"resourceType":"AuditEvent","id":"old-1","action":"D","recorded":"2026-12-01T10:00:00.000Z"}"#;
    let mut agent = reference("agent", "Practitioner/doc", None);
    agent.identifier_value = Some("user-7".into());
    let index = IndexEntries {
        tokens: vec![
            TokenIndex::code("action", None, "D"),
            TokenIndex::code("outcome", Some(termin_store::AUDIT_OUTCOME_SYSTEM.into()), "0"),
            TokenIndex::code("code", Some(termin_store::AUDIT_CODE_SYSTEM.into()), "delete"),
        ],
        dates: vec![date("date", "2026-12-01T10:00:00Z", "2026-12-01T10:00:00.001Z")],
        references: vec![
            reference("patient", "Patient/p1", None),
            reference("entity", "Patient/p1", None),
            reference("entity", "Appointment/a1", None),
            agent,
        ],
        ..IndexEntries::default()
    };
    let mut event = version(ResourceType::AuditEvent, "old-1", index);
    event.version.body = Some(body.into());
    event.version.last_updated = at("2026-12-01T10:00:00Z");
    event
}

/// After the audit3 migration, [`stored_audit_event`] is read and found from the audit trail's
/// own tables, and nothing of it is left among the resources.
pub async fn stored_audit_events_were_moved(store: &dyn ResourceStore) {
    let moved = store.read_current(&ctx(), ResourceType::AuditEvent, "old-1").await.unwrap().unwrap();
    assert_eq!(moved.body, stored_audit_event().version.body);
    assert_eq!((moved.version, moved.last_updated), (1, at("2026-12-01T10:00:00Z")));
    let found = |condition: Condition| async move {
        ids(&store.search(&ctx(), &request(ResourceType::AuditEvent, vec![condition])).await.unwrap())
    };
    let local = |param: &str, target: &str| {
        let (target_type, id) = target.split_once('/').unwrap();
        Condition::ReferenceAny {
            param: param.into(),
            alternatives: vec![ReferenceMatch::Local {
                target_type: Some(target_type.into()),
                id: id.into(),
                version: None,
            }],
        }
    };
    assert_eq!(found(local("patient", "Patient/p1")).await, ["old-1"]);
    assert_eq!(found(local("entity", "Appointment/a1")).await, ["old-1"]);
    assert_eq!(found(local("agent", "Practitioner/doc")).await, ["old-1"]);
    let by_identifier = Condition::ReferenceAny {
        param: "agent".into(),
        alternatives: vec![ReferenceMatch::Identifier { system: SystemMatch::Any, value: "user-7".into() }],
    };
    assert_eq!(found(by_identifier).await, ["old-1"]);
    let deleted = Condition::TokenAny {
        param: "action".into(),
        alternatives: vec![TokenMatch { system: SystemMatch::None, code: Some("D".into()) }],
    };
    assert_eq!(found(deleted).await, ["old-1"]);
    let on_the_day = Condition::RangeAny {
        param: "date".into(),
        kind: IndexKind::Date,
        alternatives: vec![RangeTest::All(vec![
            RangeTest::Bound {
                end: RangeEnd::Low,
                comparison: Comparison::GreaterOrEqual,
                point: RangePoint::Instant(Some(at("2026-12-01T00:00:00Z"))),
            },
            RangeTest::Bound {
                end: RangeEnd::High,
                comparison: Comparison::LessOrEqual,
                point: RangePoint::Instant(Some(at("2026-12-02T00:00:00Z"))),
            },
        ])],
    };
    assert_eq!(found(on_the_day).await, ["old-1"]);
    let history = HistoryRequest::of_type(ResourceType::AuditEvent, None, 10);
    assert_eq!(store.history(&ctx(), &history).await.unwrap().total, 0, "no resource rows are left");
}

/// More index rows than one statement could bind on either backend.
pub async fn a_resource_may_index_many_rows(store: &dyn ResourceStore) {
    let tokens = (0..5000).map(|i| TokenIndex::code("identifier", Some("urn:sys".into()), format!("{i}"))).collect();
    let mut many = patient("many", 1, None);
    many.index = IndexEntries { tokens, ..IndexEntries::default() };
    write_all(store, vec![many]).await;
    let find = |code: &str| {
        request(
            ResourceType::Patient,
            vec![Condition::TokenAny {
                param: "identifier".into(),
                alternatives: vec![TokenMatch { system: SystemMatch::Any, code: Some(code.into()) }],
            }],
        )
    };
    assert_eq!(ids(&store.search(&ctx(), &find("4999")).await.unwrap()), ["many"]);
    let mut tx = store.begin_write(&ctx()).await.unwrap();
    tx.replace_index(ResourceType::Patient, "many", &IndexEntries::default()).await.unwrap();
    tx.commit().await.unwrap();
    assert!(store.search(&ctx(), &find("0")).await.unwrap().matches.is_empty());
}

fn hold(slot_id: &str, holder: &str, until: &str) -> SlotHold {
    SlotHold {
        slot_id: slot_id.into(),
        holder: holder.into(),
        token: format!("token-{slot_id}"),
        held_until: at(until),
        placed_at: at("2026-04-07T08:00:00Z"),
    }
}

pub async fn holds_are_placed_renewed_listed_and_released(store: &dyn ResourceStore) {
    slots(store).await;
    let mut tx = store.begin_write(&ctx()).await.unwrap();
    tx.put_hold(&hold("s0", "alice", "2026-04-07T09:00:00Z")).await.unwrap();
    tx.put_hold(&hold("s1", "alice", "2026-04-07T10:00:00Z")).await.unwrap();
    tx.put_hold(&hold("s2", "bob", "2026-04-07T11:00:00Z")).await.unwrap();
    // A renewal replaces the hold of its slot.
    tx.put_hold(&hold("s0", "alice", "2026-04-07T12:00:00Z")).await.unwrap();
    assert_eq!(tx.hold("s0").await.unwrap(), Some(hold("s0", "alice", "2026-04-07T12:00:00Z")));
    assert_eq!(tx.hold("s3").await.unwrap(), None);
    let live = tx.live_holds_of("alice", at("2026-04-07T09:30:00Z")).await.unwrap();
    assert_eq!(live.iter().map(|h| h.slot_id.as_str()).collect::<Vec<_>>(), ["s1", "s0"]);
    tx.commit().await.unwrap();

    let listed = store.holds(&ctx(), &["s0".into(), "s2".into(), "s3".into()]).await.unwrap();
    let mut listed: Vec<&str> = listed.iter().map(|h| h.slot_id.as_str()).collect();
    listed.sort();
    assert_eq!(listed, ["s0", "s2"]);
    assert!(store.holds(&ctx(), &[]).await.unwrap().is_empty());
    let expired = store.expired_holds(at("2026-04-07T11:00:00Z"), 10).await.unwrap();
    assert_eq!(expired.iter().map(|h| h.slot_id.as_str()).collect::<Vec<_>>(), ["s1", "s2"]);
    assert_eq!(store.expired_holds(at("2026-04-07T11:00:00Z"), 1).await.unwrap().len(), 1);

    let mut tx = store.begin_write(&ctx()).await.unwrap();
    tx.delete_hold("s1").await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(store.expired_holds(at("2026-04-07T11:00:00Z"), 10).await.unwrap().len(), 1);
}

pub async fn a_slot_is_booked_once(store: &dyn ResourceStore) {
    slots(store).await;
    let deadline = at("2026-04-06T08:00:00Z");
    let mut tx = store.begin_write(&ctx()).await.unwrap();
    assert_eq!(tx.slot_booking("s0").await.unwrap(), None);
    tx.put_slot_booking(SlotId("s0"), AppointmentId("appointment-1"), Some(deadline)).await.unwrap();
    tx.put_slot_booking(SlotId("s1"), AppointmentId("appointment-1"), None).await.unwrap();
    tx.commit().await.unwrap();

    let mut tx = store.begin_write(&ctx()).await.unwrap();
    assert_eq!(tx.slot_booking("s0").await.unwrap().as_deref(), Some("appointment-1"));
    assert_eq!(tx.booking_cancel_deadline("s0").await.unwrap(), Some(deadline));
    assert_eq!(tx.booking_cancel_deadline("s1").await.unwrap(), None);
    let twice = tx.put_slot_booking(SlotId("s0"), AppointmentId("appointment-2"), None).await;
    assert!(matches!(twice, Err(StoreError::Conflict(_))), "{twice:?}");
    drop(tx);

    let mut tx = store.begin_write(&ctx()).await.unwrap();
    tx.delete_slot_booking("s0").await.unwrap();
    tx.put_slot_booking(SlotId("s0"), AppointmentId("appointment-2"), None).await.unwrap();
    tx.commit().await.unwrap();
    let mut tx = store.begin_write(&ctx()).await.unwrap();
    assert_eq!(tx.slot_booking("s0").await.unwrap().as_deref(), Some("appointment-2"));
}

/// The bulk calls of a unit of work (slot generation's) do what the single ones do.
pub async fn many_are_written_and_read_at_once(store: &dyn ResourceStore) {
    slots(store).await;
    let slot = |id: &str, start: &str, status: &str| {
        version(
            ResourceType::Slot,
            id,
            IndexEntries {
                dates: vec![date("start", start, "2026-04-08T23:00:00Z")],
                references: vec![reference("schedule", "Schedule/a", None)],
                tokens: vec![TokenIndex::code("status", None, status)],
                ..IndexEntries::default()
            },
        )
    };
    let mut later = slot("s9", "2026-04-07T17:00:00Z", "free");
    later.version.version = 2;
    later.change = ChangeKind::Update;
    let mut tx = store.begin_write(&ctx()).await.unwrap();
    let written = vec![
        slot("t0", "2026-04-08T08:00:00Z", "free"),
        slot("t1", "2026-04-08T09:00:00Z", "free"),
        later,
        patient("p1", 1, Some("111")),
    ];
    tx.write_all(written).await.unwrap();
    tx.put_hold(&hold("t1", "alice", "2026-04-08T09:00:00Z")).await.unwrap();
    tx.put_slot_booking(SlotId("s0"), AppointmentId("appointment-1"), None).await.unwrap();
    tx.commit().await.unwrap();

    let from_the_8th =
        store.search(&ctx(), &request(ResourceType::Slot, vec![starts_from("2026-04-08T00:00:00Z")])).await.unwrap();
    let mut from_the_8th = ids(&from_the_8th);
    from_the_8th.sort();
    assert_eq!(from_the_8th, ["t0", "t1"]);
    let free = Condition::TokenAny {
        param: "status".into(),
        alternatives: vec![TokenMatch { system: SystemMatch::Any, code: Some("free".into()) }],
    };
    let mut free = ids(&store.search(&ctx(), &request(ResourceType::Slot, vec![free])).await.unwrap());
    free.sort();
    // s9's second version replaced its first's rows (busy).
    assert_eq!(free, ["s0", "s1", "s2", "s3", "s4", "s9", "t0", "t1"]);

    let mut tx = store.begin_write(&ctx()).await.unwrap();
    let asked: Vec<String> = ["t1", "nothing", "s9", "t0"].map(String::from).to_vec();
    let read = tx.read_current_many(ResourceType::Slot, &asked).await.unwrap();
    let read: Vec<(&str, u64)> = read.iter().map(|v| (v.id.as_str(), v.version)).collect();
    assert_eq!(read, [("s9", 2), ("t0", 1), ("t1", 1)]);
    let holds = tx.holds_of(&asked).await.unwrap();
    assert_eq!(holds, [hold("t1", "alice", "2026-04-08T09:00:00Z")]);
    let slots_asked: Vec<String> = ["s1", "s0"].map(String::from).to_vec();
    assert_eq!(tx.slot_bookings(&slots_asked).await.unwrap(), [("s0".to_owned(), "appointment-1".to_owned())]);
    assert!(tx.read_current_many(ResourceType::Slot, &[]).await.unwrap().is_empty());
    let again = tx
        .write_all(vec![slot("t2", "2026-04-08T10:00:00Z", "free"), slot("t0", "2026-04-08T08:00:00Z", "free")])
        .await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
}

fn event(kind: &str, id: &str) -> DomainEvent {
    DomainEvent {
        kind: kind.into(),
        resource_type: ResourceType::Appointment,
        resource_id: id.into(),
        version: 1,
        occurred_at: at("2026-04-07T08:00:00Z"),
        detail: format!(r#"{{"id":"{id}"}}"#),
    }
}

pub async fn outbox_events_follow_their_append_order(store: &dyn ResourceStore) {
    let mut tx = store.begin_write(&ctx()).await.unwrap();
    tx.append_event(&event("appointment-booked", "a1")).await.unwrap();
    tx.append_event(&event("appointment-booked", "a2")).await.unwrap();
    tx.commit().await.unwrap();
    let mut tx = store.begin_write(&ctx()).await.unwrap();
    tx.append_event(&event("never-committed", "a3")).await.unwrap();
    drop(tx);
    let mut tx = store.begin_write(&ctx()).await.unwrap();
    tx.append_event(&event("appointment-cancelled", "a1")).await.unwrap();
    tx.commit().await.unwrap();

    let events = store.events(0, 10).await.unwrap();
    let kinds: Vec<(&str, &str)> = events.iter().map(|(_, e)| (e.kind.as_str(), e.resource_id.as_str())).collect();
    assert_eq!(kinds, [("appointment-booked", "a1"), ("appointment-booked", "a2"), ("appointment-cancelled", "a1")]);
    assert_eq!(events[0].1, event("appointment-booked", "a1"));
    assert!(events.windows(2).all(|pair| pair[0].0 < pair[1].0));
    let after_first = store.events(events[0].0, 1).await.unwrap();
    assert_eq!(after_first.len(), 1);
    assert_eq!(after_first[0].0, events[1].0);
}

pub async fn overlapping_periods_are_found(store: &dyn ResourceStore) {
    slots(store).await;
    let mut tx = store.begin_write(&ctx()).await.unwrap();
    let period = (at("2026-04-07T09:00:00Z"), at("2026-04-07T10:00:00Z"));
    let mut found = tx.overlapping(ResourceType::Slot, "start", period, "s9", 10).await.unwrap();
    found.sort();
    // s1 starts at 09:00:00 and ends a second later; s2 starts when the period ends.
    assert_eq!(found, ["s1"]);
    assert!(tx.overlapping(ResourceType::Slot, "start", period, "s1", 10).await.unwrap().is_empty());
}

pub async fn writes_are_visible_after_commit_only(store: &dyn ResourceStore) {
    let mut tx = store.begin_write(&ctx()).await.unwrap();
    tx.write(patient("p1", 1, None)).await.unwrap();
    drop(tx);
    assert!(store.read_current(&ctx(), ResourceType::Patient, "p1").await.unwrap().is_none());

    let mut tx = store.begin_write(&ctx()).await.unwrap();
    tx.write(patient("p1", 1, None)).await.unwrap();
    tx.commit().await.unwrap();
    let read = store.read_current(&ctx(), ResourceType::Patient, "p1").await.unwrap().unwrap();
    assert_eq!(read.version, 1);
}

pub async fn token_conditions_match_system_and_code(store: &dyn ResourceStore) {
    let mut tx = store.begin_write(&ctx()).await.unwrap();
    tx.write(patient("a", 1, Some("111"))).await.unwrap();
    tx.write(patient("b", 1, Some("222"))).await.unwrap();
    tx.commit().await.unwrap();
    let find = |system: SystemMatch, code: Option<&str>| {
        request(
            ResourceType::Patient,
            vec![Condition::TokenAny {
                param: "identifier".into(),
                alternatives: vec![TokenMatch { system, code: code.map(str::to_owned) }],
            }],
        )
    };
    let ids = |page: SearchPage| page.matches.into_iter().map(|m| m.id).collect::<Vec<_>>();
    let exact = store.search(&ctx(), &find(SystemMatch::Exactly("urn:sys".into()), Some("222"))).await.unwrap();
    assert_eq!(ids(exact), ["b"]);
    let no_system = store.search(&ctx(), &find(SystemMatch::None, Some("222"))).await.unwrap();
    assert!(no_system.matches.is_empty());
    let any_code = store.search(&ctx(), &find(SystemMatch::Exactly("urn:sys".into()), None)).await.unwrap();
    assert_eq!(any_code.total, Some(2));
}

pub async fn keyset_pages_follow_the_sort_both_ways(store: &dyn ResourceStore) {
    slots(store).await;
    let mut req = request(ResourceType::Slot, Vec::new());
    req.sort =
        vec![SortKey { param: SortParam::Indexed { param: "start".into(), kind: IndexKind::Date }, descending: true }];
    req.count = 4;
    let first = store.search(&ctx(), &req).await.unwrap();
    assert_eq!(ids(&first), ["s9", "s8", "s7", "s6"]);
    assert!(first.previous.is_none());
    req.page = first.next.clone();
    let second = store.search(&ctx(), &req).await.unwrap();
    assert_eq!(ids(&second), ["s5", "s4", "s3", "s2"]);
    req.page = second.next.clone();
    let third = store.search(&ctx(), &req).await.unwrap();
    assert_eq!(ids(&third), ["s1", "s0"]);
    assert!(third.next.is_none());
    req.page = third.previous.clone();
    let back = store.search(&ctx(), &req).await.unwrap();
    assert_eq!(ids(&back), ["s5", "s4", "s3", "s2"]);
    req.page = back.previous.clone();
    let start = store.search(&ctx(), &req).await.unwrap();
    assert_eq!(ids(&start), ["s9", "s8", "s7", "s6"]);
    assert!(start.previous.is_none(), "{:?}", start.previous);
    assert_eq!(start.total, Some(10));
}

pub async fn chains_references_dates_and_has(store: &dyn ResourceStore) {
    slots(store).await;
    let by_actor = Condition::Chain {
        param: "schedule".into(),
        target_type: ResourceType::Schedule,
        condition: Box::new(Condition::ReferenceAny {
            param: "actor".into(),
            alternatives: vec![ReferenceMatch::Local {
                target_type: Some("Practitioner".into()),
                id: "p".into(),
                version: None,
            }],
        }),
    };
    let after_noon = starts_from("2026-04-07T12:00:00Z");
    let page = store.search(&ctx(), &request(ResourceType::Slot, vec![by_actor.clone(), after_noon])).await.unwrap();
    assert_eq!(ids(&page), ["s4", "s6", "s8"]);
    // The same chain as a plain predicate (another condition drives).
    let page = store
        .search(&ctx(), &request(ResourceType::Slot, vec![Condition::IdIn(vec!["s0".into(), "s1".into()]), by_actor]))
        .await
        .unwrap();
    assert_eq!(ids(&page), ["s0"]);
    // No id at all matches nothing, alone or inside a chain.
    let nothing = Condition::Chain {
        param: "schedule".into(),
        target_type: ResourceType::Schedule,
        condition: Box::new(Condition::IdIn(Vec::new())),
    };
    for conditions in [vec![Condition::IdIn(Vec::new())], vec![nothing]] {
        assert!(ids(&store.search(&ctx(), &request(ResourceType::Slot, conditions)).await.unwrap()).is_empty());
    }
    let has_busy = Condition::ReferencedBy {
        source_type: ResourceType::Slot,
        param: "schedule".into(),
        condition: Box::new(Condition::TokenAny {
            param: "status".into(),
            alternatives: vec![TokenMatch { system: SystemMatch::Any, code: Some("busy".into()) }],
        }),
    };
    let page = store.search(&ctx(), &request(ResourceType::Schedule, vec![has_busy])).await.unwrap();
    assert_eq!(ids(&page), ["a", "b"]);
    let missing_actor = Condition::Missing { param: "actor".into(), kind: IndexKind::Reference, missing: true };
    let page = store.search(&ctx(), &request(ResourceType::Schedule, vec![missing_actor])).await.unwrap();
    assert_eq!(ids(&page), ["b"]);
}

pub async fn token_rows_hold_only_inside_their_validity_window(store: &dyn ResourceStore) {
    let held_until = at("2026-04-07T10:00:00Z");
    let tokens = vec![
        TokenIndex { valid_until: Some(held_until), ..TokenIndex::code("status", None, "busy-tentative") },
        TokenIndex { valid_from: Some(held_until), ..TokenIndex::code("status", None, "free") },
    ];
    write_all(store, vec![version(ResourceType::Slot, "held", IndexEntries { tokens, ..IndexEntries::default() })])
        .await;
    let status = |code: &str, now: &str| {
        let mut req = request(
            ResourceType::Slot,
            vec![Condition::TokenAny {
                param: "status".into(),
                alternatives: vec![TokenMatch { system: SystemMatch::Any, code: Some(code.into()) }],
            }],
        );
        req.filter.now = at(now);
        req
    };
    let found = |page: SearchPage| page.total.unwrap();
    assert_eq!(found(store.search(&ctx(), &status("busy-tentative", "2026-04-07T09:59:59Z")).await.unwrap()), 1);
    assert_eq!(found(store.search(&ctx(), &status("free", "2026-04-07T09:59:59Z")).await.unwrap()), 0);
    assert_eq!(found(store.search(&ctx(), &status("busy-tentative", "2026-04-07T10:00:00Z")).await.unwrap()), 0);
    assert_eq!(found(store.search(&ctx(), &status("free", "2026-04-07T10:00:00Z")).await.unwrap()), 1);
    let mut tx = store.begin_write(&ctx()).await.unwrap();
    let filter = status("free", "2026-04-07T11:00:00Z").filter;
    assert_eq!(tx.find_matching_ids(ResourceType::Slot, &filter, 5).await.unwrap(), ["held"]);
}

pub async fn includes_follow_references_and_iterate(store: &dyn ResourceStore) {
    slots(store).await;
    let mut req = request(ResourceType::Slot, vec![Condition::IdIn(vec!["s0".into()])]);
    req.includes = vec![
        Include { source_type: ResourceType::Slot, param: Some("schedule".into()), target_type: None, iterate: false },
        Include { source_type: ResourceType::Schedule, param: Some("actor".into()), target_type: None, iterate: true },
    ];
    let page = store.search(&ctx(), &req).await.unwrap();
    let included: Vec<String> = page.included.iter().map(|v| format!("{}/{}", v.resource_type, v.id)).collect();
    // Practitioner/p is referenced but not stored, so only the schedule comes.
    assert_eq!(included, ["Schedule/a"]);
    let mut req = request(ResourceType::Schedule, vec![Condition::IdIn(vec!["b".into()])]);
    req.revincludes = vec![Include {
        source_type: ResourceType::Slot,
        param: Some("schedule".into()),
        target_type: None,
        iterate: false,
    }];
    let page = store.search(&ctx(), &req).await.unwrap();
    let mut included: Vec<String> = page.included.iter().map(|v| v.id.clone()).collect();
    included.sort();
    assert_eq!(included, ["s1", "s3", "s5", "s7", "s9"]);
}

pub async fn absolute_references_are_local_only_under_the_server_base(store: &dyn ResourceStore) {
    write_all(
        store,
        vec![
            version(
                ResourceType::Slot,
                "here",
                IndexEntries {
                    references: vec![reference("schedule", "Schedule/a", Some("http://termin.test/fhir"))],
                    ..IndexEntries::default()
                },
            ),
            version(
                ResourceType::Slot,
                "there",
                IndexEntries {
                    references: vec![reference("schedule", "Schedule/a", Some("http://elsewhere.test/fhir"))],
                    ..IndexEntries::default()
                },
            ),
        ],
    )
    .await;
    let local = Condition::ReferenceAny {
        param: "schedule".into(),
        alternatives: vec![ReferenceMatch::Local {
            target_type: Some("Schedule".into()),
            id: "a".into(),
            version: None,
        }],
    };
    let page = store.search(&ctx(), &request(ResourceType::Slot, vec![local])).await.unwrap();
    assert_eq!(ids(&page), ["here"]);
}

pub async fn the_index_can_be_rebuilt_resource_by_resource(store: &dyn ResourceStore) {
    assert_eq!(store.search_index_fingerprint().await.unwrap(), None);
    write_all(store, vec![patient("a", 1, Some("1")), patient("b", 1, None)]).await;
    let mut tx = store.begin_write(&ctx()).await.unwrap();
    let first = tx.current_after(None, 1).await.unwrap();
    assert_eq!(first[0].id, "a");
    let rest = tx.current_after(Some((ResourceType::Patient, "a".into())), 10).await.unwrap();
    assert_eq!(rest.len(), 1);
    tx.replace_index(ResourceType::Patient, "b", &patient("b", 1, Some("2")).index).await.unwrap();
    tx.set_search_index_fingerprint("v2").await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(store.search_index_fingerprint().await.unwrap().as_deref(), Some("v2"));
    let find_b = request(
        ResourceType::Patient,
        vec![Condition::TokenAny {
            param: "identifier".into(),
            alternatives: vec![TokenMatch { system: SystemMatch::Any, code: Some("2".into()) }],
        }],
    );
    assert_eq!(ids(&store.search(&ctx(), &find_b).await.unwrap()), ["b"]);
}

pub async fn backwards_cursor_from_the_first_row_finds_nothing_before(store: &dyn ResourceStore) {
    slots(store).await;
    let mut req = request(ResourceType::Slot, Vec::new());
    req.page = Some(Keyset { values: Vec::new(), id: "s0".into(), backwards: true });
    let page = store.search(&ctx(), &req).await.unwrap();
    assert!(page.matches.is_empty());
    assert!(page.previous.is_none());
}

pub async fn driven_searches_page_in_sort_order(store: &dyn ResourceStore) {
    slots(store).await;
    let on_a = Condition::ReferenceAny {
        param: "schedule".into(),
        alternatives: vec![ReferenceMatch::Local {
            target_type: Some("Schedule".into()),
            id: "a".into(),
            version: None,
        }],
    };
    let mut req = request(ResourceType::Slot, vec![on_a]);
    req.sort =
        vec![SortKey { param: SortParam::Indexed { param: "start".into(), kind: IndexKind::Date }, descending: true }];
    req.count = 2;
    let mut seen = Vec::new();
    loop {
        let page = store.search(&ctx(), &req).await.unwrap();
        assert_eq!(page.total, Some(5));
        seen.extend(ids(&page));
        match page.next {
            Some(next) => req.page = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, ["s8", "s6", "s4", "s2", "s0"]);
    req.sort = vec![SortKey { param: SortParam::Id, descending: true }];
    req.page = None;
    assert_eq!(ids(&store.search(&ctx(), &req).await.unwrap()), ["s8", "s6"]);
}

/// A schedule's free slots from a start on, by start (the IG's slot search, answered by the
/// scheduling projection): the other conditions still hold, an absolute reference under the
/// server base counts, a rewritten slot leaves its old schedule, and pages go both ways.
pub async fn reference_and_date_searches_page_through_the_projection(store: &dyn ResourceStore) {
    slots(store).await;
    let slot = |id: &str, version: u64, schedule: ReferenceIndex, start: &str| {
        let mut slot = self::version(
            ResourceType::Slot,
            id,
            IndexEntries {
                dates: vec![date("start", start, start)],
                references: vec![schedule],
                tokens: vec![TokenIndex::code("status", None, "free")],
                ..IndexEntries::default()
            },
        );
        slot.version.version = version;
        slot.change = if version == 1 { ChangeKind::Create } else { ChangeKind::Update };
        slot
    };
    write_all(
        store,
        vec![
            slot(
                "absolute",
                1,
                reference("schedule", "Schedule/a", Some("http://termin.test/fhir")),
                "2026-04-07T20:00:00Z",
            ),
            slot(
                "elsewhere",
                1,
                reference("schedule", "Schedule/a", Some("http://other.test/fhir")),
                "2026-04-07T21:00:00Z",
            ),
            slot("s4", 2, reference("schedule", "Schedule/b", None), "2026-04-07T12:00:00Z"),
        ],
    )
    .await;
    let on_a = Condition::ReferenceAny {
        param: "schedule".into(),
        alternatives: vec![ReferenceMatch::Local {
            target_type: Some("Schedule".into()),
            id: "a".into(),
            version: None,
        }],
    };
    let from_nine = starts_from("2026-04-07T09:00:00Z");
    let free = Condition::TokenAny {
        param: "status".into(),
        alternatives: vec![TokenMatch { system: SystemMatch::Any, code: Some("free".into()) }],
    };
    let mut req = request(ResourceType::Slot, vec![on_a, free, from_nine]);
    req.sort =
        vec![SortKey { param: SortParam::Indexed { param: "start".into(), kind: IndexKind::Date }, descending: false }];
    req.count = 1;
    let first = store.search(&ctx(), &req).await.unwrap();
    assert_eq!((ids(&first), first.total), (vec!["s2".to_owned()], Some(2)));
    req.page = first.next.clone();
    let second = store.search(&ctx(), &req).await.unwrap();
    assert_eq!(ids(&second), ["absolute"]);
    assert!(second.next.is_none());
    req.page = second.previous.clone();
    assert_eq!(ids(&store.search(&ctx(), &req).await.unwrap()), ["s2"]);
    req.sort[0].descending = true;
    req.page = None;
    req.count = 10;
    assert_eq!(ids(&store.search(&ctx(), &req).await.unwrap()), ["absolute", "s2"]);
}

/// `Appointment?actor:identifier=…&date=…`, whose identifier is resolved to the resources that
/// carry it before the search (so that one of them is one range of the scheduling projection):
/// one, several or no such resources, of any actor type, every form of the identifier, a
/// reference that carries the identifier itself, other conditions, a window of two date
/// bounds, and pages sorted by date.
pub async fn identifier_references_are_resolved_for_the_projection(store: &dyn ResourceStore) {
    let identified = |resource_type: ResourceType, id: &str, system: Option<&str>, value: &str| {
        version(
            resource_type,
            id,
            IndexEntries {
                tokens: vec![TokenIndex::code("identifier", system.map(str::to_owned), value)],
                ..IndexEntries::default()
            },
        )
    };
    let actor = |target: &str, base: Option<&str>| reference("actor", target, base);
    let carrying = |target: Option<&str>, system: &str, value: &str| ReferenceIndex {
        param: "actor".into(),
        target_type: target.map(|t| t.split_once('/').unwrap().0.to_owned()),
        target_id: target.map(|t| t.split_once('/').unwrap().1.to_owned()),
        identifier_system: Some(system.into()),
        identifier_value: Some(value.into()),
        ..ReferenceIndex::default()
    };
    let appointment = |id: &str, hour: u32, status: &str, actors: Vec<ReferenceIndex>| {
        let at = format!("2026-04-07T{hour:02}:00:00Z");
        version(
            ResourceType::Appointment,
            id,
            IndexEntries {
                dates: vec![date("date", &at, &at)],
                references: actors,
                tokens: vec![TokenIndex::code("status", None, status)],
                ..IndexEntries::default()
            },
        )
    };
    write_all(
        store,
        vec![
            identified(ResourceType::Patient, "p1", Some("urn:sys"), "111"),
            identified(ResourceType::Patient, "p2", Some("urn:sys"), "222"),
            identified(ResourceType::Patient, "p3", Some("urn:sys"), "222"),
            identified(ResourceType::Patient, "p4", Some("urn:other"), "111"),
            identified(ResourceType::Patient, "p5", None, "555"),
            identified(ResourceType::Practitioner, "d", Some("urn:sys"), "444"),
            appointment("a1", 9, "booked", vec![actor("Patient/p1", None)]),
            // The patient's reference carries the identifier too: still the same resource.
            appointment(
                "a2",
                11,
                "cancelled",
                vec![carrying(Some("Patient/p1"), "urn:sys", "111"), actor("Practitioner/d", None)],
            ),
            appointment("a3", 10, "booked", vec![actor("Patient/p2", None)]),
            appointment("a4", 12, "booked", vec![actor("Patient/p3", None)]),
            appointment("a5", 13, "booked", vec![actor("Practitioner/d", None)]),
            appointment("a6", 14, "booked", vec![actor("Patient/p1", Some("http://termin.test/fhir"))]),
            appointment("a7", 15, "booked", vec![actor("Patient/p1", Some("http://other.test/fhir"))]),
            appointment("a8", 8, "booked", vec![actor("Patient/p1", None)]),
            appointment("a9", 10, "booked", vec![actor("Patient/p4", None)]),
            appointment("a10", 10, "booked", vec![carrying(None, "urn:sys", "333")]),
            appointment("a12", 10, "booked", vec![actor("Patient/p5", None)]),
        ],
    )
    .await;
    let by = |identifiers: &[(SystemMatch, &str)]| Condition::ReferenceAny {
        param: "actor".into(),
        alternatives: identifiers
            .iter()
            .map(|(system, value)| ReferenceMatch::Identifier { system: system.clone(), value: (*value).into() })
            .collect(),
    };
    let sys = || SystemMatch::Exactly("urn:sys".into());
    let date_bound = |comparison: Comparison, instant: &str| Condition::RangeAny {
        param: "date".into(),
        kind: IndexKind::Date,
        alternatives: vec![RangeTest::Bound {
            end: RangeEnd::Low,
            comparison,
            point: RangePoint::Instant(Some(at(instant))),
        }],
    };
    let from_nine = || date_bound(Comparison::GreaterOrEqual, "2026-04-07T09:00:00Z");
    let search = |conditions: Vec<Condition>| async move {
        let page = store.search(&ctx(), &request(ResourceType::Appointment, conditions)).await.unwrap();
        (ids(&page), page.total)
    };
    let found = |expected: &[&str]| {
        (expected.iter().map(|id| (*id).to_owned()).collect::<Vec<_>>(), Some(expected.len() as u64))
    };
    // One patient: local references only, not one under another base, not before nine.
    assert_eq!(search(vec![by(&[(sys(), "111")]), from_nine()]).await, found(&["a1", "a2", "a6"]));
    // Several patients, another actor type, several identifiers, the value alone, no system.
    assert_eq!(search(vec![by(&[(sys(), "222")]), from_nine()]).await, found(&["a3", "a4"]));
    assert_eq!(search(vec![by(&[(sys(), "444")]), from_nine()]).await, found(&["a2", "a5"]));
    assert_eq!(
        search(vec![by(&[(sys(), "222"), (sys(), "444")]), from_nine()]).await,
        found(&["a2", "a3", "a4", "a5"])
    );
    assert_eq!(search(vec![by(&[(SystemMatch::Any, "111")]), from_nine()]).await, found(&["a1", "a2", "a6", "a9"]));
    assert_eq!(search(vec![by(&[(SystemMatch::None, "555")]), from_nine()]).await, found(&["a12"]));
    assert_eq!(search(vec![by(&[(sys(), "555")]), from_nine()]).await, found(&[]));
    // Nobody has it.
    assert_eq!(search(vec![by(&[(sys(), "999")]), from_nine()]).await, found(&[]));
    // Only a reference carries it.
    assert_eq!(search(vec![by(&[(sys(), "333")]), from_nine()]).await, found(&["a10"]));
    // With another condition, and within a window of two bounds.
    let booked = Condition::TokenAny {
        param: "status".into(),
        alternatives: vec![TokenMatch { system: SystemMatch::Any, code: Some("booked".into()) }],
    };
    assert_eq!(search(vec![by(&[(sys(), "111")]), booked, from_nine()]).await, found(&["a1", "a6"]));
    let before_noon = date_bound(Comparison::Less, "2026-04-07T12:00:00Z");
    assert_eq!(search(vec![by(&[(sys(), "111")]), from_nine(), before_noon.clone()]).await, found(&["a1", "a2"]));
    let on_p1 = Condition::ReferenceAny {
        param: "actor".into(),
        alternatives: vec![ReferenceMatch::Local {
            target_type: Some("Patient".into()),
            id: "p1".into(),
            version: None,
        }],
    };
    assert_eq!(search(vec![on_p1, from_nine(), before_noon]).await, found(&["a1", "a2"]));
    // Pages sorted by date, both ways.
    let mut req = request(ResourceType::Appointment, vec![by(&[(sys(), "111")]), from_nine()]);
    req.sort =
        vec![SortKey { param: SortParam::Indexed { param: "date".into(), kind: IndexKind::Date }, descending: false }];
    req.count = 2;
    let first = store.search(&ctx(), &req).await.unwrap();
    assert_eq!(ids(&first), ["a1", "a2"]);
    req.page = first.next.clone();
    let second = store.search(&ctx(), &req).await.unwrap();
    assert_eq!((ids(&second), second.next.is_none()), (vec!["a6".to_owned()], true));
    req.page = second.previous.clone();
    assert_eq!(ids(&store.search(&ctx(), &req).await.unwrap()), ["a1", "a2"]);
    // A reference that carries the identifier but refers to a resource without it matches
    // by its identifier.
    write_all(store, vec![appointment("a11", 16, "booked", vec![carrying(Some("Patient/p3"), "urn:sys", "111")])])
        .await;
    assert_eq!(search(vec![by(&[(sys(), "111")]), from_nine()]).await, found(&["a1", "a11", "a2", "a6"]));
}

/// Locations at Vienna, Floridsdorf (≈ 6 km north), Graz (≈ 145 km), Linz (≈ 155 km), on both
/// sides of the antimeridian near Fiji, and one without a position.
pub async fn positions_are_found_near_a_point_nearest_first(store: &dyn ResourceStore) {
    let located = |id: &str, at: Option<(f64, f64)>| {
        let positions = at
            .map(|(latitude, longitude)| PositionIndex {
                param: "near".into(),
                position: Point { latitude, longitude },
            })
            .into_iter()
            .collect();
        version(ResourceType::Location, id, IndexEntries { positions, ..IndexEntries::default() })
    };
    let places = [
        ("linz", Some((48.3069, 14.2858))),
        ("graz", Some((47.0707, 15.4395))),
        ("floridsdorf", Some((48.2565, 16.3999))),
        ("vienna", Some((48.2082, 16.3738))),
        ("suva", Some((-18.1248, 178.4501))),
        ("taveuni", Some((-16.85, -179.97))),
        ("nowhere", None),
    ];
    write_all(store, places.iter().map(|(id, at)| located(id, *at)).collect()).await;
    let vienna = Point { latitude: 48.2085, longitude: 16.3721 };
    let near =
        |centre: Point, radius_km: f64| Condition::Near { param: "near".into(), area: Near { centre, radius_km } };
    let by_distance =
        |from: Point| vec![SortKey { param: SortParam::Distance { param: "near".into(), from }, descending: false }];
    let mut req = request(ResourceType::Location, vec![near(vienna, 150.0)]);
    req.sort = by_distance(vienna);
    assert_eq!(ids(&store.search(&ctx(), &req).await.unwrap()), ["vienna", "floridsdorf", "graz"]);
    // Paged by distance, both ways; the Locations without a position come last.
    req.filter.conditions.clear();
    req.count = 3;
    let first = store.search(&ctx(), &req).await.unwrap();
    assert_eq!(ids(&first), ["vienna", "floridsdorf", "graz"]);
    req.page = first.next.clone();
    let second = store.search(&ctx(), &req).await.unwrap();
    assert_eq!(ids(&second), ["linz", "taveuni", "suva"]);
    req.page = second.next.clone();
    assert_eq!(ids(&store.search(&ctx(), &req).await.unwrap()), ["nowhere"]);
    req.page = second.previous.clone();
    assert_eq!(ids(&store.search(&ctx(), &req).await.unwrap()), ["vienna", "floridsdorf", "graz"]);
    // Not driving (an id list is more selective), and across the antimeridian (Suva to
    // Taveuni ≈ 220 km).
    let suva = Point { latitude: -18.1248, longitude: 178.4501 };
    let ids_and_near = request(
        ResourceType::Location,
        vec![Condition::IdIn(vec!["suva".into(), "taveuni".into(), "vienna".into()]), near(suva, 250.0)],
    );
    assert_eq!(ids(&store.search(&ctx(), &ids_and_near).await.unwrap()), ["suva", "taveuni"]);
    let missing = Condition::Missing { param: "near".into(), kind: IndexKind::Position, missing: true };
    assert_eq!(ids(&store.search(&ctx(), &request(ResourceType::Location, vec![missing])).await.unwrap()), ["nowhere"]);
    // A new version's rows replace the old ones.
    let mut moved = located("vienna", None);
    moved.version.version = 2;
    moved.change = ChangeKind::Update;
    write_all(store, vec![moved]).await;
    let around_vienna = request(ResourceType::Location, vec![near(vienna, 10.0)]);
    assert_eq!(ids(&store.search(&ctx(), &around_vienna).await.unwrap()), ["floridsdorf"]);
}

/// E-mail ([`MailStore`]; not part of [`store_conformance!`], which knows only the
/// `ResourceStore`): the outbox cursor starts at the outbox's end and is held by one owner at
/// a time; a message is queued once per event and recipient, claimed by one owner, and its
/// outcome decides whether it comes again.
pub async fn mail_is_queued_once_and_sent_under_leases(store: &dyn ResourceStore, mails: &dyn MailStore) {
    let mut tx = store.begin_write(&ctx()).await.unwrap();
    tx.append_event(&event("appointment-booked", "a1")).await.unwrap();
    tx.commit().await.unwrap();
    let end = store.events(0, 10).await.unwrap().last().unwrap().0;
    let (t0, lease_end, retry_at) =
        (at("2026-01-01T00:00:00Z"), at("2026-01-01T00:01:00Z"), at("2026-01-01T00:05:00Z"));

    assert_eq!(mails.claim_mail_cursor("a", t0, lease_end).await.unwrap(), Some(end), "starts at the outbox's end");
    assert_eq!(mails.claim_mail_cursor("b", t0, lease_end).await.unwrap(), None, "held by a");
    let mail = |recipient: &str| OutgoingMail {
        event_key: "outbox:2".into(),
        recipient: recipient.into(),
        message: "m".into(),
    };
    assert!(!mails.queue_mail("b", Some(end + 1), &[mail("p@test")], t0).await.unwrap(), "b holds no lease");
    assert!(mails.queue_mail("a", Some(end + 1), &[mail("p@test"), mail("q@test")], t0).await.unwrap());
    assert!(mails.queue_mail("a", None, &[mail("p@test")], t0).await.unwrap(), "queued again: a no-op");
    let keys = ["outbox:2".to_owned(), "outbox:3".to_owned()];
    assert_eq!(mails.known_mail_events(&keys).await.unwrap(), ["outbox:2"]);

    let first = mails.claim_mail("a", t0, lease_end).await.unwrap().expect("a message for a");
    let second = mails.claim_mail("b", t0, lease_end).await.unwrap().expect("the other for b");
    assert_ne!(first.mail.recipient, second.mail.recipient);
    assert_eq!((first.attempts, first.mail.message.as_str()), (0, "m"));
    assert!(mails.claim_mail("c", t0, lease_end).await.unwrap().is_none(), "both are leased");
    let (sent, retried) = (&first.mail, &second.mail);
    mails.record_mail(&sent.event_key, &sent.recipient, "a", &MailOutcome::Sent, t0).await.unwrap();
    let retry = MailOutcome::Retry { at: retry_at, error: "451".into() };
    mails.record_mail(&retried.event_key, &retried.recipient, "c", &retry, t0).await.unwrap(); // not c's: ignored
    assert!(
        mails.claim_mail("c", lease_end, retry_at).await.unwrap().is_some_and(|m| m.mail == *retried),
        "b's lease ran out"
    );
    mails.record_mail(&retried.event_key, &retried.recipient, "c", &retry, lease_end).await.unwrap();
    assert!(mails.claim_mail("c", lease_end, retry_at).await.unwrap().is_none(), "not due before its retry");
    let again = mails.claim_mail("c", retry_at, retry_at).await.unwrap().expect("due again");
    assert_eq!(again.attempts, 1);
    let gave_up = MailOutcome::GaveUp { error: "550".into() };
    mails.record_mail(&retried.event_key, &retried.recipient, "c", &gave_up, retry_at).await.unwrap();
    assert!(
        mails.claim_mail("c", at("2027-01-01T00:00:00Z"), at("2027-01-01T00:01:00Z")).await.unwrap().is_none(),
        "sent or given up"
    );

    assert_eq!(mails.claim_mail_cursor("b", lease_end, retry_at).await.unwrap(), Some(end + 1), "a's lease ran out");
}
