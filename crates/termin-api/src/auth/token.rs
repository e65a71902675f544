//! Bearer token validation: a JWT signed with one of the provider's asymmetric keys (RS256,
//! ES256 and their stronger siblings), issued by `--auth-issuer` for `--auth-audience`, within
//! its `nbf`..`exp` (with a little leeway for clock skew). `none` and HMAC are refused: an
//! HMAC "signature" checked against a public key proves nothing.

use super::keys::KeySource;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;
use termin_store::{Scope, TokenPrincipal};

/// Allowed clock difference between the provider and Termin, in seconds.
const LEEWAY_SECONDS: u64 = 30;

/// A validated token: who it speaks for and what it allows.
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: TokenPrincipal,
    pub scopes: Vec<Scope>,
}

pub struct Authenticator {
    issuer: String,
    audience: String,
    keys: KeySource,
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    /// Space-separated (RFC 8693, SMART); some providers send `scp` as a list instead.
    #[serde(default)]
    scope: Option<Value>,
    #[serde(default)]
    scp: Option<Value>,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    azp: Option<String>,
    #[serde(default)]
    patient: Option<String>,
    #[serde(default, rename = "fhirUser")]
    fhir_user: Option<String>,
}

fn scope_text(value: Option<Value>) -> String {
    match value {
        Some(Value::String(text)) => text,
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(" "),
        _ => String::new(),
    }
}

impl Authenticator {
    pub fn new(issuer: String, audience: String, keys: KeySource) -> Self {
        Authenticator { issuer, audience, keys }
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn keys(&self) -> &KeySource {
        &self.keys
    }

    /// Validates a bearer token; the error says why it was refused (for the client and log).
    pub async fn validate(&self, token: &str) -> Result<Caller, String> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| format!("the token is not a signed JWT ({e})"))?;
        if !is_asymmetric(header.alg) {
            return Err(format!("tokens signed with {:?} are not accepted", header.alg));
        }
        let kid = header.kid.as_deref();
        let mut keys = self.keys.keys(false).await.ok_or("the identity provider's keys are not available")?;
        if let Some(kid) = kid
            && keys.find(kid).is_none()
        {
            keys = self.keys.keys(true).await.ok_or("the identity provider's keys are not available")?;
        }
        let candidates: Vec<&Jwk> = match kid {
            Some(kid) => keys.find(kid).into_iter().collect(),
            None => keys.keys.iter().collect(),
        };
        let candidates: Vec<&Jwk> = candidates.into_iter().filter(|jwk| fits(jwk, header.alg)).collect();
        if candidates.is_empty() {
            return Err(match kid {
                Some(kid) => format!("the token's key {kid:?} is not one of the provider's {:?} keys", header.alg),
                None => format!("the provider has no key for {:?}", header.alg),
            });
        }
        let mut validation = Validation::new(header.alg);
        validation.leeway = LEEWAY_SECONDS;
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let mut last_error = String::new();
        for jwk in candidates {
            let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("the provider's key is unusable ({e})"))?;
            match jsonwebtoken::decode::<Claims>(token, &key, &validation) {
                Ok(data) => return Ok(caller(data.claims)),
                Err(e) => last_error = describe(&e),
            }
        }
        Err(last_error)
    }
}

fn caller(claims: Claims) -> Caller {
    let scope = [scope_text(claims.scope), scope_text(claims.scp)].join(" ");
    Caller {
        principal: TokenPrincipal {
            subject: claims.sub,
            client_id: claims.client_id.or(claims.azp),
            patient: claims.patient,
            fhir_user: claims.fhir_user,
        },
        scopes: Scope::parse_all(&scope),
    }
}

fn describe(error: &jsonwebtoken::errors::Error) -> String {
    use jsonwebtoken::errors::ErrorKind;
    match error.kind() {
        ErrorKind::ExpiredSignature => "the token has expired".into(),
        ErrorKind::ImmatureSignature => "the token is not valid yet (nbf)".into(),
        ErrorKind::InvalidIssuer => "the token was issued by another issuer".into(),
        ErrorKind::InvalidAudience => "the token is meant for another audience".into(),
        ErrorKind::InvalidSignature => "the token's signature is invalid".into(),
        ErrorKind::MissingRequiredClaim(claim) => format!("the token has no {claim} claim"),
        other => format!("the token is invalid ({other:?})"),
    }
}

fn is_asymmetric(alg: Algorithm) -> bool {
    matches!(
        alg,
        Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512
            | Algorithm::ES256
            | Algorithm::ES384
    )
}

/// Whether a JWK may verify a token signed with `alg`: an RSA key for RS*/PS*, an EC key on
/// the matching curve for ES*, and the key's own `alg` (when it names one) must agree.
fn fits(jwk: &Jwk, alg: Algorithm) -> bool {
    let kind_fits = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => matches!(
            alg,
            Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512 | Algorithm::PS256 | Algorithm::PS384 | Algorithm::PS512
        ),
        AlgorithmParameters::EllipticCurve(ec) => matches!(
            (&ec.curve, alg),
            (EllipticCurve::P256, Algorithm::ES256) | (EllipticCurve::P384, Algorithm::ES384)
        ),
        AlgorithmParameters::OctetKey(_) | AlgorithmParameters::OctetKeyPair(_) => false,
    };
    let named_fits = match jwk.common.key_algorithm {
        None => true,
        Some(named) => key_algorithm(alg) == Some(named),
    };
    kind_fits && named_fits
}

fn key_algorithm(alg: Algorithm) -> Option<KeyAlgorithm> {
    Some(match alg {
        Algorithm::RS256 => KeyAlgorithm::RS256,
        Algorithm::RS384 => KeyAlgorithm::RS384,
        Algorithm::RS512 => KeyAlgorithm::RS512,
        Algorithm::PS256 => KeyAlgorithm::PS256,
        Algorithm::PS384 => KeyAlgorithm::PS384,
        Algorithm::PS512 => KeyAlgorithm::PS512,
        Algorithm::ES256 => KeyAlgorithm::ES256,
        Algorithm::ES384 => KeyAlgorithm::ES384,
        _ => return None,
    })
}
