//! Bearer tokens the tests sign themselves with the test keys in `tests/auth_keys`, for a
//! server started with [`with_test_jwks`].

use super::ServerOptions;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

pub const ISSUER: &str = "https://idp.termin.test/realms/termin";
pub const AUDIENCE: &str = "termin-api";

/// Options that make the server accept tokens signed with the test keys.
pub fn with_test_jwks(options: ServerOptions) -> ServerOptions {
    let mut options = options
        .flag("--auth-issuer", ISSUER)
        .flag("--auth-audience", AUDIENCE)
        .flag("--auth-jwks", "{dir}/jwks.json");
    options.files.push(("jwks.json".into(), include_str!("../auth_keys/jwks.json").into()));
    options
}

/// Valid claims of `subject` with `scope` (app `test-app`, ten minutes).
pub fn claims(subject: &str, scope: &str) -> Value {
    let now = jiff::Timestamp::now().as_second();
    json!({"iss": ISSUER, "aud": AUDIENCE, "sub": subject, "client_id": "test-app",
           "iat": now, "exp": now + 600, "scope": scope})
}

/// `claims` signed with RS256 by the test key.
pub fn sign(claims: &Value) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("test-rsa".into());
    let key = EncodingKey::from_rsa_pem(include_bytes!("../auth_keys/rsa-private.pem")).expect("test key");
    jsonwebtoken::encode(&header, claims, &key).expect("sign")
}

/// A token of `subject` with `scope`, launched for `patient` when given.
pub fn bearer(subject: &str, scope: &str, patient: Option<&str>) -> String {
    let mut claims = claims(subject, scope);
    if let Some(patient) = patient {
        claims["patient"] = json!(patient);
    }
    sign(&claims)
}
