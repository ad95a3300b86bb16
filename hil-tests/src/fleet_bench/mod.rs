//! The fleet benchmark: the real `edge-gateway` binary against N simulated devices.
//!
//! One run, for a fleet size, a broker and an API:
//! 1. the API: the emulator (in this process) or the real control plane (etcd,
//!    kube-apiserver, kube-controller-manager and kube-scheduler, started fresh for the
//!    run, the gateway under its own ServiceAccount); the gateway (a separate process,
//!    so its RSS and CPU are its own) on the embedded broker or a Mosquitto process; and
//!    N [`FakeDevice`]s (the protocol over real MQTT, an instant fake runtime);
//! 2. registration: time until all N nodes are Ready, and the CPU every process used
//!    meanwhile; then until they are all schedulable (a real API server taints new nodes
//!    not-ready until kube-controller-manager's node lifecycle controller sees them
//!    Ready: the emulator does not);
//! 3. an idle window: RSS and CPU of the gateway (and of the control plane's
//!    processes), API writes (the cluster-wide resourceVersion: the emulator's advances
//!    by one per write, as etcd's revision does) and, with Mosquitto, MQTT bytes through
//!    the broker (`$SYS/broker/bytes/*`);
//! 4. pod latency: pods created at a steady rate, each pinned to a device, timed from
//!    the create call to the watch event that shows them Running;
//! 5. gateway SIGKILL and restart: time until every node's lease is renewed again
//!    and all nodes are Ready.
//!
//! Figures are recorded, never asserted: see docs/benchmarks.md.

mod api;
mod components;
mod fleet;
mod proc_stats;
mod watch_counts;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Event, Namespace, Pod};
use kube::Api;
use kube::api::{ListParams, PostParams};
use serde::Serialize;
use serde_json::json;

use crate::stack::{
    BrokerKind, ClusterBackend, Gateway, GatewayOptions, Mosquitto, StackError, StackResult,
};

pub use api::BenchApi;
pub use components::{ComponentFigures, Sample};
pub use fleet::Fleet;
pub use proc_stats::ProcStats;
pub use watch_counts::WatchCounts;

/// What to run.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    pub devices: usize,
    pub broker: BrokerKind,
    /// The API emulator, or the real control plane (started fresh for each run).
    pub api: ClusterBackend,
    /// Pods created for the latency measurement.
    pub pods: usize,
    /// Pods created per second.
    pub pod_rate: f64,
    pub idle_window: Duration,
    pub heartbeat_interval: Duration,
    /// Devices connecting per second while the fleet comes up.
    pub connect_rate: usize,
    /// Where logs and the gateway's store go.
    pub dir: PathBuf,
}

/// The figures of one run.
#[derive(Debug, Clone, Serialize)]
pub struct BenchResult {
    pub devices: usize,
    pub broker: String,
    /// `emulator` or `control-plane`.
    pub api: String,
    /// The control plane's release (`Kubernetes v1.37.2`); none for the emulator.
    pub api_version: Option<String>,
    pub register_seconds: f64,
    /// From the first device connecting until all nodes were Ready and free of taints
    /// besides the provider's; `None` if that took longer than the registration timeout.
    pub schedulable_seconds: Option<f64>,
    /// Schedulable nodes when the pods were created (the pods go to those only).
    pub schedulable_nodes_at_pods: usize,
    pub pods: usize,
    pub pod_rate: f64,
    pub pod_running_p50_ms: f64,
    pub pod_running_p99_ms: f64,
    pub pod_running_max_ms: f64,
    /// Create call to the pod bound to its node (scheduling alone).
    pub pod_scheduled_p50_ms: f64,
    pub pod_scheduled_p99_ms: f64,
    pub gateway_rss_mib: f64,
    pub gateway_rss_kib_per_device: f64,
    /// Peak RSS of the gateway process (VmHWM) at the end of the idle window.
    pub gateway_rss_peak_mib: f64,
    pub gateway_cpu_percent_idle: f64,
    pub gateway_cpu_ms_per_device_per_min: f64,
    pub api_writes_per_sec: f64,
    pub api_writes_per_sec_per_device: f64,
    /// Bytes through the broker (in + out) per idle device per minute; Mosquitto only.
    pub mqtt_bytes_per_device_per_min: Option<f64>,
    pub restart_all_ready_seconds: f64,
    /// Gateway CPU from the first device connecting until all nodes were Ready, % of
    /// one core.
    pub gateway_cpu_percent_connect: f64,
    /// The control plane's processes; empty for the emulator (it runs in the benchmark
    /// process, with the simulated devices).
    pub components: Vec<ComponentFigures>,
}

fn err(e: impl std::fmt::Display) -> StackError {
    StackError::Other(e.to_string())
}

fn progress(msg: &str) {
    eprintln!("[fleet-bench] {msg}");
}

/// Runs one benchmark configuration end to end.
pub async fn run(config: &BenchConfig) -> StackResult<BenchResult> {
    let n = config.devices;
    std::fs::create_dir_all(&config.dir).map_err(|e| StackError::io(&config.dir, e))?;
    let api = BenchApi::start(config.api, &config.dir).await?;
    let client = api.client().await?;
    // Early, so the control plane's service account controller has made the
    // namespace's `default` ServiceAccount by the time pods are created.
    create_bench_namespace(&client).await;
    let mut mosquitto = match config.broker {
        BrokerKind::Mosquitto => Some(Mosquitto::start(&config.dir.join("mosquitto"))?),
        BrokerKind::Embedded => None,
    };
    let mut gateway = Gateway::start(
        GatewayOptions {
            kubeconfig: api.gateway_kubeconfig().to_owned(),
            store_dir: config.dir.join("gateway-store"),
            broker_url: mosquitto.as_ref().map(Mosquitto::url),
            kubelet_client_ca: Some(api.kubelet_client_ca().to_owned()),
            node_address: "127.0.0.1".to_owned(),
            device_timeout: Duration::from_secs(40),
            node_lease_renew: Duration::from_secs(10),
            extra_args: vec!["--log-filter".to_owned(), "warn".to_owned()],
        },
        &config.dir,
    )?;
    let port = gateway
        .ready()
        .mqtt_port
        .or(mosquitto.as_ref().map(Mosquitto::port))
        .ok_or_else(|| err("no broker port"))?;
    let counts = WatchCounts::start(client.clone());
    let components = api.component_pids();
    let with_gateway = |gateway: &Gateway| -> StackResult<Vec<(String, u32)>> {
        let pid = gateway.pid().ok_or_else(|| err("gateway not running"))?;
        let mut pids = components.clone();
        pids.push((GATEWAY.to_owned(), pid));
        Ok(pids)
    };
    let pids = with_gateway(&gateway)?;
    let monitor = components::spawn_monitor(pids.clone(), counts.clone(), n, MONITOR_PERIOD);

    progress(&format!("{n} devices connecting to 127.0.0.1:{port}"));
    let connect0 = Sample::take(&pids);
    let t0 = Instant::now();
    let fleet = Fleet::connect(n, port, config.heartbeat_interval, config.connect_rate).await?;
    let register_timeout = match config.api {
        ClusterBackend::Emulator => 120 + n as u64 / 20,
        ClusterBackend::ControlPlane => 300 + n as u64 / 10,
    };
    counts
        .wait("nodes Ready", Duration::from_secs(register_timeout), |c| {
            c.ready_nodes >= n
        })
        .await?;
    let connect1 = Sample::take(&pids);
    let register_seconds = t0.elapsed().as_secs_f64();
    progress(&format!("all {n} nodes Ready in {register_seconds:.1} s"));
    let schedulable_seconds = match counts
        .wait(
            "nodes schedulable",
            // kube-controller-manager untaints a few nodes a second (its API client's
            // default rate limit): allow for that.
            Duration::from_secs(300 + n as u64 / 4).saturating_sub(t0.elapsed()),
            |c| c.schedulable_nodes >= n,
        )
        .await
    {
        Ok(()) => {
            let s = t0.elapsed().as_secs_f64();
            progress(&format!("all {n} nodes schedulable in {s:.1} s"));
            Some(s)
        }
        Err(e) => {
            progress(&format!(
                "{e}; going on, the pods go to the schedulable nodes only"
            ));
            None
        }
    };

    // Let the registration burst settle, then measure an idle window.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let rv0 = current_resource_version(&client).await?;
    let bytes0 = match &mosquitto {
        Some(m) => Some(m.sys_bytes().await?),
        None => None,
    };
    let idle0 = Sample::take(&pids);
    progress(&format!(
        "idle window of {} s",
        config.idle_window.as_secs()
    ));
    tokio::time::sleep(config.idle_window).await;
    let idle1 = Sample::take(&pids);
    let rv1 = current_resource_version(&client).await?;
    let bytes1 = match &mosquitto {
        Some(m) => Some(m.sys_bytes().await?),
        None => None,
    };
    let window = idle1.elapsed_since(&idle0);
    let api_writes_per_sec = (rv1.saturating_sub(rv0)) as f64 / window;
    let gateway_stats = idle1
        .get(GATEWAY)
        .zip(idle0.get(GATEWAY))
        .ok_or_else(|| err("gateway not running"))?;
    let cpu_seconds = gateway_stats.0.cpu_seconds - gateway_stats.1.cpu_seconds;
    let gateway_rss_kib = gateway_stats.0.rss_kib;
    let gateway_hwm_kib = gateway_stats.0.hwm_kib;
    let mqtt_bytes_per_device_per_min = match (bytes0, bytes1) {
        (Some(a), Some(b)) => Some((b.saturating_sub(a)) as f64 / n as f64 / (window / 60.0)),
        _ => None,
    };
    // The idle figures now, in case a later phase fails.
    progress(&format!(
        "idle: {api_writes_per_sec:.0} API writes/s, gateway {:.1}% of a core, {:.0} MiB",
        100.0 * cpu_seconds / window,
        gateway_rss_kib as f64 / 1024.0
    ));

    progress(&format!("{} pods at {}/s", config.pods, config.pod_rate));
    api.wait_pods_allowed(&client, BENCH_NAMESPACE).await?;
    let targets = if counts.node_counts().1 >= n {
        (0..fleet.len()).map(|i| fleet.device_name(i)).collect()
    } else {
        counts.snapshot().schedulable_node_names()
    };
    let schedulable_nodes_at_pods = targets.len();
    let latencies = pod_latencies(&client, &counts, config, &targets).await?;
    let scheduled = counts.snapshot().pod_scheduled_ms;
    report_warning_events(&client).await;

    progress("gateway SIGKILL and restart");
    drop(monitor);
    let restart_at = jiff::Timestamp::now();
    let r0 = Instant::now();
    gateway.restart()?;
    let monitor =
        components::spawn_monitor(with_gateway(&gateway)?, counts.clone(), n, MONITOR_PERIOD);
    counts
        .wait(
            "leases renewed after restart",
            Duration::from_secs(300),
            |c| c.leases_renewed_since(restart_at) >= n && c.ready_nodes >= n,
        )
        .await?;
    let restart_all_ready_seconds = r0.elapsed().as_secs_f64();
    drop(monitor);

    let result = BenchResult {
        devices: n,
        broker: match config.broker {
            BrokerKind::Embedded => "embedded".to_owned(),
            BrokerKind::Mosquitto => "mosquitto".to_owned(),
        },
        api: api.label().to_owned(),
        api_version: api.version(),
        register_seconds,
        schedulable_seconds,
        schedulable_nodes_at_pods,
        pods: latencies.len(),
        pod_rate: config.pod_rate,
        pod_running_p50_ms: percentile(&latencies, 0.50),
        pod_running_p99_ms: percentile(&latencies, 0.99),
        pod_running_max_ms: percentile(&latencies, 1.0),
        pod_scheduled_p50_ms: percentile(&scheduled, 0.50),
        pod_scheduled_p99_ms: percentile(&scheduled, 0.99),
        gateway_rss_mib: gateway_rss_kib as f64 / 1024.0,
        gateway_rss_kib_per_device: gateway_rss_kib as f64 / n as f64,
        gateway_rss_peak_mib: gateway_hwm_kib as f64 / 1024.0,
        gateway_cpu_percent_idle: 100.0 * cpu_seconds / window,
        gateway_cpu_ms_per_device_per_min: 1000.0 * cpu_seconds / n as f64 / (window / 60.0),
        api_writes_per_sec,
        api_writes_per_sec_per_device: api_writes_per_sec / n as f64,
        mqtt_bytes_per_device_per_min,
        restart_all_ready_seconds,
        gateway_cpu_percent_connect: connect1
            .cpu_percent_since(&connect0, GATEWAY)
            .unwrap_or(f64::NAN),
        components: components::component_figures(
            &components,
            (&connect0, &connect1),
            (&idle0, &idle1),
        ),
    };
    drop(fleet);
    gateway.kill9();
    if let Some(m) = mosquitto.as_mut() {
        m.stop();
    }
    api.shutdown().await;
    Ok(result)
}

/// Name of the gateway process in samples.
const GATEWAY: &str = "gateway";
const BENCH_NAMESPACE: &str = "bench";
/// How often a progress line with every process's CPU and RSS is printed.
const MONITOR_PERIOD: Duration = Duration::from_secs(15);

async fn create_bench_namespace(client: &kube::Client) {
    let ns: Api<Namespace> = Api::all(client.clone());
    if let Ok(body) = serde_json::from_value(json!({"metadata": {"name": BENCH_NAMESPACE}})) {
        // Already there is fine.
        let _ = ns.create(&PostParams::default(), &body).await;
    }
}

/// The current cluster-wide resourceVersion: the emulator's, or etcd's revision behind
/// a consistent list (both advance by one per write).
async fn current_resource_version(client: &kube::Client) -> StackResult<u64> {
    let ns: Api<Namespace> = Api::all(client.clone());
    let list = ns
        .list_metadata(&ListParams::default().limit(1))
        .await
        .map_err(err)?;
    list.metadata
        .resource_version
        .as_deref()
        .and_then(|rv| rv.parse().ok())
        .ok_or_else(|| err("list without a numeric resourceVersion"))
}

/// Creates pods at the configured rate, each pinned to one of `targets` (node names) in
/// turn, and returns how long each took from its create call to the watch event that
/// showed it Running (ms).
async fn pod_latencies(
    client: &kube::Client,
    counts: &WatchCounts,
    config: &BenchConfig,
    targets: &[String],
) -> StackResult<Vec<f64>> {
    if targets.is_empty() {
        return Err(err("no schedulable node to put the benchmark pods on"));
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), BENCH_NAMESPACE);
    let interval = Duration::from_secs_f64(1.0 / config.pod_rate.max(0.1));
    let mut tick = tokio::time::interval(interval);
    for i in 0..config.pods {
        tick.tick().await;
        let device = &targets[i % targets.len()];
        let name = format!("bench-{i}");
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {
                "nodeSelector": {"kubernetes.io/hostname": device},
                "tolerations": [{"key": "virtual-kubelet.io/provider", "operator": "Exists"}],
                "containers": [{"name": "app", "image": "localhost/busybox:test",
                                "command": ["sleep", "3600"]}]
            }
        }))
        .map_err(err)?;
        counts.mark_created(&name);
        create_pod(&pods, &pod).await?;
    }
    counts
        .wait("bench pods Running", Duration::from_secs(120), |c| {
            c.pod_latencies_ms.len() >= config.pods
        })
        .await?;
    Ok(counts.snapshot().pod_latencies_ms)
}

/// Prints the Warning events of the bench namespace by reason and message, numbers
/// replaced by `#` (e.g. the scheduler's FailedScheduling), so slow pods have their
/// explanation in the output.
async fn report_warning_events(client: &kube::Client) {
    let events: Api<Event> = Api::namespaced(client.clone(), BENCH_NAMESPACE);
    let Ok(list) = events.list(&ListParams::default()).await else {
        return;
    };
    let mut by_message: std::collections::BTreeMap<String, i32> = Default::default();
    for e in list.items {
        if e.type_.as_deref() == Some("Warning") {
            // Numbers out, so "0/1000 nodes are available: 232 node(s) ..." messages
            // group together.
            let message = without_numbers(&e.message.unwrap_or_default());
            let key = format!("{}: {message}", e.reason.unwrap_or_default());
            *by_message.entry(key).or_default() += e.count.unwrap_or(1);
        }
    }
    for (message, count) in by_message {
        progress(&format!("{count} x Warning {message}"));
    }
}

/// `text` with every run of digits replaced by `#`.
fn without_numbers(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if !c.is_ascii_digit() {
            out.push(c);
        } else if !out.ends_with('#') {
            out.push('#');
        }
    }
    out
}

/// Creates a pod, retrying a few times what a busy API server may answer (429, 5xx);
/// a pod an earlier attempt created counts.
async fn create_pod(pods: &Api<Pod>, pod: &Pod) -> StackResult<()> {
    let mut attempt = 0;
    loop {
        match pods.create(&PostParams::default(), pod).await {
            Ok(_) => return Ok(()),
            Err(kube::Error::Api(e)) if e.code == 409 => return Ok(()),
            Err(kube::Error::Api(e)) if (e.code == 429 || e.code >= 500) && attempt < 5 => {
                attempt += 1;
                progress(&format!("pod create answered {}: retrying", e.code));
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => return Err(err(e)),
        }
    }
}

/// Nearest-rank percentile of unsorted samples (`q` in 0..=1).
pub fn percentile(samples: &[f64], q: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn nearest_rank_percentiles() {
        let s: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&s, 0.5), 50.0);
        assert_eq!(percentile(&s, 0.99), 99.0);
        assert_eq!(percentile(&s, 1.0), 100.0);
        assert_eq!(percentile(&[3.0, 1.0, 2.0], 0.5), 2.0);
        assert!(percentile(&[], 0.5).is_nan());
    }

    #[test]
    fn numbers_out_of_event_messages() {
        assert_eq!(
            super::without_numbers("0/1000 nodes are available: 232 node(s)"),
            "#/# nodes are available: # node(s)"
        );
    }
}
