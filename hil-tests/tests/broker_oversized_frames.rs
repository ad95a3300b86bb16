//! A device publishes frames far larger than anything the protocol allows, through the
//! real brokers: Mosquitto with the configuration `edge-gateway broker-config mosquitto`
//! writes (TLS client certificates, ACL), and the gateway's embedded rumqttd. The
//! gateway keeps working: a frame the broker accepts is delivered once, counted as
//! `oversized` and dropped; a frame above the broker's limits never reaches the gateway
//! (before the limits, Mosquitto forwarded a 40 MiB frame that ended the gateway's
//! connection, and its persistent session got it redelivered on every reconnect), and a
//! later hello from another device is processed.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use clap::Parser;
use edge_gateway::config::{BrokerConfig, GatewayConfig};
use edge_gateway::enrollment::cli::{BrokerConfigArgs, EnrollArgs, broker_config, enroll};
use edge_gateway::enrollment::{EnrollmentLayout, GATEWAY_IDENTITY};
use edge_gateway::gateway::{self, Gateway};
use edge_hil_tests::apiserver::{ApiServer, ApiServerConfig};
use edge_hil_tests::fake_device::{FakeDevice, FakeDeviceConfig, FakeDeviceTls};
use edge_hil_tests::stack::{
    ChildProcess, MOSQUITTO_BIN, eventually, free_loopback_port, wait_for_tcp,
};
use edge_protocol::DeviceId;
use k8s_openapi::api::core::v1::Node;
use kube::Api;
use tokio_util::sync::CancellationToken;

const MIB: usize = 1024 * 1024;
/// Above the gateway's incoming packet limit (32 MiB).
const HUGE: usize = 40 * MIB;
/// Above the broker payload limit (8 MiB + 64 KiB), below the gateway's packet limit.
const LARGE: usize = 20 * MIB;
/// Accepted by the brokers, above the protocol's message limit (1 MiB).
const OVER_PROTOCOL: usize = 2 * MIB;

#[derive(Parser)]
struct Enroll {
    #[command(flatten)]
    args: EnrollArgs,
}
#[derive(Parser)]
struct BrokerConf {
    #[command(flatten)]
    args: BrokerConfigArgs,
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

fn mosquitto_pub() -> &'static str {
    let ok = Command::new("sh")
        .args(["-c", "command -v mosquitto_pub"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "mosquitto_pub is missing: install the Debian package mosquitto-clients \
         (scripts/install-test-deps.sh)"
    );
    "mosquitto_pub"
}

/// A device's client credentials (CA, certificate, key) for mosquitto_pub.
struct Bundle {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

/// Publishes `size` bytes with QoS 1 on `topic` as `client_id`; returns whether
/// mosquitto_pub got its PUBACK (a broker may also disconnect it instead).
fn publish_frame(
    port: u16,
    tls: Option<&Bundle>,
    client_id: &str,
    topic: &str,
    size: usize,
    dir: &Path,
) -> bool {
    let file = dir.join(format!("frame-{size}"));
    std::fs::write(&file, vec![b'x'; size]).unwrap();
    let mut cmd = Command::new(mosquitto_pub());
    cmd.args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-V", "mqttv311", "-q", "1", "-i", client_id, "-t", topic])
        .arg("-f")
        .arg(&file);
    if let Some(b) = tls {
        cmd.arg("--cafile")
            .arg(&b.ca)
            .arg("--cert")
            .arg(&b.cert)
            .arg("--key")
            .arg(&b.key);
    }
    let ok = cmd.output().unwrap().status.success();
    std::fs::remove_file(&file).unwrap();
    ok
}

/// How many messages the gateway dropped as oversized.
fn oversized_count(gw: &Gateway) -> u64 {
    gw.fleet()
        .metrics()
        .render()
        .lines()
        .find(|l| l.starts_with("edge_gateway_rejected_messages_total{reason=\"oversized\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .map(|v| v.parse().unwrap())
        .unwrap_or(0)
}

/// Sends the three frames from `big`, then starts `ok-dev` and waits for its Node.
async fn flood_then_expect_a_new_node(
    gw: &Gateway,
    client: kube::Client,
    port: u16,
    big: Option<&Bundle>,
    ok_dev: FakeDeviceConfig,
    dir: &Path,
) {
    let topic = "edge/v1/big-dev/up/status";
    publish_frame(port, big, "big-dev", topic, HUGE, dir);
    publish_frame(port, big, "big-dev", topic, LARGE, dir);
    assert!(
        publish_frame(port, big, "big-dev", topic, OVER_PROTOCOL, dir),
        "the broker did not acknowledge a {OVER_PROTOCOL}-byte frame"
    );

    let _device = FakeDevice::start(ok_dev).await.unwrap();
    let nodes: Api<Node> = Api::all(client);
    eventually(
        "ok-dev's Node after the oversized frames",
        Duration::from_secs(30),
        || {
            let nodes = nodes.clone();
            async move { nodes.get_opt("ok-dev").await.map_err(|e| e.to_string()) }
        },
    )
    .await
    .unwrap();
    // The frame the broker accepted was delivered once and dropped, never redelivered.
    eventually(
        "the 2 MiB frame counted as oversized",
        Duration::from_secs(10),
        || async { Ok((oversized_count(gw) >= 1).then_some(())) },
    )
    .await
    .unwrap();
    assert_eq!(oversized_count(gw), 1, "{}", gw.fleet().metrics().render());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn oversized_frames_through_generated_mosquitto_config_do_not_cut_off_the_gateway() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let store = dir.join("store");
    let port = free_loopback_port().unwrap();
    let url = format!("mqtts://127.0.0.1:{port}");
    let mut out = Vec::new();
    let bundle = |id: &str| {
        let bundle = dir.join(format!("{id}-bundle"));
        let args = Enroll::try_parse_from([
            "enroll",
            id,
            "--store-dir",
            &s(&store),
            "--out-dir",
            &s(&bundle),
            "--broker-url",
            &url,
        ])
        .unwrap()
        .args;
        enroll(&args, &mut Vec::new()).unwrap();
        Bundle {
            ca: bundle.join("ca.pem"),
            cert: bundle.join("device.pem"),
            key: bundle.join("device.key"),
        }
    };
    let big = bundle("big-dev");
    let ok = bundle("ok-dev");
    let args = BrokerConf::try_parse_from([
        "broker-config",
        "mosquitto",
        "--store-dir",
        &s(&store),
        "--out-dir",
        &s(&dir.join("mosquitto")),
        "--listen-address",
        "127.0.0.1",
        "--port",
        &port.to_string(),
        "--run-as-user",
        "root",
    ])
    .unwrap()
    .args;
    let conf = broker_config(&args, &mut out).unwrap();
    assert!(
        Path::new(MOSQUITTO_BIN).exists(),
        "{MOSQUITTO_BIN} is missing: install the Debian package mosquitto"
    );
    let mut cmd = Command::new(MOSQUITTO_BIN);
    cmd.arg("-v").arg("-c").arg(&conf);
    let broker = ChildProcess::spawn("mosquitto", cmd, dir).unwrap();
    wait_for_tcp(port, Duration::from_secs(10), "mosquitto").unwrap();

    let api = ApiServer::start(ApiServerConfig::new(dir.join("api")))
        .await
        .unwrap();
    let client = api.client().await.unwrap();
    let layout = EnrollmentLayout::new(&store);
    let mut config = GatewayConfig::local(&store);
    config.broker = BrokerConfig::External {
        host: "127.0.0.1".to_owned(),
        port,
        failover: Vec::new(),
        tls: true,
        ca: Some(layout.ca_cert()),
        client_cert: Some((layout.gateway_cert(), layout.gateway_key())),
    };
    config.mqtt_client_id = GATEWAY_IDENTITY.to_owned();
    config.kubelet_client_ca = Some(api.kubelet_client_ca_path().to_owned());
    let gw = gateway::start(config, client.clone(), CancellationToken::new())
        .await
        .unwrap();

    let mut ok_dev = FakeDeviceConfig::new(DeviceId::new("ok-dev").unwrap(), "127.0.0.1", port);
    ok_dev.tls = Some(FakeDeviceTls {
        ca_pem: std::fs::read(&ok.ca).unwrap(),
        cert_pem: std::fs::read(&ok.cert).unwrap(),
        key_pem: std::fs::read(&ok.key).unwrap(),
    });
    let flooded = tokio::time::timeout(
        Duration::from_secs(90),
        flood_then_expect_a_new_node(&gw, client, port, Some(&big), ok_dev, dir),
    )
    .await;
    assert!(
        flooded.is_ok(),
        "timed out; mosquitto log:\n{}",
        broker.log()
    );
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn oversized_frames_through_the_embedded_broker_do_not_cut_off_the_gateway() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let api = ApiServer::start(ApiServerConfig::new(dir.join("api")))
        .await
        .unwrap();
    let client = api.client().await.unwrap();
    let mut config = GatewayConfig::local(dir.join("store"));
    config.kubelet_client_ca = Some(api.kubelet_client_ca_path().to_owned());
    let gw = gateway::start(config, client.clone(), CancellationToken::new())
        .await
        .unwrap();
    let port = gw.ports.mqtt_port.unwrap();
    let ok_dev = FakeDeviceConfig::new(DeviceId::new("ok-dev").unwrap(), "127.0.0.1", port);
    tokio::time::timeout(
        Duration::from_secs(90),
        flood_then_expect_a_new_node(&gw, client, port, None, ok_dev, dir),
    )
    .await
    .unwrap();
    gw.shutdown().await;
}
