//! Resource usage a device samples periodically (`up/stats`): what the gateway serves as
//! the kubelet's `/stats/summary` and `/metrics/resource` (read by metrics-server for
//! `kubectl top`), and the agent's own health counters.
//!
//! CPU is cumulative (core-nanoseconds since the container or boot started), as the
//! kubelet reports it; a reader computes rates from two samples. Stats travel at QoS 0:
//! a lost sample is replaced by the next one.

use serde::{Deserialize, Serialize};

use crate::node_report::UnixMillis;

/// One sample of the whole device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct NodeStats {
    /// When the sample was taken, by the device's clock.
    pub sampled_at: UnixMillis,
    pub node: NodeUsage,
    pub pods: Vec<PodUsage>,
    pub agent: AgentCounters,
}

/// CPU and memory of the device, a pod or a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct CpuMemoryUsage {
    /// Cumulative CPU time in core-nanoseconds.
    pub cpu_usage_core_nanoseconds: u64,
    /// Memory that cannot be reclaimed without swapping (what `kubectl top` shows).
    pub memory_working_set_bytes: u64,
    pub memory_usage_bytes: Option<u64>,
    pub memory_rss_bytes: Option<u64>,
    /// Node only: memory still available.
    pub memory_available_bytes: Option<u64>,
}

/// A filesystem's size and use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct FilesystemUsage {
    pub capacity_bytes: u64,
    pub used_bytes: u64,
    pub available_bytes: u64,
}

/// Bytes through the network interfaces (all of them, loopback excluded).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct NetworkUsage {
    pub rx_bytes: u64,
    pub tx_bytes: u64,
}

/// The device as a whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct NodeUsage {
    /// Boot time.
    pub started_at: Option<UnixMillis>,
    pub usage: CpuMemoryUsage,
    /// The root filesystem.
    pub filesystem: Option<FilesystemUsage>,
    /// The filesystem holding the container runtime's images.
    pub image_filesystem: Option<FilesystemUsage>,
    pub network: Option<NetworkUsage>,
}

/// One pod and its containers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct PodUsage {
    pub pod_uid: String,
    pub namespace: String,
    pub name: String,
    pub containers: Vec<ContainerUsage>,
}

/// One running container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct ContainerUsage {
    pub name: String,
    pub started_at: UnixMillis,
    pub usage: CpuMemoryUsage,
    /// Bytes written to the container's writable layer.
    pub rootfs_used_bytes: Option<u64>,
    /// Bytes of the container's log.
    pub logs_used_bytes: Option<u64>,
}

/// The agent's own health, exported per device on the gateway's `/metrics`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct AgentCounters {
    /// Times the MQTT connection was lost and made again since the agent started.
    pub mqtt_reconnects: u64,
    /// Messages waiting in the agent's uplink queue now.
    pub uplink_queue_depth: u64,
    /// Reconcile passes that ended with an error since the agent started.
    pub reconcile_errors: u64,
    /// Interactive streams (exec, attach, port-forward) open now.
    pub open_streams: u64,
}
