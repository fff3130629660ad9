//! Agent identities: derived on demand from the node identity, attested by the node.
//!
//! Spawning an agent costs nothing here: no key is made until someone asks for the agent's
//! identity. The agent's key is derived with HKDF-SHA256 from the node's secret key and
//! the agent's stable name, so a named agent keeps its identity across restarts of the
//! node. Others learn that an agent lives on a node through an [`AgentAttestation`]
//! signed by the node.
//!
//! There is deliberately no identity derived from an agent's numeric id: ids are handed
//! out in spawn order, so after a restart that spawns in another order an id-derived
//! identity (and the trust others placed in it) would pass to a different agent.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::identifier::Identifier;
use crate::identity::{Identity, PublicIdentity};
use crate::signing::{Purpose, Signature};

/// HKDF salt: names the derivation and its version.
const AGENT_SALT: &[u8] = b"troupe/agent-identity/v1";

impl Identity {
    /// The identity of the agent called `name` on the node that owns `self`.
    ///
    /// Deterministic: the same node identity and name always give the same agent
    /// identity, and different names give unrelated ones. Use the name the agent is
    /// registered under, so that others can trust it across restarts. Costs one HKDF and one Ed25519
    /// key derivation (tens of microseconds), paid only when asked for.
    pub fn derive_agent(&self, name: &str) -> Identity {
        self.derive(b"name\0", name.as_bytes())
    }

    fn derive(&self, kind: &[u8], label: &[u8]) -> Identity {
        let seed = self.seed();
        let hk = Hkdf::<Sha256>::new(Some(AGENT_SALT), seed.as_ref());
        let mut out = Zeroizing::new([0u8; 32]);
        // `expand` only fails for outputs longer than 255 hash lengths; 32 bytes never do.
        if hk.expand_multi_info(&[kind, label], out.as_mut()).is_err() {
            unreachable!("HKDF output of 32 bytes is always valid");
        }
        Identity::from_seed(&out)
    }

    /// Signs "the agent `agent` is hosted by this node", valid for `valid_for`.
    pub fn attest_agent(&self, agent: &Identifier, valid_for: Duration) -> AgentAttestation {
        let expires_at = unix_secs(SystemTime::now()).saturating_add(valid_for.as_secs());
        self.attest_agent_until(agent, expires_at)
    }

    /// Signs "the agent `agent` is hosted by this node", valid until `expires_at` (Unix
    /// seconds).
    pub fn attest_agent_until(&self, agent: &Identifier, expires_at: u64) -> AgentAttestation {
        let body = attestation_body(&self.identifier(), agent, expires_at);
        AgentAttestation {
            node: *self.public(),
            agent: *agent,
            expires_at,
            signature: self.sign(Purpose::AgentAttestation, &body),
        }
    }
}

pub(crate) fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn attestation_body(node: &Identifier, agent: &Identifier, expires_at: u64) -> [u8; 72] {
    let mut body = [0u8; 72];
    body[..32].copy_from_slice(node.as_bytes());
    body[32..64].copy_from_slice(agent.as_bytes());
    body[64..].copy_from_slice(&expires_at.to_be_bytes());
    body
}

/// A node's signed statement that an agent identity is hosted by it.
///
/// ```
/// use std::time::Duration;
/// use actor_secure::Identity;
///
/// let node = Identity::generate();
/// let agent = node.derive_agent("billing");
/// let proof = node.attest_agent(&agent.identifier(), Duration::from_secs(3600));
///
/// // Anyone who trusts the node's identifier can check it, also after a round trip:
/// let proof = actor_secure::AgentAttestation::from_bytes(&proof.to_bytes()).unwrap();
/// assert!(proof.verify(&node.identifier()).is_ok());
/// assert_eq!(proof.agent(), &agent.identifier());
/// assert!(proof.verify(&Identity::generate().identifier()).is_err());
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct AgentAttestation {
    node: PublicIdentity,
    agent: Identifier,
    expires_at: u64,
    signature: Signature,
}

/// Version byte of the encoded attestation.
const ATTESTATION_VERSION: u8 = 1;
/// Encoded length: version, node key, agent identifier, expiry, signature.
pub(crate) const ATTESTATION_LEN: usize = 1 + 32 + 32 + 8 + 64;

/// Why an [`AgentAttestation`] is refused.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AttestationError {
    /// The bytes are not an encoded attestation.
    Malformed,
    /// It was signed by a node other than the trusted one.
    UntrustedNode,
    /// The signature does not verify.
    BadSignature,
    /// It has expired.
    Expired,
}

impl fmt::Display for AttestationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AttestationError::Malformed => "malformed attestation",
            AttestationError::UntrustedNode => "attestation from an untrusted node",
            AttestationError::BadSignature => "attestation signature does not verify",
            AttestationError::Expired => "attestation expired",
        })
    }
}

impl std::error::Error for AttestationError {}

impl AgentAttestation {
    /// The attested agent.
    pub fn agent(&self) -> &Identifier {
        &self.agent
    }

    /// The node that signed it.
    pub fn node(&self) -> &PublicIdentity {
        &self.node
    }

    /// Expiry, in seconds since the Unix epoch.
    pub fn expires_at(&self) -> u64 {
        self.expires_at
    }

    /// Checks the attestation against the node you trust, at the current time.
    pub fn verify(&self, trusted_node: &Identifier) -> Result<(), AttestationError> {
        self.verify_at(trusted_node, SystemTime::now())
    }

    /// Checks the attestation against the node you trust, at time `now`.
    pub fn verify_at(&self, trusted_node: &Identifier, now: SystemTime) -> Result<(), AttestationError> {
        if self.node.identifier() != *trusted_node {
            return Err(AttestationError::UntrustedNode);
        }
        let body = attestation_body(trusted_node, &self.agent, self.expires_at);
        self.node
            .verify(Purpose::AgentAttestation, &body, &self.signature)
            .map_err(|_| AttestationError::BadSignature)?;
        if unix_secs(now) >= self.expires_at {
            return Err(AttestationError::Expired);
        }
        Ok(())
    }

    /// Canonical encoding: version (1) || node public key (32) || agent identifier (32)
    /// || expiry, big-endian seconds (8) || signature (64).
    pub fn to_bytes(&self) -> [u8; ATTESTATION_LEN] {
        let mut out = [0u8; ATTESTATION_LEN];
        out[0] = ATTESTATION_VERSION;
        out[1..33].copy_from_slice(&self.node.to_bytes());
        out[33..65].copy_from_slice(self.agent.as_bytes());
        out[65..73].copy_from_slice(&self.expires_at.to_be_bytes());
        out[73..].copy_from_slice(&self.signature.0);
        out
    }

    /// Decodes [`AgentAttestation::to_bytes`]; exact length, no trailing bytes. Does not
    /// verify: call [`AgentAttestation::verify`].
    pub fn from_bytes(bytes: &[u8]) -> Result<AgentAttestation, AttestationError> {
        let bytes: &[u8; ATTESTATION_LEN] = bytes.try_into().map_err(|_| AttestationError::Malformed)?;
        if bytes[0] != ATTESTATION_VERSION {
            return Err(AttestationError::Malformed);
        }
        let mut key = [0u8; 32];
        key.copy_from_slice(&bytes[1..33]);
        let node = PublicIdentity::from_bytes(&key).map_err(|_| AttestationError::Malformed)?;
        let mut agent = [0u8; 32];
        agent.copy_from_slice(&bytes[33..65]);
        let mut expiry = [0u8; 8];
        expiry.copy_from_slice(&bytes[65..73]);
        let mut sig = [0u8; 64];
        sig.copy_from_slice(&bytes[73..]);
        Ok(AgentAttestation {
            node,
            agent: Identifier::from_bytes(agent),
            expires_at: u64::from_be_bytes(expiry),
            signature: Signature(sig),
        })
    }
}

impl fmt::Debug for AgentAttestation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentAttestation")
            .field("node", &self.node.identifier())
            .field("agent", &self.agent)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn different_names_and_nodes_derive_different_identities() {
        let node = Identity::from_seed(&[1; 32]);
        assert_ne!(
            node.derive_agent("a").identifier(),
            node.derive_agent("b").identifier()
        );
        let other = Identity::from_seed(&[2; 32]);
        assert_ne!(
            node.derive_agent("a").identifier(),
            other.derive_agent("a").identifier()
        );
    }

    #[test]
    fn an_expired_or_tampered_attestation_is_refused() {
        let node = Identity::from_seed(&[1; 32]);
        let agent = node.derive_agent("a").identifier();
        let att = node.attest_agent(&agent, Duration::from_secs(60));
        let later = SystemTime::now() + Duration::from_secs(120);
        assert_eq!(
            att.verify_at(&node.identifier(), later),
            Err(AttestationError::Expired)
        );
        let mut bytes = att.to_bytes();
        bytes[40] ^= 1; // another agent
        let forged = AgentAttestation::from_bytes(&bytes).unwrap();
        assert_eq!(
            forged.verify(&node.identifier()),
            Err(AttestationError::BadSignature)
        );
    }
}
