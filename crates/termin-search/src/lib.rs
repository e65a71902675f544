//! FHIR search: turning query parameters into storage conditions, and resources into the
//! index rows those conditions match.
//!
//! Supported so far: `_id` and `identifier` (token) on every served type, which is what
//! conditional create/update need. OR with commas, AND by repeating a parameter.

mod index;
mod params;

pub use index::index_entries;
pub use params::{ParamError, parse_conditions};

/// The search parameters every served type supports, with their FHIR search type.
/// The CapabilityStatement is generated from this list.
pub const SEARCH_PARAMS: &[(&str, &str)] = &[("_id", "token"), ("identifier", "token")];
