//! Group commit: one writer task that makes several units of work durable with one commit
//! (one WAL fsync under `synchronous=FULL`), each acknowledged only after it.
//!
//! Serialization: units of work still run one at a time. The writer takes the writer
//! connection, begins one transaction (`BEGIN IMMEDIATE`, so another process on the file cannot
//! interleave) for a *group* of units and lends the connection to each unit in turn, inside a
//! `SAVEPOINT` of its own. What a unit reads cannot change before it ends, and a unit sees the
//! writes of the units before it in its group (they are one transaction).
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
//! Other users of the writer connection (Subscription delivery, the e-mail queue, job leases)
//! take it from the same one-connection pool between groups, as before.
//!
//! [`WriteTx::commit`]: termin_store::WriteTx::commit

use crate::db_error;
use crate::limit::Limit;
use sqlx::pool::PoolConnection;
use sqlx::{Sqlite, SqliteConnection, SqlitePool};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use termin_store::{StoreError, StoreResult};
use tokio::sync::{mpsc, oneshot};

/// Units of work per group at most: enough to share one fsync among many bookings, few enough
/// that the first unit of a group does not wait long for the others to run.
const MAX_GROUP: usize = 32;

/// A unit of work asking for the writer connection.
struct Request {
    lend: oneshot::Sender<StoreResult<Lent>>,
}

/// How a lent connection comes back to the writer.
struct Returned {
    conn: PoolConnection<Sqlite>,
    /// `Some`: the unit committed and waits for the group's outcome; `None`: it was abandoned.
    ack: Option<oneshot::Sender<StoreResult<()>>>,
}

/// The writer connection lent to one unit of work, inside its savepoint. Dropped without
/// [`Lent::commit`], it goes back to the writer to be rolled back to the savepoint.
pub(crate) struct Lent {
    conn: Option<PoolConnection<Sqlite>>,
    back: Option<oneshot::Sender<Returned>>,
}

impl Lent {
    pub fn conn(&mut self) -> &mut SqliteConnection {
        self.conn.as_mut().expect("a lent connection is held until it goes back")
    }

    /// Hands the unit's writes to the group and waits until the group's commit is durable.
    pub async fn commit(mut self) -> StoreResult<()> {
        let (ack, acknowledged) = oneshot::channel();
        self.give_back(Some(ack));
        acknowledged.await.unwrap_or_else(|_| Err(StoreError::Unavailable("the database writer stopped".into())))
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
    /// Starts the writer task on `pool` (the one-connection writer pool).
    pub fn start(pool: SqlitePool) -> GroupWriter {
        let (requests, receiver) = mpsc::unbounded_channel();
        let counters = Arc::new(Counters::default());
        tokio::spawn(run(pool, receiver, counters.clone()));
        GroupWriter { requests, counters }
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

async fn execute(conn: &mut SqliteConnection, statement: &'static str) -> StoreResult<()> {
    sqlx::query(statement).execute(conn).await.map(drop).map_err(db_error)
}

/// The committed units of the open group, waiting for its outcome.
type Acks = Vec<oneshot::Sender<StoreResult<()>>>;

async fn run(pool: SqlitePool, mut requests: mpsc::UnboundedReceiver<Request>, counters: Arc<Counters>) {
    while let Some(first) = requests.recv().await {
        counters.waiting.fetch_sub(1, Ordering::SeqCst);
        let conn = match begin_group(&pool).await {
            Ok(conn) => conn,
            Err(e) => {
                let _ = first.lend.send(Err(e));
                continue;
            }
        };
        let mut acks = Acks::new();
        match run_group(conn, first, &mut requests, &counters, &mut acks).await {
            Ok(mut conn) => {
                // A unit whose step was abandoned may have left its time limit saying stop;
                // the commit must not be interrupted by it.
                let committed = match Limit::install(&mut conn).await {
                    Ok(_) => execute(&mut conn, "COMMIT").await,
                    Err(e) => Err(e),
                };
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
                        let _ = execute(&mut conn, "ROLLBACK").await;
                        fail(acks, &e);
                    }
                }
            }
            Err((conn, e)) => {
                if let Some(mut conn) = conn {
                    let _ = execute(&mut conn, "ROLLBACK").await;
                }
                fail(acks, &e);
            }
        }
    }
}

async fn begin_group(pool: &SqlitePool) -> StoreResult<PoolConnection<Sqlite>> {
    let mut conn = pool.acquire().await.map_err(db_error)?;
    execute(&mut conn, "BEGIN IMMEDIATE").await?;
    Ok(conn)
}

/// Serves `first` and then each unit already waiting when the previous one ends, up to
/// [`MAX_GROUP`]. On failure the group is lost: the connection (if it came back) and why.
async fn run_group(
    mut conn: PoolConnection<Sqlite>,
    first: Request,
    requests: &mut mpsc::UnboundedReceiver<Request>,
    counters: &Counters,
    acks: &mut Acks,
) -> Result<PoolConnection<Sqlite>, (Option<PoolConnection<Sqlite>>, StoreError)> {
    let mut request = first;
    let mut served = 1;
    loop {
        conn = match serve(conn, request, acks).await {
            Served::Kept(conn) => conn,
            Served::Lost(conn, e) => return Err((Some(conn), e)),
            Served::Gone => {
                return Err((None, StoreError::Unavailable("a unit of work kept the writer connection".into())));
            }
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
    Kept(PoolConnection<Sqlite>),
    /// The group's transaction cannot be committed.
    Lost(PoolConnection<Sqlite>, StoreError),
    /// The lent connection never came back.
    Gone,
}

/// Lends the connection to one unit of work inside a savepoint and settles the savepoint when
/// the connection comes back.
async fn serve(mut conn: PoolConnection<Sqlite>, request: Request, acks: &mut Acks) -> Served {
    if let Err(e) = execute(&mut conn, "SAVEPOINT unit").await {
        let _ = request.lend.send(Err(duplicate(&e)));
        return Served::Lost(conn, e);
    }
    let (back, returned) = oneshot::channel();
    // A requester that is gone drops the lent connection, which sends it back as abandoned.
    let _ = request.lend.send(Ok(Lent { conn: Some(conn), back: Some(back) }));
    match returned.await {
        Ok(Returned { mut conn, ack: Some(ack) }) => match execute(&mut conn, "RELEASE unit").await {
            Ok(()) => {
                acks.push(ack);
                Served::Kept(conn)
            }
            Err(e) => {
                let _ = ack.send(Err(duplicate(&e)));
                Served::Lost(conn, e)
            }
        },
        Ok(Returned { mut conn, ack: None }) => {
            let undone = async {
                // The abandoned unit's time limit may say stop; the undo must run.
                Limit::install(&mut conn).await?;
                execute(&mut conn, "ROLLBACK TO unit").await?;
                execute(&mut conn, "RELEASE unit").await
            }
            .await;
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
