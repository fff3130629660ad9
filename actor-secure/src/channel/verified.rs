//! Peers' bindings that an [`Identity`]'s handshakes have verified, remembered so that a
//! peer that sends the same binding again (peers share one static key and binding across
//! their handshakes for a while, see `static_key.rs`) is not verified again.
//!
//! # Why remembering is safe
//!
//! Verifying a binding is a pure function of its inputs: the identity key, the static key
//! that Noise authenticated (`rs`) and, through the signed bytes, the expiry, and the
//! signature. An entry holds all of them, byte for byte, and is only made after
//! [`HandshakePayload::verify`] accepted them; a lookup matches only the same bytes, so a
//! hit gives exactly the answer verifying again would, and anything else (another key,
//! expiry or signature, even one bit) is decoded and verified in full. What depends on the
//! time is checked on every handshake, hit or not: the expiry must be in the future and at
//! most [`MAX_BINDING_VALIDITY`] away. Everything else the handshake checks (Noise's proof
//! that the peer holds `rs`, weak keys, our own key or identity at the other end, the trust
//! policy) is outside this cache and runs as before.
//!
//! A peer can only make an entry by completing the Noise part of a handshake with a key it
//! holds, and the cache is bounded ([`CAPACITY`] entries, the oldest replaced first), so a
//! flood of peers costs us verifications, as before, not memory. Entries hold public bytes
//! only.
//!
//! [`Identity`]: crate::Identity

use parking_lot::Mutex;

use super::MAX_BINDING_VALIDITY;
use crate::error::HandshakeError;
use crate::identity::PublicIdentity;
use crate::wire::HandshakePayload;

/// How many bindings an identity remembers.
pub(crate) const CAPACITY: usize = 128;

/// A binding that verified: the payload as received, for the static key Noise proved.
struct Entry {
    payload: [u8; HandshakePayload::LEN],
    static_key: [u8; 32],
    identity: PublicIdentity,
    expires_at: u64,
}

/// The bindings verified by one identity's handshakes (see the module docs).
#[derive(Default)]
pub(crate) struct VerifiedBindings {
    entries: Mutex<Ring>,
}

#[derive(Default)]
struct Ring {
    entries: Vec<Entry>,
    /// The entry to replace next once full.
    next: usize,
}

impl VerifiedBindings {
    /// Checks the peer's handshake `payload` (as decrypted) against `static_key`, the key
    /// the handshake authenticated, at `now` (Unix seconds): what
    /// [`HandshakePayload::decode`] then [`HandshakePayload::verify`] check, with the
    /// signature verified only the first time these exact bytes are seen. Returns the
    /// identity that signed.
    pub(crate) fn check(
        &self,
        payload: &[u8],
        static_key: &[u8; 32],
        now: u64,
    ) -> Result<PublicIdentity, HandshakeError> {
        if let Some((identity, expires_at)) = self.lookup(payload, static_key) {
            check_validity_window(expires_at, now)?;
            return Ok(identity);
        }
        let decoded = HandshakePayload::decode(payload).map_err(HandshakeError::BadPayload)?;
        decoded.verify(static_key, now)?;
        // `decode` took exactly `LEN` bytes; the entry keeps them as received.
        if let Ok(payload) = payload.try_into() {
            self.insert(Entry {
                payload,
                static_key: *static_key,
                identity: *decoded.identity(),
                expires_at: decoded.expires_at(),
            });
        }
        Ok(*decoded.identity())
    }

    fn lookup(&self, payload: &[u8], static_key: &[u8; 32]) -> Option<(PublicIdentity, u64)> {
        let ring = self.entries.lock();
        ring.entries
            .iter()
            .find(|e| e.payload[..] == *payload && e.static_key == *static_key)
            .map(|e| (e.identity, e.expires_at))
    }

    fn insert(&self, entry: Entry) {
        let mut ring = self.entries.lock();
        if ring.entries.len() < CAPACITY {
            ring.entries.push(entry);
        } else {
            let at = ring.next;
            ring.entries[at] = entry;
            ring.next = (at + 1) % CAPACITY;
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.lock().entries.len()
    }
}

/// The time checks of [`HandshakePayload::verify`], in the same order and with the same
/// errors, for a binding whose signature is already known to be good.
fn check_validity_window(expires_at: u64, now: u64) -> Result<(), HandshakeError> {
    if now >= expires_at {
        return Err(HandshakeError::Expired);
    }
    if expires_at - now > MAX_BINDING_VALIDITY.as_secs() {
        return Err(HandshakeError::ValidityTooLong);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Identity;

    const T0: u64 = 1_900_000_000;

    fn signed(id: &Identity, key: &[u8; 32], expires_at: u64) -> [u8; HandshakePayload::LEN] {
        HandshakePayload::sign(id, key, expires_at).encode()
    }

    /// What a handshake got before this cache: decode and verify every time.
    fn uncached(payload: &[u8], key: &[u8; 32], now: u64) -> Result<PublicIdentity, HandshakeError> {
        let p = HandshakePayload::decode(payload).map_err(HandshakeError::BadPayload)?;
        p.verify(key, now)?;
        Ok(*p.identity())
    }

    #[test]
    fn a_binding_seen_again_is_accepted_from_memory_with_the_same_answer() {
        let (peer, memo) = (Identity::from_seed(&[1; 32]), VerifiedBindings::default());
        let key = [9; 32];
        let payload = signed(&peer, &key, T0 + 120);
        for now in [T0, T0 + 1, T0 + 119] {
            let got = memo.check(&payload, &key, now).unwrap();
            assert_eq!(got, *peer.public());
            assert_eq!(Ok(got), uncached(&payload, &key, now));
        }
        assert_eq!(memo.len(), 1);
    }

    #[test]
    fn the_time_window_is_checked_on_every_hit() {
        let (peer, memo) = (Identity::from_seed(&[2; 32]), VerifiedBindings::default());
        let key = [9; 32];
        let payload = signed(&peer, &key, T0 + 120);
        memo.check(&payload, &key, T0).unwrap();
        for now in [T0 + 120, T0 + 121, u64::MAX] {
            assert_eq!(memo.check(&payload, &key, now), Err(HandshakeError::Expired));
            assert_eq!(uncached(&payload, &key, now), Err(HandshakeError::Expired));
        }
        // A clock far behind: the binding claims to last too long.
        let early = T0 + 120 - MAX_BINDING_VALIDITY.as_secs() - 1;
        assert_eq!(
            memo.check(&payload, &key, early),
            Err(HandshakeError::ValidityTooLong)
        );
        assert_eq!(
            uncached(&payload, &key, early),
            Err(HandshakeError::ValidityTooLong)
        );
    }

    #[test]
    fn any_other_bytes_are_verified_in_full() {
        let (peer, memo) = (Identity::from_seed(&[3; 32]), VerifiedBindings::default());
        let key = [9; 32];
        let good = signed(&peer, &key, T0 + 120);
        memo.check(&good, &key, T0).unwrap();
        // The same binding for another static key (one Noise did not see it sign).
        assert_eq!(memo.check(&good, &[8; 32], T0), Err(HandshakeError::BadSignature));
        // Every single-bit change of the payload is refused, as it would be uncached.
        for bit in 0..HandshakePayload::LEN * 8 {
            let mut bad = good;
            bad[bit / 8] ^= 1 << (bit % 8);
            let got = memo.check(&bad, &key, T0);
            assert!(got.is_err(), "bit {bit} accepted");
            assert_eq!(got, uncached(&bad, &key, T0), "bit {bit}");
        }
        // Truncated or extended payloads are decoded, and refused, as before.
        assert_eq!(memo.check(&good[..50], &key, T0), uncached(&good[..50], &key, T0));
        let mut long = good.to_vec();
        long.push(0);
        assert_eq!(memo.check(&long, &key, T0), uncached(&long, &key, T0));
        // Nothing that failed was remembered.
        assert_eq!(memo.len(), 1);
    }

    #[test]
    fn a_failed_binding_is_never_remembered() {
        let (peer, memo) = (Identity::from_seed(&[4; 32]), VerifiedBindings::default());
        let key = [9; 32];
        let expired = signed(&peer, &key, T0);
        assert_eq!(memo.check(&expired, &key, T0), Err(HandshakeError::Expired));
        assert_eq!(memo.len(), 0);
        // Nor is a good signature over another key.
        let other = signed(&peer, &[7; 32], T0 + 60);
        assert_eq!(memo.check(&other, &key, T0), Err(HandshakeError::BadSignature));
        assert_eq!(memo.len(), 0);
    }

    #[test]
    fn the_cache_is_bounded_and_replaces_its_oldest_entry() {
        let (peer, memo) = (Identity::from_seed(&[5; 32]), VerifiedBindings::default());
        let payloads: Vec<_> = (0..CAPACITY as u64 + 10)
            .map(|i| signed(&peer, &[9; 32], T0 + 60 + i))
            .collect();
        for p in &payloads {
            memo.check(p, &[9; 32], T0).unwrap();
        }
        assert_eq!(memo.len(), CAPACITY);
        assert!(memo.lookup(&payloads[0], &[9; 32]).is_none(), "oldest replaced");
        assert!(memo.lookup(&payloads[10], &[9; 32]).is_some());
        assert!(memo.lookup(payloads.last().unwrap(), &[9; 32]).is_some());
    }
}
