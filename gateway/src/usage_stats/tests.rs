#![allow(clippy::unwrap_used)]
use std::time::{Duration, Instant};

use edge_protocol::{
    ContainerUsage, CpuMemoryUsage, DeviceId, FilesystemUsage, NetworkUsage, NodeStats, NodeUsage,
    PodUsage,
};

use super::*;

const SECOND_NS: u64 = 1_000_000_000;

/// A device sample at `at_ms` with node CPU `node_cpu` and one pod `web` whose
/// container `app` started at `started` used `app_cpu`.
fn sample(at_ms: u64, node_cpu: u64, app_cpu: u64, started: u64) -> NodeStats {
    NodeStats {
        sampled_at: at_ms,
        node: NodeUsage {
            started_at: Some(1_700_000_000_000),
            usage: CpuMemoryUsage {
                cpu_usage_core_nanoseconds: node_cpu,
                memory_working_set_bytes: 400 << 20,
                memory_usage_bytes: Some(700 << 20),
                memory_rss_bytes: Some(300 << 20),
                memory_available_bytes: Some(3700 << 20),
            },
            filesystem: Some(FilesystemUsage {
                capacity_bytes: 32 << 30,
                used_bytes: 12 << 30,
                available_bytes: 18 << 30,
            }),
            image_filesystem: Some(FilesystemUsage {
                capacity_bytes: 32 << 30,
                used_bytes: 12 << 30,
                available_bytes: 18 << 30,
            }),
            network: Some(NetworkUsage {
                rx_bytes: 1000,
                tx_bytes: 2000,
            }),
        },
        pods: vec![PodUsage {
            pod_uid: "uid-web".into(),
            namespace: "default".into(),
            name: "web".into(),
            containers: vec![
                ContainerUsage {
                    name: "app".into(),
                    started_at: started,
                    usage: CpuMemoryUsage {
                        cpu_usage_core_nanoseconds: app_cpu,
                        memory_working_set_bytes: 8 << 20,
                        memory_usage_bytes: Some(10 << 20),
                        ..Default::default()
                    },
                    rootfs_used_bytes: None,
                    logs_used_bytes: None,
                },
                ContainerUsage {
                    name: "sidecar".into(),
                    started_at: 1_700_000_100_000,
                    usage: CpuMemoryUsage {
                        cpu_usage_core_nanoseconds: 5 * SECOND_NS,
                        memory_working_set_bytes: 2 << 20,
                        ..Default::default()
                    },
                    rootfs_used_bytes: None,
                    logs_used_bytes: None,
                },
            ],
        }],
        agent: Default::default(),
    }
}

fn device() -> DeviceId {
    DeviceId::new("pi-01").unwrap()
}

const T0: u64 = 1_800_000_000_000;
const STARTED: u64 = 1_799_999_000_000;

/// Two samples 10 s apart: the node used 5 cores' worth, `app` half a core.
fn two_samples() -> DeviceSamples {
    let store = UsageStore::default();
    let now = Instant::now();
    store.record(
        &device(),
        sample(T0, 100 * SECOND_NS, 20 * SECOND_NS, STARTED),
        now,
    );
    store.record(
        &device(),
        sample(T0 + 10_000, 150 * SECOND_NS, 25 * SECOND_NS, STARTED),
        now,
    );
    store.get(&device()).unwrap()
}

#[test]
fn nano_cores_is_the_rate_between_two_readings() {
    assert_eq!(
        nano_cores(SECOND_NS, 3 * SECOND_NS, 4_000),
        Some(500_000_000)
    );
    assert_eq!(nano_cores(5, 4, 1_000), None, "a counter that went back");
    assert_eq!(nano_cores(1, 2, 0), None);
}

#[test]
fn the_interval_is_measured_from_the_last_two_samples() {
    let store = UsageStore::default();
    let now = Instant::now();
    store.record(&device(), sample(T0, 1, 1, STARTED), now);
    assert_eq!(store.get(&device()).unwrap().interval(), DEFAULT_INTERVAL);
    store.record(&device(), sample(T0 + 4_000, 2, 2, STARTED), now);
    assert_eq!(
        store.get(&device()).unwrap().interval(),
        Duration::from_secs(4)
    );
}

#[test]
fn a_sample_is_stale_when_offline_or_three_intervals_old() {
    let store = UsageStore::default();
    let t = Instant::now();
    store.record(&device(), sample(T0, 1, 1, STARTED), t);
    store.record(&device(), sample(T0 + 10_000, 2, 2, STARTED), t);
    let s = store.get(&device()).unwrap();
    assert!(s.is_fresh(true, t + Duration::from_secs(30)));
    assert!(!s.is_fresh(true, t + Duration::from_secs(31)));
    assert!(!s.is_fresh(false, t), "an offline device's sample is stale");
}

#[test]
fn a_clock_set_back_is_no_rate_base() {
    let store = UsageStore::default();
    let now = Instant::now();
    store.record(&device(), sample(T0, 10, 10, STARTED), now);
    store.record(&device(), sample(T0 - 5_000, 20, 20, STARTED), now);
    let s = store.get(&device()).unwrap();
    assert!(s.previous.is_none());
    assert_eq!(s.latest.stats.sampled_at, T0 - 5_000);
}

#[test]
fn forgotten_devices_are_pruned_at_most_once_a_minute() {
    let store = UsageStore::default();
    let t = Instant::now();
    store.record(&device(), sample(T0, 1, 1, STARTED), t);
    assert!(store.prune(|_| false, t).is_empty(), "too early");
    assert_eq!(
        store.prune(|_| false, t + Duration::from_secs(61)),
        vec![device()]
    );
    assert!(store.is_empty());
}

#[test]
fn summary_has_the_kubelet_shape_and_rates_from_two_samples() {
    let v = summary::summary("pi-01", &two_samples());
    let node = &v["node"];
    assert_eq!(node["nodeName"], "pi-01");
    assert_eq!(node["startTime"], "2023-11-14T22:13:20Z");
    assert_eq!(node["cpu"]["time"], "2027-01-15T08:00:10Z");
    assert_eq!(node["cpu"]["usageCoreNanoSeconds"], 150 * SECOND_NS);
    assert_eq!(
        node["cpu"]["usageNanoCores"],
        5 * SECOND_NS,
        "50 core-s in 10 s"
    );
    assert_eq!(node["memory"]["workingSetBytes"], 400u64 << 20);
    assert_eq!(node["memory"]["availableBytes"], 3700u64 << 20);
    assert_eq!(node["memory"]["usageBytes"], 700u64 << 20);
    assert_eq!(node["memory"]["rssBytes"], 300u64 << 20);
    assert_eq!(node["network"]["rxBytes"], 1000);
    assert_eq!(node["fs"]["capacityBytes"], 32u64 << 30);
    assert_eq!(node["runtime"]["imageFs"]["usedBytes"], 12u64 << 30);
    let pod = &v["pods"][0];
    assert_eq!(pod["podRef"]["name"], "web");
    assert_eq!(pod["podRef"]["namespace"], "default");
    assert_eq!(pod["podRef"]["uid"], "uid-web");
    assert_eq!(
        pod["startTime"], "2023-11-14T22:15:00Z",
        "the earliest container start"
    );
    let app = &pod["containers"][0];
    assert_eq!(app["name"], "app");
    assert_eq!(app["cpu"]["usageNanoCores"], SECOND_NS / 2);
    assert_eq!(app["memory"]["workingSetBytes"], 8u64 << 20);
    assert_eq!(
        pod["containers"][1]["cpu"]["usageNanoCores"], 0,
        "idle sidecar"
    );
    assert_eq!(pod["cpu"]["usageNanoCores"], SECOND_NS / 2);
    assert_eq!(pod["cpu"]["usageCoreNanoSeconds"], 30 * SECOND_NS);
    assert_eq!(pod["memory"]["workingSetBytes"], 10u64 << 20);
    assert!(app.get("rootfs").is_none(), "unknown figures are left out");
}

#[test]
fn summary_has_no_rate_after_one_sample_or_a_container_restart() {
    let store = UsageStore::default();
    let now = Instant::now();
    store.record(&device(), sample(T0, 100, 20, STARTED), now);
    let v = summary::summary("pi-01", &store.get(&device()).unwrap());
    assert!(v["node"]["cpu"].get("usageNanoCores").is_none());
    assert!(
        v["pods"][0]["containers"][0]["cpu"]
            .get("usageNanoCores")
            .is_none()
    );
    store.record(&device(), sample(T0 + 10_000, 200, 1, STARTED + 5_000), now);
    let v = summary::summary("pi-01", &store.get(&device()).unwrap());
    assert!(v["node"]["cpu"]["usageNanoCores"].is_u64());
    assert!(
        v["pods"][0]["containers"][0]["cpu"]
            .get("usageNanoCores")
            .is_none(),
        "a restarted container has no rate yet"
    );
    assert!(v["pods"][0]["cpu"].get("usageNanoCores").is_none());
}

/// `name{labels}` → (value, timestamp) of every series line.
fn series(text: &str) -> Vec<(String, f64, Option<i64>)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (name, rest) = match l.find('}') {
                Some(i) => (l[..=i].to_owned(), l[i + 1..].trim()),
                None => {
                    let (n, r) = l.split_once(' ').unwrap();
                    (n.to_owned(), r)
                }
            };
            let mut parts = rest.split_whitespace();
            let value: f64 = parts.next().unwrap().parse().unwrap();
            let ts = parts.next().map(|t| t.parse().unwrap());
            (name, value, ts)
        })
        .collect()
}

fn value(all: &[(String, f64, Option<i64>)], name: &str) -> (f64, Option<i64>) {
    let (_, v, ts) = all
        .iter()
        .find(|(n, ..)| n == name)
        .unwrap_or_else(|| panic!("no series {name} in {all:?}"));
    (*v, *ts)
}

#[test]
fn resource_metrics_are_what_metrics_server_parses() {
    let s = two_samples();
    let text = resource_metrics::render(Some(&s.latest.stats));
    let all = series(&text);
    let ts = Some(i64::try_from(T0 + 10_000).unwrap());
    assert_eq!(value(&all, "node_cpu_usage_seconds_total"), (150.0, ts));
    assert_eq!(
        value(&all, "node_memory_working_set_bytes"),
        ((400u64 << 20) as f64, ts)
    );
    let app = r#"{container="app",namespace="default",pod="web"}"#;
    assert_eq!(
        value(&all, &format!("container_cpu_usage_seconds_total{app}")),
        (25.0, ts)
    );
    assert_eq!(
        value(&all, &format!("container_memory_working_set_bytes{app}")),
        ((8u64 << 20) as f64, ts)
    );
    assert_eq!(
        value(&all, &format!("container_start_time_seconds{app}")),
        (STARTED as f64 / 1000.0, ts)
    );
    let pod = r#"{namespace="default",pod="web"}"#;
    assert_eq!(
        value(&all, &format!("pod_cpu_usage_seconds_total{pod}")),
        (30.0, ts)
    );
    assert_eq!(
        value(&all, &format!("pod_memory_working_set_bytes{pod}")),
        ((10u64 << 20) as f64, ts)
    );
    assert_eq!(value(&all, "scrape_error"), (0.0, None));
    assert_eq!(value(&all, "resource_scrape_error"), (0.0, None));
    assert!(text.contains("# TYPE node_cpu_usage_seconds_total counter\n"));
    assert!(text.contains("# TYPE container_memory_working_set_bytes gauge\n"));
}

#[test]
fn no_fresh_sample_means_no_points_and_a_scrape_error() {
    let all = series(&resource_metrics::render(None));
    let names: Vec<&str> = all.iter().map(|(n, ..)| n.as_str()).collect();
    assert_eq!(names, vec!["resource_scrape_error", "scrape_error"]);
    assert_eq!(value(&all, "scrape_error"), (1.0, None));
}

#[test]
fn label_values_are_escaped() {
    let mut s = sample(T0, 1, 1, STARTED);
    s.pods[0].name = "we\"b\\x\ny".into();
    let text = resource_metrics::render(Some(&s));
    assert!(text.contains(r#"pod="we\"b\\x\ny""#), "{text}");
}
