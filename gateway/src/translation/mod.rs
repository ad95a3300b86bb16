//! Kubernetes pod → device-facing [`PodSpec`]: pure functions.
//!
//! The caller first asks [`referenced_objects`] which ConfigMaps and Secrets the pod
//! needs, fetches them into [`PodReferences`] (missing ones simply absent), then calls
//! [`translate_pod`]. Nothing here does I/O, so every rule is unit tested.

mod container;
pub mod downward;
pub mod env;
mod ephemeral;
mod lifecycle_hooks;
pub mod not_applied;
pub mod pull_secrets;
pub mod volumes;

use std::collections::{BTreeMap, BTreeSet};

use edge_protocol::{PodSpec, RestartPolicy, VolumeSource};
use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret};

use crate::kube_writer::EventReason;
use crate::quantity::QuantityError;

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
    #[error(
        "the agent on this device ({agent_version}) does not run init containers (pod has {count}); upgrade edge-agent to a version that declares them (protocol 1.2)"
    )]
    InitContainers { count: usize, agent_version: String },
    #[error(
        "container {container}: the agent on this device ({agent_version}) does not run gRPC probes; upgrade edge-agent to a version that declares them (protocol 1.3)"
    )]
    GrpcProbe {
        container: String,
        agent_version: String,
    },
    #[error("pod has no spec")]
    NoSpec,
    #[error("volume mount {mount:?} of container {container} names no volume of the pod")]
    UnknownVolume { container: String, mount: String },
    #[error("port {0} is out of range 1-65535")]
    BadPort(i32),
    #[error("no service account token for projected path {0:?} (the token request failed)")]
    TokenMissing(String),
    #[error("failed to fetch token: {0}")]
    TokenRequestFailed(String),
    #[error(
        "{0} is not supported by the edge-agent on this device: upgrade the agent (protocol 1.2)"
    )]
    AgentTooOld(&'static str),
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

/// The ConfigMaps and Secrets a pod's namespace holds that the pod references, and the
/// service account tokens issued for its projected volumes.
#[derive(Debug, Clone, Default)]
pub struct PodReferences {
    pub config_maps: BTreeMap<String, ObjectData>,
    pub secrets: BTreeMap<String, ObjectData>,
    pub tokens: BTreeMap<TokenSpec, ServiceAccountToken>,
}

/// A projected `serviceAccountToken` source: the audience (empty: the API server's
/// default audiences) and the requested lifetime.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TokenSpec {
    pub audience: String,
    pub expiration_seconds: i64,
}

/// The default and the smallest `expirationSeconds` of a projected token, as the API
/// server has them.
pub const DEFAULT_TOKEN_EXPIRATION_SECONDS: i64 = 3600;

impl TokenSpec {
    pub fn of(source: &k8s_openapi::api::core::v1::ServiceAccountTokenProjection) -> Self {
        Self {
            audience: source.audience.clone().unwrap_or_default(),
            expiration_seconds: source
                .expiration_seconds
                .unwrap_or(DEFAULT_TOKEN_EXPIRATION_SECONDS),
        }
    }
}

/// A service account token's text: secret, so its `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct ServiceAccountToken(pub String);

impl std::fmt::Debug for ServiceAccountToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServiceAccountToken(<redacted>)")
    }
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
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
    /// Projected service account tokens (of the pod's `serviceAccountName`).
    pub tokens: BTreeSet<TokenSpec>,
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
    /// The device's agent ends pods past `activeDeadlineSeconds` (its capabilities).
    pub active_deadline: bool,
    /// The device's agent declared init containers in its node report
    /// ([`edge_protocol::DeviceCapabilities::init_containers`]).
    pub runs_init_containers: bool,
    /// The device's agent runs lifecycle hooks and reports termination messages
    /// ([`edge_protocol::DeviceCapabilities::lifecycle_hooks`]).
    pub lifecycle_hooks: bool,
    /// The device's agent runs gRPC probes
    /// ([`edge_protocol::DeviceCapabilities::grpc_probes`]).
    pub grpc_probes: bool,
    /// The device's agent assigns `nvidia.com/gpu` devices per container
    /// ([`edge_protocol::DeviceCapabilities::gpu_assignment`]).
    pub assigns_gpus: bool,
    /// The agent's version, for the message when it cannot run what a pod needs.
    pub agent_version: String,
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
    let ephemeral: Vec<Container> = spec
        .ephemeral_containers
        .iter()
        .flatten()
        .map(ephemeral::as_container)
        .collect();
    for c in spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .chain(ephemeral.iter())
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
            if let Some(t) = &src.service_account_token {
                names.tokens.insert(TokenSpec::of(t));
            }
        }
    }
    for s in spec.image_pull_secrets.iter().flatten() {
        names.secrets.insert(s.name.clone());
    }
    names
}

/// The pod's service account (`default` when not set, as the API server defaults it).
pub fn service_account_of(pod: &Pod) -> String {
    pod.spec
        .as_ref()
        .and_then(|s| s.service_account_name.clone())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "default".to_owned())
}

/// Translates a pod bound to `node` into what its device runs.
pub fn translate_pod(
    pod: &Pod,
    refs: &PodReferences,
    node: &NodeContext,
) -> Result<Translation, TranslationError> {
    let spec = pod.spec.as_ref().ok_or(TranslationError::NoSpec)?;
    let init = spec.init_containers.as_ref().map_or(0, Vec::len);
    if init > 0 && !node.runs_init_containers {
        return Err(TranslationError::InitContainers {
            count: init,
            agent_version: node.agent_version.clone(),
        });
    }
    let mut warnings = Vec::new();
    let mut ignored = not_applied::not_applied(pod);
    if node.lifecycle_hooks {
        ignored.retain(|f| !not_applied::applied_with_lifecycle_hooks(f));
    }
    if node.assigns_gpus {
        ignored.retain(|field| !not_applied::is_gpu_resource(field));
    }
    if !ignored.is_empty() {
        warnings.push(TranslationWarning {
            reason: EventReason::FieldsNotApplied,
            message: not_applied::message(&ignored),
        });
    }
    let mut volumes = Vec::new();
    for v in spec.volumes.iter().flatten() {
        volumes.push(volumes::translate_volume(pod, v, refs, node)?);
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
    let mut translate = |c: &Container| {
        container::translate_container(pod, c, refs, node, &volumes, &device_volumes, &mut warnings)
    };
    let init_containers = spec
        .init_containers
        .iter()
        .flatten()
        .map(&mut translate)
        .collect::<Result<Vec<_>, _>>()?;
    let containers = spec
        .containers
        .iter()
        .map(&mut translate)
        .collect::<Result<Vec<_>, _>>()?;
    let ephemeral_containers = ephemeral::translate_ephemeral_containers(
        pod,
        refs,
        node,
        &volumes,
        &device_volumes,
        &mut warnings,
    );
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
    let active_deadline_seconds = spec
        .active_deadline_seconds
        .map(|s| u64::try_from(s).unwrap_or(0));
    if active_deadline_seconds.is_some() && !node.active_deadline {
        // an older agent would run the pod past its deadline: refused, not ignored
        return Err(TranslationError::AgentTooOld("activeDeadlineSeconds"));
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
            log_cache_opt_out: opts_out_of_log_cache(meta),
            ephemeral_containers,
            active_deadline_seconds,
            init_containers,
        },
        warnings,
    })
}

/// Pod annotation: `off` keeps the pod's output out of the gateway's offline log cache.
pub const LOG_CACHE_ANNOTATION: &str = "edge-kube.io/log-cache";

/// Whether a pod's [`LOG_CACHE_ANNOTATION`] keeps it out of the offline log cache.
pub fn opts_out_of_log_cache(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> bool {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(LOG_CACHE_ANNOTATION))
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("off"))
}

#[cfg(test)]
mod tests;
