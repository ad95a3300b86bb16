//! Sharded gateways: three `edge-gateway` replicas (`--replica-id`) against one Mosquitto
//! share a fleet of fake devices and a real agent. One replica is killed (SIGKILL): the
//! others own its devices within one lease duration plus a resync. Another is frozen
//! (SIGSTOP) past its lease, then resumed: it must not write anything it queued before
//! (fencing). Throughout, no Node turns NotReady, no pod is restarted, and the API server
//! never sees two replicas writing one node Lease (the field manager owning its
//! `spec.renewTime`, one per replica, tells the writers apart).
//!
//! On the emulator and on the real control plane.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use edge_hil_tests::fake_device::{FakeDevice, FakeDeviceConfig};
use edge_hil_tests::prometheus_text;
use edge_hil_tests::scenario::{container_id, is_ready, node_ready, pod_manifest};
use edge_hil_tests::stack::{
    AgentBuild, BrokerKind, ClusterBackend, Gateway, GatewayOptions, STACK_LABEL, Stack,
    StackOptions, eventually,
};
use edge_protocol::DeviceId;
use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};

/// Fake devices of the test command; `EDGE_SHARD_DEVICES=N` for the failover benchmark
/// (docs/benchmarks.md).
const FAKE_DEVICES: usize = 12;

fn fake_devices() -> usize {
    std::env::var("EDGE_SHARD_DEVICES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(FAKE_DEVICES)
}
/// The replicas' Lease duration: short, so that the scenario takes seconds;
/// `EDGE_SHARD_LEASE_SECONDS=N` for the benchmark. The renew deadline is 5/8 of it, the
/// renew interval 1 s.
fn lease_duration() -> Duration {
    Duration::from_secs(
        std::env::var("EDGE_SHARD_LEASE_SECONDS")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(4),
    )
}

fn shard_timing_args() -> Vec<String> {
    let lease = lease_duration();
    vec![
        "--shard-lease-duration".to_owned(),
        format!("{}s", lease.as_secs()),
        "--shard-renew-deadline".to_owned(),
        format!("{}ms", lease.as_millis() * 5 / 8),
        "--shard-renew-interval".to_owned(),
        "1s".to_owned(),
    ]
}

/// Who wrote each node Lease, in the order the API server says.
#[derive(Debug, Default)]
struct Writers {
    /// Per node Lease: (when seen, field manager owning `spec.renewTime`).
    writes: BTreeMap<String, Vec<(Instant, String)>>,
    /// Nodes seen with Ready other than True after they were Ready once.
    not_ready: BTreeSet<String>,
    ready_once: BTreeSet<String>,
}

fn renew_time_owner(lease: &Lease) -> Option<String> {
    let entries = lease.metadata.managed_fields.as_ref()?;
    let owners: Vec<&str> = entries
        .iter()
        .filter(|e| {
            e.fields_v1
                .as_ref()
                .and_then(|f| f.0.get("f:spec"))
                .and_then(|s| s.get("f:renewTime"))
                .is_some()
        })
        .filter_map(|e| e.manager.as_deref())
        .collect();
    match owners[..] {
        [one] => Some(one.to_owned()),
        _ => None,
    }
}

/// Records node Lease writers and Node readiness of `devices` until the task is dropped.
fn watch_writers(
    client: kube::Client,
    devices: BTreeSet<String>,
    writers: Arc<Mutex<Writers>>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let ours = devices.clone();
    let w = writers.clone();
    let lease_task = tokio::spawn(async move {
        let mut s = watcher(leases, watcher::Config::default())
            .default_backoff()
            .applied_objects()
            .boxed();
        while let Some(Ok(lease)) = s.next().await {
            let name = lease.metadata.name.clone().unwrap_or_default();
            if !ours.contains(&name) {
                continue;
            }
            if let Some(owner) = renew_time_owner(&lease) {
                let mut w = w.lock().unwrap();
                let list = w.writes.entry(name).or_default();
                if list.len() < 100_000 {
                    list.push((Instant::now(), owner));
                }
            }
        }
    });
    let nodes: Api<Node> = Api::all(client);
    let node_task = tokio::spawn(async move {
        let mut s = watcher(nodes, watcher::Config::default())
            .default_backoff()
            .applied_objects()
            .boxed();
        while let Some(Ok(node)) = s.next().await {
            let name = node.metadata.name.clone().unwrap_or_default();
            if !devices.contains(&name) {
                continue;
            }
            let mut w = writers.lock().unwrap();
            match node_ready(&node).as_deref() {
                Some("True") => {
                    w.ready_once.insert(name);
                }
                _ if w.ready_once.contains(&name) => {
                    w.not_ready.insert(name);
                }
                _ => {}
            }
        }
    });
    vec![lease_task, node_task]
}

/// Two replicas wrote one node Lease at once: its writer went from A to B and back to A
/// within `window`. A hand-over changes it once, replicas joining one after the other
/// may pass it on (A to B to C), and a hand-back to a replica comes only after it
/// rejoined, more than a lease duration after it lost the device.
fn duplicate_writers(w: &Writers, window: Duration) -> Vec<String> {
    let mut found = Vec::new();
    for (lease, writes) in &w.writes {
        let switches: Vec<(Instant, &str, &str)> = writes
            .windows(2)
            .filter(|p| p[0].1 != p[1].1)
            .map(|p| (p[1].0, p[0].1.as_str(), p[1].1.as_str()))
            .collect();
        for s in switches.windows(2) {
            if s[0].1 == s[1].2 && s[1].0.duration_since(s[0].0) < window {
                found.push(format!(
                    "{lease}: {} -> {} then {} -> {} {:?} apart",
                    s[0].1,
                    s[0].2,
                    s[1].1,
                    s[1].2,
                    s[1].0.duration_since(s[0].0)
                ));
            }
        }
    }
    found
}

/// What the extra replicas logged about sharding and failures.
fn shard_log(replicas: &[Gateway]) -> String {
    let mut out = String::new();
    for (i, r) in replicas.iter().enumerate() {
        out.push_str(&format!("--- replica {} (sharding, warnings) ---\n", i + 1));
        for line in r.log().lines().filter(|l| {
            l.contains("WARN") || l.contains("replica's devices changed") || l.contains("claimed")
        }) {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

async fn metric(gw: &Gateway, name: &str) -> Result<f64> {
    let out = tokio::process::Command::new("curl")
        .args(["-sf", &gw.metrics_url()])
        .output()
        .await?;
    if !out.status.success() {
        bail!("GET {} failed", gw.metrics_url());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let samples = prometheus_text::parse(&text).map_err(|e| anyhow!("{e}"))?;
    Ok(samples
        .iter()
        .filter(|s| s.name == name)
        .map(|s| s.value)
        .sum())
}

async fn owned(gw: &Gateway) -> Result<usize> {
    Ok(metric(gw, "edge_gateway_shard_owned_devices").await? as usize)
}

fn sigstop(gw: &Gateway, stop: bool) -> Result<()> {
    let pid = gw.pid().context("replica not running")?;
    let status = std::process::Command::new("kill")
        .arg(if stop { "-STOP" } else { "-CONT" })
        .arg(pid.to_string())
        .status()?;
    if !status.success() {
        bail!("kill {pid} failed");
    }
    Ok(())
}

async fn failover(backend: ClusterBackend, tag: &str) -> Result<()> {
    let run = format!("{tag}{}", std::process::id());
    let namespace = format!("shard-{run}");
    let replica = |i: usize| format!("s{run}-{i}");
    let shard_args = |i: usize| -> Vec<String> {
        ["--replica-id", &replica(i), "--shard-namespace", &namespace]
            .iter()
            .map(|s| (*s).to_owned())
            .chain(shard_timing_args())
            .collect()
    };
    let mut options = StackOptions::fast(BrokerKind::Mosquitto).on(backend);
    options.node_lease_grace = Duration::from_secs(20);
    options.gateway_args = shard_args(0);
    let mut stack = Stack::start(options.clone()).await?;
    let client = stack.client().await?;
    // the replicas' Leases live here (replica 0 retries until it exists)
    let ns: Api<Namespace> = Api::all(client.clone());
    ns.create(
        &PostParams::default(),
        &serde_json::from_value(serde_json::json!({"metadata": {"name": namespace}}))?,
    )
    .await?;
    let mosquitto = stack.mosquitto.as_ref().context("mosquitto")?;
    let broker_url = mosquitto.url();
    let broker_port = mosquitto.port();
    let mut replicas = Vec::new();
    for i in 1..3 {
        let dir = stack.dir().join(format!("replica-{i}"));
        std::fs::create_dir_all(&dir)?;
        replicas.push(Gateway::start(
            GatewayOptions {
                kubeconfig: stack.cluster.gateway_kubeconfig_path().to_owned(),
                store_dir: dir.join("store"),
                broker_url: Some(broker_url.clone()),
                kubelet_client_ca: stack.cluster.kubelet_client_ca().map(ToOwned::to_owned),
                node_address: "127.0.0.1".to_owned(),
                device_timeout: options.device_timeout,
                node_lease_renew: options.node_lease_renew,
                extra_args: shard_args(i),
            },
            &dir,
        )?);
    }

    // the fleet: fake devices and one real agent, each with a pod
    let mut devices = Vec::new();
    let mut names = BTreeSet::new();
    for i in 0..fake_devices() {
        let id = format!("shard-{run}-{i}");
        names.insert(id.clone());
        let mut config = FakeDeviceConfig::new(DeviceId::new(&id)?, "127.0.0.1", broker_port);
        config
            .labels
            .insert(STACK_LABEL.to_owned(), stack.namespace.clone());
        devices.push(FakeDevice::start(config).await?);
    }
    let agent = format!("shard-{run}-agent");
    names.insert(agent.clone());
    stack.start_agent(&agent, &[], AgentBuild::Host)?;

    let nodes: Api<Node> = Api::all(client.clone());
    let started = Instant::now();
    eventually("every device's Node Ready", Duration::from_secs(90), || {
        let nodes = nodes.clone();
        let names = names.clone();
        async move {
            let mut missing = Vec::new();
            for n in &names {
                match nodes.get_opt(n).await {
                    Ok(Some(node)) if node_ready(&node).as_deref() == Some("True") => {}
                    _ => missing.push(n.clone()),
                }
            }
            if missing.is_empty() {
                Ok(Some(()))
            } else {
                Err(format!("not Ready: {missing:?}"))
            }
        }
    })
    .await
    .map_err(|e| anyhow!("{e}\n{}{}", stack.logs(), shard_log(&replicas)))?;
    println!(
        "all {} Nodes Ready after {:?}",
        names.len(),
        started.elapsed()
    );

    let pods: Api<Pod> = Api::namespaced(client.clone(), &stack.namespace);
    for n in &names {
        let mut pod = pod_manifest(&format!("p-{n}"), &[], true, "Always", "sleep 3600");
        pod.spec.as_mut().unwrap().node_name = Some(n.clone());
        pods.create(&PostParams::default(), &pod).await?;
    }
    let before: BTreeMap<String, String> = eventually(
        "every pod Running and Ready",
        Duration::from_secs(120),
        || {
            let pods = pods.clone();
            let want = names.len();
            async move {
                let list = pods
                    .list(&ListParams::default())
                    .await
                    .map_err(|e| e.to_string())?;
                let ready: BTreeMap<String, String> = list
                    .items
                    .iter()
                    .filter(|p| is_ready(p))
                    .filter_map(|p| Some((p.metadata.name.clone()?, container_id(p)?)))
                    .collect();
                if ready.len() == want {
                    Ok(Some(ready))
                } else {
                    Err(format!("{} of {want} ready", ready.len()))
                }
            }
        },
    )
    .await
    .map_err(|e| anyhow!("{e}\n{}{}", stack.logs(), shard_log(&replicas)))?;

    // every device owned by exactly one replica; the replicas visible as Leases
    let all: Vec<&Gateway> = std::iter::once(&stack.gateway)
        .chain(replicas.iter())
        .collect();
    let mut shares = Vec::new();
    for gw in &all {
        shares.push(owned(gw).await?);
    }
    println!("owned devices per replica: {shares:?}");
    assert_eq!(shares.iter().sum::<usize>(), names.len(), "{shares:?}");
    let leases: Api<Lease> = Api::namespaced(client.clone(), &namespace);
    let listed = leases
        .list(&ListParams::default().labels("edge-kube.io/gateway-replica"))
        .await?;
    assert_eq!(listed.items.len(), 3, "one Lease per replica");

    let writers = Arc::new(Mutex::new(Writers::default()));
    let tasks = watch_writers(client.clone(), names.clone(), writers.clone());
    tokio::time::sleep(Duration::from_secs(2)).await;

    // SIGKILL the replica with the most devices (not replica 0, the stack's own)
    let victim = if shares[1] >= shares[2] { 0 } else { 1 };
    let killed = shares[victim + 1];
    replicas[victim].kill9();
    let t_kill = Instant::now();
    let survivors: Vec<&Gateway> = std::iter::once(&stack.gateway)
        .chain(
            replicas
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != victim)
                .map(|(_, g)| g),
        )
        .collect();
    loop {
        let mut sum = 0;
        for gw in &survivors {
            sum += owned(gw).await.unwrap_or(0);
        }
        if sum == names.len() {
            break;
        }
        if t_kill.elapsed() > Duration::from_secs(30) {
            bail!(
                "after 30 s the survivors own {sum} of {}\n{}",
                names.len(),
                stack.logs()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let failover = t_kill.elapsed();
    println!("SIGKILL of a replica with {killed} devices: all owned again after {failover:?}");
    // one lease duration, one renew interval, and a resync
    assert!(
        failover < lease_duration() + Duration::from_secs(4),
        "failover took {failover:?}"
    );

    // freeze a survivor past its lease: what it had queued must never land
    let frozen = survivors.len() - 1;
    sigstop(survivors[frozen], true)?;
    tokio::time::sleep(lease_duration() * 3).await;
    sigstop(survivors[frozen], false)?;
    // it rejoins, warms up, takes its share back
    tokio::time::sleep(lease_duration() * 3).await;

    {
        let w = writers.lock().unwrap();
        let duplicates = duplicate_writers(&w, lease_duration());
        assert!(
            duplicates.is_empty(),
            "two writers of one node Lease: {duplicates:#?}"
        );
        assert!(
            w.not_ready.is_empty(),
            "Nodes turned NotReady: {:?}",
            w.not_ready
        );
        let switched: usize = w
            .writes
            .values()
            .filter(|ws| ws.windows(2).any(|p| p[0].1 != p[1].1))
            .count();
        println!(
            "node Leases that changed writer: {switched}; writes seen: {}",
            w.writes.values().map(Vec::len).sum::<usize>()
        );
        assert!(
            switched >= killed,
            "the killed replica's devices changed writer"
        );
    }
    for t in tasks {
        t.abort();
    }

    // no pod restarted: the same containers, still Ready
    let list = pods.list(&ListParams::default()).await?;
    for p in &list.items {
        let name = p.metadata.name.clone().unwrap_or_default();
        assert!(is_ready(p), "{name} not Ready after the failovers");
        assert_eq!(
            container_id(p).as_ref(),
            before.get(&name),
            "{name} restarted"
        );
    }
    for d in &devices {
        let view = d.view();
        assert!(
            view.removed.is_empty(),
            "{}: pods stopped {:?}",
            d.id(),
            view.removed
        );
    }
    assert!(
        stack
            .agent(&agent)?
            .log()
            .lines()
            .all(|l| !l.contains("restarting container"))
    );
    drop(devices);
    for mut r in replicas {
        r.kill9();
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn sharded_failover_on_the_emulator() -> Result<()> {
    failover(ClusterBackend::Emulator, "e").await
}

#[tokio::test(flavor = "multi_thread")]
async fn sharded_failover_on_the_control_plane() -> Result<()> {
    failover(ClusterBackend::ControlPlane, "c").await
}
