//! The thin async loop around [`PodLifecycle`]: feeds it the desired set (store and
//! MQTT), container listings, effect outcomes and probe results; executes its effects on
//! the runtime; persists and publishes reports; serves log requests; heartbeats.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use edge_protocol::{
    DownChannel, Heartbeat, LogErrorCode, Message, PodEventReport, Topic, UpChannel,
};
use rumqttc::Publish;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::config::AgentConfig;
use crate::container_runtime::{ContainerRuntime, RuntimeError};
use crate::docker_runtime::DockerRuntime;
use crate::host_facts::HostFacts;
use crate::local_store::{LocalStore, StoreError};
use crate::mqtt_session::{MqttSession, SessionError, SessionEvent};
use crate::pod_lifecycle::{Effect, Input, Outcome, PodLifecycle};
use crate::unsaved_desired::UnsavedDesired;
use crate::wall_clock::now_millis;
use crate::{log_stream, probe_worker, runtime_effects, systemd_notify};

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("state directory {path}: {source}")]
    StateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error(transparent)]
    Session(#[from] SessionError),
}

pub type Result<T, E = AgentError> = std::result::Result<T, E>;

/// With no broker reachable, report ready to systemd after this long anyway: pods run
/// offline and the unit must not be restarted for that.
const OFFLINE_READY_AFTER: Duration = Duration::from_secs(30);
const NODE_REPORT_INTERVAL: Duration = Duration::from_secs(60);

/// Runs the agent until `shutdown` is cancelled. Containers keep running afterwards.
pub async fn run(config: AgentConfig, shutdown: CancellationToken) -> Result<()> {
    std::fs::create_dir_all(&config.state_dir).map_err(|source| AgentError::StateDir {
        path: config.state_dir.clone(),
        source,
    })?;
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&config.state_dir, std::fs::Permissions::from_mode(0o700));
    }
    let store = LocalStore::open(&config.state_dir.join("store"))?;
    let docker = DockerRuntime::connect(&config.runtime_socket, config.device_id.as_str())?;
    loop {
        match docker.ping().await {
            Ok(()) => break,
            Err(e) => {
                tracing::warn!(error = %e, "waiting for the container runtime");
                systemd_notify::status("waiting for the container runtime");
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                }
            }
        }
    }
    let runtime: Arc<dyn ContainerRuntime> = Arc::new(docker.negotiate().await);
    let runtime_version = runtime
        .version()
        .await
        .unwrap_or_else(|_| "docker://unknown".to_owned());
    let data_root = runtime
        .data_root()
        .await
        .ok()
        .flatten()
        .map(PathBuf::from)
        .unwrap_or_else(|| config.state_dir.clone());
    let facts = HostFacts::default();
    let report = facts.node_report(
        &runtime_version,
        &data_root,
        config.max_pods,
        &config.labels,
    );
    let node_ip = report
        .addresses
        .iter()
        .find(|a| a.kind == edge_protocol::NodeAddressKind::InternalIP)
        .map(|a| a.address.clone());
    tracing::info!(device = %config.device_id, runtime = %runtime_version,
        arch = %report.architecture, "edge-agent starting");
    let (report_tx, report_rx) = watch::channel(report);
    let desired = store.desired()?;
    let (generation_tx, generation_rx) = watch::channel(desired.generation);
    let mut lifecycle = PodLifecycle::new(config.timings, node_ip);
    let _ = lifecycle.handle(Input::Desired(desired));
    let (session_tx, session_rx) = mpsc::unbounded_channel();
    let session = MqttSession::start(&config, store.clone(), report_rx, generation_rx, session_tx)?;
    let (inputs_tx, inputs_rx) = mpsc::unbounded_channel();
    let (probe_tx, probe_rx) = mpsc::unbounded_channel();
    let mut agent = AgentLoop {
        unsaved: UnsavedDesired::default(),
        config,
        store,
        runtime,
        session,
        lifecycle,
        inputs_tx,
        probe_tx,
        probes: HashMap::new(),
        logs: HashMap::new(),
        tasks: CancellationToken::new(),
        heartbeat_sequence: 0,
        generation_tx,
        report_tx,
        facts,
        runtime_version,
        data_root,
        ready_sent: false,
        listed_once: false,
        started: Instant::now(),
        last_list_error: None,
    };
    agent
        .run_loop(shutdown, session_rx, inputs_rx, probe_rx)
        .await;
    agent.tasks.cancel();
    systemd_notify::stopping();
    agent.session.shutdown().await;
    tracing::info!("edge-agent stopped; containers keep running");
    Ok(())
}

/// Whether a received message may be acknowledged now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Handled {
    AckNow,
    /// Acknowledged later (a desired set not saved yet).
    Held,
}

struct AgentLoop {
    unsaved: UnsavedDesired,
    config: AgentConfig,
    store: LocalStore,
    runtime: Arc<dyn ContainerRuntime>,
    session: MqttSession,
    lifecycle: PodLifecycle,
    inputs_tx: mpsc::UnboundedSender<Input>,
    probe_tx: mpsc::UnboundedSender<crate::pod_lifecycle::ProbeReport>,
    probes: HashMap<String, CancellationToken>,
    logs: HashMap<String, CancellationToken>,
    tasks: CancellationToken,
    heartbeat_sequence: u64,
    generation_tx: watch::Sender<u64>,
    report_tx: watch::Sender<edge_protocol::NodeReport>,
    facts: HostFacts,
    runtime_version: String,
    data_root: PathBuf,
    ready_sent: bool,
    listed_once: bool,
    started: Instant,
    last_list_error: Option<String>,
}

impl AgentLoop {
    async fn run_loop(
        &mut self,
        shutdown: CancellationToken,
        mut session_rx: mpsc::UnboundedReceiver<SessionEvent>,
        mut inputs_rx: mpsc::UnboundedReceiver<Input>,
        mut probe_rx: mpsc::UnboundedReceiver<crate::pod_lifecycle::ProbeReport>,
    ) {
        let mut sync = tokio::time::interval(self.config.timings.sync_interval);
        sync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut heartbeat = tokio::time::interval(self.config.heartbeat_interval);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut node_report = tokio::time::interval(NODE_REPORT_INTERVAL);
        node_report.tick().await;
        let watchdog_every = systemd_notify::watchdog_interval();
        let mut watchdog =
            tokio::time::interval(watchdog_every.unwrap_or(Duration::from_secs(3600)));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                Some(event) = session_rx.recv() => self.on_session(event),
                Some(input) = inputs_rx.recv() => {
                    let relist = matches!(&input, Input::Done(
                        Outcome::Started { .. } | Outcome::StartFailed { .. } | Outcome::Stopped { .. }
                        | Outcome::StopFailed { .. } | Outcome::Removed { .. } | Outcome::Created { .. }));
                    self.feed(input);
                    if relist {
                        self.list().await;
                    }
                }
                Some(report) = probe_rx.recv() => self.feed(Input::Probe(report)),
                _ = sync.tick() => {
                    self.retry_unsaved();
                    self.list().await;
                }
                _ = heartbeat.tick() => self.heartbeat(),
                _ = node_report.tick() => self.refresh_node_report(),
                _ = watchdog.tick() => {
                    if watchdog_every.is_some() {
                        systemd_notify::watchdog();
                    }
                }
            }
        }
    }

    fn maybe_ready(&mut self) {
        if self.ready_sent || !self.listed_once {
            return;
        }
        if self.session.is_connected() {
            self.ready_sent = true;
            systemd_notify::ready("connected to the broker; running pods");
        } else if self.started.elapsed() >= OFFLINE_READY_AFTER {
            self.ready_sent = true;
            systemd_notify::ready("broker unreachable; running pods offline");
        }
    }

    async fn list(&mut self) {
        match self.runtime.list_managed().await {
            Ok(list) => {
                if self.last_list_error.take().is_some() {
                    tracing::info!("container runtime reachable again");
                }
                self.listed_once = true;
                self.feed(Input::Containers {
                    list,
                    now: now_millis(),
                });
            }
            Err(e) => {
                let msg = e.to_string();
                if self.last_list_error.as_ref() != Some(&msg) {
                    tracing::warn!(error = %msg, "cannot list containers");
                }
                self.last_list_error = Some(msg);
                self.feed(Input::Tick { now: now_millis() });
            }
        }
        self.maybe_ready();
    }

    fn feed(&mut self, input: Input) {
        let effects = self.lifecycle.handle(input);
        self.execute(effects);
    }

    fn heartbeat(&mut self) {
        self.heartbeat_sequence += 1;
        self.session.publish_best_effort(
            UpChannel::Heartbeat,
            Heartbeat {
                sequence: self.heartbeat_sequence,
                sent_at: now_millis(),
                observed_generation: self.lifecycle.generation(),
                pods_running: self.lifecycle.pods_running(),
            }
            .into(),
        );
    }

    fn refresh_node_report(&mut self) {
        let report = self.facts.node_report(
            &self.runtime_version,
            &self.data_root,
            self.config.max_pods,
            &self.config.labels,
        );
        // Boot id and addresses matter; a changed free-space figure does not exist here
        // (capacity only), so any difference is a real change.
        if *self.report_tx.borrow() != report {
            let _ = self.report_tx.send(report);
            self.session.node_report_changed();
        }
    }

    fn queue_status(&self, full: bool, pods: Vec<edge_protocol::PodStatus>) {
        match self
            .store
            .queue_status(self.lifecycle.generation(), full, pods)
        {
            Ok(_) => self.session.outbox_changed(),
            Err(e) => tracing::error!(error = %e, "cannot queue a status report"),
        }
    }

    fn execute(&mut self, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::Report(pods) => self.queue_status(false, pods),
                Effect::Events(events) => {
                    match self.store.queue_events(PodEventReport { events }) {
                        Ok(()) => self.session.outbox_changed(),
                        Err(e) => tracing::error!(error = %e, "cannot queue events"),
                    }
                }
                Effect::WatchProbes {
                    container_id,
                    container,
                    target_ip,
                } => {
                    let token = self.tasks.child_token();
                    self.probes.insert(container_id.clone(), token.clone());
                    tokio::spawn(probe_worker::run(
                        self.runtime.clone(),
                        container_id,
                        *container,
                        target_ip,
                        self.probe_tx.clone(),
                        token,
                    ));
                }
                Effect::UnwatchProbes { container_id } => {
                    if let Some(t) = self.probes.remove(&container_id) {
                        t.cancel();
                    }
                }
                other => self.spawn_runtime_effect(other),
            }
        }
    }

    fn spawn_runtime_effect(&self, effect: Effect) {
        let runtime = self.runtime.clone();
        let tx = self.inputs_tx.clone();
        let state_dir = self.config.state_dir.clone();
        let device = self.config.device_id.to_string();
        tokio::spawn(async move {
            if let Some(outcome) =
                runtime_effects::run_effect(runtime.as_ref(), &device, &state_dir, effect, &tx)
                    .await
            {
                let _ = tx.send(Input::Done(outcome));
            }
        });
    }

    fn on_session(&mut self, event: SessionEvent) {
        match event {
            SessionEvent::Connected => self.maybe_ready(),
            SessionEvent::Disconnected => self.unsaved.disconnected(),
            SessionEvent::Message(publish) => {
                if self.on_message(&publish) == Handled::AckNow {
                    self.session.ack(&publish);
                }
            }
        }
    }

    /// A desired set: saved durably, then applied and acknowledged. If saving fails it is
    /// neither applied nor acknowledged; [`AgentLoop::retry_unsaved`] tries again.
    fn on_desired(&mut self, set: edge_protocol::DesiredSet, publish: &Publish) -> Handled {
        let current = self.lifecycle.generation();
        let held = self.unsaved.generation();
        if set.generation < current || held.is_some_and(|h| set.generation < h) {
            tracing::warn!(
                received = set.generation,
                current,
                "ignoring an older desired set"
            );
            if held.is_some() {
                // Acknowledged once the newer set is saved, not before.
                self.unsaved.hold_delivery(publish.clone());
                return Handled::Held;
            }
            return Handled::AckNow;
        }
        self.unsaved.hold(set, publish.clone());
        self.retry_unsaved();
        Handled::Held
    }

    /// Saves the held desired set; once saved, applies it and acknowledges its deliveries.
    fn retry_unsaved(&mut self) {
        let Some(set) = self.unsaved.set() else {
            return;
        };
        if let Err(e) = self.store.save_desired(set) {
            tracing::error!(error = %e, generation = set.generation,
                "cannot save the desired set; not applying or acknowledging it, retrying \
                 every sync interval (free space or fix permissions in the state directory)");
            systemd_notify::status("cannot save the desired set; see the log");
            return;
        }
        let (Some(set), deliveries) = self.unsaved.saved() else {
            return;
        };
        tracing::info!(
            generation = set.generation,
            pods = set.pods.len(),
            "applying desired set"
        );
        let _ = self.generation_tx.send(set.generation);
        let effects = self.lifecycle.handle(Input::Desired(set));
        let reported = effects.iter().any(|e| matches!(e, Effect::Report(_)));
        self.execute(effects);
        if !reported {
            // Tell the gateway which generation is applied even if no pod changed.
            self.queue_status(false, Vec::new());
        }
        for delivery in &deliveries {
            self.session.ack(delivery);
        }
    }

    fn on_message(&mut self, publish: &Publish) -> Handled {
        let topic = match Topic::parse(&publish.topic) {
            Ok(t @ Topic::Down { .. }) if t.device() == &self.config.device_id => t,
            Ok(t) => {
                tracing::warn!(topic = %t, "ignoring a message not addressed to this device");
                return Handled::AckNow;
            }
            Err(e) => {
                tracing::warn!(error = %e, "ignoring a message on an unknown topic");
                return Handled::AckNow;
            }
        };
        let message = match Message::decode_on(&topic, &publish.payload) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(%topic, bytes = publish.payload.len(), error = %e,
                    "rejected a malformed message");
                return Handled::AckNow;
            }
        };
        match (message, &topic) {
            (Message::DesiredSet(set), _) => return self.on_desired(set, publish),
            (Message::ResyncRequest(r), _) => {
                // A gateway that does not know this device yet (its store was lost, or it
                // started while the device stayed connected to an external broker) learns
                // it from the node report; the full status report then follows.
                tracing::info!(reason = %r.reason, "gateway asked for a resync: node report and full status");
                self.session.node_report_changed();
                self.queue_status(true, self.lifecycle.full_status());
            }
            (
                Message::LogRequest(req),
                Topic::Down {
                    channel: DownChannel::Logs(id),
                    ..
                },
            ) => {
                self.logs.retain(|_, t| !t.is_cancelled());
                let target = if req.container.is_empty() {
                    Err((
                        LogErrorCode::BadRequest,
                        "a container name is required".to_owned(),
                    ))
                } else {
                    self.lifecycle
                        .log_target(
                            &req.pod_uid,
                            &req.namespace,
                            &req.pod_name,
                            &req.container,
                            req.previous,
                        )
                        .map_err(|unknown| {
                            if unknown {
                                (
                                    LogErrorCode::NotFound,
                                    format!(
                                        "container {} of pod {}/{} is not on this device",
                                        req.container, req.namespace, req.pod_name
                                    ),
                                )
                            } else {
                                (
                                    LogErrorCode::NoPreviousInstance,
                                    format!(
                                        "previous terminated container {:?} in pod {:?} not found",
                                        req.container, req.pod_name
                                    ),
                                )
                            }
                        })
                };
                let token = self.tasks.child_token();
                self.logs.insert(id.to_string(), token.clone());
                let done = token.clone();
                let runtime = self.runtime.clone();
                let client = self.session.client();
                let device = self.config.device_id.clone();
                let id = id.clone();
                tokio::spawn(async move {
                    log_stream::stream(runtime, client, device, id, target, req, token).await;
                    done.cancel();
                });
            }
            (
                Message::LogCancel(_),
                Topic::Down {
                    channel: DownChannel::Logs(id),
                    ..
                },
            ) => {
                if let Some(t) = self.logs.remove(id.as_str()) {
                    t.cancel();
                }
            }
            (other, _) => {
                tracing::warn!(kind = %other.kind(), %topic, "ignoring an unexpected message");
            }
        }
        Handled::AckNow
    }
}
