//! Authorization (issue 14, first slice): bearer tokens checked against a JWKS file or keys
//! found by OpenID discovery, SMART scopes per type and interaction, the public directory,
//! SMART discovery and `CapabilityStatement.rest.security`. The tests sign their own tokens
//! with the test keys in `tests/auth_keys`.

mod support;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Method;
use reqwest::header::AUTHORIZATION;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use support::*;

const ISSUER: &str = "https://idp.termin.test/realms/termin";
const AUDIENCE: &str = "termin-api";
const RSA_PRIVATE: &str = include_str!("auth_keys/rsa-private.pem");
const RSA_PUBLIC: &str = include_str!("auth_keys/rsa-public.pem");
const EC_PRIVATE: &str = include_str!("auth_keys/ec-private.pem");
const OTHER_RSA_PRIVATE: &str = include_str!("auth_keys/other-rsa-private.pem");
const JWKS: &str = include_str!("auth_keys/jwks.json");
const OTHER_RSA_JWK: &str = include_str!("auth_keys/other-rsa-jwk.json");

fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// Valid claims for `scope`, issued by [`ISSUER`] for [`AUDIENCE`].
fn claims(scope: &str) -> Value {
    json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": "user-1", "client_id": "booking-app",
        "iat": now(), "exp": now() + 300, "scope": scope,
    })
}

fn sign_with(alg: Algorithm, kid: &str, pem: &str, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = Some(kid.to_owned());
    let key = match alg {
        Algorithm::ES256 => EncodingKey::from_ec_pem(pem.as_bytes()),
        Algorithm::HS256 => Ok(EncodingKey::from_secret(pem.as_bytes())),
        _ => EncodingKey::from_rsa_pem(pem.as_bytes()),
    }
    .expect("test key");
    jsonwebtoken::encode(&header, claims, &key).expect("sign")
}

/// An RS256 token for `scope`.
fn token(scope: &str) -> String {
    sign_with(Algorithm::RS256, "test-rsa", RSA_PRIVATE, &claims(scope))
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

async fn start_with_jwks(extra: &[&str]) -> TestServer {
    let mut options = ServerOptions::new()
        .flag("--auth-issuer", ISSUER)
        .flag("--auth-audience", AUDIENCE)
        .flag("--auth-jwks", "{dir}/jwks.json");
    options.files.push(("jwks.json".into(), JWKS.into()));
    for arg in extra {
        options = options.arg(*arg);
    }
    TestServer::start_with(options).await
}

fn assert_unauthorized(r: &Resp, what: &str) {
    assert_eq!(r.code(), 401, "{what}: {}", r.what());
    let challenge = r.header("www-authenticate").unwrap_or_default();
    assert!(challenge.starts_with("Bearer ") && challenge.contains("error=\"invalid_token\""), "{what}: {challenge}");
    let outcome = r.outcome(401);
    assert_eq!(outcome["issue"][0]["code"], "login", "{what}: {outcome}");
}

fn assert_forbidden(r: &Resp, what: &str) {
    assert_eq!(r.code(), 403, "{what}: {}", r.what());
    assert_eq!(r.outcome(403)["issue"][0]["code"], "forbidden", "{what}");
}

#[tokio::test]
async fn tokens_are_checked_against_the_jwks_file() {
    let s = start_with_jwks(&[]).await;
    let scope = "openid fhirUser user/Patient.rs";

    assert_unauthorized(&call(&s, Method::GET, "Patient", None, None).await, "no token");
    let rs256 = token(scope);
    call(&s, Method::GET, "Patient", Some(&rs256), None).await.expect_status(200);
    let es256 = sign_with(Algorithm::ES256, "test-ec", EC_PRIVATE, &claims(scope));
    call(&s, Method::GET, "Patient", Some(&es256), None).await.expect_status(200);
    // No kid: the keys that fit the algorithm are tried.
    let mut header = Header::new(Algorithm::RS256);
    header.kid = None;
    let no_kid =
        jsonwebtoken::encode(&header, &claims(scope), &EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).unwrap()).unwrap();
    call(&s, Method::GET, "Patient", Some(&no_kid), None).await.expect_status(200);

    let with = |change: &dyn Fn(&mut Value)| {
        let mut c = claims(scope);
        change(&mut c);
        token_from(&c)
    };
    fn token_from(c: &Value) -> String {
        sign_with(Algorithm::RS256, "test-rsa", RSA_PRIVATE, c)
    }
    let payload = b64(serde_json::to_string(&claims(scope)).unwrap().as_bytes());
    let none = format!("{}.{payload}.", b64(br#"{"alg":"none","typ":"JWT"}"#));
    let hs256_public_key = sign_with(Algorithm::HS256, "test-rsa", RSA_PUBLIC, &claims(scope));
    let hs256_no_kid = {
        let key = EncodingKey::from_secret(RSA_PUBLIC.as_bytes());
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims(scope), &key).unwrap()
    };
    let tampered = {
        let parts: Vec<&str> = rs256.split('.').collect();
        let mut c = claims(scope);
        c["scope"] = json!("system/*.cruds");
        format!("{}.{}.{}", parts[0], b64(c.to_string().as_bytes()), parts[2])
    };
    let refused = [
        ("expired", with(&|c| c["exp"] = json!(now() - 600))),
        ("not yet valid", with(&|c| c["nbf"] = json!(now() + 600))),
        ("wrong audience", with(&|c| c["aud"] = json!("another-api"))),
        ("wrong issuer", with(&|c| c["iss"] = json!("https://evil.test/realms/termin"))),
        ("no subject", with(&|c| {
            c.as_object_mut().unwrap().remove("sub");
        })),
        ("no expiry", with(&|c| {
            c.as_object_mut().unwrap().remove("exp");
        })),
        ("unknown kid", sign_with(Algorithm::RS256, "who-knows", RSA_PRIVATE, &claims(scope))),
        ("signed by another key", sign_with(Algorithm::RS256, "test-rsa", OTHER_RSA_PRIVATE, &claims(scope))),
        ("RSA kid with ES256", sign_with(Algorithm::ES256, "test-rsa", EC_PRIVATE, &claims(scope))),
        ("alg none", none),
        ("HS256 with the public key as secret", hs256_public_key),
        ("HS256 without kid", hs256_no_kid),
        ("tampered payload", tampered),
        ("not a JWT", "not-a-token".to_owned()),
    ];
    for (what, bad) in &refused {
        assert_unauthorized(&call(&s, Method::GET, "Patient", Some(bad), None).await, what);
        // A bad token is refused on the public directory as well.
        assert_unauthorized(&call(&s, Method::GET, "Slot", Some(bad), None).await, what);
    }
    let basic = s.send(s.request(Method::GET, "Patient").header(AUTHORIZATION, "Basic dXNlcjpwdw==")).await;
    assert_unauthorized(&basic, "Basic credentials");
    // Server metadata needs no token and ignores bad ones.
    s.send(s.request(Method::GET, "metadata").header(AUTHORIZATION, "Bearer garbage")).await.expect_status(200);
}

#[tokio::test]
async fn scopes_decide_each_interaction_per_type() {
    let s = start_with_jwks(&[]).await;
    let admin = token("system/*.cruds");
    let created = call(&s, Method::POST, "Patient", Some(&admin), Some(&simple_patient("Huber"))).await.expect_status(201).json();
    let id = id_of(&created);
    let path = format!("Patient/{id}");

    let reader = token("user/Patient.r");
    call(&s, Method::GET, &path, Some(&reader), None).await.expect_status(200);
    call(&s, Method::GET, &format!("{path}/_history"), Some(&reader), None).await.expect_status(200);
    assert_forbidden(&call(&s, Method::GET, "Patient", Some(&reader), None).await, "search with r only");
    assert_forbidden(&call(&s, Method::GET, "Patient/_history", Some(&reader), None).await, "type history with r only");
    assert_forbidden(&call(&s, Method::PUT, &path, Some(&reader), Some(&created)).await, "update with r only");
    assert_forbidden(&call(&s, Method::DELETE, &path, Some(&reader), None).await, "delete with r only");
    assert_forbidden(&call(&s, Method::GET, "Appointment", Some(&reader), None).await, "another type");
    let refused = call(&s, Method::POST, "Patient", Some(&reader), Some(&simple_patient("Berger"))).await;
    assert_forbidden(&refused, "create with r only");
    assert!(refused.header("www-authenticate").unwrap_or_default().contains("insufficient_scope"));

    // SMART v1 forms map onto v2.
    let v1_reader = token("user/*.read");
    call(&s, Method::GET, "Patient", Some(&v1_reader), None).await.expect_status(200);
    call(&s, Method::GET, "Appointment", Some(&v1_reader), None).await.expect_status(200);
    assert_forbidden(&call(&s, Method::DELETE, &path, Some(&v1_reader), None).await, "v1 read deletes");
    let v1_writer = token("user/Patient.write");
    let mut changed = created.clone();
    changed["gender"] = json!("female");
    call(&s, Method::PUT, &path, Some(&v1_writer), Some(&changed)).await.expect_status(200);
    assert_forbidden(&call(&s, Method::GET, &path, Some(&v1_writer), None).await, "v1 write reads");

    // A restricted scope is not enforced yet, so it grants nothing rather than everything.
    let restricted = token("user/Patient.rs?gender=female");
    assert_forbidden(&call(&s, Method::GET, &path, Some(&restricted), None).await, "restricted scope");

    // A refused write changed nothing.
    assert_eq!(history_len(&s, &path, &admin).await, 2);
    call(&s, Method::DELETE, &path, Some(&token("user/Patient.d")), None).await.expect_status(204);
}

async fn history_len(s: &TestServer, path: &str, token: &str) -> usize {
    let bundle = call(s, Method::GET, &format!("{path}/_history"), Some(token), None).await.expect_status(200).json();
    entries(&bundle).len()
}

/// A Schedule with one free Slot, a HealthcareService and a booked Appointment on another slot.
async fn directory(s: &TestServer, admin: &str) {
    let resources = [
        json!({"resourceType": "Schedule", "id": "sch-1", "active": true, "actor": [{"reference": "Practitioner/prac-1"}]}),
        json!({"resourceType": "Practitioner", "id": "prac-1", "name": [{"family": "Musterärztin"}]}),
        json!({"resourceType": "HealthcareService", "id": "hcs-1", "active": true,
               "type": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/service-type", "code": "65"}]}]}),
        json!({"resourceType": "Slot", "id": "slot-1", "schedule": {"reference": "Schedule/sch-1"}, "status": "free",
               "start": "2030-01-07T09:00:00+01:00", "end": "2030-01-07T09:30:00+01:00"}),
        json!({"resourceType": "Patient", "id": "pat-1", "name": [{"family": "Huber"}]}),
        json!({"resourceType": "Appointment", "id": "app-1", "status": "booked",
               "subject": {"reference": "Patient/pat-1"},
               "participant": [{"actor": {"reference": "Patient/pat-1"}, "status": "accepted"}],
               "slot": [{"reference": "Slot/slot-1"}]}),
    ];
    for resource in &resources {
        let path = format!("{}/{}", resource["resourceType"].as_str().unwrap(), resource["id"].as_str().unwrap());
        let r = call(s, Method::PUT, &path, Some(admin), Some(resource)).await;
        assert!(matches!(r.code(), 200 | 201), "{}", r.what());
    }
}

#[tokio::test]
async fn the_public_directory_is_readable_without_a_token() {
    let s = start_with_jwks(&[]).await;
    let admin = token("system/*.cruds");
    directory(&s, &admin).await;

    for path in ["Slot?status=busy", "Schedule", "Slot/slot-1", "Schedule/sch-1/_history", "Practitioner", "Location",
        "Organization", "PractitionerRole", "HealthcareService",
        "HealthcareService/$findHSP?healthcareService-type=http://terminology.hl7.org/CodeSystem/service-type|65"]
    {
        call(&s, Method::GET, path, None, None).await.expect_status(200);
    }
    for path in ["Patient", "Patient/pat-1", "Appointment", "Appointment/app-1", "RelatedPerson"] {
        assert_unauthorized(&call(&s, Method::GET, path, None, None).await, path);
    }
    // Writes and $hold/$book always need a token.
    let slot = call(&s, Method::GET, "Slot/slot-1", None, None).await.json();
    assert_unauthorized(&call(&s, Method::PUT, "Slot/slot-1", None, Some(&slot)).await, "PUT Slot");
    assert_unauthorized(&call(&s, Method::DELETE, "Schedule/sch-1", None, None).await, "DELETE Schedule");
    let hold = hold_of("slot-1");
    assert_unauthorized(&call(&s, Method::POST, "Slot/$hold", None, Some(&hold)).await, "$hold");
    assert_unauthorized(&call(&s, Method::POST, "Appointment/$book", None, Some(&json!({"resourceType": "Parameters"}))).await, "$book");
    // With a token, $hold needs Slot update and $book Appointment create.
    assert_forbidden(&call(&s, Method::POST, "Slot/$hold", Some(&token("patient/Slot.rs")), Some(&hold)).await, "$hold r");
    let held = call(&s, Method::POST, "Slot/$hold", Some(&token("patient/Slot.u")), Some(&hold)).await;
    assert_eq!(held.code(), 409, "the booked slot cannot be held, but the token may try: {}", held.what());
    assert_forbidden(
        &call(&s, Method::POST, "Appointment/$book", Some(&token("patient/Appointment.r")), Some(&json!({"resourceType": "Parameters"}))).await,
        "$book r",
    );
    call(&s, Method::POST, "Appointment/$book", Some(&token("patient/Appointment.c")), Some(&json!({"resourceType": "Parameters"})))
        .await
        .expect_status(400);

    // Anonymous searches cannot reach patient data through includes, _has or chains.
    let bundle = call(&s, Method::GET, "Slot?_revinclude=Appointment:slot", None, None).await.expect_status(200).json();
    let types: Vec<Value> = entries(&bundle).iter().map(|e| e["resource"]["resourceType"].clone()).collect();
    assert!(!types.contains(&json!("Appointment")), "{bundle}");
    assert!(bundle.to_string().contains("included resources were left out"), "{bundle}");
    let with_scope = call(&s, Method::GET, "Slot?_revinclude=Appointment:slot", Some(&token("system/Appointment.r")), None).await;
    assert!(with_scope.expect_status(200).text().contains("\"app-1\""));
    assert_forbidden(&call(&s, Method::GET, "Slot?_has:Appointment:slot:patient=Patient/pat-1", None, None).await, "_has");
    assert_forbidden(&call(&s, Method::GET, "Schedule?actor:Patient.name=Huber", None, None).await, "chain to Patient");
}

#[tokio::test]
async fn without_public_read_every_request_needs_a_token() {
    let s = start_with_jwks(&["--public-read", "false"]).await;
    assert_unauthorized(&call(&s, Method::GET, "Slot", None, None).await, "Slot");
    assert_unauthorized(&call(&s, Method::GET, "HealthcareService/$findHSP?healthcareService-type=a|b", None, None).await, "$findHSP");
    call(&s, Method::GET, "Slot", Some(&token("user/Slot.s")), None).await.expect_status(200);
    assert_forbidden(&call(&s, Method::GET, "Slot", Some(&token("user/Schedule.s")), None).await, "Slot with Schedule scope");
}

#[tokio::test]
async fn capability_statement_and_smart_configuration_describe_the_security() {
    let s = start_with_jwks(&[]).await;
    let statement = s.get("metadata").await.expect_status(200).json();
    let security = &statement["rest"][0]["security"];
    assert_eq!(security["service"][0]["coding"][0]["code"], "SMART-on-FHIR", "{security}");
    assert!(security["description"].as_str().unwrap().contains(ISSUER));
    let smart = s.get(".well-known/smart-configuration").await.expect_status(200);
    assert!(smart.header("content-type").unwrap().starts_with("application/json"));
    let smart = smart.json();
    assert_eq!(smart["issuer"], ISSUER);
    assert!(smart["capabilities"].as_array().unwrap().contains(&json!("permission-v2")));
    assert!(smart["scopes_supported"].as_array().unwrap().contains(&json!("system/*.cruds")));

    let open = TestServer::start().await;
    let security = &open.get("metadata").await.expect_status(200).json()["rest"][0]["security"];
    assert!(security["description"].as_str().unwrap().contains("Authorization is OFF"), "{security}");
    assert!(security.get("service").is_none());
    open.get(".well-known/smart-configuration").await.expect_status(404);
    assert!(
        open.stderr_lines().iter().any(|l| l.contains("authorization is OFF")),
        "a start-up warning says authorization is off"
    );
    open.get("Patient").await.expect_status(200);
}

/// A stand-in identity provider serving OpenID discovery and a JWKS that the test can change
/// or take down.
struct Provider {
    issuer: String,
    keys: Arc<Mutex<Value>>,
    server: tokio::task::JoinHandle<()>,
}

async fn provider() -> Provider {
    use axum::routing::get;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    let keys = Arc::new(Mutex::new(serde_json::from_str::<Value>(JWKS).unwrap()));
    let configuration = json!({
        "issuer": issuer,
        "jwks_uri": format!("{issuer}/protocol/openid-connect/certs"),
        "authorization_endpoint": format!("{issuer}/protocol/openid-connect/auth"),
        "token_endpoint": format!("{issuer}/protocol/openid-connect/token"),
    });
    let served_keys = keys.clone();
    let json = |value: Value| ([(axum::http::header::CONTENT_TYPE, "application/json")], value.to_string());
    let app = axum::Router::new()
        .route("/.well-known/openid-configuration", get(move || async move { json(configuration) }))
        .route(
            "/protocol/openid-connect/certs",
            get(move || {
                let keys = served_keys.lock().unwrap().clone();
                async move { json(keys) }
            }),
        );
    let server = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    Provider { issuer, keys, server }
}

#[tokio::test]
async fn keys_are_found_by_openid_discovery_refreshed_for_new_keys_and_kept_while_the_provider_is_down() {
    let idp = provider().await;
    let s = TestServer::start_with(
        ServerOptions::new().flag("--auth-issuer", &idp.issuer).flag("--auth-audience", AUDIENCE),
    )
    .await;
    let signed = |kid: &str, pem: &str| {
        let mut c = claims("user/Patient.rs");
        c["iss"] = json!(idp.issuer);
        sign_with(Algorithm::RS256, kid, pem, &c)
    };
    call(&s, Method::GET, "Patient", Some(&signed("test-rsa", RSA_PRIVATE)), None).await.expect_status(200);
    let rotated = signed("rotated-rsa", OTHER_RSA_PRIVATE);
    let mut wrong_issuer = claims("user/Patient.rs");
    wrong_issuer["iss"] = json!(ISSUER);
    assert_unauthorized(
        &call(&s, Method::GET, "Patient", Some(&sign_with(Algorithm::RS256, "test-rsa", RSA_PRIVATE, &wrong_issuer)), None).await,
        "another issuer",
    );

    // The provider rotates in a new key: a token naming it makes Termin fetch the keys again.
    idp.keys.lock().unwrap()["keys"].as_array_mut().unwrap().push(serde_json::from_str(OTHER_RSA_JWK).unwrap());
    call(&s, Method::GET, "Patient", Some(&rotated), None).await.expect_status(200);

    let smart = s.get(".well-known/smart-configuration").await.expect_status(200).json();
    assert_eq!(smart["token_endpoint"], format!("{}/protocol/openid-connect/token", idp.issuer));
    assert_eq!(smart["jwks_uri"], format!("{}/protocol/openid-connect/certs", idp.issuer));

    // The provider goes down: the cached keys still verify tokens.
    idp.server.abort();
    let _ = idp.server.await;
    call(&s, Method::GET, "Patient", Some(&signed("test-rsa", RSA_PRIVATE)), None).await.expect_status(200);
    call(&s, Method::GET, "Patient", Some(&rotated), None).await.expect_status(200);
    assert_unauthorized(
        &call(&s, Method::GET, "Patient", Some(&signed("unknown", RSA_PRIVATE)), None).await,
        "unknown kid while the provider is down",
    );
}

/// A token for a patients' app launched for `patient` (`patient` claim, `patient/` scopes).
fn patient_token(patient: Option<&str>) -> String {
    let mut c = claims(
        "openid launch/patient patient/Patient.rs patient/Appointment.cruds patient/RelatedPerson.rs \
         patient/Slot.rus patient/Schedule.rs patient/Subscription.cruds",
    );
    if let Some(patient) = patient {
        c["patient"] = json!(patient);
        c["sub"] = json!(format!("user-{patient}"));
    }
    sign_with(Algorithm::RS256, "test-rsa", RSA_PRIVATE, &c)
}

/// Two patients, each with an Appointment booked on a slot and a RelatedPerson, and two free slots.
async fn two_patients(s: &TestServer, admin: &str) {
    let slot = |id: &str, hour: u32| {
        json!({"resourceType": "Slot", "id": id, "schedule": {"reference": "Schedule/sch-1"}, "status": "free",
               "start": format!("2030-01-07T{hour:02}:00:00+01:00"), "end": format!("2030-01-07T{hour:02}:30:00+01:00")})
    };
    let mut resources = vec![
        json!({"resourceType": "Schedule", "id": "sch-1", "active": true, "actor": [{"reference": "Practitioner/prac-1"}]}),
        json!({"resourceType": "Practitioner", "id": "prac-1", "name": [{"family": "Musterärztin"}]}),
    ];
    for (i, id) in ["slot-1", "slot-2", "slot-3", "slot-4"].into_iter().enumerate() {
        resources.push(slot(id, 9 + i as u32));
    }
    for (n, patient) in [(1, "pat-1"), (2, "pat-2")] {
        resources.push(json!({"resourceType": "Patient", "id": patient, "name": [{"family": format!("Huber{n}")}]}));
        resources.push(json!({"resourceType": "RelatedPerson", "id": format!("rp-{n}"), "patient": {"reference": format!("Patient/{patient}")}}));
        resources.push(json!({"resourceType": "Appointment", "id": format!("app-{n}"), "status": "booked",
            "subject": {"reference": format!("Patient/{patient}")},
            "participant": [{"actor": {"reference": format!("Patient/{patient}")}, "status": "accepted"},
                            {"actor": {"reference": "Practitioner/prac-1"}, "status": "accepted"}],
            "slot": [{"reference": format!("Slot/slot-{n}")}]}));
    }
    for resource in &resources {
        let path = format!("{}/{}", resource["resourceType"].as_str().unwrap(), resource["id"].as_str().unwrap());
        let r = call(s, Method::PUT, &path, Some(admin), Some(resource)).await;
        assert!(matches!(r.code(), 200 | 201), "{}", r.what());
    }
}

/// The ids of a searchset's entries in `mode` (`match` or `include`), sorted.
fn ids_in(bundle: &Value, mode: &str) -> Vec<String> {
    let mut ids: Vec<String> = entries(bundle)
        .iter()
        .filter(|e| e["search"]["mode"] == mode)
        .map(|e| format!("{}/{}", e["resource"]["resourceType"].as_str().unwrap(), e["resource"]["id"].as_str().unwrap()))
        .collect();
    ids.sort();
    ids
}

async fn found(s: &TestServer, token: &str, path: &str) -> Value {
    call(s, Method::GET, path, Some(token), None).await.expect_status(200).json()
}

fn booking(patient: &str, slot: &str) -> Value {
    json!({"resourceType": "Parameters", "parameter": [{"name": "appointment-resource", "resource": {
        "resourceType": "Appointment", "status": "proposed",
        "subject": {"reference": format!("Patient/{patient}")},
        "participant": [{"actor": {"reference": format!("Patient/{patient}")}, "status": "accepted"}],
        "slot": [{"reference": format!("Slot/{slot}")}]}}]})
}

#[tokio::test]
async fn a_patient_token_subscribes_only_to_its_own_appointments() {
    let s = start_with_jwks(&[]).await;
    let me = patient_token(Some("pat-1"));
    let subscription = |topic: &str, filters: Value| {
        json!({"resourceType": "Subscription", "status": "requested",
            "topic": format!("{}/SubscriptionTopic/{topic}", s.base()), "filterBy": filters,
            "channelType": {"system": "http://terminology.hl7.org/CodeSystem/subscription-channel-type", "code": "rest-hook"},
            "endpoint": "http://127.0.0.1:9/hook"})
    };
    let own = subscription("appointment-cancelled", json!([{"filterParameter": "patient", "value": "Patient/pat-1"}]));
    call(&s, Method::POST, "Subscription", Some(&me), Some(&own)).await.expect_status(201);
    for others in [
        json!([{"filterParameter": "patient", "value": "Patient/pat-2"}]),
        json!([]),
        json!([{"filterParameter": "patient", "value": "Patient/pat-1"}, {"filterParameter": "actor", "value": "Patient/pat-2"}]),
    ] {
        let r = call(&s, Method::POST, "Subscription", Some(&me), Some(&subscription("appointment-booked", others.clone()))).await;
        assert_forbidden(&r, &others.to_string());
    }
    // Slot availability is nobody's personal data.
    let slots = subscription("slot-availability", json!([]));
    call(&s, Method::POST, "Subscription", Some(&me), Some(&slots)).await.expect_status(201);
}

#[tokio::test]
async fn a_patient_token_sees_only_the_subscriptions_filtered_on_its_patient() {
    let s = start_with_jwks(&[]).await;
    let admin = token("system/*.cruds");
    let me = patient_token(Some("pat-1"));
    let subscription = |patient: &str| {
        json!({"resourceType": "Subscription", "status": "requested",
            "topic": format!("{}/SubscriptionTopic/appointment-booked", s.base()),
            "filterBy": [{"filterParameter": "patient", "value": format!("Patient/{patient}")}],
            "channelType": {"system": "http://terminology.hl7.org/CodeSystem/subscription-channel-type", "code": "rest-hook"},
            "endpoint": format!("http://127.0.0.1:9/hook-of-{patient}"),
            "parameter": [{"name": "Authorization", "value": format!("Bearer secret-of-{patient}")}]})
    };
    let create = |patient: &'static str| {
        let body = subscription(patient);
        let (s, admin) = (&s, &admin);
        async move {
            let created = call(s, Method::POST, "Subscription", Some(admin), Some(&body)).await.expect_status(201).json();
            created["id"].as_str().unwrap().to_owned()
        }
    };
    let own = create("pat-1").await;
    let other = create("pat-2").await;

    call(&s, Method::GET, &format!("Subscription/{own}"), Some(&me), None).await.expect_status(200);
    for hidden in [format!("Subscription/{other}"), format!("Subscription/{other}/_history/1"), format!("Subscription/{other}/$status")] {
        let r = call(&s, Method::GET, &hidden, Some(&me), None).await;
        assert_eq!(r.code(), 404, "{hidden}: {}", r.what());
        assert!(!r.text().contains("secret-of-pat-2"), "{hidden}");
    }
    let mine = found(&s, &me, "Subscription").await;
    assert_eq!(ids_in(&mine, "match"), [format!("Subscription/{own}")]);
    assert!(!mine.to_string().contains("secret-of-pat-2"));
    assert_eq!(ids_in(&found(&s, &me, "Subscription?status=requested,active").await, "match"), [format!("Subscription/{own}")]);
    assert_forbidden(&call(&s, Method::DELETE, &format!("Subscription/{other}"), Some(&me), None).await, "another's Subscription");
    // Staff see both.
    assert_eq!(ids_in(&found(&s, &admin, "Subscription").await, "match").len(), 2);
}

#[tokio::test]
async fn a_patient_token_reaches_only_its_own_compartment() {
    let s = start_with_jwks(&[]).await;
    let admin = token("system/*.cruds");
    two_patients(&s, &admin).await;
    let me = patient_token(Some("pat-1"));
    let get = |path: &'static str| call(&s, Method::GET, path, Some(&me), None);

    // Reads: own data 200; another patient's Appointment or RelatedPerson 404 as if unknown,
    // another Patient (named by the request itself) 403.
    for own in ["Patient/pat-1", "Appointment/app-1", "RelatedPerson/rp-1", "Appointment/app-1/_history/1", "Appointment/app-1/_history"] {
        get(own).await.expect_status(200);
    }
    for hidden in ["Appointment/app-2", "RelatedPerson/rp-2", "Appointment/app-2/_history/1", "Appointment/app-2/_history"] {
        let r = get(hidden).await;
        assert_eq!(r.code(), 404, "{hidden}: {}", r.what());
        assert_eq!(r.outcome(404)["issue"][0]["code"], "not-found", "{hidden}");
    }
    assert_forbidden(&get("Patient/pat-2").await, "another Patient");

    // Searches return only the compartment, also through includes, _has and history.
    assert_eq!(ids_in(&found(&s, &me, "Appointment").await, "match"), ["Appointment/app-1"]);
    assert_eq!(ids_in(&found(&s, &me, "Patient").await, "match"), ["Patient/pat-1"]);
    assert_eq!(ids_in(&found(&s, &me, "RelatedPerson").await, "match"), ["RelatedPerson/rp-1"]);
    assert_eq!(ids_in(&found(&s, &me, "Appointment?patient=pat-1").await, "match"), ["Appointment/app-1"]);
    let slots = found(&s, &me, "Slot?_id=slot-1,slot-2&_revinclude=Appointment:slot").await;
    assert_eq!(ids_in(&slots, "match"), ["Slot/slot-1", "Slot/slot-2"]);
    assert_eq!(ids_in(&slots, "include"), ["Appointment/app-1"]);
    let included = found(&s, &me, "Appointment?_include=Appointment:actor&_revinclude=RelatedPerson:patient").await;
    assert_eq!(ids_in(&included, "include"), ["Patient/pat-1", "Practitioner/prac-1"]);
    let patients = found(&s, &me, "Patient?_revinclude=Appointment:patient&_revinclude=RelatedPerson:patient").await;
    assert_eq!(ids_in(&patients, "include"), ["Appointment/app-1", "RelatedPerson/rp-1"]);
    assert_eq!(ids_in(&found(&s, &me, "Slot?_has:Appointment:slot:status=booked").await, "match"), ["Slot/slot-1"]);
    assert!(ids_in(&found(&s, &me, "Slot?_has:Appointment:slot:patient=pat-2").await, "match").is_empty());
    assert!(ids_in(&found(&s, &me, "Appointment?patient.name=Huber2").await, "match").is_empty());
    let history = found(&s, &me, "Appointment/_history").await;
    assert!(!entries(&history).is_empty() && entries(&history).iter().all(|e| e["resource"]["id"] == "app-1"), "{history}");
    assert_eq!(entries(&found(&s, &me, "Patient/_history").await).len(), 1);
    for naming_another in ["Appointment?patient=pat-2", "Appointment?actor=Patient/pat-2", "Patient?_id=pat-1,pat-2", "RelatedPerson?patient=pat-2"] {
        assert_forbidden(&get(naming_another).await, naming_another);
    }

    // Patient scopes without a patient claim reach no patient's data.
    let no_context = patient_token(None);
    assert_forbidden(&call(&s, Method::GET, "Appointment", Some(&no_context), None).await, "no patient claim");
    assert_forbidden(&call(&s, Method::GET, "Appointment/app-1", Some(&no_context), None).await, "no patient claim");
    // The directory stays readable.
    call(&s, Method::GET, "Slot", Some(&no_context), None).await.expect_status(200);
}

#[tokio::test]
async fn a_patient_token_books_and_cancels_only_for_itself() {
    let s = start_with_jwks(&[]).await;
    let admin = token("system/*.cruds");
    two_patients(&s, &admin).await;
    let me = patient_token(Some("pat-1"));

    // Hold → book by the patient's token, without a hold-token.
    let hold = hold_of("slot-3");
    call(&s, Method::POST, "Slot/$hold", Some(&me), Some(&hold)).await.expect_status(200);
    let booked = call(&s, Method::POST, "Appointment/$book", Some(&me), Some(&booking("pat-1", "slot-3"))).await;
    assert_eq!(booked.code(), 201, "{}", booked.what());
    let slot = call(&s, Method::GET, "Slot/slot-3", Some(&me), None).await.expect_status(200).json();
    assert_eq!(slot["status"], "busy");
    assert_eq!(ids_in(&call(&s, Method::GET, "Appointment", Some(&me), None).await.json(), "match").len(), 2);

    // Booking or creating for another patient: 403, the slot stays free.
    assert_forbidden(&call(&s, Method::POST, "Appointment/$book", Some(&me), Some(&booking("pat-2", "slot-4"))).await, "$book other");
    let mut shared = booking("pat-1", "slot-4");
    let participants = shared["parameter"][0]["resource"]["participant"].as_array_mut().unwrap();
    participants.push(json!({"actor": {"reference": "Patient/pat-2"}, "status": "accepted"}));
    assert_forbidden(&call(&s, Method::POST, "Appointment/$book", Some(&me), Some(&shared)).await, "$book with another patient");
    let other_appointment = booking("pat-2", "slot-4")["parameter"][0]["resource"].clone();
    assert_forbidden(&call(&s, Method::POST, "Appointment", Some(&me), Some(&other_appointment)).await, "create other");
    assert_eq!(call(&s, Method::GET, "Slot/slot-4", Some(&me), None).await.json()["status"], "free");

    // Cancelling another patient's Appointment (PUT, PATCH, DELETE): 403, nothing changes.
    let mut theirs = call(&s, Method::GET, "Appointment/app-2", Some(&admin), None).await.expect_status(200).json();
    theirs["status"] = json!("cancelled");
    assert_forbidden(&call(&s, Method::PUT, "Appointment/app-2", Some(&me), Some(&theirs)).await, "cancel other by PUT");
    let patch = json!([{"op": "replace", "path": "/status", "value": "cancelled"}]);
    let r = s
        .send(
            s.request_as(Method::PATCH, "Appointment/app-2", Some(&me), None)
                .header("content-type", "application/json-patch+json")
                .body(patch.to_string()),
        )
        .await;
    assert_forbidden(&r, "cancel other by PATCH");
    assert_forbidden(&call(&s, Method::DELETE, "Appointment/app-2", Some(&me), None).await, "delete other");
    assert_eq!(history_len(&s, "Appointment/app-2", &admin).await, 1);
    assert_eq!(call(&s, Method::GET, "Slot/slot-2", Some(&admin), None).await.json()["status"], "busy");

    // Cancelling its own: 200, the slot is free again.
    let mut mine = call(&s, Method::GET, "Appointment/app-1", Some(&me), None).await.expect_status(200).json();
    mine["status"] = json!("cancelled");
    call(&s, Method::PUT, "Appointment/app-1", Some(&me), Some(&mine)).await.expect_status(200);
    assert_eq!(call(&s, Method::GET, "Slot/slot-1", Some(&admin), None).await.json()["status"], "free");
}

/// `termin client --token` sends the token; without it the same command is refused.
#[tokio::test]
async fn the_command_line_client_sends_its_token() {
    let s = start_with_jwks(&["--public-read", "false"]).await;
    let run = |token: Option<String>| {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_termin"));
        command.args(["client", "--url", &s.base(), "--brief", "services"]).env_remove("TERMIN_TOKEN");
        if let Some(token) = token {
            command.args(["--token", &token]);
        }
        command.output()
    };
    let refused = run(None).await.expect("run termin client");
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("401"), "{}", String::from_utf8_lossy(&refused.stderr));
    let allowed = run(Some(token("user/HealthcareService.rs"))).await.expect("run termin client");
    assert!(allowed.status.success(), "{}", String::from_utf8_lossy(&allowed.stderr));
}

/// A staff token: `user/` scopes for the member `fhir_user` names.
fn staff_token(fhir_user: Option<&str>) -> String {
    let mut c = claims("openid fhirUser user/*.cruds");
    if let Some(fhir_user) = fhir_user {
        c["fhirUser"] = json!(fhir_user);
        c["sub"] = json!(format!("staff-{fhir_user}"));
    }
    sign_with(Algorithm::RS256, "test-rsa", RSA_PRIVATE, &c)
}

/// Organisations A and B, each with a PractitionerRole, a Schedule of that role and three free
/// slots; Patient pat-1 booked on A's first slot (app-a), pat-2 on B's (app-b).
async fn two_organisations(s: &TestServer, admin: &str) {
    let mut resources = vec![];
    for org in ["a", "b"] {
        resources.push(json!({"resourceType": "Organization", "id": format!("org-{org}"), "name": format!("Praxis {org}")}));
        resources.push(json!({"resourceType": "Practitioner", "id": format!("doc-{org}"), "name": [{"family": format!("Doc {org}")}]}));
        resources.push(json!({"resourceType": "PractitionerRole", "id": format!("role-{org}"), "active": true,
            "practitioner": {"reference": format!("Practitioner/doc-{org}")},
            "organization": {"reference": format!("Organization/org-{org}")}}));
        resources.push(json!({"resourceType": "Schedule", "id": format!("sch-{org}"), "active": true,
            "actor": [{"reference": format!("PractitionerRole/role-{org}")}]}));
        for n in 1..=3 {
            resources.push(json!({"resourceType": "Slot", "id": format!("slot-{org}{n}"),
                "schedule": {"reference": format!("Schedule/sch-{org}")}, "status": "free",
                "start": format!("2030-01-07T{:02}:00:00+01:00", 8 + n), "end": format!("2030-01-07T{:02}:30:00+01:00", 8 + n)}));
        }
    }
    for (org, patient) in [("a", "pat-1"), ("b", "pat-2")] {
        resources.push(json!({"resourceType": "Patient", "id": patient, "name": [{"family": format!("Huber {patient}")}]}));
        resources.push(json!({"resourceType": "Appointment", "id": format!("app-{org}"), "status": "booked",
            "subject": {"reference": format!("Patient/{patient}")},
            "participant": [{"actor": {"reference": format!("Patient/{patient}")}, "status": "accepted"}],
            "slot": [{"reference": format!("Slot/slot-{org}1")}]}));
    }
    for resource in &resources {
        let path = format!("{}/{}", resource["resourceType"].as_str().unwrap(), resource["id"].as_str().unwrap());
        let r = call(s, Method::PUT, &path, Some(admin), Some(resource)).await;
        assert!(matches!(r.code(), 200 | 201), "{}", r.what());
    }
}

fn hold_of(slot: &str) -> Value {
    json!({"resourceType": "Parameters", "parameter": [
        {"name": "slot-reference", "valueReference": {"reference": format!("Slot/{slot}")}},
        {"name": "slot-status", "valueCode": "busy-tentative"}]})
}

/// Issue 14's matrix: each role × each interaction on its own data, another patient's and
/// another organisation's, with the answers the README's Authorization section gives.
#[tokio::test]
async fn roles_reach_own_data_and_not_other_patients_or_organisations() {
    let s = start_with_jwks(&[]).await;
    let system = token("system/*.cruds");
    two_organisations(&s, &system).await;
    let patient = patient_token(Some("pat-1"));
    let staff_role = staff_token(Some("PractitionerRole/role-a"));
    let staff_doctor = staff_token(Some("https://termin.test/fhir/Practitioner/doc-a"));
    let staff_nobody = staff_token(None);
    let read = |who: &str, path: &str| {
        let (who, path) = (who.to_owned(), path.to_owned());
        let s = &s;
        async move { call(s, Method::GET, &path, Some(&who), None).await.code() }
    };
    let with_status = |resource: &Value, status: &str| {
        let mut changed = resource.clone();
        changed["status"] = json!(status);
        changed
    };
    let app_a = call(&s, Method::GET, "Appointment/app-a", Some(&system), None).await.json();
    let app_b = call(&s, Method::GET, "Appointment/app-b", Some(&system), None).await.json();
    let slot_b2 = call(&s, Method::GET, "Slot/slot-b2", Some(&system), None).await.json();

    // Reads: own 200; another patient's or organisation's Appointment 404 as if unknown.
    let reads = [
        (&patient, "Appointment/app-a", 200), (&patient, "Appointment/app-b", 404), (&patient, "Patient/pat-2", 403),
        (&staff_role, "Appointment/app-a", 200), (&staff_role, "Appointment/app-b", 404),
        (&staff_role, "Appointment/app-b/_history/1", 404), (&staff_role, "Appointment/app-a/_history", 200),
        (&staff_doctor, "Appointment/app-a", 200), (&staff_doctor, "Appointment/app-b", 404),
        (&staff_nobody, "Appointment/app-a", 404),
        (&staff_role, "Patient/pat-2", 200), (&staff_role, "Schedule/sch-b", 200), (&staff_role, "Slot/slot-b1", 200),
        (&system, "Appointment/app-a", 200), (&system, "Appointment/app-b", 200), (&system, "Patient/pat-1", 200),
    ];
    for (who, path, expected) in reads {
        assert_eq!(read(who, path).await, expected, "GET {path}");
    }
    // Searches: only what the role reaches, also through includes and type history.
    for (who, expected) in [(&patient, vec!["Appointment/app-a"]), (&staff_role, vec!["Appointment/app-a"]),
        (&staff_doctor, vec!["Appointment/app-a"]), (&staff_nobody, vec![]), (&system, vec!["Appointment/app-a", "Appointment/app-b"])]
    {
        assert_eq!(ids_in(&found(&s, who, "Appointment").await, "match"), expected);
        assert_eq!(ids_in(&found(&s, who, "Slot?_id=slot-a1,slot-b1&_revinclude=Appointment:slot").await, "include"), expected);
    }
    // A Slot search cannot probe the other organisation's bookings through _has.
    let probe = "Slot?_id=slot-a1,slot-b1&_has:Appointment:slot:patient=pat-2";
    assert!(ids_in(&found(&s, &staff_role, probe).await, "match").is_empty());
    assert_eq!(ids_in(&found(&s, &system, probe).await, "match"), ["Slot/slot-b1"]);
    let history = found(&s, &staff_role, "Appointment/_history").await;
    assert!(entries(&history).iter().all(|e| e["resource"]["id"] == "app-a"), "{history}");
    assert_unauthorized(&call(&s, Method::GET, "Appointment/app-a", None, None).await, "anonymous read");

    // Writes on another organisation's schedules, slots and appointments: 403, nothing changes.
    let new_slot = |schedule: &str| json!({"resourceType": "Slot", "schedule": {"reference": format!("Schedule/{schedule}")},
        "status": "busy-unavailable", "start": "2030-01-08T09:00:00+01:00", "end": "2030-01-08T12:00:00+01:00"});
    let new_schedule = |role: &str| json!({"resourceType": "Schedule", "active": true, "actor": [{"reference": format!("PractitionerRole/{role}")}]});
    let writes = [
        (&staff_role, Method::PUT, "Appointment/app-b", Some(with_status(&app_b, "cancelled")), 403),
        (&staff_role, Method::PUT, "Slot/slot-b2", Some(with_status(&slot_b2, "busy-unavailable")), 403),
        (&staff_role, Method::POST, "Slot", Some(new_slot("sch-b")), 403),
        (&staff_role, Method::POST, "Schedule", Some(new_schedule("role-b")), 403),
        (&staff_role, Method::DELETE, "Schedule/sch-b", None, 403),
        (&staff_role, Method::POST, "Slot/$hold", Some(hold_of("slot-b2")), 403),
        (&staff_role, Method::POST, "Appointment/$book", Some(booking("pat-2", "slot-b2")), 403),
        (&staff_nobody, Method::POST, "Slot", Some(new_slot("sch-a")), 403),
        (&patient, Method::PUT, "Appointment/app-b", Some(with_status(&app_b, "cancelled")), 403),
        (&patient, Method::POST, "Appointment/$book", Some(booking("pat-2", "slot-b2")), 403),
        // Own organisation: staff block time, manage schedules, cancel without the policy.
        (&staff_role, Method::POST, "Slot", Some(new_slot("sch-a")), 201),
        (&staff_doctor, Method::POST, "Schedule", Some(new_schedule("role-a")), 201),
        (&staff_doctor, Method::PUT, "Appointment/app-a", Some(with_status(&app_a, "cancelled")), 200),
    ];
    for (who, method, path, body, expected) in writes {
        let r = call(&s, method.clone(), path, Some(who), body.as_ref()).await;
        assert_eq!(r.code(), expected, "{method} {path}: {}", r.what());
    }
    assert_eq!(history_len(&s, "Appointment/app-b", &system).await, 1);
    assert_eq!(history_len(&s, "Schedule/sch-b", &system).await, 1);
    assert_eq!(call(&s, Method::GET, "Slot/slot-b2", None, None).await.json()["status"], "free");

    // Hold → book by a patient token without hold-token, by staff for their organisation,
    // and by a system token on behalf of the patient it names as subject.
    for (who, slot, for_patient) in [(&patient, "slot-a2", "pat-1"), (&staff_role, "slot-a3", "pat-2"), (&system, "slot-b3", "pat-2")] {
        call(&s, Method::POST, "Slot/$hold", Some(who), Some(&hold_of(slot))).await.expect_status(200);
        let booked = call(&s, Method::POST, "Appointment/$book", Some(who), Some(&booking(for_patient, slot))).await;
        assert_eq!(booked.code(), 201, "{slot}: {}", booked.what());
        assert_eq!(call(&s, Method::GET, &format!("Slot/{slot}"), None, None).await.json()["status"], "busy");
    }
    // The system token is not bound by the compartment: it reads what it booked for pat-2.
    assert_eq!(ids_in(&found(&s, &system, "Appointment?patient=pat-2").await, "match").len(), 3);
    assert_eq!(ids_in(&found(&s, &patient, "Appointment").await, "match").len(), 2);
}

/// An anonymous request presenting an Appointment's access secret.
async fn with_secret(s: &TestServer, method: Method, path: &str, secret: &str, body: Option<&Value>) -> Resp {
    let mut request = s.request(method, path).header("x-access-secret", secret);
    if let Some(body) = body {
        request = json_body(request, body);
    }
    s.send(request).await
}

/// `$hold` of `slot` without a token: its hold-token.
async fn anonymous_hold(s: &TestServer, slot: &str) -> String {
    let held = call(s, Method::POST, "Slot/$hold", None, Some(&hold_of(slot))).await.expect_status(200).json();
    let token = held["parameter"].as_array().unwrap().iter().find(|p| p["name"] == "hold-token").unwrap();
    token["valueString"].as_str().unwrap().to_owned()
}

/// Moves `appointment` at `path` to `slot` (held anonymously for it) with its access secret.
async fn anonymous_move(s: &TestServer, path: &str, secret: &str, mut appointment: Value, slot: &str) -> Resp {
    let hold_token = anonymous_hold(s, slot).await;
    appointment["slot"] = json!([{"reference": format!("Slot/{slot}")}]);
    let request = s.request(Method::PUT, path).header("x-access-secret", secret).header("x-hold-token", &hold_token);
    s.send(json_body(request, &appointment)).await
}

/// The output parameter `name` of an operation's answer.
fn output<'a>(answer: &'a Value, name: &str) -> Option<&'a Value> {
    answer["parameter"].as_array()?.iter().find(|p| p["name"] == name)
}

#[tokio::test]
async fn without_public_booking_anonymous_holds_and_bookings_need_a_token() {
    let s = start_with_jwks(&["--public-booking", "false"]).await;
    let admin = token("system/*.cruds");
    two_patients(&s, &admin).await;
    assert_unauthorized(&call(&s, Method::POST, "Slot/$hold", None, Some(&hold_of("slot-3"))).await, "$hold");
    assert_unauthorized(&call(&s, Method::POST, "Appointment/$book", None, Some(&booking("pat-1", "slot-3"))).await, "$book");
    assert_unauthorized(&with_secret(&s, Method::GET, "Appointment/app-1", "anything", None).await, "read with a secret");
    assert_eq!(call(&s, Method::GET, "Slot/slot-3", None, None).await.json()["status"], "free");
}

/// `--public-booking`: hold → book without a token; the booking is reached again only with its
/// secret (never by search, nor by id without it), which reads and cancels it within the rules.
#[tokio::test]
async fn anonymous_bookings_are_reached_only_with_their_secret() {
    let s = start_with_jwks(&["--public-booking", "true"]).await;
    let admin = token("system/*.cruds");
    two_patients(&s, &admin).await;

    // The hold belongs to its hold-token: a $book without it does not get the slot.
    let hold_token = anonymous_hold(&s, "slot-3").await;
    let unheld = call(&s, Method::POST, "Appointment/$book", None, Some(&booking("pat-1", "slot-3"))).await;
    assert_eq!(unheld.code(), 409, "{}", unheld.what());
    assert!(output(&unheld.json(), "access-secret").is_none());
    let mut with_token = booking("pat-1", "slot-3");
    with_token["parameter"].as_array_mut().unwrap().push(json!({"name": "hold-token", "valueString": hold_token}));
    let booked = call(&s, Method::POST, "Appointment/$book", None, Some(&with_token)).await;
    assert_eq!(booked.code(), 201, "{}", booked.what());
    let answer = booked.json();
    let secret = output(&answer, "access-secret").and_then(|p| p["valueString"].as_str()).expect("access-secret").to_owned();
    assert!(secret.len() >= 43, "at least 256 bits in base64url: {secret}");
    let id = output(&answer, "appointment").unwrap()["resource"]["id"].as_str().unwrap().to_owned();
    let path = format!("Appointment/{id}");
    assert_eq!(call(&s, Method::GET, "Slot/slot-3", None, None).await.json()["status"], "busy");

    // Stored as a digest only: staff see the Appointment without the secret.
    let stored = call(&s, Method::GET, &path, Some(&admin), None).await.expect_status(200);
    assert!(!stored.text().contains(&secret));
    assert!(stored.text().contains("sha256:"), "{}", stored.text());

    // Without the secret: 401 for the id and for searches; a wrong secret answers as an
    // unknown Appointment does (404), and a secret does not open searches or other ids.
    assert_unauthorized(&call(&s, Method::GET, &path, None, None).await, "read without secret");
    assert_unauthorized(&call(&s, Method::GET, &format!("Appointment?_id={id}"), None, None).await, "search");
    assert_unauthorized(&with_secret(&s, Method::GET, &format!("Appointment?_id={id}"), &secret, None).await, "search with secret");
    let wrong = with_secret(&s, Method::GET, &path, "not-the-secret", None).await;
    let unknown = with_secret(&s, Method::GET, "Appointment/no-such-appointment", &secret, None).await;
    assert_eq!((wrong.code(), unknown.code()), (404, 404), "{} / {}", wrong.what(), unknown.what());
    assert_eq!(wrong.outcome(404)["issue"][0]["code"], unknown.outcome(404)["issue"][0]["code"]);
    assert_eq!(with_secret(&s, Method::GET, "Appointment/app-1", &secret, None).await.code(), 404, "another Appointment");
    assert_unauthorized(&with_secret(&s, Method::DELETE, &path, &secret, None).await, "delete");
    assert_unauthorized(&with_secret(&s, Method::GET, &format!("{path}/_history"), &secret, None).await, "history");

    // With the secret: read, move and cancel; the Appointment stays its patient's, and the
    // digest stays whatever the client sends.
    let mine = with_secret(&s, Method::GET, &path, &secret, None).await.expect_status(200).json();
    assert_eq!(mine["id"], id.as_str());
    let mut other_patient = mine.clone();
    other_patient["subject"] = json!({"reference": "Patient/pat-2"});
    other_patient["participant"][0]["actor"] = json!({"reference": "Patient/pat-2"});
    let r = with_secret(&s, Method::PUT, &path, &secret, Some(&other_patient)).await;
    assert_eq!(r.code(), 422, "another patient: {}", r.what());
    // Move to another slot, held with its hold-token; then cancel.
    let mut cancelled = anonymous_move(&s, &path, &secret, mine.clone(), "slot-4").await.expect_status(200).json();
    assert_eq!(call(&s, Method::GET, "Slot/slot-3", None, None).await.json()["status"], "free");
    assert_eq!(call(&s, Method::GET, "Slot/slot-4", None, None).await.json()["status"], "busy");
    cancelled["status"] = json!("cancelled");
    cancelled.as_object_mut().unwrap().remove("extension");
    with_secret(&s, Method::PUT, &path, &secret, Some(&cancelled)).await.expect_status(200);
    assert_eq!(call(&s, Method::GET, "Slot/slot-4", None, None).await.json()["status"], "free");
    let read_back = with_secret(&s, Method::GET, &path, &secret, None).await.expect_status(200).json();
    assert_eq!(read_back["status"], "cancelled", "the digest survived the update: the secret still opens it");

    // A repeated anonymous $book returns no earlier booking, whatever it names.
    let mut repeat = booking("pat-1", "slot-3");
    repeat["parameter"][0]["resource"]["identifier"] = json!([{"system": "urn:test", "value": "anon-1"}]);
    let hold_token = anonymous_hold(&s, "slot-3").await;
    repeat["parameter"].as_array_mut().unwrap().push(json!({"name": "hold-token", "valueString": hold_token}));
    call(&s, Method::POST, "Appointment/$book", None, Some(&repeat)).await.expect_status(201);
    let again = call(&s, Method::POST, "Appointment/$book", None, Some(&repeat)).await;
    assert_eq!(again.code(), 409, "{}", again.what());
    assert!(!again.text().contains("\"Appointment\""), "{}", again.text());
}

/// The cancellation policy binds anonymous bookers as it binds patients.
#[tokio::test]
async fn anonymous_cancellations_keep_the_cancellation_policy() {
    let s = start_with_jwks(&["--public-booking", "true"]).await;
    let admin = token("system/*.cruds");
    two_patients(&s, &admin).await;
    let start = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(2);
    let soon = json!({"resourceType": "Slot", "id": "slot-soon", "schedule": {"reference": "Schedule/sch-1"}, "status": "free",
        "start": start.to_string(), "end": (start + jiff::SignedDuration::from_mins(30)).to_string(),
        "extension": [{"url": "https://fhir.hl7.at/tc/wg/scheduling/r5/StructureDefinition/at-scheduling-ext-cancellationPolicy",
            "extension": [{"url": "cancelUntil", "valueDuration": {"value": 24, "system": "http://unitsofmeasure.org", "code": "h"}}]}]});
    call(&s, Method::PUT, "Slot/slot-soon", Some(&admin), Some(&soon)).await.expect_status(201);
    let hold_token = anonymous_hold(&s, "slot-soon").await;
    let mut request = booking("pat-1", "slot-soon");
    request["parameter"].as_array_mut().unwrap().push(json!({"name": "hold-token", "valueString": hold_token}));
    let answer = call(&s, Method::POST, "Appointment/$book", None, Some(&request)).await.expect_status(201).json();
    let secret = output(&answer, "access-secret").unwrap()["valueString"].as_str().unwrap().to_owned();
    let id = output(&answer, "appointment").unwrap()["resource"]["id"].as_str().unwrap().to_owned();
    let path = format!("Appointment/{id}");

    let mut cancelled = with_secret(&s, Method::GET, &path, &secret, None).await.expect_status(200).json();
    cancelled["status"] = json!("cancelled");
    let late = with_secret(&s, Method::PUT, &path, &secret, Some(&cancelled)).await;
    assert_eq!(late.code(), 422, "{}", late.what());
    assert_eq!(late.outcome(422)["issue"][0]["code"], "business-rule");
    let patch = json!([{"op": "replace", "path": "/status", "value": "cancelled"}]);
    let r = s
        .send(
            s.request(Method::PATCH, &path)
                .header("x-access-secret", &secret)
                .header("content-type", "application/json-patch+json")
                .body(patch.to_string()),
        )
        .await;
    assert_eq!(r.code(), 422, "{}", r.what());
    let current = with_secret(&s, Method::GET, &path, &secret, None).await.expect_status(200).json();
    let r = anonymous_move(&s, &path, &secret, current, "slot-4").await;
    assert_eq!(r.code(), 422, "moving after the deadline: {}", r.what());
    assert_eq!(call(&s, Method::GET, "Slot/slot-soon", None, None).await.json()["status"], "busy");
    // Staff are not bound by it.
    call(&s, Method::PUT, &path, Some(&admin), Some(&cancelled)).await.expect_status(200);
}

/// Anonymous holds and bookings are limited per client address (429 with Retry-After and an
/// OperationOutcome); callers with a token are not.
#[tokio::test]
async fn anonymous_holds_and_bookings_are_rate_limited() {
    let s = start_with_jwks(&["--public-booking", "true", "--public-booking-limit", "3"]).await;
    let admin = token("system/*.cruds");
    two_patients(&s, &admin).await;
    let release = |slot: &str| {
        json!({"resourceType": "Parameters", "parameter": [
            {"name": "slot-reference", "valueReference": {"reference": format!("Slot/{slot}")}},
            {"name": "slot-status", "valueCode": "free"}]})
    };
    let hold_token = anonymous_hold(&s, "slot-3").await;
    let mut released = release("slot-3");
    released["parameter"].as_array_mut().unwrap().push(json!({"name": "hold-token", "valueString": hold_token}));
    call(&s, Method::POST, "Slot/$hold", None, Some(&released)).await.expect_status(200);
    anonymous_hold(&s, "slot-4").await;
    let throttled = call(&s, Method::POST, "Slot/$hold", None, Some(&hold_of("slot-3"))).await;
    assert_eq!(throttled.code(), 429, "{}", throttled.what());
    let retry_after: u64 = throttled.require_header("retry-after").parse().expect("Retry-After seconds");
    assert!((1..=3600).contains(&retry_after), "{retry_after}");
    assert_eq!(throttled.outcome(429)["issue"][0]["code"], "throttled");
    assert_eq!(call(&s, Method::POST, "Appointment/$book", None, Some(&booking("pat-1", "slot-4"))).await.code(), 429);
    assert_eq!(call(&s, Method::GET, "Slot/slot-3", None, None).await.json()["status"], "free", "nothing changed");
    call(&s, Method::POST, "Slot/$hold", Some(&patient_token(Some("pat-1"))), Some(&hold_of("slot-3"))).await.expect_status(200);
}

/// The resources an AuditEvent names in its entities.
fn audited_resources(event: &Value) -> Vec<String> {
    event["entity"].as_array().into_iter().flatten().filter_map(|e| e["what"]["reference"].as_str().map(str::to_owned)).collect()
}

/// Staff read the audit trail of their organisations only: the accesses to their Appointments
/// and to the data of patients with such an Appointment.
#[tokio::test]
async fn staff_see_the_audit_events_of_their_organisations_only() {
    let s = start_with_jwks(&[]).await;
    let system = token("system/*.cruds");
    two_organisations(&s, &system).await;
    let events = |bundle: Value| entries(&bundle).into_iter().map(|e| e["resource"].clone()).collect::<Vec<_>>();
    let named = |events: &[Value]| {
        let mut named: Vec<String> = events.iter().flat_map(audited_resources).collect();
        named.sort();
        named.dedup();
        named
    };

    let all = events(found(&s, &system, "AuditEvent?_count=500").await);
    let org_a = ["Appointment/app-a", "Patient/pat-1", "Slot/slot-a1"];
    let org_b = ["Appointment/app-b", "Patient/pat-2", "Slot/slot-b1"];
    let mut both = [org_a, org_b].concat();
    both.sort();
    assert_eq!(named(&all), both);
    let staff_a = staff_token(Some("PractitionerRole/role-a"));
    assert_eq!(named(&events(found(&s, &staff_a, "AuditEvent?_count=500").await)), org_a);
    let staff_b = staff_token(Some("Practitioner/doc-b"));
    assert_eq!(named(&events(found(&s, &staff_b, "AuditEvent?_count=500").await)), org_b);
    assert!(events(found(&s, &staff_token(None), "AuditEvent").await).is_empty(), "no organisation, no events");

    // By id: another organisation's event is not found.
    let of_b = all.iter().find(|e| audited_resources(e).contains(&"Appointment/app-b".to_owned())).unwrap();
    let path = format!("AuditEvent/{}", of_b["id"].as_str().unwrap());
    assert_eq!(call(&s, Method::GET, &path, Some(&staff_a), None).await.code(), 404);
    call(&s, Method::GET, &path, Some(&staff_b), None).await.expect_status(200);
    call(&s, Method::GET, &path, Some(&system), None).await.expect_status(200);
}

/// Behind a trusted reverse proxy (`--trusted-proxies`) each client forwarded by it has its own
/// rate limit; the header of anyone else is ignored.
#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_is_limited_on_its_own() {
    let hold_from = |s: &TestServer, forwarded_for: &str, slot: &str| {
        json_body(s.request(Method::POST, "Slot/$hold").header("x-forwarded-for", forwarded_for), &hold_of(slot))
    };
    let s = start_with_jwks(&["--public-booking", "true", "--public-booking-limit", "1", "--trusted-proxies", "127.0.0.1"]).await;
    let admin = token("system/*.cruds");
    two_patients(&s, &admin).await;
    s.send(hold_from(&s, "203.0.113.7", "slot-3")).await.expect_status(200);
    assert_eq!(s.send(hold_from(&s, "198.51.100.1, 203.0.113.7", "slot-4")).await.code(), 429, "what the client wrote is not believed");
    s.send(hold_from(&s, "203.0.113.8, 127.0.0.1", "slot-4")).await.expect_status(200);

    let untrusted = start_with_jwks(&["--public-booking", "true", "--public-booking-limit", "1"]).await;
    two_patients(&untrusted, &admin).await;
    untrusted.send(hold_from(&untrusted, "203.0.113.7", "slot-3")).await.expect_status(200);
    assert_eq!(untrusted.send(hold_from(&untrusted, "203.0.113.8", "slot-4")).await.code(), 429);
}

#[tokio::test]
async fn a_patient_tokens_conditional_delete_reaches_only_its_own_compartment() {
    let s = start_with_jwks(&["--conditional-delete", "multiple"]).await;
    let admin = token("system/*.cruds");
    let me = patient_token(Some("pat-1"));
    let mut ids = Vec::new();
    for patient in ["pat-1", "pat-2"] {
        let body = json!({"resourceType": "Subscription", "status": "requested",
            "topic": format!("{}/SubscriptionTopic/appointment-booked", s.base()),
            "filterBy": [{"filterParameter": "patient", "value": format!("Patient/{patient}")}],
            "channelType": {"system": "http://terminology.hl7.org/CodeSystem/subscription-channel-type", "code": "rest-hook"},
            "endpoint": "http://127.0.0.1:9/hook"});
        let created = call(&s, Method::POST, "Subscription", Some(&admin), Some(&body)).await.expect_status(201).json();
        ids.push(created["id"].as_str().unwrap().to_owned());
    }
    // Both match the criteria; the patient's token deletes only its own.
    call(&s, Method::DELETE, "Subscription?status=requested", Some(&me), None).await.expect_status(204);
    call(&s, Method::GET, &format!("Subscription/{}", ids[0]), Some(&admin), None).await.expect_status(410);
    call(&s, Method::GET, &format!("Subscription/{}", ids[1]), Some(&admin), None).await.expect_status(200);
    // Without the delete scope on the type: refused.
    assert_forbidden(&call(&s, Method::DELETE, "Slot?status=free", Some(&me), None).await, "Slot conditional delete");
}
