use edge_protocol::{ContainerSpec, NodeConditionKind, PodSpec, ResourceRequirements};

use super::*;

fn level(available: u64, capacity: u64) -> Option<Level> {
    Some(Level {
        available,
        capacity,
    })
}

#[test]
fn parses_the_kubelet_defaults_and_refuses_bad_thresholds() {
    let t = EvictionThresholds::kubelet_defaults();
    assert_eq!(t.0.len(), 4);
    assert_eq!(
        t.0[0],
        Threshold {
            signal: Signal::MemoryAvailable,
            value: ThresholdValue::Quantity(100 << 20)
        }
    );
    assert_eq!(t.0[1].value, ThresholdValue::Percent(10.0));
    assert_eq!(
        EvictionThresholds::parse("pid.available<1.5k").unwrap().0[0].value,
        ThresholdValue::Quantity(1500)
    );
    assert!(EvictionThresholds::parse("").unwrap().0.is_empty());
    assert!(matches!(
        EvictionThresholds::parse("memory.free<1Gi"),
        Err(ThresholdError::UnknownSignal(_))
    ));
    assert!(matches!(
        EvictionThresholds::parse("memory.available>1Gi"),
        Err(ThresholdError::Form(_))
    ));
    assert!(matches!(
        EvictionThresholds::parse("nodefs.available<120%"),
        Err(ThresholdError::Value(_))
    ));
    assert!(matches!(
        EvictionThresholds::parse("nodefs.available<lots"),
        Err(ThresholdError::Value(_))
    ));
    assert_eq!(parse_quantity("100Mi"), Some(100 << 20));
    assert_eq!(parse_quantity("2G"), Some(2_000_000_000));
    assert_eq!(parse_quantity("-1"), None);
}

#[test]
fn crossed_thresholds_by_percent_and_quantity() {
    let t = EvictionThresholds::kubelet_defaults();
    let healthy = Measurements {
        memory: level(500 << 20, 1 << 30),
        nodefs: level(20, 100),
        nodefs_inodes: level(50, 1000),
        imagefs: level(16, 100),
        imagefs_inodes: level(1, 1000),
        pids: level(1, 100),
    };
    assert!(t.crossed(&healthy).is_empty());
    let full = Measurements {
        memory: level(99 << 20, 1 << 30),
        nodefs: level(9, 100),
        nodefs_inodes: level(49, 1000),
        imagefs: level(14, 100),
        ..healthy
    };
    let crossed = t.crossed(&full);
    let signals: Vec<Signal> = crossed.iter().map(|c| c.signal).collect();
    assert_eq!(
        signals,
        [
            Signal::MemoryAvailable,
            Signal::NodeFsAvailable,
            Signal::NodeFsInodesFree,
            Signal::ImageFsAvailable
        ]
    );
    assert_eq!(crossed[1].threshold, 10);
    assert_eq!(
        crossed[1].eviction_message(),
        "The node was low on resource: ephemeral-storage. Threshold quantity: 10, available: 9. "
    );
    // unmeasured figures never cross
    assert!(t.crossed(&Measurements::default()).is_empty());
}

#[test]
fn conditions_turn_true_at_once_and_false_after_the_transition_period() {
    let t = EvictionThresholds::parse("nodefs.available<10%").unwrap();
    let mut c = PressureConditions::new(Duration::from_secs(60), 1_000);
    let full = Measurements {
        nodefs: level(5, 100),
        ..Default::default()
    };
    let fine = Measurements {
        nodefs: level(50, 100),
        ..Default::default()
    };
    assert!(!c.observe(&t.crossed(&fine), 2_000));
    assert!(c.observe(&t.crossed(&full), 3_000));
    assert!(c.under_pressure(NodeConditionKind::DiskPressure));
    assert!(!c.under_pressure(NodeConditionKind::MemoryPressure));
    let disk = c
        .conditions()
        .into_iter()
        .find(|x| x.kind == NodeConditionKind::DiskPressure)
        .unwrap();
    assert!(disk.pressure);
    assert_eq!(disk.since, 3_000);
    assert_eq!(disk.message, "nodefs.available 5 < 10");
    // below the threshold again: still True within the transition period
    assert!(!c.observe(&t.crossed(&fine), 30_000));
    assert!(c.under_pressure(NodeConditionKind::DiskPressure));
    assert!(c.observe(&t.crossed(&fine), 63_000));
    assert!(!c.under_pressure(NodeConditionKind::DiskPressure));
    assert_eq!(c.conditions().len(), 3);
}

fn pod(uid: &str, resources: &[ResourceRequirements]) -> PodSpec {
    PodSpec {
        uid: uid.into(),
        containers: resources
            .iter()
            .map(|r| ContainerSpec {
                name: "c".into(),
                resources: r.clone(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

#[test]
fn qos_classes_follow_kubernetes() {
    let none = ResourceRequirements::default();
    let limits = ResourceRequirements {
        cpu_limit_millis: Some(100),
        memory_limit_bytes: Some(1 << 20),
        ..Default::default()
    };
    let equal = ResourceRequirements {
        cpu_request_millis: Some(100),
        memory_request_bytes: Some(1 << 20),
        ..limits.clone()
    };
    let request_only = ResourceRequirements {
        memory_request_bytes: Some(1 << 20),
        ..Default::default()
    };
    assert_eq!(
        qos_class(&pod("a", std::slice::from_ref(&none))),
        QosClass::BestEffort
    );
    assert_eq!(
        qos_class(&pod("a", std::slice::from_ref(&limits))),
        QosClass::Guaranteed
    );
    assert_eq!(
        qos_class(&pod("a", std::slice::from_ref(&equal))),
        QosClass::Guaranteed
    );
    assert_eq!(qos_class(&pod("a", &[request_only])), QosClass::Burstable);
    assert_eq!(qos_class(&pod("a", &[equal, none])), QosClass::Burstable);
}

#[test]
fn victims_in_the_kubelets_order() {
    let c = |uid: &str, qos, usage, request| EvictionCandidate {
        uid: uid.into(),
        qos,
        usage,
        request,
    };
    // disk: usage unknown, BestEffort first, Guaranteed last
    let disk = [
        c("g", QosClass::Guaranteed, None, 0),
        c("b", QosClass::Burstable, None, 10),
        c("e", QosClass::BestEffort, None, 0),
    ];
    assert_eq!(choose_victim(&disk).unwrap().uid, "e");
    assert_eq!(choose_victim(&disk[..2]).unwrap().uid, "g");
    assert_eq!(choose_victim(&disk[1..2]).unwrap().uid, "b");
    // memory: over the request first, then by how far over
    let memory = [
        c("g", QosClass::Guaranteed, Some(90), 100),
        c("b1", QosClass::Burstable, Some(150), 100),
        c("b2", QosClass::Burstable, Some(400), 100),
        c("e", QosClass::BestEffort, Some(10), 0),
    ];
    assert_eq!(choose_victim(&memory).unwrap().uid, "b2");
    assert_eq!(
        choose_victim(&[memory[0].clone(), memory[3].clone()])
            .unwrap()
            .uid,
        "e"
    );
    assert!(choose_victim(&[]).is_none());
}
