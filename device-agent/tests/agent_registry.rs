//! Image pulls from a real registry (Debian's docker-registry, TLS with a test CA,
//! htpasswd auth): pull credentials work, missing or wrong ones give ErrImagePull.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use edge_protocol::{PullPolicy, RegistryCredential};

const T: Duration = Duration::from_secs(60);

/// A running registry; removes the CA trust and the pulled image when dropped.
struct Registry {
    child: Child,
    certs_dir: PathBuf,
    image: String,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.certs_dir);
        let _ = Command::new("podman")
            .args(["rmi", "-f", &self.image])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn run(cmd: &mut Command, what: &str) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn start_registry(dir: &std::path::Path, user: &str, password: &str) -> Registry {
    require_tool("/usr/bin/docker-registry", "docker-registry");
    require_tool("htpasswd", "apache2-utils");
    require_tool("openssl", "openssl (a dependency of ca-certificates)");
    let port = free_port();
    let htpasswd = run(
        Command::new("htpasswd").args(["-Bbn", user, password]),
        "htpasswd",
    );
    std::fs::write(dir.join("htpasswd"), htpasswd).unwrap();
    run(
        Command::new("openssl").args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            dir.join("key.pem").to_str().unwrap(),
            "-out",
            dir.join("cert.pem").to_str().unwrap(),
        ]),
        "openssl req",
    );
    let config = format!(
        "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {data}\nhttp:\n  addr: 127.0.0.1:{port}\n  tls:\n    certificate: {cert}\n    key: {key}\nauth:\n  htpasswd:\n    realm: edge-test\n    path: {pw}\n",
        data = dir.join("data").display(),
        cert = dir.join("cert.pem").display(),
        key = dir.join("key.pem").display(),
        pw = dir.join("htpasswd").display(),
    );
    std::fs::write(dir.join("config.yml"), config).unwrap();
    let log = std::fs::File::create(dir.join("registry.log")).unwrap();
    let child = Command::new("/usr/bin/docker-registry")
        .arg("serve")
        .arg(dir.join("config.yml"))
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    // The runtime trusts the registry through containers' certs.d (read at every pull).
    let certs_dir = PathBuf::from(format!("/etc/containers/certs.d/127.0.0.1:{port}"));
    std::fs::create_dir_all(&certs_dir).unwrap_or_else(|e| {
        panic!(
            "cannot create {}: {e} (the registry test needs root)",
            certs_dir.display()
        )
    });
    std::fs::copy(dir.join("cert.pem"), certs_dir.join("ca.crt")).unwrap();
    let image = format!("127.0.0.1:{port}/edge/busybox:{}", unique_uid("t"));
    let registry = Registry {
        child,
        certs_dir,
        image: image.clone(),
    };
    wait_port(port, Duration::from_secs(20));
    run(
        Command::new("podman").args([
            "push",
            "--tls-verify=false",
            "--creds",
            &format!("{user}:{password}"),
            &test_image(),
            &image,
        ]),
        "podman push to the test registry",
    );
    // Make sure the pulls below really go to the registry.
    let _ = Command::new("podman")
        .args(["rmi", "-f", &image])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    registry
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pulls_with_registry_credentials_and_fails_without() {
    let _ = docker_host();
    let dir = tempfile::tempdir().unwrap();
    let registry = start_registry(dir.path(), "edge", "s3cret-pw");
    let port = start_rumqttd();
    let device = "reg-pull-1";
    let gw = TestGateway::connect(port, device).await;
    let _agent = AgentProcess::start(device, port, dir.path());
    gw.wait_agent_online().await;
    let registry_host = registry.image.split('/').next().unwrap().to_owned();
    let pod = |tag: &str, creds: Vec<RegistryCredential>| {
        let mut p = busybox_pod(&unique_uid(tag), tag, "exec sleep 1000");
        p.containers[0].image = registry.image.clone();
        p.containers[0].image_pull_policy = PullPolicy::Always;
        p.registry_credentials = creds;
        p
    };
    let authed = pod(
        "authed",
        vec![RegistryCredential {
            registry: registry_host.clone(),
            username: "edge".into(),
            password: "s3cret-pw".into(),
        }],
    );
    let anonymous = pod("anonymous", vec![]);
    let wrong = pod(
        "wrong",
        vec![RegistryCredential {
            registry: registry_host.clone(),
            username: "edge".into(),
            password: "not-it".into(),
        }],
    );
    let _cleanup = PodCleanup(vec![
        authed.uid.clone(),
        anonymous.uid.clone(),
        wrong.uid.clone(),
    ]);
    gw.desire(1, vec![authed.clone(), anonymous.clone(), wrong.clone()])
        .await;
    let s = gw.wait_status(&authed.uid, "running", T, is_running).await;
    assert!(!s.containers[0].image_id.is_empty());
    let events = gw.event_reasons(&authed.uid);
    assert!(events.contains(&"Pulling".to_owned()), "{events:?}");
    assert!(events.contains(&"Pulled".to_owned()), "{events:?}");
    for p in [&anonymous, &wrong] {
        let s = gw
            .wait_status(&p.uid, "pull refused", T, |s| {
                matches!(
                    waiting_reason(s).as_deref(),
                    Some("ErrImagePull" | "ImagePullBackOff")
                )
            })
            .await;
        assert!(podman_containers(&p.uid).is_empty(), "{s:?}");
    }
    let failed = gw
        .messages()
        .into_iter()
        .filter_map(|r| match r.message {
            edge_protocol::Message::PodEventReport(e) => Some(e.events),
            _ => None,
        })
        .flatten()
        .find(|e| e.pod_uid == anonymous.uid && e.reason == "Failed" && e.message.contains("pull"))
        .expect("a Failed event for the anonymous pull");
    assert!(
        failed.message.to_lowercase().contains("auth"),
        "the registry refused the anonymous pull: {}",
        failed.message
    );
    gw.desire(2, vec![]).await;
    wait_until(T, "containers removed", || {
        podman_containers(&authed.uid).is_empty()
    })
    .await;
}
