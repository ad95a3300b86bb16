//! The command lines of etcd, kube-apiserver, kube-controller-manager and
//! kube-scheduler, close to what kubeadm writes into its static pod manifests, with
//! everything on 127.0.0.1 and free ports.

use std::path::Path;
use std::time::Duration;

use super::pki::ControlPlanePki;

fn s(v: impl std::fmt::Display) -> String {
    v.to_string()
}

fn p(path: &Path) -> String {
    path.display().to_string()
}

/// etcd: one member, data in `data_dir`.
///
/// `--unsafe-no-fsync` as envtest does: a test cluster's data is thrown away, and fsync on
/// a shared build machine's disk would dominate every write's latency.
pub fn etcd_args(data_dir: &Path, client_port: u16, peer_port: u16) -> Vec<String> {
    let client = format!("http://127.0.0.1:{client_port}");
    let peer = format!("http://127.0.0.1:{peer_port}");
    vec![
        s("--name=default"),
        format!("--data-dir={}", p(data_dir)),
        format!("--listen-client-urls={client}"),
        format!("--advertise-client-urls={client}"),
        format!("--listen-peer-urls={peer}"),
        format!("--initial-advertise-peer-urls={peer}"),
        format!("--initial-cluster=default={peer}"),
        s("--unsafe-no-fsync=true"),
        s("--log-level=warn"),
    ]
}

/// kube-apiserver: client certificates and service account tokens for authentication,
/// the Node and RBAC authorizers, NodeRestriction on top of the default admission
/// plugins, and a client certificate for calls to kubelets.
/// What a test changes of kube-apiserver's defaults.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiServerTweaks {
    /// `--default-not-ready-toleration-seconds` and `--default-unreachable-toleration-seconds`.
    pub default_toleration_seconds: Option<u32>,
    /// `--feature-gates`.
    pub feature_gates: Option<&'static str>,
}

pub fn apiserver_args(
    pki: &ControlPlanePki,
    etcd_port: u16,
    port: u16,
    tweaks: ApiServerTweaks,
) -> Vec<String> {
    let mut args = vec![
        s("--bind-address=127.0.0.1"),
        s("--advertise-address=127.0.0.1"),
        format!("--secure-port={port}"),
        format!("--etcd-servers=http://127.0.0.1:{etcd_port}"),
        format!("--tls-cert-file={}", p(&pki.apiserver_crt)),
        format!("--tls-private-key-file={}", p(&pki.apiserver_key)),
        format!("--client-ca-file={}", p(&pki.ca_crt)),
        s("--authorization-mode=Node,RBAC"),
        s("--enable-admission-plugins=NodeRestriction"),
        s("--allow-privileged=true"),
        format!(
            "--kubelet-client-certificate={}",
            p(&pki.kubelet_client_crt)
        ),
        format!("--kubelet-client-key={}", p(&pki.kubelet_client_key)),
        s("--service-account-issuer=https://kubernetes.default.svc.cluster.local"),
        format!("--service-account-key-file={}", p(&pki.service_account_pub)),
        format!(
            "--service-account-signing-key-file={}",
            p(&pki.service_account_key)
        ),
        s("--service-cluster-ip-range=10.0.0.0/24"),
        // The `kubernetes` Service's endpoint would be 127.0.0.1, which Endpoints refuse.
        s("--endpoint-reconciler-type=none"),
        // The aggregation layer (metrics-server's metrics.k8s.io), as kubeadm sets it up.
        format!(
            "--requestheader-client-ca-file={}",
            p(&pki.front_proxy_ca_crt)
        ),
        format!(
            "--requestheader-allowed-names={}",
            super::pki::FRONT_PROXY_CLIENT
        ),
        s("--requestheader-username-headers=X-Remote-User"),
        s("--requestheader-group-headers=X-Remote-Group"),
        s("--requestheader-extra-headers-prefix=X-Remote-Extra-"),
        format!(
            "--proxy-client-cert-file={}",
            p(&pki.front_proxy_client_crt)
        ),
        format!("--proxy-client-key-file={}", p(&pki.front_proxy_client_key)),
        s("--v=1"),
    ];
    if let Some(gates) = tweaks.feature_gates {
        args.push(format!("--feature-gates={gates}"));
    }
    if let Some(seconds) = tweaks.default_toleration_seconds {
        args.push(format!("--default-not-ready-toleration-seconds={seconds}"));
        args.push(format!(
            "--default-unreachable-toleration-seconds={seconds}"
        ));
    }
    args
}

/// kube-controller-manager: every default controller (node lifecycle, DaemonSet,
/// Deployment, ReplicaSet, garbage collector, namespace, service account, token, root
/// CA publisher, CSR signing and approval, ...), each with its own service account as
/// kubeadm sets it up.
pub fn controller_manager_args(
    pki: &ControlPlanePki,
    kubeconfig: &Path,
    port: u16,
    node_monitor_grace_period: Option<Duration>,
) -> Vec<String> {
    let mut args = client_component_args(kubeconfig, port);
    args.extend([
        s("--use-service-account-credentials=true"),
        format!(
            "--service-account-private-key-file={}",
            p(&pki.service_account_key)
        ),
        format!("--root-ca-file={}", p(&pki.ca_crt)),
        format!("--cluster-signing-cert-file={}", p(&pki.ca_crt)),
        format!("--cluster-signing-key-file={}", p(&pki.ca_key)),
        s("--controllers=*,bootstrapsigner,tokencleaner"),
    ]);
    if let Some(grace) = node_monitor_grace_period {
        args.push(format!(
            "--node-monitor-grace-period={}s",
            grace.as_secs().max(1)
        ));
    }
    args
}

/// kube-scheduler with its default profile.
pub fn scheduler_args(kubeconfig: &Path, port: u16) -> Vec<String> {
    client_component_args(kubeconfig, port)
}

/// What kube-controller-manager and kube-scheduler share: the API server through
/// `kubeconfig` (also for delegated authentication and authorization of their health
/// endpoint), HTTPS on 127.0.0.1:`port`, no leader election (one instance).
fn client_component_args(kubeconfig: &Path, port: u16) -> Vec<String> {
    vec![
        format!("--kubeconfig={}", p(kubeconfig)),
        format!("--authentication-kubeconfig={}", p(kubeconfig)),
        format!("--authorization-kubeconfig={}", p(kubeconfig)),
        s("--bind-address=127.0.0.1"),
        format!("--secure-port={port}"),
        s("--leader-elect=false"),
        s("--v=1"),
    ]
}
