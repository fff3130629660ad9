//! [`SecureChannel`]: a mutually authenticated, encrypted message channel over any stream.

mod cipher;
pub(crate) mod handshake;
mod transport;

use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadHalf, WriteHalf};

use crate::error::ChannelError;
use crate::identifier::Identifier;
use crate::identity::{Identity, PublicIdentity};
use crate::trust::TrustPolicy;
use transport::{Receiver, Sender};

/// Tunables of a channel. The defaults suit most uses.
///
/// ```
/// use std::time::Duration;
/// use actor_secure::ChannelConfig;
///
/// let config = ChannelConfig::default()
///     .handshake_timeout(Duration::from_secs(2))
///     .max_message_size(1 << 20);
/// # let _ = config;
/// ```
#[derive(Clone, Debug)]
pub struct ChannelConfig {
    pub(crate) handshake_timeout: Duration,
    pub(crate) frame_timeout: Duration,
    pub(crate) max_message_size: usize,
    pub(crate) rekey_after_frames: u64,
    pub(crate) binding_validity: Duration,
}

impl Default for ChannelConfig {
    fn default() -> Self {
        ChannelConfig {
            handshake_timeout: Duration::from_secs(10),
            frame_timeout: Duration::from_secs(30),
            max_message_size: 16 * 1024 * 1024,
            rekey_after_frames: 1 << 20,
            binding_validity: Duration::from_secs(600),
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

    /// Once a frame has started arriving, the rest must arrive within `d` (default 30 s).
    /// An idle channel (between messages) never times out.
    pub fn frame_timeout(mut self, d: Duration) -> Self {
        self.frame_timeout = d;
        self
    }

    /// The largest message this side sends or accepts (default 16 MiB). A larger incoming
    /// message closes the channel before it is buffered.
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.max_message_size = bytes;
        self
    }

    /// Switch to a fresh key after this many frames sent (default 2^20, at most 64 GiB).
    pub fn rekey_after_frames(mut self, frames: u64) -> Self {
        self.rekey_after_frames = frames.max(1);
        self
    }

    /// How long our identity's signature over the channel's Noise key is valid (default
    /// 10 min). The key is fresh per channel, so this only bounds how long a captured
    /// handshake payload stays meaningful.
    pub fn binding_validity(mut self, d: Duration) -> Self {
        self.binding_validity = d;
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
/// let bob_id = bob.identifier();
/// let (a, b) = tokio::io::duplex(64 * 1024);
/// let server = tokio::spawn(async move {
///     let mut ch = SecureChannel::respond(b, &bob, TrustPolicy::any()).await?;
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
        Self::open(io, identity, policy, config, true).await
    }

    /// [`SecureChannel::respond`] with a [`ChannelConfig`].
    pub async fn respond_with(
        io: IO,
        identity: &Identity,
        policy: TrustPolicy,
        config: &ChannelConfig,
    ) -> Result<Self, ChannelError> {
        Self::open(io, identity, policy, config, false).await
    }

    async fn open(
        mut io: IO,
        identity: &Identity,
        policy: TrustPolicy,
        config: &ChannelConfig,
        initiator: bool,
    ) -> Result<Self, ChannelError> {
        let done = handshake::run(&mut io, identity, &policy, config, initiator).await;
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
            tx: Sender::new(est.send, config.rekey_after_frames, config.max_message_size),
            rx: Receiver::new(est.recv, config.max_message_size, config.frame_timeout),
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
    /// without one. Cancel-safe: dropping the future loses no data.
    pub async fn recv(&mut self) -> Result<Bytes, ChannelError> {
        self.rx.recv(&mut self.io).await
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
            },
            ChannelWriter {
                io: w,
                peer: self.peer,
                tx: self.tx,
            },
        )
    }

    /// Sets the next send and receive nonces. Only for tests of nonce exhaustion: any
    /// other use breaks the channel.
    #[doc(hidden)]
    pub fn set_nonces_for_testing(&mut self, send: u64, recv: u64) {
        self.tx.set_nonce(send);
        self.rx.set_nonce(recv);
    }

    /// The next send and receive nonces (for tests).
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
}

impl<IO: AsyncRead + Unpin> ChannelReader<IO> {
    /// The authenticated peer's identifier.
    pub fn peer(&self) -> &Identifier {
        &self.peer
    }

    /// Receives the next whole message (see [`SecureChannel::recv`]).
    pub async fn recv(&mut self) -> Result<Bytes, ChannelError> {
        self.rx.recv(&mut self.io).await
    }
}

/// The sending half of a [`SecureChannel`].
pub struct ChannelWriter<IO> {
    io: WriteHalf<IO>,
    peer: Identifier,
    tx: Sender,
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
