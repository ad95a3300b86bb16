//! The thin async loop around [`PodLifecycle`]: feeds it the desired set (store and
//! MQTT), container listings, effect outcomes and probe results; executes its effects on
//! the runtime; persists and publishes reports; serves log requests; heartbeats.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use edge_protocol::{
    DownChannel, Heartbeat, LogErrorCode, Message, PodEventReport, PullPolicy, Topic, UpChannel,
};
use rumqttc::Publish;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::config::AgentConfig;
use crate::container_labels::ContainerIdentity;
use crate::container_runtime::{ContainerRuntime, CreateContainer, PortMapping, RuntimeError};
use crate::docker_runtime::{DockerRuntime, credential_matches};
use crate::host_facts::HostFacts;
use crate::local_store::{LocalStore, StoreError};
use crate::mqtt_session::{MqttSession, SessionError, SessionEvent};
use crate::pod_lifecycle::{ContainerKey, Effect, Input, Outcome, PodLifecycle};
use crate::wall_clock::now_millis;
use crate::{log_stream, pod_volumes, probe_worker, systemd_notify};

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

struct AgentLoop {
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
                _ = sync.tick() => self.list().await,
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
                run_effect(runtime.as_ref(), &device, &state_dir, effect, &tx).await
            {
                let _ = tx.send(Input::Done(outcome));
            }
        });
    }

    fn on_session(&mut self, event: SessionEvent) {
        match event {
            SessionEvent::Connected => self.maybe_ready(),
            SessionEvent::Disconnected => {}
            SessionEvent::Message(publish) => {
                self.on_message(&publish);
                self.session.ack(&publish);
            }
        }
    }

    fn on_message(&mut self, publish: &Publish) {
        let topic = match Topic::parse(&publish.topic) {
            Ok(t @ Topic::Down { .. }) if t.device() == &self.config.device_id => t,
            Ok(t) => {
                tracing::warn!(topic = %t, "ignoring a message not addressed to this device");
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "ignoring a message on an unknown topic");
                return;
            }
        };
        let message = match Message::decode_on(&topic, &publish.payload) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(%topic, bytes = publish.payload.len(), error = %e,
                    "rejected a malformed message");
                return;
            }
        };
        match (message, &topic) {
            (Message::DesiredSet(set), _) => {
                let current = self.lifecycle.generation();
                if set.generation < current {
                    tracing::warn!(
                        received = set.generation,
                        current,
                        "ignoring an older desired set"
                    );
                    return;
                }
                if let Err(e) = self.store.save_desired(&set) {
                    tracing::error!(error = %e, "cannot persist the desired set; not applying it");
                    return;
                }
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
            }
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
    }
}

/// Executes one runtime/file-system effect; returns its outcome.
async fn run_effect(
    runtime: &dyn ContainerRuntime,
    device: &str,
    state_dir: &Path,
    effect: Effect,
    tx: &mpsc::UnboundedSender<Input>,
) -> Option<Outcome> {
    match effect {
        Effect::PrepareVolumes { pod } => {
            let dir = state_dir.to_owned();
            let uid = pod.uid.clone();
            let result = tokio::task::spawn_blocking(move || pod_volumes::prepare(&dir, &pod))
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r.map_err(|e| e.to_string()));
            Some(Outcome::VolumesReady {
                pod_uid: uid,
                result,
            })
        }
        Effect::EnsureImage {
            key,
            image,
            policy,
            credentials,
        } => Some(ensure_image(runtime, key, &image, policy, &credentials, tx).await),
        Effect::Create {
            key,
            pod,
            restart_count,
            spec_hash,
        } => {
            let Some(c) = pod.containers.iter().find(|c| c.name == key.1) else {
                return Some(Outcome::CreateFailed {
                    key,
                    reason: "CreateContainerConfigError".to_owned(),
                    message: "container is not in the pod spec".to_owned(),
                });
            };
            let mounts = match pod_volumes::container_mounts(state_dir, &pod, c) {
                Ok(m) => m,
                Err(e) => {
                    return Some(Outcome::CreateFailed {
                        key,
                        reason: "CreateContainerConfigError".to_owned(),
                        message: e.to_string(),
                    });
                }
            };
            let spec = CreateContainer {
                identity: Some(ContainerIdentity {
                    device: device.to_owned(),
                    pod_uid: pod.uid.clone(),
                    pod_namespace: pod.namespace.clone(),
                    pod_name: pod.name.clone(),
                    container_name: c.name.clone(),
                    restart_count,
                    spec_hash,
                    grace_period_seconds: pod.termination_grace_period_seconds,
                }),
                image: c.image.clone(),
                command: c.command.clone(),
                args: c.args.clone(),
                working_dir: c.working_dir.clone().filter(|w| !w.is_empty()),
                env: c
                    .env
                    .iter()
                    .map(|e| format!("{}={}", e.name, e.value))
                    .collect(),
                binds: mounts.binds,
                tmpfs: mounts.tmpfs,
                devices: c.devices.clone(),
                ports: c
                    .ports
                    .iter()
                    .map(|p| PortMapping {
                        container_port: p.container_port,
                        host_port: p.host_port,
                        protocol: format!("{:?}", p.protocol).to_lowercase(),
                    })
                    .collect(),
                cpu_limit_millis: c.resources.cpu_limit_millis,
                memory_limit_bytes: c.resources.memory_limit_bytes,
                host_network: pod.host_network,
                hostname: pod.hostname.clone().or_else(|| Some(pod.name.clone())),
                privileged: c.privileged,
            };
            Some(match runtime.create(&spec).await {
                Ok(id) => Outcome::Created { key, id },
                Err(e) => Outcome::CreateFailed {
                    key,
                    reason: "CreateContainerError".to_owned(),
                    message: e.to_string(),
                },
            })
        }
        Effect::Start { key, id } => Some(match runtime.start(&id).await {
            Ok(()) => Outcome::Started { key, id },
            Err(e) => Outcome::StartFailed {
                key,
                id,
                message: e.to_string(),
            },
        }),
        Effect::Stop { id, grace } => {
            let limit = grace + Duration::from_secs(30);
            Some(
                match tokio::time::timeout(limit, runtime.stop(&id, grace)).await {
                    Ok(Ok(())) => Outcome::Stopped { id },
                    Ok(Err(e)) => Outcome::StopFailed {
                        id,
                        message: e.to_string(),
                    },
                    Err(_) => Outcome::StopFailed {
                        id,
                        message: "stop timed out".to_owned(),
                    },
                },
            )
        }
        Effect::Remove { id } => Some(match runtime.remove(&id).await {
            Ok(()) => Outcome::Removed { id },
            Err(e) => Outcome::RemoveFailed {
                id,
                message: e.to_string(),
            },
        }),
        Effect::CleanupPod { pod_uid } => {
            let dir = state_dir.to_owned();
            let _ = tokio::task::spawn_blocking(move || {
                if let Err(e) = pod_volumes::cleanup(&dir, &pod_uid) {
                    tracing::warn!(error = %e, pod = %pod_uid, "cannot remove pod directory");
                }
            })
            .await;
            None
        }
        Effect::Report(_)
        | Effect::Events(_)
        | Effect::WatchProbes { .. }
        | Effect::UnwatchProbes { .. } => None,
    }
}

async fn ensure_image(
    runtime: &dyn ContainerRuntime,
    key: ContainerKey,
    image: &str,
    policy: PullPolicy,
    credentials: &[edge_protocol::RegistryCredential],
    tx: &mpsc::UnboundedSender<Input>,
) -> Outcome {
    let present = match policy {
        PullPolicy::Always => false,
        _ => match runtime.image_present(image).await {
            Ok(p) => p,
            Err(e) => {
                return Outcome::ImageFailed {
                    key,
                    message: e.to_string(),
                };
            }
        },
    };
    if present {
        return Outcome::ImageReady { key, pulled: false };
    }
    if policy == PullPolicy::Never {
        return Outcome::ImageFailed {
            key,
            message: format!(
                "Container image \"{image}\" is not present with pull policy of Never"
            ),
        };
    }
    let _ = tx.send(Input::Done(Outcome::PullStarted { key: key.clone() }));
    let credential = credentials
        .iter()
        .find(|c| credential_matches(image, &c.registry));
    match runtime.pull(image, credential).await {
        Ok(()) => Outcome::ImageReady { key, pulled: true },
        Err(e) => Outcome::ImageFailed {
            key,
            message: e.to_string(),
        },
    }
}
