//! FHIR R5 building blocks shared by every Termin crate: resource types and ids, JSON
//! parsing, OperationOutcomes, instants, the one reader of references and of Parameters
//! resources, and the geometry of `Location.position` (`geo`: distances, R5's `near` value).
//! It depends on no other Termin crate.
//!
//! Resources stay JSON (`serde_json::Value`, key order and decimal text preserved): the
//! server stores what it received plus the server-managed `meta`, so no typed model can
//! drop or reshape data on the way through.

pub mod geo;
pub mod instant;
pub mod json;
pub mod outcome;
pub mod parameters;
pub mod reference;
pub mod resource;

pub use outcome::{Issue, IssueCode, OperationOutcome, Severity};
pub use parameters::Parameters;
pub use reference::{LiteralReference, parse_literal, reference_id};
pub use resource::{ResourceType, is_valid_id};
