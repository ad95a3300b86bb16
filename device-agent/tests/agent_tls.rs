//! `mqtts://` with a device client certificate against Mosquitto configured as in
//! production (require_certificate, use_identity_as_username, per-device ACL), and
//! fail-over across broker URLs.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::{Child, Command};
use std::time::Duration;

use common::*;
use edge_protocol::{Message, UpChannel};

const T: Duration = Duration::from_secs(30);

fn openssl(args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl (Debian package openssl, a dependency of ca-certificates)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, a broker certificate for 127.0.0.1 and a client certificate with CN = `device`.
fn make_pki(dir: &Path, device: &str) {
    let p = |f: &str| dir.join(f).display().to_string();
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=edge-test-ca",
        "-keyout",
        &p("ca.key"),
        "-out",
        &p("ca.pem"),
    ]);
    std::fs::write(dir.join("server.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
    for (name, cn, ext) in [
        ("server", "127.0.0.1", "server.ext"),
        ("device", device, "client.ext"),
    ] {
        openssl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            &format!("/CN={cn}"),
            "-keyout",
            &p(&format!("{name}.key")),
            "-out",
            &p(&format!("{name}.csr")),
        ]);
        openssl(&[
            "x509",
            "-req",
            "-days",
            "1",
            "-in",
            &p(&format!("{name}.csr")),
            "-CA",
            &p("ca.pem"),
            "-CAkey",
            &p("ca.key"),
            "-CAcreateserial",
            "-extfile",
            &p(ext),
            "-out",
            &p(&format!("{name}.pem")),
        ]);
    }
}

struct Broker(Child);
impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtts_with_client_certificate_through_mosquitto_acl() {
    require_tool("/usr/sbin/mosquitto", "mosquitto");
    let dir = tempfile::tempdir().unwrap();
    let device = "tls-dev-1";
    make_pki(dir.path(), device);
    let tls_port = free_port();
    let plain_port = free_port();
    let d = |f: &str| dir.path().join(f).display().to_string();
    std::fs::write(
        dir.path().join("acl"),
        "pattern write edge/v1/%u/up/#\npattern read edge/v1/%u/down/#\n",
    )
    .unwrap();
    // TLS listener for devices as in production; a plain one for the test gateway.
    std::fs::write(
        dir.path().join("mosquitto.conf"),
        format!(
            "user root\nper_listener_settings true\n\
             listener {tls_port} 127.0.0.1\ncafile {ca}\ncertfile {cert}\nkeyfile {key}\n\
             require_certificate true\nuse_identity_as_username true\nacl_file {acl}\n\
             listener {plain_port} 127.0.0.1\nallow_anonymous true\n",
            ca = d("ca.pem"),
            cert = d("server.pem"),
            key = d("server.key"),
            acl = d("acl"),
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.path().join("mosquitto.log")).unwrap();
    let _broker = Broker(
        Command::new("/usr/sbin/mosquitto")
            .arg("-c")
            .arg(dir.path().join("mosquitto.conf"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    wait_port(tls_port, T);
    wait_port(plain_port, T);
    let gw = TestGateway::connect(plain_port, device).await;
    // The config file as the enrollment bundle has it, with relative TLS paths.
    std::fs::write(
        dir.path().join("agent.toml"),
        format!(
            "device_id = \"{device}\"\nbroker_urls = [\"mqtts://127.0.0.1:{tls_port}\"]\n\
             [tls]\nca_file = \"ca.pem\"\ncert_file = \"device.pem\"\nkey_file = \"device.key\"\n\
             [labels]\nsite = \"tls-lab\"\n"
        ),
    )
    .unwrap();
    let state = dir.path().join("tls-state");
    let log = std::fs::File::create(dir.path().join("agent-tls.log")).unwrap();
    let mut child = Command::new(agent_binary())
        .args([
            "run",
            "--config",
            &d("agent.toml"),
            "--state-dir",
            state.to_str().unwrap(),
            "--runtime-socket",
            &docker_host(),
            "--heartbeat-interval",
            "1s",
        ])
        .env_remove("NOTIFY_SOCKET")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let result = tokio::time::timeout(T, async {
        while gw.count(UpChannel::Hello) == 0 || gw.count(UpChannel::Heartbeat) == 0 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        result.is_ok(),
        "no node report over mqtts; agent log:\n{}\nbroker log:\n{}",
        std::fs::read_to_string(dir.path().join("agent-tls.log")).unwrap_or_default(),
        std::fs::read_to_string(dir.path().join("mosquitto.log")).unwrap_or_default()
    );
    let hello = gw
        .messages()
        .into_iter()
        .find_map(|r| match r.message {
            Message::NodeReport(n) => Some(n),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        hello.labels.get("site").map(String::as_str),
        Some("tls-lab")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fails_over_to_the_next_broker_url() {
    let live = start_rumqttd();
    let dead = free_port();
    let dir = tempfile::tempdir().unwrap();
    let device = "failover-1";
    let gw = TestGateway::connect(live, device).await;
    // First URL: nothing listens there; second: the live broker.
    let _agent = AgentProcess::start_with(
        vec![agent_binary()],
        device,
        dead,
        dir.path(),
        &["--broker-url", &format!("mqtt://127.0.0.1:{live}")],
    );
    gw.wait_agent_online().await;
}
