//! Access policies: write one, check it against attributes, see why it denies.
//!
//! ```text
//! cargo run --example policies
//! ```

use troupe::abac::{Environment, Policy};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // ANCHOR: policy
    // Parsed and checked once; errors point at the byte where they are.
    let policy = Policy::parse(
        r#"(or (= subject.role "admin")
               (and (= subject.team "research")
                    (member? action.handler ["get" "list"])))"#,
    )?;

    let planner = Environment::new()
        .with("subject.team", "research")
        .with("subject.role", "planner")
        .with("action.handler", "get");
    println!("planner calls get: {}", policy.decide(&planner));

    let reset = planner.clone().with("action.handler", "reset");
    println!("planner calls reset: {}", policy.decide(&reset));

    // Anything that goes wrong denies: here the caller has no role attribute at all.
    let stranger = Environment::new().with("action.handler", "get");
    println!("a caller without attributes: {}", policy.decide(&stranger));

    match Policy::parse(r#"(= subject.team "research""#) {
        Ok(_) => unreachable!(),
        Err(e) => println!("a broken policy: {e}"),
    }
    // ANCHOR_END: policy
    Ok(())
}
