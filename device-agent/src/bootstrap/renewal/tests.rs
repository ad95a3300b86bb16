use super::*;

#[test]
fn renewal_falls_between_70_and_90_percent_of_the_lifetime() {
    // 90 days from t=1000
    let (nb, na) = (1000, 1000 + 90 * 86_400);
    assert_eq!(renewal_at(nb, na, 0.0), 1000 + 63 * 86_400);
    assert_eq!(renewal_at(nb, na, 1.0), 1000 + 81 * 86_400);
    assert_eq!(renewal_at(nb, na, 0.5), 1000 + 72 * 86_400);
    // out-of-range jitter is clamped, a reversed validity renews at once
    assert_eq!(renewal_at(nb, na, 7.0), renewal_at(nb, na, 1.0));
    assert_eq!(renewal_at(nb, na, -1.0), renewal_at(nb, na, 0.0));
    assert_eq!(renewal_at(na, nb, 0.5), na);
    // a 60 s certificate renews between 42 s and 54 s
    for j in [0.0, 0.3, 1.0] {
        let at = renewal_at(0, 60, j);
        assert!((42..=54).contains(&at), "{at}");
    }
}

#[test]
fn jitter_is_in_range_and_varies() {
    let samples: Vec<f64> = (0..64).map(|_| jitter()).collect();
    assert!(samples.iter().all(|j| (0.0..=1.0).contains(j)));
    let first = samples[0];
    assert!(
        samples.iter().any(|j| (j - first).abs() > 1e-9),
        "{samples:?}"
    );
}

#[test]
fn a_failed_renewal_is_retried_within_the_time_left() {
    assert_eq!(retry_after(0, 1000), Duration::from_secs(100));
    assert_eq!(retry_after(0, 20), Duration::from_secs(5));
    assert_eq!(retry_after(0, 86_400 * 30), Duration::from_secs(600));
    assert_eq!(retry_after(100, 50), Duration::from_secs(5));
}
