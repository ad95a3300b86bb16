//! From enrollment to a Ready Node on the production path: `edge-gateway enroll` writes a
//! bundle, `broker-config mosquitto` configures a real Mosquitto (TLS client
//! certificates, ACL, CRL), the real `edge-gateway` connects with its own identity and
//! the real `edge-agent` with the bundle's; the device becomes a Ready Node with the
//! bundle's labels. Then `revoke` + `broker-config` + broker restart keep the device out
//! for good: it cannot reconnect and its Node stops being Ready.
//!
//! Runs against the API emulator and against the real control plane (the gateway under
//! its own ServiceAccount and ClusterRole), or a real cluster with `EDGE_E2E_KUBECONFIG`.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use clap::Parser;
use edge_gateway::enrollment::cli::{
    BrokerConfigArgs, EnrollArgs, RevokeArgs, broker_config, enroll, revoke,
};
use edge_gateway::enrollment::{EnrollmentLayout, GATEWAY_IDENTITY};
use edge_hil_tests::stack::{
    ChildProcess, Cluster, ClusterBackend, Gateway, GatewayOptions, MOSQUITTO_BIN, eventually,
    free_loopback_port, wait_for_tcp,
};
use k8s_openapi::api::core::v1::Node;
use kube::Api;

#[derive(Parser)]
struct Enroll {
    #[command(flatten)]
    args: EnrollArgs,
}
#[derive(Parser)]
struct Revoke {
    #[command(flatten)]
    args: RevokeArgs,
}
#[derive(Parser)]
struct BrokerConfig {
    #[command(flatten)]
    args: BrokerConfigArgs,
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

fn node_ready(n: &Node) -> Option<String> {
    n.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.status.clone())
}

fn start_mosquitto(conf: &Path, port: u16, dir: &Path) -> ChildProcess {
    assert!(
        Path::new(MOSQUITTO_BIN).exists(),
        "{MOSQUITTO_BIN} is missing: install the Debian package mosquitto"
    );
    let mut cmd = Command::new(MOSQUITTO_BIN);
    cmd.arg("-v").arg("-c").arg(conf);
    let broker = ChildProcess::spawn("mosquitto", cmd, dir).unwrap();
    wait_for_tcp(port, Duration::from_secs(10), "mosquitto").unwrap();
    broker
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn enrolled_device_becomes_a_ready_node_on_the_emulator() {
    enrolled_device_becomes_a_ready_node_over_mutual_tls_and_revocation_keeps_it_out(
        ClusterBackend::Emulator,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn enrolled_device_becomes_a_ready_node_on_the_control_plane() {
    enrolled_device_becomes_a_ready_node_over_mutual_tls_and_revocation_keeps_it_out(
        ClusterBackend::ControlPlane,
    )
    .await;
}

async fn enrolled_device_becomes_a_ready_node_over_mutual_tls_and_revocation_keeps_it_out(
    backend: ClusterBackend,
) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let cluster = Cluster::start(backend, dir, Duration::from_secs(4))
        .await
        .unwrap();
    // The node lifecycle controller's grace on top of the gateway's own detection.
    let unready_within =
        Duration::from_secs(60) + cluster.node_monitor_grace_period().unwrap_or_default();
    let bin_dir = PathBuf::from(
        std::env::var_os("EDGE_TEST_BIN_DIR")
            .expect("EDGE_TEST_BIN_DIR is not set: cargo build --workspace --bins"),
    );
    let docker_host = std::env::var("EDGE_TEST_DOCKER_HOST")
        .expect("EDGE_TEST_DOCKER_HOST is not set: run `eval \"$(bash scripts/test-env.sh)\"`");

    // Enrollment and broker configuration, as an operator does it.
    let id = format!("secure-{}", std::process::id());
    let store = dir.join("store");
    let bundle = dir.join("bundle");
    let port = free_loopback_port().unwrap();
    let url = format!("mqtts://127.0.0.1:{port}");
    let mut out = Vec::new();
    let args = Enroll::try_parse_from([
        "enroll",
        &id,
        "--store-dir",
        &s(&store),
        "--out-dir",
        &s(&bundle),
        "--broker-url",
        &url,
        "--label",
        "site=lab",
    ])
    .unwrap()
    .args;
    enroll(&args, &mut out).unwrap();
    let conf_dir = dir.join("mosquitto");
    let broker_args = BrokerConfig::try_parse_from([
        "broker-config",
        "mosquitto",
        "--store-dir",
        &s(&store),
        "--out-dir",
        &s(&conf_dir),
        "--listen-address",
        "127.0.0.1",
        "--port",
        &port.to_string(),
        "--run-as-user",
        "root",
    ])
    .unwrap()
    .args;
    let conf = broker_config(&broker_args, &mut out).unwrap();
    let mut broker = start_mosquitto(&conf, port, dir);

    // The gateway with its own client identity.
    let layout = EnrollmentLayout::new(&store);
    let gateway = Gateway::start(
        GatewayOptions {
            broker_url: Some(url.clone()),
            device_timeout: Duration::from_secs(3),
            extra_args: vec![
                "--broker-ca".into(),
                s(&layout.ca_cert()),
                "--broker-cert".into(),
                s(&layout.gateway_cert()),
                "--broker-key".into(),
                s(&layout.gateway_key()),
                "--mqtt-client-id".into(),
                GATEWAY_IDENTITY.into(),
            ],
            ..GatewayOptions::for_cluster(&cluster, store.clone())
        },
        dir,
    )
    .unwrap();

    // The agent with the bundle as written (only the on-device paths point into the
    // test directory).
    let config = std::fs::read_to_string(bundle.join("agent.toml"))
        .unwrap()
        .replace("/etc/edge-agent/", &format!("{}/", bundle.display()))
        .replace("/var/lib/edge-agent", &s(&dir.join("agent-state")))
        .replace("unix:///var/run/docker.sock", &docker_host);
    let local_config = dir.join("agent-local.toml");
    std::fs::write(&local_config, config).unwrap();
    let mut cmd = Command::new(bin_dir.join("edge-agent"));
    cmd.arg("run")
        .arg("--config")
        .arg(&local_config)
        .args(["--heartbeat-interval", "1s"]);
    let mut agent = ChildProcess::spawn("agent", cmd, dir).unwrap();

    let nodes: Api<Node> = Api::all(cluster.client().await.unwrap());
    let logs = |agent: &ChildProcess, broker: &ChildProcess| {
        format!(
            "agent:\n{}\ngateway:\n{}\nmosquitto:\n{}",
            agent.log(),
            gateway.log(),
            broker.log()
        )
    };
    let node = eventually(
        "the enrolled device's Node Ready=True",
        Duration::from_secs(60),
        || {
            let nodes = nodes.clone();
            let id = id.clone();
            async move {
                match nodes.get_opt(&id).await {
                    Ok(Some(n)) if node_ready(&n).as_deref() == Some("True") => Ok(Some(n)),
                    Ok(Some(n)) => Err(format!("Ready={:?}", node_ready(&n))),
                    Ok(None) => Err("no Node yet".to_owned()),
                    Err(e) => Err(e.to_string()),
                }
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", logs(&agent, &broker)));
    let labels = node.metadata.labels.clone().unwrap_or_default();
    assert_eq!(
        labels.get("site").map(String::as_str),
        Some("lab"),
        "{labels:?}"
    );
    assert!(
        broker.log().contains(&format!("as {id}")),
        "the device did not connect under its certificate's id"
    );

    // Revoke: the broker's CRL now refuses the device's certificate; Mosquitto reads it at start.
    let args = Revoke::try_parse_from(["revoke", &id, "--store-dir", &s(&store)])
        .unwrap()
        .args;
    revoke(&args, &mut out).unwrap();
    broker_config(&broker_args, &mut out).unwrap();
    broker.kill9();
    let broker = start_mosquitto(&conf, port, &dir.join("restarted"));
    eventually(
        "the revoked device's Node to stop being Ready",
        unready_within,
        || {
            let nodes = nodes.clone();
            let id = id.clone();
            async move {
                match nodes.get_opt(&id).await {
                    Ok(Some(n)) if node_ready(&n).as_deref() != Some("True") => Ok(Some(())),
                    Ok(Some(_)) => Err("still Ready".to_owned()),
                    Ok(None) => Ok(Some(())),
                    Err(e) => Err(e.to_string()),
                }
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", logs(&agent, &broker)));
    // Revoking retires the device, so its Node may be gone before the gateway's next
    // reconnect attempt reaches the restarted broker: wait for that too.
    let gateway_in = format!("as {GATEWAY_IDENTITY}");
    eventually(
        "the gateway to reconnect to the restarted broker",
        Duration::from_secs(30),
        || {
            let connected = broker.log().contains(&gateway_in);
            async move { Ok(connected.then_some(())) }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", broker.log()));
    let log = broker.log();
    assert!(
        !log.contains(&format!("as {id}")),
        "the revoked device connected again:\n{log}"
    );
    agent.kill9();
    // On the control plane the gateway runs under exactly its shipped ClusterRole.
    let forbidden = edge_hil_tests::stack::rbac_refusals(&gateway.log());
    assert!(
        forbidden.is_empty(),
        "the API server refused gateway calls (403):\n{}",
        forbidden.join("\n")
    );
}
