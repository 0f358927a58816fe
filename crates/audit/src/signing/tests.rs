#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::*;

/// The key of the golang.org/x/mod/sumdb/note documentation and tests:
/// `PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz`.
pub(crate) fn peter_neumann() -> SigningKey {
    let bytes = STANDARD
        .decode("AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz")
        .unwrap();
    assert_eq!(bytes[0], 0x01);
    SigningKey::from_seed(&bytes[1..].try_into().unwrap())
}

const PETER_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";

#[test]
fn verifier_key_matches_the_go_note_package() {
    let key = peter_neumann().verifying_key("PeterNeumann").unwrap();
    assert_eq!(key.to_text(), PETER_VKEY);
    assert_eq!(key.key_hash(), 0xc74f20a3);
    assert_eq!(key.name(), "PeterNeumann");
    let parsed = VerifyingKey::from_text(PETER_VKEY).unwrap();
    assert_eq!(parsed, key);
    assert_eq!(parsed.to_string(), PETER_VKEY);
}

#[test]
fn signatures_match_the_go_note_package() {
    // Ed25519 is deterministic, so the documented note's signature is reproduced exactly.
    let text = "If you think cryptography is the answer to your problem,\n\
                then you don't know what your problem is.\n";
    let key = peter_neumann();
    let mut blob = 0xc74f20a3u32.to_be_bytes().to_vec();
    blob.extend_from_slice(&key.sign_bytes(text.as_bytes()));
    assert_eq!(
        STANDARD.encode(blob),
        "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM="
    );
    let vkey = key.verifying_key("PeterNeumann").unwrap();
    let sig = key.sign_bytes(text.as_bytes());
    assert!(vkey.verifies(text.as_bytes(), &sig));
    assert!(!vkey.verifies(b"something else\n", &sig));
}

#[test]
fn bad_verifier_keys_are_rejected() {
    let cases = [
        ("", KeyError::Malformed),
        ("PeterNeumann", KeyError::Malformed),
        ("PeterNeumann+c74f20a3", KeyError::Malformed),
        (
            "+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
            KeyError::InvalidName(String::new()),
        ),
        (
            "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
            KeyError::InvalidName("Peter Neumann".into()),
        ),
        (
            "PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
            KeyError::BadHashText("C74F20A3".into()),
        ),
        (
            "PeterNeumann+c74f20a+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
            KeyError::BadHashText("c74f20a".into()),
        ),
        (
            "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
            KeyError::HashMismatch {
                given: 0xc74f20a4,
                expected: 0xc74f20a3,
            },
        ),
        (
            "Peter+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
            KeyError::HashMismatch {
                given: 0xc74f20a3,
                expected: key_hash("Peter", &peter_neumann().public_bytes()),
            },
        ),
        (
            "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T",
            KeyError::BadBase64,
        ),
        (
            "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T!",
            KeyError::BadBase64,
        ),
    ];
    for (text, want) in cases {
        assert_eq!(VerifyingKey::from_text(text), Err(want), "{text:?}");
    }
    // Too short, too long.
    for len in [0usize, 32, 34] {
        let text = format!("PeterNeumann+c74f20a3+{}", STANDARD.encode(vec![1u8; len]));
        assert_eq!(
            VerifyingKey::from_text(&text),
            Err(KeyError::WrongLength(len))
        );
    }
    // Another algorithm byte.
    let mut bytes = STANDARD
        .decode("ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")
        .unwrap();
    bytes[0] = 0x02;
    let text = format!("PeterNeumann+c74f20a3+{}", STANDARD.encode(&bytes));
    assert_eq!(
        VerifyingKey::from_text(&text),
        Err(KeyError::UnsupportedAlgorithm(2))
    );
}

#[test]
fn key_names_are_checked() {
    let key = peter_neumann();
    for bad in ["", "a b", "a+b", "tab\there", "new\nline", "nbsp\u{a0}"] {
        assert!(
            matches!(key.verifying_key(bad), Err(KeyError::InvalidName(_))),
            "{bad:?}"
        );
    }
    for good in ["logbook", "logbook.example/audit", "é"] {
        assert_eq!(key.verifying_key(good).unwrap().name(), good);
    }
}

#[test]
fn debug_never_shows_the_seed() {
    let key = peter_neumann();
    let seed = STANDARD.encode(key.inner.to_bytes());
    let debug = format!("{key:?}");
    assert!(!debug.contains(&seed), "{debug}");
    assert!(!debug.contains("AYEKFALVFGyNhPJEMzD1QIDr"), "{debug}");
    let hex: String = key
        .inner
        .to_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert!(!debug.to_lowercase().contains(&hex[..8]), "{debug}");
    assert!(
        debug.contains(&STANDARD.encode(key.public_bytes())),
        "{debug}"
    );
    let vdebug = format!("{:?}", key.verifying_key("PeterNeumann").unwrap());
    assert!(vdebug.contains(PETER_VKEY), "{vdebug}");
}

#[test]
fn generated_keys_differ_and_sign() {
    let a = SigningKey::generate().unwrap();
    let b = SigningKey::generate().unwrap();
    assert_ne!(a.public_bytes(), b.public_bytes());
    let sig = a.sign_bytes(b"m");
    assert!(a.verifying_key("k").unwrap().verifies(b"m", &sig));
    assert!(!b.verifying_key("k").unwrap().verifies(b"m", &sig));
}

#[test]
fn load_or_create_creates_once_then_loads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("checkpoint.key");
    let created = SigningKey::load_or_create(&path).unwrap();
    let meta = fs::metadata(&path).unwrap();
    assert_eq!(meta.len(), 32);
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let loaded = SigningKey::load_or_create(&path).unwrap();
    assert_eq!(created.public_bytes(), loaded.public_bytes());
    assert_eq!(fs::read(&path).unwrap(), created.inner.to_bytes());
    // No temporary file is left behind.
    let names: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("checkpoint.key")]);
}

#[test]
fn load_or_create_refuses_a_file_of_the_wrong_length() {
    let dir = tempfile::tempdir().unwrap();
    for len in [0usize, 31, 33, 64] {
        let path = dir.path().join(format!("key{len}"));
        fs::write(&path, vec![7u8; len]).unwrap();
        match SigningKey::load_or_create(&path) {
            Err(AuditError::KeyFileLength { len: got, .. }) => assert_eq!(got, len as u64),
            other => panic!("{len}: {other:?}"),
        }
        // The file is left as it was.
        assert_eq!(fs::read(&path).unwrap(), vec![7u8; len]);
    }
}

#[test]
fn load_or_create_reports_a_missing_directory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing").join("checkpoint.key");
    assert!(matches!(
        SigningKey::load_or_create(&path),
        Err(AuditError::Io { .. })
    ));
}
