//! The upstream metrics-server beside the real control plane, for `kubectl top`: built
//! by `scripts/build-metrics-server.sh` from the Go module pinned in
//! `hil-tests/metrics-server/go.mod`, run as a process on 127.0.0.1 and registered with
//! the aggregation layer as `v1beta1.metrics.k8s.io`.
//!
//! How kube-apiserver reaches it: the APIService names a Service of type ExternalName
//! `localhost` (kube-apiserver proxies to `<externalName>:<port>`; Endpoints may not hold
//! loopback addresses). How it reaches the gateway's kubelet API: each Node's
//! InternalIP (`--kubelet-preferred-address-types=InternalIP`) and
//! `daemonEndpoints.kubeletEndpoint.Port` (`--kubelet-use-node-status-port`), the path
//! from the Node's `metrics.k8s.io/resource-metrics-path` annotation, as the kubelet
//! client of kube-apiserver (its certificate, which the gateway trusts and RBAC binds to
//! `system:kubelet-api-admin`). The gateway's serving certificate is self-signed, hence
//! `--kubelet-insecure-tls` here (a deployment passes `--kubelet-certificate-authority`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::binaries::build_script_dir;
use super::{ControlPlane, https_get_insecure, process_guard};
use crate::stack::{ChildProcess, StackError, StackResult, free_loopback_port};

/// Environment variable naming the directory with the built binary
/// (`scripts/test.sh` sets it).
pub const METRICS_SERVER_BIN_DIR_ENV: &str = "EDGE_METRICS_SERVER_BIN_DIR";

/// A running metrics-server. Dropping it kills it and removes its APIService.
#[derive(Debug)]
pub struct MetricsServer<'cp> {
    process: ChildProcess,
    port: u16,
    cp: &'cp ControlPlane,
}

/// `$EDGE_METRICS_SERVER_BIN_DIR/metrics-server`, else what the build script names.
/// Missing: an error saying how to build it, never a silent skip.
pub fn locate() -> StackResult<PathBuf> {
    locate_in(std::env::var_os(METRICS_SERVER_BIN_DIR_ENV).map(PathBuf::from))
}

/// `metrics-server` in `dir`, else in what the build script names.
pub fn locate_in(dir: Option<PathBuf>) -> StackResult<PathBuf> {
    let dir = match dir {
        Some(d) => d,
        None => build_script_dir("build-metrics-server.sh", "metrics-server")?,
    };
    let bin = dir.join("metrics-server");
    if bin.is_file() {
        Ok(bin)
    } else {
        Err(StackError::MissingTool {
            tool: bin.display().to_string(),
            hint: "build metrics-server with `scripts/build-metrics-server.sh` (needs Go >= 1.26 \
                   and the Go module proxy; scripts/test.sh runs it)"
                .to_owned(),
        })
    }
}

/// The ExternalName Service and the APIService that route `metrics.k8s.io` to `port`.
fn registration(port: u16) -> String {
    format!(
        r#"apiVersion: v1
kind: Service
metadata:
  name: metrics-server
  namespace: kube-system
spec:
  type: ExternalName
  externalName: localhost
  ports:
  - name: https
    port: {port}
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata:
  name: v1beta1.metrics.k8s.io
spec:
  group: metrics.k8s.io
  version: v1beta1
  groupPriorityMinimum: 100
  versionPriority: 100
  insecureSkipTLSVerify: true
  service:
    name: metrics-server
    namespace: kube-system
    port: {port}
"#
    )
}

impl<'cp> MetricsServer<'cp> {
    /// Starts metrics-server against `cp` (scraping every 10 s, its shortest resolution)
    /// and waits until kube-apiserver reports its APIService available.
    pub fn start(cp: &'cp ControlPlane, dir: &Path, timeout: Duration) -> StackResult<Self> {
        let program = locate()?;
        std::fs::create_dir_all(dir).map_err(|e| StackError::io(dir, e))?;
        let port = free_loopback_port()?;
        let admin = cp.admin_kubeconfig().display().to_string();
        let pki = &cp.pki;
        let args: Vec<String> = vec![
            format!("--secure-port={port}"),
            "--bind-address=127.0.0.1".into(),
            format!("--cert-dir={}", dir.join("certs").display()),
            format!("--kubeconfig={admin}"),
            format!("--authentication-kubeconfig={admin}"),
            format!("--authorization-kubeconfig={admin}"),
            format!(
                "--kubelet-client-certificate={}",
                pki.kubelet_client_crt.display()
            ),
            format!("--kubelet-client-key={}", pki.kubelet_client_key.display()),
            "--kubelet-insecure-tls".into(),
            "--kubelet-preferred-address-types=InternalIP".into(),
            "--kubelet-use-node-status-port".into(),
            "--metric-resolution=10s".into(),
            "--kubelet-request-timeout=5s".into(),
            "--v=2".into(),
        ];
        let mut process =
            process_guard::spawn_tied_to_process("metrics-server", &program, &args, dir)?;
        let deadline = Instant::now() + timeout;
        let livez = format!("https://127.0.0.1:{port}/livez");
        while https_get_insecure(&livez).is_none_or(|b| b.trim() != "ok") {
            if !process.is_running() || Instant::now() > deadline {
                return Err(StackError::NotReady {
                    what: "metrics-server".to_owned(),
                    seconds: timeout.as_secs(),
                    detail: format!("; its log:\n{}", process.log()),
                });
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let manifest = dir.join("metrics-server-apiservice.yaml");
        std::fs::write(&manifest, registration(port)).map_err(|e| StackError::io(&manifest, e))?;
        let server = Self { process, port, cp };
        cp.kubectl_admin(&["apply", "-f", &manifest.display().to_string()])?;
        let wait = format!("--timeout={}s", timeout.as_secs());
        cp.kubectl_admin(&[
            "wait",
            "--for=condition=Available",
            "apiservice/v1beta1.metrics.k8s.io",
            &wait,
        ])
        .map_err(|e| StackError::NotReady {
            what: "the metrics.k8s.io APIService".to_owned(),
            seconds: timeout.as_secs(),
            detail: format!(": {e}; metrics-server's log:\n{}", server.log()),
        })?;
        Ok(server)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn log(&self) -> String {
        self.process.log()
    }
}

impl Drop for MetricsServer<'_> {
    fn drop(&mut self) {
        let _ = self.cp.kubectl_admin(&[
            "delete",
            "apiservice",
            "v1beta1.metrics.k8s.io",
            "--wait=false",
        ]);
        let _ = self.cp.kubectl_admin(&[
            "delete",
            "service",
            "metrics-server",
            "-n",
            "kube-system",
            "--wait=false",
        ]);
        self.process.kill9();
    }
}
