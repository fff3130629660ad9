//! [`SecureChannel`]: a mutually authenticated, encrypted message channel over any stream.

mod cipher;
pub(crate) mod handshake;
mod resolver;
pub(crate) mod static_key;
mod transport;
pub(crate) mod verified;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadHalf, WriteHalf};

use crate::error::ChannelError;
use crate::identifier::Identifier;
use crate::identity::{Identity, PublicIdentity};
use crate::limits::{ChannelLimits, ChannelSlot};
use crate::trust::TrustPolicy;
use transport::{Received, Receiver, Sender};

pub(crate) use transport::deadline_after;

/// The longest a handshake binding may be valid: [`ChannelConfig::binding_validity`] is
/// capped to it, and a peer's binding that claims a longer life is refused.
pub const MAX_BINDING_VALIDITY: Duration = Duration::from_secs(3600);

/// Tunables of a channel. The defaults suit most uses; every bound has one, so a peer
/// that stalls, drips, hoards or never reads is dropped after a while.
///
/// Any duration may be `Duration::MAX`, which means "never"; no value panics.
///
/// | setting | default | bounds |
/// |---|---|---|
/// | [`handshake_timeout`](Self::handshake_timeout) | 10 s | the whole handshake |
/// | [`first_message_timeout`](Self::first_message_timeout) | 3 s | a connection's first handshake message |
/// | [`frame_timeout`](Self::frame_timeout) | 30 s | the rest of a frame that started |
/// | [`message_timeout`](Self::message_timeout) | 60 s | the rest of a message sent in fragments |
/// | [`idle_timeout`](Self::idle_timeout) | 120 s | silence from the peer (keepalives count) |
/// | [`keepalive_interval`](Self::keepalive_interval) | 30 s | our silence before a keepalive |
/// | [`write_timeout`](Self::write_timeout) | 30 s | a write the peer does not read |
/// | [`max_message_size`](Self::max_message_size) | 1 MiB | one message, either way |
/// | [`limits`](Self::limits) | [`ChannelLimits::global`] | channels and buffered bytes of the process |
/// | [`binding_validity`](Self::binding_validity) | 2 min | our signed handshake binding (at most 1 h) |
///
/// ```
/// use std::time::Duration;
/// use actor_secure::ChannelConfig;
///
/// let config = ChannelConfig::default()
///     .handshake_timeout(Duration::from_secs(2))
///     .max_message_size(4 << 20)
///     .idle_timeout(Duration::MAX);                // never close a quiet channel
/// # let _ = config;
/// ```
#[derive(Clone, Debug)]
pub struct ChannelConfig {
    pub(crate) handshake_timeout: Duration,
    pub(crate) first_message_timeout: Duration,
    pub(crate) frame_timeout: Duration,
    pub(crate) message_timeout: Duration,
    pub(crate) idle_timeout: Duration,
    pub(crate) keepalive_interval: Duration,
    pub(crate) write_timeout: Duration,
    pub(crate) max_message_size: usize,
    pub(crate) rekey_after_frames: u64,
    pub(crate) binding_validity: Duration,
    pub(crate) limits: ChannelLimits,
}

/// The default [`ChannelConfig::max_message_size`]: 1 MiB.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 1024 * 1024;

impl Default for ChannelConfig {
    fn default() -> Self {
        ChannelConfig {
            handshake_timeout: Duration::from_secs(10),
            first_message_timeout: Duration::from_secs(3),
            frame_timeout: Duration::from_secs(30),
            message_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(120),
            keepalive_interval: Duration::from_secs(30),
            write_timeout: Duration::from_secs(30),
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            rekey_after_frames: 1 << 20,
            binding_validity: Duration::from_secs(120),
            limits: ChannelLimits::global(),
        }
    }
}

impl ChannelConfig {
    /// The whole handshake must finish within `d` (default 10 s); a peer that stalls or
    /// drips bytes is dropped with [`ChannelError::Timeout`].
    pub fn handshake_timeout(mut self, d: Duration) -> Self {
        self.handshake_timeout = d;
        self
    }

    /// A responder waits at most `d` (default 3 s) for the first handshake message, and
    /// does no expensive work (key generation, signing) before it arrives: connections
    /// that never speak are dropped early with [`ChannelError::Timeout`].
    pub fn first_message_timeout(mut self, d: Duration) -> Self {
        self.first_message_timeout = d;
        self
    }

    /// Once a frame has started arriving, the rest must arrive within `d` (default 30 s),
    /// or [`ChannelError::Timeout`]. The deadline belongs to the frame, not to the call:
    /// `recv()` cancelled and called again does not restart it.
    pub fn frame_timeout(mut self, d: Duration) -> Self {
        self.frame_timeout = d;
        self
    }

    /// Once the first fragment of a large message has arrived, the whole message must
    /// arrive within `d` (default 60 s), or [`ChannelError::Timeout`]. Bounds how long a
    /// peer can make the receiver hold a partial message.
    pub fn message_timeout(mut self, d: Duration) -> Self {
        self.message_timeout = d;
        self
    }

    /// If nothing at all (not even a keepalive) arrives for `d` (default 120 s), `recv()`
    /// fails with [`ChannelError::IdleTimeout`]. (It is checked every `d`, so a silent
    /// peer is found between `d` and `2d` after its last frame.) Keep it at least twice
    /// the peer's [`keepalive_interval`](Self::keepalive_interval).
    pub fn idle_timeout(mut self, d: Duration) -> Self {
        self.idle_timeout = d;
        self
    }

    /// A [`SecureChannel`] waiting in `recv()` checks every `d` (default 30 s) whether it
    /// has sent anything since the last check, and sends a keepalive if not (so between
    /// `d` and `2d` after its last write): a quiet but live channel never looks idle to
    /// the peer. A split channel's writer sends one when you call
    /// [`ChannelWriter::keepalive`].
    pub fn keepalive_interval(mut self, d: Duration) -> Self {
        self.keepalive_interval = d;
        self
    }

    /// A write (one buffer of up to 128 KiB, a flush or the close) must reach the stream
    /// within `d` (default 30 s), or [`ChannelError::WriteTimeout`]: a peer that stops
    /// reading cannot block a sender for ever.
    pub fn write_timeout(mut self, d: Duration) -> Self {
        self.write_timeout = d;
        self
    }

    /// The largest message this side sends or accepts (default 1 MiB). Sending a larger
    /// one fails with [`ChannelError::MessageTooLarge`] and sends nothing; receiving one
    /// closes the channel with the same error before more than the limit is buffered.
    /// Both sides should agree on it.
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.max_message_size = bytes;
        self
    }

    /// Switch to a fresh key after this many frames sent (default 2^20, at most 64 GiB).
    pub fn rekey_after_frames(mut self, frames: u64) -> Self {
        self.rekey_after_frames = frames.max(1);
        self
    }

    /// How long our identity's signature over its Noise static key is valid (default
    /// 2 min, at most [`MAX_BINDING_VALIDITY`]). This bounds how long a captured handshake
    /// payload (or, with a leaked static key, an impersonation) stays usable.
    ///
    /// The static key and its signature are made once and shared by the identity's
    /// handshakes until half this validity is left, then replaced (the transport keys are
    /// fresh for every channel all the same). So a signature we send has between half and
    /// all of the validity left: half of it must exceed the clock difference between the
    /// two machines.
    pub fn binding_validity(mut self, d: Duration) -> Self {
        self.binding_validity = d.min(MAX_BINDING_VALIDITY);
        self
    }

    /// The shared bounds this channel counts against (default
    /// [`ChannelLimits::global`]): open channels, and bytes of incomplete messages.
    pub fn limits(mut self, limits: ChannelLimits) -> Self {
        self.limits = limits;
        self
    }
}

/// A mutually authenticated, encrypted, message-oriented channel over a byte stream.
///
/// ```
/// use actor_secure::{Identity, SecureChannel, TrustPolicy, ChannelError};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), ChannelError> {
/// let (alice, bob) = (Identity::generate(), Identity::generate());
/// let (alice_id, bob_id) = (alice.identifier(), bob.identifier());
/// let (a, b) = tokio::io::duplex(64 * 1024);
/// let server = tokio::spawn(async move {
///     let mut ch = SecureChannel::respond(b, &bob, TrustPolicy::allow([alice_id])).await?;
///     let msg = ch.recv().await?;
///     ch.send(&msg).await?;                                   // echo
///     assert!(matches!(ch.recv().await, Err(ChannelError::Closed)));
///     Ok::<_, ChannelError>(())
/// });
/// let mut ch = SecureChannel::initiate(a, &alice, TrustPolicy::allow([bob_id])).await?;
/// assert_eq!(ch.peer(), &bob_id);
/// ch.send(b"hello").await?;
/// assert_eq!(&ch.recv().await?[..], b"hello");
/// ch.close().await?;
/// server.await.unwrap()?;
/// # Ok(())
/// # }
/// ```
pub struct SecureChannel<IO> {
    io: IO,
    peer: Identifier,
    peer_identity: PublicIdentity,
    tx: Sender,
    rx: Receiver,
    slot: Arc<ChannelSlot>,
}

impl<IO> SecureChannel<IO>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    /// Opens a channel as the initiator (the side that connected), authenticating as
    /// `identity` and accepting the responder only if `policy` allows it.
    pub async fn initiate(io: IO, identity: &Identity, policy: TrustPolicy) -> Result<Self, ChannelError> {
        Self::initiate_with(io, identity, policy, &ChannelConfig::default()).await
    }

    /// Opens a channel as the responder (the side that accepted).
    pub async fn respond(io: IO, identity: &Identity, policy: TrustPolicy) -> Result<Self, ChannelError> {
        Self::respond_with(io, identity, policy, &ChannelConfig::default()).await
    }

    /// [`SecureChannel::initiate`] with a [`ChannelConfig`].
    pub async fn initiate_with(
        io: IO,
        identity: &Identity,
        policy: TrustPolicy,
        config: &ChannelConfig,
    ) -> Result<Self, ChannelError> {
        Self::open(io, identity, policy, config, true, None).await
    }

    /// [`SecureChannel::respond`] with a [`ChannelConfig`].
    pub async fn respond_with(
        io: IO,
        identity: &Identity,
        policy: TrustPolicy,
        config: &ChannelConfig,
    ) -> Result<Self, ChannelError> {
        Self::open(io, identity, policy, config, false, None).await
    }

    /// A responder that asks `gate` for a permit once the peer's first message is in,
    /// before any expensive work (see [`crate::HandshakeLimiter`]).
    pub(crate) async fn respond_gated(
        io: IO,
        identity: &Identity,
        policy: TrustPolicy,
        config: &ChannelConfig,
        gate: handshake::Gate<'_>,
    ) -> Result<Self, ChannelError> {
        Self::open(io, identity, policy, config, false, Some(gate)).await
    }

    async fn open(
        mut io: IO,
        identity: &Identity,
        policy: TrustPolicy,
        config: &ChannelConfig,
        initiator: bool,
        gate: Option<handshake::Gate<'_>>,
    ) -> Result<Self, ChannelError> {
        // The slot is taken before any work, and held until the channel is dropped.
        let Some(slot) = config.limits.try_open() else {
            tracing::warn!(
                limit = config.limits.max_channels(),
                initiator,
                "secure channel refused: too many channels open"
            );
            return Err(ChannelError::TooManyChannels {
                limit: config.limits.max_channels(),
            });
        };
        let done = handshake::run(&mut io, identity, &policy, config, initiator, gate).await;
        let est = match done {
            Ok(est) => est,
            Err(e) => {
                // Nothing goes back to the peer: it just sees the stream end.
                tracing::debug!(error = %e, initiator, "secure channel handshake failed");
                return Err(e);
            }
        };
        Ok(SecureChannel {
            io,
            peer: est.peer.identifier(),
            peer_identity: est.peer,
            tx: Sender::new(est.send, config),
            rx: Receiver::new(est.recv, config),
            slot: Arc::new(slot),
        })
    }

    /// The authenticated peer's identifier.
    pub fn peer(&self) -> &Identifier {
        &self.peer
    }

    /// The authenticated peer's public identity (its Ed25519 key).
    pub fn peer_identity(&self) -> &PublicIdentity {
        &self.peer_identity
    }

    /// Sends one message of any size (up to the configured maximum) and flushes.
    ///
    /// If the future is dropped while the message is still being queued, the writer is
    /// broken (the peer could not tell where the message ends); dropped while flushing,
    /// the rest goes out with the next `send`, `flush` or `keepalive`.
    pub async fn send(&mut self, msg: &[u8]) -> Result<(), ChannelError> {
        self.tx.feed(&mut self.io, msg).await?;
        self.tx.flush(&mut self.io).await
    }

    /// Queues one message without flushing, for batching many small messages; call
    /// [`SecureChannel::flush`] after the batch. Full buffers are written out on the way.
    pub async fn feed(&mut self, msg: &[u8]) -> Result<(), ChannelError> {
        self.tx.feed(&mut self.io, msg).await
    }

    /// Writes out all queued messages.
    pub async fn flush(&mut self) -> Result<(), ChannelError> {
        self.tx.flush(&mut self.io).await
    }

    /// Receives the next whole message. Returns [`ChannelError::Closed`] after the peer's
    /// authenticated close, and [`ChannelError::ConnectionLost`] if the stream ends
    /// without one.
    ///
    /// While it waits, it sends a keepalive whenever this side has sent nothing for the
    /// [keepalive interval](ChannelConfig::keepalive_interval), so a channel both sides
    /// keep reading never goes idle. Cancel-safe: dropping the future loses no data, and
    /// the deadlines of a frame or message under way keep running.
    pub async fn recv(&mut self) -> Result<Bytes, ChannelError> {
        loop {
            let due = self.tx.keepalive_due();
            match self.rx.recv(&mut self.io, due).await? {
                Received::Message(msg) => return Ok(msg),
                Received::KeepaliveDue => self.tx.keepalive_if_quiet(&mut self.io).await?,
            }
        }
    }

    /// Sends a keepalive now (and anything fed before it). `recv()` does this by itself
    /// when it is due.
    pub async fn keepalive(&mut self) -> Result<(), ChannelError> {
        self.tx.keepalive(&mut self.io).await
    }

    /// Sends an authenticated close and shuts the stream's write side.
    pub async fn close(mut self) -> Result<(), ChannelError> {
        self.tx.close(&mut self.io).await
    }

    /// Splits into a reader and a writer that can be used from different tasks.
    pub fn split(self) -> (ChannelReader<IO>, ChannelWriter<IO>) {
        let (r, w) = tokio::io::split(self.io);
        (
            ChannelReader {
                io: r,
                peer: self.peer,
                rx: self.rx,
                _slot: self.slot.clone(),
            },
            ChannelWriter {
                io: w,
                peer: self.peer,
                tx: self.tx,
                _slot: self.slot,
            },
        )
    }

    /// Sets the next send and receive nonces. Only for tests of nonce exhaustion: any
    /// other use breaks the channel.
    ///
    /// Exists only with the `test-util` feature of `actor-secure`: off by default, so a
    /// user's build has it only if it asks for it. This crate's own tests turn it on
    /// through a dev-dependency on itself.
    #[cfg(any(test, feature = "test-util"))]
    #[doc(hidden)]
    pub fn set_nonces_for_testing(&mut self, send: u64, recv: u64) {
        self.tx.set_nonce(send);
        self.rx.set_nonce(recv);
    }

    /// The next send and receive nonces (for tests). Only with the `test-util` feature,
    /// like [`SecureChannel::set_nonces_for_testing`].
    #[cfg(any(test, feature = "test-util"))]
    #[doc(hidden)]
    pub fn nonces_for_testing(&self) -> (u64, u64) {
        (self.tx.nonce(), self.rx.nonce())
    }
}

/// The receiving half of a [`SecureChannel`].
pub struct ChannelReader<IO> {
    io: ReadHalf<IO>,
    peer: Identifier,
    rx: Receiver,
    _slot: Arc<ChannelSlot>,
}

impl<IO: AsyncRead + Unpin> ChannelReader<IO> {
    /// The authenticated peer's identifier.
    pub fn peer(&self) -> &Identifier {
        &self.peer
    }

    /// Receives the next whole message (see [`SecureChannel::recv`]). A reader cannot
    /// send keepalives: the writer half must send something (a message, or
    /// [`ChannelWriter::keepalive`]) at least every keepalive interval, or the peer will
    /// close the channel as idle.
    pub async fn recv(&mut self) -> Result<Bytes, ChannelError> {
        loop {
            if let Received::Message(msg) = self.rx.recv(&mut self.io, None).await? {
                return Ok(msg);
            }
        }
    }
}

/// The sending half of a [`SecureChannel`].
pub struct ChannelWriter<IO> {
    io: WriteHalf<IO>,
    peer: Identifier,
    tx: Sender,
    _slot: Arc<ChannelSlot>,
}

impl<IO: AsyncWrite + Unpin> ChannelWriter<IO> {
    /// The authenticated peer's identifier.
    pub fn peer(&self) -> &Identifier {
        &self.peer
    }

    /// Sends one message and flushes (see [`SecureChannel::send`]).
    pub async fn send(&mut self, msg: &[u8]) -> Result<(), ChannelError> {
        self.tx.feed(&mut self.io, msg).await?;
        self.tx.flush(&mut self.io).await
    }

    /// Queues one message without flushing (see [`SecureChannel::feed`]).
    pub async fn feed(&mut self, msg: &[u8]) -> Result<(), ChannelError> {
        self.tx.feed(&mut self.io, msg).await
    }

    /// Writes out all queued messages.
    pub async fn flush(&mut self) -> Result<(), ChannelError> {
        self.tx.flush(&mut self.io).await
    }

    /// Sends a keepalive now (and anything fed before it). Call it from your writer task
    /// when nothing else has been sent for the keepalive interval.
    pub async fn keepalive(&mut self) -> Result<(), ChannelError> {
        self.tx.keepalive(&mut self.io).await
    }

    /// When a keepalive is due if nothing else is sent before (for a writer task's
    /// timer), or `None` if the writer is closed or keepalives are off.
    pub fn keepalive_due(&self) -> Option<tokio::time::Instant> {
        self.tx.keepalive_due()
    }

    /// Sends an authenticated close and shuts the write side; the reader half keeps
    /// receiving until the peer closes too.
    pub async fn close(mut self) -> Result<(), ChannelError> {
        self.tx.close(&mut self.io).await
    }
}

// Debug shows who the channel is with, never buffers or key state.
impl<IO> std::fmt::Debug for SecureChannel<IO> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecureChannel")
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

impl<IO> std::fmt::Debug for ChannelReader<IO> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelReader")
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

impl<IO> std::fmt::Debug for ChannelWriter<IO> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelWriter")
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}
