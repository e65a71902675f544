//! The time limit of statements (`--query-timeout`), and stopping the statement of a request
//! that was abandoned.
//!
//! SQLite calls a connection's progress handler every [`PROGRESS_STEPS`] virtual machine
//! instructions of a statement; when it answers `false`, the statement stops with
//! `SQLITE_INTERRUPT` (reported as [`StoreError::Timeout`]). Statements of fewer instructions
//! (reads by key, `BEGIN`, `ROLLBACK`) never call it.

use crate::db_error;
use sqlx::pool::PoolConnection;
use sqlx::{Sqlite, SqliteConnection, SqlitePool};
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use termin_store::StoreResult;

/// Often enough to stop within about a millisecond, rarely enough to cost nothing measurable.
const PROGRESS_STEPS: i32 = 1000;

/// What the progress handler of one connection enforces.
#[derive(Debug, Clone, Copy)]
enum Rule {
    Unlimited,
    Until(Instant),
    Stop,
}

/// Whether the statement may go on under `rule`.
fn allows(rule: &Mutex<Rule>) -> bool {
    match *rule.lock().unwrap_or_else(PoisonError::into_inner) {
        Rule::Unlimited => true,
        Rule::Until(deadline) => Instant::now() < deadline,
        Rule::Stop => false,
    }
}

/// The rule a connection's statements run under; changed between statements.
#[derive(Clone)]
pub(crate) struct Limit(Arc<Mutex<Rule>>);

impl Limit {
    /// Gives `conn` a progress handler of its own (replacing any earlier one), enforcing
    /// nothing yet.
    pub async fn install(conn: &mut SqliteConnection) -> StoreResult<Limit> {
        let limit = Limit(Arc::new(Mutex::new(Rule::Unlimited)));
        let rule = limit.0.clone();
        conn.lock_handle().await.map_err(db_error)?.set_progress_handler(PROGRESS_STEPS, move || allows(&rule));
        Ok(limit)
    }

    /// [`Limit::install`] on a plain connection (the group writer's).
    pub fn install_plain(conn: &rusqlite::Connection) -> StoreResult<Limit> {
        let limit = Limit(Arc::new(Mutex::new(Rule::Unlimited)));
        let rule = limit.0.clone();
        // rusqlite's handler answers whether to interrupt, sqlx's whether to go on.
        conn.progress_handler(PROGRESS_STEPS, Some(move || !allows(&rule))).map_err(crate::plain::store_error)?;
        Ok(limit)
    }

    fn set(&self, rule: Rule) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = rule;
    }

    /// Statements from now on stop once `timeout` (if any) has passed.
    pub fn start(&self, timeout: Option<Duration>) {
        if let Some(timeout) = timeout {
            self.set(Rule::Until(Instant::now() + timeout));
        }
    }

    /// Statements from now on run without a limit.
    pub fn lift(&self) {
        self.set(Rule::Unlimited);
    }

    /// Stops the running statement and every later one.
    pub fn stop(&self) {
        self.set(Rule::Stop);
    }
}

/// A time limit started by [`Limit::timed`]; dropped before [`Timed::done`] — the request was
/// abandoned — it stops the running statement.
pub(crate) struct Timed(Option<Limit>);

impl Limit {
    pub fn timed(&self, timeout: Option<Duration>) -> Timed {
        self.start(timeout);
        Timed(Some(self.clone()))
    }
}

impl Timed {
    pub fn done(mut self) {
        if let Some(limit) = self.0.take() {
            limit.lift();
        }
    }
}

impl Drop for Timed {
    fn drop(&mut self) {
        if let Some(limit) = self.0.take() {
            limit.stop();
        }
    }
}

/// A read connection whose statements stop once the time limit has passed since it was
/// acquired. Dropped before [`TimedRead::finish`] — the request was abandoned — it stops its
/// running statement and is closed instead of going back to the pool, so that the stopping
/// rule cannot reach another request's statements.
pub(crate) struct TimedRead {
    conn: PoolConnection<Sqlite>,
    limit: Limit,
    finished: bool,
}

impl TimedRead {
    pub async fn acquire(pool: &SqlitePool, timeout: Option<Duration>) -> StoreResult<TimedRead> {
        let mut conn = pool.acquire().await.map_err(db_error)?;
        let limit = Limit::install(&mut conn).await?;
        limit.start(timeout);
        Ok(TimedRead { conn, limit, finished: false })
    }

    /// The reads are done: the connection goes back to the pool, without a limit.
    pub fn finish(mut self) {
        self.limit.lift();
        self.finished = true;
    }
}

impl Drop for TimedRead {
    fn drop(&mut self) {
        if !self.finished {
            self.limit.stop();
            self.conn.close_on_drop();
        }
    }
}

impl Deref for TimedRead {
    type Target = SqliteConnection;

    fn deref(&self) -> &SqliteConnection {
        &self.conn
    }
}

impl DerefMut for TimedRead {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        &mut self.conn
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::sqlite::SqliteConnectOptions;
    use termin_store::StoreError;

    /// Counts forever.
    const ENDLESS: &str = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c";
    const HANG_GUARD: Duration = Duration::from_secs(60);

    async fn run(conn: &mut SqliteConnection, sql: &'static str) -> StoreResult<i64> {
        let query = sqlx::query_scalar(sql).fetch_one(conn);
        tokio::time::timeout(HANG_GUARD, query).await.expect("the statement stopped").map_err(db_error)
    }

    #[tokio::test]
    async fn statements_stop_at_the_deadline_and_when_abandoned() {
        let dir = tempfile::tempdir().unwrap();
        let options = SqliteConnectOptions::new().filename(dir.path().join("t.db")).create_if_missing(true);
        let pool = SqlitePool::connect_with(options).await.unwrap();
        let mut conn = pool.acquire().await.unwrap();
        let limit = Limit::install(&mut conn).await.unwrap();

        let timed = limit.timed(Some(Duration::from_millis(20)));
        assert!(matches!(run(&mut conn, ENDLESS).await, Err(StoreError::Timeout(_))));
        timed.done();
        let counted =
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100000) SELECT count(*) FROM c";
        assert_eq!(run(&mut conn, counted).await.unwrap(), 100_000, "a lifted limit stops nothing");

        // Dropping the time limit unfinished (its request was abandoned) stops the statement
        // running, however long its limit.
        let timed = limit.timed(Some(HANG_GUARD * 10));
        let mut running = Box::pin(sqlx::query_scalar::<_, i64>(ENDLESS).fetch_one(&mut *conn));
        assert!(tokio::time::timeout(Duration::from_millis(10), &mut running).await.is_err(), "it runs");
        drop(timed);
        let stopped = tokio::time::timeout(HANG_GUARD, running).await.expect("the statement stopped");
        assert!(matches!(stopped.map_err(db_error), Err(StoreError::Timeout(_))));
    }
}
