//! The XX handshake: a sans-I/O state machine ([`Initiator`], [`Responder`]) and the async
//! driver [`run`] that moves its messages over a stream.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use snow::HandshakeState;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use zeroize::Zeroizing;

use super::cipher::CipherState;
use super::resolver::ZeroizingResolver;
use super::static_key::StaticKey;
use super::verified::VerifiedBindings;
use super::ChannelConfig;
use crate::agent::unix_secs;
use crate::error::{ChannelError, HandshakeError};
use crate::identity::{Identity, PublicIdentity};
use crate::trust::TrustPolicy;
use crate::wire::{is_low_order_x25519, MSG1_LEN, MSG2_LEN, MSG3_LEN, NOISE_PARAMS, PROLOGUE};

/// The outcome of a successful handshake.
pub(crate) struct Established {
    pub(crate) peer: PublicIdentity,
    pub(crate) send: CipherState,
    pub(crate) recv: CipherState,
}

/// Key material for one handshake: our identity's current Noise static key and its
/// binding (shared with its other handshakes, see `static_key.rs`), and, for test vectors
/// only, a fixed ephemeral key.
pub(crate) struct Keys {
    static_key: Arc<StaticKey>,
    fixed_ephemeral: Option<Zeroizing<[u8; 32]>>,
}

impl Keys {
    /// The identity's current static key for a handshake starting at `now`.
    pub(crate) fn current(identity: &Identity, validity: Duration, now: u64) -> Keys {
        Keys {
            static_key: identity.static_key(validity, now),
            fixed_ephemeral: None,
        }
    }

    #[cfg(test)]
    pub(crate) fn fixed(
        identity: &Identity,
        static_private: [u8; 32],
        ephemeral: [u8; 32],
        expires_at: u64,
    ) -> Keys {
        let private = Zeroizing::new(static_private);
        Keys {
            static_key: Arc::new(StaticKey::from_private(identity, private, expires_at)),
            fixed_ephemeral: Some(Zeroizing::new(ephemeral)),
        }
    }

    fn build(&self, initiator: bool) -> Result<HandshakeState, HandshakeError> {
        let params = NOISE_PARAMS.parse().map_err(|_| HandshakeError::Noise)?;
        // Our resolver wipes the keys snow copies into its heap blocks (see resolver.rs),
        // and knows the static key's public half, so snow need not compute it again.
        let resolver = ZeroizingResolver::with_static_key(Arc::clone(&self.static_key));
        let mut builder = snow::Builder::with_resolver(params, Box::new(resolver))
            .local_private_key(self.static_key.private())
            .and_then(|b| b.prologue(PROLOGUE))
            .map_err(|_| HandshakeError::Noise)?;
        if let Some(e) = &self.fixed_ephemeral {
            builder = builder.fixed_ephemeral_key_for_testing_only(e.as_ref());
        }
        let hs = if initiator {
            builder.build_initiator()
        } else {
            builder.build_responder()
        };
        hs.map_err(|_| HandshakeError::Noise)
    }
}

fn key32(bytes: &[u8]) -> Result<[u8; 32], HandshakeError> {
    bytes.try_into().map_err(|_| HandshakeError::BadLength)
}

/// Shared steps of both roles.
struct Machine {
    hs: HandshakeState,
    keys: Keys,
}

impl Machine {
    fn new(keys: Keys, initiator: bool) -> Result<Self, HandshakeError> {
        let hs = keys.build(initiator)?;
        Ok(Machine { hs, keys })
    }

    fn write(&mut self, with_payload: bool) -> Result<Vec<u8>, HandshakeError> {
        let encoded;
        let payload: &[u8] = if with_payload {
            encoded = self.keys.static_key.binding().encode();
            &encoded
        } else {
            &[]
        };
        let mut out = vec![0u8; MSG2_LEN.max(MSG3_LEN).max(MSG1_LEN)];
        let n = self
            .hs
            .write_message(payload, &mut out)
            .map_err(|_| HandshakeError::Noise)?;
        out.truncate(n);
        Ok(out)
    }

    /// Reads a message carrying the peer's ephemeral key in the clear at its start (msg1
    /// and msg2): refuses a weak ephemeral before doing any Diffie-Hellman with it.
    fn check_clear_ephemeral(msg: &[u8]) -> Result<(), HandshakeError> {
        let e = key32(msg.get(..32).ok_or(HandshakeError::BadLength)?)?;
        if is_low_order_x25519(&e) {
            return Err(HandshakeError::WeakKey);
        }
        Ok(())
    }

    /// Reads msg2 or msg3: decrypts, then binds the payload's identity to the static key
    /// that Noise authenticated.
    fn read_identity(
        &mut self,
        msg: &[u8],
        now: u64,
        verified: &VerifiedBindings,
    ) -> Result<PublicIdentity, HandshakeError> {
        let mut payload = [0u8; MSG2_LEN];
        let n = self
            .hs
            .read_message(msg, &mut payload)
            .map_err(|_| HandshakeError::Decrypt)?;
        let rs = key32(self.hs.get_remote_static().ok_or(HandshakeError::Noise)?)?;
        if is_low_order_x25519(&rs) {
            return Err(HandshakeError::WeakKey);
        }
        // Decodes and verifies the binding (its signature only the first time we see it).
        let peer = verified.check(&payload[..n], &rs, now)?;
        let ours = &self.keys.static_key;
        if rs == *ours.public() {
            // Only our identity holds this key (its handshakes share it), so the peer is
            // ourselves: a loop back, maybe through a relay. Claiming another identity
            // for our key is a reflection.
            return Err(if peer == *ours.binding().identity() {
                HandshakeError::SelfConnection
            } else {
                HandshakeError::Reflected
            });
        }
        Ok(peer)
    }

    fn finish(mut self, peer: PublicIdentity, initiator: bool) -> Established {
        if !self.hs.is_handshake_finished() {
            unreachable!("finish is only called after the last handshake message");
        }
        let (k1, k2) = self.hs.dangerously_get_raw_split();
        let (k1, k2) = (Zeroizing::new(k1), Zeroizing::new(k2));
        let (send, recv) = if initiator { (*k1, *k2) } else { (*k2, *k1) };
        Established {
            peer,
            send: CipherState::new(send),
            recv: CipherState::new(recv),
        }
    }
}

/// The initiator's side: `write_msg1`, `read_msg2`, `write_msg3`, `finish`.
pub(crate) struct Initiator(Machine);

impl Initiator {
    pub(crate) fn new(keys: Keys) -> Result<Self, HandshakeError> {
        Machine::new(keys, true).map(Initiator)
    }

    pub(crate) fn write_msg1(&mut self) -> Result<Vec<u8>, HandshakeError> {
        self.0.write(false)
    }

    /// Reads msg2; `verified` is our identity's memory of peers' bindings.
    pub(crate) fn read_msg2(
        &mut self,
        msg: &[u8],
        now: u64,
        verified: &VerifiedBindings,
    ) -> Result<PublicIdentity, HandshakeError> {
        if msg.len() != MSG2_LEN {
            return Err(HandshakeError::BadLength);
        }
        Machine::check_clear_ephemeral(msg)?;
        self.0.read_identity(msg, now, verified)
    }

    pub(crate) fn write_msg3(&mut self) -> Result<Vec<u8>, HandshakeError> {
        self.0.write(true)
    }

    pub(crate) fn finish(self, peer: PublicIdentity) -> Established {
        self.0.finish(peer, true)
    }
}

/// The responder's side: `read_msg1`, `write_msg2`, `read_msg3`, `finish`.
pub(crate) struct Responder(Machine);

impl Responder {
    pub(crate) fn new(keys: Keys) -> Result<Self, HandshakeError> {
        Machine::new(keys, false).map(Responder)
    }

    pub(crate) fn read_msg1(&mut self, msg: &[u8]) -> Result<(), HandshakeError> {
        if msg.len() != MSG1_LEN {
            return Err(HandshakeError::BadLength);
        }
        Machine::check_clear_ephemeral(msg)?;
        let mut payload = [0u8; MSG1_LEN];
        let n = self
            .0
            .hs
            .read_message(msg, &mut payload)
            .map_err(|_| HandshakeError::Decrypt)?;
        if n != 0 {
            return Err(HandshakeError::UnexpectedPayload);
        }
        Ok(())
    }

    pub(crate) fn write_msg2(&mut self) -> Result<Vec<u8>, HandshakeError> {
        self.0.write(true)
    }

    /// Reads msg3; `verified` is our identity's memory of peers' bindings.
    pub(crate) fn read_msg3(
        &mut self,
        msg: &[u8],
        now: u64,
        verified: &VerifiedBindings,
    ) -> Result<PublicIdentity, HandshakeError> {
        if msg.len() != MSG3_LEN {
            return Err(HandshakeError::BadLength);
        }
        self.0.read_identity(msg, now, verified)
    }

    pub(crate) fn finish(self, peer: PublicIdentity) -> Established {
        self.0.finish(peer, false)
    }
}

async fn write_msg<IO: AsyncWrite + Unpin>(io: &mut IO, msg: &[u8]) -> Result<(), ChannelError> {
    let len = u16::try_from(msg.len()).map_err(|_| HandshakeError::Noise)?;
    let mut framed = Vec::with_capacity(2 + msg.len());
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(msg);
    io.write_all(&framed).await?;
    io.flush().await?;
    Ok(())
}

/// Reads one length-prefixed handshake message that must be exactly `expected` bytes;
/// any other length prefix is refused before anything else is read or allocated.
async fn read_msg<IO: AsyncRead + Unpin>(io: &mut IO, expected: usize) -> Result<Vec<u8>, ChannelError> {
    let mut prefix = [0u8; 2];
    io.read_exact(&mut prefix).await?;
    if usize::from(u16::from_be_bytes(prefix)) != expected {
        return Err(HandshakeError::BadLength.into());
    }
    let mut msg = vec![0u8; expected];
    io.read_exact(&mut msg).await?;
    Ok(msg)
}

fn now() -> u64 {
    unix_secs(SystemTime::now())
}

/// Runs `op` until `d` from now; `Duration::MAX` (or any deadline past the end of time)
/// means no deadline.
async fn within<T>(
    d: std::time::Duration,
    op: impl std::future::Future<Output = Result<T, ChannelError>>,
) -> Result<T, ChannelError> {
    match super::deadline_after(d) {
        Some(at) => tokio::time::timeout_at(at, op)
            .await
            .unwrap_or(Err(ChannelError::Timeout)),
        None => op.await,
    }
}

/// Checks the authenticated peer against the policy and against ourselves.
fn admit(peer: &PublicIdentity, identity: &Identity, policy: &TrustPolicy) -> Result<(), ChannelError> {
    if peer.identifier() == identity.identifier() {
        // Our own identity at the other end: a loop back to ourselves (a node dialling
        // its own address) or a stolen key. Never useful, so never accepted.
        return Err(HandshakeError::SelfConnection.into());
    }
    if !policy.allows(&peer.identifier()) {
        return Err(ChannelError::UntrustedPeer(peer.identifier()));
    }
    Ok(())
}

/// Decides, once a responder has the peer's first message, whether to spend the work of
/// a handshake on it: returns what to hold while the handshake runs, or `None` to drop
/// the connection as [`ChannelError::Busy`].
pub(crate) type Gate<'a> = &'a mut (dyn FnMut() -> Option<crate::limiter::HandshakePermit> + Send);

/// Runs the handshake over `io` within the configured timeouts.
pub(crate) async fn run<IO>(
    io: &mut IO,
    identity: &Identity,
    policy: &TrustPolicy,
    config: &ChannelConfig,
    initiator: bool,
    gate: Option<Gate<'_>>,
) -> Result<Established, ChannelError>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let validity = config.binding_validity;
    let work = async {
        if initiator {
            let mut m = Initiator::new(Keys::current(identity, validity, now()))?;
            write_msg(io, &m.write_msg1()?).await?;
            let msg2 = read_msg(io, MSG2_LEN).await?;
            let peer = m.read_msg2(&msg2, now(), identity.verified_bindings())?;
            admit(&peer, identity, policy)?;
            write_msg(io, &m.write_msg3()?).await?;
            Ok(m.finish(peer))
        } else {
            // Nothing costly (key generation, signing) until the peer has spoken, and
            // only a short wait for it to do so.
            let msg1 = within(config.first_message_timeout, read_msg(io, MSG1_LEN)).await?;
            let _permit = match gate {
                Some(gate) => Some(gate().ok_or(ChannelError::Busy)?),
                None => None,
            };
            let mut m = Responder::new(Keys::current(identity, validity, now()))?;
            m.read_msg1(&msg1)?;
            write_msg(io, &m.write_msg2()?).await?;
            let msg3 = read_msg(io, MSG3_LEN).await?;
            let peer = m.read_msg3(&msg3, now(), identity.verified_bindings())?;
            admit(&peer, identity, policy)?;
            Ok(m.finish(peer))
        }
    };
    within(config.handshake_timeout, work).await
}

#[cfg(test)]
mod tests {
    //! The whole wire transcript with fixed keys, pinned in `tests/vectors/transcript.txt`.
    //! Run with `TROUPE_UPDATE_VECTORS=1` to rewrite the file after a deliberate change.

    use super::*;
    use crate::channel::transport::Sender;

    const EXPIRES: u64 = 1_900_000_000;
    const NOW: u64 = EXPIRES - 60;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    async fn frames(sender: &mut Sender, msgs: &[&[u8]], close: bool) -> Vec<u8> {
        let mut wire = Vec::new();
        for m in msgs {
            sender.feed(&mut wire, m).await.unwrap();
        }
        sender.flush(&mut wire).await.unwrap();
        if close {
            sender.close(&mut wire).await.unwrap();
        }
        wire
    }

    #[tokio::test]
    async fn transcript_with_fixed_keys_matches_the_golden_vector() {
        let alice = Identity::from_seed(&[0xa1; 32]);
        let bob = Identity::from_seed(&[0xb0; 32]);
        let mut i = Initiator::new(Keys::fixed(&alice, [0x11; 32], [0x12; 32], EXPIRES)).unwrap();
        let mut r = Responder::new(Keys::fixed(&bob, [0x21; 32], [0x22; 32], EXPIRES)).unwrap();
        let msg1 = i.write_msg1().unwrap();
        r.read_msg1(&msg1).unwrap();
        let msg2 = r.write_msg2().unwrap();
        let bob_pub = i.read_msg2(&msg2, NOW, alice.verified_bindings()).unwrap();
        let msg3 = i.write_msg3().unwrap();
        let alice_pub = r.read_msg3(&msg3, NOW, bob.verified_bindings()).unwrap();
        assert_eq!(bob_pub.identifier(), bob.identifier());
        assert_eq!(alice_pub.identifier(), alice.identifier());
        let a = i.finish(bob_pub);
        let b = r.finish(alice_pub);
        let config = ChannelConfig::default().max_message_size(1 << 20);
        let mut a_tx = Sender::new(a.send, &config.clone().rekey_after_frames(2));
        let mut b_tx = Sender::new(b.send, &config);
        let big = vec![0x5a; crate::wire::MAX_RECORD_BODY + 3];
        let a_frames = frames(&mut a_tx, &[b"hello", b"", b"third", &big[..]], true).await;
        let b_frames = frames(&mut b_tx, &[b"world"], false).await;

        // The receiving sides accept exactly these bytes.
        let mut a_rx = super::super::transport::Receiver::new(b.recv, &config);
        let mut wire = &a_frames[..];
        for want in [&b"hello"[..], b"", b"third", &big[..]] {
            match a_rx.recv(&mut wire, None).await.unwrap() {
                super::super::transport::Received::Message(got) => assert_eq!(&got[..], want),
                other => panic!("expected a message, got {other:?}"),
            }
        }
        assert!(matches!(
            a_rx.recv(&mut wire, None).await,
            Err(ChannelError::Closed)
        ));
        drop(a.recv);

        // The large message is only pinned by its hash to keep the file small.
        use sha2::Digest;
        let got = format!(
            "msg1 {}\nmsg2 {}\nmsg3 {}\ninitiator_frames_sha256 {}\ninitiator_frames_head {}\nresponder_frames {}\n",
            hex(&msg1),
            hex(&msg2),
            hex(&msg3),
            hex(&sha2::Sha256::digest(&a_frames)),
            hex(&a_frames[..80]),
            hex(&b_frames),
        );
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/transcript.txt");
        if std::env::var_os("TROUPE_UPDATE_VECTORS").is_some() {
            std::fs::write(path, &got).unwrap();
        }
        let want = std::fs::read_to_string(path).expect("golden vector file");
        assert_eq!(got, want, "wire format changed; see the module docs to update");
    }
}
