//! The transport phase: framing, fragmentation, rekeying and close, one state per
//! direction so the reader and writer halves never share anything.

use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use super::cipher::{CipherState, DATA_NONCE_LIMIT};
use crate::error::ChannelError;
use crate::wire::{decode_frame_len, decode_frame_plaintext, FrameKind, MAX_FRAME_BODY, TAG_LEN};

/// The writer sends its buffer once it holds this much, even before `flush`.
const FLUSH_AT: usize = 64 * 1024;
/// How much the reader asks the stream for at once.
const READ_CHUNK: usize = 64 * 1024;
/// Single-frame messages at least this large are handed out without a copy.
const ZERO_COPY_MIN: usize = 2048;

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
    rekey_after: u64,
    since_rekey: u64,
    max_message: usize,
    state: State,
}

impl Sender {
    pub(crate) fn new(cipher: CipherState, rekey_after: u64, max_message: usize) -> Sender {
        Sender {
            cipher,
            buf: Vec::with_capacity(FLUSH_AT + MAX_FRAME_BODY + 64),
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

    /// Encrypts one frame onto the end of the buffer.
    fn push_frame(&mut self, kind: FrameKind, body: &[u8]) -> Result<(), ChannelError> {
        let limit = if kind == FrameKind::Close {
            u64::MAX
        } else {
            DATA_NONCE_LIMIT
        };
        if self.cipher.nonce() >= limit {
            return Err(ChannelError::NonceExhausted);
        }
        let len = 1 + body.len() + TAG_LEN;
        let len16 = u16::try_from(len).map_err(|_| ChannelError::Protocol("frame too long"))?;
        let start = self.buf.len();
        self.buf.extend_from_slice(&len16.to_be_bytes());
        self.buf.push(kind.to_byte());
        self.buf.extend_from_slice(body);
        match self.cipher.encrypt(&mut self.buf[start + 2..]) {
            Some(tag) => {
                self.buf.extend_from_slice(&tag);
                Ok(())
            }
            None => {
                self.buf.truncate(start);
                Err(ChannelError::NonceExhausted)
            }
        }
    }

    /// Appends the frames of `msg` to the buffer (writing out full buffers on the way).
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
        // Refuse up front if the whole message (with any rekey frames) would not fit in the
        // nonces left, so the peer never sees half a message.
        let frames = msg.len().div_ceil(MAX_FRAME_BODY).max(1) as u64;
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
        let result = self.feed_frames(io, msg).await;
        if result.is_err() {
            self.state = State::Broken;
        }
        result
    }

    async fn feed_frames<W>(&mut self, io: &mut W, msg: &[u8]) -> Result<(), ChannelError>
    where
        W: AsyncWrite + Unpin,
    {
        let mut rest = msg;
        loop {
            if self.since_rekey >= self.rekey_after {
                self.push_frame(FrameKind::Rekey, &[])?;
                self.cipher.rekey();
                self.since_rekey = 0;
            }
            let take = rest.len().min(MAX_FRAME_BODY);
            let (chunk, tail) = rest.split_at(take);
            let kind = if tail.is_empty() {
                FrameKind::Data
            } else {
                FrameKind::More
            };
            self.push_frame(kind, chunk)?;
            self.since_rekey += 1;
            rest = tail;
            if self.buf.len() >= FLUSH_AT {
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

    /// Writes out everything fed so far and flushes the stream.
    pub(crate) async fn flush<W: AsyncWrite + Unpin>(&mut self, io: &mut W) -> Result<(), ChannelError> {
        self.check_open()?;
        let result = async {
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
            self.push_frame(FrameKind::Close, &[])?;
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
    assembly: BytesMut,
    assembling: bool,
    max_message: usize,
    frame_timeout: Duration,
    state: State,
}

impl Receiver {
    pub(crate) fn new(cipher: CipherState, max_message: usize, frame_timeout: Duration) -> Receiver {
        Receiver {
            cipher,
            buf: BytesMut::with_capacity(READ_CHUNK * 2),
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
            if matches!(e, ChannelError::Decrypt | ChannelError::Protocol(_)) {
                tracing::debug!(error = %e, "secure channel closed on a bad frame");
            }
        }
        result
    }

    async fn recv_inner<R: AsyncRead + Unpin>(&mut self, io: &mut R) -> Result<Bytes, ChannelError> {
        loop {
            self.fill(io, 2).await?;
            let len = decode_frame_len([self.buf[0], self.buf[1]])
                .map_err(|_| ChannelError::Protocol("frame too short"))?;
            self.fill(io, 2 + len).await?;
            let mut frame = self.buf.split_to(2 + len);
            frame.advance(2);
            let text_len = len - TAG_LEN;
            let (text, tag) = frame.split_at_mut(text_len);
            self.cipher
                .decrypt(text, tag)
                .map_err(|_| ChannelError::Decrypt)?;
            let (kind, body) = decode_frame_plaintext(&frame[..text_len])
                .map_err(|_| ChannelError::Protocol("bad frame"))?;
            let body_len = body.len();
            match kind {
                FrameKind::Data if !self.assembling => {
                    if body_len > self.max_message {
                        return Err(ChannelError::MessageTooLarge {
                            limit: self.max_message,
                        });
                    }
                    if body_len >= ZERO_COPY_MIN {
                        frame.advance(1);
                        frame.truncate(body_len);
                        return Ok(frame.freeze());
                    }
                    return Ok(Bytes::copy_from_slice(&frame[1..text_len]));
                }
                FrameKind::Data | FrameKind::More => {
                    if self.assembly.len() + body_len > self.max_message {
                        return Err(ChannelError::MessageTooLarge {
                            limit: self.max_message,
                        });
                    }
                    self.assembly.extend_from_slice(&frame[1..text_len]);
                    if kind == FrameKind::Data {
                        self.assembling = false;
                        return Ok(self.assembly.split().freeze());
                    }
                    self.assembling = true;
                }
                FrameKind::Close => return Err(ChannelError::Closed),
                FrameKind::Rekey => self.cipher.rekey(),
            }
        }
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
