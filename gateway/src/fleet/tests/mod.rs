//! Unit tests of the fleet: device messages in, Kubernetes writes and MQTT messages out.

mod decisions;
mod ephemeral;
mod evicted_while_offline;
mod faults_and_hostile_devices;
mod handover;
mod live_updates;
mod log_cache;
mod node_pressure;
mod retirement;
mod runner_order;

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::sync::Arc;

use super::*;
use crate::kube_writer::{KubeOp, KubeOps};
use crate::metrics::Metrics;
use crate::store::Store;
use crate::translation::{PodReferences, translate_pod};
use edge_protocol::{
    ContainerState, ContainerStatus, DeviceState, Heartbeat, Message, NodeReport, PodEventReport,
    PodPhase, PodStatus as DevicePodStatus, PodStatusReport, Topic, UpChannel,
};
use k8s_openapi::api::core::v1::Pod;

/// The fleet as the gateway runs it (its handle, its runner, the device directory),
/// with the runner driven synchronously: every call runs what it queued before it
/// returns, so the effects are in the channels when the test looks.
struct TestFleet {
    fleet: Fleet,
    runner: RefCell<FleetRunner>,
    settings: FleetSettings,
    outbox: mpsc::UnboundedSender<Outgoing>,
    pod_watch: mpsc::UnboundedSender<PodWatchRequest>,
}

impl TestFleet {
    /// A fleet over `store` (with fresh metrics) and these queues.
    fn new(
        settings: FleetSettings,
        store: Store,
        ops: KubeOps,
        outbox: mpsc::UnboundedSender<Outgoing>,
        pod_watch: mpsc::UnboundedSender<PodWatchRequest>,
    ) -> Self {
        let metrics = Arc::new(Metrics::new());
        let fleet = Fleet::new(
            settings.clone(),
            store,
            metrics,
            ops,
            outbox.clone(),
            pod_watch.clone(),
        );
        let runner = RefCell::new(fleet.take_runner().unwrap());
        Self {
            fleet,
            runner,
            settings,
            outbox,
            pod_watch,
        }
    }

    fn settle(&self) {
        self.runner.borrow_mut().run_queued();
    }

    fn on_mqtt(&self, topic: &str, payload: &[u8], retained: bool) {
        crate::mqtt_link::dispatch(&self.fleet, topic, payload, retained);
        self.settle();
    }

    fn tick(&self) {
        self.fleet.tick();
        self.settle();
    }

    fn on_feedback(&self, feedback: KubeFeedback) {
        self.fleet.on_feedback(feedback);
        self.settle();
    }

    fn on_pod_translated(
        &self,
        device: &DeviceId,
        pod: Arc<Pod>,
        result: Result<crate::translation::Translation, crate::translation::TranslationError>,
    ) {
        self.fleet.on_pod_translated(device, pod, result);
        self.settle();
    }

    fn on_pod_refreshed(&self, pod: Arc<Pod>) {
        self.fleet.on_pod_refreshed(pod);
        self.settle();
    }

    fn on_pods_synced(&self, device: &DeviceId, present: BTreeSet<String>) {
        self.fleet.on_pods_synced(device, present);
        self.settle();
    }

    fn start_log_request(
        &self,
        device: &DeviceId,
        request: edge_protocol::LogRequest,
    ) -> (
        edge_protocol::RequestId,
        mpsc::Receiver<edge_protocol::LogChunk>,
    ) {
        let started = self.fleet.start_log_request(device, request);
        self.settle();
        started
    }

    fn is_online(&self, device: &DeviceId) -> bool {
        self.fleet.is_online(device)
    }

    fn is_known(&self, node: &str) -> bool {
        self.fleet.is_known(node)
    }

    fn node_context(&self, device: &DeviceId) -> crate::translation::NodeContext {
        self.fleet.node_context(device)
    }

    fn log_target(
        &self,
        namespace: &str,
        name: &str,
        container: &str,
    ) -> Result<(DeviceId, String), LogTargetError> {
        self.runner
            .borrow()
            .state()
            .log_target(namespace, name, container)
    }

    fn pods(&self) -> Vec<Arc<Pod>> {
        self.runner.borrow().state().pods()
    }

    fn desired_set(&self, device: &DeviceId) -> Option<edge_protocol::DesiredSet> {
        self.runner.borrow().state().desired_set(device)
    }

    fn metrics(&self) -> &Metrics {
        self.fleet.metrics()
    }

    fn health(&self) -> &Arc<crate::health::Health> {
        self.fleet.health()
    }

    fn store(&self) -> &Store {
        self.fleet.store()
    }
}

struct Harness {
    _dir: tempfile::TempDir,
    fleet: TestFleet,
    ops: mpsc::UnboundedReceiver<KubeOp>,
    outbox: mpsc::UnboundedReceiver<Outgoing>,
    watch: mpsc::UnboundedReceiver<PodWatchRequest>,
}

fn harness() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let (ops, ops_rx) = KubeOps::detached();
    let (out_tx, out_rx) = mpsc::unbounded_channel();
    let (watch_tx, watch_rx) = mpsc::unbounded_channel();
    let fleet = TestFleet::new(
        FleetSettings::local(dir.path()),
        store,
        ops,
        out_tx,
        watch_tx,
    );
    Harness {
        _dir: dir,
        fleet,
        ops: ops_rx,
        outbox: out_rx,
        watch: watch_rx,
    }
}

fn send(fleet: &TestFleet, device: &str, channel: UpChannel, msg: impl Into<Message>) {
    let id = DeviceId::new(device).unwrap();
    let topic = Topic::up(&id, channel).to_string();
    fleet.on_mqtt(&topic, &msg.into().encode().unwrap(), false);
}

fn id(device: &str) -> DeviceId {
    DeviceId::new(device).unwrap()
}

fn registered(h: &Harness, device: &str) {
    h.fleet.on_feedback(KubeFeedback::NodeRegistered {
        device: id(device),
        uid: Some(format!("uid-{device}")),
    });
}

fn publishes(out: &[Outgoing], device: &str) -> Vec<DesiredSet> {
    out.iter()
        .filter_map(|o| match o {
            Outgoing::Desired { device: d, set } if d.as_str() == device => Some(set.clone()),
            _ => None,
        })
        .collect()
}

fn drain<T>(rx: &mut mpsc::UnboundedReceiver<T>) -> Vec<T> {
    let mut v = Vec::new();
    while let Ok(x) = rx.try_recv() {
        v.push(x);
    }
    v
}

fn pod(name: &str, uid: &str, node: &str) -> Arc<Pod> {
    Arc::new(
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": "default", "uid": uid},
            "spec": {"nodeName": node, "containers": [{"name": "app", "image": "busybox"}]}
        }))
        .unwrap(),
    )
}

fn running(uid: &str) -> DevicePodStatus {
    DevicePodStatus {
        uid: uid.into(),
        phase: PodPhase::Running,
        containers: vec![ContainerStatus {
            name: "app".into(),
            state: ContainerState::Running { started_at: 1 },
            ready: true,
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn bind(h: &Harness, device: &str, name: &str, uid: &str) {
    let id = DeviceId::new(device).unwrap();
    let p = pod(name, uid, device);
    let t = translate_pod(&p, &PodReferences::default(), &h.fleet.node_context(&id));
    h.fleet.on_pod_translated(&id, p, t);
    h.fleet
        .on_pods_synced(&id, BTreeSet::from([uid.to_owned()]));
}

#[test]
fn hello_registers_the_node_and_publishes_after_sync() {
    let mut h = harness();
    send(&h.fleet, "pi-01", UpChannel::Hello, NodeReport::default());
    let ops = drain(&mut h.ops);
    assert!(
        matches!(&ops[..], [KubeOp::UpsertNode { device, .. }] if device.as_str() == "pi-01"),
        "{ops:?}"
    );
    assert!(h.fleet.is_online(&DeviceId::new("pi-01").unwrap()));
    bind(&h, "pi-01", "web", "u1");
    let out = drain(&mut h.outbox);
    assert!(
        out.iter()
            .any(|o| matches!(o, Outgoing::Desired { set, .. } if set.pods.len() == 1)),
        "{out:?}"
    );
}

#[test]
fn a_device_cannot_change_another_devices_pods() {
    let mut h = harness();
    send(&h.fleet, "pi-01", UpChannel::Hello, NodeReport::default());
    send(&h.fleet, "evil", UpChannel::Hello, NodeReport::default());
    bind(&h, "pi-01", "web", "u1");
    drain(&mut h.ops);
    let spoof = PodStatusReport {
        sequence: 1,
        observed_generation: 1,
        full: false,
        pods: vec![running("u1")],
    };
    send(&h.fleet, "evil", UpChannel::Status, spoof.clone());
    let ops = drain(&mut h.ops);
    assert!(
        !ops.iter()
            .any(|o| matches!(o, KubeOp::PatchPodStatus { .. })),
        "{ops:?}"
    );
    // the real device's report is applied
    send(&h.fleet, "pi-01", UpChannel::Status, spoof);
    let ops = drain(&mut h.ops);
    assert!(
        ops.iter()
            .any(|o| matches!(o, KubeOp::PatchPodStatus { uid, .. } if uid == "u1")),
        "{ops:?}"
    );
    // events about another device's pod are dropped too
    let event = PodEventReport {
        events: vec![edge_protocol::PodEvent {
            pod_uid: "u1".into(),
            reason: "Started".into(),
            ..Default::default()
        }],
    };
    send(&h.fleet, "evil", UpChannel::Events, event.clone());
    assert!(drain(&mut h.ops).is_empty());
    send(&h.fleet, "pi-01", UpChannel::Events, event);
    assert!(matches!(
        &drain(&mut h.ops)[..],
        [KubeOp::RecordEvent { .. }]
    ));
}

#[test]
fn duplicate_reports_are_ignored_and_unchanged_status_not_repatched() {
    let mut h = harness();
    send(&h.fleet, "pi-01", UpChannel::Hello, NodeReport::default());
    bind(&h, "pi-01", "web", "u1");
    drain(&mut h.ops);
    let report = |seq| PodStatusReport {
        sequence: seq,
        observed_generation: 1,
        full: false,
        pods: vec![running("u1")],
    };
    send(&h.fleet, "pi-01", UpChannel::Status, report(5));
    let ops = drain(&mut h.ops);
    let [KubeOp::PatchPodStatus { status, .. }] = &ops[..] else {
        panic!("{ops:?}")
    };
    // the watch brings our own patch back
    let mut refreshed = (*pod("web", "u1", "pi-01")).clone();
    refreshed.status = Some((**status).clone());
    h.fleet.on_pod_refreshed(Arc::new(refreshed.clone()));
    send(&h.fleet, "pi-01", UpChannel::Status, report(5));
    send(&h.fleet, "pi-01", UpChannel::Status, report(6));
    assert!(drain(&mut h.ops).is_empty());
    // someone else (the node lifecycle controller) marks the pod not ready: the
    // device's next report restores its truth
    let mut marked = refreshed;
    if let Some(conds) = marked.status.as_mut().and_then(|s| s.conditions.as_mut()) {
        for c in conds.iter_mut().filter(|c| c.type_ == "Ready") {
            c.status = "False".into();
        }
    }
    h.fleet.on_pod_refreshed(Arc::new(marked));
    send(&h.fleet, "pi-01", UpChannel::Status, report(7));
    assert!(matches!(
        &drain(&mut h.ops)[..],
        [KubeOp::PatchPodStatus { .. }]
    ));
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
    #[test]
    fn any_bytes_on_any_topic_never_panic(
        topic in "edge/v1/(pi-01|evil|[a-z]{1,5}|\\+)/(up|down)/(hello|heartbeat|state|status|events|resync|logs/[a-z0-9]{1,4}|desired)",
        payload in proptest::collection::vec(proptest::num::u8::ANY, 0..300),
        json_body in "\\{\"protocol\":\"1\\.0\",\"kind\":\"(nodeReport|podStatusReport|podEventReport|heartbeat|deviceState|resyncRequest|logChunk)\",\"body\":\\{\\}\\}",
    ) {
        let h = harness();
        send(&h.fleet, "pi-01", UpChannel::Hello, NodeReport::default());
        h.fleet.on_mqtt(&topic, &payload, false);
        h.fleet.on_mqtt(&topic, json_body.as_bytes(), true);
    }
}

#[test]
fn an_unknown_connected_device_is_asked_to_introduce_itself_once() {
    let mut h = harness();
    let heartbeat = Message::from(Heartbeat::default()).encode().unwrap();
    h.fleet
        .on_mqtt("edge/v1/pi-09/up/heartbeat", &heartbeat, false);
    h.fleet
        .on_mqtt("edge/v1/pi-09/up/heartbeat", &heartbeat, false);
    let online = Message::from(DeviceState {
        online: true,
        reason: None,
        since: 0,
    })
    .encode()
    .unwrap();
    h.fleet.on_mqtt("edge/v1/pi-09/up/state", &online, true);
    let asked: Vec<_> = drain(&mut h.outbox)
        .into_iter()
        .filter_map(|o| match o {
            Outgoing::StatusResync { device, .. } => Some(device.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(
        asked,
        vec!["pi-09".to_owned()],
        "asked once within the interval"
    );
    // A retained offline state of an unknown device asks for nothing.
    let offline = Message::from(DeviceState::default()).encode().unwrap();
    h.fleet.on_mqtt("edge/v1/pi-10/up/state", &offline, true);
    assert!(drain(&mut h.outbox).is_empty());
}

#[test]
fn garbage_is_counted_and_dropped() {
    let h = harness();
    h.fleet
        .on_mqtt("edge/v1/pi-01/up/status", b"\xff\x00", false);
    h.fleet.on_mqtt("edge/v1/PI/up/status", b"{}", false);
    h.fleet.on_mqtt("edge/v1/pi-01/down/desired", b"{}", false);
    h.fleet.on_mqtt(
        "edge/v1/pi-01/up/heartbeat",
        &Message::from(Heartbeat::default()).encode().unwrap(),
        false,
    );
    let text = h.fleet.metrics().render();
    for reason in [
        "malformed",
        "bad_topic",
        "unexpected_direction",
        "unknown_device",
    ] {
        assert!(
            text.contains(&format!("reason=\"{reason}\"")),
            "{reason}: {text}"
        );
    }
}

#[test]
fn offline_device_gets_no_publish_and_logs_refused() {
    let mut h = harness();
    send(&h.fleet, "pi-01", UpChannel::Hello, NodeReport::default());
    bind(&h, "pi-01", "web", "u1");
    drain(&mut h.outbox);
    send(
        &h.fleet,
        "pi-01",
        UpChannel::State,
        DeviceState {
            online: false,
            reason: None,
            since: 0,
        },
    );
    assert_eq!(
        h.fleet.log_target("default", "web", "app"),
        Err(LogTargetError::DeviceOffline("pi-01".into()))
    );
    assert!(matches!(
        h.fleet.log_target("default", "web", "nope"),
        Err(LogTargetError::ContainerNotFound { .. })
    ));
    assert!(matches!(
        h.fleet.log_target("default", "other", "app"),
        Err(LogTargetError::PodNotFound { .. })
    ));
    let id = DeviceId::new("pi-01").unwrap();
    let p = pod("web2", "u2", "pi-01");
    let t = translate_pod(&p, &PodReferences::default(), &h.fleet.node_context(&id));
    h.fleet.on_pod_translated(&id, p, t);
    assert!(
        drain(&mut h.outbox).is_empty(),
        "nothing sent while offline"
    );
    assert_eq!(h.fleet.desired_set(&id).unwrap().pods.len(), 2);
}

#[test]
fn usage_samples_of_our_nodes_are_filed_beside_the_fleet_with_the_agent_counters() {
    let h = harness();
    let stats = |at: u64| edge_protocol::NodeStats {
        sampled_at: at,
        agent: edge_protocol::AgentCounters {
            mqtt_reconnects: 3,
            uplink_queue_depth: 7,
            ..Default::default()
        },
        ..Default::default()
    };
    // a device the fleet does not know: dropped
    send(&h.fleet, "pi-01", UpChannel::Stats, stats(1));
    assert!(h.fleet.fleet.usage().is_empty());
    send(&h.fleet, "pi-01", UpChannel::Hello, NodeReport::default());
    registered(&h, "pi-01");
    send(&h.fleet, "pi-01", UpChannel::Stats, stats(2));
    let samples = h.fleet.fleet.usage().get(&id("pi-01")).unwrap();
    assert_eq!(samples.latest.stats.sampled_at, 2);
    let text = h.fleet.metrics().render();
    assert!(
        text.contains("edge_gateway_agent_mqtt_reconnects{device=\"pi-01\"} 3"),
        "{text}"
    );
    assert!(text.contains("edge_gateway_agent_uplink_queue_depth{device=\"pi-01\"} 7"));
}
