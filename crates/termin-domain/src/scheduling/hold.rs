//! `Slot/$hold`: place a hold on a slot (`busy-tentative`) or release it (`free`).

use super::{effective_status, hold_is_live, model, owns_hold, read_live, record_event, set_slot_status};
use crate::{DomainError, ResourceService};
use serde_json::{Map, Value, json};
use termin_fhir::instant::format_instant;
use termin_fhir::{Issue, IssueCode, OperationOutcome, ResourceType};
use termin_store::{Condition, RequestContext, SlotHold, SystemMatch, TokenMatch};

/// How the caller names the slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotSelector {
    Id(String),
    /// `(system, value)` pairs that together must identify exactly one Slot.
    Identifiers(Vec<(Option<String>, String)>),
}

#[derive(Debug, Clone)]
pub enum HoldOutcome {
    Held {
        slot: Map<String, Value>,
        held_until: jiff::Timestamp,
        token: String,
    },
    Released {
        slot: Map<String, Value>,
    },
    /// Someone else booked or holds the slot; `slot` is the caller's view (`busy-unavailable`).
    Rejected {
        slot: Map<String, Value>,
        outcome: OperationOutcome,
    },
}

impl ResourceService {
    async fn resolve_slot(&self, tx: &mut dyn termin_store::WriteTx, selector: &SlotSelector) -> Result<String, DomainError> {
        match selector {
            SlotSelector::Id(id) => Ok(id.clone()),
            SlotSelector::Identifiers(identifiers) => {
                let conditions: Vec<Condition> = identifiers
                    .iter()
                    .map(|(system, value)| Condition::TokenAny {
                        param: "identifier".into(),
                        alternatives: vec![TokenMatch {
                            system: system.clone().map_or(SystemMatch::Any, SystemMatch::Exactly),
                            code: Some(value.clone()),
                        }],
                    })
                    .collect();
                let ids = tx.find_ids(ResourceType::Slot, &conditions, 2).await?;
                match ids.as_slice() {
                    [id] => Ok(id.clone()),
                    [] => Err(DomainError::NotFound("A Slot with the given slot-identifier".into())),
                    _ => Err(DomainError::unprocessable(
                        Issue::error(
                            IssueCode::MultipleMatches,
                            "The slot-identifier values match more than one Slot; give identifiers that name exactly one",
                        )
                        .at("Parameters.parameter.where(name = 'slot-identifier')"),
                    )),
                }
            }
        }
    }

    /// Places a hold (`hold = true`) or releases one the caller owns.
    pub async fn hold_slot(&self, ctx: &RequestContext, selector: &SlotSelector, hold: bool) -> Result<HoldOutcome, DomainError> {
        let now = self.clock().now();
        let mut tx = self.store().begin_write(ctx).await?;
        let slot_id = self.resolve_slot(&mut *tx, selector).await?;
        let Some((slot, body)) = read_live(&mut *tx, ResourceType::Slot, &slot_id).await? else {
            return Err(DomainError::NotFound(format!("Slot/{slot_id}")));
        };
        let booked = tx.slot_booking(&slot_id).await?.is_some();
        let existing = tx.hold(&slot_id).await?;
        let live_hold = existing.as_ref().filter(|h| hold_is_live(h, now));
        let held_by_other = live_hold.is_some_and(|h| !owns_hold(ctx, h));
        let rejected = |reason: String| {
            let mut view = body.clone();
            view.insert("status".into(), json!("busy-unavailable"));
            Ok(HoldOutcome::Rejected {
                slot: view,
                outcome: OperationOutcome::single(Issue::error(IssueCode::Conflict, reason)),
            })
        };
        if booked {
            return rejected(format!("Slot/{slot_id} is already booked"));
        }
        if held_by_other {
            return rejected(format!("Slot/{slot_id} is held by another client"));
        }
        let status = effective_status(&body, existing.as_ref(), now).to_owned();
        if hold {
            if !matches!(status.as_str(), "free" | "busy-tentative") {
                return rejected(format!("Slot/{slot_id} is {status} and cannot be held"));
            }
            if let Some(schedule_id) = model::schedule_id(&body) {
                let schedule = read_live(&mut *tx, ResourceType::Schedule, &schedule_id).await?;
                if !schedule.as_ref().is_some_and(|(_, s)| model::is_active(s)) {
                    return rejected(format!("Slot/{slot_id} belongs to Schedule/{schedule_id}, which is not active"));
                }
            }
            let token = live_hold.map_or_else(|| uuid::Uuid::new_v4().to_string(), |h| h.token.clone());
            let held_until = now + self.config().hold_duration;
            tx.put_hold(&SlotHold {
                slot_id: slot_id.clone(),
                holder: token.clone(),
                token: token.clone(),
                held_until,
            })
            .await?;
            let (slot_body, version) = if model::status(&body) == Some("busy-tentative") {
                // No new version: only the moment the status index turns free moves.
                let mut index = termin_search::index_entries(&body);
                super::apply_hold_window(&mut *tx, &slot_id, &mut index).await?;
                tx.replace_index(ResourceType::Slot, &slot_id, &index).await?;
                (body, slot.version)
            } else {
                (set_slot_status(&mut *tx, &slot, body, "busy-tentative", now).await?, slot.version + 1)
            };
            record_event(
                &mut *tx,
                "slot-held",
                ResourceType::Slot,
                &slot_id,
                version,
                now,
                json!({"heldUntil": format_instant(held_until)}),
            )
            .await?;
            tx.commit().await?;
            return Ok(HoldOutcome::Held {
                slot: slot_body,
                held_until,
                token,
            });
        }
        // Release: the owner's live hold, or a slot that is free already (nothing to do).
        if status != "free" && live_hold.is_none() {
            return Err(DomainError::conflict(
                Issue::error(IssueCode::Conflict, format!("Slot/{slot_id} is {status}; there is no hold to release"))
                    .at("Parameters.parameter.where(name = 'slot-status')"),
            ));
        }
        if existing.is_some() {
            tx.delete_hold(&slot_id).await?;
        }
        let slot_body = if model::status(&body) == Some("busy-tentative") {
            let released = set_slot_status(&mut *tx, &slot, body, "free", now).await?;
            record_event(&mut *tx, "slot-released", ResourceType::Slot, &slot_id, slot.version + 1, now, json!({})).await?;
            released
        } else {
            body
        };
        tx.commit().await?;
        Ok(HoldOutcome::Released { slot: slot_body })
    }
}
