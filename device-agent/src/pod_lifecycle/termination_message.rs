//! Termination messages: once a container has exited, its message file (bound at its
//! `terminationMessagePath`) is read through an [`Effect::ReadTerminationMessage`]; the
//! answer goes into `state.terminated.message` (and `lastState` after a restart). With
//! `FallbackToLogsOnError`, an empty file after a non-zero exit gives the log's tail.

use std::collections::HashMap;

use edge_protocol::TerminationMessagePolicy;

use super::PodLifecycle;
use super::inputs_effects::Effect;
use crate::container_runtime::RunState;

/// The message of each exited container: `None` while being read.
#[derive(Debug, Default)]
pub(super) struct TerminationMessages(HashMap<String, Option<String>>);

impl PodLifecycle {
    /// Asks for the message of every exited container not asked about yet; forgets
    /// containers that are gone. Called on each listing.
    pub(super) fn read_termination_messages(&mut self) {
        let live: std::collections::HashSet<&String> =
            self.containers.iter().map(|c| &c.id).collect();
        self.termination.0.retain(|id, _| live.contains(id));
        let mut asks = Vec::new();
        for c in &self.containers {
            let RunState::Exited { exit_code, .. } = c.state else {
                continue;
            };
            if c.identity.is_sandbox() || self.termination.0.contains_key(&c.id) {
                continue;
            }
            // ephemeral containers have no policy: File
            let policy = self
                .pods
                .get(&c.identity.pod_uid)
                .and_then(|p| p.spec.container(&c.identity.container_name))
                .map_or(TerminationMessagePolicy::File, |s| {
                    s.termination_message_policy
                });
            asks.push(Effect::ReadTerminationMessage {
                container_id: c.id.clone(),
                pod_uid: c.identity.pod_uid.clone(),
                container_name: c.identity.container_name.clone(),
                restart_count: c.identity.restart_count,
                fallback_to_logs: policy == TerminationMessagePolicy::FallbackToLogsOnError
                    && exit_code != 0,
            });
        }
        for ask in asks {
            if let Effect::ReadTerminationMessage { container_id, .. } = &ask {
                self.termination.0.insert(container_id.clone(), None);
            }
            self.effects.push(ask);
        }
    }

    pub(super) fn on_termination_message(&mut self, container_id: String, message: Option<String>) {
        if let Some(slot) = self.termination.0.get_mut(&container_id) {
            *slot = Some(message.unwrap_or_default());
        }
    }

    /// The message read for an exited container (empty when none).
    pub(super) fn termination_message(&self, container_id: &str) -> Option<&str> {
        self.termination
            .0
            .get(container_id)?
            .as_deref()
            .filter(|m| !m.is_empty())
    }
}

#[cfg(test)]
mod tests;
