//! Device pod status → Kubernetes `PodStatus`, with the kubelet's semantics for phase,
//! conditions and container statuses. Pure functions.

use edge_protocol::{
    ContainerState, ContainerStatus, PodPhase, PodStatus as DevicePodStatus, UnixMillis,
};
use k8s_openapi::api::core::v1::{
    ContainerState as KubeContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus as KubeContainerStatus, HostIP, Pod, PodCondition,
    PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// Unix milliseconds as a Kubernetes time (seconds precision, like the API stores it).
pub fn time_from_millis(ms: UnixMillis) -> Time {
    let secs = i64::try_from(ms / 1000).unwrap_or(i64::MAX);
    Time(jiff::Timestamp::from_second(secs).unwrap_or(jiff::Timestamp::UNIX_EPOCH))
}

/// Now, truncated to seconds.
pub fn now_time(now: jiff::Timestamp) -> Time {
    Time(jiff::Timestamp::from_second(now.as_second()).unwrap_or(now))
}

fn phase_str(p: PodPhase) -> &'static str {
    match p {
        PodPhase::Pending => "Pending",
        PodPhase::Running => "Running",
        PodPhase::Succeeded => "Succeeded",
        PodPhase::Failed => "Failed",
        PodPhase::Unknown => "Unknown",
    }
}

fn container_state(s: &ContainerState) -> KubeContainerState {
    match s {
        ContainerState::Waiting { reason, message } => KubeContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some(reason.clone()),
                message: message.clone(),
            }),
            ..Default::default()
        },
        ContainerState::Running { started_at } => KubeContainerState {
            running: Some(ContainerStateRunning {
                started_at: Some(time_from_millis(*started_at)),
            }),
            ..Default::default()
        },
        ContainerState::Terminated {
            exit_code,
            signal,
            reason,
            message,
            started_at,
            finished_at,
        } => KubeContainerState {
            terminated: Some(ContainerStateTerminated {
                exit_code: *exit_code,
                signal: *signal,
                reason: Some(reason.clone()),
                message: message.clone(),
                started_at: started_at.map(time_from_millis),
                finished_at: finished_at.map(time_from_millis),
                container_id: None,
            }),
            ..Default::default()
        },
    }
}

fn kube_container_status(
    spec_image: &str,
    name: &str,
    s: Option<&ContainerStatus>,
) -> KubeContainerStatus {
    match s {
        Some(s) => {
            let mut state = container_state(&s.state);
            if let (Some(t), Some(id)) = (state.terminated.as_mut(), s.container_id.as_ref()) {
                t.container_id = Some(id.clone());
            }
            KubeContainerStatus {
                name: name.to_owned(),
                state: Some(state),
                last_state: Some(
                    s.last_state
                        .as_ref()
                        .map(container_state)
                        .unwrap_or_default(),
                ),
                ready: s.ready,
                started: Some(
                    s.started
                        .unwrap_or(matches!(s.state, ContainerState::Running { .. })),
                ),
                restart_count: i32::try_from(s.restart_count).unwrap_or(i32::MAX),
                image: if s.image.is_empty() {
                    spec_image.to_owned()
                } else {
                    s.image.clone()
                },
                image_id: s.image_id.clone(),
                container_id: s.container_id.clone(),
                ..Default::default()
            }
        }
        None => waiting_container(spec_image, name, "ContainerCreating", None),
    }
}

fn waiting_container(
    image: &str,
    name: &str,
    reason: &str,
    message: Option<String>,
) -> KubeContainerStatus {
    KubeContainerStatus {
        name: name.to_owned(),
        state: Some(KubeContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some(reason.to_owned()),
                message,
            }),
            ..Default::default()
        }),
        last_state: Some(KubeContainerState::default()),
        ready: false,
        started: Some(false),
        restart_count: 0,
        image: image.to_owned(),
        image_id: String::new(),
        ..Default::default()
    }
}

/// What a new status keeps from the pod's current one: the conditions (their transition
/// times, PodScheduled), the start time and the QoS class.
struct PreviousStatus<'a> {
    status: Option<&'a PodStatus>,
    conditions: Vec<PodCondition>,
}

impl<'a> PreviousStatus<'a> {
    fn of(pod: &'a Pod) -> Self {
        let status = pod.status.as_ref();
        Self {
            status,
            conditions: status
                .and_then(|s| s.conditions.clone())
                .unwrap_or_default(),
        }
    }

    /// Builds a condition, keeping the previous transition time when the status is
    /// unchanged.
    fn condition(
        &self,
        type_: &str,
        status: bool,
        reason: Option<&str>,
        message: Option<String>,
        now: &Time,
    ) -> PodCondition {
        let status = if status { "True" } else { "False" };
        let previous = self.conditions.iter().find(|c| c.type_ == type_);
        let last_transition_time = match previous {
            Some(p) if p.status == status => p.last_transition_time.clone().or(Some(now.clone())),
            _ => Some(now.clone()),
        };
        PodCondition {
            type_: type_.to_owned(),
            status: status.to_owned(),
            reason: reason.map(str::to_owned),
            message,
            last_transition_time,
            last_probe_time: None,
            observed_generation: None,
        }
    }

    /// PodScheduled as the scheduler wrote it, or true since now.
    fn scheduled(&self, now: &Time) -> PodCondition {
        self.conditions
            .iter()
            .find(|c| c.type_ == "PodScheduled")
            .cloned()
            .unwrap_or_else(|| {
                PreviousStatus::none().condition("PodScheduled", true, None, None, now)
            })
    }

    /// No previous status.
    fn none() -> PreviousStatus<'static> {
        PreviousStatus {
            status: None,
            conditions: Vec::new(),
        }
    }

    fn start_time(&self) -> Option<Time> {
        self.status.and_then(|s| s.start_time.clone())
    }

    fn qos_class(&self) -> Option<String> {
        self.status.and_then(|s| s.qos_class.clone())
    }
}

/// One status per container of the pod's spec, in its order: `status(image, name)`.
fn container_statuses(
    pod: &Pod,
    status: impl Fn(&str, &str) -> KubeContainerStatus,
) -> Vec<KubeContainerStatus> {
    pod.spec
        .iter()
        .flat_map(|s| s.containers.iter())
        .map(|c| status(c.image.as_deref().unwrap_or_default(), &c.name))
        .collect()
}

/// One status per ephemeral container of the pod's spec, as the kubelet writes them:
/// never ready, never restarted; waiting in `ContainerCreating` until the device reports
/// it. `None` when the pod has none (the field stays unset).
fn ephemeral_statuses(pod: &Pod, report: &DevicePodStatus) -> Option<Vec<KubeContainerStatus>> {
    let statuses: Vec<KubeContainerStatus> = pod
        .spec
        .iter()
        .flat_map(|s| s.ephemeral_containers.iter().flatten())
        .map(|e| {
            let reported = report
                .ephemeral_containers
                .iter()
                .find(|c| c.name == e.name);
            let mut status =
                kube_container_status(e.image.as_deref().unwrap_or_default(), &e.name, reported);
            status.ready = false;
            status.restart_count = 0;
            status
        })
        .collect();
    (!statuses.is_empty()).then_some(statuses)
}

/// One status per init container of the pod's spec, in its order (`None` when the pod
/// has none): `PodInitializing` until the device reports it, as the kubelet.
fn init_statuses(pod: &Pod, report: &DevicePodStatus) -> Option<Vec<KubeContainerStatus>> {
    let statuses: Vec<KubeContainerStatus> = pod
        .spec
        .iter()
        .flat_map(|s| s.init_containers.iter().flatten())
        .map(|c| {
            let image = c.image.as_deref().unwrap_or_default();
            match report.init_containers.iter().find(|s| s.name == c.name) {
                Some(reported) => kube_container_status(image, &c.name, Some(reported)),
                None => waiting_container(image, &c.name, "PodInitializing", None),
            }
        })
        .collect();
    (!statuses.is_empty()).then_some(statuses)
}

/// Whether `name` is an init container of the pod with `restartPolicy: Always`.
fn is_sidecar(pod: &Pod, name: &str) -> bool {
    pod.spec
        .iter()
        .flat_map(|s| s.init_containers.iter().flatten())
        .any(|c| c.name == name && c.restart_policy.as_deref() == Some("Always"))
}

/// The init containers not done yet (the kubelet's "incomplete status"): a regular one
/// until it terminated with 0, a sidecar until it started.
fn incomplete_init(pod: &Pod, statuses: &[KubeContainerStatus]) -> Vec<String> {
    statuses
        .iter()
        .filter(|s| {
            let state = s.state.clone().unwrap_or_default();
            if is_sidecar(pod, &s.name) {
                !(state.running.is_some() && s.started == Some(true))
            } else {
                state.terminated.is_none_or(|t| t.exit_code != 0)
            }
        })
        .map(|s| s.name.clone())
        .collect()
}

/// The pod's status as the kubelet would write it from what the device reported.
pub fn kube_pod_status(
    pod: &Pod,
    report: &DevicePodStatus,
    host_ip: Option<&str>,
    now: &Time,
) -> PodStatus {
    let previous = PreviousStatus::of(pod);
    let containers = container_statuses(pod, |image, name| {
        kube_container_status(
            image,
            name,
            report.containers.iter().find(|c| c.name == name),
        )
    });
    let terminal = matches!(report.phase, PodPhase::Succeeded | PodPhase::Failed);
    let init = init_statuses(pod, report);
    // Initialized once every init container is done, or once the containers ran.
    let apps_started = containers.iter().any(|c| {
        c.state
            .as_ref()
            .and_then(|s| s.waiting.as_ref())
            .is_none_or(|w| w.reason.as_deref() != Some("PodInitializing"))
    });
    let incomplete = match &init {
        Some(statuses) if !apps_started => incomplete_init(pod, statuses),
        _ => Vec::new(),
    };
    let sidecars_unready = init
        .iter()
        .flatten()
        .filter(|c| !c.ready && is_sidecar(pod, &c.name));
    let unready: Vec<&str> = sidecars_unready
        .chain(containers.iter().filter(|c| !c.ready))
        .map(|c| c.name.as_str())
        .collect();
    let all_ready = unready.is_empty() && !containers.is_empty() && !terminal;
    let (reason, message) = if terminal {
        (Some("PodCompleted"), None)
    } else if all_ready {
        (None, None)
    } else {
        (
            Some("ContainersNotReady"),
            Some(format!(
                "containers with unready status: [{}]",
                unready.join(" ")
            )),
        )
    };
    let initialized = if incomplete.is_empty() {
        previous.condition(
            "Initialized",
            true,
            terminal.then_some("PodCompleted"),
            None,
            now,
        )
    } else {
        previous.condition(
            "Initialized",
            false,
            Some("ContainersNotInitialized"),
            Some(format!(
                "containers with incomplete status: [{}]",
                incomplete.join(" ")
            )),
            now,
        )
    };
    let conditions = vec![
        initialized,
        previous.condition("Ready", all_ready, reason, message.clone(), now),
        previous.condition("ContainersReady", all_ready, reason, message, now),
        previous.scheduled(now),
    ];
    let pod_ip = report
        .pod_ip
        .clone()
        .or_else(|| host_ip.map(str::to_owned))
        .filter(|ip| !ip.is_empty());
    let start_time = previous
        .start_time()
        .or_else(|| report.start_time.map(time_from_millis))
        .or_else(|| Some(now.clone()));
    PodStatus {
        phase: Some(phase_str(report.phase).to_owned()),
        reason: report.reason.clone(),
        message: report.message.clone(),
        conditions: Some(conditions),
        container_statuses: Some(containers),
        init_container_statuses: init,
        ephemeral_container_statuses: ephemeral_statuses(pod, report),
        host_ip: host_ip.map(str::to_owned),
        host_ips: host_ip.map(|ip| vec![HostIP { ip: ip.to_owned() }]),
        pod_ip: pod_ip.clone(),
        pod_ips: pod_ip.map(|ip| vec![PodIP { ip }]),
        start_time,
        qos_class: previous.qos_class(),
        ..Default::default()
    }
}

/// Status of a pod the gateway could not translate: Pending, every container waiting
/// with `CreateContainerConfigError` and the reason, as the kubelet reports it.
pub fn config_error_status(
    pod: &Pod,
    message: &str,
    host_ip: Option<&str>,
    now: &Time,
) -> PodStatus {
    let previous = PreviousStatus::of(pod);
    let containers = container_statuses(pod, |image, name| {
        waiting_container(
            image,
            name,
            "CreateContainerConfigError",
            Some(message.to_owned()),
        )
    });
    let names: Vec<&str> = containers.iter().map(|c| c.name.as_str()).collect();
    let msg = format!("containers with unready status: [{}]", names.join(" "));
    PodStatus {
        phase: Some("Pending".to_owned()),
        conditions: Some(vec![
            previous.condition("Initialized", true, None, None, now),
            previous.condition(
                "Ready",
                false,
                Some("ContainersNotReady"),
                Some(msg.clone()),
                now,
            ),
            previous.condition(
                "ContainersReady",
                false,
                Some("ContainersNotReady"),
                Some(msg),
                now,
            ),
            previous.scheduled(now),
        ]),
        container_statuses: Some(containers),
        host_ip: host_ip.map(str::to_owned),
        host_ips: host_ip.map(|ip| vec![HostIP { ip: ip.to_owned() }]),
        start_time: previous.start_time().or_else(|| Some(now.clone())),
        qos_class: previous.qos_class(),
        ..Default::default()
    }
}

/// The status of a pod the node cannot admit, as the kubelet writes it when it rejects
/// one: phase Failed, the reason, and "Pod was rejected: ..." as the message.
pub fn rejected_status(pod: &Pod, reason: &str, message: &str) -> PodStatus {
    PodStatus {
        phase: Some("Failed".to_owned()),
        reason: Some(reason.to_owned()),
        message: Some(message.to_owned()),
        qos_class: pod.status.as_ref().and_then(|s| s.qos_class.clone()),
        ..Default::default()
    }
}

/// Phase of a Kubernetes pod as a label value for metrics.
pub fn phase_of(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending")
}

#[cfg(test)]
mod tests;
