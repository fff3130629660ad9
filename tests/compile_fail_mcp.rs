//! Misuse of `#[handle(tool)]` is a compile error with a clear message at the right span.
//!
//! The expected messages are those of the README's test command (`--all-features`):
//! rustc's lists of candidate implementations depend on which features of serde_json
//! the build has (the `web` feature adds `RawValue`).

#![cfg(feature = "mcp")]

#[test]
fn tool_marker_misuse_is_reported_clearly() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui-mcp/*.rs");
}
