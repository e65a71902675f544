//! The reader pool: plain SQLite connections (rusqlite) for searches and reads by key. sqlx
//! runs each of its SQLite connections on a thread of its own and hands every statement and
//! row batch to it over a channel, waking two threads per statement; here a request's
//! statements all run on one blocking thread, handed over once per request. The statements are
//! the shared ones (`termin-store-sql`), run through its `Reader` seam (`plain`).
//!
//! The time limit (`--query-timeout`) is kept: each use installs a progress handler of its own
//! that stops the statement once the limit has passed, or once the request was abandoned (its
//! future dropped), so no query can hold a connection longer than the limit.

use crate::plain::store_error;
use crate::{BUSY_TIMEOUT, CACHE_KIB};
use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use termin_store::{StoreError, StoreResult};
use tokio::sync::Semaphore;

/// As the sqlx connections' handler (`limit`): stops within about a millisecond.
const PROGRESS_STEPS: i32 = 1000;

/// How long a request waits for a connection of the pool before failing as unavailable (as
/// sqlx's pools, whose default this is), so that an overloaded node answers instead of queueing.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);

/// Distinct statements kept prepared per connection (sqlx's default is 100): searches differ
/// in their conditions, and a re-prepared statement costs more than the step it runs.
const PREPARED_STATEMENTS: usize = 128;

pub(crate) struct ReaderPool {
    shared: Arc<Shared>,
}

struct Shared {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    /// One permit per connection: at most that many requests read at once.
    permits: Arc<Semaphore>,
}

impl ReaderPool {
    /// A pool of up to `size` read-only connections to the database at `path`, opened as needed;
    /// one is opened now, so that a file that cannot be read fails at start-up.
    pub fn open(path: &Path, size: u32) -> StoreResult<ReaderPool> {
        let size = size.max(1) as usize;
        let first = connect(path)?;
        Ok(ReaderPool {
            shared: Arc::new(Shared {
                path: path.to_owned(),
                idle: Mutex::new(vec![first]),
                permits: Arc::new(Semaphore::new(size)),
            }),
        })
    }

    /// Runs `work` on a connection of the pool, on a blocking thread, its statements stopped
    /// once `timeout` (if any) has passed or when the returned future is dropped.
    pub async fn run<T: Send + 'static>(
        &self,
        timeout: Option<Duration>,
        work: impl FnOnce(&mut Connection) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let waiting = tokio::time::timeout(ACQUIRE_TIMEOUT, self.shared.permits.clone().acquire_owned());
        let permit = waiting
            .await
            .map_err(|_| StoreError::Unavailable("no read connection came free in time".into()))?
            .map_err(|_| closed())?;
        let stop = Arc::new(AtomicBool::new(false));
        let abandoned = StopOnDrop(Some(stop.clone()));
        let shared = self.shared.clone();
        let deadline = timeout.map(|timeout| Instant::now() + timeout);
        let task = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let idle = shared.idle.lock().unwrap_or_else(PoisonError::into_inner).pop();
            let mut conn = match idle {
                Some(conn) => conn,
                None => connect(&shared.path)?,
            };
            let handler = move || stop.load(Ordering::Relaxed) || deadline.is_some_and(|d| Instant::now() >= d);
            conn.progress_handler(PROGRESS_STEPS, Some(handler)).map_err(store_error)?;
            let result = work(&mut conn);
            // The connection goes back only if it is clean: outside a transaction.
            if conn.is_autocommit() && conn.progress_handler(0, None::<fn() -> bool>).is_ok() {
                shared.idle.lock().unwrap_or_else(PoisonError::into_inner).push(conn);
            }
            result
        });
        let result = task.await.map_err(|e| StoreError::Database(format!("a read failed: {e}")))?;
        abandoned.finish();
        result
    }
}

fn closed() -> StoreError {
    StoreError::Unavailable("the reader pool is closed".into())
}

/// Set when dropped unfinished: the request was abandoned, so its statement stops.
struct StopOnDrop(Option<Arc<AtomicBool>>);

impl StopOnDrop {
    fn finish(mut self) {
        self.0 = None;
    }
}

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        if let Some(stop) = self.0.take() {
            stop.store(true, Ordering::Relaxed);
        }
    }
}

/// A read-only connection with the pragmas of the sqlx connections that matter to reads.
fn connect(path: &Path) -> StoreResult<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags)
        .map_err(|e| StoreError::Unavailable(format!("{}: {e}", path.display())))?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(store_error)?;
    conn.pragma_update(None, "cache_size", format!("-{CACHE_KIB}")).map_err(store_error)?;
    conn.set_prepared_statement_cache_capacity(PREPARED_STATEMENTS);
    Ok(conn)
}

/// Runs `body` in one read transaction, so that all its statements see one snapshot.
pub(crate) fn in_snapshot<T>(
    conn: &mut Connection,
    body: impl FnOnce(&mut Connection) -> StoreResult<T>,
) -> StoreResult<T> {
    crate::plain::run(conn, "BEGIN")?;
    let result = body(conn);
    let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
    let ended = crate::plain::run(conn, end);
    let value = result?;
    ended?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plain::{Plain, complete};
    use termin_store_sql::{Column, Reader, Statement};

    /// Counts forever.
    const ENDLESS: &str = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c";
    const HANG_GUARD: Duration = Duration::from_secs(60);

    fn pool_of_one(dir: &tempfile::TempDir) -> ReaderPool {
        let path = dir.path().join("t.db");
        Connection::open(&path).unwrap().execute_batch("CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (7)").unwrap();
        ReaderPool::open(&path, 1).unwrap()
    }

    fn single(conn: &mut Connection, sql: &str) -> StoreResult<i64> {
        let rows = complete(async { Ok(Plain(conn).fetch_all(Statement::new(sql)).await?) })?;
        Ok(Plain::integer(&rows[0], Column::At(0))?)
    }

    async fn guarded<T>(future: impl Future<Output = T>) -> T {
        tokio::time::timeout(HANG_GUARD, future).await.expect("the read finished")
    }

    #[tokio::test]
    async fn reads_stop_at_the_deadline_and_when_abandoned() {
        let dir = tempfile::tempdir().unwrap();
        let pool = pool_of_one(&dir);
        assert_eq!(guarded(pool.run(None, |conn| single(conn, "SELECT x FROM t"))).await.unwrap(), 7);

        let limited = pool.run(Some(Duration::from_millis(20)), |conn| single(conn, ENDLESS));
        assert!(matches!(guarded(limited).await, Err(StoreError::Timeout(_))));

        // Abandoned (its future dropped while it runs, however long its limit), the read stops
        // and gives the pool's only connection back to the next request.
        let mut running = Box::pin(pool.run(Some(HANG_GUARD * 10), |conn| single(conn, ENDLESS)));
        assert!(tokio::time::timeout(Duration::from_millis(10), &mut running).await.is_err(), "it runs");
        drop(running);
        let next = pool.run(None, |conn| in_snapshot(conn, |conn| single(conn, "SELECT x FROM t")));
        assert_eq!(guarded(next).await.unwrap(), 7);
    }
}
