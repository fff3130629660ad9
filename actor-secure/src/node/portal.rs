//! Portals: TCP connections carried through a node's secure links.
//!
//! An *outlet* lets peers reach a TCP service by name, under an access policy; an
//! *inlet* listens on a local address and carries each connection to an outlet on
//! another node. Between the two, every byte is a link message, so it is encrypted and
//! authenticated like the rest of the link.
//!
//! One connection is one *stream* on a link:
//! - `PortalOpen` (id: the opener's request id, payload an [`Open`]) asks for the outlet;
//!   the answer is a `Reply` (status 0 and the outlet side's window, or a failure).
//! - `PortalData` carries bytes; `PortalCredit` gives bytes of window back once they
//!   have been written to the socket; `PortalClose` says "no more bytes from me" (a
//!   half-close) or "abort".
//!
//! In these three the header's `id` names the stream and its `slot` says whose it is:
//! 0 when the sender opened it, 1 when the receiver did.
//!
//! Flow control is by credit: a side sends only as many bytes as the other granted and
//! has not yet given back, so a slow reader slows the writer at the other end, and what
//! one stream buffers stays within its window. A peer that sends beyond the window
//! loses its link.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, Notify, Semaphore};

use std::io;
use std::net::SocketAddr;
use std::sync::Weak;

use actor_abac::{Decision, Policy};
use tokio::net::{TcpListener, ToSocketAddrs};
use tokio::sync::oneshot;

use super::link::{self, Kind, Link};
use super::{Inner, Node, NodeError, Policies, RawWaiter, Resource, Route};

/// How much of a stream's bytes can be in flight towards one side, by default.
const DEFAULT_WINDOW: usize = 256 * 1024;

/// Settings of a node's portals: windows, bounds and timeouts.
///
/// ```
/// # use std::time::Duration;
/// # use troupe::secure::PortalConfig;
/// let config = PortalConfig::default()
///     .window(512 * 1024)                         // bytes in flight per connection and way
///     .max_connections(1024)                      // per link, and per inlet
///     .idle_timeout(Duration::from_secs(600))     // close connections quiet this long
///     .connect_timeout(Duration::from_secs(3));   // for the outlet to reach its service
/// # let _ = config;
/// ```
#[derive(Clone, Debug)]
pub struct PortalConfig {
    pub(crate) window: usize,
    pub(crate) max_connections: usize,
    pub(crate) idle_timeout: Duration,
    pub(crate) connect_timeout: Duration,
}

impl Default for PortalConfig {
    fn default() -> Self {
        PortalConfig {
            window: DEFAULT_WINDOW,
            max_connections: 256,
            idle_timeout: Duration::from_secs(300),
            connect_timeout: Duration::from_secs(5),
        }
    }
}

impl PortalConfig {
    /// How many bytes of one connection may be in flight each way (default 256 KiB, at
    /// least 1 KiB): what a slow reader lets pile up at its end.
    pub fn window(mut self, bytes: usize) -> Self {
        self.window = bytes.clamp(1024, u32::MAX as usize);
        self
    }

    /// How many portal connections one link carries into this node's outlets, and how
    /// many one inlet holds open (default 256). Beyond, an opening is refused, and an
    /// inlet stops accepting until one ends.
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n.max(1);
        self
    }

    /// A connection with no byte either way for this long is closed at both ends
    /// (default 5 minutes).
    pub fn idle_timeout(mut self, d: Duration) -> Self {
        self.idle_timeout = d;
        self
    }

    /// How long an outlet tries to connect to its service (default 5 s).
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = d;
        self
    }
}

/// A request to open a stream to an outlet.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Open {
    pub(crate) outlet: String,
    /// How many bytes the opener accepts in flight towards it.
    pub(crate) window: u32,
}

/// The most bytes one `PortalData` message carries: it stays a single link message,
/// never split into pieces.
pub(crate) const CHUNK: usize = link::PIECE - link::HEADER_LEN;

/// A stream's key on one link: (this node opened it, its id).
pub(crate) type Key = (bool, u64);

/// What the link's reader hands to a stream's socket writer.
#[derive(Debug)]
enum Incoming {
    Data(bytes::Bytes),
    /// The other side sends nothing more: half-close the socket once written.
    Fin,
    /// The stream was aborted (wakes a reader waiting for bytes).
    Abort,
}

/// One connection, as both its pumps and the link's reader see it.
#[derive(Debug)]
pub(crate) struct Stream {
    key: Key,
    /// Bytes from the other side, for the socket writer (bounded by `window`).
    to_socket: mpsc::UnboundedSender<Incoming>,
    from_link: Mutex<Option<mpsc::UnboundedReceiver<Incoming>>>,
    /// Bytes received and not yet given back as credit.
    unacked: Mutex<usize>,
    /// What this side grants the other (set once more at a relay, when the far end's
    /// window is known).
    window: std::sync::atomic::AtomicUsize,
    /// At a relay: the stream on the other link that this one is joined to.
    forward: std::sync::OnceLock<Forward>,
    /// Bytes this side may still send; `None` until the other side's window is known.
    credit: Mutex<usize>,
    credit_added: Notify,
    /// A [`StreamIo`] writer waiting for credit.
    credit_waker: Mutex<Option<std::task::Waker>>,
    /// Closed when the stream is aborted (a closed semaphore is a signal without races).
    aborted: Semaphore,
    /// The other side has half-closed.
    fin_received: AtomicBool,
    /// This side ended the stream (an error, an idle timeout): the other must be told.
    failed_here: AtomicBool,
    /// When a byte last moved, in milliseconds since `born`.
    last_active: AtomicU64,
    born: Instant,
}

impl Stream {
    fn new(key: Key, window: usize) -> Arc<Stream> {
        let (to_socket, from_link) = mpsc::unbounded_channel();
        Arc::new(Stream {
            key,
            to_socket,
            from_link: Mutex::new(Some(from_link)),
            unacked: Mutex::new(0),
            window: std::sync::atomic::AtomicUsize::new(window),
            forward: std::sync::OnceLock::new(),
            credit: Mutex::new(0),
            credit_added: Notify::new(),
            credit_waker: Mutex::new(None),
            aborted: Semaphore::new(0),
            fin_received: AtomicBool::new(false),
            failed_here: AtomicBool::new(false),
            last_active: AtomicU64::new(0),
            born: Instant::now(),
        })
    }

    /// The stream's key on its link.
    pub(crate) fn key(&self) -> Key {
        self.key
    }

    fn window(&self) -> usize {
        self.window.load(Ordering::Relaxed)
    }

    /// Sets how many bytes this side takes in flight (at a relay, once the far end's
    /// window is known, before the stream carries anything).
    pub(crate) fn set_window(&self, bytes: usize) {
        self.window.store(bytes, Ordering::Relaxed);
    }

    /// At a relay: joins this stream, on `link`, to `other`, on `other_link`; what
    /// arrives on either is passed to the other as it comes, without a task or a
    /// buffer of its own.
    pub(crate) fn join(
        self: &Arc<Self>,
        link: &Arc<Link>,
        other: &Arc<Stream>,
        other_link: &Arc<Link>,
        tap: Option<RelayTap>,
    ) {
        let _ = self.forward.set(Forward {
            link: Arc::downgrade(other_link),
            stream: other.clone(),
            tap: tap.clone(),
        });
        let _ = other.forward.set(Forward {
            link: Arc::downgrade(link),
            stream: self.clone(),
            tap,
        });
    }

    fn touch(&self) {
        let ms = u64::try_from(self.born.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_active.store(ms, Ordering::Relaxed);
    }

    fn idle_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_active.load(Ordering::Relaxed));
        self.born.elapsed().saturating_sub(last)
    }

    fn is_aborted(&self) -> bool {
        self.aborted.is_closed()
    }

    /// Ends the stream here at once: both pumps stop and the socket closes.
    pub(crate) fn abort(&self) {
        if !self.aborted.is_closed() {
            self.aborted.close();
            let _ = self.to_socket.send(Incoming::Abort);
        }
        self.credit_added.notify_waiters();
        self.wake_writer();
    }

    /// Wakes a [`StreamIo`] writer waiting for credit.
    fn wake_writer(&self) {
        let waker = self
            .credit_waker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Ends the stream because of something on this side.
    fn fail_here(&self) {
        if !self.is_aborted() {
            self.failed_here.store(true, Ordering::Release);
        }
        self.abort();
    }

    async fn until_aborted(&self) {
        // Never granted a permit (there are none): returns once closed.
        let _ = self.aborted.acquire().await;
    }

    /// More bytes this side may send (clamped: a peer cannot grant beyond reason).
    fn add_credit(&self, n: usize) {
        {
            let mut credit = self.credit.lock().unwrap_or_else(PoisonError::into_inner);
            *credit = credit.saturating_add(n).min(u32::MAX as usize);
        }
        self.credit_added.notify_waiters();
        self.wake_writer();
    }

    /// Waits until this side may send at least one byte; `None` once aborted.
    async fn wait_credit(&self) -> Option<usize> {
        loop {
            let added = self.credit_added.notified();
            tokio::pin!(added);
            added.as_mut().enable();
            if self.is_aborted() {
                return None;
            }
            let credit = *self.credit.lock().unwrap_or_else(PoisonError::into_inner);
            if credit > 0 {
                return Some(credit);
            }
            added.await;
        }
    }

    fn spend_credit(&self, n: usize) {
        let mut credit = self.credit.lock().unwrap_or_else(PoisonError::into_inner);
        *credit = credit.saturating_sub(n);
    }
}

/// Sees and may change the bytes a relay forwards (tests of what a relay can do).
pub type RelayTap = Arc<dyn Fn(&mut [u8]) + Send + Sync>;

/// Where a joined stream's traffic goes (at a relay).
struct Forward {
    link: Weak<Link>,
    stream: Arc<Stream>,
    tap: Option<RelayTap>,
}

impl std::fmt::Debug for Forward {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forward")
            .field("stream", &self.stream.key)
            .finish_non_exhaustive()
    }
}

/// A message for another link (a relay passing a joined stream's traffic on).
pub(crate) type Onward = (Arc<Link>, Vec<u8>);

/// The streams of one link.
#[derive(Debug, Default)]
pub(crate) struct Streams {
    streams: Mutex<HashMap<Key, Arc<Stream>>>,
}

impl Streams {
    pub(crate) fn is_empty(&self) -> bool {
        self.streams
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_empty()
    }

    /// Adds a stream; `None` when the peer already opened `max_opened_by_peer` of them
    /// (streams this node opens are bounded by its inlets).
    pub(crate) fn add(&self, key: Key, window: usize, max_opened_by_peer: usize) -> Option<Arc<Stream>> {
        let mut streams = self.streams.lock().unwrap_or_else(PoisonError::into_inner);
        if !key.0 && streams.keys().filter(|k| !k.0).count() >= max_opened_by_peer {
            return None;
        }
        if streams.contains_key(&key) {
            return None;
        }
        let stream = Stream::new(key, window);
        streams.insert(key, stream.clone());
        Some(stream)
    }

    pub(crate) fn remove(&self, key: Key) {
        self.streams
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&key);
    }

    fn get(&self, key: Key) -> Option<Arc<Stream>> {
        self.streams
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
            .cloned()
    }

    /// The link is gone: every stream on it ends, and so does every stream joined to
    /// one of them at a relay (its far end is told, if its link has room).
    pub(crate) fn abort_all(&self) {
        let streams = std::mem::take(&mut *self.streams.lock().unwrap_or_else(PoisonError::into_inner));
        for stream in streams.values() {
            stream.abort();
            if let Some(forward) = stream.forward.get() {
                forward.stream.abort();
                if let Some(link) = forward.link.upgrade() {
                    link.portals.remove(forward.stream.key);
                    let _ = link
                        .outbox
                        .try_push_with(|| Some(message(Kind::PortalClose, &forward.stream, &[1])));
                }
            }
        }
    }

    /// A `PortalData`, `PortalCredit` or `PortalClose` from the link's peer; for a
    /// stream joined to another at a relay, the message to pass on. `Err` when the
    /// peer broke the rules (the link then closes).
    pub(crate) fn frame(
        &self,
        kind: Kind,
        id: u64,
        slot: u32,
        payload: &[u8],
    ) -> Result<Option<Onward>, &'static str> {
        // The sender opened it (slot 0): it is the peer's; else ours.
        let key = match slot {
            0 => (false, id),
            1 => (true, id),
            _ => return Err("a portal message with a bad slot"),
        };
        // A stream that just ended here may still get what was in flight: dropped.
        let Some(stream) = self.get(key) else {
            return Ok(None);
        };
        if let Some(forward) = stream.forward.get() {
            return self.pass_on(&stream, forward, kind, payload);
        }
        match kind {
            Kind::PortalData => {
                if payload.is_empty() || stream.fin_received.load(Ordering::Acquire) {
                    return Err("portal data that is empty or after the end");
                }
                {
                    let mut unacked = stream.unacked.lock().unwrap_or_else(PoisonError::into_inner);
                    if *unacked + payload.len() > stream.window() {
                        return Err("portal data beyond its window");
                    }
                    *unacked += payload.len();
                }
                stream.touch();
                let _ = stream
                    .to_socket
                    .send(Incoming::Data(bytes::Bytes::copy_from_slice(payload)));
            }
            Kind::PortalCredit => {
                let Some(n) = payload.first_chunk::<4>().map(|n| u32::from_le_bytes(*n)) else {
                    return Err("an undecodable portal credit");
                };
                stream.add_credit(n as usize);
            }
            Kind::PortalClose => match payload.first() {
                Some(0) => {
                    if !stream.fin_received.swap(true, Ordering::AcqRel) {
                        let _ = stream.to_socket.send(Incoming::Fin);
                    }
                }
                Some(1) => stream.abort(),
                _ => return Err("an undecodable portal close"),
            },
            _ => return Err("not a portal message"),
        }
        Ok(None)
    }

    /// At a relay: what arrived on `stream` goes to the stream it is joined to.
    fn pass_on(
        &self,
        stream: &Arc<Stream>,
        forward: &Forward,
        kind: Kind,
        payload: &[u8],
    ) -> Result<Option<Onward>, &'static str> {
        let Some(link) = forward.link.upgrade().filter(|l| !l.is_closed()) else {
            // The other side is gone (its link closed, which ends this stream too).
            return Ok(None);
        };
        let other = &forward.stream;
        let onward = match kind {
            Kind::PortalData => {
                if payload.is_empty() || stream.fin_received.load(Ordering::Acquire) {
                    return Err("portal data that is empty or after the end");
                }
                let mut unacked = stream.unacked.lock().unwrap_or_else(PoisonError::into_inner);
                if *unacked + payload.len() > stream.window() {
                    return Err("portal data beyond its window");
                }
                *unacked += payload.len();
                drop(unacked);
                match &forward.tap {
                    Some(tap) => {
                        let mut bytes = payload.to_vec();
                        tap(&mut bytes);
                        message(Kind::PortalData, other, &bytes)
                    }
                    None => message(Kind::PortalData, other, payload),
                }
            }
            Kind::PortalCredit => {
                let Some(n) = payload.first_chunk::<4>().map(|n| u32::from_le_bytes(*n)) else {
                    return Err("an undecodable portal credit");
                };
                // The far end wrote what came from the other side: the other side may
                // send that much more. Never more than was passed on: a peer that
                // claims otherwise would make the relay queue without end.
                let mut unacked = other.unacked.lock().unwrap_or_else(PoisonError::into_inner);
                if n as usize > *unacked {
                    return Err("portal credit for more than was sent");
                }
                *unacked -= n as usize;
                drop(unacked);
                message(Kind::PortalCredit, other, payload)
            }
            Kind::PortalClose => match payload.first() {
                Some(0) => {
                    stream.fin_received.store(true, Ordering::Release);
                    if other.fin_received.load(Ordering::Acquire) {
                        self.remove(stream.key);
                        link.portals.remove(other.key);
                    }
                    message(Kind::PortalClose, other, &[0])
                }
                Some(1) => {
                    stream.abort();
                    other.abort();
                    self.remove(stream.key);
                    link.portals.remove(other.key);
                    message(Kind::PortalClose, other, &[1])
                }
                _ => return Err("an undecodable portal close"),
            },
            _ => return Err("not a portal message"),
        };
        Ok(Some((link, onward)))
    }
}

/// A portal message about `stream`, from this node.
fn message(kind: Kind, stream: &Stream, payload: &[u8]) -> Vec<u8> {
    let (ours, id) = stream.key;
    let mut out = link::encode(kind, id, u32::from(!ours), payload.len());
    out.extend_from_slice(payload);
    out
}

/// Tells the other side the stream is aborted (best effort: the link may be gone).
async fn send_abort(link: &Link, stream: &Stream) {
    let _ = link.outbox.push(message(Kind::PortalClose, stream, &[1])).await;
}

/// Runs one connection until both ways are done, it is aborted (by either side, the
/// link closing or an error) or it idles out. `other_window` is what the other side
/// grants; `reader` and `writer` are the local socket's halves.
pub(crate) async fn run<R, W>(
    link: Arc<Link>,
    stream: Arc<Stream>,
    other_window: usize,
    idle_timeout: Duration,
    reader: R,
    writer: W,
) where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    stream.touch();
    stream.add_credit(other_window);
    let from_link = stream
        .from_link
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
    // Either pump failing ends the other: the whole connection is over.
    let up = async {
        if upstream(&link, &stream, reader).await.is_err() {
            stream.fail_here();
        }
    };
    let down = async {
        let done = match from_link {
            Some(rx) => downstream(&link, &stream, rx, writer).await,
            None => Err(()),
        };
        if done.is_err() {
            stream.fail_here();
        }
    };
    let idle = async {
        loop {
            let idle_for = stream.idle_for();
            if idle_for >= idle_timeout {
                return;
            }
            tokio::time::sleep(idle_timeout - idle_for).await;
        }
    };
    tokio::select! {
        _ = async { tokio::join!(up, down) } => {}
        () = idle => {
            tracing::debug!(peer = %link.peer, "node: a portal connection idled out");
            stream.fail_here();
        }
    }
    // Whoever noticed first, the other end must close too.
    if stream.failed_here.load(Ordering::Acquire) {
        send_abort(&link, &stream).await;
    }
    stream.abort();
    link.portals.remove(stream.key);
}

/// Socket to link: reads as much as the other side has room for, sends it, and
/// half-closes the stream at end of file. `Err` when aborted or on an error.
async fn upstream<R: AsyncRead + Unpin>(link: &Link, stream: &Stream, mut reader: R) -> Result<(), ()> {
    let mut buf = vec![0u8; CHUNK.min(stream.window().max(1024))];
    loop {
        let Some(credit) = stream.wait_credit().await else {
            return Err(());
        };
        let room = credit.min(buf.len());
        let n = tokio::select! {
            read = reader.read(&mut buf[..room]) => read.map_err(|_| ())?,
            () = stream.until_aborted() => return Err(()),
        };
        if n == 0 {
            link.outbox
                .push(message(Kind::PortalClose, stream, &[0]))
                .await
                .map_err(|_| ())?;
            return Ok(());
        }
        stream.spend_credit(n);
        stream.touch();
        tokio::select! {
            pushed = link.outbox.push(message(Kind::PortalData, stream, &buf[..n])) => pushed.map_err(|_| ())?,
            () = stream.until_aborted() => return Err(()),
        }
    }
}

/// Link to socket: writes what arrives, gives the window back as it is written, and
/// half-closes the socket when the other side is done. `Err` when aborted or on an
/// error.
async fn downstream<W: AsyncWrite + Unpin>(
    link: &Link,
    stream: &Stream,
    mut from_link: mpsc::UnboundedReceiver<Incoming>,
    mut writer: W,
) -> Result<(), ()> {
    // Credit goes back in batches, not per message.
    let batch = (stream.window() / 4).max(1);
    let mut written = 0usize;
    loop {
        let next = match from_link.try_recv() {
            Ok(next) => Some(next),
            Err(mpsc::error::TryRecvError::Disconnected) => None,
            Err(mpsc::error::TryRecvError::Empty) => {
                // Nothing waiting: flush, give back what was written, then wait.
                if written > 0 {
                    give_back(link, stream, &mut written).await?;
                }
                tokio::select! {
                    next = from_link.recv() => next,
                    () = stream.until_aborted() => return Err(()),
                }
            }
        };
        match next {
            Some(Incoming::Data(bytes)) => {
                tokio::select! {
                    w = writer.write_all(&bytes) => w.map_err(|_| ())?,
                    () = stream.until_aborted() => return Err(()),
                }
                stream.touch();
                written += bytes.len();
                if written >= batch {
                    give_back(link, stream, &mut written).await?;
                }
            }
            Some(Incoming::Abort) => return Err(()),
            Some(Incoming::Fin) => {
                tokio::select! {
                    w = writer.shutdown() => w.map_err(|_| ())?,
                    () = stream.until_aborted() => return Err(()),
                }
                return Ok(());
            }
            None => return Err(()),
        }
    }
}

/// A stream as a byte stream in this process, read and written directly by its user
/// (no pump tasks): what a link through a relay runs over. Reading gives the window
/// back as bytes are taken; writing waits for credit, then for room in the link's
/// outbox. Dropping it aborts the stream unless both ways ended.
pub(crate) struct StreamIo {
    link: Arc<Link>,
    stream: Arc<Stream>,
    from_link: mpsc::UnboundedReceiver<Incoming>,
    reading: Option<(bytes::Bytes, usize)>,
    /// Bytes taken and not yet given back.
    to_credit: usize,
    eof: bool,
    shut: bool,
}

impl std::fmt::Debug for StreamIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamIo")
            .field("stream", &self.stream.key)
            .finish_non_exhaustive()
    }
}

impl StreamIo {
    /// `other_window`: what the other side grants.
    pub(crate) fn new(link: Arc<Link>, stream: Arc<Stream>, other_window: usize) -> Option<StreamIo> {
        stream.touch();
        stream.add_credit(other_window);
        let from_link = stream
            .from_link
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()?;
        Some(StreamIo {
            link,
            stream,
            from_link,
            reading: None,
            to_credit: 0,
            eof: false,
            shut: false,
        })
    }

    /// Gives back what was read, once a quarter of the window has been, or (with `cx`)
    /// whenever nothing more waits to be read. Without room in the outbox it is given
    /// later; with `cx`, the task is woken when there is room.
    fn give_back(&mut self, cx: Option<&mut std::task::Context<'_>>) {
        let all = cx.is_some();
        if self.to_credit == 0 || (!all && self.to_credit < (self.stream.window() / 4).max(1)) {
            return;
        }
        let n = self.to_credit;
        let msg = || {
            let n32 = u32::try_from(n).unwrap_or(u32::MAX);
            Some(message(Kind::PortalCredit, &self.stream, &n32.to_le_bytes()))
        };
        let sent = match cx {
            Some(cx) => matches!(
                self.link.outbox.poll_push_with(cx, msg),
                std::task::Poll::Ready(Ok(()))
            ),
            None => self.link.outbox.try_push_with(msg).is_ok(),
        };
        if sent {
            let mut unacked = self.stream.unacked.lock().unwrap_or_else(PoisonError::into_inner);
            *unacked = unacked.saturating_sub(n);
            self.to_credit = 0;
        }
    }
}

fn reset() -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionReset, "the relayed stream ended")
}

impl AsyncRead for StreamIo {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        use std::task::Poll;
        let this = &mut *self;
        loop {
            if let Some((bytes, at)) = this.reading.as_mut() {
                let n = (bytes.len() - *at).min(buf.remaining());
                buf.put_slice(&bytes[*at..*at + n]);
                *at += n;
                if *at == bytes.len() {
                    this.reading = None;
                }
                this.to_credit += n;
                this.give_back(None);
                return Poll::Ready(Ok(()));
            }
            if this.eof {
                return Poll::Ready(Ok(()));
            }
            match this.from_link.poll_recv(cx) {
                Poll::Ready(Some(Incoming::Data(bytes))) => {
                    this.stream.touch();
                    this.reading = Some((bytes, 0));
                }
                Poll::Ready(Some(Incoming::Fin)) => this.eof = true,
                Poll::Ready(Some(Incoming::Abort) | None) => return Poll::Ready(Err(reset())),
                Poll::Pending => {
                    // Nothing more now: what was read goes back before waiting (or
                    // once the outbox has room: the task is woken then).
                    this.give_back(Some(cx));
                    return Poll::Pending;
                }
            }
        }
    }
}

impl AsyncWrite for StreamIo {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        use std::task::Poll;
        let this = &*self;
        if this.stream.is_aborted() || this.shut {
            return Poll::Ready(Err(reset()));
        }
        let credit = *this.stream.credit.lock().unwrap_or_else(PoisonError::into_inner);
        if credit == 0 {
            *this
                .stream
                .credit_waker
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(cx.waker().clone());
            // Credit may have come in between.
            let credit = *this.stream.credit.lock().unwrap_or_else(PoisonError::into_inner);
            if credit == 0 && !this.stream.is_aborted() {
                return Poll::Pending;
            }
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let n = credit.min(buf.len()).min(CHUNK);
        match this
            .link
            .outbox
            .poll_push_with(cx, || Some(message(Kind::PortalData, &this.stream, &buf[..n])))
        {
            Poll::Ready(Ok(())) => {
                this.stream.spend_credit(n);
                this.stream.touch();
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(_)) => Poll::Ready(Err(reset())),
            Poll::Pending => Poll::Pending,
        }
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        // The link's writer sends what the outbox holds.
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        use std::task::Poll;
        if self.shut {
            return Poll::Ready(Ok(()));
        }
        let this = &mut *self;
        match this
            .link
            .outbox
            .poll_push_with(cx, || Some(message(Kind::PortalClose, &this.stream, &[0])))
        {
            Poll::Ready(Ok(())) => {
                this.shut = true;
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(_)) => Poll::Ready(Err(reset())),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for StreamIo {
    fn drop(&mut self) {
        if !(self.stream.is_aborted() || (self.shut && self.eof)) {
            let _ = self
                .link
                .outbox
                .try_push_with(|| Some(message(Kind::PortalClose, &self.stream, &[1])));
        }
        self.stream.abort();
        self.link.portals.remove(self.stream.key);
    }
}

/// Gives `written` bytes of window back to the other side.
async fn give_back(link: &Link, stream: &Stream, written: &mut usize) -> Result<(), ()> {
    let n = std::mem::take(written);
    {
        let mut unacked = stream.unacked.lock().unwrap_or_else(PoisonError::into_inner);
        *unacked = unacked.saturating_sub(n);
    }
    let n = u32::try_from(n).unwrap_or(u32::MAX);
    tokio::select! {
        pushed = link.outbox.push(message(Kind::PortalCredit, stream, &n.to_le_bytes())) => pushed.map_err(|_| ()),
        () = stream.until_aborted() => Err(()),
    }
}

/// The answer to a request that opens a stream ([`Open`], and the relay's requests).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum OpenAnswer {
    /// Open; how many bytes the answering side accepts in flight towards it.
    Opened {
        window: u32,
    },
    NoSuchOutlet,
    Denied,
    /// Refused, with a reason that says nothing of the node's insides.
    Refused(String),
    /// (Relays) no node is registered under that name.
    NoSuchNode,
    /// (Relays) another node holds that name.
    NameTaken,
    /// (Relays) the name is registered.
    Registered,
}

/// The `Reply` that carries `answer` to request `id`.
pub(crate) fn answer_message(id: u64, answer: &OpenAnswer) -> Vec<u8> {
    let body = rmp_serde::to_vec(answer).unwrap_or_default();
    let mut out = link::encode(Kind::Reply, id, 0, 1 + body.len());
    out.push(0);
    out.extend_from_slice(&body);
    out
}

/// A TCP service this node lets peers reach by name.
pub(crate) struct Outlet {
    target: String,
    policies: Policies,
}

impl Inner {
    /// A peer asks for a stream to one of this node's outlets: decided here, at once;
    /// the service is connected to off the link's reader. Returns the answer to send
    /// now, if any (a refusal); `Err` when the request breaks the rules.
    pub(super) fn portal_open(
        self: &Arc<Self>,
        link: &Arc<Link>,
        id: u64,
        payload: &[u8],
    ) -> Result<Option<Vec<u8>>, &'static str> {
        let Ok(open) = rmp_serde::from_slice::<Open>(payload) else {
            return Err("an undecodable portal opening");
        };
        let answer = move |answer: OpenAnswer| answer_message(id, &answer);
        let outlet = self
            .outlets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&open.outlet)
            .cloned();
        let Some(outlet) = outlet else {
            tracing::warn!(
                target: "troupe::audit",
                caller = %link.peer,
                outlet = %open.outlet,
                decision = "deny",
                "portal connection to an unknown outlet"
            );
            self.counters.decided(super::stats::Guarded::Portal, false);
            return Ok(Some(answer(OpenAnswer::NoSuchOutlet)));
        };
        // Access control: an outlet is an export whose one action is `connect`.
        let policy = outlet
            .policies
            .whole
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .or_else(|| {
                self.default_policy
                    .read()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone()
            });
        let target = Resource {
            agent: "portal",
            handler: "connect",
            call: true,
        };
        let mut env = self.environment(link, &link.caller, &open.outlet, &target);
        env.insert("action.kind", "connect");
        outlet.policies.add_attributes(&mut env);
        let decision = match &policy {
            Some(p) => p.decide(&env),
            None => Decision::Deny(actor_abac::Denial::False),
        };
        let policy_text = policy.as_deref().map_or("none (deny)", Policy::text);
        self.counters
            .decided(super::stats::Guarded::Portal, decision.is_allowed());
        if !decision.is_allowed() {
            tracing::warn!(
                target: "troupe::audit",
                caller = %link.peer,
                outlet = %open.outlet,
                decision = "deny",
                reason = %decision,
                policy = policy_text,
                "portal connection denied"
            );
            return Ok(Some(answer(OpenAnswer::Denied)));
        }
        if self.audit_allowed {
            tracing::info!(
                target: "troupe::audit",
                caller = %link.peer,
                outlet = %open.outlet,
                decision = "allow",
                policy = policy_text,
                "portal connection allowed"
            );
        }
        let Some(stream) = link
            .portals
            .add((false, id), self.portals.window, self.portals.max_connections)
        else {
            return Ok(Some(answer(OpenAnswer::Refused(
                "too many portal connections".into(),
            ))));
        };
        let link = link.clone();
        let config = self.portals.clone();
        self.spawn(async move {
            let connect = async {
                let tcp = tokio::net::TcpStream::connect(&outlet.target).await?;
                tcp.set_nodelay(true)?;
                Ok::<_, io::Error>(tcp)
            };
            let tcp = match tokio::time::timeout(config.connect_timeout, connect).await {
                Ok(Ok(tcp)) => tcp,
                failed => {
                    let why = match failed {
                        Ok(Err(e)) => e.to_string(),
                        _ => "timed out".to_owned(),
                    };
                    tracing::warn!(
                        caller = %link.peer,
                        outlet = %open.outlet,
                        target = %outlet.target,
                        error = %why,
                        "node: an outlet could not reach its service"
                    );
                    link.portals.remove(stream.key);
                    // The reason stays here: the peer learns only that it failed.
                    let refused = OpenAnswer::Refused("the outlet's service cannot be reached".into());
                    let _ = link.outbox.push(answer(refused)).await;
                    return;
                }
            };
            let opened = OpenAnswer::Opened {
                window: u32::try_from(config.window).unwrap_or(u32::MAX),
            };
            if link.outbox.push(answer(opened)).await.is_err() {
                link.portals.remove(stream.key);
                return;
            }
            let (reader, writer) = tcp.into_split();
            run(
                link,
                stream,
                open.window as usize,
                config.idle_timeout,
                reader,
                writer,
            )
            .await;
        });
        Ok(None)
    }

    /// Opens a stream to the outlet `outlet` of the node `route` leads to: the link,
    /// the stream, and the window the outlet side grants.
    pub(super) async fn open_stream(
        self: &Arc<Self>,
        route: &Route,
        outlet: &str,
    ) -> Result<(Arc<Link>, Arc<Stream>, usize), NodeError> {
        let peer = self.session_on(route).await?;
        let link = peer.link().ok_or(NodeError::LinkLost)?;
        let open = Open {
            outlet: outlet.to_owned(),
            window: u32::try_from(self.portals.window).unwrap_or(u32::MAX),
        };
        let body = rmp_serde::to_vec(&open).map_err(|_| NodeError::Protocol("portal encoding"))?;
        let (stream, answer) = self.request_stream(&link, Kind::PortalOpen, &body).await?;
        let failed = |e: NodeError| {
            link.portals.remove(stream.key);
            Err(e)
        };
        match answer {
            OpenAnswer::Opened { window } => Ok((link.clone(), stream.clone(), window as usize)),
            OpenAnswer::NoSuchOutlet => failed(NodeError::NoSuchOutlet(outlet.to_owned())),
            OpenAnswer::Denied => failed(NodeError::Denied),
            OpenAnswer::Refused(why) => failed(NodeError::Refused(why)),
            _ => failed(NodeError::Protocol("an unexpected portal answer")),
        }
    }

    /// Sends a request of `kind` that opens a stream on `link`, with the stream in the
    /// link's table first (bytes may follow the answer at once); the stream and the
    /// answer. The caller removes the stream unless the answer is `Opened`.
    pub(super) async fn request_stream(
        &self,
        link: &Arc<Link>,
        kind: Kind,
        body: &[u8],
    ) -> Result<(Arc<Stream>, OpenAnswer), NodeError> {
        let (tx, rx) = oneshot::channel();
        let Some(id) = link.wait_for_reply(Box::new(RawWaiter(tx))) else {
            return Err(NodeError::LinkLost);
        };
        let Some(stream) = link.portals.add((true, id), self.portals.window, usize::MAX) else {
            link.forget(id);
            return Err(NodeError::Protocol("a portal stream id in use"));
        };
        let mut msg = link::encode(kind, id, 0, body.len());
        msg.extend_from_slice(body);
        let failed = |e: NodeError| {
            link.forget(id);
            link.portals.remove((true, id));
            Err(e)
        };
        if link.outbox.push(msg).await.is_err() {
            return failed(NodeError::LinkLost);
        }
        let within = self.portals.connect_timeout.saturating_add(self.lookup_timeout);
        let answer = match tokio::time::timeout(within, rx).await {
            Err(_) => return failed(NodeError::Timeout),
            Ok(Err(_) | Ok(Err(_))) => return failed(NodeError::LinkLost),
            Ok(Ok(Ok(bytes))) => bytes,
        };
        match rmp_serde::from_slice::<OpenAnswer>(&answer) {
            Ok(answer) => Ok((stream, answer)),
            Err(_) => failed(NodeError::Protocol("undecodable answer")),
        }
    }
}

impl Node {
    /// Lets other nodes reach the TCP service at `target` (e.g. `"127.0.0.1:5432"`) as
    /// the outlet `name`, through their [`inlet`](Node::inlet)s or
    /// [`connect_outlet`](Node::connect_outlet). Every connection is decided by the
    /// outlet's policy ([`OutletHandle::policy`]), else the node's default policy; with
    /// neither, it is denied. The outlet connects to `target` for each connection that
    /// is allowed.
    pub fn outlet(&self, name: &str, target: impl Into<String>) -> Result<OutletHandle, NodeError> {
        self.add_outlet(name, target.into(), None)
    }

    /// [`Node::outlet`] with its policy in place from the start: no connection is ever
    /// decided by the node's default policy instead, as one can be between
    /// [`Node::outlet`] and [`OutletHandle::policy`]. Fails with
    /// [`NodeError::Policy`] (and adds nothing) when `policy` does not parse.
    pub fn outlet_with_policy(
        &self,
        name: &str,
        target: impl Into<String>,
        policy: impl AsRef<str>,
    ) -> Result<OutletHandle, NodeError> {
        let policy = Arc::new(Policy::parse(policy.as_ref()).map_err(NodeError::Policy)?);
        self.add_outlet(name, target.into(), Some(policy))
    }

    fn add_outlet(
        &self,
        name: &str,
        target: String,
        policy: Option<Arc<Policy>>,
    ) -> Result<OutletHandle, NodeError> {
        let mut outlets = self.inner.outlets.lock().unwrap_or_else(PoisonError::into_inner);
        if outlets.contains_key(name) {
            return Err(NodeError::AlreadyAnOutlet(name.to_owned()));
        }
        let policies = Policies {
            name: name.to_owned(),
            whole: std::sync::RwLock::new(policy),
            ..Policies::default()
        };
        outlets.insert(name.to_owned(), Arc::new(Outlet { target, policies }));
        Ok(OutletHandle {
            node: self.clone(),
            name: name.to_owned(),
        })
    }

    /// Removes the outlet `name`: no new connection reaches it; open ones go on. False
    /// when there is none.
    pub fn remove_outlet(&self, name: &str) -> bool {
        self.inner
            .outlets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(name)
            .is_some()
    }

    /// Listens on `bind` (e.g. `"127.0.0.1:5433"`; port 0 picks one) and carries each
    /// TCP connection made to it to the outlet `outlet` of the node at `peer`, through
    /// the secure link between the two nodes. A connection the other node refuses (no
    /// such outlet, denied, its service down) is closed at once, and the reason logged
    /// here. The inlet runs until [`Inlet::close`] or the node shuts down; dropping the
    /// [`Inlet`] does not close it.
    pub async fn inlet(
        &self,
        bind: impl ToSocketAddrs,
        peer: impl ToSocketAddrs,
        outlet: &str,
    ) -> Result<Inlet, NodeError> {
        let peer = resolve(peer).await?;
        self.inlet_via(bind, Route::Direct(peer), outlet).await
    }

    /// [`Node::inlet`] to a node reached by `route` (e.g. through a relay,
    /// [`Route::relay`]).
    pub async fn inlet_via(
        &self,
        bind: impl ToSocketAddrs,
        route: Route,
        outlet: &str,
    ) -> Result<Inlet, NodeError> {
        let listener = TcpListener::bind(bind).await?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(Semaphore::new(0));
        self.inner.spawn(inlet_loop(
            Arc::downgrade(&self.inner),
            listener,
            route,
            outlet.to_owned(),
            stop.clone(),
        ));
        Ok(Inlet {
            addr,
            outlet: outlet.to_owned(),
            stop,
        })
    }

    /// One connection to the outlet `outlet` of the node at `peer`, as a byte stream in
    /// this process (what an inlet does for each TCP connection, without a listening
    /// socket). Fails with [`NodeError::NoSuchOutlet`], [`NodeError::Denied`] or
    /// [`NodeError::Refused`] when the other node will not open it.
    pub async fn connect_outlet(
        &self,
        peer: impl ToSocketAddrs,
        outlet: &str,
    ) -> Result<PortalStream, NodeError> {
        let peer = resolve(peer).await?;
        self.connect_outlet_via(&Route::Direct(peer), outlet).await
    }

    /// [`Node::connect_outlet`] to a node reached by `route` (e.g. through a relay,
    /// [`Route::relay`]).
    pub async fn connect_outlet_via(&self, route: &Route, outlet: &str) -> Result<PortalStream, NodeError> {
        let (link, stream, window) = self.inner.open_stream(route, outlet).await?;
        let (ours, theirs) = tokio::io::duplex(CHUNK);
        let (reader, writer) = tokio::io::split(theirs);
        let idle = self.inner.portals.idle_timeout;
        self.inner.spawn(run(link, stream, window, idle, reader, writer));
        Ok(PortalStream(ours))
    }
}

/// The first address `addr` resolves to.
async fn resolve(addr: impl ToSocketAddrs) -> Result<SocketAddr, NodeError> {
    tokio::net::lookup_host(addr)
        .await?
        .next()
        .ok_or_else(|| NodeError::Io(io::Error::new(io::ErrorKind::InvalidInput, "no address")))
}

/// Accepts connections for an inlet until it is closed or the node is gone.
async fn inlet_loop(
    node: Weak<Inner>,
    listener: TcpListener,
    route: Route,
    outlet: String,
    stop: Arc<Semaphore>,
) {
    let Some(max) = node.upgrade().map(|n| n.portals.max_connections) else {
        return;
    };
    let slots = Arc::new(Semaphore::new(max));
    loop {
        // At most `max` connections at once: beyond, new ones wait in the backlog.
        let permit = tokio::select! {
            permit = slots.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
            _ = stop.acquire() => return,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.acquire() => return,
        };
        let tcp = match accepted {
            Ok((tcp, _)) => tcp,
            Err(e) => {
                // Out of file descriptors and the like: wait rather than spin.
                tracing::warn!(error = %e, "node: an inlet could not accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Some(inner) = node.upgrade() else {
            return;
        };
        if inner.closing.load(Ordering::Acquire) {
            return;
        }
        let outlet = outlet.clone();
        let route = route.clone();
        let weak = node.clone();
        inner.spawn(async move {
            let _permit = permit;
            let _ = tcp.set_nodelay(true);
            let Some(inner) = weak.upgrade() else {
                return;
            };
            let opened = inner.open_stream(&route, &outlet).await;
            let idle = inner.portals.idle_timeout;
            drop(inner);
            match opened {
                Ok((link, stream, window)) => {
                    let (reader, writer) = tcp.into_split();
                    run(link, stream, window, idle, reader, writer).await;
                }
                Err(e) => {
                    tracing::warn!(?route, %outlet, error = %e, "node: an inlet connection was refused");
                }
            }
        });
    }
}

/// A TCP listener that carries its connections to an outlet on another node (see
/// [`Node::inlet`]).
#[derive(Debug)]
pub struct Inlet {
    addr: SocketAddr,
    outlet: String,
    stop: Arc<Semaphore>,
}

impl Inlet {
    /// The address the inlet listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The outlet its connections reach.
    pub fn outlet(&self) -> &str {
        &self.outlet
    }

    /// Stops listening (connections already open go on).
    pub fn close(&self) {
        self.stop.close();
    }
}

/// An outlet on this node, to set its access policy (see [`Node::outlet`]).
///
/// Policies see `resource.name` (the outlet's name), `resource.agent` = `"portal"`,
/// `action.kind` = `"connect"`, the subject's credential attributes and
/// `subject.identifier`, as for exports.
#[derive(Debug, Clone)]
pub struct OutletHandle {
    node: Node,
    name: String,
}

impl OutletHandle {
    fn with_policies(&self, f: impl FnOnce(&Policies)) -> Result<(), NodeError> {
        let outlets = self
            .node
            .inner
            .outlets
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let outlet = outlets
            .get(&self.name)
            .ok_or_else(|| NodeError::NoSuchOutlet(self.name.clone()))?;
        f(&outlet.policies);
        Ok(())
    }

    /// Sets the policy that decides each connection. Takes effect for the next
    /// connection; replaces any earlier one.
    pub fn policy(self, text: impl AsRef<str>) -> Result<Self, NodeError> {
        let policy = Arc::new(Policy::parse(text.as_ref()).map_err(NodeError::Policy)?);
        self.with_policies(|p| *p.whole.write().unwrap_or_else(PoisonError::into_inner) = Some(policy))?;
        Ok(self)
    }

    /// Sets the outlet's attribute `name` (policies see it as `resource.<name>`; `name`
    /// and `agent` are set by the node).
    pub fn attribute(self, name: &str, value: impl Into<String>) -> Result<Self, NodeError> {
        Policies::check_attribute(name)?;
        let value = value.into();
        self.with_policies(|p| p.set_attribute(name, value))?;
        Ok(self)
    }

    /// The outlet's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// One portal connection as a byte stream in this process ([`Node::connect_outlet`]):
/// `AsyncRead` and `AsyncWrite`, with `shutdown` as a half-close. Dropping it closes
/// the connection.
#[derive(Debug)]
pub struct PortalStream(tokio::io::DuplexStream);

impl AsyncRead for PortalStream {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for PortalStream {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_cannot_send_beyond_the_window() {
        let streams = Streams::default();
        let stream = streams.add((true, 7), 2048, 4).expect("room");
        let piece = vec![1u8; 1024];
        assert!(streams.frame(Kind::PortalData, 7, 1, &piece).is_ok());
        assert!(streams.frame(Kind::PortalData, 7, 1, &piece).is_ok());
        assert!(matches!(
            streams.frame(Kind::PortalData, 7, 1, &[1]),
            Err("portal data beyond its window")
        ));
        drop(stream);
    }

    #[test]
    fn streams_a_peer_opens_are_bounded_but_ours_are_not() {
        let streams = Streams::default();
        assert!(streams.add((false, 1), 1024, 2).is_some());
        assert!(streams.add((false, 2), 1024, 2).is_some());
        assert!(streams.add((false, 3), 1024, 2).is_none());
        assert!(streams.add((true, 3), 1024, 2).is_some());
        // A key in use is never replaced.
        assert!(streams.add((false, 1), 1024, 8).is_none());
    }

    #[test]
    fn data_after_the_end_and_bad_slots_are_refused() {
        let streams = Streams::default();
        let _stream = streams.add((false, 9), 4096, 4).expect("room");
        assert!(matches!(streams.frame(Kind::PortalClose, 9, 0, &[0]), Ok(None)));
        assert!(streams.frame(Kind::PortalData, 9, 0, &[1, 2]).is_err());
        assert!(streams.frame(Kind::PortalData, 9, 2, &[1]).is_err());
        assert!(streams.frame(Kind::PortalCredit, 9, 0, &[1]).is_err());
        // Unknown streams (ended here already) are ignored.
        assert!(matches!(streams.frame(Kind::PortalData, 99, 0, &[1]), Ok(None)));
    }

    #[test]
    fn a_relay_passes_traffic_on_and_refuses_credit_for_more_than_it_passed_on() {
        let link = |b: u8| {
            Arc::new(Link::new(
                crate::Identifier::from_bytes([b; 32]),
                16,
                16,
                1 << 20,
                true,
                16,
            ))
        };
        let (a, b) = (link(1), link(2));
        let from_a = a.portals.add((false, 1), 4096, 4).expect("room");
        let to_b = b.portals.add((true, 5), 4096, 4).expect("room");
        from_a.join(&a, &to_b, &b, None);
        // 1000 bytes from b's peer go on to a's peer, as a's stream.
        let (onward, msg) = b
            .portals
            .frame(Kind::PortalData, 5, 1, &[7; 1000])
            .expect("within the window")
            .expect("passed on");
        assert!(Arc::ptr_eq(&onward, &a));
        let frame = link::decode(&msg).expect("a link message");
        assert_eq!((frame.kind, frame.id, frame.slot), (Kind::PortalData, 1, 1));
        assert_eq!(frame.payload, &[7; 1000][..]);
        // a's peer gives the 1000 back: passed on to b's peer.
        let credit = a.portals.frame(Kind::PortalCredit, 1, 0, &1000u32.to_le_bytes());
        assert!(matches!(credit, Ok(Some(_))));
        // One byte more than was passed on: refused (the link closes).
        assert!(a
            .portals
            .frame(Kind::PortalCredit, 1, 0, &1u32.to_le_bytes())
            .is_err());
        // Beyond the window: refused too.
        assert!(b.portals.frame(Kind::PortalData, 5, 1, &[0; 4097]).is_err());
    }

    #[test]
    fn credit_is_clamped() {
        let stream = Stream::new((true, 1), 1024);
        stream.add_credit(usize::MAX);
        stream.add_credit(usize::MAX);
        assert_eq!(*stream.credit.lock().unwrap(), u32::MAX as usize);
    }
}
