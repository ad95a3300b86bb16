use super::*;

const PROC_STAT: &str = include_str!("fixtures/proc-stat");
const MEMINFO: &str = include_str!("fixtures/proc-meminfo");
const NET_DEV: &str = include_str!("fixtures/proc-net-dev");

fn json(text: &str) -> Value {
    serde_json::from_str(text).expect("fixture is JSON")
}

#[test]
fn node_cpu_is_busy_ticks_in_core_nanoseconds() {
    // user 902045 + nice 9231 + system 302716 + irq 0 + softirq 5282 + steal 864 ticks;
    // idle 1034235 and iowait 17940 are not counted.
    assert_eq!(
        node_cpu_core_nanoseconds(PROC_STAT),
        Some(1_220_138 * 10_000_000)
    );
    assert_eq!(node_cpu_core_nanoseconds("intr 1 2 3\n"), None);
    assert_eq!(node_cpu_core_nanoseconds("cpu  1 x 3 4\n"), None);
}

#[test]
fn boot_time_is_btime_in_milliseconds() {
    assert_eq!(boot_time(PROC_STAT), Some(1_796_513_125_000));
    assert_eq!(boot_time("cpu 1 2 3 4\n"), None);
}

#[test]
fn node_memory_follows_the_root_cgroup_figures() {
    let m = node_memory(MEMINFO).expect("MemTotal present");
    let kib = 1024u64;
    // usage = MemTotal - MemFree; working set = usage - Inactive(file).
    assert_eq!(m.memory_usage_bytes, Some((24_683_784 - 230_908) * kib));
    assert_eq!(
        m.memory_working_set_bytes,
        (24_683_784 - 230_908 - 11_633_768) * kib
    );
    assert_eq!(
        m.memory_available_bytes,
        Some((24_683_784 - (24_683_784 - 230_908 - 11_633_768)) * kib)
    );
    assert_eq!(m.memory_rss_bytes, Some(385_112 * kib));
    assert_eq!(node_memory("MemFree: 1 kB\n"), None);
}

#[test]
fn network_sums_every_interface_but_loopback() {
    let n = network(NET_DEV).expect("interfaces present");
    assert_eq!(n.rx_bytes, 502_370_993 + 1_448_796);
    assert_eq!(n.tx_bytes, 1_597_025 + 131_204);
    assert_eq!(network("Inter-| Receive\n face |bytes\n"), None);
}

#[test]
fn podman_cgroup_v1_stats_have_no_detail_so_usage_is_the_working_set() {
    let u = container_usage(&json(include_str!("fixtures/podman-4-cgroupv1-stats.json")))
        .expect("usable");
    assert_eq!(u.cpu_usage_core_nanoseconds, 2_005_501_207);
    assert_eq!(u.memory_working_set_bytes, 581_632);
    assert_eq!(u.memory_usage_bytes, Some(581_632));
    assert_eq!(u.memory_rss_bytes, None);
}

#[test]
fn docker_cgroup_v2_working_set_drops_inactive_file() {
    let u = container_usage(&json(include_str!("fixtures/docker-cgroupv2-stats.json")))
        .expect("usable");
    assert_eq!(u.cpu_usage_core_nanoseconds, 2_875_410_000);
    assert_eq!(u.memory_working_set_bytes, 9_510_912 - 5_677_056);
    assert_eq!(u.memory_rss_bytes, Some(2_019_328));
}

#[test]
fn docker_cgroup_v1_working_set_drops_total_inactive_file() {
    let u = container_usage(&json(include_str!("fixtures/docker-cgroupv1-stats.json")))
        .expect("usable");
    assert_eq!(u.cpu_usage_core_nanoseconds, 800_000_000);
    assert_eq!(u.memory_working_set_bytes, 10_633_216 - 3_072_000);
    assert_eq!(u.memory_rss_bytes, Some(6_537_216));
}

#[test]
fn stats_without_cpu_or_memory_are_refused() {
    assert_eq!(
        container_usage(&json(r#"{"memory_stats":{"usage":1}}"#)),
        Err(StatsError::NoCpuUsage)
    );
    // A stopped container: Docker answers with empty stats.
    assert_eq!(
        container_usage(&json(
            r#"{"cpu_stats":{"cpu_usage":{"total_usage":5}},"memory_stats":{}}"#
        )),
        Err(StatsError::NoMemoryUsage)
    );
}

fn sample(pod: &str, container: &str, cpu: u64) -> ContainerSample {
    ContainerSample {
        identity: ContainerIdentity {
            device: "pi-01".into(),
            pod_uid: format!("uid-{pod}"),
            pod_namespace: "default".into(),
            pod_name: pod.into(),
            container_name: container.into(),
            restart_count: 0,
            spec_hash: "h".into(),
            grace_period_seconds: 30,
            sandbox_id: String::new(),
            gpu_devices: Vec::new(),
        },
        started_at: 1_000,
        usage: CpuMemoryUsage {
            cpu_usage_core_nanoseconds: cpu,
            memory_working_set_bytes: 10,
            ..Default::default()
        },
    }
}

#[test]
fn a_sample_groups_containers_by_pod_in_name_order() {
    let readings = RawNodeReadings {
        proc_stat: Some(PROC_STAT.into()),
        meminfo: Some(MEMINFO.into()),
        net_dev: Some(NET_DEV.into()),
        root_filesystem: None,
        image_filesystem: None,
    };
    let stats = node_stats(
        42,
        &readings,
        vec![
            sample("web", "sidecar", 3),
            sample("api", "main", 1),
            sample("web", "app", 2),
        ],
    );
    assert_eq!(stats.sampled_at, 42);
    assert_eq!(
        stats.node.usage.cpu_usage_core_nanoseconds,
        1_220_138 * 10_000_000
    );
    assert_eq!(stats.node.started_at, Some(1_796_513_125_000));
    assert!(stats.node.network.is_some());
    let names: Vec<(&str, Vec<&str>)> = stats
        .pods
        .iter()
        .map(|p| {
            (
                p.name.as_str(),
                p.containers.iter().map(|c| c.name.as_str()).collect(),
            )
        })
        .collect();
    assert_eq!(
        names,
        vec![("api", vec!["main"]), ("web", vec!["app", "sidecar"])]
    );
    assert_eq!(stats.pods[1].pod_uid, "uid-web");
}

#[test]
fn a_device_without_proc_still_gives_a_sample() {
    let stats = node_stats(1, &RawNodeReadings::default(), vec![]);
    assert_eq!(stats.node.usage, CpuMemoryUsage::default());
    assert!(stats.pods.is_empty());
}
