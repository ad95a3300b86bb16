#![allow(clippy::unwrap_used)]
use super::*;

#[test]
fn admits_up_to_the_limit_then_refuses_and_ignores_a_repeated_open() {
    let mut table = StreamTable::new(2);
    assert_eq!(table.admit("a", || 1), Admission::Admitted);
    assert_eq!(table.admit("a", || 9), Admission::AlreadyOpen);
    assert_eq!(table.get("a"), Some(&1));
    assert_eq!(table.admit("b", || 2), Admission::Admitted);
    assert_eq!(table.admit("c", || 3), Admission::TooMany { limit: 2 });
    assert_eq!(table.len(), 2);
    // An ended stream frees its place.
    table.prune(|h| *h != 1);
    assert_eq!(table.admit("c", || 3), Admission::Admitted);
    assert_eq!(table.remove("b"), Some(2));
    assert_eq!(table.len(), 1);
}

#[test]
fn losing_the_session_ends_every_stream() {
    let mut table = StreamTable::new(8);
    for id in ["a", "b", "c"] {
        table.admit(id, || id.to_owned());
    }
    let mut ended = table.session_lost();
    ended.sort();
    assert_eq!(ended, vec!["a", "b", "c"]);
    assert!(table.is_empty());
    assert!(table.get("a").is_none());
}
