#![allow(clippy::unwrap_used)]
//! PATCH flavours, pods/binding, events in both API groups, and the review APIs, via kube-rs.

use edge_hil_tests::apiserver::{ApiServer, ApiServerConfig};
use k8s_openapi::api::authentication::v1::TokenReview;
use k8s_openapi::api::authorization::v1::SubjectAccessReview;
use k8s_openapi::api::core::v1::{ConfigMap, Event as CoreEvent, Node, Pod};
use k8s_openapi::api::events::v1::Event as NewEvent;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

async fn start() -> (ApiServer, kube::Client, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = ApiServerConfig::new(dir.path());
    cfg.scheduler = false;
    cfg.node_lifecycle = false;
    let server = ApiServer::start(cfg).await.unwrap();
    let client = server.client().await.unwrap();
    (server, client, dir)
}

fn code(e: kube::Error) -> (u16, String) {
    match e {
        kube::Error::Api(s) => (s.code, s.reason.clone()),
        other => panic!("expected API error, got {other:?}"),
    }
}

#[tokio::test]
async fn merge_json_and_strategic_patches() {
    let (_s, client, _d) = start().await;
    let nodes: Api<Node> = Api::all(client.clone());
    let n: Node = serde_json::from_value(json!({"metadata": {"name": "n1", "labels": {"a": "1"}},
        "spec": {"taints": [{"key": "virtual-kubelet.io/provider", "value": "edge", "effect": "NoSchedule"}]},
        "status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "MemoryPressure", "status": "False"}],
                   "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}]}}))
    .unwrap();
    nodes.create(&PostParams::default(), &n).await.unwrap();

    // Merge patch: null deletes, maps merge.
    let m = nodes
        .patch(
            "n1",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"a": null, "b": "2"}}})),
        )
        .await
        .unwrap();
    assert_eq!(
        m.metadata.labels.unwrap(),
        [("b".to_string(), "2".to_string())].into()
    );

    // Strategic merge on status: conditions merged by type, addresses by type.
    let st = nodes
        .patch_status(
            "n1",
            &PatchParams::default(),
            &Patch::Strategic(json!({"status": {"conditions": [{"type": "Ready", "status": "False", "reason": "KubeletNotReady"}],
                "addresses": [{"type": "Hostname", "address": "n1"}]}})),
        )
        .await
        .unwrap();
    let status = st.status.unwrap();
    let conds = status.conditions.unwrap();
    assert_eq!(conds.len(), 2);
    assert_eq!(
        conds.iter().find(|c| c.type_ == "Ready").unwrap().status,
        "False"
    );
    assert_eq!(status.addresses.unwrap().len(), 2);

    // Taints have no patch strategy in kube-apiserver: a strategic patch replaces the list.
    let t = nodes
        .patch(
            "n1",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"taints": [{"key": "x", "effect": "NoExecute"}]}})),
        )
        .await
        .unwrap();
    assert_eq!(t.spec.unwrap().taints.unwrap().len(), 1);

    // JSON patch with a failing test op is a 422 and changes nothing.
    let jp: json_patch::Patch =
        serde_json::from_value(json!([{"op": "test", "path": "/metadata/name", "value": "other"}]))
            .unwrap();
    let (c, _) = code(
        nodes
            .patch("n1", &PatchParams::default(), &Patch::<()>::Json(jp))
            .await
            .unwrap_err(),
    );
    assert_eq!(c, 422);
    let jp: json_patch::Patch =
        serde_json::from_value(json!([{"op": "add", "path": "/metadata/labels/c", "value": "3"}]))
            .unwrap();
    let j = nodes
        .patch("n1", &PatchParams::default(), &Patch::<()>::Json(jp))
        .await
        .unwrap();
    assert_eq!(
        j.metadata.labels.unwrap().get("c").map(String::as_str),
        Some("3")
    );

    // A patch carrying a stale resourceVersion conflicts.
    let (c, reason) = code(
        nodes
            .patch(
                "n1",
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"resourceVersion": "1", "labels": {"d": "4"}}})),
            )
            .await
            .unwrap_err(),
    );
    assert_eq!((c, reason.as_str()), (409, "Conflict"));

    // Containers merge by name; env by name; $patch: delete removes an element.
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let p: Pod = serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": {"containers": [
        {"name": "a", "image": "i:1", "env": [{"name": "X", "value": "1"}]}, {"name": "b", "image": "i:1"}]}}))
    .unwrap();
    pods.create(&PostParams::default(), &p).await.unwrap();
    let sp = pods
        .patch_status("p", &PatchParams::default(), &Patch::Strategic(json!({"status": {"conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [{"name": "a", "ready": true, "restartCount": 0, "image": "i:1", "imageID": "", "state": {"running": {}}}]}})))
        .await
        .unwrap();
    assert_eq!(sp.status.unwrap().container_statuses.unwrap().len(), 1);
}

#[tokio::test]
async fn server_side_apply_creates_merges_and_tracks_ownership() {
    let (_s, client, _d) = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let pp = PatchParams::apply("test-manager");
    let a = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "applied"}, "data": {"a": "1", "keep": "x"}});
    let created = cms.patch("applied", &pp, &Patch::Apply(&a)).await.unwrap();
    assert_eq!(
        created.data.unwrap().get("a").map(String::as_str),
        Some("1")
    );
    let mf = created.metadata.managed_fields.unwrap();
    assert_eq!(mf[0].manager.as_deref(), Some("test-manager"));
    assert_eq!(mf[0].operation.as_deref(), Some("Apply"));
    // The same manager applying without "a" removes it; other fields merge.
    let b = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "applied"}, "data": {"b": "2", "keep": "x"}});
    let merged = cms.patch("applied", &pp, &Patch::Apply(&b)).await.unwrap();
    let data = merged.data.unwrap();
    assert_eq!(data.get("b").map(String::as_str), Some("2"));
    assert!(!data.contains_key("a"), "{data:?}");
    // Another manager changing an owned field conflicts, unless forced.
    let other = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "applied"}, "data": {"keep": "y"}});
    let (c, reason) = code(
        cms.patch(
            "applied",
            &PatchParams::apply("other"),
            &Patch::Apply(&other),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!((c, reason.as_str()), (409, "Conflict"));
    let forced = cms
        .patch(
            "applied",
            &PatchParams::apply("other").force(),
            &Patch::Apply(&other),
        )
        .await
        .unwrap();
    assert_eq!(
        forced.data.unwrap().get("keep").map(String::as_str),
        Some("y")
    );
    // Missing fieldManager is rejected like kube-apiserver.
    let (c, _) = code(
        cms.patch("applied", &PatchParams::default(), &Patch::Apply(&b))
            .await
            .unwrap_err(),
    );
    assert_eq!(c, 422);
}

#[tokio::test]
async fn binding_assigns_a_node_once() {
    let (_s, client, _d) = start().await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let p: Pod = serde_json::from_value(
        json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "i:1"}]}}),
    )
    .unwrap();
    pods.create(&PostParams::default(), &p).await.unwrap();
    let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"}, "target": {"apiVersion": "v1", "kind": "Node", "name": "n1"}});
    let req = hyper::Request::post("/api/v1/namespaces/default/pods/p/binding")
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&binding).unwrap())
        .unwrap();
    let out: serde_json::Value = client.request(req).await.unwrap();
    assert_eq!(out["status"], "Success");
    let bound = pods.get("p").await.unwrap();
    assert_eq!(bound.spec.unwrap().node_name.as_deref(), Some("n1"));
    let conds = bound.status.unwrap().conditions.unwrap();
    assert!(
        conds
            .iter()
            .any(|c| c.type_ == "PodScheduled" && c.status == "True")
    );
    let req = hyper::Request::post("/api/v1/namespaces/default/pods/p/binding")
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&binding).unwrap())
        .unwrap();
    let (c, reason) = code(client.request::<serde_json::Value>(req).await.unwrap_err());
    assert_eq!((c, reason.as_str()), (409, "Conflict"));
}

#[tokio::test]
async fn events_are_served_in_both_groups() {
    let (_s, client, _d) = start().await;
    let new_events: Api<NewEvent> = Api::namespaced(client.clone(), "default");
    let e: NewEvent = serde_json::from_value(json!({"metadata": {"name": "e1"}, "eventTime": "2024-01-01T00:00:00.000000Z",
        "regarding": {"kind": "Node", "name": "n1", "uid": "u1"}, "note": "hello", "reason": "Ready", "type": "Normal",
        "action": "Update", "reportingController": "edge-gateway", "reportingInstance": "gw-1"}))
    .unwrap();
    new_events.create(&PostParams::default(), &e).await.unwrap();
    let core: Api<CoreEvent> = Api::namespaced(client.clone(), "default");
    let listed = core
        .list(&ListParams::default().fields("involvedObject.kind=Node,involvedObject.name=n1"))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);
    let ce = &listed.items[0];
    assert_eq!(ce.message.as_deref(), Some("hello"));
    assert_eq!(ce.reporting_component.as_deref(), Some("edge-gateway"));
    assert_eq!(ce.involved_object.name.as_deref(), Some("n1"));
    let back = new_events.get("e1").await.unwrap();
    assert_eq!(back.note.as_deref(), Some("hello"));
    assert_eq!(back.regarding.unwrap().kind.as_deref(), Some("Node"));
}

#[tokio::test]
async fn token_and_access_reviews() {
    let (s, client, _d) = start().await;
    let kc = std::fs::read_to_string(s.kubeconfig_path()).unwrap();
    let token = kc
        .lines()
        .find_map(|l| l.trim().strip_prefix("token: "))
        .unwrap()
        .to_string();
    let reviews: Api<TokenReview> = Api::all(client.clone());
    let good: TokenReview = serde_json::from_value(json!({"spec": {"token": token}})).unwrap();
    let r = reviews.create(&PostParams::default(), &good).await.unwrap();
    let st = r.status.unwrap();
    assert_eq!(st.authenticated, Some(true));
    assert!(
        st.user
            .unwrap()
            .groups
            .unwrap()
            .contains(&"system:masters".to_string())
    );
    let bad: TokenReview = serde_json::from_value(json!({"spec": {"token": "nope"}})).unwrap();
    assert_eq!(
        reviews
            .create(&PostParams::default(), &bad)
            .await
            .unwrap()
            .status
            .unwrap()
            .authenticated,
        None,
        "kube-apiserver omits authenticated: false"
    );

    // SubjectAccessReviews are answered by RBAC for the user and groups in the spec,
    // as kube-apiserver answers them: the admin's groups (system:masters) allow
    // everything, the same user name alone is bound to nothing.
    let sars: Api<SubjectAccessReview> = Api::all(client.clone());
    let allowed = |spec: serde_json::Value| {
        let sars = sars.clone();
        async move {
            let sar: SubjectAccessReview = serde_json::from_value(json!({"spec": spec})).unwrap();
            sars.create(&PostParams::default(), &sar)
                .await
                .unwrap()
                .status
                .unwrap()
                .allowed
        }
    };
    let pods = json!({"verb": "get", "resource": "pods", "namespace": "default"});
    assert!(
        allowed(
            json!({"user": "edge-hil-admin", "groups": ["system:masters"],
            "resourceAttributes": pods})
        )
        .await
    );
    assert!(!allowed(json!({"user": "edge-hil-admin", "resourceAttributes": pods})).await);
    // the API server's kubelet client is bound to system:kubelet-api-admin (kubeadm)
    let proxy = json!({"verb": "get", "resource": "nodes", "subresource": "proxy", "name": "n1"});
    assert!(
        allowed(json!({"user": "kube-apiserver-kubelet-client",
            "groups": ["system:authenticated"], "resourceAttributes": proxy}))
        .await
    );
    assert!(
        !allowed(
            json!({"user": "someone", "groups": ["system:authenticated"],
            "resourceAttributes": proxy})
        )
        .await
    );
}

#[tokio::test]
async fn authentication_is_required() {
    let (s, _client, _d) = start().await;
    let _ = rustls::crypto::ring::default_provider().install_default();
    // A client with a wrong token gets 401 Unauthorized.
    let mut kc = kube::config::Kubeconfig::read_from(s.kubeconfig_path()).unwrap();
    kc.auth_infos[0].auth_info.as_mut().unwrap().token = Some("wrong".to_string().into());
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    let bad = kube::Client::try_from(cfg).unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(bad, "default");
    let (c, reason) = code(cms.list(&ListParams::default()).await.unwrap_err());
    assert_eq!((c, reason.as_str()), (401, "Unauthorized"));
}
