//! Leases of cluster-wide jobs: of the nodes sharing a database, the one holding a job's lease
//! runs it; a lease ends at its time, so a node that stops leaves the job to the others.

use crate::StoreResult;
use async_trait::async_trait;
use jiff::Timestamp;

#[async_trait]
pub trait LeaseStore: Send + Sync {
    /// Takes the lease `name` for `owner` until `until`, or renews `owner`'s own, unless another
    /// owner's lease lasts past `now`. Whether `owner` holds it now; of several nodes claiming
    /// at once, one does.
    async fn claim_lease(&self, name: &str, owner: &str, now: Timestamp, until: Timestamp) -> StoreResult<bool>;
}
