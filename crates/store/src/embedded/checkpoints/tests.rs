//! The checkpoint file: lookups by size over many lines, and what opening
//! repairs (a torn last line) and what it refuses (damage before it).
#![allow(clippy::unwrap_used)]

use audit::{Checkpoint, SigningKey, VerifyingKey};

use super::*;

fn key() -> (SigningKey, VerifyingKey) {
    let signing = SigningKey::from_seed(&[7; 32]);
    let verifying = signing.verifying_key("logbook").unwrap();
    (signing, verifying)
}

fn signed(key: &SigningKey, size: u64) -> Signed {
    let checkpoint = Checkpoint {
        tenant: "acme".to_owned(),
        size,
        root: [size as u8; 32],
        time: 1_700_000_000,
    };
    Signed {
        size,
        note: checkpoint.sign(key, "logbook").unwrap(),
    }
}

/// A log holding checkpoints of sizes 3, 6, 9, … up to `3 * count`.
fn log_of(dir: &Path, key: &SigningKey, count: u64) -> CheckpointLog {
    let mut log = CheckpointLog::open(dir).unwrap();
    for i in 1..=count {
        log.append(signed(key, 3 * i)).unwrap();
    }
    log
}

fn size_of(note: &str, key: &VerifyingKey) -> u64 {
    Checkpoint::verify(note, key).unwrap().size
}

#[test]
fn every_checkpoint_is_found_by_its_size_and_no_other() {
    let dir = tempfile::tempdir().unwrap();
    let (signing, verifying) = key();
    let log = log_of(dir.path(), &signing, 300);
    for view in [log.view(), CheckpointLog::open(dir.path()).unwrap().view()] {
        for size in 0..=905 {
            let found = view.of_size(size, &verifying).unwrap();
            if size > 0 && size % 3 == 0 && size <= 900 {
                assert_eq!(size_of(&found.unwrap(), &verifying), size);
            } else {
                assert!(found.is_none(), "size {size}");
            }
        }
        assert_eq!(size_of(&view.latest().unwrap(), &verifying), 900);
    }
    // A view taken earlier does not see later lines.
    let mut log = log;
    let view = log.view();
    log.append(signed(&signing, 1000)).unwrap();
    assert!(view.of_size(1000, &verifying).unwrap().is_none());
    assert!(log.view().of_size(1000, &verifying).unwrap().is_some());
}

#[test]
fn a_torn_last_line_is_cut_and_the_next_append_starts_a_fresh_line() {
    let (signing, verifying) = key();
    let whole_line = format!(
        "{}\n",
        serde_json::json!({"note": signed(&signing, 12).note})
    );
    let torn = [
        // Unterminated: the write stopped part way.
        whole_line[..40].to_owned(),
        whole_line.trim_end().to_owned(),
        // Terminated, but no checkpoint (a sector of zeros, say).
        "\0\0\0\0\n".to_owned(),
    ];
    for tail in torn {
        let dir = tempfile::tempdir().unwrap();
        drop(log_of(dir.path(), &signing, 3));
        let path = dir.path().join(CHECKPOINTS_FILE);
        let before = std::fs::read(&path).unwrap();
        let mut bytes = before.clone();
        bytes.extend_from_slice(tail.as_bytes());
        std::fs::write(&path, bytes).unwrap();

        let mut log = CheckpointLog::open(dir.path()).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), before, "{tail:?} is cut");
        assert_eq!(log.latest().unwrap().size, 9);
        log.append(signed(&signing, 12)).unwrap();
        let log = CheckpointLog::open(dir.path()).unwrap();
        assert_eq!(size_of(&log.latest().unwrap().note, &verifying), 12);
        assert!(log.view().of_size(6, &verifying).unwrap().is_some());
    }
}

#[test]
fn damage_before_the_last_line_is_an_error_not_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let (signing, verifying) = key();
    drop(log_of(dir.path(), &signing, 50));
    let path = dir.path().join(CHECKPOINTS_FILE);
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();

    // The line before a torn tail is no checkpoint: refused on open.
    let mut damaged = lines[..49].join("\n");
    damaged.push_str("\n{\"note\": garbage}\n{\"no");
    std::fs::write(&path, damaged).unwrap();
    assert!(matches!(
        CheckpointLog::open(dir.path()),
        Err(StoreError::Corrupt(_))
    ));

    // A damaged line in the middle: a lookup that meets it fails.
    let mut damaged = lines.clone();
    damaged[24] = "{\"note\": garbage}";
    std::fs::write(&path, damaged.join("\n") + "\n").unwrap();
    let view = CheckpointLog::open(dir.path()).unwrap().view();
    assert!(matches!(
        view.of_size(75, &verifying),
        Err(StoreError::Corrupt(_))
    ));

    // A checkpoint whose signature is not the key's is not served.
    let other = SigningKey::from_seed(&[8; 32]);
    let mut forged = lines.clone();
    let line = format!("{}", serde_json::json!({"note": signed(&other, 75).note}));
    forged[24] = &line;
    std::fs::write(&path, forged.join("\n") + "\n").unwrap();
    let view = CheckpointLog::open(dir.path()).unwrap().view();
    assert!(view.of_size(75, &verifying).is_err());
    assert!(view.of_size(72, &verifying).unwrap().is_some());
}
