//! Misuse of the macros is a compile error with a clear message at the right span.

#[test]
fn macro_misuse_is_reported_clearly() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
