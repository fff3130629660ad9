//! The Noise static key an [`Identity`] uses in its handshakes, with the signed binding
//! that ties it to the identity; made once and shared by the identity's handshakes until
//! half the binding's validity has gone, then replaced.
//!
//! # Why sharing it is safe
//!
//! The binding signs `noise_static_key || expiry` and nothing else: no transcript hash,
//! peer or role (see [`HandshakePayload`]). It was never a per-handshake value: before this
//! cache, whoever held a channel's static private key could replay its binding in other
//! handshakes until the expiry too. The peer still checks everything it checked when each
//! handshake had its own key: Noise proves that we hold the static private key (`es`/`se`,
//! against the peer's fresh ephemeral), the signature covers that key, the expiry has not
//! passed and is at most [`MAX_BINDING_VALIDITY`] away, and the identity passes its trust
//! policy. The transport keys still come from fresh ephemeral keys (`ee`), so sharing the
//! static key costs no forward secrecy; and its public half travels encrypted, next to the
//! identity key in the same payload, so it links no handshakes that the identity key does
//! not already link.
//!
//! What changes:
//! - the static private key stays in memory (in this cache, wiped when replaced and the
//!   last handshake using it ends, or when the identity is dropped) for up to half the
//!   validity, instead of for one handshake. Someone who steals it can impersonate us until
//!   the binding expires, as before: the expiry still bounds that, not the key's life;
//! - a binding we send has between half and all of
//!   [`ChannelConfig::binding_validity`](crate::ChannelConfig::binding_validity) left,
//!   instead of all of it, so the clocks of the two machines may differ by half the
//!   validity (a minute by default) rather than all of it.

use std::sync::Arc;
use std::time::Duration;

use curve25519_dalek::montgomery::MontgomeryPoint;
use parking_lot::Mutex;
use zeroize::Zeroizing;

use super::MAX_BINDING_VALIDITY;
use crate::identity::Identity;
use crate::wire::HandshakePayload;

/// An X25519 static key pair and our identity's binding over its public half.
pub(crate) struct StaticKey {
    private: Zeroizing<[u8; 32]>,
    public: [u8; 32],
    binding: HandshakePayload,
}

impl StaticKey {
    /// A fresh key pair from the operating system's generator, bound to `identity` until
    /// `expires_at` (Unix seconds).
    ///
    /// # Panics
    /// If the operating system cannot provide random bytes.
    pub(crate) fn generate(identity: &Identity, expires_at: u64) -> StaticKey {
        let mut private = Zeroizing::new([0u8; 32]);
        if let Err(e) = getrandom::getrandom(private.as_mut()) {
            panic!("operating system random number generator failed: {e}");
        }
        StaticKey::from_private(identity, private, expires_at)
    }

    /// The key pair of `private`, bound to `identity` until `expires_at`.
    pub(crate) fn from_private(
        identity: &Identity,
        private: Zeroizing<[u8; 32]>,
        expires_at: u64,
    ) -> StaticKey {
        let public = MontgomeryPoint::mul_base_clamped(*private).to_bytes();
        let binding = HandshakePayload::sign(identity, &public, expires_at);
        StaticKey {
            private,
            public,
            binding,
        }
    }

    pub(crate) fn private(&self) -> &[u8; 32] {
        &self.private
    }

    pub(crate) fn public(&self) -> &[u8; 32] {
        &self.public
    }

    /// The handshake payload: our identity's signature over [`StaticKey::public`].
    pub(crate) fn binding(&self) -> &HandshakePayload {
        &self.binding
    }

    /// Whether a handshake starting at `now` may still send this key's binding, for a
    /// configured validity of `validity` seconds: more than half of it is left, and it
    /// does not last longer than a binding signed now would (which also retires it if
    /// the clock is set back).
    fn fits(&self, now: u64, validity: u64) -> bool {
        let expires_at = self.binding.expires_at();
        expires_at <= now.saturating_add(validity) && expires_at.saturating_sub(now) > validity / 2
    }
}

/// The [`StaticKey`] an identity currently uses; one per [`Identity`].
#[derive(Default)]
pub(crate) struct StaticKeyCache {
    current: Mutex<Option<Arc<StaticKey>>>,
}

impl StaticKeyCache {
    /// The key for a handshake of `identity` (the owner of this cache) starting at `now`
    /// (Unix seconds) whose binding is configured to last `validity`: the current one if
    /// it still fits (see [`StaticKey::fits`]), else a fresh one that replaces it.
    pub(crate) fn get(&self, identity: &Identity, validity: Duration, now: u64) -> Arc<StaticKey> {
        let validity = validity.min(MAX_BINDING_VALIDITY).as_secs();
        let mut current = self.current.lock();
        if let Some(key) = current.as_ref().filter(|k| k.fits(now, validity)) {
            return Arc::clone(key);
        }
        let key = Arc::new(StaticKey::generate(identity, now.saturating_add(validity)));
        // The replaced key is wiped once the handshakes still using it finish.
        *current = Some(Arc::clone(&key));
        key
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zeroize::ZeroizeOnDrop;

    const T0: u64 = 1_900_000_000;
    const TWO_MIN: Duration = Duration::from_secs(120);

    #[test]
    fn handshakes_within_half_the_validity_share_one_key_and_binding() {
        let id = Identity::from_seed(&[1; 32]);
        let first = id.static_key(TWO_MIN, T0);
        for dt in [0, 1, 30, 59] {
            let again = id.static_key(TWO_MIN, T0 + dt);
            assert!(Arc::ptr_eq(&first, &again), "new key {dt} s later");
        }
        assert_eq!(first.binding().expires_at(), T0 + 120);
        // The binding verifies exactly as a peer checks it.
        first.binding().verify(first.public(), T0 + 59).unwrap();
        assert_eq!(
            first.public(),
            &MontgomeryPoint::mul_base_clamped(*first.private()).to_bytes()
        );
    }

    #[test]
    fn the_key_is_replaced_once_half_its_validity_is_gone() {
        let id = Identity::from_seed(&[2; 32]);
        let first = id.static_key(TWO_MIN, T0);
        // 60 s left of 120: no longer used.
        let second = id.static_key(TWO_MIN, T0 + 60);
        assert!(!Arc::ptr_eq(&first, &second));
        assert_ne!(first.public(), second.public());
        assert_eq!(second.binding().expires_at(), T0 + 180);
        assert!(Arc::ptr_eq(&second, &id.static_key(TWO_MIN, T0 + 61)));
    }

    #[test]
    fn a_binding_near_or_past_its_expiry_is_never_sent() {
        let id = Identity::from_seed(&[3; 32]);
        let first = id.static_key(TWO_MIN, T0);
        for late in [T0 + 119, T0 + 120, T0 + 5000] {
            let key = id.static_key(TWO_MIN, late);
            assert!(!Arc::ptr_eq(&first, &key));
            assert!(key.binding().expires_at() - late > 60, "at {late}");
        }
    }

    #[test]
    fn a_binding_is_never_longer_lived_than_the_config_asks() {
        let id = Identity::from_seed(&[4; 32]);
        let long = id.static_key(Duration::from_secs(600), T0);
        // A handshake configured for 2 min does not send a binding with 10 min left...
        let short = id.static_key(TWO_MIN, T0 + 1);
        assert!(!Arc::ptr_eq(&long, &short));
        assert_eq!(short.binding().expires_at(), T0 + 121);
        // ...and a clock set back retires the key rather than stretching its binding.
        let back = id.static_key(TWO_MIN, T0 - 30);
        assert!(!Arc::ptr_eq(&short, &back));
        assert_eq!(back.binding().expires_at(), T0 + 90);
        // Validity beyond the cap is capped, as for a fresh binding.
        let capped = id.static_key(Duration::MAX, T0);
        assert_eq!(capped.binding().expires_at(), T0 + MAX_BINDING_VALIDITY.as_secs());
    }

    #[test]
    fn a_validity_of_zero_gets_a_fresh_key_every_time() {
        let id = Identity::from_seed(&[5; 32]);
        let a = id.static_key(Duration::ZERO, T0);
        let b = id.static_key(Duration::ZERO, T0);
        assert!(!Arc::ptr_eq(&a, &b));
        assert_ne!(a.public(), b.public());
    }

    #[test]
    fn each_identity_has_its_own_key() {
        let (a, b) = (Identity::from_seed(&[6; 32]), Identity::from_seed(&[6; 32]));
        let (ka, kb) = (a.static_key(TWO_MIN, T0), b.static_key(TWO_MIN, T0));
        assert_ne!(ka.public(), kb.public());
    }

    fn wiped_on_drop<T: ZeroizeOnDrop>(_: &T) {}

    /// Every field, by an exhaustive pattern: a new one breaks this test until someone
    /// decides whether it must be wiped.
    #[test]
    fn the_private_key_is_wiped_on_drop() {
        let id = Identity::from_seed(&[7; 32]);
        let StaticKey {
            private,
            public: _,
            binding: _,
        } = &StaticKey::generate(&id, T0);
        wiped_on_drop(private);
    }
}
