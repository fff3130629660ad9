//! [`RemoteAgent`] and its [`Protocol`]: what two nodes compare before one sends the
//! other's agent a message.

use std::fmt;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::Agent;

/// An agent whose messages can cross the network. `#[agent(remote)]` on the impl block
/// implements it: it derives serde for the generated message and reply enums and computes
/// the agent's [`Protocol`].
///
/// ```
/// use troupe::prelude::*;
///
/// #[derive(Default)]
/// pub struct Counter { count: u64 }
///
/// #[agent(remote)]
/// impl Counter {
///     #[handle] fn add(&mut self, n: u64) { self.count += n; }
///     #[handle] fn get(&self) -> u64 { self.count }
/// }
///
/// let protocol = Counter::protocol();
/// assert_eq!(protocol.name(), "Counter");
/// assert_eq!(protocol.description(), "Counter { add(n: u64) -> (); get() -> u64 }");
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a remote agent: its messages cannot cross the network",
    label = "not a remote agent",
    note = "add `remote` to `#[agent(..)]` on the impl block of `{Self}`: `#[agent(remote)]`"
)]
pub trait RemoteAgent: Agent<Msg: Serialize + DeserializeOwned, Reply: Serialize + DeserializeOwned> {
    /// The agent's protocol: its name and a fingerprint of its handlers.
    fn protocol() -> Protocol;

    /// The name of the handler a message is for (what access policies see as
    /// `action.handler`).
    fn handler(msg: &Self::Msg) -> &'static str;

    /// The access policies declared on handlers with `#[handle(policy = "...")]`: (handler,
    /// policy text), checked when the agent was compiled. A node applies them when the
    /// agent is exported.
    fn handler_policies() -> &'static [(&'static str, &'static str)] {
        &[]
    }

    /// How a reference to this agent is named on the wire (the node layer exports a
    /// local agent that is sent). `#[agent(remote)]` forwards to the node layer. Not for
    /// applications.
    #[doc(hidden)]
    fn ref_to_wire(
        agent: &crate::ActorRef<Self>,
        scope: &(dyn std::any::Any + Send + Sync),
    ) -> Result<WireRef, String> {
        let _ = (agent, scope);
        Err(format!(
            "references to `{}` cannot cross nodes",
            Self::protocol().name()
        ))
    }

    /// The reference a wire name stands for, on this node. Not for applications.
    #[doc(hidden)]
    fn ref_from_wire(
        wire: WireRef,
        scope: &(dyn std::any::Any + Send + Sync),
    ) -> Result<crate::ActorRef<Self>, String> {
        let _ = (wire, scope);
        Err(format!(
            "references to `{}` cannot cross nodes",
            Self::protocol().name()
        ))
    }
}

/// The name of a remote agent and a fingerprint of its handlers: their names, order,
/// argument names and types, and return types, as written in the source (a generic
/// agent also hashes its type arguments' names).
///
/// Two builds whose agents have the same protocol encode the same messages the same way;
/// a lookup of an agent whose protocol differs (another agent type, or another version
/// of it) fails at lookup, not at the first message. Types are compared as written:
/// `Vec<u8>` and `std::vec::Vec<u8>` differ, so write them the same way on both sides.
///
/// The fingerprint is 64-bit FNV-1a: it detects mistakes, it is not a security check
/// (the secure channel and access policies are).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Protocol {
    name: &'static str,
    description: &'static str,
    fingerprint: u64,
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn fnv1a(mut hash: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(FNV_PRIME);
    }
    hash
}

impl Protocol {
    /// Used by `#[agent(remote)]`: the agent's name, the canonical description of its
    /// handlers, and the names of its type arguments (empty unless it is generic).
    #[doc(hidden)]
    pub fn new(name: &'static str, description: &'static str, type_args: &[&str]) -> Protocol {
        // Versioned, so that a change of the canonical form can never collide with the
        // old one.
        let mut hash = fnv1a(FNV_OFFSET, b"troupe/protocol/1\0");
        hash = fnv1a(hash, description.as_bytes());
        for arg in type_args {
            hash = fnv1a(hash, b"\0");
            hash = fnv1a(hash, arg.as_bytes());
        }
        Protocol {
            name,
            description,
            fingerprint: hash,
        }
    }

    /// The agent's type name (without module path or type arguments).
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The handlers as the fingerprint sees them, e.g.
    /// `Counter { add(n: u64) -> (); get() -> u64 }`.
    pub fn description(&self) -> &'static str {
        self.description
    }

    /// The fingerprint.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{:016x}", self.name, self.fingerprint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_the_reference_vectors() {
        // From the FNV reference (draft-eastlake-fnv): "" and "a".
        assert_eq!(fnv1a(FNV_OFFSET, b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(FNV_OFFSET, b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(FNV_OFFSET, b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn type_arguments_change_the_fingerprint() {
        let a = Protocol::new("Store", "Store { put(v: T) -> () }", &["u8"]);
        let b = Protocol::new("Store", "Store { put(v: T) -> () }", &["alloc::string::String"]);
        assert_ne!(a.fingerprint(), b.fingerprint());
        assert_eq!(a.to_string(), format!("Store#{:016x}", a.fingerprint()));
    }
}

/// How a reference crosses to another node: which node (identifier, address and
/// incarnation), which export there, the agent's protocol fingerprint, and for an agent
/// exported only by being sent, the secret that lets a holder reach it. Not for
/// applications.
#[doc(hidden)]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct WireRef {
    pub node: [u8; 32],
    pub addr: String,
    pub incarnation: u64,
    pub slot: u32,
    pub token: u64,
    pub fingerprint: u64,
}

thread_local! {
    /// What encodes and decodes references in the message being encoded or decoded on
    /// this thread (set by the node layer around each one).
    static REF_SCOPE: std::cell::RefCell<Option<std::sync::Arc<dyn std::any::Any + Send + Sync>>> =
        const { std::cell::RefCell::new(None) };
}

/// Runs `f` (an encode or a decode) with `scope` handling the references in it. Not for
/// applications.
#[doc(hidden)]
pub fn with_ref_scope<R>(scope: std::sync::Arc<dyn std::any::Any + Send + Sync>, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<std::sync::Arc<dyn std::any::Any + Send + Sync>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            REF_SCOPE.with(|s| *s.borrow_mut() = previous);
        }
    }
    let previous = REF_SCOPE.with(|s| s.borrow_mut().replace(scope));
    let _restore = Restore(previous);
    f()
}

fn ref_scope() -> Option<std::sync::Arc<dyn std::any::Any + Send + Sync>> {
    REF_SCOPE.with(|s| s.borrow().clone())
}

/// A reference inside a remote message or reply arrives on the other node as a working
/// reference to the same agent (through the secure link between the nodes), as Erlang
/// pids do. Outside of one (serializing an `ActorRef` into a file, say) it is an error.
impl<A: RemoteAgent> Serialize for crate::ActorRef<A> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let Some(scope) = ref_scope() else {
            return Err(serde::ser::Error::custom(
                "an ActorRef can only be serialized inside a message to another node",
            ));
        };
        let wire = A::ref_to_wire(self, &*scope).map_err(serde::ser::Error::custom)?;
        wire.serialize(serializer)
    }
}

impl<'de, A: RemoteAgent> serde::Deserialize<'de> for crate::ActorRef<A> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let wire = WireRef::deserialize(deserializer)?;
        let Some(scope) = ref_scope() else {
            return Err(serde::de::Error::custom(
                "an ActorRef can only be deserialized from a message from another node",
            ));
        };
        A::ref_from_wire(wire, &*scope).map_err(serde::de::Error::custom)
    }
}
