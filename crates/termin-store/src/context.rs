//! Who is asking: carried by every request through the domain into storage.

use crate::scope::{Permission, Scope, ScopeLevel};
use termin_fhir::ResourceType;

/// The authenticated party behind a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// No authentication configured or presented.
    Anonymous,
    /// The server itself (background jobs such as hold expiry, demo loading).
    System,
    /// The holder of a valid access token.
    Token(Box<TokenPrincipal>),
}

/// Who a valid access token speaks for, from its claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenPrincipal {
    /// `sub`: the user, or the client itself for client-credentials tokens.
    pub subject: String,
    /// `client_id` (or `azp`): the application using the token.
    pub client_id: Option<String>,
    /// `patient`: the launch context patient's id.
    pub patient: Option<String>,
    /// `fhirUser`: a reference to the user's Practitioner, PractitionerRole, Patient or RelatedPerson.
    pub fhir_user: Option<String>,
}

/// The types of the patient compartment Termin serves: a `patient/` scope reaches only the
/// context patient's resources of these types (AuditEvents: the accesses to its data).
/// Subscriptions are Termin's addition (R5 puts them in no compartment): one filtered on a
/// patient carries that patient's endpoint and secrets.
pub const COMPARTMENT_TYPES: [ResourceType; 5] = [
    ResourceType::Patient,
    ResourceType::Appointment,
    ResourceType::RelatedPerson,
    ResourceType::AuditEvent,
    ResourceType::Subscription,
];

/// The types whose resources belong to an Organization: staff (`user/` scopes) change them,
/// and read Appointments and AuditEvents, only for the organisations they work for.
pub const ORGANISATION_TYPES: [ResourceType; 7] = [
    ResourceType::Organization,
    ResourceType::PractitionerRole,
    ResourceType::HealthcareService,
    ResourceType::Schedule,
    ResourceType::Slot,
    ResourceType::Appointment,
    ResourceType::AuditEvent,
];

/// The staff member a token speaks for: its `fhirUser`, a Practitioner or a PractitionerRole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StaffMember<'a> {
    Practitioner(&'a str),
    PractitionerRole(&'a str),
}

/// Whose resources of an organisation type a request may reach with one permission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrganisationReach<'a> {
    /// Every organisation's: no authorization, a `system/` scope, a `patient/` scope, or the server itself.
    All,
    /// Only those of the organisations this staff member works for: only `user/` scopes grant the access.
    StaffOf(StaffMember<'a>),
    /// No organisation's: only `user/` scopes grant the access, but the token's `fhirUser` is
    /// no Practitioner or PractitionerRole.
    None,
}

/// Whose resources of a compartment type a request may reach with one permission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatientReach<'a> {
    /// Every patient's: no authorization, a `user/` or `system/` scope, or the server itself.
    All,
    /// Only this patient's compartment: only `patient/` scopes grant the access.
    Only(&'a str),
    /// No patient's: only `patient/` scopes grant the access, but the token names no patient.
    None,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestContext {
    pub request_id: String,
    pub principal: Principal,
    /// The SMART resource scopes granted to the request (empty while authorization is off).
    pub scopes: Vec<Scope>,
}

impl RequestContext {
    pub fn anonymous(request_id: impl Into<String>) -> Self {
        RequestContext {
            request_id: request_id.into(),
            principal: Principal::Anonymous,
            scopes: Vec::new(),
        }
    }

    pub fn system(job: impl Into<String>) -> Self {
        RequestContext {
            principal: Principal::System,
            ..Self::anonymous(job)
        }
    }

    /// A request carrying a valid token with its scopes.
    pub fn with_token(mut self, principal: TokenPrincipal, scopes: Vec<Scope>) -> Self {
        self.principal = Principal::Token(Box::new(principal));
        self.scopes = scopes;
        self
    }

    /// Whether the request's scopes allow `permission` on `resource`.
    pub fn may(&self, resource: ResourceType, permission: Permission) -> bool {
        self.scopes.iter().any(|s| s.grants(resource, permission))
    }

    /// How far `permission` on `resource` reaches for this request: a grant by a `user/` or
    /// `system/` scope reaches every patient, one by `patient/` scopes alone only the token's
    /// `patient` (SMART: patient-level scopes are bound to the launch context patient).
    pub fn patient_reach(&self, resource: ResourceType, permission: Permission) -> PatientReach<'_> {
        let Principal::Token(principal) = &self.principal else {
            return PatientReach::All;
        };
        let beyond_patients = self
            .scopes
            .iter()
            .any(|s| s.level != ScopeLevel::Patient && s.grants(resource, permission));
        if !COMPARTMENT_TYPES.contains(&resource) || beyond_patients {
            return PatientReach::All;
        }
        match &principal.patient {
            Some(patient) => PatientReach::Only(patient),
            None => PatientReach::None,
        }
    }

    /// How far `permission` on `resource` reaches for this request: a grant by `user/` scopes
    /// (and no `system/` scope) reaches only the organisations of the token's `fhirUser`; a
    /// grant by `patient/` scopes is bounded by the patient compartment instead.
    pub fn organisation_reach(&self, resource: ResourceType, permission: Permission) -> OrganisationReach<'_> {
        let Principal::Token(principal) = &self.principal else {
            return OrganisationReach::All;
        };
        let granted_by = |level: ScopeLevel| self.scopes.iter().any(|s| s.level == level && s.grants(resource, permission));
        if !ORGANISATION_TYPES.contains(&resource) || granted_by(ScopeLevel::System) || !granted_by(ScopeLevel::User) {
            return OrganisationReach::All;
        }
        match principal.staff_member() {
            Some(member) => OrganisationReach::StaffOf(member),
            None => OrganisationReach::None,
        }
    }
}

impl TokenPrincipal {
    /// The staff member `fhirUser` names (`Practitioner/id` or `PractitionerRole/id`, relative
    /// or absolute), if it names one.
    pub fn staff_member(&self) -> Option<StaffMember<'_>> {
        let reference = self.fhir_user.as_deref()?;
        let path = reference.split("/_history/").next().unwrap_or(reference);
        let mut parts = path.rsplit('/');
        let (id, type_name) = (parts.next()?, parts.next()?);
        match type_name {
            "Practitioner" => Some(StaffMember::Practitioner(id)),
            "PractitionerRole" => Some(StaffMember::PractitionerRole(id)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token_for(scopes: &str, patient: Option<&str>, fhir_user: Option<&str>) -> RequestContext {
        let principal = TokenPrincipal {
            subject: "u1".into(),
            client_id: None,
            patient: patient.map(str::to_owned),
            fhir_user: fhir_user.map(str::to_owned),
        };
        RequestContext::anonymous("r").with_token(principal, Scope::parse_all(scopes))
    }

    fn token(scopes: &str) -> RequestContext {
        token_for(scopes, None, None)
    }

    #[test]
    fn patient_scopes_reach_only_the_context_patient() {
        let with_patient = |scopes: &str, patient: Option<&str>| token_for(scopes, patient, None);
        let patient = with_patient("patient/Appointment.cruds patient/Slot.rs user/Patient.r", Some("p1"));
        assert_eq!(patient.patient_reach(ResourceType::Appointment, Permission::Read), PatientReach::Only("p1"));
        assert_eq!(patient.patient_reach(ResourceType::Patient, Permission::Read), PatientReach::All);
        assert_eq!(patient.patient_reach(ResourceType::Patient, Permission::Search), PatientReach::Only("p1"));
        assert_eq!(patient.patient_reach(ResourceType::Slot, Permission::Read), PatientReach::All);
        let no_context = with_patient("patient/*.cruds", None);
        assert_eq!(no_context.patient_reach(ResourceType::RelatedPerson, Permission::Read), PatientReach::None);
        assert_eq!(with_patient("system/*.cruds", Some("p1")).patient_reach(ResourceType::Patient, Permission::Update), PatientReach::All);
        assert_eq!(RequestContext::anonymous("r").patient_reach(ResourceType::Patient, Permission::Read), PatientReach::All);
    }

    #[test]
    fn user_scopes_reach_only_the_organisations_of_the_staff_member() {
        let with = |scopes: &str, fhir_user: Option<&str>| token_for(scopes, None, fhir_user);
        let role = with("user/*.cruds", Some("https://x.test/fhir/PractitionerRole/r1"));
        assert_eq!(role.organisation_reach(ResourceType::Slot, Permission::Update), OrganisationReach::StaffOf(StaffMember::PractitionerRole("r1")));
        assert_eq!(role.organisation_reach(ResourceType::Patient, Permission::Read), OrganisationReach::All);
        let doctor = with("user/Appointment.rs", Some("Practitioner/d1"));
        assert_eq!(doctor.organisation_reach(ResourceType::Appointment, Permission::Search), OrganisationReach::StaffOf(StaffMember::Practitioner("d1")));
        assert_eq!(with("user/*.cruds", Some("Patient/p1")).organisation_reach(ResourceType::Schedule, Permission::Create), OrganisationReach::None);
        assert_eq!(with("user/*.cruds", None).organisation_reach(ResourceType::Appointment, Permission::Read), OrganisationReach::None);
        assert_eq!(with("user/*.cruds system/Slot.u", None).organisation_reach(ResourceType::Slot, Permission::Update), OrganisationReach::All);
        assert_eq!(with("patient/*.cruds", None).organisation_reach(ResourceType::Appointment, Permission::Read), OrganisationReach::All);
        assert_eq!(RequestContext::anonymous("r").organisation_reach(ResourceType::Slot, Permission::Update), OrganisationReach::All);
    }

    #[test]
    fn scopes_decide_what_a_token_may_do() {
        let ctx = token("user/Slot.rs patient/Appointment.c");
        assert!(ctx.may(ResourceType::Slot, Permission::Read));
        assert!(!ctx.may(ResourceType::Slot, Permission::Update));
        assert!(ctx.may(ResourceType::Appointment, Permission::Create));
        assert!(!RequestContext::anonymous("r").may(ResourceType::Slot, Permission::Read));
    }
}
