//! What enrollment and rotation scenarios share: bootstrap token Secrets, simulated
//! boards (a hardware root with a device-tree serial), agents run from a bootstrap file,
//! the generated Mosquitto configuration and the broker started from it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use clap::Parser;
use edge_hil_tests::scenario::{container_id, node_ready, pod_manifest};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::Api;
use kube::api::PostParams;

use edge_hil_tests::stack::{ChildProcess, Cluster, ClusterBackend, Kubectl, eventually};

/// A cluster of `backend` with the bootstrap token Secrets `tokens` (YAML, see
/// [`token_secret`]) applied from `tokens.yaml` in `dir`, its client and its kubectl.
pub async fn cluster_with_tokens(
    backend: ClusterBackend,
    dir: &Path,
    tokens: &str,
) -> (Cluster, kube::Client, Kubectl) {
    let cluster = Cluster::start(backend, dir, Duration::from_secs(4))
        .await
        .unwrap();
    let client = cluster.client().await.unwrap();
    let kubectl =
        Kubectl::with_binary(&cluster.kubectl_binary(), cluster.kubeconfig_path()).unwrap();
    let _ = kubectl.run(&["create", "namespace", "edge-kube-system"]);
    let tokens_file = dir.join("tokens.yaml");
    std::fs::write(&tokens_file, tokens).unwrap();
    kubectl
        .run(&["apply", "-f", &tokens_file.display().to_string()])
        .unwrap();
    (cluster, client, kubectl)
}

/// A bootstrap token Secret (`<id>.<secret>`) in `edge-kube-system`, as YAML.
pub fn token_secret(token: &str, expiration: &str) -> String {
    let (id, secret) = token.split_once('.').unwrap();
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: bootstrap-token-{id}\n  namespace: edge-kube-system\n\
         type: edge-kube.io/bootstrap-token\nstringData:\n  token-id: \"{id}\"\n  token-secret: \"{secret}\"\n  \
         expiration: \"{expiration}\"\n  usage-device-enrollment: \"true\"\n---\n"
    )
}

/// A simulated board: a hardware root with a device-tree serial.
pub fn board_root(dir: &Path, name: &str, serial: &str) -> PathBuf {
    let root = dir.join("boards").join(name);
    let path = root.join("proc/device-tree/serial-number");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, format!("{serial}\0")).unwrap();
    root
}

/// Starts `edge-agent` processes from a bootstrap file.
#[derive(Debug, Clone)]
pub struct Agents {
    pub bin: PathBuf,
    pub docker_host: String,
    pub dir: PathBuf,
}

impl Agents {
    /// From `EDGE_TEST_BIN_DIR` and `EDGE_TEST_DOCKER_HOST`, files under `dir`.
    pub fn from_env(dir: &Path) -> Self {
        Self {
            bin: PathBuf::from(
                std::env::var_os("EDGE_TEST_BIN_DIR")
                    .expect("EDGE_TEST_BIN_DIR is not set: cargo build --workspace --bins"),
            )
            .join("edge-agent"),
            docker_host: std::env::var("EDGE_TEST_DOCKER_HOST").expect(
                "EDGE_TEST_DOCKER_HOST is not set: run `eval \"$(bash scripts/test-env.sh)\"`",
            ),
            dir: dir.to_owned(),
        }
    }

    /// The identity directory of the agent `name`.
    pub fn identity_dir(&self, name: &str) -> PathBuf {
        self.dir.join("identity").join(name)
    }

    /// An agent on `root` with its own identity and state directories, using `bootstrap`.
    pub fn spawn(&self, name: &str, bootstrap: &Path, root: &Path) -> ChildProcess {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("run")
            .arg("--bootstrap-file")
            .arg(bootstrap)
            .arg("--hardware-root")
            .arg(root)
            .arg("--identity-dir")
            .arg(self.identity_dir(name))
            .arg("--state-dir")
            .arg(self.dir.join("state").join(name))
            .args(["--runtime-socket", &self.docker_host])
            .args(["--heartbeat-interval", "1s", "--bootstrap-resend", "2s"])
            .env("RUST_LOG", "info")
            // the test runtime is shared: no evictions from a full disk of the test machine
            .env("EDGE_AGENT_EVICTION_MONITORING_INTERVAL_SECONDS", "0");
        let log_dir = self.dir.join("logs").join(name);
        std::fs::create_dir_all(&log_dir).unwrap();
        ChildProcess::spawn(name, cmd, &log_dir).unwrap()
    }
}

#[derive(Parser)]
struct BrokerConfigCli {
    #[command(flatten)]
    args: edge_gateway::enrollment::cli::BrokerConfigArgs,
}

/// `edge-gateway broker-config mosquitto` for loopback: device listener on `port`,
/// enrollment listener on `bootstrap_port`; the path of `mosquitto.conf`.
pub fn mosquitto_config(store: &Path, out_dir: &Path, port: u16, bootstrap_port: u16) -> PathBuf {
    let s = |p: &Path| p.display().to_string();
    let args = BrokerConfigCli::try_parse_from([
        "broker-config",
        "mosquitto",
        "--store-dir",
        &s(store),
        "--out-dir",
        &s(out_dir),
        "--listen-address",
        "127.0.0.1",
        "--port",
        &port.to_string(),
        "--bootstrap-port",
        &bootstrap_port.to_string(),
        "--run-as-user",
        "root",
    ])
    .unwrap()
    .args;
    edge_gateway::enrollment::cli::broker_config(&args, &mut Vec::new()).unwrap()
}

/// Mosquitto started from `conf`, once it listens on every port of `ports`.
pub fn start_mosquitto(conf: &Path, ports: &[u16], dir: &Path) -> ChildProcess {
    let mut cmd = Command::new(edge_hil_tests::stack::MOSQUITTO_BIN);
    cmd.arg("-v").arg("-c").arg(conf);
    std::fs::create_dir_all(dir).unwrap();
    let broker = ChildProcess::spawn("mosquitto", cmd, dir).unwrap();
    for port in ports {
        edge_hil_tests::stack::wait_for_tcp(*port, Duration::from_secs(10), "mosquitto").unwrap();
    }
    broker
}

/// Waits up to 90 s for the Node `id` to be Ready; panics with `logs()` otherwise.
pub async fn wait_ready(nodes: &Api<Node>, id: &str, logs: impl Fn() -> String) {
    eventually(
        &format!("the enrolled device {id} a Ready Node"),
        Duration::from_secs(90),
        || {
            let nodes = nodes.clone();
            let id = id.to_owned();
            async move {
                match nodes.get_opt(&id).await {
                    Ok(Some(n)) if node_ready(&n).as_deref() == Some("True") => Ok(Some(())),
                    Ok(Some(n)) => Err(format!("Ready={:?}", node_ready(&n))),
                    Ok(None) => Err("no Node yet".to_owned()),
                    Err(e) => Err(e.to_string()),
                }
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", logs()));
}

/// The issuer (as text) of the first certificate in a PEM file.
pub fn issuer_of(path: &Path) -> String {
    let pem = std::fs::read(path).unwrap();
    let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
    pem.parse_x509().unwrap().issuer().to_string()
}

/// The subject (as text) of the first certificate in a PEM file.
pub fn subject_of(path: &Path) -> String {
    let pem = std::fs::read(path).unwrap();
    let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
    pem.parse_x509().unwrap().subject().to_string()
}

/// How many certificates a PEM file holds.
pub fn certificates_in(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .matches("-----BEGIN CERTIFICATE-----")
        .count()
}

/// The pod `keeps-running` (`sleep 3600`) of namespace `namespace` while its container
/// runs; `Err` with what it is meanwhile (for [`eventually`]).
pub async fn running_pod(pods: Api<Pod>) -> Result<Option<Pod>, String> {
    match pods.get_opt("keeps-running").await {
        Ok(Some(p)) if container_id(&p).is_some() => Ok(Some(p)),
        Ok(other) => Err(format!("{:?}", other.map(|p| p.status))),
        Err(e) => Err(e.to_string()),
    }
}

/// Creates `namespace` and in it the pod `keeps-running` on the Node `id`; once its
/// container runs, the pods of the namespace and the container id.
pub async fn run_pod_on(
    client: &kube::Client,
    namespace: &str,
    id: &str,
) -> Result<(Api<Pod>, String), String> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({"metadata": {"name": namespace}})).unwrap(),
        )
        .await
        .map_err(|e| e.to_string())?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let pod = pod_manifest(
        "keeps-running",
        &[("kubernetes.io/hostname", id)],
        true,
        "Always",
        "sleep 3600",
    );
    pods.create(&PostParams::default(), &pod)
        .await
        .map_err(|e| e.to_string())?;
    let running = eventually(
        "the pod running on the board",
        Duration::from_secs(90),
        || running_pod(pods.clone()),
    )
    .await
    .map_err(|e| e.to_string())?;
    let container = container_id(&running).ok_or("no container id")?;
    Ok((pods, container))
}
