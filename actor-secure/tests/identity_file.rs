//! Persisting identities: permissions, ownership, file types, corruption, truncation,
//! races.

#![cfg(unix)]

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use actor_secure::{FileKind, Identity, IdentityError, IdentityFileError};

/// A fresh private directory (mode 0700, whatever the umask).
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("troupe-idfile-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
    dir
}

/// The names in `dir`, sorted.
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Runs `f` on another thread; fails the test instead of hanging if it blocks.
fn within_5s<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(5))
        .expect("the call blocked for 5 s")
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

#[test]
fn a_new_identity_file_is_private_and_reloads_to_the_same_identity() {
    let path = scratch("new").join("node.key");
    let id = Identity::load_or_create(&path).unwrap();
    let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(Identity::load(&path).unwrap().identifier(), id.identifier());
    assert_eq!(
        Identity::load_or_create(&path).unwrap().identifier(),
        id.identifier()
    );
}

#[test]
fn a_file_its_group_or_others_may_use_is_refused_with_a_message_saying_who_may_do_what() {
    let path = scratch("perm").join("node.key");
    Identity::load_or_create(&path).unwrap();
    for (mode, says) in [
        (0o644, "may be read by its group and others (mode 644)"),
        (0o640, "may be read by its group (mode 640)"),
        (0o604, "may be read by others (mode 604)"),
        (0o660, "may be read and written by its group (mode 660)"),
        (0o602, "may be written by others (mode 602)"),
        (0o610, "may be executed by its group (mode 610)"),
    ] {
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        let err = Identity::load_or_create(&path).unwrap_err();
        assert!(matches!(err, IdentityError::InsecurePermissions { mode: m, .. } if m == mode));
        let text = err.to_string();
        assert!(text.contains(says), "{text}");
        assert!(
            text.ends_with(&format!("run chmod 600 {}", path.display())),
            "{text}"
        );
    }
}

#[test]
fn a_symlink_is_refused_even_to_a_good_identity_file() {
    let dir = scratch("symlink");
    let target = dir.join("real.key");
    Identity::load_or_create(&target).unwrap();
    let link = dir.join("node.key");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    for result in [Identity::load(&link), Identity::load_or_create(&link)] {
        match result {
            Err(e @ IdentityError::NotAFile { .. }) => {
                assert!(
                    matches!(&e, IdentityError::NotAFile { path, kind: FileKind::Symlink } if *path == link)
                );
                assert!(e.to_string().contains("is a symbolic link, not an identity file"));
            }
            other => panic!("expected NotAFile, got {other:?}"),
        }
    }
    assert!(fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
}

#[test]
fn a_dangling_symlink_is_refused_and_nothing_is_created_at_its_target() {
    let dir = scratch("dangling");
    let target = dir.join("elsewhere.key");
    let link = dir.join("node.key");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    assert!(matches!(
        Identity::load_or_create(&link),
        Err(IdentityError::NotAFile {
            kind: FileKind::Symlink,
            ..
        })
    ));
    assert!(!target.exists());
    assert_eq!(entries(&dir), ["node.key"]);
}

#[test]
fn a_fifo_is_refused_without_blocking() {
    let dir = scratch("fifo");
    let path = dir.join("node.key");
    match std::process::Command::new("mkfifo").arg(&path).status() {
        Ok(status) if status.success() => {}
        other => {
            eprintln!("skipped: mkfifo unavailable ({other:?})");
            return;
        }
    }
    let p = path.clone();
    let loaded = within_5s(move || Identity::load(&p));
    assert!(matches!(
        loaded,
        Err(IdentityError::NotAFile {
            kind: FileKind::Fifo,
            ..
        })
    ));
    let p = path.clone();
    let created = within_5s(move || Identity::load_or_create(&p));
    assert!(matches!(
        created,
        Err(IdentityError::NotAFile {
            kind: FileKind::Fifo,
            ..
        })
    ));
}

#[test]
fn a_directory_is_refused_with_a_clear_error() {
    let dir = scratch("isdir");
    let path = dir.join("node.key");
    fs::create_dir(&path).unwrap();
    for result in [Identity::load(&path), Identity::load_or_create(&path)] {
        let err = result.unwrap_err();
        assert!(matches!(
            err,
            IdentityError::NotAFile {
                kind: FileKind::Directory,
                ..
            }
        ));
        assert_eq!(
            err.to_string(),
            format!("{} is a directory, not an identity file", path.display())
        );
    }
}

#[test]
fn a_directory_others_may_write_to_is_refused_and_nothing_is_created_in_it() {
    let dir = scratch("shareddir");
    let path = dir.join("node.key");
    for mode in [0o777, 0o770, 0o1777, 0o702] {
        fs::set_permissions(&dir, fs::Permissions::from_mode(mode)).unwrap();
        for result in [Identity::load_or_create(&path), Identity::load(&path)] {
            match result {
                Err(e @ IdentityError::InsecureDirectory { .. }) => {
                    assert!(
                        matches!(&e, IdentityError::InsecureDirectory { path, mode: m } if *path == dir && *m == mode)
                    );
                    assert!(e.to_string().contains(&format!("directory {}", dir.display())));
                }
                other => panic!("mode {mode:o}: expected InsecureDirectory, got {other:?}"),
            }
        }
        assert!(entries(&dir).is_empty(), "mode {mode:o}: nothing created");
    }
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
    let id = Identity::load_or_create(&path).unwrap();
    // An existing file in a directory that became shared is refused too.
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
    assert!(matches!(
        Identity::load(&path),
        Err(IdentityError::InsecureDirectory { .. })
    ));
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(Identity::load(&path).unwrap().identifier(), id.identifier());
}

#[test]
fn a_file_owned_by_the_current_user_is_accepted() {
    let path = scratch("mine").join("node.key");
    let id = Identity::load_or_create(&path).unwrap();
    assert_eq!(Identity::load(&path).unwrap().identifier(), id.identifier());
}

#[test]
fn a_private_file_owned_by_another_user_is_refused() {
    if !is_root() {
        eprintln!("skipped: only root can give a file to another user");
        return;
    }
    let path = scratch("theirs").join("node.key");
    Identity::load_or_create(&path).unwrap();
    std::os::unix::fs::chown(&path, Some(4242), None).unwrap();
    let err = Identity::load(&path).unwrap_err();
    assert!(
        matches!(&err, IdentityError::WrongOwner { path: p, owner: 4242, euid: 0 } if *p == path),
        "{err:?}"
    );
    assert!(err.to_string().contains("belongs to uid 4242"));
    assert!(matches!(
        Identity::load_or_create(&path),
        Err(IdentityError::WrongOwner { .. })
    ));
}

#[test]
fn a_directory_owned_by_another_user_is_refused() {
    if !is_root() {
        eprintln!("skipped: only root can give a directory to another user");
        return;
    }
    let dir = scratch("theirdir");
    let path = dir.join("node.key");
    Identity::load_or_create(&path).unwrap();
    std::os::unix::fs::chown(&dir, Some(4242), None).unwrap();
    assert!(matches!(
        Identity::load(&path),
        Err(IdentityError::WrongOwner { path: p, owner: 4242, .. }) if p == dir
    ));
}

#[test]
fn load_never_creates_a_missing_file() {
    let dir = scratch("missing");
    let path = dir.join("node.key");
    match Identity::load(&path) {
        Err(IdentityError::Io { source, .. }) => assert_eq!(source.kind(), io::ErrorKind::NotFound),
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert!(entries(&dir).is_empty());
}

#[test]
fn a_truncated_or_corrupt_file_is_a_clear_error_and_never_replaced() {
    let dir = scratch("corrupt");
    let path = dir.join("node.key");
    let good = Identity::load_or_create(&path).unwrap().to_file_bytes().to_vec();
    let cases: Vec<(Vec<u8>, IdentityFileError)> = vec![
        (good[..40].to_vec(), IdentityFileError::Truncated { len: 40 }),
        (Vec::new(), IdentityFileError::Truncated { len: 0 }),
        (
            [&good[..], &[0]].concat(),
            IdentityFileError::TrailingBytes { len: 75 },
        ),
        (
            b"-----BEGIN PRIVATE KEY-----".to_vec(),
            IdentityFileError::BadMagic,
        ),
        (
            {
                let mut b = good.clone();
                b[8] = 9;
                b
            },
            IdentityFileError::UnsupportedVersion(9),
        ),
        (
            {
                let mut b = good.clone();
                b[9] = 2;
                b
            },
            IdentityFileError::UnsupportedKeyType(2),
        ),
        (
            {
                let mut b = good.clone();
                b[20] ^= 1;
                b
            },
            IdentityFileError::KeyMismatch,
        ),
        (
            {
                let mut b = good.clone();
                b[73] ^= 1;
                b
            },
            IdentityFileError::KeyMismatch,
        ),
    ];
    for (bytes, want) in cases {
        fs::write(&path, &bytes).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        match Identity::load_or_create(&path) {
            Err(IdentityError::Corrupt { source, .. }) => assert_eq!(source, want),
            other => panic!("expected {want:?}, got {other:?}"),
        }
        assert_eq!(
            fs::read(&path).unwrap(),
            bytes,
            "a corrupt file is left for a human"
        );
    }
}

#[test]
fn racing_creators_end_up_with_one_identity() {
    let path = scratch("race").join("node.key");
    let ids: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| s.spawn(|| Identity::load_or_create(&path).unwrap().identifier()))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(ids.windows(2).all(|w| w[0] == w[1]));
}
