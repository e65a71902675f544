//! Group commit: one writer task that makes several units of work durable with one commit
//! (one WAL fsync under `synchronous=FULL`), each acknowledged only after it.
//!
//! Serialization: units of work still run one at a time. The writer owns the writer connection
//! (a plain rusqlite connection), begins one transaction (`BEGIN IMMEDIATE`, so another process
//! on the file cannot interleave) for a *group* of units and lends the connection to each unit
//! in turn, inside a `SAVEPOINT` of its own. What a unit reads cannot change before it ends, and
//! a unit sees the writes of the units before it in its group (they are one transaction).
//!
//! Threads: a unit runs its steps' statements on the lent connection on its own task's thread,
//! without handing each to another thread ([`Lent::run`]): a step of a booking takes
//! microseconds. Steps that may run long (a conditional write's search, bulk writes, purges,
//! re-index walks) go to a blocking thread with the connection ([`Lent::run_blocking`]). What
//! may wait on the disk or on another process — `BEGIN IMMEDIATE` (SQLite's busy timeout) and
//! `COMMIT` (the WAL fsync, and a checkpoint now and then) — runs on a blocking thread too, once
//! per group, so no tokio worker waits for it.
//!
//! A unit that commits releases its savepoint and waits: [`WriteTx::commit`] returns only once
//! its group's commit is durable. A unit that fails or is dropped without committing (an error
//! of its own, a conflict the domain found, an abandoned request) rolls back to its savepoint:
//! its writes are undone, the other units of the group keep theirs, and only it gets its error.
//!
//! The group ends when no further unit is waiting when one ends, or after [`MAX_GROUP`] units;
//! the writer then commits and acknowledges every committed unit of the group. If the commit
//! fails, every unit of the group fails with that error — none was acknowledged, and none is on
//! disk. If SQLite rolled back the whole transaction on its own (a full disk, an I/O error),
//! the savepoints are gone with it: releasing or rolling back the unit finds its savepoint
//! missing, and the whole group fails the same way. A unit refused because of an earlier
//! unit's write in its group (a slot that unit booked) keeps its refusal even when that group
//! then fails to commit: it was decided on writes that did not become durable, and its client
//! may retry.
//!
//! Side effects: readers (other connections) see a group's writes only after its commit, and
//! everything the layers above do after a unit's commit — its answer, outbox events that
//! delivery reads, notices to subscribers — follows the acknowledgement, so nothing is
//! announced before it is durable.
//!
//! Other writers (Subscription delivery, the e-mail queue, job leases) write on a connection of
//! their own (sqlx's), each change a single statement or a `BEGIN IMMEDIATE` transaction. One
//! writer at a time: they and the group writer take turns on [`WriteTurn`], an in-process
//! first-come lock held for a whole group (its `BEGIN IMMEDIATE` to its `COMMIT`) and for each of
//! their changes, so within the process they never meet at SQLite's lock. SQLite's lock
//! (`BEGIN IMMEDIATE`, a single statement's write lock) still keeps out another process on the
//! same file, and the busy timeout waits for one: on a blocking thread for the group writer,
//! on sqlx's connection thread for the others. Without the turn, they would meet at SQLite's
//! lock, whose busy handler polls with sleeps of up to 100 ms: a group writer that takes the lock
//! again right after each commit could starve delivery until its busy timeout.
//!
//! [`WriteTx::commit`]: termin_store::WriteTx::commit

use crate::limit::Limit;
use crate::plain::{self, run as run_sql};
use crate::{BUSY_TIMEOUT, CACHE_KIB};
use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use termin_store::{StoreError, StoreResult};
use tokio::sync::{Mutex, OwnedMutexGuard, mpsc, oneshot};

/// Units of work per group at most: enough to share one fsync among many bookings, few enough
/// that the first unit of a group does not wait long for the others to run.
const MAX_GROUP: usize = 32;

/// Distinct statements kept prepared on the writer connection: a unit's steps are a few dozen
/// statements, index inserts differing in their number of rows.
const PREPARED_STATEMENTS: usize = 256;

/// The turn of one writer of the process (see the module header); first come, first served.
#[derive(Clone, Default)]
pub(crate) struct WriteTurn(Arc<Mutex<()>>);

impl WriteTurn {
    pub async fn take(&self) -> OwnedMutexGuard<()> {
        self.0.clone().lock_owned().await
    }
}

/// A unit of work asking for the writer connection.
struct Request {
    lend: oneshot::Sender<StoreResult<Lent>>,
}

/// How a lent connection comes back to the writer.
struct Returned {
    conn: Connection,
    /// `Some`: the unit committed and waits for the group's outcome; `None`: it was abandoned.
    ack: Option<oneshot::Sender<StoreResult<()>>>,
}

/// The writer connection lent to one unit of work, inside its savepoint, with a time limit of
/// its own. Dropped without [`Lent::commit`], it goes back to the writer to be rolled back to
/// the savepoint.
pub(crate) struct Lent {
    conn: Option<Connection>,
    back: Option<oneshot::Sender<Returned>>,
    limit: Limit,
}

impl Lent {
    /// The time limit of this unit's statements.
    pub fn limit(&self) -> &Limit {
        &self.limit
    }

    /// Runs `work` on the connection here, on the unit's thread: statements of microseconds.
    pub fn run<T>(&mut self, work: impl FnOnce(&mut Connection) -> StoreResult<T>) -> StoreResult<T> {
        match self.conn.as_mut() {
            Some(conn) => work(conn),
            None => Err(lost()),
        }
    }

    /// Runs `work` on the connection on a blocking thread: statements that may run long. If
    /// the unit is abandoned meanwhile (its time limit then stops the statement), the
    /// connection goes back to the writer from there, to be rolled back to the savepoint.
    pub async fn run_blocking<T: Send + 'static>(
        &mut self,
        work: impl FnOnce(&mut Connection) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let (Some(mut conn), Some(back)) = (self.conn.take(), self.back.take()) else {
            return Err(lost());
        };
        let (done, finished) = oneshot::channel();
        tokio::task::spawn_blocking(move || {
            let result = work(&mut conn);
            if let Err((conn, back, _)) = done.send((conn, back, result)) {
                let _ = back.send(Returned { conn, ack: None });
            }
        });
        // A blocking thread that panicked dropped the connection: the writer opens another.
        let (conn, back, result) = finished.await.map_err(|_| lost())?;
        self.conn = Some(conn);
        self.back = Some(back);
        result
    }

    /// Hands the unit's writes to the group and waits until the group's commit is durable.
    pub async fn commit(mut self) -> StoreResult<()> {
        let (ack, acknowledged) = oneshot::channel();
        self.give_back(Some(ack));
        acknowledged.await.unwrap_or_else(|_| Err(stopped()))
    }

    fn give_back(&mut self, ack: Option<oneshot::Sender<StoreResult<()>>>) {
        if let (Some(conn), Some(back)) = (self.conn.take(), self.back.take()) {
            // A writer that is gone (the runtime shuts down) drops the connection, and with it
            // the open transaction.
            let _ = back.send(Returned { conn, ack });
        }
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        self.give_back(None);
    }
}

#[derive(Default)]
struct Counters {
    waiting: AtomicUsize,
    groups: AtomicU64,
    units: AtomicU64,
}

/// How many groups and units of work the writer has committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitCounts {
    pub groups: u64,
    pub units: u64,
}

/// The handle of the writer task; the task ends when the handle is dropped.
pub(crate) struct GroupWriter {
    requests: mpsc::UnboundedSender<Request>,
    counters: Arc<Counters>,
}

impl GroupWriter {
    /// Opens the writer connection to the database at `path` (whose schema is up to date) and
    /// starts the writer task, which takes `turn` for each group.
    pub fn start(path: &Path, turn: WriteTurn) -> StoreResult<GroupWriter> {
        let writer = Writer { path: path.to_owned(), idle: Some(connect(path)?), turn };
        let (requests, receiver) = mpsc::unbounded_channel();
        let counters = Arc::new(Counters::default());
        tokio::spawn(run(writer, receiver, counters.clone()));
        Ok(GroupWriter { requests, counters })
    }

    /// Waits for the writer connection, lent inside a savepoint of the current group.
    pub async fn begin(&self) -> StoreResult<Lent> {
        let (lend, lent) = oneshot::channel();
        // Counted before it is sent, so the writer never counts it down first.
        self.counters.waiting.fetch_add(1, Ordering::SeqCst);
        if self.requests.send(Request { lend }).is_err() {
            self.counters.waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(stopped());
        }
        lent.await.unwrap_or_else(|_| Err(stopped()))
    }

    /// Units of work waiting for the writer connection.
    pub fn waiting(&self) -> usize {
        self.counters.waiting.load(Ordering::SeqCst)
    }

    pub fn commit_counts(&self) -> CommitCounts {
        CommitCounts {
            groups: self.counters.groups.load(Ordering::SeqCst),
            units: self.counters.units.load(Ordering::SeqCst),
        }
    }
}

fn stopped() -> StoreError {
    StoreError::Unavailable("the database writer stopped".into())
}

fn lost() -> StoreError {
    StoreError::Unavailable("the writer connection was lost".into())
}

/// The writer connection with the pragmas of the sqlx connections (`SqliteStore::open`): WAL,
/// `synchronous=FULL` (a commit is durable when it returns), foreign keys, the busy timeout.
/// Besides, temporary files in memory: each unit of work runs in a savepoint of its group's
/// transaction, and SQLite keeps the original of every page a unit changes in a statement
/// journal, a temporary file; in memory, those copies cost no write system call (slot
/// generation changes thousands of index pages per Schedule; docs/benchmarks.md, slotgen4).
fn connect(path: &Path) -> StoreResult<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags)
        .map_err(|e| StoreError::Unavailable(format!("{}: {e}", path.display())))?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(plain::store_error)?;
    for (pragma, value) in [
        ("journal_mode", "WAL".to_owned()),
        ("synchronous", "FULL".to_owned()),
        ("foreign_keys", "ON".to_owned()),
        ("cache_size", format!("-{CACHE_KIB}")),
        ("temp_store", "MEMORY".to_owned()),
    ] {
        conn.pragma_update(None, pragma, value).map_err(plain::store_error)?;
    }
    conn.set_prepared_statement_cache_capacity(PREPARED_STATEMENTS);
    Ok(conn)
}

/// The writer task's connection (`None` once lost: the next group opens another) and turn.
struct Writer {
    path: PathBuf,
    idle: Option<Connection>,
    turn: WriteTurn,
}

/// Runs `work` on `conn` on a blocking thread; the connection comes back unless the thread
/// panicked or the runtime shuts down.
async fn blocking(
    mut conn: Connection,
    work: impl FnOnce(&mut Connection) -> StoreResult<()> + Send + 'static,
) -> (Option<Connection>, StoreResult<()>) {
    let task = tokio::task::spawn_blocking(move || {
        let result = work(&mut conn);
        (conn, result)
    });
    match task.await {
        Ok((conn, result)) => (Some(conn), result),
        Err(e) => (None, Err(StoreError::Unavailable(format!("the database writer failed: {e}")))),
    }
}

/// The committed units of the open group, waiting for its outcome.
type Acks = Vec<oneshot::Sender<StoreResult<()>>>;

async fn run(mut writer: Writer, mut requests: mpsc::UnboundedReceiver<Request>, counters: Arc<Counters>) {
    while let Some(first) = requests.recv().await {
        counters.waiting.fetch_sub(1, Ordering::SeqCst);
        let _turn = writer.turn.take().await;
        let conn = match begin_group(&mut writer).await {
            Ok(conn) => conn,
            Err(e) => {
                let _ = first.lend.send(Err(e));
                continue;
            }
        };
        let mut acks = Acks::new();
        writer.idle = match run_group(conn, first, &mut requests, &counters, &mut acks).await {
            Ok(conn) => {
                // A fresh handler: an abandoned unit's time limit may say stop, and the commit
                // must not be interrupted by it.
                let (conn, committed) = blocking(conn, |conn| {
                    Limit::install_plain(conn)?;
                    run_sql(conn, "COMMIT")
                })
                .await;
                match committed {
                    // A group whose every unit was rolled back wrote nothing: no fsync to count.
                    Ok(()) if acks.is_empty() => {}
                    Ok(()) => {
                        counters.groups.fetch_add(1, Ordering::SeqCst);
                        counters.units.fetch_add(acks.len() as u64, Ordering::SeqCst);
                        metrics::counter!("termin_db_commits_total").increment(1);
                        metrics::counter!("termin_db_committed_units_total").increment(acks.len() as u64);
                        for ack in acks {
                            let _ = ack.send(Ok(()));
                        }
                    }
                    Err(e) => {
                        if let Some(conn) = &conn {
                            roll_back(conn);
                        }
                        fail(acks, &e);
                    }
                }
                conn
            }
            Err((conn, e)) => {
                if let Some(conn) = &conn {
                    roll_back(conn);
                }
                fail(acks, &e);
                conn
            }
        };
    }
}

/// Rolls back the group's transaction, if SQLite has not already.
fn roll_back(conn: &Connection) {
    if !conn.is_autocommit() {
        let _ = Limit::install_plain(conn).and_then(|_| run_sql(conn, "ROLLBACK"));
    }
}

/// Begins a group's transaction on the writer connection (opening another if it was lost), on a
/// blocking thread: `BEGIN IMMEDIATE` waits for another process's lock up to the busy timeout.
async fn begin_group(writer: &mut Writer) -> StoreResult<Connection> {
    let idle = writer.idle.take();
    let path = writer.path.clone();
    let task = tokio::task::spawn_blocking(move || {
        let conn = match idle.map_or_else(|| connect(&path), Ok) {
            Ok(conn) => conn,
            Err(e) => return (None, Err(e)),
        };
        let begun = run_sql(&conn, "BEGIN IMMEDIATE");
        (Some(conn), begun)
    });
    let outcome = task.await;
    match outcome.unwrap_or_else(|e| (None, Err(StoreError::Unavailable(format!("the database writer failed: {e}"))))) {
        (Some(conn), Ok(())) => Ok(conn),
        (conn, begun) => {
            writer.idle = conn;
            Err(begun.err().unwrap_or_else(lost))
        }
    }
}

/// Serves `first` and then each unit already waiting when the previous one ends, up to
/// [`MAX_GROUP`]. On failure the group is lost: the connection (if it came back) and why.
async fn run_group(
    mut conn: Connection,
    first: Request,
    requests: &mut mpsc::UnboundedReceiver<Request>,
    counters: &Counters,
    acks: &mut Acks,
) -> Result<Connection, (Option<Connection>, StoreError)> {
    let mut request = first;
    let mut served = 1;
    loop {
        conn = match serve(conn, request, acks).await {
            Served::Kept(conn) => conn,
            Served::Lost(conn, e) => return Err((Some(conn), e)),
            Served::Gone => return Err((None, lost())),
        };
        if served == MAX_GROUP {
            return Ok(conn);
        }
        match requests.try_recv() {
            Ok(next) => {
                counters.waiting.fetch_sub(1, Ordering::SeqCst);
                request = next;
                served += 1;
            }
            Err(_) => return Ok(conn),
        }
    }
}

enum Served {
    /// The unit ended (committed into the group or rolled back to its savepoint).
    Kept(Connection),
    /// The group's transaction cannot be committed.
    Lost(Connection, StoreError),
    /// The lent connection never came back (a blocking thread of the unit panicked).
    Gone,
}

/// Lends the connection to one unit of work inside a savepoint and settles the savepoint when
/// the connection comes back. The savepoint statements take microseconds and run here.
async fn serve(conn: Connection, request: Request, acks: &mut Acks) -> Served {
    // A handler of this unit's own: an earlier unit's may still say stop.
    let limit = match run_sql(&conn, "SAVEPOINT unit").and_then(|()| Limit::install_plain(&conn)) {
        Ok(limit) => limit,
        Err(e) => {
            let _ = request.lend.send(Err(duplicate(&e)));
            return Served::Lost(conn, e);
        }
    };
    let (back, returned) = oneshot::channel();
    // A requester that is gone drops the lent connection, which sends it back as abandoned.
    let _ = request.lend.send(Ok(Lent { conn: Some(conn), back: Some(back), limit }));
    match returned.await {
        Ok(Returned { conn, ack: Some(ack) }) => match run_sql(&conn, "RELEASE unit") {
            Ok(()) => {
                acks.push(ack);
                Served::Kept(conn)
            }
            Err(e) => {
                let _ = ack.send(Err(duplicate(&e)));
                Served::Lost(conn, e)
            }
        },
        Ok(Returned { conn, ack: None }) => {
            // The abandoned unit's time limit may say stop; the undo must run.
            let undone = Limit::install_plain(&conn)
                .and_then(|_| run_sql(&conn, "ROLLBACK TO unit"))
                .and_then(|()| run_sql(&conn, "RELEASE unit"));
            match undone {
                Ok(()) => Served::Kept(conn),
                Err(e) => Served::Lost(conn, e),
            }
        }
        Err(_) => Served::Gone,
    }
}

/// Fails every committed unit of a lost group with `e`.
fn fail(acks: Acks, e: &StoreError) {
    for ack in acks {
        let _ = ack.send(Err(duplicate(e)));
    }
}

/// The same error for another unit of the group (a `StoreError` is not `Clone`).
fn duplicate(e: &StoreError) -> StoreError {
    match e {
        StoreError::Unavailable(m) => StoreError::Unavailable(m.clone()),
        StoreError::Timeout(m) => StoreError::Timeout(m.clone()),
        StoreError::Conflict(m) => StoreError::Conflict(m.clone()),
        StoreError::Database(m) => StoreError::Database(m.clone()),
        StoreError::Corrupt(m) => StoreError::Corrupt(m.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Counts forever.
    const ENDLESS: &str = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c";
    const HANG_GUARD: Duration = Duration::from_secs(60);

    fn count(conn: &Connection, sql: &str) -> StoreResult<i64> {
        conn.query_row(sql, [], |row| row.get(0)).map_err(plain::store_error)
    }

    async fn guarded<T>(future: impl Future<Output = T>) -> T {
        tokio::time::timeout(HANG_GUARD, future).await.expect("the writer answered")
    }

    #[tokio::test]
    async fn a_unit_abandoned_on_a_blocking_thread_is_stopped_and_undone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        Connection::open(&path).unwrap().execute_batch("CREATE TABLE t (x INTEGER)").unwrap();
        let writer = GroupWriter::start(&path, WriteTurn::default()).unwrap();

        // The unit writes, then runs a statement that never ends on a blocking thread, with a
        // time limit far beyond the test; it is abandoned meanwhile.
        let mut lent = guarded(writer.begin()).await.unwrap();
        lent.run(|conn| run_sql(conn, "INSERT INTO t VALUES (1)")).unwrap();
        let timed = lent.limit().timed(Some(HANG_GUARD * 10));
        let mut running = Box::pin(async move {
            let _timed = timed;
            lent.run_blocking(|conn| count(conn, ENDLESS)).await
        });
        assert!(tokio::time::timeout(Duration::from_millis(20), &mut running).await.is_err(), "it runs");
        drop(running);

        // The statement stopped, the connection came back, and the unit's write was undone;
        // the next unit's statements run under a limit of their own.
        let mut next = guarded(writer.begin()).await.unwrap();
        assert_eq!(next.run(|conn| count(conn, "SELECT count(*) FROM t")).unwrap(), 0);
        next.run(|conn| run_sql(conn, "INSERT INTO t VALUES (2)")).unwrap();
        guarded(next.commit()).await.unwrap();
        let reader = Connection::open(&path).unwrap();
        assert_eq!(count(&reader, "SELECT sum(x) FROM t").unwrap(), 2);
        assert_eq!(writer.commit_counts(), CommitCounts { groups: 1, units: 1 });
    }
}
