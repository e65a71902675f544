//! Configuration: flags, TERMIN_* environment variables, the TOML config file, precedence
//! flag > env > file > default, logging to stderr as JSON lines.

mod support;

use std::path::Path;

use serde_json::{Value, json};
use support::*;

/// The base the server put into the Location header of a fresh create.
async fn location_base(s: &TestServer) -> String {
    let r = s.post("Patient", &simple_patient("Basis")).await.expect_status(201);
    let id = id_of(&r.json());
    let loc = r.require_header("location");
    loc.strip_suffix(&format!("/Patient/{id}/_history/1"))
        .unwrap_or_else(|| panic!("Location {loc:?} does not end in /Patient/{id}/_history/1"))
        .to_string()
}

/// What a PUT to a new id answers (201 when update-as-create is on, 405 when off).
async fn put_new_status(s: &TestServer, id: &str) -> u16 {
    let mut body = simple_patient("PutNeu");
    body["id"] = json!(id);
    let r = s.put(&format!("Patient/{id}"), &body).await;
    if r.code() != 201 {
        r.outcome(r.code());
    }
    r.code()
}

async fn capability_update_create(s: &TestServer) -> Value {
    let cs = s.get("metadata").await.expect_status(200).json();
    cs["rest"][0]["resource"][0]["updateCreate"].clone()
}

/// Status of a POST whose body is about 4 KiB.
async fn big_post_status(s: &TestServer) -> u16 {
    let mut big = simple_patient("Gross");
    big["name"][0]["text"] = json!("x".repeat(4096));
    // Own connection: the server may drop a connection after an early 413.
    let r = send(json_body(s.unpooled_client().post(s.url("Patient")), &big)).await;
    if r.code() != 201 {
        r.outcome(r.code());
    }
    r.code()
}

#[tokio::test]
async fn base_url_flag_is_used_in_location_and_links_while_requests_use_the_bound_address() {
    const BASE: &str = "https://termin.example.org/fhir";
    let s = TestServer::start_with(ServerOptions::new().base_url(BASE)).await;
    assert_eq!(location_base(&s).await, BASE);
    let created = s.create(&patient(ID_SYSTEM, "b1", "Basis")).await;
    let id = id_of(&created);
    s.create(&patient(ID_SYSTEM, "b1", "Basis2")).await;

    let page = s.get(&format!("Patient?identifier={ID_SYSTEM}|b1&_count=1")).await.expect_status(200).json();
    for rel in ["self", "next"] {
        let l = link(&page, rel).unwrap_or_else(|| panic!("no {rel} link: {page}"));
        assert!(l.starts_with(BASE), "{rel} link {l} does not use the configured base");
    }
    for e in entries(&page) {
        assert!(e["fullUrl"].as_str().unwrap_or("").starts_with(&format!("{BASE}/Patient/")), "{e}");
    }
    // The next link, mapped onto the bound address, works.
    let all = s.all_entries(&format!("Patient?identifier={ID_SYSTEM}|b1&_count=1")).await;
    assert_eq!(all.len(), 2);

    let hist = s.get(&format!("Patient/{id}/_history")).await.expect_status(200).json();
    for e in entries(&hist) {
        assert!(e["fullUrl"].as_str().unwrap_or("").starts_with(&format!("{BASE}/Patient/{id}")), "{e}");
    }
    let hist = s.get("Patient/_history?_count=1").await.expect_status(200).json();
    assert!(link(&hist, "next").is_some_and(|l| l.starts_with(BASE)), "{hist}");
}

#[tokio::test]
async fn base_url_precedence_flag_over_env_over_file_over_default() {
    const FLAG: &str = "https://flag.example.org/fhir";
    const ENV: &str = "https://env.example.org/fhir";
    const FILE: &str = "https://file.example.org/fhir";
    let file = format!("base_url = \"{FILE}\"\n");

    let s = TestServer::start().await;
    assert_eq!(location_base(&s).await, s.base(), "default base");
    drop(s);

    let s = TestServer::start_with(ServerOptions::new().config_file("termin.toml", &file)).await;
    assert_eq!(location_base(&s).await, FILE, "file only");
    drop(s);

    let s = TestServer::start_with(
        ServerOptions::new().config_file("termin.toml", &file).env("TERMIN_BASE_URL", ENV),
    )
    .await;
    assert_eq!(location_base(&s).await, ENV, "env over file");
    drop(s);

    let s = TestServer::start_with(
        ServerOptions::new()
            .config_file("termin.toml", &file)
            .env("TERMIN_BASE_URL", ENV)
            .base_url(FLAG),
    )
    .await;
    assert_eq!(location_base(&s).await, FLAG, "flag over env");
}

#[tokio::test]
async fn update_create_precedence_flag_over_env_over_file() {
    let file = "update_create = false\n";

    let s = TestServer::start().await;
    assert_eq!(put_new_status(&s, "d1").await, 201, "default: update-as-create on");
    drop(s);

    let s = TestServer::start_with(ServerOptions::new().config_file("termin.toml", file)).await;
    assert_eq!(put_new_status(&s, "f1").await, 405, "file: update_create = false");
    assert_eq!(capability_update_create(&s).await, false);
    drop(s);

    let s = TestServer::start_with(ServerOptions::new().env("TERMIN_UPDATE_CREATE", "false")).await;
    assert_eq!(put_new_status(&s, "e0").await, 405, "env only: TERMIN_UPDATE_CREATE=false");
    drop(s);

    let s = TestServer::start_with(
        ServerOptions::new().config_file("termin.toml", file).env("TERMIN_UPDATE_CREATE", "true"),
    )
    .await;
    assert_eq!(put_new_status(&s, "e1").await, 201, "env true over file false");
    assert_eq!(capability_update_create(&s).await, true);
    drop(s);

    let s = TestServer::start_with(
        ServerOptions::new()
            .config_file("termin.toml", file)
            .env("TERMIN_UPDATE_CREATE", "true")
            .update_create(false),
    )
    .await;
    assert_eq!(put_new_status(&s, "g1").await, 405, "flag false over env true");
    assert_eq!(capability_update_create(&s).await, false);
}

#[tokio::test]
async fn max_body_bytes_precedence_flag_over_env_over_file() {
    let s = TestServer::start_with(ServerOptions::new().config_file("termin.toml", "max_body_bytes = 1024\n")).await;
    assert_eq!(big_post_status(&s).await, 413, "file: max_body_bytes = 1024");
    drop(s);

    let s = TestServer::start_with(ServerOptions::new().env("TERMIN_MAX_BODY_BYTES", "1024")).await;
    assert_eq!(big_post_status(&s).await, 413, "env: TERMIN_MAX_BODY_BYTES=1024");
    drop(s);

    let s = TestServer::start_with(
        ServerOptions::new()
            .config_file("termin.toml", "max_body_bytes = 1024\n")
            .env("TERMIN_MAX_BODY_BYTES", "1000000"),
    )
    .await;
    assert_eq!(big_post_status(&s).await, 201, "env 1000000 over file 1024");
    drop(s);

    let s = TestServer::start_with(
        ServerOptions::new()
            .config_file("termin.toml", "max_body_bytes = 1000000\n")
            .env("TERMIN_MAX_BODY_BYTES", "1000000")
            .max_body_bytes(1024),
    )
    .await;
    assert_eq!(big_post_status(&s).await, 413, "flag 1024 over env 1000000");
}

#[tokio::test]
async fn bind_precedence_flag_over_env_over_file() {
    // Distinct loopback addresses make the winner visible in the listening line.
    let file = "bind = \"127.0.0.3:0\"\n";

    let s = TestServer::start_with(ServerOptions::new().without_bind_flag().config_file("termin.toml", file)).await;
    assert_eq!(s.host(), "127.0.0.3", "file only");
    s.get_root("/health").await.expect_status(200);
    drop(s);

    let s = TestServer::start_with(ServerOptions::new().without_bind_flag().env("TERMIN_BIND", "127.0.0.2:0")).await;
    assert_eq!(s.host(), "127.0.0.2", "env only");
    s.get_root("/health").await.expect_status(200);
    drop(s);

    let s = TestServer::start_with(
        ServerOptions::new()
            .without_bind_flag()
            .config_file("termin.toml", file)
            .env("TERMIN_BIND", "127.0.0.2:0"),
    )
    .await;
    assert_eq!(s.host(), "127.0.0.2", "env over file");
    drop(s);

    let s = TestServer::start_with(
        ServerOptions::new().config_file("termin.toml", file).env("TERMIN_BIND", "127.0.0.2:0"),
    )
    .await;
    assert_eq!(s.host(), "127.0.0.1", "flag over env");
    s.get_root("/health").await.expect_status(200);
}

#[tokio::test]
async fn database_from_env_and_file_with_precedence() {
    // Phase 1: TERMIN_DATABASE alone.
    let mut s = TestServer::start_with(
        ServerOptions::new().without_database_flag().env("TERMIN_DATABASE", "{database}"),
    )
    .await;
    let a = s.create(&simple_patient("EnvDb")).await;
    let a_id = id_of(&a);
    if s.storage().backend == Backend::Sqlite {
        assert!(Path::new(&s.storage().database).exists(), "TERMIN_DATABASE file was not created");
    }

    // Phase 2: config file alone, same database: the data is there.
    let main_db_file = "database = \"{database}\"\n";
    s.restart_with(ServerOptions::new().without_database_flag().config_file("termin.toml", main_db_file))
        .await;
    assert_eq!(s.read("Patient", &a_id).await, a, "database from config file");

    // Phase 3: env (other db) over file (main db): the resource is not visible.
    s.restart_with(
        ServerOptions::new()
            .without_database_flag()
            .config_file("termin.toml", main_db_file)
            .env("TERMIN_DATABASE", "{dir}/other.db"),
    )
    .await;
    s.get(&format!("Patient/{a_id}")).await.outcome(404);
    let b = s.create(&simple_patient("OtherDb")).await;

    // Phase 4: flag (main db) over env (other db).
    s.restart_with(ServerOptions::new().env("TERMIN_DATABASE", "{dir}/other.db")).await;
    assert_eq!(s.read("Patient", &a_id).await, a, "flag database over env");
    s.get(&format!("Patient/{}", id_of(&b))).await.outcome(404);

    // Phase 5: the other db kept what was written to it.
    s.restart_with(ServerOptions::new().without_database_flag().env("TERMIN_DATABASE", "{dir}/other.db"))
        .await;
    assert_eq!(s.read("Patient", &id_of(&b)).await, b);
}

#[tokio::test]
async fn config_file_with_every_key() {
    const BASE: &str = "https://file-all.example.org/fhir";
    let file = format!(
        "bind = \"127.0.0.1:0\"\nbase_url = \"{BASE}\"\ndatabase = \"{{database}}\"\nlog = \"info\"\nmax_body_bytes = 1024\nupdate_create = false\n"
    );
    let s = TestServer::start_with(
        ServerOptions::new()
            .without_bind_flag()
            .without_database_flag()
            .config_file("termin.toml", file)
            .expect_public_base(BASE),
    )
    .await;
    assert_eq!(s.host(), "127.0.0.1");
    assert_eq!(location_base(&s).await, BASE);
    assert_eq!(put_new_status(&s, "nope").await, 405);
    assert_eq!(big_post_status(&s).await, 413);
    if s.storage().backend == Backend::Sqlite {
        assert!(Path::new(&s.storage().database).exists(), "database from config file not created");
    }
}

#[tokio::test]
async fn stdout_has_only_the_listening_line_and_logs_are_json_lines_on_stderr() {
    let mut s = TestServer::start_with(ServerOptions::new().env("TERMIN_LOG", "debug")).await;
    let id = id_of(&s.create(&simple_patient("Log")).await);
    s.get(&format!("Patient/{id}")).await.expect_status(200);
    s.get("Patient/missing").await.outcome(404);
    s.kill();

    let out = s.stdout_lines();
    assert_eq!(out.len(), 1, "stdout should hold exactly the listening line: {out:?}");
    assert_eq!(out[0], format!("{LISTENING_PREFIX}http://{}", s.addr()));

    let err: Vec<String> = s.stderr_lines().into_iter().filter(|l| !l.trim().is_empty()).collect();
    assert!(!err.is_empty(), "no log lines on stderr with TERMIN_LOG=debug");
    for line in &err {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("stderr line is not JSON ({e}): {line}"));
        assert!(v.is_object(), "stderr line is not a JSON object: {line}");
    }
}

/// Levels of the JSON log lines on stderr (the `level` field tracing's JSON format writes).
fn log_levels(s: &TestServer) -> Vec<String> {
    s.stderr_lines()
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("stderr line is not JSON ({e}): {l}"));
            v["level"].as_str().unwrap_or("").to_ascii_uppercase()
        })
        .collect()
}

#[tokio::test]
async fn log_setting_filters_stderr_with_env_over_file() {
    // File says error: start-up and request logging (info/debug) must be filtered out.
    let mut s = TestServer::start_with(ServerOptions::new().config_file("termin.toml", "log = \"error\"\n")).await;
    s.create(&simple_patient("Leise")).await;
    s.get("Patient/missing").await.outcome(404);
    s.kill();
    let levels = log_levels(&s);
    assert!(
        levels.iter().all(|l| !matches!(l.as_str(), "INFO" | "DEBUG" | "TRACE")),
        "log = \"error\" in the config file, yet stderr has levels {levels:?}"
    );
    drop(s);

    // TERMIN_LOG=debug beats the file.
    let mut s = TestServer::start_with(
        ServerOptions::new().config_file("termin.toml", "log = \"error\"\n").env("TERMIN_LOG", "debug"),
    )
    .await;
    s.create(&simple_patient("Laut")).await;
    s.kill();
    let levels = log_levels(&s);
    assert!(
        levels.iter().any(|l| matches!(l.as_str(), "INFO" | "DEBUG")),
        "TERMIN_LOG=debug over log = \"error\": no info/debug lines on stderr (levels {levels:?})"
    );
}
