//! Command line: `edge-agent run`, `edge-agent install --bundle <dir>`,
//! `edge-agent --print-default-config`. Every config key is also a flag and an
//! `EDGE_AGENT_<KEY>` environment variable; flags and env win over the file.

use std::path::PathBuf;
use std::time::Duration;

use crate::resource_policy::RawResourcePolicy;
use clap::{Args, Parser, Subcommand};

use crate::config::{
    AgentConfig, ConfigError, ConfigFile, DEFAULT_CONFIG_PATH, TlsFiles, parse_duration,
    parse_label,
};

/// Runs Kubernetes pods on this device through Docker or Podman, driven over MQTT by
/// edge-gateway; keeps them running when the network is down.
#[derive(Debug, Parser)]
#[command(name = "edge-agent", version, about, long_about = None)]
pub struct Cli {
    /// Print a commented default agent.toml and exit.
    #[arg(long)]
    pub print_default_config: bool,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the agent (what the systemd unit starts).
    Run(Box<RunArgs>),
    /// Install a device bundle (agent.toml, ca.pem, device.pem, device.key) written by
    /// `edge-gateway enroll` into /etc/edge-agent.
    Install(InstallArgs),
    /// Run the agent as a child and install agent updates A/B: a new version runs on
    /// trial and is rolled back unless it reports healthy in time (what the systemd
    /// unit starts: `edge-agent supervise -- run --config ...`).
    Supervise(crate::ota::cli_args::SuperviseArgs),
    /// Agent updates: stage a signed binary, show the state.
    Ota(crate::ota::cli_args::OtaArgs),
}

#[derive(Debug, Clone, Args, Default)]
pub struct RunArgs {
    /// Config file (TOML). Without this flag /etc/edge-agent/agent.toml is read if it exists.
    #[arg(long, env = "EDGE_AGENT_CONFIG")]
    pub config: Option<PathBuf>,
    /// Device id: MQTT client id, Node name and certificate CN (DNS-1123 subdomain).
    #[arg(long, env = "EDGE_AGENT_DEVICE_ID")]
    pub device_id: Option<String>,
    /// Broker URL, mqtt://host:port or mqtts://host:port; repeat (or comma-separate in
    /// the env var) to give fallbacks, tried in order.
    #[arg(
        long = "broker-url",
        env = "EDGE_AGENT_BROKER_URLS",
        value_delimiter = ','
    )]
    pub broker_urls: Vec<String>,
    /// Directory for the local store (desired pods, unsent reports) and pod volumes.
    #[arg(long, env = "EDGE_AGENT_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// Agent updates: the OTA directory [default: /var/lib/edge-agent/ota; under
    /// `edge-agent supervise`, the supervisor's].
    #[arg(long, env = "EDGE_AGENT_OTA_DIR")]
    pub ota_dir: Option<PathBuf>,
    /// Agent updates: the pinned ed25519 public key (PEM) [default:
    /// /etc/edge-agent/ota-signing.pub].
    #[arg(long, env = "EDGE_AGENT_OTA_PUBLIC_KEY")]
    pub ota_public_key: Option<PathBuf>,
    /// Docker Engine API socket: unix:///var/run/docker.sock, unix:///run/podman/podman.sock,
    /// or tcp://host:port.
    #[arg(long, env = "EDGE_AGENT_RUNTIME_SOCKET")]
    pub runtime_socket: Option<String>,
    /// Time between heartbeats (10, 10s, 500ms).
    #[arg(long, env = "EDGE_AGENT_HEARTBEAT_INTERVAL_SECONDS", value_parser = parse_duration)]
    pub heartbeat_interval: Option<Duration>,
    /// Seconds between resource usage samples for `kubectl top` (0: off).
    #[arg(long, env = "EDGE_AGENT_STATS_INTERVAL_SECONDS")]
    pub stats_interval_seconds: Option<u32>,
    /// MQTT keepalive (at least 5 s).
    #[arg(long, env = "EDGE_AGENT_KEEPALIVE_SECONDS", value_parser = parse_duration)]
    pub keepalive: Option<Duration>,
    /// Longest wait between broker reconnect attempts (starts at 0.5 s, doubles; each
    /// wait is jittered between half and all of it; with several --broker-url, each
    /// attempt goes to the next).
    #[arg(long, env = "EDGE_AGENT_RECONNECT_BACKOFF_MAX_SECONDS", value_parser = parse_duration)]
    pub reconnect_backoff_max: Option<Duration>,
    /// Time between reports of the containers' new output for the gateway's offline log
    /// cache (60, 1m, 0 = off).
    #[arg(long, env = "EDGE_AGENT_LOG_TAIL_INTERVAL_SECONDS", value_parser = parse_duration)]
    pub log_tail_interval: Option<Duration>,
    /// How often containers are listed and reconciled when nothing else happens.
    #[arg(long, env = "EDGE_AGENT_SYNC_INTERVAL_SECONDS", value_parser = parse_duration)]
    pub sync_interval: Option<Duration>,
    /// First crash-loop / image-pull back-off (kubelet: 10 s); doubles per failure.
    #[arg(long, env = "EDGE_AGENT_CRASH_LOOP_BACKOFF_INITIAL_SECONDS", value_parser = parse_duration)]
    pub crash_loop_backoff_initial: Option<Duration>,
    /// Longest crash-loop back-off (kubelet: 5 min).
    #[arg(long, env = "EDGE_AGENT_CRASH_LOOP_BACKOFF_MAX_SECONDS", value_parser = parse_duration)]
    pub crash_loop_backoff_max: Option<Duration>,
    /// Running this long resets a container's back-off (kubelet: 10 min).
    #[arg(long, env = "EDGE_AGENT_CRASH_LOOP_BACKOFF_RESET_SECONDS", value_parser = parse_duration)]
    pub crash_loop_backoff_reset: Option<Duration>,
    /// Pod capacity reported for this node.
    #[arg(long, env = "EDGE_AGENT_MAX_PODS")]
    pub max_pods: Option<u64>,
    /// Close exec/attach/port-forward streams idle this long (kubelet: 4 h).
    #[arg(long, env = "EDGE_AGENT_STREAM_IDLE_TIMEOUT_SECONDS", value_parser = parse_duration)]
    pub stream_idle_timeout: Option<Duration>,
    /// Streams served at once.
    #[arg(long, env = "EDGE_AGENT_MAX_STREAMS")]
    pub max_streams: Option<u64>,
    /// Image of the per-pod infra container [default: registry.k8s.io/pause:3.10].
    #[arg(long, env = "EDGE_AGENT_SANDBOX_IMAGE")]
    pub sandbox_image: Option<String>,
    /// Command of the infra container (repeat, or comma-separate in the env var);
    /// default: the image's entrypoint.
    #[arg(long, env = "EDGE_AGENT_SANDBOX_COMMAND", value_delimiter = ',')]
    pub sandbox_command: Vec<String>,
    /// The nvidia.com/gpu device ids (indices or UUIDs, comma-separated) reported as the
    /// Node's capacity and assigned to containers, instead of the detected GPUs (0..n-1).
    /// Tests also use it to give a device without GPUs fake ones.
    #[arg(long, env = "EDGE_AGENT_GPU_DEVICES", value_delimiter = ',')]
    pub gpu_devices: Vec<String>,
    /// How assigned GPUs are passed: nvidia (Engine API DeviceRequests, driver "nvidia",
    /// as `docker run --gpus`), cdi (DeviceRequests with CDI names nvidia.com/gpu=<id>,
    /// Docker >= 25 with CDI), env (NVIDIA_VISIBLE_DEVICES only: the NVIDIA runtime or
    /// OCI hook; Podman 4's Docker API drops device requests), auto (nvidia on Docker,
    /// env on Podman) [default: auto].
    #[arg(long, env = "EDGE_AGENT_GPU_REQUEST")]
    pub gpu_request: Option<String>,
    /// CA certificate (PEM) of the broker, for mqtts://.
    #[arg(long, env = "EDGE_AGENT_TLS_CA_FILE")]
    pub tls_ca_file: Option<PathBuf>,
    /// Device client certificate (PEM).
    #[arg(long, env = "EDGE_AGENT_TLS_CERT_FILE")]
    pub tls_cert_file: Option<PathBuf>,
    /// Device private key (PEM).
    #[arg(long, env = "EDGE_AGENT_TLS_KEY_FILE")]
    pub tls_key_file: Option<PathBuf>,
    /// Extra node label key=value; repeat (or comma-separate in the env var).
    #[arg(long = "label", env = "EDGE_AGENT_LABELS", value_delimiter = ',')]
    pub labels: Vec<String>,
    #[command(flatten)]
    pub resources: ResourceArgs,
    #[command(flatten)]
    pub bootstrap: BootstrapArgs,
    /// Log filter (tracing env-filter syntax), e.g. info or edge_agent=debug
    /// [default: $RUST_LOG, else info].
    #[arg(long, env = "EDGE_AGENT_LOG_FILTER")]
    pub log_filter: Option<String>,
}

/// Zero-touch enrollment (docs/deploy.md "Flash 100 Pis with one image").
#[derive(Debug, Clone, Args, Default)]
pub struct BootstrapArgs {
    /// The fleet's bootstrap file: without an identity of its own (or once its
    /// certificate expired), the agent enrolls with it first and then runs under the
    /// issued certificate; its device id, broker URLs and TLS files replace the config's.
    #[arg(long, env = "EDGE_AGENT_BOOTSTRAP_FILE")]
    pub bootstrap_file: Option<PathBuf>,
    /// Where the device key, certificate and CA are kept [default: the bootstrap file's
    /// identity_dir].
    #[arg(long, env = "EDGE_AGENT_IDENTITY_DIR")]
    pub identity_dir: Option<PathBuf>,
    /// Root under which the hardware ids are read (proc/device-tree/serial-number,
    /// etc/machine-id, sys/class/net); for tests and chroots.
    #[arg(long, env = "EDGE_AGENT_HARDWARE_ROOT", default_value = "/")]
    pub hardware_root: PathBuf,
    /// How often the certificate request is sent again while it waits.
    #[arg(long, env = "EDGE_AGENT_BOOTSTRAP_RESEND_SECONDS", default_value = "30", value_parser = parse_duration)]
    pub bootstrap_resend: Duration,
}

impl BootstrapArgs {
    /// The settings of [`crate::bootstrap::ensure_identity`], when a bootstrap file is given.
    pub fn settings(&self) -> Option<crate::bootstrap::BootstrapSettings> {
        let file = self.bootstrap_file.clone()?;
        Some(crate::bootstrap::BootstrapSettings {
            file,
            hardware_root: self.hardware_root.clone(),
            identity_dir: self.identity_dir.clone(),
            timings: crate::bootstrap::ExchangeTimings {
                resend: self.bootstrap_resend.max(Duration::from_secs(1)),
                ..Default::default()
            },
        })
    }
}

impl RunArgs {
    /// Runs with `identity` (from enrollment) instead of the configured id, brokers and
    /// TLS files.
    pub fn use_identity(&mut self, identity: &crate::bootstrap::DeviceIdentity) {
        self.device_id = Some(identity.device_id.to_string());
        self.broker_urls = identity.broker_urls.clone();
        self.tls_ca_file = Some(identity.ca_file.clone());
        self.tls_cert_file = Some(identity.cert_file.clone());
        self.tls_key_file = Some(identity.key_file.clone());
    }
}

/// Flags of the `[resources]` table.
#[derive(Debug, Clone, Args, Default)]
pub struct ResourceArgs {
    /// Rotate container logs at this size (kubelet: 10Mi; "0": the runtime's settings).
    #[arg(long, env = "EDGE_AGENT_CONTAINER_LOG_MAX_SIZE")]
    pub container_log_max_size: Option<String>,
    /// Rotated log files kept per container (kubelet: 5).
    #[arg(long, env = "EDGE_AGENT_CONTAINER_LOG_MAX_FILES")]
    pub container_log_max_files: Option<u32>,
    /// Hard eviction thresholds, e.g. memory.available<100Mi,nodefs.available<10%.
    #[arg(long, env = "EDGE_AGENT_EVICTION_HARD")]
    pub eviction_hard: Option<String>,
    /// Seconds between pressure measurements (0 = off).
    #[arg(long, env = "EDGE_AGENT_EVICTION_MONITORING_INTERVAL_SECONDS")]
    pub eviction_monitoring_interval_seconds: Option<f64>,
    /// Seconds a pressure condition stays True after its threshold is no longer crossed.
    #[arg(long, env = "EDGE_AGENT_EVICTION_PRESSURE_TRANSITION_PERIOD_SECONDS")]
    pub eviction_pressure_transition_period_seconds: Option<f64>,
    /// Node filesystem measured for nodefs.* [default: state dir].
    #[arg(long, env = "EDGE_AGENT_NODEFS_PATH")]
    pub nodefs_path: Option<PathBuf>,
    /// Image filesystem measured for imagefs.* and image GC [default: runtime data root].
    #[arg(long, env = "EDGE_AGENT_IMAGEFS_PATH")]
    pub imagefs_path: Option<PathBuf>,
    /// Image GC starts above this usage of the image filesystem (percent).
    #[arg(long, env = "EDGE_AGENT_IMAGE_GC_HIGH_THRESHOLD_PERCENT")]
    pub image_gc_high_threshold_percent: Option<u8>,
    /// Image GC frees space down to this usage (percent).
    #[arg(long, env = "EDGE_AGENT_IMAGE_GC_LOW_THRESHOLD_PERCENT")]
    pub image_gc_low_threshold_percent: Option<u8>,
    /// Images first seen more recently than this many seconds are never removed.
    #[arg(long, env = "EDGE_AGENT_IMAGE_MINIMUM_GC_AGE_SECONDS")]
    pub image_minimum_gc_age_seconds: Option<f64>,
}

impl ResourceArgs {
    fn apply(&self, raw: &mut RawResourcePolicy) {
        fn set<T: Clone>(flag: &Option<T>, slot: &mut Option<T>) {
            if flag.is_some() {
                slot.clone_from(flag);
            }
        }
        set(
            &self.container_log_max_size,
            &mut raw.container_log_max_size,
        );
        set(
            &self.container_log_max_files,
            &mut raw.container_log_max_files,
        );
        set(&self.eviction_hard, &mut raw.eviction_hard);
        set(
            &self.eviction_monitoring_interval_seconds,
            &mut raw.eviction_monitoring_interval_seconds,
        );
        set(
            &self.eviction_pressure_transition_period_seconds,
            &mut raw.eviction_pressure_transition_period_seconds,
        );
        set(&self.nodefs_path, &mut raw.nodefs_path);
        set(&self.imagefs_path, &mut raw.imagefs_path);
        set(
            &self.image_gc_high_threshold_percent,
            &mut raw.image_gc_high_threshold_percent,
        );
        set(
            &self.image_gc_low_threshold_percent,
            &mut raw.image_gc_low_threshold_percent,
        );
        set(
            &self.image_minimum_gc_age_seconds,
            &mut raw.image_minimum_gc_age_seconds,
        );
    }
}

impl RunArgs {
    /// The log filter: the flag or `EDGE_AGENT_LOG_FILTER`, else `RUST_LOG`, else `info`.
    pub fn log_filter(&self) -> String {
        self.log_filter
            .clone()
            .or_else(|| std::env::var("RUST_LOG").ok().filter(|v| !v.is_empty()))
            .unwrap_or_else(|| "info".to_owned())
    }

    /// Reads the config file (if any) and applies flags and env on top of it.
    pub fn resolve(&self) -> Result<AgentConfig, ConfigError> {
        let mut file = match &self.config {
            Some(path) => ConfigFile::load(path)?,
            None => {
                let default = PathBuf::from(DEFAULT_CONFIG_PATH);
                if default.exists() {
                    ConfigFile::load(&default)?
                } else {
                    ConfigFile::default()
                }
            }
        };
        if let Some(v) = &self.device_id {
            file.device_id = Some(v.clone());
        }
        if !self.broker_urls.is_empty() {
            file.broker_urls = Some(self.broker_urls.clone());
        }
        if let Some(v) = &self.state_dir {
            file.state_dir = Some(v.clone());
        }
        if let Some(v) = &self.runtime_socket {
            file.runtime_socket = Some(v.clone());
        }
        if let Some(v) = &self.ota_dir {
            file.ota_dir = Some(v.clone());
        }
        if let Some(v) = &self.ota_public_key {
            file.ota_public_key = Some(v.clone());
        }
        if let Some(v) = self.stats_interval_seconds {
            file.stats_interval_seconds = Some(v);
        }
        let secs = |d: &Option<Duration>, slot: &mut Option<f64>| {
            if let Some(d) = d {
                *slot = Some(d.as_secs_f64());
            }
        };
        secs(
            &self.heartbeat_interval,
            &mut file.heartbeat_interval_seconds,
        );
        secs(
            &self.reconnect_backoff_max,
            &mut file.reconnect_backoff_max_seconds,
        );
        secs(&self.sync_interval, &mut file.sync_interval_seconds);
        secs(&self.log_tail_interval, &mut file.log_tail_interval_seconds);
        secs(
            &self.crash_loop_backoff_initial,
            &mut file.crash_loop_backoff_initial_seconds,
        );
        secs(
            &self.crash_loop_backoff_max,
            &mut file.crash_loop_backoff_max_seconds,
        );
        secs(
            &self.crash_loop_backoff_reset,
            &mut file.crash_loop_backoff_reset_seconds,
        );
        if let Some(k) = self.keepalive {
            file.keepalive_seconds = Some(k.as_secs());
        }
        if let Some(v) = self.max_pods {
            file.max_pods = Some(v);
        }
        secs(
            &self.stream_idle_timeout,
            &mut file.stream_idle_timeout_seconds,
        );
        if let Some(v) = self.max_streams {
            file.max_streams = Some(v);
        }
        self.resources
            .apply(file.resources.get_or_insert_with(Default::default));
        if let Some(v) = &self.sandbox_image {
            file.sandbox_image = Some(v.clone());
        }
        if !self.sandbox_command.is_empty() {
            file.sandbox_command = Some(self.sandbox_command.clone());
        }
        if !self.gpu_devices.is_empty() {
            file.gpu_devices = Some(self.gpu_devices.clone());
        }
        if let Some(v) = &self.gpu_request {
            file.gpu_request = Some(v.clone());
        }
        let tls = file.tls.get_or_insert_with(TlsFiles::default);
        if let Some(v) = &self.tls_ca_file {
            tls.ca_file = Some(v.clone());
        }
        if let Some(v) = &self.tls_cert_file {
            tls.cert_file = Some(v.clone());
        }
        if let Some(v) = &self.tls_key_file {
            tls.key_file = Some(v.clone());
        }
        if !self.labels.is_empty() {
            let labels = file.labels.get_or_insert_with(Default::default);
            for raw in &self.labels {
                let (k, v) = parse_label(raw)?;
                labels.insert(k, v);
            }
        }
        AgentConfig::from_file(file)
    }
}

#[derive(Debug, Clone, Args)]
pub struct InstallArgs {
    /// Bundle directory from `edge-gateway enroll` (agent.toml, ca.pem, device.pem, device.key).
    #[arg(long)]
    pub bundle: PathBuf,
    /// Root to install under (files go to `<prefix>/etc/edge-agent`); for images and tests.
    #[arg(long, default_value = "/")]
    pub prefix: PathBuf,
}

#[cfg(test)]
mod tests;
