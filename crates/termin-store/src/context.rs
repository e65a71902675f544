//! Who is asking: carried by every request through the domain into storage.

/// The authenticated party behind a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// No authentication configured or presented.
    Anonymous,
    /// The server itself (background jobs such as hold expiry, demo loading).
    System,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestContext {
    pub request_id: String,
    pub principal: Principal,
    /// SMART scopes granted to the request (empty while authorization is off).
    pub scopes: Vec<String>,
    /// Slot-hold tokens the caller presents to prove it owns holds (from `$hold`).
    pub hold_tokens: Vec<String>,
    /// The network address the request came from, when known.
    pub client_address: Option<String>,
}

impl RequestContext {
    pub fn anonymous(request_id: impl Into<String>) -> Self {
        RequestContext {
            request_id: request_id.into(),
            principal: Principal::Anonymous,
            scopes: Vec::new(),
            hold_tokens: Vec::new(),
            client_address: None,
        }
    }

    pub fn system(job: impl Into<String>) -> Self {
        RequestContext {
            principal: Principal::System,
            ..Self::anonymous(job)
        }
    }

    /// Whether patient-facing rules (e.g. cancellation deadlines) apply to this caller.
    /// Without authorization every outside caller is treated as a patient's client; staff
    /// and internal jobs act as [`Principal::System`].
    pub fn acts_for_patient(&self) -> bool {
        match self.principal {
            Principal::Anonymous => true,
            Principal::System => false,
        }
    }

    pub fn with_client_address(mut self, address: impl Into<String>) -> Self {
        self.client_address = Some(address.into());
        self
    }

    pub fn with_hold_tokens(mut self, tokens: impl IntoIterator<Item = String>) -> Self {
        self.hold_tokens.extend(tokens);
        self
    }
}
