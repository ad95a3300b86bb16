//! The offline log cache's decisions: what goes in, what is dropped as hostile, what
//! is forgotten, and what an offline pod's `kubectl logs` is answered from.

use super::*;
use edge_protocol::{ContainerLogTail, LogTailReport};

fn tail(uid: &str, container: &str, data: &str) -> ContainerLogTail {
    ContainerLogTail {
        pod_uid: uid.into(),
        namespace: "default".into(),
        pod_name: "web".into(),
        container: container.into(),
        data: data.as_bytes().to_vec().into(),
        truncated: false,
        until: 1_000,
    }
}

/// A pod annotated `edge-kube.io/log-cache: off`, translated for `node`.
fn bind_opted_out(h: &Harness, name: &str, uid: &str, node: &str) {
    let p: Arc<Pod> = Arc::new(
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": "default", "uid": uid,
                "annotations": {"edge-kube.io/log-cache": "off"}},
            "spec": {"nodeName": node, "containers": [{"name": "app", "image": "busybox"}]}
        }))
        .unwrap(),
    );
    let t = translate_pod(
        &p,
        &PodReferences::default(),
        &h.fleet.node_context(&id(node)),
    );
    h.fleet.on_pod_translated(&id(node), p, t);
}

#[test]
fn only_tails_of_the_devices_own_cached_pods_are_kept() {
    let h = harness();
    send(&h.fleet, "pi-01", UpChannel::Hello, NodeReport::default());
    send(&h.fleet, "pi-02", UpChannel::Hello, NodeReport::default());
    bind(&h, "pi-01", "web", "u1");
    bind(&h, "pi-02", "db", "u2");
    bind_opted_out(&h, "quiet", "u3", "pi-01");
    let report = LogTailReport {
        containers: vec![
            tail("u1", "app", "mine\n"),
            tail("u1", "nope", "no such container\n"),
            tail("u2", "app", "another device's pod\n"),
            tail("u9", "app", "unknown pod\n"),
            tail("u3", "app", "opted out\n"),
        ],
    };
    send(&h.fleet, "pi-01", UpChannel::LogTail, report);
    let cache = h.fleet.fleet.log_cache();
    assert_eq!(cache.len(), 1, "only u1/app is cached");
    let kept = cache.get(&id("pi-01"), "u1", "app").unwrap();
    assert_eq!(kept.data.0, b"mine\n");
    let text = h.fleet.metrics().render();
    for reason in ["unknown_pod", "spoofed"] {
        assert!(
            text.contains(&format!("reason=\"{reason}\"")),
            "{reason}: {text}"
        );
    }
    // a deleted pod's tail is forgotten
    h.fleet.fleet.on_pod_deleted("u1");
    h.fleet.settle();
    assert!(cache.is_empty());
}

#[test]
fn an_offline_pods_logs_come_from_the_cache_with_the_time_it_went_offline() {
    let h = harness();
    send(&h.fleet, "pi-01", UpChannel::Hello, NodeReport::default());
    bind(&h, "pi-01", "web", "u1");
    bind_opted_out(&h, "quiet", "u3", "pi-01");
    let state = |h: &Harness, name: &str| {
        h.fleet
            .runner
            .borrow()
            .state()
            .offline_log_source("default", name, "app")
    };
    assert_eq!(state(&h, "web"), None, "online: the live log is read");
    let before = jiff::Timestamp::now();
    // the state message a device's last will publishes
    let last_will = DeviceState {
        online: false,
        reason: Some("connection lost".into()),
        since: 0,
    };
    send(&h.fleet, "pi-01", UpChannel::State, last_will);
    let source = state(&h, "web").unwrap();
    assert_eq!(
        (source.device.as_str(), source.pod_uid.as_str()),
        ("pi-01", "u1")
    );
    assert!(!source.pod.opted_out);
    let since = source.pod.since.0.expect("last heard from at the hello");
    assert!(
        since <= jiff::Timestamp::now() && since >= before - jiff::SignedDuration::from_secs(5)
    );
    assert!(state(&h, "quiet").unwrap().pod.opted_out);
    assert_eq!(state(&h, "other"), None);
}
