//! Device isolation on the real Mosquitto broker (`/usr/sbin/mosquitto`) with the
//! configuration `edge-gateway broker-config mosquitto` writes: TLS client certificates
//! from the fleet CA, identity from the CN, the ACL patterns of `edge-protocol`, a CRL.
//!
//! Negative checks never wait for "nothing happened": each is followed by a positive
//! control on the same connection, and MQTT keeps per-connection order, so "the first
//! message that arrives is the control" proves the forbidden one was dropped.
#![allow(clippy::unwrap_used)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use clap::Parser;
use edge_gateway::enrollment::EnrollmentLayout;
use edge_gateway::enrollment::bootstrap_cli::{BootstrapFileArgs, bootstrap_file};
use edge_gateway::enrollment::cli::{
    BrokerConfigArgs, EnrollArgs, RevokeArgs, broker_config, enroll, revoke,
};
use edge_hil_tests::mqtt_cli::{Identity, Subscriber, WAIT, need, publish, publish_ok};

const MOSQUITTO: &str = "/usr/sbin/mosquitto";

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
#[derive(Parser)]
struct BootstrapFile {
    #[command(flatten)]
    args: BootstrapFileArgs,
}

struct Broker {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Broker {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn start_broker(conf: &Path, port: u16, dir: &Path) -> Broker {
    need(MOSQUITTO);
    let log = dir.join("mosquitto.log");
    let child = Command::new(MOSQUITTO)
        .args(["-v", "-c"])
        .arg(conf)
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::options().append(true).open(&log).unwrap())
        .spawn()
        .unwrap();
    let mut broker = Broker { child, port, log };
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(status) = broker.child.try_wait().unwrap() {
            panic!(
                "mosquitto exited ({status}) with the generated config:\n{}",
                broker.log()
            );
        }
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return broker;
        }
        assert!(
            Instant::now() < deadline,
            "mosquitto did not listen on {port}:\n{}",
            broker.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

struct Fleet {
    _tmp: tempfile::TempDir,
    broker: Broker,
    gateway: Identity,
    a: Identity,
    b: Identity,
    revoked: Identity,
    /// The shared bootstrap certificate of zero-touch enrollment.
    bootstrap: Identity,
    bootstrap_port: u16,
}

fn fleet() -> Fleet {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let s = |p: &Path| p.display().to_string();
    let mut out = Vec::new();
    let mut device = |id: &str| {
        let dir = tmp.path().join(format!("{id}-bundle"));
        let args = Enroll::try_parse_from([
            "enroll",
            id,
            "--store-dir",
            &s(&store),
            "--out-dir",
            &s(&dir),
            "--broker-url",
            "mqtts://127.0.0.1:8883",
        ])
        .unwrap()
        .args;
        enroll(&args, &mut out).unwrap();
        Identity {
            ca: dir.join("ca.pem"),
            cert: dir.join("device.pem"),
            key: dir.join("device.key"),
        }
    };
    let a = device("dev-a");
    let b = device("dev-b");
    let revoked = device("dev-c");
    let args = Revoke::try_parse_from(["revoke", "dev-c", "--store-dir", &s(&store)])
        .unwrap()
        .args;
    revoke(&args, &mut out).unwrap();

    let port = free_port();
    let bootstrap_port = free_port();
    let conf_dir = tmp.path().join("mosquitto");
    let args = BrokerConfig::try_parse_from([
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
        "--bootstrap-port",
        &bootstrap_port.to_string(),
    ])
    .unwrap()
    .args;
    let conf = broker_config(&args, &mut out).unwrap();
    let bootstrap_dir = tmp.path().join("bootstrap");
    let args = BootstrapFile::try_parse_from([
        "bootstrap-file",
        "--store-dir",
        &s(&store),
        "--out-dir",
        &s(&bootstrap_dir),
        "--token",
        "abcdef.0123456789abcdef",
        "--bootstrap-broker-url",
        &format!("mqtts://127.0.0.1:{bootstrap_port}"),
    ])
    .unwrap()
    .args;
    bootstrap_file(&args, &mut out).unwrap();
    let bootstrap = Identity {
        ca: bootstrap_dir.join("ca.pem"),
        cert: bootstrap_dir.join("bootstrap.pem"),
        key: bootstrap_dir.join("bootstrap.key"),
    };
    let layout = EnrollmentLayout::new(&store);
    let gateway = Identity {
        ca: layout.ca_cert(),
        cert: layout.gateway_cert(),
        key: layout.gateway_key(),
    };
    let broker = start_broker(&conf, port, tmp.path());
    Fleet {
        _tmp: tmp,
        broker,
        gateway,
        a,
        b,
        revoked,
        bootstrap,
        bootstrap_port,
    }
}

#[test]
fn devices_are_isolated_and_the_gateway_sees_everything() {
    // The broker takes every client id from the certificate, so one identity holds one
    // connection at a time: the phases below never run two clients of the same identity.
    let f = fleet();
    let port = f.broker.port;

    // 1. A cannot publish on B's up topics, nor on its own down topics (forging the
    //    gateway's orders). The gateway reads every device's up/: the first message it
    //    gets from A is A's own.
    let mut gateway = Subscriber::start(
        port,
        &f.gateway,
        "gw-sub",
        &["edge/v1/+/up/#", "edge/v1/+/down/#"],
    );
    publish_ok(
        port,
        &f.a,
        "dev-a",
        "edge/v1/dev-b/up/status",
        "forged-by-a",
    );
    publish_ok(
        port,
        &f.a,
        "dev-a",
        "edge/v1/dev-a/down/desired",
        "self-ordered",
    );
    publish_ok(port, &f.a, "dev-a", "edge/v1/dev-a/up/status", "a-own");
    assert_eq!(gateway.next_message(), "edge/v1/dev-a/up/status a-own");
    publish_ok(port, &f.b, "dev-b", "edge/v1/dev-b/up/heartbeat", "b-own");
    assert_eq!(gateway.next_message(), "edge/v1/dev-b/up/heartbeat b-own");
    drop(gateway);

    // 2. A cannot read B's down/ (desired sets may hold secrets), not even through
    //    wildcards; the gateway writes every device's down/.
    let mut b_sub = Subscriber::start(port, &f.b, "dev-b", &["edge/v1/dev-b/down/#"]);
    let mut a_sub = Subscriber::start(
        port,
        &f.a,
        "dev-a",
        &[
            "edge/v1/dev-b/down/#",
            "edge/v1/+/up/#",
            "edge/v1/#",
            "#",
            "edge/v1/dev-a/down/#",
        ],
    );
    publish_ok(
        port,
        &f.gateway,
        "gw",
        "edge/v1/dev-b/down/desired",
        "secret-for-b",
    );
    // B's up traffic (published here by the gateway identity, which may write anything)
    // does not reach A either.
    publish_ok(
        port,
        &f.gateway,
        "gw",
        "edge/v1/dev-b/up/status",
        "b-up-traffic",
    );
    publish_ok(
        port,
        &f.gateway,
        "gw",
        "edge/v1/dev-a/down/desired",
        "for-a",
    );
    assert_eq!(
        b_sub.next_message(),
        "edge/v1/dev-b/down/desired secret-for-b"
    );
    assert_eq!(a_sub.next_message(), "edge/v1/dev-a/down/desired for-a");
    drop(a_sub);

    // 3. A cannot use B's client id: the broker takes the id from A's certificate, so B
    //    stays connected with its session, and "A as dev-b" only gets A's messages.
    let mut a_as_b = Subscriber::start(
        port,
        &f.a,
        "dev-b",
        &["edge/v1/dev-b/down/#", "edge/v1/dev-a/down/#"],
    );
    publish_ok(
        port,
        &f.gateway,
        "gw",
        "edge/v1/dev-b/down/desired",
        "second-for-b",
    );
    publish_ok(
        port,
        &f.gateway,
        "gw",
        "edge/v1/dev-a/down/desired",
        "second-for-a",
    );
    assert_eq!(
        b_sub.next_message(),
        "edge/v1/dev-b/down/desired second-for-b"
    );
    assert_eq!(
        a_as_b.next_message(),
        "edge/v1/dev-a/down/desired second-for-a"
    );
    assert!(
        b_sub.still_running(),
        "B was disconnected by A claiming its client id"
    );
    let log = f.broker.log();
    assert!(
        log.contains("New client connected"),
        "the broker log is not being captured:\n{log}"
    );
    assert!(
        !log.contains("Client dev-b already connected"),
        "B's session was taken over:\n{log}"
    );
    drop(a_as_b);

    // 4. Publishing under B's client id does not lift A's confinement either.
    let mut gateway = Subscriber::start(port, &f.gateway, "gw-sub", &["edge/v1/+/up/#"]);
    publish_ok(
        port,
        &f.a,
        "dev-b",
        "edge/v1/dev-b/up/status",
        "forged-with-b-id",
    );
    publish_ok(
        port,
        &f.a,
        "dev-b",
        "edge/v1/dev-a/up/status",
        "a-under-b-id",
    );
    assert_eq!(
        gateway.next_message(),
        "edge/v1/dev-a/up/status a-under-b-id"
    );
    assert!(b_sub.still_running());
}

#[test]
fn bootstrap_clients_can_only_enroll() {
    let f = fleet();
    let (port, bootstrap_port) = (f.broker.port, f.bootstrap_port);

    // 1. A bootstrap client writes only its own request: not device topics, not another
    //    board's request, not its own response. The gateway reads everything; the first
    //    message it gets is the client's own request.
    let mut gateway = Subscriber::start(port, &f.gateway, "gw-sub", &["edge/#"]);
    let board = "bootstrap_pi-1";
    for (topic, payload) in [
        ("edge/v1/dev-a/up/status", "forged-device-traffic"),
        ("edge/v1/pi-1/up/hello", "forged-hello"),
        (
            "edge/bootstrap/v1/bootstrap_pi-2/request",
            "for-another-board",
        ),
        ("edge/bootstrap/v1/bootstrap_pi-1/response", "forged-reply"),
    ] {
        publish_ok(bootstrap_port, &f.bootstrap, board, topic, payload);
    }
    publish_ok(
        bootstrap_port,
        &f.bootstrap,
        board,
        "edge/bootstrap/v1/bootstrap_pi-1/request",
        "own-request",
    );
    assert_eq!(
        gateway.next_message(),
        "edge/bootstrap/v1/bootstrap_pi-1/request own-request"
    );
    drop(gateway);

    // 2. It reads only its own response: no desired set, no device traffic, no other
    //    board's certificate, not even through wildcards.
    let mut spy = Subscriber::start(
        bootstrap_port,
        &f.bootstrap,
        board,
        &["#", "edge/v1/#", "edge/bootstrap/v1/+/response"],
    );
    for (topic, payload) in [
        ("edge/v1/dev-a/down/desired", "secret-for-a"),
        ("edge/v1/dev-a/up/status", "a-up"),
        ("edge/bootstrap/v1/bootstrap_pi-2/response", "for-pi-2"),
        ("edge/bootstrap/v1/bootstrap_pi-1/response", "for-pi-1"),
    ] {
        publish_ok(port, &f.gateway, "gw", topic, payload);
    }
    assert_eq!(
        spy.next_message(),
        "edge/bootstrap/v1/bootstrap_pi-1/response for-pi-1"
    );
    drop(spy);

    // 3. Each credential only on its listener: a device certificate is refused on the
    //    enrollment listener (where it could choose its client id), the bootstrap
    //    certificate on the device listener.
    let (ok, out) = publish(
        bootstrap_port,
        &f.a,
        "dev-b",
        "edge/v1/dev-a/up/status",
        "device-on-bootstrap-listener",
    );
    assert!(
        !ok,
        "a device certificate was accepted on the enrollment listener: {out}"
    );
    let (ok, out) = publish(
        port,
        &f.bootstrap,
        board,
        "edge/bootstrap/v1/bootstrap_pi-1/request",
        "bootstrap-on-device-listener",
    );
    assert!(
        !ok,
        "the bootstrap certificate was accepted on the device listener: {out}"
    );
    let (ok, out) = publish(port, &f.a, "dev-a", "edge/v1/dev-a/up/status", "control");
    assert!(ok, "the device listener still serves devices: {out}");
}

#[test]
fn a_revoked_device_cannot_connect() {
    let f = fleet();
    let port = f.broker.port;
    let (ok, out) = publish(
        port,
        &f.revoked,
        "dev-c",
        "edge/v1/dev-c/up/status",
        "from-revoked",
    );
    assert!(
        !ok,
        "revoked device connected: {out}\nbroker log:\n{}",
        f.broker.log()
    );
    // Control: the same command with a valid device works.
    publish_ok(port, &f.a, "dev-a", "edge/v1/dev-a/up/status", "ok");
    // And nobody can connect without a certificate from the fleet CA.
    let other = tempfile::tempdir().unwrap();
    let store = other.path().join("s");
    let dir = other.path().join("b");
    let args = Enroll::try_parse_from([
        "enroll",
        "dev-a",
        "--store-dir",
        &store.display().to_string(),
        "--out-dir",
        &dir.display().to_string(),
        "--broker-url",
        "mqtts://127.0.0.1:1",
    ])
    .unwrap()
    .args;
    enroll(&args, &mut Vec::new()).unwrap();
    let foreign = Identity {
        ca: f.a.ca.clone(),
        cert: dir.join("device.pem"),
        key: dir.join("device.key"),
    };
    let (ok, out) = publish(
        port,
        &foreign,
        "dev-a",
        "edge/v1/dev-a/up/status",
        "foreign",
    );
    assert!(!ok, "a certificate from another CA was accepted: {out}");
}
