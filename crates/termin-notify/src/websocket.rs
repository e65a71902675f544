//! The R5 websocket channel, less the socket itself (the HTTP layer owns that): binding tokens
//! from `$get-ws-binding-token`, and the stream of notification Bundles one bound socket is
//! sent — a handshake on `bind-with-token`, then the Subscription's events numbered after the
//! binding, in order, and heartbeats. Events before the binding are replayed with `$events`.
//!
//! Tokens live in the memory of the node that issued them: with several nodes behind one
//! address, the websocket must reach that node (sticky sessions) or be bound again.

use crate::bundle::{NotificationType, notification_bundle, subscription_status, with_focus};
use jiff::{SignedDuration, Timestamp};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use termin_domain::{Caller, Domain};
use termin_domain::subscriptions::SubscriptionSpec;
use termin_fhir::ResourceType;
use termin_store::{NotificationStore};

/// How long a binding token may be presented.
pub const TOKEN_LIFETIME: SignedDuration = SignedDuration::from_secs(300);
/// Events per websocket message at most.
const BATCH: usize = 20;

/// What the HTTP layer needs for `$status`, `$events` and websockets.
pub struct Hub {
    pub deliveries: Arc<dyn NotificationStore>,
    /// How often a bound socket looks for new events.
    pub interval: Duration,
    tokens: Mutex<HashMap<String, (String, Timestamp)>>,
}

impl Hub {
    pub fn new(deliveries: Arc<dyn NotificationStore>, interval: Duration) -> Self {
        Hub {
            deliveries,
            interval,
            tokens: Mutex::new(HashMap::new()),
        }
    }

    /// A token that binds a websocket to the Subscription until it expires.
    pub fn issue(&self, subscription_id: &str) -> (String, Timestamp) {
        let token = uuid::Uuid::new_v4().simple().to_string();
        let expires = Timestamp::now().checked_add(TOKEN_LIFETIME).unwrap_or_else(|_| Timestamp::now());
        let mut tokens = self.tokens.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Timestamp::now();
        tokens.retain(|_, (_, until)| *until > now);
        tokens.insert(token.clone(), (subscription_id.to_owned(), expires));
        (token, expires)
    }

    /// The Subscription a live token was issued for.
    pub fn redeem(&self, token: &str) -> Option<String> {
        let tokens = self.tokens.lock().unwrap_or_else(PoisonError::into_inner);
        tokens
            .get(token)
            .filter(|(_, until)| *until > Timestamp::now())
            .map(|(id, _)| id.clone())
    }
}

/// The notifications of one bound socket.
pub struct Stream {
    domain: Arc<Domain>,
    deliveries: Arc<dyn NotificationStore>,
    base: String,
    id: String,
    spec: SubscriptionSpec,
    sent_through: u64,
    last_message: Instant,
}

async fn spec_of(domain: &Domain, id: &str) -> Result<SubscriptionSpec, String> {
    let ctx = Caller::system("notify-websocket");
    let stored = domain.resources.read(&ctx, ResourceType::Subscription, id).await.map_err(|e| e.to_string())?;
    let body: Map<String, Value> =
        stored.body.as_deref().and_then(|b| serde_json::from_str(b).ok()).ok_or("the Subscription has no body")?;
    let spec = SubscriptionSpec::parse(&body).map_err(|_| "the Subscription is not valid".to_owned())?;
    if spec.channel != "websocket" {
        return Err(format!("Subscription/{id} does not use the websocket channel"));
    }
    Ok(spec)
}

impl Stream {
    /// Binds to the Subscription: the stream and its handshake Bundle.
    pub async fn bind(
        domain: Arc<Domain>,
        deliveries: Arc<dyn NotificationStore>,
        base: String,
        id: String,
    ) -> Result<(Stream, Value), String> {
        let spec = spec_of(&domain, &id).await?;
        let events_total = deliveries.delivery_state(&id).await.map_err(|e| e.to_string())?.map_or(0, |s| s.events_total);
        let status = subscription_status(&base, &id, &spec, NotificationType::Handshake, events_total, &[], None);
        let handshake = notification_bundle(&base, &spec, status, &[], Timestamp::now());
        let stream = Stream {
            domain,
            deliveries,
            base,
            id,
            spec,
            sent_through: events_total,
            last_message: Instant::now(),
        };
        Ok((stream, handshake))
    }

    /// The next Bundle to send now: new events, else a heartbeat when one is due.
    pub async fn next(&mut self) -> Result<Option<Value>, String> {
        let pending = self
            .deliveries
            .notifications(&self.id, self.sent_through + 1, u64::MAX >> 1, BATCH)
            .await
            .map_err(|e| e.to_string())?;
        let events_total = pending.last().map_or(self.sent_through, |n| n.number);
        let kind = if !pending.is_empty() {
            NotificationType::EventNotification
        } else if self
            .spec
            .heartbeat_seconds
            .is_some_and(|period| self.last_message.elapsed() >= Duration::from_secs(period))
        {
            NotificationType::Heartbeat
        } else {
            return Ok(None);
        };
        let events = with_focus(&self.domain.resources, pending).await.map_err(|e| e.to_string())?;
        let status = subscription_status(&self.base, &self.id, &self.spec, kind, events_total, &events, None);
        self.sent_through = events_total;
        self.last_message = Instant::now();
        Ok(Some(notification_bundle(&self.base, &self.spec, status, &events, Timestamp::now())))
    }
}
