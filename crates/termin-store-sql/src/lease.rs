//! The SQL of job leases ([`termin_store::LeaseStore`]), the same on both backends and run
//! by the backend's [`NotifyExecutor`]. Table `job_lease` (migration "job lease"), instants
//! in microseconds since the epoch; taken the way a Subscription's delivery lease is, by one
//! conditional UPDATE, so of several nodes one wins.

use crate::notify::NotifyExecutor;
use crate::{Dialect, PushValue};
use jiff::Timestamp;
use termin_store::{LeaseStore, StoreResult};

pub async fn claim_lease<D: Dialect>(
    executor: &mut impl NotifyExecutor<D>,
    name: &str,
    owner: &str,
    now: Timestamp,
    until: Timestamp,
) -> StoreResult<bool> {
    // The first claim ever creates the row; every later one is the conditional UPDATE.
    let mut insert = D::builder("INSERT INTO job_lease (name, owner, lease_until) VALUES (");
    insert.push_value(name).push(", ").push_value(owner).push(", ").push_value(until.as_microsecond());
    insert.push(") ON CONFLICT (name) DO NOTHING");
    if executor.execute(insert).await? == 1 {
        return Ok(true);
    }
    let mut claim = D::builder("UPDATE job_lease SET owner = ");
    claim.push_value(owner).push(", lease_until = ").push_value(until.as_microsecond());
    claim.push(" WHERE name = ").push_value(name);
    claim.push(" AND (lease_until <= ").push_value(now.as_microsecond());
    claim.push(" OR owner = ").push_value(owner).push(")");
    Ok(executor.execute(claim).await? == 1)
}

/// What every backend's [`termin_store::LeaseStore`] must do, for the backends' tests: one
/// owner at a time, renewals by the owner, a takeover once the lease has ended.
pub async fn check_leases(leases: &dyn LeaseStore) {
    let at = |seconds: i64| Timestamp::from_second(1_900_000_000 + seconds).unwrap();
    assert!(leases.claim_lease("job", "a", at(0), at(60)).await.unwrap(), "the first claim takes the lease");
    assert!(!leases.claim_lease("job", "b", at(10), at(70)).await.unwrap(), "another owner waits while it lasts");
    assert!(leases.claim_lease("other-job", "b", at(10), at(70)).await.unwrap(), "each job has its own lease");
    assert!(leases.claim_lease("job", "a", at(30), at(90)).await.unwrap(), "the owner renews");
    assert!(!leases.claim_lease("job", "b", at(80), at(140)).await.unwrap(), "the renewal lasts");
    assert!(leases.claim_lease("job", "b", at(90), at(150)).await.unwrap(), "an ended lease is taken over");
    assert!(!leases.claim_lease("job", "a", at(100), at(160)).await.unwrap(), "the former owner has lost it");
}
