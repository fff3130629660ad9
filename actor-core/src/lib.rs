//! The troupe runtime.
