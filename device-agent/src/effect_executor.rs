//! Carries out the reconciler's effects: status reports and events go to the outbox
//! (and wake the uplink), probe effects start and stop [`probe_worker`]s, runtime and
//! file-system effects run as tasks through [`runtime_effects`] and come back as
//! [`Input::Done`] outcomes.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use edge_protocol::{PodEventReport, PodStatus};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::AgentConfig;
use crate::container_runtime::ContainerRuntime;
use crate::local_store::LocalStore;
use crate::mqtt_session::OutboxSignal;
use crate::pod_lifecycle::{Effect, Input, ProbeReport};
use crate::{probe_worker, runtime_effects};

/// Executes effects; owns the probe workers it started.
pub struct EffectExecutor {
    store: LocalStore,
    outbox: OutboxSignal,
    runtime: Arc<dyn ContainerRuntime>,
    state_dir: PathBuf,
    device: String,
    /// Outcomes of runtime effects go back to the reconciler here.
    inputs_tx: mpsc::UnboundedSender<Input>,
    probe_tx: mpsc::UnboundedSender<ProbeReport>,
    probes: HashMap<String, CancellationToken>,
    /// Parent of every task started here; cancelled when the agent stops.
    tasks: CancellationToken,
}

impl std::fmt::Debug for EffectExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EffectExecutor")
            .field("device", &self.device)
            .field("probes", &self.probes.len())
            .finish_non_exhaustive()
    }
}

impl EffectExecutor {
    pub fn new(
        config: &AgentConfig,
        store: LocalStore,
        outbox: OutboxSignal,
        runtime: Arc<dyn ContainerRuntime>,
        inputs_tx: mpsc::UnboundedSender<Input>,
        probe_tx: mpsc::UnboundedSender<ProbeReport>,
        tasks: CancellationToken,
    ) -> Self {
        Self {
            store,
            outbox,
            runtime,
            state_dir: config.state_dir.clone(),
            device: config.device_id.to_string(),
            inputs_tx,
            probe_tx,
            probes: HashMap::new(),
            tasks,
        }
    }

    /// Executes `effects` in order; `generation` is the applied desired generation that
    /// status reports answer.
    pub fn execute(&mut self, effects: Vec<Effect>, generation: u64) {
        for effect in effects {
            match effect {
                Effect::Report(pods) => self.queue_status(generation, false, pods),
                Effect::Events(events) => {
                    match self.store.queue_events(PodEventReport { events }) {
                        Ok(()) => self.outbox.notify(),
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

    /// Queues a status report (`full`: every pod, the answer to a resync) for `generation`.
    pub fn queue_status(&self, generation: u64, full: bool, pods: Vec<PodStatus>) {
        match self.store.queue_status(generation, full, pods) {
            Ok(_) => self.outbox.notify(),
            Err(e) => tracing::error!(error = %e, "cannot queue a status report"),
        }
    }

    fn spawn_runtime_effect(&self, effect: Effect) {
        let runtime = self.runtime.clone();
        let tx = self.inputs_tx.clone();
        let state_dir = self.state_dir.clone();
        let device = self.device.clone();
        tokio::spawn(async move {
            if let Some(outcome) =
                runtime_effects::run_effect(runtime.as_ref(), &device, &state_dir, effect, &tx)
                    .await
            {
                let _ = tx.send(Input::Done(outcome));
            }
        });
    }
}
