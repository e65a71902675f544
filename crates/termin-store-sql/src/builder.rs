//! [`Statement`]: the text of one statement and the values bound to its placeholders, built
//! by the shared code and run by a backend. Unlike sqlx's `QueryBuilder`, it keeps the values
//! readable, so a backend can also run the statement on a connection that is not sqlx's (the
//! SQLite reader pool does).

use crate::{Dialect, Value};
use std::fmt::{Display, Write};
use std::marker::PhantomData;

pub struct Statement<D> {
    sql: String,
    values: Vec<Value>,
    dialect: PhantomData<fn() -> D>,
}

impl<D: Dialect> Statement<D> {
    pub fn new(init: impl Into<String>) -> Self {
        Statement { sql: init.into(), values: Vec::new(), dialect: PhantomData }
    }

    /// Appends SQL text (never a value from outside: those are bound).
    pub fn push(&mut self, sql: impl Display) -> &mut Self {
        write!(self.sql, "{sql}").expect("writing to a String cannot fail");
        self
    }

    /// Appends a placeholder bound to `value`.
    pub(crate) fn bind(&mut self, value: Value) -> &mut Self {
        self.values.push(value);
        D::push_placeholder(&mut self.sql, self.values.len());
        self
    }

    pub fn sql(&self) -> &str {
        &self.sql
    }

    /// The statement's text and its bound values, the first value for the first placeholder.
    pub fn into_parts(self) -> (String, Vec<Value>) {
        (self.sql, self.values)
    }
}
