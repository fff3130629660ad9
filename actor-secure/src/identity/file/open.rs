//! Opening an identity file only if it can be trusted to be the owner's secret.
//!
//! The rules follow OpenSSH's `StrictModes`: whoever can replace or read the file, or
//! replace it through its directory, could become this node or copy its key. On Unix:
//!
//! - the path must be a regular file. A symbolic link is refused, not followed (it could
//!   point at another user's key), and a FIFO, socket or device is never opened, so it
//!   cannot block the caller;
//! - the file must belong to the process's effective user or to root, and its group and
//!   others must have no permission bits at all;
//! - the directory that holds it must belong to the effective user or to root, and its
//!   group and others must not be able to write to it, sticky bit or not (see
//!   [`check_dir`]).
//!
//! The type, owner and mode of the file are checked on the opened file itself, so
//! swapping the path between the checks and the `open` gains nothing. Only the last
//! component of the path is protected from symbolic links, and only its own directory is
//! checked; directories further up are trusted, as they are for any other file.
//!
//! Elsewhere only the file type is checked (see [`open`]).

use std::fs;
use std::path::Path;

use super::{io_err, FileKind, IdentityError};

/// The directory that holds `path` (`.` for a bare file name).
#[cfg(unix)]
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// Why `file_type` is not that of an identity file, if it is not.
fn kind_of(file_type: fs::FileType) -> Option<FileKind> {
    if file_type.is_file() {
        return None;
    }
    if file_type.is_symlink() {
        return Some(FileKind::Symlink);
    }
    if file_type.is_dir() {
        return Some(FileKind::Directory);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if file_type.is_fifo() {
            return Some(FileKind::Fifo);
        }
        if file_type.is_socket() {
            return Some(FileKind::Socket);
        }
        if file_type.is_block_device() {
            return Some(FileKind::BlockDevice);
        }
        if file_type.is_char_device() {
            return Some(FileKind::CharDevice);
        }
    }
    Some(FileKind::Other)
}

fn check_kind(path: &Path, file_type: fs::FileType) -> Result<(), IdentityError> {
    match kind_of(file_type) {
        None => Ok(()),
        Some(kind) => Err(IdentityError::NotAFile {
            path: path.to_path_buf(),
            kind,
        }),
    }
}

/// Whether `uid` may own an identity file or its directory, for a process whose effective
/// user is `euid`: that user or root (root can read every file anyway).
#[cfg(unix)]
fn trusted_owner(uid: u32, euid: u32) -> bool {
    uid == euid || uid == 0
}

/// The owner and mode rules for the identity file itself.
#[cfg(unix)]
pub(super) fn check_file(path: &Path, uid: u32, mode: u32, euid: u32) -> Result<(), IdentityError> {
    if !trusted_owner(uid, euid) {
        return Err(IdentityError::WrongOwner {
            path: path.to_path_buf(),
            owner: uid,
            euid,
        });
    }
    if mode & 0o077 != 0 {
        return Err(IdentityError::InsecurePermissions {
            path: path.to_path_buf(),
            mode: mode & 0o777,
        });
    }
    Ok(())
}

/// The owner and mode rules for the directory that holds an identity file.
///
/// A directory its group or others may write to is refused even with the sticky bit (as
/// in `/tmp`), as OpenSSH does: there, anyone may take the file's name first, with a file
/// of their own or a hard link to another file, and a shared directory is no place for a
/// secret key anyway.
#[cfg(unix)]
pub(super) fn check_dir(dir: &Path, uid: u32, mode: u32, euid: u32) -> Result<(), IdentityError> {
    if !trusted_owner(uid, euid) {
        return Err(IdentityError::WrongOwner {
            path: dir.to_path_buf(),
            owner: uid,
            euid,
        });
    }
    if mode & 0o022 != 0 {
        return Err(IdentityError::InsecureDirectory {
            path: dir.to_path_buf(),
            mode: mode & 0o7777,
        });
    }
    Ok(())
}

/// Opens the identity file at `path` for reading, after the checks above.
///
/// A missing file is an [`IdentityError::Io`] of kind `NotFound` with `path`, and only
/// after its directory passed: `load_or_create` relies on that before it creates a file.
#[cfg(unix)]
pub(super) fn open(path: &Path) -> Result<fs::File, IdentityError> {
    use rustix::fs::{Mode, OFlags};
    use rustix::io::Errno;
    use std::os::unix::fs::MetadataExt;

    let euid = rustix::process::geteuid().as_raw();

    let dir = parent_dir(path);
    let dir_meta = fs::metadata(dir).map_err(io_err(path))?;
    check_dir(dir, dir_meta.uid(), dir_meta.mode(), euid)?;

    // Look before opening, so that a FIFO or device is never opened at all and a
    // directory or link gets a clear error.
    let link_meta = fs::symlink_metadata(path).map_err(io_err(path))?;
    check_kind(path, link_meta.file_type())?;

    // If the path was swapped since: O_NOFOLLOW refuses a link, O_NONBLOCK keeps a FIFO
    // from blocking, O_NOCTTY keeps a terminal from becoming ours, and the checks below
    // run on what was actually opened.
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
    let fd = rustix::fs::open(path, flags, Mode::empty()).map_err(|e| {
        if e == Errno::LOOP {
            IdentityError::NotAFile {
                path: path.to_path_buf(),
                kind: FileKind::Symlink,
            }
        } else {
            io_err(path)(std::io::Error::from(e))
        }
    })?;
    let file = fs::File::from(fd);
    let meta = file.metadata().map_err(io_err(path))?;
    check_kind(path, meta.file_type())?;
    check_file(path, meta.uid(), meta.mode(), euid)?;
    Ok(file)
}

/// Opens the identity file at `path` for reading, if it is a regular file.
///
/// Without Unix owners and modes, only the file type is checked: before opening (a link
/// or directory is refused) and on the opened file. A link swapped in between the two is
/// followed.
#[cfg(not(unix))]
pub(super) fn open(path: &Path) -> Result<fs::File, IdentityError> {
    let link_meta = fs::symlink_metadata(path).map_err(io_err(path))?;
    check_kind(path, link_meta.file_type())?;
    let file = fs::File::open(path).map_err(io_err(path))?;
    let meta = file.metadata().map_err(io_err(path))?;
    check_kind(path, meta.file_type())?;
    Ok(file)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    const ME: u32 = 1000;
    const OTHER: u32 = 1001;

    fn file(uid: u32, mode: u32, euid: u32) -> Result<(), IdentityError> {
        check_file(Path::new("node.key"), uid, mode, euid)
    }

    fn dir(uid: u32, mode: u32, euid: u32) -> Result<(), IdentityError> {
        check_dir(Path::new("keys"), uid, mode, euid)
    }

    #[test]
    fn a_private_file_owned_by_the_user_or_root_is_accepted() {
        for (uid, mode) in [(ME, 0o600), (ME, 0o400), (0, 0o600), (ME, 0o100600)] {
            assert!(file(uid, mode, ME).is_ok(), "uid {uid} mode {mode:o}");
        }
        assert!(file(0, 0o600, 0).is_ok());
    }

    #[test]
    fn a_file_owned_by_another_user_is_refused_even_if_private() {
        for mode in [0o600, 0o400] {
            match file(OTHER, mode, ME) {
                Err(IdentityError::WrongOwner { owner, euid, .. }) => {
                    assert_eq!((owner, euid), (OTHER, ME));
                }
                other => panic!("expected WrongOwner, got {other:?}"),
            }
        }
        // Root may not use a key some user could have written.
        assert!(matches!(
            file(ME, 0o600, 0),
            Err(IdentityError::WrongOwner { .. })
        ));
    }

    #[test]
    fn any_group_or_other_bit_on_the_file_is_refused() {
        for bits in [0o400, 0o200, 0o100, 0o040, 0o020, 0o010, 0o004, 0o002, 0o001] {
            let result = file(ME, 0o600 | bits, ME);
            if bits & 0o077 == 0 {
                assert!(result.is_ok(), "mode {:o}", 0o600 | bits);
            } else {
                assert!(
                    matches!(result, Err(IdentityError::InsecurePermissions { mode, .. }) if mode == 0o600 | bits),
                    "mode {:o}",
                    0o600 | bits
                );
            }
        }
    }

    #[test]
    fn a_directory_owned_by_the_user_or_root_and_not_writable_by_others_is_accepted() {
        for (uid, mode) in [(ME, 0o700), (ME, 0o755), (0, 0o755), (ME, 0o40711), (ME, 0o2750)] {
            assert!(dir(uid, mode, ME).is_ok(), "uid {uid} mode {mode:o}");
        }
    }

    #[test]
    fn a_directory_others_may_write_to_is_refused_even_with_the_sticky_bit() {
        for mode in [0o777, 0o770, 0o720, 0o702, 0o1777, 0o1770, 0o41777] {
            match dir(ME, mode, ME) {
                Err(IdentityError::InsecureDirectory { path, mode: m }) => {
                    assert_eq!(path, Path::new("keys"));
                    assert_eq!(m, mode & 0o7777);
                }
                other => panic!("mode {mode:o}: expected InsecureDirectory, got {other:?}"),
            }
        }
    }

    #[test]
    fn a_directory_owned_by_another_user_is_refused() {
        assert!(matches!(
            dir(OTHER, 0o700, ME),
            Err(IdentityError::WrongOwner {
                owner: OTHER,
                euid: ME,
                ..
            })
        ));
    }
}
