//! R5 Subscriptions over rest-hook, against a real HTTP receiver started by the test: topics,
//! validation, handshake, numbered events with their focus, retries and the `error` status,
//! `$status`, `$events`, a kill -9 during delivery, and three nodes delivering one Subscription.

mod support;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::{ServerOptions, TestServer, until};

/// What the receiver was sent: the Authorization header and the Bundle of each POST.
#[derive(Default)]
struct Received {
    posts: Mutex<Vec<(Option<String>, Value)>>,
    /// While set, the receiver answers 503 (and records nothing).
    failing: AtomicBool,
    /// Each answer waits this long (a slow endpoint, to crash the server mid-delivery).
    delay: Mutex<Duration>,
}

impl Received {
    fn bundles(&self) -> Vec<Value> {
        self.posts.lock().unwrap().iter().map(|(_, b)| b.clone()).collect()
    }

    /// Every (event number, focus reference) received, in arrival order.
    fn events(&self) -> Vec<(u64, String)> {
        self.bundles()
            .iter()
            .flat_map(|b| {
                b["entry"][0]["resource"]["notificationEvent"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|e| {
                        (
                            e["eventNumber"].as_str().unwrap().parse::<u64>().unwrap(),
                            e["focus"]["reference"].as_str().unwrap_or_default().to_owned(),
                        )
                    })
            })
            .collect()
    }

    fn of_type(&self, kind: &str) -> usize {
        self.bundles().iter().filter(|b| b["entry"][0]["resource"]["type"] == kind).count()
    }
}

async fn receive(State(received): State<Arc<Received>>, headers: HeaderMap, body: String) -> StatusCode {
    let delay = *received.delay.lock().unwrap();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if received.failing.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let authorization = headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_owned);
    received.posts.lock().unwrap().push((authorization, serde_json::from_str(&body).unwrap()));
    StatusCode::OK
}

/// A rest-hook endpoint on a port of its own: its URL and what it received.
async fn start_receiver() -> (String, Arc<Received>) {
    let received = Arc::new(Received::default());
    let app = axum::Router::new().route("/hook", post(receive)).with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, received)
}

fn fast_delivery() -> ServerOptions {
    ServerOptions::new()
        .flag("--notify-interval", "100ms")
        .flag("--notify-retry-base", "100ms")
        .flag("--notify-max-backoff", "400ms")
        .flag("--notify-max-failures", "2")
}

fn subscription(server: &TestServer, topic: &str, endpoint: &str, filters: Value) -> Value {
    json!({
        "resourceType": "Subscription",
        "status": "requested",
        "topic": format!("{}/SubscriptionTopic/{topic}", server.base()),
        "filterBy": filters,
        "channelType": {"system": "http://terminology.hl7.org/CodeSystem/subscription-channel-type", "code": "rest-hook"},
        "endpoint": endpoint,
        "parameter": [{"name": "Authorization", "value": "Bearer receiver-secret"}],
        "content": "full-resource",
    })
}

fn appointment(patient: &str) -> Value {
    json!({
        "resourceType": "Appointment",
        "status": "booked",
        "participant": [{"actor": {"reference": format!("Patient/{patient}")}, "status": "accepted"}],
    })
}

async fn status_of(server: &TestServer, id: &str) -> String {
    server.read("Subscription", id).await["status"].as_str().unwrap().to_owned()
}

async fn active_subscription(server: &TestServer, body: &Value, received: &Received) -> String {
    let id = server.create(body).await["id"].as_str().unwrap().to_owned();
    until("the handshake", Duration::from_secs(30), async || received.of_type("handshake") > 0).await;
    until("status active", Duration::from_secs(30), async || status_of(server, &id).await == "active").await;
    id
}

#[tokio::test]
async fn topics_are_served_and_subscriptions_validated() {
    let server = TestServer::start_with(fast_delivery()).await;
    let topics = server.get("/SubscriptionTopic").await.expect_status(200).json();
    let ids: Vec<&str> = topics["entry"].as_array().unwrap().iter().map(|e| e["resource"]["id"].as_str().unwrap()).collect();
    assert!(ids.contains(&"appointment-cancelled") && ids.contains(&"slot-availability"), "{ids:?}");
    let booked = server.get("/SubscriptionTopic/appointment-booked").await.expect_status(200).json();
    assert_eq!(booked["url"], format!("{}/SubscriptionTopic/appointment-booked", server.base()));
    assert!(booked["canFilterBy"].as_array().unwrap().iter().any(|f| f["filterParameter"] == "patient"));
    server.get("/SubscriptionTopic/nope").await.expect_status(404);

    let endpoint = "http://127.0.0.1:9/hook";
    let unknown_topic = subscription(&server, "nope", endpoint, json!([]));
    let outcome = server.post("/Subscription", &unknown_topic).await.outcome(422);
    assert!(support::expressions(&outcome).contains(&"Subscription.topic".to_owned()), "{outcome}");
    let bad_filter = subscription(&server, "slot-availability", endpoint, json!([{"filterParameter": "patient", "value": "Patient/p1"}]));
    let outcome = server.post("/Subscription", &bad_filter).await.outcome(422);
    assert!(support::diagnostics(&outcome).contains("cannot filter by"), "{outcome}");
    let mut no_endpoint = subscription(&server, "appointment-booked", endpoint, json!([]));
    no_endpoint.as_object_mut().unwrap().remove("endpoint");
    server.post("/Subscription", &no_endpoint).await.outcome(422);
    // Nothing was stored.
    assert_eq!(server.get("/Subscription").await.expect_status(200).json()["total"], 0);
}

#[tokio::test]
async fn rest_hook_delivers_numbered_events_and_retries() {
    let server = TestServer::start_with(fast_delivery()).await;
    let (endpoint, received) = start_receiver().await;
    let body = subscription(&server, "appointment-booked", &endpoint, json!([{"filterParameter": "patient", "value": "Patient/p1"}]));
    let id = active_subscription(&server, &body, &received).await;

    let first = server.create(&appointment("p1")).await;
    server.create(&appointment("p2")).await; // filtered out
    let second = server.create(&appointment("p1")).await;
    until("two events", Duration::from_secs(30), async || received.events().len() >= 2).await;
    let events = received.events();
    assert_eq!(events.iter().map(|(n, _)| *n).collect::<Vec<_>>(), [1, 2]);
    assert!(events[0].1.ends_with(&format!("/Appointment/{}/_history/1", first["id"].as_str().unwrap())), "{events:?}");
    assert!(events[1].1.ends_with(&format!("/Appointment/{}/_history/1", second["id"].as_str().unwrap())));
    let notification = received.bundles().into_iter().find(|b| b["entry"][0]["resource"]["type"] == "event-notification").unwrap();
    assert_eq!(notification["type"], "subscription-notification");
    assert_eq!(notification["entry"][1]["resource"]["resourceType"], "Appointment", "full-resource carries the focus");
    assert!(received.posts.lock().unwrap().iter().all(|(auth, _)| auth.as_deref() == Some("Bearer receiver-secret")));

    // The endpoint fails: retries, then status error; it recovers: the event arrives, active again.
    received.failing.store(true, Ordering::SeqCst);
    let third = server.create(&appointment("p1")).await;
    until("status error", Duration::from_secs(30), async || status_of(&server, &id).await == "error").await;
    let status = server.get(&format!("/Subscription/{id}/$status")).await.expect_status(200).json();
    let status = &status["entry"][0]["resource"];
    assert_eq!(status["type"], "query-status");
    assert_eq!(status["eventsSinceSubscriptionStart"], "3");
    assert!(status["error"][0]["text"].as_str().unwrap().contains("503"), "{status}");
    received.failing.store(false, Ordering::SeqCst);
    until("the third event", Duration::from_secs(30), async || received.events().len() >= 3).await;
    until("status active again", Duration::from_secs(30), async || status_of(&server, &id).await == "active").await;
    let events = received.events();
    assert_eq!(events.iter().map(|(n, _)| *n).collect::<Vec<_>>(), [1, 2, 3]);
    assert!(events[2].1.contains(third["id"].as_str().unwrap()));

    // $events replays from a number on, id-only on request.
    let replay = server.get(&format!("/Subscription/{id}/$events?eventsSinceNumber=2&content=id-only")).await.expect_status(200).json();
    assert_eq!(replay["type"], "subscription-notification");
    let numbers: Vec<&str> = replay["entry"][0]["resource"]["notificationEvent"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["eventNumber"].as_str().unwrap())
        .collect();
    assert_eq!(numbers, ["2", "3"]);
    assert_eq!(replay["entry"].as_array().unwrap().len(), 1, "id-only carries no resources");
    server.get(&format!("/Subscription/{id}/$events?eventsSinceNumber=x")).await.outcome(400);
}

/// The next text message of a websocket, as JSON.
async fn next_bundle<S>(socket: &mut S) -> Value
where
    S: futures::Stream<Item = Result<tokio_tungstenite::tungstenite::Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    use futures::StreamExt;
    loop {
        let message = tokio::time::timeout(Duration::from_secs(30), socket.next()).await.expect("a message in time").unwrap().unwrap();
        if let tokio_tungstenite::tungstenite::Message::Text(text) = message {
            return serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
        }
    }
}

#[tokio::test]
async fn the_websocket_channel_streams_events_after_binding() {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let server = TestServer::start_with(fast_delivery()).await;
    let mut body = subscription(&server, "appointment-booked", "http://unused.invalid/", json!([]));
    body["channelType"]["code"] = json!("websocket");
    body.as_object_mut().unwrap().remove("endpoint");
    let id = server.create(&body).await["id"].as_str().unwrap().to_owned();
    until("status active", Duration::from_secs(30), async || status_of(&server, &id).await == "active").await;
    // Only websocket Subscriptions get binding tokens.
    let rest_hook = server.create(&subscription(&server, "appointment-booked", "http://127.0.0.1:9/", json!([]))).await;
    let path = format!("/Subscription/{}/$get-ws-binding-token", rest_hook["id"].as_str().unwrap());
    server.post(&path, &json!({"resourceType": "Parameters"})).await.outcome(400);

    let parameters = server.post(&format!("/Subscription/{id}/$get-ws-binding-token"), &json!({"resourceType": "Parameters"})).await.expect_status(200).json();
    let value = |name: &str| {
        parameters["parameter"].as_array().unwrap().iter().find(|p| p["name"] == name).map(|p| {
            p.as_object().unwrap().iter().find(|(k, _)| k.starts_with("value")).unwrap().1.as_str().unwrap().to_owned()
        })
    };
    let (url, token) = (value("websocket-url").unwrap(), value("token").unwrap());
    assert!(url.starts_with("ws://"), "{url}");
    let (mut socket, _) = tokio_tungstenite::connect_async(url.as_str()).await.expect("connect the websocket");
    // A bad token is refused, the socket closed.
    let (mut refused, _) = tokio_tungstenite::connect_async(url.as_str()).await.unwrap();
    refused.send(Message::Text("bind-with-token nope".into())).await.unwrap();
    let answer = refused.next().await.unwrap().unwrap();
    assert!(answer.to_text().unwrap().starts_with("error:"), "{answer:?}");

    socket.send(Message::Text(format!("bind-with-token {token}").into())).await.unwrap();
    let handshake = next_bundle(&mut socket).await;
    assert_eq!(handshake["entry"][0]["resource"]["type"], "handshake", "{handshake}");
    let booked = server.create(&appointment("p1")).await;
    let notification = next_bundle(&mut socket).await;
    let status = &notification["entry"][0]["resource"];
    assert_eq!(status["type"], "event-notification", "{notification}");
    assert_eq!(status["notificationEvent"][0]["eventNumber"], "1");
    assert!(status["notificationEvent"][0]["focus"]["reference"].as_str().unwrap().contains(booked["id"].as_str().unwrap()));
    assert_eq!(notification["entry"][1]["resource"]["id"], booked["id"]);
}

#[tokio::test]
async fn nothing_is_lost_when_the_server_is_killed_during_delivery() {
    // The dead process's lease (2 × --notify-timeout + 5 s) delays the restarted one.
    let mut server = TestServer::start_with(fast_delivery().flag("--notify-batch", "1").flag("--notify-timeout", "2s")).await;
    let (endpoint, received) = start_receiver().await;
    let body = subscription(&server, "appointment-booked", &endpoint, json!([]));
    active_subscription(&server, &body, &received).await;
    *received.delay.lock().unwrap() = Duration::from_millis(100);
    const EVENTS: u64 = 30;
    for _ in 0..EVENTS {
        server.create(&appointment("p1")).await;
    }
    until("some events", Duration::from_secs(60), async || received.events().len() >= 5).await;
    server.kill();
    assert!(received.events().len() < EVENTS as usize, "the kill came after delivery had ended");
    server.restart().await;
    *received.delay.lock().unwrap() = Duration::ZERO;
    until("every event", Duration::from_secs(60), async || {
        received.events().iter().map(|(n, _)| *n).collect::<BTreeSet<_>>().len() >= EVENTS as usize
    })
    .await;
    let numbers: BTreeSet<u64> = received.events().iter().map(|(n, _)| *n).collect();
    assert_eq!(numbers, (1..=EVENTS).collect::<BTreeSet<_>>(), "no gaps, nothing beyond");
    // At-least-once: only the notification in flight at the kill may come twice.
    assert!(received.events().len() <= EVENTS as usize + 1, "{:?}", received.events());
}

#[tokio::test]
async fn three_nodes_deliver_each_event_once_in_order() {
    let first = TestServer::start_with(fast_delivery()).await;
    let (endpoint, received) = start_receiver().await;
    let body = subscription(&first, "appointment-booked", &endpoint, json!([]));
    active_subscription(&first, &body, &received).await;
    let second = first.another_node(fast_delivery()).await;
    let third = first.another_node(fast_delivery()).await;
    const EVENTS: usize = 500;
    let nodes = [&first, &second, &third];
    let mut created = BTreeSet::new();
    let body = appointment("p1");
    for chunk in (0..EVENTS).collect::<Vec<_>>().chunks(15) {
        let writes = chunk.iter().map(|i| nodes[i % 3].create(&body));
        for resource in futures::future::join_all(writes).await {
            created.insert(resource["id"].as_str().unwrap().to_owned());
        }
    }
    until("every event", Duration::from_secs(120), async || received.events().len() >= EVENTS).await;
    // Let any duplicate delivery show up before counting.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let events = received.events();
    assert_eq!(events.iter().map(|(n, _)| *n).collect::<Vec<_>>(), (1..=EVENTS as u64).collect::<Vec<_>>(), "once each, in order");
    let focused: BTreeSet<String> = events
        .iter()
        .map(|(_, focus)| focus.split("/Appointment/").nth(1).unwrap().split('/').next().unwrap().to_owned())
        .collect();
    assert_eq!(focused, created);
}
