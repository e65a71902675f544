//! A real OpenID Connect provider for the authorization tests (npm `oidc-provider` running
//! `tests/oidc_provider/provider.mjs`, installed by `scripts/test-tools`).
//!
//! Included next to `support` as `mod oidc_support;`.

#![allow(dead_code)]

use serde_json::json;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Stdio};

/// A running provider process, stopped on drop.
pub struct Provider {
    pub issuer: String,
    process: Child,
    /// Kept open: the provider's library logs to stdout now and then (its development login
    /// pages do), and a closed pipe would end the process.
    _stdout: BufReader<ChildStdout>,
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// Starts the provider with confidential clients `(client_id, secret, allowed scopes)`.
pub fn start_provider(clients: &[(&str, &str, &str)]) -> Provider {
    start_provider_with(clients, &[], &[])
}

/// Starts the provider with confidential clients `(client_id, secret, allowed scopes)` and
/// public interactive ones `(client_id, redirect URI, allowed scopes)`, whose users sign in on
/// the provider's development login pages (any login name and password). A redirect URI on
/// `127.0.0.1` matches any port. `users` gives logins their `fhirUser` claim `(login, reference)`.
pub fn start_provider_with(
    clients: &[(&str, &str, &str)],
    interactive: &[(&str, &str, &str)],
    users: &[(&str, &str)],
) -> Provider {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/oidc_provider");
    assert!(
        dir.join("node_modules/oidc-provider").is_dir(),
        "the OpenID Connect provider is not installed: run ./scripts/test-tools (./scripts/test does)"
    );
    let settings = json!({
        "clients": clients.iter().map(|(id, secret, scope)| json!({
            "client_id": id, "client_secret": secret, "scope": scope,
        })).collect::<Vec<_>>(),
        "interactive": interactive.iter().map(|(id, redirect_uri, scope)| json!({
            "client_id": id, "redirect_uris": [redirect_uri], "scope": scope,
        })).collect::<Vec<_>>(),
        "users": users.iter().map(|(login, fhir_user)| (login.to_string(), json!(fhir_user))).collect::<serde_json::Map<_, _>>(),
    });
    let mut process = Command::new("node")
        .arg("provider.mjs")
        .arg(settings.to_string())
        .current_dir(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start node provider.mjs");
    // The provider prints its issuer once it listens; a failed start closes stdout.
    let mut line = String::new();
    let mut stdout = BufReader::new(process.stdout.take().expect("stdout"));
    stdout.read_line(&mut line).expect("read provider output");
    let issuer = line.trim().strip_prefix("issuer ").unwrap_or_else(|| panic!("provider did not start: {line:?}"));
    Provider { issuer: issuer.to_owned(), process, _stdout: stdout }
}
