//! Who asks the domain: the request context the store sees (principal, scopes) and what the
//! scheduling rules know of a caller beyond it — the hold tokens it presents, its network
//! address, and whether patient-facing rules apply to it. Authorization extends this type.

use termin_store::{Principal, RequestContext, ScopeLevel, SlotHold};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    context: RequestContext,
    /// Slot-hold tokens the caller presents to prove it owns holds (from `$hold`).
    hold_tokens: Vec<String>,
    /// The network address the request came from, when known.
    client_address: Option<String>,
}

impl Caller {
    pub fn new(context: RequestContext) -> Self {
        Caller { context, hold_tokens: Vec::new(), client_address: None }
    }

    pub fn anonymous(request_id: impl Into<String>) -> Self {
        Caller::new(RequestContext::anonymous(request_id))
    }

    /// The server itself (background jobs such as hold expiry, demo loading).
    pub fn system(job: impl Into<String>) -> Self {
        Caller::new(RequestContext::system(job))
    }

    pub fn with_hold_tokens(mut self, tokens: impl IntoIterator<Item = String>) -> Self {
        self.hold_tokens.extend(tokens);
        self
    }

    pub fn with_client_address(mut self, address: impl Into<String>) -> Self {
        self.client_address = Some(address.into());
        self
    }

    /// The network address the request came from, when known.
    pub fn client_address(&self) -> Option<&str> {
        self.client_address.as_deref()
    }

    /// What the store is told of the caller.
    pub fn context(&self) -> &RequestContext {
        &self.context
    }

    /// Whether patient-facing rules (e.g. cancellation deadlines) apply to this caller.
    /// Without authorization every outside caller is treated as a patient's client; staff
    /// and internal jobs act as [`Principal::System`]. A token acts for a patient unless it
    /// holds a `user/` or `system/` scope (staff and integrations).
    pub fn acts_for_patient(&self) -> bool {
        match self.context.principal {
            Principal::Anonymous => true,
            Principal::System => false,
            Principal::Token(_) => self.context.scopes.iter().all(|s| s.level == ScopeLevel::Patient),
        }
    }

    /// Whether the caller holds an access token that acts for a patient (only `patient/`
    /// scopes): such a caller does not do staff's work, such as confirming pending bookings.
    pub fn is_patient_token(&self) -> bool {
        matches!(self.context.principal, Principal::Token(_)) && self.acts_for_patient()
    }

    /// The key a caller's live holds are counted under: a token's subject and client; without a
    /// token, its network address (a client asking for a new hold-token with every hold is still
    /// one holder). Without an address (in-process callers) every hold counts as its own holder.
    pub(crate) fn holder_key(&self, token: &str) -> String {
        if let Principal::Token(principal) = &self.context.principal {
            return format!("principal:{}|{}", principal.client_id.as_deref().unwrap_or_default(), principal.subject);
        }
        match &self.client_address {
            Some(address) => format!("address:{address}"),
            None => format!("token:{token}"),
        }
    }

    /// Whether the caller owns the hold: it presents the hold's token, or it presents no token at
    /// all and is the holder that placed the hold (IG clients know nothing of hold tokens): the
    /// principal of its access token, or, without one, its network address — so behind a reverse
    /// proxy, anonymous clients own each other's token-less holds; a caller presenting another
    /// token never does.
    pub(crate) fn owns_hold(&self, hold: &SlotHold) -> bool {
        if self.hold_tokens.is_empty() {
            // A holder known by its principal or address owns its holds without a token (an IG
            // client knows nothing of hold-tokens); without either, nothing identifies it.
            let identified = matches!(self.context.principal, Principal::Token(_)) || self.client_address.is_some();
            identified && hold.holder == self.holder_key(&hold.token)
        } else {
            self.hold_tokens.contains(&hold.token)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use termin_store::{Scope, TokenPrincipal};

    fn token(scopes: &str) -> Caller {
        let principal = TokenPrincipal {
            subject: "u1".into(),
            client_id: None,
            patient: None,
            fhir_user: None,
        };
        Caller::new(RequestContext::anonymous("r").with_token(principal, Scope::parse_all(scopes)))
    }

    #[test]
    fn patient_tokens_act_for_patients_staff_and_system_tokens_do_not() {
        assert!(Caller::anonymous("r").acts_for_patient());
        assert!(!Caller::system("job").acts_for_patient());
        assert!(token("patient/Appointment.cruds patient/Slot.rs").acts_for_patient());
        assert!(!token("user/Appointment.cruds").acts_for_patient());
        assert!(!token("system/*.cruds").acts_for_patient());
        assert!(!token("patient/Slot.rs user/Appointment.r").acts_for_patient());
        assert!(token("patient/Appointment.cruds").is_patient_token());
        assert!(!Caller::anonymous("r").is_patient_token());
        assert!(!token("system/*.cruds").is_patient_token());
    }
}
