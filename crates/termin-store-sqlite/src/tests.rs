use super::*;
use termin_store::{IndexEntries, SystemMatch, TokenIndex, TokenMatch};

fn ctx() -> RequestContext {
    RequestContext::anonymous("test")
}

async fn open(dir: &tempfile::TempDir) -> SqliteStore {
    SqliteStore::open(&dir.path().join("t.db"), 2).await.unwrap()
}

fn patient(id: &str, version: u64, identifier: Option<&str>) -> NewVersion {
    let tokens = identifier
        .map(|code| TokenIndex {
            param: "identifier".into(),
            system: Some("urn:sys".into()),
            code: code.into(),
        })
        .into_iter()
        .collect();
    NewVersion {
        version: ResourceVersion {
            resource_type: ResourceType::Patient,
            id: id.into(),
            version,
            last_updated: Timestamp::now(),
            body: Some(format!(r#"{{"resourceType":"Patient","id":"{id}"}}"#)),
        },
        change: if version == 1 { ChangeKind::Create } else { ChangeKind::Update },
        index: IndexEntries { tokens },
    }
}

#[tokio::test]
async fn writes_are_visible_after_commit_only() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
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

#[tokio::test]
async fn history_pages_newest_first_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(&dir).await;
        for v in 1..=5 {
            let mut tx = store.begin_write(&ctx()).await.unwrap();
            tx.write(patient("p1", v, None)).await.unwrap();
            tx.commit().await.unwrap();
        }
    }
    let store = open(&dir).await;
    let mut request = HistoryRequest {
        resource_type: ResourceType::Patient,
        id: Some("p1".into()),
        count: 2,
        before: None,
    };
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
}

#[tokio::test]
async fn token_conditions_match_system_and_code() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let mut tx = store.begin_write(&ctx()).await.unwrap();
    tx.write(patient("a", 1, Some("111"))).await.unwrap();
    tx.write(patient("b", 1, Some("222"))).await.unwrap();
    tx.commit().await.unwrap();
    let find = |system: SystemMatch, code: Option<&str>| SearchRequest {
        resource_type: ResourceType::Patient,
        conditions: vec![Condition::TokenAny {
            param: "identifier".into(),
            alternatives: vec![TokenMatch { system, code: code.map(str::to_owned) }],
        }],
        count: 10,
        after_id: None,
    };
    let ids = |page: SearchPage| page.matches.into_iter().map(|m| m.id).collect::<Vec<_>>();
    let exact = store.search(&ctx(), &find(SystemMatch::Exactly("urn:sys".into()), Some("222"))).await.unwrap();
    assert_eq!(ids(exact), ["b"]);
    let no_system = store.search(&ctx(), &find(SystemMatch::None, Some("222"))).await.unwrap();
    assert!(no_system.matches.is_empty());
    let any_code = store.search(&ctx(), &find(SystemMatch::Exactly("urn:sys".into()), None)).await.unwrap();
    assert_eq!(any_code.total, 2);
}

#[tokio::test]
async fn concurrent_units_of_work_are_serialized() {
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(open(&dir).await);
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut tx = store.begin_write(&ctx()).await.unwrap();
            let next = tx
                .read_current(ResourceType::Patient, "counter")
                .await
                .unwrap()
                .map_or(1, |c| c.version + 1);
            tx.write(patient("counter", next, None)).await.unwrap();
            tx.commit().await.unwrap();
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let current = store.read_current(&ctx(), ResourceType::Patient, "counter").await.unwrap().unwrap();
    assert_eq!(current.version, 10);
}
