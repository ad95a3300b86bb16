//! The fleet benchmark: the real `edge-gateway` binary against N simulated devices.
//!
//! One run, for a fleet size and a broker:
//! 1. the API emulator (in this process), the gateway (a separate process, so its RSS
//!    and CPU are its own) on the embedded broker or a Mosquitto process, and N
//!    [`FakeDevice`]s (the protocol over real MQTT, an instant fake runtime);
//! 2. registration: time until all N nodes are Ready;
//! 3. an idle window: gateway RSS and CPU, API writes (the emulator's cluster-wide
//!    resourceVersion advances by one per write, as etcd's revision does) and, with
//!    Mosquitto, MQTT bytes through the broker (`$SYS/broker/bytes/*`);
//! 4. pod latency: pods created at a steady rate, each pinned to a device, timed from
//!    the create call to the watch event that shows them Running;
//! 5. gateway SIGKILL and restart: time until every node's lease is renewed again
//!    and all nodes are Ready.
//!
//! Figures are recorded, never asserted: see docs/benchmarks.md.

mod fleet;
mod proc_stats;
mod watch_counts;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::Api;
use kube::api::{ListParams, PostParams};
use serde::Serialize;
use serde_json::json;

use crate::apiserver::{ApiServer, ApiServerConfig};
use crate::stack::{BrokerKind, Gateway, GatewayOptions, Mosquitto, StackError, StackResult};

pub use fleet::Fleet;
pub use proc_stats::ProcStats;
pub use watch_counts::WatchCounts;

/// What to run.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    pub devices: usize,
    pub broker: BrokerKind,
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
    pub register_seconds: f64,
    pub pods: usize,
    pub pod_rate: f64,
    pub pod_running_p50_ms: f64,
    pub pod_running_p99_ms: f64,
    pub pod_running_max_ms: f64,
    pub gateway_rss_mib: f64,
    pub gateway_rss_kib_per_device: f64,
    pub gateway_cpu_percent_idle: f64,
    pub gateway_cpu_ms_per_device_per_min: f64,
    pub api_writes_per_sec: f64,
    pub api_writes_per_sec_per_device: f64,
    /// Bytes through the broker (in + out) per idle device per minute; Mosquitto only.
    pub mqtt_bytes_per_device_per_min: Option<f64>,
    pub restart_all_ready_seconds: f64,
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
    let api = ApiServer::start(ApiServerConfig::new(config.dir.join("apiserver")))
        .await
        .map_err(err)?;
    let client = api.client().await.map_err(err)?;
    let mut mosquitto = match config.broker {
        BrokerKind::Mosquitto => Some(Mosquitto::start(&config.dir.join("mosquitto"))?),
        BrokerKind::Embedded => None,
    };
    let mut gateway = Gateway::start(
        GatewayOptions {
            kubeconfig: api.kubeconfig_path().to_owned(),
            store_dir: config.dir.join("gateway-store"),
            broker_url: mosquitto.as_ref().map(Mosquitto::url),
            kubelet_client_ca: Some(api.kubelet_client_ca_path().to_owned()),
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

    progress(&format!("{n} devices connecting to 127.0.0.1:{port}"));
    let t0 = Instant::now();
    let fleet = Fleet::connect(n, port, config.heartbeat_interval, config.connect_rate).await?;
    counts
        .wait(
            "nodes Ready",
            Duration::from_secs(120 + n as u64 / 20),
            |c| c.ready_nodes >= n,
        )
        .await?;
    let register_seconds = t0.elapsed().as_secs_f64();
    progress(&format!("all {n} nodes Ready in {register_seconds:.1} s"));

    // Let the registration burst settle, then measure an idle window.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let pid = gateway.pid().ok_or_else(|| err("gateway not running"))?;
    let rv0 = current_resource_version(&client).await?;
    let bytes0 = match &mosquitto {
        Some(m) => Some(m.sys_bytes().await?),
        None => None,
    };
    let cpu0 = ProcStats::read(pid)?;
    let w0 = Instant::now();
    progress(&format!(
        "idle window of {} s",
        config.idle_window.as_secs()
    ));
    tokio::time::sleep(config.idle_window).await;
    let cpu1 = ProcStats::read(pid)?;
    let rv1 = current_resource_version(&client).await?;
    let bytes1 = match &mosquitto {
        Some(m) => Some(m.sys_bytes().await?),
        None => None,
    };
    let window = w0.elapsed().as_secs_f64();
    let api_writes_per_sec = (rv1.saturating_sub(rv0)) as f64 / window;
    let cpu_seconds = cpu1.cpu_seconds - cpu0.cpu_seconds;
    let mqtt_bytes_per_device_per_min = match (bytes0, bytes1) {
        (Some(a), Some(b)) => Some((b.saturating_sub(a)) as f64 / n as f64 / (window / 60.0)),
        _ => None,
    };

    progress(&format!("{} pods at {}/s", config.pods, config.pod_rate));
    let latencies = pod_latencies(&client, &counts, config, &fleet).await?;

    progress("gateway SIGKILL and restart");
    let restart_at = jiff::Timestamp::now();
    let r0 = Instant::now();
    gateway.restart()?;
    counts
        .wait(
            "leases renewed after restart",
            Duration::from_secs(300),
            |c| c.leases_renewed_since(restart_at) >= n && c.ready_nodes >= n,
        )
        .await?;
    let restart_all_ready_seconds = r0.elapsed().as_secs_f64();

    drop(fleet);
    gateway.kill9();
    if let Some(m) = mosquitto.as_mut() {
        m.stop();
    }
    api.shutdown().await;

    Ok(BenchResult {
        devices: n,
        broker: match config.broker {
            BrokerKind::Embedded => "embedded".to_owned(),
            BrokerKind::Mosquitto => "mosquitto".to_owned(),
        },
        register_seconds,
        pods: latencies.len(),
        pod_rate: config.pod_rate,
        pod_running_p50_ms: percentile(&latencies, 0.50),
        pod_running_p99_ms: percentile(&latencies, 0.99),
        pod_running_max_ms: percentile(&latencies, 1.0),
        gateway_rss_mib: cpu1.rss_kib as f64 / 1024.0,
        gateway_rss_kib_per_device: cpu1.rss_kib as f64 / n as f64,
        gateway_cpu_percent_idle: 100.0 * cpu_seconds / window,
        gateway_cpu_ms_per_device_per_min: 1000.0 * cpu_seconds / n as f64 / (window / 60.0),
        api_writes_per_sec,
        api_writes_per_sec_per_device: api_writes_per_sec / n as f64,
        mqtt_bytes_per_device_per_min,
        restart_all_ready_seconds,
    })
}

/// The emulator's current cluster-wide resourceVersion (advances by one per write).
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

/// Creates pods at the configured rate, each pinned to one device, and returns how long
/// each took from its create call to the watch event that showed it Running (ms).
async fn pod_latencies(
    client: &kube::Client,
    counts: &WatchCounts,
    config: &BenchConfig,
    fleet: &Fleet,
) -> StackResult<Vec<f64>> {
    let ns: Api<Namespace> = Api::all(client.clone());
    let body = serde_json::from_value(json!({"metadata": {"name": "bench"}})).map_err(err)?;
    let _ = ns.create(&PostParams::default(), &body).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "bench");
    let interval = Duration::from_secs_f64(1.0 / config.pod_rate.max(0.1));
    let mut tick = tokio::time::interval(interval);
    for i in 0..config.pods {
        tick.tick().await;
        let device = fleet.device_name(i % fleet.len());
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
        pods.create(&PostParams::default(), &pod)
            .await
            .map_err(err)?;
    }
    counts
        .wait("bench pods Running", Duration::from_secs(120), |c| {
            c.pod_latencies_ms.len() >= config.pods
        })
        .await?;
    Ok(counts.snapshot().pod_latencies_ms)
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
}
