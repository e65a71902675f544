//! Issue 20: the web app (`/` and `/staff`) in a real browser. Each test starts `termin serve
//! --demo --demo-scale tiny` (validation on, as a demo runs) and runs a scenario of
//! `tests/web_app/web_app.mjs` against it: Playwright (npm `playwright-core`) driving Debian's
//! `chromium`, with an axe-core accessibility check of every page state. Both are installed by
//! `scripts/test-tools`. The script checks the server's state through the FHIR API after the
//! clicks and exits non-zero with the reason (and screenshots of its pages) on failure.
//!
//! Screenshots go to a temporary directory, or with `TERMIN_TEST_SCREENSHOTS=1` to
//! `docs/screenshots/` (the README's pictures).

mod oidc_support;
mod support;

use oidc_support::*;
use std::path::{Path, PathBuf};
use std::time::Duration;
use support::*;

/// Hang guard for one scenario (never an assertion about speed).
const SCENARIO_LIMIT: Duration = Duration::from_secs(600);

fn script_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/web_app")
}

async fn demo_server(options: ServerOptions) -> TestServer {
    TestServer::start_with(options.validation().arg("--demo").flag("--demo-scale", "tiny")).await
}

/// Runs `scenario` against `server`, failing with the script's output.
async fn run_scenario(server: &TestServer, scenario: &str) {
    let dir = script_dir();
    assert!(
        dir.join("node_modules/playwright-core").is_dir() && dir.join("node_modules/axe-core").is_dir(),
        "the browser test tools are not installed: run ./scripts/test-tools (./scripts/test does)"
    );
    let temporary = tempfile::tempdir().expect("screenshot dir");
    let screenshots = match std::env::var("TERMIN_TEST_SCREENSHOTS").as_deref() {
        Ok("1") => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/screenshots"),
        _ => temporary.path().to_path_buf(),
    };
    let run = tokio::process::Command::new("node")
        .arg("web_app.mjs")
        .arg(scenario)
        .arg(server.root())
        .arg(&screenshots)
        .current_dir(&dir)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(SCENARIO_LIMIT, run)
        .await
        .unwrap_or_else(|_| panic!("web app scenario {scenario} did not finish within {SCENARIO_LIMIT:?}"))
        .expect("run node web_app.mjs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "web app scenario {scenario} failed ({}):\n{stdout}\n{stderr}\nserver log tail:\n{}",
        output.status,
        server.stderr_lines().iter().rev().take(20).rev().cloned().collect::<Vec<_>>().join("\n")
    );
    assert!(stdout.contains(&format!("web app scenario {scenario}: passed")), "{stdout}\n{stderr}");
}

/// A patient books (search → hold → details with the SVNR check → book → confirmation with
/// .ics); the staff calendar shows the booking, confirms a pending one and blocks an
/// afternoon; the patient finds the booking by SVNR and birth date, moves and cancels it by
/// the link; the page in English at phone width.
#[tokio::test]
async fn a_patient_books_and_cancels_and_the_practice_runs_its_calendar() {
    let server = demo_server(ServerOptions::new()).await;
    run_scenario(&server, "booking").await;
}

/// Two patients want one slot: the first one's reservation lapses (holds last 3 s here), the
/// other books the slot, and the first is refused with the alternatives the server proposes
/// and books one of them.
#[tokio::test]
async fn the_patient_who_loses_a_slot_is_offered_the_servers_alternatives() {
    let server = demo_server(ServerOptions::new().flag("--hold-duration", "3s")).await;
    run_scenario(&server, "race").await;
}

/// The practice moves a booking to a later free slot with a reason (kept as a note), and
/// generates a week of slots from the opening hours after a dry-run preview.
#[tokio::test]
async fn the_practice_moves_a_booking_and_generates_slots() {
    let server = demo_server(ServerOptions::new()).await;
    run_scenario(&server, "staff").await;
}

/// With authorization on, the calendar asks staff to log in: SMART on FHIR (authorization
/// code with PKCE) at a real OpenID Connect provider, whose token (`user/*.cruds` with the
/// practitioner role as `fhirUser`) then reads the calendar and blocks a slot.
#[tokio::test]
async fn staff_log_in_by_smart_on_fhir_when_authorization_is_on() {
    // The demo's first practitioner role (of seed-schedule-0) is the one who logs in.
    let provider = start_provider_with(
        &[],
        &[("termin-web", "http://127.0.0.1/staff", "openid fhirUser user/*.cruds")],
        &[("verena", "PractitionerRole/seed-role-0")],
    );
    let options = ServerOptions::new().flag("--auth-issuer", &provider.issuer).flag("--auth-audience", "termin-api");
    let server = demo_server(options).await;
    run_scenario(&server, "login").await;
}

#[tokio::test]
async fn the_pages_and_their_assets_are_served_by_termin() {
    let server = TestServer::start().await;
    let client = server.client();
    for (path, content_type) in [
        ("/", "text/html; charset=utf-8"),
        ("/staff", "text/html; charset=utf-8"),
        ("/app/booking.js", "text/javascript; charset=utf-8"),
        ("/app/staff.js", "text/javascript; charset=utf-8"),
        ("/app/style.css", "text/css; charset=utf-8"),
    ] {
        let response = client.get(server.root_url(path)).send().await.expect(path);
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(response.headers()["content-type"], content_type, "{path}");
        assert!(response.headers().contains_key("x-request-id"), "{path} passes the API's layers");
        let etag = response.headers()["etag"].clone();
        let again = client.get(server.root_url(path)).header("if-none-match", etag).send().await.expect(path);
        assert_eq!(again.status(), 304, "{path}");
    }
    // The FHIR API is unchanged beside it, and unknown paths are still FHIR's 404.
    server.get("metadata").await.expect_status(200);
    let unknown = client.get(server.root_url("/nowhere")).send().await.unwrap();
    assert_eq!(unknown.status(), 404);
    assert_eq!(client.get(server.root_url("/app/missing.js")).send().await.unwrap().status(), 404);
}
