//! [`Authority`] and [`Credential`]: signed statements that a subject (a node's
//! identifier) has some attributes, for access policies to decide on.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::agent::unix_secs;
use crate::identifier::Identifier;
use crate::identity::{Identity, IdentityError, PublicIdentity};
use crate::signing::{Purpose, Signature};

/// How far a credential's `not_before` may be in the future (the issuer's clock may run
/// ahead of ours) before it is refused.
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(60);
/// Most attributes one credential may carry.
pub const MAX_ATTRIBUTES: usize = 64;
/// Longest attribute name, in bytes.
pub const MAX_NAME_LEN: usize = 64;
/// Longest attribute value, in bytes.
pub const MAX_VALUE_LEN: usize = 1024;
/// Attribute names that a credential may never set: the node sets them itself from what
/// it verified (`subject.identifier`, `subject.has_credential`, and `subject.agent`, the
/// calling agent its node named).
pub const RESERVED_ATTRIBUTES: [&str; 3] = ["identifier", "has_credential", "agent"];

/// Version byte of the encoded credential.
const CREDENTIAL_VERSION: u8 = 1;

/// Attributes for a credential: names (letters, digits, `_` and `-`, at most
/// [`MAX_NAME_LEN`] bytes) to text values (at most [`MAX_VALUE_LEN`] bytes).
///
/// ```
/// use actor_secure::attrs;
///
/// let a = attrs! { "team" => "research", "role" => "planner" };
/// assert_eq!(a.get("team"), Some("research"));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Attributes(BTreeMap<String, String>);

impl Attributes {
    /// No attributes.
    pub fn new() -> Attributes {
        Attributes::default()
    }

    /// Sets `name` to `value` (checked when the credential is issued).
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.0.insert(name.into(), value.into());
    }

    /// The value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// The attributes in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// How many there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Builds [`Attributes`]: `attrs! { "team" => "research", "role" => "planner" }`.
#[macro_export]
macro_rules! attrs {
    ($($name:expr => $value:expr),* $(,)?) => {{
        #[allow(unused_mut)]
        let mut a = $crate::Attributes::new();
        $( a.insert($name, $value); )*
        a
    }};
}

/// Why a credential could not be issued, decoded or accepted.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CredentialError {
    /// The bytes are not an encoded credential.
    Malformed(&'static str),
    /// An attribute name is reserved (see [`RESERVED_ATTRIBUTES`]).
    ReservedAttribute(String),
    /// An attribute name or value is empty, too long, or has characters not allowed.
    InvalidAttribute(String),
    /// More than [`MAX_ATTRIBUTES`] attributes.
    TooManyAttributes,
    /// The validity period is empty or ends before it starts.
    BadValidity,
    /// The issuer is not one of the trusted authorities.
    UnknownAuthority(Identifier),
    /// The credential is about another identity than the one presenting it.
    SubjectMismatch {
        /// The subject named in the credential.
        subject: Identifier,
        /// Who presented it.
        presenter: Identifier,
    },
    /// The signature does not verify: forged, or changed after signing.
    BadSignature,
    /// Not valid yet (beyond the allowed clock skew).
    NotYetValid,
    /// Expired.
    Expired,
}

impl fmt::Display for CredentialError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CredentialError::Malformed(what) => write!(f, "malformed credential: {what}"),
            CredentialError::ReservedAttribute(name) => write!(f, "attribute `{name}` is reserved"),
            CredentialError::InvalidAttribute(name) => write!(f, "attribute `{name}` is not valid"),
            CredentialError::TooManyAttributes => write!(f, "more than {MAX_ATTRIBUTES} attributes"),
            CredentialError::BadValidity => f.write_str("validity period is empty"),
            CredentialError::UnknownAuthority(id) => write!(f, "issuer {id} is not a trusted authority"),
            CredentialError::SubjectMismatch { subject, presenter } => {
                write!(f, "credential is for {subject}, presented by {presenter}")
            }
            CredentialError::BadSignature => f.write_str("credential signature does not verify"),
            CredentialError::NotYetValid => f.write_str("credential not valid yet"),
            CredentialError::Expired => f.write_str("credential expired"),
        }
    }
}

impl std::error::Error for CredentialError {}

fn check_name(name: &str) -> Result<(), CredentialError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !ok {
        return Err(CredentialError::InvalidAttribute(
            name.chars().take(MAX_NAME_LEN).collect(),
        ));
    }
    if RESERVED_ATTRIBUTES.contains(&name) {
        return Err(CredentialError::ReservedAttribute(name.to_owned()));
    }
    Ok(())
}

fn check_value(name: &str, value: &str) -> Result<(), CredentialError> {
    if value.len() > MAX_VALUE_LEN || value.chars().any(char::is_control) {
        return Err(CredentialError::InvalidAttribute(name.to_owned()));
    }
    Ok(())
}

/// An identity that issues credentials. Its [`Identifier`] is what nodes list as a
/// trusted authority.
///
/// ```
/// use std::time::Duration;
/// use actor_secure::{attrs, Authority, Identity};
///
/// let authority = Authority::generate();
/// let node = Identity::generate();
/// let credential = authority.issue(
///     node.identifier(),
///     attrs! { "team" => "research", "role" => "planner" },
///     Duration::from_secs(3600),
/// )?;
/// let verified = credential.verify(&[authority.identifier()], &node.identifier())?;
/// assert_eq!(verified.get("team"), Some("research"));
/// # Ok::<(), actor_secure::CredentialError>(())
/// ```
pub struct Authority {
    identity: Identity,
    reserved: Vec<String>,
}

impl fmt::Debug for Authority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Authority({})", self.identity.identifier())
    }
}

impl Authority {
    /// A new authority with a fresh key.
    pub fn generate() -> Authority {
        Authority {
            identity: Identity::generate(),
            reserved: Vec::new(),
        }
    }

    /// An authority that signs with `identity`.
    pub fn from_identity(identity: Identity) -> Authority {
        Authority {
            identity,
            reserved: Vec::new(),
        }
    }

    /// Refuses to issue credentials that set `name` (repeatable), beyond the names every
    /// authority refuses ([`RESERVED_ATTRIBUTES`]).
    pub fn reserve_attribute(mut self, name: impl Into<String>) -> Authority {
        self.reserved.push(name.into());
        self
    }

    /// Loads the authority's key from `path`, creating it if absent (with the care of
    /// [`Identity::load_or_create`]).
    pub fn load_or_create(path: impl AsRef<Path>) -> Result<Authority, IdentityError> {
        Identity::load_or_create(path).map(Authority::from_identity)
    }

    /// The identifier nodes trust this authority by.
    pub fn identifier(&self) -> Identifier {
        self.identity.identifier()
    }

    /// Issues a credential for `subject`, valid from now for `valid_for`.
    pub fn issue(
        &self,
        subject: Identifier,
        attributes: Attributes,
        valid_for: Duration,
    ) -> Result<Credential, CredentialError> {
        let now = unix_secs(SystemTime::now());
        self.issue_between(subject, attributes, now, now.saturating_add(valid_for.as_secs()))
    }

    /// Issues a credential valid from `not_before` until `expires_at` (Unix seconds).
    pub fn issue_between(
        &self,
        subject: Identifier,
        attributes: Attributes,
        not_before: u64,
        expires_at: u64,
    ) -> Result<Credential, CredentialError> {
        if attributes.len() > MAX_ATTRIBUTES {
            return Err(CredentialError::TooManyAttributes);
        }
        for (name, value) in attributes.iter() {
            check_name(name)?;
            check_value(name, value)?;
            if self.reserved.iter().any(|r| r == name) {
                return Err(CredentialError::ReservedAttribute(name.to_owned()));
            }
        }
        if expires_at <= not_before {
            return Err(CredentialError::BadValidity);
        }
        Ok(self.sign_unchecked(subject, attributes, not_before, expires_at))
    }

    fn sign_unchecked(
        &self,
        subject: Identifier,
        attributes: Attributes,
        not_before: u64,
        expires_at: u64,
    ) -> Credential {
        let mut credential = Credential {
            issuer: *self.identity.public(),
            subject,
            attributes,
            not_before,
            expires_at,
            signature: Signature([0; 64]),
        };
        credential.signature = self.identity.sign(Purpose::Credential, &credential.body());
        credential
    }
}

/// An authority's signed statement that `subject` has some attributes, for a time.
///
/// Encoded canonically (see [`Credential::to_bytes`]) and signed over those bytes with a
/// purpose of its own, so no other signature of the authority can pass for a credential.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    issuer: PublicIdentity,
    subject: Identifier,
    attributes: Attributes,
    not_before: u64,
    expires_at: u64,
    signature: Signature,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("issuer", &self.issuer.identifier())
            .field("subject", &self.subject)
            .field("attributes", &self.attributes.0)
            .field("not_before", &self.not_before)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// The attributes of a credential that verified, as a policy sees them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedCredential {
    subject: Identifier,
    attributes: Attributes,
    expires_at: u64,
}

impl VerifiedCredential {
    /// The subject's attribute `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.attributes.get(name)
    }

    /// The verified subject.
    pub fn subject(&self) -> &Identifier {
        &self.subject
    }

    /// The same, with the attributes named in `reserved` dropped (logged).
    pub fn without(mut self, reserved: &[String]) -> VerifiedCredential {
        for name in reserved {
            if self.attributes.0.remove(name).is_some() {
                tracing::warn!(subject = %self.subject, attribute = %name, "credential attribute ignored: reserved here");
            }
        }
        self
    }

    /// When the attributes stop counting (Unix seconds).
    pub fn expires_at(&self) -> u64 {
        self.expires_at
    }

    /// Adds the subject's attributes to a policy environment: `subject.<name>` for each
    /// attribute, plus `subject.identifier` and `subject.has_credential`, which only the
    /// node sets.
    pub fn apply_to(&self, env: &mut actor_abac::Environment) {
        for (name, value) in self.attributes.iter() {
            env.insert(format!("subject.{name}"), value);
        }
        env.insert("subject.identifier", self.subject.to_string());
        env.insert("subject.has_credential", true);
    }
}

impl Credential {
    /// The canonical signed body: version (1) || issuer key (32) || subject (32) ||
    /// not_before (8) || expires_at (8) || attribute count (2) || for each attribute in
    /// name order: name length (2) || name || value length (2) || value. Big-endian.
    fn body(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            83 + self
                .attributes
                .iter()
                .map(|(k, v)| 4 + k.len() + v.len())
                .sum::<usize>(),
        );
        out.push(CREDENTIAL_VERSION);
        out.extend_from_slice(&self.issuer.to_bytes());
        out.extend_from_slice(self.subject.as_bytes());
        out.extend_from_slice(&self.not_before.to_be_bytes());
        out.extend_from_slice(&self.expires_at.to_be_bytes());
        // Counts and lengths fit: issuance bounds them far below u16::MAX.
        out.extend_from_slice(&(self.attributes.len() as u16).to_be_bytes());
        for (name, value) in self.attributes.iter() {
            out.extend_from_slice(&(name.len() as u16).to_be_bytes());
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(&(value.len() as u16).to_be_bytes());
            out.extend_from_slice(value.as_bytes());
        }
        out
    }

    /// The encoded credential: its body followed by the 64-byte signature.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.body();
        out.extend_from_slice(&self.signature.0);
        out
    }

    /// Decodes [`Credential::to_bytes`]: exact, bounded, no trailing bytes. Does not
    /// verify: call [`Credential::verify`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Credential, CredentialError> {
        let mut r = Reader(bytes);
        if r.take(1)?[0] != CREDENTIAL_VERSION {
            return Err(CredentialError::Malformed("unknown version"));
        }
        let mut key = [0u8; 32];
        key.copy_from_slice(r.take(32)?);
        let issuer =
            PublicIdentity::from_bytes(&key).map_err(|_| CredentialError::Malformed("issuer key"))?;
        let mut subject = [0u8; 32];
        subject.copy_from_slice(r.take(32)?);
        let not_before = r.u64()?;
        let expires_at = r.u64()?;
        let count = usize::from(r.u16()?);
        if count > MAX_ATTRIBUTES {
            return Err(CredentialError::TooManyAttributes);
        }
        let mut attributes = Attributes::new();
        let mut last: Option<String> = None;
        for _ in 0..count {
            let name = r.text(MAX_NAME_LEN)?;
            let value = r.text(MAX_VALUE_LEN)?;
            // Name order, no duplicates: one encoding per credential.
            if last.as_deref().is_some_and(|l| l >= name.as_str()) {
                return Err(CredentialError::Malformed("attributes out of order"));
            }
            last = Some(name.clone());
            attributes.insert(name, value);
        }
        let mut signature = [0u8; 64];
        signature.copy_from_slice(r.take(64)?);
        if !r.0.is_empty() {
            return Err(CredentialError::Malformed("trailing bytes"));
        }
        Ok(Credential {
            issuer,
            subject: Identifier::from_bytes(subject),
            attributes,
            not_before,
            expires_at,
            signature: Signature(signature),
        })
    }

    /// Stores the credential at `path` (mode `0600`, atomically); fails with
    /// `AlreadyExists` rather than replace a file.
    pub fn save(&self, path: impl AsRef<Path>) -> std::io::Result<()> {
        match crate::identity::write_private_new(path.as_ref(), &self.to_bytes())? {
            true => Ok(()),
            false => Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "a file already exists there (never overwritten)",
            )),
        }
    }

    /// Reads a credential stored with [`Credential::save`] (at most 256 KiB are read).
    /// Bytes that do not decode are an `InvalidData` error saying why. Does not verify.
    pub fn load(path: impl AsRef<Path>) -> std::io::Result<Credential> {
        use std::io::Read;
        let mut bytes = Vec::new();
        std::fs::File::open(path)?
            .take(256 * 1024)
            .read_to_end(&mut bytes)?;
        Credential::from_bytes(&bytes)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))
    }

    /// The subject the credential is about.
    pub fn subject(&self) -> &Identifier {
        &self.subject
    }

    /// The issuing authority.
    pub fn issuer(&self) -> Identifier {
        self.issuer.identifier()
    }

    /// The attributes, as signed (not yet verified).
    pub fn attributes(&self) -> &Attributes {
        &self.attributes
    }

    /// Valid from (Unix seconds).
    pub fn not_before(&self) -> u64 {
        self.not_before
    }

    /// Valid until (Unix seconds, exclusive).
    pub fn expires_at(&self) -> u64 {
        self.expires_at
    }

    /// Checks the credential now: issued by one of `trusted` authorities, about
    /// `presenter`, signature intact, valid (allowing [`MAX_CLOCK_SKEW`] for an issuer
    /// whose clock runs ahead). Reserved or invalid attributes that arrive anyway are
    /// dropped, never applied.
    pub fn verify(
        &self,
        trusted: &[Identifier],
        presenter: &Identifier,
    ) -> Result<VerifiedCredential, CredentialError> {
        self.verify_at(trusted, presenter, SystemTime::now())
    }

    /// [`Credential::verify`] at time `now`.
    pub fn verify_at(
        &self,
        trusted: &[Identifier],
        presenter: &Identifier,
        now: SystemTime,
    ) -> Result<VerifiedCredential, CredentialError> {
        let issuer = self.issuer.identifier();
        if !trusted.contains(&issuer) {
            return Err(CredentialError::UnknownAuthority(issuer));
        }
        self.issuer
            .verify(Purpose::Credential, &self.body(), &self.signature)
            .map_err(|_| CredentialError::BadSignature)?;
        if self.subject != *presenter {
            return Err(CredentialError::SubjectMismatch {
                subject: self.subject,
                presenter: *presenter,
            });
        }
        let now = unix_secs(now);
        if now.saturating_add(MAX_CLOCK_SKEW.as_secs()) < self.not_before {
            return Err(CredentialError::NotYetValid);
        }
        if now >= self.expires_at {
            return Err(CredentialError::Expired);
        }
        let mut attributes = Attributes::new();
        for (name, value) in self.attributes.iter() {
            if check_name(name).and_then(|()| check_value(name, value)).is_ok() {
                attributes.insert(name, value);
            } else {
                tracing::warn!(issuer = %issuer, attribute = name, "credential attribute ignored: reserved or invalid");
            }
        }
        Ok(VerifiedCredential {
            subject: self.subject,
            attributes,
            expires_at: self.expires_at,
        })
    }
}

/// A bounded reader over credential bytes.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], CredentialError> {
        if self.0.len() < n {
            return Err(CredentialError::Malformed("truncated"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u16(&mut self) -> Result<u16, CredentialError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u64(&mut self) -> Result<u64, CredentialError> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(b))
    }

    fn text(&mut self, max: usize) -> Result<String, CredentialError> {
        let len = usize::from(self.u16()?);
        if len > max {
            return Err(CredentialError::Malformed("attribute too long"));
        }
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| CredentialError::Malformed("attribute not UTF-8"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;

    fn at(secs: u64) -> SystemTime {
        std::time::UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn setup() -> (Authority, Identifier, Credential) {
        let authority = Authority::from_identity(Identity::from_seed(&[0xa0; 32]));
        let node = Identity::from_seed(&[0xb0; 32]).identifier();
        let cred = authority
            .issue_between(
                node,
                attrs! { "team" => "research", "role" => "planner" },
                NOW,
                NOW + 3600,
            )
            .unwrap();
        (authority, node, cred)
    }

    #[test]
    fn a_good_credential_verifies_and_fills_a_policy_environment() {
        let (authority, node, cred) = setup();
        let cred = Credential::from_bytes(&cred.to_bytes()).unwrap();
        let verified = cred
            .verify_at(&[authority.identifier()], &node, at(NOW + 10))
            .unwrap();
        let mut env = actor_abac::Environment::new();
        verified.apply_to(&mut env);
        let policy = actor_abac::Policy::parse(
            r#"(and subject.has_credential (= subject.team "research") (= subject.identifier subject.identifier))"#,
        )
        .unwrap();
        assert!(policy.decide(&env).is_allowed());
    }

    #[test]
    fn expired_and_not_yet_valid_credentials_are_refused_at_the_edges() {
        // C1 and C2 of the security notes.
        let (authority, node, cred) = setup();
        let trusted = [authority.identifier()];
        assert_eq!(
            cred.verify_at(&trusted, &node, at(NOW + 3600)),
            Err(CredentialError::Expired)
        );
        assert!(cred.verify_at(&trusted, &node, at(NOW + 3599)).is_ok());
        let skew = MAX_CLOCK_SKEW.as_secs();
        assert!(
            cred.verify_at(&trusted, &node, at(NOW - skew)).is_ok(),
            "within the skew"
        );
        assert_eq!(
            cred.verify_at(&trusted, &node, at(NOW - skew - 1)),
            Err(CredentialError::NotYetValid)
        );
    }

    #[test]
    fn unknown_issuers_other_subjects_and_tampering_are_refused() {
        // C3, C4 and C5.
        let (authority, node, cred) = setup();
        let trusted = [authority.identifier()];
        let other = Identity::generate().identifier();
        assert_eq!(
            cred.verify_at(&[other], &node, at(NOW)),
            Err(CredentialError::UnknownAuthority(authority.identifier()))
        );
        assert!(matches!(
            cred.verify_at(&trusted, &other, at(NOW)),
            Err(CredentialError::SubjectMismatch { .. })
        ));
        // Change "research" to "researcX" in the encoded bytes.
        let mut bytes = cred.to_bytes();
        let pos = bytes.windows(8).position(|w| w == b"research").unwrap();
        bytes[pos + 7] = b'X';
        let tampered = Credential::from_bytes(&bytes).unwrap();
        assert_eq!(
            tampered.verify_at(&trusted, &node, at(NOW)),
            Err(CredentialError::BadSignature)
        );
        // A signature by the authority for another purpose never passes.
        let other_purpose = authority.identity.sign(Purpose::AgentAttestation, &cred.body());
        let mut bytes = cred.body();
        bytes.extend_from_slice(&other_purpose.0);
        let forged = Credential::from_bytes(&bytes).unwrap();
        assert_eq!(
            forged.verify_at(&trusted, &node, at(NOW)),
            Err(CredentialError::BadSignature)
        );
    }

    #[test]
    fn reserved_and_invalid_attributes_are_refused_at_issuance_and_ignored_on_arrival() {
        // C9 and C10.
        let (authority, node, _) = setup();
        for (name, value, want) in [
            (
                "identifier",
                "x",
                CredentialError::ReservedAttribute("identifier".into()),
            ),
            (
                "has_credential",
                "true",
                CredentialError::ReservedAttribute("has_credential".into()),
            ),
            ("", "x", CredentialError::InvalidAttribute(String::new())),
            (
                "team name",
                "x",
                CredentialError::InvalidAttribute("team name".into()),
            ),
            (
                "subject.team",
                "x",
                CredentialError::InvalidAttribute("subject.team".into()),
            ),
            ("team", "a\nb", CredentialError::InvalidAttribute("team".into())),
        ] {
            let mut a = Attributes::new();
            a.insert(name, value);
            assert_eq!(authority.issue(node, a, Duration::from_secs(60)), Err(want));
        }
        // One signed anyway (an authority on another build): verified, but the reserved
        // attribute never reaches a policy.
        let mut a = Attributes::new();
        a.insert("identifier", "Ifake");
        a.insert("team", "research");
        let cred = authority.sign_unchecked(node, a, NOW, NOW + 60);
        let verified = cred.verify_at(&[authority.identifier()], &node, at(NOW)).unwrap();
        assert_eq!(verified.get("identifier"), None);
        assert_eq!(verified.get("team"), Some("research"));
        let mut env = actor_abac::Environment::new();
        verified.apply_to(&mut env);
        assert_eq!(
            env.get("subject.identifier"),
            Some(&actor_abac::Value::Str(node.to_string()))
        );
    }

    #[test]
    fn the_encoding_is_pinned_and_exact() {
        let (_, _, cred) = setup();
        let bytes = cred.to_bytes();
        assert_eq!(
            bytes.len(),
            1 + 32 + 32 + 8 + 8 + 2 + (2 + 4 + 2 + 7) + (2 + 4 + 2 + 8) + 64
        );
        assert_eq!(&bytes[83..87], &[0, 4, b'r', b'o'], "name order: role first");
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(
            Credential::from_bytes(&longer),
            Err(CredentialError::Malformed("trailing bytes"))
        );
        for cut in 0..bytes.len() {
            assert!(Credential::from_bytes(&bytes[..cut]).is_err());
        }
    }
}
