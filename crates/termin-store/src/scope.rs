//! SMART on FHIR scopes: what an access token allows, per resource type and interaction.
//!
//! Version 2 scopes (`patient/Appointment.cruds`, `user/Slot.rs`, `system/*.cruds`) and the
//! version 1 forms (`patient/*.read`, `user/Slot.write`, `system/*.*`) are read into one shape.

use termin_fhir::ResourceType;

/// One of SMART v2's `c r u d s` permissions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    Create,
    Read,
    Update,
    Delete,
    Search,
}

impl Permission {
    /// SMART v2 letters, in the order a scope must list them.
    const LETTERS: [(char, Permission); 5] = [
        ('c', Permission::Create),
        ('r', Permission::Read),
        ('u', Permission::Update),
        ('d', Permission::Delete),
        ('s', Permission::Search),
    ];

    pub fn letter(self) -> char {
        Self::LETTERS.iter().find(|(_, p)| *p == self).map_or('?', |(c, _)| *c)
    }
}

/// Whose data a scope reaches: the context patient's, the user's, or the client's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScopeLevel {
    Patient,
    User,
    System,
}

impl ScopeLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            ScopeLevel::Patient => "patient",
            ScopeLevel::User => "user",
            ScopeLevel::System => "system",
        }
    }
}

/// A resource scope granted by a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub level: ScopeLevel,
    /// `None` for `*` (every type).
    pub resource: Option<ResourceType>,
    permissions: Vec<Permission>,
}

impl Scope {
    /// Reads one scope. Scopes that are not resource scopes (`openid`, `fhirUser`,
    /// `launch/patient`, `offline_access`), name a type this server does not serve, are
    /// malformed, or carry a `?param=value` restriction (not enforced yet, so granting the
    /// unrestricted scope would give too much) grant nothing here: `None`.
    pub fn parse(text: &str) -> Option<Scope> {
        let (level, rest) = text.split_once('/')?;
        let level = match level {
            "patient" => ScopeLevel::Patient,
            "user" => ScopeLevel::User,
            "system" => ScopeLevel::System,
            _ => return None,
        };
        let (resource, access) = rest.split_once('.')?;
        let resource = match resource {
            "*" => None,
            name => Some(name.parse::<ResourceType>().ok()?),
        };
        let permissions = match access {
            "read" => vec![Permission::Read, Permission::Search],
            "write" => vec![Permission::Create, Permission::Update, Permission::Delete],
            "*" => Permission::LETTERS.iter().map(|(_, p)| *p).collect(),
            letters => Self::v2_permissions(letters)?,
        };
        Some(Scope { level, resource, permissions })
    }

    /// `cruds` or a subset of it in that order, each letter once.
    fn v2_permissions(letters: &str) -> Option<Vec<Permission>> {
        let mut remaining = Permission::LETTERS.iter();
        let mut permissions = Vec::new();
        for letter in letters.chars() {
            let (_, permission) = remaining.by_ref().find(|(c, _)| *c == letter)?;
            permissions.push(*permission);
        }
        (!permissions.is_empty()).then_some(permissions)
    }

    /// Reads a space-separated `scope` claim, keeping the resource scopes.
    pub fn parse_all(text: &str) -> Vec<Scope> {
        text.split_ascii_whitespace().filter_map(Scope::parse).collect()
    }

    pub fn grants(&self, resource: ResourceType, permission: Permission) -> bool {
        self.resource.is_none_or(|r| r == resource) && self.permissions.contains(&permission)
    }
}

impl std::fmt::Display for Scope {
    /// The SMART v2 form.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let resource = self.resource.map_or("*", ResourceType::as_str);
        let letters: String = self.permissions.iter().map(|p| p.letter()).collect();
        write!(f, "{}/{resource}.{letters}", self.level.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grants(scope: &str, resource: ResourceType, permission: Permission) -> bool {
        Scope::parse(scope).is_some_and(|s| s.grants(resource, permission))
    }

    #[test]
    fn reads_v2_scopes() {
        let scope = Scope::parse("patient/Appointment.cruds").unwrap();
        assert_eq!(scope.level, ScopeLevel::Patient);
        assert_eq!(scope.to_string(), "patient/Appointment.cruds");
        assert!(grants("user/Slot.rs", ResourceType::Slot, Permission::Search));
        assert!(!grants("user/Slot.rs", ResourceType::Slot, Permission::Update));
        assert!(!grants("user/Slot.rs", ResourceType::Schedule, Permission::Read));
        assert!(grants("system/*.cud", ResourceType::Patient, Permission::Delete));
        assert_eq!(Scope::parse("system/*.cruds").unwrap().to_string(), "system/*.cruds");
    }

    #[test]
    fn maps_v1_scopes_onto_v2() {
        assert_eq!(Scope::parse("patient/*.read").unwrap().to_string(), "patient/*.rs");
        assert_eq!(Scope::parse("user/Slot.write").unwrap().to_string(), "user/Slot.cud");
        assert_eq!(Scope::parse("system/*.*").unwrap().to_string(), "system/*.cruds");
    }

    #[test]
    fn grants_nothing_for_other_or_malformed_scopes() {
        for text in [
            "openid",
            "fhirUser",
            "launch/patient",
            "offline_access",
            "patient/Observation.rs",
            "patient/Appointment.sr",
            "patient/Appointment.rr",
            "patient/Appointment.x",
            "patient/Appointment.",
            "admin/*.cruds",
            "patient/Appointment.rs?category=x",
            "patient/Appointment",
        ] {
            assert_eq!(Scope::parse(text), None, "{text}");
        }
        let scopes = Scope::parse_all("openid fhirUser  patient/Appointment.rs launch/patient user/Slot.write");
        assert_eq!(scopes.iter().map(Scope::to_string).collect::<Vec<_>>(), ["patient/Appointment.rs", "user/Slot.cud"]);
    }
}
