//! Misuse of the macros is a compile error with a clear message at the right span.

#[test]
fn macro_misuse_is_reported_clearly() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
    // rustc's note on this error lists the `AgentClient` impls it knows, and troupe's
    // `McpClient` adds one when the `mcp` feature is on: one expectation per build.
    #[cfg(not(feature = "mcp"))]
    t.compile_fail("tests/ui/without-mcp/*.rs");
    #[cfg(feature = "mcp")]
    t.compile_fail("tests/ui/with-mcp/*.rs");
}
