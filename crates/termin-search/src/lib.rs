//! FHIR search, driven by the official R5 SearchParameter definitions
//! (`hl7.fhir.r5.core#5.0.0`): which parameters each served type has, the index rows a resource
//! gets (each parameter's FHIRPath expression evaluated over the resource), and the translation
//! of query parameters into a backend-neutral [`termin_store::SearchRequest`]. No SQL, no HTTP;
//! references are taken apart by `termin-fhir`'s parser.
//!
//! Supported: every R5 parameter of the served types of type token, reference, date, string,
//! uri, number and quantity (plus `_id`, `_lastUpdated`, `_profile`, `_tag`, `_security`,
//! `_source`, `_language`), and the special parameter `near` on Location (position rows, a
//! great-circle area, nearest first without `_sort`; geometry in `termin_fhir::geo`); prefixes with precision-as-range semantics; the modifiers listed by
//! [`SearchParam::modifiers`]; chains and `_has` (within the limits of `query/limits.rs`), `_include`/`_revinclude` (with
//! `:iterate`), `_sort`, `_count`, `_total`, `_summary`, `_elements` and keyset cursors.
//! Not supported: composite and the other special parameters (`contains`, `_text`, `_content`,
//! `_filter`, `_list`, `_query`, `_type`) and `_in` (membership in List/Group/CareTeam, which
//! are not served).
//!
//! Depends on `termin-fhir`, `termin-fhirpath` and the storage port's request types
//! (`termin-store`); must not depend on a store backend, SQL, the domain or HTTP.

mod cursor;
mod definitions;
mod extract;
mod model;
mod query;
mod registry;
mod slot_index;
mod slot_period;
mod temporal;
mod text;
mod windows;

pub use cursor::{decode_cursor, encode_cursor};
pub use definitions::{CORE_PACKAGE, LoadError, ParamType, find_core_package};
pub use extract::{code_index, coding_index, dedup, reference_index};
pub use query::{
    CURSOR_PARAM, Handling, NoteSeverity, ParsedSearch, SearchError, SearchErrorKind, SearchNote, SearchOptions,
    SummaryMode, TotalMode,
};
pub use registry::{DEFAULT_TIME_ZONE, ElementTypes, SearchParam, SearchParameters, default_package_cache, registry};
pub use slot_period::{slot_period, slot_period_param};
pub use temporal::{InstantRange, parse_range};
pub use text::normalize;
pub use windows::token_changes_at;
