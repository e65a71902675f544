//! Refreshing the directory cache from upstream Subscriptions: when the platform caches the
//! directory, it subscribes at each upstream (the first time it caches a directory page there)
//! to Termin's `directory-changed` topic over rest-hook, with `content` `empty`, an `end` a day
//! ahead (renewed after [`RENEWAL`]) and a secret header, to the endpoint
//! `{platform root}/platform/notifications/{upstream}`. An event notification carrying the
//! secret drops that upstream's cached pages; handshakes and heartbeats change nothing. An
//! upstream that refuses the Subscription (no such topic, no Subscriptions) is asked again
//! after [`RENEWAL`]; until then its pages live for the TTL.

use crate::upstream::{Upstream, UpstreamRequest};
use reqwest::Method;
use reqwest::header::{HeaderName, HeaderValue};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// The header that carries the platform's secret in the upstreams' notifications.
pub const SECRET_HEADER: &str = "x-termin-platform-secret";

/// The topic subscribed to at Termin upstreams, under their base.
pub const TOPIC: &str = "SubscriptionTopic/directory-changed";

/// How long a Subscription lasts (its `end`): one left behind by a platform that stopped ends
/// by itself.
pub const LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// When a Subscription is renewed (a new one, overlapping the old one's last hour), and when an
/// upstream that refused one is asked again.
pub const RENEWAL: Duration = Duration::from_secs(23 * 3600);

/// Why a notification is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No such upstream, or this platform subscribes nowhere (404).
    UnknownUpstream,
    /// The secret is missing or wrong (401).
    Unauthenticated,
    /// Not a `subscription-notification` Bundle (400).
    Malformed(String),
}

pub struct Hooks {
    secret: String,
    /// When each upstream was last subscribed at (or refused).
    subscribed: Mutex<HashMap<String, Instant>>,
}

impl Hooks {
    pub fn new() -> Self {
        Hooks { secret: uuid::Uuid::new_v4().simple().to_string(), subscribed: Mutex::new(HashMap::new()) }
    }

    /// Subscribes at `upstream` unless that was done (or refused) less than [`RENEWAL`] ago.
    pub(crate) async fn subscribe(
        &self,
        http: &reqwest::Client,
        upstream: &Upstream,
        public_base: &str,
        via: &[String],
    ) {
        let mut subscribed = self.subscribed.lock().await;
        if subscribed.get(upstream.name()).is_some_and(|at| at.elapsed() < RENEWAL) {
            return;
        }
        let root = public_base.strip_suffix("/fhir").unwrap_or(public_base);
        let end = jiff::Timestamp::now()
            .checked_add(jiff::SignedDuration::try_from(LIFETIME).unwrap_or_default())
            .unwrap_or_else(|_| jiff::Timestamp::now());
        let subscription = json!({
            "resourceType": "Subscription",
            "status": "requested",
            "name": "Central platform directory cache",
            "topic": format!("{}/{TOPIC}", upstream.base()),
            "channelType": {"system": "http://terminology.hl7.org/CodeSystem/subscription-channel-type", "code": "rest-hook"},
            "endpoint": format!("{root}/platform/notifications/{}", upstream.name()),
            "parameter": [{"name": SECRET_HEADER, "value": self.secret}],
            "content": "empty",
            "end": termin_fhir::instant::format_instant(end),
        });
        let request = UpstreamRequest {
            method: Method::POST,
            path: "Subscription",
            query: None,
            headers: Vec::<(HeaderName, HeaderValue)>::new(),
            body: Some(&subscription),
            via,
        };
        match upstream.send(http, request).await {
            Ok(answer) if answer.status == 201 || answer.status == 200 => {
                tracing::info!(upstream = upstream.name(), "subscribed to directory changes");
            }
            Ok(answer) => tracing::warn!(
                upstream = upstream.name(),
                status = answer.status,
                "the upstream refused a directory-changed Subscription; its directory is cached for the TTL only"
            ),
            Err(failure) => {
                tracing::warn!(upstream = upstream.name(), issue = %failure.issue.diagnostics, "could not subscribe")
            }
        }
        subscribed.insert(upstream.name().to_owned(), Instant::now());
    }

    /// Whether a notification with this secret and body reports events (`event-notification`
    /// or `query-event`), as opposed to a handshake or heartbeat.
    pub fn is_event(&self, secret: Option<&str>, body: &[u8]) -> Result<bool, Refusal> {
        if secret != Some(self.secret.as_str()) {
            return Err(Refusal::Unauthenticated);
        }
        let bundle: Value =
            serde_json::from_slice(body).map_err(|e| Refusal::Malformed(format!("the body is not JSON: {e}")))?;
        if bundle["resourceType"] != "Bundle" || bundle["type"] != "subscription-notification" {
            return Err(Refusal::Malformed("a notification is a Bundle of type subscription-notification".into()));
        }
        let status = &bundle["entry"][0]["resource"];
        match status["type"].as_str() {
            Some("event-notification" | "query-event") => Ok(true),
            Some("handshake" | "heartbeat" | "query-status") => Ok(false),
            _ => Err(Refusal::Malformed("the Bundle's first entry is no SubscriptionStatus with a type".into())),
        }
    }
}

impl Default for Hooks {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notification(kind: &str) -> Vec<u8> {
        json!({"resourceType": "Bundle", "type": "subscription-notification", "entry": [
            {"resource": {"resourceType": "SubscriptionStatus", "type": kind}}]})
        .to_string()
        .into_bytes()
    }

    #[test]
    fn only_events_with_the_secret_count() {
        let hooks = Hooks::new();
        let secret = Some(hooks.secret.as_str());
        assert_eq!(hooks.is_event(secret, &notification("event-notification")), Ok(true));
        assert_eq!(hooks.is_event(secret, &notification("handshake")), Ok(false));
        assert_eq!(hooks.is_event(Some("guess"), &notification("event-notification")), Err(Refusal::Unauthenticated));
        assert_eq!(hooks.is_event(None, &notification("event-notification")), Err(Refusal::Unauthenticated));
        assert!(matches!(hooks.is_event(secret, b"{}"), Err(Refusal::Malformed(_))));
        assert!(matches!(hooks.is_event(secret, b"not json"), Err(Refusal::Malformed(_))));
    }
}
