//! The transport phase: framing, batching, fragmentation, rekeying and close, one state
//! per direction so the reader and writer halves never share anything.
//!
//! The sender keeps one *open* frame at the end of its buffer and appends records to it;
//! the frame is sealed (encrypted in place) when the next record does not fit, on flush,
//! or when the buffer is full. Many small messages thus cost one AEAD operation and one
//! write together.

use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use super::cipher::{CipherState, DATA_NONCE_LIMIT};
use crate::error::ChannelError;
use crate::wire::{
    decode_frame_len, decode_record, FrameError, RecordKind, MAX_NOISE_MESSAGE, MAX_RECORD_BODY,
    RECORD_HEADER_LEN, TAG_LEN,
};

/// The writer sends its buffer once it holds this much, even before `flush`.
const FLUSH_AT: usize = 64 * 1024;
/// How much the reader asks the stream for at once.
const READ_CHUNK: usize = 64 * 1024;
/// Messages at least this large are handed out without a copy.
const ZERO_COPY_MIN: usize = 2048;
/// Largest frame plaintext.
const MAX_PLAINTEXT: usize = MAX_NOISE_MESSAGE - TAG_LEN;

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
    /// Offset in `buf` of the open frame's length prefix.
    open: Option<usize>,
    rekey_after: u64,
    since_rekey: u64,
    max_message: usize,
    state: State,
}

impl Sender {
    pub(crate) fn new(cipher: CipherState, rekey_after: u64, max_message: usize) -> Sender {
        Sender {
            cipher,
            buf: Vec::with_capacity(FLUSH_AT + MAX_NOISE_MESSAGE + 64),
            open: None,
            rekey_after: rekey_after.max(1),
            since_rekey: 0,
            max_message,
            state: State::Open,
        }
    }

    pub(crate) fn nonce(&self) -> u64 {
        self.cipher.nonce()
    }

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
        let result = self.feed_records(io, msg).await;
        if result.is_err() {
            self.state = State::Broken;
        }
        result
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

    async fn write_out<W: AsyncWrite + Unpin>(&mut self, io: &mut W) -> Result<(), ChannelError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        // If this future is dropped half-way, an unknown part of the buffer is on the wire:
        // the stream can no longer be framed, so the sender stays broken.
        self.state = State::Broken;
        io.write_all(&self.buf).await?;
        self.buf.clear();
        self.state = State::Open;
        Ok(())
    }

    /// Seals the open frame, writes out everything fed so far and flushes the stream.
    pub(crate) async fn flush<W: AsyncWrite + Unpin>(&mut self, io: &mut W) -> Result<(), ChannelError> {
        self.check_open()?;
        let result = async {
            self.seal(false)?;
            self.write_out(io).await?;
            io.flush().await?;
            Ok(())
        }
        .await;
        if result.is_err() {
            self.state = State::Broken;
        }
        result
    }

    /// Sends the authenticated close and shuts the stream's write side.
    pub(crate) async fn close<W: AsyncWrite + Unpin>(&mut self, io: &mut W) -> Result<(), ChannelError> {
        self.check_open()?;
        let result = async {
            self.push_record(RecordKind::Close, &[])?;
            self.seal(true)?;
            self.write_out(io).await?;
            io.flush().await?;
            io.shutdown().await?;
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

/// The receiving direction.
#[derive(Debug)]
pub(crate) struct Receiver {
    cipher: CipherState,
    buf: BytesMut,
    /// Records of the last decrypted frame not handed out yet.
    pending: Bytes,
    assembly: BytesMut,
    assembling: bool,
    max_message: usize,
    frame_timeout: Duration,
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

impl Receiver {
    pub(crate) fn new(cipher: CipherState, max_message: usize, frame_timeout: Duration) -> Receiver {
        Receiver {
            cipher,
            buf: BytesMut::with_capacity(READ_CHUNK * 2),
            pending: Bytes::new(),
            assembly: BytesMut::new(),
            assembling: false,
            max_message,
            frame_timeout,
            state: State::Open,
        }
    }

    pub(crate) fn set_nonce(&mut self, n: u64) {
        self.cipher.set_nonce(n);
    }

    pub(crate) fn nonce(&self) -> u64 {
        self.cipher.nonce()
    }

    /// Receives the next whole message.
    pub(crate) async fn recv<R: AsyncRead + Unpin>(&mut self, io: &mut R) -> Result<Bytes, ChannelError> {
        match self.state {
            State::Open => {}
            State::Closed => return Err(ChannelError::Closed),
            State::Broken => return Err(ChannelError::Broken),
        }
        let result = self.recv_inner(io).await;
        if let Err(e) = &result {
            self.state = if matches!(e, ChannelError::Closed) {
                State::Closed
            } else {
                State::Broken
            };
            self.assembly = BytesMut::new();
            self.buf = BytesMut::new();
            self.pending = Bytes::new();
            if matches!(e, ChannelError::Decrypt | ChannelError::Protocol(_)) {
                tracing::debug!(error = %e, "secure channel closed on a bad frame");
            }
        }
        result
    }

    async fn recv_inner<R: AsyncRead + Unpin>(&mut self, io: &mut R) -> Result<Bytes, ChannelError> {
        loop {
            if let Some(msg) = self.next_message()? {
                return Ok(msg);
            }
            self.fill(io, 2).await?;
            let len = decode_frame_len([self.buf[0], self.buf[1]]).map_err(protocol)?;
            self.fill(io, 2 + len).await?;
            let mut frame = self.buf.split_to(2 + len);
            frame.advance(2);
            let text_len = len - TAG_LEN;
            let (text, tag) = frame.split_at_mut(text_len);
            self.cipher
                .decrypt(text, tag)
                .map_err(|_| ChannelError::Decrypt)?;
            frame.truncate(text_len);
            self.pending = frame.freeze();
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
                    // Small messages are copied so that they do not pin the read buffer.
                    return Ok(Some(if body_len >= ZERO_COPY_MIN {
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
                    self.assembly.extend_from_slice(&body);
                    if kind == RecordKind::Data {
                        self.assembling = false;
                        return Ok(Some(self.assembly.split().freeze()));
                    }
                    self.assembling = true;
                }
                RecordKind::Close => return Err(ChannelError::Closed),
                RecordKind::Rekey => self.cipher.rekey(),
            }
        }
        Ok(None)
    }

    /// Reads until the buffer holds `n` bytes. The stream ending first is a cut
    /// connection; a frame that has started must complete within the frame timeout.
    async fn fill<R: AsyncRead + Unpin>(&mut self, io: &mut R, n: usize) -> Result<(), ChannelError> {
        let mut deadline: Option<Instant> = None;
        while self.buf.len() < n {
            self.buf.reserve((n - self.buf.len()).max(READ_CHUNK));
            let read = if self.buf.is_empty() && !self.assembling {
                io.read_buf(&mut self.buf).await?
            } else {
                let at = *deadline.get_or_insert_with(|| Instant::now() + self.frame_timeout);
                match tokio::time::timeout_at(at, io.read_buf(&mut self.buf)).await {
                    Ok(read) => read?,
                    Err(_) => return Err(ChannelError::Timeout),
                }
            };
            if read == 0 {
                return Err(ChannelError::ConnectionLost);
            }
        }
        Ok(())
    }
}
