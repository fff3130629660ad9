//! Identities and secure channels for troupe.
//!
//! Every cross-node byte passes through a [`SecureChannel`]: a Noise
//! `XX_25519_ChaChaPoly_BLAKE2s` handshake in which both sides prove an Ed25519
//! [`Identity`], then length-delimited, encrypted frames. Identities are named by their
//! [`Identifier`]; a [`TrustPolicy`] says which peers a channel accepts.
//!
//! ```
//! use actor_secure::{ChannelError, Identity, SecureChannel, TrustPolicy};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), ChannelError> {
//! let alice = Identity::generate();
//! let bob = Identity::generate();
//! let (alice_id, bob_id) = (alice.identifier(), bob.identifier());
//! let (to_bob, to_alice) = tokio::io::duplex(64 * 1024);   // or a TcpStream
//!
//! let bob_side = tokio::spawn(async move {
//!     // Bob talks only to Alice. (A server on the network uses a `SecureListener`.)
//!     let mut ch = SecureChannel::respond(to_alice, &bob, TrustPolicy::allow([alice_id])).await?;
//!     let request = ch.recv().await?;
//!     ch.send(&request.to_ascii_uppercase()).await?;
//!     ch.close().await
//! });
//!
//! // Alice talks only to Bob: anyone else fails the handshake.
//! let mut ch = SecureChannel::initiate(to_bob, &alice, TrustPolicy::allow([bob_id])).await?;
//! ch.send(b"hello bob").await?;
//! assert_eq!(&ch.recv().await?[..], b"HELLO BOB");
//! assert!(matches!(ch.recv().await, Err(ChannelError::Closed)));   // Bob closed cleanly
//! bob_side.await.unwrap()?;
//! # Ok(())
//! # }
//! ```
//!
//! What is guaranteed, what is not, and the threat model are in the book chapter
//! "Identities and secure channels"; the exact bytes are in [`wire`].

mod agent;
mod channel;
mod credential;
mod error;
mod identifier;
mod identity;
mod limiter;
mod limits;
mod listener;
mod node;
pub mod signing;
mod trust;
pub mod wire;

pub use agent::{AgentAttestation, AttestationError};
pub use channel::{
    ChannelConfig, ChannelReader, ChannelWriter, SecureChannel, DEFAULT_MAX_MESSAGE_SIZE,
    MAX_BINDING_VALIDITY,
};
pub use credential::{
    Attributes, Authority, Credential, CredentialError, VerifiedCredential, MAX_ATTRIBUTES, MAX_CLOCK_SKEW,
    MAX_NAME_LEN, MAX_VALUE_LEN, RESERVED_ATTRIBUTES,
};
pub use error::{ChannelError, HandshakeError, PayloadError};
pub use identifier::{Identifier, ParseIdentifierError};
pub use identity::{FileKind, Identity, IdentityError, IdentityFileError, PublicIdentity};
pub use limiter::{HandshakeLimiter, HandshakePermit};
pub use limits::{ChannelLimits, DEFAULT_MAX_CHANNELS, DEFAULT_MEMORY_BUDGET};
pub use listener::{ListenerConfig, SecureListener};
/// The names of the metrics [`Node::record_metrics`] publishes.
pub use node::stats::names as metric_names;
#[doc(hidden)]
pub use node::RelayTap;
pub use node::{AccessStats, Decisions, LinkStats, NodeStats};
pub use node::{
    CallerIdentity, ClusterMember, ExportHandle, Inlet, MembershipConfig, Node, NodeBuilder, NodeError,
    NodeFaults, OutletHandle, PortalConfig, PortalStream, Registration, RelayHandle, Route,
};
pub use trust::TrustPolicy;

/// Used by the code `#[agent(remote)]` generates. Not a public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::node::refs::{ref_from_wire, ref_to_wire};
}
