//! [`HandshakeLimiter`]: a bound on handshakes in progress, in total and per source
//! address, for accept loops.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::channel::{ChannelConfig, SecureChannel};
use crate::error::ChannelError;
use crate::identity::Identity;
use crate::trust::TrustPolicy;

/// Bounds how many handshakes run at once, in total and per source address, so that a
/// flood of connections that never finish their handshake cannot exhaust memory or
/// tasks, and one source cannot take every slot from the others. Each handshake also has
/// timeouts ([`ChannelConfig::first_message_timeout`], 3 s, and
/// [`ChannelConfig::handshake_timeout`], 10 s), so a slot is always freed soon.
///
/// Sources are IPv4 addresses, or the /64 prefix of IPv6 addresses (one machine usually
/// owns a whole /64).
///
/// [`SecureListener`](crate::SecureListener) uses one; use it directly in an accept loop
/// of your own:
///
/// ```
/// use std::sync::Arc;
/// use actor_secure::{ChannelConfig, HandshakeLimiter, Identity, TrustPolicy};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let node = Arc::new(Identity::generate());
/// let limiter = HandshakeLimiter::new(64).per_source(8);
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// # let addr = listener.local_addr()?;
/// # tokio::spawn(async move { let _ = tokio::net::TcpStream::connect(addr).await; });
/// let (stream, from) = listener.accept().await?;
/// let (node, limiter) = (node.clone(), limiter.clone());
/// tokio::spawn(async move {
///     // Refused at once (connection dropped) when 64 handshakes are running, or 8 from
///     // the same source.
///     let config = ChannelConfig::default();
///     let trusted = TrustPolicy::allow([/* the identifiers you expect */]);
///     if let Ok(ch) = limiter.respond_from(from.ip(), stream, &node, trusted, &config).await {
///         // ... serve `ch`
/// #       drop(ch);
///     }
/// });
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct HandshakeLimiter {
    /// Handshakes past the peer's first message: the expensive part.
    active: Pool,
    /// Connections waiting for their first message: cheap, but each holds a socket and
    /// a task, for at most the first-message timeout.
    waiting: Pool,
}

/// Handshakes running per source.
type Sources = Arc<Mutex<HashMap<Source, usize>>>;

/// A bounded set of slots, in total and per source.
#[derive(Clone, Debug)]
struct Pool {
    permits: Arc<Semaphore>,
    per_source: usize,
    sources: Sources,
}

impl Pool {
    fn new(max: usize, per_source: usize) -> Pool {
        Pool {
            permits: Arc::new(Semaphore::new(max)),
            per_source,
            sources: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    fn try_take(&self, source: Option<IpAddr>) -> Option<HandshakePermit> {
        let Some(ip) = source else {
            let permit = self.permits.clone().try_acquire_owned().ok()?;
            return Some(HandshakePermit {
                _permit: permit,
                source: None,
            });
        };
        let source = Source::of(ip);
        let mut sources = self.sources.lock().unwrap_or_else(PoisonError::into_inner);
        let n = sources.entry(source).or_insert(0);
        if *n >= self.per_source {
            return None;
        }
        let permit = self.permits.clone().try_acquire_owned().ok()?;
        *n += 1;
        drop(sources);
        Some(HandshakePermit {
            _permit: permit,
            source: Some((source, self.sources.clone())),
        })
    }
}

/// What the per-source bound counts by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Source {
    V4([u8; 4]),
    V6Prefix([u8; 8]),
}

impl Source {
    fn of(ip: IpAddr) -> Source {
        match ip {
            IpAddr::V4(v4) => Source::V4(v4.octets()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Source::V4(v4.octets()),
                None => {
                    let mut prefix = [0u8; 8];
                    prefix.copy_from_slice(&v6.octets()[..8]);
                    Source::V6Prefix(prefix)
                }
            },
        }
    }
}

/// A slot for one running handshake (or one connection waiting for its first message);
/// the slot is freed on drop.
#[derive(Debug)]
pub struct HandshakePermit {
    _permit: OwnedSemaphorePermit,
    source: Option<(Source, Sources)>,
}

impl Drop for HandshakePermit {
    fn drop(&mut self) {
        if let Some((source, sources)) = self.source.take() {
            let mut sources = sources.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(n) = sources.get_mut(&source) {
                *n -= 1;
                if *n == 0 {
                    sources.remove(&source);
                }
            }
        }
    }
}

/// How many more connections may wait for their first message than handshakes may run.
const WAITING_FACTOR: usize = 16;

impl HandshakeLimiter {
    /// Allows at most `max` handshakes past the peer's first message at the same time,
    /// and at most `max / 8` (at least 1) from one source; see
    /// [`HandshakeLimiter::per_source`]. Up to 16 times as many connections may wait for
    /// their first message (each for at most
    /// [`ChannelConfig::first_message_timeout`]); see
    /// [`HandshakeLimiter::max_waiting`].
    pub fn new(max: usize) -> HandshakeLimiter {
        let per_source = (max / 8).max(1);
        HandshakeLimiter {
            active: Pool::new(max, per_source),
            waiting: Pool::new(
                max.saturating_mul(WAITING_FACTOR),
                per_source.saturating_mul(WAITING_FACTOR),
            ),
        }
    }

    /// Allows at most `n` handshakes past the first message at the same time from one
    /// source address, and 16 times as many connections from it waiting for their
    /// first message.
    pub fn per_source(mut self, n: usize) -> HandshakeLimiter {
        self.active.per_source = n;
        self.waiting.per_source = n.saturating_mul(WAITING_FACTOR);
        self
    }

    /// Allows at most `n` connections waiting for their first handshake message at the
    /// same time (default 16 times the handshake bound). A connection that never speaks
    /// only ever takes one of these, never a handshake slot.
    pub fn max_waiting(mut self, n: usize) -> HandshakeLimiter {
        self.waiting = Pool {
            permits: Arc::new(Semaphore::new(n)),
            ..self.waiting
        };
        self
    }

    /// Takes a handshake slot if one is free, without a per-source bound (for streams
    /// that have no address).
    pub fn try_acquire(&self) -> Option<HandshakePermit> {
        self.active.try_take(None)
    }

    /// Takes a handshake slot for a connection from `source` if one is free and
    /// `source` has fewer than its share.
    pub fn try_acquire_from(&self, source: IpAddr) -> Option<HandshakePermit> {
        self.active.try_take(Some(source))
    }

    /// How many handshake slots are free now.
    pub fn available(&self) -> usize {
        self.active.permits.available_permits()
    }

    /// Responds to a handshake, or fails with [`ChannelError::Busy`] (dropping `io`)
    /// when too many connections wait for their first message, or when the first
    /// message is in but all handshake slots are taken. Prefer
    /// [`HandshakeLimiter::respond_from`] when the stream has a source address.
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
        self.respond_inner(None, io, identity, policy, config).await
    }

    /// [`HandshakeLimiter::respond`] for a connection from `source`, which also counts
    /// against that source's share of both bounds.
    pub async fn respond_from<IO>(
        &self,
        source: IpAddr,
        io: IO,
        identity: &Identity,
        policy: TrustPolicy,
        config: &ChannelConfig,
    ) -> Result<SecureChannel<IO>, ChannelError>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        self.respond_inner(Some(source), io, identity, policy, config)
            .await
    }

    /// A slot to wait for the first message in, if one is free.
    pub(crate) fn try_wait(&self, source: Option<IpAddr>) -> Option<HandshakePermit> {
        self.waiting.try_take(source)
    }

    pub(crate) async fn respond_inner<IO>(
        &self,
        source: Option<IpAddr>,
        io: IO,
        identity: &Identity,
        policy: TrustPolicy,
        config: &ChannelConfig,
    ) -> Result<SecureChannel<IO>, ChannelError>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let Some(waiting) = self.try_wait(source) else {
            return Err(ChannelError::Busy);
        };
        self.respond_waiting(waiting, source, io, identity, policy, config)
            .await
    }

    /// Responds on a connection that already holds a waiting slot: the slot is given
    /// back when the first message is in, and a handshake slot taken instead.
    pub(crate) async fn respond_waiting<IO>(
        &self,
        waiting: HandshakePermit,
        source: Option<IpAddr>,
        io: IO,
        identity: &Identity,
        policy: TrustPolicy,
        config: &ChannelConfig,
    ) -> Result<SecureChannel<IO>, ChannelError>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let mut waiting = Some(waiting);
        let active = &self.active;
        let mut gate = move || {
            drop(waiting.take());
            active.try_take(source)
        };
        SecureChannel::respond_gated(io, identity, policy, config, &mut gate).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn one_source_cannot_take_every_slot() {
        let limiter = HandshakeLimiter::new(16).per_source(4);
        let flood: IpAddr = Ipv4Addr::new(10, 0, 0, 1).into();
        let held: Vec<_> = (0..10).filter_map(|_| limiter.try_acquire_from(flood)).collect();
        assert_eq!(held.len(), 4);
        assert!(limiter
            .try_acquire_from(Ipv4Addr::new(10, 0, 0, 2).into())
            .is_some());
        drop(held);
        assert!(limiter.try_acquire_from(flood).is_some());
        assert!(
            limiter.active.sources.lock().unwrap().is_empty(),
            "counts are cleaned up"
        );
    }

    #[test]
    fn an_ipv6_slash_64_is_one_source_and_mapped_ipv4_is_its_ipv4() {
        let limiter = HandshakeLimiter::new(16).per_source(1);
        let a: IpAddr = "2001:db8:1:2::1".parse::<Ipv6Addr>().unwrap().into();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse::<Ipv6Addr>().unwrap().into();
        let _a = limiter.try_acquire_from(a).unwrap();
        assert!(limiter.try_acquire_from(b).is_none());
        let v4: IpAddr = Ipv4Addr::new(192, 0, 2, 1).into();
        let mapped: IpAddr = Ipv4Addr::new(192, 0, 2, 1).to_ipv6_mapped().into();
        let _v4 = limiter.try_acquire_from(v4).unwrap();
        assert!(limiter.try_acquire_from(mapped).is_none());
    }

    #[test]
    fn connections_waiting_for_their_first_message_have_their_own_larger_bound() {
        let limiter = HandshakeLimiter::new(8).per_source(1);
        let flood: IpAddr = Ipv4Addr::new(10, 0, 0, 1).into();
        let waiting: Vec<_> = (0..100).filter_map(|_| limiter.try_wait(Some(flood))).collect();
        assert_eq!(waiting.len(), 16, "16 times the per-source handshake bound");
        // None of them took a handshake slot.
        assert_eq!(limiter.available(), 8);
        assert!(limiter.try_acquire_from(flood).is_some());
        let small = HandshakeLimiter::new(8).max_waiting(3);
        let held: Vec<_> = (1..=5u8)
            .filter_map(|i| small.try_wait(Some(Ipv4Addr::new(10, 0, 1, i).into())))
            .collect();
        assert_eq!(held.len(), 3);
    }

    #[test]
    fn the_total_bound_holds_across_sources() {
        let limiter = HandshakeLimiter::new(3).per_source(3);
        let held: Vec<_> = (1..=5u8)
            .filter_map(|i| limiter.try_acquire_from(Ipv4Addr::new(10, 0, 0, i).into()))
            .collect();
        assert_eq!(held.len(), 3);
        assert_eq!(limiter.available(), 0);
    }
}
