//! Authorization against a real OpenID Connect provider (npm `oidc-provider`, installed by
//! `scripts/test-tools`): Termin finds the provider's keys by discovery alone, and access
//! tokens it issues by the client-credentials grant are honoured by their SMART scopes.

mod oidc_support;
mod scheduling_support;
mod support;

use oidc_support::*;
use reqwest::Method;
use scheduling_support::*;
use serde_json::{Value, json};
use support::*;

const AUDIENCE: &str = "termin-api";

/// An access token for `client` by the client-credentials grant, asking for `scope`.
async fn client_credentials(provider: &Provider, client: (&str, &str), scope: &str) -> String {
    let response = reqwest::Client::new()
        .post(format!("{}/token", provider.issuer))
        .basic_auth(client.0, Some(client.1))
        .header("content-type", "application/x-www-form-urlencoded")
        // SMART scopes need no escaping in a form but for their separating spaces.
        .body(format!("grant_type=client_credentials&scope={}", scope.replace(' ', "%20")))
        .send()
        .await
        .expect("token request");
    let status = response.status();
    let body: Value = response.json().await.expect("token response");
    assert_eq!(status, 200, "token request for {scope}: {body}");
    assert_eq!(body["token_type"], "Bearer");
    body["access_token"].as_str().expect("access_token").to_owned()
}

async fn termin_for(provider: &Provider) -> TestServer {
    // No --auth-jwks: the keys come from the provider's discovery document.
    TestServer::start_with(
        ServerOptions::new().flag("--auth-issuer", &provider.issuer).flag("--auth-audience", AUDIENCE),
    )
    .await
}

#[tokio::test]
async fn tokens_of_a_real_provider_are_honoured_by_their_scopes() {
    let integration = ("practice-system", "practice-secret");
    let portal = ("directory-portal", "portal-secret");
    let provider = start_provider(&[
        (integration.0, integration.1, "system/*.cruds"),
        (portal.0, portal.1, "system/Slot.rs system/Schedule.rs"),
    ]);
    let s = termin_for(&provider).await;
    let full = client_credentials(&provider, integration, "system/*.cruds").await;
    let read_slots = client_credentials(&provider, portal, "system/Slot.rs").await;

    // The SMART configuration names the provider's endpoints, found by discovery.
    let smart = s.get(".well-known/smart-configuration").await.expect_status(200).json();
    assert_eq!(smart["issuer"], provider.issuer.as_str());
    assert_eq!(smart["token_endpoint"], format!("{}/token", provider.issuer));

    // A practice system sets up its calendar and a patient.
    let mut patient_resource = patient(SVNR_SYSTEM, "1234010180", "Huber");
    patient_resource["id"] = json!("pat-anna");
    let setup = [
        patient_resource,
        json!({"resourceType": "Practitioner", "id": "prac-melanie", "name": [{"family": "Musterärztin"}]}),
        service_resource("hcs-physio", true, false),
        schedule_resource("sch-main", true, false),
        slot_resource("slot-0", "sch-main", 0, "free"),
    ];
    for resource in &setup {
        let path = format!("{}/{}", resource["resourceType"].as_str().unwrap(), resource["id"].as_str().unwrap());
        call(&s, Method::PUT, &path, Some(&full), Some(resource)).await.expect_status(201);
    }

    // Without a token, with a forged one, or with too little scope, nothing is written.
    let hold = hold_request("slot-0", "busy-tentative");
    let unauthenticated = call(&s, Method::POST, "Slot/$hold", None, Some(&hold)).await;
    assert_eq!(unauthenticated.code(), 401, "{}", unauthenticated.what());
    let forged = {
        let mut parts: Vec<String> = full.split('.').map(str::to_owned).collect();
        parts[2] = parts[2].chars().rev().collect();
        parts.join(".")
    };
    assert_eq!(call(&s, Method::POST, "Slot/$hold", Some(&forged), Some(&hold)).await.code(), 401);
    let too_little = call(&s, Method::POST, "Slot/$hold", Some(&read_slots), Some(&hold)).await;
    assert_eq!(too_little.code(), 403, "{}", too_little.what());
    call(&s, Method::GET, "Slot?schedule=Schedule/sch-main", Some(&read_slots), None).await.expect_status(200);
    let patients = call(&s, Method::GET, "Patient", Some(&read_slots), None).await;
    assert_eq!(patients.code(), 403, "{}", patients.what());
    assert_eq!(slot_status(&s, "slot-0").await, "free");

    // The integration holds and books the slot with its token alone, no hold-token.
    call(&s, Method::POST, "Slot/$hold", Some(&full), Some(&hold)).await.expect_status(200);
    let booked = call(&s, Method::POST, "Appointment/$book", Some(&full), Some(&book_request(&appointment("pat-anna", &["slot-0"]), &[])))
        .await
        .expect_status(201)
        .json();
    assert_eq!(param_resource(&booked, "appointment")["status"], "booked");
    assert_eq!(slot_status(&s, "slot-0").await, "busy");
}
