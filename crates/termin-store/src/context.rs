//! Who is asking: carried by every request through the domain into storage.

/// The authenticated party behind a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// No authentication configured or presented.
    Anonymous,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestContext {
    pub request_id: String,
    pub principal: Principal,
    /// SMART scopes granted to the request (empty while authorization is off).
    pub scopes: Vec<String>,
}

impl RequestContext {
    pub fn anonymous(request_id: impl Into<String>) -> Self {
        RequestContext {
            request_id: request_id.into(),
            principal: Principal::Anonymous,
            scopes: Vec::new(),
        }
    }
}
