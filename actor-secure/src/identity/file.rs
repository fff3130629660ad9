//! The identity file: a small, versioned, fixed-layout binary record.
//!
//! Layout (74 bytes): `"TROUPEID"` (8) || version `1` || key type `1` (Ed25519)
//! || secret seed (32) || public key (32). The public key is stored so that any corruption
//! of either key is caught on load (it must match the key derived from the seed).

use std::fmt;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use super::Identity;

mod open;

const MAGIC: &[u8; 8] = b"TROUPEID";
const VERSION: u8 = 1;
const KEY_TYPE_ED25519: u8 = 1;
/// Exact length of a version 1 identity file.
pub(crate) const FILE_LEN: usize = 8 + 1 + 1 + 32 + 32;
/// Files larger than this are not read at all.
const MAX_READ: u64 = 4096;

/// Why the bytes of an identity file do not decode.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdentityFileError {
    /// The file is shorter than the record (for example a write was cut short).
    Truncated {
        /// How many bytes the file has.
        len: usize,
    },
    /// The file has bytes after the record.
    TrailingBytes {
        /// How many bytes the file has.
        len: usize,
    },
    /// The file does not start with the identity file marker.
    BadMagic,
    /// The record is of a version this build does not know.
    UnsupportedVersion(u8),
    /// The key type is not Ed25519.
    UnsupportedKeyType(u8),
    /// The stored public key does not match the secret key: the file is damaged.
    KeyMismatch,
}

impl fmt::Display for IdentityFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdentityFileError::Truncated { len } => {
                write!(f, "truncated ({len} bytes, expected {FILE_LEN})")
            }
            IdentityFileError::TrailingBytes { len } => {
                write!(f, "too long ({len} bytes, expected {FILE_LEN})")
            }
            IdentityFileError::BadMagic => f.write_str("not an identity file"),
            IdentityFileError::UnsupportedVersion(v) => write!(f, "unsupported version {v}"),
            IdentityFileError::UnsupportedKeyType(t) => write!(f, "unsupported key type {t}"),
            IdentityFileError::KeyMismatch => f.write_str("public key does not match secret key"),
        }
    }
}

impl std::error::Error for IdentityFileError {}

/// What is at an identity file's path instead of a regular file.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    /// A symbolic link. It is not followed: it could point at another user's key.
    Symlink,
    /// A directory.
    Directory,
    /// A named pipe (FIFO).
    Fifo,
    /// A Unix domain socket.
    Socket,
    /// A block device.
    BlockDevice,
    /// A character device.
    CharDevice,
    /// Anything else that is not a regular file.
    Other,
}

impl fmt::Display for FileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FileKind::Symlink => "a symbolic link",
            FileKind::Directory => "a directory",
            FileKind::Fifo => "a named pipe",
            FileKind::Socket => "a socket",
            FileKind::BlockDevice => "a block device",
            FileKind::CharDevice => "a character device",
            FileKind::Other => "an unknown kind of file",
        })
    }
}

/// Why an identity could not be loaded or stored.
#[non_exhaustive]
#[derive(Debug)]
pub enum IdentityError {
    /// Reading or writing the file failed; a missing file is kind
    /// [`NotFound`](io::ErrorKind::NotFound).
    Io {
        /// The identity file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The path is not a regular file: a symbolic link (never followed), a directory, a
    /// named pipe, a socket or a device.
    NotAFile {
        /// The identity file's path.
        path: PathBuf,
        /// What is there instead.
        kind: FileKind,
    },
    /// The file, or the directory that holds it, belongs to neither the process's
    /// effective user nor root: its owner could replace the key (Unix only).
    WrongOwner {
        /// The identity file, or the directory that holds it.
        path: PathBuf,
        /// Its owner's user id.
        owner: u32,
        /// The process's effective user id.
        euid: u32,
    },
    /// The file's group or others have permission bits on it: they may read (copy) or
    /// write (replace) the key. Fix with `chmod 600` (Unix only).
    InsecurePermissions {
        /// The identity file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The directory that holds the file may be written by its group or others, sticky
    /// bit or not: they could replace the file. Fix with `chmod go-w` (Unix only).
    InsecureDirectory {
        /// The directory.
        path: PathBuf,
        /// Its permission bits, with the sticky, setuid and setgid bits.
        mode: u32,
    },
    /// The file exists but does not hold a valid identity.
    Corrupt {
        /// The identity file.
        path: PathBuf,
        /// What is wrong with it.
        source: IdentityFileError,
    },
}

/// Who the group and other bits of `mode` let in: "its group", "others", or both.
fn who(mode: u32) -> &'static str {
    match (mode & 0o070 != 0, mode & 0o007 != 0) {
        (true, true) => "its group and others",
        (true, false) => "its group",
        _ => "others",
    }
}

/// What the group and other bits of `mode` allow: "read", "read and written", ...
fn what(mode: u32) -> String {
    let verbs: Vec<&str> = [(0o044, "read"), (0o022, "written"), (0o011, "executed")]
        .into_iter()
        .filter(|(bits, _)| mode & bits != 0)
        .map(|(_, verb)| verb)
        .collect();
    verbs.join(" and ")
}

impl fmt::Display for IdentityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdentityError::Io { path, source } => {
                write!(f, "identity file {}: {source}", path.display())
            }
            IdentityError::NotAFile { path, kind } => {
                write!(f, "{} is {kind}, not an identity file", path.display())?;
                if *kind == FileKind::Symlink {
                    f.write_str(" (links are not followed; give the file's own path)")?;
                }
                Ok(())
            }
            IdentityError::WrongOwner { path, owner, euid } => write!(
                f,
                "{} belongs to uid {owner}, not to this user (uid {euid}) or root, \
                 so its owner could replace the identity",
                path.display()
            ),
            IdentityError::InsecurePermissions { path, mode } => write!(
                f,
                "identity file {} may be {} by {} (mode {mode:03o}); run chmod 600 {}",
                path.display(),
                what(*mode),
                who(*mode),
                path.display()
            ),
            IdentityError::InsecureDirectory { path, mode } => write!(
                f,
                "directory {} may be written by {} (mode {mode:03o}), who could replace \
                 the identity file in it; run chmod go-w {}",
                path.display(),
                who(*mode & 0o022),
                path.display()
            ),
            IdentityError::Corrupt { path, source } => {
                write!(f, "identity file {} is corrupt: {source}", path.display())
            }
        }
    }
}

impl std::error::Error for IdentityError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            IdentityError::Io { source, .. } => Some(source),
            IdentityError::Corrupt { source, .. } => Some(source),
            IdentityError::NotAFile { .. }
            | IdentityError::WrongOwner { .. }
            | IdentityError::InsecurePermissions { .. }
            | IdentityError::InsecureDirectory { .. } => None,
        }
    }
}

impl Identity {
    /// Encodes this identity as an identity file's bytes. They contain the secret key.
    pub fn to_file_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(FILE_LEN));
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.push(KEY_TYPE_ED25519);
        out.extend_from_slice(self.seed().as_ref());
        out.extend_from_slice(&self.public.to_bytes());
        out
    }

    /// Decodes an identity file's bytes (see [`Identity::to_file_bytes`]).
    pub fn from_file_bytes(bytes: &[u8]) -> Result<Identity, IdentityFileError> {
        if bytes.len() < FILE_LEN {
            // Say "not an identity file" rather than "truncated" when even the marker is
            // wrong: it points the user at the right mistake (a wrong path).
            let n = bytes.len().min(MAGIC.len());
            if bytes[..n] != MAGIC[..n] {
                return Err(IdentityFileError::BadMagic);
            }
            return Err(IdentityFileError::Truncated { len: bytes.len() });
        }
        if bytes.len() > FILE_LEN {
            return Err(IdentityFileError::TrailingBytes { len: bytes.len() });
        }
        if &bytes[..8] != MAGIC {
            return Err(IdentityFileError::BadMagic);
        }
        if bytes[8] != VERSION {
            return Err(IdentityFileError::UnsupportedVersion(bytes[8]));
        }
        if bytes[9] != KEY_TYPE_ED25519 {
            return Err(IdentityFileError::UnsupportedKeyType(bytes[9]));
        }
        let mut seed = Zeroizing::new([0u8; 32]);
        seed.copy_from_slice(&bytes[10..42]);
        let identity = Identity::from_seed(&seed);
        if identity.public.to_bytes()[..] != bytes[42..74] {
            return Err(IdentityFileError::KeyMismatch);
        }
        Ok(identity)
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> IdentityError + '_ {
    move |source| IdentityError::Io {
        path: path.to_path_buf(),
        source,
    }
}

pub(super) fn load(path: &Path) -> Result<Identity, IdentityError> {
    let file = open::open(path)?;
    let mut bytes = Zeroizing::new(Vec::with_capacity(FILE_LEN));
    file.take(MAX_READ)
        .read_to_end(&mut bytes)
        .map_err(io_err(path))?;
    Identity::from_file_bytes(&bytes).map_err(|source| IdentityError::Corrupt {
        path: path.to_path_buf(),
        source,
    })
}

pub(super) fn load_or_create(path: &Path) -> Result<Identity, IdentityError> {
    match load(path) {
        Err(IdentityError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {}
        other => return other,
    }
    let identity = Identity::generate();
    let result = write_private_new(path, &identity.to_file_bytes());
    match result.map_err(io_err(path))? {
        true => {
            // Loud on purpose: if the file was meant to exist (deleted, wrong path), the
            // node now has a new identifier that no peer trusts yet.
            tracing::warn!(
                "created new identity {} at {}; use Identity::load where it must already exist",
                identity.identifier(),
                path.display()
            );
            Ok(identity)
        }
        // Lost the race: use the identity the other process stored.
        false => load(path),
    }
}

fn write_new(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Writes `bytes` to a new file at `path`, readable by its owner only (mode 0600), and
/// atomically: the bytes go to a private temporary file that is then hard-linked into
/// place, so readers never see a half-written file and an existing file is never
/// replaced. Returns false (writing nothing) when `path` already exists.
pub(crate) fn write_private_new(path: &Path, bytes: &[u8]) -> io::Result<bool> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // A random suffix: several threads or processes may be creating at once.
    let mut salt = [0u8; 8];
    getrandom::getrandom(&mut salt).map_err(|e| io::Error::other(e.to_string()))?;
    let salt = u64::from_le_bytes(salt);
    let tmp = dir.join(format!(".{name}.{}.{salt:016x}.tmp", std::process::id()));
    let result = write_new(&tmp, bytes).and_then(|()| match fs::hard_link(&tmp, path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    });
    let _ = fs::remove_file(&tmp);
    result
}

/// Creates a new identity file at `path`; fails if one exists.
pub(super) fn create(path: &Path) -> Result<Identity, IdentityError> {
    let identity = Identity::generate();
    match write_private_new(path, &identity.to_file_bytes()).map_err(io_err(path))? {
        true => Ok(identity),
        false => Err(io_err(path)(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "a file already exists there (never overwritten)",
        ))),
    }
}
