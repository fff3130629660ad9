//! Misuse of `#[handle(tool)]` is a compile error with a clear message at the right span.

#![cfg(feature = "mcp")]

#[test]
fn tool_marker_misuse_is_reported_clearly() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui-mcp/*.rs");
}
