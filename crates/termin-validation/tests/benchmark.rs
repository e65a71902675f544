//! Throughput of validating the AT Scheduling example Appointment against its profile, and
//! what start-up costs (indexing the packages, compiling what the AT profiles reach).
//! Run it in release mode; it prints both and asserts nothing about speed:
//!
//! ```sh
//! cargo test --release -p termin-validation --test benchmark -- --ignored --nocapture
//! ```

mod support;

use std::time::Instant;
use support::*;

#[test]
#[ignore = "a benchmark: run explicitly in release mode"]
fn appointment_validations_per_second() {
    let loading = Instant::now();
    let validator = at_validator();
    println!(
        "loaded the R5 core and AT packages and compiled the enforced profiles in {} ms",
        loading.elapsed().as_millis()
    );
    let (_, appointment) = at_examples()
        .into_iter()
        .find(|(name, _)| name.ends_with("Appointment-HL7ATSchedulingAppointmentExample01.json"))
        .expect("the AT Scheduling example Appointment");
    assert!(errors(&validator.validate(&appointment)).is_empty());
    let rounds = 20_000;
    let cpu_before = thread_cpu_seconds();
    let started = Instant::now();
    for _ in 0..rounds {
        std::hint::black_box(validator.validate(std::hint::black_box(&appointment)));
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "validated the AT example Appointment {rounds} times in {elapsed:.3} s on one thread: {:.0} validations/s",
        f64::from(rounds) / elapsed
    );
    // On a shared machine the thread does not have its core to itself; its CPU time gives
    // the rate per core.
    if let (Some(before), Some(after)) = (cpu_before, thread_cpu_seconds()) {
        println!(
            "{:.3} s of CPU time: {:.0} validations per CPU-second",
            after - before,
            f64::from(rounds) / (after - before)
        );
    }
}

/// CPU time of the current thread (Linux: the first field of /proc/thread-self/schedstat,
/// in nanoseconds).
fn thread_cpu_seconds() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let nanos: f64 = text.split_whitespace().next()?.parse().ok()?;
    Some(nanos / 1e9)
}
