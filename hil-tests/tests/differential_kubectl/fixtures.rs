//! The session's manifests, the Node, and a fake kubelet for `kubectl logs`.

use std::path::Path;

use anyhow::Result;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};

use super::NODE;

pub const APP: &str = r#"apiVersion: v1
kind: ServiceAccount
metadata:
  name: sensor
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: sensor-config
data:
  interval: "5"
---
apiVersion: v1
kind: Secret
metadata:
  name: sensor-credentials
stringData:
  token: not-a-real-token
---
apiVersion: v1
kind: Pod
metadata:
  name: sensor
  labels:
    app: sensor
spec:
  serviceAccountName: sensor
  nodeSelector:
    kubernetes.io/arch: arm64
  containers:
  - name: main
    image: localhost/busybox:test
    command: ["sh", "-c", "while true; do echo hi; sleep 1; done"]
    env:
    - name: INTERVAL
      valueFrom:
        configMapKeyRef:
          name: sensor-config
          key: interval
    resources:
      limits:
        cpu: 100m
        memory: 32Mi
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels:
    app: web
spec:
  replicas: 2
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: web
        image: localhost/busybox:test
        command: ["httpd", "-f", "-p", "8080"]
        ports:
        - containerPort: 8080
        resources:
          requests:
            cpu: 50m
            memory: 16Mi
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector:
    app: web
  ports:
  - port: 80
    targetPort: 8080
"#;

pub const LEASE: &str = r#"apiVersion: coordination.k8s.io/v1
kind: Lease
metadata:
  name: diff-node-1
  namespace: kube-node-lease
spec:
  holderIdentity: diff-node-1
  leaseDurationSeconds: 40
  renewTime: "2024-01-01T00:00:00.000000Z"
"#;

/// A SubjectAccessReview of the API server's kubelet client on `nodes/proxy` (allowed by
/// kubeadm's binding) and one of a user bound to nothing (denied).
pub const SAR_KUBELET_CLIENT: &str = r#"{"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
 "spec": {"user": "kube-apiserver-kubelet-client", "groups": ["system:authenticated"],
  "resourceAttributes": {"verb": "get", "version": "v1", "resource": "nodes", "subresource": "proxy", "name": "diff-node-1"}}}"#;
pub const SAR_STRANGER: &str = r#"{"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
 "spec": {"user": "mallory", "groups": ["system:authenticated"],
  "resourceAttributes": {"verb": "get", "version": "v1", "resource": "nodes", "subresource": "proxy", "name": "diff-node-1"}}}"#;

/// A CertificateSigningRequest for a custom signer asking for 60 s, which both servers
/// refuse: `spec.expirationSeconds` must be at least 600.
pub fn short_csr() -> anyhow::Result<String> {
    let key = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "diff-device");
    let pem = params.serialize_request(&key)?.pem()?;
    use base64::Engine as _;
    let request = base64::engine::general_purpose::STANDARD.encode(pem);
    Ok(format!(
        "apiVersion: certificates.k8s.io/v1\nkind: CertificateSigningRequest\nmetadata:\n  \
         name: short-lived\nspec:\n  signerName: example.com/devices\n  expirationSeconds: 60\n  \
         usages: [\"client auth\"]\n  request: {request}\n"
    ))
}

pub const BAD: &str =
    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bad\nbogus: 1\ndata:\n  a: \"1\"\n";

pub const WATCHED: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: watched-2\n  labels:\n    watch: \"yes\"\ndata:\n  c: \"3\"\n";

/// The Node: Ready, with capacity, an InternalIP nobody listens on and a Hostname
/// address (which kube-apiserver prefers) where the fake kubelet is.
pub fn node_json(kubelet_port: u16) -> Value {
    json!({"apiVersion": "v1", "kind": "Node",
        "metadata": {"name": NODE, "labels": {"kubernetes.io/arch": "arm64", "kubernetes.io/os": "linux",
            "kubernetes.io/hostname": NODE, "type": "virtual-kubelet"}},
        "spec": {"taints": [{"key": "example.com/edge", "value": "lab", "effect": "PreferNoSchedule"}]},
        "status": {"capacity": {"cpu": "4", "memory": "4Gi", "pods": "110"},
            "allocatable": {"cpu": "4", "memory": "4Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "device online",
                "lastHeartbeatTime": "2024-01-01T00:00:00Z", "lastTransitionTime": "2024-01-01T00:00:00Z"}],
            "addresses": [{"type": "InternalIP", "address": "127.0.0.2"}, {"type": "Hostname", "address": "localhost"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": kubelet_port}},
            "nodeInfo": {"architecture": "arm64", "operatingSystem": "linux", "kubeletVersion": "v1.37.2-edge",
                "osImage": "Raspberry Pi OS", "kernelVersion": "6.6.31", "containerRuntimeVersion": "docker://24.0.5",
                "machineID": "m", "systemUUID": "s", "bootID": "b", "kubeProxyVersion": ""}}})
}

/// A kubelet stand-in on 127.0.0.1 serving `/containerLogs/diff/sensor/main` over HTTPS;
/// it requires a client certificate from either API server's kubelet client CA.
pub async fn fake_kubelet(client_cas: &[&Path]) -> Result<u16> {
    let acceptor = edge_hil_tests::apiserver::certs::kubelet_stand_in_acceptor(client_cas)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let svc = hyper::service::service_fn(
                    |req: hyper::Request<hyper::body::Incoming>| async move {
                        let tail = req.uri().query().unwrap_or("").contains("tailLines=2");
                        let found = req.uri().path() == "/containerLogs/diff/sensor/main";
                        let body = match (found, tail) {
                            (false, _) => "not found\n",
                            (true, true) => "line 2\nline 3\n",
                            (true, false) => "line 1\nline 2\nline 3\n",
                        };
                        let mut resp = hyper::Response::new(Full::new(Bytes::from(body)).boxed());
                        if !found {
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
    Ok(port)
}
