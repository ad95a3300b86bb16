//! Zero-touch enrollment, kubelet TLS bootstrap style, with the real `edge-gateway` and
//! real `edge-agent`s: one bootstrap file for every simulated board (each with its own
//! fake device-tree serial), bootstrap tokens as Secrets, each device's CSR a
//! `certificates.k8s.io/v1` CertificateSigningRequest with the gateway's signer.
//!
//! - several boards enrolled by the gateway's auto-approval rule become Ready Nodes
//!   under their own certificates (CN = the id derived from the serial);
//! - a board whose request matches no rule waits until `kubectl certificate approve`;
//! - an expired token and a revoked (deleted) token are refused with a clear message,
//!   and the agent stops;
//! - a second board with the id of an enrolled one (a cloned SD card) is refused and a
//!   `DuplicateDeviceId` Warning Event names the id.
//!
//! On the real control plane (kube-apiserver with the CSR API; the gateway under its
//! shipped ClusterRole, so the `signers` approve/sign rules are exercised) and on the
//! API emulator, with the embedded broker.
#![allow(clippy::unwrap_used)]

mod enrollment_bed;

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use edge_gateway::enrollment::bootstrap_cli::{BootstrapFileArgs, bootstrap_file};
use edge_hil_tests::stack::{ChildProcess, ClusterBackend, Gateway, GatewayOptions, eventually};
use enrollment_bed::{
    Agents, board_root, cluster_with_tokens, mosquitto_config, start_mosquitto, token_secret,
    wait_ready,
};
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use k8s_openapi::api::core::v1::{Event, Node};
use kube::Api;
use kube::api::ListParams;

#[derive(Parser)]
struct BootstrapFileCli {
    #[command(flatten)]
    args: BootstrapFileArgs,
}

const AUTO_TOKEN: &str = "ztauto.0123456789abcdef";
const MANUAL_TOKEN: &str = "ztmanu.0123456789abcdef";
const EXPIRED_TOKEN: &str = "ztexpd.0123456789abcdef";
const REVOKED_TOKEN: &str = "ztrevk.0123456789abcdef";
const AUTO_BOARDS: usize = 5;

fn backend_letter(backend: ClusterBackend) -> char {
    match backend {
        ClusterBackend::ControlPlane => 'c',
        _ => 'e',
    }
}

fn write_bootstrap(
    store: &Path,
    out_dir: &Path,
    token: &str,
    broker: &str,
    template: &str,
) -> PathBuf {
    let args = BootstrapFileCli::try_parse_from([
        "bootstrap-file",
        "--store-dir",
        &store.display().to_string(),
        "--out-dir",
        &out_dir.display().to_string(),
        "--token",
        token,
        "--bootstrap-broker-url",
        broker,
        "--device-id-template",
        template,
        "--identity-dir",
        "/nonexistent/overridden-per-board",
    ])
    .unwrap()
    .args;
    bootstrap_file(&args, &mut Vec::new()).unwrap()
}

async fn csr_of(csrs: &Api<CertificateSigningRequest>, id: &str) -> Vec<CertificateSigningRequest> {
    csrs.list(&ListParams::default().labels(&format!("edge-kube.io/device-id={id}")))
        .await
        .unwrap()
        .items
}

/// Waits until `agent` exits by itself and returns its log.
async fn refused_log(agent: &mut ChildProcess, what: &str) -> String {
    eventually(what, Duration::from_secs(60), || {
        let exited = !agent.is_running();
        async move { Ok(exited.then_some(())) }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", agent.log()));
    let log = agent.log();
    assert_ne!(agent.exit_code(), Some(0), "{log}");
    log
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn boards_enroll_from_one_bootstrap_file_on_the_control_plane() {
    boards_enroll_from_one_bootstrap_file(ClusterBackend::ControlPlane).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn boards_enroll_from_one_bootstrap_file_on_the_emulator() {
    boards_enroll_from_one_bootstrap_file(ClusterBackend::Emulator).await;
}

async fn boards_enroll_from_one_bootstrap_file(backend: ClusterBackend) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // Bootstrap tokens, as an operator creates them.
    let manifests = [
        token_secret(AUTO_TOKEN, "2099-01-01T00:00:00Z"),
        token_secret(MANUAL_TOKEN, "2099-01-01T00:00:00Z"),
        token_secret(EXPIRED_TOKEN, "2020-01-01T00:00:00Z"),
        token_secret(REVOKED_TOKEN, "2099-01-01T00:00:00Z"),
    ]
    .concat();
    let (cluster, client, kubectl) = cluster_with_tokens(backend, dir, &manifests).await;
    let agents = Agents::from_env(dir);
    let tag = format!("zt{}{}", std::process::id(), backend_letter(backend));
    // Revoking a token is deleting its Secret.
    kubectl
        .run(&[
            "-n",
            "edge-kube-system",
            "delete",
            "secret",
            "bootstrap-token-ztrevk",
        ])
        .unwrap();

    let store = dir.join("store");
    let auto_pattern = format!("{tag}-a-*");
    let gateway = Gateway::start(
        GatewayOptions {
            extra_args: vec![
                "--enrollment".into(),
                "--enrollment-auto-approve".into(),
                format!("ztauto={auto_pattern}"),
                "--enrollment-certificate-validity".into(),
                "1h".into(),
            ],
            ..GatewayOptions::for_cluster(&cluster, store.clone())
        },
        dir,
    )
    .unwrap();
    let broker = gateway.broker_url();

    // One bootstrap file for every auto-approved board.
    let auto_file = write_bootstrap(
        &store,
        &dir.join("bootstrap-auto"),
        AUTO_TOKEN,
        &broker,
        &format!("{tag}-a-{{serial}}"),
    );
    let mut running = Vec::new();
    let mut ids = Vec::new();
    for i in 0..AUTO_BOARDS {
        let serial = format!("10000000{:08x}", 0xabc000 + i);
        let root = board_root(dir, &format!("auto-{i}"), &serial);
        ids.push(format!("{tag}-a-{serial}"));
        running.push(agents.spawn(&format!("auto-{i}"), &auto_file, &root));
    }
    let nodes: Api<Node> = Api::all(client.clone());
    let csrs: Api<CertificateSigningRequest> = Api::all(client.clone());
    let logs = |agents: &[ChildProcess]| {
        let mut s = format!("gateway:\n{}\n", gateway.log());
        for a in agents {
            s.push_str(&format!("{}:\n{}\n", a.name(), a.log()));
        }
        s
    };
    for id in &ids {
        wait_ready(&nodes, id, || logs(&running)).await;
        let found = csr_of(&csrs, id).await;
        assert_eq!(found.len(), 1, "{found:?}");
        let csr = &found[0];
        assert_eq!(csr.spec.signer_name, "edge-kube.io/device-client");
        let status = csr.status.clone().unwrap();
        let approved = status
            .conditions
            .unwrap_or_default()
            .into_iter()
            .find(|c| c.type_ == "Approved")
            .unwrap();
        assert_eq!(approved.reason.as_deref(), Some("EdgeAutoApproved"));
        let cert = String::from_utf8(status.certificate.unwrap().0).unwrap();
        let (_, pem) = x509_parser::pem::parse_x509_pem(cert.as_bytes()).unwrap();
        let x509 = pem.parse_x509().unwrap();
        let cn = x509
            .subject()
            .iter_common_name()
            .next()
            .unwrap()
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(&cn, id);
        let lifetime =
            x509.validity().not_after.timestamp() - x509.validity().not_before.timestamp();
        assert!(
            lifetime <= 3600 + 900,
            "validity from --enrollment-certificate-validity: {lifetime}s"
        );
        assert_eq!(
            csr.metadata.annotations.as_ref().unwrap()["edge-kube.io/bootstrap-token-id"],
            "ztauto"
        );
    }
    // The key never left the board: the identity directory holds it, 0600.
    let key = dir.join("identity/auto-0/device.key");
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // A board whose request matches no rule waits for `kubectl certificate approve`.
    let manual_file = write_bootstrap(
        &store,
        &dir.join("bootstrap-manual"),
        MANUAL_TOKEN,
        &broker,
        &format!("{tag}-m-{{serial}}"),
    );
    let manual_id = format!("{tag}-m-20000000000000aa");
    let manual = agents.spawn(
        "manual",
        &manual_file,
        &board_root(dir, "manual", "20000000000000aa"),
    );
    let name = eventually("the manual board's CSR", Duration::from_secs(60), || {
        let csrs = csrs.clone();
        let id = manual_id.clone();
        async move {
            let found = csr_of(&csrs, &id).await;
            Ok(found.first().and_then(|c| c.metadata.name.clone()))
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}\n{}", manual.log(), gateway.log()));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        nodes.get_opt(&manual_id).await.unwrap().is_none(),
        "no Node before approval"
    );
    assert!(
        manual.log().contains("kubectl certificate approve"),
        "{}",
        manual.log()
    );
    kubectl.run(&["certificate", "approve", &name]).unwrap();
    wait_ready(&nodes, &manual_id, || {
        format!("{}\n{}", manual.log(), gateway.log())
    })
    .await;

    // Expired and revoked tokens are refused, and the agents say why.
    let expired_file = write_bootstrap(
        &store,
        &dir.join("bootstrap-expired"),
        EXPIRED_TOKEN,
        &broker,
        &format!("{tag}-x-{{serial}}"),
    );
    let mut expired = agents.spawn(
        "expired",
        &expired_file,
        &board_root(dir, "expired", "30000000000000aa"),
    );
    let log = refused_log(&mut expired, "the agent with an expired token to stop").await;
    assert!(
        log.contains("TokenExpired") && log.contains("expired at 2020-01-01"),
        "{log}"
    );
    let revoked_file = write_bootstrap(
        &store,
        &dir.join("bootstrap-revoked"),
        REVOKED_TOKEN,
        &broker,
        &format!("{tag}-r-{{serial}}"),
    );
    let mut revoked = agents.spawn(
        "revoked",
        &revoked_file,
        &board_root(dir, "revoked", "40000000000000aa"),
    );
    let log = refused_log(&mut revoked, "the agent with a revoked token to stop").await;
    assert!(log.contains("TokenInvalid"), "{log}");
    for id in [
        format!("{tag}-x-30000000000000aa"),
        format!("{tag}-r-40000000000000aa"),
    ] {
        assert!(
            csr_of(&csrs, &id).await.is_empty(),
            "no CSR for a refused token"
        );
        assert!(nodes.get_opt(&id).await.unwrap().is_none());
    }

    // A clone of board 0 (same serial, its own new key) is refused with an Event.
    let mut clone = agents.spawn(
        "clone",
        &auto_file,
        &board_root(dir, "clone", &format!("10000000{:08x}", 0xabc000)),
    );
    let log = refused_log(&mut clone, "the cloned board to stop").await;
    assert!(log.contains("DuplicateId"), "{log}");
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    let duplicate = events
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .find(|e| {
            e.reason.as_deref() == Some("DuplicateDeviceId")
                && e.involved_object.name.as_deref() == Some(ids[0].as_str())
        });
    let duplicate =
        duplicate.unwrap_or_else(|| panic!("no DuplicateDeviceId event\n{}", gateway.log()));
    assert_eq!(duplicate.type_.as_deref(), Some("Warning"));
    assert!(duplicate.message.unwrap().contains("cloned SD card"));
    // The original is still Ready under its certificate.
    wait_ready(&nodes, &ids[0], || logs(&running)).await;

    for mut agent in running.into_iter().chain([manual]) {
        agent.terminate(Duration::from_secs(10));
    }
    let forbidden = edge_hil_tests::stack::rbac_refusals(&gateway.log());
    assert!(
        forbidden.is_empty(),
        "the API server refused gateway calls (403):\n{}",
        forbidden.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_board_renews_its_certificate_while_its_pod_keeps_running_on_the_control_plane() {
    a_board_renews_its_certificate_while_its_pod_keeps_running(ClusterBackend::ControlPlane).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_board_renews_its_certificate_while_its_pod_keeps_running_on_the_emulator() {
    a_board_renews_its_certificate_while_its_pod_keeps_running(ClusterBackend::Emulator).await;
}

/// Certificates of 60 s: the agent renews at 70-90 % of the lifetime over its own
/// identity (a new key, a CSR on `edge/v1/<id>/up/csr`, approved as a renewal without a
/// rule), swaps key and certificate, and its pod's container is never restarted.
async fn a_board_renews_its_certificate_while_its_pod_keeps_running(backend: ClusterBackend) {
    use edge_hil_tests::scenario::{container_id, pod_manifest, restart_count};
    use k8s_openapi::api::core::v1::{Namespace, Pod};
    use kube::api::PostParams;

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (cluster, client, _kubectl) = cluster_with_tokens(
        backend,
        dir,
        &token_secret(AUTO_TOKEN, "2099-01-01T00:00:00Z"),
    )
    .await;
    let agents = Agents::from_env(dir);
    // Unique per test: both backends run at once in this process, on the one Podman.
    let tag = format!("ztr{}{}", std::process::id(), backend_letter(backend));
    let store = dir.join("store");
    let gateway = Gateway::start(
        GatewayOptions {
            extra_args: vec![
                "--enrollment".into(),
                "--enrollment-auto-approve".into(),
                format!("ztauto={tag}-*"),
                "--enrollment-certificate-validity".into(),
                "60s".into(),
            ],
            ..GatewayOptions::for_cluster(&cluster, store.clone())
        },
        dir,
    )
    .unwrap();
    let file = write_bootstrap(
        &store,
        &dir.join("bootstrap"),
        AUTO_TOKEN,
        &gateway.broker_url(),
        &format!("{tag}-{{serial}}"),
    );
    let id = format!("{tag}-50000000000000aa");
    let agent = agents.spawn(
        "rotating",
        &file,
        &board_root(dir, "rotating", "50000000000000aa"),
    );
    let nodes: Api<Node> = Api::all(client.clone());
    let csrs: Api<CertificateSigningRequest> = Api::all(client.clone());
    let logs = || format!("agent:\n{}\ngateway:\n{}", agent.log(), gateway.log());
    wait_ready(&nodes, &id, logs).await;
    let cert_path = dir.join("identity/rotating/device.pem");
    let first_cert = std::fs::read_to_string(&cert_path).unwrap();
    let (_, pem) = x509_parser::pem::parse_x509_pem(first_cert.as_bytes()).unwrap();
    let first_not_after = pem.parse_x509().unwrap().validity().not_after.timestamp();

    // A pod on the board.
    let namespace = tag.clone();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({"metadata": {"name": namespace}})).unwrap(),
        )
        .await
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    let pod = pod_manifest(
        "keeps-running",
        &[("kubernetes.io/hostname", id.as_str())],
        true,
        "Always",
        "sleep 3600",
    );
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let running = |pods: Api<Pod>| async move {
        match pods.get_opt("keeps-running").await {
            Ok(Some(p)) if container_id(&p).is_some() => Ok(Some(p)),
            Ok(other) => Err(format!("{:?}", other.map(|p| p.status))),
            Err(e) => Err(e.to_string()),
        }
    };
    let before = eventually(
        "the pod running on the board",
        Duration::from_secs(90),
        || running(pods.clone()),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", logs()));
    let container = container_id(&before).unwrap();

    // The renewal: at 42-54 s of the 60 s lifetime.
    eventually(
        "the board's certificate renewed",
        Duration::from_secs(90),
        || {
            let renewed = agent.log().contains("device certificate renewed");
            async move { Ok(renewed.then_some(())) }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", logs()));
    assert!(
        jiff::Timestamp::now().as_second() <= first_not_after,
        "renewed only after the first certificate expired\n{}",
        logs()
    );
    let renewed_cert = std::fs::read_to_string(&cert_path).unwrap();
    assert_ne!(first_cert, renewed_cert, "a new certificate on disk");
    let found = csr_of(&csrs, &id).await;
    let reasons: Vec<String> = found
        .iter()
        .filter_map(|c| {
            c.status
                .as_ref()?
                .conditions
                .as_ref()?
                .first()?
                .reason
                .clone()
        })
        .collect();
    assert!(
        reasons.iter().any(|r| r == "EdgeRenewalApproved"),
        "{reasons:?}"
    );
    assert!(found.len() >= 2, "{found:?}");

    // The board is back under the new certificate, the first one has expired, and the pod's
    // container was never restarted.
    let left = first_not_after + 2 - jiff::Timestamp::now().as_second();
    tokio::time::sleep(Duration::from_secs(left.max(0) as u64)).await;
    wait_ready(&nodes, &id, logs).await;
    let after = running(pods.clone()).await.unwrap().unwrap();
    assert_eq!(
        container_id(&after).as_deref(),
        Some(container.as_str()),
        "{}",
        logs()
    );
    assert_eq!(restart_count(&after), 0, "{}", logs());
    let mut agent = agent;
    agent.terminate(Duration::from_secs(10));
    edge_hil_tests::stack::remove_pod_containers(&namespace);
    let forbidden = edge_hil_tests::stack::rbac_refusals(&gateway.log());
    assert!(forbidden.is_empty(), "{}", forbidden.join("\n"));
}

/// The production path: Mosquitto with the generated configuration (device listener with
/// the fleet CA, enrollment listener with the bootstrap CA), boards enrolling over the
/// enrollment listener and connecting to the device listener under their own
/// certificates; then a renewal of 60 s certificates, and once the first certificate
/// has expired a broker restart: the board reconnects, so it presents the renewed one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn boards_enroll_and_renew_over_mosquitto_with_the_generated_config() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (cluster, client, _kubectl) = cluster_with_tokens(
        ClusterBackend::Emulator,
        dir,
        &token_secret(AUTO_TOKEN, "2099-01-01T00:00:00Z"),
    )
    .await;
    let agents = Agents::from_env(dir);
    let tag = format!("ztm{}", std::process::id());

    let store = dir.join("store");
    let s = |p: &Path| p.display().to_string();
    let port = edge_hil_tests::stack::free_loopback_port().unwrap();
    let bootstrap_port = edge_hil_tests::stack::free_loopback_port().unwrap();
    let conf_dir = dir.join("mosquitto");
    let conf = mosquitto_config(&store, &conf_dir, port, bootstrap_port);
    let mut broker = start_mosquitto(&conf, &[port, bootstrap_port], &dir.join("broker-1"));

    let layout = edge_gateway::enrollment::EnrollmentLayout::new(&store);
    let url = format!("mqtts://127.0.0.1:{port}");
    let gateway = Gateway::start(
        GatewayOptions {
            broker_url: Some(url.clone()),
            extra_args: vec![
                "--broker-ca".into(),
                s(&layout.ca_cert()),
                "--broker-cert".into(),
                s(&layout.gateway_cert()),
                "--broker-key".into(),
                s(&layout.gateway_key()),
                "--mqtt-client-id".into(),
                edge_gateway::enrollment::GATEWAY_IDENTITY.into(),
                "--enrollment".into(),
                "--enrollment-auto-approve".into(),
                format!("ztauto={tag}-*"),
                "--enrollment-certificate-validity".into(),
                "60s".into(),
            ],
            ..GatewayOptions::for_cluster(&cluster, store.clone())
        },
        dir,
    )
    .unwrap();
    let args = BootstrapFileCli::try_parse_from([
        "bootstrap-file",
        "--store-dir",
        &s(&store),
        "--out-dir",
        &s(&dir.join("bootstrap")),
        "--token",
        AUTO_TOKEN,
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

    let nodes: Api<Node> = Api::all(client.clone());
    let mut boards = Vec::new();
    let mut ids = Vec::new();
    for i in 0..2 {
        let serial = format!("6000000000000{i:03x}");
        ids.push(format!("{tag}-{serial}"));
        boards.push(agents.spawn(
            &format!("mq-{i}"),
            &file,
            &board_root(dir, &format!("mq-{i}"), &serial),
        ));
    }
    let logs = |boards: &[ChildProcess], broker: &ChildProcess| {
        let mut s = format!(
            "gateway:\n{}\nmosquitto:\n{}\n",
            gateway.log(),
            broker.log()
        );
        for b in boards {
            s.push_str(&format!("{}:\n{}\n", b.name(), b.log()));
        }
        s
    };
    for id in &ids {
        wait_ready(&nodes, id, || logs(&boards, &broker)).await;
        let log = broker.log();
        assert!(
            log.contains(&format!("as bootstrap_{id} ")),
            "enrolled over the enrollment listener:\n{log}"
        );
        assert!(
            log.contains(&format!("u'{id}'")),
            "connected under its own certificate:\n{log}"
        );
    }
    let first_cert = std::fs::read_to_string(dir.join("identity/mq-0/device.pem")).unwrap();

    // Renewal, then the first certificate expires, then the broker restarts.
    eventually("both boards renewed", Duration::from_secs(90), || {
        let renewed = boards
            .iter()
            .all(|b| b.log().contains("device certificate renewed"));
        async move { Ok(renewed.then_some(())) }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", logs(&boards, &broker)));
    let (_, pem) = x509_parser::pem::parse_x509_pem(first_cert.as_bytes()).unwrap();
    let first_not_after = pem.parse_x509().unwrap().validity().not_after.timestamp();
    let wait = first_not_after + 2 - jiff::Timestamp::now().as_second();
    if wait > 0 {
        tokio::time::sleep(Duration::from_secs(wait as u64)).await;
    }
    broker.kill9();
    let broker = start_mosquitto(&conf, &[port, bootstrap_port], &dir.join("broker-2"));
    for id in &ids {
        eventually(
            "the board back on the restarted broker",
            Duration::from_secs(60),
            || {
                let back = broker.log().contains(&format!("u'{id}'"));
                async move { Ok(back.then_some(())) }
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", logs(&boards, &broker)));
        wait_ready(&nodes, id, || logs(&boards, &broker)).await;
    }
    for mut b in boards {
        b.terminate(Duration::from_secs(10));
    }
}
