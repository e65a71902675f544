//! FHIR R5 XML: resources converted between FHIR JSON (`serde_json::Value`, the form every
//! other crate works with) and the XML format, driven by the R5 StructureDefinitions that
//! validation loads ([`termin_validation::Definitions::layout`]) — no type is written by hand.
//!
//! The R5 XML rules followed:
//! - the root element is the resource type, in the namespace `http://hl7.org/fhir`; a resource
//!   inside another (`contained`, `Bundle.entry.resource`, `Parameters.parameter.resource`) is
//!   the only child of that element;
//! - elements come in the order of their definition (JSON order is free), repeating elements
//!   repeat the XML element, choice elements carry their type in the name (`valueQuantity`);
//! - a primitive's value is its `value` attribute, its id the `id` attribute and its extensions
//!   child elements (JSON's `_name` siblings, aligned by position with `null` in arrays);
//!   element ids and `Extension.url` are attributes (the definitions' `xmlAttr`);
//! - the narrative `div` is XHTML (namespace `http://www.w3.org/1999/xhtml`) kept as XML: its
//!   text is copied verbatim in both directions;
//! - booleans and numbers become JSON booleans and numbers by their FHIR type, and decimals
//!   keep their exact text (`1.50` stays `1.50`, `1E5` stays `1E5`); `integer64` is a JSON string.
//!
//! Reading refuses what the format does not allow, with an OperationOutcome issue: a DTD,
//! unknown attributes, text where none belongs, elements outside the FHIR namespace, a single
//! element repeated, values that are not of their type (`value="yes"` for a boolean), nesting
//! deeper than [`termin_fhir::json::MAX_DEPTH`]. Comments and processing instructions are
//! dropped. An element no definition knows is carried over as JSON would hold it
//! (`<x value="a"/>` → `"x": "a"`), to be judged by validation exactly as the same JSON is.
//!
//! Writing refuses JSON that has no XML form (an unknown property, an object where a
//! primitive belongs, a narrative that is not one XHTML `div`).

mod read;
mod write;

use serde_json::{Map, Value};
use std::path::Path;
use std::sync::OnceLock;
use termin_fhir::Issue;
use termin_validation::{Definitions, LoadError};

/// The FHIR namespace every element but the narrative's XHTML is in.
pub const FHIR_NAMESPACE: &str = "http://hl7.org/fhir";
/// The namespace of the narrative `div`.
pub const XHTML_NAMESPACE: &str = "http://www.w3.org/1999/xhtml";

/// Converts resources between FHIR JSON and XML with the layout of the loaded definitions.
pub struct XmlConverter {
    definitions: Definitions,
}

impl XmlConverter {
    /// A converter over already loaded definitions (the R5 core package must be among them).
    pub fn new(definitions: Definitions) -> Self {
        XmlConverter { definitions }
    }

    /// A converter over the R5 core package in the FHIR package cache `cache`.
    pub fn load(cache: Option<&Path>) -> Result<Self, LoadError> {
        Ok(Self::new(Definitions::load(&[], cache)?))
    }

    /// The resource as FHIR XML; `pretty` indents it. Fails (with the place) for JSON that has
    /// no XML form: unknown elements, values of the wrong shape, a narrative that is not XHTML.
    pub fn to_xml(&self, resource: &Value, pretty: bool) -> Result<String, Issue> {
        write::resource_to_xml(&self.definitions, resource, pretty)
    }

    /// The resource an XML document holds, as FHIR JSON.
    pub fn from_xml(&self, text: &[u8]) -> Result<Map<String, Value>, Issue> {
        read::resource_from_xml(&self.definitions, text)
    }
}

static INSTALLED: OnceLock<XmlConverter> = OnceLock::new();

/// Makes `converter` the process-wide one that [`installed`] returns. Start-up calls this once;
/// a second call hands the converter back.
pub fn install(converter: XmlConverter) -> Result<&'static XmlConverter, Box<XmlConverter>> {
    INSTALLED.set(converter).map_err(Box::new)?;
    Ok(INSTALLED.get().expect("just installed"))
}

/// The process-wide converter; `None` when none was installed (XML is then not offered).
pub fn installed() -> Option<&'static XmlConverter> {
    INSTALLED.get()
}

/// A structural fault at `path` (a FHIRPath location).
pub(crate) fn fault(message: impl Into<String>, path: impl Into<String>) -> Issue {
    Issue::error(termin_fhir::IssueCode::Structure, message).at(path)
}
