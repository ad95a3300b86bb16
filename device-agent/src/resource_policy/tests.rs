use super::*;

#[test]
fn defaults_are_the_kubelets() {
    let p = ResourcePolicy::default();
    assert_eq!(
        p.log_rotation,
        Some(LogRotation {
            max_size_bytes: 10 << 20,
            max_files: 5
        })
    );
    assert_eq!(p.eviction_hard, EvictionThresholds::kubelet_defaults());
    assert_eq!(p.monitoring_interval, Some(Duration::from_secs(10)));
    assert_eq!(p.pressure_transition_period, Duration::from_secs(300));
    assert_eq!(p.image_gc, GcPolicy::default());
}

#[test]
fn settings_are_validated() {
    let raw = RawResourcePolicy {
        container_log_max_size: Some("1Mi".into()),
        container_log_max_files: Some(2),
        eviction_hard: Some("nodefs.available<50%".into()),
        eviction_monitoring_interval_seconds: Some(0.0),
        image_gc_high_threshold_percent: Some(60),
        image_gc_low_threshold_percent: Some(50),
        ..Default::default()
    };
    let p = ResourcePolicy::from_raw(&raw).unwrap();
    assert_eq!(p.log_rotation.unwrap().max_size_bytes, 1 << 20);
    assert_eq!(p.monitoring_interval, None);
    assert_eq!(p.image_gc.high_percent, 60);
    let off = RawResourcePolicy {
        container_log_max_size: Some("0".into()),
        ..Default::default()
    };
    assert_eq!(ResourcePolicy::from_raw(&off).unwrap().log_rotation, None);
    for bad in [
        RawResourcePolicy {
            container_log_max_size: Some("lots".into()),
            ..Default::default()
        },
        RawResourcePolicy {
            container_log_max_files: Some(0),
            ..Default::default()
        },
        RawResourcePolicy {
            eviction_hard: Some("disk<1".into()),
            ..Default::default()
        },
        RawResourcePolicy {
            image_gc_low_threshold_percent: Some(90),
            ..Default::default()
        },
        RawResourcePolicy {
            eviction_monitoring_interval_seconds: Some(-1.0),
            ..Default::default()
        },
    ] {
        assert!(ResourcePolicy::from_raw(&bad).is_err(), "{bad:?}");
    }
}
