//! A three-node NATS cluster (Debian's `nats-server`, MQTT through JetStream) carries the
//! fleet: the gateway, two real agents (Podman) and fake devices list every node. While
//! the agents stream status changes (pods whose readiness flips every second) and pods
//! are created, the node the gateway is connected to, then an agent's, then the other
//! agent's and some fake devices' are killed (SIGKILL), each restarted before the next
//! kill (JetStream keeps its replicas on a majority). Everyone moves to another node;
//! then every pod runs, and every status report up to each agent's last sequence number
//! reached the gateway, first arrivals in order (duplicates allowed, none lost), read
//! from the gateway's "status report received" debug lines as in `fault_injection.rs`.
//!
//! Device ids are `cbroker-<run>-...`, unique per run.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use edge_hil_tests::fake_device::{FakeDevice, FakeDeviceConfig};
use edge_hil_tests::scenario::{flapping_pod, pod_manifest, wait_for};
use edge_hil_tests::stack::{
    Agent, AgentBuild, AgentOptions, Cluster, ClusterBackend, Gateway, GatewayOptions, NatsCluster,
    remove_pod_containers,
};
use edge_hil_tests::status_sequence::{
    agent_sequence, check_none_lost_in_order, gateway_received, outbox_len,
};
use edge_protocol::DeviceId;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::Api;
use kube::api::{DeleteParams, ListParams, PostParams};
use serde_json::json;

const GATEWAY_CLIENT_ID: &str = "edge-gateway";
/// The label the gateway gives every Node: the device id.
const HOSTNAME: &str = "kubernetes.io/hostname";
const FLAPPING_PER_AGENT: usize = 2;
/// Fake devices spread over the nodes; `EDGE_CBROKER_FAKE_DEVICES` for the benchmark.
fn fake_devices() -> usize {
    std::env::var("EDGE_CBROKER_FAKE_DEVICES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(6)
}

struct Run {
    // Field order is drop order: clients before the brokers they talk to.
    fakes: Vec<FakeDevice>,
    agents: Vec<(String, Agent)>,
    gateway: Gateway,
    nats: NatsCluster,
    cluster: Cluster,
    namespace: String,
    dir: Option<tempfile::TempDir>,
}

impl Run {
    fn state_dir(&self, device: &str) -> PathBuf {
        self.dir
            .as_ref()
            .map(|d| d.path().join(format!("agent-{device}")))
            .unwrap_or_default()
    }

    fn logs(&self) -> String {
        let tail = |s: String, n: usize| {
            let lines: Vec<&str> = s.lines().collect();
            lines[lines.len().saturating_sub(n)..].join("\n")
        };
        let mut out = format!("--- gateway ---\n{}\n", tail(self.gateway.log(), 60));
        for (id, a) in &self.agents {
            out += &format!("--- agent {id} ---\n{}\n", tail(a.log(), 30));
        }
        out + &self.nats.logs()
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        // The agents go first: one still running recreates containers while they are
        // removed, and an infra container removed under a joining one is left
        // half-removed by Podman 4.3, failing every later listing.
        for (_, agent) in &mut self.agents {
            agent.kill9();
        }
        remove_pod_containers(&self.namespace);
        if std::env::var_os("EDGE_E2E_KEEP").is_some()
            && let Some(dir) = self.dir.take()
        {
            eprintln!("EDGE_E2E_KEEP: run files kept in {}", dir.keep().display());
        }
    }
}

async fn start() -> Result<Run> {
    let dir = tempfile::Builder::new().prefix("edge-cbroker-").tempdir()?;
    let run = dir
        .path()
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("x")
        .trim_start_matches("edge-cbroker-")
        .to_ascii_lowercase()
        .replace(|c: char| !c.is_ascii_alphanumeric(), "");
    let nats = NatsCluster::start_plain(&dir.path().join("nats"), 3)?;
    let cluster = Cluster::start(
        ClusterBackend::Emulator,
        dir.path(),
        Duration::from_secs(30),
    )
    .await?;
    let gateway = Gateway::start(
        GatewayOptions {
            kubeconfig: cluster.gateway_kubeconfig_path().to_owned(),
            store_dir: dir.path().join("gateway-store"),
            broker_url: Some(nats.urls("mqtt", 0)),
            kubelet_client_ca: cluster.kubelet_client_ca().map(ToOwned::to_owned),
            node_address: "127.0.0.1".to_owned(),
            device_timeout: Duration::from_secs(30),
            node_lease_renew: Duration::from_secs(2),
            // The "status report received" lines are debug.
            extra_args: vec![
                "--log-filter".to_owned(),
                "info,edge_gateway::fleet=debug,edge_gateway::mqtt_link=debug".to_owned(),
            ],
        },
        dir.path(),
    )?;
    let mut agents = Vec::new();
    for (k, first) in [(0usize, 1usize), (1, 2)] {
        let device = format!("cbroker-{run}-agent{k}");
        let agent = Agent::start(
            AgentOptions {
                device_id: device.clone(),
                broker_url: nats.urls("mqtt", first),
                labels: vec![("edge-cbroker/run".to_owned(), run.clone())],
                build: AgentBuild::Host,
                heartbeat_interval: Duration::from_secs(1),
                extra_args: vec!["--reconnect-backoff-max".to_owned(), "4s".to_owned()],
            },
            dir.path(),
        )?;
        agents.push((device, agent));
    }
    let mut fakes = Vec::new();
    for k in 0..fake_devices() {
        let id = DeviceId::new(format!("cbroker-{run}-fake{k}"))?;
        let ports: Vec<u16> = (0..nats.len())
            .filter_map(|i| nats.ports((k + i) % nats.len()).map(|p| p.mqtt))
            .collect();
        let mut config = FakeDeviceConfig::new(id, "127.0.0.1", ports[0]);
        config.failover = ports[1..]
            .iter()
            .map(|p| ("127.0.0.1".to_owned(), *p))
            .collect();
        fakes.push(FakeDevice::start(config).await?);
    }
    let namespace = format!("cbroker-{run}");
    let ns: Api<Namespace> = Api::all(cluster.client().await?);
    ns.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": namespace}}))?,
    )
    .await?;
    Ok(Run {
        fakes,
        agents,
        gateway,
        nats,
        cluster,
        namespace,
        dir: Some(dir),
    })
}

fn is_running(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .is_some_and(|p| p == "Running")
}

/// How many times each client of the run connected (CONNACK): the gateway and the
/// agents from their logs, the fake devices from their view.
fn connects(r: &Run) -> Vec<(String, usize)> {
    let count = |log: String, line: &str| log.matches(line).count();
    let mut out = vec![(
        GATEWAY_CLIENT_ID.to_owned(),
        count(r.gateway.log(), "connected to the MQTT broker"),
    )];
    for (id, agent) in &r.agents {
        out.push((id.clone(), count(agent.log(), "connected to broker")));
    }
    for fake in &r.fakes {
        let view = fake.view();
        let n = if view.connected { view.connects } else { 0 };
        out.push((fake.id().to_string(), usize::try_from(n).unwrap_or(0)));
    }
    out
}

/// Kills the node `client` is connected to (waiting until it is connected), creates
/// pods while the node is down, waits until every client that was on it has connected
/// again (a new CONNACK, on another node), restarts the node. Returns (clients moved,
/// seconds until the last of them was connected again).
async fn kill_node_of(
    r: &mut Run,
    client: &str,
    create: impl AsyncFnOnce(),
) -> Result<(usize, f64)> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let victim = loop {
        if let Some(node) = r.nats.node_of(client) {
            break node;
        }
        ensure!(
            Instant::now() < deadline,
            "{client} is connected to no node\n{}",
            r.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let moved: Vec<String> = r.nats.mqtt_clients(victim)?;
    let before = connects(r);
    eprintln!(
        "killing NATS node {} (holds {client} and {} other client(s))",
        victim + 1,
        moved.len().saturating_sub(1)
    );
    r.nats.kill(victim);
    let killed_at = Instant::now();
    // Pods created while the node is down.
    create().await;
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let now = connects(r);
        let waiting: Vec<&String> = moved
            .iter()
            .filter(|c| {
                let of = |list: &[(String, usize)]| {
                    list.iter().find(|(id, _)| id == *c).map(|(_, n)| *n)
                };
                // clients of this run only (the readiness probe is gone)
                of(&before).is_some() && of(&now) <= of(&before)
            })
            .collect();
        if waiting.is_empty() {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "not connected again within 90 s: {waiting:?}\n{}",
            r.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let took = killed_at.elapsed().as_secs_f64();
    eprintln!(
        "{} client(s) of node {} connected again to the others in {took:.2} s",
        moved.len(),
        victim + 1
    );
    r.nats.restart(victim)?;
    // Give the restarted node's JetStream replicas time to catch up before the next kill.
    tokio::time::sleep(Duration::from_secs(5)).await;
    Ok((moved.len(), took))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "nats-server 2.9.10 sometimes leaves a JetStream consumer without quorum after \
            consecutive node kills (\"has NO quorum, stalled\"), and its device then gets no \
            desired set (5 of 6 runs passed after the CONNACK and back-off fixes); run it with \
            `cargo test --test clustered_broker -- --ignored`"]
async fn killing_broker_nodes_loses_no_report_and_no_pod() -> Result<()> {
    let mut r = start().await?;
    let pods: Api<Pod> = Api::namespaced(r.cluster.client().await?, &r.namespace);
    for (device, _) in &r.agents {
        for i in 0..FLAPPING_PER_AGENT {
            pods.create(
                &PostParams::default(),
                &flapping_pod(&format!("flap-{device}-{i}"), &[(HOSTNAME, device)]),
            )
            .await?;
        }
    }
    let agent_ids: Vec<String> = r.agents.iter().map(|(d, _)| d.clone()).collect();
    let fake_ids: Vec<String> = r.fakes.iter().map(|f| f.id().to_string()).collect();
    wait_for("the status streams start", Duration::from_secs(120), || {
        let log = r.gateway.log();
        agent_ids
            .iter()
            .all(|d| gateway_received(&log, d).len() >= 10)
    })
    .await
    .with_context(|| r.logs())?;

    // Kill the gateway's node, then each agent's (the fake devices are spread over all
    // three nodes, so each kill moves some of them too); a pod per device is created
    // while each node is down.
    let mut created = Vec::new();
    let mut figures = Vec::new();
    let victims = [
        GATEWAY_CLIENT_ID.to_owned(),
        agent_ids[0].clone(),
        agent_ids[1].clone(),
    ];
    for (round, victim) in victims.iter().enumerate() {
        let names: Vec<(String, String)> = fake_ids
            .iter()
            .chain(agent_ids.iter().take(if round == 0 { 2 } else { 0 }))
            .map(|d| (format!("created-{round}-{d}"), d.clone()))
            .collect();
        created.extend(names.iter().map(|(n, _)| n.clone()));
        let pods2 = pods.clone();
        let figure = kill_node_of(&mut r, victim, async move || {
            for (name, node) in &names {
                // The API server is not the broker: creations succeed during the outage.
                pods2
                    .create(
                        &PostParams::default(),
                        &pod_manifest(name, &[(HOSTNAME, node)], true, "Always", "sleep 3600"),
                    )
                    .await
                    .unwrap();
            }
        })
        .await?;
        figures.push(figure);
    }

    // Every pod created during the outages runs.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let list = pods.list(&ListParams::default()).await?;
        let pending: Vec<String> = created
            .iter()
            .filter(|n| {
                !list
                    .items
                    .iter()
                    .any(|p| p.metadata.name.as_deref() == Some(n.as_str()) && is_running(p))
            })
            .cloned()
            .collect();
        if pending.is_empty() {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "pods not Running 120 s after the node kills: {pending:?}\n{}",
            r.logs()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Stop the streams: every pod goes, and with them the status changes.
    for p in pods.list(&ListParams::default()).await?.items {
        if let Some(name) = p.metadata.name {
            pods.delete(&name, &DeleteParams::default()).await?;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while !pods.list(&ListParams::default()).await?.items.is_empty() {
        ensure!(
            Instant::now() < deadline,
            "the pods are not gone after 120 s\n{}",
            r.logs()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    for device in &agent_ids {
        let state_dir = r.state_dir(device);
        let mut last = agent_sequence(&state_dir);
        let mut quiet_since = Instant::now();
        wait_for("the agent goes quiet", Duration::from_secs(120), || {
            let now = agent_sequence(&state_dir);
            if now != last || outbox_len(&state_dir) > 0 {
                last = now;
                quiet_since = Instant::now();
            }
            quiet_since.elapsed() > Duration::from_secs(3)
        })
        .await
        .with_context(|| r.logs())?;
        let last = agent_sequence(&state_dir);
        ensure!(last > 20, "too few reports from {device}: {last}");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let received = gateway_received(&r.gateway.log(), device);
            match check_none_lost_in_order(&received, last) {
                Ok(()) => break,
                Err(e) if Instant::now() > deadline => {
                    bail!("{device}: {e}\nlast sequence {last}\n{}", r.logs())
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
        eprintln!("{device}: {last} status reports, none lost, in order");
    }
    for (moved, took) in &figures {
        eprintln!(
            "node kill: {moved} client(s) reconnected in {took:.2} s ({:.1}/s)",
            *moved as f64 / took.max(0.001)
        );
    }
    Ok(())
}
