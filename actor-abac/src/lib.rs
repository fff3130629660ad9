//! Attribute-based access control for troupe.
//!
//! This crate will hold attributes, the s-expression policy language (parser and
//! evaluator) and policy sets. It is pure: no crypto and no networking, so it can be
//! fuzzed on its own. The policy language arrives with the access-control issue; today
//! the crate only reserves its place in the workspace.
