//! What the evaluator knows about FHIR types: the optional caller-supplied [`TypeModel`] for
//! element types, and the fixed parts of FHIR R5 it needs even without one (data type names
//! for choice-element suffixes and the type hierarchy used by `is`, `as` and `ofType`).

/// Tells the evaluator the FHIR type of ordinary elements, so that nodes reached through them
/// know their type (`Appointment.start` is an `instant`, `Patient.identifier` an `Identifier`).
///
/// Without a model, only resources (by `resourceType`) and choice elements (by the JSON property
/// suffix, e.g. `deceasedBoolean`) are typed; other primitives then behave as the System type of
/// their JSON value (string → `String`, number → `Integer`/`Decimal`, boolean → `Boolean`).
pub trait TypeModel: Send + Sync {
    /// The type of `element` inside a value of type `parent_type`, or `None` when unknown.
    ///
    /// Answers are FHIR type names (`string`, `HumanName`, `Patient`), or `System.*` names where
    /// FHIR uses FHIRPath system types directly (R5 declares `Resource.id` as `System.String`).
    /// Backbone elements have no type name of their own: answer with their element path
    /// (`Patient.contact`); it is passed back as `parent_type` for their children and counts as
    /// `BackboneElement` in type tests. The children of a primitive (`id`, `extension`) are asked
    /// for with `parent_type` `Element`. Choice elements (`value[x]`) need no answer.
    fn child_type(&self, parent_type: &str, element: &str) -> Option<&str>;
}

/// The FHIR type a choice-element property suffix names (`DateTime` → `dateTime`).
pub(crate) fn choice_suffix_type(suffix: &str) -> Option<&'static str> {
    Some(match suffix {
        "Base64Binary" => "base64Binary",
        "Boolean" => "boolean",
        "Canonical" => "canonical",
        "Code" => "code",
        "Date" => "date",
        "DateTime" => "dateTime",
        "Decimal" => "decimal",
        "Id" => "id",
        "Instant" => "instant",
        "Integer" => "integer",
        "Integer64" => "integer64",
        "Markdown" => "markdown",
        "Oid" => "oid",
        "PositiveInt" => "positiveInt",
        "String" => "string",
        "Time" => "time",
        "UnsignedInt" => "unsignedInt",
        "Uri" => "uri",
        "Url" => "url",
        "Uuid" => "uuid",
        "Address" => "Address",
        "Age" => "Age",
        "Annotation" => "Annotation",
        "Attachment" => "Attachment",
        "Availability" => "Availability",
        "CodeableConcept" => "CodeableConcept",
        "CodeableReference" => "CodeableReference",
        "Coding" => "Coding",
        "ContactDetail" => "ContactDetail",
        "ContactPoint" => "ContactPoint",
        "Count" => "Count",
        "DataRequirement" => "DataRequirement",
        "Distance" => "Distance",
        "Dosage" => "Dosage",
        "Duration" => "Duration",
        "Expression" => "Expression",
        "ExtendedContactDetail" => "ExtendedContactDetail",
        "HumanName" => "HumanName",
        "Identifier" => "Identifier",
        "Meta" => "Meta",
        "Money" => "Money",
        "ParameterDefinition" => "ParameterDefinition",
        "Period" => "Period",
        "Quantity" => "Quantity",
        "Range" => "Range",
        "Ratio" => "Ratio",
        "RatioRange" => "RatioRange",
        "Reference" => "Reference",
        "RelatedArtifact" => "RelatedArtifact",
        "SampledData" => "SampledData",
        "Signature" => "Signature",
        "Timing" => "Timing",
        "TriggerDefinition" => "TriggerDefinition",
        "UsageContext" => "UsageContext",
        _ => return None,
    })
}

/// The direct supertype of a FHIR type in R5, or `None` at the top (`Base`) or for unknown
/// lower-case names. Capitalised names that are not data types are taken to be resources.
pub(crate) fn parent_type(name: &str) -> Option<&'static str> {
    if name.contains('.') {
        return Some("BackboneElement");
    }
    Some(match name {
        "Base" => return None,
        "Element" | "Resource" => "Base",
        "DataType" | "BackboneElement" | "xhtml" => "Element",
        "PrimitiveType" | "BackboneType" => "DataType",
        "code" | "id" | "markdown" => "string",
        "canonical" | "oid" | "url" | "uuid" => "uri",
        "positiveInt" | "unsignedInt" => "integer",
        "base64Binary" | "boolean" | "date" | "dateTime" | "decimal" | "instant" | "integer" | "integer64"
        | "string" | "time" | "uri" => "PrimitiveType",
        "Age" | "Count" | "Distance" | "Duration" | "MoneyQuantity" | "SimpleQuantity" => "Quantity",
        "Dosage" | "ElementDefinition" | "MarketingStatus" | "ProductShelfLife" | "Timing" => "BackboneType",
        "Address"
        | "Annotation"
        | "Attachment"
        | "Availability"
        | "CodeableConcept"
        | "CodeableReference"
        | "Coding"
        | "ContactDetail"
        | "ContactPoint"
        | "Contributor"
        | "DataRequirement"
        | "Expression"
        | "ExtendedContactDetail"
        | "Extension"
        | "HumanName"
        | "Identifier"
        | "Meta"
        | "MonetaryComponent"
        | "Money"
        | "Narrative"
        | "ParameterDefinition"
        | "Period"
        | "Quantity"
        | "Range"
        | "Ratio"
        | "RatioRange"
        | "Reference"
        | "RelatedArtifact"
        | "SampledData"
        | "Signature"
        | "TriggerDefinition"
        | "UsageContext"
        | "VirtualServiceDetail" => "DataType",
        "DomainResource" | "Bundle" | "Binary" | "Parameters" => "Resource",
        _ if name.starts_with(|c: char| c.is_ascii_uppercase()) => "DomainResource",
        _ => return None,
    })
}

/// Whether `name` is `ancestor` or one of its subtypes.
pub(crate) fn is_subtype(name: &str, ancestor: &str) -> bool {
    let mut current = Some(name);
    while let Some(type_name) = current {
        if type_name == ancestor {
            return true;
        }
        current = parent_type(type_name);
    }
    false
}

/// The System type a FHIR primitive converts to implicitly (`code` → `String`).
pub(crate) fn system_type_of(fhir_type: &str) -> Option<&'static str> {
    Some(match fhir_type {
        "boolean" => "Boolean",
        "string" | "code" | "id" | "markdown" | "uri" | "url" | "canonical" | "oid" | "uuid" | "base64Binary"
        | "xhtml" => "String",
        "integer" | "positiveInt" | "unsignedInt" | "integer64" => "Integer",
        "decimal" => "Decimal",
        "date" => "Date",
        "dateTime" | "instant" => "DateTime",
        "time" => "Time",
        "Quantity" | "Age" | "Count" | "Distance" | "Duration" | "MoneyQuantity" | "SimpleQuantity" => "Quantity",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hierarchy_covers_resources_primitives_and_backbone_paths() {
        assert!(is_subtype("Patient", "DomainResource"));
        assert!(is_subtype("Patient", "Resource"));
        assert!(is_subtype("Bundle", "Resource"));
        assert!(!is_subtype("Bundle", "DomainResource"));
        assert!(is_subtype("code", "string"));
        assert!(is_subtype("canonical", "uri"));
        assert!(is_subtype("Age", "Quantity"));
        assert!(is_subtype("Patient.contact", "BackboneElement"));
        assert!(is_subtype("HumanName", "Element"));
        assert!(!is_subtype("string", "code"));
        assert!(!is_subtype("unknownThing", "Element"));
    }

    #[test]
    fn choice_suffixes_map_to_type_names() {
        assert_eq!(choice_suffix_type("DateTime"), Some("dateTime"));
        assert_eq!(choice_suffix_type("CodeableConcept"), Some("CodeableConcept"));
        assert_eq!(choice_suffix_type("Set"), None);
    }
}
