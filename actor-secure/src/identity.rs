//! [`Identity`]: an Ed25519 key pair, and [`PublicIdentity`], its public half.

mod file;

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use zeroize::Zeroizing;

pub(crate) use file::write_private_new;
pub use file::{FileKind, IdentityError, IdentityFileError};

use crate::channel::static_key::{StaticKey, StaticKeyCache};
use crate::channel::verified::VerifiedBindings;
use crate::identifier::Identifier;
use crate::signing::{signed_bytes, Purpose, Signature, SignatureError};

/// An Ed25519 key pair that signs on behalf of a node or an agent.
///
/// The secret key is zeroized when the `Identity` is dropped, and never printed: `Debug`
/// shows only the [`Identifier`]. So is the Noise static key that the identity's secure
/// channels share for a while (see [`ChannelConfig::binding_validity`]).
///
/// [`ChannelConfig::binding_validity`]: crate::ChannelConfig::binding_validity
///
/// ```
/// use actor_secure::Identity;
///
/// let node = Identity::generate();
/// let agent = node.derive_agent("counter");            // same name, same identity
/// assert_eq!(agent.identifier(), node.derive_agent("counter").identifier());
/// println!("{:?}", node);                               // Identity(I...), no secret
/// ```
pub struct Identity {
    signing: SigningKey,
    public: PublicIdentity,
    static_keys: StaticKeyCache,
    verified: VerifiedBindings,
}

impl Identity {
    /// A fresh identity from the operating system's random number generator.
    ///
    /// # Panics
    ///
    /// If the operating system cannot provide random bytes (no key can be made safely then).
    pub fn generate() -> Identity {
        let mut seed = Zeroizing::new([0u8; 32]);
        if let Err(e) = getrandom::getrandom(seed.as_mut()) {
            // Without an OS random source no key can be made safely; there is no sensible
            // way to continue, and returning a weak key would be worse than stopping.
            panic!("operating system random number generator failed: {e}");
        }
        Identity::from_seed(&seed)
    }

    /// The identity whose Ed25519 secret key (seed) is `seed`.
    ///
    /// Use it for fixed test vectors, or to import a key kept elsewhere. Keep the seed
    /// secret: whoever has it *is* this identity.
    pub fn from_seed(seed: &[u8; 32]) -> Identity {
        let signing = SigningKey::from_bytes(seed);
        let public = PublicIdentity::from_verifying_key(signing.verifying_key());
        Identity {
            signing,
            public,
            static_keys: StaticKeyCache::default(),
            verified: VerifiedBindings::default(),
        }
    }

    /// Loads the identity stored at `path`, or creates a new one there if no file exists.
    ///
    /// Creating is this function's job, so a deleted file or a mistyped path becomes a
    /// new identity with a new identifier, which peers do not trust yet. That is logged
    /// as a `tracing` warning (`created new identity I... at ...`); where the identity
    /// must already exist (in production, once a node is provisioned), use
    /// [`Identity::load`], which never creates one.
    ///
    /// A new file is created with mode `0600` (owner read/write only) and written
    /// atomically (a private temporary file, then a hard link that fails if the name was
    /// taken meanwhile), so two processes racing to create it end up with the same
    /// identity. An existing file goes through every check of [`Identity::load`]; anything
    /// it refuses is an error here too, never a reason to create a new identity. In
    /// particular nothing is created in a directory that `load` refuses, nor through a
    /// symbolic link.
    ///
    /// ```
    /// use actor_secure::Identity;
    ///
    /// let dir = std::env::temp_dir().join(format!("troupe-doc-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir).unwrap();
    /// # #[cfg(unix)] // The directory must not be writable by others, whatever the umask.
    /// # std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    /// let path = dir.join("node.key");
    /// let first = Identity::load_or_create(&path).unwrap();
    /// let again = Identity::load_or_create(&path).unwrap();
    /// assert_eq!(first.identifier(), again.identifier());
    /// # std::fs::remove_dir_all(&dir).unwrap();
    /// ```
    pub fn load_or_create(path: impl AsRef<Path>) -> Result<Identity, IdentityError> {
        file::load_or_create(path.as_ref())
    }

    /// Loads the identity stored at `path`; the file must exist, and is never created.
    ///
    /// Use this in production, wherever the identity must already exist: a missing file
    /// is an [`IdentityError::Io`] of kind [`NotFound`](std::io::ErrorKind::NotFound)
    /// rather than a new identifier. [`Identity::load_or_create`] is for first runs and
    /// development.
    ///
    /// Refused, following OpenSSH's `StrictModes` (whoever can read the file can copy
    /// the key; whoever can replace it, or replace it through its directory, can make
    /// this node use their key):
    ///
    /// - a path that is not a regular file: [`IdentityError::NotAFile`]. A symbolic link
    ///   is refused, not followed, even to a good file; a named pipe, socket or device is
    ///   never opened, so it cannot block the call; a directory says so;
    /// - on Unix, a file that belongs to neither the process's effective user nor root:
    ///   [`IdentityError::WrongOwner`];
    /// - on Unix, a file its group or others have any permission bit on:
    ///   [`IdentityError::InsecurePermissions`] (fix with `chmod 600`);
    /// - on Unix, a file whose directory belongs to neither the effective user nor root
    ///   ([`IdentityError::WrongOwner`] naming the directory), or may be written by its
    ///   group or others, even with the sticky bit as in `/tmp`
    ///   ([`IdentityError::InsecureDirectory`], fix with `chmod go-w`);
    /// - contents that are not an identity file: [`IdentityError::Corrupt`].
    ///
    /// The type, owner and mode are checked on the opened file, so swapping the path
    /// while it is checked gains nothing. Only the last component of `path` is kept from
    /// following a link and only the directory that holds the file is checked;
    /// directories further up are trusted. Outside Unix only the file type is checked,
    /// and a link swapped in between that check and the opening is followed.
    ///
    /// ```
    /// use std::io::ErrorKind;
    /// use actor_secure::{Identity, IdentityError};
    ///
    /// let path = std::env::temp_dir().join("troupe-doc-no-such-dir").join("node.key");
    /// match Identity::load(&path) {
    ///     Err(IdentityError::Io { source, .. }) => assert_eq!(source.kind(), ErrorKind::NotFound),
    ///     other => panic!("expected a missing file, got {other:?}"),
    /// }
    /// ```
    pub fn load(path: impl AsRef<Path>) -> Result<Identity, IdentityError> {
        file::load(path.as_ref())
    }

    /// Creates a new identity and stores it at `path` (mode `0600`, atomically); fails if
    /// a file already exists there, which is never overwritten.
    pub fn create(path: impl AsRef<Path>) -> Result<Identity, IdentityError> {
        file::create(path.as_ref())
    }

    /// This identity's [`Identifier`].
    pub fn identifier(&self) -> Identifier {
        self.public.identifier
    }

    /// The public half, to give to others.
    pub fn public(&self) -> &PublicIdentity {
        &self.public
    }

    /// The secret seed, zeroized when the returned value is dropped.
    pub(crate) fn seed(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.signing.to_bytes())
    }

    /// The Noise static key and binding for a secure-channel handshake starting at `now`
    /// (Unix seconds) with a binding validity of `validity`: shared with this identity's
    /// other handshakes while more than half of that validity is left (see
    /// `channel/static_key.rs`).
    pub(crate) fn static_key(&self, validity: Duration, now: u64) -> Arc<StaticKey> {
        self.static_keys.get(self, validity, now)
    }

    /// The peers' bindings this identity's handshakes have verified (see
    /// `channel/verified.rs`).
    pub(crate) fn verified_bindings(&self) -> &VerifiedBindings {
        &self.verified
    }

    /// Signs `body` for `purpose` (see [`crate::signing`]).
    pub(crate) fn sign(&self, purpose: Purpose, body: &[u8]) -> Signature {
        Signature(self.signing.sign(&signed_bytes(purpose, body)).to_bytes())
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Identity({})", self.public.identifier)
    }
}

/// The public half of an [`Identity`]: its Ed25519 public key and [`Identifier`].
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicIdentity {
    key: VerifyingKey,
    identifier: Identifier,
}

impl PublicIdentity {
    fn from_verifying_key(key: VerifyingKey) -> PublicIdentity {
        let identifier = Identifier::from_ed25519_public_key(key.as_bytes());
        PublicIdentity { key, identifier }
    }

    /// Parses a 32-byte Ed25519 public key. Refuses bytes that are not a valid point,
    /// keys of small order (which would let anyone forge signatures), and non-canonical
    /// encodings (a second spelling of a point would give the same key a second
    /// [`Identifier`]).
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<PublicIdentity, SignatureError> {
        // Decompresses once; `to_edwards` is that point.
        let key = VerifyingKey::from_bytes(bytes).map_err(|_| SignatureError)?;
        if key.to_edwards().compress().to_bytes() != *bytes {
            return Err(SignatureError);
        }
        if key.is_weak() {
            return Err(SignatureError);
        }
        Ok(PublicIdentity::from_verifying_key(key))
    }

    /// The 32 bytes of the Ed25519 public key.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// The [`Identifier`] of this key.
    pub fn identifier(&self) -> Identifier {
        self.identifier
    }

    /// Checks that `signature` was made by this identity for `purpose` over `body`, with
    /// Ed25519 `verify_strict` (no malleable or small-order signatures).
    pub fn verify(&self, purpose: Purpose, body: &[u8], signature: &Signature) -> Result<(), SignatureError> {
        let sig = ed25519_dalek::Signature::from_bytes(&signature.0);
        self.key
            .verify_strict(&signed_bytes(purpose, body), &sig)
            .map_err(|_| SignatureError)
    }
}

impl fmt::Debug for PublicIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicIdentity({})", self.identifier)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_for_one_purpose_is_refused_for_another() {
        let id = Identity::generate();
        let sig = id.sign(Purpose::NoiseStaticKey, b"body");
        assert!(id.public().verify(Purpose::NoiseStaticKey, b"body", &sig).is_ok());
        assert!(id
            .public()
            .verify(Purpose::AgentAttestation, b"body", &sig)
            .is_err());
    }

    #[test]
    fn a_non_canonical_encoding_of_a_valid_key_is_refused() {
        // y values p..p+18 fit in 255 bits and spell the same points as 0..18. Find one
        // that is an ordinary (not small-order) key and check that only its canonical
        // spelling is accepted.
        let mut found = 0;
        for k in 0u8..19 {
            let mut non_canonical = [0xffu8; 32];
            non_canonical[31] = 0x7f;
            non_canonical[0] = 0xed + k; // p + k, little-endian; p = 2^255 - 19
            let mut canonical = [0u8; 32];
            canonical[0] = k;
            for sign in [0u8, 0x80] {
                let (mut nc, mut c) = (non_canonical, canonical);
                nc[31] |= sign;
                c[31] |= sign;
                if PublicIdentity::from_bytes(&c).is_ok() {
                    found += 1;
                    assert!(
                        PublicIdentity::from_bytes(&nc).is_err(),
                        "second spelling of {c:02x?} accepted"
                    );
                }
            }
        }
        assert!(found > 0, "no ordinary key among the small y values");
        let honest = Identity::from_seed(&[9; 32]).public().to_bytes();
        assert!(PublicIdentity::from_bytes(&honest).is_ok());
    }

    #[test]
    fn debug_never_prints_the_secret() {
        let id = Identity::from_seed(&[7; 32]);
        let shown = format!("{id:?}");
        assert!(!shown.contains("0707"));
        assert!(shown.starts_with("Identity(I"));
    }
}
