//! Ephemeral containers (`kubectl debug`): each is brought up once the containers whose
//! namespaces it joins run, then never restarted, as the kubelet does.

use std::sync::Arc;

use edge_protocol::{EphemeralContainerSpec, PodSpec};

use super::PodLifecycle;
use super::inputs_effects::NamespaceShare;
use crate::container_runtime::RunState;

impl PodLifecycle {
    pub(super) fn reconcile_ephemeral(&mut self, spec: &Arc<PodSpec>) {
        for e in &spec.ephemeral_containers {
            if e.name.is_empty() || spec.containers.iter().any(|c| c.name == e.name) {
                continue;
            }
            let started = !self.instances(&spec.uid, &e.name).is_empty();
            let share = if started {
                // Already there: the namespaces it joined no longer matter.
                Some(NamespaceShare::default())
            } else {
                match self.namespace_share(spec, e) {
                    Some(share) => Some(share),
                    // Waits (ContainerCreating) until the containers it joins run.
                    None => continue,
                }
            };
            self.reconcile_container(spec, &e.to_container_spec(), share.as_ref());
        }
    }

    /// The namespaces `e` joins, or `None` while a container it joins is not running.
    fn namespace_share(
        &self,
        spec: &PodSpec,
        e: &EphemeralContainerSpec,
    ) -> Option<NamespaceShare> {
        let running = |name: &str| -> Option<String> {
            let current = self.instances(&spec.uid, name).into_iter().next()?;
            matches!(current.state, RunState::Running { .. }).then_some(current.id)
        };
        let target = e.target_container_name.as_deref().filter(|t| !t.is_empty());
        let pid_of = match target {
            Some(t) => Some(running(t)?),
            None => None,
        };
        let network_of = if spec.host_network {
            None
        } else if self.uses_sandbox(spec) {
            // The pod's network is its infra container's.
            Some(self.sandbox_running_id(spec)?)
        } else {
            let name = target.or_else(|| spec.containers.first().map(|c| c.name.as_str()))?;
            Some(running(name)?)
        };
        Some(NamespaceShare { pid_of, network_of })
    }
}
