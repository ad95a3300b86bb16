//! One whole stack for a scenario: cluster, broker, gateway, agents, a namespace.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::api::PostParams;

use super::agent::{Agent, AgentBuild, AgentOptions};
use super::cluster::{Cluster, ClusterBackend};
use super::gateway::{Gateway, GatewayOptions};
use super::kubectl::Kubectl;
use super::mosquitto::Mosquitto;
use super::{StackError, StackResult};

/// Which broker carries the MQTT traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerKind {
    /// The gateway's embedded rumqttd.
    Embedded,
    /// A separate Mosquitto process.
    Mosquitto,
}

#[derive(Debug, Clone)]
pub struct StackOptions {
    pub broker: BrokerKind,
    /// The emulator (one per stack) or the real control plane (one per test binary).
    pub backend: ClusterBackend,
    /// The emulator's node lease grace (kube-controller-manager's default is 40-50 s).
    pub node_lease_grace: Duration,
    pub device_timeout: Duration,
    pub node_lease_renew: Duration,
    pub heartbeat_interval: Duration,
    /// More `edge-gateway run` flags.
    pub gateway_args: Vec<String>,
    /// More `edge-agent run` flags for every agent of the stack.
    pub agent_args: Vec<String>,
}

impl StackOptions {
    /// Short timings so scenarios about outages finish in seconds.
    pub fn fast(broker: BrokerKind) -> Self {
        Self {
            broker,
            backend: ClusterBackend::Emulator,
            node_lease_grace: Duration::from_secs(6),
            device_timeout: Duration::from_secs(4),
            node_lease_renew: Duration::from_secs(1),
            heartbeat_interval: Duration::from_secs(1),
            gateway_args: Vec::new(),
            agent_args: Vec::new(),
        }
    }
}

impl StackOptions {
    /// The same options on another Kubernetes backend.
    pub fn on(mut self, backend: ClusterBackend) -> Self {
        self.backend = backend;
        self
    }
}

/// Node label every agent of a stack carries, and pods created through
/// [`Stack::pod_node_selector`] select: stacks sharing one cluster (the control plane
/// of a test binary, or a user's cluster) never get each other's pods.
pub const STACK_LABEL: &str = "edge-e2e/stack";

/// Removes (best effort) every container the agents made for pods of `namespace`, from
/// the Podman at `$EDGE_TEST_DOCKER_HOST`. An infra container cannot go before the
/// containers joined to it, so this takes rounds; what is still left is printed.
pub fn remove_pod_containers(namespace: &str) {
    let Ok(host) = std::env::var("EDGE_TEST_DOCKER_HOST") else {
        return;
    };
    let filter = format!("label=io.edge-kube.pod-namespace={namespace}");
    let list = || -> Vec<String> {
        Command::new("podman")
            .args(["--url", &host, "ps", "-aq", "--filter", &filter])
            .output()
            .map(|out| {
                String::from_utf8_lossy(&out.stdout)
                    .split_whitespace()
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut ids = list();
    for _ in 0..3 {
        if ids.is_empty() {
            return;
        }
        let _ = Command::new("podman")
            .args(["--url", &host, "rm", "-f"])
            .args(&ids)
            .output();
        ids = list();
    }
    if !ids.is_empty() {
        eprintln!("containers of namespace {namespace} left in Podman: {ids:?}");
    }
}

/// The lines of a gateway log that report a call RBAC refused: its message names the
/// user ("... is forbidden: User \"...\" cannot <verb> resource ..."). Other 403s, such
/// as an Event into a namespace being deleted, come from admission, not from the role.
pub fn rbac_refusals(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains("is forbidden: User \""))
        .map(str::to_owned)
        .collect()
}

/// Finds one of our binaries: `EDGE_TEST_BIN_DIR`, else the workspace's target/debug.
pub fn binary(name: &str) -> StackResult<PathBuf> {
    let dir = std::env::var_os("EDGE_TEST_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/debug"));
    let path = dir.join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(StackError::MissingTool {
            tool: path.display().to_string(),
            hint: "run `cargo build --workspace --bins` first (scripts/test.sh does)".to_owned(),
        })
    }
}

/// A running stack. Dropping it stops every process and removes the containers of
/// its namespace from the runtime.
#[derive(Debug)]
pub struct Stack {
    pub options: StackOptions,
    pub cluster: Cluster,
    pub mosquitto: Option<Mosquitto>,
    pub gateway: Gateway,
    pub agents: BTreeMap<String, Agent>,
    pub kubectl: Kubectl,
    /// A namespace of this stack's own; scenarios put their pods here.
    pub namespace: String,
    dir: Option<tempfile::TempDir>,
}

impl Stack {
    pub async fn start(mut options: StackOptions) -> StackResult<Self> {
        if std::env::var_os(super::cluster::E2E_KUBECONFIG_ENV).is_some() {
            // A real cluster marks nodes unreachable after its controller-manager's
            // --node-monitor-grace-period (40-50 s), not the emulator's short test grace.
            let seconds = std::env::var("EDGE_E2E_NODE_GRACE_SECONDS")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(50);
            options.node_lease_grace = Duration::from_secs(seconds);
        }
        let dir = tempfile::Builder::new()
            .prefix("edge-e2e-")
            .tempdir()
            .map_err(|e| StackError::Other(e.to_string()))?;
        let cluster = Cluster::start(options.backend, dir.path(), options.node_lease_grace).await?;
        if let Some(grace) = cluster.node_monitor_grace_period() {
            // The real node lifecycle controller's grace, not the emulator's short one.
            options.node_lease_grace = grace;
        }
        let mosquitto = match options.broker {
            BrokerKind::Mosquitto => Some(Mosquitto::start(&dir.path().join("mosquitto"))?),
            BrokerKind::Embedded => None,
        };
        let node_address =
            std::env::var("EDGE_E2E_NODE_ADDRESS").unwrap_or_else(|_| "127.0.0.1".to_owned());
        let gateway = Gateway::start(
            GatewayOptions {
                kubeconfig: cluster.gateway_kubeconfig_path().to_owned(),
                store_dir: dir.path().join("gateway-store"),
                broker_url: mosquitto.as_ref().map(Mosquitto::url),
                kubelet_client_ca: cluster.kubelet_client_ca().map(ToOwned::to_owned),
                node_address,
                device_timeout: options.device_timeout,
                node_lease_renew: options.node_lease_renew,
                extra_args: options.gateway_args.clone(),
            },
            dir.path(),
        )?;
        let kubectl = Kubectl::with_binary(&cluster.kubectl_binary(), cluster.kubeconfig_path())?;
        let namespace = format!(
            "e2e-{}",
            dir.path()
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("x")
                .trim_start_matches("edge-e2e-")
                .to_ascii_lowercase()
                .replace(|c: char| !c.is_ascii_alphanumeric(), "")
        );
        let stack = Self {
            options,
            cluster,
            mosquitto,
            gateway,
            agents: BTreeMap::new(),
            kubectl,
            namespace,
            dir: Some(dir),
        };
        let ns: Api<Namespace> = Api::all(stack.client().await?);
        let body = serde_json::from_value(serde_json::json!({
            "metadata": {"name": stack.namespace}
        }))
        .map_err(|e| StackError::Other(e.to_string()))?;
        ns.create(&PostParams::default(), &body)
            .await
            .map_err(|e| StackError::Kubernetes(format!("creating namespace: {e}")))?;
        Ok(stack)
    }

    pub fn dir(&self) -> &std::path::Path {
        self.dir
            .as_ref()
            .map(|d| d.path())
            .unwrap_or(std::path::Path::new("/tmp"))
    }

    pub async fn client(&self) -> StackResult<kube::Client> {
        self.cluster.client().await
    }

    /// Starts a real agent for `device_id` with the given node labels.
    pub fn start_agent(
        &mut self,
        device_id: &str,
        labels: &[(&str, &str)],
        build: AgentBuild,
    ) -> StackResult<&mut Agent> {
        let agent = Agent::start(
            AgentOptions {
                device_id: device_id.to_owned(),
                broker_url: self.gateway.broker_url(),
                labels: labels
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .chain([(STACK_LABEL.to_owned(), self.namespace.clone())])
                    .collect(),
                build,
                heartbeat_interval: self.options.heartbeat_interval,
                extra_args: self.options.agent_args.clone(),
            },
            self.dir(),
        )?;
        self.agents.insert(device_id.to_owned(), agent);
        self.agents
            .get_mut(device_id)
            .ok_or_else(|| StackError::Other("agent vanished".to_owned()))
    }

    pub fn agent(&mut self, device_id: &str) -> StackResult<&mut Agent> {
        self.agents
            .get_mut(device_id)
            .ok_or_else(|| StackError::Other(format!("no agent {device_id} in this stack")))
    }

    /// The node selector that keeps a pod on this stack's devices.
    pub fn pod_node_selector(&self) -> (&'static str, &str) {
        (STACK_LABEL, &self.namespace)
    }

    /// Lines of the gateway's log that report a call RBAC refused (403):
    /// on the real control plane the gateway runs under exactly its shipped ClusterRole,
    /// so any such line means the role is not enough.
    pub fn forbidden_calls(&self) -> Vec<String> {
        rbac_refusals(&self.gateway.log())
    }

    /// Logs of every process, for a failing scenario's message.
    pub fn logs(&self) -> String {
        let mut out = format!("--- gateway ---\n{}\n", tail(&self.gateway.log(), 80));
        for (id, a) in &self.agents {
            out += &format!("--- agent {id} ---\n{}\n", tail(&a.log(), 60));
        }
        out
    }
}

fn tail(s: &str, lines: usize) -> String {
    let all: Vec<&str> = s.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

impl Drop for Stack {
    fn drop(&mut self) {
        let forbidden = if matches!(self.cluster, Cluster::ControlPlane(_)) {
            self.forbidden_calls()
        } else {
            Vec::new()
        };
        for agent in self.agents.values_mut() {
            agent.kill9();
        }
        self.gateway.kill9();
        // On a cluster that outlives the stack, its Nodes and namespace go too: dead
        // nodes left behind would count as unhealthy in the node lifecycle controller's
        // zone and could stop it from tainting the next scenario's unreachable node.
        if !self.cluster.is_emulated() {
            let selector = format!("{STACK_LABEL}={}", self.namespace);
            let _ = self
                .kubectl
                .output(&["delete", "nodes", "-l", &selector, "--wait=false"]);
            let _ = self
                .kubectl
                .output(&["delete", "namespace", &self.namespace, "--wait=false"]);
        }
        // Containers the agents made for this stack's pods.
        remove_pod_containers(&self.namespace);
        if std::env::var_os("EDGE_E2E_KEEP").is_some()
            && let Some(dir) = self.dir.take()
        {
            eprintln!(
                "EDGE_E2E_KEEP: stack files kept in {}",
                dir.keep().display()
            );
        }
        if !forbidden.is_empty() && !std::thread::panicking() {
            panic!(
                "the API server refused {} call(s) of the gateway (403): its ClusterRole \
                 (deploy/kustomize/base/clusterrole.yaml) is not enough:\n{}",
                forbidden.len(),
                forbidden.join("\n")
            );
        }
    }
}
