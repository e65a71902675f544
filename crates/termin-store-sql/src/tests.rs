//! The parts of the shared SQL that need no database: how each dialect spells what differs,
//! and how failures become store errors; then the migration runner on an in-memory SQLite
//! database. The statements themselves are checked by the conformance kit, which every
//! backend runs.

use super::*;
use crate::index::clear;
use sqlx::{Connection, SqliteConnection};

#[test]
fn change_kinds_round_trip_and_unknown_ones_are_corrupt() {
    for change in [ChangeKind::Create, ChangeKind::Update, ChangeKind::Delete] {
        assert_eq!(parse_change(change_name(change)).unwrap(), change);
    }
    assert!(matches!(parse_change("merge"), Err(StoreError::Corrupt(_))));
}

#[test]
fn instant_columns_are_optional_and_checked() {
    assert_eq!(parse_instant_column(None).unwrap(), None);
    let instant = parse_instant_column(Some("2026-04-07T08:00:00Z".into())).unwrap();
    assert_eq!(instant, Some("2026-04-07T08:00:00Z".parse().unwrap()));
    assert!(matches!(parse_instant_column(Some("tomorrow".into())), Err(StoreError::Corrupt(_))));
}

#[test]
fn sqlite_clears_each_index_table_by_itself() {
    let statements = clear::<Sqlite>("Slot", "s1");
    assert_eq!(statements.len(), 9);
    assert_eq!(statements[0].sql().as_str(), "DELETE FROM search_token WHERE res_type = ? AND res_id = ?");
}

#[test]
fn postgres_clears_every_index_table_in_one_statement() {
    let statements = clear::<Postgres>("Slot", "s1");
    assert_eq!(statements.len(), 1);
    let sql = statements[0].sql();
    let sql = sql.as_str();
    assert!(sql.starts_with("WITH t0 AS (DELETE FROM search_token WHERE res_type = $1 AND res_id = $2)"), "{sql}");
    assert!(sql.ends_with("DELETE FROM search_position WHERE res_type = $17 AND res_id = $18"), "{sql}");
}

#[test]
fn only_postgres_drops_nul_from_indexed_text() {
    let text_of = |value: Value| match value {
        Value::Text(text) => text,
        _ => panic!("not text"),
    };
    assert_eq!(text_of(index::text::<Sqlite>("a\0b")), "a\0b");
    assert_eq!(text_of(index::text::<Postgres>("a\0b")), "ab");
}

#[test]
fn statements_bind_in_the_dialects_placeholders() {
    let sqlite = select_current::<Sqlite>(termin_fhir::ResourceType::Slot, "s1");
    assert!(sqlite.sql().as_str().ends_with("WHERE res_type = ? AND res_id = ?"));
    let postgres = select_current::<Postgres>(termin_fhir::ResourceType::Slot, "s1");
    assert!(postgres.sql().as_str().ends_with("WHERE res_type = $1 AND res_id = $2"));
}

#[test]
fn failures_become_the_store_errors_of_their_backend() {
    let corrupt = StoreError::from(Failure::<Sqlite>::Store(StoreError::Corrupt("x".into())));
    assert!(matches!(corrupt, StoreError::Corrupt(_)));
    let sqlite = StoreError::from(Failure::<Sqlite>::from(sqlx::Error::PoolTimedOut));
    assert!(matches!(sqlite, StoreError::Unavailable(_)));
    let postgres = StoreError::from(Failure::<Postgres>::from(sqlx::Error::PoolTimedOut));
    assert!(matches!(postgres, StoreError::Unavailable(_)));
    let other = StoreError::from(Failure::<Postgres>::from(sqlx::Error::RowNotFound));
    assert!(matches!(other, StoreError::Database(_)));
}

fn steps() -> Vec<Migration> {
    vec![
        Migration { version: 1, sql: "CREATE TABLE first (a TEXT);", shared: vec![] },
        Migration { version: 2, sql: "CREATE TABLE second (b TEXT);", shared: vec!["INSERT INTO second VALUES ('x');"] },
    ]
}

async fn applied(conn: &mut SqliteConnection) -> Vec<i64> {
    sqlx::query_scalar("SELECT version FROM termin_schema_version ORDER BY version")
        .fetch_all(conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn migrations_apply_once_in_order_and_a_newer_schema_is_refused() {
    let mut conn = SqliteConnection::connect("sqlite::memory:").await.unwrap();
    let steps = steps();
    migrate::<Sqlite>(&mut conn, &steps[..1]).await.unwrap();
    assert_eq!(applied(&mut conn).await, [1]);
    migrate::<Sqlite>(&mut conn, &steps).await.unwrap();
    migrate::<Sqlite>(&mut conn, &steps).await.unwrap();
    assert_eq!(applied(&mut conn).await, [1, 2]);
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM second").fetch_one(&mut conn).await.unwrap();
    assert_eq!(rows, 1, "the second step ran once, its shared script after its own");
    let older_build = migrate::<Sqlite>(&mut conn, &steps[..1]).await.map_err(StoreError::from);
    assert!(matches!(older_build, Err(StoreError::Database(message)) if message.contains("newer")));
}

#[test]
fn migration_files_are_the_steps_numbered_without_gaps() {
    use include_dir::{Dir, DirEntry, File};
    static FILES: Dir = Dir::new(
        "",
        &[
            DirEntry::File(File::new("0002_second.sql", b"CREATE TABLE b (x TEXT);\n-- shared: mail_queue\n")),
            DirEntry::File(File::new("0001_first.sql", b"CREATE TABLE a (x TEXT);")),
            DirEntry::File(File::new("README.md", b"not a step")),
        ],
    );
    let steps = crate::migration_steps(&FILES).unwrap();
    assert_eq!(steps.iter().map(|s| s.version).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(steps[1].shared, [crate::shared_ddl::MAIL_QUEUE]);

    static GAP: Dir = Dir::new("", &[DirEntry::File(File::new("0002_second.sql", b""))]);
    assert!(matches!(crate::migration_steps(&GAP), Err(StoreError::Database(m)) if m.contains("step 1")));
    static UNKNOWN: Dir = Dir::new("", &[DirEntry::File(File::new("0001_a.sql", b"-- shared: nothing\n"))]);
    assert!(crate::migration_steps(&UNKNOWN).is_err());
    static UNNUMBERED: Dir = Dir::new("", &[DirEntry::File(File::new("first.sql", b""))]);
    assert!(crate::migration_steps(&UNNUMBERED).is_err());
}
