//! Notification delivery: R5 topic-based Subscriptions fed from the outbox, delivered over the
//! `rest-hook` channel (a POST of a `subscription-notification` Bundle to the endpoint with the
//! Subscription's headers). Which events concern which Subscription is the domain's
//! ([`termin_domain::subscriptions`]); this crate numbers them, delivers them and keeps count.
//!
//! How delivery keeps its promises (each node of a cluster runs one [`Notifier`]):
//! - A Subscription is tracked from the outbox position of its own creation, so it sees every
//!   event committed after it, and none before.
//! - A node delivers a Subscription only while it holds its lease (one conditional UPDATE in
//!   the database), so several nodes never deliver the same Subscription at once.
//! - Matched events are numbered (`eventsSinceSubscriptionStart`) in the same transaction that
//!   advances the Subscription's outbox position, so numbers are gap-free, monotonic and
//!   survive a crash; delivery moves `delivered_through` only after the endpoint answered 2xx.
//!   A crash between the POST and that record re-sends those events (at-least-once; receivers
//!   de-duplicate by event number).
//! - Failures back off exponentially; after `max_failures` in a row the Subscription's status
//!   becomes `error` (attempts go on at the longest backoff), and the next success makes it
//!   `active` again. A `requested` Subscription gets a handshake first.
//!
//! Depends on the domain (which events match) and the storage port; must not depend on HTTP
//! routing (`termin-api`), SQL or a particular store backend.
//!
//! E-mail to people (patients, practices) comes from the same outbox: see [`mail`].

pub mod bundle;
pub mod mail;
pub mod websocket;

use bundle::{NotificationType, notification_bundle, subscription_status, with_focus};
use jiff::{SignedDuration, Timestamp};
use serde_json::{Map, Value, json};
use std::sync::Arc;
use std::time::Duration;
use termin_domain::subscriptions::{Facts, SubscriptionSpec, triggers};
use termin_domain::{Caller, Domain, DomainError, ResourceService};
use termin_fhir::ResourceType;
use termin_store::{
    AttemptRecord, DeliveryState, DomainEvent, NewNotification, NotificationStore, ResourceStore,
};

/// Outbox events matched per step, and new Subscriptions looked up per tick.
const OUTBOX_PAGE: usize = 500;
/// Subscriptions one node works on per tick.
const DUE_PER_TICK: usize = 100;

#[derive(Debug, Clone)]
pub struct NotifyConfig {
    /// The FHIR base of references and topic URLs in notifications.
    pub base_url: String,
    /// How often a node looks for work.
    pub interval: Duration,
    /// The longest a POST to an endpoint may take (a Subscription's `timeout` may shorten it).
    pub timeout: Duration,
    /// Failures in a row after which a Subscription's status becomes `error`.
    pub max_failures: u32,
    /// The first retry delay; it doubles with each failure up to `max_backoff`.
    pub retry_base: Duration,
    pub max_backoff: Duration,
    /// Events per notification at most (a Subscription's `maxCount` may lower it).
    pub batch: usize,
}

pub struct Notifier {
    domain: Arc<Domain>,
    store: Arc<dyn ResourceStore>,
    deliveries: Arc<dyn NotificationStore>,
    http: reqwest::Client,
    config: NotifyConfig,
    /// This node's name on leases.
    owner: String,
}

/// Why an attempt did not get through.
struct Failed(String);

impl Notifier {
    pub fn new(
        domain: Arc<Domain>,
        store: Arc<dyn ResourceStore>,
        deliveries: Arc<dyn NotificationStore>,
        config: NotifyConfig,
    ) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            // An endpoint's redirect would send patient data somewhere nobody subscribed.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("notifications: cannot build the HTTP client: {e}"))?;
        Ok(Notifier {
            domain,
            store,
            deliveries,
            http,
            config,
            owner: format!("node-{}", uuid::Uuid::new_v4()),
        })
    }

    /// Delivers until the process ends.
    pub async fn run(self) {
        let this = Arc::new(self);
        let mut scanned = 0u64;
        let mut ticks = tokio::time::interval(this.config.interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            match this.tick(scanned).await {
                Ok(position) => scanned = position,
                Err(e) => tracing::warn!(error = %e, "notification delivery failed; will retry"),
            }
        }
    }

    /// One round: learn of new and deleted Subscriptions, then work on the due ones, each in
    /// a task of its own so that a slow endpoint holds up no other.
    async fn tick(self: &Arc<Self>, scanned: u64) -> Result<u64, String> {
        let mut position = scanned;
        loop {
            let events = self
                .deliveries
                .events_of_type(ResourceType::Subscription, position, OUTBOX_PAGE)
                .await
                .map_err(|e| e.to_string())?;
            let Some((last, _)) = events.last() else { break };
            let last = *last;
            for (seq, event) in &events {
                match event.kind.as_str() {
                    "subscription-created" => self.deliveries.track(&event.resource_id, *seq, Timestamp::now()).await,
                    "subscription-deleted" => self.deliveries.untrack(&event.resource_id).await,
                    _ => Ok(()),
                }
                .map_err(|e| e.to_string())?;
            }
            position = last;
        }
        let due = self.deliveries.due(Timestamp::now(), DUE_PER_TICK).await.map_err(|e| e.to_string())?;
        let mut tasks = tokio::task::JoinSet::new();
        for id in due {
            let this = self.clone();
            tasks.spawn(async move {
                if let Err(e) = this.work_on(&id).await {
                    tracing::warn!(subscription = %id, error = %e, "delivering a subscription failed; will retry");
                }
            });
        }
        while tasks.join_next().await.is_some() {}
        Ok(position)
    }

    /// The lease covers one step (matching and a POST of at most `timeout`) with room to spare;
    /// it is renewed before each step. After a crash, the Subscription waits this long for
    /// another node (or the restarted one).
    fn lease_until(&self, now: Timestamp) -> Timestamp {
        let span = SignedDuration::try_from(self.config.timeout * 2).unwrap_or(SignedDuration::from_secs(20));
        now.checked_add(span + SignedDuration::from_secs(5)).unwrap_or(now)
    }

    /// Works on one Subscription while this node holds its lease: match the new outbox
    /// events, then deliver until nothing is pending or an attempt fails.
    async fn work_on(&self, id: &str) -> Result<(), String> {
        let now = Timestamp::now();
        let Some(mut state) = self.deliveries.claim(id, &self.owner, now, self.lease_until(now)).await.map_err(|e| e.to_string())?
        else {
            return Ok(());
        };
        let ctx = Caller::system("notify");
        let (version, body) = match self.domain.resources.read(&ctx, ResourceType::Subscription, id).await {
            Ok(current) => match current.body.as_deref().and_then(|b| serde_json::from_str::<Map<String, Value>>(b).ok()) {
                Some(body) => (current.version, body),
                None => return self.deliveries.untrack(id).await.map_err(|e| e.to_string()),
            },
            Err(DomainError::NotFound(_) | DomainError::Gone(_)) => {
                return self.deliveries.untrack(id).await.map_err(|e| e.to_string());
            }
            Err(e) => return Err(e.to_string()),
        };
        let spec = SubscriptionSpec::parse(&body).map_err(|_| format!("stored Subscription/{id} is no longer valid"))?;
        let sending = matches!(spec.status.as_str(), "requested" | "active" | "error")
            && spec.end.is_none_or(|end| end > now);
        loop {
            state = match self.match_events(id, &state, &spec, sending).await? {
                Some(state) => state,
                None => return Ok(()), // the lease was lost
            };
            if !sending {
                return self.finish(id, &state, Ok(None), now).await;
            }
            let attempt = self.attempt(id, &spec, &state).await;
            let succeeded = attempt.is_ok();
            let delivered = attempt.as_ref().ok().copied().flatten();
            let state_after = AttemptedState::of(&state, &attempt);
            self.finish(id, &state, attempt, Timestamp::now()).await?;
            self.set_status(&ctx, id, version, &body, &spec, &state_after, self.config.max_failures).await;
            if !succeeded || delivered.is_none_or(|through| through >= state.events_total) {
                return Ok(());
            }
            // More events are pending: take the lease again (renewed) and go on.
            let now = Timestamp::now();
            state = match self.deliveries.claim(id, &self.owner, now, self.lease_until(now)).await.map_err(|e| e.to_string())? {
                Some(state) => state,
                None => return Ok(()),
            };
            if spec.status == "requested" {
                return Ok(());
            }
        }
    }

    /// Numbers the outbox events after the Subscription's position that concern it (only
    /// while `sending`: a Subscription that is off skips what happens meanwhile).
    async fn match_events(
        &self,
        id: &str,
        state: &DeliveryState,
        spec: &SubscriptionSpec,
        sending: bool,
    ) -> Result<Option<DeliveryState>, String> {
        let mut state = state.clone();
        loop {
            let events = self.store.events(state.matched_through, OUTBOX_PAGE).await.map_err(|e| e.to_string())?;
            let Some((last, _)) = events.last() else {
                return Ok(Some(state));
            };
            let last = *last;
            let mut matched = Vec::new();
            if sending {
                for (seq, event) in &events {
                    matched.extend(self.notifications_of(*seq, event, spec).await.map_err(|e| e.to_string())?);
                }
            }
            state = match self
                .deliveries
                .append_notifications(id, &self.owner, last, &matched)
                .await
                .map_err(|e| e.to_string())?
            {
                Some(state) => state,
                None => return Ok(None),
            };
            if events.len() < OUTBOX_PAGE {
                return Ok(Some(state));
            }
        }
    }

    /// The notification events one outbox event makes for the Subscription: its topic fired
    /// and the focus passes the filters.
    async fn notifications_of(&self, seq: u64, event: &DomainEvent, spec: &SubscriptionSpec) -> Result<Vec<NewNotification>, DomainError> {
        let mut out = Vec::new();
        for trigger in triggers(event).into_iter().filter(|t| t.topic == spec.topic.id) {
            if !spec.filters.is_empty() {
                let facts = self.facts(trigger.focus_type, &trigger.focus_id, trigger.focus_version).await?;
                if !spec.matches(&facts) {
                    continue;
                }
            }
            out.push(NewNotification {
                outbox_seq: seq,
                focus_type: trigger.focus_type,
                focus_id: trigger.focus_id,
                focus_version: trigger.focus_version,
                occurred_at: event.occurred_at,
            });
        }
        Ok(out)
    }

    /// What the filters may ask of a focus, as it was at the event (a focus that is gone has
    /// nothing, so only a Subscription without filters hears of it).
    async fn facts(&self, resource_type: ResourceType, id: &str, version: Option<u64>) -> Result<Facts, DomainError> {
        let ctx = Caller::system("notify");
        let Some(body) = read_body(&self.domain.resources, &ctx, resource_type, id, version).await? else {
            return Ok(Facts::default());
        };
        Ok(match resource_type {
            ResourceType::Appointment => {
                let mut schedules = Vec::new();
                for slot in termin_domain::subscriptions::slot_ids(&body) {
                    if let Some(slot) = read_body(&self.domain.resources, &ctx, ResourceType::Slot, &slot, None).await?
                        && let Some(schedule) = slot.get("schedule").and_then(|s| s.get("reference")).and_then(Value::as_str)
                    {
                        schedules.push(schedule.to_owned());
                    }
                }
                Facts::of_appointment(&body, &schedules)
            }
            _ => Facts::of_slot(&body),
        })
    }

    /// One POST: the handshake of a `requested` Subscription, else the next batch of pending
    /// events, else a heartbeat when one is due. `Ok(Some(n))`: events through `n` delivered;
    /// `Ok(None)`: nothing was due.
    async fn attempt(&self, id: &str, spec: &SubscriptionSpec, state: &DeliveryState) -> Result<Option<u64>, Failed> {
        let base = &self.config.base_url;
        let now = Timestamp::now();
        if spec.channel == "websocket" {
            // The node a client's websocket is bound to sends the events (see `websocket`); a
            // requested Subscription is active at once, its handshake comes with each binding.
            return Ok((spec.status == "requested").then_some(state.delivered_through));
        }
        if spec.status == "requested" {
            let status = subscription_status(base, id, spec, NotificationType::Handshake, state.events_total, &[], None);
            self.post(spec, &notification_bundle(base, spec, status, &[], now)).await?;
            return Ok(Some(state.delivered_through));
        }
        let batch = self.config.batch.min(spec.max_count.map_or(usize::MAX, |m| usize::try_from(m).unwrap_or(usize::MAX)));
        let pending = self
            .deliveries
            .notifications(id, state.delivered_through + 1, state.events_total, batch.max(1))
            .await
            .map_err(|e| Failed(e.to_string()))?;
        if let Some(last) = pending.last().map(|n| n.number) {
            let events = with_focus(&self.domain.resources, pending).await.map_err(|e| Failed(e.to_string()))?;
            let status = subscription_status(base, id, spec, NotificationType::EventNotification, state.events_total, &events, None);
            self.post(spec, &notification_bundle(base, spec, status, &events, now)).await?;
            return Ok(Some(last));
        }
        let heartbeat_due = spec.heartbeat_seconds.is_some_and(|period| {
            let since = state.last_delivery.unwrap_or(Timestamp::UNIX_EPOCH);
            since.checked_add(SignedDuration::from_secs(i64::try_from(period).unwrap_or(i64::MAX))).is_ok_and(|due| due <= now)
        });
        if heartbeat_due {
            let status = subscription_status(base, id, spec, NotificationType::Heartbeat, state.events_total, &[], None);
            self.post(spec, &notification_bundle(base, spec, status, &[], now)).await?;
            return Ok(Some(state.delivered_through));
        }
        Ok(None)
    }

    async fn post(&self, spec: &SubscriptionSpec, bundle: &Value) -> Result<(), Failed> {
        let endpoint = spec.endpoint.as_deref().ok_or_else(|| Failed("the Subscription has no endpoint".into()))?;
        let mut request = self
            .http
            .post(endpoint)
            .header("Content-Type", "application/fhir+json")
            .body(bundle.to_string());
        for (name, value) in &spec.headers {
            request = request.header(name.as_str(), value.as_str());
        }
        if let Some(seconds) = spec.timeout_seconds.filter(|s| *s > 0) {
            request = request.timeout(self.config.timeout.min(Duration::from_secs(seconds)));
        }
        let started = std::time::Instant::now();
        let response = request.send().await.map_err(|e| Failed(format!("POST {endpoint}: {e}")))?;
        metrics::histogram!("termin_notification_post_seconds").record(started.elapsed().as_secs_f64());
        if response.status().is_success() {
            metrics::counter!("termin_notifications_sent_total").increment(1);
            Ok(())
        } else {
            metrics::counter!("termin_notification_failures_total").increment(1);
            Err(Failed(format!("POST {endpoint} answered {}", response.status())))
        }
    }

    fn backoff(&self, failures: u32) -> Duration {
        let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(30));
        self.config.retry_base.saturating_mul(factor).min(self.config.max_backoff)
    }

    /// Records the attempt and gives the lease back.
    async fn finish(&self, id: &str, state: &DeliveryState, attempt: Result<Option<u64>, Failed>, now: Timestamp) -> Result<(), String> {
        let record = match attempt {
            Ok(delivered) => AttemptRecord {
                delivered_through: delivered.unwrap_or(state.delivered_through),
                failures: 0,
                next_attempt: now,
                last_delivery: if delivered.is_some() { Some(now) } else { state.last_delivery },
                last_error: None,
            },
            Err(Failed(reason)) => {
                let failures = state.failures.saturating_add(1);
                tracing::info!(subscription = %id, failures, reason = %reason, "notification not delivered");
                AttemptRecord {
                    delivered_through: state.delivered_through,
                    failures,
                    next_attempt: now
                        .checked_add(SignedDuration::try_from(self.backoff(failures)).unwrap_or(SignedDuration::from_secs(60)))
                        .unwrap_or(now),
                    last_delivery: state.last_delivery,
                    last_error: Some(reason),
                }
            }
        };
        self.deliveries.finish(id, &self.owner, &record).await.map_err(|e| e.to_string())
    }

    /// Keeps `Subscription.status` in step with delivery: `active` after a success, `error`
    /// after `max_failures` failures in a row.
    #[allow(clippy::too_many_arguments)]
    async fn set_status(
        &self,
        ctx: &Caller,
        id: &str,
        version: u64,
        body: &Map<String, Value>,
        spec: &SubscriptionSpec,
        after: &AttemptedState,
        max_failures: u32,
    ) {
        let wanted = match after {
            AttemptedState::Succeeded => "active",
            AttemptedState::Failed(failures) if *failures >= max_failures => "error",
            AttemptedState::Failed(_) | AttemptedState::NothingSent => return,
        };
        if spec.status == wanted {
            return;
        }
        let mut body = body.clone();
        body.insert("status".into(), json!(wanted));
        // If-Match: a client's change since wins; the next attempt sets the status again.
        match self.domain.resources.update(ctx, ResourceType::Subscription, id, body, Some(version)).await {
            Ok(_) => tracing::info!(subscription = %id, status = wanted, "subscription status changed"),
            Err(e) => tracing::info!(subscription = %id, error = ?e, "subscription status not changed yet"),
        }
    }
}

/// The outcome of an attempt as the status rules see it.
enum AttemptedState {
    Succeeded,
    NothingSent,
    Failed(u32),
}

impl AttemptedState {
    fn of(state: &DeliveryState, attempt: &Result<Option<u64>, Failed>) -> Self {
        match attempt {
            Ok(Some(_)) => AttemptedState::Succeeded,
            Ok(None) => AttemptedState::NothingSent,
            Err(_) => AttemptedState::Failed(state.failures.saturating_add(1)),
        }
    }
}

/// A resource's JSON body as of `version` (else the current one); `None` when it is gone or
/// never was.
pub(crate) async fn read_body(
    resources: &ResourceService,
    ctx: &Caller,
    resource_type: ResourceType,
    id: &str,
    version: Option<u64>,
) -> Result<Option<Map<String, Value>>, DomainError> {
    let read = match version {
        Some(version) => resources.vread(ctx, resource_type, id, version).await,
        None => resources.read(ctx, resource_type, id).await,
    };
    match read {
        Ok(found) => Ok(found.body.as_deref().and_then(|b| serde_json::from_str(b).ok())),
        Err(DomainError::NotFound(_) | DomainError::Gone(_)) => Ok(None),
        Err(e) => Err(e),
    }
}
