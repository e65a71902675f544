//! Credentials at upstreams, against a real HTTP server standing in for an upstream and its
//! token endpoint: a static bearer token is sent as it is; a client-credentials token is
//! fetched once and reused while it is valid; a token endpoint that refuses leaves the
//! upstream's results out with a warning saying why.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use termin_fhir::ResourceType;
use termin_platform::{Platform, PlatformConfig, UpstreamAuth, UpstreamConfig};

#[derive(Default)]
struct Counters {
    tokens: AtomicUsize,
}

/// `POST /token` issues `token-N` (N counts from 1) when the client credentials are right;
/// `GET /fhir/Slot` answers a searchset with one Slot whose id is the Authorization it got.
async fn upstream() -> (String, Arc<Counters>) {
    let counters = Arc::new(Counters::default());
    let app = Router::new()
        .route(
            "/token",
            post(|State(counters): State<Arc<Counters>>, body: String| async move {
                let form: Vec<(String, String)> = form_urlencoded::parse(body.as_bytes()).into_owned().collect();
                let has = |k: &str, v: &str| form.iter().any(|(name, value)| name == k && value == v);
                if !(has("grant_type", "client_credentials") && has("client_id", "platform") && has("client_secret", "s3cret")) {
                    return (StatusCode::UNAUTHORIZED, json!({"error": "invalid_client"}).to_string());
                }
                let n = counters.tokens.fetch_add(1, Ordering::SeqCst) + 1;
                let token = json!({"access_token": format!("token-{n}"), "token_type": "Bearer", "expires_in": 3600});
                (StatusCode::OK, token.to_string())
            }),
        )
        .route(
            "/fhir/Slot",
            get(|headers: HeaderMap| async move {
                let authorization = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("none");
                let id = authorization.replace(' ', "-");
                (StatusCode::OK, json!({"resourceType": "Bundle", "type": "searchset", "total": 1, "entry": [
                    {"fullUrl": format!("http://upstream/fhir/Slot/{id}"), "resource": {"resourceType": "Slot", "id": id}, "search": {"mode": "match"}}
                ]}).to_string())
            }),
        )
        .with_state(counters.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{address}"), counters)
}

fn platform(url: &str, auth: UpstreamAuth) -> Platform {
    Platform::new(PlatformConfig {
        name: "test".into(),
        upstreams: vec![UpstreamConfig {
            name: "up".into(),
            url: format!("{url}/fhir"),
            auth,
            timeout: Duration::from_secs(5),
            priority: 0,
        }],
        directory_ttl: Duration::ZERO,
        slot_ttl: Duration::ZERO,
    })
    .unwrap()
}

async fn slot_id(platform: &Platform) -> Result<String, Value> {
    let upstream = &platform.upstreams()[0];
    let page = platform.search_page(upstream, ResourceType::Slot, "_count=1", &["test".into()], "http://platform/fhir").await?;
    Ok(page.groups[0].entries[0]["resource"]["id"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn a_static_bearer_token_is_sent() {
    let (url, _) = upstream().await;
    let platform = platform(&url, UpstreamAuth::Bearer("fixed".into()));
    assert_eq!(slot_id(&platform).await.unwrap(), "up.Bearer-fixed");
}

#[tokio::test]
async fn client_credentials_tokens_are_fetched_once_and_reused() {
    let (url, counters) = upstream().await;
    let credentials = |secret: &str| UpstreamAuth::ClientCredentials {
        token_url: format!("{url}/token"),
        client_id: "platform".into(),
        client_secret: secret.into(),
        scope: Some("system/Slot.rs".into()),
    };
    let platform = platform(&url, credentials("s3cret"));
    assert_eq!(slot_id(&platform).await.unwrap(), "up.Bearer-token-1");
    assert_eq!(slot_id(&platform).await.unwrap(), "up.Bearer-token-1", "the cached token");
    assert_eq!(counters.tokens.load(Ordering::SeqCst), 1);

    let refused = self::platform(&url, credentials("wrong"));
    let issue = slot_id(&refused).await.unwrap_err();
    assert_eq!(issue["code"], "security");
    let text = issue["diagnostics"].as_str().unwrap();
    assert!(text.contains("No access token for upstream up") && text.contains("401"), "{text}");
}
