#![allow(clippy::unwrap_used)]
use super::*;

#[test]
fn entries_expire_after_their_own_ttl() {
    let c = ReviewCache::new(4);
    let t0 = Instant::now();
    c.insert("allow".into(), true, Duration::from_secs(300), t0);
    c.insert("deny".into(), false, Duration::from_secs(30), t0);
    let later = t0 + Duration::from_secs(31);
    assert_eq!(c.get("allow", later), Some(true));
    assert_eq!(c.get("deny", later), None);
    assert_eq!(c.get("allow", t0 + Duration::from_secs(301)), None);
}

#[test]
fn a_full_cache_drops_its_oldest_entries_and_stays_bounded() {
    let c = ReviewCache::new(3);
    let t0 = Instant::now();
    let ttl = Duration::from_secs(60);
    for i in 0..1000 {
        c.insert(format!("k{i}"), i, ttl, t0);
        // re-inserting a live key does not grow the cache
        c.insert(format!("k{i}"), i, ttl, t0);
        assert!(c.len() <= 3);
    }
    assert_eq!(c.get("k999", t0), Some(999));
    assert_eq!(c.get("k997", t0), Some(997));
    assert_eq!(c.get("k996", t0), None);
    assert!(c.lock().order.len() <= 6);
}

#[test]
fn zero_ttl_caches_nothing() {
    let c = ReviewCache::new(3);
    c.insert("k".into(), 1, Duration::ZERO, Instant::now());
    assert!(c.is_empty());
}
