//! The pod sandbox: one infra container per pod (not on the host network) whose network,
//! IPC and UTS namespaces the pod's containers join, as the kubelet's pod sandbox. Its
//! address is the pod IP; a container restart keeps it; when the infra container dies
//! the pod's containers are stopped and brought up again in a new one; it goes last.

use std::sync::Arc;
use std::time::Duration;

use edge_protocol::{ContainerSpec, EventType, PodSpec, PullPolicy};

use super::PodLifecycle;
use super::inputs_effects::SandboxRole;
use crate::container_labels::SANDBOX_CONTAINER_NAME;
use crate::container_runtime::{ContainerSnapshot, RunState};

/// Where a pod's sandbox stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum SandboxState {
    /// The pod has none: host network, or no sandbox configured.
    NotUsed,
    /// The infra container runs: its id and address.
    Running { id: String, ip: Option<String> },
    /// Not created yet, starting, or dead (being replaced).
    NotReady,
}

impl PodLifecycle {
    /// Whether the pod's containers live in an infra container's namespaces.
    pub(super) fn uses_sandbox(&self, spec: &PodSpec) -> bool {
        self.sandbox.is_some() && !spec.host_network
    }

    pub(super) fn sandbox_state(&self, spec: &PodSpec) -> SandboxState {
        if !self.uses_sandbox(spec) {
            return SandboxState::NotUsed;
        }
        match self
            .instances(&spec.uid, SANDBOX_CONTAINER_NAME)
            .into_iter()
            .next()
        {
            Some(ContainerSnapshot {
                id,
                ip_address,
                state: RunState::Running { .. },
                ..
            }) => SandboxState::Running { id, ip: ip_address },
            _ => SandboxState::NotReady,
        }
    }

    /// The infra container as a container of the pod: the configured image and command,
    /// and every port of the pod (host ports are published on it, since the pod's
    /// containers have no network of their own).
    pub(super) fn sandbox_spec(&self, spec: &PodSpec) -> Option<ContainerSpec> {
        let settings = self.sandbox.as_ref()?;
        Some(ContainerSpec {
            name: SANDBOX_CONTAINER_NAME.to_owned(),
            image: settings.image.clone(),
            image_pull_policy: PullPolicy::IfNotPresent,
            command: settings.command.clone(),
            ports: spec
                .containers
                .iter()
                .flat_map(|c| c.ports.iter().cloned())
                .collect(),
            ..Default::default()
        })
    }

    /// The role of a container about to be created.
    pub(super) fn sandbox_role(&self, spec: &PodSpec, container: &str) -> SandboxRole {
        if container == SANDBOX_CONTAINER_NAME {
            return self
                .sandbox
                .clone()
                .map_or(SandboxRole::Own, SandboxRole::Infra);
        }
        match self.sandbox_state(spec) {
            SandboxState::Running { id, .. } => SandboxRole::Join(id),
            SandboxState::NotUsed | SandboxState::NotReady => SandboxRole::Own,
        }
    }

    /// Brings the infra container up (or back) before the pod's containers.
    pub(super) fn reconcile_sandbox(&mut self, spec: &Arc<PodSpec>) {
        if !self.uses_sandbox(spec) {
            return;
        }
        if let Some(c) = self.sandbox_spec(spec) {
            self.reconcile_container(spec, &c, None);
        }
    }

    /// For a container of the pod (not the infra one, not ephemeral): whether it must
    /// wait for the sandbox to run; a running instance meanwhile lives in a sandbox that
    /// is gone and is stopped.
    pub(super) fn wait_for_sandbox(
        &mut self,
        spec: &PodSpec,
        instances: &[ContainerSnapshot],
        grace: Duration,
    ) -> bool {
        if self.sandbox_state(spec) != SandboxState::NotReady {
            return false;
        }
        for running in instances
            .iter()
            .filter(|i| matches!(i.state, RunState::Running { .. }))
        {
            if self.stopping.insert(running.id.clone()) {
                self.event(
                    spec,
                    Some(&running.identity.container_name),
                    EventType::Normal,
                    "Killing",
                    format!(
                        "Pod sandbox changed, container {} will be killed and re-created",
                        running.identity.container_name
                    ),
                );
                self.stop_container(running, grace);
            }
        }
        true
    }

    /// Whether `current` runs in another sandbox than the pod's running one (a dead or
    /// an older infra container): it is replaced, like a changed container.
    pub(super) fn in_old_sandbox(&self, spec: &PodSpec, current: &ContainerSnapshot) -> bool {
        match self.sandbox_state(spec) {
            SandboxState::Running { id, .. } => current.identity.sandbox_id != id,
            SandboxState::NotUsed | SandboxState::NotReady => false,
        }
    }

    /// The id of the pod's running infra container.
    pub(super) fn sandbox_running_id(&self, spec: &PodSpec) -> Option<String> {
        match self.sandbox_state(spec) {
            SandboxState::Running { id, .. } => Some(id),
            SandboxState::NotUsed | SandboxState::NotReady => None,
        }
    }

    /// The pod IP: the infra container's address when the pod has one.
    pub(super) fn sandbox_ip(&self, spec: &PodSpec) -> Option<Option<String>> {
        match self.sandbox_state(spec) {
            SandboxState::NotUsed => None,
            SandboxState::Running { ip, .. } => Some(ip),
            SandboxState::NotReady => Some(None),
        }
    }

    /// Whether `c` is an infra container that must stay for now: a container of its pod
    /// is on its way (it will join the running one), or a listed container joined it —
    /// running, for a stop; at all, for a removal. Podman 4.3 asked to remove an infra
    /// container that others joined leaves it half-removed ("Removing", storage gone),
    /// and every later `GET /containers/json` that would list it fails, so the agent
    /// could no longer see its containers.
    pub(super) fn infra_held(&self, c: &ContainerSnapshot) -> bool {
        if !c.identity.is_sandbox() {
            return false;
        }
        let running = matches!(c.state, RunState::Running { .. });
        self.unlisted_creates.pending_for(&c.identity.pod_uid)
            || self.containers.iter().any(|other| {
                other.id != c.id
                    && other.identity.sandbox_id == c.id
                    && (!running || matches!(other.state, RunState::Running { .. }))
            })
    }

    /// Containers of a pod to tear down now: all but the infra container, which goes
    /// once nothing else of the pod is left.
    pub(super) fn teardown_order(mine: Vec<ContainerSnapshot>) -> Vec<ContainerSnapshot> {
        let (infra, others): (Vec<_>, Vec<_>) =
            mine.into_iter().partition(|c| c.identity.is_sandbox());
        if others.is_empty() { infra } else { others }
    }
}

#[cfg(test)]
mod tests;
