//! [`SecureListener`]: the safe way to accept secure channels over TCP.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream, ToSocketAddrs};
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};

use crate::channel::{ChannelConfig, SecureChannel};
use crate::identity::Identity;
use crate::limiter::HandshakeLimiter;
use crate::trust::TrustPolicy;

/// Settings of a [`SecureListener`].
///
/// ```
/// use actor_secure::{ChannelConfig, ListenerConfig};
///
/// let config = ListenerConfig::default()
///     .max_handshakes(256)
///     .per_source(16)
///     .channel(ChannelConfig::default().max_message_size(4 << 20));
/// # let _ = config;
/// ```
#[derive(Clone, Debug)]
pub struct ListenerConfig {
    channel: ChannelConfig,
    max_handshakes: usize,
    per_source: usize,
    backlog: usize,
}

impl Default for ListenerConfig {
    fn default() -> Self {
        ListenerConfig {
            channel: ChannelConfig::default(),
            max_handshakes: 64,
            per_source: 8,
            backlog: 64,
        }
    }
}

impl ListenerConfig {
    /// The settings of every accepted channel (default [`ChannelConfig::default`]).
    pub fn channel(mut self, config: ChannelConfig) -> Self {
        self.channel = config;
        self
    }

    /// At most `n` handshakes past the first message run at once (default 64), and 16
    /// times as many connections may wait for their first message; further connections
    /// are closed at once.
    pub fn max_handshakes(mut self, n: usize) -> Self {
        self.max_handshakes = n;
        self
    }

    /// At most `n` handshakes run at once from one source address, and 16 times as many
    /// of its connections may wait for their first message (default 8; an IPv6 /64 is
    /// one source).
    pub fn per_source(mut self, n: usize) -> Self {
        self.per_source = n;
        self
    }

    /// At most `n` established channels wait for [`SecureListener::accept`] (default 64).
    pub fn backlog(mut self, n: usize) -> Self {
        self.backlog = n.max(1);
        self
    }
}

/// Accepts TCP connections and turns them into [`SecureChannel`]s, with every defence a
/// public listener needs already in place:
///
/// - each handshake runs in a task of its own, so a slow or silent client never delays
///   the next one;
/// - handshakes are bounded in total and per source address ([`HandshakeLimiter`]);
///   a connection that says nothing waits in a separate, larger pool and is dropped
///   after [`ChannelConfig::first_message_timeout`], so silent connections never take
///   a handshake slot;
/// - open channels count against the process's [`ChannelLimits`](crate::ChannelLimits);
/// - only peers the [`TrustPolicy`] accepts come out of [`accept`](Self::accept).
///
/// Serve each accepted channel in a task of its own, so that one slow peer never blocks
/// the others.
///
/// ```
/// use std::sync::Arc;
/// use actor_secure::{Identity, SecureChannel, SecureListener, TrustPolicy};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let (server, client) = (Arc::new(Identity::generate()), Identity::generate());
/// let trusted = TrustPolicy::allow([client.identifier()]);
/// let mut listener = SecureListener::bind("127.0.0.1:0", server.clone(), trusted).await?;
/// let addr = listener.local_addr();
///
/// tokio::spawn(async move {
///     while let Ok((mut ch, _from)) = listener.accept().await {
///         tokio::spawn(async move {
///             while let Ok(msg) = ch.recv().await {
///                 if ch.send(&msg).await.is_err() {
///                     break;
///                 }
///             }
///         });
///     }
/// });
///
/// let tcp = tokio::net::TcpStream::connect(addr).await?;
/// let mut ch = SecureChannel::initiate(tcp, &client, TrustPolicy::allow([server.identifier()])).await?;
/// ch.send(b"ping").await?;
/// assert_eq!(&ch.recv().await?[..], b"ping");
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct SecureListener {
    channels: mpsc::Receiver<(SecureChannel<TcpStream>, SocketAddr)>,
    local: SocketAddr,
    task: JoinHandle<()>,
}

impl SecureListener {
    /// Listens on `addr` as `identity`, accepting the peers `policy` allows, with the
    /// default [`ListenerConfig`].
    pub async fn bind(
        addr: impl ToSocketAddrs,
        identity: Arc<Identity>,
        policy: TrustPolicy,
    ) -> io::Result<SecureListener> {
        SecureListener::bind_with(addr, identity, policy, ListenerConfig::default()).await
    }

    /// [`SecureListener::bind`] with a [`ListenerConfig`].
    pub async fn bind_with(
        addr: impl ToSocketAddrs,
        identity: Arc<Identity>,
        policy: TrustPolicy,
        config: ListenerConfig,
    ) -> io::Result<SecureListener> {
        let tcp = TcpListener::bind(addr).await?;
        Ok(SecureListener::from_tcp(tcp, identity, policy, config))
    }

    /// Serves secure channels on a TCP listener you bound yourself.
    pub fn from_tcp(
        tcp: TcpListener,
        identity: Arc<Identity>,
        policy: TrustPolicy,
        config: ListenerConfig,
    ) -> SecureListener {
        let local = tcp
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let (tx, channels) = mpsc::channel(config.backlog);
        let task = tokio::spawn(accept_loop(tcp, identity, policy, config, tx));
        SecureListener {
            channels,
            local,
            task,
        }
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The next established, trusted channel and the address it came from. Fails only if
    /// the listener's task has ended (it panicked, or the runtime is shutting down).
    pub async fn accept(&mut self) -> io::Result<(SecureChannel<TcpStream>, SocketAddr)> {
        self.channels
            .recv()
            .await
            .ok_or_else(|| io::Error::other("secure listener stopped"))
    }
}

impl Drop for SecureListener {
    fn drop(&mut self) {
        // Stops accepting; handshakes under way are dropped with the task's JoinSet.
        self.task.abort();
    }
}

async fn accept_loop(
    tcp: TcpListener,
    identity: Arc<Identity>,
    policy: TrustPolicy,
    config: ListenerConfig,
    tx: mpsc::Sender<(SecureChannel<TcpStream>, SocketAddr)>,
) {
    let limiter = HandshakeLimiter::new(config.max_handshakes).per_source(config.per_source);
    let channel = Arc::new(config.channel);
    let mut handshakes = JoinSet::new();
    loop {
        while handshakes.try_join_next().is_some() {}
        let (stream, from) = match tcp.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors, a connection reset before accept, ...: all
                // pass. Pause briefly so a persistent error does not spin.
                tracing::warn!(error = %e, "secure listener: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // A connection first waits for its first message in a cheap, plentiful slot;
        // only then does it compete for one of the handshake slots.
        let Some(waiting) = limiter.try_wait(Some(from.ip())) else {
            tracing::debug!(%from, "secure listener: too many connections waiting, dropped");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (identity, policy, channel, tx) = (identity.clone(), policy.clone(), channel.clone(), tx.clone());
        let limiter = limiter.clone();
        handshakes.spawn(async move {
            let result = limiter
                .respond_waiting(waiting, Some(from.ip()), stream, &identity, policy, &channel)
                .await;
            match result {
                Ok(ch) => {
                    // Waits while the backlog is full; the channel holds its slot in the
                    // channel limits meanwhile.
                    let _ = tx.send((ch, from)).await;
                }
                Err(e) => tracing::debug!(%from, error = %e, "secure listener: handshake failed"),
            }
        });
    }
}
