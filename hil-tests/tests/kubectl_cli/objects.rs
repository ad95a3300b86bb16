//! Objects: get -w, server dry run and diff, server-side apply conflicts, kubectl's
//! protobuf writes and CSR approval.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

use super::backend::{Backend, eventually, has_row};
use super::processes::KillOnDrop;

/// get -w --output-watch-events prints ADDED, MODIFIED, DELETED.
pub async fn get_watch_streams_changes(b: Backend) {
    let ns = "kc-watch";
    let client = b.namespace(ns).await;
    let k = b.kubectl(ns);
    // -v=6 logs every response: the one to the watch request says the watch is on.
    let mut child = KillOnDrop::spawn({
        let mut c = k.cmd(&["get", "configmaps", "-w", "--output-watch-events", "-v=6"]);
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        c
    });
    let stdout = child.0.stdout.take().unwrap();
    let stderr = child.0.stderr.take().unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap()).is_err() {
                return;
            }
        }
    });
    let (watching_tx, watching) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let mut watching_tx = Some(watching_tx);
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("watch=true") && line.contains("200 OK") {
                if let Some(tx) = watching_tx.take() {
                    let _ = tx.send(());
                }
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(20), watching)
        .await
        .expect("kubectl get -w starts watching")
        .unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
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
            // Every namespace has it.
            continue;
        }
        seen.push(
            line.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" "),
        );
    }
    drop(child);
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

/// apply --dry-run=server and diff show changes without making them.
pub async fn server_dry_run_and_diff_persist_nothing(b: Backend) {
    let ns = "kc-dry";
    let client = b.namespace(ns).await;
    let k = b.kubectl(ns);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cm.yaml");
    let m = path.to_str().unwrap();
    let cm = |a: &str| {
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: dry\ndata:\n  a: \"{a}\"\n")
    };
    std::fs::write(&path, cm("1")).unwrap();
    let out = k.ok(&["apply", "--dry-run=server", "-f", m]).await;
    assert_eq!(out, "configmap/dry created (server dry run)\n");
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    assert!(cms.get_opt("dry").await.unwrap().is_none());
    k.ok(&["apply", "-f", m]).await;
    std::fs::write(&path, cm("2")).unwrap();
    // kubectl diff exits 1 when there are differences.
    let diff = k.run(&["diff", "-f", m]).await;
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

/// apply --server-side conflicts on a field another manager set; --force-conflicts
/// takes it.
pub async fn server_side_apply_conflicts_with_other_managers(b: Backend) {
    let ns = "kc-ssa";
    b.namespace(ns).await;
    let k = b.kubectl(ns);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ssa.yaml");
    std::fs::write(&path, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\n  labels:\n    a: \"1\"\n    b: \"2\"\ndata:\n  x: \"1\"\n").unwrap();
    let m = path.to_str().unwrap();
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
    std::fs::write(&path, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\n  labels:\n    a: \"1\"\ndata:\n  x: \"1\"\n").unwrap();
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

/// The common name of the first certificate in PEM `pem`'s subject or issuer.
fn common_name(pem: &[u8], issuer: bool) -> String {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem).unwrap();
    let cert = pem.parse_x509().unwrap();
    let name = if issuer {
        cert.issuer()
    } else {
        cert.subject()
    };
    name.iter_common_name()
        .next()
        .unwrap()
        .as_str()
        .unwrap()
        .to_owned()
}

/// kubectl create (protobuf bodies), and a CSR approved and signed by the cluster CA.
pub async fn typed_client_writes_in_protobuf_and_csr_approval(b: Backend) {
    let (ns, csr_name) = ("kc-typed", "pi-csr");
    let client = b.client().await;
    let k = b.kubectl(ns);
    let dir = tempfile::tempdir().unwrap();
    // kubectl's generators send protobuf bodies.
    assert_eq!(
        k.ok(&["create", "namespace", ns]).await,
        format!("namespace/{ns} created\n")
    );
    assert_eq!(
        k.ok(&["create", "configmap", "c", "--from-literal=a=1"])
            .await,
        "configmap/c created\n"
    );
    assert_eq!(
        k.ok(&["create", "secret", "generic", "s", "--from-literal=pw=x"])
            .await,
        "secret/s created\n"
    );
    assert_eq!(
        k.ok(&["create", "serviceaccount", "sa"]).await,
        "serviceaccount/sa created\n"
    );
    assert_eq!(
        k.ok(&["get", "cm", "c", "-o", "jsonpath={.data.a}"]).await,
        "1"
    );
    assert_eq!(
        k.ok(&["get", "secret", "s", "-o", "jsonpath={.data.pw} {.type}"])
            .await,
        "eA== Opaque"
    );

    // A CSR approved with `kubectl certificate approve` (protobuf PUT to /approval).
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, csr_name);
    let csr_pem = params.serialize_request(&key).unwrap().pem().unwrap();
    let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, csr_pem);
    let path = dir.path().join("csr.yaml");
    std::fs::write(
        &path,
        format!("apiVersion: certificates.k8s.io/v1\nkind: CertificateSigningRequest\nmetadata:\n  name: {csr_name}\nspec:\n  request: {b64}\n  signerName: kubernetes.io/kube-apiserver-client\n  usages: [client auth]\n"),
    )
    .unwrap();
    k.ok(&["apply", "-f", path.to_str().unwrap()]).await;
    let pending = k.ok(&["get", "csr", csr_name, "--no-headers"]).await;
    assert!(
        has_row(&pending, &[csr_name])
            && pending.contains("Pending")
            && pending.contains(&format!(" {} ", b.admin_user())),
        "{pending}"
    );
    assert_eq!(
        k.ok(&["certificate", "approve", csr_name]).await,
        format!("certificatesigningrequest.certificates.k8s.io/{csr_name} approved\n")
    );
    let csrs: Api<CertificateSigningRequest> = Api::all(client.clone());
    let csr = csrs.get(csr_name).await.unwrap();
    let cond = &csr.status.unwrap().conditions.unwrap()[0];
    assert_eq!(
        (cond.type_.as_str(), cond.status.as_str()),
        ("Approved", "True")
    );
    assert_eq!(cond.reason.as_deref(), Some("KubectlApprove"));

    // The signing controller issues a client certificate from the cluster CA.
    let pem = eventually("status.certificate", Duration::from_secs(30), || {
        let csrs = csrs.clone();
        async move {
            let status = csrs.get(csr_name).await.unwrap().status?;
            status.certificate.map(|c| c.0)
        }
    })
    .await;
    assert_eq!(common_name(&pem, false), csr_name);
    let ca = std::fs::read(b.cluster_ca()).unwrap();
    assert_eq!(common_name(&pem, true), common_name(&ca, false));
    let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
    let cert = pem.parse_x509().unwrap();
    let eku = cert.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.client_auth && !eku.server_auth);
}
