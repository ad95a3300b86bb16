//! The kubelet's Summary API (`/stats/summary`, `k8s.io/kubelet/pkg/apis/stats/v1alpha1`)
//! for one device, from its last two samples: cumulative CPU and memory as sampled,
//! `usageNanoCores` as the rate between the two samples (absent after the first one).

use edge_protocol::{ContainerUsage, CpuMemoryUsage, FilesystemUsage, PodUsage, UnixMillis};
use serde_json::{Map, Value, json};

use super::{DeviceSamples, nano_cores};

/// RFC 3339 time of a Unix-millisecond instant, as Kubernetes writes times.
pub fn rfc3339(ms: UnixMillis) -> String {
    i64::try_from(ms)
        .ok()
        .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .to_string()
}

/// Inserts `key: value` when there is a value (the API omits unknown figures).
fn put(map: &mut Map<String, Value>, key: &str, value: Option<impl Into<Value>>) {
    if let Some(v) = value {
        map.insert(key.to_owned(), v.into());
    }
}

/// `CPUStats` and `MemoryStats` of one reading; `nano_cores` from the rate.
fn cpu_memory(usage: &CpuMemoryUsage, time: &str, nano_cores: Option<u64>) -> (Value, Value) {
    let mut cpu = Map::new();
    cpu.insert("time".into(), time.into());
    put(&mut cpu, "usageNanoCores", nano_cores);
    cpu.insert(
        "usageCoreNanoSeconds".into(),
        usage.cpu_usage_core_nanoseconds.into(),
    );
    let mut memory = Map::new();
    memory.insert("time".into(), time.into());
    put(&mut memory, "availableBytes", usage.memory_available_bytes);
    put(&mut memory, "usageBytes", usage.memory_usage_bytes);
    memory.insert(
        "workingSetBytes".into(),
        usage.memory_working_set_bytes.into(),
    );
    put(&mut memory, "rssBytes", usage.memory_rss_bytes);
    (Value::Object(cpu), Value::Object(memory))
}

fn filesystem(fs: &FilesystemUsage, time: &str) -> Value {
    json!({
        "time": time,
        "availableBytes": fs.available_bytes,
        "capacityBytes": fs.capacity_bytes,
        "usedBytes": fs.used_bytes,
    })
}

/// The same container in the previous sample: same pod, name and start (a restarted
/// container's counter starts again).
fn previous_container<'a>(
    samples: &'a DeviceSamples,
    pod: &PodUsage,
    container: &ContainerUsage,
) -> Option<&'a ContainerUsage> {
    samples
        .previous
        .as_ref()?
        .stats
        .pods
        .iter()
        .find(|p| p.pod_uid == pod.pod_uid)?
        .containers
        .iter()
        .find(|c| c.name == container.name && c.started_at == container.started_at)
}

fn container(samples: &DeviceSamples, pod: &PodUsage, c: &ContainerUsage, time: &str) -> Value {
    let elapsed = elapsed_ms(samples);
    let rate = previous_container(samples, pod, c).and_then(|p| {
        nano_cores(
            p.usage.cpu_usage_core_nanoseconds,
            c.usage.cpu_usage_core_nanoseconds,
            elapsed?,
        )
    });
    let (cpu, memory) = cpu_memory(&c.usage, time, rate);
    let mut out = Map::new();
    out.insert("name".into(), c.name.clone().into());
    out.insert("startTime".into(), rfc3339(c.started_at).into());
    out.insert("cpu".into(), cpu);
    out.insert("memory".into(), memory);
    put(
        &mut out,
        "rootfs",
        c.rootfs_used_bytes
            .map(|b| json!({"time": time, "usedBytes": b})),
    );
    put(
        &mut out,
        "logs",
        c.logs_used_bytes
            .map(|b| json!({"time": time, "usedBytes": b})),
    );
    Value::Object(out)
}

/// Milliseconds between the two samples (device clock).
fn elapsed_ms(samples: &DeviceSamples) -> Option<u64> {
    let previous = samples.previous.as_ref()?;
    samples
        .latest
        .stats
        .sampled_at
        .checked_sub(previous.stats.sampled_at)
}

fn pod(samples: &DeviceSamples, p: &PodUsage, time: &str) -> Value {
    let containers: Vec<Value> = p
        .containers
        .iter()
        .map(|c| container(samples, p, c, time))
        .collect();
    // The pod's figures are its containers' sums (the kubelet reads the pod cgroup).
    let sum = p
        .containers
        .iter()
        .fold(CpuMemoryUsage::default(), |mut acc, c| {
            acc.cpu_usage_core_nanoseconds += c.usage.cpu_usage_core_nanoseconds;
            acc.memory_working_set_bytes += c.usage.memory_working_set_bytes;
            acc.memory_usage_bytes = add(acc.memory_usage_bytes, c.usage.memory_usage_bytes);
            acc.memory_rss_bytes = add(acc.memory_rss_bytes, c.usage.memory_rss_bytes);
            acc
        });
    let rates: Option<u64> = containers
        .iter()
        .map(|c| c["cpu"]["usageNanoCores"].as_u64())
        .sum();
    let (cpu, memory) = cpu_memory(&sum, time, rates.filter(|_| !containers.is_empty()));
    let start = p.containers.iter().map(|c| c.started_at).min().unwrap_or(0);
    json!({
        "podRef": {"name": p.name, "namespace": p.namespace, "uid": p.pod_uid},
        "startTime": rfc3339(start),
        "containers": containers,
        "cpu": cpu,
        "memory": memory,
    })
}

fn add(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (None, None) => None,
        _ => Some(a.unwrap_or(0) + b.unwrap_or(0)),
    }
}

/// The Summary of node `node_name` from its samples.
pub fn summary(node_name: &str, samples: &DeviceSamples) -> Value {
    let stats = &samples.latest.stats;
    let time = rfc3339(stats.sampled_at);
    let node_rate = samples.previous.as_ref().and_then(|p| {
        nano_cores(
            p.stats.node.usage.cpu_usage_core_nanoseconds,
            stats.node.usage.cpu_usage_core_nanoseconds,
            elapsed_ms(samples)?,
        )
    });
    let (cpu, memory) = cpu_memory(&stats.node.usage, &time, node_rate);
    let mut node = Map::new();
    node.insert("nodeName".into(), node_name.into());
    put(&mut node, "startTime", stats.node.started_at.map(rfc3339));
    node.insert("cpu".into(), cpu);
    node.insert("memory".into(), memory);
    put(
        &mut node,
        "network",
        stats
            .node
            .network
            .as_ref()
            .map(|n| json!({"time": time, "rxBytes": n.rx_bytes, "txBytes": n.tx_bytes})),
    );
    put(
        &mut node,
        "fs",
        stats.node.filesystem.as_ref().map(|f| filesystem(f, &time)),
    );
    put(
        &mut node,
        "runtime",
        stats
            .node
            .image_filesystem
            .as_ref()
            .map(|f| json!({"imageFs": filesystem(f, &time)})),
    );
    let pods: Vec<Value> = stats.pods.iter().map(|p| pod(samples, p, &time)).collect();
    json!({"node": node, "pods": pods})
}
