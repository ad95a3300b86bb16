//! Ephemeral containers (`kubectl debug`): what a device runs next to a pod's containers.

use serde::{Deserialize, Serialize};

use crate::desired_set::{ContainerSpec, EnvVar, PullPolicy, VolumeMount};

/// One ephemeral container of a pod, as `kubectl debug` adds it through the
/// `pods/ephemeralcontainers` subresource. Like the kubelet, a device starts it once and
/// never restarts it; it has no ports, probes or resources.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct EphemeralContainerSpec {
    /// Unique among all containers of the pod (the API server checks it).
    pub name: String,
    pub image: String,
    pub image_pull_policy: PullPolicy,
    /// Entrypoint override (Kubernetes `command`); empty keeps the image's.
    pub command: Vec<String>,
    /// Kubernetes `args`; empty keeps the image's.
    pub args: Vec<String>,
    pub working_dir: Option<String>,
    /// Fully resolved environment, in order.
    pub env: Vec<EnvVar>,
    pub volume_mounts: Vec<VolumeMount>,
    /// Keep stdin open (for `kubectl debug -i` and `kubectl attach`).
    pub stdin: bool,
    /// Close stdin after the first attach ends.
    pub stdin_once: bool,
    pub tty: bool,
    /// Run in this container's process namespace (`kubectl debug --target`).
    pub target_container_name: Option<String>,
    pub privileged: bool,
}

impl EphemeralContainerSpec {
    /// The parts a runtime creates a container from, in the shape of a regular
    /// container (no ports, probes, resources or devices).
    pub fn to_container_spec(&self) -> ContainerSpec {
        ContainerSpec {
            name: self.name.clone(),
            image: self.image.clone(),
            image_pull_policy: self.image_pull_policy,
            command: self.command.clone(),
            args: self.args.clone(),
            working_dir: self.working_dir.clone(),
            env: self.env.clone(),
            volume_mounts: self.volume_mounts.clone(),
            privileged: self.privileged,
            stdin: self.stdin,
            stdin_once: self.stdin_once,
            tty: self.tty,
            ..ContainerSpec::default()
        }
    }
}
