//! Live ConfigMap, Secret, downward API and service account token volumes on the real
//! control plane, a real agent and Podman, through the real `kubectl`: a ConfigMap and a
//! Secret change is seen in the files of the running container (no restart; the
//! `subPath` mount and the environment keep the old value, as in Kubernetes); a labels
//! file follows `kubectl label pod`; the `kube-api-access` token and a projected token
//! with its own audience are accepted by a TokenReview on the real API server, bound to
//! the pod; a ConfigMap grown past what one device message carries ends with the
//! kubelet-like rejection and a Warning Event, other pods unaffected; a removed key a
//! running pod mounts leaves it running with its files and a `FailedMount` Event; a token
//! that cannot be requested shows on the pod as the kubelet's "failed to fetch token".

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, ensure};
use edge_hil_tests::scenario::{
    brief_status, container_id, create, is_ready, phase, pod_manifest, pods, restart_count, uid,
    wait_node_ready, wait_pod,
};
use edge_hil_tests::stack::{
    AgentBuild, BrokerKind, ClusterBackend, Stack, StackOptions, eventually,
};
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Event, Pod, Secret};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

const DEVICE: &str = "livecfg-pi-01";
const DEVICE_2: &str = "livecfg-pi-02";
const SA_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
const AUDIENCE: &str = "livecfg-vault";
/// Long enough for a device round trip, short enough for a test.
const DELIVERY: Duration = Duration::from_secs(45);

fn exec(stack: &Stack, pod: &str, command: &[&str]) -> Result<String> {
    let out = stack
        .kubectl
        .exec(&stack.namespace, pod, "main", command, None)?;
    ensure!(
        out.status.success(),
        "kubectl exec {pod} {command:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Waits until `cat path` in the pod's container prints `expected`.
async fn file_becomes(stack: &Stack, pod: &str, path: &str, expected: &str) -> Result<()> {
    eventually(&format!("{path} = {expected:?}"), DELIVERY, || {
        let got = exec(stack, pod, &["cat", path]).map_err(|e| e.to_string());
        async move {
            let got = got?;
            if got.contains(expected) {
                Ok(Some(()))
            } else {
                Err(format!("{path} holds {got:?}"))
            }
        }
    })
    .await
    .map_err(|e| anyhow!("{e}\n{}", stack.logs()))
}

fn reader_pod() -> Pod {
    let mut pod = pod_manifest(
        "reader",
        &[("kubernetes.io/hostname", DEVICE)],
        true,
        "Always",
        "sleep 100000",
    );
    let mut value = serde_json::to_value(&pod).unwrap();
    value["metadata"]["labels"] = json!({"app": "reader"});
    value["spec"]["containers"][0]["env"] = json!([
        {"name": "GREETING", "valueFrom": {"configMapKeyRef": {"name": "app-config", "key": "greeting"}}}
    ]);
    value["spec"]["containers"][0]["volumeMounts"] = json!([
        {"name": "config", "mountPath": "/etc/config"},
        {"name": "config", "mountPath": "/etc/greeting-sub", "subPath": "greeting"},
        {"name": "secret", "mountPath": "/etc/secret"},
        {"name": "podinfo", "mountPath": "/etc/podinfo"},
        {"name": "vault-token", "mountPath": "/var/run/secrets/tokens"},
        {"name": "picked", "mountPath": "/etc/picked"}
    ]);
    value["spec"]["volumes"] = json!([
        {"name": "config", "configMap": {"name": "app-config"}},
        {"name": "secret", "secret": {"secretName": "app-secret"}},
        {"name": "picked", "configMap": {"name": "app-config", "items": [{"key": "greeting", "path": "g"}]}},
        {"name": "podinfo", "downwardAPI": {"items": [
            {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}
        ]}},
        {"name": "vault-token", "projected": {"sources": [
            {"serviceAccountToken": {"audience": AUDIENCE, "expirationSeconds": 600, "path": "vault"}}
        ]}}
    ]);
    pod = serde_json::from_value(value).unwrap();
    pod
}

/// A pod mounting ConfigMap `big` in `copies` volumes.
fn bloated_pod(name: &str, copies: usize) -> Pod {
    let pod = pod_manifest(
        name,
        &[("kubernetes.io/hostname", DEVICE)],
        true,
        "Always",
        "sleep 100000",
    );
    let mut value = serde_json::to_value(&pod).unwrap();
    let volumes: Vec<_> = (0..copies)
        .map(|i| json!({"name": format!("big-{i}"), "configMap": {"name": "big"}}))
        .collect();
    let mounts: Vec<_> = (0..copies)
        .map(|i| json!({"name": format!("big-{i}"), "mountPath": format!("/etc/big-{i}")}))
        .collect();
    value["spec"]["volumes"] = json!(volumes);
    value["spec"]["containers"][0]["volumeMounts"] = json!(mounts);
    serde_json::from_value(value).unwrap()
}

async fn patch_config_map(stack: &Stack, name: &str, data: serde_json::Value) -> Result<()> {
    let api: Api<ConfigMap> = Api::namespaced(stack.client().await?, &stack.namespace);
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"data": data})),
    )
    .await?;
    Ok(())
}

/// A TokenReview of `token` on the real API server: (username, extra).
async fn review(
    stack: &Stack,
    token: &str,
    audiences: Option<Vec<String>>,
) -> Result<(String, BTreeMap<String, Vec<String>>)> {
    let api: Api<TokenReview> = Api::all(stack.client().await?);
    let review = TokenReview {
        spec: TokenReviewSpec {
            token: token.trim().to_owned(),
            audiences,
        },
        ..TokenReview::default()
    };
    let answer = api.create(&PostParams::default(), &review).await?;
    let status = answer.status.context("a TokenReview has a status")?;
    ensure!(
        status.authenticated == Some(true),
        "token not authenticated: {:?}",
        status.error
    );
    let user = status.user.unwrap_or_default();
    Ok((
        user.username.unwrap_or_default(),
        user.extra.unwrap_or_default(),
    ))
}

/// Waits for an Event on pod `pod` with `reason` whose message contains `text`.
async fn event_on(stack: &Stack, pod: &str, reason: &str, text: &str) -> Result<()> {
    let events: Api<Event> = Api::namespaced(stack.client().await?, &stack.namespace);
    let selector = format!("involvedObject.name={pod}");
    eventually(&format!("a {reason} event on {pod}"), DELIVERY, || {
        let (events, selector) = (events.clone(), selector.clone());
        async move {
            let list = events
                .list(&ListParams::default().fields(&selector))
                .await
                .map_err(|e| e.to_string())?;
            Ok(list
                .items
                .iter()
                .any(|e| {
                    e.reason.as_deref() == Some(reason)
                        && e.message.as_deref().is_some_and(|m| m.contains(text))
                })
                .then_some(()))
        }
    })
    .await
    .map_err(|e| anyhow!("{e}\n{}", stack.logs()))
}

#[tokio::test(flavor = "multi_thread")]
async fn configmap_secret_labels_and_tokens_reach_the_running_container() -> Result<()> {
    let options = StackOptions::fast(BrokerKind::Embedded).on(ClusterBackend::ControlPlane);
    let mut stack = Stack::start(options).await?;
    stack.start_agent(DEVICE, &[], AgentBuild::Host)?;
    wait_node_ready(&stack, DEVICE, "True", Duration::from_secs(60)).await?;
    let client = stack.client().await?;
    let ns = stack.namespace.clone();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let pp = PostParams::default();
    cms.create(
        &pp,
        &serde_json::from_value(
            json!({"metadata": {"name": "app-config"}, "data": {"greeting": "hello-1"}}),
        )?,
    )
    .await?;
    secrets
        .create(
            &pp,
            &serde_json::from_value(
                json!({"metadata": {"name": "app-secret"}, "stringData": {"password": "pw-1"}}),
            )?,
        )
        .await?;
    cms.create(
        &pp,
        &serde_json::from_value(json!({"metadata": {"name": "big"}, "data": {"blob": "small"}}))?,
    )
    .await?;
    // the namespace's default ServiceAccount is made by the controller manager
    eventually("the pods are created", Duration::from_secs(30), || {
        let stack = &stack;
        async move {
            for pod in [reader_pod(), bloated_pod("bloated", 8)] {
                let name = pod.metadata.name.clone().unwrap_or_default();
                let exists = pods(stack).await.map_err(|e| e.to_string())?;
                if exists
                    .get_opt(&name)
                    .await
                    .map_err(|e| e.to_string())?
                    .is_none()
                {
                    create(stack, &pod).await.map_err(|e| e.to_string())?;
                }
            }
            Ok(Some(()))
        }
    })
    .await?;
    let started = wait_pod(
        &stack,
        "reader",
        "reader ready",
        Duration::from_secs(90),
        is_ready,
    )
    .await?;
    wait_pod(
        &stack,
        "bloated",
        "bloated ready",
        Duration::from_secs(90),
        is_ready,
    )
    .await?;
    let first_container = container_id(&started);
    ensure!(exec(&stack, "reader", &["cat", "/etc/config/greeting"])? == "hello-1");
    // the kubelet's layout: ..data and a timestamped version directory
    let listing = exec(&stack, "reader", &["ls", "-a", "/etc/config"])?;
    ensure!(
        listing.lines().any(|l| l == "..data")
            && listing
                .lines()
                .any(|l| l.starts_with("..2") || l.starts_with("..1")),
        "the volume holds ..data and a version directory: {listing}"
    );

    // a ConfigMap change reaches the file; subPath and env keep the old value
    patch_config_map(&stack, "app-config", json!({"greeting": "hello-2"})).await?;
    file_becomes(&stack, "reader", "/etc/config/greeting", "hello-2").await?;
    ensure!(
        exec(&stack, "reader", &["cat", "/etc/greeting-sub"])? == "hello-1",
        "a subPath mount is not updated"
    );
    ensure!(
        exec(&stack, "reader", &["sh", "-c", "echo $GREETING"])?.trim() == "hello-1",
        "env does not change"
    );

    // a Secret likewise
    secrets
        .patch(
            "app-secret",
            &PatchParams::default(),
            &Patch::Merge(json!({"stringData": {"password": "pw-2"}})),
        )
        .await?;
    file_becomes(&stack, "reader", "/etc/secret/password", "pw-2").await?;

    // the labels file follows kubectl label
    stack
        .kubectl
        .run(&["label", "pod", "-n", &ns, "reader", "tier=gold"])?;
    file_becomes(&stack, "reader", "/etc/podinfo/labels", "tier=\"gold\"").await?;

    // the container was never restarted for any of it
    let now = pods(&stack).await?.get("reader").await?;
    ensure!(
        restart_count(&now) == 0 && container_id(&now) == first_container,
        "no restart for content changes: {:?} -> {:?}, restarts {}",
        first_container,
        container_id(&now),
        restart_count(&now)
    );

    // tokens: the default kube-api-access volume and a projected one with an audience
    let token = exec(&stack, "reader", &["cat", &format!("{SA_DIR}/token")])?;
    ensure!(exec(&stack, "reader", &["cat", &format!("{SA_DIR}/namespace")])? == ns);
    let ca = exec(&stack, "reader", &["cat", &format!("{SA_DIR}/ca.crt")])?;
    ensure!(ca.contains("BEGIN CERTIFICATE"), "ca.crt: {ca}");
    let mode = exec(&stack, "reader", &["ls", "-lL", &format!("{SA_DIR}/token")])?;
    ensure!(
        mode.starts_with("-rw-------"),
        "the token file is 0600: {mode}"
    );
    let reader_uid = uid(&now);
    let (user, extra) = review(&stack, &token, None).await?;
    ensure!(
        user == format!("system:serviceaccount:{ns}:default"),
        "user {user}"
    );
    ensure!(
        extra.get("authentication.kubernetes.io/pod-name") == Some(&vec!["reader".to_owned()])
            && extra.get("authentication.kubernetes.io/pod-uid") == Some(&vec![reader_uid.clone()]),
        "the token is bound to the pod: {extra:?}"
    );
    let vault = exec(&stack, "reader", &["cat", "/var/run/secrets/tokens/vault"])?;
    let (user, extra) = review(&stack, &vault, Some(vec![AUDIENCE.to_owned()])).await?;
    ensure!(
        user == format!("system:serviceaccount:{ns}:default")
            && extra.get("authentication.kubernetes.io/pod-uid") == Some(&vec![reader_uid]),
        "audience token: {user} {extra:?}"
    );
    let agent_log = stack.agent(DEVICE)?.log();
    ensure!(
        !stack.gateway.log().contains(token.trim()) && !agent_log.contains(token.trim()),
        "the token is never logged"
    );

    // a ConfigMap grown past one device message: the running pod keeps its spec, with an
    // Event; a new pod mounting it is rejected like the kubelet rejects a pod
    patch_config_map(&stack, "big", json!({"blob": "x".repeat(1_000_000)})).await?;
    event_on(&stack, "bloated", "DesiredSetTooLarge", "not delivered").await?;
    create(&stack, &bloated_pod("bloated-new", 8)).await?;
    let rejected = wait_pod(
        &stack,
        "bloated-new",
        "bloated-new rejected",
        DELIVERY,
        |p| phase(p) == "Failed",
    )
    .await?;
    let reason = rejected.status.as_ref().and_then(|s| s.reason.clone());
    ensure!(
        reason.as_deref() == Some("DesiredSetTooLarge"),
        "reason {reason:?}"
    );
    // other pods are unaffected and still get updates
    patch_config_map(&stack, "app-config", json!({"greeting": "hello-3"})).await?;
    file_becomes(&stack, "reader", "/etc/config/greeting", "hello-3").await?;
    let bloated = pods(&stack).await?.get("bloated").await?;
    ensure!(
        is_ready(&bloated) && restart_count(&bloated) == 0,
        "bloated still runs"
    );

    // a key the running pod mounts is removed: like a kubelet failing a volume update,
    // the pod keeps running with the files it has, and a FailedMount event says why
    patch_config_map(
        &stack,
        "app-config",
        json!({"greeting": null, "other": "x"}),
    )
    .await?;
    event_on(&stack, "reader", "FailedMount", "greeting").await?;
    let reader = pods(&stack).await?.get("reader").await?;
    ensure!(
        is_ready(&reader) && restart_count(&reader) == 0 && phase(&reader) == "Running",
        "reader keeps running: {:?}",
        reader.status
    );
    ensure!(exec(&stack, "reader", &["cat", "/etc/picked/g"])? == "hello-3");
    // a token that cannot be had (its ServiceAccount deleted before the pod reached a
    // device): the pod says so, as the kubelet's "failed to fetch token"
    stack
        .kubectl
        .run(&["create", "serviceaccount", "-n", &ns, "short-lived"])?;
    let mut orphan = pod_manifest(
        "orphan-token",
        &[("kubernetes.io/hostname", DEVICE_2)],
        true,
        "Always",
        "sleep 100000",
    );
    if let Some(spec) = orphan.spec.as_mut() {
        spec.service_account_name = Some("short-lived".into());
    }
    create(&stack, &orphan).await?;
    stack
        .kubectl
        .run(&["delete", "serviceaccount", "-n", &ns, "short-lived"])?;
    stack.start_agent(DEVICE_2, &[], AgentBuild::Host)?;
    wait_node_ready(&stack, DEVICE_2, "True", Duration::from_secs(60)).await?;
    wait_pod(
        &stack,
        "orphan-token",
        "a token error on the pod",
        DELIVERY,
        |p| {
            brief_status(p).contains("CreateContainerConfigError")
                && brief_status(p).contains("failed to fetch token")
        },
    )
    .await?;
    let forbidden = stack.forbidden_calls();
    ensure!(forbidden.is_empty(), "RBAC refused: {forbidden:?}");
    Ok(())
}
