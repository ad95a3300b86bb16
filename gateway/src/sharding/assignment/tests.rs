use std::collections::BTreeSet;

use edge_protocol::DeviceId;

use super::Assignment;
use crate::sharding::rendezvous;

fn id(s: &str) -> DeviceId {
    DeviceId::new(s).expect("valid id")
}

fn live(members: &[&str]) -> BTreeSet<String> {
    members.iter().map(|m| (*m).to_owned()).collect()
}

fn with_devices(n: usize) -> Assignment {
    let mut a = Assignment::default();
    for i in 0..n {
        assert!(a.learn(id(&format!("shard-{i}"))));
    }
    a
}

#[test]
fn learning_a_device_twice_is_not_new() {
    let mut a = Assignment::default();
    assert!(a.learn(id("pi-1")));
    assert!(!a.learn(id("pi-1")));
    assert_eq!(a.known(), 1);
}

#[test]
fn a_replica_owns_the_devices_rendezvous_gives_it() {
    let mut a = with_devices(100);
    let members = live(&["r0", "r1", "r2"]);
    let h = a.reassign("r1", &members, true);
    assert!(h.lost.is_empty());
    assert!(!h.gained.is_empty());
    for d in &h.gained {
        assert_eq!(
            rendezvous::owner(d, members.iter().map(String::as_str)),
            Some("r1")
        );
    }
    let others = (0..100)
        .map(|i| id(&format!("shard-{i}")))
        .filter(|d| rendezvous::owner(d, members.iter().map(String::as_str)) != Some("r1"))
        .count();
    assert_eq!(h.gained.len() + others, 100);
    // the same decision again changes nothing
    assert!(a.reassign("r1", &members, true).is_empty());
}

#[test]
fn a_replica_that_may_not_own_loses_everything_and_gains_nothing() {
    let mut a = with_devices(50);
    let members = live(&["r0", "r1"]);
    let owned = a.reassign("r0", &members, true).gained;
    assert!(!owned.is_empty());
    let h = a.reassign("r0", &members, false);
    assert_eq!(h.lost, owned);
    assert!(h.gained.is_empty());
    assert!(a.owned().is_empty());
}

#[test]
fn a_replica_not_among_the_live_owns_nothing() {
    let mut a = with_devices(50);
    let h = a.reassign("r9", &live(&["r0", "r1"]), true);
    assert!(h.gained.is_empty());
}

#[test]
fn a_survivor_gains_only_devices_of_the_replica_that_left() {
    let mut a = with_devices(300);
    let before = a.reassign("r0", &live(&["r0", "r1", "r2"]), true).gained;
    let h = a.reassign("r0", &live(&["r0", "r2"]), true);
    assert!(h.lost.is_empty());
    assert!(!h.gained.is_empty());
    let three = live(&["r0", "r1", "r2"]);
    for d in &h.gained {
        assert_eq!(
            rendezvous::owner(d, three.iter().map(String::as_str)),
            Some("r1"),
            "{d} did not belong to the replica that left"
        );
        assert!(!before.contains(d));
    }
}

#[test]
fn forgetting_an_owned_device_loses_it() {
    let mut a = with_devices(10);
    let owned = a.reassign("r0", &live(&["r0"]), true).gained;
    assert_eq!(owned.len(), 10);
    let h = a.forget(&owned[3]);
    assert_eq!(h.lost, vec![owned[3].clone()]);
    assert_eq!(a.known(), 9);
    assert!(a.forget(&owned[3]).is_empty());
}
