//! The wiring and the thin async loop around [`PodLifecycle`]: feeds it the desired set
//! (store and MQTT), container listings, effect outcomes and probe results, and hands
//! its effects to the [`EffectExecutor`]; heartbeats and node reports. What the gateway
//! sends is handled in `downlink_handling.rs`; agent updates over MQTT in
//! `agent_update_handling.rs`; image pre-pull sets and statuses in `prepull_handling.rs`.

mod agent_update_handling;
mod downlink_handling;
mod prepull_handling;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use edge_protocol::{AgentCounters, Heartbeat, NodeStats, UpChannel};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::config::AgentConfig;
use crate::container_runtime::{ContainerRuntime, RuntimeError};
use crate::docker_runtime::DockerRuntime;
use crate::effect_executor::EffectExecutor;
use crate::host_facts::HostFacts;
use crate::image_prepull::worker::{self as prepull_worker, PrepullUpdate, WorkerParts};
use crate::local_store::{LocalStore, StoreError};
use crate::log_tail::{self, TailTarget};
use crate::mqtt_session::{MqttSession, SessionError, SessionEvent};
use crate::pod_lifecycle::{GPU_RESOURCE, Input, Outcome, PodLifecycle, ProbeReport};
use crate::pressure_monitor::{PressureMonitor, PressureSources};
use crate::stats_reporter::{self, StatsSources};
use crate::streams::StreamManager;
use crate::systemd_notify;
use crate::unsaved_desired::UnsavedDesired;
use crate::wall_clock::now_millis;
use agent_update_handling::{AGENT_UPDATE_TICK, AgentUpdates, StageDone};
use prepull_handling::Prepull;

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

/// Why [`run`] returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stopped {
    /// `shutdown` was cancelled; containers keep running.
    Shutdown,
    /// The gateway retired the device (why): its containers, state, key and certificate
    /// are gone (`failures`: the steps that did not work). Exit with
    /// [`crate::retirement::RETIRED_EXIT_CODE`].
    Retired {
        reason: String,
        failures: Vec<String>,
    },
    /// The gateway refused to enroll this device because its id is retired (zero-touch
    /// enrollment after a wipe). Exit with [`crate::retirement::RETIRED_EXIT_CODE`] too:
    /// retrying cannot succeed.
    RefusedAsRetired { reason: String },
}

/// Runs the agent until `shutdown` is cancelled or the gateway retires the device.
/// Containers keep running after a shutdown.
pub async fn run(config: AgentConfig, shutdown: CancellationToken) -> Result<Stopped> {
    std::fs::create_dir_all(&config.state_dir).map_err(|source| AgentError::StateDir {
        path: config.state_dir.clone(),
        source,
    })?;
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&config.state_dir, std::fs::Permissions::from_mode(0o700));
    }
    let store = LocalStore::open(&config.state_dir.join("store"))?;
    let docker = DockerRuntime::connect(&config.runtime_socket, config.device_id.as_str())?
        .with_log_rotation(config.resources.log_rotation)
        .with_gpu_request(config.gpu_request);
    loop {
        match docker.ping().await {
            Ok(()) => break,
            Err(e) => {
                tracing::warn!(error = %e, "waiting for the container runtime");
                systemd_notify::status("waiting for the container runtime");
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(Stopped::Shutdown),
                    _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                }
            }
        }
    }
    let docker = docker.negotiate().await;
    let engine = docker.client();
    let runtime: Arc<dyn ContainerRuntime> = Arc::new(docker);
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
    let (staged_tx, staged_rx) = mpsc::unbounded_channel();
    let updates = AgentUpdates::new(&config.ota, staged_tx);
    let pressure = config.resources.monitoring_interval.map(|_| {
        let sources = PressureSources {
            proc_root: PathBuf::from("/"),
            nodefs: (config.resources.nodefs_path.clone())
                .unwrap_or_else(|| config.state_dir.clone()),
            imagefs: (config.resources.imagefs_path.clone()).unwrap_or_else(|| data_root.clone()),
        };
        PressureMonitor::new(
            config.resources.clone(),
            sources,
            crate::engine_api_get::Endpoint::parse(&config.runtime_socket),
            engine.clone(),
            now_millis(),
        )
    });
    let report = node_report(
        &facts,
        &config,
        &runtime_version,
        &data_root,
        pressure.as_ref(),
        &updates,
        None,
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
    let mut lifecycle = PodLifecycle::new(config.timings, node_ip)
        .with_sandbox(config.sandbox.clone())
        .with_gpus(gpu_ids(&facts, &config));
    let _ = lifecycle.handle(Input::Desired(desired));
    let (session_tx, session_rx) = mpsc::unbounded_channel();
    let session = MqttSession::start(&config, store.clone(), report_rx, generation_rx, session_tx)?;
    let (inputs_tx, inputs_rx) = mpsc::unbounded_channel();
    let (probe_tx, probe_rx) = mpsc::unbounded_channel();
    let tasks = CancellationToken::new();
    let stored_prepull = store.prepull_set().unwrap_or_else(|e| {
        tracing::error!(error = %e, "cannot read the stored image pre-pull set; none resumed \
            (the gateway's next set replaces it)");
        None
    });
    let (prepull_tx, prepull_rx) = mpsc::unbounded_channel();
    let (pods_pulling_tx, pods_pulling_rx) = watch::channel(false);
    let prepull_sets = prepull_worker::spawn(WorkerParts {
        runtime: runtime.clone(),
        endpoint: crate::engine_api_get::Endpoint::parse(&config.runtime_socket),
        timings: config.timings,
        initial: stored_prepull.clone(),
        updates: prepull_tx,
        pods_pulling: pods_pulling_rx,
        cancel: tasks.child_token(),
    });
    let (stats_tx, stats_rx) = mpsc::channel(1);
    if let Some(interval) = config.stats_interval {
        let sources = StatsSources {
            proc_root: PathBuf::from("/"),
            image_dir: data_root.clone(),
            runtime: runtime.clone(),
            engine: crate::engine_api_get::Endpoint::parse(&config.runtime_socket),
        };
        tokio::spawn(stats_reporter::run(
            sources,
            interval,
            stats_tx,
            tasks.child_token(),
        ));
    }
    let effects = EffectExecutor::new(
        &config,
        store.clone(),
        session.outbox_signal(),
        runtime.clone(),
        inputs_tx,
        probe_tx,
        tasks.clone(),
    );
    let (log_tail_tx, log_tail_rx) = mpsc::channel(1);
    if config.log_tail_interval.is_some() {
        tokio::spawn(log_tail::run(
            runtime.clone(),
            session.client(),
            config.device_id.clone(),
            log_tail_rx,
            u128::from(now_millis()) * 1_000_000,
            tasks.child_token(),
        ));
    }
    let streams = StreamManager::new(
        config.max_streams,
        config.stream_idle_timeout,
        engine,
        tasks.child_token(),
    );
    let mut agent = AgentLoop {
        log_tail_tx,
        streams,
        unsaved: UnsavedDesired::default(),
        config,
        store,
        runtime,
        session,
        lifecycle,
        effects,
        logs: HashMap::new(),
        tasks,
        heartbeat_sequence: 0,
        reconcile_errors: 0,
        generation_tx,
        report_tx,
        facts,
        runtime_version,
        data_root,
        pressure,
        last_stats: None,
        ready_sent: false,
        listed_once: false,
        started: Instant::now(),
        last_list_error: None,
        retired: None,
        updates,
        prepull: Prepull::new(prepull_sets, stored_prepull.as_ref(), pods_pulling_tx),
    };
    let receivers = Receivers {
        session: session_rx,
        inputs: inputs_rx,
        probes: probe_rx,
        stats: stats_rx,
        staged: staged_rx,
        prepull: prepull_rx,
    };
    agent.run_loop(shutdown, receivers).await;
    agent.tasks.cancel();
    systemd_notify::stopping();
    let Some(reason) = agent.retired.take() else {
        agent.session.shutdown().await;
        tracing::info!("edge-agent stopped; containers keep running");
        return Ok(Stopped::Shutdown);
    };
    let mut wipe = crate::retirement::WipeReport::default();
    crate::retirement::remove_containers(agent.runtime.as_ref(), &mut wipe).await;
    agent.session.shutdown().await;
    drop(agent.store);
    crate::retirement::remove_paths(&crate::retirement::paths_to_wipe(&agent.config), &mut wipe);
    tracing::info!(
        containers = wipe.containers_removed,
        paths = ?wipe.paths_removed,
        "retired device wiped"
    );
    Ok(Stopped::Retired {
        reason,
        failures: wipe.failures,
    })
}

struct AgentLoop {
    /// Containers to report the new output of, to the [`log_tail::run`] task.
    log_tail_tx: mpsc::Sender<Vec<TailTarget>>,
    unsaved: UnsavedDesired,
    config: AgentConfig,
    store: LocalStore,
    runtime: Arc<dyn ContainerRuntime>,
    session: MqttSession,
    lifecycle: PodLifecycle,
    effects: EffectExecutor,
    /// Log streams being served, by request id.
    logs: HashMap<String, CancellationToken>,
    /// exec, attach and port-forward streams.
    streams: StreamManager,
    tasks: CancellationToken,
    heartbeat_sequence: u64,
    /// Reconcile steps that failed (image, volume, create, start, stop, remove, listing).
    reconcile_errors: u64,
    generation_tx: watch::Sender<u64>,
    report_tx: watch::Sender<edge_protocol::NodeReport>,
    facts: HostFacts,
    runtime_version: String,
    data_root: PathBuf,
    /// The eviction manager (`None` when monitoring is off).
    pressure: Option<PressureMonitor>,
    /// The last usage sample (memory usage ranks pods for eviction).
    last_stats: Option<NodeStats>,
    ready_sent: bool,
    listed_once: bool,
    started: Instant,
    last_list_error: Option<String>,
    /// The gateway retired the device (why): the loop ends and the device is wiped.
    retired: Option<String>,
    /// Agent updates over MQTT.
    updates: AgentUpdates,
    /// Image pre-pull: sets to the worker, its latest status.
    prepull: Prepull,
}

/// What the loop waits on besides its timers.
struct Receivers {
    session: mpsc::UnboundedReceiver<SessionEvent>,
    inputs: mpsc::UnboundedReceiver<Input>,
    probes: mpsc::UnboundedReceiver<ProbeReport>,
    stats: mpsc::Receiver<NodeStats>,
    /// Verification and staging of a downloaded agent, done.
    staged: mpsc::UnboundedReceiver<StageDone>,
    /// The image pre-pull worker's statuses and pinned image ids.
    prepull: mpsc::UnboundedReceiver<PrepullUpdate>,
}

impl AgentLoop {
    async fn run_loop(&mut self, shutdown: CancellationToken, mut rx: Receivers) {
        let mut sync = tokio::time::interval(self.config.timings.sync_interval);
        sync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut heartbeat = tokio::time::interval(self.config.heartbeat_interval);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut log_tail = tokio::time::interval(
            self.config
                .log_tail_interval
                .unwrap_or(Duration::from_secs(3600)),
        );
        log_tail.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        log_tail.tick().await;
        let mut node_report = tokio::time::interval(NODE_REPORT_INTERVAL);
        node_report.tick().await;
        let mut pressure = tokio::time::interval(
            self.config
                .resources
                .monitoring_interval
                .unwrap_or(Duration::from_secs(3600)),
        );
        pressure.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut agent_update = tokio::time::interval(AGENT_UPDATE_TICK);
        agent_update.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let watchdog_every = systemd_notify::watchdog_interval();
        let mut watchdog =
            tokio::time::interval(watchdog_every.unwrap_or(Duration::from_secs(3600)));
        while self.retired.is_none() {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                Some(event) = rx.session.recv() => self.on_session(event),
                Some(input) = rx.inputs.recv() => {
                    let relist = matches!(&input, Input::Done(
                        Outcome::Started { .. } | Outcome::StartFailed { .. } | Outcome::Stopped { .. }
                        | Outcome::StopFailed { .. } | Outcome::Removed { .. } | Outcome::Created { .. }));
                    self.feed(input);
                    if relist {
                        self.list().await;
                    }
                }
                Some(report) = rx.probes.recv() => self.feed(Input::Probe(report)),
                Some(stats) = rx.stats.recv() => self.publish_stats(stats),
                Some(done) = rx.staged.recv() => self.on_stage_done(done),
                Some(update) = rx.prepull.recv() => self.on_prepull_update(update),
                _ = agent_update.tick() => self.agent_update_tick(),
                _ = sync.tick() => {
                    self.retry_unsaved();
                    self.retry_unsaved_prepull();
                    self.list().await;
                }
                _ = heartbeat.tick() => self.heartbeat(),
                _ = node_report.tick() => self.refresh_node_report(),
                _ = pressure.tick() => self.check_pressure().await,
                _ = log_tail.tick() => self.log_tail(),
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
            crate::ota::report_healthy();
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
                self.reconcile_errors += 1;
                self.feed(Input::Tick { now: now_millis() });
            }
        }
        self.maybe_ready();
    }

    fn feed(&mut self, input: Input) {
        if is_reconcile_error(&input) {
            self.reconcile_errors += 1;
        }
        self.prepull.observe(&input);
        let effects = self.lifecycle.handle(input);
        self.effects.execute(effects, self.lifecycle.generation());
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

    /// Asks the log tail task for a report, while connected (a QoS 0 report sent while
    /// offline is lost; the first one after reconnecting covers the gap). A report
    /// still being read is not queued behind.
    fn log_tail(&mut self) {
        if self.config.log_tail_interval.is_none() || !self.session.is_connected() {
            return;
        }
        let targets = self
            .lifecycle
            .log_cached_containers()
            .into_iter()
            .map(TailTarget::from)
            .collect();
        let _ = self.log_tail_tx.try_send(targets);
    }

    /// Publishes a usage sample with the agent's own counters (QoS 0).
    fn publish_stats(&mut self, mut stats: NodeStats) {
        stats.agent = AgentCounters {
            mqtt_reconnects: self.session.reconnects(),
            uplink_queue_depth: self.store.outbox_len() as u64,
            reconcile_errors: self.reconcile_errors,
            open_streams: self.streams.open_streams() as u64,
        };
        self.last_stats = Some(stats.clone());
        self.session
            .publish_best_effort(UpChannel::Stats, stats.into());
    }

    /// The eviction manager's pass: image GC, measurements, conditions (a changed one
    /// goes out in a node report at once), and at most one eviction; the next pass
    /// measures again.
    async fn check_pressure(&mut self) {
        let Some(monitor) = self.pressure.as_mut() else {
            return;
        };
        let now = now_millis();
        let pass = {
            let running = self.lifecycle.evictable_pods();
            monitor.pass(&running, self.last_stats.as_ref(), now).await
        };
        if pass.report_changed {
            self.refresh_node_report();
        }
        if self.lifecycle.eviction_in_progress() {
            return;
        }
        if let Some((pod_uid, message)) = pass.evict {
            tracing::warn!(pod = %pod_uid, %message, "evicting a pod under node pressure");
            self.feed(Input::Evict { pod_uid, message });
        }
    }

    fn refresh_node_report(&mut self) {
        let report = node_report(
            &self.facts,
            &self.config,
            &self.runtime_version,
            &self.data_root,
            self.pressure.as_ref(),
            &self.updates,
            self.prepull.status.as_ref(),
        );
        // Boot id and addresses matter; a changed free-space figure does not exist here
        // (capacity only), so any difference is a real change.
        if *self.report_tx.borrow() != report {
            let _ = self.report_tx.send(report);
            self.session.node_report_changed();
        }
    }
}

/// The node report: host facts, capabilities, the eviction manager's conditions and
/// image list, the agent's version and update status, the image pre-pull status.
fn node_report(
    facts: &HostFacts,
    config: &AgentConfig,
    runtime_version: &str,
    data_root: &std::path::Path,
    pressure: Option<&PressureMonitor>,
    updates: &AgentUpdates,
    prepull: Option<&edge_protocol::ImagePrepullStatus>,
) -> edge_protocol::NodeReport {
    let mut report = facts.node_report(runtime_version, data_root, config.max_pods, &config.labels);
    report.capabilities.log_tail_interval_seconds = log_tail_interval_seconds(config);
    report.capabilities.stats_interval_seconds = stats_interval_seconds(config);
    report.capabilities.active_deadline = true;
    report.capabilities.gpu_assignment = true;
    let gpus = gpu_ids(facts, config).len() as u64;
    for resources in [&mut report.capacity, &mut report.allocatable] {
        if gpus > 0 {
            resources.extended.insert(GPU_RESOURCE.to_owned(), gpus);
        } else {
            resources.extended.remove(GPU_RESOURCE);
        }
    }
    if let Some(p) = pressure {
        report.conditions = p.conditions();
        report.images = p.images();
    }
    updates.fill_report(&mut report);
    report.image_prepull = prepull.cloned();
    report
}

/// The `nvidia.com/gpu` device ids: configured, else the detected GPUs.
fn gpu_ids(facts: &HostFacts, config: &AgentConfig) -> Vec<String> {
    config
        .gpu_devices
        .clone()
        .unwrap_or_else(|| facts.nvidia_gpu_ids())
}

/// The report interval declared in the node report's capabilities (none when off).
fn log_tail_interval_seconds(config: &AgentConfig) -> Option<u32> {
    config
        .log_tail_interval
        .map(|d| u32::try_from(d.as_secs().max(1)).unwrap_or(u32::MAX))
}

/// The sampling interval the node report declares (`None`: not sampled).
fn stats_interval_seconds(config: &AgentConfig) -> Option<u32> {
    config
        .stats_interval
        .map(|d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX))
}

/// A reconcile step that ended in an error.
fn is_reconcile_error(input: &Input) -> bool {
    matches!(
        input,
        Input::Done(
            Outcome::ImageFailed { .. }
                | Outcome::CreateFailed { .. }
                | Outcome::StartFailed { .. }
                | Outcome::StopFailed { .. }
                | Outcome::RemoveFailed { .. }
                | Outcome::VolumesReady { result: Err(_), .. }
        )
    )
}
