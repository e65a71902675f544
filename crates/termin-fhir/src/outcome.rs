//! OperationOutcome: how every error and warning reaches a client.

use serde_json::{Map, Value, json};

/// Declared most severe first: rendering orders issues by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Fatal,
    Error,
    Warning,
    Information,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Fatal => "fatal",
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Information => "information",
        }
    }
}

/// The subset of the R5 `issue-type` code system Termin emits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssueCode {
    Invalid,
    Structure,
    Required,
    Value,
    Invariant,
    Processing,
    NotSupported,
    Duplicate,
    MultipleMatches,
    NotFound,
    Deleted,
    TooLong,
    CodeInvalid,
    BusinessRule,
    Conflict,
    Exception,
    Informational,
    Success,
    Security,
    /// The request needs (valid) credentials: 401.
    Login,
    /// The credentials do not allow the request: 403.
    Forbidden,
    TooCostly,
    /// Too many requests from one client: 429.
    Throttled,
    Timeout,
}

impl IssueCode {
    pub fn as_str(self) -> &'static str {
        match self {
            IssueCode::Invalid => "invalid",
            IssueCode::Structure => "structure",
            IssueCode::Required => "required",
            IssueCode::Value => "value",
            IssueCode::Invariant => "invariant",
            IssueCode::Processing => "processing",
            IssueCode::NotSupported => "not-supported",
            IssueCode::Duplicate => "duplicate",
            IssueCode::MultipleMatches => "multiple-matches",
            IssueCode::NotFound => "not-found",
            IssueCode::Deleted => "deleted",
            IssueCode::TooLong => "too-long",
            IssueCode::CodeInvalid => "code-invalid",
            IssueCode::BusinessRule => "business-rule",
            IssueCode::Conflict => "conflict",
            IssueCode::Exception => "exception",
            IssueCode::Informational => "informational",
            IssueCode::Success => "success",
            IssueCode::Security => "security",
            IssueCode::Login => "login",
            IssueCode::Forbidden => "forbidden",
            IssueCode::TooCostly => "too-costly",
            IssueCode::Throttled => "throttled",
            IssueCode::Timeout => "timeout",
        }
    }
}

/// One OperationOutcome issue. `expression` holds FHIRPath locations of the fault.
#[derive(Debug, Clone, PartialEq)]
pub struct Issue {
    pub severity: Severity,
    pub code: IssueCode,
    pub diagnostics: String,
    pub expression: Vec<String>,
}

impl Issue {
    pub fn error(code: IssueCode, diagnostics: impl Into<String>) -> Self {
        Issue {
            severity: Severity::Error,
            code,
            diagnostics: diagnostics.into(),
            expression: Vec::new(),
        }
    }

    pub fn warning(code: IssueCode, diagnostics: impl Into<String>) -> Self {
        Issue {
            severity: Severity::Warning,
            ..Issue::error(code, diagnostics)
        }
    }

    pub fn information(diagnostics: impl Into<String>) -> Self {
        Issue {
            severity: Severity::Information,
            ..Issue::error(IssueCode::Informational, diagnostics)
        }
    }

    pub fn at(mut self, expression: impl Into<String>) -> Self {
        self.expression.push(expression.into());
        self
    }

    fn to_json(&self) -> Value {
        let mut issue = Map::new();
        issue.insert("severity".into(), json!(self.severity.as_str()));
        issue.insert("code".into(), json!(self.code.as_str()));
        issue.insert("diagnostics".into(), json!(self.diagnostics));
        if !self.expression.is_empty() {
            issue.insert("expression".into(), json!(self.expression));
        }
        Value::Object(issue)
    }
}

/// An OperationOutcome lists at most this many issues; a client cannot act on more, and a
/// response listing every fault of a huge resource would itself be huge.
pub const MAX_RENDERED_ISSUES: usize = 100;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct OperationOutcome {
    pub issues: Vec<Issue>,
}

impl OperationOutcome {
    pub fn new(issues: Vec<Issue>) -> Self {
        OperationOutcome { issues }
    }

    pub fn single(issue: Issue) -> Self {
        OperationOutcome {
            issues: vec![issue],
        }
    }

    /// An outcome that says all went well (R5 issue type `success`), for
    /// `Prefer: return=OperationOutcome` and the outcomes of operations.
    pub fn success(diagnostics: impl Into<String>) -> Self {
        Self::single(Issue {
            code: IssueCode::Success,
            ..Issue::information(diagnostics)
        })
    }

    pub fn has_errors(&self) -> bool {
        self.issues
            .iter()
            .any(|i| matches!(i.severity, Severity::Error | Severity::Fatal))
    }

    /// The resource; at most [`MAX_RENDERED_ISSUES`] issues, the most severe first, then one
    /// saying how many more there were.
    pub fn to_json(&self) -> Value {
        // FHIR requires at least one issue.
        let issues: Vec<Value> = if self.issues.is_empty() {
            vec![Issue::information("All OK").to_json()]
        } else if self.issues.len() <= MAX_RENDERED_ISSUES {
            self.issues.iter().map(Issue::to_json).collect()
        } else {
            let mut shown: Vec<&Issue> = self.issues.iter().collect();
            shown.sort_by_key(|issue| issue.severity as u8);
            let more = shown.len() - MAX_RENDERED_ISSUES;
            shown.truncate(MAX_RENDERED_ISSUES);
            let mut issues: Vec<Value> = shown.into_iter().map(Issue::to_json).collect();
            issues.push(Issue::information(format!("… and {more} more issues not listed")).to_json());
            issues
        };
        json!({"resourceType": "OperationOutcome", "issue": issues})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_issue_with_expression() {
        let oo = OperationOutcome::single(
            Issue::error(IssueCode::Value, "id does not match the URL").at("Patient.id"),
        );
        let v = oo.to_json();
        assert_eq!(v["resourceType"], "OperationOutcome");
        assert_eq!(v["issue"][0]["severity"], "error");
        assert_eq!(v["issue"][0]["code"], "value");
        assert_eq!(v["issue"][0]["expression"][0], "Patient.id");
        assert!(oo.has_errors());
    }

    #[test]
    fn lists_at_most_the_limit_errors_first() {
        let mut issues = vec![Issue::warning(IssueCode::Value, "w"); 150];
        issues.push(Issue::error(IssueCode::Value, "e"));
        let v = OperationOutcome::new(issues).to_json();
        let rendered = v["issue"].as_array().unwrap();
        assert_eq!(rendered.len(), MAX_RENDERED_ISSUES + 1);
        assert_eq!(rendered[0]["severity"], "error");
        assert_eq!(rendered[MAX_RENDERED_ISSUES]["diagnostics"], "… and 51 more issues not listed");
    }

    #[test]
    fn empty_outcome_still_has_an_issue() {
        let v = OperationOutcome::default().to_json();
        assert_eq!(v["issue"][0]["severity"], "information");
    }
}
