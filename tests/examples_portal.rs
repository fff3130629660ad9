//! Runs `examples/portal.rs` through `cargo run` and checks that a plain TCP client
//! reached the service through the inlet and the outlet, and that a stranger was denied.

#[path = "support/run_example.rs"]
mod run_example;

#[test]
fn the_portal_example_carries_a_tcp_service_and_denies_a_stranger() {
    let out = run_example::run_example("portal", &[]);
    let expected = [
        "-> OK",
        "GET greeting                             -> hello-through-a-portal",
        "GET nothing                              -> (none)",
        "stranger: connect to \"kv\" -> denied by the outlet's policy",
        "done",
    ];
    for line in expected {
        assert!(out.contains(line), "no `{line}` in the output:\n{out}");
    }
}
