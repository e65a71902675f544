//! Transaction-scoped advisory locks (`pg_advisory_xact_lock(class, key)`), released at commit
//! or rollback. Each kind of lock has its own class ("TER" and a number), so Termin's keys
//! neither meet each other's nor another application's on the same database.

use sqlx::PgConnection;
use termin_fhir::ResourceType;

pub enum AdvisoryLock<'a> {
    /// Schema migration at start-up: nodes starting together take turns.
    Migration,
    /// Appending to the outbox at commit: sequence numbers follow commit order.
    Outbox,
    /// Writes that depend on what a search finds (conditional create/update, idempotent
    /// `$book`) of one resource type.
    ResourceType(ResourceType),
    /// A resource id that does not exist yet: units of work creating one id take turns.
    NewResource(ResourceType, &'a str),
    /// The holder of slot holds whose live holds are counted against its limit.
    Holder(&'a str),
}

impl AdvisoryLock<'_> {
    fn class(&self) -> i32 {
        const TER: i32 = 0x5445_5200;
        match self {
            AdvisoryLock::Migration => TER,
            AdvisoryLock::Outbox => TER + 1,
            AdvisoryLock::ResourceType(_) => TER + 2,
            AdvisoryLock::NewResource(..) => TER + 3,
            AdvisoryLock::Holder(_) => TER + 4,
        }
    }

    /// Hashed by PostgreSQL (`hashtext`) into the lock's 32-bit key; a collision only makes two
    /// unrelated writers take turns.
    fn key(&self) -> String {
        match self {
            AdvisoryLock::Migration | AdvisoryLock::Outbox => String::new(),
            AdvisoryLock::ResourceType(resource_type) => resource_type.as_str().to_owned(),
            AdvisoryLock::NewResource(resource_type, id) => format!("{resource_type}/{id}"),
            AdvisoryLock::Holder(holder) => (*holder).to_owned(),
        }
    }

    /// Waits for the lock; it is held until the transaction ends.
    pub async fn acquire(&self, conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
            .bind(self.class())
            .bind(self.key())
            .execute(conn)
            .await
            .map(|_| ())
    }
}
