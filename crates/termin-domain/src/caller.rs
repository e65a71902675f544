//! Who asks the domain: the request context the store sees (principal, scopes) and what the
//! scheduling rules know of a caller beyond it — the hold tokens it presents, its network
//! address, whether patient-facing rules apply to it, and what an anonymous caller may do
//! under `--public-booking`. Authorization extends this type.

use termin_store::{Principal, RequestContext, ScopeLevel, SlotHold};

/// What an anonymous caller of a server with authorization and `--public-booking` was
/// admitted for (the HTTP layer decides; the rules here follow from it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicBooking {
    /// `$hold` and `$book` without a token: its holds belong to their hold-token alone, and a
    /// booking is issued an access secret.
    Book,
    /// Reading, cancelling or moving the one Appointment (this id) whose access secret it
    /// presented: its patients cannot change and it cannot confirm a pending booking.
    Appointment(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    context: RequestContext,
    /// Slot-hold tokens the caller presents to prove it owns holds (from `$hold`).
    hold_tokens: Vec<String>,
    /// The network address the request came from, when known.
    client_address: Option<String>,
    public_booking: Option<PublicBooking>,
}

impl Caller {
    pub fn new(context: RequestContext) -> Self {
        Caller { context, hold_tokens: Vec::new(), client_address: None, public_booking: None }
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

    /// An anonymous caller admitted under `--public-booking` for `access`.
    pub fn with_public_booking(mut self, access: PublicBooking) -> Self {
        self.public_booking = Some(access);
        self
    }

    /// What the caller was admitted for under `--public-booking`, if it was.
    pub fn public_booking(&self) -> Option<&PublicBooking> {
        self.public_booking.as_ref()
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
    /// token never does. Under `--public-booking` (authorization on) an anonymous caller owns a
    /// hold only by its token: an address is shared by everyone behind one NAT or proxy.
    pub(crate) fn owns_hold(&self, hold: &SlotHold) -> bool {
        if self.hold_tokens.is_empty() {
            // A holder known by its principal or address owns its holds without a token (an IG
            // client knows nothing of hold-tokens); without either, nothing identifies it.
            let identified = matches!(self.context.principal, Principal::Token(_))
                || (self.client_address.is_some() && self.public_booking.is_none());
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

    #[test]
    fn public_bookers_own_holds_by_their_token_only() {
        let hold = SlotHold {
            slot_id: "s".into(),
            token: "t".into(),
            holder: "address:10.0.0.1".into(),
            held_until: jiff::Timestamp::UNIX_EPOCH,
            placed_at: jiff::Timestamp::UNIX_EPOCH,
        };
        let open = Caller::anonymous("r").with_client_address("10.0.0.1");
        assert!(open.owns_hold(&hold), "without authorization the address owns it");
        let public = open.clone().with_public_booking(PublicBooking::Book);
        assert!(!public.owns_hold(&hold));
        assert!(public.with_hold_tokens(["t".to_owned()]).owns_hold(&hold));
    }
}
