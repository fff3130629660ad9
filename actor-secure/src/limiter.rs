//! [`HandshakeLimiter`]: a bound on half-open handshakes for accept loops.

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::channel::{ChannelConfig, SecureChannel};
use crate::error::ChannelError;
use crate::identity::Identity;
use crate::trust::TrustPolicy;

/// Bounds how many handshakes run at once, so a flood of connections that never finish
/// their handshake cannot exhaust memory or tasks. Each handshake also has a timeout
/// ([`ChannelConfig::handshake_timeout`]), so a slot is always freed eventually.
///
/// ```
/// use actor_secure::{HandshakeLimiter, Identity, TrustPolicy, ChannelConfig};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let node = std::sync::Arc::new(Identity::generate());
/// let limiter = HandshakeLimiter::new(64);
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// # let addr = listener.local_addr()?;
/// # tokio::spawn(async move { let _ = tokio::net::TcpStream::connect(addr).await; });
/// let (stream, _) = listener.accept().await?;
/// let (node, limiter) = (node.clone(), limiter.clone());
/// tokio::spawn(async move {
///     // Refused at once (connection dropped) when 64 handshakes are already running.
///     let config = ChannelConfig::default();
///     if let Ok(ch) = limiter.respond(stream, &node, TrustPolicy::any(), &config).await {
///         // ... serve `ch`
/// #       drop(ch);
///     }
/// });
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct HandshakeLimiter {
    permits: Arc<Semaphore>,
}

/// A slot for one running handshake; the slot is freed on drop.
#[derive(Debug)]
pub struct HandshakePermit {
    _permit: OwnedSemaphorePermit,
}

impl HandshakeLimiter {
    /// Allows at most `max` handshakes at the same time.
    pub fn new(max: usize) -> HandshakeLimiter {
        HandshakeLimiter {
            permits: Arc::new(Semaphore::new(max)),
        }
    }

    /// Takes a slot if one is free.
    pub fn try_acquire(&self) -> Option<HandshakePermit> {
        self.permits
            .clone()
            .try_acquire_owned()
            .ok()
            .map(|p| HandshakePermit { _permit: p })
    }

    /// How many slots are free now.
    pub fn available(&self) -> usize {
        self.permits.available_permits()
    }

    /// Responds to a handshake in a free slot, or fails at once with
    /// [`ChannelError::Busy`] (dropping `io`) if all slots are taken.
    pub async fn respond<IO>(
        &self,
        io: IO,
        identity: &Identity,
        policy: TrustPolicy,
        config: &ChannelConfig,
    ) -> Result<SecureChannel<IO>, ChannelError>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let Some(_permit) = self.try_acquire() else {
            return Err(ChannelError::Busy);
        };
        SecureChannel::respond_with(io, identity, policy, config).await
    }
}
