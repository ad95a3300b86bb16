#![allow(clippy::unwrap_used)]
use super::*;

#[test]
fn missing_file_is_empty_and_round_trip_keeps_ids() {
    let dir = tempfile::tempdir().unwrap();
    let mut list = RevocationList::load(dir.path()).unwrap();
    assert!(list.is_empty());
    assert!(list.insert(DeviceId::new("pi-01").unwrap()));
    assert!(!list.insert(DeviceId::new("pi-01").unwrap()));
    list.save(dir.path()).unwrap();
    let again = RevocationList::load(dir.path()).unwrap();
    assert!(again.contains(&DeviceId::new("pi-01").unwrap()));
    assert!(!again.contains(&DeviceId::new("pi-02").unwrap()));
    assert_eq!(again.len(), 1);
}

#[test]
fn bad_line_is_an_error_with_its_line_number() {
    let dir = tempfile::tempdir().unwrap();
    let layout = EnrollmentLayout::new(dir.path());
    std::fs::create_dir_all(layout.root()).unwrap();
    std::fs::write(layout.revoked_list(), "# c\n\npi-01\nNot Valid\n").unwrap();
    let err = RevocationList::load(dir.path()).unwrap_err();
    assert!(
        matches!(err, EnrollmentError::BadRevocationList { line: 4, .. }),
        "{err}"
    );
}

#[test]
fn cached_list_sees_every_revocation() {
    let dir = tempfile::tempdir().unwrap();
    let cache = CachedRevocationList::new(dir.path());
    let a = DeviceId::new("pi-a").unwrap();
    let b = DeviceId::new("pi-b").unwrap();
    assert!(!cache.contains(&a).unwrap());
    let mut list = RevocationList::default();
    list.insert(a.clone());
    list.save(dir.path()).unwrap();
    assert!(cache.contains(&a).unwrap());
    assert!(!cache.contains(&b).unwrap());
    list.insert(b.clone());
    list.save(dir.path()).unwrap();
    assert!(cache.contains(&b).unwrap());
    std::fs::write(
        EnrollmentLayout::new(dir.path()).revoked_list(),
        "Not An Id\n",
    )
    .unwrap();
    assert!(
        cache.contains(&a).is_err(),
        "an invalid list is an error, not a stale answer"
    );
}
