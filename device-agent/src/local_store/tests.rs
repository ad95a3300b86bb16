#![allow(clippy::unwrap_used)]
use super::*;

thread_local! {
    /// Directories fsynced by this test thread (the store syncs with [`sync_dir`]).
    pub(super) static SYNCED_DIRS: std::cell::RefCell<Vec<PathBuf>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

#[test]
fn an_acknowledged_entry_is_removed_durably() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::open(dir.path()).unwrap();
    store.queue_status(1, false, vec![]).unwrap();
    let (key, _) = store.outbox_head().unwrap().unwrap();
    SYNCED_DIRS.with(|s| s.borrow_mut().clear());
    store.ack(key).unwrap();
    assert!(!key_path(&dir.path().join("outbox"), key).exists());
    let synced = SYNCED_DIRS.with(|s| s.borrow().clone());
    assert_eq!(
        synced,
        vec![dir.path().join("outbox")],
        "outbox directory fsynced"
    );
}

#[test]
fn counters_refuse_to_wrap() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join("outbox")).unwrap();
    fs::write(dir.path().join("sequence"), u64::MAX.to_string()).unwrap();
    let store = LocalStore::open(dir.path()).unwrap();
    let err = store.queue_status(1, false, vec![]).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Exhausted {
                what: "report sequence",
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        store.outbox_len(),
        0,
        "nothing queued with a wrapped sequence"
    );
    drop(store);

    let dir = tempfile::tempdir().unwrap();
    let outbox = dir.path().join("outbox");
    fs::create_dir_all(&outbox).unwrap();
    let item = OutboxItem {
        channel: "events".to_owned(),
        payload: b"{}".to_vec(),
    };
    fs::write(
        key_path(&outbox, u64::MAX),
        serde_json::to_vec(&item).unwrap(),
    )
    .unwrap();
    let store = LocalStore::open(dir.path()).unwrap();
    let err = store.queue_events(PodEventReport::default()).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Exhausted {
                what: "outbox key",
                ..
            }
        ),
        "{err}"
    );
    let (key, _) = store.outbox_head().unwrap().unwrap();
    assert_eq!(key, u64::MAX, "the existing entry is kept");
}

#[test]
fn survives_reopen_in_order() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = LocalStore::open(dir.path()).unwrap();
        assert!(matches!(
            LocalStore::open(dir.path()),
            Err(StoreError::Locked { .. })
        ));
        store
            .save_desired(&DesiredSet {
                generation: 7,
                pods: vec![],
            })
            .unwrap();
        assert_eq!(store.queue_status(7, false, vec![]).unwrap(), 1);
        store.queue_events(PodEventReport::default()).unwrap();
        assert_eq!(store.queue_status(7, true, vec![]).unwrap(), 2);
    }
    let store = LocalStore::open(dir.path()).unwrap();
    assert_eq!(store.desired().unwrap().generation, 7);
    assert_eq!(store.outbox_len(), 3);
    let (k, first) = store.outbox_head().unwrap().unwrap();
    assert_eq!(first.channel, "status");
    store.ack(k).unwrap();
    let (k, second) = store.outbox_head().unwrap().unwrap();
    assert_eq!(second.channel, "events");
    store.ack(k).unwrap();
    let (_, third) = store.outbox_head().unwrap().unwrap();
    match Message::decode(&third.payload).unwrap() {
        Message::PodStatusReport(r) => assert_eq!((r.sequence, r.full), (2, true)),
        other => panic!("{other:?}"),
    }
    assert_eq!(store.queue_status(7, false, vec![]).unwrap(), 3);
}

#[test]
fn a_report_newer_than_the_counter_is_not_reused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = LocalStore::open(dir.path()).unwrap();
        store.queue_status(1, false, vec![]).unwrap();
        store.queue_status(1, false, vec![]).unwrap();
    }
    // A crash between writing the report and the counter.
    fs::write(dir.path().join("sequence"), "1").unwrap();
    let store = LocalStore::open(dir.path()).unwrap();
    assert_eq!(store.queue_status(1, false, vec![]).unwrap(), 3);
}

#[test]
fn the_prepull_set_survives_reopen_and_sets_with_credentials_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let set = ImagePrepullSet {
        revision: "r2".into(),
        images: vec!["reg:5000/app:1".into()],
        registry_credentials: vec![edge_protocol::RegistryCredential {
            registry: "reg:5000".into(),
            username: "u".into(),
            password: "s3cret".into(),
        }],
    };
    {
        let store = LocalStore::open(dir.path()).unwrap();
        assert_eq!(store.prepull_set().unwrap(), None);
        store
            .save_prepull_set(&ImagePrepullSet {
                revision: "r1".into(),
                ..Default::default()
            })
            .unwrap();
        store.save_prepull_set(&set).unwrap();
        store.save_desired(&DesiredSet::default()).unwrap();
    }
    let store = LocalStore::open(dir.path()).unwrap();
    assert_eq!(store.prepull_set().unwrap(), Some(set), "the last one");
    for name in ["prepull.json", "desired.json"] {
        let mode = fs::metadata(dir.path().join(name))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{name}: {mode:o}");
    }
    assert!(!dir.path().join("prepull.tmp").exists());
    fs::write(dir.path().join("prepull.json"), b"{not json").unwrap();
    assert!(matches!(
        store.prepull_set(),
        Err(StoreError::Corrupt { .. })
    ));
}
