//! Reconcile: desired pods against the containers found, the kubelet's way. Tears down
//! what nobody wants, prepares volumes, brings containers up (image, create, start),
//! watches probes, and restarts per restart policy with the crash-loop back-off.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use edge_protocol::{ContainerSpec, EventType, PodSpec, RestartPolicy};

use super::PodLifecycle;
use super::container_memory::{AWAITING_LIMIT_MS, Failure, Op, ProbeState, VolumeState, spec_hash};
use super::init_sequence::restart_policy_of;
use super::inputs_effects::{ContainerKey, Effect, FailureReason, NamespaceShare, SandboxRole};
use crate::backoff::Backoff;
use crate::container_labels::SANDBOX_CONTAINER_NAME;
use crate::container_runtime::{ContainerSnapshot, RunState};

impl PodLifecycle {
    pub(super) fn reconcile(&mut self) {
        self.release_gpus();
        // Containers of pods nobody wants any more.
        let mut orphan_pods: BTreeMap<String, Vec<ContainerSnapshot>> = BTreeMap::new();
        for c in &self.containers {
            if !self.pods.contains_key(&c.identity.pod_uid) {
                orphan_pods
                    .entry(c.identity.pod_uid.clone())
                    .or_default()
                    .push(c.clone());
            }
        }
        let orphan_ids: Vec<ContainerSnapshot> = orphan_pods
            .into_values()
            .flat_map(|mine| Self::teardown_wave(None, mine))
            .collect();
        for c in &orphan_ids {
            self.orphans
                .entry(c.identity.pod_uid.clone())
                .or_insert_with(|| {
                    (
                        c.identity.pod_namespace.clone(),
                        c.identity.pod_name.clone(),
                    )
                });
            let grace = Duration::from_secs(c.identity.grace_period_seconds);
            self.tear_down(c, grace, None);
        }
        let uids: Vec<String> = self.pods.keys().cloned().collect();
        for uid in uids {
            self.reconcile_pod(&uid);
        }
    }

    /// Stops a running container, removes a stopped one. An infra container still
    /// joined (see [`PodLifecycle::infra_held`]) waits.
    pub(super) fn tear_down(
        &mut self,
        c: &ContainerSnapshot,
        grace: Duration,
        spec: Option<&PodSpec>,
    ) {
        if self.infra_held(c) {
            return;
        }
        if matches!(c.state, RunState::Running { .. }) {
            if self.stopping.insert(c.id.clone()) {
                if let Some(spec) = spec {
                    self.event(
                        spec,
                        Some(&c.identity.container_name),
                        EventType::Normal,
                        "Killing",
                        format!("Stopping container {}", c.identity.container_name),
                    );
                }
                self.stop_container(c, grace);
            }
        } else if !self.stopping.contains(&c.id) && self.removing.insert(c.id.clone()) {
            if self.probes.remove(&c.id).is_some() {
                self.effects.push(Effect::UnwatchProbes {
                    container_id: c.id.clone(),
                });
            }
            self.effects.push(Effect::Remove { id: c.id.clone() });
        }
    }

    fn reconcile_pod(&mut self, uid: &str) {
        self.past_active_deadline(uid);
        let Some(pod) = self.pods.get(uid) else {
            return;
        };
        let spec = pod.spec.clone();
        if let Some(grace) = spec.deletion_grace_period_seconds {
            let mine: Vec<ContainerSnapshot> = self
                .containers
                .iter()
                .filter(|c| c.identity.pod_uid == uid)
                .cloned()
                .collect();
            for c in &Self::teardown_wave(Some(&spec), mine.clone()) {
                self.tear_down(c, Duration::from_secs(grace), Some(&spec));
            }
            let Some(pod) = self.pods.get(uid) else {
                return;
            };
            let busy = pod.containers.values().any(|m| m.op.is_some())
                || pod.volumes == VolumeState::InFlight;
            if mine.is_empty() && !busy && !pod.removed_reported {
                self.effects.push(Effect::CleanupPod {
                    pod_uid: uid.to_owned(),
                });
            }
            return;
        }
        if pod.ended.is_some() {
            self.stop_ended(uid);
            return;
        }
        if !self.admit_gpus(uid) {
            return;
        }
        let Some(pod) = self.pods.get(uid) else {
            return;
        };
        // Volumes first.
        match &pod.volumes.clone() {
            VolumeState::NotPrepared => {
                self.effects
                    .push(Effect::PrepareVolumes { pod: spec.clone() });
                if let Some(p) = self.pods.get_mut(uid) {
                    p.volumes = VolumeState::InFlight;
                }
                return;
            }
            VolumeState::InFlight => return,
            VolumeState::Failed { at, backoff, .. } => {
                if !backoff.in_backoff(*at, self.now) {
                    self.effects
                        .push(Effect::PrepareVolumes { pod: spec.clone() });
                    if let Some(p) = self.pods.get_mut(uid) {
                        p.volumes = VolumeState::InFlight;
                    }
                }
                return;
            }
            VolumeState::Ready => {}
        }
        // Containers not (or no longer) in the spec.
        let strays: Vec<ContainerSnapshot> = self
            .containers
            .iter()
            .filter(|c| {
                c.identity.pod_uid == uid
                    && !(c.identity.is_sandbox() && self.uses_sandbox(&spec))
                    && spec.container(&c.identity.container_name).is_none()
                    && spec
                        .ephemeral_container(&c.identity.container_name)
                        .is_none()
            })
            .cloned()
            .collect();
        for c in &strays {
            self.tear_down(
                c,
                Duration::from_secs(spec.termination_grace_period_seconds),
                Some(&spec),
            );
        }
        self.reconcile_sandbox(&spec);
        // Init containers in order first; the containers once they are done.
        if self.reconcile_init(&spec) {
            let mut seen = HashSet::new();
            for c in &spec.containers {
                if c.name.is_empty() || !seen.insert(c.name.clone()) {
                    continue;
                }
                self.reconcile_container(&spec, c, None);
            }
        }
        self.reconcile_ephemeral(&spec);
    }

    /// `share` is set for an ephemeral container: it joins those namespaces, is
    /// started once and never restarted or replaced.
    pub(super) fn reconcile_container(
        &mut self,
        spec: &Arc<PodSpec>,
        c: &ContainerSpec,
        share: Option<&NamespaceShare>,
    ) {
        let key: ContainerKey = (spec.uid.clone(), c.name.clone());
        let instances = self.instances(&spec.uid, &c.name);
        let hash = spec_hash(c);
        let grace = Duration::from_secs(spec.termination_grace_period_seconds);
        // Keep the current and the previous instance (for `logs --previous`).
        for old in instances.iter().skip(2) {
            self.tear_down(old, grace, None);
        }
        let joins_sandbox = share.is_none() && c.name != SANDBOX_CONTAINER_NAME;
        if joins_sandbox && self.wait_for_sandbox(spec, &instances, grace) {
            return;
        }
        let now = self.now;
        let (op, pipeline, max_restart) = {
            let Some(m) = self.memory(&key) else {
                return;
            };
            if let Some((id, since)) = &m.awaiting {
                if instances.iter().any(|i| &i.id == id)
                    || now.saturating_sub(*since) > AWAITING_LIMIT_MS
                {
                    m.awaiting = None;
                } else {
                    // Created but not listed yet: wait for the runtime to show it.
                    return;
                }
            }
            (m.op, m.pipeline, m.max_restart)
        };
        if op.is_some() {
            return;
        }
        if let Some(restart_count) = pipeline {
            self.drive(spec, c, &key, restart_count, &hash, share);
            return;
        }
        let Some(current) = instances.first().cloned() else {
            if share.is_some() && max_restart.is_some() {
                // An ephemeral container that ran once is not brought up again.
                return;
            }
            let next = max_restart.map_or(0, |m| m + 1);
            self.drive(spec, c, &key, next, &hash, share);
            return;
        };
        if let Some(previous) = instances.get(1)
            && matches!(previous.state, RunState::Running { .. })
        {
            self.tear_down(previous, grace, None);
        }
        if let Some(m) = self.memory(&key) {
            m.max_restart = Some(
                m.max_restart
                    .unwrap_or(0)
                    .max(current.identity.restart_count),
            );
        }
        let changed = share.is_none()
            && ((!current.identity.spec_hash.is_empty() && current.identity.spec_hash != hash)
                || (joins_sandbox && self.in_old_sandbox(spec, &current)));
        match current.state.clone() {
            RunState::Created => {
                if let Some(message) = self.start_failed.get(&current.id).cloned() {
                    if share.is_some() {
                        return;
                    }
                    self.on_exited(spec, c, &key, &current, changed, Some(message));
                } else if let Some(m) = self.memory(&key) {
                    m.op = Some(Op::Start);
                    self.effects.push(Effect::Start {
                        key,
                        id: current.id.clone(),
                    });
                }
            }
            RunState::Running { .. } => {
                if self.in_post_start(&current.id) {
                    // Not started until its postStart hook returns: no probes yet.
                    return;
                }
                if !self.probes.contains_key(&current.id) {
                    let has_probes = c.liveness_probe.is_some()
                        || c.readiness_probe.is_some()
                        || c.startup_probe.is_some();
                    self.probes
                        .insert(current.id.clone(), ProbeState::initial(c));
                    if has_probes {
                        let target_ip = self.probe_target_ip(spec, current.ip_address.clone());
                        self.effects.push(Effect::WatchProbes {
                            container_id: current.id.clone(),
                            container: Box::new(c.clone()),
                            target_ip,
                        });
                    }
                }
                let failed = self
                    .probes
                    .get(&current.id)
                    .is_some_and(|p| p.liveness_failed);
                if (failed || changed) && self.stopping.insert(current.id.clone()) {
                    let why = if failed {
                        "failed liveness probe"
                    } else {
                        "definition changed"
                    };
                    self.event(
                        spec,
                        Some(&c.name),
                        EventType::Normal,
                        "Killing",
                        format!("Container {} {why}, will be restarted", c.name),
                    );
                    self.stop_container(&current, grace);
                }
            }
            RunState::Exited { error, .. } => {
                if self.probes.remove(&current.id).is_some() {
                    self.effects.push(Effect::UnwatchProbes {
                        container_id: current.id.clone(),
                    });
                }
                if share.is_some() {
                    // A terminated ephemeral container stays terminated.
                    return;
                }
                self.on_exited(spec, c, &key, &current, changed, error);
            }
        }
    }

    /// Where HTTP and TCP probes (and httpGet hooks) without a host connect: the pod IP,
    /// loopback on the host network; `own_ip` is the container's own address.
    pub(super) fn probe_target_ip(&self, spec: &PodSpec, own_ip: Option<String>) -> String {
        if spec.host_network {
            "127.0.0.1".to_owned()
        } else {
            self.sandbox_ip(spec)
                .unwrap_or(own_ip)
                .unwrap_or_else(|| "127.0.0.1".to_owned())
        }
    }

    pub(super) fn should_restart(policy: RestartPolicy, exit_code: i32) -> bool {
        match policy {
            RestartPolicy::Always => true,
            RestartPolicy::OnFailure => exit_code != 0,
            RestartPolicy::Never => false,
        }
    }

    fn on_exited(
        &mut self,
        spec: &Arc<PodSpec>,
        c: &ContainerSpec,
        key: &ContainerKey,
        current: &ContainerSnapshot,
        changed: bool,
        start_error: Option<String>,
    ) {
        let (exit_code, started, finished) = match &current.state {
            RunState::Exited {
                exit_code,
                started_at,
                finished_at,
                ..
            } => (*exit_code, *started_at, *finished_at),
            _ => (128, None, None),
        };
        let exit_code = if start_error.is_some() && exit_code == 0 {
            128
        } else {
            exit_code
        };
        if !changed && !Self::should_restart(restart_policy_of(spec, &c.name), exit_code) {
            return;
        }
        let timings = self.timings;
        let now = self.now;
        let restarts = current.identity.restart_count;
        let failed_at = finished.unwrap_or(now);
        let hash = spec_hash(c);
        let Some(m) = self.memory(key) else {
            return;
        };
        if m.restart_decided_for.as_deref() == Some(&current.id) {
            return;
        }
        let backoff = m
            .crash_backoff
            .get_or_insert_with(|| Backoff::from_restarts(restarts, &timings));
        backoff.reset_if_ran_long(started, finished, &timings);
        if !changed && backoff.in_backoff(failed_at, now) {
            let delay = backoff.delay();
            m.crash_wait = delay;
            if m.crash_event_for.as_deref() != Some(&current.id) {
                m.crash_event_for = Some(current.id.clone());
                self.event(
                    spec,
                    Some(&c.name),
                    EventType::Warning,
                    "BackOff",
                    format!(
                        "Back-off {} restarting failed container={} pod={}_{}({})",
                        humantime::format_duration(delay),
                        c.name,
                        spec.name,
                        spec.namespace,
                        spec.uid
                    ),
                );
            }
            return;
        }
        backoff.advance(&timings);
        m.restart_decided_for = Some(current.id.clone());
        let next = m.max_restart.unwrap_or(restarts).max(restarts) + 1;
        self.drive(spec, c, key, next, &hash, None);
    }

    /// Brings up instance `restart_count`: image, then create (start follows `Created`).
    fn drive(
        &mut self,
        spec: &Arc<PodSpec>,
        c: &ContainerSpec,
        key: &ContainerKey,
        restart_count: u32,
        hash: &str,
        share: Option<&NamespaceShare>,
    ) {
        let now = self.now;
        let Some(m) = self.memory(key) else {
            return;
        };
        m.pipeline = Some(restart_count);
        if let Some(Failure { reason, at, .. }) = m.failure.clone()
            && m.attempt_backoff.in_backoff(at, now)
        {
            // ErrImagePull is reported first; ImagePullBackOff from the next pass on.
            if reason.is_pull() && !m.backoff_event_sent && now > at {
                m.backoff_event_sent = true;
                m.failure = Some(Failure {
                    reason: FailureReason::ImagePullBackOff,
                    message: back_off_pulling(c),
                    at,
                });
                self.event(
                    spec,
                    Some(&c.name),
                    EventType::Normal,
                    "BackOff",
                    back_off_pulling(c),
                );
            }
            return;
        }
        if !m.image_ok {
            m.op = Some(Op::Image);
            self.effects.push(Effect::EnsureImage {
                key: key.clone(),
                image: c.image.clone(),
                policy: c.image_pull_policy,
                credentials: spec.registry_credentials.clone(),
            });
            return;
        }
        m.op = Some(Op::Create);
        m.max_restart = Some(
            m.max_restart
                .map_or(restart_count, |x| x.max(restart_count)),
        );
        let sandbox = if share.is_some() {
            SandboxRole::Own
        } else {
            self.sandbox_role(spec, &c.name)
        };
        self.unlisted_creates.asked(key.clone(), self.now);
        self.effects.push(Effect::Create {
            key: key.clone(),
            pod: spec.clone(),
            restart_count,
            spec_hash: hash.to_owned(),
            share: share.cloned(),
            sandbox,
            gpus: self.gpus_of(key),
        });
    }
}

fn back_off_pulling(c: &ContainerSpec) -> String {
    format!("Back-off pulling image \"{}\"", c.image)
}
