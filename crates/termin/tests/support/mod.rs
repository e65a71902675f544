//! Black-box test harness: starts the real `termin` binary against a fresh database and talks
//! to it over HTTP only.
//!
//! * Every [`TestServer`] owns a temporary directory, a database in it (see [`Backend`]), and one
//!   child process listening on `127.0.0.1:0`. The port is taken from the single line the server
//!   prints on stdout once it is ready (`termin listening on http://127.0.0.1:<port>`).
//! * The child is killed (and reaped) when the `TestServer` is dropped; [`TestServer::restart`]
//!   kills it and starts a new process on the same database.
//! * The storage backend is chosen with `TERMIN_TEST_BACKEND`: `sqlite` (the default) or
//!   `postgres`, for which [`Backend::provision`] creates a uniquely named scratch database on the
//!   server named by `TERMIN_TEST_POSTGRES_URL` (default
//!   `postgres://postgres@127.0.0.1:5432/postgres`); the [`Storage`] drops it again.
//! * [`TestServer::another_node`] starts a further process on the same storage: the nodes of a
//!   cluster on one database.
//! * The IG packages (profiles, examples) are the repository's `packages/` ([`packages_root`]);
//!   the IG pages the tests replay are copies in `tests/ig_pages/` ([`ig_pages`]).
//! * The server finds the R5 core package (search parameters) in the FHIR package cache:
//!   `TERMIN_FHIR_PACKAGES` is passed through, else `$HOME/.fhir/packages`; `scripts/test`
//!   installs it there first.
//!
//! Nothing here sleeps to synchronise: start-up waits on the listening line (or on the process
//! exiting); the time limits below only stop a hung test from hanging CI forever.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{Map, Value, json};
use tempfile::TempDir;
use termin_store_postgres::scratch::ScratchDatabase;

pub mod tokens;

/// The server's read-only type: AuditEvents are recorded by the server itself.
pub const RECORDED_TYPE: &str = "AuditEvent";

/// The resource types clients read and write (the ten of the foundation issue, and Subscription).
pub const SUPPORTED_TYPES: [&str; 11] = [
    "Patient",
    "Practitioner",
    "PractitionerRole",
    "Organization",
    "Location",
    "HealthcareService",
    "Schedule",
    "Slot",
    "Appointment",
    "RelatedPerson",
    "Subscription",
];

pub const FHIR_JSON: &str = "application/fhir+json";
pub const LISTENING_PREFIX: &str = "termin listening on ";

/// Hang guards only (never used to assert anything about speed).
const STARTUP_LIMIT: Duration = Duration::from_secs(120);
const REQUEST_LIMIT: Duration = Duration::from_secs(120);
const MAX_PAGES: usize = 10_000;

// ---------------------------------------------------------------------------------------------
// Storage backends
// ---------------------------------------------------------------------------------------------

/// Which storage the server under test runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file `termin.db` in the test's temporary directory.
    Sqlite,
    /// A scratch database of its own on a PostgreSQL server.
    Postgres,
}

impl Backend {
    /// `TERMIN_TEST_BACKEND` (`sqlite` by default).
    pub fn from_env() -> Backend {
        match std::env::var("TERMIN_TEST_BACKEND") {
            Err(_) => Backend::Sqlite,
            Ok(v) if v.is_empty() || v.eq_ignore_ascii_case("sqlite") => Backend::Sqlite,
            Ok(v) if v.eq_ignore_ascii_case("postgres") => Backend::Postgres,
            Ok(other) => panic!(
                "TERMIN_TEST_BACKEND={other:?} is not supported by the test harness (`sqlite` or `postgres`)"
            ),
        }
    }

    /// Creates fresh, empty storage for one test server.
    pub fn provision(self, dir: &Path) -> Storage {
        match self {
            Backend::Sqlite => Storage {
                backend: self,
                database: dir.join("termin.db").to_string_lossy().into_owned(),
                scratch: None,
            },
            Backend::Postgres => {
                let scratch = on_own_runtime(ScratchDatabase::create("termin_itest"))
                    .unwrap_or_else(|reason| panic!("TERMIN_TEST_BACKEND=postgres: {reason}"));
                Storage {
                    backend: self,
                    database: scratch.url.clone(),
                    scratch: Some(scratch),
                }
            }
        }
    }
}

/// Runs a future on a runtime of its own: provisioning is synchronous and may be called from
/// inside a test's runtime.
fn on_own_runtime<T: Send + 'static>(future: impl Future<Output = T> + Send + 'static) -> T {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("build a runtime")
            .block_on(future)
    })
    .join()
    .expect("the provisioning thread panicked")
}

/// The storage one test server (and its restarts) uses.
#[derive(Debug)]
pub struct Storage {
    pub backend: Backend,
    /// The value passed as `--database` / `TERMIN_DATABASE` / `database = ...`.
    pub database: String,
    /// The PostgreSQL database to drop with the storage.
    scratch: Option<ScratchDatabase>,
}

impl Drop for Storage {
    fn drop(&mut self) {
        if let Some(scratch) = self.scratch.take()
            && let Err(reason) = on_own_runtime(scratch.drop_database())
        {
            eprintln!("{reason}");
        }
    }
}

/// Waits for `condition`, polling, failing with `what` after `limit`: for what a server does
/// in the background (deliveries, generation), with no sleep standing in for synchronisation.
pub async fn until(what: &str, limit: Duration, mut condition: impl AsyncFnMut() -> bool) {
    let deadline = std::time::Instant::now() + limit;
    while !condition().await {
        assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Start-up options
// ---------------------------------------------------------------------------------------------

/// How to start the server. In args, env values and config file contents, `{dir}` is replaced
/// by the test's temp dir and `{database}` by the storage's database value. By default: `termin serve --bind 127.0.0.1:0 --database <storage>
/// --max-holds-per-holder 0 --validation off` with every inherited `TERMIN_*` variable removed
/// from the child's environment. The hold limit is lifted because every test client comes from
/// one address while playing many patients; [`ServerOptions::hold_limit`] sets one. Validation
/// is off so that tests may post minimal resources; [`ServerOptions::validation`] leaves it on.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub bind_flag: bool,
    pub database_flag: bool,
    /// Files written into the temp dir before start: (file name, contents).
    pub files: Vec<(String, String)>,
    /// The public FHIR base the server is expected to use in links, if not the bound address.
    pub public_base: Option<String>,
    /// `--max-holds-per-holder`; `None` leaves it to the server's configuration.
    pub hold_limit: Option<usize>,
    /// `false` passes `--validation off`; `true` leaves validation to the server's configuration.
    pub validation: bool,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            args: Vec::new(),
            env: Vec::new(),
            bind_flag: true,
            database_flag: true,
            files: Vec::new(),
            public_base: None,
            hold_limit: Some(0),
            validation: false,
        }
    }
}

impl ServerOptions {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn arg(mut self, a: impl Into<String>) -> Self {
        self.args.push(a.into());
        self
    }

    pub fn flag(self, name: &str, value: impl Into<String>) -> Self {
        self.arg(name).arg(value)
    }

    pub fn env(mut self, k: impl Into<String>, v: impl Into<String>) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }

    /// Do not pass `--bind` (so TERMIN_BIND / the config file / the default decide).
    pub fn without_bind_flag(mut self) -> Self {
        self.bind_flag = false;
        self
    }

    /// Do not pass `--database` (so TERMIN_DATABASE / the config file / the default decide).
    pub fn without_database_flag(mut self) -> Self {
        self.database_flag = false;
        self
    }

    /// Writes `contents` to `<tempdir>/<name>` before start and passes `--config <that path>`.
    pub fn config_file(mut self, name: &str, contents: impl Into<String>) -> Self {
        self.files.push((name.to_string(), contents.into()));
        self.args.push("--config".into());
        self.args.push(format!("{{dir}}/{name}"));
        self
    }

    /// Passes `--base-url` and remembers it as the expected public base.
    pub fn base_url(mut self, url: &str) -> Self {
        self.public_base = Some(url.trim_end_matches('/').to_string());
        self.flag("--base-url", url)
    }

    /// Declares the public base the server is expected to use (when it is configured through
    /// the environment or a config file rather than `--base-url`).
    pub fn expect_public_base(mut self, url: &str) -> Self {
        self.public_base = Some(url.trim_end_matches('/').to_string());
        self
    }

    pub fn update_create(self, enabled: bool) -> Self {
        self.flag("--update-create", if enabled { "true" } else { "false" })
    }

    /// Live holds per client (`Some(0)`: no limit, the harness default; `None`: the server's
    /// own configuration decides).
    pub fn hold_limit(mut self, limit: Option<usize>) -> Self {
        self.hold_limit = limit;
        self
    }

    pub fn max_body_bytes(self, n: usize) -> Self {
        self.flag("--max-body-bytes", n.to_string())
    }

    /// Does not pass `--validation off`: validation as the server does it by default, with the AT
    /// Core and AT Scheduling profiles built into it enforced (the R5 core package comes from
    /// the FHIR package cache). Servers start without validation otherwise, so tests may post
    /// minimal resources.
    pub fn validation(mut self) -> Self {
        self.validation = true;
        self
    }
}

// ---------------------------------------------------------------------------------------------
// The running server
// ---------------------------------------------------------------------------------------------

struct Running {
    child: Child,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

pub struct TestServer {
    // Field order matters for Drop: the process must die before the temp dir goes.
    running: Option<Running>,
    addr: String,
    client: reqwest::Client,
    options: ServerOptions,
    /// Shared by the nodes of a cluster ([`TestServer::another_node`]); the last one drops it.
    storage: Arc<Storage>,
    dir: TempDir,
    /// stdout/stderr of processes already stopped (for diagnostics and log assertions).
    past_stdout: Vec<String>,
    past_stderr: Vec<String>,
}

impl TestServer {
    /// A server with default options on the backend selected by `TERMIN_TEST_BACKEND`.
    pub async fn start() -> TestServer {
        Self::start_with(ServerOptions::new()).await
    }

    pub async fn start_with(options: ServerOptions) -> TestServer {
        let dir = tempfile::Builder::new()
            .prefix("termin-itest-")
            .tempdir()
            .expect("create temp dir");
        let storage = Arc::new(Backend::from_env().provision(dir.path()));
        Self::start_on(storage, dir, options).await
    }

    /// Another process with `options` on this server's storage (the PostgreSQL database, or the
    /// SQLite file, which lives in this server's temp dir and so only as long as this server),
    /// with a temp dir of its own: a second node of a cluster.
    pub async fn another_node(&self, options: ServerOptions) -> TestServer {
        let dir = tempfile::Builder::new()
            .prefix("termin-itest-node-")
            .tempdir()
            .expect("create temp dir");
        Self::start_on(self.storage.clone(), dir, options).await
    }

    async fn start_on(storage: Arc<Storage>, dir: TempDir, options: ServerOptions) -> TestServer {
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(REQUEST_LIMIT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("build reqwest client");
        let mut server = TestServer {
            running: None,
            addr: String::new(),
            client,
            options,
            storage,
            dir,
            past_stdout: Vec::new(),
            past_stderr: Vec::new(),
        };
        server.launch().await;
        server
    }

    /// Starts a process with `options` and expects it to exit without ever printing the
    /// listening line. Returns (exit success?, stdout lines, stderr lines).
    pub async fn start_expecting_failure(options: ServerOptions) -> (bool, Vec<String>, Vec<String>) {
        let dir = tempfile::Builder::new().prefix("termin-itest-").tempdir().unwrap();
        let storage = Backend::from_env().provision(dir.path());
        let mut cmd = build_command(&options, &storage, dir.path());
        let out = tokio::task::spawn_blocking(move || cmd.output())
            .await
            .unwrap()
            .expect("spawn termin");
        let lines = |b: &[u8]| String::from_utf8_lossy(b).lines().map(str::to_string).collect();
        (out.status.success(), lines(&out.stdout), lines(&out.stderr))
    }

    async fn launch(&mut self) {
        assert!(self.running.is_none(), "server already running");
        let mut cmd = build_command(&self.options, &self.storage, self.dir.path());
        let mut child = cmd.spawn().unwrap_or_else(|e| {
            panic!("cannot spawn {}: {e}", env!("CARGO_BIN_EXE_termin"))
        });
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = tokio::sync::oneshot::channel::<String>();

        let out_pipe = child.stdout.take().unwrap();
        let out_lines = stdout.clone();
        let t1 = std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(out_pipe).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.strip_prefix(LISTENING_PREFIX)
                    && let Some(tx) = tx.take() {
                        let _ = tx.send(rest.trim().to_string());
                    }
                out_lines.lock().unwrap().push(line);
            }
            // Dropping tx without sending tells the waiter that stdout closed (process gone).
        });
        let err_pipe = child.stderr.take().unwrap();
        let err_lines = stderr.clone();
        let t2 = std::thread::spawn(move || {
            for line in BufReader::new(err_pipe).lines() {
                let Ok(line) = line else { break };
                err_lines.lock().unwrap().push(line);
            }
        });
        self.running = Some(Running {
            child,
            stdout,
            stderr,
            threads: vec![t1, t2],
        });

        let announced = match tokio::time::timeout(STARTUP_LIMIT, rx).await {
            Ok(Ok(url)) => url,
            Ok(Err(_)) => {
                let status = self.running.as_mut().unwrap().child.wait();
                self.collect_output();
                panic!(
                    "termin exited ({status:?}) without printing `{LISTENING_PREFIX}...`\n{}",
                    self.diagnostics()
                );
            }
            Err(_) => {
                self.kill();
                panic!(
                    "termin did not print `{LISTENING_PREFIX}...` within {STARTUP_LIMIT:?}\n{}",
                    self.diagnostics()
                );
            }
        };
        let addr = announced
            .strip_prefix("http://")
            .unwrap_or_else(|| panic!("listening line does not hold an http:// URL: {announced:?}"))
            .trim_end_matches('/')
            .to_string();
        assert!(
            addr.rsplit_once(':').and_then(|(_, p)| p.parse::<u16>().ok()).is_some_and(|p| p != 0),
            "listening line does not name a concrete port: {announced:?}"
        );
        self.addr = addr;
    }

    fn collect_output(&mut self) {
        if let Some(mut r) = self.running.take() {
            let _ = r.child.kill();
            let _ = r.child.wait();
            for t in r.threads.drain(..) {
                let _ = t.join();
            }
            self.past_stdout.extend(r.stdout.lock().unwrap().drain(..));
            self.past_stderr.extend(r.stderr.lock().unwrap().drain(..));
        }
    }

    /// Stops the process with SIGTERM (a clean shutdown) and waits for it to exit.
    pub fn terminate(&mut self) {
        if let Some(r) = &mut self.running {
            let _ = std::process::Command::new("kill").arg("-TERM").arg(r.child.id().to_string()).status();
            let _ = r.child.wait();
        }
        self.collect_output();
    }

    /// Kills the process (SIGKILL, no graceful shutdown) and waits for it to exit.
    pub fn kill(&mut self) {
        self.collect_output();
    }

    /// Kills the process and starts a new one with the same options on the same database
    /// (it gets a new port).
    pub async fn restart(&mut self) {
        self.kill();
        self.launch().await;
    }

    /// Kills the process and starts a new one with different options on the same storage and
    /// temp dir (`{dir}` / `{database}` placeholders resolve as before).
    pub async fn restart_with(&mut self, options: ServerOptions) {
        self.kill();
        self.options = options;
        self.launch().await;
    }

    /// The options the server was started with.
    pub fn options(&self) -> &ServerOptions {
        &self.options
    }

    /// `host:port` the server announced.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Host part of the announced address.
    pub fn host(&self) -> &str {
        self.addr.rsplit_once(':').map(|(h, _)| h).unwrap_or(&self.addr)
    }

    /// `http://<addr>`
    pub fn root(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The FHIR base requests go to: `http://<addr>/fhir`.
    pub fn base(&self) -> String {
        format!("http://{}/fhir", self.addr)
    }

    /// The FHIR base the server should put into Location headers and links.
    pub fn public_base(&self) -> String {
        self.options.public_base.clone().unwrap_or_else(|| self.base())
    }

    /// Absolute URL for a FHIR path (`Patient/1`, `/metadata`, `Patient?_id=x`); absolute URLs
    /// pass through unchanged, except that the public base is mapped onto the bound address.
    pub fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            return self.local(path);
        }
        format!("{}/{}", self.base(), path.trim_start_matches('/'))
    }

    /// Maps a URL under the public base (e.g. a `next` link) to the bound address.
    pub fn local(&self, url: &str) -> String {
        let public = self.public_base();
        match url.strip_prefix(&public) {
            Some(rest) if public != self.base() => format!("{}{}", self.base(), rest),
            _ => url.to_string(),
        }
    }

    /// Absolute URL for a non-FHIR path on the server root (`/health`).
    pub fn root_url(&self, path: &str) -> String {
        format!("{}/{}", self.root(), path.trim_start_matches('/'))
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// A client that keeps no idle connections: every request it sends uses a new connection
    /// (for requests after which the server may drop the connection, e.g. an early 413).
    pub fn unpooled_client(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .no_proxy()
            .timeout(REQUEST_LIMIT)
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(0)
            .build()
            .expect("build reqwest client")
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// Lines printed on stdout so far (all processes, including stopped ones).
    pub fn stdout_lines(&self) -> Vec<String> {
        let mut v = self.past_stdout.clone();
        if let Some(r) = &self.running {
            v.extend(r.stdout.lock().unwrap().iter().cloned());
        }
        v
    }

    /// Lines printed on stderr so far (all processes, including stopped ones).
    pub fn stderr_lines(&self) -> Vec<String> {
        let mut v = self.past_stderr.clone();
        if let Some(r) = &self.running {
            v.extend(r.stderr.lock().unwrap().iter().cloned());
        }
        v
    }

    fn diagnostics(&self) -> String {
        let err = self.stderr_lines();
        let tail: Vec<_> = err.iter().rev().take(60).rev().cloned().collect();
        format!(
            "--- stdout ---\n{}\n--- stderr (last {} lines) ---\n{}",
            self.stdout_lines().join("\n"),
            tail.len(),
            tail.join("\n")
        )
    }

    // ---- HTTP helpers -----------------------------------------------------------------------

    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, self.url(path))
    }

    pub async fn send(&self, rb: RequestBuilder) -> Resp {
        send(rb).await
    }

    /// `method path` as the holder of `token` (`None`: anonymous), with `body` as FHIR JSON.
    pub fn request_as(&self, method: Method, path: &str, token: Option<&str>, body: Option<&Value>) -> RequestBuilder {
        let mut request = self.request(method, path);
        if let Some(token) = token {
            request = request.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        match body {
            Some(body) => json_body(request, body),
            None => request,
        }
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.send(self.request(Method::GET, path)).await
    }

    pub async fn get_root(&self, path: &str) -> Resp {
        send(self.client.get(self.root_url(path))).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Resp {
        self.send(json_body(self.request(Method::POST, path), body)).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Resp {
        self.send(json_body(self.request(Method::PUT, path), body)).await
    }

    pub async fn delete(&self, path: &str) -> Resp {
        self.send(self.request(Method::DELETE, path)).await
    }

    /// POSTs `resource` to its type and asserts 201; returns the created resource.
    pub async fn create(&self, resource: &Value) -> Value {
        let ty = resource["resourceType"].as_str().expect("resourceType");
        self.post(ty, resource).await.expect_status(201).json()
    }

    /// GET `<type>/<id>`, asserting 200; returns the resource.
    pub async fn read(&self, ty: &str, id: &str) -> Value {
        self.get(&format!("{ty}/{id}")).await.expect_status(200).json()
    }

    /// Follows `next` links from `first` (a path or URL) and returns every page (asserting 200
    /// and a Bundle each time).
    pub async fn pages(&self, first: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let mut next = Some(self.url(first));
        while let Some(url) = next {
            assert!(out.len() < MAX_PAGES, "more than {MAX_PAGES} pages following next links");
            let page = self.get(&url).await.expect_status(200).json();
            assert_eq!(page["resourceType"], "Bundle", "page {url} is not a Bundle: {page}");
            next = link(&page, "next").map(|u| {
                assert!(
                    u.starts_with("http://") || u.starts_with("https://"),
                    "next link is not absolute: {u}"
                );
                self.local(&u)
            });
            out.push(page);
        }
        out
    }

    /// All entries of all pages starting at `first`.
    pub async fn all_entries(&self, first: &str) -> Vec<Value> {
        self.pages(first).await.iter().flat_map(entries).collect()
    }

    /// Number of entries in the instance history of `<ty>/<id>` (all pages).
    pub async fn history_len(&self, ty: &str, id: &str) -> usize {
        self.all_entries(&format!("{ty}/{id}/_history")).await.len()
    }

    /// Number of entries in the type history of `ty` (all pages).
    pub async fn type_history_len(&self, ty: &str) -> usize {
        self.all_entries(&format!("{ty}/_history")).await.len()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let panicking = std::thread::panicking();
        self.collect_output();
        if panicking {
            eprintln!("==== termin server output (test failed) ====\n{}", self.diagnostics());
        }
    }
}

fn build_command(options: &ServerOptions, storage: &Storage, dir: &Path) -> Command {
    let dir_s = dir.to_string_lossy().into_owned();
    for (name, contents) in &options.files {
        let contents = contents.replace("{dir}", &dir_s).replace("{database}", &storage.database);
        std::fs::write(dir.join(name), contents).expect("write config file");
    }
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_termin"));
    cmd.arg("serve");
    if options.bind_flag {
        cmd.args(["--bind", "127.0.0.1:0"]);
    }
    if options.database_flag {
        cmd.arg("--database").arg(&storage.database);
    }
    if let Some(limit) = options.hold_limit {
        cmd.arg("--max-holds-per-holder").arg(limit.to_string());
    }
    if !options.validation {
        cmd.args(["--validation", "off"]);
    }
    for a in &options.args {
        cmd.arg(a.replace("{dir}", &dir_s).replace("{database}", &storage.database));
    }
    for (k, _) in std::env::vars_os() {
        // The FHIR package cache is the machine's, not a test setting: it stays.
        if k.to_string_lossy().starts_with("TERMIN_") && k != "TERMIN_FHIR_PACKAGES" {
            cmd.env_remove(&k);
        }
    }
    for (k, v) in &options.env {
        cmd.env(k, v.replace("{dir}", &dir_s).replace("{database}", &storage.database));
    }
    cmd.current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

// ---------------------------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------------------------

/// A fully read response.
#[derive(Debug, Clone)]
pub struct Resp {
    pub method: String,
    pub url: String,
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

pub fn json_body(rb: RequestBuilder, body: &Value) -> RequestBuilder {
    rb.header(CONTENT_TYPE, FHIR_JSON)
        .body(serde_json::to_vec(body).unwrap())
}

/// Sends [`TestServer::request_as`].
pub async fn call(s: &TestServer, method: Method, path: &str, token: Option<&str>, body: Option<&Value>) -> Resp {
    s.send(s.request_as(method, path, token, body)).await
}

pub async fn send(rb: RequestBuilder) -> Resp {
    let (client, req) = rb.build_split();
    let req = req.expect("build request");
    let method = req.method().to_string();
    let url = req.url().to_string();
    let resp = client
        .execute(req)
        .await
        .unwrap_or_else(|e| panic!("{method} {url}: request failed: {}", error_chain(&e)));
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp
        .bytes()
        .await
        .unwrap_or_else(|e| panic!("{method} {url}: reading body failed: {}", error_chain(&e)))
        .to_vec();
    Resp { method, url, status, headers, body }
}

/// `e: cause: cause ...`
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        out.push_str(": ");
        out.push_str(&s.to_string());
        src = s.source();
    }
    out
}

impl Resp {
    pub fn code(&self) -> u16 {
        self.status.as_u16()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn what(&self) -> String {
        format!("{} {} -> {}", self.method, self.url, self.status)
    }

    /// The body as JSON (panics with context if it is not).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!("{}: body is not JSON ({e}): {:?}", self.what(), self.text())
        })
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    }

    pub fn require_header(&self, name: &str) -> String {
        self.header(name)
            .unwrap_or_else(|| panic!("{}: no {name} header; headers: {:?}", self.what(), self.headers))
    }

    /// Asserts the status code, showing the body on failure.
    #[track_caller]
    pub fn expect_status(self, code: u16) -> Self {
        assert_eq!(
            self.code(),
            code,
            "{}: expected status {code}; body: {}",
            self.what(),
            self.text()
        );
        self
    }

    /// Version number from the `ETag: W/"n"` header.
    #[track_caller]
    pub fn etag_version(&self) -> String {
        let etag = self.require_header("etag");
        parse_weak_etag(&etag)
            .unwrap_or_else(|| panic!("{}: ETag {etag:?} is not of the form W/\"n\"", self.what()))
    }

    /// Asserts `Content-Type: application/fhir+json; charset=utf-8` (case-insensitive, spaces
    /// around `;` ignored).
    #[track_caller]
    pub fn assert_fhir_json(&self) {
        let ct = self.require_header("content-type");
        assert!(
            is_fhir_json_utf8(&ct),
            "{}: Content-Type is {ct:?}, expected application/fhir+json; charset=utf-8",
            self.what()
        );
    }

    /// Asserts `Content-Type: application/fhir+xml; charset=utf-8` and returns the body's JSON
    /// form (read with the server's own converter, over the R5 core package).
    #[track_caller]
    pub fn fhir_xml(&self) -> Value {
        let ct = self.require_header("content-type");
        assert_eq!(ct.to_ascii_lowercase().replace(' ', ""), "application/fhir+xml;charset=utf-8", "{}", self.what());
        assert!(self.text().starts_with('<'), "{}: not XML: {}", self.what(), self.text());
        match xml_converter().from_xml(&self.body) {
            Ok(resource) => Value::Object(resource),
            Err(issue) => panic!("{}: the XML body cannot be read ({issue:?}): {}", self.what(), self.text()),
        }
    }

    /// Asserts `status` and that the body is a well-formed OperationOutcome (every issue has
    /// severity, code and non-empty diagnostics; at least one error/fatal issue). Returns it.
    #[track_caller]
    pub fn outcome(&self, status: u16) -> Value {
        assert_eq!(
            self.code(),
            status,
            "{}: expected status {status}; body: {}",
            self.what(),
            self.text()
        );
        self.assert_fhir_json();
        let body = self.json();
        assert_outcome(&body, &self.what());
        body
    }
}

/// FHIR XML ⇄ JSON over the R5 core package of the FHIR package cache, loaded once.
pub fn xml_converter() -> &'static termin_xml::XmlConverter {
    static CONVERTER: std::sync::OnceLock<termin_xml::XmlConverter> = std::sync::OnceLock::new();
    CONVERTER.get_or_init(|| {
        termin_xml::XmlConverter::load(termin_search::default_package_cache().as_deref()).expect("the R5 core package")
    })
}

/// An XML example of the IG's pages (kept with the converter's tests, which say where from).
pub fn ig_xml(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../termin-xml/tests/data/ig-examples").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `body` as FHIR XML.
pub fn to_xml(body: &Value) -> String {
    xml_converter().to_xml(body, false).unwrap_or_else(|issue| panic!("no XML form ({issue:?}): {body}"))
}

#[track_caller]
pub fn assert_outcome(body: &Value, what: &str) {
    assert_eq!(body["resourceType"], "OperationOutcome", "{what}: not an OperationOutcome: {body}");
    let issues = body["issue"]
        .as_array()
        .unwrap_or_else(|| panic!("{what}: OperationOutcome without issue[]: {body}"));
    assert!(!issues.is_empty(), "{what}: OperationOutcome with empty issue[]: {body}");
    for issue in issues {
        let sev = issue["severity"].as_str().unwrap_or("");
        assert!(
            ["fatal", "error", "warning", "information"].contains(&sev),
            "{what}: issue.severity {sev:?} invalid: {body}"
        );
        assert!(
            issue["code"].as_str().is_some_and(|c| !c.is_empty()),
            "{what}: issue.code missing: {body}"
        );
        assert!(
            issue["diagnostics"].as_str().is_some_and(|d| !d.trim().is_empty()),
            "{what}: issue.diagnostics missing or empty: {body}"
        );
        if let Some(expr) = issue.get("expression") {
            assert!(
                expr.as_array().is_some_and(|a| a.iter().all(|e| e.as_str().is_some_and(|s| !s.is_empty()))),
                "{what}: issue.expression must be an array of non-empty strings: {body}"
            );
        }
    }
    assert!(
        issues.iter().any(|i| matches!(i["severity"].as_str(), Some("error" | "fatal"))),
        "{what}: an error response's OperationOutcome has no error/fatal issue: {body}"
    );
}

/// All diagnostics of an OperationOutcome, joined by newlines.
pub fn diagnostics(outcome: &Value) -> String {
    outcome["issue"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|i| i["diagnostics"].as_str())
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

/// All issue.expression values of an OperationOutcome.
pub fn expressions(outcome: &Value) -> Vec<String> {
    outcome["issue"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|i| i["expression"].as_array().cloned().unwrap_or_default())
        .filter_map(|e| e.as_str().map(str::to_string))
        .collect()
}

pub fn parse_weak_etag(s: &str) -> Option<String> {
    let inner = s.trim().strip_prefix("W/\"")?.strip_suffix('"')?;
    (!inner.is_empty() && inner.bytes().all(|b| b.is_ascii_digit())).then(|| inner.to_string())
}

pub fn is_fhir_json_utf8(ct: &str) -> bool {
    let mut parts = ct.split(';').map(|p| p.trim().to_ascii_lowercase());
    let mime = parts.next().unwrap_or_default();
    let params: Vec<String> = parts.map(|p| p.replace([' ', '"'], "")).collect();
    mime == FHIR_JSON && params.iter().any(|p| p == "charset=utf-8")
}

// ---------------------------------------------------------------------------------------------
// Value helpers
// ---------------------------------------------------------------------------------------------

pub fn version_id(resource: &Value) -> String {
    resource["meta"]["versionId"]
        .as_str()
        .unwrap_or_else(|| panic!("resource without meta.versionId: {resource}"))
        .to_string()
}

pub fn id_of(resource: &Value) -> String {
    resource["id"]
        .as_str()
        .unwrap_or_else(|| panic!("resource without id: {resource}"))
        .to_string()
}

/// Copy of `resource` without meta.versionId / meta.lastUpdated (and without meta if that
/// leaves it empty).
pub fn without_server_meta(resource: &Value) -> Value {
    let mut v = resource.clone();
    if let Some(obj) = v.as_object_mut() {
        let mut drop_meta = false;
        if let Some(Value::Object(meta)) = obj.get_mut("meta") {
            meta.remove("versionId");
            meta.remove("lastUpdated");
            drop_meta = meta.is_empty();
        }
        if drop_meta {
            obj.remove("meta");
        }
    }
    v
}

/// Copy of `resource` without id and without server meta.
pub fn without_id_and_server_meta(resource: &Value) -> Value {
    let mut v = without_server_meta(resource);
    if let Some(obj) = v.as_object_mut() {
        obj.remove("id");
    }
    v
}

pub fn entries(bundle: &Value) -> Vec<Value> {
    bundle["entry"].as_array().cloned().unwrap_or_default()
}

/// Ids of a searchset's `search.mode=match` entries, in order.
/// The ids of the `match` entries, sorted.
pub fn matches(bundle: &Value) -> Vec<String> {
    let mut ids = match_ids(bundle);
    ids.sort();
    ids
}

/// The issues of the OperationOutcome entries (`search.mode` `outcome`) of a searchset.
pub fn issues(bundle: &Value) -> Vec<Value> {
    entries(bundle)
        .iter()
        .filter(|e| e["search"]["mode"] == "outcome")
        .flat_map(|e| e["resource"]["issue"].as_array().cloned().unwrap_or_default())
        .collect()
}

pub fn match_ids(bundle: &Value) -> Vec<String> {
    entries(bundle)
        .iter()
        .filter(|e| e["search"]["mode"] == "match")
        .map(|e| id_of(&e["resource"]))
        .collect()
}

/// The URL of the bundle link with the given relation.
pub fn link(bundle: &Value, relation: &str) -> Option<String> {
    bundle["link"]
        .as_array()?
        .iter()
        .find(|l| l["relation"] == relation)
        .and_then(|l| l["url"].as_str().map(str::to_string))
}

/// `YYYY-MM-DDThh:mm:ss[.f+](Z|+hh:mm|-hh:mm)`
pub fn is_instant_with_offset(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| b.get(r.clone()).is_some_and(|x| x.iter().all(u8::is_ascii_digit));
    if b.len() < 20
        || !digits(0..4)
        || b[4] != b'-'
        || !digits(5..7)
        || b[7] != b'-'
        || !digits(8..10)
        || b[10] != b'T'
        || !digits(11..13)
        || b[13] != b':'
        || !digits(14..16)
        || b[16] != b':'
        || !digits(17..19)
    {
        return false;
    }
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return false;
        }
        rest = &frac[n..];
    }
    if rest == "Z" {
        return true;
    }
    let r = rest.as_bytes();
    r.len() == 6
        && (r[0] == b'+' || r[0] == b'-')
        && r[1..3].iter().all(u8::is_ascii_digit)
        && r[3] == b':'
        && r[4..6].iter().all(u8::is_ascii_digit)
}

/// RFC 9110 IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`
pub fn is_http_date(s: &str) -> bool {
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let parts: Vec<&str> = s.split(' ').collect();
    if parts.len() != 6 {
        return false;
    }
    let num = |p: &str, n: usize| p.len() == n && p.bytes().all(|b| b.is_ascii_digit());
    let time: Vec<&str> = parts[4].split(':').collect();
    parts[0].len() == 4
        && parts[0].ends_with(',')
        && DAYS.contains(&&parts[0][..3])
        && num(parts[1], 2)
        && MONTHS.contains(&parts[2])
        && num(parts[3], 4)
        && time.len() == 3
        && time.iter().all(|t| num(t, 2))
        && parts[5] == "GMT"
}

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

pub const ID_SYSTEM: &str = "urn:oid:1.2.40.0.10.1.4.3.1";

/// A Patient with one identifier and a family name.
pub fn patient(system: &str, value: &str, family: &str) -> Value {
    json!({
        "resourceType": "Patient",
        "identifier": [{ "system": system, "value": value }],
        "active": true,
        "name": [{ "family": family, "given": ["Test"] }],
        "gender": "unknown",
        "birthDate": "1980-02-29"
    })
}

/// A Patient without identifiers.
pub fn simple_patient(family: &str) -> Value {
    json!({
        "resourceType": "Patient",
        "name": [{ "family": family, "given": ["Simple"] }]
    })
}

/// A small, plausible resource of each supported type (references are by plain ids).
pub fn minimal(ty: &str) -> Value {
    match ty {
        "Patient" => simple_patient("Minimal"),
        "Practitioner" => json!({"resourceType": "Practitioner", "name": [{"family": "Musterärztin", "given": ["Melanie"]}]}),
        "PractitionerRole" => json!({"resourceType": "PractitionerRole", "active": true, "practitioner": {"reference": "Practitioner/p1"}}),
        "Organization" => json!({"resourceType": "Organization", "active": true, "name": "Ordination Test"}),
        "Location" => json!({"resourceType": "Location", "status": "active", "name": "Raum 1", "position": {"longitude": 16.3725, "latitude": 48.2083}}),
        "HealthcareService" => json!({"resourceType": "HealthcareService", "active": true, "name": "Physiotherapie"}),
        "Schedule" => json!({"resourceType": "Schedule", "active": true, "actor": [{"reference": "Practitioner/p1"}]}),
        "Slot" => json!({"resourceType": "Slot", "schedule": {"reference": "Schedule/s1"}, "status": "free", "start": "2025-09-15T08:00:00+02:00", "end": "2025-09-15T08:30:00+02:00"}),
        "Appointment" => json!({"resourceType": "Appointment", "status": "proposed", "participant": [{"actor": {"reference": "Patient/x"}, "status": "needs-action"}]}),
        "RelatedPerson" => json!({"resourceType": "RelatedPerson", "patient": {"reference": "Patient/x"}, "name": [{"family": "Angehörige"}]}),
        // Nothing listens on port 9 (discard): delivery fails quietly in the background.
        "Subscription" => json!({"resourceType": "Subscription", "status": "requested",
            "topic": "http://localhost/fhir/SubscriptionTopic/appointment-booked",
            "channelType": {"system": "http://terminology.hl7.org/CodeSystem/subscription-channel-type", "code": "rest-hook"},
            "endpoint": "http://127.0.0.1:9/hook"}),
        other => panic!("no fixture for {other}"),
    }
}

// ---------------------------------------------------------------------------------------------
// IG material
// ---------------------------------------------------------------------------------------------

/// The IG pages the tests replay (copies, see `tests/ig_pages/README.md`).
pub fn ig_pages() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ig_pages")
}

/// The repository's FHIR packages (AT Core, AT Scheduling) in package-cache layout, the ones
/// `termin` has built in.
pub fn packages_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../packages")
}

/// `<packages_root>/*/package/` directories, sorted.
pub fn package_dirs() -> Vec<PathBuf> {
    let root = packages_root();
    let rd = std::fs::read_dir(&root).unwrap_or_else(|e| panic!("cannot read {} ({e})", root.display()));
    let mut dirs: Vec<PathBuf> = rd
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("package"))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

/// Every `*.json` file directly in the package directories, parsed: (path, resource).
pub fn package_resources() -> Vec<(PathBuf, Value)> {
    let mut out = Vec::new();
    for dir in package_dirs() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            let v: Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{}: not JSON: {e}", f.display()));
            out.push((f, v));
        }
    }
    out
}

/// Object-key-order-insensitive JSON equality is what `Value == Value` does; this returns the
/// first differing path for readable failure messages.
pub fn first_difference(a: &Value, b: &Value) -> Option<String> {
    fn walk(a: &Value, b: &Value, path: &str) -> Option<String> {
        match (a, b) {
            (Value::Object(x), Value::Object(y)) => {
                for (k, va) in x {
                    match y.get(k) {
                        None => return Some(format!("{path}.{k}: missing on the right (left {va})")),
                        Some(vb) => {
                            if let Some(d) = walk(va, vb, &format!("{path}.{k}")) {
                                return Some(d);
                            }
                        }
                    }
                }
                for (k, vb) in y {
                    if !x.contains_key(k) {
                        return Some(format!("{path}.{k}: missing on the left (right {vb})"));
                    }
                }
                None
            }
            (Value::Array(x), Value::Array(y)) => {
                if x.len() != y.len() {
                    return Some(format!("{path}: array length {} vs {}", x.len(), y.len()));
                }
                x.iter()
                    .zip(y)
                    .enumerate()
                    .find_map(|(i, (va, vb))| walk(va, vb, &format!("{path}[{i}]")))
            }
            _ if a == b => None,
            _ => Some(format!("{path}: {a} vs {b}")),
        }
    }
    walk(a, b, "")
}

pub fn obj(v: &Value) -> &Map<String, Value> {
    v.as_object().unwrap_or_else(|| panic!("not an object: {v}"))
}
