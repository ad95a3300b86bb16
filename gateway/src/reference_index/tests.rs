use super::*;

fn cm(name: &str) -> ObjectRef {
    ObjectRef {
        kind: ObjectKind::ConfigMap,
        namespace: "ns".into(),
        name: name.into(),
    }
}

fn secret(name: &str) -> ObjectRef {
    ObjectRef {
        kind: ObjectKind::Secret,
        namespace: "ns".into(),
        name: name.into(),
    }
}

#[test]
fn a_watch_per_used_object_started_once_and_stopped_with_its_last_user() {
    let mut index = ReferenceIndex::default();
    let w = index.set_pod("a", [cm("cfg"), secret("creds")].into());
    assert_eq!(w.start, vec![cm("cfg"), secret("creds")]);
    assert!(w.stop.is_empty());
    // a second user of the same ConfigMap starts nothing
    let w = index.set_pod("b", [cm("cfg")].into());
    assert_eq!(w, WatchChanges::default());
    assert_eq!(index.users_of(&cm("cfg")), vec!["a", "b"]);
    // a stops using the Secret: its watch stops; the ConfigMap still has b
    let w = index.set_pod("a", [cm("cfg")].into());
    assert_eq!(w.stop, vec![secret("creds")]);
    let w = index.remove_pod("a");
    assert_eq!(w, WatchChanges::default());
    let w = index.remove_pod("b");
    assert_eq!(w.stop, vec![cm("cfg")]);
    assert_eq!(index.watched().count(), 0);
}

#[test]
fn a_change_retranslates_the_users_but_the_version_already_read_does_not() {
    let mut index = ReferenceIndex::default();
    index.set_pod("a", [cm("cfg")].into());
    index.set_pod("b", [cm("cfg"), cm("other")].into());
    index.read(&cm("cfg"), Some("10"), false);
    // the watch's first event: the object as the translation read it
    assert!(
        index
            .on_object(&cm("cfg"), Some("10"), false)
            .retranslate
            .is_empty()
    );
    // a patch
    let u = index.on_object(&cm("cfg"), Some("11"), false);
    assert_eq!(u.retranslate, vec!["a", "b"]);
    // the same version again (a watch restart) changes nothing
    assert!(
        index
            .on_object(&cm("cfg"), Some("11"), false)
            .retranslate
            .is_empty()
    );
    // objects nobody uses are ignored
    assert!(
        index
            .on_object(&cm("nobody"), Some("1"), false)
            .retranslate
            .is_empty()
    );
}

#[test]
fn a_change_between_the_read_and_the_watch_start_is_not_lost() {
    let mut index = ReferenceIndex::default();
    index.set_pod("a", [cm("cfg")].into());
    index.read(&cm("cfg"), Some("10"), false);
    assert_eq!(
        index.on_object(&cm("cfg"), Some("12"), false).retranslate,
        vec!["a"]
    );
}

#[test]
fn a_deleted_object_keeps_the_files_and_its_recreation_is_delivered() {
    let mut index = ReferenceIndex::default();
    index.set_pod("a", [cm("cfg")].into());
    index.read(&cm("cfg"), Some("10"), false);
    assert!(
        index
            .on_object(&cm("cfg"), None, false)
            .retranslate
            .is_empty()
    );
    assert_eq!(
        index.on_object(&cm("cfg"), Some("20"), false).retranslate,
        vec!["a"]
    );
    // an optional object that did not exist at translation time appears
    index.set_pod("b", [cm("later")].into());
    index.read(&cm("later"), None, false);
    assert_eq!(
        index.on_object(&cm("later"), Some("1"), false).retranslate,
        vec!["b"]
    );
}

#[test]
fn immutable_objects_are_not_watched_after_their_first_read() {
    let mut index = ReferenceIndex::default();
    let w = index.set_pod("a", [cm("frozen"), cm("live")].into());
    assert_eq!(w.start.len(), 2);
    let w = index.read(&cm("frozen"), Some("5"), true);
    assert_eq!(w.stop, vec![cm("frozen")]);
    // another pod using it later starts no watch either
    assert_eq!(
        index.set_pod("b", [cm("frozen")].into()),
        WatchChanges::default()
    );
    // an object that becomes immutable while watched: its watch stops
    let u = index.on_object(&cm("live"), Some("7"), true);
    assert_eq!(u.watches.stop, vec![cm("live")]);
    assert_eq!(u.retranslate, vec!["a"]);
    assert_eq!(index.watched().count(), 0);
    // once nobody uses it, a new user reads it afresh (it may have been re-created)
    index.remove_pod("a");
    index.remove_pod("b");
    assert_eq!(
        index.set_pod("c", [cm("frozen")].into()).start,
        vec![cm("frozen")]
    );
}
