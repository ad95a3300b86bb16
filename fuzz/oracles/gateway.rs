//! What the gateway fuzz target checks: `mqtt_link::dispatch` (the gateway's entry point
//! for every MQTT message: decoding, then the fleet) followed by `Fleet::tick`, with the
//! fleet's runner handling both, never panics, whatever the topic, payload and retain
//! flag.
//!
//! Input format: byte 0 holds the retain flag (bit 0) and a selector (bits 1-7). A
//! selector below 100 builds a well-formed topic (`edge/v1/<device>/<channel>`, the
//! device chosen by byte 1 from four names, the channel by the selector) and the rest is
//! the payload; otherwise the topic is the bytes up to the first newline and the payload
//! what follows it.
//!
//! One copy, used by the cargo-fuzz target (`fuzz/fuzz_targets/gateway_on_mqtt.rs`) and
//! by the stable regression test (`gateway/tests/fuzz_regressions.rs`) through `#[path]`.

use std::sync::{Arc, Mutex};

use edge_gateway::fleet::{Fleet, FleetRunner, FleetSettings, Outgoing, PodWatchRequest};
use edge_gateway::kube_writer::{KubeOp, KubeOps};
use edge_gateway::metrics::Metrics;
use edge_gateway::mqtt_link::dispatch;
use edge_gateway::store::Store;
use tokio::sync::mpsc::{self, UnboundedReceiver};

const DEVICES: [&str; 4] = ["pi-01", "pi-02", "jetson-1", "x86.lab"];
const CHANNELS: [&str; 10] = [
    "up/hello",
    "up/heartbeat",
    "up/state",
    "up/status",
    "up/events",
    "up/resync",
    "up/logs/req-1",
    "down/desired",
    "down/logs/req-1",
    "up/unknown",
];
/// Selectors below this build a well-formed topic.
const STRUCTURED_SELECTORS: u8 = 100;

/// A fleet with detached Kubernetes and MQTT queues (drained after every message) and a
/// store in a temporary directory.
#[derive(Debug)]
pub struct GatewayHarness {
    fleet: Fleet,
    /// Driven synchronously: it handles what each input queued before `feed` returns.
    runner: Mutex<FleetRunner>,
    ops: Mutex<UnboundedReceiver<KubeOp>>,
    outbox: Mutex<UnboundedReceiver<Outgoing>>,
    pod_watch: Mutex<UnboundedReceiver<PodWatchRequest>>,
    _dir: tempfile::TempDir,
}

impl GatewayHarness {
    /// Panics when the temporary store cannot be made: the harness cannot run without.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory for the store");
        let store = Store::open(dir.path()).expect("a sled store in a temporary directory");
        let (ops, ops_rx) = KubeOps::detached();
        let (out_tx, out_rx) = mpsc::unbounded_channel();
        let (watch_tx, watch_rx) = mpsc::unbounded_channel();
        let fleet = Fleet::new(
            FleetSettings::local(dir.path()),
            store,
            Arc::new(Metrics::new()),
            ops,
            out_tx,
            watch_tx,
        );
        let runner = fleet.take_runner().expect("a new fleet's runner");
        Self {
            fleet,
            runner: Mutex::new(runner),
            ops: Mutex::new(ops_rx),
            outbox: Mutex::new(out_rx),
            pod_watch: Mutex::new(watch_rx),
            _dir: dir,
        }
    }

    /// Feeds one fuzz input to the fleet, then drops whatever it queued.
    pub fn feed(&self, data: &[u8]) {
        let Some((topic, payload, retained)) = split_input(data) else {
            return;
        };
        dispatch(&self.fleet, &topic, payload, retained);
        self.fleet.tick();
        self.runner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .run_queued();
        drain(&self.ops);
        drain(&self.outbox);
        drain(&self.pod_watch);
    }
}

impl Default for GatewayHarness {
    fn default() -> Self {
        Self::new()
    }
}

/// Topic, payload and retain flag of one input (see the module documentation).
pub fn split_input(data: &[u8]) -> Option<(String, &[u8], bool)> {
    let (&flags, rest) = data.split_first()?;
    let retained = flags & 1 == 1;
    let selector = flags >> 1;
    if selector < STRUCTURED_SELECTORS {
        let (&device, payload) = rest.split_first()?;
        let topic = format!(
            "edge/v1/{}/{}",
            DEVICES[usize::from(device) % DEVICES.len()],
            CHANNELS[usize::from(selector) % CHANNELS.len()]
        );
        Some((topic, payload, retained))
    } else {
        let end = rest.iter().position(|b| *b == b'\n').unwrap_or(rest.len());
        let topic = String::from_utf8_lossy(&rest[..end]).into_owned();
        let payload = rest.get(end + 1..).unwrap_or_default();
        Some((topic, payload, retained))
    }
}

fn drain<T>(rx: &Mutex<UnboundedReceiver<T>>) {
    let mut rx = rx.lock().unwrap_or_else(|p| p.into_inner());
    while rx.try_recv().is_ok() {}
}
