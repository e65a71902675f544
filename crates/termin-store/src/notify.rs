//! The storage of Subscription delivery: per Subscription, how far the outbox has been matched,
//! the numbered notification events, how far the endpoint has acknowledged them, and a lease
//! so that of several nodes only one delivers a Subscription at a time.

use crate::{DomainEvent, StoreResult};
use async_trait::async_trait;
use jiff::Timestamp;
use termin_fhir::ResourceType;

/// Where delivery to one Subscription stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryState {
    pub subscription_id: String,
    /// Outbox events up to this position have been matched against the Subscription.
    pub matched_through: u64,
    /// Events numbered so far (`eventsSinceSubscriptionStart`).
    pub events_total: u64,
    /// The highest event number the endpoint has acknowledged (0: none).
    pub delivered_through: u64,
    /// Failed attempts since the last success.
    pub failures: u32,
    /// No attempt before this instant (backoff after failures).
    pub next_attempt: Timestamp,
    /// When the endpoint last acknowledged a notification (handshake, event or heartbeat).
    pub last_delivery: Option<Timestamp>,
    pub last_error: Option<String>,
}

/// A notification event before it is numbered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewNotification {
    pub outbox_seq: u64,
    pub focus_type: ResourceType,
    pub focus_id: String,
    /// `None`: the version current when the notification is sent.
    pub focus_version: Option<u64>,
    pub occurred_at: Timestamp,
}

/// A numbered notification event of one Subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub number: u64,
    pub event: NewNotification,
}

/// The result of one delivery attempt, recorded when the lease is given back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRecord {
    pub delivered_through: u64,
    pub failures: u32,
    pub next_attempt: Timestamp,
    pub last_delivery: Option<Timestamp>,
    pub last_error: Option<String>,
}

#[async_trait]
pub trait NotificationStore: Send + Sync {
    /// Outbox events of one resource type after position `after`, in order, at most `limit`.
    async fn events_of_type(&self, resource_type: ResourceType, after: u64, limit: usize)
    -> StoreResult<Vec<(u64, DomainEvent)>>;

    /// Starts delivery to a Subscription with the outbox events after position `from`;
    /// nothing happens when it is already tracked.
    async fn track(&self, subscription_id: &str, from: u64, now: Timestamp) -> StoreResult<()>;

    /// Forgets a Subscription and its events.
    async fn untrack(&self, subscription_id: &str) -> StoreResult<()>;

    /// Tracked Subscriptions whose next attempt is due and whose lease is free at `now`.
    async fn due(&self, now: Timestamp, limit: usize) -> StoreResult<Vec<String>>;

    /// Takes the lease on a Subscription for `owner` until `until`, if no other owner holds a
    /// live one; `None` when it is taken (or not tracked).
    async fn claim(&self, subscription_id: &str, owner: &str, now: Timestamp, until: Timestamp)
    -> StoreResult<Option<DeliveryState>>;

    /// Numbers `events` after the last one (in order) and records that the outbox has been
    /// matched through `matched_through`, in one transaction; only while `owner` holds the
    /// lease. Returns the new state, `None` when the lease was lost.
    async fn append_notifications(
        &self,
        subscription_id: &str,
        owner: &str,
        matched_through: u64,
        events: &[NewNotification],
    ) -> StoreResult<Option<DeliveryState>>;

    /// The Subscription's events numbered `from..=until`, in order, at most `limit`.
    async fn notifications(&self, subscription_id: &str, from: u64, until: u64, limit: usize) -> StoreResult<Vec<Notification>>;

    /// Records an attempt and gives the lease back (only while `owner` holds it).
    async fn finish(&self, subscription_id: &str, owner: &str, attempt: &AttemptRecord) -> StoreResult<()>;

    async fn delivery_state(&self, subscription_id: &str) -> StoreResult<Option<DeliveryState>>;
}
