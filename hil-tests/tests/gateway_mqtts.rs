//! The gateway on a production-style broker: Mosquitto with TLS, client certificates
//! (`use_identity_as_username`) and the per-device ACL. A device with a valid
//! certificate cannot speak for another device.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Child, Command};
use std::time::Duration;

use edge_gateway::config::{BrokerConfig, GatewayConfig};
use edge_gateway::gateway;
use edge_hil_tests::apiserver::{ApiServer, ApiServerConfig};
use edge_hil_tests::fake_device::{FakeDevice, FakeDeviceConfig, FakeDeviceTls};
use edge_protocol::DeviceId;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use serde_json::json;
use tokio_util::sync::CancellationToken;

const MOSQUITTO: &str = "/usr/sbin/mosquitto";

struct Pki {
    ca_pem: String,
    ca_params: CertificateParams,
    ca_key: KeyPair,
}

impl Pki {
    fn new() -> Self {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "test fleet CA");
        let ca = ca_params.self_signed(&ca_key).unwrap();
        Self {
            ca_pem: ca.pem(),
            ca_params,
            ca_key,
        }
    }

    /// (cert PEM, key PEM) for `cn` with `sans`.
    fn issue(&self, cn: &str, sans: &[&str]) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(sans.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
                .unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        let issuer = Issuer::from_params(&self.ca_params, &self.ca_key);
        let cert = params.signed_by(&key, &issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

struct Broker {
    child: Child,
    port: u16,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn start_mosquitto(dir: &Path, pki: &Pki) -> Broker {
    assert!(
        Path::new(MOSQUITTO).exists(),
        "{MOSQUITTO} is needed for this test: run scripts/install-test-deps.sh (Debian package mosquitto)"
    );
    std::fs::create_dir_all(dir).unwrap();
    let (cert, key) = pki.issue("localhost", &["127.0.0.1", "localhost"]);
    std::fs::write(dir.join("ca.pem"), &pki.ca_pem).unwrap();
    std::fs::write(dir.join("server.pem"), cert).unwrap();
    std::fs::write(dir.join("server.key"), key).unwrap();
    std::fs::write(
        dir.join("acl"),
        format!(
            "user edge-gateway\ntopic readwrite edge/#\n\n{}\n{}\n",
            edge_protocol::topic::device_acl_patterns()[0],
            edge_protocol::topic::device_acl_patterns()[1]
        ),
    )
    .unwrap();
    let port = free_port();
    let conf = format!(
        "per_listener_settings false\nlistener {port} 127.0.0.1\ncafile {d}/ca.pem\ncertfile {d}/server.pem\n\
         keyfile {d}/server.key\nrequire_certificate true\nuse_identity_as_username true\n\
         acl_file {d}/acl\npersistence false\nmax_packet_size 16777216\nlog_dest stderr\n",
        d = dir.display()
    );
    std::fs::write(dir.join("mosquitto.conf"), conf).unwrap();
    let child = Command::new(MOSQUITTO)
        .arg("-c")
        .arg(dir.join("mosquitto.conf"))
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.join("mosquitto.log")).unwrap())
        .spawn()
        .unwrap();
    let broker = Broker { child, port };
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return broker;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(broker);
    panic!(
        "mosquitto did not listen on {port}: {}",
        std::fs::read_to_string(dir.join("mosquitto.log")).unwrap_or_default()
    );
}

fn device_tls(pki: &Pki, id: &str) -> FakeDeviceTls {
    let (cert, key) = pki.issue(id, &[]);
    FakeDeviceTls {
        ca_pem: pki.ca_pem.clone().into_bytes(),
        cert_pem: cert.into_bytes(),
        key_pem: key.into_bytes(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtts_with_client_certificates_and_acl_isolates_devices() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new();
    let broker = start_mosquitto(&dir.path().join("mosquitto"), &pki);
    let api = ApiServer::start(ApiServerConfig::new(dir.path().join("api")))
        .await
        .unwrap();
    let client = api.client().await.unwrap();

    let (gw_cert, gw_key) = pki.issue("edge-gateway", &[]);
    let gw_dir = dir.path().join("gateway-tls");
    std::fs::create_dir_all(&gw_dir).unwrap();
    std::fs::write(gw_dir.join("ca.pem"), &pki.ca_pem).unwrap();
    std::fs::write(gw_dir.join("client.pem"), gw_cert).unwrap();
    std::fs::write(gw_dir.join("client.key"), gw_key).unwrap();
    let mut config = GatewayConfig::local(dir.path().join("gateway"));
    config.broker = BrokerConfig::External {
        host: "127.0.0.1".to_owned(),
        port: broker.port,
        failover: Vec::new(),
        tls: true,
        ca: Some(gw_dir.join("ca.pem")),
        client_cert: Some((gw_dir.join("client.pem"), gw_dir.join("client.key"))),
    };
    config.node_lease_renew = Duration::from_millis(500);
    let gw = gateway::start(config, client.clone(), CancellationToken::new())
        .await
        .unwrap();

    let mut cfg = FakeDeviceConfig::new(DeviceId::new("pi-01").unwrap(), "127.0.0.1", broker.port);
    cfg.tls = Some(device_tls(&pki, "pi-01"));
    let dev = FakeDevice::start(cfg).await.unwrap();
    let mut cfg = FakeDeviceConfig::new(DeviceId::new("evil").unwrap(), "127.0.0.1", broker.port);
    cfg.tls = Some(device_tls(&pki, "evil"));
    let evil = FakeDevice::start(cfg).await.unwrap();

    let pi = DeviceId::new("pi-01").unwrap();
    for _ in 0..100 {
        if gw.fleet().is_online(&pi) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(gw.fleet().is_online(&pi), "pi-01 came online over mqtts");

    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"nodeName": "pi-01", "containers": [{"name": "app", "image": "localhost/busybox:test"}]}
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let mut uid = String::new();
    for _ in 0..200 {
        let p = pods.get("web").await.unwrap();
        if p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running") {
            uid = p.metadata.uid.unwrap();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!uid.is_empty(), "pod Running over mqtts");
    assert_eq!(dev.view().pods.len(), 1);

    // evil, with a valid certificate, tries to speak for pi-01: the ACL drops it
    let spoof = json!({"protocol": "1.0", "kind": "podStatusReport", "body": {
        "sequence": 1_000_000, "observedGeneration": 1, "full": false,
        "pods": [{"uid": uid, "namespace": "default", "name": "web", "phase": "Failed"}]
    }});
    evil.publish_raw(
        "edge/v1/pi-01/up/status",
        serde_json::to_vec(&spoof).unwrap(),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let p = pods.get("web").await.unwrap();
    assert_eq!(p.status.and_then(|s| s.phase).as_deref(), Some("Running"));
    // and it never receives pi-01's desired set (with its resolved secrets)
    assert!(evil.view().pods.is_empty());
    gw.shutdown().await;
}
