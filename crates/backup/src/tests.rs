//! The archive's round trip, and every way a copy that is not whole is refused.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use crate::{BackupError, MANIFEST_FILE, Source, restore, unpack, verify_dir, write_archive};

/// Two files in a source directory, the second one grown past its snapshot size.
fn sources(root: &Path) -> Vec<Source> {
    std::fs::create_dir_all(root.join("queue")).unwrap();
    std::fs::write(root.join("meta.db"), b"metadata").unwrap();
    std::fs::write(root.join("queue/0.seg"), b"durable|appended later").unwrap();
    vec![
        Source {
            path: "meta.db".into(),
            file: root.join("meta.db"),
            bytes: 8,
        },
        Source {
            path: "queue/0.seg".into(),
            file: root.join("queue/0.seg"),
            bytes: 8,
        },
    ]
}

fn archive(root: &Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    write_archive(&sources(root), 1_700_000_000_000, "test", &mut bytes).unwrap();
    bytes
}

#[test]
fn a_backup_unpacks_verifies_and_restores_with_snapshot_prefixes_only() {
    let temp = tempfile::tempdir().unwrap();
    let bytes = archive(&temp.path().join("data"));
    let unpacked = temp.path().join("backup");
    let manifest = unpack(bytes.as_slice(), &unpacked).unwrap();
    assert_eq!(manifest.files.len(), 2);
    assert_eq!(manifest.total_bytes(), 16);
    assert_eq!(
        std::fs::read(unpacked.join("queue/0.seg")).unwrap(),
        b"durable|"
    );
    assert!(unpacked.join(MANIFEST_FILE).is_file());
    assert_eq!(verify_dir(&unpacked).unwrap(), manifest);

    let restored = temp.path().join("restored");
    restore(&unpacked, &restored).unwrap();
    assert_eq!(
        std::fs::read(restored.join("meta.db")).unwrap(),
        b"metadata"
    );
    assert_eq!(
        std::fs::read(restored.join("queue/0.seg")).unwrap(),
        b"durable|"
    );
    assert!(!restored.join(MANIFEST_FILE).exists());
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(restored.join("meta.db"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn an_archive_cut_short_is_refused_wherever_it_stops() {
    let temp = tempfile::tempdir().unwrap();
    let bytes = archive(&temp.path().join("data"));
    // Cut inside the first file, between files, and inside the manifest.
    for (round, cut) in [700, 1024, bytes.len() - 1500].into_iter().enumerate() {
        let dir = temp.path().join(format!("cut-{round}"));
        let refused = unpack(&bytes[..cut], &dir).unwrap_err();
        assert!(
            matches!(refused, BackupError::Invalid(_) | BackupError::Io { .. }),
            "{refused}"
        );
        assert!(!dir.exists(), "a failed unpack leaves nothing behind");
    }
}

#[test]
fn an_altered_or_extra_file_fails_verification_and_restore() {
    let temp = tempfile::tempdir().unwrap();
    let bytes = archive(&temp.path().join("data"));
    let unpacked = temp.path().join("backup");
    unpack(bytes.as_slice(), &unpacked).unwrap();

    std::fs::write(unpacked.join("meta.db"), b"metadatA").unwrap();
    let refused = verify_dir(&unpacked).unwrap_err().to_string();
    assert!(refused.contains("meta.db"), "{refused}");
    let restored = temp.path().join("restored");
    assert!(restore(&unpacked, &restored).is_err());
    assert!(!restored.exists(), "a failed restore leaves nothing behind");

    std::fs::write(unpacked.join("meta.db"), b"metadata").unwrap();
    verify_dir(&unpacked).unwrap();
    std::fs::write(unpacked.join("queue/1.seg"), b"stray").unwrap();
    let refused = verify_dir(&unpacked).unwrap_err().to_string();
    assert!(refused.contains("1.seg"), "{refused}");
}

#[test]
fn a_file_shorter_than_its_snapshot_fails_the_archive() {
    let temp = tempfile::tempdir().unwrap();
    let mut listed = sources(temp.path());
    listed[0].bytes = 9;
    let mut bytes = Vec::new();
    assert!(write_archive(&listed, 0, "test", &mut bytes).is_err());
}

#[test]
fn nothing_is_written_into_a_directory_that_holds_files() {
    let temp = tempfile::tempdir().unwrap();
    let bytes = archive(&temp.path().join("data"));
    let busy = temp.path().join("busy");
    std::fs::create_dir_all(&busy).unwrap();
    std::fs::write(busy.join("keep"), b"mine").unwrap();
    assert!(matches!(
        unpack(bytes.as_slice(), &busy),
        Err(BackupError::NotEmpty { .. })
    ));
    let unpacked = temp.path().join("backup");
    unpack(bytes.as_slice(), &unpacked).unwrap();
    assert!(matches!(
        restore(&unpacked, &busy),
        Err(BackupError::NotEmpty { .. })
    ));
    assert_eq!(std::fs::read(busy.join("keep")).unwrap(), b"mine");
}

#[test]
fn entries_that_would_leave_the_directory_are_refused() {
    let temp = tempfile::tempdir().unwrap();
    let mut bytes = Vec::new();
    {
        let mut builder = tar::Builder::new(&mut bytes);
        let mut header = tar::Header::new_gnu();
        header.set_size(1);
        header.set_entry_type(tar::EntryType::Regular);
        // `append_data` refuses `..` itself, so the name is set raw.
        header.as_gnu_mut().unwrap().name[..7].copy_from_slice(b"../evil");
        header.set_cksum();
        builder.append(&header, &b"x"[..]).unwrap();
        builder.finish().unwrap();
    }
    let dir = temp.path().join("backup");
    assert!(unpack(bytes.as_slice(), &dir).is_err());
    assert!(!temp.path().join("evil").exists());
}
