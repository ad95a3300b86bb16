//! Which device and pod an exec, attach or port-forward request is for, and why it
//! cannot be served, decided before the connection is upgraded so that the user gets a
//! clear error at once (never a hang): the pod must be one of the gateway's, the
//! container in its spec, the uid (when given) the pod's, the device online and its
//! agent able to speak the stream protocol.

use edge_protocol::{DeviceId, MIN_STREAM_PROTOCOL_VERSION, StreamPod};

/// Where a pod runs, as the fleet knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodPlacement {
    pub device: DeviceId,
    pub uid: String,
    /// The names of the containers and ephemeral containers of its spec.
    pub containers: Vec<String>,
}

/// What the fleet knows about the device's ability to carry a stream now.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeviceReadiness {
    pub online: bool,
    /// The stream protocol the agent declared in its last hello.
    pub streams: Option<u32>,
    /// The agent's version from its last hello ("" if unknown).
    pub agent_version: String,
}

/// What the request names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamRequestTarget<'a> {
    pub namespace: &'a str,
    pub pod: &'a str,
    pub uid: Option<&'a str>,
    /// None for port-forward.
    pub container: Option<&'a str>,
    /// "exec", "attach" or "port-forward", for the messages.
    pub what: &'a str,
}

/// Why a request cannot be served (with the HTTP status the kubelet API answers).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamRefusal {
    /// The kubelet's text for a pod it does not run.
    #[error("pod does not exist")]
    PodNotFound,
    #[error("pod {namespace}/{pod} has uid {actual}, not {requested}")]
    UidMismatch {
        namespace: String,
        pod: String,
        requested: String,
        actual: String,
    },
    #[error("container not found ({container:?})")]
    ContainerNotFound { container: String },
    #[error(
        "node {device} is offline: its device is not connected to the gateway, so {what} cannot reach it now"
    )]
    DeviceOffline { device: String, what: String },
    #[error(
        "edge-agent {agent_version} on node {device} does not support exec, attach or port-forward (stream protocol {MIN_STREAM_PROTOCOL_VERSION} needed); upgrade the agent"
    )]
    AgentTooOld {
        device: String,
        agent_version: String,
    },
}

impl StreamRefusal {
    /// The HTTP status of the answer.
    pub fn http_status(&self) -> u16 {
        match self {
            StreamRefusal::PodNotFound
            | StreamRefusal::UidMismatch { .. }
            | StreamRefusal::ContainerNotFound { .. } => 404,
            StreamRefusal::DeviceOffline { .. } | StreamRefusal::AgentTooOld { .. } => 503,
        }
    }
}

/// The device and pod of a request, or why it cannot be served.
pub fn check_target(
    request: &StreamRequestTarget<'_>,
    placement: Option<&PodPlacement>,
    readiness: &DeviceReadiness,
) -> Result<(DeviceId, StreamPod), StreamRefusal> {
    let placement = placement.ok_or(StreamRefusal::PodNotFound)?;
    if let Some(uid) = request.uid.filter(|u| *u != placement.uid) {
        return Err(StreamRefusal::UidMismatch {
            namespace: request.namespace.to_owned(),
            pod: request.pod.to_owned(),
            requested: uid.to_owned(),
            actual: placement.uid.clone(),
        });
    }
    if let Some(container) = request.container {
        if !placement.containers.iter().any(|c| c == container) {
            return Err(StreamRefusal::ContainerNotFound {
                container: container.to_owned(),
            });
        }
    }
    let device = placement.device.to_string();
    if !readiness.online {
        return Err(StreamRefusal::DeviceOffline {
            device,
            what: request.what.to_owned(),
        });
    }
    if readiness
        .streams
        .is_none_or(|v| v < MIN_STREAM_PROTOCOL_VERSION)
    {
        let agent_version = if readiness.agent_version.is_empty() {
            "(unknown version)".to_owned()
        } else {
            readiness.agent_version.clone()
        };
        return Err(StreamRefusal::AgentTooOld {
            device,
            agent_version,
        });
    }
    Ok((
        placement.device.clone(),
        StreamPod {
            pod_uid: placement.uid.clone(),
            namespace: request.namespace.to_owned(),
            pod_name: request.pod.to_owned(),
        },
    ))
}

#[cfg(test)]
mod tests;
