//! apps/v1 in the API emulator: DaemonSets, Deployments, ReplicaSets, their controllers,
//! the scale subresource and garbage collection, through kube-rs and the real kubectl.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use edge_hil_tests::apiserver::{ApiServer, ApiServerConfig};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

async fn start() -> (ApiServer, kube::Client, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = ApiServerConfig::new(dir.path());
    cfg.controller_interval = Duration::from_millis(50);
    let server = ApiServer::start(cfg).await.unwrap();
    let client = server.client().await.unwrap();
    (server, client, dir)
}

async fn eventually<T, F, Fut>(secs: u64, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {secs} s waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn node(name: &str, labels: Value) -> Node {
    let mut l = json!({"kubernetes.io/hostname": name, "kubernetes.io/os": "linux"});
    for (k, v) in labels.as_object().unwrap() {
        l[k] = v.clone();
    }
    serde_json::from_value(json!({"metadata": {"name": name, "labels": l},
        "status": {"capacity": {"cpu": "4", "memory": "4Gi", "pods": "110"}, "allocatable": {"cpu": "4", "memory": "4Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "ok",
                "lastHeartbeatTime": "2024-01-01T00:00:00Z", "lastTransitionTime": "2024-01-01T00:00:00Z"}],
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}]}}))
    .unwrap()
}

/// A minimal kubelet for every node: bound pods become Running and Ready; pods being
/// deleted are removed (grace 0), as a kubelet confirms termination.
fn fake_kubelet(client: kube::Client) -> CancellationToken {
    let cancel = CancellationToken::new();
    let c = cancel.clone();
    tokio::spawn(async move {
        let pods: Api<Pod> = Api::all(client.clone());
        loop {
            tokio::select! {
                _ = c.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            }
            let Ok(list) = pods.list(&ListParams::default()).await else {
                continue;
            };
            for p in list.items {
                let ns = p.metadata.namespace.clone().unwrap();
                let name = p.metadata.name.clone().unwrap();
                let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
                if p.metadata.deletion_timestamp.is_some() {
                    let _ = api
                        .delete(&name, &DeleteParams::default().grace_period(0))
                        .await;
                    continue;
                }
                let bound = p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some();
                let phase = p.status.as_ref().and_then(|s| s.phase.clone());
                if bound && phase.as_deref() != Some("Running") {
                    let st = json!({"status": {"phase": "Running", "conditions": [
                        {"type": "Ready", "status": "True"}, {"type": "PodScheduled", "status": "True"}]}});
                    let _ = api
                        .patch_status(&name, &PatchParams::default(), &Patch::Merge(&st))
                        .await;
                }
            }
        }
    });
    cancel
}

fn pods_of(list: &[Pod], owner_uid: &str) -> Vec<Pod> {
    list.iter()
        .filter(|p| {
            p.metadata.deletion_timestamp.is_none()
                && p.metadata.owner_references.as_ref().is_some_and(|r| {
                    r.iter()
                        .any(|r| r.uid == owner_uid && r.controller == Some(true))
                })
        })
        .cloned()
        .collect()
}

/// node name → number of active pods of the owner (by target node from the affinity or nodeName).
async fn daemon_pods(pods: &Api<Pod>, uid: &str) -> BTreeMap<String, usize> {
    let list = pods.list(&ListParams::default()).await.unwrap();
    let mut out = BTreeMap::new();
    for p in pods_of(&list.items, uid) {
        let v = serde_json::to_value(&p).unwrap();
        let target = v
            .pointer("/spec/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms/0/matchFields/0/values/0")
            .and_then(Value::as_str)
            .unwrap()
            .to_string();
        *out.entry(target).or_default() += 1;
    }
    out
}

fn ds_manifest() -> DaemonSet {
    serde_json::from_value(json!({"metadata": {"name": "agent"}, "spec": {
        "selector": {"matchLabels": {"app": "agent"}},
        "template": {"metadata": {"labels": {"app": "agent"}}, "spec": {
            "nodeSelector": {"board": "pi"},
            "hostNetwork": true,
            "containers": [{"name": "c", "image": "localhost/busybox:test"}]}}}}))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemonset_follows_nodes_labels_and_taints() {
    let (_server, client, _dir) = start().await;
    let kubelet = fake_kubelet(client.clone());
    let nodes: Api<Node> = Api::all(client.clone());
    nodes
        .create(
            &PostParams::default(),
            &node("pi-1", json!({"board": "pi"})),
        )
        .await
        .unwrap();
    nodes
        .create(
            &PostParams::default(),
            &node("pi-2", json!({"board": "pi"})),
        )
        .await
        .unwrap();
    nodes
        .create(
            &PostParams::default(),
            &node("x86-1", json!({"board": "pc"})),
        )
        .await
        .unwrap();
    let dss: Api<DaemonSet> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let ds = dss
        .create(&PostParams::default(), &ds_manifest())
        .await
        .unwrap();
    // Defaulting like kube-apiserver.
    let spec = &ds.spec;
    let strategy = spec.update_strategy.as_ref().unwrap();
    assert_eq!(strategy.type_.as_deref(), Some("RollingUpdate"));
    let ru = serde_json::to_value(strategy.rolling_update.as_ref().unwrap()).unwrap();
    assert_eq!(ru, json!({"maxUnavailable": 1, "maxSurge": 0}));
    assert_eq!(spec.revision_history_limit, Some(10));
    let tspec = spec.template.spec.as_ref().unwrap();
    assert_eq!(tspec.restart_policy.as_deref(), Some("Always"));
    assert_eq!(tspec.scheduler_name.as_deref(), Some("default-scheduler"));
    assert_eq!(
        tspec.containers[0].image_pull_policy.as_deref(),
        Some("IfNotPresent")
    );
    assert_eq!(ds.metadata.generation, Some(1));
    let uid = ds.metadata.uid.clone().unwrap();

    let want = |names: &[&str]| {
        names
            .iter()
            .map(|n| (n.to_string(), 1))
            .collect::<BTreeMap<_, _>>()
    };
    let expect = |names: Vec<&'static str>, what: &'static str| {
        let pods = pods.clone();
        let uid = uid.clone();
        async move {
            let w = want(&names);
            eventually(10, what, || async {
                let got = daemon_pods(&pods, &uid).await;
                (got == w).then_some(())
            })
            .await
        }
    };
    expect(vec!["pi-1", "pi-2"], "one pod per pi").await;
    // Pods carry the daemon tolerations and are bound by the scheduler, then Running.
    let list = pods
        .list(&ListParams::default().labels("app=agent"))
        .await
        .unwrap();
    let p = serde_json::to_value(&list.items[0]).unwrap();
    let tols = p["spec"]["tolerations"].as_array().unwrap();
    for (key, effect) in [
        ("node.kubernetes.io/not-ready", "NoExecute"),
        ("node.kubernetes.io/unreachable", "NoExecute"),
        ("node.kubernetes.io/disk-pressure", "NoSchedule"),
        ("node.kubernetes.io/memory-pressure", "NoSchedule"),
        ("node.kubernetes.io/pid-pressure", "NoSchedule"),
        ("node.kubernetes.io/unschedulable", "NoSchedule"),
        ("node.kubernetes.io/network-unavailable", "NoSchedule"),
    ] {
        assert!(
            tols.iter()
                .any(|t| t["key"] == key && t["effect"] == effect && t["operator"] == "Exists"),
            "missing toleration {key}:{effect} in {tols:?}"
        );
    }
    assert_eq!(p["metadata"]["ownerReferences"][0]["kind"], "DaemonSet");
    assert!(p["metadata"]["generateName"] == "agent-");
    let st = eventually(10, "DaemonSet status 2/2 ready", || async {
        let st = dss.get("agent").await.unwrap().status?;
        (st.number_ready == 2).then_some(st)
    })
    .await;
    assert_eq!(st.desired_number_scheduled, 2);
    assert_eq!(st.current_number_scheduled, 2);
    assert_eq!(st.number_available, Some(2));
    assert_eq!(st.updated_number_scheduled, Some(2));
    assert_eq!(st.number_misscheduled, 0);
    assert_eq!(st.observed_generation, Some(1));
    let bound = pods
        .list(&ListParams::default().labels("app=agent"))
        .await
        .unwrap();
    for p in &bound.items {
        let v = serde_json::to_value(p).unwrap();
        assert_eq!(
            v["spec"]["nodeName"],
            v.pointer("/spec/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms/0/matchFields/0/values/0").cloned().unwrap()
        );
    }

    // A new node gets a pod.
    nodes
        .create(
            &PostParams::default(),
            &node("pi-3", json!({"board": "pi"})),
        )
        .await
        .unwrap();
    expect(vec!["pi-1", "pi-2", "pi-3"], "pod on the new node").await;
    // A label change moves eligibility both ways.
    let relabel = |n: &'static str, b: &'static str| {
        let nodes = nodes.clone();
        async move {
            nodes
                .patch(
                    n,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"metadata": {"labels": {"board": b}}})),
                )
                .await
                .unwrap();
        }
    };
    relabel("pi-3", "pc").await;
    expect(vec!["pi-1", "pi-2"], "pod removed after the label change").await;
    relabel("x86-1", "pi").await;
    expect(
        vec!["pi-1", "pi-2", "x86-1"],
        "pod added after the label change",
    )
    .await;
    // An untolerated NoSchedule taint: the pod already there keeps running (but the node no
    // longer counts as desired); an untolerated NoExecute taint removes it; a tolerated
    // taint brings it back.
    let taint = |effect: &'static str| {
        let nodes = nodes.clone();
        async move {
            nodes
                .patch(
                    "pi-2",
                    &PatchParams::default(),
                    &Patch::Merge(json!({"spec": {"taints": [
                        {"key": "dedicated", "value": "x", "effect": effect}]}})),
                )
                .await
                .unwrap();
        }
    };
    taint("NoSchedule").await;
    eventually(10, "pi-2 misscheduled but kept", || async {
        let st = dss.get("agent").await.unwrap().status?;
        (st.desired_number_scheduled == 2 && st.number_misscheduled == 1).then_some(())
    })
    .await;
    assert_eq!(
        daemon_pods(&pods, &uid).await,
        want(&["pi-1", "pi-2", "x86-1"])
    );
    taint("NoExecute").await;
    expect(
        vec!["pi-1", "x86-1"],
        "pod removed from the NoExecute-tainted node",
    )
    .await;
    nodes
        .patch(
            "pi-2",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"taints": [
            {"key": "node.kubernetes.io/memory-pressure", "effect": "NoSchedule"}]}})),
        )
        .await
        .unwrap();
    expect(
        vec!["pi-1", "pi-2", "x86-1"],
        "pod back: memory-pressure is tolerated",
    )
    .await;
    // A deleted node loses its pod.
    nodes
        .delete("x86-1", &DeleteParams::default())
        .await
        .unwrap();
    expect(vec!["pi-1", "pi-2"], "pod removed with its node").await;
    // Template change: pods replaced one at a time; updatedNumberScheduled follows.
    let old: Vec<String> = pods
        .list(&ListParams::default().labels("app=agent"))
        .await
        .unwrap()
        .items
        .iter()
        .map(|p| p.metadata.name.clone().unwrap())
        .collect();
    dss.patch("agent", &PatchParams::default(), &Patch::Merge(json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "localhost/busybox:v2"}]}}}})))
        .await
        .unwrap();
    eventually(15, "rolled DaemonSet", || async {
        let st = dss.get("agent").await.unwrap().status?;
        let list = pods
            .list(&ListParams::default().labels("app=agent"))
            .await
            .unwrap();
        let done = st.observed_generation == Some(2)
            && st.updated_number_scheduled == Some(2)
            && st.number_ready == 2
            && list.items.len() == 2
            && list
                .items
                .iter()
                .all(|p| !old.contains(p.metadata.name.as_ref().unwrap()));
        done.then_some(())
    })
    .await;
    // Deleting the DaemonSet deletes its pods (garbage collection).
    dss.delete("agent", &DeleteParams::default()).await.unwrap();
    eventually(10, "daemon pods garbage collected", || async {
        pods.list(&ListParams::default().labels("app=agent"))
            .await
            .unwrap()
            .items
            .is_empty()
            .then_some(())
    })
    .await;
    kubelet.cancel();
}

fn deployment(replicas: i32, image: &str) -> Deployment {
    serde_json::from_value(json!({"metadata": {"name": "web"}, "spec": {
        "replicas": replicas,
        "selector": {"matchLabels": {"app": "web"}},
        "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
            "containers": [{"name": "c", "image": image}]}}}}))
    .unwrap()
}

async fn replica_sets(rss: &Api<ReplicaSet>, uid: &str) -> Vec<ReplicaSet> {
    rss.list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|rs| {
            rs.metadata.deletion_timestamp.is_none()
                && rs
                    .metadata
                    .owner_references
                    .as_ref()
                    .is_some_and(|r| r.iter().any(|r| r.uid == uid))
        })
        .collect()
}

fn condition(d: &Deployment, t: &str) -> Option<(String, String)> {
    let v = serde_json::to_value(d).unwrap();
    let c = v
        .pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"] == t)?
        .clone();
    Some((
        c["status"].as_str()?.to_string(),
        c["reason"].as_str().unwrap_or("").to_string(),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployment_scales_rolls_out_and_cascades() {
    let (_server, client, _dir) = start().await;
    let kubelet = fake_kubelet(client.clone());
    let nodes: Api<Node> = Api::all(client.clone());
    nodes
        .create(&PostParams::default(), &node("n1", json!({})))
        .await
        .unwrap();
    nodes
        .create(&PostParams::default(), &node("n2", json!({})))
        .await
        .unwrap();
    let ds: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let rss: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    // Validation: the selector must match the template's labels.
    let mut bad = deployment(1, "i:1");
    bad.spec.selector.match_labels = Some([("app".to_string(), "other".to_string())].into());
    let err = ds.create(&PostParams::default(), &bad).await.unwrap_err();
    match err {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 422);
            assert!(
                s.message
                    .contains("`selector` does not match template `labels`"),
                "{}",
                s.message
            );
        }
        other => panic!("expected 422, got {other:?}"),
    }
    let d = ds
        .create(
            &PostParams::default(),
            &deployment(2, "localhost/busybox:v1"),
        )
        .await
        .unwrap();
    let spec = &d.spec;
    assert_eq!(spec.revision_history_limit, Some(10));
    assert_eq!(spec.progress_deadline_seconds, Some(600));
    let strategy = serde_json::to_value(spec.strategy.as_ref().unwrap()).unwrap();
    assert_eq!(
        strategy,
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}})
    );
    let uid = d.metadata.uid.clone().unwrap();

    let available = |n: i32| {
        let ds = ds.clone();
        async move {
            eventually(15, &format!("{n} available replicas"), || async {
                let d = ds.get("web").await.unwrap();
                let st = d.status.clone()?;
                (st.available_replicas.unwrap_or(0) == n
                    && st.replicas.unwrap_or(0) == n
                    && st.updated_replicas.unwrap_or(0) == n
                    && st.observed_generation == d.metadata.generation)
                    .then_some(d)
            })
            .await
        }
    };
    let d = available(2).await;
    assert_eq!(
        condition(&d, "Available"),
        Some(("True".into(), "MinimumReplicasAvailable".into()))
    );
    assert_eq!(
        condition(&d, "Progressing"),
        Some(("True".into(), "NewReplicaSetAvailable".into()))
    );
    let sets = replica_sets(&rss, &uid).await;
    assert_eq!(sets.len(), 1);
    let rs1 = &sets[0];
    let hash = rs1.metadata.labels.as_ref().unwrap()["pod-template-hash"].clone();
    assert_eq!(rs1.metadata.name.as_deref().unwrap(), format!("web-{hash}"));
    assert_eq!(
        rs1.metadata.annotations.as_ref().unwrap()["deployment.kubernetes.io/revision"],
        "1"
    );
    assert_eq!(
        rs1.spec.selector.match_labels.as_ref().unwrap()["pod-template-hash"],
        hash
    );
    let rs1_uid = rs1.metadata.uid.clone().unwrap();
    let list = pods.list(&ListParams::default()).await.unwrap();
    let owned = pods_of(&list.items, &rs1_uid);
    assert_eq!(owned.len(), 2);
    assert!(
        owned
            .iter()
            .all(|p| p.metadata.labels.as_ref().unwrap()["pod-template-hash"] == hash)
    );

    // Scale up through the scale subresource, then down with a patch of spec.replicas.
    let scale = ds
        .patch_scale(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 4}})),
        )
        .await
        .unwrap();
    assert_eq!(scale.spec.unwrap().replicas, Some(4));
    available(4).await;
    let s = ds.get_scale("web").await.unwrap();
    assert_eq!(s.status.unwrap().selector.as_deref(), Some("app=web"));
    ds.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 1}})),
    )
    .await
    .unwrap();
    available(1).await;
    ds.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 3}})),
    )
    .await
    .unwrap();
    available(3).await;

    // Template change: new ReplicaSet (revision 2), old one scaled to 0.
    ds.patch("web", &PatchParams::default(), &Patch::Merge(json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "localhost/busybox:v2"}]}}}})))
        .await
        .unwrap();
    let d = available(3).await;
    assert_eq!(
        d.metadata.annotations.as_ref().unwrap()["deployment.kubernetes.io/revision"],
        "2"
    );
    let sets = eventually(10, "old ReplicaSet at 0", || async {
        let sets = replica_sets(&rss, &uid).await;
        let old = sets
            .iter()
            .find(|rs| rs.metadata.uid.as_deref() == Some(&rs1_uid))?;
        (old.spec.replicas == Some(0) && old.status.as_ref().unwrap().replicas == 0).then_some(sets)
    })
    .await;
    assert_eq!(sets.len(), 2);
    let new = sets
        .iter()
        .find(|rs| rs.metadata.uid.as_deref() != Some(&rs1_uid))
        .unwrap();
    assert_eq!(
        new.metadata.annotations.as_ref().unwrap()["deployment.kubernetes.io/revision"],
        "2"
    );
    let list = pods
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap();
    let active: Vec<&Pod> = list
        .items
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect();
    assert_eq!(active.len(), 3);
    assert!(
        active
            .iter()
            .all(|p| p.spec.as_ref().unwrap().containers[0].image.as_deref()
                == Some("localhost/busybox:v2"))
    );

    // The selector is immutable.
    let err = ds
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"spec": {"selector": {"matchLabels": {"app": "web", "x": "y"}},
                "template": {"metadata": {"labels": {"x": "y"}}}}}),
            ),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 422 && s.message.contains("field is immutable")),
        "{err:?}"
    );
    // Recreate strategy: old pods go before new ones come.
    ds.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(
            json!({"spec": {"strategy": {"type": "Recreate", "rollingUpdate": null},
        "template": {"spec": {"containers": [{"name": "c", "image": "localhost/busybox:v3"}]}}}}),
        ),
    )
    .await
    .unwrap();
    let d = available(3).await;
    assert_eq!(
        d.metadata.annotations.as_ref().unwrap()["deployment.kubernetes.io/revision"],
        "3"
    );

    // Cascade delete (background): ReplicaSets and pods go.
    ds.delete("web", &DeleteParams::default()).await.unwrap();
    eventually(15, "ReplicaSets and pods garbage collected", || async {
        let rs_left = rss.list(&ListParams::default()).await.unwrap().items.len();
        let pods_left = pods
            .list(&ListParams::default().labels("app=web"))
            .await
            .unwrap()
            .items
            .len();
        (rs_left == 0 && pods_left == 0).then_some(())
    })
    .await;
    kubelet.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphan_and_foreground_deletion() {
    let (_server, client, _dir) = start().await;
    let rss: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let rs: ReplicaSet = serde_json::from_value(json!({"metadata": {"name": "rs"}, "spec": {"replicas": 2,
        "selector": {"matchLabels": {"app": "o"}},
        "template": {"metadata": {"labels": {"app": "o"}}, "spec": {"containers": [{"name": "c", "image": "i:1"}]}}}}))
    .unwrap();
    rss.create(&PostParams::default(), &rs).await.unwrap();
    eventually(10, "2 pods", || async {
        (pods
            .list(&ListParams::default().labels("app=o"))
            .await
            .unwrap()
            .items
            .len()
            == 2)
            .then_some(())
    })
    .await;
    // Orphan: the ReplicaSet goes, its pods stay without the ownerReference.
    rss.delete("rs", &DeleteParams::orphan()).await.unwrap();
    eventually(10, "orphaned pods", || async {
        let gone = rss.get_opt("rs").await.unwrap().is_none();
        let list = pods
            .list(&ListParams::default().labels("app=o"))
            .await
            .unwrap();
        let orphans = list.items.len() == 2
            && list.items.iter().all(|p| {
                p.metadata
                    .owner_references
                    .as_ref()
                    .is_none_or(Vec::is_empty)
            });
        (gone && orphans).then_some(())
    })
    .await;
    // A dependent whose owner (of a served kind) is gone is collected; one whose owner is
    // of a kind the emulator does not serve is left alone.
    let owned_by = |name: &str, api_version: &str, kind: &str| -> Pod {
        serde_json::from_value(json!({"metadata": {"name": name, "labels": {"app": "gc"},
            "ownerReferences": [{"apiVersion": api_version, "kind": kind, "name": "x",
                "uid": "00000000-0000-0000-0000-000000000001"}]},
            "spec": {"containers": [{"name": "c", "image": "i:1"}]}}))
        .unwrap()
    };
    pods.create(
        &PostParams::default(),
        &owned_by("dangling", "v1", "ConfigMap"),
    )
    .await
    .unwrap();
    pods.create(
        &PostParams::default(),
        &owned_by("foreign", "example.com/v1", "Widget"),
    )
    .await
    .unwrap();
    eventually(10, "dangling dependent collected", || async {
        pods.get_opt("dangling")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(pods.get_opt("foreign").await.unwrap().is_some());
    // Foreground: the owner stays (with deletionTimestamp) until the dependents are gone.
    let rs2: ReplicaSet = serde_json::from_value(json!({"metadata": {"name": "rs2"}, "spec": {"replicas": 1,
        "selector": {"matchLabels": {"app": "f"}},
        "template": {"metadata": {"labels": {"app": "f"}}, "spec": {"containers": [{"name": "c", "image": "i:1"}]}}}}))
    .unwrap();
    rss.create(&PostParams::default(), &rs2).await.unwrap();
    eventually(10, "1 pod", || async {
        (pods
            .list(&ListParams::default().labels("app=f"))
            .await
            .unwrap()
            .items
            .len()
            == 1)
            .then_some(())
    })
    .await;
    rss.delete("rs2", &DeleteParams::foreground())
        .await
        .unwrap();
    eventually(10, "foreground deletion done", || async {
        let gone = rss.get_opt("rs2").await.unwrap().is_none();
        let none = pods
            .list(&ListParams::default().labels("app=f"))
            .await
            .unwrap()
            .items
            .is_empty();
        (gone && none).then_some(())
    })
    .await;
}

fn kubectl_bin() -> String {
    let bin = std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".into());
    let ok = Command::new(&bin)
        .args(["version", "--client"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "kubectl not found or not runnable as {bin:?}: install kubectl v1.32 on PATH or set KUBECTL=/path/to/kubectl"
    );
    bin
}

async fn kubectl(kubeconfig: &Path, cache: &Path, args: &[&str]) -> Output {
    let mut c = Command::new(kubectl_bin());
    c.arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--cache-dir")
        .arg(cache)
        .args(args);
    tokio::task::spawn_blocking(move || c.output().unwrap())
        .await
        .unwrap()
}

const MANIFESTS: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: c
        image: localhost/busybox:test
---
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: agent
spec:
  selector:
    matchLabels: {app: agent}
  template:
    metadata:
      labels: {app: agent}
    spec:
      containers:
      - name: c
        image: localhost/busybox:test
---
apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: plain
spec:
  replicas: 1
  selector:
    matchLabels: {app: plain}
  template:
    metadata:
      labels: {app: plain}
    spec:
      containers:
      - name: c
        image: localhost/busybox:test
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_apply_get_describe_scale_delete_workloads() {
    let (server, client, dir) = start().await;
    let kubelet = fake_kubelet(client.clone());
    let nodes: Api<Node> = Api::all(client.clone());
    nodes
        .create(&PostParams::default(), &node("n1", json!({})))
        .await
        .unwrap();
    let kc = server.kubeconfig_path();
    let cache = dir.path().join("cache");
    let file = dir.path().join("workloads.yaml");
    std::fs::write(&file, MANIFESTS).unwrap();
    let ok = |out: Output, what: &str| -> String {
        assert!(
            out.status.success(),
            "kubectl {what} failed: {}{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let out = ok(
        kubectl(kc, &cache, &["apply", "-f", file.to_str().unwrap()]).await,
        "apply",
    );
    assert!(out.contains("deployment.apps/web created"), "{out}");
    assert!(out.contains("daemonset.apps/agent created"), "{out}");
    assert!(out.contains("replicaset.apps/plain created"), "{out}");
    // Re-apply is unchanged; strict validation rejects a typo.
    let out = ok(
        kubectl(kc, &cache, &["apply", "-f", file.to_str().unwrap()]).await,
        "re-apply",
    );
    assert!(out.contains("deployment.apps/web unchanged"), "{out}");
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, MANIFESTS.replacen("replicas: 2", "replicaz: 2", 1)).unwrap();
    let out = kubectl(kc, &cache, &["apply", "-f", bad.to_str().unwrap()]).await;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unknown field \"spec.replicaz\""),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let ds: Api<Deployment> = Api::namespaced(client.clone(), "default");
    eventually(15, "web 2 available", || async {
        let st = ds.get("web").await.unwrap().status?;
        (st.available_replicas == Some(2)).then_some(())
    })
    .await;
    let out = ok(
        kubectl(kc, &cache, &["get", "deploy,ds,rs", "-o", "name"]).await,
        "get",
    );
    for want in [
        "deployment.apps/web",
        "daemonset.apps/agent",
        "replicaset.apps/plain",
    ] {
        assert!(out.contains(want), "{want} in {out}");
    }
    let out = ok(
        kubectl(
            kc,
            &cache,
            &[
                "get",
                "deployment",
                "web",
                "-o",
                "jsonpath={.status.availableReplicas}",
            ],
        )
        .await,
        "get jsonpath",
    );
    assert_eq!(out, "2");
    let out = ok(
        kubectl(kc, &cache, &["describe", "deployment", "web"]).await,
        "describe deployment",
    );
    assert!(
        out.contains("StrategyType:") && out.contains("RollingUpdate"),
        "{out}"
    );
    assert!(out.contains("NewReplicaSet:"), "{out}");
    assert!(
        out.contains("ScalingReplicaSet") && out.contains("Scaled up replica set web-"),
        "{out}"
    );
    let out = ok(
        kubectl(kc, &cache, &["describe", "daemonset", "agent"]).await,
        "describe daemonset",
    );
    assert!(
        out.contains("Desired Number of Nodes Scheduled: 1"),
        "{out}"
    );
    assert!(
        out.contains("SuccessfulCreate") && out.contains("Created pod: agent-"),
        "{out}"
    );
    let out = ok(
        kubectl(kc, &cache, &["describe", "replicaset", "plain"]).await,
        "describe replicaset",
    );
    assert!(out.contains("Created pod: plain-"), "{out}");
    let out = ok(
        kubectl(kc, &cache, &["scale", "deployment", "web", "--replicas=3"]).await,
        "scale",
    );
    assert!(out.contains("scaled"), "{out}");
    eventually(15, "web 3 available", || async {
        let st = ds.get("web").await.unwrap().status?;
        (st.available_replicas == Some(3)).then_some(())
    })
    .await;
    let out = ok(
        kubectl(kc, &cache, &["get", "deployment", "web"]).await,
        "get table",
    );
    let header: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
        "{out}"
    );
    assert!(out.lines().nth(1).unwrap().contains("3/3"), "{out}");
    let out = ok(
        kubectl(kc, &cache, &["get", "ds", "agent", "-o", "wide"]).await,
        "get ds wide",
    );
    assert!(
        out.starts_with("NAME") && out.contains("NODE SELECTOR") && out.contains("IMAGES"),
        "{out}"
    );
    assert!(
        out.contains("localhost/busybox:test") && out.contains("app=agent"),
        "{out}"
    );
    let out = ok(
        kubectl(
            kc,
            &cache,
            &["rollout", "status", "deployment/web", "--timeout=20s"],
        )
        .await,
        "rollout status",
    );
    assert!(out.contains("successfully rolled out"), "{out}");
    ok(
        kubectl(
            kc,
            &cache,
            &[
                "delete",
                "-f",
                file.to_str().unwrap(),
                "--wait=true",
                "--timeout=20s",
            ],
        )
        .await,
        "delete",
    );
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    eventually(15, "all workload pods gone", || async {
        pods.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
            .then_some(())
    })
    .await;
    kubelet.cancel();
}
