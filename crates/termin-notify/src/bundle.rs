//! The `subscription-notification` Bundle: a SubscriptionStatus first, then (for
//! `full-resource`) the focus resources, as R5 and the `$events` operation define it.

use jiff::Timestamp;
use serde_json::{Map, Value, json};
use termin_domain::subscriptions::{Content, SubscriptionSpec};
use termin_domain::{Caller, DomainError, ResourceService};
use termin_fhir::instant::format_instant;
use termin_store::{DeliveryState, Notification, ResourceVersion};

/// `SubscriptionStatus.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotificationType {
    Handshake,
    Heartbeat,
    EventNotification,
    QueryStatus,
    QueryEvent,
}

impl NotificationType {
    pub fn code(self) -> &'static str {
        match self {
            NotificationType::Handshake => "handshake",
            NotificationType::Heartbeat => "heartbeat",
            NotificationType::EventNotification => "event-notification",
            NotificationType::QueryStatus => "query-status",
            NotificationType::QueryEvent => "query-event",
        }
    }
}

/// The SubscriptionStatus of a Subscription; `events` become its `notificationEvent`s.
pub fn subscription_status(
    base: &str,
    subscription_id: &str,
    spec: &SubscriptionSpec,
    kind: NotificationType,
    events_total: u64,
    events: &[(Notification, Option<ResourceVersion>)],
    state: Option<&DeliveryState>,
) -> Value {
    let notification_events: Vec<Value> = events
        .iter()
        .map(|(notification, focus)| {
            let mut event = Map::new();
            // integer64 is a JSON string in R5.
            event.insert("eventNumber".into(), json!(notification.number.to_string()));
            event.insert("timestamp".into(), json!(format_instant(notification.event.occurred_at)));
            if spec.content != Content::Empty {
                let version = focus.as_ref().map(|f| f.version).or(notification.event.focus_version);
                let mut reference = format!("{base}/{}/{}", notification.event.focus_type, notification.event.focus_id);
                if let Some(version) = version {
                    reference.push_str(&format!("/_history/{version}"));
                }
                event.insert("focus".into(), json!({"reference": reference}));
            }
            Value::Object(event)
        })
        .collect();
    let mut status = json!({
        "resourceType": "SubscriptionStatus",
        "status": spec.status,
        "type": kind.code(),
        "eventsSinceSubscriptionStart": events_total.to_string(),
        "subscription": {"reference": format!("{base}/Subscription/{subscription_id}")},
        "topic": spec.topic.url(base),
    });
    if !notification_events.is_empty() {
        status["notificationEvent"] = Value::Array(notification_events);
    }
    if let Some(error) = state.and_then(|s| s.last_error.as_deref()) {
        status["error"] = json!([{"text": error}]);
    }
    status
}

/// A `subscription-notification` Bundle around `status`, with the focus resources when the
/// Subscription asks for `full-resource`.
pub fn notification_bundle(
    base: &str,
    spec: &SubscriptionSpec,
    status: Value,
    events: &[(Notification, Option<ResourceVersion>)],
    now: Timestamp,
) -> Value {
    let mut entries = vec![json!({"fullUrl": format!("urn:uuid:{}", uuid::Uuid::new_v4()), "resource": status})];
    if spec.content == Content::FullResource {
        for (_, focus) in events {
            if let Some(focus) = focus
                && let Some(body) = focus.body.as_deref().and_then(|b| serde_json::from_str::<Value>(b).ok())
            {
                entries.push(json!({
                    "fullUrl": format!("{base}/{}/{}", focus.resource_type, focus.id),
                    "resource": body,
                }));
            }
        }
    }
    json!({
        "resourceType": "Bundle",
        "id": uuid::Uuid::new_v4().to_string(),
        "type": "subscription-notification",
        "timestamp": format_instant(now),
        "entry": entries,
    })
}

/// The focus version of each event (the version the event names, else the current one); a
/// focus that is gone is `None`.
pub async fn with_focus(
    service: &ResourceService,
    events: Vec<Notification>,
) -> Result<Vec<(Notification, Option<ResourceVersion>)>, DomainError> {
    let ctx = Caller::system("notify");
    let mut out = Vec::with_capacity(events.len());
    for notification in events {
        let event = &notification.event;
        let read = match event.focus_version {
            Some(version) => service.vread(&ctx, event.focus_type, &event.focus_id, version).await,
            None => service.read(&ctx, event.focus_type, &event.focus_id).await,
        };
        let focus = match read {
            Ok(version) => Some(version),
            Err(DomainError::NotFound(_) | DomainError::Gone(_)) => None,
            Err(other) => return Err(other),
        };
        out.push((notification, focus));
    }
    Ok(out)
}
