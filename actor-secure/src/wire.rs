//! The wire format, in one place. Pinned by golden vectors in `tests/vectors/`.
//!
//! # Handshake
//!
//! `Noise_XX_25519_ChaChaPoly_BLAKE2s` with [`PROLOGUE`] (protocol name and version): the
//! suite is fixed, nothing is negotiated, and a peer speaking another version fails at the
//! first authenticated message. Each handshake message travels as a 2-byte big-endian
//! length followed by the Noise message:
//!
//! ```text
//! -> e                  msg1: 32 bytes, empty payload
//! <- e, ee, s, es       msg2: 32 + 48 + (105 + 16) bytes, payload = responder's HandshakePayload
//! -> s, se              msg3: 48 + (105 + 16) bytes,      payload = initiator's HandshakePayload
//! ```
//!
//! An identity's Noise static key is kept for the channels it opens and accepts while
//! more than half of its binding's validity is left, then replaced by a fresh one. The
//! payload binds it to the sender's long-term Ed25519 identity (see
//! [`HandshakePayload`]); forward secrecy comes from the ephemeral keys (`ee`).
//!
//! # Transport
//!
//! A frame is a 2-byte big-endian length `L` (`19..=65535`) followed by `L` bytes of
//! ChaCha20-Poly1305 ciphertext and tag (Noise transport encryption, one key per
//! direction, implicit nonces counting from 0, empty associated data). The plaintext is
//! one or more records, each `kind (1) || body length (2, big-endian) || body`; see
//! [`RecordKind`]. Many small messages share one frame (one AEAD operation) when they are
//! sent together; a message larger than a frame is sent as `More` records followed by one
//! `Data` record, each in its own frame.

use std::fmt;

use crate::channel::MAX_BINDING_VALIDITY;
use crate::error::{HandshakeError, PayloadError};
use crate::identity::{Identity, PublicIdentity};
use crate::signing::{Purpose, Signature};

/// The Noise protocol name. There is no other.
pub const NOISE_PARAMS: &str = "Noise_XX_25519_ChaChaPoly_BLAKE2s";

/// The Noise prologue: our protocol's name and version. Both sides hash it into the
/// handshake, so a peer with another version (or a downgrade by a man in the middle)
/// fails authentication.
pub const PROLOGUE: &[u8] = b"troupe/secure-channel/1 Noise_XX_25519_ChaChaPoly_BLAKE2s";

/// The largest Noise message (handshake or transport), in bytes.
pub const MAX_NOISE_MESSAGE: usize = 65535;

/// AEAD tag length.
pub const TAG_LEN: usize = 16;

/// Length of the first handshake message (an ephemeral key and no payload).
pub const MSG1_LEN: usize = 32;
/// Length of the second handshake message with a version 1 payload.
pub const MSG2_LEN: usize = 32 + 32 + TAG_LEN + HandshakePayload::LEN + TAG_LEN;
/// Length of the third handshake message with a version 1 payload.
pub const MSG3_LEN: usize = 32 + TAG_LEN + HandshakePayload::LEN + TAG_LEN;

/// The smallest transport frame: one empty record and the tag.
pub const MIN_FRAME_LEN: usize = RECORD_HEADER_LEN + TAG_LEN;

/// Most body bytes one record can carry (a record alone in a full frame).
pub const MAX_RECORD_BODY: usize = MAX_NOISE_MESSAGE - TAG_LEN - RECORD_HEADER_LEN;

/// The identity payload of handshake messages 2 and 3 (version 1, 105 bytes):
///
/// ```text
/// version (1) = 1 || Ed25519 identity public key (32) || expiry, big-endian Unix seconds (8)
///   || Ed25519 signature (64) over signed_bytes(NoiseStaticKey, noise_static_key (32) || expiry (8))
/// ```
///
/// Fixed-size fields, exact length, no trailing bytes: nothing in it can nest or claim a
/// length.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct HandshakePayload {
    identity: PublicIdentity,
    expires_at: u64,
    signature: Signature,
}

impl HandshakePayload {
    /// Encoded length of a version 1 payload.
    pub const LEN: usize = 1 + 32 + 8 + 64;
    /// The payload version this build speaks.
    pub const VERSION: u8 = 1;

    /// `identity` signs `noise_static`, valid until `expires_at` (Unix seconds).
    pub fn sign(identity: &Identity, noise_static: &[u8; 32], expires_at: u64) -> Self {
        let body = Self::body(noise_static, expires_at);
        HandshakePayload {
            identity: *identity.public(),
            expires_at,
            signature: identity.sign(Purpose::NoiseStaticKey, &body),
        }
    }

    fn body(noise_static: &[u8; 32], expires_at: u64) -> [u8; 40] {
        let mut body = [0u8; 40];
        body[..32].copy_from_slice(noise_static);
        body[32..].copy_from_slice(&expires_at.to_be_bytes());
        body
    }

    /// The identity that signed.
    pub fn identity(&self) -> &PublicIdentity {
        &self.identity
    }

    /// Expiry in Unix seconds.
    pub fn expires_at(&self) -> u64 {
        self.expires_at
    }

    /// Checks that the payload's identity signed `noise_static` (the key the handshake
    /// authenticated), that the signature has not expired at `now` (Unix seconds), and
    /// that it does not claim to stay valid for more than
    /// [`MAX_BINDING_VALIDITY`].
    pub fn verify(&self, noise_static: &[u8; 32], now: u64) -> Result<(), HandshakeError> {
        let body = Self::body(noise_static, self.expires_at);
        self.identity
            .verify(Purpose::NoiseStaticKey, &body, &self.signature)
            .map_err(|_| HandshakeError::BadSignature)?;
        if now >= self.expires_at {
            return Err(HandshakeError::Expired);
        }
        // A binding that outlives its handshake by hours only helps someone who steals
        // the channel key; honest peers sign for minutes.
        if self.expires_at - now > MAX_BINDING_VALIDITY.as_secs() {
            return Err(HandshakeError::ValidityTooLong);
        }
        Ok(())
    }

    /// The canonical encoding.
    pub fn encode(&self) -> [u8; Self::LEN] {
        let mut out = [0u8; Self::LEN];
        out[0] = Self::VERSION;
        out[1..33].copy_from_slice(&self.identity.to_bytes());
        out[33..41].copy_from_slice(&self.expires_at.to_be_bytes());
        out[41..].copy_from_slice(&self.signature.to_bytes());
        out
    }

    /// Decodes exactly one payload; anything else is an error.
    pub fn decode(bytes: &[u8]) -> Result<Self, PayloadError> {
        if let Some(&v) = bytes.first() {
            if v != Self::VERSION {
                return Err(PayloadError::Version(v));
            }
        }
        let bytes: &[u8; Self::LEN] = bytes
            .try_into()
            .map_err(|_| PayloadError::Length { len: bytes.len() })?;
        let mut key = [0u8; 32];
        key.copy_from_slice(&bytes[1..33]);
        let identity = PublicIdentity::from_bytes(&key).map_err(|_| PayloadError::IdentityKey)?;
        let mut expiry = [0u8; 8];
        expiry.copy_from_slice(&bytes[33..41]);
        let mut sig = [0u8; 64];
        sig.copy_from_slice(&bytes[41..]);
        Ok(HandshakePayload {
            identity,
            expires_at: u64::from_be_bytes(expiry),
            signature: Signature::from_bytes(sig),
        })
    }
}

impl fmt::Debug for HandshakePayload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandshakePayload")
            .field("identity", &self.identity.identifier())
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// What a record in a transport frame carries.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordKind {
    /// The last (often the only) piece of a message.
    Data,
    /// A piece of a message; more pieces follow.
    More,
    /// Authenticated close; empty, the last record of the last frame.
    Close,
    /// The sender switches to the next key after this frame; empty, the last record of
    /// its frame.
    Rekey,
    /// Nothing to deliver: the sender is alive. Empty; sent when a channel has been quiet
    /// for the keepalive interval, so that the peer's idle timeout measures a dead peer,
    /// not a quiet one.
    Keepalive,
}

impl RecordKind {
    /// The byte on the wire.
    pub const fn to_byte(self) -> u8 {
        match self {
            RecordKind::Data => 0,
            RecordKind::More => 1,
            RecordKind::Close => 2,
            RecordKind::Rekey => 3,
            RecordKind::Keepalive => 4,
        }
    }
}

/// Length of a record header: kind (1) and body length (2, big-endian).
pub const RECORD_HEADER_LEN: usize = 3;

/// Why a frame or record does not decode.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// The length prefix is below [`MIN_FRAME_LEN`].
    TooShort,
    /// Fewer bytes than a record header, or a body longer than the rest of the frame.
    Truncated,
    /// Unknown record kind byte.
    UnknownKind(u8),
    /// A close or rekey record has a body or is not the last record of its frame, or a
    /// keepalive record has a body.
    BadControl,
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::TooShort => f.write_str("frame too short"),
            FrameError::Truncated => f.write_str("truncated record"),
            FrameError::UnknownKind(k) => write!(f, "unknown record kind {k}"),
            FrameError::BadControl => f.write_str("misplaced control record"),
        }
    }
}

impl std::error::Error for FrameError {}

/// Reads a frame's 2-byte length prefix and checks it (a `u16` cannot exceed
/// [`MAX_NOISE_MESSAGE`], so the cap is built into the format).
pub fn decode_frame_len(prefix: [u8; 2]) -> Result<usize, FrameError> {
    let len = usize::from(u16::from_be_bytes(prefix));
    if len < MIN_FRAME_LEN {
        return Err(FrameError::TooShort);
    }
    Ok(len)
}

/// Splits the first record off a decrypted frame plaintext: its kind, its body and the
/// records after it.
pub fn decode_record(plaintext: &[u8]) -> Result<(RecordKind, &[u8], &[u8]), FrameError> {
    if plaintext.len() < RECORD_HEADER_LEN {
        return Err(FrameError::Truncated);
    }
    let kind = match plaintext[0] {
        0 => RecordKind::Data,
        1 => RecordKind::More,
        2 => RecordKind::Close,
        3 => RecordKind::Rekey,
        4 => RecordKind::Keepalive,
        other => return Err(FrameError::UnknownKind(other)),
    };
    let len = usize::from(u16::from_be_bytes([plaintext[1], plaintext[2]]));
    let rest = &plaintext[RECORD_HEADER_LEN..];
    if len > rest.len() {
        return Err(FrameError::Truncated);
    }
    let (body, rest) = rest.split_at(len);
    if matches!(kind, RecordKind::Close | RecordKind::Rekey) && !(body.is_empty() && rest.is_empty()) {
        return Err(FrameError::BadControl);
    }
    if kind == RecordKind::Keepalive && !body.is_empty() {
        return Err(FrameError::BadControl);
    }
    Ok((kind, body, rest))
}

/// X25519 public keys (u-coordinates, bit 255 cleared) of small order on the curve or its
/// twist: Diffie-Hellman with any of them gives an output the attacker knows. The list is
/// libsodium's; `tests` in this module check each entry has order dividing 8.
const LOW_ORDER: [[u8; 32]; 7] = [
    // 0
    [0; 32],
    // 1
    [
        1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ],
    // order 8
    [
        0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3, 0xfa, 0xf1, 0x9f, 0xc4, 0x6a, 0xda,
        0x09, 0x8d, 0xeb, 0x9c, 0x32, 0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16, 0x5f, 0x49, 0xb8, 0x00,
    ],
    // order 8
    [
        0x5f, 0x9c, 0x95, 0xbc, 0xa3, 0x50, 0x8c, 0x24, 0xb1, 0xd0, 0xb1, 0x55, 0x9c, 0x83, 0xef, 0x5b, 0x04,
        0x44, 0x5c, 0xc4, 0x58, 0x1c, 0x8e, 0x86, 0xd8, 0x22, 0x4e, 0xdd, 0xd0, 0x9f, 0x11, 0x57,
    ],
    // p - 1
    [
        0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
    ],
    // p (= 0)
    [
        0xed, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
    ],
    // p + 1 (= 1)
    [
        0xee, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
    ],
];

/// Whether `key` is an all-zero or small-order X25519 public key. snow does not check
/// this; the handshake refuses such keys for both the ephemeral and the static key.
pub fn is_low_order_x25519(key: &[u8; 32]) -> bool {
    let mut k = *key;
    k[31] &= 0x7f;
    LOW_ORDER.contains(&k)
}

#[cfg(test)]
mod tests {
    use super::*;
    use curve25519_dalek::montgomery::MontgomeryPoint;
    use curve25519_dalek::scalar::Scalar;

    #[test]
    fn every_listed_key_has_order_dividing_eight() {
        for bad in LOW_ORDER {
            let eight = MontgomeryPoint(bad) * Scalar::from(8u8);
            assert_eq!(eight.to_bytes(), [0; 32], "{bad:02x?}");
        }
    }

    #[test]
    fn every_torsion_point_of_the_curve_is_listed() {
        for p in curve25519_dalek::constants::EIGHT_TORSION {
            assert!(is_low_order_x25519(&p.to_montgomery().to_bytes()));
        }
    }

    #[test]
    fn ordinary_keys_are_not_low_order() {
        let p = MontgomeryPoint::mul_base_clamped([9; 32]);
        assert!(!is_low_order_x25519(&p.to_bytes()));
    }
}
