//! Syntax tree to a checked expression, and its evaluation. Every failure denies.

use std::collections::HashMap;
use std::fmt;

use crate::boolean::{self, Short};
use crate::parse::{self, Atom, ParseError, Sexp};

/// An attribute value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// Text.
    Str(String),
    /// A whole number.
    Int(i64),
    /// `true` or `false`.
    Bool(bool),
    /// A sequence, written `[a b c]`.
    Seq(Vec<Value>),
}

impl Value {
    fn kind(&self) -> &'static str {
        match self {
            Value::Str(_) => "string",
            Value::Int(_) => "number",
            Value::Bool(_) => "boolean",
            Value::Seq(_) => "sequence",
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::Str(s.to_owned())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::Str(s)
    }
}

impl From<i64> for Value {
    fn from(n: i64) -> Value {
        Value::Int(n)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Value {
        Value::Bool(b)
    }
}

impl<T: Into<Value>> From<Vec<T>> for Value {
    fn from(v: Vec<T>) -> Value {
        Value::Seq(v.into_iter().map(Into::into).collect())
    }
}

/// What a policy is evaluated against: attributes named `subject.*` (who calls),
/// `resource.*` (what is called) and `action.*` (what is done).
///
/// ```
/// use actor_abac::Environment;
///
/// let env = Environment::new()
///     .with("subject.team", "research")
///     .with("subject.level", 3)
///     .with("resource.name", "counter")
///     .with("action.handler", "get");
/// assert!(env.get("subject.team").is_some());
/// ```
#[derive(Clone, Debug, Default)]
pub struct Environment {
    values: HashMap<String, Value>,
}

impl Environment {
    /// An empty environment.
    pub fn new() -> Environment {
        Environment::default()
    }

    /// Sets `name` (e.g. `subject.team`) to `value`.
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<Value>) {
        self.values.insert(name.into(), value.into());
    }

    /// [`Environment::insert`], builder style.
    pub fn with(mut self, name: impl Into<String>, value: impl Into<Value>) -> Environment {
        self.insert(name, value);
        self
    }

    /// The value of `name`, if set.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.values.get(name)
    }
}

/// Comparison operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cmp {
    Eq,
    Ne,
    Lt,
    Gt,
    Le,
    Ge,
}

/// A checked expression.
#[derive(Clone, Debug, PartialEq)]
enum Expr {
    Lit(Value),
    Ident(String),
    Seq(Vec<Expr>),
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    If(Box<[Expr; 3]>),
    Cmp(Cmp, Box<[Expr; 2]>),
    Member(Box<[Expr; 2]>),
    Exists(String),
    /// A flag of the short form: true when the attribute is `true` or `"true"`.
    Flag(String),
}

/// The namespaces an identifier may live in.
const NAMESPACES: [&str; 3] = ["subject.", "resource.", "action."];

fn identifier(word: &str, at: usize) -> Result<String, ParseError> {
    let valid = NAMESPACES
        .iter()
        .any(|ns| word.len() > ns.len() && word.starts_with(ns));
    if !valid {
        return Err(ParseError::at(
            at,
            format!("unknown word `{word}`: identifiers start with subject., resource. or action."),
        ));
    }
    Ok(word.to_owned())
}

/// Compiles a syntax tree. Recursion is bounded by the parser's depth limit.
fn compile(s: &Sexp) -> Result<Expr, ParseError> {
    match s {
        Sexp::Atom(Atom::Str(v), _) => Ok(Expr::Lit(Value::Str(v.clone()))),
        Sexp::Atom(Atom::Int(n), _) => Ok(Expr::Lit(Value::Int(*n))),
        Sexp::Atom(Atom::Word(w), at) => match w.as_str() {
            "true" => Ok(Expr::Lit(Value::Bool(true))),
            "false" => Ok(Expr::Lit(Value::Bool(false))),
            _ => identifier(w, *at).map(Expr::Ident),
        },
        Sexp::Seq(items, _) => items.iter().map(compile).collect::<Result<_, _>>().map(Expr::Seq),
        Sexp::List(items, at) => {
            let Some((head, args)) = items.split_first() else {
                return Err(ParseError::at(*at, "empty `()`"));
            };
            let Sexp::Atom(Atom::Word(op), op_at) = head else {
                return Err(ParseError::at(head.position(), "expected an operator"));
            };
            let arity = |n: usize| {
                if args.len() == n {
                    Ok(())
                } else {
                    Err(ParseError::at(
                        *op_at,
                        format!(
                            "`{op}` takes {n} argument{}, got {}",
                            if n == 1 { "" } else { "s" },
                            args.len()
                        ),
                    ))
                }
            };
            let compiled = || args.iter().map(compile).collect::<Result<Vec<_>, _>>();
            let two = |cmp: Option<Cmp>| -> Result<Expr, ParseError> {
                arity(2)?;
                let pair = Box::new([compile(&args[0])?, compile(&args[1])?]);
                Ok(match cmp {
                    Some(c) => Expr::Cmp(c, pair),
                    None => Expr::Member(pair),
                })
            };
            match op.as_str() {
                "and" | "or" => {
                    if args.is_empty() {
                        return Err(ParseError::at(
                            *op_at,
                            format!("`{op}` needs at least one argument"),
                        ));
                    }
                    let all = compiled()?;
                    Ok(if op == "and" {
                        Expr::And(all)
                    } else {
                        Expr::Or(all)
                    })
                }
                "not" => {
                    arity(1)?;
                    Ok(Expr::Not(Box::new(compile(&args[0])?)))
                }
                "if" => {
                    arity(3)?;
                    Ok(Expr::If(Box::new([
                        compile(&args[0])?,
                        compile(&args[1])?,
                        compile(&args[2])?,
                    ])))
                }
                "=" => two(Some(Cmp::Eq)),
                "!=" => two(Some(Cmp::Ne)),
                "<" => two(Some(Cmp::Lt)),
                ">" => two(Some(Cmp::Gt)),
                "<=" => two(Some(Cmp::Le)),
                ">=" => two(Some(Cmp::Ge)),
                "member?" => two(None),
                "exists?" => {
                    arity(1)?;
                    match &args[0] {
                        Sexp::Atom(Atom::Word(w), at) => identifier(w, *at).map(Expr::Exists),
                        other => Err(ParseError::at(other.position(), "`exists?` takes an identifier")),
                    }
                }
                _ => Err(ParseError::at(*op_at, format!("unknown operator `{op}`"))),
            }
        }
    }
}

/// The short form's tree as a checked expression (already checked by its parser;
/// recursion bounded by its depth limit).
fn from_short(s: Short) -> Expr {
    match s {
        Short::Lit(v) => Expr::Lit(v),
        Short::Name(n) => Expr::Ident(n),
        Short::Flag(n) => Expr::Flag(n),
        Short::And(items) => Expr::And(items.into_iter().map(from_short).collect()),
        Short::Or(items) => Expr::Or(items.into_iter().map(from_short).collect()),
        Short::Not(inner) => Expr::Not(Box::new(from_short(*inner))),
        Short::Cmp(op, a, b) => {
            let op = match op {
                "=" => Cmp::Eq,
                "!=" => Cmp::Ne,
                "<" => Cmp::Lt,
                ">" => Cmp::Gt,
                "<=" => Cmp::Le,
                _ => Cmp::Ge,
            };
            Expr::Cmp(op, Box::new([from_short(*a), from_short(*b)]))
        }
    }
}

/// Why evaluating a policy failed (which denies).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EvalError {
    /// The policy names an attribute the environment does not have.
    Unknown(String),
    /// An operator got a value of the wrong type.
    Type {
        /// The operator.
        op: &'static str,
        /// What it got.
        got: &'static str,
    },
}

impl fmt::Display for EvalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EvalError::Unknown(name) => write!(f, "`{name}` is not set"),
            EvalError::Type { op, got } => write!(f, "`{op}` cannot use a {got}"),
        }
    }
}

impl std::error::Error for EvalError {}

fn op_name(c: Cmp) -> &'static str {
    match c {
        Cmp::Eq => "=",
        Cmp::Ne => "!=",
        Cmp::Lt => "<",
        Cmp::Gt => ">",
        Cmp::Le => "<=",
        Cmp::Ge => ">=",
    }
}

fn boolean(v: Value, op: &'static str) -> Result<bool, EvalError> {
    match v {
        Value::Bool(b) => Ok(b),
        other => Err(EvalError::Type {
            op,
            got: other.kind(),
        }),
    }
}

/// Evaluates; recursion is bounded by the parser's depth limit.
fn eval(e: &Expr, env: &Environment) -> Result<Value, EvalError> {
    Ok(match e {
        Expr::Lit(v) => v.clone(),
        Expr::Ident(name) => env
            .get(name)
            .cloned()
            .ok_or_else(|| EvalError::Unknown(name.clone()))?,
        Expr::Seq(items) => Value::Seq(items.iter().map(|i| eval(i, env)).collect::<Result<_, _>>()?),
        Expr::And(items) => {
            for i in items {
                if !boolean(eval(i, env)?, "and")? {
                    return Ok(Value::Bool(false));
                }
            }
            Value::Bool(true)
        }
        Expr::Or(items) => {
            for i in items {
                if boolean(eval(i, env)?, "or")? {
                    return Ok(Value::Bool(true));
                }
            }
            Value::Bool(false)
        }
        Expr::Not(inner) => Value::Bool(!boolean(eval(inner, env)?, "not")?),
        Expr::If(parts) => {
            let [c, then, otherwise] = &**parts;
            if boolean(eval(c, env)?, "if")? {
                eval(then, env)?
            } else {
                eval(otherwise, env)?
            }
        }
        Expr::Cmp(op, pair) => {
            let (a, b) = (eval(&pair[0], env)?, eval(&pair[1], env)?);
            let name = op_name(*op);
            match (op, &a, &b) {
                (Cmp::Eq | Cmp::Ne, _, _) => {
                    if a.kind() != b.kind() {
                        return Err(EvalError::Type {
                            op: name,
                            got: b.kind(),
                        });
                    }
                    Value::Bool((a == b) == (*op == Cmp::Eq))
                }
                (_, Value::Int(x), Value::Int(y)) => Value::Bool(match op {
                    Cmp::Lt => x < y,
                    Cmp::Gt => x > y,
                    Cmp::Le => x <= y,
                    _ => x >= y,
                }),
                (_, Value::Int(_), other) | (_, other, _) => {
                    return Err(EvalError::Type {
                        op: name,
                        got: other.kind(),
                    })
                }
            }
        }
        Expr::Member(pair) => {
            let needle = eval(&pair[0], env)?;
            match eval(&pair[1], env)? {
                Value::Seq(items) => Value::Bool(items.contains(&needle)),
                other => {
                    return Err(EvalError::Type {
                        op: "member?",
                        got: other.kind(),
                    })
                }
            }
        }
        Expr::Exists(name) => Value::Bool(env.get(name).is_some()),
        Expr::Flag(name) => Value::Bool(match env.get(name) {
            Some(Value::Bool(b)) => *b,
            Some(Value::Str(s)) => s == "true",
            _ => false,
        }),
    })
}

/// A decision: allow, or deny and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// The policy evaluated to `true`.
    Allow,
    /// The policy evaluated to `false`, failed, or was not a boolean.
    Deny(Denial),
}

/// Why a policy denied.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Denial {
    /// The policy evaluated to `false`.
    False,
    /// Evaluating it failed (an unknown attribute, a type error).
    Error(EvalError),
    /// It evaluated to something other than a boolean.
    NotBoolean(&'static str),
}

impl Decision {
    /// True for [`Decision::Allow`].
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allow)
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Decision::Allow => f.write_str("allow"),
            Decision::Deny(Denial::False) => f.write_str("deny: the policy is false"),
            Decision::Deny(Denial::Error(e)) => write!(f, "deny: {e}"),
            Decision::Deny(Denial::NotBoolean(kind)) => {
                write!(f, "deny: the policy gave a {kind}, not a boolean")
            }
        }
    }
}

/// A compiled policy: parsed and checked once, evaluated per message.
///
/// The language is a small s-expression language in the style of Ockam's:
/// `and or not if = != < > <= >= member? exists?`, strings (`"research"`, escapes `\"`
/// and `\\`), whole numbers, `true`/`false`, sequences `[a b c]`, and attributes named
/// `subject.*`, `resource.*` and `action.*`. Anything that goes wrong denies: an unknown
/// attribute, a type error, a result that is not a boolean. `and` and `or` stop at the
/// first argument that decides.
///
/// The same policies can be written in a short boolean form, read when the text is not a
/// valid s-expression: `(team = "research" or admin) and not revoked`.
/// There a bare name is the subject's attribute (`team` is `subject.team`), and a name
/// standing alone as a condition is a flag: true when set to `true` or `"true"`, false
/// otherwise (also when not set, so `not revoked` allows a subject without `revoked`).
///
/// ```
/// use actor_abac::{Environment, Policy};
///
/// let policy = Policy::parse(r#"(and (= subject.team "research")
///                                    (member? action.handler ["get" "list"]))"#)?;
/// let research = Environment::new().with("subject.team", "research").with("action.handler", "get");
/// assert!(policy.decide(&research).is_allowed());
/// let other = Environment::new().with("subject.team", "sales").with("action.handler", "get");
/// assert!(!policy.decide(&other).is_allowed());
/// // No team at all: an unknown attribute denies.
/// assert!(!policy.decide(&Environment::new().with("action.handler", "get")).is_allowed());
/// # Ok::<(), actor_abac::ParseError>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    text: String,
    expr: Expr,
}

impl Policy {
    /// Parses and checks `text`: syntax, operators and their number of arguments, and
    /// attribute namespaces. Errors give the byte offset of the problem.
    pub fn parse(text: &str) -> Result<Policy, ParseError> {
        // The s-expression reading first; the short form when that fails. When both
        // fail, the error of the form the text looks like.
        let long = parse::parse(text).and_then(|tree| compile(&tree));
        let expr = match long {
            Ok(expr) => expr,
            Err(long_error) => match boolean::parse(text) {
                Ok(short) => from_short(short),
                Err(short_error) => {
                    let looks_long = text.trim_start().starts_with(['(', '[']);
                    return Err(if looks_long { long_error } else { short_error });
                }
            },
        };
        Ok(Policy {
            text: text.to_owned(),
            expr,
        })
    }

    /// The policy's text, as given.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Decides against `env`.
    pub fn decide(&self, env: &Environment) -> Decision {
        match eval(&self.expr, env) {
            Ok(Value::Bool(true)) => Decision::Allow,
            Ok(Value::Bool(false)) => Decision::Deny(Denial::False),
            Ok(other) => Decision::Deny(Denial::NotBoolean(other.kind())),
            Err(e) => Decision::Deny(Denial::Error(e)),
        }
    }
}

impl std::str::FromStr for Policy {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Policy, ParseError> {
        Policy::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Environment {
        Environment::new()
            .with("subject.team", "research")
            .with("subject.level", 3)
            .with("subject.admin", false)
            .with("subject.groups", vec!["a", "b"])
            .with("action.handler", "get")
    }

    fn decide(text: &str) -> Decision {
        Policy::parse(text).unwrap().decide(&env())
    }

    #[test]
    fn every_operator_decides() {
        for allowed in [
            r#"(= subject.team "research")"#,
            r#"(!= subject.team "sales")"#,
            "(< subject.level 5)",
            "(> subject.level 2)",
            "(<= subject.level 3)",
            "(>= subject.level 3)",
            "(not subject.admin)",
            r#"(member? "b" subject.groups)"#,
            r#"(member? action.handler ["get" "list"])"#,
            "(exists? subject.team)",
            "(not (exists? subject.revoked))",
            "(if subject.admin false (= subject.level 3))",
            "(and true (or false true))",
            "true",
        ] {
            assert_eq!(decide(allowed), Decision::Allow, "{allowed}");
        }
        assert_eq!(decide("(and true false)"), Decision::Deny(Denial::False));
    }

    #[test]
    fn errors_types_unknowns_and_non_booleans_deny() {
        // C11 of the security notes.
        assert_eq!(
            decide(r#"(< subject.team 5)"#),
            Decision::Deny(Denial::Error(EvalError::Type {
                op: "<",
                got: "string"
            }))
        );
        assert_eq!(
            decide(r#"(= subject.missing "x")"#),
            Decision::Deny(Denial::Error(EvalError::Unknown("subject.missing".into())))
        );
        assert!(!decide(r#"(= subject.level "3")"#).is_allowed());
        assert_eq!(
            decide("subject.level"),
            Decision::Deny(Denial::NotBoolean("number"))
        );
        assert!(!decide(r#"(member? "x" subject.team)"#).is_allowed());
        assert!(!decide(r#"(not "x")"#).is_allowed());
        // Short-circuit: an `or` already decided does not look further.
        assert_eq!(decide("(or true subject.missing)"), Decision::Allow);
        assert_eq!(
            decide("(and false subject.missing)"),
            Decision::Deny(Denial::False)
        );
    }

    #[test]
    fn the_short_form_means_the_same_as_the_long_one() {
        let env = env()
            .with("subject.admin", "true")
            .with("subject.revoked", "false");
        let pairs = [
            (r#"team = "research""#, r#"(= subject.team "research")"#),
            (
                r#"(team = "sales" or admin) and not revoked"#,
                r#"(and (or (= subject.team "sales") (= subject.admin "true")) (not (= subject.revoked "true")))"#,
            ),
            (
                "level >= 3 and level < 4",
                "(and (>= subject.level 3) (< subject.level 4))",
            ),
            (r#"action.handler != "reset""#, r#"(!= action.handler "reset")"#),
            ("not not admin", r#"(not (not (= subject.admin "true")))"#),
        ];
        for (short, long) in pairs {
            let (a, b) = (Policy::parse(short).unwrap(), Policy::parse(long).unwrap());
            assert_eq!(a.decide(&env), b.decide(&env), "{short} vs {long}");
            assert!(a.decide(&env).is_allowed(), "{short}");
        }
        // Flags: unset is false, so `not flag` allows; a flag that is not a boolean
        // string is false too.
        assert!(Policy::parse("not suspended").unwrap().decide(&env).is_allowed());
        assert!(!Policy::parse("suspended").unwrap().decide(&env).is_allowed());
        assert!(!Policy::parse("team").unwrap().decide(&env).is_allowed());
        // Typed comparisons still deny on a type error.
        assert!(!Policy::parse("team < 3").unwrap().decide(&env).is_allowed());
    }

    #[test]
    fn short_form_errors_point_at_the_problem() {
        let err = |t: &str| Policy::parse(t).unwrap_err();
        assert_eq!(err("team = ").message, "expected a value or `(`");
        assert_eq!(err("(team = 1").position, 0);
        assert_eq!(err("team = 1 )").message, "unexpected text after the policy");
        assert_eq!(err("a ! b").position, 2);
        assert!(err("other.team = 1").message.contains("unknown word"));
        assert_eq!(err("team = and").message, "expected a value, found `and`");
        let deep = "(".repeat(100) + "admin" + &")".repeat(100);
        assert!(err(&deep).message.contains("nested deeper"));
        let nots = "not ".repeat(100) + "admin";
        assert!(err(&nots).message.contains("nested deeper"));
    }

    #[test]
    fn bad_policies_are_refused_at_parse_with_a_position() {
        let err = |t: &str| Policy::parse(t).unwrap_err();
        assert_eq!(err("(= subject.team)").message, "`=` takes 2 arguments, got 1");
        assert_eq!(err("(= subject.team)").position, 1);
        assert_eq!(err("(frobnicate true)").message, "unknown operator `frobnicate`");
        assert!(err("(= team \"x\")").message.contains("identifiers start with"));
        assert_eq!(err("(= team \"x\")").position, 3);
        assert_eq!(err("()").message, "empty `()`");
        assert_eq!(err("(and)").message, "`and` needs at least one argument");
        assert_eq!(err("(exists? \"x\")").position, 9);
        assert_eq!(err("((and true) true)").message, "expected an operator");
        assert_eq!(err("(= subject. 1)").position, 3);
    }
}
