use std::collections::BTreeSet;
use std::time::Duration;

use super::*;

fn img(id: &str, size: u64) -> ListedImage {
    ListedImage {
        id: id.into(),
        names: vec![format!("localhost/{id}:1")],
        size_bytes: size,
    }
}

fn used(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| (*s).to_owned()).collect()
}

const POLICY: GcPolicy = GcPolicy {
    high_percent: 85,
    low_percent: 80,
    minimum_age: Duration::from_secs(60),
};

#[test]
fn nothing_below_the_high_threshold() {
    let mut t = ImageTracker::default();
    t.observe(vec![img("a", 50)], used(&[]), 0);
    // 84 % used
    assert_eq!(t.plan(1000, 160, POLICY, 1_000_000), GcPlan::default());
    assert_eq!(t.plan(0, 0, POLICY, 1_000_000), GcPlan::default());
}

#[test]
fn removes_least_recently_used_unused_images_down_to_the_low_threshold() {
    let mut t = ImageTracker::default();
    t.observe(
        vec![
            img("old", 40),
            img("mid", 40),
            img("new", 40),
            img("busy", 500),
        ],
        used(&["mid", "new", "busy"]),
        0,
    );
    // "mid" is last used at 10 s, "new" at 20 s, "busy" stays in use
    let all = || {
        vec![
            img("old", 40),
            img("mid", 40),
            img("new", 40),
            img("busy", 500),
        ]
    };
    t.observe(all(), used(&["mid", "new", "busy"]), 10_000);
    t.observe(all(), used(&["new", "busy"]), 20_000);
    t.observe(all(), used(&["busy"]), 30_000);
    // 90 % used of 1000: free 200 - 100 = 100 bytes -> three 40-byte images
    let plan = t.plan(1000, 100, POLICY, 100_000);
    assert_eq!(plan.bytes_to_free, 100);
    assert_eq!(plan.remove, ["old", "mid", "new"]);
    assert_eq!(plan.bytes_planned, 120);
    // at the high threshold, 50 bytes to free: the two least recently used
    assert_eq!(t.plan(1000, 150, POLICY, 100_000).remove, ["old", "mid"]);
}

#[test]
fn never_an_image_in_use_nor_one_younger_than_the_minimum_age() {
    let mut t = ImageTracker::default();
    t.observe(
        vec![img("busy", 500), img("fresh", 40)],
        used(&["busy"]),
        50_000,
    );
    assert!(t.plan(1000, 10, POLICY, 60_000).remove.is_empty());
    assert_eq!(t.plan(1000, 10, POLICY, 110_000).remove, ["fresh"]);
}

#[test]
fn node_images_largest_first_capped() {
    let mut t = ImageTracker::default();
    let listed: Vec<ListedImage> = (0..60).map(|i| img(&format!("i{i:02}"), i)).collect();
    t.observe(listed, used(&[]), 0);
    let images = t.node_images();
    assert_eq!(images.len(), MAX_NODE_IMAGES);
    assert_eq!(images[0].size_bytes, 59);
    assert_eq!(images[0].names, ["localhost/i59:1"]);
}

#[test]
fn images_listed_without_the_containers_keep_the_last_known_use() {
    let mut t = ImageTracker::default();
    t.observe(vec![img("a", 300), img("b", 300)], used(&["a"]), 0);
    // The containers cannot be listed: the new image is reported, "a" stays in use.
    t.observe_images_only(vec![img("a", 300), img("b", 300), img("c", 300)], 1_000_000);
    assert_eq!(t.node_images().len(), 3);
    let plan = t.plan(1000, 100, POLICY, 1_000_000);
    assert!(!plan.remove.contains(&"a".to_owned()), "{plan:?}");
}

#[test]
fn images_of_the_prepull_set_are_never_removed_until_a_set_drops_them() {
    let mut t = ImageTracker::default();
    let all = || vec![img("pre", 40), img("old", 40), img("other", 40)];
    t.observe(all(), used(&[]), 0);
    t.observe(all(), used(&["old", "other"]), 10_000);
    t.observe(all(), used(&[]), 20_000);
    // unused and oldest-used, but held by the pre-pull set
    t.pin(used(&["pre"]));
    let plan = t.plan(1000, 10, POLICY, 100_000);
    assert!(!plan.remove.contains(&"pre".to_owned()), "{plan:?}");
    assert_eq!(plan.remove, vec!["old".to_owned(), "other".to_owned()]);
    // a set without it: an ordinary unused image again, first to go
    t.pin(BTreeSet::new());
    let plan = t.plan(1000, 10, POLICY, 100_000);
    assert_eq!(plan.remove.first().map(String::as_str), Some("pre"));
}
