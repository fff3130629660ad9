//! The troupe macros.
