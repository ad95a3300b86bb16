//! Kubernetes pod → device-facing [`PodSpec`]: pure functions.
//!
//! The caller first asks [`referenced_objects`] which ConfigMaps and Secrets the pod
//! needs, fetches them into [`PodReferences`] (missing ones simply absent), then calls
//! [`translate_pod`]. Nothing here does I/O, so every rule is unit tested.

pub mod downward;
pub mod env;
pub mod pull_secrets;
pub mod volumes;

use std::collections::{BTreeMap, BTreeSet};

use edge_protocol::{
    ContainerPort, ContainerSpec, DeviceMapping, HttpHeader, PodSpec, PortProtocol, Probe,
    ProbeHandler, PullPolicy, ResourceRequirements, RestartPolicy, VolumeMount, VolumeSource,
};
use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Probe as KubeProbe, Secret};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::kube_writer::EventReason;
use crate::quantity::{Quantity, QuantityError};

/// Why a pod cannot be run on a device. The message goes into the pod's status and a
/// Warning event, so it says what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TranslationError {
    #[error("configmap {0:?} not found")]
    ConfigMapNotFound(String),
    #[error("couldn't find key {key} in ConfigMap {name}")]
    ConfigMapKeyNotFound { name: String, key: String },
    #[error("secret {0:?} not found")]
    SecretNotFound(String),
    #[error("couldn't find key {key} in Secret {name}")]
    SecretKeyNotFound { name: String, key: String },
    #[error("unsupported field selector {0:?}")]
    UnsupportedField(String),
    #[error("container {0:?} referenced by resourceFieldRef does not exist in the pod")]
    UnknownContainer(String),
    #[error(
        "volume {0:?} has a type edge devices do not support (use configMap, secret, downwardAPI, projected, emptyDir or hostPath)"
    )]
    UnsupportedVolume(String),
    #[error("volume file path {0:?} must be relative and must not contain '..'")]
    UnsafePath(String),
    #[error(transparent)]
    Quantity(#[from] QuantityError),
    #[error(
        "probe of container {container} names port {port:?}, which the container does not declare"
    )]
    UnknownProbePort { container: String, port: String },
    #[error("container {container}: {what} is not supported on edge devices")]
    Unsupported { container: String, what: String },
    #[error("init containers are not supported on edge devices yet (pod has {0})")]
    InitContainers(usize),
    #[error("pod has no spec")]
    NoSpec,
    #[error("volume mount {mount:?} of container {container} names no volume of the pod")]
    UnknownVolume { container: String, mount: String },
    #[error("port {0} is out of range 1-65535")]
    BadPort(i32),
}

/// Contents of a ConfigMap or Secret: every key with its bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectData {
    pub entries: BTreeMap<String, Vec<u8>>,
}

impl ObjectData {
    pub fn from_config_map(cm: &ConfigMap) -> Self {
        let mut entries = BTreeMap::new();
        for (k, v) in cm.data.iter().flatten() {
            entries.insert(k.clone(), v.clone().into_bytes());
        }
        for (k, v) in cm.binary_data.iter().flatten() {
            entries.insert(k.clone(), v.0.clone());
        }
        Self { entries }
    }

    pub fn from_secret(secret: &Secret) -> Self {
        let mut entries = BTreeMap::new();
        for (k, v) in secret.data.iter().flatten() {
            entries.insert(k.clone(), v.0.clone());
        }
        for (k, v) in secret.string_data.iter().flatten() {
            entries.insert(k.clone(), v.clone().into_bytes());
        }
        Self { entries }
    }

    pub fn bytes(&self, key: &str) -> Option<Vec<u8>> {
        self.entries.get(key).cloned()
    }

    pub fn text(&self, key: &str) -> Option<String> {
        self.entries
            .get(key)
            .map(|b| String::from_utf8_lossy(b).into_owned())
    }

    pub fn text_pairs(&self) -> Vec<(String, String)> {
        self.entries
            .iter()
            .map(|(k, v)| (k.clone(), String::from_utf8_lossy(v).into_owned()))
            .collect()
    }
}

/// The ConfigMaps and Secrets a pod's namespace holds that the pod references.
#[derive(Debug, Clone, Default)]
pub struct PodReferences {
    pub config_maps: BTreeMap<String, ObjectData>,
    pub secrets: BTreeMap<String, ObjectData>,
}

impl PodReferences {
    pub fn config_map(&self, name: &str) -> Option<&ObjectData> {
        self.config_maps.get(name)
    }
    pub fn secret(&self, name: &str) -> Option<&ObjectData> {
        self.secrets.get(name)
    }

    /// The ConfigMap or Secret `name`: `None` when it is missing and `optional`, an error
    /// when it is missing otherwise.
    pub fn object(
        &self,
        kind: ObjectKind,
        name: &str,
        optional: bool,
    ) -> Result<Option<&ObjectData>, TranslationError> {
        let data = match kind {
            ObjectKind::ConfigMap => self.config_map(name),
            ObjectKind::Secret => self.secret(name),
        };
        match data {
            Some(data) => Ok(Some(data)),
            None if optional => Ok(None),
            None => Err(kind.not_found(name)),
        }
    }
}

/// Which kind of object a pod takes env values or volume files from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    ConfigMap,
    Secret,
}

impl ObjectKind {
    /// The error for a missing object.
    pub fn not_found(self, name: &str) -> TranslationError {
        match self {
            ObjectKind::ConfigMap => TranslationError::ConfigMapNotFound(name.to_owned()),
            ObjectKind::Secret => TranslationError::SecretNotFound(name.to_owned()),
        }
    }

    /// The error for a missing key of an object.
    pub fn key_not_found(self, name: &str, key: &str) -> TranslationError {
        let (name, key) = (name.to_owned(), key.to_owned());
        match self {
            ObjectKind::ConfigMap => TranslationError::ConfigMapKeyNotFound { name, key },
            ObjectKind::Secret => TranslationError::SecretKeyNotFound { name, key },
        }
    }
}

/// Names of what [`translate_pod`] will look up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReferencedNames {
    pub config_maps: BTreeSet<String>,
    pub secrets: BTreeSet<String>,
}

/// Facts about the node a pod runs on that the downward API exposes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeContext {
    pub node_name: String,
    /// The device's address (hostIP, and podIP of host-network pods).
    pub host_ip: Option<String>,
    pub allocatable_cpu_millis: u64,
    pub allocatable_memory_bytes: u64,
    pub allocatable_storage_bytes: u64,
}

/// A translated pod and the non-fatal problems found on the way (sent as events).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Translation {
    pub spec: PodSpec,
    pub warnings: Vec<TranslationWarning>,
}

/// A non-fatal problem found while translating a pod: recorded as a Warning Event on the
/// pod with this reason and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TranslationWarning {
    pub reason: EventReason,
    pub message: String,
}

impl TranslationWarning {
    /// A problem with the pod's spec the device can run without (`Failed`).
    pub fn failed(message: String) -> Self {
        Self {
            reason: EventReason::Failed,
            message,
        }
    }

    /// An image pull secret that is missing or unusable
    /// (`FailedToRetrieveImagePullSecret`, as the kubelet says it).
    pub fn pull_secret(message: String) -> Self {
        Self {
            reason: EventReason::FailedToRetrieveImagePullSecret,
            message,
        }
    }
}

/// Every ConfigMap and Secret the pod references (env, envFrom, volumes, pull secrets).
pub fn referenced_objects(pod: &Pod) -> ReferencedNames {
    let mut names = ReferencedNames::default();
    let Some(spec) = &pod.spec else {
        return names;
    };
    for c in spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
    {
        for f in c.env_from.iter().flatten() {
            if let Some(r) = &f.config_map_ref {
                names.config_maps.insert(r.name.clone());
            }
            if let Some(r) = &f.secret_ref {
                names.secrets.insert(r.name.clone());
            }
        }
        for e in c.env.iter().flatten() {
            if let Some(from) = &e.value_from {
                if let Some(r) = &from.config_map_key_ref {
                    names.config_maps.insert(r.name.clone());
                }
                if let Some(r) = &from.secret_key_ref {
                    names.secrets.insert(r.name.clone());
                }
            }
        }
    }
    for v in spec.volumes.iter().flatten() {
        if let Some(cm) = &v.config_map {
            names.config_maps.insert(cm.name.clone());
        }
        if let Some(s) = v.secret.as_ref().and_then(|s| s.secret_name.clone()) {
            names.secrets.insert(s);
        }
        for src in v.projected.iter().flat_map(|p| p.sources.iter().flatten()) {
            if let Some(cm) = &src.config_map {
                names.config_maps.insert(cm.name.clone());
            }
            if let Some(s) = &src.secret {
                names.secrets.insert(s.name.clone());
            }
        }
    }
    for s in spec.image_pull_secrets.iter().flatten() {
        names.secrets.insert(s.name.clone());
    }
    names
}

fn port_u16(p: i32) -> Result<u16, TranslationError> {
    u16::try_from(p)
        .ok()
        .filter(|p| *p > 0)
        .ok_or(TranslationError::BadPort(p))
}

fn resolve_port(container: &Container, port: &IntOrString) -> Result<u16, TranslationError> {
    match port {
        IntOrString::Int(p) => port_u16(*p),
        IntOrString::String(name) => {
            if let Ok(n) = name.parse::<i32>() {
                return port_u16(n);
            }
            container
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name.as_str()))
                .map(|p| port_u16(p.container_port))
                .transpose()?
                .ok_or_else(|| TranslationError::UnknownProbePort {
                    container: container.name.clone(),
                    port: name.clone(),
                })
        }
    }
}

fn translate_probe(container: &Container, probe: &KubeProbe) -> Result<Probe, TranslationError> {
    let handler = if let Some(e) = &probe.exec {
        ProbeHandler::Exec {
            command: e.command.clone().unwrap_or_default(),
        }
    } else if let Some(h) = &probe.http_get {
        ProbeHandler::HttpGet {
            host: h.host.clone().filter(|h| !h.is_empty()),
            port: resolve_port(container, &h.port)?,
            path: h.path.clone().unwrap_or_else(|| "/".to_owned()),
            scheme: h.scheme.clone().unwrap_or_else(|| "HTTP".to_owned()),
            headers: h
                .http_headers
                .iter()
                .flatten()
                .map(|h| HttpHeader {
                    name: h.name.clone(),
                    value: h.value.clone(),
                })
                .collect(),
        }
    } else if let Some(t) = &probe.tcp_socket {
        ProbeHandler::TcpSocket {
            host: t.host.clone().filter(|h| !h.is_empty()),
            port: resolve_port(container, &t.port)?,
        }
    } else {
        return Err(TranslationError::Unsupported {
            container: container.name.clone(),
            what: "a probe without exec, httpGet or tcpSocket (grpc)".to_owned(),
        });
    };
    let nonneg = |v: Option<i32>, d: u32| v.and_then(|v| u32::try_from(v).ok()).unwrap_or(d);
    Ok(Probe {
        handler,
        initial_delay_seconds: nonneg(probe.initial_delay_seconds, 0),
        period_seconds: nonneg(probe.period_seconds, 10).max(1),
        timeout_seconds: nonneg(probe.timeout_seconds, 1).max(1),
        success_threshold: nonneg(probe.success_threshold, 1).max(1),
        failure_threshold: nonneg(probe.failure_threshold, 3).max(1),
    })
}

fn resources(container: &Container) -> Result<ResourceRequirements, TranslationError> {
    let r = container.resources.as_ref();
    let get = |limits: bool, name: &str| -> Result<Option<Quantity>, TranslationError> {
        let m = if limits {
            r.and_then(|r| r.limits.as_ref())
        } else {
            r.and_then(|r| r.requests.as_ref())
        };
        Ok(m.and_then(|m| m.get(name))
            .map(|q| Quantity::parse(&q.0))
            .transpose()?)
    };
    Ok(ResourceRequirements {
        cpu_request_millis: get(false, "cpu")?.map(Quantity::millis_u64),
        cpu_limit_millis: get(true, "cpu")?.map(Quantity::millis_u64),
        memory_request_bytes: get(false, "memory")?.map(Quantity::units_u64),
        memory_limit_bytes: get(true, "memory")?.map(Quantity::units_u64),
    })
}

/// Translates a pod bound to `node` into what its device runs.
pub fn translate_pod(
    pod: &Pod,
    refs: &PodReferences,
    node: &NodeContext,
) -> Result<Translation, TranslationError> {
    let spec = pod.spec.as_ref().ok_or(TranslationError::NoSpec)?;
    let init = spec.init_containers.as_ref().map_or(0, Vec::len);
    if init > 0 {
        return Err(TranslationError::InitContainers(init));
    }
    let mut warnings = Vec::new();
    let mut volumes = Vec::new();
    for v in spec.volumes.iter().flatten() {
        volumes.push(volumes::translate_volume(
            pod,
            v,
            refs,
            node,
            &mut warnings,
        )?);
    }
    let device_volumes: BTreeMap<&str, &str> = volumes
        .iter()
        .filter_map(|v| match &v.source {
            VolumeSource::HostPath {
                path,
                kind: Some(kind),
            } if kind == "CharDevice" || kind == "BlockDevice" => {
                Some((v.name.as_str(), path.as_str()))
            }
            _ => None,
        })
        .collect();
    let mut containers = Vec::new();
    for c in &spec.containers {
        let (env, env_warnings) = env::container_env(pod, c, refs, node)?;
        warnings.extend(
            env_warnings
                .into_iter()
                .map(|w| TranslationWarning::failed(format!("container {}: {w}", c.name))),
        );
        let lookup = |name: &str| env.iter().find(|e| e.name == name).map(|e| e.value.clone());
        let expand_all = |v: &Option<Vec<String>>| -> Vec<String> {
            v.iter()
                .flatten()
                .map(|s| env::expand(s, &lookup))
                .collect()
        };
        let mut mounts = Vec::new();
        let mut devices = Vec::new();
        for m in c.volume_mounts.iter().flatten() {
            if !volumes.iter().any(|v| v.name == m.name) {
                return Err(TranslationError::UnknownVolume {
                    container: c.name.clone(),
                    mount: m.name.clone(),
                });
            }
            if let Some(host) = device_volumes.get(m.name.as_str()) {
                devices.push(DeviceMapping {
                    host_path: (*host).to_owned(),
                    container_path: m.mount_path.clone(),
                    permissions: if m.read_only.unwrap_or(false) {
                        "rm".to_owned()
                    } else {
                        "rwm".to_owned()
                    },
                });
                continue;
            }
            mounts.push(VolumeMount {
                name: m.name.clone(),
                mount_path: m.mount_path.clone(),
                read_only: m.read_only.unwrap_or(false),
                sub_path: m.sub_path.clone().filter(|s| !s.is_empty()),
            });
        }
        let mut ports = Vec::new();
        for p in c.ports.iter().flatten() {
            ports.push(ContainerPort {
                name: p.name.clone(),
                container_port: port_u16(p.container_port)?,
                host_port: p.host_port.map(port_u16).transpose()?,
                protocol: match p.protocol.as_deref() {
                    Some("UDP") => PortProtocol::Udp,
                    Some("SCTP") => PortProtocol::Sctp,
                    _ => PortProtocol::Tcp,
                },
            });
        }
        let probe = |p: &Option<KubeProbe>| p.as_ref().map(|p| translate_probe(c, p)).transpose();
        let image = c.image.clone().unwrap_or_default();
        let pull_policy = match c.image_pull_policy.as_deref() {
            Some("Always") => PullPolicy::Always,
            Some("Never") => PullPolicy::Never,
            Some("IfNotPresent") => PullPolicy::IfNotPresent,
            // Kubernetes defaults: Always for :latest or no tag, else IfNotPresent
            _ => {
                let last = image.rsplit('/').next().unwrap_or_default();
                if image.contains('@') {
                    PullPolicy::IfNotPresent
                } else if !last.contains(':') || last.ends_with(":latest") {
                    PullPolicy::Always
                } else {
                    PullPolicy::IfNotPresent
                }
            }
        };
        containers.push(ContainerSpec {
            name: c.name.clone(),
            image,
            image_pull_policy: pull_policy,
            command: expand_all(&c.command),
            args: expand_all(&c.args),
            working_dir: c.working_dir.clone().filter(|w| !w.is_empty()),
            env: env.clone(),
            ports,
            resources: resources(c)?,
            volume_mounts: mounts,
            devices,
            liveness_probe: probe(&c.liveness_probe)?,
            readiness_probe: probe(&c.readiness_probe)?,
            startup_probe: probe(&c.startup_probe)?,
            privileged: c
                .security_context
                .as_ref()
                .and_then(|s| s.privileged)
                .unwrap_or(false),
        });
    }
    let mut registry_credentials = Vec::new();
    for s in spec.image_pull_secrets.iter().flatten() {
        match refs.secret(&s.name) {
            Some(data) => match pull_secrets::credentials_from_secret(data) {
                Ok(creds) => registry_credentials.extend(creds),
                Err(why) => warnings.push(TranslationWarning::pull_secret(format!(
                    "image pull secret {:?} {why}",
                    s.name
                ))),
            },
            // the kubelet goes on without a missing pull secret and records an event
            None => warnings.push(TranslationWarning::pull_secret(format!(
                "unable to retrieve some image pull secrets ({}); attempting to pull the image may not succeed",
                s.name
            ))),
        }
    }
    let meta = &pod.metadata;
    let host_network = spec.host_network.unwrap_or(false);
    let grace = spec
        .termination_grace_period_seconds
        .and_then(|g| u64::try_from(g).ok())
        .unwrap_or(30);
    let deletion_grace = meta.deletion_timestamp.as_ref().map(|_| {
        meta.deletion_grace_period_seconds
            .and_then(|g| u64::try_from(g).ok())
            .unwrap_or(grace)
    });
    Ok(Translation {
        spec: PodSpec {
            uid: meta.uid.clone().unwrap_or_default(),
            namespace: meta.namespace.clone().unwrap_or_default(),
            name: meta.name.clone().unwrap_or_default(),
            containers,
            volumes,
            restart_policy: match spec.restart_policy.as_deref() {
                Some("Never") => RestartPolicy::Never,
                Some("OnFailure") => RestartPolicy::OnFailure,
                _ => RestartPolicy::Always,
            },
            termination_grace_period_seconds: grace,
            deletion_grace_period_seconds: deletion_grace,
            registry_credentials,
            host_network,
            hostname: if host_network {
                None
            } else {
                Some(
                    spec.hostname
                        .clone()
                        .unwrap_or_else(|| meta.name.clone().unwrap_or_default()),
                )
            },
            log_cache_opt_out: meta
                .annotations
                .as_ref()
                .and_then(|a| a.get(LOG_CACHE_ANNOTATION))
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("off")),
            ephemeral_containers: Vec::new(),
        },
        warnings,
    })
}

/// Pod annotation: `off` keeps the pod's output out of the gateway's offline log cache.
pub const LOG_CACHE_ANNOTATION: &str = "edge-kube.io/log-cache";

#[cfg(test)]
mod tests;
