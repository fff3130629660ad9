//! Access policies: write one, check it against attributes, see why it denies.
//!
//! ```text
//! cargo run --example policies
//! ```

use std::time::Duration;

use troupe::abac::{Environment, Policy};
use troupe::secure::{attrs, Authority, Identity};

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

    // ANCHOR: credential
    let authority = Authority::generate();
    let node = Identity::generate();
    let credential = authority.issue(
        node.identifier(),
        attrs! { "team" => "research", "role" => "planner" },
        Duration::from_secs(3600),
    )?;
    // Whoever receives it checks the issuer, the subject, the signature and the dates,
    // then hands the attributes to the policy (plus subject.identifier and
    // subject.has_credential, which only the verifier sets).
    let verified = credential.verify(&[authority.identifier()], &node.identifier())?;
    let mut env = Environment::new().with("action.handler", "list");
    verified.apply_to(&mut env);
    println!("the credential's holder calls list: {}", policy.decide(&env));
    // ANCHOR_END: credential
    Ok(())
}
