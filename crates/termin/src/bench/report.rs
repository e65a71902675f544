//! Measurements of one scenario and the summary table (Markdown, so it can go into
//! docs/benchmarks.md as printed).

use super::server::Memory;
use std::fmt::Write;
use std::time::Duration;
use termin_seed::Scale;

/// What the clients of one scenario saw.
#[derive(Debug, Default)]
pub struct Tally {
    /// Latency of every completed operation.
    pub latencies: Vec<Duration>,
    pub errors: usize,
    /// Slots someone else held or booked first.
    pub conflicts: usize,
    /// The first few error messages, for the log.
    pub error_samples: Vec<String>,
}

impl Tally {
    pub fn error(&mut self, message: impl ToString) {
        self.errors += 1;
        if self.error_samples.len() < 3 {
            self.error_samples.push(message.to_string());
        }
    }

    pub fn merge(&mut self, other: Tally) {
        self.latencies.extend(other.latencies);
        self.errors += other.errors;
        self.conflicts += other.conflicts;
        for sample in other.error_samples {
            if self.error_samples.len() < 3 {
                self.error_samples.push(sample);
            }
        }
    }
}

/// One line of the summary.
#[derive(Debug)]
pub struct Row {
    pub name: String,
    /// What one operation is (a request, a whole flow, ...).
    pub unit: &'static str,
    pub tally: Tally,
    pub elapsed: Duration,
    pub server_rss: Option<Memory>,
}

impl Row {
    pub fn new(name: impl Into<String>, unit: &'static str, tally: Tally, elapsed: Duration) -> Row {
        for sample in &tally.error_samples {
            eprintln!("  error: {sample}");
        }
        Row {
            name: name.into(),
            unit,
            tally,
            elapsed,
            server_rss: None,
        }
    }

    pub fn throughput(&self) -> f64 {
        self.tally.latencies.len() as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }
}

/// The `q` quantile (0..=1) by the nearest-rank method; zero for no samples.
pub fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn millis(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

pub fn table(rows: &[Row], scale: Option<Scale>, concurrency: usize) -> String {
    let mut out = String::new();
    match scale {
        Some(scale) => {
            let _ = writeln!(out, "scale {scale}, {concurrency} concurrent clients");
        }
        None => {
            let _ = writeln!(out, "{concurrency} concurrent clients");
        }
    }
    let _ = writeln!(
        out,
        "| scenario | operation | ops | ops/s | p50 ms | p95 ms | p99 ms | errors | conflicts | server RSS (peak) MiB |"
    );
    let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for row in rows {
        let mut sorted = row.tally.latencies.clone();
        sorted.sort_unstable();
        let memory = row
            .server_rss
            .map(|m| format!("{} ({})", m.rss_kib / 1024, m.peak_kib / 1024))
            .unwrap_or_else(|| "-".into());
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.0} | {} | {} | {} | {} | {} | {} |",
            row.name,
            row.unit,
            sorted.len(),
            row.throughput(),
            millis(percentile(&sorted, 0.50)),
            millis(percentile(&sorted, 0.95)),
            millis(percentile(&sorted, 0.99)),
            row.tally.errors,
            row.tally.conflicts,
            memory
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let samples: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&samples, 0.50), Duration::from_millis(50));
        assert_eq!(percentile(&samples, 0.99), Duration::from_millis(99));
        assert_eq!(percentile(&samples, 1.0), Duration::from_millis(100));
        assert_eq!(percentile(&samples[..1], 0.95), Duration::from_millis(1));
        assert_eq!(percentile(&[], 0.5), Duration::ZERO);
    }
}
