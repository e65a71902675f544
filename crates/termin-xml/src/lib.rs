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
//!
//! Depends on `termin-fhir` and, for the element layout, `termin-validation`; must not depend
//! on storage, the domain or HTTP (the API calls it for its `application/fhir+xml` bodies).

mod read;
mod write;

use serde_json::{Map, Value};
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use termin_fhir::Issue;
use termin_validation::{Definitions, LoadError};

/// The FHIR namespace every element but the narrative's XHTML is in.
pub const FHIR_NAMESPACE: &str = "http://hl7.org/fhir";
/// The namespace of the narrative `div`.
pub const XHTML_NAMESPACE: &str = "http://www.w3.org/1999/xhtml";

/// Converts resources between FHIR JSON and XML with the layout of the loaded definitions.
pub struct XmlConverter {
    definitions: Arc<Definitions>,
}

impl XmlConverter {
    /// A converter over already loaded definitions (the R5 core package must be among them),
    /// such as validation's ([`termin_validation::Validator::shared_definitions`]).
    pub fn new(definitions: Arc<Definitions>) -> Self {
        XmlConverter { definitions }
    }

    /// A converter over the R5 core package in the FHIR package cache `cache`.
    pub fn load(cache: Option<&Path>) -> Result<Self, LoadError> {
        Ok(Self::new(Arc::new(Definitions::load(&[], cache)?)))
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

/// A converter loaded when first needed.
type Loader = Box<dyn FnOnce() -> Result<XmlConverter, String> + Send>;

static INSTALLED: OnceLock<Result<XmlConverter, String>> = OnceLock::new();
static LOADER: OnceLock<Mutex<Option<Loader>>> = OnceLock::new();

/// Makes `converter` the process-wide one that [`installed`] returns. Start-up calls this (or
/// [`install_on_first_use`]) once; whether it was installed (not when one already was).
pub fn install(converter: XmlConverter) -> bool {
    INSTALLED.set(Ok(converter)).is_ok()
}

/// Makes the converter `load` returns the process-wide one, loaded by the first call of
/// [`installed`] (which waits for it): a server that is never asked for XML never loads it.
pub fn install_on_first_use(load: impl FnOnce() -> Result<XmlConverter, String> + Send + 'static) {
    let _already_offered = LOADER.set(Mutex::new(Some(Box::new(load))));
}

/// Whether XML is offered: a converter is installed, or will be on first use.
pub fn offered() -> bool {
    INSTALLED.get().is_some_and(Result::is_ok) || LOADER.get().is_some()
}

/// The process-wide converter, loading it if it was installed for first use; why there is
/// none otherwise (none installed, or loading failed).
pub fn installed() -> Result<&'static XmlConverter, &'static str> {
    if INSTALLED.get().is_none() && LOADER.get().is_none() {
        return Err("no FHIR XML converter is installed");
    }
    let result = INSTALLED.get_or_init(|| {
        let load = LOADER.get().and_then(|loader| loader.lock().ok()?.take());
        load.map_or_else(|| Err("no FHIR XML converter is installed".to_owned()), |load| load())
    });
    result.as_ref().map_err(String::as_str)
}

/// A structural fault at `path` (a FHIRPath location).
pub(crate) fn fault(message: impl Into<String>, path: impl Into<String>) -> Issue {
    Issue::error(termin_fhir::IssueCode::Structure, message).at(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn converter() -> &'static XmlConverter {
        static CONVERTER: OnceLock<XmlConverter> = OnceLock::new();
        CONVERTER.get_or_init(|| {
            let cache = termin_search::default_package_cache();
            XmlConverter::load(cache.as_deref()).expect("the R5 core package (scripts/fhir-packages)")
        })
    }

    fn round_trip(json: &Value) -> String {
        let xml = converter().to_xml(json, false).unwrap();
        let back = converter().from_xml(xml.as_bytes()).unwrap();
        assert_eq!(Value::Object(back), *json, "{xml}");
        xml
    }

    #[test]
    fn primitive_arrays_keep_ids_and_extensions_by_position() {
        let patient = json!({"resourceType": "Patient", "name": [{
            "given": ["Anna", null, "Eva"],
            "_given": [null, {"extension": [{"url": "http://x/e", "valueCode": "masked"}]}, {"id": "g3"}]
        }]});
        let xml = round_trip(&patient);
        assert!(
            xml.contains(r#"<given value="Anna"/><given><extension url="http://x/e"><valueCode value="masked"/></extension></given><given id="g3" value="Eva"/>"#),
            "{xml}"
        );
    }

    #[test]
    fn numbers_keep_their_text_and_types_follow_the_definitions() {
        let text = r#"{"resourceType":"Location","position":{"longitude":16.3600,"latitude":4.82E1}}"#;
        let location = termin_fhir::json::parse_stored(text).unwrap();
        let xml = round_trip(&location);
        assert!(xml.contains(r#"<longitude value="16.3600"/><latitude value="4.82E1"/>"#), "{xml}");
        let back = converter().from_xml(xml.as_bytes()).unwrap();
        assert_eq!(Value::Object(back).to_string(), text);
        // integer64 is a JSON string, positiveInt a number, boolean a boolean.
        let read = converter()
            .from_xml(br#"<Parameters xmlns="http://hl7.org/fhir"><parameter><name value="a"/><valueInteger64 value="9007199254740993"/></parameter><parameter><name value="b"/><valuePositiveInt value="7"/></parameter><parameter><name value="c"/><valueBoolean value="false"/></parameter></Parameters>"#)
            .unwrap();
        let parameters = Value::Object(read);
        assert_eq!(parameters["parameter"][0]["valueInteger64"], "9007199254740993");
        assert_eq!(parameters["parameter"][1]["valuePositiveInt"], 7);
        assert_eq!(parameters["parameter"][2]["valueBoolean"], false);
    }

    #[test]
    fn attribute_values_keep_line_breaks_and_markup() {
        let patient = json!({"resourceType": "Patient", "id": "p1",
            "name": [{"text": "line 1\nline 2\r\n\t<b>&\"quoted\"'"}]});
        let xml = round_trip(&patient);
        assert!(xml.contains("line 1&#10;line 2&#13;&#10;&#9;&lt;b&gt;&amp;&quot;quoted&quot;'"), "{xml}");
    }

    #[test]
    fn json_without_an_xml_form_is_refused_with_its_place() {
        let refused = |json: Value| converter().to_xml(&json, false).unwrap_err();
        let issue = refused(json!({"resourceType": "Patient", "colour": "red"}));
        assert_eq!(issue.expression, ["Patient.colour"]);
        let issue = refused(json!({"resourceType": "Patient", "text": {"status": "generated", "div": "<p>no div</p>"}}));
        assert!(issue.diagnostics.contains("not XHTML"), "{issue:?}");
        let issue = refused(json!({"resourceType": "Patient", "gender": {"code": "x"}}));
        assert_eq!(issue.expression, ["Patient.gender"]);
        let issue = refused(json!({"resourceType": "Patient", "deceasedBoolean": true, "deceasedDateTime": "2020"}));
        assert!(issue.diagnostics.contains("more than one type"), "{issue:?}");
        refused(json!({"resourceType": "Flower"}));
    }

    #[test]
    fn a_narrative_that_inherits_the_xhtml_namespace_gets_the_declaration() {
        let xml = br#"<x:Patient xmlns:x="http://hl7.org/fhir" xmlns="http://www.w3.org/1999/xhtml"><x:text><x:status value="generated"/><div><p>Hi</p></div></x:text></x:Patient>"#;
        let patient = Value::Object(converter().from_xml(xml).unwrap());
        assert_eq!(patient["text"]["div"], r#"<div xmlns="http://www.w3.org/1999/xhtml"><p>Hi</p></div>"#);
    }

    #[test]
    fn nesting_is_limited() {
        let mut xml = String::from(r#"<Patient xmlns="http://hl7.org/fhir">"#);
        for _ in 0..200 {
            xml.push_str(r#"<extension url="http://x/e">"#);
        }
        let issue = converter().from_xml(xml.as_bytes()).unwrap_err();
        assert_eq!(issue.code, termin_fhir::IssueCode::TooLong, "{issue:?}");
    }
}
