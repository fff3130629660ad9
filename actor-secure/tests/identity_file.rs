//! Persisting identities: permissions, corruption, truncation, races.

#![cfg(unix)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use actor_secure::{Identity, IdentityError, IdentityFileError};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("troupe-idfile-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
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
fn a_file_readable_by_others_is_refused() {
    let path = scratch("perm").join("node.key");
    Identity::load_or_create(&path).unwrap();
    for mode in [0o644, 0o640, 0o604, 0o660] {
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        let err = Identity::load_or_create(&path).unwrap_err();
        assert!(matches!(err, IdentityError::InsecurePermissions { mode: m, .. } if m == mode));
        assert!(err.to_string().contains("chmod 600"));
    }
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
