//! The short boolean form: `(team = "research" or admin) and not revoked`.
//!
//! Grammar, loosest first: `or`, `and`, `not`, comparisons (`= != < > <= >=`), then
//! parentheses, strings, whole numbers, `true`/`false` and names. A bare name means the
//! subject's attribute (`team` is `subject.team`); `resource.x` and `action.x` name the
//! others. A name used as a condition by itself (`admin`, `not revoked`) is a flag: true
//! when the attribute is `true` or `"true"`, false when it is anything else or not set.
//! Recursive descent, with the nesting bounded by [`MAX_DEPTH`] and the size by
//! [`MAX_NODES`] like the s-expression form.

use crate::parse::{ParseError, MAX_DEPTH, MAX_NODES, MAX_POLICY_LEN};

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Token {
    Word(String),
    Str(String),
    Int(i64),
    Op(&'static str),
    Open,
    Close,
}

/// What the short form compiles to before it joins the s-expression's checked form.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Short {
    Lit(crate::Value),
    Name(String),
    Flag(String),
    And(Vec<Short>),
    Or(Vec<Short>),
    Not(Box<Short>),
    Cmp(&'static str, Box<Short>, Box<Short>),
}

fn tokens(text: &str) -> Result<Vec<(Token, usize)>, ParseError> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i] as char;
        let start = i;
        let token = match c {
            c if c.is_ascii_whitespace() => {
                i += 1;
                continue;
            }
            '(' => {
                i += 1;
                Token::Open
            }
            ')' => {
                i += 1;
                Token::Close
            }
            '=' => {
                i += 1;
                Token::Op("=")
            }
            '!' | '<' | '>' => {
                let two = bytes.get(i + 1) == Some(&b'=');
                i += if two { 2 } else { 1 };
                match (c, two) {
                    ('!', true) => Token::Op("!="),
                    ('<', true) => Token::Op("<="),
                    ('>', true) => Token::Op(">="),
                    ('<', false) => Token::Op("<"),
                    ('>', false) => Token::Op(">"),
                    _ => return Err(ParseError::at(start, "`!` must be `!=`; use `not`")),
                }
            }
            '"' => {
                let (s, end) = crate::parse::string(text, start)?;
                i = end;
                Token::Str(s)
            }
            _ if crate::parse::starts_number(bytes, i) => {
                let (n, end) = crate::parse::integer(text, start)?;
                i = end;
                Token::Int(n)
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let mut end = i + 1;
                while end < bytes.len()
                    && (bytes[end].is_ascii_alphanumeric() || matches!(bytes[end], b'_' | b'.' | b'-'))
                {
                    end += 1;
                }
                i = end;
                Token::Word(text[start..end].to_owned())
            }
            _ => {
                let shown = text[start..].chars().next().unwrap_or('?');
                return Err(ParseError::at(start, format!("unexpected character `{shown}`")));
            }
        };
        out.push((token, start));
        if out.len() > MAX_NODES {
            return Err(ParseError::at(start, format!("more than {MAX_NODES} elements")));
        }
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<(Token, usize)>,
    at: usize,
    end: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at).map(|(t, _)| t)
    }

    fn position(&self) -> usize {
        self.tokens.get(self.at).map_or(self.end, |(_, p)| *p)
    }

    fn word(&self, w: &str) -> bool {
        matches!(self.peek(), Some(Token::Word(x)) if x == w)
    }

    fn deeper(depth: usize, at: usize) -> Result<usize, ParseError> {
        if depth >= MAX_DEPTH {
            return Err(ParseError::at(at, format!("nested deeper than {MAX_DEPTH}")));
        }
        Ok(depth + 1)
    }

    fn or(&mut self, depth: usize) -> Result<Short, ParseError> {
        let depth = Self::deeper(depth, self.position())?;
        let mut items = vec![self.and(depth)?];
        while self.word("or") {
            self.at += 1;
            items.push(self.and(depth)?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Short::Or(items)
        })
    }

    fn and(&mut self, depth: usize) -> Result<Short, ParseError> {
        let mut items = vec![self.not(depth)?];
        while self.word("and") {
            self.at += 1;
            items.push(self.not(depth)?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Short::And(items)
        })
    }

    fn not(&mut self, depth: usize) -> Result<Short, ParseError> {
        if self.word("not") {
            let depth = Self::deeper(depth, self.position())?;
            self.at += 1;
            return Ok(Short::Not(Box::new(Self::flagged(self.not(depth)?))));
        }
        self.cmp(depth)
    }

    /// A bare name where a condition is expected is a flag.
    fn flagged(s: Short) -> Short {
        match s {
            Short::Name(n) => Short::Flag(n),
            other => other,
        }
    }

    fn cmp(&mut self, depth: usize) -> Result<Short, ParseError> {
        let left = self.primary(depth)?;
        if let Some(Token::Op(op)) = self.peek() {
            let op = *op;
            self.at += 1;
            let right = self.primary(depth)?;
            return Ok(Short::Cmp(op, Box::new(left), Box::new(right)));
        }
        Ok(Self::flagged(left))
    }

    fn primary(&mut self, depth: usize) -> Result<Short, ParseError> {
        let at = self.position();
        let Some((token, _)) = self.tokens.get(self.at).cloned() else {
            return Err(ParseError::at(at, "expected a value or `(`"));
        };
        self.at += 1;
        match token {
            Token::Open => {
                let inner = self.or(depth)?;
                match self.peek() {
                    Some(Token::Close) => {
                        self.at += 1;
                        Ok(inner)
                    }
                    _ => Err(ParseError::at(at, "`(` is never closed")),
                }
            }
            Token::Str(s) => Ok(Short::Lit(crate::Value::Str(s))),
            Token::Int(n) => Ok(Short::Lit(crate::Value::Int(n))),
            Token::Word(w) => match w.as_str() {
                "true" => Ok(Short::Lit(crate::Value::Bool(true))),
                "false" => Ok(Short::Lit(crate::Value::Bool(false))),
                "and" | "or" | "not" => Err(ParseError::at(at, format!("expected a value, found `{w}`"))),
                _ => Ok(Short::Name(qualify(&w, at)?)),
            },
            Token::Close => Err(ParseError::at(at, "`)` without an opening one")),
            Token::Op(op) => Err(ParseError::at(at, format!("expected a value, found `{op}`"))),
        }
    }
}

/// `team` is `subject.team`; qualified names stay as they are.
fn qualify(word: &str, at: usize) -> Result<String, ParseError> {
    for ns in ["subject.", "resource.", "action."] {
        if let Some(rest) = word.strip_prefix(ns) {
            if rest.is_empty() {
                return Err(ParseError::at(at, format!("`{word}` names no attribute")));
            }
            return Ok(word.to_owned());
        }
    }
    if word.contains('.') {
        return Err(ParseError::at(
            at,
            format!(
                "unknown word `{word}`: names are bare (the subject's) or start with resource. or action."
            ),
        ));
    }
    Ok(format!("subject.{word}"))
}

/// Parses the short boolean form.
pub(crate) fn parse(text: &str) -> Result<Short, ParseError> {
    if text.len() > MAX_POLICY_LEN {
        return Err(ParseError::at(
            MAX_POLICY_LEN,
            format!("policy longer than {MAX_POLICY_LEN} bytes"),
        ));
    }
    let tokens = tokens(text)?;
    if tokens.is_empty() {
        return Err(ParseError::at(text.len(), "empty policy"));
    }
    let mut p = Parser {
        tokens,
        at: 0,
        end: text.len(),
    };
    let expr = Parser::flagged(p.or(0)?);
    if p.at < p.tokens.len() {
        return Err(ParseError::at(p.position(), "unexpected text after the policy"));
    }
    Ok(expr)
}
