//! Resource usage read from raw inputs, with no I/O: `/proc/stat`, `/proc/meminfo`,
//! `/proc/net/dev` and the Docker Engine API's one-shot container stats (Docker or
//! Podman, cgroup v1 or v2) become the protocol's [`NodeStats`] parts. The
//! `stats_reporter` task reads the inputs and calls these.
//!
//! The figures follow the kubelet's summary provider (cAdvisor): CPU is cumulative
//! core-nanoseconds; memory working set is usage minus inactive file pages (the page
//! cache the kernel can drop without swapping); available = total - working set.

use edge_protocol::{
    ContainerUsage, CpuMemoryUsage, NetworkUsage, NodeStats, NodeUsage, PodUsage, UnixMillis,
};
use serde_json::Value;

use crate::container_labels::ContainerIdentity;

/// `/proc/stat` counts in USER_HZ, which Linux fixes at 100 for user space on every
/// architecture (`sysconf(_SC_CLK_TCK)`).
const USER_HZ: u64 = 100;
const NANOS_PER_TICK: u64 = 1_000_000_000 / USER_HZ;

/// CPU time the whole device spent busy, in core-nanoseconds: the `cpu` line of
/// `/proc/stat` without idle and iowait (what the root cgroup's cpuacct counts).
/// `guest` and `guest_nice` are already part of `user` and `nice`.
pub fn node_cpu_core_nanoseconds(proc_stat: &str) -> Option<u64> {
    let line = proc_stat
        .lines()
        .find(|l| l.split_whitespace().next() == Some("cpu"))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    // user nice system idle iowait irq softirq steal guest guest_nice
    let busy: u64 = [0usize, 1, 2, 5, 6, 7]
        .iter()
        .filter_map(|&i| fields.get(i))
        .sum();
    if fields.len() < 4 {
        return None;
    }
    Some(busy.saturating_mul(NANOS_PER_TICK))
}

/// Boot time (`btime` of `/proc/stat`) in Unix milliseconds.
pub fn boot_time(proc_stat: &str) -> Option<UnixMillis> {
    proc_stat.lines().find_map(|l| {
        let secs: u64 = l.strip_prefix("btime")?.trim().parse().ok()?;
        Some(secs.saturating_mul(1000))
    })
}

/// Node memory from `/proc/meminfo`, as cAdvisor's root container reports it: usage =
/// MemTotal - MemFree (page cache included), working set = usage - Inactive(file),
/// RSS = AnonPages, available = MemTotal - working set (the kubelet's
/// `memory.available`). `None` without MemTotal.
pub fn node_memory(meminfo: &str) -> Option<CpuMemoryUsage> {
    let field = |name: &str| -> Option<u64> {
        meminfo.lines().find_map(|l| {
            let rest = l.strip_prefix(name)?.strip_prefix(':')?;
            let kb: u64 = rest.trim().trim_end_matches("kB").trim().parse().ok()?;
            Some(kb.saturating_mul(1024))
        })
    };
    let total = field("MemTotal")?;
    let usage = total.saturating_sub(field("MemFree").unwrap_or(0));
    let working_set = usage.saturating_sub(field("Inactive(file)").unwrap_or(0));
    Some(CpuMemoryUsage {
        cpu_usage_core_nanoseconds: 0,
        memory_working_set_bytes: working_set,
        memory_usage_bytes: Some(usage),
        memory_rss_bytes: field("AnonPages"),
        memory_available_bytes: Some(total.saturating_sub(working_set)),
    })
}

/// Bytes received and sent over every interface of `/proc/net/dev` but loopback.
pub fn network(net_dev: &str) -> Option<NetworkUsage> {
    let mut total = NetworkUsage::default();
    let mut any = false;
    for line in net_dev.lines() {
        let Some((name, counters)) = line.split_once(':') else {
            continue;
        };
        if name.trim() == "lo" {
            continue;
        }
        let fields: Vec<u64> = counters
            .split_whitespace()
            .filter_map(|f| f.parse().ok())
            .collect();
        // receive: bytes packets errs drop fifo frame compressed multicast; transmit: bytes ...
        if let (Some(rx), Some(tx)) = (fields.first(), fields.get(8)) {
            total.rx_bytes = total.rx_bytes.saturating_add(*rx);
            total.tx_bytes = total.tx_bytes.saturating_add(*tx);
            any = true;
        }
    }
    any.then_some(total)
}

/// Why a container's Engine API stats could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StatsError {
    #[error("no cpu_stats.cpu_usage.total_usage")]
    NoCpuUsage,
    #[error("no memory_stats.usage")]
    NoMemoryUsage,
}

/// One container's usage from `GET /containers/{id}/stats?stream=false&one-shot=true`.
/// Working set = usage - inactive file pages, as cAdvisor computes it: the `stats` key
/// is `total_inactive_file` on cgroup v1 and `inactive_file` on cgroup v2 (Podman on
/// cgroup v1 sends no `stats`: usage is then the working set). RSS is `total_rss` (v1)
/// or `anon` (v2).
pub fn container_usage(stats: &Value) -> Result<CpuMemoryUsage, StatsError> {
    let cpu = stats["cpu_stats"]["cpu_usage"]["total_usage"]
        .as_u64()
        .ok_or(StatsError::NoCpuUsage)?;
    let memory = &stats["memory_stats"];
    let usage = memory["usage"].as_u64().ok_or(StatsError::NoMemoryUsage)?;
    let detail = &memory["stats"];
    let first = |keys: &[&str]| keys.iter().find_map(|k| detail[*k].as_u64());
    let inactive_file = first(&["total_inactive_file", "inactive_file"]).unwrap_or(0);
    Ok(CpuMemoryUsage {
        cpu_usage_core_nanoseconds: cpu,
        memory_working_set_bytes: usage.saturating_sub(inactive_file),
        memory_usage_bytes: Some(usage),
        memory_rss_bytes: first(&["total_rss", "rss", "anon"]),
        memory_available_bytes: None,
    })
}

/// A running container and its usage, as the reporter collected them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerSample {
    pub identity: ContainerIdentity,
    pub started_at: UnixMillis,
    pub usage: CpuMemoryUsage,
}

/// The raw readings of one sample.
#[derive(Debug, Clone, Default)]
pub struct RawNodeReadings {
    pub proc_stat: Option<String>,
    pub meminfo: Option<String>,
    pub net_dev: Option<String>,
    pub root_filesystem: Option<edge_protocol::FilesystemUsage>,
    pub image_filesystem: Option<edge_protocol::FilesystemUsage>,
}

/// The whole sample: the node from its readings, the containers grouped by pod (pods
/// and containers in name order, so equal inputs give equal messages). The agent's
/// counters are left at zero for the caller to fill.
pub fn node_stats(
    sampled_at: UnixMillis,
    node: &RawNodeReadings,
    containers: Vec<ContainerSample>,
) -> NodeStats {
    let mut usage = node
        .meminfo
        .as_deref()
        .and_then(node_memory)
        .unwrap_or_default();
    let proc_stat = node.proc_stat.as_deref().unwrap_or("");
    usage.cpu_usage_core_nanoseconds = node_cpu_core_nanoseconds(proc_stat).unwrap_or(0);
    let mut pods: Vec<PodUsage> = Vec::new();
    let mut containers = containers;
    containers.sort_by(|a, b| {
        (
            &a.identity.pod_namespace,
            &a.identity.pod_name,
            &a.identity.pod_uid,
            &a.identity.container_name,
        )
            .cmp(&(
                &b.identity.pod_namespace,
                &b.identity.pod_name,
                &b.identity.pod_uid,
                &b.identity.container_name,
            ))
    });
    for c in containers {
        let entry = ContainerUsage {
            name: c.identity.container_name.clone(),
            started_at: c.started_at,
            usage: c.usage,
            rootfs_used_bytes: None,
            logs_used_bytes: None,
        };
        match pods.last_mut() {
            Some(pod) if pod.pod_uid == c.identity.pod_uid => pod.containers.push(entry),
            _ => pods.push(PodUsage {
                pod_uid: c.identity.pod_uid,
                namespace: c.identity.pod_namespace,
                name: c.identity.pod_name,
                containers: vec![entry],
            }),
        }
    }
    NodeStats {
        sampled_at,
        node: NodeUsage {
            started_at: boot_time(proc_stat),
            usage,
            filesystem: node.root_filesystem.clone(),
            image_filesystem: node.image_filesystem.clone(),
            network: node.net_dev.as_deref().and_then(network),
        },
        pods,
        agent: Default::default(),
    }
}

#[cfg(test)]
mod tests;
