use super::*;

#[test]
fn warns_once_when_the_limit_is_passed_and_again_only_after_falling_back() {
    let mut w = CapacityWatch::new(100);
    assert_eq!(w.observe(0), None);
    assert_eq!(w.observe(100), None, "at the limit is not over it");
    assert_eq!(
        w.observe(101),
        Some(CapacityEvent::Over {
            online: 101,
            limit: 100
        })
    );
    assert!(w.is_over());
    assert_eq!(w.observe(150), None, "reported once per crossing");
    assert_eq!(w.observe(95), None, "inside the 10 % band: still over");
    assert_eq!(
        w.observe(90),
        Some(CapacityEvent::BackUnder {
            online: 90,
            limit: 100
        })
    );
    assert!(!w.is_over());
    assert_eq!(w.observe(99), None);
    assert!(matches!(w.observe(101), Some(CapacityEvent::Over { .. })));
}

#[test]
fn a_limit_of_zero_turns_the_warning_off() {
    let mut w = CapacityWatch::new(0);
    assert_eq!(w.observe(1_000_000), None);
    assert!(!w.is_over());
}
