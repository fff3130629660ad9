//! H14 end to end: a responder whose Noise *static* key is a small-order point.
//!
//! snow derives public keys from private ones, so it cannot produce such a peer, and it
//! does not check the keys it receives. This test runs the responder side of
//! `Noise_XX_25519_ChaChaPoly_BLAKE2s` by hand (Noise spec §5), sending the order-8 point
//! as its static key. Every Diffie-Hellman with that key is all-zero, so the attacker
//! needs no private key and the Noise layer alone completes; our binding must refuse.

#[path = "support/peers.rs"]
mod peers;

use actor_secure::wire::{HandshakePayload, PROLOGUE};
use actor_secure::{ChannelError, HandshakeError, Identity, SecureChannel, TrustPolicy};
use blake2::{Blake2s256, Digest};
use chacha20poly1305::aead::AeadInPlace;
use chacha20poly1305::{ChaCha20Poly1305, KeyInit};
use curve25519_dalek::montgomery::MontgomeryPoint;
use hkdf::SimpleHkdf;

struct Symmetric {
    ck: [u8; 32],
    h: [u8; 32],
    k: Option<[u8; 32]>,
}

impl Symmetric {
    fn new() -> Self {
        let h: [u8; 32] = Blake2s256::digest(b"Noise_XX_25519_ChaChaPoly_BLAKE2s").into();
        Symmetric { ck: h, h, k: None }
    }
    fn mix_hash(&mut self, data: &[u8]) {
        let mut d = Blake2s256::new();
        d.update(self.h);
        d.update(data);
        self.h = d.finalize().into();
    }
    fn mix_key(&mut self, ikm: &[u8]) {
        // Noise HKDF with two outputs is HKDF-Extract(ck, ikm) then Expand with empty info.
        let mut out = [0u8; 64];
        SimpleHkdf::<Blake2s256>::new(Some(&self.ck), ikm)
            .expand(&[], &mut out)
            .unwrap();
        self.ck.copy_from_slice(&out[..32]);
        self.k = Some(out[32..].try_into().unwrap());
    }
    fn encrypt_and_hash(&mut self, plaintext: &[u8]) -> Vec<u8> {
        let mut buf = plaintext.to_vec();
        if let Some(k) = self.k {
            // Each key is used once here (one message per key), so the nonce is 0.
            let aead = ChaCha20Poly1305::new(&k.into());
            let tag = aead
                .encrypt_in_place_detached(&[0u8; 12].into(), &self.h, &mut buf)
                .unwrap();
            buf.extend_from_slice(&tag);
        }
        self.mix_hash(&buf);
        buf
    }
}

#[tokio::test]
async fn a_small_order_static_key_is_refused_even_though_noise_completes() {
    let (c, mut s) = tokio::io::duplex(1 << 16);
    let mallory = Identity::generate();
    let weak_static = curve25519_dalek::constants::EIGHT_TORSION[1]
        .to_montgomery()
        .to_bytes();
    let attacker = tokio::spawn(async move {
        let mut st = Symmetric::new();
        st.mix_hash(PROLOGUE);
        // <- msg1: e
        let msg1 = peers::read_frame(&mut s).await.unwrap();
        let re: [u8; 32] = msg1[..32].try_into().unwrap();
        st.mix_hash(&re);
        st.mix_hash(&[]); // empty payload
                          // -> msg2: e, ee, s, es, payload
        let e_priv = [0x42u8; 32];
        let e_pub = MontgomeryPoint::mul_base_clamped(e_priv).to_bytes();
        let mut msg2 = e_pub.to_vec();
        st.mix_hash(&e_pub);
        st.mix_key(&MontgomeryPoint(re).mul_clamped(e_priv).to_bytes()); // ee
        msg2.extend(st.encrypt_and_hash(&weak_static)); // s
        st.mix_key(&[0u8; 32]); // es: DH(e_i, small-order s) is all-zero, no secret needed
        let payload = HandshakePayload::sign(&mallory, &weak_static, peers::now() + 60);
        msg2.extend(st.encrypt_and_hash(&payload.encode()));
        peers::write_frame(&mut s, &msg2).await;
        s
    });
    let r = SecureChannel::initiate_with(c, &Identity::generate(), TrustPolicy::any(), &peers::quick()).await;
    // Getting WeakKey (not Decrypt) shows the hand-rolled peer got through the Noise
    // layer: without our check, this handshake would bind Mallory to a key anyone can use.
    assert!(
        matches!(r, Err(ChannelError::Handshake(HandshakeError::WeakKey))),
        "{r:?}"
    );
    drop(attacker.await);
}
