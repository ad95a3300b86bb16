//! The checks after each cycle: the API's pod statuses against the devices' truth, no
//! pod running twice, no transition lost. Pure: given the run's record of what it asked
//! for, the API's pods and the runtime's containers, it lists every finding.
//!
//! What is compared, for each pod the run created (one container, `main`):
//! - **deleted** by the run: gone from the API (the gateway deletes it with grace 0 once
//!   the device says its containers are removed) and no container of its uid left on any
//!   device (running or not);
//! - **not deleted**: still in the API with the same uid (nothing deleted it behind the
//!   run's back), bound to a node, no container of its uid on any other device, and:
//!   - a service: a container running on its node created from the image the spec
//!     names now; the API says phase `Running`, `Ready=True`, container state
//!     `running`, the same container id, the same restart count (the instance number the
//!     agent labels the container with) and the spec's image;
//!   - a job: its newest container exited with the job's exit code; the API says
//!     `Succeeded` (code 0) or `Failed`, container state `terminated` with that exit
//!     code, the same container id and restart count.
//! - no container in the run's namespace belongs to a uid the run does not know.
//!
//! A **duplicate** is a pod uid with more than one running container of the same name,
//! on one device or across devices: a pod running twice. Any other finding means the
//! system has not converged yet; one still there when the convergence timeout ends is a
//! **lost transition**.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::Pod;

use super::device_truth::RuntimeContainer;
use super::workload::{CONTAINER, PodKind, TrackedPod, Workload};

/// The API's view of one pod, reduced to what the checks compare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiPod {
    pub name: String,
    pub uid: String,
    pub node: Option<String>,
    pub phase: String,
    pub ready: bool,
    pub container: Option<ApiContainer>,
}

/// The API's status of the pod's container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiContainer {
    /// Without the `docker://` scheme.
    pub container_id: Option<String>,
    pub restart_count: u32,
    pub state: ApiContainerState,
    pub image: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiContainerState {
    Waiting(String),
    Running,
    Terminated { exit_code: i32 },
    Unknown,
}

impl ApiPod {
    pub fn from_pod(pod: &Pod) -> Self {
        let status = pod.status.clone().unwrap_or_default();
        let ready = status
            .conditions
            .as_ref()
            .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
            .is_some_and(|c| c.status == "True");
        let container = status
            .container_statuses
            .as_ref()
            .and_then(|cs| cs.iter().find(|c| c.name == CONTAINER))
            .map(|c| {
                let state = match &c.state {
                    Some(s) if s.running.is_some() => ApiContainerState::Running,
                    Some(s) => match (&s.terminated, &s.waiting) {
                        (Some(t), _) => ApiContainerState::Terminated {
                            exit_code: t.exit_code,
                        },
                        (None, Some(w)) => {
                            ApiContainerState::Waiting(w.reason.clone().unwrap_or_default())
                        }
                        (None, None) => ApiContainerState::Unknown,
                    },
                    None => ApiContainerState::Unknown,
                };
                ApiContainer {
                    container_id: c.container_id.as_deref().map(strip_scheme),
                    restart_count: u32::try_from(c.restart_count).unwrap_or(0),
                    state,
                    image: c.image.clone(),
                }
            });
        ApiPod {
            name: pod.metadata.name.clone().unwrap_or_default(),
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            node: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
            phase: status.phase.unwrap_or_default(),
            ready,
            container,
        }
    }
}

fn strip_scheme(id: &str) -> String {
    id.split_once("://").map_or(id, |(_, rest)| rest).to_owned()
}

/// One thing the checks found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// A pod running twice: more than one running container for one uid and name.
    RunningTwice {
        pod: String,
        containers: Vec<(String, String)>,
    },
    DeletedStillInApi {
        pod: String,
    },
    DeletedStillOnDevice {
        pod: String,
        containers: Vec<String>,
    },
    MissingFromApi {
        pod: String,
        detail: String,
    },
    NotBound {
        pod: String,
    },
    OnOtherDevice {
        pod: String,
        node: String,
        device: String,
        container: String,
    },
    NotRunningOnDevice {
        pod: String,
        detail: String,
    },
    JobNotFinished {
        pod: String,
        detail: String,
    },
    StatusMismatch {
        pod: String,
        field: &'static str,
        api: String,
        device: String,
    },
    UnknownContainer {
        uid: String,
        device: String,
        container: String,
    },
}

impl Finding {
    pub fn is_duplicate(&self) -> bool {
        matches!(self, Finding::RunningTwice { .. })
    }

    /// The pod (or uid) the finding is about.
    pub fn subject(&self) -> &str {
        match self {
            Finding::RunningTwice { pod, .. }
            | Finding::DeletedStillInApi { pod }
            | Finding::DeletedStillOnDevice { pod, .. }
            | Finding::MissingFromApi { pod, .. }
            | Finding::NotBound { pod }
            | Finding::OnOtherDevice { pod, .. }
            | Finding::NotRunningOnDevice { pod, .. }
            | Finding::JobNotFinished { pod, .. }
            | Finding::StatusMismatch { pod, .. } => pod,
            Finding::UnknownContainer { uid, .. } => uid,
        }
    }
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Finding::RunningTwice { pod, containers } => {
                write!(f, "{pod} runs twice: {containers:?} (device, container)")
            }
            Finding::DeletedStillInApi { pod } => {
                write!(f, "{pod} was deleted but is still in the API")
            }
            Finding::DeletedStillOnDevice { pod, containers } => {
                write!(
                    f,
                    "{pod} was deleted but its containers remain: {}",
                    containers.join(", ")
                )
            }
            Finding::MissingFromApi { pod, detail } => {
                write!(f, "{pod} was never deleted by the run but {detail}")
            }
            Finding::NotBound { pod } => write!(f, "{pod} is not bound to a node"),
            Finding::OnOtherDevice {
                pod,
                node,
                device,
                container,
            } => write!(
                f,
                "{pod} is bound to {node} but device {device} has its container {container}"
            ),
            Finding::NotRunningOnDevice { pod, detail } => {
                write!(
                    f,
                    "{pod} does not run its current spec on its device: {detail}"
                )
            }
            Finding::JobNotFinished { pod, detail } => {
                write!(
                    f,
                    "{pod} (job) has not finished as asked on its device: {detail}"
                )
            }
            Finding::StatusMismatch {
                pod,
                field,
                api,
                device,
            } => {
                write!(f, "{pod}: the API says {field} {api}, the device {device}")
            }
            Finding::UnknownContainer {
                uid,
                device,
                container,
            } => write!(
                f,
                "device {device} has container {container} of pod uid {uid} the run does not know"
            ),
        }
    }
}

/// Every finding for the run's pods, the API's pods and the runtime's containers.
pub fn check(workload: &Workload, api: &[ApiPod], runtime: &[RuntimeContainer]) -> Vec<Finding> {
    let mut findings = Vec::new();
    let api_by_name: BTreeMap<&str, &ApiPod> = api.iter().map(|p| (p.name.as_str(), p)).collect();
    let known: BTreeSet<&str> = workload.pods.values().map(|p| p.uid.as_str()).collect();
    for c in runtime
        .iter()
        .filter(|c| !known.contains(c.pod_uid.as_str()))
    {
        findings.push(Finding::UnknownContainer {
            uid: c.pod_uid.clone(),
            device: c.device.clone(),
            container: short(&c.id),
        });
    }
    for pod in workload.pods.values() {
        let mine: Vec<&RuntimeContainer> =
            runtime.iter().filter(|c| c.pod_uid == pod.uid).collect();
        duplicates(pod, &mine, &mut findings);
        let in_api = api_by_name.get(pod.name.as_str()).copied();
        if pod.deleted {
            if in_api.is_some_and(|a| a.uid == pod.uid) {
                findings.push(Finding::DeletedStillInApi {
                    pod: pod.name.clone(),
                });
            }
            if !mine.is_empty() {
                findings.push(Finding::DeletedStillOnDevice {
                    pod: pod.name.clone(),
                    containers: mine
                        .iter()
                        .map(|c| format!("{} {} on {}", short(&c.id), c.state, c.device))
                        .collect(),
                });
            }
            continue;
        }
        let Some(api_pod) = in_api.filter(|a| a.uid == pod.uid) else {
            findings.push(Finding::MissingFromApi {
                pod: pod.name.clone(),
                detail: match in_api {
                    Some(other) => {
                        format!("the API has another pod of that name (uid {})", other.uid)
                    }
                    None => "it is gone from the API".to_owned(),
                },
            });
            continue;
        };
        let Some(node) = api_pod.node.as_deref() else {
            findings.push(Finding::NotBound {
                pod: pod.name.clone(),
            });
            continue;
        };
        for c in mine.iter().filter(|c| c.device != node) {
            findings.push(Finding::OnOtherDevice {
                pod: pod.name.clone(),
                node: node.to_owned(),
                device: c.device.clone(),
                container: format!("{} ({})", short(&c.id), c.state),
            });
        }
        let on_node: Vec<&RuntimeContainer> = mine
            .iter()
            .copied()
            .filter(|c| c.device == node && c.container_name == CONTAINER)
            .collect();
        match pod.kind {
            PodKind::Service => check_service(pod, api_pod, &on_node, &mut findings),
            PodKind::Job { exit_code } => {
                check_job(pod, exit_code, api_pod, &on_node, &mut findings)
            }
        }
    }
    findings
}

fn duplicates(pod: &TrackedPod, mine: &[&RuntimeContainer], findings: &mut Vec<Finding>) {
    let mut running: BTreeMap<&str, Vec<&RuntimeContainer>> = BTreeMap::new();
    for c in mine.iter().filter(|c| c.is_running()) {
        running
            .entry(c.container_name.as_str())
            .or_default()
            .push(c);
    }
    for list in running.values().filter(|l| l.len() > 1) {
        findings.push(Finding::RunningTwice {
            pod: pod.name.clone(),
            containers: list
                .iter()
                .map(|c| (c.device.clone(), short(&c.id)))
                .collect(),
        });
    }
}

fn check_service(
    pod: &TrackedPod,
    api: &ApiPod,
    on_node: &[&RuntimeContainer],
    findings: &mut Vec<Finding>,
) {
    let Some(run) = on_node
        .iter()
        .find(|c| c.is_running() && c.image == pod.image)
    else {
        findings.push(Finding::NotRunningOnDevice {
            pod: pod.name.clone(),
            detail: format!("wants {}; device has [{}]", pod.image, describe(on_node)),
        });
        return;
    };
    let mut mismatch = |field: &'static str, api: String, device: String| {
        if api != device {
            findings.push(Finding::StatusMismatch {
                pod: pod.name.clone(),
                field,
                api,
                device,
            });
        }
    };
    mismatch("phase", api.phase.clone(), "Running".to_owned());
    mismatch("Ready", api.ready.to_string(), "true".to_owned());
    let Some(c) = &api.container else {
        mismatch("container status", "none".to_owned(), "running".to_owned());
        return;
    };
    mismatch(
        "container state",
        format!("{:?}", c.state),
        format!("{:?}", ApiContainerState::Running),
    );
    mismatch(
        "container id",
        c.container_id.as_deref().map(short).unwrap_or_default(),
        short(&run.id),
    );
    mismatch(
        "restartCount",
        c.restart_count.to_string(),
        run.restart_count.to_string(),
    );
    mismatch("image", c.image.clone(), run.image.clone());
}

fn check_job(
    pod: &TrackedPod,
    exit_code: i32,
    api: &ApiPod,
    on_node: &[&RuntimeContainer],
    findings: &mut Vec<Finding>,
) {
    let newest = on_node.iter().max_by_key(|c| c.restart_count);
    let Some(done) = newest.filter(|c| c.state == "exited" && c.exit_code == i64::from(exit_code))
    else {
        findings.push(Finding::JobNotFinished {
            pod: pod.name.clone(),
            detail: format!("wants exit {exit_code}; device has [{}]", describe(on_node)),
        });
        return;
    };
    let mut mismatch = |field: &'static str, api: String, device: String| {
        if api != device {
            findings.push(Finding::StatusMismatch {
                pod: pod.name.clone(),
                field,
                api,
                device,
            });
        }
    };
    let phase = if exit_code == 0 {
        "Succeeded"
    } else {
        "Failed"
    };
    mismatch("phase", api.phase.clone(), phase.to_owned());
    let Some(c) = &api.container else {
        mismatch(
            "container status",
            "none".to_owned(),
            "terminated".to_owned(),
        );
        return;
    };
    mismatch(
        "container state",
        format!("{:?}", c.state),
        format!(
            "{:?}",
            ApiContainerState::Terminated {
                exit_code: done.exit_code as i32
            }
        ),
    );
    mismatch(
        "container id",
        c.container_id.as_deref().map(short).unwrap_or_default(),
        short(&done.id),
    );
    mismatch(
        "restartCount",
        c.restart_count.to_string(),
        done.restart_count.to_string(),
    );
}

fn describe(containers: &[&RuntimeContainer]) -> String {
    containers
        .iter()
        .map(|c| {
            format!(
                "{} #{} {} exit {} {}",
                short(&c.id),
                c.restart_count,
                c.state,
                c.exit_code,
                c.image
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn short(id: &str) -> String {
    id.chars().take(12).collect()
}

#[cfg(test)]
#[path = "checks_tests.rs"]
mod tests;
