//! Agent updates over MQTT, the thin async part around [`Downloader`]: orders and chunks
//! from `down/agent-update` fed to it with what the device knows (`state.json`, the
//! supervisor, the pinned key, the part file), its effects carried out (fetches and
//! statuses on `up/agent-update`, the part file written, verification and staging on a
//! blocking thread), the node report's `agentVersion`, `capabilities.agentUpdate` and
//! `agentUpdate`. A version this agent reported `staged` for is watched in `state.json`
//! until the supervisor commits or rolls it back.

use std::collections::VecDeque;
use std::path::PathBuf;

use edge_protocol::{
    AgentUpdateChunk, AgentUpdateOrder, AgentUpdatePhase, AgentUpdateStatus, NodeReport,
};
use tokio::sync::mpsc;

use super::AgentLoop;
use crate::config::OtaSettings;
use crate::ota::download::{self, Downloader, Effect, OrderContext};
use crate::ota::incoming::Incoming;
use crate::ota::slots::{OtaState, SlotDir};
use crate::wall_clock::now_millis;

/// How often a stalled download and the state file are looked at.
pub(super) const AGENT_UPDATE_TICK: std::time::Duration = std::time::Duration::from_secs(2);

/// The end of a verification and staging run on a blocking thread.
#[derive(Debug)]
pub(super) struct StageDone {
    version: String,
    result: Result<(), String>,
}

pub(super) struct AgentUpdates {
    machine: Downloader,
    slots: SlotDir,
    incoming: Incoming,
    public_key: PathBuf,
    running_version: String,
    supervised: bool,
    staged_tx: mpsc::UnboundedSender<StageDone>,
}

impl AgentUpdates {
    /// The agent's update state: its version and, under the supervisor, the status
    /// `state.json` implies (a trial → staged, else the last outcome).
    pub(super) fn new(settings: &OtaSettings, staged_tx: mpsc::UnboundedSender<StageDone>) -> Self {
        let slots = SlotDir::new(&settings.dir);
        let supervised = crate::ota::supervised();
        let status = if supervised {
            status_from_state(&slots)
        } else {
            None
        };
        let running_version = crate::ota::running_version();
        tracing::info!(version = %running_version, supervised, status = ?status, "agent version");
        Self {
            machine: Downloader::new(status),
            incoming: Incoming::new(&settings.dir),
            slots,
            public_key: settings.public_key.clone(),
            running_version,
            supervised,
            staged_tx,
        }
    }

    /// The node report's `agentVersion`, `capabilities.agentUpdate`, `agentUpdate`.
    pub(super) fn fill_report(&self, report: &mut NodeReport) {
        report.agent_version.clone_from(&self.running_version);
        report.capabilities.agent_update = crate::ota::capability(&self.public_key).is_ok();
        report.agent_update = self.machine.status().cloned();
    }

    /// `state.json`, or the empty state when it cannot be read (or the agent runs
    /// without its supervisor, which owns it).
    fn state(&self) -> OtaState {
        if self.supervised {
            load_state(&self.slots)
        } else {
            OtaState::default()
        }
    }
}

/// The status `state.json` implies now, with the sizes of the slots' binaries.
fn status_from_state(slots: &SlotDir) -> Option<AgentUpdateStatus> {
    // the installed binary is never an update's: its size is not asked for
    let installed = std::path::Path::new("");
    download::status_from_state(&load_state(slots), now_millis(), |slot| {
        std::fs::metadata(slots.binary(slot, installed))
            .ok()
            .map(|m| m.len())
    })
}

fn load_state(slots: &SlotDir) -> OtaState {
    slots.load().unwrap_or_else(|e| {
        tracing::warn!(error = %e, "cannot read the OTA state");
        OtaState::default()
    })
}

impl AgentLoop {
    pub(super) fn on_agent_update_order(&mut self, order: AgentUpdateOrder) {
        tracing::info!(version = %order.version, size = order.size_bytes, "the gateway orders an agent update");
        let u = &self.updates;
        let state = u.state();
        let ctx = OrderContext {
            running_version: u.running_version.clone(),
            capable: crate::ota::capability(&u.public_key),
            trial_version: state.trial.map(|t| t.version),
            last_outcome: state.last_outcome,
            part_len: u.incoming.part_len(&order.version),
        };
        let effects = self.updates.machine.order(order, ctx, now_millis());
        self.run_update_effects(effects);
    }

    pub(super) fn on_agent_update_chunk(&mut self, chunk: AgentUpdateChunk) {
        let (version, offset, bytes) = (chunk.version.clone(), chunk.offset, chunk.data.0.len());
        match self.updates.machine.chunk(chunk, now_millis()) {
            Ok(effects) => self.run_update_effects(effects),
            Err(why) => {
                tracing::warn!(%version, offset, bytes, error = %why, "refused an agent update chunk");
            }
        }
    }

    /// Every [`AGENT_UPDATE_TICK`]: a stalled download fetches again; a staged version is
    /// looked up in `state.json` (committed or rolled back by the supervisor).
    pub(super) fn agent_update_tick(&mut self) {
        let mut effects = self.updates.machine.tick(now_millis());
        let waiting = self.updates.machine.downloading().is_none()
            && self
                .updates
                .machine
                .status()
                .is_some_and(|s| s.phase == AgentUpdatePhase::Staged);
        if waiting && self.updates.supervised {
            let now = status_from_state(&self.updates.slots);
            effects.extend(self.updates.machine.settled(now));
        }
        self.run_update_effects(effects);
    }

    pub(super) fn agent_update_reconnected(&mut self) {
        let effects = self.updates.machine.reconnected(now_millis());
        self.run_update_effects(effects);
    }

    pub(super) fn on_stage_done(&mut self, done: StageDone) {
        let now = now_millis();
        let effects = match done.result {
            Ok(()) => {
                tracing::info!(version = %done.version, "agent update verified and staged: the supervisor starts it on trial");
                self.updates.machine.staged(&done.version, now)
            }
            Err(why) => {
                tracing::error!(version = %done.version, error = %why, "agent update refused");
                self.updates.machine.local_failure(&done.version, why, now)
            }
        };
        self.run_update_effects(effects);
    }

    fn run_update_effects(&mut self, effects: Vec<Effect>) {
        let mut queue = VecDeque::from(effects);
        while let Some(effect) = queue.pop_front() {
            match effect {
                Effect::Status {
                    status,
                    phase_changed,
                } => {
                    if phase_changed {
                        tracing::info!(version = %status.version, phase = ?status.phase,
                            message = %status.message, "agent update status");
                    }
                    self.session.publish_agent_update(status.into());
                    if phase_changed {
                        self.refresh_node_report();
                    }
                }
                Effect::Fetch(fetch) => self.session.publish_agent_update(fetch.into()),
                Effect::Write {
                    version,
                    offset,
                    data,
                } => {
                    if let Err(e) = self.updates.incoming.write_at(&version, offset, &data) {
                        let why = format!("cannot write the download: {e}");
                        tracing::error!(%version, error = %why, "agent update failed");
                        queue.clear();
                        queue.extend(self.updates.machine.local_failure(
                            &version,
                            why,
                            now_millis(),
                        ));
                    }
                }
                Effect::Stage(order) => {
                    let incoming = self.updates.incoming.clone();
                    let slots = self.updates.slots.clone();
                    let key = self.updates.public_key.clone();
                    let tx = self.updates.staged_tx.clone();
                    tokio::task::spawn_blocking(move || {
                        let result = incoming
                            .verify_and_stage(&slots, &key, &order)
                            .map(drop)
                            .map_err(|e| e.to_string());
                        let _ = tx.send(StageDone {
                            version: order.version,
                            result,
                        });
                    });
                }
                Effect::ClearIncoming { keep } => self.updates.incoming.clear(keep.as_deref()),
            }
        }
    }
}
