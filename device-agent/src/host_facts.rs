//! The node report, read from the host: CPUs, memory, the runtime's disk, architecture,
//! OS and kernel, board model (`/proc/device-tree/model`), NVIDIA GPUs, addresses.

use std::collections::BTreeMap;
use std::path::Path;

use edge_protocol::{NodeAddress, NodeAddressKind, NodeReport, NodeResources};

/// Where the facts come from; tests point `root` at a fake tree.
#[derive(Debug, Clone)]
pub struct HostFacts {
    /// `/` on a real device.
    pub root: std::path::PathBuf,
}

impl Default for HostFacts {
    fn default() -> Self {
        Self { root: "/".into() }
    }
}

/// Kubernetes (GOARCH) name of the architecture this binary runs as.
pub fn kubernetes_arch() -> &'static str {
    match std::env::consts::ARCH {
        "aarch64" => "arm64",
        "arm" => "arm",
        "x86_64" => "amd64",
        "x86" => "386",
        "riscv64" => "riscv64",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        other => other,
    }
}

/// Eviction threshold the kubelet keeps free by default (memory.available<100Mi).
const MEMORY_RESERVE: u64 = 100 * 1024 * 1024;

impl HostFacts {
    fn read(&self, path: &str) -> Option<String> {
        std::fs::read_to_string(self.root.join(path.trim_start_matches('/'))).ok()
    }

    /// `PRETTY_NAME` of `/etc/os-release`.
    pub fn os_image(&self) -> String {
        self.read("/etc/os-release")
            .or_else(|| self.read("/usr/lib/os-release"))
            .and_then(|text| {
                text.lines().find_map(|l| {
                    l.strip_prefix("PRETTY_NAME=")
                        .map(|v| v.trim().trim_matches('"').to_owned())
                })
            })
            .unwrap_or_else(|| "Linux".to_owned())
    }

    /// MemTotal from `/proc/meminfo`, in bytes.
    pub fn memory_bytes(&self) -> u64 {
        self.read("/proc/meminfo")
            .and_then(|text| {
                text.lines().find_map(|l| {
                    let rest = l.strip_prefix("MemTotal:")?;
                    let kb: u64 = rest.trim().trim_end_matches("kB").trim().parse().ok()?;
                    Some(kb * 1024)
                })
            })
            .unwrap_or(0)
    }

    /// `/proc/device-tree/model` without the trailing NUL (Raspberry Pi, Jetson).
    pub fn board_model(&self) -> Option<String> {
        self.read("/proc/device-tree/model")
            .map(|m| m.trim_end_matches('\0').trim().to_owned())
            .filter(|m| !m.is_empty())
    }

    /// NVIDIA GPUs: `/proc/driver/nvidia/gpus/*` or `/dev/nvidia<N>`; a Jetson (whose
    /// integrated GPU has neither) counts as one.
    pub fn nvidia_gpus(&self) -> u64 {
        let count_dir = |dir: &str, keep: &dyn Fn(&str) -> bool| -> u64 {
            std::fs::read_dir(self.root.join(dir.trim_start_matches('/')))
                .map(|rd| {
                    rd.filter_map(|e| e.ok())
                        .filter(|e| keep(&e.file_name().to_string_lossy()))
                        .count() as u64
                })
                .unwrap_or(0)
        };
        let proc_gpus = count_dir("/proc/driver/nvidia/gpus", &|_| true);
        if proc_gpus > 0 {
            return proc_gpus;
        }
        let dev = count_dir("/dev", &|n: &str| {
            n.strip_prefix("nvidia")
                .is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()))
        });
        if dev > 0 {
            return dev;
        }
        match self.board_model() {
            Some(m) if m.contains("Jetson") => 1,
            _ => 0,
        }
    }

    /// The detected GPUs' `nvidia.com/gpu` device ids: their indices `0`..`n-1` (what
    /// `NVIDIA_VISIBLE_DEVICES`, the NVIDIA device request and CDI's generated names take).
    pub fn nvidia_gpu_ids(&self) -> Vec<String> {
        (0..self.nvidia_gpus()).map(|i| i.to_string()).collect()
    }

    fn machine_id(&self) -> Option<String> {
        self.read("/etc/machine-id")
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
    }

    fn boot_id(&self) -> Option<String> {
        self.read("/proc/sys/kernel/random/boot_id")
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
    }

    /// Size of the file system holding `path`, in bytes.
    pub fn disk_bytes(path: &Path) -> u64 {
        let mut p = path.to_path_buf();
        // The runtime's directory may not be visible to us: walk up to what exists.
        while !p.exists() {
            if !p.pop() {
                return 0;
            }
        }
        rustix::fs::statvfs(&p)
            .map(|s| s.f_blocks.saturating_mul(s.f_frsize))
            .unwrap_or(0)
    }

    /// Non-loopback IPv4 addresses of real interfaces, then the host name.
    pub fn addresses(hostname: &str) -> Vec<NodeAddress> {
        let virtual_iface = |name: &str| {
            [
                "docker", "cni", "podman", "veth", "br-", "virbr", "flannel", "cali", "lo",
            ]
            .iter()
            .any(|p| name.starts_with(p))
        };
        let mut out: Vec<NodeAddress> = if_addrs::get_if_addrs()
            .unwrap_or_default()
            .into_iter()
            .filter(|i| !i.is_loopback() && !virtual_iface(&i.name))
            .filter_map(|i| match i.ip() {
                std::net::IpAddr::V4(v4) if !v4.is_link_local() => Some(NodeAddress {
                    kind: NodeAddressKind::InternalIP,
                    address: v4.to_string(),
                }),
                _ => None,
            })
            .collect();
        out.dedup();
        if !hostname.is_empty() {
            out.push(NodeAddress {
                kind: NodeAddressKind::Hostname,
                address: hostname.to_owned(),
            });
        }
        out
    }

    /// The whole report. `runtime_version` like `docker://24.0.7`; `disk` is the
    /// runtime's data directory.
    pub fn node_report(
        &self,
        runtime_version: &str,
        disk: &Path,
        max_pods: u64,
        labels: &BTreeMap<String, String>,
    ) -> NodeReport {
        let uname = rustix::system::uname();
        let hostname = uname.nodename().to_string_lossy().into_owned();
        let cpus = std::thread::available_parallelism()
            .map(|n| n.get() as u64)
            .unwrap_or(1);
        let memory = self.memory_bytes();
        let storage = Self::disk_bytes(disk);
        let mut extended = BTreeMap::new();
        let gpus = self.nvidia_gpus();
        if gpus > 0 {
            extended.insert("nvidia.com/gpu".to_owned(), gpus);
        }
        let capacity = NodeResources {
            cpu_millis: cpus * 1000,
            memory_bytes: memory,
            ephemeral_storage_bytes: storage,
            pods: max_pods,
            extended: extended.clone(),
        };
        // The kubelet's default hard eviction thresholds: memory 100Mi, nodefs 10%.
        let allocatable = NodeResources {
            cpu_millis: cpus * 1000,
            memory_bytes: memory.saturating_sub(MEMORY_RESERVE),
            ephemeral_storage_bytes: storage - storage / 10,
            pods: max_pods,
            extended,
        };
        NodeReport {
            agent_version: env!("CARGO_PKG_VERSION").to_owned(),
            hostname: hostname.clone(),
            architecture: kubernetes_arch().to_owned(),
            operating_system: "linux".to_owned(),
            os_image: self.os_image(),
            kernel_version: uname.release().to_string_lossy().into_owned(),
            board_model: self.board_model(),
            container_runtime_version: runtime_version.to_owned(),
            machine_id: self.machine_id(),
            boot_id: self.boot_id(),
            capacity,
            allocatable,
            labels: labels.clone(),
            addresses: Self::addresses(&hostname),
            capabilities: edge_protocol::DeviceCapabilities {
                streams: Some(edge_protocol::STREAM_PROTOCOL_VERSION),
                init_containers: true,
                lifecycle_hooks: true,
                grpc_probes: true,
                retire: true,
                image_prepull: true,
                ..Default::default()
            },
            conditions: Vec::new(),
            images: Vec::new(),
            update: false,
            agent_update: None,
            image_prepull: None,
        }
    }
}

#[cfg(test)]
mod tests;
