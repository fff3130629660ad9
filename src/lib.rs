//! troupe: supervised, secure-by-default actors.
pub use actor_core as core;
