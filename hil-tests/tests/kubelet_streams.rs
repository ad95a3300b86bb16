//! `kubectl exec` and `port-forward` for device pods, end to end through the real
//! control plane (v1.37.2: kubectl → kube-apiserver → the gateway's kubelet API over
//! SPDY) and the embedded broker, to a scripted device on a real MQTT client (the fake
//! device's stream script: echo stdin, `exit N`, `flood N`, port 8080 echoes, other ports
//! refuse). Real client-go (hil-tests/go/spdy-client) also calls the gateway's kubelet
//! API directly with the API server's kubelet client certificate, for TTY resize,
//! port-forward and errors kube-apiserver would catch before the kubelet.
//!
//! Covered: exit codes, stdin piped and EOF (SPDY and WebSocket), TTY resize reaching
//! the device, attach,
//! `kubectl port-forward` with two ports and two connections on one, a slow reader
//! holding the device back (never beyond its window), the client going away (StreamClose
//! reaches the device), unknown container (404), an old agent and an offline device
//! (clear errors within seconds), a device going away mid-stream, a refused port, the
//! idle timeout, and the streams metrics.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use edge_gateway::config::GatewayConfig;
use edge_gateway::gateway::{self, Gateway};
use edge_hil_tests::controlplane::{ControlPlane, client_from_kubeconfig};
use edge_hil_tests::fake_device::{FakeDevice, FakeDeviceConfig};
use edge_hil_tests::stack::{Cluster, ClusterBackend, Kubectl, eventually};
use edge_protocol::{DeviceId, StreamErrorCode, TerminalSize};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::api::{Api, PostParams};
use serde_json::json;
use tokio_util::sync::CancellationToken;

const GO_CLIENT_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/go/spdy-client");

/// Builds the Go client once into the target dir.
fn go_client() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target"))
                });
            let binary = target.join("go-spdy-client");
            let go = ["go", "/usr/local/go/bin/go"]
                .into_iter()
                .find(|go| Command::new(go).arg("version").output().is_ok())
                .unwrap_or("go");
            let status = Command::new(go)
                .args(["build", "-o"])
                .arg(&binary)
                .arg(".")
                .current_dir(GO_CLIENT_DIR)
                .status()
                .expect("Go 1.26+ is needed to build hil-tests/go/spdy-client");
            assert!(status.success(), "building the Go SPDY client failed");
            binary
        })
        .clone()
}

struct Bed {
    _dir: tempfile::TempDir,
    cluster: Cluster,
    gateway: Gateway,
    kubectl: Kubectl,
    ns: String,
    /// A device whose agent speaks the stream protocol, running pod `shell`.
    dev: Option<FakeDevice>,
    /// A device with an agent from before streams, running pod `old-shell`.
    old: FakeDevice,
}

async fn device(
    bed_gateway: &Gateway,
    admin: &kube::Client,
    name: &str,
    streams: Option<u32>,
) -> FakeDevice {
    let mut config = FakeDeviceConfig::new(
        DeviceId::new(name).unwrap(),
        "127.0.0.1",
        bed_gateway.ports.mqtt_port.unwrap(),
    );
    config.streams = streams;
    let dev = FakeDevice::start(config).await.unwrap();
    let nodes: Api<Node> = Api::all(admin.clone());
    eventually("the device's Node", Duration::from_secs(30), || {
        let nodes = nodes.clone();
        async move { Ok(nodes.get_opt(name).await.unwrap()) }
    })
    .await
    .unwrap();
    dev
}

/// Creates pod `name` with containers `app` and `side` on `node`; waits until Running.
async fn run_pod(admin: &kube::Client, ns: &str, name: &str, node: &str) {
    let pods: Api<Pod> = Api::namespaced(admin.clone(), ns);
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "nodeSelector": {"kubernetes.io/hostname": node},
            "tolerations": [{"key": "virtual-kubelet.io/provider", "operator": "Exists", "effect": "NoSchedule"}],
            "automountServiceAccountToken": false,
            "containers": [
                {"name": "app", "image": "localhost/busybox:test", "command": ["sleep", "3600"], "stdin": true},
                {"name": "side", "image": "localhost/busybox:test"}
            ]
        }
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    eventually("the pod Running", Duration::from_secs(60), || {
        let pods = pods.clone();
        async move {
            let p = pods.get(name).await.unwrap();
            Ok((p.status.and_then(|s| s.phase).as_deref() == Some("Running")).then_some(()))
        }
    })
    .await
    .unwrap();
}

async fn bed(backend: ClusterBackend, idle_timeout: Duration) -> Bed {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(backend, dir.path(), Duration::from_secs(600))
        .await
        .unwrap();
    let admin = cluster.client().await.unwrap();
    let gateway_client = client_from_kubeconfig(cluster.gateway_kubeconfig_path())
        .await
        .unwrap();
    let mut config = GatewayConfig::local(dir.path().join("gateway"));
    config.kubelet_client_ca = cluster.kubelet_client_ca().map(|p| p.to_owned());
    config.streaming_connection_idle_timeout = idle_timeout;
    let gateway = gateway::start(config, gateway_client, CancellationToken::new())
        .await
        .unwrap();
    let ns = "gw-streams".to_owned();
    let namespaces: Api<Namespace> = Api::all(admin.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap(),
        )
        .await
        .unwrap();
    let dev = device(
        &gateway,
        &admin,
        "gw-streams-pi",
        Some(edge_protocol::STREAM_PROTOCOL_VERSION),
    )
    .await;
    let old = device(&gateway, &admin, "gw-streams-old", None).await;
    run_pod(&admin, &ns, "shell", "gw-streams-pi").await;
    run_pod(&admin, &ns, "old-shell", "gw-streams-old").await;
    let kubectl =
        Kubectl::with_binary(&cluster.kubectl_binary(), cluster.kubeconfig_path()).unwrap();
    Bed {
        _dir: dir,
        cluster,
        gateway,
        kubectl,
        ns,
        dev: Some(dev),
        old,
    }
}

impl Bed {
    fn dev(&self) -> &FakeDevice {
        self.dev.as_ref().unwrap()
    }

    /// Runs the Go client against the gateway's kubelet API with the API server's kubelet
    /// client certificate: (result JSON, stderr).
    fn go_client(
        &self,
        path: &str,
        mode: &str,
        remote_port: Option<u16>,
    ) -> (serde_json::Value, String) {
        let Cluster::ControlPlane(cp) = &self.cluster else {
            panic!("the control plane backend is needed");
        };
        let cp: &ControlPlane = cp;
        let (cert, key) = cp.kubelet_client_cert();
        let url = format!(
            "https://127.0.0.1:{}{path}",
            self.gateway.ports.kubelet_port
        );
        let mut cmd = Command::new(go_client());
        cmd.args([&url, mode])
            .env("SPDY_CLIENT_CERT", cert)
            .env("SPDY_CLIENT_KEY", key);
        if let Some(port) = remote_port {
            cmd.env("SPDY_CLIENT_REMOTE_PORT", port.to_string());
        }
        let out = cmd.output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let result = serde_json::from_str(stdout.trim())
            .unwrap_or_else(|e| panic!("{e}: {stdout} / {}", String::from_utf8_lossy(&out.stderr)));
        (result, String::from_utf8_lossy(&out.stderr).into_owned())
    }

    /// `kubectl exec -i shell -c app -- sh -c "exit 3"` with `hello` on stdin: the
    /// device's output, then exit code 3.
    fn exec_echoes_stdin_and_exits_3(&self) {
        let command = ["sh", "-c", "exit 3"];
        let out = self
            .kubectl
            .exec(&self.ns, "shell", "app", &command, Some(b"hello\n"))
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "ran sh -c exit 3\nhello\n",
            "{stderr}"
        );
        assert_eq!(out.status.code(), Some(3), "{stderr}");
    }

    /// `kubectl exec -i shell -c app -- cat` with stdin and stderr piped (and kept open).
    fn spawn_cat(&self) -> std::process::Child {
        let ns = &self.ns;
        self.kubectl
            .command()
            .args(["exec", "-i", "-n", ns, "shell", "-c", "app", "--", "cat"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    async fn metrics(&self) -> String {
        let url = format!(
            "http://127.0.0.1:{}/metrics",
            self.gateway.ports.metrics_port
        );
        let out = tokio::process::Command::new("curl")
            .args(["-s", &url])
            .output()
            .await
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exec_and_port_forward_reach_the_device_and_fail_clearly() {
    let mut bed = bed(ClusterBackend::ControlPlane, Duration::from_secs(4 * 3600)).await;
    let ns = bed.ns.clone();

    // stdin piped and EOF, the exit code as `kubectl exec` returns it
    bed.exec_echoes_stdin_and_exits_3();
    let view = bed.dev().streams_view();
    assert_eq!(view.input, b"hello\n");
    assert_eq!(view.input_ends, 1, "stdin EOF reached the device");
    let open = &view.opens[0];
    assert_eq!(open.target.pod().pod_name, "shell");

    // no stdin: success
    let out = bed
        .kubectl
        .exec(&ns, "shell", "side", &["true"], None)
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ran true\n");

    // TTY: the client's terminal size reaches the device (client-go directly)
    let (result, stderr) = bed.go_client(
        &format!("/exec/{ns}/shell/app?command=sh&command=-i&stdin=1&stdout=1&tty=1"),
        "tty",
        None,
    );
    assert_eq!(result["exitCode"], 0, "{result} {stderr}");
    let stdout = result["stdout"].as_str().unwrap();
    assert!(stdout.contains("resized to 80x24"), "{stdout}");
    assert!(
        bed.dev().streams_view().resizes.contains(&TerminalSize {
            width: 80,
            height: 24
        }),
        "{:?}",
        bed.dev().streams_view().resizes
    );

    // an exit code through client-go's SPDY executor directly, with stderr requested
    let (result, _) = bed.go_client(
        &format!(
            "/exec/{ns}/shell/app?command=sh&command=-c&command=exit%207&stdin=1&stdout=1&stderr=1"
        ),
        "exec",
        None,
    );
    assert_eq!(result["exitCode"], 7, "{result}");

    // WebSocket (v5.channel.k8s.io, client-go's WebSocket executor), as an API server
    // that passes WebSockets through to the kubelet speaks: stdin, its close, exit code
    let (result, stderr) = bed.go_client(
        &format!(
            "/exec/{ns}/shell/app?command=sh&command=-c&command=exit%205&stdin=1&stdout=1&stderr=1"
        ),
        "ws",
        None,
    );
    assert_eq!(result["exitCode"], 5, "{result} {stderr}");
    assert_eq!(
        result["stdout"], "ran sh -c exit 5\nhello from stdin\n",
        "{result}"
    );

    // unknown container (kube-apiserver checks this too): the kubelet's 404 words
    let (result, _) = bed.go_client(
        &format!("/exec/{ns}/shell/nope?command=true&stdout=1"),
        "exec",
        None,
    );
    assert!(
        result["error"]
            .as_str()
            .unwrap()
            .contains("container not found (\"nope\")"),
        "{result}"
    );

    // port-forward: the echo port, then a refused one with the kubelet's message shape
    let (result, stderr) = bed.go_client(&format!("/portForward/{ns}/shell"), "portforward", None);
    assert_eq!(
        result["stdout"], "ping through the tunnel\n",
        "{result} {stderr}"
    );
    let (_, stderr) = bed.go_client(&format!("/portForward/{ns}/shell"), "portforward", Some(9));
    assert!(
        stderr.contains("error forwarding port 9 to pod shell")
            && stderr.contains("connection refused"),
        "{stderr}"
    );

    // kubectl port-forward through kube-apiserver: two ports at once, two connections
    // on one of them
    kubectl_port_forward_echoes(&bed, &ns);

    // kubectl attach: the device's attach output, then stdin echoed
    let mut child = bed
        .kubectl
        .command()
        .args(["attach", "-i", "-n", &ns, "shell", "-c", "app"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"to the main process\n").unwrap();
    }
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("attached\nto the main process\n"),
        "{stdout} / {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        bed.dev()
            .streams_view()
            .opens
            .iter()
            .any(|o| matches!(o.target, edge_protocol::StreamTarget::Attach { .. }))
    );

    // a slow reader: the device is held back (it never has more than its window out),
    // and every byte arrives once the reader reads
    const FLOOD: usize = 24 << 20;
    let mut child = bed
        .kubectl
        .command()
        .args([
            "exec",
            "-n",
            &ns,
            "shell",
            "-c",
            "app",
            "--",
            "flood",
            &FLOOD.to_string(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let held_back = bed
        .dev()
        .wait_for_streams(Duration::from_secs(20), |v| {
            v.open == 1 && v.output_waiting > 0
        })
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let view = bed.dev().streams_view();
    assert!(
        held_back && view.output_waiting > 0,
        "the device was not held back: {view:?}"
    );
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut all = Vec::new();
        std::io::Read::read_to_end(&mut stdout, &mut all).unwrap();
        all.len()
    });
    assert_eq!(reader.join().unwrap(), FLOOD);
    assert!(child.wait().unwrap().success());

    // the client going away: StreamClose (cancelled) reaches the device
    let closes_before = bed.dev().streams_view().closes_from_gateway.len();
    let mut child = bed.spawn_cat();
    assert!(
        bed.dev()
            .wait_for_streams(Duration::from_secs(20), |v| v.open == 1)
            .await
    );
    child.kill().unwrap();
    let _ = child.wait();
    assert!(
        bed.dev()
            .wait_for_streams(Duration::from_secs(20), |v| {
                v.closes_from_gateway.len() > closes_before
                    && v.closes_from_gateway
                        .last()
                        .and_then(|c| c.error.as_ref())
                        .map(|e| e.code)
                        == Some(StreamErrorCode::Cancelled)
            })
            .await,
        "{:?}",
        bed.dev().streams_view()
    );

    // an agent from before streams: a clear error at once
    let started = Instant::now();
    let out = bed
        .kubectl
        .exec(&ns, "old-shell", "app", &["true"], None)
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("does not support exec, attach or port-forward")
            && stderr.contains("upgrade the agent"),
        "{stderr}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );

    // the device going away mid-stream ends the exec with an error within seconds
    let mut child = bed.spawn_cat();
    assert!(
        bed.dev()
            .wait_for_streams(Duration::from_secs(20), |v| v.open == 1)
            .await
    );
    // stdin stays open: only the device going away can end this exec
    let stdin = child.stdin.take();
    let started = Instant::now();
    bed.dev.take().unwrap().go_offline().await;
    // (never a hang: the exec is killed after 20 s, and the test fails below)
    let pid = child.id();
    let watchdog = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(20)).await;
        let _ = Command::new("kill").arg(pid.to_string()).status();
    });
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    watchdog.abort();
    assert!(!out.status.success());
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("went offline"), "{stderr}");
    drop(stdin);

    // and while it is offline, exec fails at once saying so
    let started = Instant::now();
    let out = bed
        .kubectl
        .exec(&ns, "shell", "app", &["true"], None)
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("node gw-streams-pi is offline"), "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );

    // the metrics count what happened
    let metrics = bed.metrics().await;
    for want in [
        "edge_gateway_streams_ended_total{kind=\"exec\",reason=\"device_closed\"}",
        "edge_gateway_streams_ended_total{kind=\"exec\",reason=\"client_closed\"}",
        "edge_gateway_streams_ended_total{kind=\"exec\",reason=\"device_gone\"} 1",
        "edge_gateway_streams_ended_total{kind=\"portforward\",reason=\"refused\"} 1",
        "edge_gateway_streams_open{kind=\"exec\"} 0",
    ] {
        assert!(metrics.contains(want), "{want} missing:\n{metrics}");
    }
    drop(bed.old);
    bed.gateway.shutdown().await;
}

/// The sandbox's path: kubectl against the API emulator, which proxies the SPDY upgrade
/// to the gateway (kubectl falls back from WebSocket to SPDY).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exec_through_the_api_emulator() {
    let bed = bed(ClusterBackend::Emulator, Duration::from_secs(3)).await;
    let ns = bed.ns.clone();
    bed.exec_echoes_stdin_and_exits_3();
    let out = bed
        .kubectl
        .exec(&ns, "old-shell", "app", &["true"], None)
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("upgrade the agent"), "{stderr}");

    // an idle exec ends after --streaming-connection-idle-timeout (3 s here)
    let closes_before = bed.dev().streams_view().closes_from_gateway.len();
    let mut child = bed.spawn_cat();
    let stdin = child.stdin.take();
    let started = Instant::now();
    assert!(
        bed.dev()
            .wait_for_streams(Duration::from_secs(20), |v| {
                v.closes_from_gateway.len() > closes_before
            })
            .await
    );
    let view = bed.dev().streams_view();
    let close = view.closes_from_gateway.last().unwrap();
    assert_eq!(
        close.error.as_ref().map(|e| e.code),
        Some(StreamErrorCode::IdleTimeout),
        "{close:?}"
    );
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(!status.success());
    drop(stdin);
    bed.gateway.shutdown().await;
}

/// `kubectl port-forward pod/shell :8080 :8081`: a line through each port, and a second
/// connection on the first, each echoed by the device.
fn kubectl_port_forward_echoes(bed: &Bed, ns: &str) {
    use std::io::{BufRead, BufReader, Read, Write};
    let mut child = bed
        .kubectl
        .command()
        .args(["port-forward", "-n", ns, "pod/shell", ":8080", ":8081"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut local = std::collections::HashMap::new();
    while local.len() < 2 {
        let line = lines
            .next()
            .expect("kubectl port-forward ended early")
            .unwrap();
        // "Forwarding from 127.0.0.1:41234 -> 8080"
        if let Some(rest) = line.strip_prefix("Forwarding from 127.0.0.1:") {
            let (port, remote) = rest.split_once(" -> ").unwrap();
            local.insert(remote.to_owned(), port.parse::<u16>().unwrap());
        }
    }
    for (remote, connection) in [("8080", 1), ("8081", 1), ("8080", 2)] {
        let mut conn = std::net::TcpStream::connect(("127.0.0.1", local[remote])).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let line = format!("to {remote}, connection {connection}\n");
        conn.write_all(line.as_bytes()).unwrap();
        conn.shutdown(std::net::Shutdown::Write).unwrap();
        let mut echoed = String::new();
        conn.read_to_string(&mut echoed).unwrap();
        assert_eq!(echoed, line);
    }
    let _ = child.kill();
    let _ = child.wait();
}
