//! The one owner of [`FleetState`]: a loop that takes the fleet's inputs from one
//! channel, in order, hands each to [`FleetState::handle`] and executes the effects in
//! the order they were decided (a desired set is written to the store before it is
//! queued for the outbox, which flushes the store before publishing it). It also reads
//! the revocation list for the inputs that need it, publishes the
//! [`DeviceDirectory`](super::directory::DeviceDirectory) and answers queries.

use std::sync::Arc;

use edge_protocol::DeviceId;
use k8s_openapi::api::core::v1::Pod;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::directory::DeviceDirectory;
use super::effect::{Effects, FleetEffect, MetricUpdate};
use super::input::{FleetInput, Now, Revocation};
use super::state::FleetState;
use super::{LogTargetError, Outgoing, PodWatchRequest};
use crate::device_streams::{self, DeviceReadiness, DeviceStreams, PodPlacement};
use crate::enrollment::CachedRevocationList;
use crate::health::Health;
use crate::hostile_input::{RejectReason, Rejection, Rejections};
use crate::kube_writer::KubeOps;
use crate::log_streams::{DeliveryError, LogStreams};
use crate::metrics::Metrics;
use crate::mqtt_link::DeviceFrame;
use crate::store::Store;

/// What other tasks send the runner.
#[derive(Debug)]
pub(super) enum Command {
    /// A decoded device message (its revocation is looked up by the runner). The permit,
    /// when there is one, holds a place in the bounded intake until the frame is handled.
    Frame {
        frame: DeviceFrame,
        _intake: Option<tokio::sync::OwnedSemaphorePermit>,
    },
    Input(FleetInput),
    /// The periodic pass (the revoked devices are looked up by the runner).
    Tick,
    Query(FleetQuery),
}

/// Questions answered by the runner, in order with the inputs before them.
#[derive(Debug)]
pub(super) enum FleetQuery {
    Pods(oneshot::Sender<Vec<Arc<Pod>>>),
    LogTarget {
        namespace: String,
        name: String,
        container: String,
        reply: oneshot::Sender<Result<(DeviceId, String), LogTargetError>>,
    },
    DesiredSet {
        device: DeviceId,
        reply: oneshot::Sender<Option<edge_protocol::DesiredSet>>,
    },
    OfflineLogSource {
        namespace: String,
        name: String,
        container: String,
        reply: oneshot::Sender<Option<super::OfflineLogSource>>,
    },
    StreamPlacement {
        namespace: String,
        name: String,
        reply: oneshot::Sender<Option<(PodPlacement, DeviceReadiness)>>,
    },
}

/// Where effects go.
#[derive(Debug)]
pub(super) struct EffectSinks {
    pub store: Store,
    pub metrics: Arc<Metrics>,
    pub health: Arc<Health>,
    pub ops: KubeOps,
    pub outbox: mpsc::UnboundedSender<Outgoing>,
    pub pod_watch: mpsc::UnboundedSender<PodWatchRequest>,
    pub logs: Arc<LogStreams>,
    pub log_cache: Arc<crate::log_cache::LogCache>,
    pub streams: Arc<DeviceStreams>,
    pub rejections: Arc<Rejections>,
    pub revocations: CachedRevocationList,
    pub directory: Arc<DeviceDirectory>,
    /// Sharded gateways: which devices are this replica's (unsharded when unset).
    pub shard_gate: Arc<std::sync::OnceLock<crate::sharding::ShardGate>>,
}

/// The fleet state and everything its effects are executed on.
#[derive(Debug)]
pub struct FleetRunner {
    state: FleetState,
    sinks: EffectSinks,
    commands: mpsc::UnboundedReceiver<Command>,
}

impl FleetRunner {
    pub(super) fn new(
        state: FleetState,
        sinks: EffectSinks,
        commands: mpsc::UnboundedReceiver<Command>,
    ) -> Self {
        sinks.directory.rebuild(&state);
        Self {
            state,
            sinks,
            commands,
        }
    }

    /// The state, for reading (tests and diagnostics).
    pub fn state(&self) -> &FleetState {
        &self.state
    }

    /// Runs until cancelled or until every sender is gone.
    pub async fn run(mut self, token: CancellationToken) {
        loop {
            let command = tokio::select! {
                _ = token.cancelled() => break,
                c = self.commands.recv() => match c { Some(c) => c, None => break },
            };
            self.step(command);
        }
    }

    /// Handles every command queued so far (tests drive the runner with this, without
    /// a runtime).
    pub fn run_queued(&mut self) {
        while let Ok(command) = self.commands.try_recv() {
            self.step(command);
        }
    }

    pub(super) fn step(&mut self, command: Command) {
        match command {
            Command::Frame { frame, .. } => {
                // queued before its device was handed to another replica: not ours now
                if let Some(gate) = self.sinks.shard_gate.get()
                    && !gate.owns(&frame.device)
                {
                    return;
                }
                let revocation = match self.sinks.revocations.contains(&frame.device) {
                    Ok(true) => Revocation::Revoked,
                    Ok(false) => Revocation::NotRevoked,
                    Err(e) => Revocation::Unreadable(e.to_string()),
                };
                self.handle(FleetInput::Device { frame, revocation });
            }
            Command::Input(input) => self.handle(input),
            Command::Tick => {
                let revoked = match self.sinks.revocations.current() {
                    Ok(list) => self
                        .state
                        .device_ids()
                        .filter(|d| list.contains(d))
                        .cloned()
                        .collect(),
                    Err(_) => Vec::new(),
                };
                self.handle(FleetInput::Tick { revoked });
            }
            Command::Query(query) => self.answer(query),
        }
    }

    /// Hands one input to the state, publishes what it changed in the directory (before
    /// anything is executed: the pod watch, asked to adopt a device's pods, must find
    /// the device owned), then executes the effects.
    pub fn handle(&mut self, input: FleetInput) {
        let tick = matches!(input, FleetInput::Tick { .. });
        let device = input.device().cloned();
        let effects = self.state.handle(input, Now::current());
        if tick {
            self.sinks.directory.rebuild(&self.state);
        } else if let Some(device) = device {
            self.sinks.directory.refresh(&self.state, &device);
        }
        self.execute(effects);
    }

    fn answer(&self, query: FleetQuery) {
        match query {
            FleetQuery::Pods(reply) => {
                let _ = reply.send(self.state.pods());
            }
            FleetQuery::LogTarget {
                namespace,
                name,
                container,
                reply,
            } => {
                let _ = reply.send(self.state.log_target(&namespace, &name, &container));
            }
            FleetQuery::DesiredSet { device, reply } => {
                let _ = reply.send(self.state.desired_set(&device));
            }
            FleetQuery::OfflineLogSource {
                namespace,
                name,
                container,
                reply,
            } => {
                let source = self.state.offline_log_source(&namespace, &name, &container);
                let _ = reply.send(source);
            }
            FleetQuery::StreamPlacement {
                namespace,
                name,
                reply,
            } => {
                let answer = self.state.pod_placement(&namespace, &name).map(|p| {
                    let readiness = self.state.stream_readiness(&p.device);
                    (p, readiness)
                });
                let _ = reply.send(answer);
            }
        }
    }

    /// Executes effects in order.
    fn execute(&mut self, effects: Effects) {
        // a held-back set retried by this tick could not be stored: the others wait
        let mut retry_failed = false;
        for effect in effects {
            match effect {
                FleetEffect::Kube(op) => self.sinks.ops.send(op),
                FleetEffect::Mqtt(out) => {
                    // never promise a device more than the store holds
                    if let Outgoing::Desired { device, .. } = &out {
                        if self.state.is_held_back(device) {
                            continue;
                        }
                    }
                    let _ = self.sinks.outbox.send(out);
                }
                FleetEffect::StoreDesired {
                    device,
                    record,
                    retry,
                } => {
                    let stored = if retry && retry_failed {
                        false
                    } else if let Err(e) = self.sinks.store.put_device(&device, &record) {
                        warn!(%device, error = %e, "cannot store the desired set; nothing is sent to the device until it is stored");
                        self.sinks.health.store_failed(&e.to_string());
                        false
                    } else {
                        true
                    };
                    if !stored {
                        retry_failed |= retry;
                        // (this input changes one flag and has no effects of its own)
                        let more = self
                            .state
                            .handle(FleetInput::DesiredSetNotStored { device }, Now::current());
                        debug_assert!(more.is_empty());
                    }
                }
                FleetEffect::StoreReport { device, report } => {
                    if let Err(e) = self.sinks.store.put_report(&device, &report) {
                        warn!(%device, error = %e, "cannot store the node report");
                        self.sinks.health.store_failed(&e.to_string());
                    }
                }
                FleetEffect::ForgetStored { device, retired } => {
                    if let Err(e) = self.sinks.store.remove_device(&device) {
                        if retired {
                            warn!(%device, error = %e, "cannot remove the retired device from the store");
                            self.sinks.health.store_failed(&e.to_string());
                        } else {
                            warn!(%device, error = %e, "cannot remove a refused device from the store");
                        }
                    }
                }
                FleetEffect::AdoptPods(device) => {
                    let _ = self
                        .sinks
                        .pod_watch
                        .send(PodWatchRequest::AdoptNode(device));
                }
                FleetEffect::Reject(rejection) => self.sinks.rejections.reject(&rejection),
                FleetEffect::CountRejected(reason) => self.sinks.rejections.count(reason),
                FleetEffect::Metric(update) => self.record(update),
                FleetEffect::CacheLogTail { device, tail } => {
                    self.sinks.log_cache.append(&device, &tail);
                }
                FleetEffect::ForgetLogTails { pod_uid } => {
                    self.sinks.log_cache.forget_pod(&pod_uid);
                }
                FleetEffect::RetainLogTails { device, present } => {
                    self.sinks.log_cache.retain_pods(&device, &present);
                }
                FleetEffect::DeliverLogChunk { device, id, chunk } => {
                    let reason = match self.sinks.logs.deliver(&device, &id, chunk) {
                        Ok(()) | Err(DeliveryError::UnknownRequest) => continue,
                        Err(DeliveryError::WrongDevice) => RejectReason::Spoofed,
                        Err(DeliveryError::Overflow) => RejectReason::LogOverflow,
                        Err(DeliveryError::Oversized) => RejectReason::Oversized,
                    };
                    self.sinks.rejections.reject(&Rejection::new(
                        device.as_str(),
                        reason,
                        format!("log chunk for request {id}"),
                    ));
                }
                FleetEffect::DeliverStreamMessage {
                    device,
                    id,
                    message,
                } => {
                    let reason = match self.sinks.streams.deliver(&device, &id, message) {
                        Ok(()) => continue,
                        Err(device_streams::DeliveryError::UnknownStream) => {
                            RejectReason::UnknownStream
                        }
                        Err(device_streams::DeliveryError::WrongDevice) => RejectReason::Spoofed,
                        Err(device_streams::DeliveryError::Overflow) => {
                            RejectReason::StreamOverflow
                        }
                    };
                    self.sinks.rejections.reject(&Rejection::new(
                        device.as_str(),
                        reason,
                        format!("message of stream {id}"),
                    ));
                }
                FleetEffect::EndDeviceStreams { device, reason } => {
                    self.sinks.streams.close_device(&device, &reason);
                }
                FleetEffect::EndLogStreams {
                    device,
                    tell_device,
                } => {
                    for id in self.sinks.logs.close_device(&device) {
                        if tell_device {
                            let _ = self.sinks.outbox.send(Outgoing::LogCancel {
                                device: device.clone(),
                                id,
                            });
                        }
                    }
                }
            }
        }
    }

    fn record(&self, update: MetricUpdate) {
        let metrics = &self.sinks.metrics;
        match update {
            MetricUpdate::DevicesTotal(n) => {
                metrics.devices_total.set(n as i64);
            }
            MetricUpdate::Retirement(event) => metrics.retirement(event),
            MetricUpdate::DeviceOnline => {
                metrics.devices_online.inc();
            }
            MetricUpdate::DeviceOffline => {
                metrics.devices_online.dec();
            }
            MetricUpdate::PodPhase { from, to } => {
                metrics.pod_phase_changed(from.as_deref(), to.as_deref());
            }
            MetricUpdate::DesiredToRunning(d) => {
                metrics.desired_to_running_seconds.observe(d.as_secs_f64())
            }
        }
    }
}
