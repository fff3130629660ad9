//! Attribute-based access control for troupe: a small s-expression policy language,
//! parsed and checked once into a [`Policy`], then evaluated against an
//! [`Environment`] of `subject.*`, `resource.*` and `action.*` attributes per message.
//!
//! The crate is pure: no cryptography, no networking, no I/O, so it can be fuzzed on its
//! own. Where the attributes come from (credentials a trusted authority signed) and where
//! decisions are enforced (the node's remote path) is the business of `actor-secure`.
//!
//! ```
//! use actor_abac::{Decision, Environment, Policy};
//!
//! let policy: Policy = r#"(or (= subject.role "admin")
//!                             (and (= subject.team "research") (= action.handler "get")))"#
//!     .parse()?;
//! let planner = Environment::new()
//!     .with("subject.team", "research")
//!     .with("subject.role", "planner")
//!     .with("action.handler", "reset");
//! assert!(matches!(policy.decide(&planner), Decision::Deny(_)));
//! # Ok::<(), actor_abac::ParseError>(())
//! ```
//!
//! Every failure denies: text that does not parse is refused up front with the byte
//! position of the problem; an unknown attribute, a type error or a result that is not a
//! boolean denies at evaluation. Input is bounded ([`MAX_POLICY_LEN`] bytes,
//! [`MAX_DEPTH`] levels, [`MAX_NODES`] elements) and parsed without recursion, so no
//! policy text can overflow the stack or take unbounded time.

mod boolean;
mod parse;
mod policy;

pub use parse::{ParseError, MAX_DEPTH, MAX_NODES, MAX_POLICY_LEN};
pub use policy::{Decision, Denial, Environment, EvalError, Policy, Value};
