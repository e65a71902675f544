//! The SubscriptionTopics Termin serves and the websocket channel of Subscriptions (R5); the
//! Subscription operations are in [`crate::operations`].

use super::BaseUrl;
use crate::SharedState;
use crate::error::ApiError;
use crate::format::{FhirResponse, ResponseFormat};
use axum::extract::Path;
use axum::http::StatusCode;
use serde_json::{Value, json};
use termin_domain::subscriptions::{TOPICS, topic};
use termin_fhir::instant::format_instant;
use termin_fhir::{Issue, IssueCode};
use termin_notify::websocket::{Hub, Stream};

/// A searchset Bundle of the given resources (all matches, one page).
pub(crate) fn searchset(base: &str, resources: Vec<Value>) -> Value {
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

/// The delivery records and websocket bindings, or 501 when notifications are off.
pub(crate) fn hub(state: &SharedState) -> Result<&Hub, ApiError> {
    state.notifications.as_deref().ok_or_else(|| {
        ApiError::new(StatusCode::NOT_IMPLEMENTED, Issue::error(IssueCode::NotSupported, "notifications are off on this server"))
    })
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
                    Some(id) => Stream::bind(state.domain.clone(), hub.deliveries.clone(), base.clone(), id).await,
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

