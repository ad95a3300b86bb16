#![allow(clippy::unwrap_used)]
//! API semantics of the emulator through kube-rs: CRUD, resourceVersion, uid, generation,
//! Status errors, subresources, selectors, pagination, finalizers, graceful deletion.

use std::time::Duration;

use edge_hil_tests::apiserver::{ApiServer, ApiServerConfig};
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    ConfigMap, Namespace, Node, Pod, Secret, Service, ServiceAccount,
};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, Error};
use serde_json::json;

async fn start() -> (ApiServer, Client, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = ApiServerConfig::new(dir.path());
    cfg.scheduler = false;
    cfg.node_lifecycle = false;
    let server = ApiServer::start(cfg).await.unwrap();
    let client = server.client().await.unwrap();
    (server, client, dir)
}

fn status_of(e: Error) -> (u16, String, String) {
    match e {
        Error::Api(s) => (s.code, s.reason.clone(), s.message.clone()),
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn rv<K: kube::Resource>(o: &K) -> u64 {
    o.meta()
        .resource_version
        .as_deref()
        .unwrap()
        .parse()
        .unwrap()
}

fn cm(name: &str) -> ConfigMap {
    serde_json::from_value(
        json!({"metadata": {"name": name, "labels": {"app": "a"}}, "data": {"k": "v"}}),
    )
    .unwrap()
}

fn pod(name: &str) -> Pod {
    serde_json::from_value(json!({"metadata": {"name": name}, "spec": {"containers": [{"name": "c", "image": "busybox:1"}]}})).unwrap()
}

#[tokio::test]
async fn crud_resource_versions_and_status_errors() {
    let (_s, client, _d) = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let a = cms.create(&PostParams::default(), &cm("a")).await.unwrap();
    assert!(a.metadata.uid.as_deref().is_some_and(|u| u.len() == 36));
    assert!(a.metadata.creation_timestamp.is_some());
    assert_eq!(a.metadata.namespace.as_deref(), Some("default"));
    let b = cms.create(&PostParams::default(), &cm("b")).await.unwrap();
    assert!(
        rv(&b) > rv(&a),
        "one cluster-wide increasing resourceVersion"
    );

    let (code, reason, msg) = status_of(
        cms.create(&PostParams::default(), &cm("a"))
            .await
            .unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (409, "AlreadyExists"));
    assert_eq!(msg, "configmaps \"a\" already exists");

    let mut changed = a.clone();
    changed.data = Some([("k".to_string(), "v2".to_string())].into());
    let updated = cms
        .replace("a", &PostParams::default(), &changed)
        .await
        .unwrap();
    assert!(rv(&updated) > rv(&b));
    let (code, reason, msg) = status_of(
        cms.replace("a", &PostParams::default(), &changed)
            .await
            .unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (409, "Conflict"));
    assert!(msg.contains("the object has been modified"), "{msg}");

    // A no-op update writes nothing.
    let same = cms
        .replace("a", &PostParams::default(), &updated)
        .await
        .unwrap();
    assert_eq!(rv(&same), rv(&updated));

    let (code, reason, msg) = status_of(cms.get("missing").await.unwrap_err());
    assert_eq!(
        (code, reason.as_str(), msg.as_str()),
        (404, "NotFound", "configmaps \"missing\" not found")
    );

    let other: Api<ConfigMap> = Api::namespaced(client.clone(), "nope");
    let (code, _, msg) = status_of(
        other
            .create(&PostParams::default(), &cm("x"))
            .await
            .unwrap_err(),
    );
    assert_eq!((code, msg.as_str()), (404, "namespaces \"nope\" not found"));

    let bad: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "Bad_Name"}})).unwrap();
    let (code, reason, _) = status_of(cms.create(&PostParams::default(), &bad).await.unwrap_err());
    assert_eq!((code, reason.as_str()), (422, "Invalid"));

    let generated: ConfigMap =
        serde_json::from_value(json!({"metadata": {"generateName": "gen-"}})).unwrap();
    let g = cms
        .create(&PostParams::default(), &generated)
        .await
        .unwrap();
    assert!(g.metadata.name.as_deref().unwrap().starts_with("gen-"));

    let deleted = cms.delete("b", &DeleteParams::default()).await.unwrap();
    assert!(deleted.is_right(), "configmap delete returns a Status");
    assert!(cms.get_opt("b").await.unwrap().is_none());
}

#[tokio::test]
async fn every_resource_type_round_trips() {
    let (_s, client, _d) = start().await;
    let pp = PostParams::default();
    let ns: Api<Namespace> = Api::all(client.clone());
    let created = ns
        .create(
            &pp,
            &serde_json::from_value(json!({"metadata": {"name": "t1"}})).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(created.status.unwrap().phase.as_deref(), Some("Active"));
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), "t1");
    assert!(
        sas.get("default").await.is_ok(),
        "namespaces get a default service account"
    );

    let secrets: Api<Secret> = Api::namespaced(client.clone(), "t1");
    let s = secrets
        .create(
            &pp,
            &serde_json::from_value(json!({"metadata": {"name": "s"}, "stringData": {"a": "b"}}))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(s.type_.as_deref(), Some("Opaque"));

    let svcs: Api<Service> = Api::namespaced(client.clone(), "t1");
    let svc = svcs
        .create(
            &pp,
            &serde_json::from_value(
                json!({"metadata": {"name": "svc"}, "spec": {"ports": [{"port": 80}]}}),
            )
            .unwrap(),
        )
        .await
        .unwrap();
    let spec = svc.spec.unwrap();
    assert!(spec.cluster_ip.as_deref().unwrap().starts_with("10.96."));
    assert_eq!(spec.ports.unwrap()[0].protocol.as_deref(), Some("TCP"));

    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let l = leases.create(&pp, &serde_json::from_value(json!({"metadata": {"name": "n1"}, "spec": {"holderIdentity": "n1", "leaseDurationSeconds": 40}})).unwrap()).await.unwrap();
    assert_eq!(l.spec.unwrap().holder_identity.as_deref(), Some("n1"));

    let nodes: Api<Node> = Api::all(client.clone());
    let n = nodes
        .create(
            &pp,
            &serde_json::from_value(
                json!({"metadata": {"name": "n1"}, "status": {"capacity": {"cpu": "4"}}}),
            )
            .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(n.metadata.namespace, None);
    assert!(
        nodes
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len()
            == 1
    );

    let csrs: Api<CertificateSigningRequest> = Api::all(client.clone());
    let csr = csrs.create(&pp, &serde_json::from_value(json!({"metadata": {"name": "c1"}, "spec": {"request": "aGVsbG8=", "signerName": "kubernetes.io/kube-apiserver-client", "usages": ["client auth"]}})).unwrap()).await.unwrap();
    assert_eq!(csr.spec.username.as_deref(), Some("edge-hil-admin"));
    let approval = json!({"status": {"conditions": [{"type": "Approved", "status": "True", "reason": "Test", "message": "ok"}]}});
    let approved = csrs
        .patch_subresource(
            "approval",
            "c1",
            &PatchParams::default(),
            &Patch::Merge(&approval),
        )
        .await
        .unwrap();
    let conds = approved.status.unwrap().conditions.unwrap();
    assert_eq!(conds[0].type_, "Approved");
    assert!(conds[0].last_update_time.is_some());
}

#[tokio::test]
async fn generation_and_status_subresource() {
    let (_s, client, _d) = start().await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let p = pods
        .create(&PostParams::default(), &pod("p"))
        .await
        .unwrap();
    assert_eq!(p.metadata.generation, Some(1));
    let status = p.status.clone().unwrap();
    assert_eq!(status.phase.as_deref(), Some("Pending"));
    assert_eq!(status.qos_class.as_deref(), Some("BestEffort"));
    let spec = p.spec.clone().unwrap();
    assert_eq!(spec.restart_policy.as_deref(), Some("Always"));
    assert_eq!(spec.service_account_name.as_deref(), Some("default"));

    // Labels do not bump generation; an image change does.
    let l = pods
        .patch(
            "p",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}})),
        )
        .await
        .unwrap();
    assert_eq!(l.metadata.generation, Some(1));
    let i = pods
        .patch(
            "p",
            &PatchParams::default(),
            &Patch::Strategic(
                json!({"spec": {"containers": [{"name": "c", "image": "busybox:2"}]}}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(i.metadata.generation, Some(2));
    assert_eq!(
        i.spec.unwrap().containers.len(),
        1,
        "containers merged by name"
    );

    // Other spec fields are immutable.
    let (code, reason, _) = status_of(
        pods.patch(
            "p",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"restartPolicy": "Never"}})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (422, "Invalid"));

    // The main resource ignores status; the status subresource ignores everything else.
    let ignored = pods
        .patch(
            "p",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Running"}})),
        )
        .await
        .unwrap();
    assert_eq!(ignored.status.unwrap().phase.as_deref(), Some("Pending"));
    let st = pods
        .patch_status("p", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": {"z": "1"}}, "status": {"phase": "Running", "podIP": "10.0.0.5"}})))
        .await
        .unwrap();
    assert_eq!(
        st.status.as_ref().unwrap().phase.as_deref(),
        Some("Running")
    );
    assert!(!st.metadata.labels.unwrap().contains_key("z"));
    assert_eq!(st.metadata.generation, Some(2));

    let mut full = pods.get("p").await.unwrap();
    full.status.as_mut().unwrap().phase = Some("Succeeded".into());
    let replaced = pods
        .replace_status("p", &PostParams::default(), &full)
        .await
        .unwrap();
    assert_eq!(replaced.status.unwrap().phase.as_deref(), Some("Succeeded"));
}

#[tokio::test]
async fn selectors_limit_and_continue() {
    let (_s, client, _d) = start().await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    for (i, node) in ["n1", "n1", "n2", "", ""].iter().enumerate() {
        let mut p = pod(&format!("p{i}"));
        p.metadata.labels = Some(
            [(
                "tier".to_string(),
                if i % 2 == 0 { "web" } else { "db" }.to_string(),
            )]
            .into(),
        );
        if !node.is_empty() {
            p.spec.as_mut().unwrap().node_name = Some(node.to_string());
        }
        pods.create(&PostParams::default(), &p).await.unwrap();
    }
    let names = |l: kube::api::ObjectList<Pod>| {
        l.items
            .into_iter()
            .map(|p| p.metadata.name.unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(
            pods.list(&ListParams::default().labels("tier=web"))
                .await
                .unwrap()
        ),
        ["p0", "p2", "p4"]
    );
    assert_eq!(
        names(
            pods.list(&ListParams::default().labels("tier in (db),tier!=web"))
                .await
                .unwrap()
        ),
        ["p1", "p3"]
    );
    assert_eq!(
        names(
            pods.list(&ListParams::default().fields("spec.nodeName=n1"))
                .await
                .unwrap()
        ),
        ["p0", "p1"]
    );
    assert_eq!(
        names(
            pods.list(&ListParams::default().fields("spec.nodeName="))
                .await
                .unwrap()
        ),
        ["p3", "p4"]
    );
    assert_eq!(
        names(
            pods.list(&ListParams::default().fields("metadata.name=p2,status.phase=Pending"))
                .await
                .unwrap()
        ),
        ["p2"]
    );
    let (code, _, _) = status_of(
        pods.list(&ListParams::default().fields("spec.bogus=1"))
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 400);

    let page1 = pods.list(&ListParams::default().limit(2)).await.unwrap();
    assert_eq!(page1.items.len(), 2);
    assert_eq!(page1.metadata.remaining_item_count, Some(3));
    let tok = page1.metadata.continue_.clone().unwrap();
    // Pages come from the snapshot of the first one: a pod created now does not show up.
    pods.create(&PostParams::default(), &pod("p1a"))
        .await
        .unwrap();
    let page2 = pods
        .list(&ListParams::default().limit(2).continue_token(&tok))
        .await
        .unwrap();
    assert_eq!(names(page2.clone()), ["p2", "p3"]);
    let page3 = pods
        .list(
            &ListParams::default()
                .limit(2)
                .continue_token(page2.metadata.continue_.as_deref().unwrap()),
        )
        .await
        .unwrap();
    assert_eq!(names(page3.clone()), ["p4"]);
    assert!(page3.metadata.continue_.is_none());

    let all: Api<Pod> = Api::all(client.clone());
    assert_eq!(
        all.list(&ListParams::default()).await.unwrap().items.len(),
        6
    );
    // After compaction, an old continue token is 410 Expired.
    _s.cluster().compact();
    let (code, reason, _) = status_of(
        pods.list(&ListParams::default().limit(2).continue_token(&tok))
            .await
            .unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (410, "Expired"));
}

#[tokio::test]
async fn graceful_pod_deletion_like_kube_apiserver() {
    let (_s, client, _d) = start().await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    // Unbound pods go away at once.
    pods.create(&PostParams::default(), &pod("unbound"))
        .await
        .unwrap();
    let r = pods
        .delete("unbound", &DeleteParams::default())
        .await
        .unwrap();
    assert!(r.is_left());
    assert!(pods.get_opt("unbound").await.unwrap().is_none());

    let mut bound = pod("bound");
    bound.spec.as_mut().unwrap().node_name = Some("n1".into());
    bound
        .spec
        .as_mut()
        .unwrap()
        .termination_grace_period_seconds = Some(20);
    let created = pods.create(&PostParams::default(), &bound).await.unwrap();
    let r = pods
        .delete("bound", &DeleteParams::default())
        .await
        .unwrap();
    let terminating = r.left().unwrap();
    assert_eq!(terminating.metadata.deletion_grace_period_seconds, Some(20));
    assert!(terminating.metadata.deletion_timestamp.is_some());
    // Still there; a longer grace does not extend it; a shorter one shortens it.
    assert!(pods.get_opt("bound").await.unwrap().is_some());
    let again = pods
        .delete(
            "bound",
            &DeleteParams {
                grace_period_seconds: Some(60),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        again.left().unwrap().metadata.deletion_grace_period_seconds,
        Some(20)
    );
    let shorter = pods
        .delete(
            "bound",
            &DeleteParams {
                grace_period_seconds: Some(5),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        shorter
            .left()
            .unwrap()
            .metadata
            .deletion_grace_period_seconds,
        Some(5)
    );
    // The kubelet's final delete: grace 0 with a UID precondition.
    let wrong = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(kube::api::Preconditions {
            uid: Some("nope".into()),
            resource_version: None,
        }),
        ..Default::default()
    };
    let (code, reason, _) = status_of(pods.delete("bound", &wrong).await.unwrap_err());
    assert_eq!((code, reason.as_str()), (409, "Conflict"));
    let right = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(kube::api::Preconditions {
            uid: created.metadata.uid.clone(),
            resource_version: None,
        }),
        ..Default::default()
    };
    pods.delete("bound", &right).await.unwrap();
    assert!(pods.get_opt("bound").await.unwrap().is_none());
}

#[tokio::test]
async fn finalizers_hold_objects_until_removed() {
    let (_s, client, _d) = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let mut c = cm("f");
    c.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    cms.create(&PostParams::default(), &c).await.unwrap();
    let r = cms.delete("f", &DeleteParams::default()).await.unwrap();
    let held = r.left().unwrap();
    assert!(held.metadata.deletion_timestamp.is_some());
    assert_eq!(held.metadata.deletion_grace_period_seconds, Some(0));
    // New finalizers cannot be added while deleting.
    let (code, _, _) = status_of(
        cms.patch(
            "f",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": ["example.com/hold", "x/y"]}})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(code, 422);
    cms.patch(
        "f",
        &PatchParams::default(),
        &Patch::Json::<()>(
            serde_json::from_value(json!([{"op": "remove", "path": "/metadata/finalizers"}]))
                .unwrap(),
        ),
    )
    .await
    .unwrap();
    assert!(cms.get_opt("f").await.unwrap().is_none());
}

#[tokio::test]
async fn namespace_deletion_empties_and_removes_it() {
    let (_s, client, _d) = start().await;
    let ns: Api<Namespace> = Api::all(client.clone());
    ns.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "gone"}})).unwrap(),
    )
    .await
    .unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "gone");
    cms.create(&PostParams::default(), &cm("c")).await.unwrap();
    ns.delete("gone", &DeleteParams::default()).await.unwrap();
    let (code, reason, _) = status_of(
        cms.create(&PostParams::default(), &cm("d"))
            .await
            .unwrap_err(),
    );
    assert!(code == 403 || code == 404, "{code} {reason}");
    for _ in 0..100 {
        if ns.get_opt("gone").await.unwrap().is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ns.get_opt("gone").await.unwrap().is_none());
    let (code, _, _) = status_of(
        ns.delete("default", &DeleteParams::default())
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 403);
}

#[tokio::test]
async fn invalid_objects_are_422_with_field_paths() {
    let (_s, client, _d) = start().await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let no_image: Pod = serde_json::from_value(
        json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]}}),
    )
    .unwrap();
    let (code, reason, msg) = status_of(
        pods.create(&PostParams::default(), &no_image)
            .await
            .unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (422, "Invalid"));
    assert_eq!(
        msg,
        "Pod \"p\" is invalid: spec.containers[0].image: Required value"
    );
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    cms.create(&PostParams::default(), &cm("ok")).await.unwrap();
    let (code, _, msg) = status_of(
        cms.patch(
            "ok",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"bad key": "x"}}})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(code, 422);
    assert!(
        msg.starts_with("ConfigMap \"ok\" is invalid: metadata.labels: Invalid value: \"bad key\""),
        "{msg}"
    );
}

#[tokio::test]
async fn service_account_admission_with_token_volumes() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = ApiServerConfig::new(dir.path());
    cfg.scheduler = false;
    cfg.node_lifecycle = false;
    cfg.service_account_token_volumes = true;
    let server = ApiServer::start(cfg).await.unwrap();
    let client = server.client().await.unwrap();
    // Every namespace publishes the cluster CA.
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let ca = cms.get("kube-root-ca.crt").await.unwrap().data.unwrap()["ca.crt"].clone();
    assert_eq!(
        ca,
        std::fs::read_to_string(dir.path().join("ca.crt")).unwrap()
    );
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let p = pods
        .create(&PostParams::default(), &pod("with-token"))
        .await
        .unwrap();
    let spec = p.spec.unwrap();
    let vol = &spec.volumes.unwrap()[0];
    assert!(vol.name.starts_with("kube-api-access-"));
    let sources = vol.projected.as_ref().unwrap().sources.as_ref().unwrap();
    assert!(sources[0].service_account_token.is_some());
    let mount = &spec.containers[0].volume_mounts.as_ref().unwrap()[0];
    assert_eq!(
        mount.mount_path,
        "/var/run/secrets/kubernetes.io/serviceaccount"
    );
    let mut opt_out = pod("no-token");
    opt_out
        .spec
        .as_mut()
        .unwrap()
        .automount_service_account_token = Some(false);
    let p = pods.create(&PostParams::default(), &opt_out).await.unwrap();
    assert!(p.spec.unwrap().volumes.is_none());
    let mut missing_sa = pod("missing-sa");
    missing_sa.spec.as_mut().unwrap().service_account_name = Some("nope".into());
    let (code, _, msg) = status_of(
        pods.create(&PostParams::default(), &missing_sa)
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 403);
    assert!(msg.contains("serviceaccount \"nope\" not found"), "{msg}");
}
