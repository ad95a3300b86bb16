#![allow(clippy::unwrap_used)]
use super::*;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

fn item(path: &str, content: &[u8], mode: u32) -> FileItem {
    FileItem {
        path: path.into(),
        content: content.to_vec().into(),
        mode,
    }
}

fn versions(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("..") && n != DATA_DIR)
        .collect();
    v.sort();
    v
}

#[test]
fn names_are_symlinks_into_data_and_old_versions_are_removed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("vol");
    write(
        &dir,
        &[item("a", b"1", 0o644), item("conf/b", b"2", 0o400)],
        false,
    )
    .unwrap();
    assert_eq!(fs::read_link(dir.join("a")).unwrap(), Path::new("..data/a"));
    assert_eq!(
        fs::read_link(dir.join("conf")).unwrap(),
        Path::new("..data/conf")
    );
    assert_eq!(fs::read(dir.join("conf/b")).unwrap(), b"2");
    assert_eq!(
        fs::metadata(dir.join("conf/b"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o400
    );
    let first = versions(&dir);
    assert_eq!(first.len(), 1);

    // unchanged: no new version
    write(
        &dir,
        &[item("a", b"1", 0o644), item("conf/b", b"2", 0o400)],
        false,
    )
    .unwrap();
    assert_eq!(versions(&dir), first);

    // changed, `conf` gone, `c` new: the new version, and the previous one kept for
    // readers that resolved it just before the swap
    let before = current_version(&dir).unwrap();
    write(&dir, &[item("a", b"one", 0o644), item("c", b"3", 0)], false).unwrap();
    let second = versions(&dir);
    assert_eq!(second.len(), 2);
    assert_eq!(fs::read(dir.join("a")).unwrap(), b"one");
    assert_eq!(fs::read(dir.join("c")).unwrap(), b"3");
    assert!(fs::symlink_metadata(dir.join("conf")).is_err());
    let new = current_version(&dir).unwrap();
    assert_ne!(new, before, "..data points at the new version");
    assert_eq!(fs::read(before.join("conf/b")).unwrap(), b"2");

    // one more change: the oldest version is removed
    write(&dir, &[item("a", b"uno", 0o644)], false).unwrap();
    let third = versions(&dir);
    assert_eq!(third.len(), 2);
    assert!(
        !before.exists(),
        "versions older than the previous one are removed"
    );
    assert!(new.exists());
    assert_eq!(fs::read(dir.join("a")).unwrap(), b"uno");
}

#[test]
fn sensitive_files_are_0600() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), &[item("token", b"jwt", 0o644)], true).unwrap();
    assert_eq!(
        fs::metadata(tmp.path().join("token"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
}

#[test]
fn files_of_the_older_in_place_layout_are_replaced_by_links() {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(tmp.path().join("a"), b"old").unwrap();
    fs::create_dir(tmp.path().join("d")).unwrap();
    fs::write(tmp.path().join("d/x"), b"old").unwrap();
    write(tmp.path(), &[item("a", b"new", 0)], false).unwrap();
    assert!(
        fs::symlink_metadata(tmp.path().join("a"))
            .unwrap()
            .is_symlink()
    );
    assert_eq!(fs::read(tmp.path().join("a")).unwrap(), b"new");
    assert!(!tmp.path().join("d").exists());
}

/// A reader that reads both files of the version `..data` names sees them from one
/// version, never one old and one new; a single file is never torn.
#[test]
fn a_reader_sees_the_old_or_the_new_version_never_a_mix() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_owned();
    let payload = |v: u8| {
        let body = vec![b'a' + v; 64 * 1024];
        [item("first", &body, 0), item("second", &body, 0)]
    };
    write(&dir, &payload(0), false).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (dir, stop) = (dir.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut consistent_reads = 0u32;
            while !stop.load(Ordering::Relaxed) {
                // the user-visible file is whole (a "not found" is possible only for a
                // reader descheduled across two swaps: read again)
                let Ok(one) = fs::read(dir.join("first")) else {
                    continue;
                };
                assert!(one.iter().all(|b| *b == one[0]), "a torn file");
                // both files through the one version ..data names now
                let Some(version) = current_version(&dir) else {
                    panic!("..data missing during an update");
                };
                let (Ok(a), Ok(b)) = (
                    fs::read(version.join("first")),
                    fs::read(version.join("second")),
                ) else {
                    continue; // that version was removed meanwhile: read again
                };
                assert_eq!(a[0], b[0], "files of two versions");
                consistent_reads += 1;
            }
            consistent_reads
        })
    };
    for i in 1..200u8 {
        write(&dir, &payload(i % 20), false).unwrap();
        // updates come far apart in practice: give the reader a turn between two
        std::thread::sleep(std::time::Duration::from_micros(200));
    }
    stop.store(true, Ordering::Relaxed);
    let reads = reader.join().unwrap();
    assert!(reads > 0);
    assert_eq!(versions(&dir).len(), 2);
}
