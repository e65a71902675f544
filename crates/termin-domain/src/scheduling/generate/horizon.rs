//! The background generation's share of the domain: which Schedules have a rolling horizon,
//! and generating one of them from today to its horizon. Taking turns between nodes (the
//! lease) and the period are the caller's.

use super::rules::GenerationRules;
use super::{GenerationRequest, GenerationSummary};
use crate::DomainError;
use crate::caller::Caller;
use crate::model;
use crate::scheduling::SchedulingService;
use jiff::ToSpan;
use termin_fhir::ResourceType;

/// The most Schedules one pass of the background generation looks at; more are left for an
/// operator to notice in the log.
pub const MAX_KEPT_SCHEDULES: usize = 100_000;

/// The Schedules one pass looks at, and whether there were more than [`MAX_KEPT_SCHEDULES`].
#[derive(Debug, Clone, Default)]
pub struct KeptSchedules {
    pub ids: Vec<String>,
    pub truncated: bool,
}

impl SchedulingService {
    /// The ids of all current Schedules; [`SchedulingService::generate_to_horizon`] tells
    /// which of them have a horizon.
    pub async fn schedules_to_keep(&self, ctx: &Caller) -> Result<KeptSchedules, DomainError> {
        let (ids, truncated) = self.kernel.find_ids(ctx, ResourceType::Schedule, Vec::new(), MAX_KEPT_SCHEDULES).await?;
        Ok(KeptSchedules { ids, truncated })
    }

    /// Generates `schedule_id` from today (in its rules' time zone) to its rolling horizon;
    /// `None` when it has no horizon rule (or is gone): such a Schedule is generated on request only.
    pub async fn generate_to_horizon(&self, ctx: &Caller, schedule_id: &str) -> Result<Option<GenerationSummary>, DomainError> {
        let Some(current) = self.kernel.store().read_current(ctx.context(), ResourceType::Schedule, schedule_id).await? else {
            return Ok(None);
        };
        let Some(schedule) = current.body.as_deref().and_then(model::parse_object) else {
            return Ok(None);
        };
        let inactive = schedule.get("active").and_then(serde_json::Value::as_bool) == Some(false);
        if inactive || !GenerationRules::present(&schedule) {
            return Ok(None);
        }
        let rules = GenerationRules::read(&schedule, None)?;
        let Some(days) = rules.horizon_days else {
            return Ok(None);
        };
        let today = rules.zone.to_datetime(self.kernel.clock().now()).date();
        let last = today.checked_add((days - 1).days()).unwrap_or(today);
        let request = GenerationRequest { first: today, last, slot_length: None, dry_run: false };
        self.generate_slots(ctx, schedule_id, &request).await.map(Some)
    }
}
