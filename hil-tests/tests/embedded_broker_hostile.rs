//! Hostile clients against the embedded broker (real rumqttd inside the real gateway):
//!
//! - the default gateway's broker is not reachable beyond loopback;
//! - `--mqtt-listen` beyond loopback is refused with a message naming Mosquitto, unless
//!   the operator passes `--embedded-broker-insecure-listen` (then it warns);
//! - a client that makes rumqttd panic (two CONNECTs with a client id rumqttd's router
//!   rejects) stops the gateway with an error instead of leaving it with a deaf broker,
//!   and a restart on the same store serves devices again.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use edge_gateway::config::{BrokerConfig, GatewayConfig, RunArgs};
use edge_gateway::gateway;
use edge_hil_tests::apiserver::{ApiServer, ApiServerConfig};
use edge_hil_tests::fake_device::{FakeDevice, FakeDeviceConfig};
use edge_hil_tests::stack::eventually;
use edge_protocol::DeviceId;
use k8s_openapi::api::core::v1::Node;
use kube::Api;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
struct Run {
    #[command(flatten)]
    args: RunArgs,
}

fn gateway_binary() -> PathBuf {
    let dir = std::env::var_os("EDGE_TEST_BIN_DIR")
        .map(PathBuf::from)
        .expect(
            "EDGE_TEST_BIN_DIR is not set: run `cargo build --workspace --bins` and \
         `eval \"$(bash scripts/test-env.sh)\"`",
        );
    let bin = dir.join("edge-gateway");
    assert!(
        bin.is_file(),
        "{} is missing: run `cargo build --workspace --bins`",
        bin.display()
    );
    bin
}

/// An address of this machine that is not loopback (where a device on the network
/// would connect).
fn non_loopback_address() -> IpAddr {
    let out = Command::new("ip")
        .args(["-o", "-4", "addr", "show", "scope", "global"])
        .output()
        .expect("`ip` (iproute2) is missing: it lists this machine's addresses");
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .and_then(|cidr| cidr.split('/').next())
        .and_then(|ip| ip.parse().ok())
        .unwrap_or_else(|| {
            panic!("this machine has no non-loopback IPv4 address to test reachability:\n{text}")
        })
}

/// Sends an MQTT 3.1.1 CONNECT with `client_id`; true when a CONNACK accepting it arrives.
fn mqtt_connect(addr: SocketAddr, client_id: &str) -> std::io::Result<bool> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(3)))?;
    let id = client_id.as_bytes();
    let mut packet = vec![0x10, (10 + 2 + id.len()) as u8];
    packet.extend_from_slice(&[0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 60]);
    packet.extend_from_slice(&(id.len() as u16).to_be_bytes());
    packet.extend_from_slice(id);
    stream.write_all(&packet)?;
    let mut ack = [0u8; 4];
    match stream.read_exact(&mut ack) {
        Ok(()) => Ok(ack == [0x20, 0x02, 0x00, 0x00]),
        Err(_) => Ok(false),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_embedded_broker_is_not_reachable_beyond_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let api = ApiServer::start(ApiServerConfig::new(dir.path().join("api")))
        .await
        .unwrap();
    let client = api.client().await.unwrap();
    // The defaults of `edge-gateway run`, on a free port instead of 1883.
    let store = dir.path().join("store").display().to_string();
    let args = Run::try_parse_from(["run", "--store-dir", &store])
        .unwrap()
        .args;
    let mut config = GatewayConfig::try_from(args).unwrap();
    let BrokerConfig::Embedded { listen, .. } = &mut config.broker else {
        panic!(
            "the default is not the embedded broker: {:?}",
            config.broker
        );
    };
    listen.set_port(0);
    config.kubelet_listen = "127.0.0.1:0".parse().unwrap();
    config.metrics_listen = "127.0.0.1:0".parse().unwrap();
    let gw = gateway::start(config, client, CancellationToken::new())
        .await
        .unwrap();
    let port = gw.ports.mqtt_port.unwrap();

    // Control: a client on loopback gets a CONNACK.
    assert!(mqtt_connect(SocketAddr::from(([127, 0, 0, 1], port)), "local").unwrap());
    // A client on the network cannot even open a connection.
    let outside = SocketAddr::new(non_loopback_address(), port);
    match mqtt_connect(outside, "intruder") {
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused, "{e}"),
        Ok(accepted) => panic!(
            "the default embedded broker accepted a TCP connection on {outside} (CONNACK: {accepted})"
        ),
    }
    gw.shutdown().await;
}

/// The gateway binary as a child process, output in `<dir>/gateway.log`, killed on drop.
struct GatewayProcess {
    child: Child,
    log: PathBuf,
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl GatewayProcess {
    fn spawn(mut cmd: Command, dir: &Path) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let log = dir.join("gateway.log");
        let out = std::fs::File::create(&log).unwrap();
        let err = out.try_clone().unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap();
        Self { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    fn exit_code(&mut self) -> Option<i32> {
        self.child.try_wait().ok().flatten().and_then(|s| s.code())
    }
}

fn run_command(api: &ApiServer, store: &Path, dir: &Path, mqtt_listen: &str) -> Command {
    let mut cmd = Command::new(gateway_binary());
    cmd.arg("run")
        .arg("--kubeconfig")
        .arg(api.kubeconfig_path())
        .arg("--store-dir")
        .arg(store)
        .args(["--mqtt-listen", mqtt_listen])
        .args(["--kubelet-listen", "127.0.0.1:0"])
        .args(["--metrics-listen", "127.0.0.1:0"])
        .arg("--kubelet-client-ca")
        .arg(api.kubelet_client_ca_path())
        .arg("--ready-file")
        .arg(dir.join("gateway.ready"));
    cmd
}

/// Waits for the ready file; returns the embedded broker's port.
fn wait_ready(process: &mut GatewayProcess, dir: &Path) -> u16 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(raw) = std::fs::read_to_string(dir.join("gateway.ready"))
            && let Ok(v) = serde_json::from_str::<serde_json::Value>(&raw)
        {
            return v["mqtt_port"].as_u64().unwrap() as u16;
        }
        assert!(
            process.is_running() && Instant::now() < deadline,
            "the gateway did not become ready:\n{}",
            process.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until the process exits; returns its exit code.
fn wait_exit(process: &mut GatewayProcess, within: Duration) -> Option<i32> {
    let deadline = Instant::now() + within;
    while process.is_running() {
        assert!(
            Instant::now() < deadline,
            "the gateway was still running after {within:?}:\n{}",
            process.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    process.exit_code()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_broker_beyond_loopback_is_refused_unless_explicitly_insecure() {
    let dir = tempfile::tempdir().unwrap();
    let api = ApiServer::start(ApiServerConfig::new(dir.path().join("api")))
        .await
        .unwrap();
    let store = dir.path().join("store");

    let refused_dir = dir.path().join("refused");
    let cmd = run_command(&api, &store, &refused_dir, "0.0.0.0:0");
    let mut refused = GatewayProcess::spawn(cmd, &refused_dir);
    let code = wait_exit(&mut refused, Duration::from_secs(20));
    let log = refused.log();
    assert_ne!(code, Some(0), "{log}");
    for needle in [
        "beyond loopback",
        "broker-config mosquitto",
        "--broker-url",
        "--embedded-broker-insecure-listen",
    ] {
        assert!(log.contains(needle), "no {needle:?} in:\n{log}");
    }

    // With the loudly named flag it serves on every interface, and says what that costs.
    let insecure_dir = dir.path().join("insecure");
    let mut cmd = run_command(&api, &store, &insecure_dir, "0.0.0.0:0");
    cmd.arg("--embedded-broker-insecure-listen");
    let mut insecure = GatewayProcess::spawn(cmd, &insecure_dir);
    let port = wait_ready(&mut insecure, &insecure_dir);
    let outside = SocketAddr::new(non_loopback_address(), port);
    assert!(mqtt_connect(outside, "lab-device").unwrap());
    let log = insecure.log();
    assert!(
        log.contains("WARN") && log.contains("NO authentication and NO topic ACL"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_panic_stops_the_gateway_and_a_restart_serves_devices() {
    let dir = tempfile::tempdir().unwrap();
    let api = ApiServer::start(ApiServerConfig::new(dir.path().join("api")))
        .await
        .unwrap();
    let client = api.client().await.unwrap();
    let store = dir.path().join("store");

    let first_dir = dir.path().join("first");
    let cmd = run_command(&api, &store, &first_dir, "127.0.0.1:0");
    let mut first = GatewayProcess::spawn(cmd, &first_dir);
    let port = wait_ready(&mut first, &first_dir);
    let broker = SocketAddr::from(([127, 0, 0, 1], port));

    // rumqttd 0.20 rejects a client id with '+' in its router after registering the
    // connection's last-will handler; the second CONNECT with that id then panics in the
    // connection task while it holds the handlers' lock, poisoning it for every later
    // CONNECT: the broker is deaf from then on.
    assert!(!mqtt_connect(broker, "evil+id").unwrap());
    let attacked = Instant::now();
    assert!(!mqtt_connect(broker, "evil+id").unwrap());

    let code = wait_exit(&mut first, Duration::from_secs(20));
    eprintln!(
        "the gateway exited {:?} after the second CONNECT was sent",
        attacked.elapsed()
    );
    let log = first.log();
    assert_ne!(code, Some(0), "{log}");
    assert!(log.contains("the embedded MQTT broker failed"), "{log}");
    assert!(log.contains("panic on broker thread"), "{log}");

    // The supervisor's restart: same store, a fresh broker; a device registers.
    let second_dir = dir.path().join("second");
    let cmd = run_command(&api, &store, &second_dir, "127.0.0.1:0");
    let mut second = GatewayProcess::spawn(cmd, &second_dir);
    let port = wait_ready(&mut second, &second_dir);
    let id = DeviceId::new("after-restart").unwrap();
    let _device = FakeDevice::start(FakeDeviceConfig::new(id, "127.0.0.1", port))
        .await
        .unwrap();
    let nodes: Api<Node> = Api::all(client);
    eventually("the device's Node", Duration::from_secs(20), || {
        let nodes = nodes.clone();
        async move {
            nodes
                .get_opt("after-restart")
                .await
                .map_err(|e| e.to_string())
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", second.log()));
}
