//! Wall-clock calendars: FHIR R5 `Availability` (`availableTime`, `notAvailableTime`) expanded
//! into the periods of slots in a time zone, daylight-saving changes and Austrian public
//! holidays included. Both the seed generator and the server's slot generation expand rules
//! here, so demo data and generated slots agree.
//!
//! Owns: reading `Availability` JSON ([`Availability::read`]), the expansion
//! ([`Availability::slots`]), Austria's public holidays ([`public_holidays`]) and time zone
//! text ([`zone`], [`local_text`]), and the identity of a generated slot
//! ([`generated_slot_id`]), so that the seed data and the server's generation agree. Depends on
//! no other Termin crate: it knows JSON, not resources, storage or HTTP.
//!
//! Daylight-saving changes: slots follow local opening hours. A start that the spring change
//! skips (02:30 in Vienna on the last Sunday of March) gives no slot; a start that the autumn
//! change repeats gives one slot, at the earlier instant; every slot lasts its length in real
//! time.

mod availability;
mod holidays;
mod identity;
mod zone;

pub use availability::{Availability, AvailableTime, Closure, SlotPattern};
pub use holidays::public_holidays;
pub use identity::{GENERATED_SLOT_SYSTEM, generated_slot_id, generated_slot_identifier};
pub use zone::{day_code, local_text, vienna, weekday, zone};
