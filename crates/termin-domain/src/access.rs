//! Access secrets of anonymous bookings (`--public-booking`): a `$book` without a token is
//! answered with a random secret, the only way back to the Appointment (to read, cancel or
//! move it). The server keeps only the secret's SHA-256 digest, in the server-owned extension
//! [`ACCESS_DIGEST_URL`] of the Appointment, and compares digests in constant time.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The extension holding `sha256:<hex digest>` of an Appointment's access secret. Its value is
/// the server's: clients cannot set, change or remove it.
pub const ACCESS_DIGEST_URL: &str = "https://termin.at/fhir/StructureDefinition/access-secret-digest";

/// Random bytes in a secret: 256 bits, beyond guessing.
const SECRET_BYTES: usize = 32;

/// A new secret (base64url, 43 characters) and the digest to store.
pub(crate) fn new_secret() -> Result<(String, String), getrandom::Error> {
    let mut bytes = [0u8; SECRET_BYTES];
    getrandom::fill(&mut bytes)?;
    let secret = URL_SAFE_NO_PAD.encode(bytes);
    let digest = digest_of(&secret);
    Ok((secret, digest))
}

fn digest_of(secret: &str) -> String {
    let hash = Sha256::digest(secret.as_bytes());
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// The stored digest of the Appointment's secret, if it has one.
pub(crate) fn stored_digest(appointment: &Map<String, Value>) -> Option<&str> {
    appointment
        .get("extension")
        .and_then(Value::as_array)?
        .iter()
        .find(|e| e.get("url").and_then(Value::as_str) == Some(ACCESS_DIGEST_URL))
        .and_then(|e| e.get("valueString"))
        .and_then(Value::as_str)
}

/// Whether `secret` opens the Appointment (constant time in the secret's content).
pub(crate) fn opens(appointment: &Map<String, Value>, secret: &str) -> bool {
    stored_digest(appointment).is_some_and(|stored| bool::from(stored.as_bytes().ct_eq(digest_of(secret).as_bytes())))
}

/// Sets the Appointment's digest extension to `digest` (`None`: removes it), whatever the
/// client sent, keeping the order of everything else.
pub(crate) fn set_digest(appointment: &mut Map<String, Value>, digest: Option<&str>) {
    let ours = |e: &Value| e.get("url").and_then(Value::as_str) == Some(ACCESS_DIGEST_URL);
    let entry = digest.map(|digest| json!({"url": ACCESS_DIGEST_URL, "valueString": digest}));
    match appointment.get_mut("extension") {
        Some(Value::Array(extensions)) => {
            let had_ours = extensions.iter().any(ours);
            extensions.retain(|e| !ours(e));
            let now_empty = extensions.is_empty();
            match entry {
                Some(entry) => extensions.push(entry),
                None if had_ours && now_empty => {
                    appointment.shift_remove("extension");
                }
                None => {}
            }
        }
        // Not an array: not FHIR, refused by validation; left for it to say so.
        Some(_) => {}
        None => {
            if let Some(entry) = entry {
                appointment.insert("extension".into(), Value::Array(vec![entry]));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_opens_only_its_appointment() {
        let (secret, digest) = new_secret().unwrap();
        let (other, _) = new_secret().unwrap();
        assert_eq!(secret.len(), 43);
        assert_ne!(secret, other);
        assert!(!digest.contains(&secret));
        let mut appointment = Map::new();
        assert!(!opens(&appointment, &secret), "no digest, no access");
        set_digest(&mut appointment, Some(&digest));
        assert!(opens(&appointment, &secret));
        assert!(!opens(&appointment, &other));
        assert!(!opens(&appointment, ""));
    }

    #[test]
    fn the_digest_replaces_what_the_client_sent_and_keeps_other_extensions() {
        let mut appointment = json!({"extension": [
            {"url": "http://example.org/x", "valueBoolean": true},
            {"url": ACCESS_DIGEST_URL, "valueString": "sha256:forged"}]})
        .as_object()
        .unwrap()
        .clone();
        set_digest(&mut appointment, Some("sha256:real"));
        assert_eq!(stored_digest(&appointment), Some("sha256:real"));
        assert_eq!(appointment["extension"].as_array().unwrap().len(), 2);
        set_digest(&mut appointment, None);
        assert_eq!(stored_digest(&appointment), None);
        assert_eq!(appointment["extension"].as_array().unwrap().len(), 1);
        let mut plain = json!({"id": "a", "status": "booked", "extension": []}).as_object().unwrap().clone();
        set_digest(&mut plain, None);
        assert_eq!(plain.keys().collect::<Vec<_>>(), ["id", "status", "extension"], "nothing moves");
        set_digest(&mut plain, Some("sha256:x"));
        set_digest(&mut plain, None);
        assert!(!plain.contains_key("extension"));
        let mut ordered = json!({"id": "a", "extension": [{"url": ACCESS_DIGEST_URL, "valueString": "d"}], "status": "booked"})
            .as_object()
            .unwrap()
            .clone();
        set_digest(&mut ordered, None);
        assert_eq!(ordered.keys().collect::<Vec<_>>(), ["id", "status"]);
    }
}
