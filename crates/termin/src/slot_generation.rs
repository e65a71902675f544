//! The background slot generation (`--slot-generation-interval`): every period, the node
//! holding the `slot-generation` lease generates every Schedule with a horizon rule from today
//! to its horizon. The lease makes it one node of a cluster at a time; the deterministic Slot
//! ids would keep two passes from duplicating Slots anyway, the lease keeps them from doing
//! the same work twice.

use jiff::{SignedDuration, Timestamp};
use std::sync::Arc;
use std::time::Instant;
use termin_domain::{Caller, Domain};
use termin_store::LeaseStore;
use tokio::task::JoinSet;

/// The name of the job's lease in `job_lease`.
pub const LEASE: &str = "slot-generation";

/// The shortest lease: longer than one Schedule's generation takes, so that with a short
/// period the lease does not lapse in the middle of one.
const MIN_LEASE: SignedDuration = SignedDuration::from_secs(60);

/// How often a pass renews its lease at most: well inside [`MIN_LEASE`], and not a write per
/// Schedule.
const RENEW_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Schedules a pass generates at a time on SQLite. Their units of work wait for the one writer
/// connection and are committed together, as many as wait (up to the writer's commit group):
/// a pass over many Schedules makes one commit — WAL frames of the index pages it dirtied,
/// fsync, checkpoint — per group instead of per Schedule. A request's write that arrives
/// meanwhile waits for the units queued before it and for their group's commit.
const IN_FLIGHT_SQLITE: usize = 16;

/// Schedules a pass generates at a time on PostgreSQL: each holds a pooled connection for its
/// unit of work, and the pool (10 by default) serves the requests too.
const IN_FLIGHT_POSTGRES: usize = 2;

/// Schedules a pass generates at a time on the store `opened`.
pub fn in_flight(opened: &crate::setup::OpenedStore) -> usize {
    match opened.postgres {
        Some(_) => IN_FLIGHT_POSTGRES,
        None => IN_FLIGHT_SQLITE,
    }
}

/// What one pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Pass {
    /// Schedules with a horizon rule, generated.
    pub schedules: usize,
    pub created: usize,
    pub removed: usize,
    pub conflicts: usize,
    /// Schedules whose generation failed (their rules or actor cannot be used); logged.
    pub failed: usize,
}

/// One node's share of the job: passes every `every` while it holds the lease.
pub struct SlotGeneration {
    pub domain: Arc<Domain>,
    pub leases: Arc<dyn LeaseStore>,
    pub every: SignedDuration,
    /// This node's name in the lease.
    pub node: String,
    /// Schedules generated at a time ([`in_flight`]).
    pub in_flight: usize,
}

impl SlotGeneration {
    pub fn new(domain: Arc<Domain>, leases: Arc<dyn LeaseStore>, every: SignedDuration, in_flight: usize) -> Self {
        let node = format!("node-{}", uuid::Uuid::new_v4());
        SlotGeneration { domain, leases, every, node, in_flight: in_flight.max(1) }
    }

    /// Passes until the process ends; the first at start-up.
    pub async fn run(self) {
        let period = std::time::Duration::try_from(self.every).unwrap_or(std::time::Duration::from_secs(3600));
        let mut ticks = tokio::time::interval(period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            match self.pass().await {
                Ok(None) => tracing::debug!("another node holds the slot-generation lease"),
                Ok(Some(pass)) if pass.created + pass.removed + pass.conflicts + pass.failed == 0 => {
                    tracing::debug!(schedules = pass.schedules, "the schedules' slots are generated to their horizons");
                }
                Ok(Some(pass)) => {
                    metrics::counter!("termin_generated_slots_total").increment(pass.created as u64);
                    tracing::info!(
                        schedules = pass.schedules,
                        created = pass.created,
                        removed = pass.removed,
                        conflicts = pass.conflicts,
                        failed = pass.failed,
                        "generated slots to the schedules' horizons"
                    );
                }
                Err(message) => tracing::warn!(%message, "slot generation failed; will retry"),
            }
        }
    }

    /// One pass, if this node holds (or takes) the lease; `None` if another node does. The
    /// lease is renewed while the pass runs (at least every [`RENEW_EVERY`], checked after each
    /// Schedule) and lasts a period (at least a minute) beyond, so this node keeps the job from
    /// pass to pass while it lives, and another takes it a period after it stops.
    ///
    /// Up to `in_flight` Schedules are generated at a time, each in its own unit of work (its
    /// own Schedule lock, its own failure): on SQLite the units meet in the writer's commit
    /// groups and share one commit, on PostgreSQL they run side by side.
    pub async fn pass(&self) -> Result<Option<Pass>, String> {
        if !self.claim().await? {
            return Ok(None);
        }
        let ctx = Caller::system(LEASE);
        let kept = self
            .domain
            .scheduling
            .schedules_to_keep(&ctx)
            .await
            .map_err(|e| format!("listing the Schedules: {e:?}"))?;
        if kept.truncated {
            tracing::warn!(
                limit = termin_domain::MAX_KEPT_SCHEDULES,
                "more Schedules than one slot generation pass looks at"
            );
        }
        let mut pass = Pass::default();
        let mut running = JoinSet::new();
        let mut ids = kept.ids.into_iter();
        let mut renewed = Instant::now();
        let mut leased = true;
        loop {
            while leased && running.len() < self.in_flight {
                let Some(id) = ids.next() else { break };
                let (domain, ctx) = (self.domain.clone(), ctx.clone());
                running.spawn(async move {
                    let generated = domain.scheduling.generate_to_horizon(&ctx, &id).await;
                    (id, generated)
                });
            }
            let Some(done) = running.join_next().await else { break };
            match done {
                Ok((_, Ok(None))) => {}
                Ok((id, Ok(Some(summary)))) => {
                    pass.schedules += 1;
                    pass.created += summary.created;
                    pass.removed += summary.removed;
                    pass.conflicts += summary.conflicts.len();
                    for conflict in &summary.conflicts {
                        tracing::warn!(schedule = %id, slot = %conflict.slot_id, reason = %conflict.reason, "a booked or held slot is outside the schedule's rules");
                    }
                }
                Ok((id, Err(error))) => {
                    pass.failed += 1;
                    tracing::warn!(schedule = %id, error = ?error, "cannot generate the schedule's slots");
                }
                Err(error) => {
                    pass.failed += 1;
                    tracing::error!(%error, "a schedule's generation ended abnormally");
                }
            }
            // The Schedules already running finish; no further one starts without the lease.
            if leased && renewed.elapsed() >= RENEW_EVERY {
                renewed = Instant::now();
                if !self.claim().await? {
                    tracing::warn!("lost the slot-generation lease during a pass; another node continues");
                    leased = false;
                }
            }
        }
        Ok(Some(pass))
    }

    async fn claim(&self) -> Result<bool, String> {
        let now = Timestamp::now();
        let until = now.saturating_add(self.every.max(MIN_LEASE)).map_err(|e| e.to_string())?;
        self.leases.claim_lease(LEASE, &self.node, now, until).await.map_err(|e| format!("claiming the lease: {e}"))
    }
}
