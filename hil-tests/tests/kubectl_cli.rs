#![allow(clippy::unwrap_used)]
//! The real `kubectl` (v1.32; set KUBECTL to use another binary) against the emulator:
//! apply -f, get -o wide, get -w, describe node, logs, logs -f, delete, and the
//! `hil-apiserver` binary serving `kubectl get nodes`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use edge_hil_tests::apiserver::{ApiServer, ApiServerConfig};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::{TokioExecutor, TokioIo};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

fn kubectl_bin() -> String {
    let bin = std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".into());
    let ok = Command::new(&bin)
        .args(["version", "--client"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "kubectl not found or not runnable as {bin:?}: install kubectl v1.32 on PATH or set KUBECTL=/path/to/kubectl"
    );
    bin
}

struct Kubectl {
    bin: String,
    kubeconfig: PathBuf,
    cache: tempfile::TempDir,
}

impl Kubectl {
    fn new(kubeconfig: &Path) -> Self {
        Self {
            bin: kubectl_bin(),
            kubeconfig: kubeconfig.to_path_buf(),
            cache: tempfile::tempdir().unwrap(),
        }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.cache.path())
            .args(args);
        c
    }

    /// Runs kubectl off the async runtime; returns the output.
    async fn run(&self, args: &[&str]) -> Output {
        let mut c = self.cmd(args);
        tokio::task::spawn_blocking(move || c.output().unwrap())
            .await
            .unwrap()
    }

    /// Runs kubectl and requires success; returns stdout.
    async fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

async fn start() -> (ApiServer, kube::Client, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = ApiServerConfig::new(dir.path());
    cfg.controller_interval = Duration::from_millis(50);
    let server = ApiServer::start(cfg).await.unwrap();
    let client = server.client().await.unwrap();
    (server, client, dir)
}

fn node_json(name: &str, kubelet_port: u16) -> Node {
    serde_json::from_value(json!({"metadata": {"name": name, "labels": {"kubernetes.io/arch": "arm64", "kubernetes.io/os": "linux",
            "kubernetes.io/hostname": name, "type": "virtual-kubelet"}},
        "spec": {"taints": [{"key": "example.com/edge", "value": "lab", "effect": "PreferNoSchedule"}]},
        "status": {"capacity": {"cpu": "4", "memory": "4Gi", "pods": "110"}, "allocatable": {"cpu": "4", "memory": "4Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "device online",
                "lastHeartbeatTime": "2024-01-01T00:00:00Z", "lastTransitionTime": "2024-01-01T00:00:00Z"}],
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": kubelet_port}},
            "nodeInfo": {"architecture": "arm64", "operatingSystem": "linux", "kubeletVersion": "v1.32.0-edge", "osImage": "Raspberry Pi OS",
                "kernelVersion": "6.6.31", "containerRuntimeVersion": "docker://24.0.5", "machineID": "m", "systemUUID": "s", "bootID": "b",
                "kubeProxyVersion": "", "containerRuntimeVersion": "docker://24.0.5"}}}))
    .unwrap()
}

const MANIFEST: &str = r#"apiVersion: v1
kind: Pod
metadata:
  name: sensor
  labels:
    app: sensor
spec:
  nodeSelector:
    kubernetes.io/arch: arm64
  containers:
  - name: main
    image: localhost/busybox:test
    command: ["sh", "-c", "while true; do echo hi; sleep 1; done"]
    resources:
      requests:
        cpu: 100m
        memory: 16Mi
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: sensor-config
data:
  interval: "5"
"#;

#[tokio::test]
async fn apply_get_wide_describe_and_delete() {
    let (server, client, dir) = start().await;
    let k = Kubectl::new(server.kubeconfig_path());
    Api::<Node>::all(client.clone())
        .create(&PostParams::default(), &node_json("pi-01", 10250))
        .await
        .unwrap();
    let lease: Lease = serde_json::from_value(
        json!({"metadata": {"name": "pi-01"}, "spec": {"holderIdentity": "pi-01",
        "leaseDurationSeconds": 40, "renewTime": "2024-01-01T00:00:00.000000Z"}}),
    )
    .unwrap();
    Api::<Lease>::namespaced(client.clone(), "kube-node-lease")
        .create(&PostParams::default(), &lease)
        .await
        .unwrap();

    let manifest = dir.path().join("app.yaml");
    std::fs::write(&manifest, MANIFEST).unwrap();
    let out = k.ok(&["apply", "-f", manifest.to_str().unwrap()]).await;
    assert_eq!(out, "pod/sensor created\nconfigmap/sensor-config created\n");
    let out = k.ok(&["apply", "-f", manifest.to_str().unwrap()]).await;
    assert_eq!(
        out,
        "pod/sensor unchanged\nconfigmap/sensor-config unchanged\n"
    );
    std::fs::write(
        &manifest,
        MANIFEST
            .replace("interval: \"5\"", "interval: \"7\"")
            .replace("busybox:test", "busybox:v2"),
    )
    .unwrap();
    let out = k.ok(&["apply", "-f", manifest.to_str().unwrap()]).await;
    assert_eq!(
        out,
        "pod/sensor configured\nconfigmap/sensor-config configured\n"
    );
    assert_eq!(
        k.ok(&[
            "get",
            "cm",
            "sensor-config",
            "-o",
            "jsonpath={.data.interval}"
        ])
        .await,
        "7"
    );
    // An unknown field is rejected by server-side strict validation.
    std::fs::write(
        &manifest,
        MANIFEST.replace("  interval: \"5\"", "  interval: \"5\"\nbogus: 1"),
    )
    .unwrap();
    let bad = k.run(&["apply", "-f", manifest.to_str().unwrap()]).await;
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr)
            .contains("strict decoding error: unknown field \"bogus\"")
    );

    // The scheduler binds the pod; get -o wide shows the node.
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    for _ in 0..100 {
        if pods
            .get("sensor")
            .await
            .unwrap()
            .spec
            .unwrap()
            .node_name
            .is_some()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let wide = k.ok(&["get", "pods", "-o", "wide"]).await;
    let mut lines = wide.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME",
            "READY",
            "STATUS",
            "RESTARTS",
            "AGE",
            "IP",
            "NODE",
            "NOMINATED",
            "NODE",
            "READINESS",
            "GATES"
        ]
    );
    let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(&row[..4], ["sensor", "0/1", "Pending", "0"]);
    assert_eq!(&row[5..7], ["<none>", "pi-01"]);

    let nodes = k.ok(&["get", "nodes", "-o", "wide"]).await;
    assert!(nodes.starts_with("NAME "), "{nodes}");
    let row: Vec<&str> = nodes.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(&row[..3], ["pi-01", "Ready", "<none>"]);
    assert!(
        nodes.contains("v1.32.0-edge")
            && nodes.contains("127.0.0.1")
            && nodes.contains("docker://24.0.5"),
        "{nodes}"
    );

    let described = k.ok(&["describe", "node", "pi-01"]).await;
    for want in [
        "Name:               pi-01",
        "Taints:             example.com/edge=lab:PreferNoSchedule",
        "HolderIdentity:  pi-01",
        "InternalIP:  127.0.0.1",
        "default                     sensor",
        "cpu                100m (2%)",
    ] {
        assert!(
            described.contains(want),
            "describe node lacks {want:?}:\n{described}"
        );
    }
    assert!(
        described
            .lines()
            .any(|l| l.trim_start().starts_with("Ready ")
                && l.contains(" True ")
                && l.contains("KubeletReady")),
        "{described}"
    );
    let described = k.ok(&["describe", "pod", "sensor"]).await;
    assert!(
        described.contains("Successfully assigned default/sensor to pi-01"),
        "{described}"
    );

    // delete of a bound pod: graceful (the kubelet would finish it); --wait=false returns.
    let out = k.ok(&["delete", "pod", "sensor", "--wait=false"]).await;
    assert_eq!(out, "pod \"sensor\" deleted\n");
    let p = pods.get("sensor").await.unwrap();
    assert_eq!(p.metadata.deletion_grace_period_seconds, Some(30));
    let status = k.ok(&["get", "pod", "sensor", "--no-headers"]).await;
    assert!(status.contains("Terminating"), "{status}");
    // kubectl delete waits until the kubelet's grace-0 delete removes it.
    let uid = p.metadata.uid.clone().unwrap();
    let kubelet = {
        let pods = pods.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let dp = DeleteParams {
                grace_period_seconds: Some(0),
                preconditions: Some(kube::api::Preconditions {
                    uid: Some(uid),
                    resource_version: None,
                }),
                ..Default::default()
            };
            pods.delete("sensor", &dp).await.unwrap();
        })
    };
    let out = k.ok(&["delete", "pod", "sensor", "--timeout=10s"]).await;
    assert_eq!(out, "pod \"sensor\" deleted\n");
    kubelet.await.unwrap();
    assert!(pods.get_opt("sensor").await.unwrap().is_none());
    assert_eq!(
        k.ok(&[
            "delete",
            "-f",
            manifest.to_str().unwrap(),
            "--ignore-not-found"
        ])
        .await,
        "configmap \"sensor-config\" deleted\n"
    );
}

#[tokio::test]
async fn get_watch_streams_changes() {
    let (server, client, _dir) = start().await;
    let k = Kubectl::new(server.kubeconfig_path());
    let mut child = k
        .cmd(&["get", "configmaps", "-w", "--output-watch-events"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap()).is_err() {
                return;
            }
        }
    });
    let cms: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(client.clone(), "default");
    tokio::time::sleep(Duration::from_millis(800)).await;
    cms.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "watched"}, "data": {"a": "1"}}))
            .unwrap(),
    )
    .await
    .unwrap();
    cms.patch(
        "watched",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"b": "2"}})),
    )
    .await
    .unwrap();
    cms.delete("watched", &DeleteParams::default())
        .await
        .unwrap();
    let mut seen = Vec::new();
    while seen.len() < 4 {
        let line = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("kubectl get -w output")
            .unwrap();
        if line.contains("kube-root-ca.crt") {
            // Every namespace has it, as in kube-apiserver clusters.
            continue;
        }
        seen.push(
            line.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" "),
        );
    }
    child.kill().unwrap();
    let _ = child.wait();
    assert_eq!(
        seen,
        [
            "EVENT NAME DATA",
            "ADDED watched 1",
            "MODIFIED watched 2",
            "DELETED watched 2"
        ]
    );
}

/// A kubelet stand-in serving `/containerLogs/...` over HTTPS (client cert required):
/// "line 1..3" at once, then (with follow) one more line every 100 ms.
async fn fake_kubelet(client_ca: &Path) -> u16 {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(client_ca).unwrap();
    for c in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots.add(c.unwrap()).unwrap();
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
        .build()
        .unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let cfg = rustls::ServerConfig::builder()
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let svc = hyper::service::service_fn(
                    |req: hyper::Request<hyper::body::Incoming>| async move {
                        let follow = req.uri().query().unwrap_or("").contains("follow=true");
                        let tail = req.uri().query().unwrap_or("").contains("tailLines=2");
                        let ok = req.uri().path() == "/containerLogs/default/sensor/main";
                        let (tx, rx) =
                            tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(8);
                        tokio::spawn(async move {
                            let first = if tail {
                                "line 2\nline 3\n"
                            } else {
                                "line 1\nline 2\nline 3\n"
                            };
                            let _ = tx.send(Ok(Frame::data(Bytes::from(first)))).await;
                            if follow {
                                for i in 4.. {
                                    tokio::time::sleep(Duration::from_millis(100)).await;
                                    if tx
                                        .send(Ok(Frame::data(Bytes::from(format!("line {i}\n")))))
                                        .await
                                        .is_err()
                                    {
                                        return;
                                    }
                                }
                            }
                        });
                        let mut resp = hyper::Response::new(BodyExt::boxed(StreamBody::new(
                            tokio_stream::wrappers::ReceiverStream::new(rx),
                        )));
                        if !ok {
                            *resp.status_mut() = hyper::StatusCode::NOT_FOUND;
                        }
                        Ok::<_, std::convert::Infallible>(resp)
                    },
                );
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    port
}

#[tokio::test]
async fn logs_and_logs_follow_reach_the_kubelet() {
    let (server, client, _dir) = start().await;
    let k = Kubectl::new(server.kubeconfig_path());
    let port = fake_kubelet(server.kubelet_client_ca_path()).await;
    Api::<Node>::all(client.clone())
        .create(&PostParams::default(), &node_json("pi-01", port))
        .await
        .unwrap();
    let pod: Pod = serde_json::from_value(
        json!({"metadata": {"name": "sensor"}, "spec": {"nodeName": "pi-01",
        "containers": [{"name": "main", "image": "localhost/busybox:test"}]}}),
    )
    .unwrap();
    Api::<Pod>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &pod)
        .await
        .unwrap();

    assert_eq!(k.ok(&["logs", "sensor"]).await, "line 1\nline 2\nline 3\n");
    assert_eq!(
        k.ok(&["logs", "sensor", "-c", "main", "--tail=2"]).await,
        "line 2\nline 3\n"
    );

    let mut child = k
        .cmd(&["logs", "-f", "sensor"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let lines = tokio::task::spawn_blocking(move || {
        BufReader::new(stdout)
            .lines()
            .take(6)
            .map(Result::unwrap)
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    child.kill().unwrap();
    let _ = child.wait();
    assert_eq!(
        lines,
        ["line 1", "line 2", "line 3", "line 4", "line 5", "line 6"]
    );

    let missing = k.run(&["logs", "sensor", "-c", "nope"]).await;
    assert!(!missing.status.success());
    assert!(
        String::from_utf8_lossy(&missing.stderr)
            .contains("container nope is not valid for pod sensor")
    );
}

#[tokio::test]
async fn hil_apiserver_binary_serves_kubectl() {
    let bin = env!("CARGO_BIN_EXE_hil-apiserver");
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(bin)
        .args([
            "--dir",
            dir.path().to_str().unwrap(),
            "--node-lease-grace",
            "5s",
            "--log-filter",
            "warn",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if let Some(p) = line.strip_prefix("kubeconfig: ") {
                let _ = tx.send(PathBuf::from(p));
            }
        }
    });
    let kubeconfig = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("hil-apiserver printed its kubeconfig path");
    let k = Kubectl::new(&kubeconfig);
    let out = k.run(&["get", "nodes"]).await;
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stderr), "No resources found\n");
}

#[tokio::test]
async fn server_dry_run_and_diff_persist_nothing() {
    let (server, client, dir) = start().await;
    let k = Kubectl::new(server.kubeconfig_path());
    let manifest = dir.path().join("cm.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: dry\ndata:\n  a: \"1\"\n",
    )
    .unwrap();
    let out = k
        .ok(&[
            "apply",
            "--dry-run=server",
            "-f",
            manifest.to_str().unwrap(),
        ])
        .await;
    assert_eq!(out, "configmap/dry created (server dry run)\n");
    let cms: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(client.clone(), "default");
    assert!(cms.get_opt("dry").await.unwrap().is_none());
    k.ok(&["apply", "-f", manifest.to_str().unwrap()]).await;
    std::fs::write(
        &manifest,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: dry\ndata:\n  a: \"2\"\n",
    )
    .unwrap();
    // kubectl diff exits 1 when there are differences.
    let diff = k.run(&["diff", "-f", manifest.to_str().unwrap()]).await;
    let text = String::from_utf8_lossy(&diff.stdout);
    assert_eq!(
        diff.status.code(),
        Some(1),
        "{text}\n{}",
        String::from_utf8_lossy(&diff.stderr)
    );
    assert!(
        text.contains("-  a: \"1\"") && text.contains("+  a: \"2\""),
        "{text}"
    );
    assert_eq!(cms.get("dry").await.unwrap().data.unwrap()["a"], "1");
}

#[tokio::test]
async fn typed_client_writes_in_protobuf_and_csr_approval() {
    let (server, client, dir) = start().await;
    let k = Kubectl::new(server.kubeconfig_path());
    // kubectl's generators send protobuf bodies.
    assert_eq!(
        k.ok(&["create", "namespace", "lab"]).await,
        "namespace/lab created\n"
    );
    assert_eq!(
        k.ok(&[
            "create",
            "configmap",
            "c",
            "-n",
            "lab",
            "--from-literal=a=1"
        ])
        .await,
        "configmap/c created\n"
    );
    assert_eq!(
        k.ok(&[
            "create",
            "secret",
            "generic",
            "s",
            "-n",
            "lab",
            "--from-literal=pw=x"
        ])
        .await,
        "secret/s created\n"
    );
    assert_eq!(
        k.ok(&["create", "serviceaccount", "sa", "-n", "lab"]).await,
        "serviceaccount/sa created\n"
    );
    assert_eq!(
        k.ok(&["get", "cm", "c", "-n", "lab", "-o", "jsonpath={.data.a}"])
            .await,
        "1"
    );
    assert_eq!(
        k.ok(&[
            "get",
            "secret",
            "s",
            "-n",
            "lab",
            "-o",
            "jsonpath={.data.pw} {.type}"
        ])
        .await,
        "eA== Opaque"
    );

    // A CSR approved with `kubectl certificate approve` (protobuf PUT to /approval).
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "pi-01");
    let csr_pem = params.serialize_request(&key).unwrap().pem().unwrap();
    let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, csr_pem);
    let manifest = dir.path().join("csr.yaml");
    std::fs::write(
        &manifest,
        format!("apiVersion: certificates.k8s.io/v1\nkind: CertificateSigningRequest\nmetadata:\n  name: pi-01\nspec:\n  request: {b64}\n  signerName: kubernetes.io/kube-apiserver-client\n  usages: [client auth]\n"),
    )
    .unwrap();
    k.ok(&["apply", "-f", manifest.to_str().unwrap()]).await;
    let pending = k.ok(&["get", "csr", "pi-01", "--no-headers"]).await;
    assert!(
        pending.contains("Pending") && pending.contains("edge-hil-admin"),
        "{pending}"
    );
    assert_eq!(
        k.ok(&["certificate", "approve", "pi-01"]).await,
        "certificatesigningrequest.certificates.k8s.io/pi-01 approved\n"
    );
    let csrs: Api<k8s_openapi::api::certificates::v1::CertificateSigningRequest> =
        Api::all(client.clone());
    let csr = csrs.get("pi-01").await.unwrap();
    let cond = &csr.status.unwrap().conditions.unwrap()[0];
    assert_eq!(
        (cond.type_.as_str(), cond.status.as_str()),
        ("Approved", "True")
    );
    assert_eq!(cond.reason.as_deref(), Some("KubectlApprove"));

    // The signing controller issues a client certificate from the cluster CA.
    let mut issued = None;
    for _ in 0..100 {
        if let Some(c) = csrs
            .get("pi-01")
            .await
            .unwrap()
            .status
            .and_then(|s| s.certificate)
        {
            issued = Some(c.0);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pem = issued.expect("approved CSR gets status.certificate");
    let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
    let cert = pem.parse_x509().unwrap();
    assert_eq!(
        cert.subject()
            .iter_common_name()
            .next()
            .unwrap()
            .as_str()
            .unwrap(),
        "pi-01"
    );
    assert_eq!(
        cert.issuer()
            .iter_common_name()
            .next()
            .unwrap()
            .as_str()
            .unwrap(),
        "edge-hil-apiserver-ca"
    );
    let eku = cert.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.client_auth && !eku.server_auth);
}

#[tokio::test]
async fn drain_cordons_and_evicts_through_pods_eviction() {
    let (server, client, _dir) = start().await;
    let k = Kubectl::new(server.kubeconfig_path());
    Api::<Node>::all(client.clone())
        .create(&PostParams::default(), &node_json("pi-01", 10250))
        .await
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pod: Pod = serde_json::from_value(
        json!({"metadata": {"name": "app"}, "spec": {"nodeName": "pi-01",
        "containers": [{"name": "main", "image": "localhost/busybox:test"}]}}),
    )
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    // A stand-in kubelet: finishes graceful deletions with the grace-0 delete.
    let kubelet = {
        let pods = pods.clone();
        tokio::spawn(async move {
            loop {
                if let Some(p) = pods.get_opt("app").await.unwrap() {
                    if p.metadata.deletion_timestamp.is_some() {
                        let dp = DeleteParams {
                            grace_period_seconds: Some(0),
                            ..Default::default()
                        };
                        pods.delete("app", &dp).await.unwrap();
                        return;
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let out = k.ok(&["drain", "pi-01", "--force", "--timeout=20s"]).await;
    assert!(
        out.contains("node/pi-01 cordoned")
            && out.contains("pod/app evicted")
            && out.contains("node/pi-01 drained"),
        "{out}"
    );
    kubelet.await.unwrap();
    let nodes = k.ok(&["get", "node", "pi-01", "--no-headers"]).await;
    assert!(nodes.contains("Ready,SchedulingDisabled"), "{nodes}");
    assert!(pods.get_opt("app").await.unwrap().is_none());
}

#[tokio::test]
async fn service_account_tokens_from_kubectl_create_token() {
    let (server, client, _dir) = start().await;
    let k = Kubectl::new(server.kubeconfig_path());
    let token = k
        .ok(&["create", "token", "default", "--audience", "edge-kubelet"])
        .await;
    let token = token.trim();
    assert!(token.len() >= 32);
    let too_short = k
        .run(&["create", "token", "default", "--duration=1m"])
        .await;
    assert!(
        String::from_utf8_lossy(&too_short.stderr)
            .contains("may not specify a duration less than 10 minutes")
    );
    // The token authenticates API requests ...
    let server_url = server.url();
    let ca = server.kubelet_client_ca_path().with_file_name("ca.crt");
    let mut c = Command::new(kubectl_bin());
    c.args([
        "--server",
        &server_url,
        "--certificate-authority",
        ca.to_str().unwrap(),
        "--token",
        token,
        "get",
        "ns",
        "default",
        "--no-headers",
    ]);
    let out = tokio::task::spawn_blocking(move || c.output().unwrap())
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // ... and TokenReview names the service account, for its audience only.
    let reviews: Api<k8s_openapi::api::authentication::v1::TokenReview> = Api::all(client.clone());
    let review = |aud: &str| -> k8s_openapi::api::authentication::v1::TokenReview {
        serde_json::from_value(json!({"spec": {"token": token, "audiences": [aud]}})).unwrap()
    };
    let ok = reviews
        .create(&PostParams::default(), &review("edge-kubelet"))
        .await
        .unwrap()
        .status
        .unwrap();
    assert_eq!(ok.authenticated, Some(true));
    assert_eq!(
        ok.user.unwrap().username.as_deref(),
        Some("system:serviceaccount:default:default")
    );
    let wrong = reviews
        .create(&PostParams::default(), &review("other"))
        .await
        .unwrap()
        .status
        .unwrap();
    assert_eq!(wrong.authenticated, Some(false));
}

#[tokio::test]
async fn server_side_apply_conflicts_with_other_managers() {
    let (server, _client, dir) = start().await;
    let k = Kubectl::new(server.kubeconfig_path());
    let manifest = dir.path().join("ssa.yaml");
    std::fs::write(&manifest, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\n  labels:\n    a: \"1\"\n    b: \"2\"\ndata:\n  x: \"1\"\n").unwrap();
    let m = manifest.to_str().unwrap();
    assert_eq!(
        k.ok(&["apply", "--server-side", "-f", m]).await,
        "configmap/ssa serverside-applied\n"
    );
    k.ok(&["label", "cm", "ssa", "a=9", "--overwrite"]).await;
    let conflict = k.run(&["apply", "--server-side", "-f", m]).await;
    assert!(!conflict.status.success());
    let err = String::from_utf8_lossy(&conflict.stderr);
    assert!(err.contains("Apply failed with 1 conflict: conflict with \"kubectl-label\" using v1: .metadata.labels.a"), "{err}");
    // Dropping label b from the manifest removes it; forcing takes label a back.
    std::fs::write(&manifest, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\n  labels:\n    a: \"1\"\ndata:\n  x: \"1\"\n").unwrap();
    k.ok(&["apply", "--server-side", "--force-conflicts", "-f", m])
        .await;
    assert_eq!(
        k.ok(&["get", "cm", "ssa", "-o", "jsonpath={.metadata.labels}"])
            .await,
        "{\"a\":\"1\"}"
    );
    let managers = k
        .ok(&[
            "get",
            "cm",
            "ssa",
            "--show-managed-fields",
            "-o",
            "jsonpath={.metadata.managedFields[*].manager}",
        ])
        .await;
    assert_eq!(managers, "kubectl");
}

#[tokio::test]
async fn auth_can_i_whoami_version_and_cluster_info() {
    let (server, _client, _dir) = start().await;
    let k = Kubectl::new(server.kubeconfig_path());
    assert_eq!(k.ok(&["auth", "can-i", "create", "pods"]).await, "yes\n");
    let who = k.ok(&["auth", "whoami"]).await;
    assert!(
        who.contains("edge-hil-admin") && who.contains("system:masters"),
        "{who}"
    );
    let version = k.ok(&["version"]).await;
    assert!(version.contains("Server Version: v1.32.0"), "{version}");
    let info = k.ok(&["cluster-info"]).await;
    assert!(
        info.contains(&format!(
            "Kubernetes control plane is running at {}",
            server.url()
        )),
        "{info}"
    );
}
