use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use super::{LeaseSeen, LeaseTimings, Membership, TimingsError};

const T: LeaseTimings = LeaseTimings::DEFAULT;

fn lease(member: &str, renew: u32) -> LeaseSeen {
    LeaseSeen {
        member: member.to_owned(),
        holder: Some(format!("{member}_1")),
        renew_time: Some(format!("2026-12-06T12:00:{renew:02}.000000Z")),
        duration: Duration::from_secs(15),
        resource_version: Some(format!("{renew}")),
        acks: BTreeSet::new(),
    }
}

fn acking(member: &str, renew: u32, holders: &[&str]) -> LeaseSeen {
    LeaseSeen {
        acks: holders.iter().map(|h| (*h).to_owned()).collect(),
        ..lease(member, renew)
    }
}

fn secs(t0: Instant, s: f64) -> Instant {
    t0 + Duration::from_secs_f64(s)
}

#[test]
fn the_default_timings_are_valid_and_bad_ones_are_refused() {
    assert_eq!(T.validated(), Ok(T));
    let same = LeaseTimings {
        renew_deadline: Duration::from_secs(15),
        ..T
    };
    assert!(matches!(
        same.validated(),
        Err(TimingsError::DeadlineNotShorter { .. })
    ));
    let slow = LeaseTimings {
        renew_interval: Duration::from_secs(6),
        ..T
    };
    assert!(matches!(
        slow.validated(),
        Err(TimingsError::IntervalTooLong { .. })
    ));
    let fraction = LeaseTimings {
        lease_duration: Duration::from_millis(15_500),
        ..T
    };
    assert!(matches!(
        fraction.validated(),
        Err(TimingsError::Duration(_))
    ));
}

#[test]
fn a_replica_stops_writing_at_the_renew_deadline_without_hearing_anything() {
    let t0 = Instant::now();
    let mut m = Membership::new("a", T);
    assert!(!m.may_write(t0), "nothing written before the first renewal");
    m.renewed(t0, secs(t0, 0.3));
    assert!(m.may_write(secs(t0, 9.9)));
    // the deadline counts from the start of the renewal, not from its confirmation
    assert!(!m.may_write(secs(t0, 10.0)));
    assert_eq!(m.fence_deadline(), Some(secs(t0, 10.0)));
}

#[test]
fn another_replica_counts_from_when_we_saw_its_lease_change() {
    let t0 = Instant::now();
    let mut m = Membership::new("a", T);
    // its renewTime is far in the past by the wall clock: irrelevant
    m.observe([lease("b", 1)], t0);
    assert!(m.live(secs(t0, 14.9)).contains("b"));
    // listed again unchanged: no extension
    m.observe([lease("b", 1)], secs(t0, 10.0));
    assert!(!m.live(secs(t0, 15.0)).contains("b"));
    // renewed: live again for a lease duration from this sighting
    m.observe([lease("b", 2)], secs(t0, 16.0));
    assert!(m.live(secs(t0, 30.9)).contains("b"));
    assert!(!m.live(secs(t0, 31.0)).contains("b"));
}

#[test]
fn a_released_lease_is_gone_at_once_and_a_vanished_one_when_it_expires() {
    let t0 = Instant::now();
    let mut m = Membership::new("a", T);
    m.observe([lease("b", 1), lease("c", 1)], t0);
    let released = LeaseSeen {
        holder: None,
        ..lease("b", 1)
    };
    // c's Lease was deleted: not in the list any more
    m.observe([released], secs(t0, 1.0));
    let live = m.live(secs(t0, 1.0));
    assert!(!live.contains("b"), "released");
    assert!(live.contains("c"), "deleted but not expired");
    assert!(!m.live(secs(t0, 15.0)).contains("c"));
}

#[test]
fn a_new_replica_owns_nothing_for_one_lease_duration() {
    let t0 = Instant::now();
    let mut m = Membership::new("a", T);
    // alone: nobody to acknowledge it
    m.set_holder("a_1");
    m.renewed(t0, secs(t0, 0.5));
    m.observe([lease("a", 1)], secs(t0, 0.5));
    assert!(m.may_write(secs(t0, 1.0)));
    assert!(!m.may_own(secs(t0, 1.0)));
    // keeps renewing
    for i in 1..=8 {
        let s = secs(t0, 2.0 * f64::from(i));
        m.renewed(s, s);
    }
    assert!(!m.may_own(secs(t0, 15.4)));
    assert!(m.may_own(secs(t0, 15.5)));
}

#[test]
fn the_warm_up_is_the_longest_lease_duration_any_replica_uses() {
    let t0 = Instant::now();
    let mut m = Membership::new("a", T);
    m.renewed(t0, t0);
    m.observe(
        [LeaseSeen {
            duration: Duration::from_secs(30),
            ..lease("b", 1)
        }],
        t0,
    );
    for i in 1..=15 {
        let s = secs(t0, 2.0 * f64::from(i));
        m.renewed(s, s);
    }
    assert!(!m.may_own(secs(t0, 29.0)));
    assert!(m.may_own(secs(t0, 30.0)));
}

#[test]
fn a_fenced_replica_warms_up_again_after_renewing() {
    let t0 = Instant::now();
    let mut m = Membership::new("a", T);
    m.renewed(t0, t0);
    for i in 1..=10 {
        let s = secs(t0, 2.0 * f64::from(i));
        m.renewed(s, s);
    }
    assert!(m.may_own(secs(t0, 20.0)));
    // renewals fail from 22 s: fenced at 30 s
    assert!(m.may_own(secs(t0, 29.9)));
    assert!(!m.may_own(secs(t0, 30.0)));
    // back at 34 s: may write at once, owns nothing until 49 s
    m.renewed(secs(t0, 34.0), secs(t0, 34.0));
    assert!(m.may_write(secs(t0, 34.0)));
    for i in 1..=7 {
        let s = secs(t0, 34.0 + 2.0 * f64::from(i));
        m.renewed(s, s);
    }
    assert!(!m.may_own(secs(t0, 48.9)));
    assert!(m.may_own(secs(t0, 49.0)));
}

#[test]
fn released_stops_writes_at_once() {
    let t0 = Instant::now();
    let mut m = Membership::new("a", T);
    m.renewed(t0, t0);
    m.released();
    assert!(!m.may_write(t0));
    assert_eq!(m.fence_deadline(), None);
}

#[test]
fn an_expired_replica_holds_its_devices_until_its_lease_is_claimed() {
    let t0 = Instant::now();
    let mut m = Membership::new("a", T);
    m.observe([lease("a", 1), lease("b", 1)], t0);
    assert!(m.claimable(secs(t0, 14.9)).is_empty());
    let later = secs(t0, 15.0);
    assert_eq!(
        m.claimable(later),
        vec![("b".to_owned(), Some("1".to_owned()))],
        "b, on the version seen; never ourselves"
    );
    assert!(!m.live(later).contains("b"));
    assert!(m.holding().contains("b"), "until claimed");
    // the claim made: holder emptied
    m.sighting(
        LeaseSeen {
            holder: None,
            ..lease("b", 2)
        },
        later,
    );
    assert!(!m.holding().contains("b"));
    assert!(m.claimable(later).is_empty());
}

#[test]
fn a_listed_lease_is_never_forgotten_and_a_deleted_one_is_after_four_durations() {
    let t0 = Instant::now();
    let mut m = Membership::new("a", T);
    m.observe([lease("b", 1), lease("c", 1)], t0);
    // b keeps being listed unchanged, c is gone
    m.observe([lease("b", 1)], secs(t0, 59.0));
    assert!(m.holding().contains("c"));
    m.observe([lease("b", 1)], secs(t0, 61.0));
    assert!(
        m.holding().contains("b"),
        "still listed: still expired, not new"
    );
    assert!(!m.live(secs(t0, 61.0)).contains("b"));
    assert!(!m.holding().contains("c"), "deleted long ago");
}

#[test]
fn a_replica_acknowledged_by_every_live_one_owns_before_its_warm_up() {
    let t0 = Instant::now();
    let mut m = Membership::new("a", T);
    m.set_holder("a_2");
    m.renewed(t0, t0);
    m.observe([acking("b", 1, &["a_2"]), lease("c", 1)], t0);
    assert!(!m.may_own(secs(t0, 1.0)), "c has not acknowledged a_2");
    m.observe(
        [acking("b", 2, &["a_2", "c_1"]), acking("c", 2, &["a_1"])],
        secs(t0, 2.0),
    );
    assert!(
        !m.may_own(secs(t0, 2.0)),
        "c acknowledged an earlier life of a only"
    );
    m.observe(
        [acking("b", 3, &["a_2"]), acking("c", 3, &["a_2"])],
        secs(t0, 4.0),
    );
    assert!(m.may_own(secs(t0, 4.0)));
    assert_eq!(
        m.holding_holders(),
        ["b_1".to_owned(), "c_1".to_owned()].into(),
        "what our next renewal acknowledges: never ourselves"
    );
}

#[test]
fn after_taking_over_an_unreleased_lease_the_whole_warm_up_applies() {
    let t0 = Instant::now();
    let mut m = Membership::new("a", T);
    m.set_holder("a_2");
    m.inherited_unreleased(t0);
    m.renewed(t0, t0);
    for i in 1..=8 {
        let s = secs(t0, 2.0 * f64::from(i));
        m.observe([acking("b", i, &["a_2"])], s);
        m.renewed(s, s);
    }
    assert!(
        !m.may_own(secs(t0, 14.9)),
        "the previous life may still write"
    );
    assert!(m.may_own(secs(t0, 15.0)));
}

#[test]
fn an_expired_replica_is_not_asked_for_its_acknowledgement() {
    let t0 = Instant::now();
    let mut m = Membership::new("a", T);
    m.set_holder("a_2");
    // b was last seen renewing at 0 s, without acknowledging us
    m.observe([lease("b", 1), acking("c", 1, &[])], t0);
    // we (re)join at 20 s: b expired at 15 s, c acknowledges us
    m.renewed(secs(t0, 20.0), secs(t0, 20.0));
    m.observe([lease("b", 1), acking("c", 2, &["a_2"])], secs(t0, 20.0));
    assert!(m.may_own(secs(t0, 20.0)), "b expired: not asked");
}
