//! FHIR R5 building blocks shared by every Termin crate.
//!
//! Resources stay JSON (`serde_json::Value`, key order and decimal text preserved): the
//! server stores what it received plus the server-managed `meta`, so no typed model can
//! drop or reshape data on the way through.

pub mod instant;
pub mod json;
pub mod outcome;
pub mod resource;

pub use outcome::{Issue, IssueCode, OperationOutcome, Severity};
pub use resource::{ResourceType, is_valid_id};
