//! Identities and secure channels for troupe.
//!
//! Every cross-node byte passes through a secure channel built here. The identity and
//! channel types arrive with the secure-channel issue.
