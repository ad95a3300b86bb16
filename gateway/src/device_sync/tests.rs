//! Unit tests of the pure desired-set state machine.

use super::*;

fn spec(uid: &str) -> PodSpec {
    PodSpec {
        uid: uid.into(),
        namespace: "default".into(),
        name: format!("pod-{uid}"),
        ..Default::default()
    }
}

fn terminating(uid: &str) -> PodSpec {
    PodSpec {
        deletion_grace_period_seconds: Some(5),
        ..spec(uid)
    }
}

fn dev() -> DeviceId {
    DeviceId::new("pi-01").unwrap()
}

fn publishes(effects: &[SyncEffect]) -> Vec<u64> {
    effects
        .iter()
        .filter_map(|e| match e {
            SyncEffect::Publish(s) => Some(s.generation),
            _ => None,
        })
        .collect()
}

fn deletes(effects: &[SyncEffect]) -> Vec<String> {
    effects
        .iter()
        .filter_map(|e| match e {
            SyncEffect::DeletePod { uid, .. } => Some(uid.clone()),
            _ => None,
        })
        .collect()
}

fn online_synced() -> DeviceSync {
    let mut s = DeviceSync::new(dev());
    s.handle(SyncInput::Online);
    s.handle(SyncInput::KubernetesSynced {
        present: BTreeSet::new(),
    });
    s
}

#[test]
fn nothing_is_published_before_kubernetes_is_synced() {
    let mut s = DeviceSync::new(dev());
    s.handle(SyncInput::Online);
    let e = s.handle(SyncInput::PodUpserted(spec("a")));
    assert!(matches!(e[0], SyncEffect::Persist(_)));
    assert!(publishes(&e).is_empty());
    let e = s.handle(SyncInput::KubernetesSynced {
        present: BTreeSet::from(["a".to_owned()]),
    });
    assert_eq!(publishes(&e), vec![1]);
}

#[test]
fn persist_comes_before_publish_and_generations_increase() {
    let mut s = online_synced();
    let e = s.handle(SyncInput::PodUpserted(spec("a")));
    assert!(matches!(e[0], SyncEffect::Persist(ref p) if p.desired.generation == 1));
    assert_eq!(publishes(&e), vec![1]);
    // unchanged spec: nothing
    assert!(s.handle(SyncInput::PodUpserted(spec("a"))).is_empty());
    let e = s.handle(SyncInput::PodUpserted(spec("b")));
    assert_eq!(publishes(&e), vec![2]);
    assert_eq!(s.desired_set().pods.len(), 2);
}

#[test]
fn offline_devices_get_the_set_when_back() {
    let mut s = online_synced();
    s.handle(SyncInput::Offline);
    let e = s.handle(SyncInput::PodUpserted(spec("a")));
    assert!(publishes(&e).is_empty());
    s.handle(SyncInput::PodUpserted(spec("b")));
    let e = s.handle(SyncInput::Online);
    assert_eq!(publishes(&e), vec![2]);
    // coming online again without changes does not re-send
    s.handle(SyncInput::Offline);
    assert!(publishes(&s.handle(SyncInput::Online)).is_empty());
}

#[test]
fn restored_acknowledged_set_is_not_resent() {
    let mut s = online_synced();
    s.handle(SyncInput::PodUpserted(spec("a")));
    s.handle(SyncInput::Heartbeat {
        observed_generation: 1,
    });
    let stored = s.persisted();
    assert_eq!(stored.acked_generation, 1);
    let mut r = DeviceSync::restore(dev(), stored);
    r.handle(SyncInput::Online);
    assert!(r.handle(SyncInput::PodUpserted(spec("a"))).is_empty());
    let e = r.handle(SyncInput::KubernetesSynced {
        present: BTreeSet::from(["a".to_owned()]),
    });
    assert!(publishes(&e).is_empty(), "{e:?}");
}

#[test]
fn restored_unacknowledged_set_is_sent_once() {
    let stored = PersistedDevice {
        desired: DesiredSet {
            generation: 3,
            pods: vec![spec("a")],
        },
        acked_generation: 2,
    };
    let mut r = DeviceSync::restore(dev(), stored);
    r.handle(SyncInput::Online);
    let e = r.handle(SyncInput::KubernetesSynced {
        present: BTreeSet::from(["a".to_owned()]),
    });
    assert_eq!(publishes(&e), vec![3]);
}

#[test]
fn pods_gone_while_the_gateway_was_down_are_removed_after_sync() {
    let stored = PersistedDevice {
        desired: DesiredSet {
            generation: 3,
            pods: vec![spec("a"), spec("b")],
        },
        acked_generation: 3,
    };
    let mut r = DeviceSync::restore(dev(), stored);
    // offline device: the removal is stored but not sent yet
    let e = r.handle(SyncInput::KubernetesSynced {
        present: BTreeSet::from(["a".to_owned()]),
    });
    assert!(publishes(&e).is_empty());
    assert_eq!(r.desired_set().pods.len(), 1);
    assert_eq!(publishes(&r.handle(SyncInput::Online)), vec![4]);
}

#[test]
fn restored_terminating_pods_wait_for_the_device_even_unacknowledged() {
    let stored = PersistedDevice {
        desired: DesiredSet {
            generation: 5,
            pods: vec![spec("a")],
        },
        acked_generation: 3,
    };
    let mut r = DeviceSync::restore(dev(), stored);
    let e = r.handle(SyncInput::PodUpserted(terminating("a")));
    assert!(deletes(&e).is_empty(), "{e:?}");
    assert!(r.pod("a").unwrap().is_terminating());
}

#[test]
fn resync_request_resends_the_full_set() {
    let mut s = online_synced();
    s.handle(SyncInput::PodUpserted(spec("a")));
    let e = s.handle(SyncInput::ResyncRequested {
        known_generation: 0,
    });
    assert_eq!(publishes(&e), vec![1]);
}

#[test]
fn terminating_pod_that_never_reached_the_device_is_deleted_at_once() {
    let mut s = DeviceSync::new(dev());
    s.handle(SyncInput::KubernetesSynced {
        present: BTreeSet::new(),
    });
    s.handle(SyncInput::PodUpserted(spec("a")));
    let e = s.handle(SyncInput::PodUpserted(terminating("a")));
    assert_eq!(deletes(&e), vec!["a"]);
    assert!(!s.has_pod("a"));
}

#[test]
fn terminating_pod_on_the_device_waits_for_removed() {
    let mut s = online_synced();
    s.handle(SyncInput::PodUpserted(spec("a")));
    s.handle(SyncInput::StatusReport {
        observed_generation: 1,
        full: false,
        pods: vec![ReportedPod {
            uid: "a".into(),
            removed: false,
        }],
    });
    let e = s.handle(SyncInput::PodUpserted(terminating("a")));
    assert!(deletes(&e).is_empty());
    assert_eq!(publishes(&e), vec![2]);
    let removed = SyncInput::StatusReport {
        observed_generation: 2,
        full: false,
        pods: vec![ReportedPod {
            uid: "a".into(),
            removed: true,
        }],
    };
    assert_eq!(deletes(&s.handle(removed.clone())), vec!["a"]);
    // a duplicate report does not delete twice; a failed delete allows a retry
    assert!(deletes(&s.handle(removed.clone())).is_empty());
    s.handle(SyncInput::DeleteFailed { uid: "a".into() });
    assert_eq!(deletes(&s.handle(removed)), vec!["a"]);
    let e = s.handle(SyncInput::PodRemoved { uid: "a".into() });
    assert_eq!(publishes(&e), vec![3]);
}

#[test]
fn full_report_without_a_terminating_pod_means_it_is_gone() {
    let mut s = online_synced();
    s.handle(SyncInput::PodUpserted(spec("a")));
    s.handle(SyncInput::Heartbeat {
        observed_generation: 1,
    });
    s.handle(SyncInput::PodUpserted(terminating("a")));
    let e = s.handle(SyncInput::StatusReport {
        observed_generation: 2,
        full: true,
        pods: vec![],
    });
    assert_eq!(deletes(&e), vec!["a"]);
}

#[test]
fn stray_pods_trigger_one_republish_per_generation() {
    let mut s = online_synced();
    s.handle(SyncInput::PodUpserted(spec("a")));
    let stray = SyncInput::StatusReport {
        observed_generation: 1,
        full: false,
        pods: vec![ReportedPod {
            uid: "ghost".into(),
            removed: false,
        }],
    };
    assert_eq!(publishes(&s.handle(stray.clone())), vec![1]);
    assert!(publishes(&s.handle(stray)).is_empty());
}

#[test]
fn stale_reports_with_extra_pods_do_not_trigger_a_republish() {
    let mut s = online_synced();
    s.handle(SyncInput::PodUpserted(spec("a")));
    s.handle(SyncInput::PodUpserted(spec("b")));
    let e = s.handle(SyncInput::StatusReport {
        observed_generation: 1,
        full: true,
        pods: vec![ReportedPod {
            uid: "old".into(),
            removed: false,
        }],
    });
    assert!(publishes(&e).is_empty(), "{e:?}");
}

#[test]
fn device_ahead_of_us_gets_a_higher_generation() {
    let mut s = online_synced();
    s.handle(SyncInput::PodUpserted(spec("a")));
    let e = s.handle(SyncInput::Heartbeat {
        observed_generation: 40,
    });
    assert_eq!(publishes(&e), vec![41]);
    assert_eq!(s.generation(), 41);
}

#[test]
fn acknowledgements_are_persisted_once() {
    let mut s = online_synced();
    s.handle(SyncInput::PodUpserted(spec("a")));
    let e = s.handle(SyncInput::Heartbeat {
        observed_generation: 1,
    });
    assert!(matches!(&e[..], [SyncEffect::Persist(p)] if p.acked_generation == 1));
    assert!(
        s.handle(SyncInput::Heartbeat {
            observed_generation: 1
        })
        .is_empty()
    );
}

#[test]
fn terminating_pod_sent_but_unconfirmed_waits_for_the_device() {
    // published while online, then the device dropped before confirming: it may run
    // the pod, so an eviction must not force-delete it behind the device's back
    let mut s = online_synced();
    assert_eq!(
        publishes(&s.handle(SyncInput::PodUpserted(spec("a")))),
        vec![1]
    );
    s.handle(SyncInput::Offline);
    let e = s.handle(SyncInput::PodUpserted(terminating("a")));
    assert!(deletes(&e).is_empty(), "{e:?}");
    assert!(s.pod("a").unwrap().is_terminating());
    // back online: the deletion is delivered, and confirmed removal deletes it
    assert_eq!(publishes(&s.handle(SyncInput::Online)), vec![2]);
    let e = s.handle(SyncInput::StatusReport {
        observed_generation: 2,
        full: false,
        pods: vec![ReportedPod {
            uid: "a".into(),
            removed: true,
        }],
    });
    assert_eq!(deletes(&e), vec!["a"]);
}

fn big(uid: &str, bytes: usize) -> PodSpec {
    PodSpec {
        hostname: Some("x".repeat(bytes)),
        ..spec(uid)
    }
}

#[test]
fn pod_that_would_overflow_the_set_is_refused_and_the_rest_flows() {
    let mut s = online_synced();
    let third = ADMISSION_LIMIT_BYTES / 3;
    s.handle(SyncInput::PodUpserted(big("a", third)));
    s.handle(SyncInput::PodUpserted(big("b", third)));
    let generation = s.generation();
    let e = s.handle(SyncInput::PodUpserted(big("c", third)));
    assert!(
        matches!(&e[..], [SyncEffect::Refused { uid, new_pod: true, size, limit, .. }]
            if uid == "c" && size > limit),
        "{e:?}"
    );
    assert_eq!(s.generation(), generation, "a refused pod changes nothing");
    assert!(!s.has_pod("c"));
    // a change that makes a running pod too large keeps the old spec on the device
    let e = s.handle(SyncInput::PodUpserted(big("a", 2 * third)));
    assert!(
        matches!(&e[..], [SyncEffect::Refused { new_pod: false, .. }]),
        "{e:?}"
    );
    assert_eq!(s.pod("a").unwrap().hostname.as_ref().unwrap().len(), third);
    // smaller pods still flow, and deleting a pod is never refused
    assert_eq!(
        publishes(&s.handle(SyncInput::PodUpserted(spec("d")))),
        vec![generation + 1]
    );
    let e = s.handle(SyncInput::PodUpserted(PodSpec {
        deletion_grace_period_seconds: Some(30),
        ..big("a", third)
    }));
    assert_eq!(publishes(&e), vec![generation + 2]);
    let set = s.desired_set();
    let encoded = edge_protocol::Message::DesiredSet(set).encode();
    assert!(encoded.is_ok(), "the set still fits one message");
}

#[test]
fn unacknowledged_sets_are_sent_again_after_the_broker_lost_our_session() {
    let mut s = online_synced();
    s.handle(SyncInput::PodUpserted(spec("a")));
    s.handle(SyncInput::Heartbeat {
        observed_generation: 1,
    });
    // acknowledged: nothing to resend
    assert!(s.handle(SyncInput::BrokerSessionLost).is_empty());
    assert_eq!(
        publishes(&s.handle(SyncInput::PodUpserted(spec("b")))),
        vec![2]
    );
    assert_eq!(publishes(&s.handle(SyncInput::BrokerSessionLost)), vec![2]);
    // an offline device gets it when it is back
    s.handle(SyncInput::Offline);
    assert!(publishes(&s.handle(SyncInput::BrokerSessionLost)).is_empty());
    assert_eq!(publishes(&s.handle(SyncInput::Online)), vec![2]);
}

#[test]
fn a_device_cannot_make_the_generation_wrap() {
    let mut s = online_synced();
    s.handle(SyncInput::PodUpserted(spec("a")));
    let e = s.handle(SyncInput::Heartbeat {
        observed_generation: u64::MAX,
    });
    assert!(e.is_empty(), "{e:?}");
    assert_eq!(s.generation(), 1);
    assert_eq!(
        publishes(&s.handle(SyncInput::PodUpserted(spec("b")))),
        vec![2]
    );
    // a device ahead within reason still moves the generation past it
    let e = s.handle(SyncInput::Heartbeat {
        observed_generation: MAX_GENERATION,
    });
    assert_eq!(publishes(&e), vec![MAX_GENERATION + 1]);
}

#[test]
fn a_set_the_heartbeats_never_show_is_published_again() {
    let mut s = online_synced();
    assert_eq!(
        publishes(&s.handle(SyncInput::PodUpserted(spec("a")))),
        vec![1]
    );
    // the broker acknowledged generation 1 and lost it: the device still shows 0
    for _ in 1..UNANSWERED_HEARTBEATS {
        let e = s.handle(SyncInput::Heartbeat {
            observed_generation: 0,
        });
        assert!(publishes(&e).is_empty(), "too early: {e:?}");
    }
    let e = s.handle(SyncInput::Heartbeat {
        observed_generation: 0,
    });
    assert_eq!(publishes(&e), vec![1]);
    // once the device shows it, heartbeats send nothing
    for _ in 0..UNANSWERED_HEARTBEATS * 2 {
        let e = s.handle(SyncInput::Heartbeat {
            observed_generation: 1,
        });
        assert!(publishes(&e).is_empty(), "{e:?}");
    }
    // nor to an offline device (it gets the set when it is back)
    s.handle(SyncInput::Offline);
    s.handle(SyncInput::PodUpserted(spec("b")));
    for _ in 0..UNANSWERED_HEARTBEATS * 2 {
        let e = s.handle(SyncInput::Heartbeat {
            observed_generation: 1,
        });
        assert!(publishes(&e).is_empty(), "{e:?}");
    }
}
