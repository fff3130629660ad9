//! Text to syntax tree: a tokenizer and an iterative parser (an explicit stack, so deep
//! input cannot overflow the thread's stack), both bounded in size and depth.

use std::fmt;

/// The longest policy text accepted, in bytes.
pub const MAX_POLICY_LEN: usize = 64 * 1024;
/// The deepest nesting of `(...)` and `[...]` accepted.
pub const MAX_DEPTH: usize = 32;
/// The most atoms and lists one policy may hold.
pub const MAX_NODES: usize = 4096;

/// Why a policy does not parse or compile: what, and where (a byte offset in the text).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// Byte offset in the policy text.
    pub position: usize,
    /// What is wrong, in a few words.
    pub message: String,
}

impl ParseError {
    pub(crate) fn at(position: usize, message: impl Into<String>) -> ParseError {
        ParseError {
            position,
            message: message.into(),
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at byte {}: {}", self.position, self.message)
    }
}

impl std::error::Error for ParseError {}

/// An atom of the text.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Atom {
    Str(String),
    Int(i64),
    /// A bare word: an operator, `true`/`false`, or an identifier like `subject.team`.
    Word(String),
}

/// A syntax tree node with its position.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Sexp {
    Atom(Atom, usize),
    /// `( ... )`
    List(Vec<Sexp>, usize),
    /// `[ ... ]`
    Seq(Vec<Sexp>, usize),
}

impl Sexp {
    pub(crate) fn position(&self) -> usize {
        match self {
            Sexp::Atom(_, p) | Sexp::List(_, p) | Sexp::Seq(_, p) => *p,
        }
    }
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '?' | '!' | '=' | '<' | '>' | '-')
}

/// Parses exactly one expression (surrounding whitespace allowed).
pub(crate) fn parse(text: &str) -> Result<Sexp, ParseError> {
    if text.len() > MAX_POLICY_LEN {
        return Err(ParseError::at(
            MAX_POLICY_LEN,
            format!("policy longer than {MAX_POLICY_LEN} bytes"),
        ));
    }
    // Open lists: (is a sequence, where it opened, its items).
    let mut stack: Vec<(bool, usize, Vec<Sexp>)> = Vec::new();
    let mut done: Option<Sexp> = None;
    let mut nodes = 0usize;
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i] as char;
        let start = i;
        let item = match c {
            c if c.is_ascii_whitespace() => {
                i += 1;
                continue;
            }
            '(' | '[' => {
                if stack.len() >= MAX_DEPTH {
                    return Err(ParseError::at(start, format!("nested deeper than {MAX_DEPTH}")));
                }
                stack.push((c == '[', start, Vec::new()));
                i += 1;
                continue;
            }
            ')' | ']' => {
                let Some((seq, opened, items)) = stack.pop() else {
                    return Err(ParseError::at(start, format!("`{c}` without an opening one")));
                };
                if seq != (c == ']') {
                    let want = if seq { ']' } else { ')' };
                    return Err(ParseError::at(start, format!("expected `{want}`, found `{c}`")));
                }
                i += 1;
                if seq {
                    Sexp::Seq(items, opened)
                } else {
                    Sexp::List(items, opened)
                }
            }
            '"' => {
                let (s, end) = string(text, start)?;
                i = end;
                Sexp::Atom(Atom::Str(s), start)
            }
            _ if starts_number(bytes, i) => {
                let (n, end) = integer(text, start)?;
                i = end;
                Sexp::Atom(Atom::Int(n), start)
            }
            c if is_word_char(c) => {
                let mut end = i + 1;
                while end < bytes.len() && is_word_char(bytes[end] as char) {
                    end += 1;
                }
                i = end;
                Sexp::Atom(Atom::Word(text[start..end].to_owned()), start)
            }
            _ => {
                let shown = text[start..].chars().next().unwrap_or('?');
                return Err(ParseError::at(start, format!("unexpected character `{shown}`")));
            }
        };
        nodes += 1;
        if nodes > MAX_NODES {
            return Err(ParseError::at(start, format!("more than {MAX_NODES} elements")));
        }
        match stack.last_mut() {
            Some((_, _, items)) => items.push(item),
            None if done.is_none() => done = Some(item),
            None => return Err(ParseError::at(start, "more than one expression")),
        }
    }
    if let Some((seq, opened, _)) = stack.last() {
        let which = if *seq { '[' } else { '(' };
        return Err(ParseError::at(*opened, format!("`{which}` is never closed")));
    }
    done.ok_or_else(|| ParseError::at(text.len(), "empty policy"))
}

/// Whether a whole number starts at `i`: a digit, or `-` and a digit.
pub(crate) fn starts_number(bytes: &[u8], i: usize) -> bool {
    bytes.get(i).is_some_and(u8::is_ascii_digit)
        || (bytes.get(i) == Some(&b'-') && bytes.get(i + 1).is_some_and(u8::is_ascii_digit))
}

/// A whole number starting at `start` (see [`starts_number`]): its value and the offset
/// after it.
pub(crate) fn integer(text: &str, start: usize) -> Result<(i64, usize), ParseError> {
    let bytes = text.as_bytes();
    let mut end = start + 1;
    while end < bytes.len() && bytes[end].is_ascii_digit() {
        end += 1;
    }
    let n = text[start..end]
        .parse::<i64>()
        .map_err(|_| ParseError::at(start, "number out of range"))?;
    Ok((n, end))
}

/// A string literal starting at `start` (the opening quote): its value and the offset
/// after the closing quote. Escapes: `\"` and `\\`.
pub(crate) fn string(text: &str, start: usize) -> Result<(String, usize), ParseError> {
    let mut out = String::new();
    let mut chars = text[start + 1..].char_indices();
    while let Some((k, c)) = chars.next() {
        match c {
            '"' => return Ok((out, start + 1 + k + 1)),
            '\\' => match chars.next() {
                Some((_, e @ ('"' | '\\'))) => out.push(e),
                _ => {
                    return Err(ParseError::at(
                        start + 1 + k,
                        "unknown escape (only \\\" and \\\\)",
                    ))
                }
            },
            c => out.push(c),
        }
    }
    Err(ParseError::at(start, "string is never closed"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_sequences_strings_numbers_and_words() {
        let s = parse(r#"(member? "a\"b" [1 -2 subject.x])"#).unwrap();
        let Sexp::List(items, 0) = s else { panic!("{s:?}") };
        assert_eq!(items[0], Sexp::Atom(Atom::Word("member?".into()), 1));
        assert_eq!(items[1], Sexp::Atom(Atom::Str("a\"b".into()), 9));
        assert!(matches!(&items[2], Sexp::Seq(v, _) if v.len() == 3));
    }

    #[test]
    fn errors_point_at_the_problem() {
        assert_eq!(
            parse("(and true").unwrap_err(),
            ParseError::at(0, "`(` is never closed")
        );
        assert_eq!(parse("(a]").unwrap_err().position, 2);
        assert_eq!(parse("a b").unwrap_err().position, 2);
        assert_eq!(parse("  ").unwrap_err().message, "empty policy");
        assert_eq!(parse("\"abc").unwrap_err().message, "string is never closed");
        assert_eq!(parse("(= x #)").unwrap_err().position, 5);
        assert!(parse("99999999999999999999").is_err());
    }

    #[test]
    fn depth_and_size_are_bounded() {
        let deep = "(".repeat(10_000) + &")".repeat(10_000);
        assert!(parse(&deep).unwrap_err().message.contains("nested deeper"));
        let ok = "(".repeat(MAX_DEPTH) + "true" + &")".repeat(MAX_DEPTH);
        assert!(parse(&ok).is_ok());
        let wide = format!("(or {})", "true ".repeat(MAX_NODES));
        assert!(parse(&wide).unwrap_err().message.contains("elements"));
        let long = "x".repeat(MAX_POLICY_LEN + 1);
        assert!(parse(&long).is_err());
    }
}
