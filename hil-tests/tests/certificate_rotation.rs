//! Rotation without reflashing (issue 15, item 2).
//!
//! Fleet CA rotation, on Mosquitto with the configuration
//! `edge-gateway broker-config mosquitto` writes, the real `edge-gateway` and a real
//! `edge-agent` enrolled zero-touch: a board enrolled under the first CA keeps its pod
//! running through `ca-rotation begin`, its renewal under the new CA (which brings it the
//! trust bundle), and `ca-rotation finish` with the broker's server certificate reissued
//! under the new CA; a client holding only a certificate of the first CA is refused
//! afterwards; the board's bootstrap directory was never touched. What Mosquitto reloads
//! on SIGHUP (server certificate, trusted CAs, CRLs). A board offline past the end
//! of its certificate enrolls again with its bootstrap file and a new key once the
//! operator allows it
//! (a valid token), and its pod's container is adopted, not restarted.
#![allow(clippy::unwrap_used)]

mod enrollment_bed;

use std::path::Path;
use std::time::Duration;

use clap::Parser;
use edge_gateway::enrollment::bootstrap_cli::{BootstrapFileArgs, bootstrap_file};
use edge_gateway::enrollment::ca_rotation_cli::{CaRotationArgs, ca_rotation};
use edge_gateway::enrollment::{EnrollmentLayout, FleetCa};
use edge_hil_tests::mqtt_cli::{Identity, publish};
use edge_hil_tests::scenario::{container_id, restart_count};
use edge_hil_tests::stack::{
    ChildProcess, Cluster, ClusterBackend, Gateway, GatewayOptions, Kubectl, eventually,
};
use enrollment_bed::{
    Agents, board_root, certificates_in, cluster_with_tokens, issuer_of, mosquitto_config,
    run_pod_on, running_pod, start_mosquitto, subject_of, token_secret, wait_ready,
};
use k8s_openapi::api::core::v1::Node;
use kube::Api;

const TOKEN: &str = "carotk.0123456789abcdef";

#[derive(Parser)]
struct BootstrapFileCli {
    #[command(flatten)]
    args: BootstrapFileArgs,
}

#[derive(Parser)]
struct RotationCli {
    #[command(flatten)]
    args: CaRotationArgs,
}

fn rotate(store: &Path, step: &[&str]) -> String {
    let mut argv = vec!["ca-rotation"];
    argv.extend_from_slice(step);
    let store = store.display().to_string();
    argv.extend_from_slice(&["--store-dir", &store]);
    let args = RotationCli::try_parse_from(argv).unwrap().args;
    let mut out = Vec::new();
    ca_rotation(&args, &mut out).unwrap_or_else(|e| panic!("ca-rotation {step:?}: {e}"));
    String::from_utf8(out).unwrap()
}

/// A client certificate of the CA in `ca_layout` for `cn`, written to `dir`, trusting
/// `trust` for the broker.
fn probe_identity(ca_layout: &EnrollmentLayout, cn: &str, dir: &Path, trust: &Path) -> Identity {
    let ca = FleetCa::load(ca_layout).unwrap();
    let issued = ca.issue_client(cn, Duration::from_secs(24 * 3600)).unwrap();
    std::fs::create_dir_all(dir).unwrap();
    let (cert, key, ca_copy) = (dir.join("c.pem"), dir.join("c.key"), dir.join("ca.pem"));
    std::fs::write(&cert, issued.cert_pem).unwrap();
    std::fs::write(&key, issued.key_pem).unwrap();
    std::fs::copy(trust, &ca_copy).unwrap();
    Identity {
        ca: ca_copy,
        cert,
        key,
    }
}

fn tree_digest(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            (p.display().to_string(), std::fs::read(&p).unwrap())
        })
        .collect();
    out.sort();
    out
}

/// The API emulator with the bootstrap token [`TOKEN`] applied (`tokens.yaml` in `dir`).
async fn cluster_with_token(dir: &Path) -> (Cluster, kube::Client, Kubectl) {
    cluster_with_tokens(
        ClusterBackend::Emulator,
        dir,
        &token_secret(TOKEN, "2099-01-01T00:00:00Z"),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_board_moves_to_a_new_fleet_ca_without_reflashing_over_mosquitto() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (cluster, client, _kubectl) = cluster_with_token(dir).await;
    let agents = Agents::from_env(dir);
    let tag = format!("carot{}", std::process::id());

    // Mosquitto with the generated configuration, the gateway trusting the bundle.
    let store = dir.join("store");
    let s = |p: &Path| p.display().to_string();
    let port = edge_hil_tests::stack::free_loopback_port().unwrap();
    let bootstrap_port = edge_hil_tests::stack::free_loopback_port().unwrap();
    let ports = [port, bootstrap_port];
    let conf_dir = dir.join("mosquitto");
    let conf = mosquitto_config(&store, &conf_dir, port, bootstrap_port);
    let mut broker = start_mosquitto(&conf, &ports, &dir.join("broker-1"));
    let layout = EnrollmentLayout::new(&store);
    let url = format!("mqtts://127.0.0.1:{port}");
    let mut gateway = Gateway::start(
        GatewayOptions {
            broker_url: Some(url.clone()),
            extra_args: vec![
                "--broker-ca".into(),
                s(&layout.trust_bundle()),
                "--broker-cert".into(),
                s(&layout.gateway_cert()),
                "--broker-key".into(),
                s(&layout.gateway_key()),
                "--mqtt-client-id".into(),
                edge_gateway::enrollment::GATEWAY_IDENTITY.into(),
                "--enrollment".into(),
                "--enrollment-auto-approve".into(),
                format!("carotk={tag}-*"),
                "--enrollment-certificate-validity".into(),
                "60s".into(),
            ],
            ..GatewayOptions::for_cluster(&cluster, store.clone())
        },
        dir,
    )
    .unwrap();
    let bootstrap_dir = dir.join("bootstrap");
    let args = BootstrapFileCli::try_parse_from([
        "bootstrap-file",
        "--store-dir",
        &s(&store),
        "--out-dir",
        &s(&bootstrap_dir),
        "--token",
        TOKEN,
        "--bootstrap-broker-url",
        &format!("mqtts://127.0.0.1:{bootstrap_port}"),
        "--broker-url",
        &url,
        "--device-id-template",
        &format!("{tag}-{{serial}}"),
    ])
    .unwrap()
    .args;
    let file = bootstrap_file(&args, &mut Vec::new()).unwrap();
    let flashed = tree_digest(&bootstrap_dir);

    // The board enrolls under the first CA and runs a pod.
    let serial = "7000000000000c01";
    let id = format!("{tag}-{serial}");
    let mut agent = agents.spawn("board", &file, &board_root(dir, "board", serial));
    let identity = agents.identity_dir("board");
    let nodes: Api<Node> = Api::all(client.clone());
    let logs = |agent: &ChildProcess, broker: &ChildProcess, gateway: &Gateway| {
        format!(
            "agent:\n{}\nmosquitto:\n{}\ngateway:\n{}",
            agent.log(),
            broker.log(),
            gateway.log()
        )
    };
    wait_ready(&nodes, &id, || logs(&agent, &broker, &gateway)).await;
    let first_ca = subject_of(&layout.ca_cert());
    assert_eq!(issuer_of(&identity.join("device.pem")), first_ca);
    let namespace = tag.clone();
    let (pods, container) = run_pod_on(&client, &namespace, &id)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", logs(&agent, &broker, &gateway)));

    // begin: a new CA issues, the broker trusts both (its server certificate stays
    // under the first CA, which the board trusts).
    let old_probe = probe_identity(
        &layout,
        &format!("{tag}-old-probe"),
        &dir.join("old-probe"),
        &layout.trust_bundle(),
    );
    let begun_at = agent.log().len();
    let out = rotate(&store, &["begin"]);
    assert!(out.contains("rotation begun"), "{out}");
    assert!(out.contains(&id), "{out}");
    let new_ca = subject_of(&layout.ca_cert());
    assert_ne!(new_ca, first_ca);
    assert_eq!(certificates_in(&layout.trust_bundle()), 2);
    let conf = mosquitto_config(&store, &conf_dir, port, bootstrap_port);
    assert_eq!(issuer_of(&conf_dir.join("server.pem")), first_ca);
    broker.kill9();
    broker = start_mosquitto(&conf, &ports, &dir.join("broker-2"));
    let topic = |cn: &str| format!("edge/v1/{cn}/up/heartbeat");
    let (ok, output) = publish(
        port,
        &old_probe,
        &format!("{tag}-old-probe"),
        &topic(&format!("{tag}-old-probe")),
        "x",
    );
    assert!(
        ok,
        "a first-CA client is accepted during the overlap: {output}"
    );

    // The board renews under the new CA and receives the bundle with its certificate.
    eventually(
        "the board's certificate issued by the new CA",
        Duration::from_secs(120),
        || {
            let issuer = issuer_of(&identity.join("device.pem"));
            let new_ca = new_ca.clone();
            async move { Ok((issuer == new_ca).then_some(())) }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", logs(&agent, &broker, &gateway)));
    assert_eq!(
        certificates_in(&identity.join("ca.pem")),
        2,
        "the trust bundle"
    );
    // Connected again after that renewal: with the new certificate, to the broker whose
    // server certificate is still the first CA's (trusted through the bundle).
    eventually(
        "the board back on the broker under its new certificate",
        Duration::from_secs(60),
        || {
            let log = agent.log();
            let since = &log[begun_at.min(log.len())..];
            let back = since
                .find("device certificate renewed")
                .is_some_and(|at| since[at..].contains("connected to broker"));
            async move { Ok(back.then_some(())) }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", logs(&agent, &broker, &gateway)));
    wait_ready(&nodes, &id, || logs(&agent, &broker, &gateway)).await;
    let status = rotate(&store, &["status"]);
    assert!(
        status.contains("devices still on the previous CA: 0 []"),
        "{status}"
    );

    // finish: the first CA is dropped, the server certificate and the gateway's client
    // identity are reissued under the new CA; broker and gateway restart.
    let out = rotate(&store, &["finish"]);
    assert!(out.contains("rotation finished"), "{out}");
    assert_eq!(certificates_in(&layout.trust_bundle()), 1);
    let conf = mosquitto_config(&store, &conf_dir, port, bootstrap_port);
    assert_eq!(issuer_of(&conf_dir.join("server.pem")), new_ca);
    assert_eq!(issuer_of(&layout.gateway_cert()), new_ca);
    broker.kill9();
    broker = start_mosquitto(&conf, &ports, &dir.join("broker-3"));
    gateway.restart().unwrap();
    eventually(
        "the board on the broker that trusts only the new CA",
        Duration::from_secs(60),
        || {
            let back = broker.log().contains(&format!("u'{id}'"));
            async move { Ok(back.then_some(())) }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", logs(&agent, &broker, &gateway)));
    wait_ready(&nodes, &id, || logs(&agent, &broker, &gateway)).await;

    // A client with only a first-CA certificate is refused now; one of the new CA is not.
    let (ok, output) = publish(
        port,
        &Identity {
            ca: layout.trust_bundle(),
            ..old_probe.clone()
        },
        &format!("{tag}-old-probe"),
        &topic(&format!("{tag}-old-probe")),
        "x",
    );
    assert!(!ok, "a first-CA client is refused after finish: {output}");
    let new_probe = probe_identity(
        &layout,
        &format!("{tag}-new-probe"),
        &dir.join("new-probe"),
        &layout.trust_bundle(),
    );
    let (ok, output) = publish(
        port,
        &new_probe,
        &format!("{tag}-new-probe"),
        &topic(&format!("{tag}-new-probe")),
        "x",
    );
    assert!(ok, "a new-CA client is accepted: {output}");

    // Never reflashed, enrolled once, the pod's container never restarted.
    assert_eq!(tree_digest(&bootstrap_dir), flashed);
    assert!(agent.is_running(), "{}", agent.log());
    assert_eq!(
        agent
            .log()
            .matches("enrolling with the bootstrap token")
            .count(),
        1,
        "{}",
        agent.log()
    );
    let after = running_pod(pods.clone()).await.unwrap().unwrap();
    assert_eq!(
        container_id(&after).as_deref(),
        Some(container.as_str()),
        "{}",
        logs(&agent, &broker, &gateway)
    );
    assert_eq!(restart_count(&after), 0);
    agent.terminate(Duration::from_secs(10));
    edge_hil_tests::stack::remove_pod_containers(&namespace);
}

/// What Mosquitto (2.0.x, the Debian package) reloads on SIGHUP with the generated
/// configuration (which names a `crlfile`): the server certificate and key, the trusted
/// CAs (`cafile`: a CA added is trusted, a CA taken out is not) and the CRLs. So a renewed
/// server certificate, `ca-rotation begin` and `ca-rotation finish` need only
/// `kill -HUP` (connections already open stay up).
#[test]
fn mosquitto_sighup_loads_the_rotated_cas_and_server_certificate_of_the_generated_config() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let store = dir.join("store");
    let port = edge_hil_tests::stack::free_loopback_port().unwrap();
    let bootstrap_port = edge_hil_tests::stack::free_loopback_port().unwrap();
    let ports = [port, bootstrap_port];
    let conf_dir = dir.join("mosquitto");
    let layout = EnrollmentLayout::new(&store);
    let conf = mosquitto_config(&store, &conf_dir, port, bootstrap_port);
    let mut broker = start_mosquitto(&conf, &ports, &dir.join("broker-1"));
    let hup = |broker: &ChildProcess| {
        let status = std::process::Command::new("kill")
            .args(["-HUP", &broker.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        std::thread::sleep(Duration::from_millis(500));
    };
    let connects = |who: &str, id: &Identity| {
        let cn = format!("carot-hup-{who}");
        publish(port, id, &cn, &format!("edge/v1/{cn}/up/heartbeat"), "x")
    };
    let first_ca = dir.join("first-ca.pem");
    std::fs::copy(layout.ca_cert(), &first_ca).unwrap();
    let old_client = probe_identity(&layout, "carot-hup-old", &dir.join("old"), &first_ca);

    // begin: the new CA's clients are accepted after a SIGHUP.
    rotate(&store, &["begin"]);
    let new_only = dir.join("new-ca.pem");
    std::fs::copy(layout.ca_cert(), &new_only).unwrap();
    let new_client = probe_identity(&layout, "carot-hup-new", &dir.join("new"), &first_ca);
    let (ok, out) = connects("new", &new_client);
    assert!(!ok, "the new CA is not trusted before the reload: {out}");
    mosquitto_config(&store, &conf_dir, port, bootstrap_port);
    hup(&broker);
    let (ok, out) = connects("new", &new_client);
    assert!(ok, "SIGHUP loads the CA added to cafile: {out}");

    // finish: the server certificate under the new CA is picked up by a SIGHUP (a
    // client trusting only the new CA accepts the broker) ...
    rotate(&store, &["finish", "--force"]);
    mosquitto_config(&store, &conf_dir, port, bootstrap_port);
    let trusting_new = Identity {
        ca: new_only.clone(),
        ..new_client.clone()
    };
    let (ok, out) = connects("new", &trusting_new);
    assert!(!ok, "the old server certificate until the SIGHUP: {out}");
    hup(&broker);
    let (ok, out) = connects("new", &trusting_new);
    assert!(ok, "the new server certificate after the SIGHUP: {out}");
    // ... and the dropped CA is no longer trusted.
    let old_trusting_new = Identity {
        ca: new_only.clone(),
        ..old_client.clone()
    };
    let (ok, out) = connects("old", &old_trusting_new);
    assert!(
        !ok,
        "a CA taken out of cafile is refused after SIGHUP: {out}"
    );
    let (ok, out) = connects("new", &trusting_new);
    assert!(ok, "{out}");
    broker.kill9();
}

/// A board stopped (offline) until its 60 s certificate has expired: started again it is
/// refused while its bootstrap token is deleted (the agent stops and says why), and once
/// the operator recreates the token it enrolls again with its bootstrap file and a new
/// key, its Node turns Ready and its pod's container was never restarted.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_board_offline_past_expiry_enrolls_again_once_allowed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (cluster, client, kubectl) = cluster_with_token(dir).await;
    let agents = Agents::from_env(dir);
    let tag = format!("carox{}", std::process::id());
    let tokens_file = dir.join("tokens.yaml");
    let apply_token = || {
        kubectl
            .run(&["apply", "-f", &tokens_file.display().to_string()])
            .unwrap();
    };
    let store = dir.join("store");
    let gateway = Gateway::start(
        GatewayOptions {
            extra_args: vec![
                "--enrollment".into(),
                "--enrollment-auto-approve".into(),
                format!("carotk={tag}-*"),
                "--enrollment-certificate-validity".into(),
                "60s".into(),
            ],
            ..GatewayOptions::for_cluster(&cluster, store.clone())
        },
        dir,
    )
    .unwrap();
    let s = |p: &Path| p.display().to_string();
    let args = BootstrapFileCli::try_parse_from([
        "bootstrap-file",
        "--store-dir",
        &s(&store),
        "--out-dir",
        &s(&dir.join("bootstrap")),
        "--token",
        TOKEN,
        "--bootstrap-broker-url",
        &gateway.broker_url(),
        "--device-id-template",
        &format!("{tag}-{{serial}}"),
    ])
    .unwrap()
    .args;
    let file = bootstrap_file(&args, &mut Vec::new()).unwrap();
    let serial = "7000000000000e01";
    let id = format!("{tag}-{serial}");
    let root = board_root(dir, "board", serial);
    let mut agent = agents.spawn("board", &file, &root);
    let nodes: Api<Node> = Api::all(client.clone());
    wait_ready(&nodes, &id, || {
        format!("{}\n{}", agent.log(), gateway.log())
    })
    .await;

    let namespace = tag.clone();
    let (pods, container) = run_pod_on(&client, &namespace, &id)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}\n{}", agent.log(), gateway.log()));

    // Offline until its certificate has expired (the containers keep running).
    agent.terminate(Duration::from_secs(10));
    let cert_path = agents.identity_dir("board").join("device.pem");
    let cert = std::fs::read(&cert_path).unwrap();
    let (_, pem) = x509_parser::pem::parse_x509_pem(&cert).unwrap();
    let not_after = pem.parse_x509().unwrap().validity().not_after.timestamp();
    let key_before = std::fs::read(agents.identity_dir("board").join("device.key")).unwrap();
    let wait = not_after + 2 - jiff::Timestamp::now().as_second();
    tokio::time::sleep(Duration::from_secs(wait.max(0) as u64)).await;

    // Not allowed: the token was deleted. The agent says so and stops.
    kubectl
        .run(&[
            "delete",
            "secret",
            "-n",
            "edge-kube-system",
            &format!("bootstrap-token-{}", TOKEN.split_once('.').unwrap().0),
        ])
        .unwrap();
    let mut refused = agents.spawn("board", &file, &root);
    eventually("the refused agent to stop", Duration::from_secs(60), || {
        let exited = !refused.is_running();
        async move { Ok(exited.then_some(())) }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", refused.log()));
    let log = refused.log();
    assert!(
        log.contains("expired while offline") && log.contains("TokenInvalid"),
        "{log}"
    );

    // Allowed: the token is back; the board enrolls again (with the new key it made when
    // it found its certificate expired).
    apply_token();
    let mut agent = agents.spawn("board", &file, &root);
    eventually(
        "a new certificate for the board",
        Duration::from_secs(60),
        || {
            let renewed = std::fs::read(&cert_path).unwrap() != cert;
            async move { Ok(renewed.then_some(())) }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}\n{}", agent.log(), gateway.log()));
    assert!(
        agent.log().contains("enrolling with the bootstrap token"),
        "{}",
        agent.log()
    );
    assert_ne!(
        std::fs::read(agents.identity_dir("board").join("device.key")).unwrap(),
        key_before,
        "a new key"
    );
    wait_ready(&nodes, &id, || {
        format!("{}\n{}", agent.log(), gateway.log())
    })
    .await;
    let after = eventually(
        "the pod running on the board again",
        Duration::from_secs(60),
        || running_pod(pods.clone()),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}\n{}", agent.log(), gateway.log()));
    assert_eq!(container_id(&after).as_deref(), Some(container.as_str()));
    assert_eq!(restart_count(&after), 0);
    agent.terminate(Duration::from_secs(10));
    edge_hil_tests::stack::remove_pod_containers(&namespace);
}
