//! The agent's configuration: a TOML file (`/etc/edge-agent/agent.toml`), overridden by
//! environment variables and flags (see [`crate::cli`]), validated into [`AgentConfig`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use edge_protocol::DeviceId;
use serde::{Deserialize, Serialize};

use crate::resource_policy::{PolicyError, RawResourcePolicy, ResourcePolicy};

/// Where `edge-agent run` looks for its file when `--config` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/edge-agent/agent.toml";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {path} is not valid: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: toml::de::Error,
    },
    #[error(
        "device_id is not set: put `device_id = \"...\"` in the config file or pass --device-id"
    )]
    MissingDeviceId,
    #[error("device_id is invalid: {0}")]
    InvalidDeviceId(#[from] edge_protocol::DeviceIdError),
    #[error("no broker: set `broker_urls = [\"mqtts://host:8883\"]` or pass --broker-url")]
    NoBroker,
    #[error(
        "broker URL {url:?} is not valid: {reason} (expected mqtt://host:port or mqtts://host:port)"
    )]
    BadBrokerUrl { url: String, reason: String },
    #[error("broker URL {url} uses mqtts:// but no [tls] ca_file is configured")]
    TlsMissing { url: String },
    #[error("label {0:?} is not of the form key=value")]
    BadLabel(String),
    #[error("{what} must be greater than zero")]
    Zero { what: &'static str },
    #[error(transparent)]
    Resources(#[from] PolicyError),
    #[error(transparent)]
    GpuRequest(#[from] crate::gpu_request::UnknownGpuRequestMode),
    #[error("{raw:?} is not a valid number of seconds")]
    BadSeconds { raw: String },
    #[error("{raw:?} is not a duration like 10s, 500ms or 5m: {source}")]
    BadDuration {
        raw: String,
        #[source]
        source: humantime::DurationError,
    },
}

pub type Result<T, E = ConfigError> = std::result::Result<T, E>;

/// TLS files for `mqtts://` brokers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// CA that signed the broker's certificate (PEM).
    pub ca_file: Option<PathBuf>,
    /// The device's client certificate (PEM); CN = device id.
    pub cert_file: Option<PathBuf>,
    /// The device's private key (PEM, PKCS#8 or RSA/SEC1).
    pub key_file: Option<PathBuf>,
}

/// The file format, every field optional so that flags and env can fill the gaps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub device_id: Option<String>,
    pub broker_urls: Option<Vec<String>>,
    pub state_dir: Option<PathBuf>,
    pub runtime_socket: Option<String>,
    pub heartbeat_interval_seconds: Option<f64>,
    /// Seconds between resource usage samples on `up/stats`; 0 turns them off.
    pub stats_interval_seconds: Option<u32>,
    pub keepalive_seconds: Option<u64>,
    pub reconnect_backoff_max_seconds: Option<f64>,
    pub sync_interval_seconds: Option<f64>,
    pub crash_loop_backoff_initial_seconds: Option<f64>,
    pub crash_loop_backoff_max_seconds: Option<f64>,
    pub crash_loop_backoff_reset_seconds: Option<f64>,
    pub max_pods: Option<u64>,
    /// Seconds between log tail reports for the gateway's offline log cache; 0 = off.
    pub log_tail_interval_seconds: Option<f64>,
    pub stream_idle_timeout_seconds: Option<f64>,
    pub max_streams: Option<u64>,
    /// Image of the per-pod infra container holding the pod's network, IPC and UTS
    /// namespaces.
    pub sandbox_image: Option<String>,
    /// Command of the infra container; empty runs the image's entrypoint.
    pub sandbox_command: Option<Vec<String>>,
    /// The `nvidia.com/gpu` device ids (indices or UUIDs) to report and assign instead
    /// of the detected GPUs (`0`..`n-1`); an empty list: no GPUs.
    pub gpu_devices: Option<Vec<String>>,
    /// How assigned GPUs are passed to the runtime: auto, nvidia, cdi or env.
    pub gpu_request: Option<String>,
    pub tls: Option<TlsFiles>,
    pub labels: Option<BTreeMap<String, String>>,
    /// Log rotation, eviction thresholds, image GC.
    pub resources: Option<RawResourcePolicy>,
    /// Agent updates: the OTA directory (slots, `state.json`, downloads); the supervisor
    /// passes its own to the agent it runs.
    pub ota_dir: Option<PathBuf>,
    /// Agent updates: the pinned ed25519 public key (PEM) updates must be signed with.
    pub ota_public_key: Option<PathBuf>,
}

impl ConfigFile {
    /// Reads and parses a file; relative TLS paths are resolved against its directory.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut file = Self::parse(&text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source,
        })?;
        if let (Some(tls), Some(dir)) = (file.tls.as_mut(), path.parent()) {
            for p in [&mut tls.ca_file, &mut tls.cert_file, &mut tls.key_file]
                .into_iter()
                .flatten()
            {
                if p.is_relative() {
                    *p = dir.join(&*p);
                }
            }
        }
        Ok(file)
    }

    pub fn parse(text: &str) -> std::result::Result<Self, toml::de::Error> {
        toml::from_str(text)
    }
}

/// One broker endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerUrl {
    pub host: String,
    pub port: u16,
    pub tls: bool,
}

impl BrokerUrl {
    pub fn parse(url: &str) -> Result<Self> {
        let bad = |reason: &str| ConfigError::BadBrokerUrl {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("missing scheme"))?;
        let tls = match scheme {
            "mqtt" | "tcp" => false,
            "mqtts" | "ssl" => true,
            _ => return Err(bad("unknown scheme")),
        };
        let rest = rest.trim_end_matches('/');
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => {
                let port = p.parse::<u16>().map_err(|_| bad("port is not a number"))?;
                (h, port)
            }
            _ => (rest, if tls { 8883 } else { 1883 }),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || host.contains('/') {
            return Err(bad("missing or invalid host"));
        }
        Ok(Self {
            host: host.to_owned(),
            port,
            tls,
        })
    }
}

impl std::fmt::Display for BrokerUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.tls { "mqtts" } else { "mqtt" };
        write!(f, "{scheme}://{}:{}", self.host, self.port)
    }
}

/// Timings of the pod lifecycle; short values make tests fast.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LifecycleTimings {
    /// How often the agent lists containers and reconciles even when nothing happened.
    pub sync_interval: Duration,
    /// First crash-loop (and image pull) back-off; doubles on every failure.
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// A container that ran this long resets its back-off.
    pub backoff_reset: Duration,
}

impl Default for LifecycleTimings {
    fn default() -> Self {
        Self {
            sync_interval: Duration::from_secs(2),
            backoff_initial: Duration::from_secs(10),
            backoff_max: Duration::from_secs(300),
            backoff_reset: Duration::from_secs(600),
        }
    }
}

/// The kubelet's default sandbox (pause) image: a static binary of a few hundred KiB
/// that holds the namespaces and reaps zombies.
pub const DEFAULT_SANDBOX_IMAGE: &str = "registry.k8s.io/pause:3.10";

/// The per-pod infra container whose network, IPC and UTS namespaces a pod's containers
/// share (the kubelet's pod sandbox).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxSettings {
    pub image: String,
    /// Empty: the image's entrypoint (`/pause`).
    pub command: Vec<String>,
}

impl Default for SandboxSettings {
    fn default() -> Self {
        Self {
            image: DEFAULT_SANDBOX_IMAGE.to_owned(),
            command: Vec::new(),
        }
    }
}

/// Where agent updates live on the device (the `ota` commands' defaults).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtaSettings {
    /// Slots, `state.json`, `incoming/` downloads.
    pub dir: PathBuf,
    /// The pinned public key; without it updates are refused.
    pub public_key: PathBuf,
}

impl Default for OtaSettings {
    fn default() -> Self {
        Self {
            dir: PathBuf::from(crate::ota::cli_args::DEFAULT_OTA_DIR),
            public_key: PathBuf::from(crate::ota::cli_args::DEFAULT_PUBLIC_KEY),
        }
    }
}

/// The validated configuration the agent runs with.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub device_id: DeviceId,
    pub brokers: Vec<BrokerUrl>,
    pub state_dir: PathBuf,
    pub runtime_socket: String,
    pub heartbeat_interval: Duration,
    /// Time between resource usage samples (`kubectl top`); `None`: not sampled.
    pub stats_interval: Option<Duration>,
    pub keepalive: Duration,
    pub reconnect_backoff_max: Duration,
    pub timings: LifecycleTimings,
    pub max_pods: u64,
    /// Time between log tail reports (`None`: off).
    pub log_tail_interval: Option<Duration>,
    /// An exec, attach or port-forward stream with no data either way for this long is
    /// closed (the kubelet's `streamingConnectionIdleTimeout`, 4 h).
    pub stream_idle_timeout: Duration,
    /// Streams served at once; more are refused with `TooManyStreams`.
    pub max_streams: usize,
    pub sandbox: SandboxSettings,
    /// Configured `nvidia.com/gpu` device ids (`None`: the detected GPUs).
    pub gpu_devices: Option<Vec<String>>,
    pub gpu_request: crate::gpu_request::GpuRequestMode,
    pub tls: TlsFiles,
    pub labels: BTreeMap<String, String>,
    /// Log rotation, eviction thresholds, image GC.
    pub resources: ResourcePolicy,
    /// Agent updates over MQTT.
    pub ota: OtaSettings,
}

/// The kubelet's default `streamingConnectionIdleTimeout`.
pub const DEFAULT_STREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(4 * 3600);
pub const DEFAULT_MAX_STREAMS: usize = 32;
pub const DEFAULT_STATE_DIR: &str = "/var/lib/edge-agent";
/// Seconds between resource usage samples unless configured (the metrics-server's
/// default resolution is 15 s).
pub const DEFAULT_STATS_INTERVAL_SECONDS: u32 = 15;
pub const DEFAULT_RUNTIME_SOCKET: &str = "unix:///var/run/docker.sock";

impl AgentConfig {
    /// Validates a merged file (flags and env already applied on top of it).
    pub fn from_file(file: ConfigFile) -> Result<Self> {
        let id = file.device_id.ok_or(ConfigError::MissingDeviceId)?;
        let device_id = DeviceId::new(id)?;
        let urls = file.broker_urls.unwrap_or_default();
        if urls.is_empty() {
            return Err(ConfigError::NoBroker);
        }
        let brokers = urls
            .iter()
            .map(|u| BrokerUrl::parse(u))
            .collect::<Result<Vec<_>>>()?;
        let tls = file.tls.unwrap_or_default();
        if let Some(b) = brokers.iter().find(|b| b.tls)
            && tls.ca_file.is_none()
        {
            return Err(ConfigError::TlsMissing { url: b.to_string() });
        }
        let secs = |v: Option<f64>, default: Duration, what: &'static str| -> Result<Duration> {
            match v {
                None => Ok(default),
                Some(s) if s.is_finite() && s > 0.0 => Ok(Duration::from_secs_f64(s)),
                Some(_) => Err(ConfigError::Zero { what }),
            }
        };
        let defaults = LifecycleTimings::default();
        let timings = LifecycleTimings {
            sync_interval: secs(
                file.sync_interval_seconds,
                defaults.sync_interval,
                "sync_interval_seconds",
            )?,
            backoff_initial: secs(
                file.crash_loop_backoff_initial_seconds,
                defaults.backoff_initial,
                "crash_loop_backoff_initial_seconds",
            )?,
            backoff_max: secs(
                file.crash_loop_backoff_max_seconds,
                defaults.backoff_max,
                "crash_loop_backoff_max_seconds",
            )?,
            backoff_reset: secs(
                file.crash_loop_backoff_reset_seconds,
                defaults.backoff_reset,
                "crash_loop_backoff_reset_seconds",
            )?,
        };
        Ok(Self {
            device_id,
            brokers,
            state_dir: file
                .state_dir
                .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR)),
            runtime_socket: file
                .runtime_socket
                .unwrap_or_else(|| DEFAULT_RUNTIME_SOCKET.to_owned()),
            heartbeat_interval: secs(
                file.heartbeat_interval_seconds,
                Duration::from_secs(10),
                "heartbeat_interval_seconds",
            )?,
            stats_interval: match file
                .stats_interval_seconds
                .unwrap_or(DEFAULT_STATS_INTERVAL_SECONDS)
            {
                0 => None,
                n => Some(Duration::from_secs(u64::from(n))),
            },
            keepalive: Duration::from_secs(file.keepalive_seconds.unwrap_or(30).max(5)),
            reconnect_backoff_max: secs(
                file.reconnect_backoff_max_seconds,
                Duration::from_secs(30),
                "reconnect_backoff_max_seconds",
            )?,
            timings,
            max_pods: match file.max_pods {
                Some(0) => return Err(ConfigError::Zero { what: "max_pods" }),
                Some(n) => n,
                None => 110,
            },
            log_tail_interval: match file.log_tail_interval_seconds {
                None => Some(crate::log_tail::DEFAULT_INTERVAL),
                Some(0.0) => None,
                Some(s) if s.is_finite() && s > 0.0 => Some(Duration::from_secs_f64(s)),
                Some(s) => return Err(ConfigError::BadSeconds { raw: s.to_string() }),
            },
            stream_idle_timeout: secs(
                file.stream_idle_timeout_seconds,
                DEFAULT_STREAM_IDLE_TIMEOUT,
                "stream_idle_timeout_seconds",
            )?,
            max_streams: match file.max_streams {
                Some(0) => {
                    return Err(ConfigError::Zero {
                        what: "max_streams",
                    });
                }
                Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
                None => DEFAULT_MAX_STREAMS,
            },
            sandbox: SandboxSettings {
                image: file
                    .sandbox_image
                    .filter(|i| !i.trim().is_empty())
                    .unwrap_or_else(|| DEFAULT_SANDBOX_IMAGE.to_owned()),
                command: file.sandbox_command.unwrap_or_default(),
            },
            gpu_devices: file.gpu_devices.map(|ids| {
                ids.into_iter()
                    .map(|id| id.trim().to_owned())
                    .filter(|id| !id.is_empty())
                    .collect()
            }),
            gpu_request: file
                .gpu_request
                .as_deref()
                .map(str::parse)
                .transpose()?
                .unwrap_or_default(),
            tls,
            labels: file.labels.unwrap_or_default(),
            resources: ResourcePolicy::from_raw(&file.resources.unwrap_or_default())?,
            ota: OtaSettings {
                dir: file.ota_dir.unwrap_or_else(|| OtaSettings::default().dir),
                public_key: file
                    .ota_public_key
                    .unwrap_or_else(|| OtaSettings::default().public_key),
            },
        })
    }
}

/// Parses `key=value`.
pub fn parse_label(raw: &str) -> Result<(String, String)> {
    match raw.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.trim().to_owned())),
        _ => Err(ConfigError::BadLabel(raw.to_owned())),
    }
}

/// Parses a duration: plain seconds (`10`, `0.5`) or humantime (`1s`, `250ms`, `5m`).
pub fn parse_duration(raw: &str) -> Result<Duration> {
    let raw = raw.trim();
    if let Ok(secs) = raw.parse::<f64>() {
        if secs.is_finite() && secs >= 0.0 {
            return Ok(Duration::from_secs_f64(secs));
        }
        return Err(ConfigError::BadSeconds {
            raw: raw.to_owned(),
        });
    }
    humantime::parse_duration(raw).map_err(|source| ConfigError::BadDuration {
        raw: raw.to_owned(),
        source,
    })
}

/// The commented default configuration printed by `edge-agent --print-default-config`.
pub const DEFAULT_CONFIG_TOML: &str = r#"# edge-agent configuration (/etc/edge-agent/agent.toml).
# Every key can also be given as a flag (`edge-agent run --help`) or as an environment
# variable EDGE_AGENT_<KEY> (for example EDGE_AGENT_DEVICE_ID); flags and environment
# win over this file.

# The device's one name: MQTT client id, Kubernetes Node name and the CN of its client
# certificate. A DNS-1123 subdomain (lower-case letters, digits, '-' and '.').
device_id = "pi-01"

# Brokers to connect to, tried in order (mqtt:// plain, mqtts:// TLS with client certs).
broker_urls = ["mqtts://gateway.example.com:8883"]

# Desired pods, unsent status reports and pod volumes live here.
state_dir = "/var/lib/edge-agent"

# Docker Engine API of the container runtime: Docker, or Podman's compatible socket
# (unix:///run/podman/podman.sock).
runtime_socket = "unix:///var/run/docker.sock"

# Seconds between heartbeats.
heartbeat_interval_seconds = 10

# Seconds between resource usage samples (CPU, memory, disk, network of the device and
# its containers) for `kubectl top`; 0 turns them off.
stats_interval_seconds = 15

# MQTT keepalive (seconds) and the longest wait between reconnect attempts.
keepalive_seconds = 30
reconnect_backoff_max_seconds = 30

# How often (seconds) containers are listed and reconciled when nothing else happens.
sync_interval_seconds = 2

# Crash-loop back-off, as the kubelet: 10 s doubling up to 5 min, reset once a container
# ran for 10 min. Also used for image pull back-off.
crash_loop_backoff_initial_seconds = 10
crash_loop_backoff_max_seconds = 300
crash_loop_backoff_reset_seconds = 600

# How many pods this device accepts (reported as the Node's pod capacity).
max_pods = 110

# Seconds between reports of the containers' new output (at most 16 KiB each) to the
# gateway, which keeps a tail per container to answer `kubectl logs` while the device is
# offline. 0 = off. Pods annotated edge-kube.io/log-cache: "off" are never reported.
log_tail_interval_seconds = 60

# exec / attach / port-forward streams: closed after this many seconds with no data
# either way (the kubelet's streamingConnectionIdleTimeout, 4 h), and how many may run
# at once.
stream_idle_timeout_seconds = 14400
max_streams = 32

# Every pod that is not on the host network gets an infra container holding the network,
# IPC and UTS namespaces (hostname = pod name) its containers share, as the kubelet's
# pod sandbox. The image must be on the device or pullable (pull policy IfNotPresent);
# for offline devices load it once (`docker load` / `podman load`). An empty command
# runs the image's entrypoint (/pause).
sandbox_image = "registry.k8s.io/pause:3.10"
sandbox_command = []

# NVIDIA GPUs are reported as nvidia.com/gpu and assigned to the containers whose limits
# ask for them, distinct devices per container. The ids default to the detected GPUs
# (0..n-1); set them to UUIDs or a subset here. How they reach a container:
# "nvidia" (Docker Engine device request, as `docker run --gpus`), "cdi" (CDI names
# nvidia.com/gpu=<id>, Docker >= 25 with CDI), "env" (NVIDIA_VISIBLE_DEVICES only, for
# the NVIDIA runtime or OCI hook; Podman 4's Docker API takes neither of the others),
# "auto" = nvidia on Docker, env on Podman.
# gpu_devices = ["0"]
gpu_request = "auto"

# Required for mqtts:// brokers. Relative paths are relative to this file.
[tls]
ca_file = "/etc/edge-agent/ca.pem"
cert_file = "/etc/edge-agent/device.pem"
key_file = "/etc/edge-agent/device.key"

# Extra node labels the device asks for (the gateway drops reserved kubernetes.io/ ones).
[labels]
# site = "lab"

# Disks that never fill up (the kubelet's defaults).
[resources]
# Container logs: rotated by the runtime's log driver at this size, this many files
# (Podman keeps one file and truncates it at the size). "0" = the runtime's settings.
container_log_max_size = "10Mi"
container_log_max_files = 5
# Hard eviction thresholds (--eviction-hard syntax): crossing one sets MemoryPressure,
# DiskPressure or PIDPressure on the Node and evicts pods, BestEffort first.
eviction_hard = "memory.available<100Mi,nodefs.available<10%,nodefs.inodesFree<5%,imagefs.available<15%"
# Seconds between measurements (0 = no measuring, conditions or eviction), and how long
# a condition stays True after its threshold is no longer crossed.
eviction_monitoring_interval_seconds = 10
eviction_pressure_transition_period_seconds = 300
# The file systems measured: nodefs (default: state_dir) and imagefs (default: the
# runtime's data root).
# nodefs_path = "/var/lib/edge-agent"
# imagefs_path = "/var/lib/docker"
# Unused images are removed, least recently used first, when the image filesystem is
# fuller than the high threshold, down to the low one; never images younger than this.
image_gc_high_threshold_percent = 85
image_gc_low_threshold_percent = 80
image_minimum_gc_age_seconds = 120

# Agent updates over MQTT (docs/agent.md "Agent updates"): only under
# `edge-agent supervise`, which passes its own OTA directory, and only with the pinned
# public key the fleet's updates are signed with.
# ota_dir = "/var/lib/edge-agent/ota"
# ota_public_key = "/etc/edge-agent/ota-signing.pub"
"#;

#[cfg(test)]
mod tests;
