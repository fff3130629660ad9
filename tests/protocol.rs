//! `#[agent(remote)]` protocols: the fingerprint two nodes compare before messaging an
//! agent changes exactly when the messages' encoding could.
#![allow(missing_docs, missing_debug_implementations, unreachable_pub)] // test fixtures, not API

use troupe::prelude::*;

mod v1 {
    use troupe::prelude::*;

    #[derive(Default)]
    pub struct Counter {
        count: u64,
    }

    #[agent(remote)]
    impl Counter {
        #[handle]
        fn add(&mut self, n: u64) {
            self.count += n;
        }
        #[handle]
        fn get(&self) -> u64 {
            self.count
        }
    }
}

/// The same agent, declared again elsewhere (another crate or build): same protocol.
mod v1_again {
    use troupe::prelude::*;

    #[derive(Default)]
    pub struct Counter {
        count: u64,
    }

    #[agent(remote)]
    impl Counter {
        /// Docs and bodies do not matter.
        #[handle]
        fn add(&mut self, n: u64) {
            self.count = self.count.wrapping_add(n);
        }
        #[handle]
        async fn get(&self) -> u64 {
            self.count
        }
    }
}

// One change each against `v1::Counter`.

mod wider_argument {
    use troupe::prelude::*;

    #[derive(Default)]
    pub struct Counter;

    #[agent(remote)]
    impl Counter {
        #[handle]
        fn add(&mut self, n: u32) {
            let _ = n;
        }
        #[handle]
        fn get(&self) -> u64 {
            0
        }
    }
}

mod renamed_argument {
    use troupe::prelude::*;

    #[derive(Default)]
    pub struct Counter;

    #[agent(remote)]
    impl Counter {
        #[handle]
        fn add(&mut self, by: u64) {
            let _ = by;
        }
        #[handle]
        fn get(&self) -> u64 {
            0
        }
    }
}

mod renamed_handler {
    use troupe::prelude::*;

    #[derive(Default)]
    pub struct Counter;

    #[agent(remote)]
    impl Counter {
        #[handle]
        fn plus(&mut self, n: u64) {
            let _ = n;
        }
        #[handle]
        fn get(&self) -> u64 {
            0
        }
    }
}

mod reordered {
    use troupe::prelude::*;

    #[derive(Default)]
    pub struct Counter;

    #[agent(remote)]
    impl Counter {
        #[handle]
        fn get(&self) -> u64 {
            0
        }
        #[handle]
        fn add(&mut self, n: u64) {
            let _ = n;
        }
    }
}

mod other_return {
    use troupe::prelude::*;

    #[derive(Default)]
    pub struct Counter;

    #[agent(remote)]
    impl Counter {
        #[handle]
        fn add(&mut self, n: u64) {
            let _ = n;
        }
        #[handle]
        fn get(&self) -> i64 {
            0
        }
    }
}

mod extra_handler {
    use troupe::prelude::*;

    #[derive(Default)]
    pub struct Counter;

    #[agent(remote)]
    impl Counter {
        #[handle]
        fn add(&mut self, n: u64) {
            let _ = n;
        }
        #[handle]
        fn get(&self) -> u64 {
            0
        }
        #[handle]
        fn reset(&mut self) {}
    }
}

#[test]
fn a_message_names_its_handler() {
    assert_eq!(v1::Counter::handler(&v1::CounterMsg::Add { n: 1 }), "add");
    assert_eq!(v1::Counter::handler(&v1::CounterMsg::Get), "get");
    assert_eq!(Store::<u8>::handler(&StoreMsg::Put { item: 1 }), "put");
}

#[test]
fn the_same_handlers_give_the_same_protocol_wherever_they_are_declared() {
    assert_eq!(v1::Counter::protocol(), v1_again::Counter::protocol());
    assert_eq!(
        v1::Counter::protocol().description(),
        "Counter { add(n: u64) -> (); get() -> u64 }"
    );
}

#[test]
fn any_change_that_could_change_the_encoding_changes_the_fingerprint() {
    let base = v1::Counter::protocol().fingerprint();
    for (what, other) in [
        ("argument type", wider_argument::Counter::protocol()),
        ("argument name", renamed_argument::Counter::protocol()),
        ("handler name", renamed_handler::Counter::protocol()),
        ("handler order", reordered::Counter::protocol()),
        ("return type", other_return::Counter::protocol()),
        ("an extra handler", extra_handler::Counter::protocol()),
    ] {
        assert_ne!(other.fingerprint(), base, "{what} did not change the fingerprint");
    }
}

#[test]
fn the_fingerprint_of_a_fixed_agent_is_pinned() {
    // A change here breaks every deployed node's lookups: only change the canonical
    // form on purpose, with a new version tag.
    let p = v1::Counter::protocol();
    assert_eq!(p.name(), "Counter");
    assert_eq!(p.to_string(), format!("Counter#{:016x}", p.fingerprint()));
    // FNV-1a 64 of "troupe/protocol/1\0" followed by the description, computed
    // independently.
    assert_eq!(p.fingerprint(), 0x2922_1515_8e56_4a46);
}

/// A generic remote agent: its type arguments are part of its protocol.
pub struct Store<T> {
    items: Vec<T>,
}

// The serde bounds come from the derived enums; the impl only needs what the handlers do.
#[agent(remote)]
impl<T> Store<T>
where
    T: Clone + Send + 'static,
{
    #[handle]
    fn put(&mut self, item: T) {
        self.items.push(item);
    }
    #[handle]
    fn all(&self) -> Vec<T> {
        self.items.clone()
    }
}

#[test]
fn a_generic_agents_type_arguments_change_its_fingerprint() {
    assert_ne!(
        Store::<u8>::protocol().fingerprint(),
        Store::<String>::protocol().fingerprint()
    );
    assert_eq!(
        Store::<u8>::protocol().description(),
        "Store { put(item: T) -> (); all() -> Vec<T> }"
    );
}

/// A handler that replies later: the caller's type is the `Reply<T>`'s `T`.
#[derive(Default)]
pub struct Later;

#[agent(remote)]
impl Later {
    #[handle]
    fn answer(&mut self, q: String, reply: Reply<(u8, String)>) {
        reply.send((q.len() as u8, q));
    }
}

#[test]
fn deferred_replies_and_tuples_are_described_by_what_the_caller_gets() {
    assert_eq!(
        Later::protocol().description(),
        "Later { answer(q: String) -> (u8, String) }"
    );
}
