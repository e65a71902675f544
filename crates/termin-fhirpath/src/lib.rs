//! A FHIRPath evaluator that works directly on FHIR JSON (`serde_json::Value`). Of the other
//! Termin crates it uses only `termin-fhir` (its reference parser, for `resolve()`); it must
//! not depend on search, validation, storage or HTTP, which all use it.
//!
//! ```
//! use termin_fhirpath::{evaluate, EvalContext, Expression};
//!
//! let patient = serde_json::json!({
//!     "resourceType": "Patient",
//!     "name": [{"given": ["Anna", "Maria"]}],
//!     "deceasedBoolean": false
//! });
//! let expression = Expression::parse("Patient.name.given.where($this != 'Maria')").unwrap();
//! let result = evaluate(&expression, &EvalContext::new(), &patient).unwrap();
//! assert_eq!(result[0].json(), Some(&serde_json::json!("Anna")));
//! assert_eq!(result[0].location().as_deref(), Some("Patient.name[0].given[0]"));
//! ```
//!
//! # Supported
//! - The full operator grammar with FHIRPath precedence: `.` `[]`, unary `+ -`,
//!   `* / div mod`, `+ - &`, `is as`, `|`, `< > <= >=`, `= ~ != !~`, `in contains`, `and`,
//!   `or xor`, `implies`; three-valued logic; literals (strings with escapes, integers,
//!   decimals kept exact, booleans, `@` dates/date-times/times of any precision, quantities
//!   such as `5 'mg'` or `4 days`, `{}`); backtick identifiers; `$this`, `$index`;
//!   `%resource`, `%rootResource`, `%context`, `%ucum`, `%sct`, `%loinc` and caller constants.
//! - FHIR JSON navigation: a leading type name (`Patient.name`, `Resource.id`) matches the
//!   focus by type; arrays flatten; primitives pair with their `_name` siblings, so
//!   `.extension` works on primitives and a primitive with only an extension is still a node;
//!   choice elements (`Patient.deceased` finds `deceasedBoolean`) are typed by their suffix.
//!   An optional [`TypeModel`] types all other elements.
//! - Functions: existence (`empty exists all allTrue anyTrue allFalse anyFalse count distinct
//!   isDistinct`), filtering (`where select repeat ofType`), subsetting (`first last tail skip
//!   take single`, `[n]`), combining (`union combine intersect exclude`), `iif not hasValue
//!   children descendants trace extension resolve htmlChecks today now`, conversions (`toString
//!   toInteger toDecimal toBoolean toDate toDateTime toTime` and their `convertsTo*`), strings
//!   (`startsWith endsWith contains matches replaceMatches length substring upper lower indexOf
//!   replace split join trim`), and `is`/`as`/`ofType` as functions and operators.
//! - Dates compare with partial-precision semantics (`@2020 < @2020-01` is empty); timezones
//!   are normalised, and a date-time without one is taken to be in the offset of
//!   [`EvalContext::with_now`].
//!
//! # Not supported
//! - Date/time arithmetic (`@2020-01-01 + 1 day`) is an evaluation error. Quantities compare,
//!   add and subtract only when their units are the same (calendar words count as their UCUM
//!   codes, except `year`/`month`); otherwise comparisons are empty.
//! - `aggregate()`/`$total`, `memberOf()` (needs a terminology service: evaluation error),
//!   math functions, `lowBoundary()`/`highBoundary()`, `conformsTo()`, `type()`. Unknown
//!   function names are parse errors, so unsupported expressions are caught when compiled.
//! - `htmlChecks()` returns true for any (single) input: checking narrative XHTML is out of
//!   scope here and left to the validator.
//! - The `Long` type: `integer64` values are read as Integer.
//! - `matches()` uses the `regex` crate, which has no look-around or back-references.
//!
//! # Evaluating
//! Parse an [`Expression`] once and evaluate it with [`evaluate`] on a resource, or with
//! [`evaluate_items`] on nodes from an earlier evaluation (an invariant on each node its element
//! path selects). Results are [`Item`]s that borrow from the input: each exposes its JSON, its
//! FHIR type when known and its location (`Patient.name[0].given[1]`). An [`EvalContext`] adds
//! `%resource`, a [`TypeModel`], a [`ReferenceResolver`], caller constants and the clock.
//!
//! `tests/reference.rs` checks the results against fhirpath.js, the HL7 reference
//! implementation, for all R5 search parameters of the scheduling resources and the profile
//! invariants of the Austrian packages (fixture made by `tools/gen-reference.mjs`).
//!
//! # `resolve()`
//! A `Reference` (its `reference`) or a string/uri value is resolved as follows: `#id` finds
//! the contained resource in `%rootResource`; anything else is handed to the caller's
//! [`ReferenceResolver`]. When that yields nothing (or there is none), a literal reference
//! `[base/]Type/id[/_history/v]` still resolves to a content-less node of type `Type`, so
//! type tests such as `Appointment.participant.actor.where(resolve() is Patient)` work
//! without a database. Such a node has no JSON and no location; references that name no
//! type (`urn:uuid:...`, logical references) resolve to nothing.

mod ast;
mod compare;
mod decimal;
mod error;
mod eval;
mod functions;
mod item;
mod lexer;
mod model;
mod navigation;
mod parser;
mod resolve;
mod temporal;
#[cfg(test)]
mod testing;
mod value;

pub use decimal::Decimal;
pub use error::{EvalError, ParseError};
pub use eval::{EvalContext, Expression, evaluate, evaluate_items};
pub use item::{Item, Node};
pub use model::TypeModel;
pub use resolve::ReferenceResolver;
pub use temporal::{Date, DateTime, Time, TimeZone};
pub use value::{Quantity, SystemValue};
