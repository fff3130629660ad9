//! Helpers for running both ends of a channel, and a raw Noise peer built directly on
//! snow that can deviate from the protocol.

#![allow(dead_code)] // each test file uses a different part of it

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actor_secure::wire::{HandshakePayload, NOISE_PARAMS, PROLOGUE};
use actor_secure::{ChannelConfig, ChannelError, Identity, SecureChannel, TrustPolicy};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

pub(crate) type Chan = SecureChannel<DuplexStream>;

pub(crate) fn quick() -> ChannelConfig {
    ChannelConfig::default().handshake_timeout(Duration::from_secs(5))
}

/// Runs an initiator (alice) on `client` and a responder (bob) on `server`.
pub(crate) async fn pair(
    client: DuplexStream,
    server: DuplexStream,
    alice: &Identity,
    bob: &Identity,
    config: &ChannelConfig,
) -> (Result<Chan, ChannelError>, Result<Chan, ChannelError>) {
    tokio::join!(
        SecureChannel::initiate_with(client, alice, TrustPolicy::any(), config),
        SecureChannel::respond_with(server, bob, TrustPolicy::any(), config),
    )
}

pub(crate) fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// A snow handshake state with our suite unless told otherwise.
pub(crate) fn raw_state(params: &str, prologue: &[u8], initiator: bool) -> (snow::HandshakeState, [u8; 32]) {
    let builder = snow::Builder::new(params.parse().unwrap());
    let kp = builder.generate_keypair().unwrap();
    let b = snow::Builder::new(params.parse().unwrap())
        .local_private_key(&kp.private)
        .unwrap()
        .prologue(prologue)
        .unwrap();
    let hs = if initiator {
        b.build_initiator()
    } else {
        b.build_responder()
    }
    .unwrap();
    (hs, kp.public.try_into().unwrap())
}

pub(crate) async fn write_frame(io: &mut DuplexStream, msg: &[u8]) {
    let mut out = (msg.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(msg);
    io.write_all(&out).await.unwrap();
}

pub(crate) async fn read_frame(io: &mut DuplexStream) -> Option<Vec<u8>> {
    let mut p = [0u8; 2];
    io.read_exact(&mut p).await.ok()?;
    let mut m = vec![0u8; usize::from(u16::from_be_bytes(p))];
    io.read_exact(&mut m).await.ok()?;
    Some(m)
}

/// A raw responder: reads msg1, answers with msg2 carrying `payload(static_key)`.
pub(crate) async fn raw_responder(
    mut io: DuplexStream,
    params: &str,
    prologue: &[u8],
    payload: impl FnOnce(&[u8; 32]) -> Vec<u8>,
) -> DuplexStream {
    let (mut hs, s) = raw_state(params, prologue, false);
    let msg1 = read_frame(&mut io).await.unwrap();
    let mut buf = vec![0u8; 65535];
    hs.read_message(&msg1, &mut buf).unwrap();
    let n = hs.write_message(&payload(&s), &mut buf).unwrap();
    write_frame(&mut io, &buf[..n]).await;
    io
}

/// A raw initiator: sends msg1, reads msg2, sends msg3 carrying `payload(static_key)`.
pub(crate) async fn raw_initiator(
    mut io: DuplexStream,
    payload: impl FnOnce(&[u8; 32]) -> Vec<u8>,
) -> DuplexStream {
    let (mut hs, s) = raw_state(NOISE_PARAMS, PROLOGUE, true);
    let mut buf = vec![0u8; 65535];
    let n = hs.write_message(&[], &mut buf).unwrap();
    write_frame(&mut io, &buf[..n]).await;
    let msg2 = read_frame(&mut io).await.unwrap();
    hs.read_message(&msg2, &mut buf).unwrap();
    let n = hs.write_message(&payload(&s), &mut buf).unwrap();
    write_frame(&mut io, &buf[..n]).await;
    io
}

/// The honest payload for `identity` over `static_key`.
pub(crate) fn honest(identity: &Identity) -> impl FnOnce(&[u8; 32]) -> Vec<u8> + '_ {
    move |s| HandshakePayload::sign(identity, s, now() + 600).encode().to_vec()
}

/// A peer that did an honest handshake as the initiator and now sends any records it
/// likes, encrypted correctly: what a hostile but authenticated peer can do.
pub(crate) struct RawTransport {
    pub(crate) io: DuplexStream,
    pub(crate) state: snow::TransportState,
}

impl RawTransport {
    /// Completes an honest handshake as `identity`.
    pub(crate) async fn connect(mut io: DuplexStream, identity: &Identity) -> RawTransport {
        let (mut hs, s) = raw_state(NOISE_PARAMS, PROLOGUE, true);
        let mut buf = vec![0u8; 65535];
        let n = hs.write_message(&[], &mut buf).unwrap();
        write_frame(&mut io, &buf[..n]).await;
        let msg2 = read_frame(&mut io).await.unwrap();
        hs.read_message(&msg2, &mut buf).unwrap();
        let payload = HandshakePayload::sign(identity, &s, now() + 60).encode();
        let n = hs.write_message(&payload, &mut buf).unwrap();
        write_frame(&mut io, &buf[..n]).await;
        RawTransport {
            io,
            state: hs.into_transport_mode().unwrap(),
        }
    }

    /// Encrypts `plaintext` (one or more records) as the next frame; returns the frame
    /// with its length prefix without sending it.
    pub(crate) fn seal(&mut self, plaintext: &[u8]) -> Vec<u8> {
        let mut buf = vec![0u8; 65535];
        let n = self.state.write_message(plaintext, &mut buf).unwrap();
        let mut out = (n as u16).to_be_bytes().to_vec();
        out.extend_from_slice(&buf[..n]);
        out
    }

    /// Sends `plaintext` as the next frame.
    pub(crate) async fn frame(&mut self, plaintext: &[u8]) {
        let frame = self.seal(plaintext);
        self.io.write_all(&frame).await.unwrap();
    }
}

/// One record: kind, big-endian body length, body.
pub(crate) fn record(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![kind];
    out.extend_from_slice(&(body.len() as u16).to_be_bytes());
    out.extend_from_slice(body);
    out
}
