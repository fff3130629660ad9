//! Channel errors. They are for the local side only: nothing of them goes to the peer,
//! which just sees the connection close.

use std::fmt;
use std::io;

use crate::identifier::Identifier;

/// Why a secure channel could not be opened or used.
///
/// After any error other than [`ChannelError::MessageTooLarge`] on send, the channel (or
/// half) is dead: further calls return [`ChannelError::Broken`].
#[non_exhaustive]
#[derive(Debug)]
pub enum ChannelError {
    /// The underlying stream failed.
    Io(io::Error),
    /// The handshake (or its first message) did not finish within the configured time,
    /// or a frame or a fragmented message stalled half-way for longer than its timeout.
    Timeout,
    /// The handshake failed; the peer learns nothing but a closed connection.
    Handshake(HandshakeError),
    /// The peer authenticated, but the trust policy does not accept it.
    UntrustedPeer(Identifier),
    /// Too many handshakes are already in progress (see [`crate::HandshakeLimiter`]).
    Busy,
    /// The peer closed the channel with an authenticated close.
    Closed,
    /// The stream ended without an authenticated close: the connection was cut (or an
    /// attacker truncated it). Never a clean end.
    ConnectionLost,
    /// A frame failed authentication (tampered, replayed, reordered or spliced).
    Decrypt,
    /// The peer broke the framing rules.
    Protocol(&'static str),
    /// A message is larger than the configured limit.
    MessageTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The channel has used up its nonces; open a new channel.
    NonceExhausted,
    /// The channel failed earlier and can no longer be used.
    Broken,
    /// Nothing, not even a keepalive, arrived for the idle timeout: the peer is gone or
    /// hung.
    IdleTimeout,
    /// A write did not reach the stream within the write timeout: the peer stopped
    /// reading.
    WriteTimeout,
    /// The process already has as many channels open as its
    /// [`ChannelLimits`](crate::ChannelLimits) allow; nothing was sent.
    TooManyChannels {
        /// The limit.
        limit: usize,
    },
    /// Incomplete messages of all channels sharing a
    /// [`ChannelLimits`](crate::ChannelLimits) would exceed its memory budget; this
    /// channel was closed rather than let one more peer hold memory.
    OverBudget {
        /// The budget in bytes.
        budget: usize,
    },
}

impl fmt::Display for ChannelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChannelError::Io(e) => write!(f, "i/o error: {e}"),
            ChannelError::Timeout => f.write_str("timed out"),
            ChannelError::Handshake(e) => write!(f, "handshake failed: {e}"),
            ChannelError::UntrustedPeer(id) => write!(f, "peer {id} is not trusted"),
            ChannelError::Busy => f.write_str("too many handshakes in progress"),
            ChannelError::Closed => f.write_str("channel closed by peer"),
            ChannelError::ConnectionLost => f.write_str("connection lost without close"),
            ChannelError::Decrypt => f.write_str("frame failed authentication"),
            ChannelError::Protocol(what) => write!(f, "protocol violation: {what}"),
            ChannelError::MessageTooLarge { limit } => {
                write!(f, "message larger than {limit} bytes")
            }
            ChannelError::NonceExhausted => f.write_str("nonces exhausted; open a new channel"),
            ChannelError::Broken => f.write_str("channel unusable after an earlier error"),
            ChannelError::IdleTimeout => f.write_str("nothing received for the idle timeout"),
            ChannelError::WriteTimeout => f.write_str("peer did not read within the write timeout"),
            ChannelError::TooManyChannels { limit } => {
                write!(f, "too many channels open (limit {limit})")
            }
            ChannelError::OverBudget { budget } => write!(
                f,
                "incomplete messages of all channels over the memory budget ({budget} bytes)"
            ),
        }
    }
}

impl std::error::Error for ChannelError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ChannelError::Io(e) => Some(e),
            ChannelError::Handshake(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for ChannelError {
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            ChannelError::ConnectionLost
        } else {
            ChannelError::Io(e)
        }
    }
}

impl From<HandshakeError> for ChannelError {
    fn from(e: HandshakeError) -> Self {
        ChannelError::Handshake(e)
    }
}

/// Why a handshake failed.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HandshakeError {
    /// A handshake message has a length this protocol never produces.
    BadLength,
    /// A handshake message failed decryption: tampered, from another session, or sent
    /// with a different prologue (protocol or version).
    Decrypt,
    /// The identity payload does not decode.
    BadPayload(PayloadError),
    /// The identity signature does not cover the Noise static key the peer proved.
    BadSignature,
    /// The identity signature has expired (or the two machines' clocks differ by more
    /// than the binding validity).
    Expired,
    /// The peer used an all-zero or small-order X25519 key.
    WeakKey,
    /// The peer echoed our own static key (a reflected handshake).
    Reflected,
    /// The first handshake message carried a payload (ours never does).
    UnexpectedPayload,
    /// The peer proved our own identity: a connection to ourselves (or a stolen key).
    SelfConnection,
    /// The peer's identity signature claims to stay valid for longer than
    /// [`MAX_BINDING_VALIDITY`](crate::MAX_BINDING_VALIDITY) from now.
    ValidityTooLong,
    /// The Noise library refused an operation (an internal error).
    Noise,
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandshakeError::BadLength => f.write_str("message of invalid length"),
            HandshakeError::Decrypt => f.write_str("message failed authentication"),
            HandshakeError::BadPayload(e) => write!(f, "bad identity payload: {e}"),
            HandshakeError::BadSignature => f.write_str("identity does not sign the channel key"),
            HandshakeError::Expired => f.write_str("identity signature expired"),
            HandshakeError::WeakKey => f.write_str("weak key"),
            HandshakeError::Reflected => f.write_str("reflected handshake"),
            HandshakeError::UnexpectedPayload => f.write_str("unexpected payload"),
            HandshakeError::SelfConnection => f.write_str("peer has our own identity"),
            HandshakeError::ValidityTooLong => {
                f.write_str("identity signature valid for longer than allowed")
            }
            HandshakeError::Noise => f.write_str("noise state error"),
        }
    }
}

impl std::error::Error for HandshakeError {}

/// Why a handshake identity payload does not decode.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PayloadError {
    /// Not exactly the length of a payload of its version (truncated or trailing bytes).
    Length {
        /// The length that was given.
        len: usize,
    },
    /// Unknown payload version.
    Version(u8),
    /// The identity key is not a valid Ed25519 public key.
    IdentityKey,
}

impl fmt::Display for PayloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PayloadError::Length { len } => write!(f, "wrong length {len}"),
            PayloadError::Version(v) => write!(f, "unknown version {v}"),
            PayloadError::IdentityKey => f.write_str("invalid identity key"),
        }
    }
}

impl std::error::Error for PayloadError {}
