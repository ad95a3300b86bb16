//! Fault injection: "nothing lost" under connection cuts, on both brokers.
//!
//! A real agent (Podman) streams status changes (pods whose readiness flips every
//! second) to the real gateway through a [`FaultProxy`] between agent and broker and, for
//! Mosquitto, another between gateway and broker. During the stream the proxies cut
//! connections right after forwarding the Nth PUBACK (seeded random sides, directions
//! and N; the seed is printed, `EDGE_FAULT_SEED` replays it, `EDGE_FAULT_CUTS` sets how
//! many: 12 in the test command, 24 and more for the runs in docs/reliability.md). Half the faults are a double cut around a backlog: forwarding stalls for a few
//! seconds (the agent's outbox fills), resumes with the client's packets delayed by
//! 30 ms, is cut with the Nth PUBACK (PUBACK and FIN in one segment) and again 3 ms
//! after the Mth while the backlog drains on the next connection. Then every report up to the agent's last sequence number (its
//! `store/sequence`) must have arrived at the gateway, first arrivals in order
//! (duplicates allowed, none lost). The gateway's arrivals are read from its debug log
//! line "status report received".
//!
//! The embedded broker runs inside the gateway, so only the agent side is cut there.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use edge_hil_tests::fault_proxy::{Direction, FaultProxy};
use edge_hil_tests::scenario::{flapping_pod, wait_for};
use edge_hil_tests::stack::{
    Agent, AgentBuild, AgentOptions, Cluster, ClusterBackend, Gateway, GatewayOptions, Mosquitto,
};
use edge_hil_tests::status_sequence::{
    agent_sequence, check_none_lost_in_order, gateway_received, outbox_len,
};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::Api;
use kube::api::{DeleteParams, ListParams, PostParams};
use serde_json::json;

const LABEL: &str = "edge-fault/run";
const PODS: usize = 3;

/// splitmix64: a small seeded generator, so a failing run can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn seed() -> u64 {
    std::env::var("EDGE_FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        })
}

fn cuts() -> usize {
    std::env::var("EDGE_FAULT_CUTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(12)
}

/// Removes the run's containers from Podman, whatever happens.
struct ContainerCleanup(String);

impl Drop for ContainerCleanup {
    fn drop(&mut self) {
        edge_hil_tests::stack::remove_pod_containers(&self.0);
    }
}

struct Run {
    dir: Option<tempfile::TempDir>,
    cluster: Cluster,
    _mosquitto: Option<Mosquitto>,
    gateway: Gateway,
    agent: Agent,
    state_dir: PathBuf,
    agent_proxy: FaultProxy,
    gateway_proxy: Option<FaultProxy>,
    namespace: String,
    run: String,
    device: String,
}

impl Run {
    fn logs(&self) -> String {
        let tail = |s: String| {
            let lines: Vec<&str> = s.lines().collect();
            lines[lines.len().saturating_sub(60)..].join("\n")
        };
        format!(
            "--- gateway ---\n{}\n--- agent ---\n{}",
            tail(self.gateway.log()),
            tail(self.agent.log())
        )
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        if std::env::var_os("EDGE_E2E_KEEP").is_some()
            && let Some(dir) = self.dir.take()
        {
            eprintln!("EDGE_E2E_KEEP: run files kept in {}", dir.keep().display());
        }
    }
}

async fn start(mosquitto: bool) -> Result<Run> {
    let dir = tempfile::Builder::new().prefix("edge-fault-").tempdir()?;
    let run = dir
        .path()
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("x")
        .trim_start_matches("edge-fault-")
        .to_ascii_lowercase()
        .replace(|c: char| !c.is_ascii_alphanumeric(), "");
    let cluster = Cluster::start(
        ClusterBackend::Emulator,
        dir.path(),
        Duration::from_secs(30),
    )
    .await?;
    let broker = match mosquitto {
        true => Some(Mosquitto::start(&dir.path().join("mosquitto"))?),
        false => None,
    };
    let gateway_proxy = match &broker {
        Some(m) => Some(FaultProxy::start(([127, 0, 0, 1], m.port()).into()).await?),
        None => None,
    };
    let gateway = Gateway::start(
        GatewayOptions {
            kubeconfig: cluster.gateway_kubeconfig_path().to_owned(),
            store_dir: dir.path().join("gateway-store"),
            broker_url: gateway_proxy.as_ref().map(FaultProxy::url),
            kubelet_client_ca: cluster.kubelet_client_ca().map(ToOwned::to_owned),
            node_address: "127.0.0.1".to_owned(),
            device_timeout: Duration::from_secs(30),
            node_lease_renew: Duration::from_secs(2),
            // The "status report received" lines are debug.
            extra_args: vec![
                "--log-filter".to_owned(),
                "info,edge_gateway::fleet=debug".to_owned(),
            ],
        },
        dir.path(),
    )?;
    let broker_port = match &broker {
        Some(m) => m.port(),
        None => gateway
            .ready()
            .mqtt_port
            .context("the gateway reports no embedded broker port")?,
    };
    let agent_proxy = FaultProxy::start(([127, 0, 0, 1], broker_port).into()).await?;
    // Both tests of this file run at once on the one Podman: each its own device.
    let device = format!("fault-{run}");
    let agent = Agent::start(
        AgentOptions {
            device_id: device.clone(),
            broker_url: agent_proxy.url(),
            labels: vec![(LABEL.to_owned(), run.clone())],
            build: AgentBuild::Host,
            heartbeat_interval: Duration::from_secs(1),
            extra_args: Vec::new(),
        },
        dir.path(),
    )?;
    let namespace = format!("fault-{run}");
    let ns: Api<Namespace> = Api::all(cluster.client().await?);
    ns.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": namespace}}))?,
    )
    .await?;
    Ok(Run {
        state_dir: dir.path().join(format!("agent-{device}")),
        device,
        dir: Some(dir),
        cluster,
        _mosquitto: broker,
        gateway,
        agent,
        agent_proxy,
        gateway_proxy,
        namespace,
        run,
    })
}

async fn stream_with_cuts(r: &Run) -> Result<()> {
    let _cleanup = ContainerCleanup(r.namespace.clone());
    let pods: Api<Pod> = Api::namespaced(r.cluster.client().await?, &r.namespace);
    for i in 0..PODS {
        pods.create(
            &PostParams::default(),
            &flapping_pod(&format!("flap-{i}"), &[(LABEL, &r.run)]),
        )
        .await?;
    }
    // The stream runs: several reports already arrived.
    wait_for("the status stream starts", Duration::from_secs(90), || {
        gateway_received(&r.gateway.log(), &r.device).len() >= 10
    })
    .await
    .with_context(|| r.logs())?;

    let seed = seed();
    let count = cuts();
    eprintln!("fault injection: seed {seed} (EDGE_FAULT_SEED={seed} replays it), {count} cuts");
    let mut rng = Rng(seed);
    for i in 0..count {
        let gateway_side = r.gateway_proxy.is_some() && rng.below(2) == 1;
        let proxy = match (&r.gateway_proxy, gateway_side) {
            (Some(p), true) => p,
            _ => &r.agent_proxy,
        };
        // Mostly the PUBACKs of the reports: to the agent on its side, from the
        // gateway on the gateway's side; sometimes the other direction.
        let usual = if gateway_side {
            Direction::ToBroker
        } else {
            Direction::ToClient
        };
        let direction = match rng.below(4) {
            0 if usual == Direction::ToClient => Direction::ToBroker,
            0 => Direction::ToClient,
            _ => usual,
        };
        let n = 1 + rng.below(3);
        // Half the faults are a double cut around a backlog: forwarding stalls for a
        // while (the outbox fills), then resumes with the client's packets slowed down so
        // the cuts find publishes in transit.
        let backlog = rng.below(2) == 1;
        let before = proxy.stats().cuts;
        eprintln!(
            "cut {i}: {} side, after PUBACK #{n} {direction:?}{}",
            if gateway_side { "gateway" } else { "agent" },
            if backlog {
                ", while a backlog drains"
            } else {
                ""
            }
        );
        if backlog {
            let stall = Duration::from_millis(3000 + rng.below(2000));
            proxy.stall(stall);
            tokio::time::sleep(stall).await;
            proxy.set_delay(Direction::ToBroker, Duration::from_millis(30));
        }
        proxy.cut_after_puback(direction, n);
        let waited = wait_for("the armed cut", Duration::from_secs(10), || {
            proxy.stats().cuts > before
        })
        .await;
        if waited.is_err() {
            // Few PUBACKs in that direction (desired sets are rare): cut outright.
            proxy.disarm();
            proxy.cut_now();
        } else if backlog {
            // And again while what piled up drains after the reconnect.
            // Past the connect-time messages (state, hello, resync): into the backlog.
            let m = 5 + rng.below(6);
            eprintln!("cut {i}b: again after PUBACK #{m} {direction:?}");
            let before = proxy.stats().cuts;
            // This time the client acts on the PUBACK before the connection drops.
            proxy.cut_shortly_after_puback(direction, m, Duration::from_millis(3));
            if wait_for("the second cut", Duration::from_secs(20), || {
                proxy.stats().cuts > before
            })
            .await
            .is_err()
            {
                proxy.disarm();
            }
        }
        proxy.set_delay(Direction::ToBroker, Duration::ZERO);
        tokio::time::sleep(Duration::from_millis(200 + rng.below(1300))).await;
    }

    // Stop the stream: the pods go, and with them the status changes.
    for i in 0..PODS {
        pods.delete(&format!("flap-{i}"), &DeleteParams::default())
            .await?;
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
    // Quiet: the agent's outbox is empty and its sequence stays put.
    let mut last = agent_sequence(&r.state_dir);
    let mut quiet_since = Instant::now();
    wait_for("the agent goes quiet", Duration::from_secs(120), || {
        let now = agent_sequence(&r.state_dir);
        if now != last || outbox_len(&r.state_dir) > 0 {
            last = now;
            quiet_since = Instant::now();
        }
        quiet_since.elapsed() > Duration::from_secs(3)
    })
    .await
    .with_context(|| r.logs())?;
    let last = agent_sequence(&r.state_dir);
    ensure!(last > 20, "too few reports for a meaningful run: {last}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let received = gateway_received(&r.gateway.log(), &r.device);
        match check_none_lost_in_order(&received, last) {
            Ok(()) => break,
            Err(e) if Instant::now() > deadline => {
                bail!(
                    "seed {seed}: {e}\nagent's last sequence {last}; proxies: agent {:?}, gateway {:?}\n{}",
                    r.agent_proxy.stats(),
                    r.gateway_proxy.as_ref().map(FaultProxy::stats),
                    r.logs()
                );
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    let stats = r.agent_proxy.stats();
    eprintln!(
        "fault injection: {last} reports, none lost; agent proxy {stats:?}, gateway proxy {:?}",
        r.gateway_proxy.as_ref().map(FaultProxy::stats)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_cuts_on_agent_and_gateway_sides_lose_no_report() -> Result<()> {
    let run = start(true).await?;
    stream_with_cuts(&run).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_broker_cuts_on_the_agent_side_lose_no_report() -> Result<()> {
    let run = start(false).await?;
    stream_with_cuts(&run).await
}
