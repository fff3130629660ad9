//! A Noise `CipherState` for ChaChaPoly (Noise spec §5.1, §12.3), one per direction.
//!
//! snow's `TransportState` keeps both directions in one value behind `&mut self`, which
//! would force the reader and writer halves of a channel to share a lock and would not let
//! a test set the nonce. We take the two split keys from snow (`risky-raw-split`) and run
//! the standard cipher state here instead; a unit test checks it against snow's
//! `TransportState` byte for byte.

use chacha20poly1305::aead::AeadInPlace;
use chacha20poly1305::{ChaCha20Poly1305, KeyInit, Nonce, Tag};
use zeroize::Zeroizing;

use crate::wire::TAG_LEN;

/// Nonces this direction may use for data frames: `0..DATA_NONCE_LIMIT`. The next nonce
/// is kept for the authenticated close and `u64::MAX` is reserved by Noise.
pub(crate) const DATA_NONCE_LIMIT: u64 = u64::MAX - 1;

pub(crate) struct CipherState {
    aead: ChaCha20Poly1305,
    key: Zeroizing<[u8; 32]>,
    n: u64,
}

/// Authentication failed; the state is unchanged.
#[derive(Debug)]
pub(crate) struct DecryptError;

fn nonce(n: u64) -> Nonce {
    let mut bytes = [0u8; 12];
    bytes[4..].copy_from_slice(&n.to_le_bytes());
    Nonce::from(bytes)
}

impl CipherState {
    pub(crate) fn new(key: [u8; 32]) -> CipherState {
        let key = Zeroizing::new(key);
        CipherState {
            aead: ChaCha20Poly1305::new((&*key).into()),
            key,
            n: 0,
        }
    }

    pub(crate) fn nonce(&self) -> u64 {
        self.n
    }

    #[cfg(any(test, feature = "test-util"))]
    pub(crate) fn set_nonce(&mut self, n: u64) {
        self.n = n;
    }

    /// Encrypts `buf` in place and returns the tag. The caller checks the nonce limit;
    /// this only refuses the reserved nonce.
    pub(crate) fn encrypt(&mut self, buf: &mut [u8]) -> Option<[u8; TAG_LEN]> {
        if self.n == u64::MAX {
            return None;
        }
        let tag = self
            .aead
            .encrypt_in_place_detached(&nonce(self.n), &[], buf)
            .ok()?;
        self.n += 1;
        Some(tag.into())
    }

    /// Decrypts `buf` in place if `tag` authenticates it under the next nonce. On failure
    /// the nonce does not advance (RUSTSEC-2024-0011), though the channel is closed anyway.
    pub(crate) fn decrypt(&mut self, buf: &mut [u8], tag: &[u8]) -> Result<(), DecryptError> {
        if self.n == u64::MAX || tag.len() != TAG_LEN {
            return Err(DecryptError);
        }
        self.aead
            .decrypt_in_place_detached(&nonce(self.n), &[], buf, Tag::from_slice(tag))
            .map_err(|_| DecryptError)?;
        self.n += 1;
        Ok(())
    }

    /// Noise `REKEY`: the key becomes the first 32 bytes of `ENCRYPT(k, 2^64-1, "", 0^32)`.
    /// The nonce keeps counting.
    pub(crate) fn rekey(&mut self) {
        let mut next = Zeroizing::new([0u8; 32]);
        // Encrypting 32 bytes cannot fail (the AEAD only fails on lengths near 2^38).
        if self
            .aead
            .encrypt_in_place_detached(&nonce(u64::MAX), &[], next.as_mut())
            .is_ok()
        {
            self.aead = ChaCha20Poly1305::new((&*next).into());
            self.key = next;
        }
    }
}

impl std::fmt::Debug for CipherState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CipherState")
            .field("n", &self.n)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{NOISE_PARAMS, PROLOGUE};

    fn pair() -> (snow::HandshakeState, snow::HandshakeState) {
        let b = || snow::Builder::new(NOISE_PARAMS.parse().unwrap());
        let ks = b().generate_keypair().unwrap();
        let kr = b().generate_keypair().unwrap();
        let mut i = b().local_private_key(&ks.private).unwrap();
        i = i.prologue(PROLOGUE).unwrap();
        let mut r = b().local_private_key(&kr.private).unwrap();
        r = r.prologue(PROLOGUE).unwrap();
        let mut i = i.build_initiator().unwrap();
        let mut r = r.build_responder().unwrap();
        let (mut buf, mut out) = ([0u8; 1024], [0u8; 1024]);
        let n = i.write_message(&[], &mut buf).unwrap();
        r.read_message(&buf[..n], &mut out).unwrap();
        let n = r.write_message(&[], &mut buf).unwrap();
        i.read_message(&buf[..n], &mut out).unwrap();
        let n = i.write_message(&[], &mut buf).unwrap();
        r.read_message(&buf[..n], &mut out).unwrap();
        (i, r)
    }

    #[test]
    fn matches_snow_transport_state_including_rekey() {
        let (mut i, r) = pair();
        let (k1, _k2) = i.dangerously_get_raw_split();
        let mut ours = CipherState::new(k1);
        let mut snow_r = r.into_transport_mode().unwrap();
        for round in 0..5u8 {
            let mut msg = vec![round; 100 + usize::from(round)];
            let tag = ours.encrypt(&mut msg).unwrap();
            msg.extend_from_slice(&tag);
            let mut out = [0u8; 1024];
            let n = snow_r.read_message(&msg, &mut out).unwrap();
            assert_eq!(out[..n], vec![round; 100 + usize::from(round)][..]);
            if round == 2 {
                ours.rekey();
                snow_r.rekey_incoming();
            }
        }
    }

    #[test]
    fn a_failed_decrypt_does_not_advance_the_nonce() {
        let mut tx = CipherState::new([3; 32]);
        let mut rx = CipherState::new([3; 32]);
        let mut msg = *b"hello";
        let tag = tx.encrypt(&mut msg).unwrap();
        let mut bad = msg;
        bad[0] ^= 1;
        assert!(rx.decrypt(&mut bad, &tag).is_err());
        assert_eq!(rx.nonce(), 0);
        rx.decrypt(&mut msg, &tag).unwrap();
        assert_eq!(&msg, b"hello");
    }
}
