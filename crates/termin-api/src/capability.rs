//! The CapabilityStatement, generated from the interaction registry and the search registry.

use crate::auth::Authorization;
use crate::format::JSON_PATCH;
use crate::operations::OPERATIONS;
use crate::registry::{Interaction, SystemInteraction};
use serde_json::{Value, json};
use termin_domain::Domain;
use termin_fhir::ResourceType;
use termin_fhir::instant::format_instant;
use termin_search::SearchParameters;

/// The AT Scheduling IG's canonical, as in its package's ImplementationGuide resource.
pub const AT_SCHEDULING_IG: &str =
    "https://fhir.hl7.at/tc/wg/scheduling/r5/ImplementationGuide/hl7.at.fhir.tc.wg.scheduling.r5";

pub fn capability_statement(
    base: &str,
    domain: &Domain,
    auth: Option<&Authorization>,
    platform: Option<&termin_platform::Platform>,
    disabled_operations: &[String],
) -> Value {
    let search = domain.search_parameters();
    let resources: Vec<Value> = ResourceType::ALL
        .iter()
        .map(|t| {
            let operations: Vec<Value> = OPERATIONS
                .iter()
                .filter(|op| op.resources.contains(t) && (domain.validator().is_some() || !op.needs_validator))
                .filter(|op| !disabled_operations.iter().any(|code| code == op.code))
                .map(|op| {
                    // Testers match on the IG's canonical; what Termin adds is in its own definition.
                    json!({
                        "name": op.code,
                        "definition": op.base,
                        "documentation": format!(
                            "{}; as implemented here: {base}/OperationDefinition/{} ({})",
                            op.additions(),
                            op.id,
                            op.url()
                        ),
                    })
                })
                .collect();
            let interactions: Vec<Value> =
                Interaction::served_for(*t).iter().map(|i| json!({"code": i.code()})).collect();
            let writable = *t != ResourceType::AuditEvent;
            let mut resource = json!({
                "type": t.as_str(),
                "interaction": interactions,
                "versioning": "versioned-update",
                "readHistory": true,
                "updateCreate": writable && domain.config().update_create,
                "conditionalCreate": writable,
                "conditionalRead": "full-support",
                "conditionalUpdate": writable,
                "conditionalDelete": if writable { domain.config().conditional_delete.code() } else { "not-supported" },
                "searchParam": search_params(search, *t),
            });
            let includes = search.includes(*t);
            if !includes.is_empty() {
                resource["searchInclude"] = json!(includes);
            }
            let revincludes = search.revincludes(*t);
            if !revincludes.is_empty() {
                resource["searchRevInclude"] = json!(revincludes);
            }
            if let Some(profile) = domain.validator().and_then(|v| v.enforced_profile(*t)) {
                resource["supportedProfile"] = json!([profile]);
            }
            // FHIR JSON has no empty arrays.
            if !operations.is_empty() {
                resource["operation"] = Value::Array(operations);
            }
            resource
        })
        .collect();
    let mut rest = json!({
        "mode": "server",
        "security": security(auth),
        "resource": resources,
        "searchParam": common_search_params(search),
        "interaction": SystemInteraction::ALL
            .iter()
            .map(|i| json!({"code": i.code(), "documentation": i.documentation()}))
            .collect::<Vec<_>>(),
    });
    if let Some(platform) = platform {
        rest["documentation"] = json!(platform_documentation(platform));
    }
    json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": format_instant(jiff::Timestamp::now()),
        "publisher": "Termin",
        "kind": "instance",
        "software": {"name": "Termin", "version": env!("CARGO_PKG_VERSION")},
        "implementation": {"description": "Termin FHIR R5 appointment scheduling server", "url": base},
        "fhirVersion": "5.0.0",
        "format": crate::format::offered_formats(),
        "patchFormat": [JSON_PATCH],
        "implementationGuide": [AT_SCHEDULING_IG],
        "rest": [rest],
    })
}

/// `rest.documentation` of a central scheduling platform: what it aggregates and how ids work.
fn platform_documentation(platform: &termin_platform::Platform) -> String {
    let upstreams: Vec<&str> = platform.upstreams().iter().map(|u| u.name()).collect();
    let aggregated: Vec<&str> = termin_platform::AGGREGATED.iter().map(|t| t.as_str()).collect();
    format!(
        "Central scheduling platform {:?} aggregating the Scheduling Servers {}. Their resources appear as \
         Type/NAME.id (meta.source names the owning server). Searches of {} and $findHSP include every upstream \
         (a failing one is named in a warning of the outcome entry); reads, changes, $hold and $book of an \
         upstream's resources are relayed to it. Requests carry X-Termin-Via; a loop is refused with 508.",
        platform.name(),
        upstreams.join(", "),
        aggregated.join(", "),
    )
}

/// `rest.security`: SMART on FHIR when authorization is configured; otherwise a plain
/// statement that anyone may do anything.
fn security(auth: Option<&Authorization>) -> Value {
    let Some(auth) = auth else {
        return json!({
            "description": "Authorization is OFF: this server accepts every request without a token; every caller may \
                read and change all data. For development and demonstrations only; start it with --auth-issuer \
                and --auth-audience to require SMART on FHIR access tokens.",
        });
    };
    let directory = if auth.public_read {
        "HealthcareService, Schedule, Slot, Practitioner, PractitionerRole, Organization, Location and $findHSP \
         can be read and searched without a token (public directory); everything else"
    } else {
        "Every request for data"
    };
    let booking = if auth.public_booking.is_some() {
        " Anonymous booking is on: $hold and $book work without a token (rate-limited per client address); an \
         Appointment booked so is reached again only with the access-secret $book returns, sent as the \
         X-Access-Secret header (read, update, patch)."
    } else {
        ""
    };
    json!({
        "service": [{
            "coding": [{"system": "http://hl7.org/fhir/restful-security-service", "code": "SMART-on-FHIR"}],
            "text": "OAuth2 using SMART-on-FHIR profile (see http://docs.smarthealthit.org)",
        }],
        "description": format!(
            "SMART on FHIR v2 resource server: tokens issued by {} (see .well-known/smart-configuration). {directory} \
             needs a bearer token whose scopes (patient|user|system/Type.cruds, or the v1 read/write forms) grant the \
             interaction on the type; $hold needs Slot update, $book Appointment create. patient/ scopes reach only \
             the patient compartment of the token's patient claim; user/ scopes (staff) change only the resources of \
             the Organizations their fhirUser (Practitioner or PractitionerRole) works for and read only their \
             Appointments and the AuditEvents about them; system/ scopes are bound by their scopes alone.{booking}",
            auth.authenticator.issuer()
        ),
    })
}

/// Whether a search of `resource_type` takes parameter `code`: every parameter the search
/// registry defines for it, but for AuditEvents those their compact records answer.
fn served(resource_type: ResourceType, code: &str) -> bool {
    resource_type != ResourceType::AuditEvent || termin_store::AUDIT_SEARCH_PARAMS.contains(&code)
}

/// Exactly the parameters the search registry serves for a type, each with its definition
/// and the modifiers Termin supports on it.
fn search_params(search: &SearchParameters, resource_type: ResourceType) -> Vec<Value> {
    search
        .params(resource_type)
        .iter()
        .filter(|param| served(resource_type, &param.code))
        .map(|param| {
            let mut entry = json!({"name": param.code, "definition": param.url, "type": param.kind.code()});
            let modifiers = param.modifiers();
            if !modifiers.is_empty() {
                entry["documentation"] = json!(format!("Supported modifiers: {}", modifiers.join(", ")));
            }
            entry
        })
        .collect()
}

/// `rest.searchParam`: the parameters every served type defines, which a search across all
/// types takes (`GET [base]?...`).
fn common_search_params(search: &SearchParameters) -> Vec<Value> {
    let Some((first, others)) = ResourceType::ALL.split_first() else {
        return Vec::new();
    };
    search_params(search, *first)
        .into_iter()
        .filter(|param| {
            others.iter().all(|t| {
                search
                    .params(*t)
                    .iter()
                    .any(|p| served(*t, &p.code) && param["name"] == p.code && param["type"] == p.kind.code())
            })
        })
        .collect()
}
