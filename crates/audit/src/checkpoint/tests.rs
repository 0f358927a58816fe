#![allow(clippy::unwrap_used)]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::*;
use crate::signing::SigningKey;

fn key(n: u8) -> SigningKey {
    SigningKey::from_seed(&[n; 32])
}

fn sample() -> Checkpoint {
    Checkpoint {
        tenant: "acme".into(),
        size: 1234,
        root: crate::leaf_hash(b"root"),
        time: 1_700_000_000,
    }
}

#[test]
fn round_trip() {
    let signer = key(1);
    let vkey = signer.verifying_key("logbook").unwrap();
    for cp in [
        sample(),
        Checkpoint {
            tenant: "t-01HZX/eu".into(),
            size: 0,
            root: crate::empty_root(),
            time: 0,
        },
        Checkpoint {
            tenant: "ü".into(),
            size: u64::MAX,
            root: [0xff; 32],
            time: -1,
        },
        Checkpoint {
            tenant: "x".into(),
            size: 1,
            root: [0; 32],
            time: i64::MIN,
        },
    ] {
        let note = cp.sign(&signer, "logbook").unwrap();
        assert_eq!(Checkpoint::verify(&note, &vkey).unwrap(), cp);
        assert_eq!(claimed_size(&note), Some(cp.size));
    }
}

#[test]
fn the_note_has_the_documented_layout() {
    let signer = key(1);
    let cp = sample();
    let note = cp.sign(&signer, "logbook").unwrap();
    let root = STANDARD.encode(cp.root);
    let body = format!("logbook/acme\n1234\n{root}\ntime 1700000000\n");
    assert_eq!(cp.body().unwrap(), body);
    let (text, sig_line) = note.split_once("\n\n").unwrap();
    assert_eq!(format!("{text}\n"), body);
    let sig_line = sig_line.strip_suffix('\n').unwrap();
    let blob = sig_line.strip_prefix("\u{2014} logbook ").unwrap();
    let blob = STANDARD.decode(blob).unwrap();
    assert_eq!(blob.len(), 68);
    let vkey = signer.verifying_key("logbook").unwrap();
    assert_eq!(blob[..4], vkey.key_hash().to_be_bytes());
    assert!(vkey.verifies(body.as_bytes(), &blob[4..].try_into().unwrap()));
    // The same body signed by the Go note package's rules: the verifier key's text works.
    let parsed = VerifyingKey::from_text(&vkey.to_text()).unwrap();
    assert_eq!(Checkpoint::verify(&note, &parsed).unwrap(), cp);
}

#[test]
fn every_single_byte_flip_fails() {
    let signer = key(2);
    let vkey = signer.verifying_key("logbook").unwrap();
    let note = sample().sign(&signer, "logbook").unwrap();
    let bytes = note.as_bytes();
    let (mut checked, mut not_utf8) = (0, 0);
    for i in 0..bytes.len() {
        for mask in [0x01u8, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0xff] {
            let mut flipped = bytes.to_vec();
            flipped[i] ^= mask;
            match String::from_utf8(flipped) {
                Ok(text) => {
                    assert!(
                        Checkpoint::verify(&text, &vkey).is_err(),
                        "flip {mask:#04x} at byte {i} verified: {text:?}"
                    );
                    checked += 1;
                }
                // Not text: cannot even be presented as a note.
                Err(_) => not_utf8 += 1,
            }
        }
    }
    assert!(
        checked > 8 * bytes.len() / 2,
        "{checked} checked, {not_utf8} not UTF-8"
    );
}

#[test]
fn wrong_key_fails() {
    let note = sample().sign(&key(3), "logbook").unwrap();
    // Same name, different key: its key hash differs, so no signature is found.
    let other = key(4).verifying_key("logbook").unwrap();
    assert_eq!(
        Checkpoint::verify(&note, &other),
        Err(CheckpointError::NoSignatureForKey {
            name: "logbook".into(),
            hash: other.key_hash()
        })
    );
}

#[test]
fn a_forged_signature_with_the_right_key_hash_fails() {
    let signer = key(3);
    let vkey = signer.verifying_key("logbook").unwrap();
    let forger = key(4);
    let body = sample().body().unwrap();
    let mut blob = vkey.key_hash().to_be_bytes().to_vec();
    blob.extend_from_slice(&forger.sign_bytes(body.as_bytes()));
    let note = format!("{body}\n\u{2014} logbook {}\n", STANDARD.encode(&blob));
    assert!(matches!(
        Checkpoint::verify(&note, &vkey),
        Err(CheckpointError::InvalidSignature { .. })
    ));
    // A signature of the wrong length under the right key hash fails too.
    let note = format!(
        "{body}\n\u{2014} logbook {}\n",
        STANDARD.encode(&blob[..60])
    );
    assert!(matches!(
        Checkpoint::verify(&note, &vkey),
        Err(CheckpointError::InvalidSignature { .. })
    ));
}

#[test]
fn truncated_notes_fail() {
    let signer = key(5);
    let vkey = signer.verifying_key("logbook").unwrap();
    let note = sample().sign(&signer, "logbook").unwrap();
    for end in 0..note.len() {
        if let Some(prefix) = note.get(..end) {
            assert!(
                Checkpoint::verify(prefix, &vkey).is_err(),
                "prefix of {end} bytes verified"
            );
        }
    }
    // Dropping the final newline is reported as such.
    assert_eq!(
        Checkpoint::verify(note.strip_suffix('\n').unwrap(), &vkey),
        Err(CheckpointError::MissingFinalNewline)
    );
}

#[test]
fn other_key_names_are_ignored() {
    let signer = key(6);
    let vkey = signer.verifying_key("logbook").unwrap();
    let cp = sample();
    // Signed only under another name: the key hash covers the name, so nothing matches.
    let note = cp.sign(&signer, "witness").unwrap();
    assert!(matches!(
        Checkpoint::verify(&note, &vkey),
        Err(CheckpointError::NoSignatureForKey { .. })
    ));
    // A cosignature by another key, before or after ours, is ignored.
    let ours = cp.sign(&signer, "logbook").unwrap();
    let theirs = cp.sign(&key(7), "witness.example").unwrap();
    let their_line = theirs.split_once("\n\n").unwrap().1;
    let our_line = ours.split_once("\n\n").unwrap().1;
    let body = cp.body().unwrap();
    for note in [
        format!("{body}\n{our_line}{their_line}"),
        format!("{body}\n{their_line}{our_line}"),
    ] {
        assert_eq!(Checkpoint::verify(&note, &vkey).unwrap(), cp);
    }
    // But even a foreign signature line must be well-formed.
    let note = format!("{body}\n{our_line}\u{2014} witness not-base64!\n");
    assert!(matches!(
        Checkpoint::verify(&note, &vkey),
        Err(CheckpointError::BadSignatureLine(_))
    ));
}

/// Re-signs an arbitrary body so only the parse can reject it.
fn signed(body: &str, signer: &SigningKey) -> String {
    let vkey = signer.verifying_key("logbook").unwrap();
    let mut blob = vkey.key_hash().to_be_bytes().to_vec();
    blob.extend_from_slice(&signer.sign_bytes(body.as_bytes()));
    format!("{body}\n\u{2014} logbook {}\n", STANDARD.encode(blob))
}

#[test]
fn strict_parse_rejects_every_deviation() {
    let signer = key(8);
    let vkey = signer.verifying_key("logbook").unwrap();
    let root = STANDARD.encode([7u8; 32]);
    let good = format!("logbook/acme\n5\n{root}\ntime 17\n");
    assert!(Checkpoint::verify(&signed(&good, &signer), &vkey).is_ok());
    let short_root = STANDARD.encode([7u8; 31]);
    let long_root = STANDARD.encode([7u8; 33]);
    let unpadded = root.trim_end_matches('=');
    let cases: Vec<(String, CheckpointError)> = vec![
        (
            format!("logbook/acme\n5\n{root}\n"),
            CheckpointError::WrongLineCount(3),
        ),
        (
            format!("logbook/acme\n5\n{root}\ntime 17\nextra 1\n"),
            CheckpointError::WrongLineCount(5),
        ),
        (
            format!("logbook/acme\n5\n{root}\ntime 17\r\n"),
            CheckpointError::BadTime("time 17\r".into()),
        ),
        (
            format!("other/acme\n5\n{root}\ntime 17\n"),
            CheckpointError::BadOrigin("other/acme".into()),
        ),
        (
            format!("logbook/\n5\n{root}\ntime 17\n"),
            CheckpointError::BadOrigin("logbook/".into()),
        ),
        (
            format!("logbook/a b\n5\n{root}\ntime 17\n"),
            CheckpointError::BadOrigin("logbook/a b".into()),
        ),
        (
            format!("logbook/a+b\n5\n{root}\ntime 17\n"),
            CheckpointError::BadOrigin("logbook/a+b".into()),
        ),
        (
            format!("logbook/acme\n05\n{root}\ntime 17\n"),
            CheckpointError::BadSize("05".into()),
        ),
        (
            format!("logbook/acme\n+5\n{root}\ntime 17\n"),
            CheckpointError::BadSize("+5".into()),
        ),
        (
            format!("logbook/acme\n-5\n{root}\ntime 17\n"),
            CheckpointError::BadSize("-5".into()),
        ),
        (
            format!("logbook/acme\n 5\n{root}\ntime 17\n"),
            CheckpointError::BadSize(" 5".into()),
        ),
        (
            format!("logbook/acme\n18446744073709551616\n{root}\ntime 17\n"),
            CheckpointError::BadSize("18446744073709551616".into()),
        ),
        (
            format!("logbook/acme\n\n{root}\ntime 17\n"),
            CheckpointError::WrongLineCount(1),
        ),
        (
            format!("logbook/acme\n5\n{short_root}\ntime 17\n"),
            CheckpointError::BadRoot(short_root.clone()),
        ),
        (
            format!("logbook/acme\n5\n{long_root}\ntime 17\n"),
            CheckpointError::BadRoot(long_root.clone()),
        ),
        (
            format!("logbook/acme\n5\n{unpadded}\ntime 17\n"),
            CheckpointError::BadRoot(unpadded.into()),
        ),
        (
            format!("logbook/acme\n5\n{root}\ntime 017\n"),
            CheckpointError::BadTime("time 017".into()),
        ),
        (
            format!("logbook/acme\n5\n{root}\ntime -0\n"),
            CheckpointError::BadTime("time -0".into()),
        ),
        (
            format!("logbook/acme\n5\n{root}\ntime  17\n"),
            CheckpointError::BadTime("time  17".into()),
        ),
        (
            format!("logbook/acme\n5\n{root}\nTime 17\n"),
            CheckpointError::BadTime("Time 17".into()),
        ),
        (
            format!("logbook/acme\n5\n{root}\ntime\n"),
            CheckpointError::BadTime("time".into()),
        ),
    ];
    for (body, want) in cases {
        assert_eq!(
            Checkpoint::verify(&signed(&body, &signer), &vkey),
            Err(want),
            "{body:?}"
        );
    }
    // Negative times are canonical decimals too.
    let negative = format!("logbook/acme\n5\n{root}\ntime -17\n");
    assert_eq!(
        Checkpoint::verify(&signed(&negative, &signer), &vkey)
            .unwrap()
            .time,
        -17
    );
}

#[test]
fn malformed_signature_sections_fail() {
    let signer = key(9);
    let vkey = signer.verifying_key("logbook").unwrap();
    let note = sample().sign(&signer, "logbook").unwrap();
    let (body, line) = note.split_once("\n\n").unwrap();
    let body = format!("{body}\n");
    let blob = line.strip_prefix("\u{2014} logbook ").unwrap();
    let cases = [
        (body.clone(), CheckpointError::NoSignatureSection),
        (format!("{body}\n"), CheckpointError::NoSignatureSection),
        (format!("{body}\n\n"), CheckpointError::NoSignatures),
        (
            format!("{body}\n{line}\n"),
            CheckpointError::BadSignatureLine(String::new()),
        ),
        (
            format!("{body}\n- logbook {blob}"),
            CheckpointError::BadSignatureLine(format!("- logbook {}", blob.trim_end())),
        ),
        (
            format!("{body}\n\u{2014}logbook {blob}"),
            CheckpointError::BadSignatureLine(format!("\u{2014}logbook {}", blob.trim_end())),
        ),
        (
            format!("{body}\n\u{2014} logbook  {blob}"),
            CheckpointError::BadSignatureLine(format!("\u{2014} logbook  {}", blob.trim_end())),
        ),
        (
            format!("{body}\n\u{2014} logbook AAAA\n"),
            CheckpointError::BadSignatureLine("\u{2014} logbook AAAA".into()),
        ),
    ];
    for (text, want) in cases {
        assert_eq!(Checkpoint::verify(&text, &vkey), Err(want), "{text:?}");
    }
}

#[test]
fn invalid_tenants_and_key_names_are_not_signed() {
    let signer = key(10);
    for tenant in ["", "a\nb", "a b", "a+b", "tab\t", "nul\u{0}"] {
        let cp = Checkpoint {
            tenant: tenant.into(),
            ..sample()
        };
        assert_eq!(
            cp.sign(&signer, "logbook"),
            Err(CheckpointError::InvalidTenant(tenant.into()))
        );
    }
    // A tenant that tries to inject lines cannot produce a note for another tenant.
    let injected = Checkpoint {
        tenant: format!("evil\n999\n{}\ntime 1", STANDARD.encode([0u8; 32])),
        ..sample()
    };
    assert!(injected.sign(&signer, "logbook").is_err());
    for name in ["", "a b", "a+b"] {
        assert!(matches!(
            sample().sign(&signer, name),
            Err(CheckpointError::Key(KeyError::InvalidName(_)))
        ));
    }
}

#[test]
fn claimed_size_reads_only_the_second_line() {
    assert_eq!(claimed_size("logbook/a\n42\ngarbage"), Some(42));
    assert_eq!(claimed_size("logbook/a\n042\n"), None);
    assert_eq!(claimed_size("nothing"), None);
}
