//! Errors reported while compiling or evaluating an expression.

/// The expression text is not valid FHIRPath (or uses a function this crate does not know).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("FHIRPath syntax error at position {position}: {message}")]
pub struct ParseError {
    /// Zero-based character offset into the expression text.
    pub position: usize,
    pub message: String,
}

impl ParseError {
    pub(crate) fn new(position: usize, message: impl Into<String>) -> Self {
        ParseError { position, message: message.into() }
    }
}

/// Evaluation failed; FHIRPath defines these situations as errors rather than empty results.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvalError {
    /// An operator or function needed at most one item but got several.
    #[error("{operation} expects a single item, but the input has {count} items")]
    NotSingleton { operation: String, count: usize },
    /// An operand or input has a type the operation cannot handle.
    #[error("{0}")]
    Type(String),
    /// `%name` is neither built in nor supplied by the caller.
    #[error("unknown environment variable %{0}")]
    UnknownVariable(String),
    /// The function exists in FHIRPath but this evaluator deliberately does not implement it.
    #[error("{0}")]
    Unsupported(String),
}

impl EvalError {
    pub(crate) fn not_singleton(operation: impl Into<String>, count: usize) -> Self {
        EvalError::NotSingleton { operation: operation.into(), count }
    }
}
