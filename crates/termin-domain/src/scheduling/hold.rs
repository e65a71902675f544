//! `Slot/$hold`: place a hold on a slot (`busy-tentative`) or release it (`free`).

use crate::audit::AuditAction;
use crate::caller::Caller;
use crate::rules::state::{self, SlotState};
use crate::model;
use crate::rules::{record_event, set_slot_status};
use crate::unit_of_work::UnitOfWork;
use super::SchedulingService;
use crate::DomainError;
use serde_json::{Map, Value, json};
use termin_fhir::instant::format_instant;
use termin_fhir::{Issue, IssueCode, OperationOutcome, ResourceType};
use jiff::Timestamp;
use termin_store::{Condition, SlotHold, SystemMatch, TokenMatch};

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


impl SchedulingService {
    /// A new hold of `slot_id` for the caller, within its limit of live holds.
    async fn new_hold(
        &self,
        tx: &mut UnitOfWork,
        ctx: &Caller,
        slot_id: &str,
        now: Timestamp,
    ) -> Result<SlotHold, DomainError> {
        let token = uuid::Uuid::new_v4().to_string();
        let holder = ctx.holder_key(&token);
        let limit = self.kernel.config().max_holds_per_holder;
        if limit > 0 {
            let live = tx.live_holds_of(&holder, now).await?;
            if live.len() >= limit {
                let until = live.iter().map(|h| h.held_until).min().map(format_instant).unwrap_or_default();
                return Err(DomainError::conflict(
                    Issue::error(
                        IssueCode::BusinessRule,
                        format!(
                            "This client holds {} slots already, the most one client may hold at a time; \
                             book or release one (the first hold ends at {until})",
                            live.len()
                        ),
                    )
                    .at("Parameters.parameter.where(name = 'slot-status')"),
                ));
            }
        }
        let held_for = self.kernel.config().hold_duration.min(self.kernel.config().max_hold_time);
        Ok(SlotHold {
            slot_id: slot_id.to_owned(),
            holder,
            token,
            held_until: now.checked_add(held_for).unwrap_or(Timestamp::MAX),
            placed_at: now,
        })
    }

    /// The caller's live hold, renewed by the hold duration but never past the maximum hold
    /// time from when it was first placed: then it ends, and the slot is open to everyone.
    fn renewal(&self, hold: &SlotHold, now: Timestamp) -> SlotHold {
        let last_moment = hold.placed_at.checked_add(self.kernel.config().max_hold_time).unwrap_or(Timestamp::MAX);
        let extended = now.checked_add(self.kernel.config().hold_duration).unwrap_or(Timestamp::MAX);
        SlotHold {
            held_until: extended.min(last_moment),
            ..hold.clone()
        }
    }

    async fn resolve_slot(&self, tx: &mut UnitOfWork, selector: &SlotSelector) -> Result<String, DomainError> {
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
    pub async fn hold_slot(&self, ctx: &Caller, selector: &SlotSelector, hold: bool) -> Result<HoldOutcome, DomainError> {
        let now = self.kernel.clock().now();
        let mut tx = self.kernel.begin(ctx).await?;
        tx.audit_as(AuditAction::Execute, if hold { "$hold" } else { "$release" });
        let slot_id = self.resolve_slot(&mut tx, selector).await?;
        let Some((slot, body)) = tx.read_live(ResourceType::Slot, &slot_id).await? else {
            return Err(DomainError::NotFound(format!("Slot/{slot_id}")));
        };
        // Staff hold and release only their organisations' slots.
        crate::organisation::check_write(&mut tx, ctx.context(), ResourceType::Slot, &slot_id, Some(&body), Some(&body)).await?;
        let slot_state = SlotState::read(&mut tx, &slot_id, model::status(&body), now).await?;
        let live_hold = slot_state.live_hold();
        let held_by_other = live_hold.is_some_and(|h| !ctx.owns_hold(h));
        let rejected = |reason: String| {
            let mut view = body.clone();
            view.insert("status".into(), json!("busy-unavailable"));
            Ok(HoldOutcome::Rejected {
                slot: view,
                outcome: OperationOutcome::single(Issue::error(IssueCode::Conflict, reason)),
            })
        };
        if slot_state.booking().is_some() {
            return rejected(format!("Slot/{slot_id} is already booked"));
        }
        if held_by_other {
            return rejected(format!("Slot/{slot_id} is held by another client"));
        }
        let status = slot_state.status().to_owned();
        if hold {
            if !slot_state.is_open() {
                return rejected(format!("Slot/{slot_id} is {status} and cannot be held"));
            }
            if let Some(schedule_id) = model::schedule_id(&body) {
                let schedule = tx.read_live(ResourceType::Schedule, &schedule_id).await?;
                if !schedule.as_ref().is_some_and(|(_, s)| model::is_active(s)) {
                    return rejected(format!("Slot/{slot_id} belongs to Schedule/{schedule_id}, which is not active"));
                }
            }
            let placed = match live_hold {
                Some(renewed) => self.renewal(renewed, now),
                None => self.new_hold(&mut tx, ctx, &slot_id, now).await?,
            };
            let held_until = placed.held_until;
            let token = placed.token.clone();
            tx.put_hold(&placed).await?;
            let (slot_body, version) = if slot_state.stored() == Some(state::HELD) {
                // No new version: only the moment the status index turns free moves.
                let mut index = tx.search_parameters().index_entries(&body);
                crate::rules::apply_hold_window(&mut tx, &slot_id, &mut index).await?;
                tx.replace_index(ResourceType::Slot, &slot_id, &index).await?;
                (body, slot.version)
            } else {
                (set_slot_status(&mut tx, &slot, body, state::HELD, now).await?, slot.version + 1)
            };
            record_event(
                &mut tx,
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
        if status != state::FREE && live_hold.is_none() {
            return Err(DomainError::conflict(
                Issue::error(IssueCode::Conflict, format!("Slot/{slot_id} is {status}; there is no hold to release"))
                    .at("Parameters.parameter.where(name = 'slot-status')"),
            ));
        }
        if slot_state.recorded_hold().is_some() {
            tx.delete_hold(&slot_id).await?;
        }
        let slot_body = if slot_state.stored() == Some(state::HELD) {
            let released = set_slot_status(&mut tx, &slot, body, state::FREE, now).await?;
            record_event(&mut tx, "slot-released", ResourceType::Slot, &slot_id, slot.version + 1, now, json!({})).await?;
            released
        } else {
            body
        };
        tx.commit().await?;
        Ok(HoldOutcome::Released { slot: slot_body })
    }
}
