//! Canonical, type-tagged bytes for everything an identity signs.
//!
//! A signature never covers a bare body: it covers
//! `"troupe/signed\0" || version || purpose || body length || body`, so a signature
//! produced for one [`Purpose`] can never be accepted for another, and no other protocol
//! that happens to sign with the same key can produce bytes that parse as ours.

use std::fmt;

/// Domain separator in front of every signed message.
const SIGNING_DOMAIN: &[u8] = b"troupe/signed\0";
/// Version of the signed-bytes layout.
pub(crate) const SIGNING_VERSION: u8 = 1;

/// What a signature is for. Part of the signed bytes, so purposes cannot be confused.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Purpose {
    /// Binds an identity to the Noise static key of one secure channel.
    NoiseStaticKey,
    /// A node states that it hosts an agent identity.
    AgentAttestation,
    /// An authority states that a subject has some attributes.
    Credential,
}

impl Purpose {
    /// The tag written into the signed bytes. Never reuse a retired value.
    pub const fn tag(self) -> u16 {
        match self {
            Purpose::NoiseStaticKey => 1,
            Purpose::AgentAttestation => 2,
            Purpose::Credential => 3,
        }
    }
}

/// The exact bytes that are signed for `purpose` over `body`.
///
/// ```
/// use actor_secure::signing::{signed_bytes, Purpose};
///
/// let a = signed_bytes(Purpose::NoiseStaticKey, b"body");
/// let b = signed_bytes(Purpose::AgentAttestation, b"body");
/// assert_ne!(a, b);
/// ```
pub fn signed_bytes(purpose: Purpose, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(SIGNING_DOMAIN.len() + 7 + body.len());
    out.extend_from_slice(SIGNING_DOMAIN);
    out.push(SIGNING_VERSION);
    out.extend_from_slice(&purpose.tag().to_be_bytes());
    // Bodies are small, fixed-layout records; the length still goes in so that a body can
    // never be extended without changing the signed bytes' framing.
    let len = u32::try_from(body.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// An Ed25519 signature (64 bytes).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature(pub(crate) [u8; 64]);

impl Signature {
    /// Wraps 64 raw signature bytes.
    pub const fn from_bytes(bytes: [u8; 64]) -> Signature {
        Signature(bytes)
    }

    /// The 64 raw bytes.
    pub const fn to_bytes(&self) -> [u8; 64] {
        self.0
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature(")?;
        for b in &self.0[..8] {
            write!(f, "{b:02x}")?;
        }
        write!(f, "..)")
    }
}

/// A signature did not verify.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SignatureError;

impl fmt::Display for SignatureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("signature does not verify")
    }
}

impl std::error::Error for SignatureError {}
