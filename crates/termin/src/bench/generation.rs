//! `termin bench --scenario generation`: the background slot generation's pass, timed in this
//! process on a database of its own. It imports `--schedules` PractitionerRoles (Monday to
//! Friday 08:00–13:00, 50 half-hour slots a week) with one Schedule each whose rules keep
//! `--weeks` weeks generated, then runs one pass of the job (lease included) and reports how
//! long generating every Schedule to its horizon took.

use crate::config::Database;
use crate::setup;
use crate::slot_generation::SlotGeneration;
use crate::validation::Packages;
use serde_json::{Map, Value, json};
use std::sync::Arc;
use std::time::Instant;
use termin_domain::{Caller, ServiceConfig};

const SLOT_GENERATION: &str = "https://termin.at/fhir/StructureDefinition/slot-generation";

/// What one timed pass did.
pub struct GenerationRun {
    pub schedules: usize,
    pub slots: usize,
    pub seconds: f64,
}

impl std::fmt::Display for GenerationRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "| scenario | schedules | slots created | seconds | slots/s |")?;
        writeln!(f, "|---|---:|---:|---:|---:|")?;
        let rate = self.slots as f64 / self.seconds.max(f64::EPSILON);
        write!(f, "| slot generation | {} | {} | {:.1} | {rate:.0} |", self.schedules, self.slots, self.seconds)
    }
}

/// Sets up `schedules` Schedules in `database` (which must not hold them yet) and times one
/// pass of the background generation over them.
pub async fn run(database: &Database, schedules: usize, weeks: u32) -> Result<GenerationRun, String> {
    let opened = setup::open_store(database, 1, 4, None).await?;
    let search = setup::install_search_parameters(&[], termin_search::DEFAULT_TIME_ZONE)?;
    let domain = setup::domain(opened.store.clone(), ServiceConfig::default(), search, Packages::Off, &[]).await?;
    let ctx = Caller::system("bench");
    let mut resources = Vec::with_capacity(2 * schedules);
    for index in 0..schedules {
        resources.push(role(index));
        resources.push(schedule(index, weeks));
    }
    for chunk in resources.chunks(2000) {
        let summary = domain
            .resources
            .import(&ctx, chunk.to_vec())
            .await
            .map_err(|e| format!("importing the schedules: {e:?}"))?;
        if summary.existing > 0 {
            return Err(format!("{database} holds bench schedules already: give a new --database"));
        }
    }
    let every = jiff::SignedDuration::from_hours(1);
    let in_flight = crate::slot_generation::in_flight(&opened);
    let job = SlotGeneration::new(Arc::new(domain), opened.leases.clone(), every, in_flight);
    let started = Instant::now();
    let pass = job.pass().await?.ok_or("another process holds the slot-generation lease of this database")?;
    let seconds = started.elapsed().as_secs_f64();
    if pass.failed > 0 {
        return Err(format!("the generation of {} schedules failed (see the log)", pass.failed));
    }
    Ok(GenerationRun { schedules: pass.schedules, slots: pass.created, seconds })
}

fn role(index: usize) -> Map<String, Value> {
    object(json!({
        "resourceType": "PractitionerRole",
        "id": format!("bench-role-{index}"),
        "active": true,
        "availability": [{"availableTime": [{
            "daysOfWeek": ["mon", "tue", "wed", "thu", "fri"],
            "availableStartTime": "08:00:00",
            "availableEndTime": "13:00:00"
        }]}]
    }))
}

fn schedule(index: usize, weeks: u32) -> Map<String, Value> {
    object(json!({
        "resourceType": "Schedule",
        "id": format!("bench-schedule-{index}"),
        "active": true,
        "extension": [{"url": SLOT_GENERATION, "extension": [
            {"url": "slot-duration", "valueDuration": {"value": 30, "system": "http://unitsofmeasure.org", "code": "min"}},
            {"url": "horizon", "valueDuration": {"value": weeks, "system": "http://unitsofmeasure.org", "code": "wk"}}
        ]}],
        "actor": [{"reference": format!("PractitionerRole/bench-role-{index}")}]
    }))
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => unreachable!("built as a JSON object"),
    }
}
