//! The SubscriptionTopics Termin serves, and the Subscription operations `$status` and
//! `$events` (R5), over the delivery records of `termin-notify`.

use super::BaseUrl;
use crate::SharedState;
use crate::error::ApiError;
use crate::format::{FhirResponse, ResponseFormat};
use axum::extract::Path;
use axum::http::StatusCode;
use serde_json::{Map, Value, json};
use termin_domain::subscriptions::{Content, SubscriptionSpec, TOPICS, topic};
use termin_fhir::instant::format_instant;
use termin_fhir::{Issue, IssueCode, ResourceType};
use termin_notify::bundle::{NotificationType, notification_bundle, subscription_status, with_focus};
use termin_notify::websocket::{Hub, Stream};
use termin_store::RequestContext;

/// Events one `$events` call returns at most.
const MAX_EVENTS: u64 = 100;

fn searchset(base: &str, resources: Vec<Value>) -> Value {
    let entries: Vec<Value> = resources
        .into_iter()
        .map(|resource| {
            let full_url = match resource["id"].as_str() {
                Some(id) => format!("{base}/{}/{id}", resource["resourceType"].as_str().unwrap_or_default()),
                None => format!("urn:uuid:{}", uuid::Uuid::new_v4()),
            };
            json!({"fullUrl": full_url, "resource": resource, "search": {"mode": "match"}})
        })
        .collect();
    json!({
        "resourceType": "Bundle",
        "type": "searchset",
        "timestamp": format_instant(jiff::Timestamp::now()),
        "total": entries.len(),
        "entry": entries,
    })
}

/// `GET /fhir/SubscriptionTopic`: every topic (`url` narrows to one).
pub async fn topics(base: BaseUrl, format: ResponseFormat, query: axum::extract::RawQuery) -> Result<FhirResponse, ApiError> {
    let wanted_url = form_urlencoded::parse(query.0.unwrap_or_default().as_bytes())
        .find(|(name, _)| name == "url")
        .map(|(_, value)| value.into_owned());
    let resources = TOPICS
        .iter()
        .filter(|t| wanted_url.as_deref().is_none_or(|url| t.url(&base.0) == url))
        .map(|t| t.resource(&base.0))
        .collect();
    Ok(FhirResponse::new(StatusCode::OK, format).json(searchset(&base.0, resources)))
}

/// `GET /fhir/SubscriptionTopic/[id]`.
pub async fn read_topic(Path(id): Path<String>, base: BaseUrl, format: ResponseFormat) -> Result<FhirResponse, ApiError> {
    let topic = topic(&id).ok_or_else(|| ApiError::not_found(format!("SubscriptionTopic/{id} is not known")))?;
    Ok(FhirResponse::new(StatusCode::OK, format).json(topic.resource(&base.0)))
}

fn bad(name: &str, message: impl Into<String>) -> ApiError {
    ApiError::bad_request(Issue::error(IssueCode::Invalid, message).at(name))
}

/// The inputs of `$events`, from the query or a Parameters body.
fn inputs(query: Option<&str>, body: &Map<String, Value>) -> Vec<(String, String)> {
    let mut found: Vec<(String, String)> = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .map(|(n, v)| (n.into_owned(), v.into_owned()))
        .collect();
    for parameter in body.get("parameter").and_then(Value::as_array).into_iter().flatten() {
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

fn hub(state: &SharedState) -> Result<&Hub, ApiError> {
    state.notifications.as_deref().ok_or_else(|| {
        ApiError::new(StatusCode::NOT_IMPLEMENTED, Issue::error(IssueCode::NotSupported, "notifications are off on this server"))
    })
}

/// `$get-ws-binding-token`: a token for `bind-with-token` on the websocket URL.
fn binding_token(hub: &Hub, id: &str, spec: &SubscriptionSpec, format: ResponseFormat, base: &str) -> Result<FhirResponse, ApiError> {
    if spec.channel != "websocket" {
        return Err(ApiError::bad_request(Issue::error(
            IssueCode::NotSupported,
            format!("Subscription/{id} uses the {} channel, not websocket", spec.channel),
        )));
    }
    let (token, expires) = hub.issue(id);
    let websocket_url = format!("{}{WEBSOCKET_PATH}", base.replacen("http", "ws", 1).trim_end_matches("/fhir"));
    Ok(FhirResponse::new(StatusCode::OK, format).json(json!({
        "resourceType": "Parameters",
        "parameter": [
            {"name": "token", "valueString": token},
            {"name": "expiration", "valueDateTime": format_instant(expires)},
            {"name": "subscription", "valueString": format!("{base}/Subscription/{id}")},
            {"name": "websocket-url", "valueUrl": websocket_url},
        ],
    })))
}

/// Where websockets connect (R5 leaves the URL to the server).
pub const WEBSOCKET_PATH: &str = "/fhir/$subscription-ws";

/// The websocket channel: the client sends `bind-with-token <token>`; the server answers with
/// a handshake Bundle, then sends the Subscription's new events and heartbeats as text
/// messages. An unknown or expired token gets an error message and the socket is closed.
pub async fn websocket(
    axum::extract::State(state): axum::extract::State<SharedState>,
    base: BaseUrl,
    upgrade: axum::extract::ws::WebSocketUpgrade,
) -> Result<axum::response::Response, ApiError> {
    hub(&state)?;
    Ok(upgrade.on_upgrade(move |socket| serve_socket(state, base.0, socket)))
}

async fn serve_socket(state: SharedState, base: String, mut socket: axum::extract::ws::WebSocket) {
    use axum::extract::ws::Message;
    let Some(hub) = state.notifications.clone() else { return };
    let mut stream: Option<Stream> = None;
    let mut ticks = tokio::time::interval(hub.interval);
    loop {
        tokio::select! {
            message = socket.recv() => {
                let text = match message {
                    Some(Ok(Message::Text(text))) => text.to_string(),
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                    Some(Ok(_)) => continue,
                };
                let Some(token) = text.trim().strip_prefix("bind-with-token ") else {
                    let _ = socket.send(Message::Text("error: expected bind-with-token <token>".into())).await;
                    continue;
                };
                let bound = match hub.redeem(token.trim()) {
                    Some(id) => Stream::bind(state.service.clone(), hub.deliveries.clone(), base.clone(), id).await,
                    None => Err("the token is unknown or has expired".to_owned()),
                };
                match bound {
                    Ok((bound, handshake)) => {
                        if socket.send(Message::Text(handshake.to_string().into())).await.is_err() {
                            return;
                        }
                        stream = Some(bound);
                    }
                    Err(reason) => {
                        let _ = socket.send(Message::Text(format!("error: {reason}").into())).await;
                        let _ = socket.send(Message::Close(None)).await;
                        return;
                    }
                }
            }
            _ = ticks.tick() => {
                let Some(bound) = stream.as_mut() else { continue };
                match bound.next().await {
                    Ok(Some(bundle)) => {
                        if socket.send(Message::Text(bundle.to_string().into())).await.is_err() {
                            return;
                        }
                    }
                    Ok(None) => {}
                    Err(reason) => tracing::warn!(error = %reason, "websocket notifications failed; will retry"),
                }
            }
        }
    }
}

/// `$status`, `$events` and `$get-ws-binding-token` on `Subscription/[id]`.
#[allow(clippy::too_many_arguments)]
pub async fn operation(
    state: &SharedState,
    ctx: &RequestContext,
    id: &str,
    code: &str,
    query: Option<&str>,
    body: &Map<String, Value>,
    format: ResponseFormat,
    base: &BaseUrl,
) -> Result<FhirResponse, ApiError> {
    let stored = state.service.read(ctx, ResourceType::Subscription, id).await?;
    let subscription: Map<String, Value> = stored
        .body
        .as_deref()
        .and_then(|b| serde_json::from_str(b).ok())
        .ok_or_else(ApiError::internal)?;
    let mut spec = SubscriptionSpec::parse(&subscription).map_err(|_| ApiError::internal())?;
    let hub = hub(state)?;
    if code == "get-ws-binding-token" {
        return binding_token(hub, id, &spec, format, &base.0);
    }
    let deliveries = &hub.deliveries;
    let delivery = deliveries.delivery_state(id).await.map_err(termin_domain::DomainError::from)?;
    let events_total = delivery.as_ref().map_or(0, |d| d.events_total);
    let base = &base.0;
    match code {
        "status" => {
            let status = subscription_status(base, id, &spec, NotificationType::QueryStatus, events_total, &[], delivery.as_ref());
            Ok(FhirResponse::new(StatusCode::OK, format).json(searchset(base, vec![status])))
        }
        _ => {
            let mut since = 1;
            let mut until = events_total;
            for (name, value) in inputs(query, body) {
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
                deliveries.notifications(id, since, until, MAX_EVENTS as usize).await.map_err(termin_domain::DomainError::from)?
            } else {
                Vec::new()
            };
            let events = with_focus(&state.service, events).await?;
            let status = subscription_status(base, id, &spec, NotificationType::QueryEvent, events_total, &events, None);
            let bundle = notification_bundle(base, &spec, status, &events, jiff::Timestamp::now());
            Ok(FhirResponse::new(StatusCode::OK, format).json(bundle))
        }
    }
}
