#![allow(clippy::unwrap_used)]
use super::*;

#[test]
fn a_new_instance_gets_an_empty_world_writable_file_and_old_ones_go() {
    let dir = tempfile::tempdir().unwrap();
    let first = prepare(dir.path(), "uid-1", "app", 0).unwrap();
    std::fs::write(&first, "first").unwrap();
    prepare(dir.path(), "uid-1", "app", 1).unwrap();
    let third = prepare(dir.path(), "uid-1", "app", 2).unwrap();
    assert_eq!(read(&third).as_deref(), Some(""));
    assert!(
        !first.exists(),
        "instances before the previous one are removed"
    );
    assert!(host_path(dir.path(), "uid-1", "app", 1).exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&third).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o666);
    }
}

#[test]
fn the_message_is_the_last_4096_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let path = prepare(dir.path(), "uid-1", "app", 0).unwrap();
    let text = format!("{}{}", "a".repeat(100), "b".repeat(4096));
    std::fs::write(&path, text).unwrap();
    assert_eq!(read(&path).unwrap(), "b".repeat(4096));
    assert_eq!(read(&dir.path().join("missing")), None);
}
