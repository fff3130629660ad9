//! A snow [`CryptoResolver`] for our one suite (`25519_ChaChaPoly_BLAKE2s`) whose
//! primitives keep their secrets in memory that is wiped when it is dropped.
//!
//! snow 0.10's default resolver zeroizes nothing: the Noise static private key (signed
//! by our identity for [`ChannelConfig::binding_validity`]), the
//! ephemeral key and the handshake cipher key stayed in freed heap blocks after the
//! handshake. A static key recovered from there, together with the binding the victim
//! signed for it in that handshake, let an attacker impersonate the victim until the
//! binding expired. [`ZeroizingResolver`] replaces the boxed primitives snow
//! allocates; the arithmetic is still done by the RustCrypto and dalek crates, and the
//! wire bytes are unchanged (the golden transcript in `handshake.rs` and the interop tests
//! below pin that).
//!
//! # What is wiped
//!
//! Every heap block that snow asks this resolver for, when snow drops it (at the latest
//! when the handshake state is dropped right after the split):
//! - [`X25519`]: the static and the ephemeral private key (`Zeroizing`).
//! - [`ChaChaPoly`]: the handshake cipher key, before and after `rekey` (`Zeroizing`; the
//!   `ChaCha20Poly1305` value built for each call wipes its copy on drop too).
//! - [`Blake2s`]: everything hashed since the last reset, which for HMAC/HKDF includes the
//!   chaining key XOR-ed into the pads and the Diffie-Hellman outputs. Input is buffered
//!   in a `Zeroizing<Vec<u8>>` that is wiped after every digest and grown by copying into
//!   a new buffer (never by `Vec` reallocation, which would free the old block unwiped).
//!   The BLAKE2s state itself only lives on the stack: the `blake2` crate (0.10) has no
//!   zeroize support, so it never gets a heap block of its own.
//!
//! Our own code also wipes the static key shared by an identity's handshakes (`StaticKey`
//! in `static_key.rs`, when it is replaced and no handshake uses it any more, or when the
//! identity is dropped) and the transport keys in `CipherState`.
//!
//! # What is not wiped (residue)
//!
//! - snow keeps the chaining key `ck` and the handshake hash `h` inline in its
//!   `SymmetricState` (`symmetricstate.rs`; a `Copy` struct that `write_message` and
//!   `read_message` also copy to the stack for rollback). They live wherever the
//!   `HandshakeState` lives: inside the handshake future, i.e. on the heap of a spawned
//!   task, plus the copies left behind when it is moved, and are freed unwiped. No snow
//!   API lets us overwrite them. `h` only hashes the public transcript; `ck` is secret.
//! - Stack temporaries, in snow and in the crates below it: the DH output (`dh_out`), the
//!   HMAC pads and HKDF intermediate keys (snow's default `Hash::hmac`/`Hash::hkdf`), the
//!   handshake cipher keys on their way into [`ChaChaPoly::set`], the split keys returned
//!   by `dangerously_get_raw_split`, the by-value copies of a private key that
//!   `MontgomeryPoint::mul_clamped`/`mul_base_clamped` take, and the BLAKE2s and Poly1305
//!   states. Stack memory is soon reused by the same thread but is not wiped.
//! - The peer's public keys (`rs`, `re`) are kept unwiped; they are not secret.
//!
//! An attacker who can read freed heap memory after a handshake can therefore still find
//! `ck` and, from it, derive both transport keys of *that one channel*: its traffic is no
//! longer confidential to them (and, on the path, they could forge it). They no longer
//! find a static private key that is no longer in use, which impersonation needs
//! together with the victim's signed binding; other channels are unaffected because every
//! channel has fresh ephemeral keys. (The static key in use, shared by the identity's
//! handshakes for up to half the binding validity, is live memory.) Reading live memory
//! or the stack of a running process (a debugger, a core dump) is outside what this
//! protects against.
//!
//! [`ChannelConfig::binding_validity`]: crate::ChannelConfig::binding_validity

use std::sync::Arc;

use blake2::digest::{Digest, Output};
use blake2::Blake2s256;
use chacha20poly1305::aead::AeadInPlace;
use chacha20poly1305::{ChaCha20Poly1305, KeyInit, Nonce, Tag};
use curve25519_dalek::montgomery::MontgomeryPoint;
use snow::params::{CipherChoice, DHChoice, HashChoice};
use snow::resolvers::CryptoResolver;
use snow::types::{Cipher, Dh, Hash, Random};
use snow::Error;
use zeroize::{Zeroize, Zeroizing};

use super::static_key::StaticKey;
use crate::wire::TAG_LEN;

const KEY_LEN: usize = 32;
const HASH_LEN: usize = 32;
const BLOCK_LEN: usize = 64;
/// Enough for every input the XX handshake hashes at once (an HMAC pad plus a 64-byte
/// chaining key and counter, or `h` plus the largest handshake message), so the buffer
/// normally never grows.
const HASH_BUFFER: usize = 512;

/// Resolves `25519`, `ChaChaPoly`, `BLAKE2s` and the OS random generator to the wiping
/// primitives of this module; any other choice resolves to `None` (snow then refuses to
/// build the handshake).
#[derive(Default, Clone)]
pub(crate) struct ZeroizingResolver {
    /// Our static key, if known: when snow sets this very slice as a private key, the
    /// public half is taken from here rather than computed again (see `X25519::set`).
    static_key: Option<Arc<StaticKey>>,
}

impl ZeroizingResolver {
    /// A resolver for a handshake whose local private key is `key.private()`, passed to
    /// `snow::Builder::local_private_key` by reference.
    pub(crate) fn with_static_key(key: Arc<StaticKey>) -> Self {
        ZeroizingResolver {
            static_key: Some(key),
        }
    }
}

impl CryptoResolver for ZeroizingResolver {
    fn resolve_rng(&self) -> Option<Box<dyn Random>> {
        Some(Box::new(OsRandom))
    }

    fn resolve_dh(&self, choice: &DHChoice) -> Option<Box<dyn Dh>> {
        match choice {
            DHChoice::Curve25519 => Some(Box::new(X25519 {
                known: self.static_key.clone(),
                ..X25519::default()
            })),
            _ => None,
        }
    }

    fn resolve_hash(&self, choice: &HashChoice) -> Option<Box<dyn Hash>> {
        match choice {
            HashChoice::Blake2s => Some(Box::<Blake2s>::default()),
            _ => None,
        }
    }

    fn resolve_cipher(&self, choice: &CipherChoice) -> Option<Box<dyn Cipher>> {
        match choice {
            CipherChoice::ChaChaPoly => Some(Box::<ChaChaPoly>::default()),
            _ => None,
        }
    }
}

/// The operating system's generator. Holds no state.
struct OsRandom;

impl Random for OsRandom {
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), Error> {
        getrandom::getrandom(dest).map_err(|_| Error::Rng)
    }
}

/// X25519 (RFC 7748) on curve25519-dalek. The private key is wiped on drop; the public
/// key is not secret.
#[derive(Default)]
struct X25519 {
    private: Zeroizing<[u8; KEY_LEN]>,
    public: [u8; KEY_LEN],
    /// Our static key pair, until the first `set` or `generate` (see [`Dh::set`]).
    known: Option<Arc<StaticKey>>,
}

impl X25519 {
    fn derive_public(&mut self) {
        self.public = MontgomeryPoint::mul_base_clamped(*self.private).to_bytes();
    }
}

impl Dh for X25519 {
    fn name(&self) -> &'static str {
        "25519"
    }

    fn pub_len(&self) -> usize {
        KEY_LEN
    }

    fn priv_len(&self) -> usize {
        KEY_LEN
    }

    /// # Panics
    /// If `privkey` is not 32 bytes. Only our own key material reaches this (through
    /// `snow::Builder`), never a peer's.
    ///
    /// When `privkey` is the very slice of our static key that the handshake was built
    /// with (same address: snow hands `set` the reference given to
    /// `Builder::local_private_key`), its public half is already known and not computed
    /// again. Comparing addresses, not bytes, keeps the secret out of any comparison; any
    /// other key, or a copy of it, is derived as usual.
    fn set(&mut self, privkey: &[u8]) {
        assert_eq!(privkey.len(), KEY_LEN, "an X25519 private key is 32 bytes");
        self.private.copy_from_slice(privkey);
        match self.known.take() {
            Some(key) if std::ptr::eq(privkey.as_ptr(), key.private().as_ptr()) => {
                self.public = *key.public();
            }
            _ => self.derive_public(),
        }
    }

    fn generate(&mut self, rng: &mut dyn Random) -> Result<(), Error> {
        self.known = None;
        // Straight into the wiped buffer: no copy of the fresh key anywhere else.
        rng.try_fill_bytes(self.private.as_mut())?;
        self.derive_public();
        Ok(())
    }

    fn pubkey(&self) -> &[u8] {
        &self.public
    }

    fn privkey(&self) -> &[u8] {
        self.private.as_ref()
    }

    /// Like snow's default resolver, does not refuse a low-order peer key here: the
    /// handshake code checks the peer's keys itself and reports `HandshakeError::WeakKey`.
    fn dh(&self, pubkey: &[u8], out: &mut [u8]) -> Result<(), Error> {
        let peer: [u8; KEY_LEN] = pubkey
            .get(..KEY_LEN)
            .and_then(|k| k.try_into().ok())
            .ok_or(Error::Dh)?;
        let out = out.get_mut(..KEY_LEN).ok_or(Error::Dh)?;
        let mut shared = MontgomeryPoint(peer).mul_clamped(*self.private);
        out.copy_from_slice(shared.as_bytes());
        shared.zeroize();
        Ok(())
    }
}

/// ChaCha20-Poly1305 with Noise's nonce encoding (Noise spec §12.3): 32 zero bits, then
/// the 64-bit counter little-endian.
#[derive(Default)]
struct ChaChaPoly {
    key: Zeroizing<[u8; KEY_LEN]>,
}

fn chacha_nonce(n: u64) -> Nonce {
    let mut bytes = [0u8; 12];
    bytes[4..].copy_from_slice(&n.to_le_bytes());
    Nonce::from(bytes)
}

impl ChaChaPoly {
    /// A cipher instance for one call; it wipes its copy of the key when dropped.
    fn aead(&self) -> ChaCha20Poly1305 {
        ChaCha20Poly1305::new((&*self.key).into())
    }
}

impl Cipher for ChaChaPoly {
    fn name(&self) -> &'static str {
        "ChaChaPoly"
    }

    fn set(&mut self, key: &[u8; KEY_LEN]) {
        self.key.copy_from_slice(key);
    }

    /// # Panics
    /// If `out` is shorter than `plaintext` plus the tag (snow sizes it; our handshake
    /// buffers are fixed), or `plaintext` is longer than the AEAD allows (256 GiB; Noise
    /// messages are at most 64 KiB). snow's own cipher panics in the same cases.
    fn encrypt(&self, nonce: u64, authtext: &[u8], plaintext: &[u8], out: &mut [u8]) -> usize {
        let len = plaintext.len();
        let (body, rest) = out.split_at_mut(len);
        body.copy_from_slice(plaintext);
        let tag = match self
            .aead()
            .encrypt_in_place_detached(&chacha_nonce(nonce), authtext, body)
        {
            Ok(tag) => tag,
            Err(_) => panic!("a Noise message is far below the ChaCha20-Poly1305 length limit"),
        };
        rest[..TAG_LEN].copy_from_slice(&tag);
        len + TAG_LEN
    }

    /// The ciphertext comes from the peer: every length is checked, nothing panics.
    fn decrypt(
        &self,
        nonce: u64,
        authtext: &[u8],
        ciphertext: &[u8],
        out: &mut [u8],
    ) -> Result<usize, Error> {
        let len = ciphertext.len().checked_sub(TAG_LEN).ok_or(Error::Decrypt)?;
        let (body, tag) = ciphertext.split_at(len);
        let out = out.get_mut(..len).ok_or(Error::Decrypt)?;
        out.copy_from_slice(body);
        self.aead()
            .decrypt_in_place_detached(&chacha_nonce(nonce), authtext, out, Tag::from_slice(tag))
            .map_err(|_| Error::Decrypt)?;
        Ok(len)
    }

    /// Noise `REKEY` (§4.2): the key becomes the first 32 bytes of
    /// `ENCRYPT(k, 2^64-1, "", 0^32)`. Computed in a wiped buffer and copied over the old
    /// key in place (snow's default leaves both in stack temporaries).
    fn rekey(&mut self) {
        let mut next = Zeroizing::new([0u8; KEY_LEN]);
        // Encrypting 32 bytes cannot fail (the AEAD only fails on lengths near 2^38).
        if self
            .aead()
            .encrypt_in_place_detached(&chacha_nonce(u64::MAX), &[], next.as_mut())
            .is_ok()
        {
            self.key.copy_from_slice(next.as_ref());
        }
    }
}

/// BLAKE2s-256 that buffers its input in wiped memory and hashes it on the stack when the
/// digest is asked for (see the module docs for why).
struct Blake2s {
    input: Zeroizing<Vec<u8>>,
}

impl Default for Blake2s {
    fn default() -> Self {
        Blake2s {
            input: Zeroizing::new(Vec::with_capacity(HASH_BUFFER)),
        }
    }
}

impl Hash for Blake2s {
    fn name(&self) -> &'static str {
        "BLAKE2s"
    }

    fn block_len(&self) -> usize {
        BLOCK_LEN
    }

    fn hash_len(&self) -> usize {
        HASH_LEN
    }

    fn reset(&mut self) {
        self.input.zeroize();
    }

    fn input(&mut self, data: &[u8]) {
        let needed = self.input.len() + data.len();
        if needed > self.input.capacity() {
            // Grow by hand: `Vec` would reallocate and free the old block unwiped.
            let mut bigger = Zeroizing::new(Vec::with_capacity(needed.max(2 * self.input.capacity())));
            bigger.extend_from_slice(&self.input);
            self.input = bigger; // the old buffer is wiped as it drops
        }
        self.input.extend_from_slice(data);
    }

    /// Writes the digest of everything input since the last reset, then wipes the input
    /// (snow always resets before the next input anyway).
    ///
    /// # Panics
    /// If `out` is shorter than 32 bytes; snow always passes a 64-byte buffer.
    fn result(&mut self, out: &mut [u8]) {
        let mut hasher = Blake2s256::new();
        hasher.update(self.input.as_slice());
        hasher.finalize_into(Output::<Blake2s256>::from_mut_slice(&mut out[..HASH_LEN]));
        self.input.zeroize();
    }
}

#[cfg(test)]
mod tests {
    use snow::resolvers::DefaultResolver;
    use zeroize::ZeroizeOnDrop;

    use super::*;
    use crate::wire::{NOISE_PARAMS, PROLOGUE};

    fn builder(ours: bool) -> snow::Builder<'static> {
        let params = NOISE_PARAMS.parse().unwrap();
        if ours {
            snow::Builder::with_resolver(params, Box::new(ZeroizingResolver::default()))
        } else {
            snow::Builder::with_resolver(params, Box::new(DefaultResolver))
        }
    }

    /// Runs a full XX handshake with payloads between an initiator built with one
    /// resolver and a responder built with the other, then checks transport messages and
    /// rekeying both ways through snow's own `TransportState`.
    fn handshake_and_transport(initiator_ours: bool) {
        let si = Zeroizing::new([0x11u8; 32]);
        let sr = Zeroizing::new([0x22u8; 32]);
        let mut i = builder(initiator_ours)
            .local_private_key(si.as_ref())
            .and_then(|b| b.prologue(PROLOGUE))
            .and_then(|b| b.build_initiator())
            .unwrap();
        let mut r = builder(!initiator_ours)
            .local_private_key(sr.as_ref())
            .and_then(|b| b.prologue(PROLOGUE))
            .and_then(|b| b.build_responder())
            .unwrap();
        let (mut buf, mut out) = (vec![0u8; 1024], vec![0u8; 1024]);
        let n = i.write_message(b"", &mut buf).unwrap();
        assert_eq!(r.read_message(&buf[..n], &mut out).unwrap(), 0);
        let n = r.write_message(b"from responder", &mut buf).unwrap();
        let m = i.read_message(&buf[..n], &mut out).unwrap();
        assert_eq!(&out[..m], b"from responder");
        let n = i.write_message(b"from initiator", &mut buf).unwrap();
        let m = r.read_message(&buf[..n], &mut out).unwrap();
        assert_eq!(&out[..m], b"from initiator");
        assert_eq!(i.get_handshake_hash(), r.get_handshake_hash());
        // Each side learned the other's static public key as derived by the other resolver.
        let public = |k: &[u8]| MontgomeryPoint::mul_base_clamped(k.try_into().unwrap()).to_bytes();
        assert_eq!(i.get_remote_static().unwrap(), &public(sr.as_ref())[..]);
        assert_eq!(r.get_remote_static().unwrap(), &public(si.as_ref())[..]);

        let mut i = i.into_transport_mode().unwrap();
        let mut r = r.into_transport_mode().unwrap();
        for round in 0..6u8 {
            let msg = vec![round; 50 + usize::from(round) * 100];
            let n = i.write_message(&msg, &mut buf).unwrap();
            let m = r.read_message(&buf[..n], &mut out).unwrap();
            assert_eq!(out[..m], msg[..]);
            let n = r.write_message(&msg, &mut buf).unwrap();
            let m = i.read_message(&buf[..n], &mut out).unwrap();
            assert_eq!(out[..m], msg[..]);
            if round % 2 == 1 {
                i.rekey_outgoing();
                r.rekey_incoming();
                r.rekey_outgoing();
                i.rekey_incoming();
            }
        }
        // A tampered message is refused by whichever side decrypts it.
        let n = i.write_message(b"tamper", &mut buf).unwrap();
        buf[0] ^= 1;
        assert!(r.read_message(&buf[..n], &mut out).is_err());
    }

    #[test]
    fn our_initiator_interoperates_with_snows_default_responder() {
        handshake_and_transport(true);
    }

    #[test]
    fn snows_default_initiator_interoperates_with_our_responder() {
        handshake_and_transport(false);
    }

    #[test]
    fn primitives_match_snows_default_byte_for_byte() {
        let (ours, theirs) = (ZeroizingResolver::default(), DefaultResolver);
        let (mut dh_a, mut dh_b) = (
            ours.resolve_dh(&DHChoice::Curve25519).unwrap(),
            theirs.resolve_dh(&DHChoice::Curve25519).unwrap(),
        );
        dh_a.set(&[0x41; 32]);
        dh_b.set(&[0x42; 32]);
        assert_eq!(dh_a.name(), dh_b.name());
        let (mut ab, mut ba) = ([0u8; 56], [0u8; 56]);
        dh_a.dh(dh_b.pubkey(), &mut ab).unwrap();
        dh_b.dh(dh_a.pubkey(), &mut ba).unwrap();
        assert_eq!(ab, ba);
        assert!(
            dh_a.dh(&[9; 31], &mut ab).is_err(),
            "short peer key is refused, not a panic"
        );

        let mut h_a = ours.resolve_hash(&HashChoice::Blake2s).unwrap();
        let mut h_b = theirs.resolve_hash(&HashChoice::Blake2s).unwrap();
        assert_eq!(
            (h_a.name(), h_a.block_len(), h_a.hash_len()),
            (h_b.name(), h_b.block_len(), h_b.hash_len())
        );
        // Sizes around the block length and past the initial buffer (which forces a grow).
        for len in [0, 1, 63, 64, 65, 200, HASH_BUFFER + 1, 5000] {
            let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let (mut a, mut b) = ([0u8; 64], [0u8; 64]);
            for h in [&mut h_a, &mut h_b] {
                h.reset();
            }
            for chunk in data.chunks(100) {
                h_a.input(chunk);
                h_b.input(chunk);
            }
            h_a.result(&mut a);
            h_b.result(&mut b);
            assert_eq!(a, b, "hash of {len} bytes");
            let (mut a, mut b) = (
                ([0u8; 64], [0u8; 64], [0u8; 64]),
                ([0u8; 64], [0u8; 64], [0u8; 64]),
            );
            h_a.hkdf(&[7; 32], &data, 3, &mut a.0, &mut a.1, &mut a.2);
            h_b.hkdf(&[7; 32], &data, 3, &mut b.0, &mut b.1, &mut b.2);
            assert_eq!(a, b, "hkdf of {len} bytes");
        }

        let mut c_a = ours.resolve_cipher(&CipherChoice::ChaChaPoly).unwrap();
        let mut c_b = theirs.resolve_cipher(&CipherChoice::ChaChaPoly).unwrap();
        c_a.set(&[5; 32]);
        c_b.set(&[5; 32]);
        for nonce in [0, 1, 1 << 40, u64::MAX - 1] {
            let (mut a, mut b) = ([0u8; 64], [0u8; 64]);
            assert_eq!(c_a.encrypt(nonce, b"ad", b"plaintext", &mut a), 9 + TAG_LEN);
            c_b.encrypt(nonce, b"ad", b"plaintext", &mut b);
            assert_eq!(a, b);
            let mut plain = [0u8; 64];
            assert_eq!(
                c_a.decrypt(nonce, b"ad", &b[..9 + TAG_LEN], &mut plain).unwrap(),
                9
            );
            assert_eq!(&plain[..9], b"plaintext");
            c_a.rekey();
            c_b.rekey();
        }
    }

    #[test]
    fn the_static_key_set_by_reference_keeps_its_public_half_and_any_other_key_is_derived() {
        let id = crate::identity::Identity::from_seed(&[8; 32]);
        let key = Arc::new(StaticKey::from_private(&id, Zeroizing::new([0x33; 32]), u64::MAX));
        let resolver = ZeroizingResolver::with_static_key(Arc::clone(&key));
        let public = |k: [u8; 32]| MontgomeryPoint::mul_base_clamped(k).to_bytes();
        let dh_with = |k: &[u8]| {
            let mut dh = resolver.resolve_dh(&DHChoice::Curve25519).unwrap();
            dh.set(k);
            (dh.privkey().to_vec(), dh.pubkey().to_vec())
        };
        // The very slice snow is given, a copy of it, and another key.
        let copy = *key.private();
        for (k, want) in [
            (&key.private()[..], *key.public()),
            (&copy[..], *key.public()),
            (&[0x44; 32][..], public([0x44; 32])),
        ] {
            assert_eq!(dh_with(k), (k.to_vec(), want.to_vec()));
        }
        // The hint is used once at most: setting another key afterwards derives it.
        let mut dh = X25519 {
            known: Some(Arc::clone(&key)),
            ..X25519::default()
        };
        dh.set(key.private());
        assert!(dh.known.is_none());
        dh.set(&[0x55; 32]);
        assert_eq!(dh.public, public([0x55; 32]));
        // A generated (ephemeral) key never takes the static key's public half.
        let mut dh = X25519 {
            known: Some(Arc::clone(&key)),
            ..X25519::default()
        };
        dh.generate(&mut OsRandom).unwrap();
        assert_eq!(dh.public, public(*dh.private));
        assert!(dh.known.is_none());
    }

    #[test]
    fn decrypt_refuses_malformed_input_without_panicking() {
        let mut c = ChaChaPoly::default();
        c.set(&[3; 32]);
        let mut sealed = [0u8; 5 + TAG_LEN];
        c.encrypt(7, b"", b"hello", &mut sealed);
        let mut out = [0u8; 64];
        assert!(
            c.decrypt(7, b"", &sealed[..TAG_LEN - 1], &mut out).is_err(),
            "shorter than a tag"
        );
        assert!(
            c.decrypt(7, b"", &sealed, &mut out[..4]).is_err(),
            "output too small"
        );
        assert!(c.decrypt(8, b"", &sealed, &mut out).is_err(), "wrong nonce");
        assert!(
            c.decrypt(7, b"x", &sealed, &mut out).is_err(),
            "wrong associated data"
        );
        let mut tampered = sealed;
        tampered[5] ^= 1;
        assert!(c.decrypt(7, b"", &tampered, &mut out).is_err(), "tampered tag");
        assert_eq!(c.decrypt(7, b"", &sealed, &mut out).unwrap(), 5);
    }

    fn wiped_on_drop<T: ZeroizeOnDrop>(_: &T) {}

    /// Every field of each secret-holding type, by an exhaustive pattern: a new field
    /// breaks this test until someone decides whether it must be wiped.
    #[test]
    fn every_secret_field_is_wiped_on_drop() {
        // `known` shares our static key, whose private half is wiped when its last holder
        // drops it (tested in static_key.rs).
        let X25519 {
            private,
            public: _,
            known: _,
        } = &X25519::default();
        wiped_on_drop(private);
        let ChaChaPoly { key } = &ChaChaPoly::default();
        wiped_on_drop(key);
        let Blake2s { input } = &Blake2s::default();
        wiped_on_drop(input);
        // The per-call cipher instance wipes its key copy too.
        wiped_on_drop(&ChaChaPoly::default().aead());
    }

    #[test]
    fn rekey_and_set_overwrite_the_key_in_place() {
        let mut c = ChaChaPoly::default();
        c.set(&[1; 32]);
        let at = c.key.as_ptr();
        c.rekey();
        assert_ne!(*c.key, [1; 32]);
        assert_eq!(c.key.as_ptr(), at, "the old key is overwritten, not left behind");
        c.set(&[2; 32]);
        assert_eq!((*c.key, c.key.as_ptr()), ([2; 32], at));

        let mut dh = X25519::default();
        dh.set(&[3; 32]);
        let at = dh.private.as_ptr();
        let mut rng = OsRandom;
        dh.generate(&mut rng).unwrap();
        assert_ne!(*dh.private, [3; 32]);
        assert_eq!(dh.private.as_ptr(), at);
        assert_eq!(
            dh.public,
            MontgomeryPoint::mul_base_clamped(*dh.private).to_bytes()
        );
    }

    #[test]
    fn hash_input_is_wiped_after_each_digest_and_when_it_grows() {
        let mut h = Blake2s::default();
        let capacity = h.input.capacity();
        let at = h.input.as_ptr();
        h.input(&[0xcc; 96]);
        let mut out = [0u8; 64];
        h.result(&mut out);
        // Wiped in place: same block, nothing left in it that `Vec` can show us.
        assert!(h.input.is_empty());
        assert_eq!((h.input.capacity(), h.input.as_ptr()), (capacity, at));

        // Growing goes through a new wiped buffer; the digest is unaffected.
        h.input(&[0xcc; 96]);
        h.input(&vec![0xdd; 2 * HASH_BUFFER]);
        assert!(h.input.capacity() >= 96 + 2 * HASH_BUFFER);
        let mut grown = [0u8; 64];
        h.result(&mut grown);
        let mut want = Blake2s256::new();
        want.update([0xcc; 96]);
        want.update(vec![0xdd; 2 * HASH_BUFFER]);
        assert_eq!(grown[..32], want.finalize()[..]);
        assert!(h.input.is_empty());
    }

    #[test]
    fn other_suites_are_not_resolved() {
        let r = ZeroizingResolver::default();
        assert!(r.resolve_dh(&DHChoice::Curve448).is_none());
        assert!(r.resolve_hash(&HashChoice::SHA256).is_none());
        assert!(r.resolve_cipher(&CipherChoice::AESGCM).is_none());
        let params = "Noise_XX_25519_AESGCM_SHA256".parse().unwrap();
        assert!(snow::Builder::with_resolver(params, Box::new(r))
            .local_private_key(&[1; 32])
            .and_then(|b| b.build_initiator())
            .is_err());
    }
}
