use super::*;

#[test]
fn doubles_to_the_cap_and_resets() {
    let t = LifecycleTimings::default();
    let mut b = Backoff::default();
    assert!(!b.in_backoff(0, 0), "first restart is immediate");
    let mut seen = Vec::new();
    for _ in 0..8 {
        b.advance(&t);
        seen.push(b.delay().as_secs());
    }
    assert_eq!(seen, vec![10, 20, 40, 80, 160, 300, 300, 300]);
    assert!(b.in_backoff(1_000, 1_000 + 299_999));
    assert!(!b.in_backoff(1_000, 1_000 + 300_000));
    b.reset_if_ran_long(Some(0), Some(599_999), &t);
    assert_eq!(b.delay().as_secs(), 300);
    b.reset_if_ran_long(Some(0), Some(600_000), &t);
    assert_eq!(b.delay(), Duration::ZERO);
    assert_eq!(Backoff::from_restarts(3, &t).delay().as_secs(), 40);
}
