//! Validation of FHIR R5 resources, driven by StructureDefinition snapshots loaded from FHIR
//! packages — no rule here is written for a particular resource type. References are read with
//! `termin-fhir`'s parser.
//!
//! ```no_run
//! use std::path::{Path, PathBuf};
//! use termin_validation::{Definitions, Validator, default_profiles};
//!
//! let definitions = Definitions::load(
//!     &[PathBuf::from("packages")],
//!     Some(Path::new("/root/.fhir/packages")),
//! )
//! .unwrap();
//! let profiles = default_profiles(&definitions);
//! let (validator, _problems) = Validator::new(definitions, profiles).unwrap();
//! let outcome = validator.validate(&serde_json::json!({"resourceType": "Patient", "gender": "x"}));
//! assert!(outcome.has_errors());
//! ```
//!
//! # What is checked
//! Walking the instance along the snapshot of the enforced profile (or the R5 base
//! definition), with elements the profile leaves alone walked along their type's definition
//! or type profile:
//! - cardinality (`min`/`max`, also of slices), JSON shape (arrays, objects, `_name` siblings),
//!   unknown elements, choice types (`deceasedBoolean` must be an allowed type);
//! - primitive formats ([`primitive`](crate::primitive): dates, date-times and instants with
//!   offsets, ids, codes, URIs, OIDs, UUIDs, base64, integer ranges), `maxLength`;
//! - `fixed[x]` (exact) and `pattern[x]` (subset) values;
//! - bindings: a code outside a required value set is an error, outside an extensible one a
//!   warning; a required binding to a value set in no loaded package is a warning;
//! - extensions: the definition their `url` names, its context, unknown modifier extensions;
//! - slicing by value, pattern, type, profile and exists discriminators, `resolve()` on
//!   references (contained resources; other references by the type in their URL), closed and
//!   ordered slicing; reslices (`a/b`) are not evaluated;
//! - reference targets: a literal reference names a type its target profiles allow;
//! - invariants: every constraint with a FHIRPath expression, evaluated by `termin-fhirpath`
//!   with the instance as focus, `%resource`, `%rootResource` and a type model from the R5
//!   definitions. Only a `false` result fails (an empty one passes); `warning` constraints
//!   yield warnings.
//!
//! The same compiled definitions give format converters the element layout of the base types
//! ([`Definitions::layout`]: element order, cardinality, types, XML attributes).
//!
//! Definitions are indexed at load (URLs only) and compiled on first use;
//! [`Validator::new`] compiles those the enforced profiles reach.
//!
//! Of the Termin crates it depends only on `termin-fhir` and `termin-fhirpath`; it must not
//! depend on storage, search, the domain or HTTP (it judges one resource, not the database).

mod definitions;
mod layout;
mod package;
mod path;
mod primitive;
mod slicing;
mod structure;
mod terminology;
mod validator;
mod walk;

pub use definitions::Definitions;
pub use layout::{ElementLayout, JsonKind, TypeLayout, is_primitive_type, primitive_json_kind};
pub use package::{EmbeddedPackage, LoadError, PackageInfo, R5_CORE};
pub use validator::{
    AT_CORE_BASE, AT_SCHEDULING_BASE, AT_SCHEDULING_LEGACY_BASE, DEFAULT_TIME_LIMIT, Validator, canonical,
    default_profiles,
};
