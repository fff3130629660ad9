//! The transport phase: framing, batching, fragmentation, rekeying, keepalives and close,
//! one state per direction so the reader and writer halves never share anything.
//!
//! The sender keeps one *open* frame at the end of its buffer and appends records to it;
//! the frame is sealed (encrypted in place) when the next record does not fit, on flush,
//! or when the buffer is full. Many small messages thus cost one AEAD operation and one
//! write together.
//!
//! Every deadline lives in the state of its direction, not in the call that waits: a
//! `recv()` cancelled by `select!` and called again keeps the deadline of the frame,
//! message or idle period it was waiting on, and so does a cancelled `flush()`.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{Instant, Sleep};

use super::cipher::{CipherState, DATA_NONCE_LIMIT};
use super::ChannelConfig;
use crate::error::ChannelError;
use crate::limits::ChannelLimits;
use crate::wire::{
    decode_frame_len, decode_record, FrameError, RecordKind, MAX_NOISE_MESSAGE, MAX_RECORD_BODY,
    RECORD_HEADER_LEN, TAG_LEN,
};

/// The writer sends its buffer once it holds this much, even before `flush`.
const FLUSH_AT: usize = 64 * 1024;
/// How much the reader asks the stream for at once (into the shared read buffer).
const READ_CHUNK: usize = 16 * 1024;
/// Frames at least this long are read into an allocation of their own, so that a
/// message handed out without a copy pins its frame and nothing else.
const OWN_ALLOCATION_MIN: usize = 16 * 1024;
/// Messages at least this large may be handed out without a copy, when they fill at
/// least half of a frame with its own allocation (so a kept message pins at most twice
/// its size).
const ZERO_COPY_MIN: usize = 2048;
/// Largest frame plaintext.
const MAX_PLAINTEXT: usize = MAX_NOISE_MESSAGE - TAG_LEN;

/// `now + d`, or no deadline at all when that is past the end of time
/// (`Duration::MAX` means "never").
pub(crate) fn deadline_after(d: Duration) -> Option<Instant> {
    Instant::now().checked_add(d)
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

/// Runs a write-side operation under the writer's deadline. The deadline (and a timer)
/// only comes into being when the operation cannot finish at once; it is kept in `slot`
/// until the write under way completes, so a cancelled and repeated call keeps it.
async fn before<T>(
    slot: &mut Option<Option<Instant>>,
    timeout: Duration,
    op: impl Future<Output = io::Result<T>>,
) -> Result<T, ChannelError> {
    let mut op = std::pin::pin!(op);
    if let Poll::Ready(done) = std::future::poll_fn(|cx| Poll::Ready(op.as_mut().poll(cx))).await {
        return Ok(done?);
    }
    match *slot.get_or_insert_with(|| deadline_after(timeout)) {
        Some(at) => match tokio::time::timeout_at(at, op).await {
            Ok(done) => Ok(done?),
            Err(_) => Err(ChannelError::WriteTimeout),
        },
        None => Ok(op.await?),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Open,
    /// The peer closed (receiver) or we closed (sender).
    Closed,
    /// An error happened; nothing more goes through.
    Broken,
}

/// The sending direction.
#[derive(Debug)]
pub(crate) struct Sender {
    cipher: CipherState,
    buf: Vec<u8>,
    /// How much of `buf` is on the wire already (a cancelled write resumes from here).
    written: usize,
    /// Offset in `buf` of the open frame's length prefix.
    open: Option<usize>,
    rekey_after: u64,
    since_rekey: u64,
    max_message: usize,
    write_timeout: Duration,
    /// Set while a write is under way; kept across a cancelled call.
    write_deadline: Option<Option<Instant>>,
    keepalive_interval: Duration,
    /// When we last checked whether a keepalive was needed (or sent one).
    keepalive_checked: Instant,
    /// Whether anything reached the stream since then.
    sent_since_keepalive_check: bool,
    keepalive_queued: bool,
    state: State,
}

impl Sender {
    pub(crate) fn new(cipher: CipherState, config: &ChannelConfig) -> Sender {
        Sender {
            cipher,
            // Grows on first use: a channel that never sends holds no buffer.
            buf: Vec::new(),
            written: 0,
            open: None,
            rekey_after: config.rekey_after_frames.max(1),
            since_rekey: 0,
            max_message: config.max_message_size,
            write_timeout: config.write_timeout,
            write_deadline: None,
            keepalive_interval: config.keepalive_interval,
            keepalive_checked: Instant::now(),
            sent_since_keepalive_check: false,
            keepalive_queued: false,
            state: State::Open,
        }
    }

    #[cfg(any(test, feature = "test-util"))]
    pub(crate) fn nonce(&self) -> u64 {
        self.cipher.nonce()
    }

    #[cfg(any(test, feature = "test-util"))]
    pub(crate) fn set_nonce(&mut self, n: u64) {
        self.cipher.set_nonce(n);
    }

    fn check_open(&self) -> Result<(), ChannelError> {
        match self.state {
            State::Open => Ok(()),
            State::Closed | State::Broken => Err(ChannelError::Broken),
        }
    }

    /// Appends a record to the open frame, sealing it first if the record does not fit.
    fn push_record(&mut self, kind: RecordKind, body: &[u8]) -> Result<(), ChannelError> {
        let need = RECORD_HEADER_LEN + body.len();
        if let Some(start) = self.open {
            if self.buf.len() - (start + 2) + need > MAX_PLAINTEXT {
                self.seal(false)?;
            }
        }
        if self.open.is_none() {
            self.open = Some(self.buf.len());
            self.buf.extend_from_slice(&[0, 0]);
        }
        let len = u16::try_from(body.len()).map_err(|_| ChannelError::Protocol("record too long"))?;
        self.buf.push(kind.to_byte());
        self.buf.extend_from_slice(&len.to_be_bytes());
        self.buf.extend_from_slice(body);
        Ok(())
    }

    /// Encrypts the open frame in place (if any), then rekeys if it is time.
    fn seal(&mut self, closing: bool) -> Result<(), ChannelError> {
        if self.open.is_none() {
            return Ok(());
        }
        self.encrypt_open(if closing { u64::MAX } else { DATA_NONCE_LIMIT })?;
        self.since_rekey += 1;
        if !closing && self.since_rekey >= self.rekey_after {
            // A frame holding only the rekey record, under the old key; then the key
            // changes for everything after it.
            self.open = Some(self.buf.len());
            self.buf
                .extend_from_slice(&[0, 0, RecordKind::Rekey.to_byte(), 0, 0]);
            self.encrypt_open(DATA_NONCE_LIMIT)?;
            self.cipher.rekey();
            self.since_rekey = 0;
        }
        Ok(())
    }

    /// Encrypts the open frame with a nonce below `limit` and fills in its length.
    fn encrypt_open(&mut self, limit: u64) -> Result<(), ChannelError> {
        let Some(start) = self.open.take() else {
            return Ok(());
        };
        if self.cipher.nonce() >= limit {
            return Err(ChannelError::NonceExhausted);
        }
        let tag = self
            .cipher
            .encrypt(&mut self.buf[start + 2..])
            .ok_or(ChannelError::NonceExhausted)?;
        self.buf.extend_from_slice(&tag);
        let len = self.buf.len() - (start + 2);
        let len = u16::try_from(len).map_err(|_| ChannelError::Protocol("frame too long"))?;
        self.buf[start..start + 2].copy_from_slice(&len.to_be_bytes());
        Ok(())
    }

    /// Appends `msg` to the buffer (writing out full buffers on the way).
    pub(crate) async fn feed<W>(&mut self, io: &mut W, msg: &[u8]) -> Result<(), ChannelError>
    where
        W: AsyncWrite + Unpin,
    {
        self.check_open()?;
        if msg.len() > self.max_message {
            return Err(ChannelError::MessageTooLarge {
                limit: self.max_message,
            });
        }
        // Refuse up front if the whole message (with the open frame and any rekey frames)
        // might not fit in the nonces left, so the peer never sees half a message.
        let frames = (msg.len().div_ceil(MAX_RECORD_BODY) as u64).max(1) + 1;
        let needed = frames + frames / self.rekey_after + 1;
        if self
            .cipher
            .nonce()
            .checked_add(needed)
            .is_none_or(|end| end > DATA_NONCE_LIMIT)
        {
            self.state = State::Broken;
            return Err(ChannelError::NonceExhausted);
        }
        // Until the whole message is in the buffer the stream cannot be framed: if this
        // future is dropped half-way (or fails), the sender stays broken.
        self.state = State::Broken;
        self.feed_records(io, msg).await?;
        self.state = State::Open;
        Ok(())
    }

    async fn feed_records<W>(&mut self, io: &mut W, msg: &[u8]) -> Result<(), ChannelError>
    where
        W: AsyncWrite + Unpin,
    {
        let mut rest = msg;
        loop {
            let take = rest.len().min(MAX_RECORD_BODY);
            let (chunk, tail) = rest.split_at(take);
            let kind = if tail.is_empty() {
                RecordKind::Data
            } else {
                RecordKind::More
            };
            self.push_record(kind, chunk)?;
            rest = tail;
            if self.buf.len() >= FLUSH_AT {
                self.seal(false)?;
                self.write_out(io).await?;
            }
            if rest.is_empty() {
                return Ok(());
            }
        }
    }

    /// Writes the sealed part of the buffer. Resumable: a cancelled call leaves `written`
    /// where the stream is, and the next call goes on from there. The whole buffer must
    /// reach the stream within the write timeout (a peer that stops reading cannot hold
    /// a writer for ever).
    async fn write_out<W: AsyncWrite + Unpin>(&mut self, io: &mut W) -> Result<(), ChannelError> {
        if self.written == self.buf.len() {
            return Ok(());
        }
        while self.written < self.buf.len() {
            let n = before(
                &mut self.write_deadline,
                self.write_timeout,
                io.write(&self.buf[self.written..]),
            )
            .await?;
            if n == 0 {
                return Err(io::Error::from(io::ErrorKind::WriteZero).into());
            }
            self.written += n;
        }
        self.buf.clear();
        self.written = 0;
        self.write_deadline = None;
        self.sent_since_keepalive_check = true;
        self.keepalive_queued = false;
        Ok(())
    }

    /// Seals the open frame, writes out everything fed so far and flushes the stream.
    pub(crate) async fn flush<W: AsyncWrite + Unpin>(&mut self, io: &mut W) -> Result<(), ChannelError> {
        self.check_open()?;
        let result = async {
            self.seal(false)?;
            self.write_out(io).await?;
            before(&mut self.write_deadline, self.write_timeout, io.flush()).await?;
            self.write_deadline = None;
            Ok(())
        }
        .await;
        if result.is_err() {
            self.state = State::Broken;
        }
        result
    }

    /// When to check next whether a keepalive is needed, or `None` if never.
    pub(crate) fn keepalive_due(&self) -> Option<Instant> {
        if self.state != State::Open {
            return None;
        }
        self.keepalive_checked.checked_add(self.keepalive_interval)
    }

    /// At the time [`Sender::keepalive_due`] gave: sends a keepalive if nothing was sent
    /// since the last check. (Tracking a flag instead of the time of every write keeps
    /// the clock off the hot path; the price is that a quiet sender's keepalive goes out
    /// between one and two intervals after its last write.)
    pub(crate) async fn keepalive_if_quiet<W: AsyncWrite + Unpin>(
        &mut self,
        io: &mut W,
    ) -> Result<(), ChannelError> {
        if std::mem::take(&mut self.sent_since_keepalive_check) {
            self.keepalive_checked = Instant::now();
            return Ok(());
        }
        self.keepalive(io).await
    }

    /// Sends a keepalive record (and anything fed before it).
    pub(crate) async fn keepalive<W: AsyncWrite + Unpin>(&mut self, io: &mut W) -> Result<(), ChannelError> {
        self.check_open()?;
        // One queued keepalive is enough, however often a cancelled call is repeated.
        if !self.keepalive_queued {
            self.push_record(RecordKind::Keepalive, &[])?;
            self.keepalive_queued = true;
        }
        self.flush(io).await?;
        self.sent_since_keepalive_check = false;
        self.keepalive_checked = Instant::now();
        Ok(())
    }

    /// Sends the authenticated close and shuts the stream's write side.
    pub(crate) async fn close<W: AsyncWrite + Unpin>(&mut self, io: &mut W) -> Result<(), ChannelError> {
        self.check_open()?;
        let result = async {
            self.push_record(RecordKind::Close, &[])?;
            self.seal(true)?;
            self.write_out(io).await?;
            before(&mut self.write_deadline, self.write_timeout, io.flush()).await?;
            before(&mut self.write_deadline, self.write_timeout, io.shutdown()).await?;
            Ok(())
        }
        .await;
        self.state = if result.is_ok() {
            State::Closed
        } else {
            State::Broken
        };
        result
    }
}

/// What [`Receiver::recv`] found.
#[derive(Debug)]
pub(crate) enum Received {
    /// A whole message.
    Message(Bytes),
    /// The keepalive time the caller gave has come; nothing was lost.
    KeepaliveDue,
}

/// The receiving direction.
#[derive(Debug)]
pub(crate) struct Receiver {
    cipher: CipherState,
    /// Bytes read from the stream and not yet part of a frame.
    buf: BytesMut,
    /// A large frame being read into its own allocation (without its length prefix).
    big: Option<BytesMut>,
    big_len: usize,
    /// Records of the last decrypted frame not handed out yet.
    pending: Bytes,
    /// The size of `pending`'s frame if it has its own allocation, else 0.
    pending_own: usize,
    assembly: BytesMut,
    assembling: bool,
    /// Bytes of `limits`' memory budget held by `assembly`.
    reserved: usize,
    limits: ChannelLimits,
    max_message: usize,
    frame_timeout: Duration,
    message_timeout: Duration,
    idle_timeout: Duration,
    /// The frame that started arriving must be complete by then.
    frame_deadline: Option<Instant>,
    /// The message being assembled must be complete by then.
    message_deadline: Option<Instant>,
    /// Some frame must arrive by then, unless one arrived since the deadline was set:
    /// then it moves on by the idle timeout (a flag per frame instead of reading the
    /// clock per frame, so a peer is found idle between one and two idle timeouts after
    /// its last frame).
    idle_deadline: Option<Instant>,
    received_since_idle_check: bool,
    /// Fires at or before the earliest deadline; created on first use.
    timer: Option<Pin<Box<Sleep>>>,
    state: State,
}

fn protocol(e: FrameError) -> ChannelError {
    ChannelError::Protocol(match e {
        FrameError::TooShort => "frame too short",
        FrameError::Truncated => "truncated record",
        FrameError::UnknownKind(_) => "unknown record kind",
        _ => "misplaced control record",
    })
}

/// A frame read from the stream, still encrypted.
struct Frame {
    bytes: BytesMut,
    /// Whether `bytes` is an allocation of its own.
    own: bool,
}

/// Reads what the stream has into the open large frame, or else into the read buffer.
async fn read_more<R: AsyncRead + Unpin>(
    io: &mut R,
    buf: &mut BytesMut,
    big: &mut Option<BytesMut>,
    big_len: usize,
) -> io::Result<usize> {
    match big {
        Some(frame) => {
            let room = big_len - frame.len();
            io.read_buf(&mut (&mut *frame).limit(room)).await
        }
        None => {
            buf.reserve(READ_CHUNK);
            io.read_buf(buf).await
        }
    }
}

impl Receiver {
    pub(crate) fn new(cipher: CipherState, config: &ChannelConfig) -> Receiver {
        Receiver {
            cipher,
            buf: BytesMut::new(),
            big: None,
            big_len: 0,
            pending: Bytes::new(),
            pending_own: 0,
            assembly: BytesMut::new(),
            assembling: false,
            reserved: 0,
            limits: config.limits.clone(),
            max_message: config.max_message_size,
            frame_timeout: config.frame_timeout,
            message_timeout: config.message_timeout,
            idle_timeout: config.idle_timeout,
            frame_deadline: None,
            message_deadline: None,
            idle_deadline: deadline_after(config.idle_timeout),
            received_since_idle_check: false,
            timer: None,
            state: State::Open,
        }
    }

    #[cfg(any(test, feature = "test-util"))]
    pub(crate) fn set_nonce(&mut self, n: u64) {
        self.cipher.set_nonce(n);
    }

    #[cfg(any(test, feature = "test-util"))]
    pub(crate) fn nonce(&self) -> u64 {
        self.cipher.nonce()
    }

    /// Receives the next whole message, or returns [`Received::KeepaliveDue`] once
    /// `keepalive_at` has passed with nothing to hand out.
    pub(crate) async fn recv<R: AsyncRead + Unpin>(
        &mut self,
        io: &mut R,
        keepalive_at: Option<Instant>,
    ) -> Result<Received, ChannelError> {
        match self.state {
            State::Open => {}
            State::Closed => return Err(ChannelError::Closed),
            State::Broken => return Err(ChannelError::Broken),
        }
        let result = self.recv_inner(io, keepalive_at).await;
        if let Err(e) = &result {
            self.state = if matches!(e, ChannelError::Closed) {
                State::Closed
            } else {
                State::Broken
            };
            self.free();
            if matches!(e, ChannelError::Decrypt | ChannelError::Protocol(_)) {
                tracing::debug!(error = %e, "secure channel closed on a bad frame");
            }
        }
        result
    }

    /// Lets go of every buffer and gives back the memory budget.
    fn free(&mut self) {
        self.assembly = BytesMut::new();
        self.buf = BytesMut::new();
        self.big = None;
        self.pending = Bytes::new();
        self.limits.release(std::mem::take(&mut self.reserved));
    }

    async fn recv_inner<R: AsyncRead + Unpin>(
        &mut self,
        io: &mut R,
        keepalive_at: Option<Instant>,
    ) -> Result<Received, ChannelError> {
        loop {
            if let Some(msg) = self.next_message()? {
                return Ok(Received::Message(msg));
            }
            let Some(Frame { mut bytes, own }) = self.read_frame(io, keepalive_at).await? else {
                return Ok(Received::KeepaliveDue);
            };
            let text_len = bytes.len() - TAG_LEN;
            let (text, tag) = bytes.split_at_mut(text_len);
            self.cipher
                .decrypt(text, tag)
                .map_err(|_| ChannelError::Decrypt)?;
            // An authentic frame, whatever it holds, proves the peer alive.
            self.received_since_idle_check = true;
            self.pending_own = if own { bytes.len() } else { 0 };
            bytes.truncate(text_len);
            self.pending = bytes.freeze();
        }
    }

    /// Reads the next whole frame, or `None` when `keepalive_at` comes first.
    async fn read_frame<R: AsyncRead + Unpin>(
        &mut self,
        io: &mut R,
        keepalive_at: Option<Instant>,
    ) -> Result<Option<Frame>, ChannelError> {
        loop {
            if let Some(frame) = &self.big {
                if frame.len() == self.big_len {
                    self.frame_deadline = None;
                    return Ok(self.big.take().map(|bytes| Frame { bytes, own: true }));
                }
            } else if self.buf.len() >= 2 {
                let len = decode_frame_len([self.buf[0], self.buf[1]]).map_err(protocol)?;
                if len >= OWN_ALLOCATION_MIN {
                    // Move what has arrived of it; the rest is read straight into it.
                    self.buf.advance(2);
                    let have = self.buf.len().min(len);
                    let mut frame = BytesMut::with_capacity(len);
                    frame.extend_from_slice(&self.buf[..have]);
                    self.buf.advance(have);
                    self.big = Some(frame);
                    self.big_len = len;
                    continue;
                }
                if self.buf.len() >= 2 + len {
                    let mut bytes = self.buf.split_to(2 + len);
                    bytes.advance(2);
                    self.frame_deadline = None;
                    return Ok(Some(Frame { bytes, own: false }));
                }
            }
            if !self.read_some(io, keepalive_at).await? {
                return Ok(None);
            }
        }
    }

    /// Waits for more bytes under the deadlines that apply now. Returns `false` when the
    /// keepalive time comes first.
    async fn read_some<R: AsyncRead + Unpin>(
        &mut self,
        io: &mut R,
        keepalive_at: Option<Instant>,
    ) -> Result<bool, ChannelError> {
        if (self.big.is_some() || !self.buf.is_empty()) && self.frame_deadline.is_none() {
            self.frame_deadline = deadline_after(self.frame_timeout);
        }
        let message = if self.assembling {
            self.message_deadline
        } else {
            None
        };
        let stall = earliest(self.frame_deadline, message);
        let mut read = std::pin::pin!(read_more(io, &mut self.buf, &mut self.big, self.big_len));
        let read = loop {
            let Some(at) = earliest(earliest(stall, self.idle_deadline), keepalive_at) else {
                break read.as_mut().await;
            };
            // One timer per channel, moved only when it must fire earlier. Deadlines
            // mostly move later, so a timer armed too early just fires, finds nothing
            // due and is moved on: a timer registration now and then instead of one per
            // read.
            let timer = self
                .timer
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
            if timer.deadline() > at {
                timer.as_mut().reset(at);
            }
            let woke = std::future::poll_fn(|cx| {
                if let Poll::Ready(done) = read.as_mut().poll(cx) {
                    return Poll::Ready(Some(done));
                }
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(None),
                    Poll::Pending => Poll::Pending,
                }
            })
            .await;
            let Some(done) = woke else {
                let now = Instant::now();
                if now < at {
                    timer.as_mut().reset(at);
                    continue;
                }
                let passed = |d: Option<Instant>| d.is_some_and(|d| d <= now);
                if passed(stall) {
                    return Err(ChannelError::Timeout);
                }
                if passed(self.idle_deadline) {
                    if std::mem::take(&mut self.received_since_idle_check) {
                        self.idle_deadline = deadline_after(self.idle_timeout);
                        continue;
                    }
                    return Err(ChannelError::IdleTimeout);
                }
                return Ok(false);
            };
            break done;
        };
        match read? {
            0 => Err(ChannelError::ConnectionLost),
            _ => Ok(true),
        }
    }

    /// Hands out the next complete message from the pending records, if there is one.
    fn next_message(&mut self) -> Result<Option<Bytes>, ChannelError> {
        while !self.pending.is_empty() {
            let (kind, body_len, rest_len) = {
                let (kind, body, rest) = decode_record(&self.pending).map_err(protocol)?;
                (kind, body.len(), rest.len())
            };
            let body = self
                .pending
                .slice(RECORD_HEADER_LEN..RECORD_HEADER_LEN + body_len);
            self.pending.advance(self.pending.len() - rest_len);
            match kind {
                RecordKind::Data if !self.assembling => {
                    if body_len > self.max_message {
                        return Err(ChannelError::MessageTooLarge {
                            limit: self.max_message,
                        });
                    }
                    // A message may keep its frame alive only if it is most of it;
                    // anything else is copied, so that what the application keeps
                    // pins at most twice its own size.
                    let share =
                        self.pending_own > 0 && body_len >= ZERO_COPY_MIN && body_len * 2 >= self.pending_own;
                    return Ok(Some(if share {
                        body
                    } else {
                        Bytes::copy_from_slice(&body)
                    }));
                }
                RecordKind::Data | RecordKind::More => {
                    if self.assembly.len() + body_len > self.max_message {
                        return Err(ChannelError::MessageTooLarge {
                            limit: self.max_message,
                        });
                    }
                    if !self.limits.try_reserve(body_len) {
                        tracing::warn!(
                            budget = self.limits.memory_budget(),
                            "secure channel closed: incomplete messages of all channels over the memory budget"
                        );
                        return Err(ChannelError::OverBudget {
                            budget: self.limits.memory_budget(),
                        });
                    }
                    self.reserved += body_len;
                    if !self.assembling {
                        self.message_deadline = deadline_after(self.message_timeout);
                    }
                    self.assembly.extend_from_slice(&body);
                    if kind == RecordKind::Data {
                        self.assembling = false;
                        self.message_deadline = None;
                        self.limits.release(std::mem::take(&mut self.reserved));
                        // Taken, not split: the next message must not share (and pin)
                        // this allocation.
                        return Ok(Some(std::mem::take(&mut self.assembly).freeze()));
                    }
                    self.assembling = true;
                }
                RecordKind::Close => return Err(ChannelError::Closed),
                RecordKind::Rekey => self.cipher.rekey(),
                RecordKind::Keepalive => {}
            }
        }
        Ok(None)
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.limits.release(self.reserved);
    }
}
