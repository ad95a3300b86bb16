//! Status reporting: pod and container status built the way the kubelet reports them
//! (phase, waiting/running/terminated states with reasons, last state, readiness), and
//! the report of what changed since the last one.

use edge_protocol::{
    ContainerSpec, ContainerState, ContainerStatus, PodPhase, PodSpec, PodStatus, RestartPolicy,
};

use super::PodLifecycle;
use super::container_memory::{ContainerMemory, PodEntry, VolumeState, spec_hash};
use super::init_sequence::{InitProgress, is_sidecar, restart_policy_of};
use super::inputs_effects::Effect;
use crate::backoff::Backoff;
use crate::container_runtime::{ContainerSnapshot, RunState};

impl PodLifecycle {
    pub(super) fn report_changes(&mut self) {
        let mut changed = Vec::new();
        let mut removed_now = Vec::new();
        for (uid, pod) in &self.pods {
            if pod.removed_reported {
                continue;
            }
            let status = self.pod_status(pod);
            if status.removed {
                removed_now.push(uid.clone());
            }
            if self.reported.get(uid) != Some(&status) {
                changed.push(status);
            }
        }
        let mut gone = Vec::new();
        for (uid, (ns, name)) in &self.orphans {
            let status = self.orphan_status(uid, ns, name);
            if status.removed {
                gone.push(uid.clone());
            }
            if self.reported.get(uid) != Some(&status) {
                changed.push(status);
            }
        }
        for uid in removed_now {
            if let Some(p) = self.pods.get_mut(&uid) {
                p.removed_reported = true;
            }
            self.reported.remove(&uid);
        }
        for uid in gone {
            self.orphans.remove(&uid);
            self.reported.remove(&uid);
            self.effects.push(Effect::CleanupPod { pod_uid: uid });
        }
        for s in &changed {
            if !s.removed {
                self.reported.insert(s.uid.clone(), s.clone());
            }
        }
        if !changed.is_empty() {
            self.effects.push(Effect::Report(changed));
        }
    }

    pub(super) fn orphan_status(&self, uid: &str, ns: &str, name: &str) -> PodStatus {
        let left = self.containers.iter().any(|c| c.identity.pod_uid == uid);
        PodStatus {
            uid: uid.to_owned(),
            namespace: ns.to_owned(),
            name: name.to_owned(),
            phase: if left {
                PodPhase::Running
            } else {
                PodPhase::Succeeded
            },
            removed: !left,
            ..Default::default()
        }
    }

    pub(super) fn pod_status(&self, pod: &PodEntry) -> PodStatus {
        let spec = &pod.spec;
        let mut containers = Vec::new();
        let mut pod_ip = None;
        for c in &spec.containers {
            let instances = self.instances(&spec.uid, &c.name);
            let memory = pod.containers.get(&c.name);
            let status = self.container_status(spec, pod, c, &instances, memory, false);
            if pod_ip.is_none()
                && let Some(cur) = instances.first()
                && matches!(cur.state, RunState::Running { .. })
            {
                pod_ip = if spec.host_network {
                    self.node_ip.clone()
                } else {
                    cur.ip_address.clone()
                };
            }
            containers.push(status);
        }
        let mut init_containers = Vec::new();
        for c in &spec.init_containers {
            let instances = self.instances(&spec.uid, &c.name);
            let memory = pod.containers.get(&c.name);
            let mut status = self.container_status(spec, pod, c, &instances, memory, false);
            // A completed init container counts as ready, as the kubelet reports it.
            if !c.is_sidecar()
                && matches!(
                    status.state,
                    ContainerState::Terminated { exit_code: 0, .. }
                )
            {
                status.ready = true;
            }
            init_containers.push(status);
        }
        let mut ephemeral_containers = Vec::new();
        for e in &spec.ephemeral_containers {
            let c = e.to_container_spec();
            let instances = self.instances(&spec.uid, &c.name);
            let memory = pod.containers.get(&c.name);
            ephemeral_containers
                .push(self.container_status(spec, pod, &c, &instances, memory, true));
        }
        let terminating = spec.is_terminating();
        let nothing_left = !self
            .containers
            .iter()
            .any(|c| c.identity.pod_uid == spec.uid);
        let removed = terminating
            && nothing_left
            && !pod.containers.values().any(|m| m.op.is_some())
            && pod.volumes != VolumeState::InFlight;
        if removed {
            for cs in containers
                .iter_mut()
                .chain(ephemeral_containers.iter_mut())
                .chain(init_containers.iter_mut())
            {
                if !matches!(cs.state, ContainerState::Terminated { .. }) {
                    cs.last_state = Some(cs.state.clone());
                    cs.state = ContainerState::Terminated {
                        exit_code: 0,
                        signal: None,
                        reason: "Completed".to_owned(),
                        message: None,
                        started_at: None,
                        finished_at: Some(self.now),
                    };
                }
                cs.ready = false;
                cs.started = Some(false);
            }
        }
        if let Some(sandbox_ip) = self.sandbox_ip(spec) {
            // The pod's address is its infra container's, as soon as that one runs.
            pod_ip = sandbox_ip;
        }
        let mut phase = match self.init_progress(spec) {
            _ if removed => pod_phase(spec.restart_policy, &containers),
            InitProgress::Failed { .. } => PodPhase::Failed,
            // Once the containers ran, a restarting (or finally stopped) sidecar does
            // not make the pod pending again (the kubelet's getPhase).
            InitProgress::Waiting { .. } if self.apps_started(spec) => {
                pod_phase(spec.restart_policy, &containers)
            }
            InitProgress::Waiting { .. } => PodPhase::Pending,
            InitProgress::Done => pod_phase(spec.restart_policy, &containers),
        };
        // a pod the node ended (evicted, past its deadline) is Failed whatever its
        // containers did
        if pod.ended.is_some() && !removed {
            phase = PodPhase::Failed;
        }
        let (reason, message) = match &pod.volumes {
            _ if pod.ended.is_some() => pod.ended.as_ref().map_or((None, None), |e| {
                (Some(e.reason.to_owned()), Some(e.message.clone()))
            }),
            VolumeState::Failed { message, .. } => (
                Some("FailedMount".to_owned()),
                Some(format!("MountVolume.SetUp failed: {message}")),
            ),
            _ => (None, None),
        };
        PodStatus {
            uid: spec.uid.clone(),
            namespace: spec.namespace.clone(),
            name: spec.name.clone(),
            phase,
            reason,
            message,
            pod_ip: if removed { None } else { pod_ip },
            start_time: Some(pod.accepted_at),
            containers,
            ephemeral_containers,
            init_containers,
            removed,
        }
    }

    fn container_status(
        &self,
        spec: &PodSpec,
        pod: &PodEntry,
        c: &ContainerSpec,
        instances: &[ContainerSnapshot],
        memory: Option<&ContainerMemory>,
        ephemeral: bool,
    ) -> ContainerStatus {
        let current = instances.first();
        let terminated = |snap: &ContainerSnapshot| -> Option<ContainerState> {
            match &snap.state {
                RunState::Exited {
                    exit_code,
                    started_at,
                    finished_at,
                    oom_killed,
                    error,
                } => {
                    let start_error = self.start_failed.get(&snap.id).or(error.as_ref());
                    // As the kubelet: the runtime's message, then the termination message.
                    let message = match (start_error, self.termination_message(&snap.id)) {
                        (Some(e), Some(m)) => Some(format!("{e}: {m}")),
                        (e, m) => e.cloned().or_else(|| m.map(str::to_owned)),
                    };
                    let reason = if *oom_killed {
                        "OOMKilled"
                    } else if start_error.is_some() {
                        "StartError"
                    } else if *exit_code == 0 {
                        "Completed"
                    } else {
                        "Error"
                    };
                    Some(ContainerState::Terminated {
                        exit_code: *exit_code,
                        signal: None,
                        reason: reason.to_owned(),
                        message,
                        started_at: *started_at,
                        finished_at: *finished_at,
                    })
                }
                RunState::Created => {
                    self.start_failed
                        .get(&snap.id)
                        .map(|message| ContainerState::Terminated {
                            exit_code: 128,
                            signal: None,
                            reason: "StartError".to_owned(),
                            message: Some(message.clone()),
                            started_at: None,
                            finished_at: None,
                        })
                }
                RunState::Running { .. } => None,
            }
        };
        let waiting = |reason: &str, message: Option<String>| ContainerState::Waiting {
            reason: reason.to_owned(),
            message,
        };
        let failure = memory.and_then(|m| m.failure.clone());
        let mut last_state = instances.get(1).and_then(terminated);
        let mut ready = false;
        let mut started = Some(false);
        let state = match current {
            None => match (&pod.volumes, failure) {
                (VolumeState::Failed { message, .. }, _) => {
                    waiting("CreateContainerConfigError", Some(message.clone()))
                }
                (_, Some(f)) => waiting(f.reason.as_str(), Some(f.message)),
                // The kubelet's default waiting reason in a pod with init containers.
                _ if !spec.init_containers.is_empty() => waiting("PodInitializing", None),
                _ => waiting("ContainerCreating", None),
            },
            Some(cur) => match &cur.state {
                // Not running for Kubernetes until its postStart hook returns.
                RunState::Running { .. } if self.in_post_start(&cur.id) => {
                    waiting("ContainerCreating", None)
                }
                RunState::Running { started_at } => {
                    let probe = self.probe_state(&cur.id, c);
                    // The kubelet never marks an ephemeral container ready.
                    ready = !ephemeral && probe.ready && probe.started;
                    started = Some(probe.started);
                    ContainerState::Running {
                        started_at: *started_at,
                    }
                }
                RunState::Created if !self.start_failed.contains_key(&cur.id) => {
                    waiting("ContainerCreating", None)
                }
                _ => {
                    let term = terminated(cur).unwrap_or_default();
                    let exit_code = match &term {
                        ContainerState::Terminated { exit_code, .. } => *exit_code,
                        _ => 0,
                    };
                    let changed = !cur.identity.spec_hash.is_empty()
                        && cur.identity.spec_hash != spec_hash(c);
                    // An ephemeral container is never restarted: it stays terminated.
                    // Sidecars stopped once the containers finished stay terminated.
                    let stopped_sidecar = is_sidecar(spec, &c.name) && self.apps_finished(spec);
                    let restarting = !ephemeral
                        && !stopped_sidecar
                        && (changed
                            || Self::should_restart(restart_policy_of(spec, &c.name), exit_code));
                    if restarting && !spec.is_terminating() {
                        last_state = Some(term);
                        match (memory, failure) {
                            (Some(m), Some(f)) if m.pipeline.is_some() => {
                                waiting(f.reason.as_str(), Some(f.message))
                            }
                            (Some(m), _) if m.pipeline.is_some() => {
                                waiting("ContainerCreating", None)
                            }
                            _ => waiting(
                                "CrashLoopBackOff",
                                Some(format!(
                                    "back-off {} restarting failed container={} pod={}_{}({})",
                                    humantime::format_duration(
                                        memory
                                            .map(|m| m.crash_wait)
                                            .filter(|w| !w.is_zero())
                                            .unwrap_or_else(|| Backoff::from_restarts(
                                                cur.identity.restart_count,
                                                &self.timings
                                            )
                                            .delay())
                                    ),
                                    c.name,
                                    spec.name,
                                    spec.namespace,
                                    spec.uid
                                )),
                            ),
                        }
                    } else {
                        term
                    }
                }
            },
        };
        ContainerStatus {
            name: c.name.clone(),
            state,
            last_state,
            ready,
            started,
            restart_count: current.map_or(0, |c| c.identity.restart_count),
            image: c.image.clone(),
            image_id: current.map(|c| c.image_id.clone()).unwrap_or_default(),
            container_id: current.map(|c| format!("docker://{}", c.id)),
        }
    }
}

/// The kubelet's pod phase from container states.
pub fn pod_phase(policy: RestartPolicy, containers: &[ContainerStatus]) -> PodPhase {
    let (mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for c in containers {
        match &c.state {
            ContainerState::Running { .. } => running += 1,
            ContainerState::Terminated { exit_code, .. } => {
                stopped += 1;
                if *exit_code == 0 {
                    succeeded += 1;
                }
            }
            ContainerState::Waiting { .. } => {
                if matches!(c.last_state, Some(ContainerState::Terminated { .. })) {
                    stopped += 1;
                } else {
                    waiting += 1;
                }
            }
        }
    }
    if waiting > 0 {
        PodPhase::Pending
    } else if running > 0 {
        PodPhase::Running
    } else if stopped > 0 {
        if policy == RestartPolicy::Always {
            PodPhase::Running
        } else if stopped == succeeded {
            PodPhase::Succeeded
        } else if policy == RestartPolicy::Never {
            PodPhase::Failed
        } else {
            PodPhase::Running
        }
    } else {
        PodPhase::Pending
    }
}
