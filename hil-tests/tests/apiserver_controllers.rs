#![allow(clippy::unwrap_used)]
//! The emulator's scheduler and node lifecycle controller, observed through kube-rs.

use std::time::Duration;

use edge_hil_tests::apiserver::{ApiServer, ApiServerConfig};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event, Node, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

async fn start(grace: Duration) -> (ApiServer, kube::Client, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = ApiServerConfig::new(dir.path());
    cfg.node_lease_grace = grace;
    cfg.controller_interval = Duration::from_millis(50);
    let server = ApiServer::start(cfg).await.unwrap();
    let client = server.client().await.unwrap();
    (server, client, dir)
}

async fn eventually<T>(what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    for _ in 0..100 {
        if let Some(v) = f().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

fn node(name: &str, labels: Value, cpu: &str, ready: &str) -> Node {
    serde_json::from_value(json!({"metadata": {"name": name, "labels": labels},
        "spec": {"taints": [{"key": "virtual-kubelet.io/provider", "value": "edge", "effect": "NoSchedule"}]},
        "status": {"allocatable": {"cpu": cpu, "memory": "1Gi", "pods": "110"}, "capacity": {"cpu": cpu, "memory": "1Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": ready, "reason": "KubeletReady", "message": "ok"}]}}))
    .unwrap()
}

fn pod(name: &str, selector: Value, cpu: &str) -> Pod {
    serde_json::from_value(json!({"metadata": {"name": name}, "spec": {
        "nodeSelector": selector,
        "tolerations": [{"key": "virtual-kubelet.io/provider", "operator": "Exists"}],
        "containers": [{"name": "c", "image": "i:1", "resources": {"requests": {"cpu": cpu}}}]}}))
    .unwrap()
}

#[tokio::test]
async fn scheduler_binds_fitting_pods_and_explains_the_rest() {
    let (_s, client, _d) = start(Duration::from_secs(50)).await;
    let nodes: Api<Node> = Api::all(client.clone());
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    nodes
        .create(
            &PostParams::default(),
            &node("pi-1", json!({"kubernetes.io/arch": "arm64"}), "1", "True"),
        )
        .await
        .unwrap();
    nodes
        .create(
            &PostParams::default(),
            &node("x86-1", json!({"kubernetes.io/arch": "amd64"}), "4", "True"),
        )
        .await
        .unwrap();
    nodes
        .create(
            &PostParams::default(),
            &node(
                "pi-down",
                json!({"kubernetes.io/arch": "arm64"}),
                "4",
                "False",
            ),
        )
        .await
        .unwrap();

    pods.create(
        &PostParams::default(),
        &pod("fits", json!({"kubernetes.io/arch": "arm64"}), "500m"),
    )
    .await
    .unwrap();
    let bound = eventually("pod bound", async || {
        pods.get("fits").await.unwrap().spec.unwrap().node_name
    })
    .await;
    assert_eq!(bound, "pi-1");

    // Untolerated provider taint: stays pending.
    let mut untolerating = pod("no-toleration", json!({}), "10m");
    untolerating.spec.as_mut().unwrap().tolerations = None;
    pods.create(&PostParams::default(), &untolerating)
        .await
        .unwrap();

    pods.create(
        &PostParams::default(),
        &pod("too-big", json!({"kubernetes.io/arch": "arm64"}), "2"),
    )
    .await
    .unwrap();
    let msg = eventually("unschedulable condition", async || {
        let p = pods.get("too-big").await.unwrap();
        let c = p
            .status?
            .conditions?
            .into_iter()
            .find(|c| c.type_ == "PodScheduled")?;
        (c.status == "False" && c.reason.as_deref() == Some("Unschedulable"))
            .then(|| c.message.unwrap_or_default())
    })
    .await;
    assert_eq!(
        msg,
        "0/3 nodes are available: 1 Insufficient cpu, 1 node(s) didn't match Pod's node affinity/selector, 1 node(s) had untolerated taint(s). preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
    );
    let msg = eventually("untolerated taint message", async || {
        let p = pods.get("no-toleration").await.unwrap();
        p.status?
            .conditions?
            .into_iter()
            .find(|c| c.type_ == "PodScheduled")?
            .message
    })
    .await;
    // Every node has the provider taint (kube-scheduler v1.37 says the same for these nodes).
    assert_eq!(
        msg,
        "0/3 nodes are available: 3 node(s) had untolerated taint(s). preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
    );

    // Required node affinity with Gt/In.
    let aff: Pod = serde_json::from_value(json!({"metadata": {"name": "aff"}, "spec": {
        "tolerations": [{"operator": "Exists"}],
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]}]}]}}},
        "containers": [{"name": "c", "image": "i:1"}]}}))
    .unwrap();
    pods.create(&PostParams::default(), &aff).await.unwrap();
    let n = eventually("affinity pod bound", async || {
        pods.get("aff").await.unwrap().spec.unwrap().node_name
    })
    .await;
    assert_eq!(n, "x86-1");

    // A node that fits appears: the pending pod is bound.
    nodes
        .create(
            &PostParams::default(),
            &node(
                "pi-big",
                json!({"kubernetes.io/arch": "arm64"}),
                "8",
                "True",
            ),
        )
        .await
        .unwrap();
    let n = eventually("too-big bound", async || {
        pods.get("too-big").await.unwrap().spec.unwrap().node_name
    })
    .await;
    assert_eq!(n, "pi-big");

    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    let evs = events
        .list(&ListParams::default().fields("involvedObject.name=too-big"))
        .await
        .unwrap();
    let reasons: Vec<String> = evs.items.iter().filter_map(|e| e.reason.clone()).collect();
    assert!(
        reasons.contains(&"FailedScheduling".to_string())
            && reasons.contains(&"Scheduled".to_string()),
        "{reasons:?}"
    );
}

#[tokio::test]
async fn node_lifecycle_marks_unrenewed_nodes_unreachable_and_recovers() {
    let (_s, client, _d) = start(Duration::from_millis(700)).await;
    let nodes: Api<Node> = Api::all(client.clone());
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    nodes
        .create(&PostParams::default(), &node("n1", json!({}), "1", "True"))
        .await
        .unwrap();
    let lease: Lease = serde_json::from_value(
        json!({"metadata": {"name": "n1"}, "spec": {"holderIdentity": "n1",
        "leaseDurationSeconds": 40, "renewTime": "2024-01-01T00:00:00.000000Z"}}),
    )
    .unwrap();
    leases.create(&PostParams::default(), &lease).await.unwrap();

    let renew = async |i: u32| {
        let t = format!("2024-01-01T00:00:{:02}.000000Z", i % 60);
        leases
            .patch(
                "n1",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"renewTime": t}})),
            )
            .await
            .unwrap();
    };
    // Renewed faster than the grace: stays Ready, no taints added.
    for i in 1..6 {
        renew(i).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let n = nodes.get("n1").await.unwrap();
    assert_eq!(n.spec.unwrap().taints.unwrap().len(), 1);

    // Renewals stop: Ready=Unknown and the unreachable taints.
    let n = eventually("node unreachable", async || {
        let n = nodes.get("n1").await.unwrap();
        let taints = n.spec.clone()?.taints?;
        (taints
            .iter()
            .filter(|t| t.key == "node.kubernetes.io/unreachable")
            .count()
            == 2)
            .then_some(n)
    })
    .await;
    let ready = n
        .status
        .unwrap()
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(ready.status, "Unknown");
    assert_eq!(ready.reason.as_deref(), Some("NodeStatusUnknown"));
    let taints = n.spec.unwrap().taints.unwrap();
    let effects: Vec<&str> = taints
        .iter()
        .filter(|t| t.key == "node.kubernetes.io/unreachable")
        .map(|t| t.effect.as_str())
        .collect();
    assert_eq!(effects, ["NoSchedule", "NoExecute"]);

    // Renewals resume: the taints go and Ready comes back.
    renew(30).await;
    let n = eventually("node recovered", async || {
        let n = nodes.get("n1").await.unwrap();
        let taints = n.spec.clone()?.taints.unwrap_or_default();
        (!taints
            .iter()
            .any(|t| t.key.starts_with("node.kubernetes.io/")))
        .then_some(n)
    })
    .await;
    let ready = n
        .status
        .unwrap()
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(ready.status, "True");

    // A kubelet posting Ready=False gets the not-ready taints.
    nodes
        .patch_status(
            "n1",
            &PatchParams::default(),
            &Patch::Strategic(
                json!({"status": {"conditions": [{"type": "Ready", "status": "False"}]}}),
            ),
        )
        .await
        .unwrap();
    for i in 31..40 {
        renew(i).await;
        let n = nodes.get("n1").await.unwrap();
        if n.spec
            .unwrap()
            .taints
            .unwrap_or_default()
            .iter()
            .any(|t| t.key == "node.kubernetes.io/not-ready")
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("not-ready taint never appeared");
}

#[tokio::test]
async fn unreachable_nodes_mark_pods_not_ready_and_no_execute_taints_evict() {
    let (_s, client, _d) = start(Duration::from_millis(500)).await;
    let nodes: Api<Node> = Api::all(client.clone());
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    nodes
        .create(&PostParams::default(), &node("n1", json!({}), "4", "True"))
        .await
        .unwrap();
    let mk = |name: &str, tolerations: Value| -> Pod {
        serde_json::from_value(
            json!({"metadata": {"name": name}, "spec": {"nodeName": "n1",
            "tolerations": tolerations, "containers": [{"name": "c", "image": "i:1"}]}}),
        )
        .unwrap()
    };
    // Ready pods on the node.
    for (name, tols) in [
        ("intolerant", json!([])),
        (
            "short",
            json!([{"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 1}]),
        ),
        (
            "forever",
            json!([{"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"}]),
        ),
    ] {
        // "intolerant" gets only the admission defaults (unreachable for 300 s).
        let p = mk(name, tols);
        pods.create(&PostParams::default(), &p).await.unwrap();
        pods.patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Running",
            "conditions": [{"type": "Ready", "status": "True"}]}})),
        )
        .await
        .unwrap();
    }
    // No lease at all: after the grace the node is unreachable and its pods not ready.
    let p = eventually("pod marked not ready", async || {
        let p = pods.get("forever").await.unwrap();
        let ready = p
            .status
            .clone()?
            .conditions?
            .into_iter()
            .find(|c| c.type_ == "Ready")?;
        (ready.status == "False").then_some(p)
    })
    .await;
    assert_eq!(p.status.unwrap().phase.as_deref(), Some("Running"));
    // tolerationSeconds=1: evicted (gracefully) about a second after the taint.
    eventually("short toleration evicted", async || {
        pods.get("short")
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .map(|_| ())
    })
    .await;
    // Tolerated without a limit (or for the default 300 s): not evicted.
    assert!(
        pods.get("forever")
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .is_none()
    );
    assert!(
        pods.get("intolerant")
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .is_none()
    );
    // A NoExecute taint nobody tolerates evicts at once.
    nodes
        .patch(
            "n1",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"taints": [
            {"key": "virtual-kubelet.io/provider", "value": "edge", "effect": "NoSchedule"},
            {"key": "example.com/drain", "effect": "NoExecute"}]}})),
        )
        .await
        .unwrap();
    eventually("intolerant evicted", async || {
        pods.get("intolerant")
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .map(|_| ())
    })
    .await;
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    let evs = events
        .list(&ListParams::default().fields("reason=TaintManagerEviction"))
        .await
        .unwrap();
    assert!(
        evs.items.len() >= 2,
        "{:?}",
        evs.items
            .iter()
            .map(|e| e.message.clone())
            .collect::<Vec<_>>()
    );
    let evs = events
        .list(&ListParams::default().fields("reason=NodeNotReady"))
        .await
        .unwrap();
    assert!(!evs.items.is_empty());
}
