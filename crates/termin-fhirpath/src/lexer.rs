//! Splits expression text into tokens. Positions are character offsets.

use crate::error::ParseError;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Token {
    /// A plain identifier; keywords (`and`, `div`, `true`, ...) are plain identifiers too and
    /// are told apart by the parser from their position.
    Identifier(String),
    /// A `backtick-delimited` identifier, never a keyword.
    DelimitedIdentifier(String),
    String(String),
    /// Number text, kept so decimals keep their exact digits.
    Number(String),
    /// Text after `@` of a date or date-time literal.
    DateTime(String),
    /// Text after `@T` of a time literal.
    Time(String),
    /// `%name`
    Variable(String),
    /// `$this`, `$index`, `$total` without the `$`.
    Special(String),
    Symbol(&'static str),
    End,
}

#[derive(Debug, Clone)]
pub(crate) struct Spanned {
    pub token: Token,
    pub position: usize,
}

const SYMBOLS: [&str; 22] =
    ["!=", "!~", "<=", ">=", ".", "(", ")", "[", "]", "{", "}", ",", "+", "-", "*", "/", "&", "|", "=", "~", "<", ">"];

pub(crate) fn tokenize(source: &str) -> Result<Vec<Spanned>, ParseError> {
    let mut lexer = Lexer { chars: source.chars().collect(), position: 0 };
    let mut tokens = Vec::new();
    loop {
        lexer.skip_whitespace_and_comments()?;
        let position = lexer.position;
        let token = lexer.next_token()?;
        let done = token == Token::End;
        tokens.push(Spanned { token, position });
        if done {
            return Ok(tokens);
        }
    }
}

struct Lexer {
    chars: Vec<char>,
    position: usize,
}

impl Lexer {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.position).copied()
    }

    fn peek_at(&self, offset: usize) -> Option<char> {
        self.chars.get(self.position + offset).copied()
    }

    fn take_while(&mut self, accept: impl Fn(char) -> bool) -> String {
        let start = self.position;
        while self.peek().is_some_and(&accept) {
            self.position += 1;
        }
        self.chars[start..self.position].iter().collect()
    }

    fn skip_whitespace_and_comments(&mut self) -> Result<(), ParseError> {
        loop {
            match (self.peek(), self.peek_at(1)) {
                (Some(c), _) if c.is_whitespace() => self.position += 1,
                (Some('/'), Some('/')) => {
                    self.take_while(|c| c != '\n');
                }
                (Some('/'), Some('*')) => {
                    let start = self.position;
                    self.position += 2;
                    loop {
                        match (self.peek(), self.peek_at(1)) {
                            (Some('*'), Some('/')) => {
                                self.position += 2;
                                break;
                            }
                            (Some(_), _) => self.position += 1,
                            (None, _) => {
                                return Err(ParseError::new(start, "unterminated comment"));
                            }
                        }
                    }
                }
                _ => return Ok(()),
            }
        }
    }

    fn next_token(&mut self) -> Result<Token, ParseError> {
        let start = self.position;
        let Some(c) = self.peek() else {
            return Ok(Token::End);
        };
        if c.is_ascii_alphabetic() || c == '_' {
            return Ok(Token::Identifier(self.identifier()));
        }
        if c.is_ascii_digit() {
            return Ok(Token::Number(self.number()));
        }
        match c {
            '`' => {
                self.position += 1;
                Ok(Token::DelimitedIdentifier(self.quoted('`', start)?))
            }
            '\'' => {
                self.position += 1;
                Ok(Token::String(self.quoted('\'', start)?))
            }
            '@' => {
                self.position += 1;
                self.temporal(start)
            }
            '%' => {
                self.position += 1;
                let name = match self.peek() {
                    Some('`') => {
                        self.position += 1;
                        self.quoted('`', start)?
                    }
                    Some('\'') => {
                        self.position += 1;
                        self.quoted('\'', start)?
                    }
                    Some(c) if c.is_ascii_alphabetic() || c == '_' => self.identifier(),
                    _ => return Err(ParseError::new(start, "expected a variable name after %")),
                };
                Ok(Token::Variable(name))
            }
            '$' => {
                self.position += 1;
                let name = self.identifier();
                if name.is_empty() {
                    return Err(ParseError::new(start, "expected $this, $index or $total"));
                }
                Ok(Token::Special(name))
            }
            _ => {
                for symbol in SYMBOLS {
                    let matches =
                        symbol.chars().enumerate().all(|(offset, expected)| self.peek_at(offset) == Some(expected));
                    if matches {
                        self.position += symbol.chars().count();
                        return Ok(Token::Symbol(symbol));
                    }
                }
                Err(ParseError::new(start, format!("unexpected character '{c}'")))
            }
        }
    }

    fn identifier(&mut self) -> String {
        self.take_while(|c| c.is_ascii_alphanumeric() || c == '_')
    }

    /// Digits with an optional fraction; a dot not followed by a digit is left for invocation.
    fn number(&mut self) -> String {
        let mut text = self.take_while(|c| c.is_ascii_digit());
        if self.peek() == Some('.') && self.peek_at(1).is_some_and(|c| c.is_ascii_digit()) {
            self.position += 1;
            text.push('.');
            text.push_str(&self.take_while(|c| c.is_ascii_digit()));
        }
        text
    }

    /// The body of a quoted string or delimited identifier, with escapes resolved; the
    /// opening quote has been consumed.
    fn quoted(&mut self, quote: char, start: usize) -> Result<String, ParseError> {
        let mut text = String::new();
        loop {
            let Some(c) = self.peek() else {
                return Err(ParseError::new(start, "unterminated string or identifier"));
            };
            self.position += 1;
            if c == quote {
                return Ok(text);
            }
            if c != '\\' {
                text.push(c);
                continue;
            }
            let escape_position = self.position - 1;
            let escaped =
                self.peek().ok_or_else(|| ParseError::new(escape_position, "unterminated escape sequence"))?;
            self.position += 1;
            text.push(match escaped {
                '\'' | '"' | '`' | '\\' | '/' => escaped,
                'f' => '\u{000C}',
                'n' => '\n',
                'r' => '\r',
                't' => '\t',
                'u' => self.unicode_escape(escape_position)?,
                other => {
                    return Err(ParseError::new(escape_position, format!("unknown escape sequence \\{other}")));
                }
            });
        }
    }

    fn unicode_escape(&mut self, escape_position: usize) -> Result<char, ParseError> {
        let digits: String = (0..4).filter_map(|offset| self.peek_at(offset)).collect();
        let code = (digits.len() == 4)
            .then(|| u32::from_str_radix(&digits, 16).ok())
            .flatten()
            .and_then(char::from_u32)
            .ok_or_else(|| ParseError::new(escape_position, "invalid \\u escape"))?;
        self.position += 4;
        Ok(code)
    }

    /// `@2020-01-02T10:00:00+01:00` or `@T10:00`; validated by the parser.
    fn temporal(&mut self, start: usize) -> Result<Token, ParseError> {
        let time_chars = |c: char| c.is_ascii_digit() || c == ':' || c == '.';
        if self.peek() == Some('T') {
            self.position += 1;
            return Ok(Token::Time(self.take_while(time_chars)));
        }
        let mut text = self.take_while(|c| c.is_ascii_digit() || c == '-');
        if text.is_empty() {
            return Err(ParseError::new(start, "expected a date or time after @"));
        }
        if self.peek() == Some('T') {
            self.position += 1;
            text.push('T');
            text.push_str(&self.take_while(time_chars));
            match self.peek() {
                Some('Z') => {
                    self.position += 1;
                    text.push('Z');
                }
                Some(sign @ ('+' | '-')) if self.peek_at(1).is_some_and(|c| c.is_ascii_digit()) => {
                    self.position += 1;
                    text.push(sign);
                    text.push_str(&self.take_while(|c| c.is_ascii_digit() || c == ':'));
                }
                _ => {}
            }
        }
        Ok(Token::DateTime(text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(source: &str) -> Vec<Token> {
        tokenize(source).unwrap().into_iter().map(|spanned| spanned.token).collect()
    }

    #[test]
    fn splits_operators_literals_and_identifiers() {
        assert_eq!(
            tokens("a.`b c` != 'x\\'y' // note\n and 1.5"),
            vec![
                Token::Identifier("a".into()),
                Token::Symbol("."),
                Token::DelimitedIdentifier("b c".into()),
                Token::Symbol("!="),
                Token::String("x'y".into()),
                Token::Identifier("and".into()),
                Token::Number("1.5".into()),
                Token::End,
            ]
        );
    }

    #[test]
    fn reads_temporal_literals_variables_and_escapes() {
        assert_eq!(
            tokens("@2020-01-01T10:00:00+01:00 @T10:00 @2020 %resource %`a-b` $this '\\u00e9\\n'"),
            vec![
                Token::DateTime("2020-01-01T10:00:00+01:00".into()),
                Token::Time("10:00".into()),
                Token::DateTime("2020".into()),
                Token::Variable("resource".into()),
                Token::Variable("a-b".into()),
                Token::Special("this".into()),
                Token::String("é\n".into()),
                Token::End,
            ]
        );
        assert_eq!(
            tokens("1.exists()")[..3],
            [Token::Number("1".into()), Token::Symbol("."), Token::Identifier("exists".into())]
        );
    }

    #[test]
    fn reports_positions_of_lexical_errors() {
        assert_eq!(tokenize("a = 'open").unwrap_err().position, 4);
        assert_eq!(tokenize("a # b").unwrap_err().position, 2);
        assert_eq!(tokenize("'\\q'").unwrap_err().position, 1);
        assert_eq!(tokenize("/* never closed").unwrap_err().position, 0);
    }
}
