//! Device isolation on a three-node NATS cluster (Debian's `nats-server`, MQTT through
//! JetStream) with the files `edge-gateway broker-config nats` writes: TLS client
//! certificates mapped to users, the current certificates pinned, per-device
//! publish/subscribe permissions. Also what the fleet needs from a cluster: a retained
//! message and a last will published on one node reach the gateway on another, and
//! survive the loss of the node they were published on.
//!
//! Negative checks never wait for "nothing happened": each is followed by a positive
//! control, and MQTT keeps per-connection order, so "the first message that arrives is
//! the control" proves the forbidden one was dropped.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use edge_gateway::enrollment::EnrollmentLayout;
use edge_gateway::enrollment::cli::{
    BrokerConfigArgs, EnrollArgs, RevokeArgs, broker_config, enroll, revoke,
};
use edge_hil_tests::mqtt_cli::{Identity, Subscriber, need, publish, publish_ok, tls_args};
use edge_hil_tests::stack::{NatsCluster, NatsNodePorts};

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

struct Fleet {
    nats: NatsCluster,
    gateway: Identity,
    a: Identity,
    b: Identity,
    revoked: Identity,
    superseded: Identity,
    _tmp: tempfile::TempDir,
}

impl Fleet {
    /// The MQTT port of node `i`.
    fn port(&self, i: usize) -> u16 {
        self.nats.ports(i).unwrap().mqtt
    }
}

fn enroll_device(store: &Path, dir: &Path, id: &str, reissue: bool) -> Identity {
    let s = |p: &Path| p.display().to_string();
    let mut argv = vec![
        "enroll".to_owned(),
        id.to_owned(),
        "--store-dir".to_owned(),
        s(store),
        "--out-dir".to_owned(),
        s(dir),
        "--broker-url".to_owned(),
        "mqtts://127.0.0.1:8883".to_owned(),
    ];
    if reissue {
        argv.push("--reissue".to_owned());
    }
    let args = Enroll::try_parse_from(argv).unwrap().args;
    enroll(&args, &mut Vec::new()).unwrap();
    Identity {
        ca: dir.join("ca.pem"),
        cert: dir.join("device.pem"),
        key: dir.join("device.key"),
    }
}

fn fleet() -> Fleet {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let s = |p: &Path| p.display().to_string();
    let a = enroll_device(&store, &tmp.path().join("a-bundle"), "cbroker-dev-a", false);
    let b = enroll_device(&store, &tmp.path().join("b-bundle"), "cbroker-dev-b", false);
    let revoked = enroll_device(&store, &tmp.path().join("c-bundle"), "cbroker-dev-c", false);
    // D's first certificate is superseded by a reissue: only the new one may connect.
    let superseded = enroll_device(
        &store,
        &tmp.path().join("d1-bundle"),
        "cbroker-dev-d",
        false,
    );
    enroll_device(&store, &tmp.path().join("d2-bundle"), "cbroker-dev-d", true);
    // A dotted id cannot be carried by NATS 2.9: left out, with a warning.
    enroll_device(&store, &tmp.path().join("e-bundle"), "cbroker.dev-e", false);
    let args = Revoke::try_parse_from(["revoke", "cbroker-dev-c", "--store-dir", &s(&store)])
        .unwrap()
        .args;
    revoke(&args, &mut Vec::new()).unwrap();

    let ports: Vec<NatsNodePorts> = (0..3).map(|_| NatsNodePorts::free().unwrap()).collect();
    let conf_dir = tmp.path().join("nats");
    let mut argv = vec![
        "broker-config".to_owned(),
        "nats".to_owned(),
        "--store-dir".to_owned(),
        s(&store),
        "--out-dir".to_owned(),
        s(&conf_dir),
        "--listen-address".to_owned(),
        "127.0.0.1".to_owned(),
    ];
    for p in &ports {
        argv.push("--nats-node".to_owned());
        argv.push(format!("127.0.0.1:{}:{}", p.mqtt, p.route));
    }
    let args = BrokerConfig::try_parse_from(argv).unwrap().args;
    let mut report = Vec::new();
    broker_config(&args, &mut report).unwrap();
    let report = String::from_utf8(report).unwrap();
    assert!(
        report.contains("left out 1 device(s) whose id has a '.'")
            && report.contains("cbroker.dev-e"),
        "{report}"
    );
    let confs = (0..3)
        .map(|i| (conf_dir.join(format!("nats-{}.conf", i + 1)), ports[i]))
        .collect();
    let nats = NatsCluster::start_with(&tmp.path().join("nats-run"), confs).unwrap();
    let layout = EnrollmentLayout::new(&store);
    let gateway = Identity {
        ca: layout.ca_cert(),
        cert: layout.gateway_cert(),
        key: layout.gateway_key(),
    };
    let fleet = Fleet {
        nats,
        gateway,
        a,
        b,
        revoked,
        superseded,
        _tmp: tmp,
    };
    // JetStream is ready once a QoS 1 publish is acknowledged on every node.
    for i in 0..3 {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let (ok, out) = publish(
                fleet.port(i),
                &fleet.a,
                "cbroker-dev-a",
                "edge/v1/cbroker-dev-a/up/heartbeat",
                "ready",
            );
            if ok {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "node {i} never acknowledged a publish: {out}\n{}",
                fleet.nats.logs()
            );
            std::thread::sleep(std::time::Duration::from_millis(300));
        }
    }
    fleet
}

#[test]
fn devices_are_isolated_and_the_gateway_sees_everything() {
    let f = fleet();
    let (p1, p2, p3) = (f.port(0), f.port(1), f.port(2));

    // 1. A cannot publish on B's up topics, nor on its own down topics; the gateway, on
    //    another node, reads every device's up/: the first message from A is A's own.
    let mut gateway = Subscriber::start(
        p1,
        &f.gateway,
        "gw-sub",
        &["edge/v1/+/up/status", "edge/v1/+/down/#"],
    );
    // NATS may close the connection of a client that breaks a permission: the result
    // of a forbidden publish is not asserted, only that it never arrives.
    let _ = publish(
        p2,
        &f.a,
        "cbroker-dev-a",
        "edge/v1/cbroker-dev-b/up/status",
        "forged-by-a",
    );
    let _ = publish(
        p2,
        &f.a,
        "cbroker-dev-a",
        "edge/v1/cbroker-dev-a/down/desired",
        "self-ordered",
    );
    publish_ok(
        p2,
        &f.a,
        "cbroker-dev-a",
        "edge/v1/cbroker-dev-a/up/status",
        "a-own",
    );
    assert_eq!(
        gateway.next_message(),
        "edge/v1/cbroker-dev-a/up/status a-own"
    );
    publish_ok(
        p3,
        &f.b,
        "cbroker-dev-b",
        "edge/v1/cbroker-dev-b/up/status",
        "b-own",
    );
    assert_eq!(
        gateway.next_message(),
        "edge/v1/cbroker-dev-b/up/status b-own"
    );
    drop(gateway);

    // 2. A cannot read B's down/ (desired sets may hold secrets), not through wildcards
    //    nor through the subjects NATS delivers QoS 1 messages on; the gateway writes
    //    every device's down/.
    let mut b_sub = Subscriber::start(p3, &f.b, "cbroker-dev-b", &["edge/v1/cbroker-dev-b/down/#"]);
    let mut a_sub = Subscriber::start(
        p2,
        &f.a,
        "cbroker-dev-a",
        &[
            "edge/v1/cbroker-dev-b/down/#",
            "edge/v1/+/up/#",
            "edge/v1/#",
            "#",
            "$MQTT/sub/#",
            "edge/v1/cbroker-dev-a/down/#",
        ],
    );
    publish_ok(
        p1,
        &f.gateway,
        "gw",
        "edge/v1/cbroker-dev-b/down/desired",
        "secret-for-b",
    );
    publish_ok(
        p1,
        &f.gateway,
        "gw",
        "edge/v1/cbroker-dev-b/up/status",
        "b-up-traffic",
    );
    publish_ok(
        p1,
        &f.gateway,
        "gw",
        "edge/v1/cbroker-dev-a/down/desired",
        "for-a",
    );
    assert_eq!(
        b_sub.next_message(),
        "edge/v1/cbroker-dev-b/down/desired secret-for-b"
    );
    assert_eq!(
        a_sub.next_message(),
        "edge/v1/cbroker-dev-a/down/desired for-a"
    );
    drop(a_sub);
    // B leaves first: two clients with one id take the session from each other, and
    // mosquitto_sub reconnects at once, so they would keep pushing each other off (a
    // message published meanwhile is lost to a clean session; a CI run under load saw it)
    drop(b_sub);

    // 3. Under B's client id, A still holds only A's permissions: it gets nothing of B's.
    let mut a_as_b = Subscriber::start(
        p1,
        &f.a,
        "cbroker-dev-b",
        &[
            "edge/v1/cbroker-dev-b/down/#",
            "edge/v1/cbroker-dev-a/down/#",
        ],
    );
    publish_ok(
        p2,
        &f.gateway,
        "gw",
        "edge/v1/cbroker-dev-b/down/desired",
        "second-for-b",
    );
    publish_ok(
        p2,
        &f.gateway,
        "gw",
        "edge/v1/cbroker-dev-a/down/desired",
        "second-for-a",
    );
    assert_eq!(
        a_as_b.next_message(),
        "edge/v1/cbroker-dev-a/down/desired second-for-a"
    );
    drop(a_as_b);
    let mut gateway = Subscriber::start(p3, &f.gateway, "gw-sub", &["edge/v1/+/up/status"]);
    let _ = publish(
        p1,
        &f.a,
        "cbroker-dev-b",
        "edge/v1/cbroker-dev-b/up/status",
        "forged-with-b-id",
    );
    publish_ok(
        p1,
        &f.a,
        "cbroker-dev-b",
        "edge/v1/cbroker-dev-a/up/status",
        "a-under-b-id",
    );
    assert_eq!(
        gateway.next_message(),
        "edge/v1/cbroker-dev-a/up/status a-under-b-id"
    );
}

#[test]
fn revoked_superseded_and_foreign_certificates_cannot_connect() {
    let f = fleet();
    let port = f.port(1);
    let (ok, out) = publish(
        port,
        &f.revoked,
        "cbroker-dev-c",
        "edge/v1/cbroker-dev-c/up/status",
        "from-revoked",
    );
    assert!(!ok, "revoked device connected: {out}\n{}", f.nats.logs());
    let (ok, out) = publish(
        port,
        &f.superseded,
        "cbroker-dev-d",
        "edge/v1/cbroker-dev-d/up/status",
        "old-certificate",
    );
    assert!(
        !ok,
        "a superseded certificate connected: {out}\n{}",
        f.nats.logs()
    );
    // Control: a valid device on the same node works.
    publish_ok(
        port,
        &f.a,
        "cbroker-dev-a",
        "edge/v1/cbroker-dev-a/up/status",
        "ok",
    );
    // Nobody can connect with a certificate from another CA.
    let other = tempfile::tempdir().unwrap();
    let foreign = enroll_device(
        &other.path().join("s"),
        &other.path().join("b"),
        "cbroker-dev-a",
        false,
    );
    let foreign = Identity {
        ca: f.a.ca.clone(),
        ..foreign
    };
    let (ok, out) = publish(
        port,
        &foreign,
        "cbroker-dev-a",
        "edge/v1/cbroker-dev-a/up/status",
        "foreign",
    );
    assert!(!ok, "a certificate from another CA was accepted: {out}");
}

/// `mosquitto_sub` for `id` with a last will on its `up/state`, killed later (SIGKILL)
/// so the broker publishes the will.
fn with_last_will(port: u16, id: &Identity, device: &str) -> std::process::Child {
    need("mosquitto_sub");
    let mut cmd = Command::new("mosquitto_sub");
    tls_args(&mut cmd, port, id, device);
    cmd.args(["-t", &format!("edge/v1/{device}/down/#")])
        .args(["--will-topic", &format!("edge/v1/{device}/up/state")])
        .args([
            "--will-payload",
            "offline-by-will",
            "--will-qos",
            "1",
            "--will-retain",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// A gateway subscription to device A's `up/state` on `node`, and the retained message it
/// got. Right after a node loss nats-server 2.9.10 sometimes acknowledges a subscription
/// and then sends it nothing, not even the retained message, for more than 20 s (a
/// clean-clone CI run on 2026-12-06); a subscription made again a little later gets it.
/// So a subscription that got nothing within 10 s is made again, for up to 60 s: the
/// retained message must still arrive, and whatever is asserted on it stays asserted.
fn subscribe_to_retained_state(f: &Fleet, node: usize, client_id: &str) -> (Subscriber, String) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut sub = Subscriber::start(
            f.port(node),
            &f.gateway,
            client_id,
            &["edge/v1/cbroker-dev-a/up/state"],
        );
        match sub.next_message_within(Duration::from_secs(10)) {
            Ok(message) => return (sub, message),
            Err(seen) if Instant::now() < deadline => {
                eprintln!(
                    "{client_id} on node {node}: no retained message in 10 s ({seen:?}); subscribing again"
                );
            }
            Err(seen) => panic!(
                "{client_id} on node {node}: no retained message for 60 s; output: {seen:#?}"
            ),
        }
    }
}

#[test]
fn retained_state_and_last_will_cross_nodes_and_survive_a_node_loss() {
    retained_state_and_last_will(false);
}

/// The same, and then the will, published after a node was lost, must be the retained
/// state for a new subscriber on another node too.
#[test]
#[ignore = "nats-server 2.9.10: after a node loss the will is delivered but the retained \
            state on the other nodes stayed the earlier one for 15 s in 2 of 3 clean-clone \
            runs under load (passes alone); run it with `cargo test --test \
            broker_isolation_nats -- --ignored`, see docs/brokers.md"]
fn a_will_after_a_node_loss_is_the_retained_state_on_every_node() {
    retained_state_and_last_will(true);
}

fn retained_state_and_last_will(check_retained_will: bool) {
    let mut f = fleet();
    // A retained "online" on node 1, read by the gateway on node 3.
    let retained = |f: &Fleet, node: usize| -> String {
        subscribe_to_retained_state(f, node, "gw-retained").1
    };
    let mut cmd = Command::new("mosquitto_pub");
    tls_args(&mut cmd, f.port(0), &f.a, "cbroker-dev-a");
    let out = cmd
        .args(["-r", "-t", "edge/v1/cbroker-dev-a/up/state", "-m", "online"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(retained(&f, 2), "edge/v1/cbroker-dev-a/up/state online");
    // The node it was published on dies: the retained message is still there.
    f.nats.kill(0);
    assert_eq!(retained(&f, 1), "edge/v1/cbroker-dev-a/up/state online");

    // A's last will, registered on node 2, reaches the gateway on node 3 when A dies.
    let (mut gateway, state) = subscribe_to_retained_state(&f, 2, "gw-will");
    assert_eq!(state, "edge/v1/cbroker-dev-a/up/state online");
    let mut a = with_last_will(f.port(1), &f.a, "cbroker-dev-a");
    std::thread::sleep(std::time::Duration::from_secs(2));
    a.kill().unwrap();
    let _ = a.wait();
    assert_eq!(
        gateway.next_message(),
        "edge/v1/cbroker-dev-a/up/state offline-by-will"
    );
    if !check_retained_will {
        return;
    }
    // And it is retained for whoever subscribes next, anywhere. NATS keeps retained
    // messages in a replicated JetStream stream that other nodes read asynchronously: a
    // subscriber right after the will may still get the one before, for a moment.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let mut last = retained(&f, 1);
    while last != "edge/v1/cbroker-dev-a/up/state offline-by-will"
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(500));
        last = retained(&f, 1);
    }
    assert_eq!(last, "edge/v1/cbroker-dev-a/up/state offline-by-will");
}
