//! Persisting the release of expired holds. Reads already treat an expired hold as free;
//! the sweeper makes the stored Slot agree and records the event.

use crate::caller::Caller;
use crate::rules::state;
use crate::model;
use crate::rules::{hold_is_live, record_event, set_slot_status};
use super::SchedulingService;
use crate::DomainError;
use serde_json::json;
use termin_fhir::ResourceType;
use termin_fhir::instant::format_instant;

impl SchedulingService {
    /// Releases up to `limit` expired holds; returns how many it released.
    pub async fn release_expired_holds(&self, limit: usize) -> Result<usize, DomainError> {
        let ctx = Caller::system("hold-expiry");
        let now = self.kernel.clock().now();
        let expired = self.kernel.store().expired_holds(now, limit).await?;
        let mut released = 0;
        for candidate in expired {
            let mut tx = self.kernel.begin(&ctx).await?;
            // Re-check inside the unit of work: the holder may have renewed or booked meanwhile.
            let Some(hold) = tx.hold(&candidate.slot_id).await? else {
                continue;
            };
            if hold_is_live(&hold, now) {
                continue;
            }
            tx.delete_hold(&hold.slot_id).await?;
            if let Some((slot, body)) = tx.read_live(ResourceType::Slot, &hold.slot_id).await?
                && model::status(&body) == Some(state::HELD)
                && tx.slot_booking(&hold.slot_id).await?.is_none()
            {
                let version = slot.version + 1;
                set_slot_status(&mut tx, &slot, body, state::FREE, now).await?;
                record_event(
                    &mut tx,
                    "slot-hold-expired",
                    ResourceType::Slot,
                    &hold.slot_id,
                    version,
                    now,
                    json!({"heldUntil": format_instant(hold.held_until)}),
                )
                .await?;
            }
            tx.commit().await?;
            released += 1;
        }
        Ok(released)
    }
}
