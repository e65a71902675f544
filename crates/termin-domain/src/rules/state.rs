//! The slot state machine: what a Slot is at one moment, judged once from its stored status,
//! its booking and its hold. `$hold`, `$book`, the write guard and presentation all ask it.

use super::hold_is_live;
use crate::DomainError;
use crate::unit_of_work::UnitOfWork;
use jiff::Timestamp;
use termin_store::SlotHold;

pub(crate) const FREE: &str = "free";
pub(crate) const HELD: &str = "busy-tentative";
pub(crate) const BOOKED: &str = "busy";

/// A Slot's state at `now`.
#[derive(Debug, Clone)]
pub(crate) struct SlotState {
    stored: Option<String>,
    booking: Option<String>,
    hold: Option<SlotHold>,
    now: Timestamp,
}

impl SlotState {
    /// The state of the Slot `slot_id` with the stored `status`, reading its booking and hold
    /// in the unit of work.
    pub async fn read(tx: &mut UnitOfWork, slot_id: &str, status: Option<&str>, now: Timestamp) -> Result<Self, DomainError> {
        let booking = tx.slot_booking(slot_id).await?;
        let hold = tx.hold(slot_id).await?;
        Ok(SlotState { stored: status.map(str::to_owned), booking, hold, now })
    }

    /// The state as reads show it, where the booking does not matter.
    pub fn shown(status: Option<&str>, hold: Option<&SlotHold>, now: Timestamp) -> Self {
        SlotState { stored: status.map(str::to_owned), booking: None, hold: hold.cloned(), now }
    }

    /// The status as stored.
    pub fn stored(&self) -> Option<&str> {
        self.stored.as_deref()
    }

    /// The Appointment that booked the slot.
    pub fn booking(&self) -> Option<&str> {
        self.booking.as_deref()
    }

    /// The hold recorded for the slot, live or expired.
    pub fn recorded_hold(&self) -> Option<&SlotHold> {
        self.hold.as_ref()
    }

    /// The hold, while it lasts.
    pub fn live_hold(&self) -> Option<&SlotHold> {
        self.hold.as_ref().filter(|h| hold_is_live(h, self.now))
    }

    /// The status the Slot has right now: a stored `busy-tentative` whose hold has expired is free.
    pub fn status(&self) -> &str {
        match self.stored() {
            Some(HELD) if self.live_hold().is_none() => FREE,
            Some(status) => status,
            None => FREE,
        }
    }

    /// Whether reads must show the Slot free although `busy-tentative` is stored (its hold expired).
    pub fn hold_expired_unswept(&self) -> bool {
        self.stored() == Some(HELD) && self.status() == FREE
    }

    /// Whether its status lets it be held or booked (by whoever owns its live hold).
    pub fn is_open(&self) -> bool {
        matches!(self.status(), FREE | HELD)
    }
}
