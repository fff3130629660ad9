//! Property tests: no input makes the parser or the evaluator panic, overflow the stack
//! or run long, and whatever goes wrong denies, even under `not`.

use actor_abac::{Decision, Denial, Environment, Policy};
use proptest::prelude::*;

fn env() -> Environment {
    Environment::new()
        .with("subject.team", "research")
        .with("subject.level", 3)
        .with("subject.ok", true)
        .with("subject.groups", vec!["a", "b"])
        .with("resource.name", "counter")
        .with("action.handler", "get")
}

/// Policy-shaped text: operators, atoms and brackets, often ill-typed or ill-formed.
fn policy_text() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("true".to_owned()),
        Just("false".to_owned()),
        Just("subject.team".to_owned()),
        Just("subject.level".to_owned()),
        Just("subject.ok".to_owned()),
        Just("subject.groups".to_owned()),
        Just("subject.missing".to_owned()),
        Just("action.handler".to_owned()),
        any::<i64>().prop_map(|n| n.to_string()),
        "[a-z ]{0,6}".prop_map(|s| format!("{s:?}")),
    ];
    leaf.prop_recursive(6, 64, 5, |inner| {
        let op = prop_oneof![
            Just("and"),
            Just("or"),
            Just("not"),
            Just("if"),
            Just("="),
            Just("!="),
            Just("<"),
            Just(">="),
            Just("member?"),
            Just("exists?"),
            Just("bogus"),
        ];
        prop_oneof![
            (op, prop::collection::vec(inner.clone(), 0..4))
                .prop_map(|(op, args)| format!("({op} {})", args.join(" "))),
            prop::collection::vec(inner, 0..4).prop_map(|items| format!("[{}]", items.join(" "))),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_text_never_panics(text in ".{0,200}") {
        if let Ok(policy) = Policy::parse(&text) {
            let _ = policy.decide(&env());
        }
    }

    #[test]
    fn arbitrary_brackets_and_symbols_never_panic(text in "[\\(\\)\\[\\] a-z0-9\"=<>!?.]{0,400}") {
        if let Ok(policy) = Policy::parse(&text) {
            let _ = policy.decide(&env());
        }
    }

    /// A decision is the same every time; `not` flips a clean decision; and a policy
    /// that fails (type error, unknown attribute, not a boolean) still denies under
    /// `not`: an error can never be turned into an allow.
    #[test]
    fn errors_deny_even_negated(text in policy_text()) {
        match Policy::parse(&text) {
            Ok(policy) => {
                let decision = policy.decide(&env());
                prop_assert_eq!(&decision, &policy.decide(&env()));
                if let Ok(negated) = Policy::parse(&format!("(not {text})")) {
                    let flipped = negated.decide(&env());
                    match decision {
                        Decision::Allow => prop_assert_eq!(flipped, Decision::Deny(Denial::False)),
                        Decision::Deny(Denial::False) => prop_assert_eq!(flipped, Decision::Allow),
                        Decision::Deny(_) => prop_assert!(!flipped.is_allowed(), "{} allowed", text),
                    }
                }
            }
            Err(e) => prop_assert!(e.position <= text.len()),
        }
    }
}

#[test]
fn nesting_at_the_limit_is_fine_and_beyond_is_a_parse_error() {
    let depth = actor_abac::MAX_DEPTH;
    let at_limit = "(not ".repeat(depth) + "false" + &")".repeat(depth);
    let policy = Policy::parse(&at_limit).expect("nesting at the limit parses");
    assert_eq!(
        policy.decide(&env()),
        Decision::Deny(Denial::False),
        "an even number of nots"
    );
    let beyond = "(not ".repeat(depth + 1) + "false" + &")".repeat(depth + 1);
    assert!(Policy::parse(&beyond)
        .unwrap_err()
        .message
        .contains("nested deeper"));
}

#[test]
fn a_huge_flat_policy_is_refused_quickly() {
    let start = std::time::Instant::now();
    let huge = format!("(or {})", "false ".repeat(50_000));
    assert!(Policy::parse(&huge).is_err());
    // A hang guard, not a benchmark: the parser stops at the element limit.
    assert!(start.elapsed() < std::time::Duration::from_secs(10));
}
