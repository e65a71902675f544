//! The server under test: `termin serve` started from this same executable as a child
//! process, so that its memory can be read from /proc and it stops with the bench.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub struct Server {
    child: Child,
    address: String,
    /// From spawning the process to its listening line: start-up including the store and
    /// the search parameters.
    pub start_up: Duration,
}

/// Resident memory of the server process, now and at its peak.
#[derive(Debug, Clone, Copy)]
pub struct Memory {
    pub rss_kib: u64,
    pub peak_kib: u64,
}

impl Server {
    /// `termin serve` on `database`, with `--validation` set to `validation` (on|off).
    pub async fn start(database: &Path, validation: &str, packages: &[PathBuf]) -> Result<Server, String> {
        let executable = std::env::current_exe().map_err(|e| format!("cannot find the termin executable: {e}"))?;
        let mut command = Command::new(executable);
        command
            .args(["serve", "--bind", "127.0.0.1:0", "--log", "warn"])
            // Every simulated patient connects from this machine's address.
            .args(["--max-holds-per-holder", "0", "--database"])
            .arg(database)
            .env_remove("TERMIN_CONFIG")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        command.args(["--validation", validation]);
        for dir in packages {
            command.arg("--packages").arg(dir);
        }
        let spawned = Instant::now();
        let mut child = command.spawn().map_err(|e| format!("cannot start termin serve: {e}"))?;
        let stdout = child.stdout.take().ok_or("no stdout from termin serve")?;
        let mut lines = BufReader::new(stdout).lines();
        // The server prints this line once it accepts connections (see `serve`).
        while let Some(line) = lines.next_line().await.map_err(|e| e.to_string())? {
            if let Some(address) = line.strip_prefix("termin listening on http://") {
                return Ok(Server {
                    child,
                    address: address.trim().to_owned(),
                    start_up: spawned.elapsed(),
                });
            }
        }
        let status = child.wait().await.map_err(|e| e.to_string())?;
        Err(format!("termin serve exited ({status}) before listening"))
    }

    pub fn base_url(&self) -> String {
        format!("http://{}/fhir", self.address)
    }

    /// Read from /proc (Linux); `None` elsewhere.
    pub fn memory(&self) -> Option<Memory> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()?)).ok()?;
        let field = |name: &str| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        };
        Some(Memory {
            rss_kib: field("VmRSS:")?,
            peak_kib: field("VmHWM:")?,
        })
    }
}
