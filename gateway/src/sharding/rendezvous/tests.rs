use std::collections::BTreeMap;

use edge_protocol::DeviceId;

use super::{owner, weight};

fn devices(n: usize) -> Vec<DeviceId> {
    (0..n)
        .map(|i| DeviceId::new(format!("shard-dev-{i}")).expect("valid id"))
        .collect()
}

fn assign<'a>(devices: &[DeviceId], members: &[&'a str]) -> BTreeMap<DeviceId, &'a str> {
    devices
        .iter()
        .map(|d| {
            let o = owner(d, members.iter().copied()).expect("members");
            (d.clone(), o)
        })
        .collect()
}

#[test]
fn the_weight_is_fixed_across_builds() {
    // pinned (FNV-1a 64 then SplitMix64, computed independently): replicas of different
    // versions must agree on every owner
    let d = DeviceId::new("pi-07").expect("valid id");
    assert_eq!(weight("0", &d), weight("0", &d));
    assert_eq!(weight("edge-gateway-0", &d), 0x7ef3_4ca9_e687_c28d_u64);
    assert_ne!(
        weight("ab", &DeviceId::new("c").expect("id")),
        weight("a", &DeviceId::new("bc").expect("id"))
    );
}

#[test]
fn the_highest_weight_wins() {
    let members = ["r0", "r1", "r2", "r3"];
    for d in devices(50) {
        let best = members
            .iter()
            .max_by_key(|m| weight(m, &d))
            .copied()
            .expect("members");
        assert_eq!(owner(&d, members.iter().copied()), Some(best), "{d}");
    }
}

#[test]
fn no_members_no_owner() {
    let d = DeviceId::new("pi-07").expect("valid id");
    assert_eq!(owner(&d, std::iter::empty()), None);
}

#[test]
fn the_order_of_members_does_not_matter() {
    let ds = devices(200);
    let a = assign(&ds, &["r0", "r1", "r2"]);
    let b = assign(&ds, &["r2", "r0", "r1"]);
    assert_eq!(a, b);
}

#[test]
fn devices_spread_over_members() {
    let ds = devices(3000);
    let a = assign(&ds, &["r0", "r1", "r2"]);
    for m in ["r0", "r1", "r2"] {
        let n = a.values().filter(|o| **o == m).count();
        assert!((800..=1200).contains(&n), "{m} owns {n} of 3000");
    }
}

#[test]
fn a_member_leaving_moves_only_its_own_devices() {
    let ds = devices(1000);
    let before = assign(&ds, &["r0", "r1", "r2"]);
    let after = assign(&ds, &["r0", "r2"]);
    let mut moved = 0;
    for d in &ds {
        if before[d] == "r1" {
            assert_ne!(after[d], "r1");
            moved += 1;
        } else {
            assert_eq!(before[d], after[d], "{d} moved though its owner stayed");
        }
    }
    assert!(moved > 200, "r1 owned {moved}");
}

#[test]
fn a_member_joining_takes_only_what_it_now_owns() {
    let ds = devices(1000);
    let before = assign(&ds, &["r0", "r1"]);
    let after = assign(&ds, &["r0", "r1", "r2"]);
    let mut taken = 0;
    for d in &ds {
        if after[d] == "r2" {
            taken += 1;
        } else {
            assert_eq!(before[d], after[d], "{d} moved between members that stayed");
        }
    }
    assert!((250..=420).contains(&taken), "r2 took {taken} of 1000");
}
