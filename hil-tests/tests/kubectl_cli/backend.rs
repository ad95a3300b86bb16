//! The two Kubernetes APIs the kubectl tests run against, the kubectl that goes with
//! each, and small helpers the tests share.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use edge_hil_tests::apiserver::{ApiServer, ApiServerConfig, cluster, discovery};
use edge_hil_tests::controlplane::ControlPlane;
use k8s_openapi::api::core::v1::{Namespace, Node, ServiceAccount};
use kube::api::{Api, PostParams};
use serde_json::json;

/// A Kubernetes API server for one test.
pub enum Backend {
    /// The emulator, started for this test (its files in `_dir`).
    Emulator {
        server: ApiServer,
        _dir: tempfile::TempDir,
    },
    /// The real control plane (upstream kube-apiserver and controllers), shared by every
    /// test of this binary: tests on it use their own namespace and unique names.
    ControlPlane(&'static ControlPlane),
}

impl Backend {
    pub async fn emulator() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = ApiServerConfig::new(dir.path());
        cfg.controller_interval = Duration::from_millis(50);
        Backend::Emulator {
            server: ApiServer::start(cfg).await.unwrap(),
            _dir: dir,
        }
    }

    pub async fn control_plane() -> Self {
        let cp = tokio::task::spawn_blocking(ControlPlane::shared)
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("{e}"));
        Backend::ControlPlane(cp)
    }

    pub fn is_emulator(&self) -> bool {
        matches!(self, Backend::Emulator { .. })
    }

    /// A cluster admin's kubeconfig.
    pub fn kubeconfig(&self) -> &Path {
        match self {
            Backend::Emulator { server: s, .. } => s.kubeconfig_path(),
            Backend::ControlPlane(cp) => cp.admin_kubeconfig(),
        }
    }

    /// A kube-rs client with the admin kubeconfig.
    pub async fn client(&self) -> kube::Client {
        match self {
            Backend::Emulator { server: s, .. } => s.client().await.unwrap(),
            Backend::ControlPlane(cp) => cp.client().await.unwrap(),
        }
    }

    /// The CA a kubelet must trust for the API server's client certificate.
    pub fn kubelet_client_ca(&self) -> &Path {
        match self {
            Backend::Emulator { server: s, .. } => s.kubelet_client_ca_path(),
            Backend::ControlPlane(cp) => cp.kubelet_client_ca(),
        }
    }

    /// The cluster CA: it signs the serving certificate and approved CSRs.
    pub fn cluster_ca(&self) -> PathBuf {
        match self {
            Backend::Emulator { server: s, .. } => {
                s.kubelet_client_ca_path().with_file_name("ca.crt")
            }
            Backend::ControlPlane(cp) => cp.pki.ca_crt.clone(),
        }
    }

    /// The kubectl to use: the PATH one (v1.32, or `$KUBECTL`) for the emulator, which
    /// serves v1.32; the control plane's own release for it (the PATH kubectl is
    /// outside the version skew policy there).
    pub fn kubectl_binary(&self) -> PathBuf {
        match self {
            Backend::Emulator { .. } => {
                PathBuf::from(std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".into()))
            }
            Backend::ControlPlane(cp) => cp.binaries.kubectl.clone(),
        }
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        match self {
            Backend::Emulator { server: s, .. } => s.url(),
            Backend::ControlPlane(cp) => cp.url().to_owned(),
        }
    }

    /// The admin kubeconfig's user name (its client certificate's or token's).
    pub fn admin_user(&self) -> &'static str {
        match self {
            Backend::Emulator { .. } => cluster::ADMIN_USER,
            Backend::ControlPlane(_) => "kubernetes-admin",
        }
    }

    /// The server's `gitVersion`.
    pub fn server_version(&self) -> &'static str {
        match self {
            Backend::Emulator { .. } => discovery::GIT_VERSION,
            Backend::ControlPlane(_) => pinned_release(),
        }
    }

    /// kubectl for this backend, in `namespace` by default.
    pub fn kubectl(&self, namespace: &str) -> Kubectl {
        Kubectl::new(&self.kubectl_binary(), self.kubeconfig(), Some(namespace))
    }

    /// Creates namespace `name` and waits for its `default` ServiceAccount (pods and
    /// tokens need it; on the control plane the service account controller makes it).
    pub async fn namespace(&self, name: &str) -> kube::Client {
        let client = self.client().await;
        let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .unwrap();
        let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), name);
        eventually(
            "the default ServiceAccount",
            Duration::from_secs(30),
            || {
                let sas = sas.clone();
                async move { sas.get_opt("default").await.ok().flatten() }
            },
        )
        .await;
        client
    }
}

/// The Kubernetes release the control plane is built from (`hil-tests/controlplane/go.mod`).
pub fn pinned_release() -> &'static str {
    include_str!("../../controlplane/go.mod")
        .lines()
        .find_map(|l| l.trim().strip_prefix("require k8s.io/kubernetes "))
        .and_then(|rest| rest.split_whitespace().next())
        .expect("go.mod requires k8s.io/kubernetes")
}

/// Polls `f` every 100 ms until it gives `Some`; panics after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not there after {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `kubectl --kubeconfig K --cache-dir (own) [--namespace N] ...`.
pub struct Kubectl {
    bin: PathBuf,
    kubeconfig: PathBuf,
    namespace: Option<String>,
    cache: tempfile::TempDir,
    /// The client's minor version.
    minor: u32,
}

impl Kubectl {
    pub fn new(bin: &Path, kubeconfig: &Path, namespace: Option<&str>) -> Self {
        let out = Command::new(bin)
            .args(["version", "--client", "-o", "json"])
            .output();
        let version: serde_json::Value = match out {
            Ok(o) if o.status.success() => serde_json::from_slice(&o.stdout).unwrap(),
            _ => panic!(
                "kubectl not found or not runnable as {bin:?}: install kubectl v1.32 on PATH or set KUBECTL=/path/to/kubectl"
            ),
        };
        let minor = version["clientVersion"]["minor"]
            .as_str()
            .and_then(|m| m.trim_end_matches('+').parse().ok())
            .unwrap();
        Self {
            bin: bin.to_path_buf(),
            kubeconfig: kubeconfig.to_path_buf(),
            namespace: namespace.map(str::to_owned),
            cache: tempfile::tempdir().unwrap(),
            minor,
        }
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.cache.path());
        if let Some(ns) = &self.namespace {
            c.arg("--namespace").arg(ns);
        }
        c.args(args);
        c
    }

    /// Runs kubectl off the async runtime; returns the output.
    pub async fn run(&self, args: &[&str]) -> Output {
        let mut c = self.cmd(args);
        tokio::task::spawn_blocking(move || c.output().unwrap())
            .await
            .unwrap()
    }

    /// Runs kubectl and requires success; returns stdout.
    pub async fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// What `kubectl delete` prints for a namespaced object of this kubectl's namespace:
    /// v1.32 `pod "x" deleted`, later releases (v1.37) add `from <ns> namespace`.
    pub fn deleted(&self, resource: &str, name: &str) -> String {
        match &self.namespace {
            Some(ns) if self.minor > 32 => {
                format!("{resource} \"{name}\" deleted from {ns} namespace\n")
            }
            _ => format!("{resource} \"{name}\" deleted\n"),
        }
    }
}

/// A Node as a virtual kubelet registers it, its kubelet API on `127.0.0.1:kubelet_port`.
pub fn node_json(name: &str, kubelet_port: u16) -> Node {
    serde_json::from_value(json!({"metadata": {"name": name, "labels": {"kubernetes.io/arch": "arm64", "kubernetes.io/os": "linux",
            "kubernetes.io/hostname": name, "type": "virtual-kubelet"}},
        "spec": {"taints": [{"key": "example.com/edge", "value": "lab", "effect": "PreferNoSchedule"}]},
        "status": {"capacity": {"cpu": "4", "memory": "4Gi", "pods": "110"}, "allocatable": {"cpu": "4", "memory": "4Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "device online",
                "lastHeartbeatTime": "2024-01-01T00:00:00Z", "lastTransitionTime": "2024-01-01T00:00:00Z"}],
            // kube-apiserver dials the Hostname address first: one that resolves here.
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": "localhost"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": kubelet_port}},
            "nodeInfo": {"architecture": "arm64", "operatingSystem": "linux", "kubeletVersion": "v1.32.0-edge", "osImage": "Raspberry Pi OS",
                "kernelVersion": "6.6.31", "containerRuntimeVersion": "docker://24.0.5", "machineID": "m", "systemUUID": "s", "bootID": "b",
                "kubeProxyVersion": ""}}}))
    .unwrap()
}

/// Whether some line of `text`, split at whitespace, starts with `tokens`.
pub fn has_row(text: &str, tokens: &[&str]) -> bool {
    text.lines().any(|l| {
        let row: Vec<&str> = l.split_whitespace().collect();
        row.starts_with(tokens)
    })
}
