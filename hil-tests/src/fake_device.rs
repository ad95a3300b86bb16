//! A protocol-level fake device with an instant fake runtime.
//!
//! It speaks the real MQTT protocol ([`edge_protocol`]) to a real broker: retained
//! online state with an offline last will, hello, heartbeats, resync on connect,
//! applying desired sets by reporting every pod Running (and terminating pods
//! `removed`), Pulled/Created/Started events, and log requests answered from per-container
//! text (with tailLines, timestamps, limitBytes, previous and follow).
//!
//! Each device is two tokio tasks (MQTT poll loop and logic), no threads, so a fleet
//! simulator can run thousands in one process.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use edge_protocol::broker_failover::{BrokerFailover, jitter_seed};
use edge_protocol::{
    ContainerState, ContainerStatus, DesiredSet, DeviceId, DeviceState, DownChannel, EventType,
    Heartbeat, LogChunk, LogError, LogErrorCode, LogRequest, Message, NodeAddress, NodeAddressKind,
    NodeReport, NodeResources, PodEvent, PodEventReport, PodPhase, PodSpec, PodStatus,
    PodStatusReport, RequestId, ResyncRequest, Topic, UpChannel, topic::device_subscription,
};
use rumqttc::{AsyncClient, Event, LastWill, MqttOptions, Packet, QoS};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

mod streams;

pub use streams::{ECHO_PORTS, FakeStreamsView};

/// How to build a fake device.
#[derive(Debug, Clone)]
pub struct FakeDeviceConfig {
    pub id: DeviceId,
    pub broker_host: String,
    pub broker_port: u16,
    /// More nodes of a broker cluster (host, port), tried in turn when a connection fails.
    pub failover: Vec<(String, u16)>,
    pub heartbeat_interval: Duration,
    /// Labels the device asks for.
    pub labels: BTreeMap<String, String>,
    /// The device's InternalIP in its hello.
    pub address: String,
    pub architecture: String,
    pub board_model: Option<String>,
    pub capacity: NodeResources,
    /// MQTT keep-alive; the broker publishes the last will after 1.5 × this.
    pub keep_alive: Duration,
    /// Connect with TLS (mqtts) and this client identity.
    pub tls: Option<FakeDeviceTls>,
    /// The stream protocol version declared in the hello (None: an agent without exec,
    /// attach and port-forward). Streams are answered by a script (`streams.rs`).
    pub streams: Option<u32>,
    /// Longest wait between reconnection attempts; the waits start at 0.5 s, double and
    /// are jittered as the agent's (`BrokerFailover`), so a fleet that lost its broker
    /// does not come back all at once.
    pub reconnect_backoff_max: Duration,
}

/// PEM material for a TLS connection with a client certificate.
#[derive(Debug, Clone)]
pub struct FakeDeviceTls {
    pub ca_pem: Vec<u8>,
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

impl FakeDeviceConfig {
    pub fn new(id: DeviceId, broker_host: impl Into<String>, broker_port: u16) -> Self {
        Self {
            id,
            broker_host: broker_host.into(),
            broker_port,
            failover: Vec::new(),
            heartbeat_interval: Duration::from_millis(500),
            labels: BTreeMap::new(),
            address: "127.0.0.1".to_owned(),
            architecture: "arm64".to_owned(),
            board_model: Some("Raspberry Pi 4 Model B Rev 1.4".to_owned()),
            capacity: NodeResources {
                cpu_millis: 4000,
                memory_bytes: 4 << 30,
                ephemeral_storage_bytes: 32 << 30,
                pods: 110,
                extended: BTreeMap::new(),
            },
            keep_alive: Duration::from_secs(5),
            tls: None,
            streams: None,
            // short for tests; the fleet benchmark uses the agent's default, 30 s
            reconnect_backoff_max: Duration::from_secs(2),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FakeDeviceError {
    #[error("fake device {0} could not connect to the broker within 10 s")]
    Connect(String),
    #[error("MQTT client error: {0}")]
    Client(String),
    #[error("cannot encode: {0}")]
    Encode(String),
}

/// What the fake device holds, for tests to inspect.
#[derive(Debug, Clone, Default)]
pub struct FakeDeviceView {
    /// Pods currently "running", by uid.
    pub pods: BTreeMap<String, PodSpec>,
    /// Generations of every desired set received, in order.
    pub desired_generations: Vec<u64>,
    /// The generation applied last.
    pub applied_generation: u64,
    /// Uids of pods stopped because the gateway asked (terminating) or dropped them.
    pub removed: Vec<String>,
    /// Log requests received.
    pub log_requests: Vec<LogRequest>,
    /// Log requests cancelled by the gateway.
    pub log_cancels: usize,
    /// Full status reports the gateway asked for.
    pub status_resyncs: usize,
    pub connected: bool,
    /// Connections the broker accepted (CONNACK) so far.
    pub connects: u64,
}

#[derive(Debug, Default)]
struct Inner {
    view: FakeDeviceView,
    /// Log text per (pod name, container).
    logs: HashMap<(String, String), String>,
    status_sequence: u64,
    heartbeat_sequence: u64,
    /// Open follow streams: request id → cancel token.
    follows: HashMap<String, CancellationToken>,
    streams: streams::FakeStreams,
}

#[derive(Debug, Default)]
struct Shared {
    inner: Mutex<Inner>,
    changed: Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A running fake device. Stops (without a clean goodbye) when dropped.
#[derive(Debug)]
pub struct FakeDevice {
    config: FakeDeviceConfig,
    shared: Arc<Shared>,
    client: AsyncClient,
    token: CancellationToken,
}

impl Drop for FakeDevice {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

fn now_ms() -> u64 {
    u64::try_from(jiff::Timestamp::now().as_millisecond()).unwrap_or(0)
}

fn qos(q: edge_protocol::Qos) -> QoS {
    match q {
        edge_protocol::Qos::AtMostOnce => QoS::AtMostOnce,
        edge_protocol::Qos::AtLeastOnce => QoS::AtLeastOnce,
    }
}

fn encode(msg: impl Into<Message>) -> Vec<u8> {
    msg.into().encode().unwrap_or_default()
}

/// The client options for one broker node: keep-alive, TLS identity, last will.
fn device_options(config: &FakeDeviceConfig, host: String, port: u16) -> MqttOptions {
    let id = &config.id;
    let mut opts = MqttOptions::new(id.as_str(), host, port);
    opts.set_keep_alive(config.keep_alive);
    opts.set_clean_session(true);
    opts.set_max_packet_size(16 << 20, 16 << 20);
    if let Some(tls) = &config.tls {
        let _ = rustls::crypto::ring::default_provider().install_default();
        opts.set_transport(rumqttc::Transport::Tls(rumqttc::TlsConfiguration::Simple {
            ca: tls.ca_pem.clone(),
            alpn: None,
            client_auth: Some((tls.cert_pem.clone(), tls.key_pem.clone())),
        }));
    }
    let will = DeviceState {
        online: false,
        reason: Some("connection lost".to_owned()),
        since: now_ms(),
    };
    opts.set_last_will(LastWill::new(
        Topic::up(id, UpChannel::State).to_string(),
        encode(will),
        QoS::AtLeastOnce,
        true,
    ));
    opts
}

impl FakeDevice {
    /// Connects, says hello and starts heartbeating; returns once connected.
    pub async fn start(config: FakeDeviceConfig) -> Result<Self, FakeDeviceError> {
        let id = config.id.clone();
        let nodes: Vec<MqttOptions> =
            std::iter::once((config.broker_host.clone(), config.broker_port))
                .chain(config.failover.iter().cloned())
                .map(|(host, port)| device_options(&config, host, port))
                .collect();
        let opts = device_options(&config, config.broker_host.clone(), config.broker_port);
        let (client, mut eventloop) = AsyncClient::new(opts, 100);
        // as the agent: never give a CONNECT up while a cluster node may still process it
        let mut network = eventloop.network_options();
        network.set_connection_timeout(edge_protocol::broker_failover::CONNACK_TIMEOUT.as_secs());
        eventloop.set_network_options(network);
        let shared = Arc::new(Shared::default());
        let token = CancellationToken::new();
        let (in_tx, in_rx) = mpsc::unbounded_channel::<Incoming>();

        // poll loop: only polls and forwards
        {
            let token = token.clone();
            let shared = shared.clone();
            let mut failover = BrokerFailover::new(
                nodes.len(),
                Duration::from_millis(500),
                config.reconnect_backoff_max,
            );
            tokio::spawn(async move {
                loop {
                    let ev = tokio::select! {
                        _ = token.cancelled() => break,
                        ev = eventloop.poll() => ev,
                    };
                    match ev {
                        Ok(Event::Incoming(Packet::ConnAck(_))) => {
                            failover.connected();
                            {
                                let mut inner = shared.lock();
                                inner.view.connected = true;
                                inner.view.connects += 1;
                            }
                            shared.changed.notify_waiters();
                            let _ = in_tx.send(Incoming::Connected);
                        }
                        Ok(Event::Incoming(Packet::Publish(p))) => {
                            let _ = in_tx.send(Incoming::Publish(p.topic, p.payload.to_vec()));
                        }
                        Ok(Event::Incoming(Packet::SubAck(ack)))
                            if ack
                                .return_codes
                                .contains(&rumqttc::SubscribeReasonCode::Failure) =>
                        {
                            let _ = in_tx.send(Incoming::SubscriptionRefused);
                        }
                        Ok(_) => {}
                        Err(_) => {
                            shared.lock().view.connected = false;
                            let (next, wait) = failover.failed(jitter_seed());
                            if let Some(next) = nodes.get(next).filter(|_| nodes.len() > 1) {
                                eventloop.mqtt_options = next.clone();
                            }
                            tokio::select! {
                                _ = token.cancelled() => break,
                                _ = tokio::time::sleep(wait) => {}
                            }
                        }
                    }
                }
            });
        }
        let device = Self {
            config: config.clone(),
            shared: shared.clone(),
            client: client.clone(),
            token: token.clone(),
        };
        tokio::spawn(logic(config, shared, client, in_rx, token));
        let connected = device
            .wait_until(Duration::from_secs(10), |v| v.connected)
            .await;
        if !connected {
            return Err(FakeDeviceError::Connect(id.to_string()));
        }
        Ok(device)
    }

    pub fn id(&self) -> &DeviceId {
        &self.config.id
    }

    pub fn view(&self) -> FakeDeviceView {
        self.shared.lock().view.clone()
    }

    /// What its exec, attach and port-forward streams saw.
    pub fn streams_view(&self) -> FakeStreamsView {
        self.shared.lock().streams.view.clone()
    }

    /// Waits until `pred` holds for the streams' view; false on timeout.
    pub async fn wait_for_streams(
        &self,
        timeout: Duration,
        pred: impl Fn(&FakeStreamsView) -> bool,
    ) -> bool {
        self.wait_for(timeout, |inner| pred(&inner.streams.view))
            .await
    }

    /// Sets what `kubectl logs` of a container shows (one line per `\n`).
    pub fn set_log(&self, pod_name: &str, container: &str, text: &str) {
        self.shared
            .lock()
            .logs
            .insert((pod_name.to_owned(), container.to_owned()), text.to_owned());
    }

    /// Waits until `pred` holds for the view; false on timeout.
    pub async fn wait_until(
        &self,
        timeout: Duration,
        pred: impl Fn(&FakeDeviceView) -> bool,
    ) -> bool {
        self.wait_for(timeout, |inner| pred(&inner.view)).await
    }

    async fn wait_for(&self, timeout: Duration, pred: impl Fn(&Inner) -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.shared.changed.notified();
            if pred(&self.shared.lock()) {
                return true;
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return false;
            }
            let _ = tokio::time::timeout(left.min(Duration::from_millis(100)), notified).await;
        }
    }

    /// Publishes raw bytes on any topic (for hostile-input tests).
    pub async fn publish_raw(&self, topic: &str, payload: Vec<u8>) -> Result<(), FakeDeviceError> {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await
            .map_err(|e| FakeDeviceError::Client(e.to_string()))
    }

    /// Goes offline cleanly: publishes the retained offline state, then disconnects.
    pub async fn go_offline(self) {
        let state = DeviceState {
            online: false,
            reason: Some("shutdown".to_owned()),
            since: now_ms(),
        };
        let _ = self
            .client
            .publish(
                Topic::up(&self.config.id, UpChannel::State).to_string(),
                QoS::AtLeastOnce,
                true,
                encode(state),
            )
            .await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let _ = self.client.disconnect().await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        self.token.cancel();
    }

    /// Vanishes without a goodbye (power cut): stops heartbeats and the connection.
    pub fn kill(self) {
        self.token.cancel();
    }
}

#[derive(Debug)]
enum Incoming {
    Connected,
    /// The broker refused the subscription (as the agent does: subscribe again, resync).
    SubscriptionRefused,
    Publish(String, Vec<u8>),
}

async fn publish(client: &AsyncClient, topic: Topic, msg: impl Into<Message>) {
    let retained = topic.retained();
    let q = qos(topic.qos());
    let _ = client
        .publish(topic.to_string(), q, retained, encode(msg))
        .await;
}

fn hello(config: &FakeDeviceConfig) -> NodeReport {
    NodeReport {
        agent_version: "0.1.0-fake".to_owned(),
        hostname: config.id.to_string(),
        architecture: config.architecture.clone(),
        operating_system: "linux".to_owned(),
        os_image: "Fake Linux 1.0".to_owned(),
        kernel_version: "6.1.0-fake".to_owned(),
        board_model: config.board_model.clone(),
        container_runtime_version: "fake://1.0".to_owned(),
        machine_id: Some(format!("machine-{}", config.id)),
        boot_id: Some("boot-1".to_owned()),
        capacity: config.capacity.clone(),
        allocatable: config.capacity.clone(),
        labels: config.labels.clone(),
        addresses: vec![NodeAddress {
            kind: NodeAddressKind::InternalIP,
            address: config.address.clone(),
        }],
        // Streams only when configured (answered by a script); no stats.
        capabilities: edge_protocol::DeviceCapabilities {
            streams: config.streams,
            ..Default::default()
        },
        conditions: Vec::new(),
        images: Vec::new(),
        update: false,
        agent_update: None,
        image_prepull: None,
    }
}

fn running_status(spec: &PodSpec, started: u64) -> PodStatus {
    PodStatus {
        uid: spec.uid.clone(),
        namespace: spec.namespace.clone(),
        name: spec.name.clone(),
        phase: PodPhase::Running,
        reason: None,
        message: None,
        pod_ip: None,
        start_time: Some(started),
        containers: spec
            .containers
            .iter()
            .map(|c| ContainerStatus {
                name: c.name.clone(),
                state: ContainerState::Running {
                    started_at: started,
                },
                last_state: None,
                ready: true,
                started: Some(true),
                restart_count: 0,
                image: c.image.clone(),
                image_id: format!("sha256:fake-{}", c.image.len()),
                container_id: Some(format!("fake://{}-{}", &spec.uid, c.name)),
            })
            .collect(),
        ephemeral_containers: Vec::new(),
        init_containers: Vec::new(),
        removed: false,
    }
}

fn removed_status(spec: &PodSpec) -> PodStatus {
    PodStatus {
        uid: spec.uid.clone(),
        namespace: spec.namespace.clone(),
        name: spec.name.clone(),
        phase: PodPhase::Succeeded,
        containers: spec
            .containers
            .iter()
            .map(|c| ContainerStatus {
                name: c.name.clone(),
                state: ContainerState::Terminated {
                    exit_code: 0,
                    signal: None,
                    reason: "Completed".to_owned(),
                    message: None,
                    started_at: None,
                    finished_at: Some(now_ms()),
                },
                image: c.image.clone(),
                ..Default::default()
            })
            .collect(),
        removed: true,
        ..Default::default()
    }
}

async fn logic(
    config: FakeDeviceConfig,
    shared: Arc<Shared>,
    client: AsyncClient,
    mut rx: mpsc::UnboundedReceiver<Incoming>,
    token: CancellationToken,
) {
    let id = config.id.clone();
    let mut heartbeat = tokio::time::interval(config.heartbeat_interval);
    loop {
        tokio::select! {
            _ = token.cancelled() => break,
            _ = heartbeat.tick() => {
                let hb = {
                    let mut inner = shared.lock();
                    inner.heartbeat_sequence += 1;
                    Heartbeat {
                        sequence: inner.heartbeat_sequence,
                        sent_at: now_ms(),
                        observed_generation: inner.view.applied_generation,
                        pods_running: u32::try_from(inner.view.pods.len()).unwrap_or(u32::MAX),
                    }
                };
                publish(&client, Topic::up(&id, UpChannel::Heartbeat), hb).await;
            }
            msg = rx.recv() => match msg {
                None => break,
                Some(Incoming::Connected) => {
                    let _ = client.subscribe(device_subscription(&id), QoS::AtLeastOnce).await;
                    let online = DeviceState { online: true, reason: None, since: now_ms() };
                    publish(&client, Topic::up(&id, UpChannel::State), online).await;
                    publish(&client, Topic::up(&id, UpChannel::Hello), hello(&config)).await;
                    let known = shared.lock().view.applied_generation;
                    let resync = ResyncRequest { known_generation: known, reason: "agent start".to_owned() };
                    publish(&client, Topic::up(&id, UpChannel::Resync), resync).await;
                }
                Some(Incoming::SubscriptionRefused) => {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    let _ = client.subscribe(device_subscription(&id), QoS::AtLeastOnce).await;
                    let known = shared.lock().view.applied_generation;
                    let resync = ResyncRequest { known_generation: known, reason: "subscription refused".to_owned() };
                    publish(&client, Topic::up(&id, UpChannel::Resync), resync).await;
                }
                Some(Incoming::Publish(topic, payload)) => {
                    let Ok(topic) = Topic::parse(&topic) else { continue };
                    let Ok(msg) = Message::decode_on(&topic, &payload) else { continue };
                    match (topic, msg) {
                        (Topic::Down { channel: DownChannel::Desired, .. }, Message::DesiredSet(set)) => {
                            apply(&id, &shared, &client, set).await;
                        }
                        (Topic::Down { channel: DownChannel::Logs(req), .. }, Message::LogRequest(r)) => {
                            answer_logs(&id, &shared, &client, req, r, &token);
                        }
                        (Topic::Down { channel: DownChannel::Resync, .. }, Message::ResyncRequest(_)) => {
                            let report = {
                                let mut inner = shared.lock();
                                inner.status_sequence += 1;
                                let now = now_ms();
                                PodStatusReport {
                                    sequence: inner.status_sequence,
                                    observed_generation: inner.view.applied_generation,
                                    full: true,
                                    pods: inner.view.pods.values().map(|p| running_status(p, now)).collect(),
                                }
                            };
                            inner_resyncs(&shared);
                            // As the agent does: introduce itself again, then the full status.
                            publish(&client, Topic::up(&id, UpChannel::Hello), hello(&config)).await;
                            publish(&client, Topic::up(&id, UpChannel::Status), report).await;
                        }
                        (Topic::Down { channel: DownChannel::Stream(stream), .. }, msg) => {
                            let replies = {
                                let mut inner = shared.lock();
                                let inner = &mut *inner;
                                inner.streams.handle(&stream, msg, &inner.view.pods)
                            };
                            let topic = Topic::up(&id, UpChannel::Stream(stream));
                            for reply in replies {
                                publish(&client, topic.clone(), reply).await;
                            }
                        }
                        (Topic::Down { channel: DownChannel::Logs(req), .. }, Message::LogCancel(_)) => {
                            let mut inner = shared.lock();
                            inner.view.log_cancels += 1;
                            if let Some(t) = inner.follows.remove(req.as_str()) {
                                t.cancel();
                            }
                        }
                        _ => {}
                    }
                    shared.changed.notify_waiters();
                }
            },
        }
    }
}

fn inner_resyncs(shared: &Shared) {
    shared.lock().view.status_resyncs += 1;
}

async fn apply(id: &DeviceId, shared: &Arc<Shared>, client: &AsyncClient, set: DesiredSet) {
    let now = now_ms();
    let (report, events) = {
        let mut inner = shared.lock();
        inner.view.desired_generations.push(set.generation);
        let mut statuses = Vec::new();
        let mut events = Vec::new();
        let wanted: BTreeMap<String, PodSpec> = set
            .pods
            .iter()
            .map(|p| (p.uid.clone(), p.clone()))
            .collect();
        // pods no longer wanted, or terminating: stop and report removed
        let existing: Vec<String> = inner.view.pods.keys().cloned().collect();
        for uid in existing {
            let gone = match wanted.get(&uid) {
                None => true,
                Some(p) => p.is_terminating(),
            };
            if gone {
                if let Some(spec) = inner.view.pods.remove(&uid) {
                    for c in &spec.containers {
                        events.push(PodEvent {
                            pod_uid: spec.uid.clone(),
                            namespace: spec.namespace.clone(),
                            pod_name: spec.name.clone(),
                            container: Some(c.name.clone()),
                            event_type: EventType::Normal,
                            reason: "Killing".to_owned(),
                            message: format!("Stopping container {}", c.name),
                            timestamp: now,
                            count: 1,
                        });
                    }
                    statuses.push(removed_status(&spec));
                    inner.view.removed.push(uid);
                }
            }
        }
        for spec in wanted.values() {
            if spec.is_terminating() {
                if !inner.view.removed.contains(&spec.uid) {
                    statuses.push(removed_status(spec));
                    inner.view.removed.push(spec.uid.clone());
                }
                continue;
            }
            let is_new = inner.view.pods.get(&spec.uid) != Some(spec);
            if is_new {
                for c in &spec.containers {
                    for (reason, message) in [
                        (
                            "Pulled",
                            format!("Container image \"{}\" already present on machine", c.image),
                        ),
                        ("Created", format!("Created container {}", c.name)),
                        ("Started", format!("Started container {}", c.name)),
                    ] {
                        events.push(PodEvent {
                            pod_uid: spec.uid.clone(),
                            namespace: spec.namespace.clone(),
                            pod_name: spec.name.clone(),
                            container: Some(c.name.clone()),
                            event_type: EventType::Normal,
                            reason: reason.to_owned(),
                            message,
                            timestamp: now,
                            count: 1,
                        });
                    }
                }
                inner.view.pods.insert(spec.uid.clone(), spec.clone());
            }
            statuses.push(running_status(spec, now));
        }
        inner.view.applied_generation = set.generation;
        inner.status_sequence += 1;
        let report = PodStatusReport {
            sequence: inner.status_sequence,
            observed_generation: set.generation,
            full: false,
            pods: statuses,
        };
        (report, events)
    };
    if !events.is_empty() {
        publish(
            client,
            Topic::up(id, UpChannel::Events),
            PodEventReport { events },
        )
        .await;
    }
    publish(client, Topic::up(id, UpChannel::Status), report).await;
    shared.changed.notify_waiters();
}

fn render_log(text: &str, r: &LogRequest) -> Vec<u8> {
    let mut lines: Vec<&str> = text.lines().collect();
    if let Some(n) = r.tail_lines {
        let n = usize::try_from(n).unwrap_or(usize::MAX);
        if lines.len() > n {
            lines = lines.split_off(lines.len() - n);
        }
    }
    let mut out = String::new();
    for l in lines {
        if r.timestamps {
            out.push_str("2024-01-01T00:00:00.000000000Z ");
        }
        out.push_str(l);
        out.push('\n');
    }
    let mut bytes = out.into_bytes();
    if let Some(limit) = r.limit_bytes {
        bytes.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    }
    bytes
}

fn answer_logs(
    id: &DeviceId,
    shared: &Arc<Shared>,
    client: &AsyncClient,
    req: RequestId,
    r: LogRequest,
    token: &CancellationToken,
) {
    let topic = Topic::up(id, UpChannel::Logs(req.clone()));
    let (first, follow_token) = {
        let mut inner = shared.lock();
        inner.view.log_requests.push(r.clone());
        let pod = inner.view.pods.get(&r.pod_uid).cloned();
        let error = |code, message: String| LogChunk {
            sequence: 0,
            data: Default::default(),
            end_of_stream: true,
            error: Some(LogError { code, message }),
        };
        match pod {
            None => (
                error(
                    LogErrorCode::NotFound,
                    format!("pod {} is not on this device", r.pod_name),
                ),
                None,
            ),
            Some(p) if !p.containers.iter().any(|c| c.name == r.container) => (
                error(
                    LogErrorCode::NotFound,
                    format!("container {} not found", r.container),
                ),
                None,
            ),
            Some(_) if r.previous => (
                error(
                    LogErrorCode::NoPreviousInstance,
                    format!("previous terminated container {:?} not found", r.container),
                ),
                None,
            ),
            Some(_) => {
                let text = inner
                    .logs
                    .get(&(r.pod_name.clone(), r.container.clone()))
                    .cloned()
                    .unwrap_or_else(|| format!("hello from {}\n", r.container));
                let data = render_log(&text, &r);
                let follow = r.follow.then(|| {
                    let t = token.child_token();
                    inner.follows.insert(req.to_string(), t.clone());
                    t
                });
                (
                    LogChunk {
                        sequence: 0,
                        data: data.into(),
                        end_of_stream: !r.follow,
                        error: None,
                    },
                    follow,
                )
            }
        }
    };
    let client = client.clone();
    tokio::spawn(async move {
        publish(&client, topic.clone(), first).await;
        let Some(t) = follow_token else { return };
        let mut seq = 1u64;
        loop {
            tokio::select! {
                _ = t.cancelled() => break,
                _ = tokio::time::sleep(Duration::from_millis(100)) => {
                    let chunk = LogChunk {
                        sequence: seq,
                        data: format!("follow line {seq}\n").as_str().into(),
                        end_of_stream: false,
                        error: None,
                    };
                    publish(&client, topic.clone(), chunk).await;
                    seq += 1;
                }
            }
        }
    });
}
