//! The agent binary against a real Mosquitto broker and Podman: broker restart mid-run
//! with changes made offline delivered in order, agent kill -9 and restart with
//! containers adopted (ids unchanged) and pods kept running with no broker, probes.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use edge_protocol::{HttpHeader, PodSpec, Probe, ProbeHandler};

const T: Duration = Duration::from_secs(40);

/// Highest restart count among the pod's containers on Podman (from the names).
fn podman_max_restart(uid: &str) -> u32 {
    podman_containers(uid)
        .iter()
        .filter_map(|(_, name, _)| name.rsplit('_').next()?.parse().ok())
        .max()
        .unwrap_or(0)
}

/// Status report sequences must arrive in order with none missing (duplicates from
/// QoS 1 redelivery are allowed).
fn assert_in_order_none_lost(seqs: &[u64]) {
    assert!(!seqs.is_empty());
    let mut last = seqs[0];
    for &s in &seqs[1..] {
        if s <= last {
            continue; // a redelivered duplicate
        }
        assert_eq!(s, last + 1, "report sequence gap after {last}: {seqs:?}");
        last = s;
    }
}

/// Waits until the agent's outbox is empty: everything it queued reached the broker.
async fn outbox_drained(agent: &AgentProcess) {
    let dir = agent.state_dir.join("store/outbox");
    wait_until(T, "agent outbox drained", || {
        std::fs::read_dir(&dir)
            .map(|d| d.count() == 0)
            .unwrap_or(false)
    })
    .await;
}

/// The agent's last assigned report sequence (its `store/sequence`).
fn agent_sequence(agent: &AgentProcess) -> u64 {
    std::fs::read_to_string(agent.state_dir.join("store/sequence"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// Waits until the gateway received every report the agent numbered, `1..=` its
/// current sequence, first arrivals in order. A deleted outbox file proves nothing:
/// only what the gateway received counts.
async fn wait_none_lost_in_order(gw: &TestGateway, agent: &AgentProcess, broker: &Mosquitto) {
    let deadline = std::time::Instant::now() + T;
    loop {
        let last = agent_sequence(agent);
        let seqs = gw.report_sequences();
        let mut seen = seqs.clone();
        seen.sort_unstable();
        seen.dedup();
        if last > 0
            && seen.first() == Some(&1)
            && seen.len() as u64 >= last
            && seen.windows(2).all(|w| w[1] == w[0] + 1)
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "status reports lost: the agent numbered 1..={last}, the gateway received {seqs:?}\n\
             ---- mosquitto log ----\n{}",
            broker.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_in_order_none_lost(&gw.report_sequences());
}

fn flaky_and_steady(tag: &str) -> (PodSpec, PodSpec) {
    let steady = busybox_pod(
        &unique_uid(&format!("{tag}-steady")),
        "steady",
        "exec sleep 1000",
    );
    let flaky = busybox_pod(
        &unique_uid(&format!("{tag}-flaky")),
        "flaky",
        "sleep 1; exit 1",
    );
    (steady, flaky)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_restart_mid_run_delivers_offline_changes_in_order() {
    let mut broker = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    let device = "mq-restart-1";
    let gw = TestGateway::connect(broker.port, device).await;
    let agent = AgentProcess::start(device, broker.port, dir.path());
    gw.wait_agent_online().await;
    let (steady, flaky) = flaky_and_steady("brk");
    let _cleanup = PodCleanup(vec![steady.uid.clone(), flaky.uid.clone()]);
    gw.desire(1, vec![steady.clone(), flaky.clone()]).await;
    let s = gw.wait_status(&steady.uid, "running", T, is_running).await;
    let steady_id = s.containers[0].container_id.clone().unwrap();
    gw.wait_status(&flaky.uid, "restarted once", T, |s| {
        s.containers[0].restart_count >= 1
    })
    .await;

    // Mid-stream: the flaky pod keeps restarting, so reports may be in flight.
    broker.stop();
    let before = podman_max_restart(&flaky.uid);
    let reported_before = gw.latest_status(&flaky.uid).unwrap().containers[0].restart_count;
    // The agent keeps restarting the flaky pod with no broker.
    wait_until(T, "restarts while the broker is down", || {
        podman_max_restart(&flaky.uid) >= before + 2
    })
    .await;
    let offline_max = podman_max_restart(&flaky.uid);
    assert!(
        gw.latest_status(&flaky.uid).unwrap().containers[0].restart_count <= reported_before + 1,
        "nothing can arrive while the broker is down"
    );
    broker.restart();
    gw.wait_connected().await;
    let s = gw
        .wait_status(&flaky.uid, "offline restarts reported", T, |s| {
            s.containers[0].restart_count >= offline_max
        })
        .await;
    assert!(s.containers[0].restart_count >= offline_max);
    wait_none_lost_in_order(&gw, &agent, &broker).await;
    // Every restart count in between was reported (none lost).
    let mut counts: Vec<u32> = gw
        .statuses()
        .into_iter()
        .filter(|(_, p)| p.uid == flaky.uid)
        .map(|(_, p)| p.containers[0].restart_count)
        .collect();
    counts.dedup();
    for n in reported_before..=offline_max {
        assert!(
            counts.contains(&n),
            "restart count {n} never reported: {counts:?}"
        );
    }
    let s = gw.latest_status(&steady.uid).unwrap();
    assert_eq!(
        s.containers[0].container_id.as_deref(),
        Some(steady_id.as_str())
    );
    // The agent announced itself online again.
    wait_until(T, "online again", || {
        gw.messages()
            .iter()
            .filter(|r| matches!(&r.message, edge_protocol::Message::DeviceState(s) if s.online))
            .count()
            >= 2
    })
    .await;
    gw.desire(2, vec![]).await;
    wait_until(T, "containers removed", || {
        podman_containers(&steady.uid).is_empty() && podman_containers(&flaky.uid).is_empty()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_restart_adopts_containers_and_runs_pods_without_broker() {
    let mut broker = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    let device = "mq-kill-1";
    let gw = TestGateway::connect(broker.port, device).await;
    let mut agent = AgentProcess::start(device, broker.port, dir.path());
    gw.wait_agent_online().await;
    let (steady, flaky) = flaky_and_steady("k9");
    let _cleanup = PodCleanup(vec![steady.uid.clone(), flaky.uid.clone()]);
    gw.desire(1, vec![steady.clone(), flaky.clone()]).await;
    let s = gw.wait_status(&steady.uid, "running", T, is_running).await;
    let steady_id = s.containers[0].container_id.clone().unwrap();
    gw.wait_status(&flaky.uid, "restarted once", T, |s| {
        s.containers[0].restart_count >= 1
    })
    .await;

    // Restart while connected: containers adopted, nothing recreated.
    agent.kill9();
    assert_eq!(podman_containers(&steady.uid).len(), 1);
    agent.spawn();
    wait_until(T, "agent back online", || {
        gw.count(edge_protocol::UpChannel::Resync) >= 2
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let containers = podman_containers(&steady.uid);
    assert_eq!(containers.len(), 1, "{containers:?}");
    assert_eq!(format!("docker://{}", containers[0].0), steady_id);
    assert!(
        matches!(containers[0].2.as_str(), "running" | "Up"),
        "{containers:?}"
    );

    // Kill again and come back with no broker (a device reboot in a dead zone).
    outbox_drained(&agent).await;
    agent.kill9();
    broker.stop();
    let before = podman_max_restart(&flaky.uid);
    agent.spawn();
    wait_until(
        T,
        "flaky pod restarted by an agent that never saw the broker",
        || podman_max_restart(&flaky.uid) >= before + 2,
    )
    .await;
    let containers = podman_containers(&steady.uid);
    assert_eq!(containers.len(), 1, "{containers:?}");
    assert_eq!(format!("docker://{}", containers[0].0), steady_id);
    let offline_max = podman_max_restart(&flaky.uid);
    broker.restart();
    gw.wait_connected().await;
    gw.wait_status(
        &flaky.uid,
        "offline restarts reported after reconnect",
        T,
        |s| s.containers[0].restart_count >= offline_max,
    )
    .await;
    let s = gw.latest_status(&steady.uid).unwrap();
    assert!(is_running(&s));
    assert_eq!(
        s.containers[0].container_id.as_deref(),
        Some(steady_id.as_str())
    );
    assert_eq!(s.containers[0].restart_count, 0);
    wait_none_lost_in_order(&gw, &agent, &broker).await;
    gw.desire(2, vec![]).await;
    wait_until(T, "containers removed", || {
        podman_containers(&steady.uid).is_empty() && podman_containers(&flaky.uid).is_empty()
    })
    .await;
}

fn probe(handler: ProbeHandler, failure_threshold: u32) -> Option<Probe> {
    Some(Probe {
        handler,
        initial_delay_seconds: 0,
        period_seconds: 1,
        timeout_seconds: 1,
        success_threshold: 1,
        failure_threshold,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_gate_readiness_and_restart_unhealthy_containers() {
    let broker = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    let device = "mq-probe-1";
    let gw = TestGateway::connect(broker.port, device).await;
    let _agent = AgentProcess::start(device, broker.port, dir.path());
    gw.wait_agent_online().await;
    let http_port = free_port();
    let tcp_port = free_port();
    let dead_port = free_port();
    // Serves HTTP, is live for 3 s, then its liveness file goes.
    let mut web = busybox_pod(
        &unique_uid("probe-web"),
        "web",
        &format!(
            "mkdir -p /www && echo ok > /www/index.html && httpd -p 127.0.0.1:{http_port} -h /www; \
             touch /tmp/healthy; sleep 3; rm /tmp/healthy; exec sleep 1000"
        ),
    );
    web.containers[0].liveness_probe = probe(
        ProbeHandler::Exec {
            command: vec!["test".into(), "-f".into(), "/tmp/healthy".into()],
        },
        2,
    );
    web.containers[0].readiness_probe = probe(
        ProbeHandler::HttpGet {
            host: None,
            port: http_port,
            path: "/index.html".into(),
            scheme: "HTTP".into(),
            headers: vec![HttpHeader {
                name: "X-Probe".into(),
                value: "edge".into(),
            }],
        },
        1,
    );
    let mut tcp = busybox_pod(
        &unique_uid("probe-tcp"),
        "tcp",
        &format!("mkdir -p /w && httpd -p 127.0.0.1:{tcp_port} -h /w; exec sleep 1000"),
    );
    tcp.containers[0].readiness_probe = probe(
        ProbeHandler::TcpSocket {
            host: None,
            port: tcp_port,
        },
        1,
    );
    let mut never_ready = busybox_pod(&unique_uid("probe-dead"), "dead", "exec sleep 1000");
    never_ready.containers[0].readiness_probe = probe(
        ProbeHandler::HttpGet {
            host: None,
            port: dead_port,
            path: "/".into(),
            scheme: String::new(),
            headers: vec![],
        },
        1,
    );
    let _cleanup = PodCleanup(vec![
        web.uid.clone(),
        tcp.uid.clone(),
        never_ready.uid.clone(),
    ]);
    gw.desire(1, vec![web.clone(), tcp.clone(), never_ready.clone()])
        .await;
    gw.wait_status(&web.uid, "ready via HTTP", T, |s| s.containers[0].ready)
        .await;
    gw.wait_status(&tcp.uid, "ready via TCP", T, |s| s.containers[0].ready)
        .await;
    let s = gw
        .wait_status(&web.uid, "restarted after liveness failure", T, |s| {
            s.containers[0].restart_count >= 1
        })
        .await;
    assert!(s.containers[0].last_state.is_some());
    let reasons = gw.event_reasons(&web.uid);
    assert!(reasons.contains(&"Unhealthy".to_owned()), "{reasons:?}");
    assert!(reasons.contains(&"Killing".to_owned()), "{reasons:?}");
    let dead = gw.latest_status(&never_ready.uid).unwrap();
    assert!(is_running(&dead));
    assert!(!dead.containers[0].ready, "readiness never passed");
    assert!(
        gw.event_reasons(&never_ready.uid)
            .contains(&"Unhealthy".to_owned())
    );
    assert_eq!(
        gw.latest_status(&tcp.uid).unwrap().containers[0].restart_count,
        0
    );
    gw.desire(2, vec![]).await;
    wait_until(T, "containers removed", || {
        podman_containers(&web.uid).is_empty() && podman_containers(&tcp.uid).is_empty()
    })
    .await;
}
