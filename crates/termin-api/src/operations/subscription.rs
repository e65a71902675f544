//! `Subscription/[id]/$status`, `$events` and `$get-ws-binding-token` (R5), over the delivery
//! records of `termin-notify`.

use super::{Answer, Invocation, Operation, parameter};
use crate::SharedState;
use crate::error::ApiError;
use crate::format::FhirResponse;
use crate::routes::subscriptions::{WEBSOCKET_PATH, hub, searchset};
use axum::http::StatusCode;
use serde_json::{Map, Value, json};
use termin_domain::subscriptions::{Content, SubscriptionSpec};
use termin_fhir::instant::format_instant;
use termin_fhir::{Issue, IssueCode, ResourceType};
use termin_notify::bundle::{NotificationType, notification_bundle, subscription_status, with_focus};
use termin_notify::websocket::Hub;
use termin_store::Permission;

/// Events one `$events` call returns at most.
const MAX_EVENTS: u64 = 100;

pub const STATUS: Operation = Operation {
    id: "Subscription-status",
    code: "status",
    resources: &[ResourceType::Subscription],
    instance: true,
    safe: true,
    base: "http://hl7.org/fhir/OperationDefinition/Subscription-status",
    needs_validator: false,
    needs: Some((ResourceType::Subscription, Permission::Read)),
    description: "The delivery status of a Subscription (GET or POST on Subscription/[id]).",
    parameters: || {
        json!([
            parameter("return", "out", 1, "1", "Bundle",
                "searchset with one SubscriptionStatus (type query-status): status, eventsSinceSubscriptionStart, \
                 topic and the last delivery error, if any."),
        ])
    },
    handler: |state, call| Box::pin(status(state, call)),
};

pub const EVENTS: Operation = Operation {
    id: "Subscription-events",
    code: "events",
    resources: &[ResourceType::Subscription],
    instance: true,
    safe: true,
    base: "http://hl7.org/fhir/OperationDefinition/Subscription-events",
    needs_validator: false,
    needs: Some((ResourceType::Subscription, Permission::Read)),
    description: "Replays a Subscription's numbered events, e.g. those a receiver missed (GET or POST on \
        Subscription/[id]).",
    parameters: || {
        json!([
            parameter("eventsSinceNumber", "in", 0, "1", "integer64", "The first event number wanted (default 1)."),
            parameter("eventsUntilNumber", "in", 0, "1", "integer64",
                "The last event number wanted (default the latest); at most 100 events are returned per call."),
            parameter("content", "in", 0, "1", "code", "empty, id-only or full-resource (default: the Subscription's)."),
            parameter("return", "out", 1, "1", "Bundle",
                "subscription-notification Bundle: a SubscriptionStatus (type query-event) with the events, then the \
                 focus resources for full-resource."),
        ])
    },
    handler: |state, call| Box::pin(events(state, call)),
};

pub const GET_WS_BINDING_TOKEN: Operation = Operation {
    id: "Subscription-get-ws-binding-token",
    code: "get-ws-binding-token",
    resources: &[ResourceType::Subscription],
    instance: true,
    safe: false,
    base: "http://hl7.org/fhir/OperationDefinition/Subscription-get-ws-binding-token",
    needs_validator: false,
    needs: Some((ResourceType::Subscription, Permission::Read)),
    description: "A token that binds a websocket to a websocket-channel Subscription (POST on \
        Subscription/[id]); the token is valid on the node that issued it.",
    parameters: || {
        json!([
            parameter("token", "out", 1, "1", "string", "Send `bind-with-token <token>` on the websocket."),
            parameter("expiration", "out", 1, "1", "dateTime", "The token is accepted until then (5 minutes)."),
            parameter("subscription", "out", 0, "*", "string", "The Subscription the token binds to."),
            parameter("websocket-url", "out", 1, "1", "url", "Where to connect: [server]/fhir/$subscription-ws."),
        ])
    },
    handler: |state, call| Box::pin(binding_token(state, call)),
};

/// The Subscription the operation is invoked on, as the caller may read it.
struct Target {
    id: String,
    spec: SubscriptionSpec,
}

impl Target {
    async fn read(state: &SharedState, call: &Invocation, code: &str) -> Result<Self, ApiError> {
        let id = call.id.clone().ok_or_else(|| {
            ApiError::bad_request(Issue::error(IssueCode::NotSupported, format!("${code} is invoked on Subscription/[id]")))
        })?;
        let stored = state.domain.resources.read(&call.ctx, ResourceType::Subscription, &id).await?;
        let subscription: Map<String, Value> = stored
            .body
            .as_deref()
            .and_then(|b| serde_json::from_str(b).ok())
            .ok_or_else(ApiError::internal)?;
        let spec = SubscriptionSpec::parse(&subscription).map_err(|_| ApiError::internal())?;
        Ok(Target { id, spec })
    }
}

fn bad(name: &str, message: impl Into<String>) -> ApiError {
    ApiError::bad_request(Issue::error(IssueCode::Invalid, message).at(name))
}

/// The inputs of `$events`, from the query or a Parameters body.
fn inputs(query: Option<&str>, body: Option<&Map<String, Value>>) -> Vec<(String, String)> {
    let mut found: Vec<(String, String)> = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .map(|(n, v)| (n.into_owned(), v.into_owned()))
        .collect();
    let parameters = body.and_then(|b| b.get("parameter")).and_then(Value::as_array);
    for parameter in parameters.into_iter().flatten() {
        let name = parameter.get("name").and_then(Value::as_str).unwrap_or_default();
        let value = ["valueInteger64", "valueInteger", "valueCode", "valueString"]
            .iter()
            .find_map(|key| parameter.get(*key))
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned));
        if let Some(value) = value {
            found.push((name.to_owned(), value));
        }
    }
    found
}

/// `$get-ws-binding-token`: a token for `bind-with-token` on the websocket URL.
async fn binding_token(state: SharedState, call: Invocation) -> Answer {
    let Target { id, spec } = Target::read(&state, &call, "get-ws-binding-token").await?;
    let hub: &Hub = hub(&state)?;
    if spec.channel != "websocket" {
        return Err(ApiError::bad_request(Issue::error(
            IssueCode::NotSupported,
            format!("Subscription/{id} uses the {} channel, not websocket", spec.channel),
        )));
    }
    let base = &call.base.0;
    let (token, expires) = hub.issue(&id);
    let websocket_url = format!("{}{WEBSOCKET_PATH}", base.replacen("http", "ws", 1).trim_end_matches("/fhir"));
    Ok(FhirResponse::new(StatusCode::OK, call.format).json(json!({
        "resourceType": "Parameters",
        "parameter": [
            {"name": "token", "valueString": token},
            {"name": "expiration", "valueDateTime": format_instant(expires)},
            {"name": "subscription", "valueString": format!("{base}/Subscription/{id}")},
            {"name": "websocket-url", "valueUrl": websocket_url},
        ],
    })))
}

/// `$status`: a searchset with the Subscription's SubscriptionStatus.
async fn status(state: SharedState, call: Invocation) -> Answer {
    let Target { id, spec } = Target::read(&state, &call, "status").await?;
    let deliveries = &hub(&state)?.deliveries;
    let delivery = deliveries.delivery_state(&id).await.map_err(termin_domain::DomainError::from)?;
    let events_total = delivery.as_ref().map_or(0, |d| d.events_total);
    let base = &call.base.0;
    let status = subscription_status(base, &id, &spec, NotificationType::QueryStatus, events_total, &[], delivery.as_ref());
    Ok(FhirResponse::new(StatusCode::OK, call.format).json(searchset(base, vec![status])))
}

/// `$events`: the numbered events asked for, at most [`MAX_EVENTS`].
async fn events(state: SharedState, call: Invocation) -> Answer {
    let Target { id, mut spec } = Target::read(&state, &call, "events").await?;
    let deliveries = &hub(&state)?.deliveries;
    let delivery = deliveries.delivery_state(&id).await.map_err(termin_domain::DomainError::from)?;
    let events_total = delivery.as_ref().map_or(0, |d| d.events_total);
    let mut since = 1;
    let mut until = events_total;
    for (name, value) in inputs(call.query.as_deref(), call.body.as_ref()) {
        let number = || value.parse::<u64>().map_err(|_| bad(&name, format!("{name} must be a non-negative integer")));
        match name.as_str() {
            "eventsSinceNumber" => since = number()?.max(1),
            "eventsUntilNumber" => until = number()?.min(events_total),
            "content" => {
                spec.content = Content::parse(&value)
                    .ok_or_else(|| bad("content", "content must be empty, id-only or full-resource"))?
            }
            "_format" | "_pretty" => {}
            other => return Err(bad(other, format!("$events has no parameter {other}"))),
        }
    }
    let until = until.min(since.saturating_add(MAX_EVENTS - 1));
    let events = if since <= until {
        deliveries.notifications(&id, since, until, MAX_EVENTS as usize).await.map_err(termin_domain::DomainError::from)?
    } else {
        Vec::new()
    };
    let events = with_focus(&state.domain.resources, events).await?;
    let base = &call.base.0;
    let status = subscription_status(base, &id, &spec, NotificationType::QueryEvent, events_total, &events, None);
    let bundle = notification_bundle(base, &spec, status, &events, jiff::Timestamp::now());
    Ok(FhirResponse::new(StatusCode::OK, call.format).json(bundle))
}
