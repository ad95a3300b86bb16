use super::*;

const MS: fn(u64) -> Duration = Duration::from_millis;

#[test]
fn failures_rotate_through_every_node() {
    let mut f = BrokerFailover::new(3, MS(200), MS(10_000));
    assert_eq!(f.current(), 0);
    let order: Vec<usize> = (0..4).map(|_| f.failed(0).0).collect();
    assert_eq!(order, [1, 2, 0, 1]);
    assert_eq!(f.current(), 1);
}

#[test]
fn waits_double_up_to_the_maximum_and_stay_within_half_to_all() {
    let mut f = BrokerFailover::new(2, MS(200), MS(1_000));
    let mut full = Vec::new();
    for _ in 0..5 {
        // the largest random gives the whole wait, zero gives half of it
        let mut copy = f.clone();
        let (_, low) = copy.failed(0);
        let (_, high) = f.failed(u64::MAX - 1);
        assert!(low <= high, "{low:?} > {high:?}");
        assert!(high >= low && high <= low * 2 + MS(1), "{low:?} {high:?}");
        full.push(low * 2);
    }
    assert_eq!(full, [MS(200), MS(400), MS(800), MS(1_000), MS(1_000)]);
}

#[test]
fn a_connection_starts_the_waits_over() {
    let mut f = BrokerFailover::new(3, MS(500), MS(30_000));
    for _ in 0..6 {
        f.failed(7);
    }
    f.connected();
    let (_, wait) = f.failed(0);
    assert_eq!(wait, MS(250));
    // the node does not go back to the first one: the next failure tries the next node
    assert_eq!(f.current(), 1);
}

#[test]
fn jitter_spreads_a_fleet() {
    let waits: std::collections::BTreeSet<Duration> = (0..50)
        .map(|_| {
            BrokerFailover::new(3, MS(1_000), MS(1_000))
                .failed(jitter_seed())
                .1
        })
        .collect();
    assert!(waits.len() > 10, "{waits:?}");
    assert!(waits.iter().all(|w| *w >= MS(500) && *w <= MS(1_000)));
}

#[test]
fn a_single_node_is_retried() {
    let mut f = BrokerFailover::new(1, MS(100), MS(100));
    assert_eq!(f.failed(3).0, 0);
    assert_eq!(f.failed(3).0, 0);
}
