//! Pods and nodes: apply, get -o wide, describe and delete; logs through the kubelet;
//! drain.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;

use super::backend::{Backend, eventually, has_row, node_json};
use super::fake_kubelet::fake_kubelet;
use super::processes::KillOnDrop;

/// A Pod for node `node` (other tests' nodes on the shared control plane match
/// `kubernetes.io/arch` too) and a ConfigMap.
fn manifest(node: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: sensor
  labels:
    app: sensor
spec:
  nodeSelector:
    kubernetes.io/arch: arm64
    kubernetes.io/hostname: {node}
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
"#
    )
}

/// A pod bound to `node` (no scheduler involved).
fn bound_pod(name: &str, node: &str) -> Pod {
    serde_json::from_value(
        json!({"metadata": {"name": name}, "spec": {"nodeName": node,
        "containers": [{"name": "main", "image": "localhost/busybox:test"}]}}),
    )
    .unwrap()
}

/// apply (create, unchanged, configured, strict validation), the scheduler's binding in
/// get -o wide and describe, graceful delete finished by the kubelet.
pub async fn apply_get_wide_describe_and_delete(b: Backend) {
    let (ns, node) = ("kc-apply", "pi-apply");
    let client = b.namespace(ns).await;
    let k = b.kubectl(ns);
    let dir = tempfile::tempdir().unwrap();
    Api::<Node>::all(client.clone())
        .create(&PostParams::default(), &node_json(node, 10250))
        .await
        .unwrap();
    let lease: Lease = serde_json::from_value(
        json!({"metadata": {"name": node}, "spec": {"holderIdentity": node,
        "leaseDurationSeconds": 40, "renewTime": "2024-01-01T00:00:00.000000Z"}}),
    )
    .unwrap();
    Api::<Lease>::namespaced(client.clone(), "kube-node-lease")
        .create(&PostParams::default(), &lease)
        .await
        .unwrap();

    let path = dir.path().join("app.yaml");
    let m = path.to_str().unwrap();
    std::fs::write(&path, manifest(node)).unwrap();
    let out = k.ok(&["apply", "-f", m]).await;
    assert_eq!(out, "pod/sensor created\nconfigmap/sensor-config created\n");
    let out = k.ok(&["apply", "-f", m]).await;
    assert_eq!(
        out,
        "pod/sensor unchanged\nconfigmap/sensor-config unchanged\n"
    );
    let changed = manifest(node)
        .replace("interval: \"5\"", "interval: \"7\"")
        .replace("busybox:test", "busybox:v2");
    std::fs::write(&path, changed).unwrap();
    let out = k.ok(&["apply", "-f", m]).await;
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
    let bogus = manifest(node).replace("  interval: \"5\"", "  interval: \"5\"\nbogus: 1");
    std::fs::write(&path, bogus).unwrap();
    let bad = k.run(&["apply", "-f", m]).await;
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("strict decoding error: unknown field \"bogus\""),
        "{err}"
    );
    if b.is_emulator() {
        // Emulator difference: it answers the strategic merge patch with 400 BadRequest
        // `strict decoding error: unknown field "bogus"`, kube-apiserver with 422 Invalid
        // (field `patch`).
        assert!(
            err.contains("Error from server (BadRequest): error when applying patch:"),
            "{err}"
        );
    } else {
        assert!(
            err.contains("The request is invalid: patch: Invalid value: \"map[bogus:1 "),
            "{err}"
        );
    }

    // The scheduler binds the pod (on the control plane once the node lifecycle
    // controller has lifted the not-ready taint new nodes get); get -o wide shows it.
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    eventually("the pod's binding", Duration::from_secs(60), || {
        let pods = pods.clone();
        async move {
            let p = pods.get("sensor").await.unwrap();
            p.spec.unwrap().node_name.filter(|n| n == node)
        }
    })
    .await;
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
    assert_eq!(&row[5..7], ["<none>", node]);

    let nodes = k.ok(&["get", "node", node, "-o", "wide"]).await;
    assert!(nodes.starts_with("NAME "), "{nodes}");
    let row: Vec<&str> = nodes.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(&row[..3], [node, "Ready", "<none>"]);
    assert!(
        nodes.contains("v1.32.0-edge")
            && nodes.contains("127.0.0.1")
            && nodes.contains("docker://24.0.5"),
        "{nodes}"
    );

    let described = k.ok(&["describe", "node", node]).await;
    for want in [
        &format!("Name:               {node}"),
        "Taints:             example.com/edge=lab:PreferNoSchedule",
        &format!("HolderIdentity:  {node}"),
        "InternalIP:  127.0.0.1",
        "cpu                100m (2%)",
    ] {
        assert!(
            described.contains(want),
            "describe node lacks {want:?}:\n{described}"
        );
    }
    assert!(
        has_row(&described, &[ns, "sensor", "100m", "(2%)"]),
        "{described}"
    );
    assert!(
        described
            .lines()
            .any(|l| l.trim_start().starts_with("Ready ")
                && l.contains(" True ")
                && l.contains("KubeletReady")),
        "{described}"
    );
    // The scheduler's event (kube-scheduler records it asynchronously).
    let assigned = format!("Successfully assigned {ns}/sensor to {node}");
    eventually("the Scheduled event", Duration::from_secs(30), || async {
        let described = k.ok(&["describe", "pod", "sensor"]).await;
        described.contains(&assigned).then_some(())
    })
    .await;

    // delete of a bound pod: graceful (the kubelet would finish it); --wait=false returns.
    let out = k.ok(&["delete", "pod", "sensor", "--wait=false"]).await;
    assert_eq!(out, k.deleted("pod", "sensor"));
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
    assert_eq!(out, k.deleted("pod", "sensor"));
    kubelet.await.unwrap();
    assert!(pods.get_opt("sensor").await.unwrap().is_none());
    assert_eq!(
        k.ok(&["delete", "-f", m, "--ignore-not-found"]).await,
        k.deleted("configmap", "sensor-config")
    );
}

/// logs, logs --tail, logs -f: the API server proxies to the node's kubelet over mTLS.
pub async fn logs_and_logs_follow_reach_the_kubelet(b: Backend) {
    let (ns, node) = ("kc-logs", "pi-logs");
    let client = b.namespace(ns).await;
    let k = b.kubectl(ns);
    let port = fake_kubelet(b.kubelet_client_ca(), ns).await;
    Api::<Node>::all(client.clone())
        .create(&PostParams::default(), &node_json(node, port))
        .await
        .unwrap();
    Api::<Pod>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &bound_pod("sensor", node))
        .await
        .unwrap();

    assert_eq!(k.ok(&["logs", "sensor"]).await, "line 1\nline 2\nline 3\n");
    assert_eq!(
        k.ok(&["logs", "sensor", "-c", "main", "--tail=2"]).await,
        "line 2\nline 3\n"
    );

    let mut child = KillOnDrop::spawn({
        let mut c = k.cmd(&["logs", "-f", "sensor"]);
        c.stdout(Stdio::piped()).stderr(Stdio::null());
        c
    });
    let stdout = child.0.stdout.take().unwrap();
    let lines = tokio::task::spawn_blocking(move || {
        BufReader::new(stdout)
            .lines()
            .take(6)
            .map(Result::unwrap)
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    drop(child);
    assert_eq!(
        lines,
        ["line 1", "line 2", "line 3", "line 4", "line 5", "line 6"]
    );

    let missing = k.run(&["logs", "sensor", "-c", "nope"]).await;
    assert!(!missing.status.success());
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(
        err.contains("container nope is not valid for pod sensor"),
        "{err}"
    );
}

/// drain cordons the node and evicts its pod (pods/eviction), which the kubelet finishes.
pub async fn drain_cordons_and_evicts_through_pods_eviction(b: Backend) {
    let (ns, node) = ("kc-drain", "pi-drain");
    let client = b.namespace(ns).await;
    let k = b.kubectl(ns);
    Api::<Node>::all(client.clone())
        .create(&PostParams::default(), &node_json(node, 10250))
        .await
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    pods.create(&PostParams::default(), &bound_pod("app", node))
        .await
        .unwrap();
    // A stand-in kubelet: finishes graceful deletions with the grace-0 delete.
    let kubelet = {
        let pods = pods.clone();
        tokio::spawn(async move {
            loop {
                if let Some(p) = pods.get_opt("app").await.unwrap()
                    && p.metadata.deletion_timestamp.is_some()
                {
                    let dp = DeleteParams {
                        grace_period_seconds: Some(0),
                        ..Default::default()
                    };
                    pods.delete("app", &dp).await.unwrap();
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let out = k.ok(&["drain", node, "--force", "--timeout=20s"]).await;
    assert!(
        out.contains(&format!("node/{node} cordoned"))
            && out.contains("pod/app evicted")
            && out.contains(&format!("node/{node} drained")),
        "{out}"
    );
    kubelet.await.unwrap();
    let nodes = k.ok(&["get", "node", node, "--no-headers"]).await;
    assert!(nodes.contains("Ready,SchedulingDisabled"), "{nodes}");
    assert!(pods.get_opt("app").await.unwrap().is_none());
}
