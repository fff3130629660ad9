//! [`Identifier`]: the stable, printable name of an identity.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

/// Domain separator hashed in front of every identifier, so that an identifier can never
/// collide with a SHA-256 computed over the same key bytes for any other purpose.
const IDENTIFIER_DOMAIN: &[u8] = b"troupe/identifier\0";
/// Version of the identifier encoding. Bump it (and the domain) if the encoding changes.
const IDENTIFIER_VERSION: u8 = 1;
/// Key type tag for Ed25519 public keys.
const KEY_TYPE_ED25519: u8 = 1;

/// The stable name of an [`Identity`](crate::Identity): SHA-256 over a domain-separated,
/// versioned encoding of its Ed25519 public key (all 32 bytes).
///
/// It is shown as `I` followed by 64 lower-case hex characters, and parses back from
/// exactly that text:
///
/// ```
/// use actor_secure::{Identifier, Identity};
///
/// let id = Identity::generate().identifier();
/// let text = id.to_string();
/// assert!(text.starts_with('I') && text.len() == 65);
/// assert_eq!(text.parse::<Identifier>().unwrap(), id);
/// assert!("I1234".parse::<Identifier>().is_err());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Identifier([u8; 32]);

impl Identifier {
    /// Length of the textual form: `I` and 64 hex characters.
    pub const TEXT_LEN: usize = 65;

    /// Computes the identifier of an Ed25519 public key (given as its 32 bytes).
    pub fn from_ed25519_public_key(key: &[u8; 32]) -> Identifier {
        let mut hasher = Sha256::new();
        hasher.update(IDENTIFIER_DOMAIN);
        hasher.update([IDENTIFIER_VERSION, KEY_TYPE_ED25519]);
        hasher.update(key);
        Identifier(hasher.finalize().into())
    }

    /// Wraps 32 raw identifier bytes (for example read back from storage).
    pub const fn from_bytes(bytes: [u8; 32]) -> Identifier {
        Identifier(bytes)
    }

    /// The 32 raw bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for Identifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("I")?;
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Identifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Identifier({self})")
    }
}

/// Why a text is not an [`Identifier`].
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParseIdentifierError {
    /// The text does not start with `I`.
    MissingPrefix,
    /// The text is not exactly 65 bytes long (`I` and 64 hex characters).
    WrongLength {
        /// Length of the text that was given, in bytes.
        len: usize,
    },
    /// A character after the prefix is not a lower-case hex digit.
    InvalidDigit {
        /// Byte offset of the offending character in the text.
        position: usize,
    },
}

impl fmt::Display for ParseIdentifierError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseIdentifierError::MissingPrefix => f.write_str("identifier must start with 'I'"),
            ParseIdentifierError::WrongLength { len } => {
                write!(f, "identifier must be 65 characters long, got {len}")
            }
            ParseIdentifierError::InvalidDigit { position } => {
                write!(f, "identifier has a non lower-case hex character at {position}")
            }
        }
    }
}

impl std::error::Error for ParseIdentifierError {}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

impl FromStr for Identifier {
    type Err = ParseIdentifierError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bytes = s.as_bytes();
        if bytes.first() != Some(&b'I') {
            return Err(ParseIdentifierError::MissingPrefix);
        }
        if bytes.len() != Identifier::TEXT_LEN {
            return Err(ParseIdentifierError::WrongLength { len: bytes.len() });
        }
        let mut out = [0u8; 32];
        for (i, pair) in bytes[1..].chunks_exact(2).enumerate() {
            let hi = hex_value(pair[0]).ok_or(ParseIdentifierError::InvalidDigit { position: 1 + 2 * i })?;
            let lo = hex_value(pair[1]).ok_or(ParseIdentifierError::InvalidDigit { position: 2 + 2 * i })?;
            out[i] = hi << 4 | lo;
        }
        Ok(Identifier(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upper_case_hex_is_rejected_so_each_identifier_has_one_spelling() {
        let id = Identifier::from_bytes([0xab; 32]);
        let upper = id.to_string().to_uppercase();
        assert_eq!(
            upper.parse::<Identifier>(),
            Err(ParseIdentifierError::InvalidDigit { position: 1 })
        );
    }

    #[test]
    fn multibyte_text_of_the_right_length_is_rejected_without_panicking() {
        let text = format!("I{}é", "0".repeat(62));
        assert_eq!(text.len(), 65);
        assert!(text.parse::<Identifier>().is_err());
    }
}
