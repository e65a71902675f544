//! Precedence-climbing parser for the FHIRPath grammar.
//!
//! Precedence, loosest first: `implies`; `or xor`; `and`; `in contains`; `= ~ != !~`;
//! `< > <= >=`; `|`; `is as`; `+ - &`; `* / div mod`; unary `+ -`; `.` and `[]`.
//! All binary operators are left-associative.

use std::borrow::Cow;

use regex::Regex;

use crate::ast::{BinaryOperator, Call, Expr, Function, TypeOperation, TypeSpecifier};
use crate::decimal::Decimal;
use crate::error::ParseError;
use crate::lexer::{Spanned, Token, tokenize};
use crate::temporal::{Date, DateTime, Time};
use crate::value::{Quantity, SystemValue};

pub(crate) fn parse(source: &str) -> Result<Expr, ParseError> {
    let mut parser = Parser { tokens: tokenize(source)?, next: 0 };
    let expression = parser.expression(0)?;
    match parser.peek() {
        Token::End => Ok(expression),
        token => Err(parser.error(format!("unexpected {}", describe(token)))),
    }
}

/// Binding strength of the binary operator a token starts, if it starts one.
enum Infix {
    Binary(BinaryOperator, u8),
    Type(TypeOperation),
}

const TYPE_PRECEDENCE: u8 = 8;

fn infix(token: &Token) -> Option<Infix> {
    use BinaryOperator::*;
    let (operator, precedence) = match token {
        Token::Identifier(word) => match word.as_str() {
            "implies" => (Implies, 1),
            "or" => (Or, 2),
            "xor" => (Xor, 2),
            "and" => (And, 3),
            "in" => (In, 4),
            "contains" => (Contains, 4),
            "is" => return Some(Infix::Type(TypeOperation::Is)),
            "as" => return Some(Infix::Type(TypeOperation::As)),
            "div" => (Div, 10),
            "mod" => (Mod, 10),
            _ => return None,
        },
        Token::Symbol(symbol) => match *symbol {
            "=" => (Equal, 5),
            "~" => (Equivalent, 5),
            "!=" => (NotEqual, 5),
            "!~" => (NotEquivalent, 5),
            "<" => (Less, 6),
            ">" => (Greater, 6),
            "<=" => (LessOrEqual, 6),
            ">=" => (GreaterOrEqual, 6),
            "|" => (Union, 7),
            "+" => (Add, 9),
            "-" => (Subtract, 9),
            "&" => (Concatenate, 9),
            "*" => (Multiply, 10),
            "/" => (Divide, 10),
            _ => return None,
        },
        _ => return None,
    };
    Some(Infix::Binary(operator, precedence))
}

fn describe(token: &Token) -> String {
    match token {
        Token::End => "end of expression".to_string(),
        Token::Symbol(symbol) => format!("'{symbol}'"),
        Token::Identifier(name) | Token::DelimitedIdentifier(name) => format!("'{name}'"),
        other => format!("{other:?}"),
    }
}

struct Parser {
    tokens: Vec<Spanned>,
    next: usize,
}

impl Parser {
    fn peek(&self) -> &Token {
        &self.tokens[self.next].token
    }

    fn peek_second(&self) -> &Token {
        let index = (self.next + 1).min(self.tokens.len() - 1);
        &self.tokens[index].token
    }

    fn position(&self) -> usize {
        self.tokens[self.next].position
    }

    fn advance(&mut self) -> Token {
        let token = self.tokens[self.next].token.clone();
        if self.next < self.tokens.len() - 1 {
            self.next += 1;
        }
        token
    }

    fn error(&self, message: impl Into<String>) -> ParseError {
        ParseError::new(self.position(), message)
    }

    fn expect_symbol(&mut self, symbol: &'static str) -> Result<(), ParseError> {
        if *self.peek() == Token::Symbol(symbol) {
            self.advance();
            Ok(())
        } else {
            Err(self.error(format!("expected '{symbol}' but found {}", describe(self.peek()))))
        }
    }

    fn expression(&mut self, min_precedence: u8) -> Result<Expr, ParseError> {
        let mut left = self.unary()?;
        loop {
            match infix(self.peek()) {
                Some(Infix::Binary(operator, precedence)) if precedence >= min_precedence => {
                    self.advance();
                    let right = self.expression(precedence + 1)?;
                    left = Expr::Binary(operator, Box::new(left), Box::new(right));
                }
                Some(Infix::Type(operation)) if TYPE_PRECEDENCE >= min_precedence => {
                    self.advance();
                    let type_specifier = self.type_specifier()?;
                    left = Expr::TypeTest { target: Some(Box::new(left)), operation, type_specifier };
                }
                _ => return Ok(left),
            }
        }
    }

    /// Unary `+`/`-` bind looser than invocation: `-a.b` is `-(a.b)`.
    fn unary(&mut self) -> Result<Expr, ParseError> {
        match self.peek() {
            Token::Symbol("+") => {
                self.advance();
                self.unary()
            }
            Token::Symbol("-") => {
                self.advance();
                Ok(match self.unary()? {
                    Expr::Literal(SystemValue::Integer(value)) => Expr::Literal(SystemValue::Integer(-value)),
                    Expr::Literal(SystemValue::Decimal(value)) => Expr::Literal(SystemValue::Decimal(value.negated())),
                    Expr::Literal(SystemValue::Quantity(value)) => {
                        Expr::Literal(SystemValue::Quantity(value.negated()))
                    }
                    operand => Expr::Negate(Box::new(operand)),
                })
            }
            _ => {
                let term = self.term()?;
                self.postfix(term)
            }
        }
    }

    fn postfix(&mut self, mut target: Expr) -> Result<Expr, ParseError> {
        loop {
            match self.peek() {
                Token::Symbol(".") => {
                    self.advance();
                    let position = self.position();
                    let (name, delimited) = match self.advance() {
                        Token::Identifier(name) => (name, false),
                        Token::DelimitedIdentifier(name) => (name, true),
                        token => {
                            return Err(ParseError::new(
                                position,
                                format!("expected a name after '.' but found {}", describe(&token)),
                            ));
                        }
                    };
                    target = if !delimited && *self.peek() == Token::Symbol("(") {
                        self.call(Some(target), &name, position)?
                    } else {
                        Expr::Member(Box::new(target), name)
                    };
                }
                Token::Symbol("[") => {
                    self.advance();
                    let index = self.expression(0)?;
                    self.expect_symbol("]")?;
                    target = Expr::Indexer(Box::new(target), Box::new(index));
                }
                _ => return Ok(target),
            }
        }
    }

    fn term(&mut self) -> Result<Expr, ParseError> {
        let position = self.position();
        match self.advance() {
            Token::Number(text) => self.number(&text, position),
            Token::String(text) => Ok(Expr::Literal(SystemValue::String(Cow::Owned(text)))),
            Token::DateTime(text) => temporal_literal(&text, position),
            Token::Time(text) => Time::parse(&text)
                .map(|time| Expr::Literal(SystemValue::Time(time)))
                .ok_or_else(|| ParseError::new(position, format!("invalid time literal @T{text}"))),
            Token::Variable(name) => Ok(Expr::Variable(name)),
            Token::Special(name) => match name.as_str() {
                "this" => Ok(Expr::This),
                "index" => Ok(Expr::Index),
                "total" => Err(ParseError::new(position, "$total belongs to aggregate(), which is not supported")),
                _ => Err(ParseError::new(position, format!("unknown special variable ${name}"))),
            },
            Token::Symbol("(") => {
                let inner = self.expression(0)?;
                self.expect_symbol(")")?;
                Ok(inner)
            }
            Token::Symbol("{") => {
                self.expect_symbol("}")?;
                Ok(Expr::Empty)
            }
            Token::Identifier(name) => match name.as_str() {
                "true" => Ok(Expr::Literal(SystemValue::Boolean(true))),
                "false" => Ok(Expr::Literal(SystemValue::Boolean(false))),
                _ if *self.peek() == Token::Symbol("(") => self.call(None, &name, position),
                _ => Ok(Expr::Identifier(name)),
            },
            Token::DelimitedIdentifier(name) => Ok(Expr::Identifier(name)),
            token => Err(ParseError::new(position, format!("expected an expression but found {}", describe(&token)))),
        }
    }

    /// A number, or a quantity when a unit (`'mg'`) or calendar keyword (`days`) follows.
    fn number(&mut self, text: &str, position: usize) -> Result<Expr, ParseError> {
        let unit = match (self.peek(), self.peek_second()) {
            (Token::String(unit), _) => Some((unit.clone(), false)),
            (Token::Identifier(word), next) if *next != Token::Symbol("(") => {
                Quantity::calendar(Decimal::from_integer(1), word).map(|_| (word.clone(), true))
            }
            _ => None,
        };
        let decimal =
            || Decimal::parse(text).ok_or_else(|| ParseError::new(position, format!("number {text} is out of range")));
        if let Some((unit, calendar)) = unit {
            self.advance();
            let value = decimal()?;
            let quantity = if calendar {
                Quantity::calendar(value, &unit).expect("calendar keyword was checked above")
            } else {
                Quantity::new(value, unit)
            };
            return Ok(Expr::Literal(SystemValue::Quantity(quantity)));
        }
        if text.contains('.') {
            return Ok(Expr::Literal(SystemValue::Decimal(decimal()?)));
        }
        text.parse()
            .map(|value| Expr::Literal(SystemValue::Integer(value)))
            .map_err(|_| ParseError::new(position, format!("integer {text} is out of range")))
    }

    fn arguments(&mut self) -> Result<Vec<Expr>, ParseError> {
        self.expect_symbol("(")?;
        let mut arguments = Vec::new();
        if *self.peek() == Token::Symbol(")") {
            self.advance();
            return Ok(arguments);
        }
        loop {
            arguments.push(self.expression(0)?);
            match self.advance() {
                Token::Symbol(",") => {}
                Token::Symbol(")") => return Ok(arguments),
                token => {
                    return Err(ParseError::new(
                        self.tokens[self.next - 1].position,
                        format!("expected ',' or ')' but found {}", describe(&token)),
                    ));
                }
            }
        }
    }

    fn call(&mut self, target: Option<Expr>, name: &str, position: usize) -> Result<Expr, ParseError> {
        let type_operation = match name {
            "is" => Some(TypeOperation::Is),
            "as" => Some(TypeOperation::As),
            "ofType" => Some(TypeOperation::OfType),
            _ => None,
        };
        if let Some(operation) = type_operation {
            self.expect_symbol("(")?;
            let type_specifier = self.type_specifier()?;
            self.expect_symbol(")")?;
            return Ok(Expr::TypeTest { target: target.map(Box::new), operation, type_specifier });
        }
        let (function, min, max) =
            Function::lookup(name).ok_or_else(|| ParseError::new(position, format!("unknown function {name}()")))?;
        let arguments = self.arguments()?;
        if arguments.len() < min || arguments.len() > max {
            let expected = if min == max { format!("{min}") } else { format!("{min} to {max}") };
            return Err(ParseError::new(
                position,
                format!("{name}() takes {expected} arguments, not {}", arguments.len()),
            ));
        }
        let literal_regex = match (function, arguments.first()) {
            (Function::Matches | Function::ReplaceMatches, Some(Expr::Literal(SystemValue::String(pattern)))) => {
                Some(compile_regex(pattern).map_err(|message| ParseError::new(position, message))?)
            }
            _ => None,
        };
        Ok(Expr::Call(Box::new(Call { target, function, arguments, literal_regex })))
    }

    fn type_specifier(&mut self) -> Result<TypeSpecifier, ParseError> {
        let position = self.position();
        let first = self.type_name_part(position)?;
        if *self.peek() == Token::Symbol(".") {
            self.advance();
            let name = self.type_name_part(self.position())?;
            return Ok(TypeSpecifier { namespace: Some(first), name });
        }
        Ok(TypeSpecifier { namespace: None, name: first })
    }

    fn type_name_part(&mut self, position: usize) -> Result<String, ParseError> {
        match self.advance() {
            Token::Identifier(name) | Token::DelimitedIdentifier(name) => Ok(name),
            token => Err(ParseError::new(position, format!("expected a type name but found {}", describe(&token)))),
        }
    }
}

fn temporal_literal(text: &str, position: usize) -> Result<Expr, ParseError> {
    let literal = if text.contains('T') {
        DateTime::parse(text).map(SystemValue::DateTime)
    } else {
        Date::parse(text).map(SystemValue::Date)
    };
    literal.map(Expr::Literal).ok_or_else(|| ParseError::new(position, format!("invalid date/time literal @{text}")))
}

/// FHIRPath regular expressions run in single-line mode: `.` also matches newlines.
pub(crate) fn compile_regex(pattern: &str) -> Result<Regex, String> {
    Regex::new(&format!("(?s){pattern}")).map_err(|error| format!("invalid regular expression '{pattern}': {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Renders the tree with explicit parentheses so precedence is visible.
    fn shape(expression: &Expr) -> String {
        match expression {
            Expr::Empty => "{}".into(),
            Expr::Literal(value) => format!("{value}"),
            Expr::This => "$this".into(),
            Expr::Index => "$index".into(),
            Expr::Variable(name) => format!("%{name}"),
            Expr::Identifier(name) => name.clone(),
            Expr::Member(target, name) => format!("{}.{name}", shape(target)),
            Expr::Call(call) => {
                let arguments: Vec<String> = call.arguments.iter().map(shape).collect();
                let target = call.target.as_ref().map(|t| format!("{}.", shape(t))).unwrap_or_default();
                format!("{target}{:?}({})", call.function, arguments.join(", "))
            }
            Expr::TypeTest { target, operation, type_specifier } => {
                let target = target.as_ref().map(|t| shape(t)).unwrap_or_default();
                let namespace = type_specifier.namespace.as_ref().map(|n| format!("{n}.")).unwrap_or_default();
                format!("({target} {operation:?} {namespace}{})", type_specifier.name)
            }
            Expr::Indexer(target, index) => format!("{}[{}]", shape(target), shape(index)),
            Expr::Negate(operand) => format!("-({})", shape(operand)),
            Expr::Binary(operator, left, right) => {
                format!("({} {operator:?} {})", shape(left), shape(right))
            }
        }
    }

    fn parsed(source: &str) -> String {
        shape(&parse(source).unwrap_or_else(|error| panic!("{source}: {error}")))
    }

    #[test]
    fn honours_operator_precedence() {
        assert_eq!(parsed("a or b and c implies d"), "((a Or (b And c)) Implies d)");
        assert_eq!(parsed("a = b | c"), "(a Equal (b Union c))");
        assert_eq!(parsed("a | b is T"), "(a Union (b Is T))");
        assert_eq!(parsed("1 + 2 * 3 - 4"), "((1 Add (2 Multiply 3)) Subtract 4)");
        assert_eq!(parsed("a < b = c > d"), "((a Less b) Equal (c Greater d))");
        assert_eq!(parsed("x in y and z contains w"), "((x In y) And (z Contains w))");
        assert_eq!(parsed("a xor b or c"), "((a Xor b) Or c)");
        assert_eq!(parsed("'a' & 'b' + 'c'"), "((a Concatenate b) Add c)");
        assert_eq!(parsed("7 div 2 mod 3"), "((7 Div 2) Mod 3)");
        assert_eq!(parsed("a implies b implies c"), "((a Implies b) Implies c)");
    }

    #[test]
    fn unary_minus_applies_to_the_whole_path() {
        assert_eq!(parsed("-a.b + 1"), "(-(a.b) Add 1)");
        assert_eq!(parsed("-5.5 * 2"), "(-5.5 Multiply 2)");
    }

    #[test]
    fn parses_invocations_indexers_and_type_operations() {
        assert_eq!(parsed("Patient.name[0].given.first()"), "Patient.name[0].given.First()");
        assert_eq!(parsed("x.where(resolve() is Patient)"), "x.Where((Resolve() Is Patient))");
        assert_eq!(parsed("x.as(FHIR.Period).ofType(`dateTime`)"), "((x As FHIR.Period) OfType dateTime)");
        assert_eq!(parsed("text.`div`.contains('x')"), "text.div.Contains(x)");
        assert_eq!(parsed("contains('x') and x.is(String)"), "(Contains(x) And (x Is String))");
        assert_eq!(parsed("iif(a, {}, $this)"), "Iif(a, {}, $this)");
        assert_eq!(parsed("%resource.id | %`ext-url`"), "(%resource.id Union %ext-url)");
    }

    #[test]
    fn parses_literals() {
        assert_eq!(parsed("4 days"), "4 days");
        assert_eq!(parsed("1 day"), "1 day");
        assert_eq!(parsed("2.50 'mg'"), "2.50 'mg'");
        assert_eq!(parsed("@2026-01-01"), "2026-01-01");
        assert_eq!(parsed("@2026-01-01T10:00:00+01:00"), "2026-01-01T10:00:00+01:00");
        assert_eq!(parsed("@2026T"), "2026");
        assert_eq!(parsed("@T10:00"), "10:00");
        assert_eq!(parsed("'a\\tb'"), "a\tb");
        assert_eq!(parsed("true and false"), "(true And false)");
    }

    #[test]
    fn reports_errors_with_positions() {
        let error = |source: &str| parse(source).unwrap_err();
        assert_eq!(error("a.").position, 2);
        assert_eq!(error("a.frobnicate()").message, "unknown function frobnicate()");
        assert_eq!(error("a.frobnicate()").position, 2);
        assert_eq!(error("a.where()").position, 2);
        assert_eq!(error("(a").position, 2);
        assert_eq!(error("a b").position, 2);
        assert_eq!(error("@2026-13-01").position, 0);
        assert_eq!(error("x is 5").position, 5);
        assert_eq!(error("matches('(')").position, 0);
        assert_eq!(error("99999999999999999999").position, 0);
        assert_eq!(error("a.select($total)").position, 9);
    }
}
