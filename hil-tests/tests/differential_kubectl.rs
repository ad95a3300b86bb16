//! The differential check: one scripted kubectl session (apply, get -o json/yaml, patch,
//! scale, selectors, describe, events, logs, get -w, delete, errors) against the API
//! server emulator and against the real control plane v1.37.2, with the control plane's
//! kubectl for both. The outputs are compared field by field after normalization
//! (`edge_hil_tests::differential`); every difference must be a known one
//! (`KNOWN_DIFFERENCES`, listed in hil-tests/README.md), and every known one must still
//! occur.

#[path = "differential_kubectl/fixtures.rs"]
mod fixtures;
#[path = "differential_kubectl/session.rs"]
mod session;

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use edge_hil_tests::apiserver::{ApiServer, ApiServerConfig};
use edge_hil_tests::controlplane::{ControlPlane, ControlPlaneConfig};
use edge_hil_tests::differential::{
    self, Format, KNOWN_DIFFERENCES, Transcript, compare_transcripts,
};
use serde_json::Value;

use fixtures::{
    APP, BAD, LEASE, SAR_KUBELET_CLIENT, SAR_STRANGER, WATCHED, fake_kubelet, node_json, short_csr,
};
use session::{Session, Watch};

const NS: &str = "diff";
const NODE: &str = "diff-node-1";
/// Node lease grace on both sides: long enough that the node stays Ready throughout.
const NODE_GRACE: Duration = Duration::from_secs(600);

fn count_reason(events: &Value, reason: &str) -> usize {
    events["items"]
        .as_array()
        .map_or(0, |a| a.iter().filter(|e| e["reason"] == reason).count())
}

fn items(v: &Value) -> Vec<Value> {
    v["items"].as_array().cloned().unwrap_or_default()
}

/// A deployment whose controller has caught up with `replicas` unavailable replicas.
fn deployment_settled(d: &Value, replicas: i64) -> bool {
    let st = &d["status"];
    st["observedGeneration"] == d["metadata"]["generation"]
        && st["replicas"] == replicas
        && st["updatedReplicas"] == replicas
        && st["unavailableReplicas"] == replicas
        && st["conditions"].as_array().is_some_and(|c| {
            c.iter()
                .any(|c| c["type"] == "Progressing" && c["reason"] == "ReplicaSetUpdated")
        })
}

fn replicasets_settled(v: &Value, replicas: i64) -> bool {
    let rs = items(v);
    rs.len() == 1
        && rs[0]["status"]["observedGeneration"] == rs[0]["metadata"]["generation"]
        && rs[0]["status"]["replicas"] == replicas
        && rs[0]["status"]["fullyLabeledReplicas"] == replicas
}

fn all_bound(v: &Value, n: usize) -> bool {
    let pods = items(v);
    pods.len() == n && pods.iter().all(|p| p["spec"]["nodeName"] == NODE)
}

/// Waits for the deployment, its ReplicaSet, pods and events after a change of replicas.
async fn settle_workloads(s: &Session, replicas: i64, scale_events: usize) {
    s.settle(
        "the deployment status",
        &["get", "deployment", "web"],
        |d| deployment_settled(d, replicas),
    )
    .await;
    s.settle("the ReplicaSet status", &["get", "rs"], |v| {
        replicasets_settled(v, replicas)
    })
    .await;
    let pods = replicas as usize + 1;
    s.settle("the pods bound", &["get", "pods"], |v| all_bound(v, pods))
        .await;
    s.settle("the events", &["get", "events"], |v| {
        count_reason(v, "Scheduled") == pods
            && count_reason(v, "SuccessfulCreate") == replicas as usize
            && count_reason(v, "ScalingReplicaSet") == scale_events
    })
    .await;
}

/// The scripted session; the same for both servers.
async fn script(s: &mut Session, files: &Path) -> Result<()> {
    let f = |name: &str| files.join(name).display().to_string();
    let (node, lease, app, bad, watched) = (
        f("node.json"),
        f("lease.yaml"),
        f("app.yaml"),
        f("bad.yaml"),
        f("watched-2.yaml"),
    );

    // Create.
    s.text(&["create", "namespace", NS]).await?;
    s.text(&["create", "-f", &node]).await?;
    s.text(&["apply", "-f", &lease, "-n", "kube-node-lease"])
        .await?;
    s.text(&["apply", "-f", &app]).await?;
    settle_workloads(s, 2, 1).await;
    s.settle("the node controllers", &["get", "node", NODE], |n| {
        n["metadata"]["labels"]["beta.kubernetes.io/arch"].is_string()
            && n["metadata"]["annotations"]["node.alpha.kubernetes.io/ttl"].is_string()
    })
    .await;
    let node_events = format!("involvedObject.name={NODE}");
    let node_events_args = [
        "get",
        "events",
        "-n",
        "default",
        "--field-selector",
        &node_events,
    ];
    s.settle("the RegisteredNode event", &node_events_args, |v| {
        count_reason(v, "RegisteredNode") == 1
    })
    .await;

    // Read back.
    s.json(&["get", "node", NODE]).await?;
    s.step(
        Format::Yaml,
        &["get", "lease", NODE, "-n", "kube-node-lease", "-o", "yaml"],
    )
    .await?;
    s.json(&["get", "namespace", NS]).await?;
    s.json(&["get", "pod", "sensor"]).await?;
    s.step(
        Format::Yaml,
        &["get", "configmap", "sensor-config", "-o", "yaml"],
    )
    .await?;
    s.json(&["get", "secret", "sensor-credentials"]).await?;
    s.json(&["get", "serviceaccount", "sensor"]).await?;
    s.json(&["get", "deployment", "web"]).await?;
    s.json(&["get", "replicasets"]).await?;
    s.json(&["get", "pods", "-l", "app=web"]).await?;
    s.json(&["get", "service", "web"]).await?;
    s.text(&["describe", "service", "web"]).await?;
    s.text(&[
        "get",
        "endpointslices",
        "-l",
        "kubernetes.io/service-name=web",
    ])
    .await?;
    s.fails(&[
        "auth",
        "can-i",
        "create",
        "pods",
        "--as=system:serviceaccount:diff:sensor",
    ])
    .await?;

    // RBAC for the kubelet API: the bootstrap role, kubeadm's binding of the API
    // server's kubelet client, and SubjectAccessReviews as the gateway asks them.
    s.json(&["get", "clusterrole", "system:kubelet-api-admin"])
        .await?;
    s.json(&[
        "get",
        "clusterrolebinding",
        "kubeadm:apiserver-kubelet-client",
    ])
    .await?;
    // (--validate=false: kubectl validates create-only kinds client-side with the
    // protobuf OpenAPI v2 document, which the emulator does not serve; the answers are
    // what is compared.)
    for sar in ["sar-kubelet-client.json", "sar-stranger.json"] {
        s.json(&["create", "--validate=false", "-f", &f(sar)])
            .await?;
    }

    // Patch: merge, merge without a change, JSON, strategic.
    s.text(&[
        "patch",
        "configmap",
        "sensor-config",
        "--type",
        "merge",
        "-p",
        r#"{"data":{"interval":"7","mode":"fast"}}"#,
    ])
    .await?;
    s.text(&[
        "patch",
        "configmap",
        "sensor-config",
        "--type",
        "merge",
        "-p",
        r#"{"data":{"interval":"7"}}"#,
    ])
    .await?;
    s.text(&[
        "patch",
        "deployment",
        "web",
        "--type",
        "json",
        "-p",
        r#"[{"op":"add","path":"/metadata/annotations/owner","value":"edge"}]"#,
    ])
    .await?;
    s.text(&[
        "patch",
        "pod",
        "sensor",
        "--type",
        "strategic",
        "-p",
        r#"{"metadata":{"labels":{"tier":"edge"}},"spec":{"containers":[{"name":"main","image":"localhost/busybox:v2"}]}}"#,
    ])
    .await?;
    s.json(&["get", "configmap", "sensor-config"]).await?;
    s.json(&["get", "pod", "sensor"]).await?;
    s.json(&["get", "deployment", "web"]).await?;

    // Errors.
    s.fails(&[
        "patch",
        "configmap",
        "sensor-config",
        "--type",
        "json",
        "-p",
        r#"[{"op":"test","path":"/data/interval","value":"1"}]"#,
    ])
    .await?;
    s.fails(&["create", "configmap", "sensor-config", "--from-literal=a=1"])
        .await?;
    s.fails(&["create", "configmap", "Bad_Name", "--from-literal=a=1"])
        .await?;
    s.fails(&["apply", "-f", &bad]).await?;
    s.fails(&["get", "pods", "--field-selector", "spec.bogus=x"])
        .await?;
    s.fails(&["get", "pods", "-l", "app in (web"]).await?;
    s.fails(&["get", "deployment", "nope"]).await?;
    s.fails(&["create", "token", "sensor", "--duration=1m"])
        .await?;
    s.fails(&["create", "-f", &f("short-csr.yaml")]).await?;

    // Scale.
    s.text(&["scale", "deployment", "web", "--replicas=3"])
        .await?;
    settle_workloads(s, 3, 2).await;
    s.json(&["get", "deployment", "web"]).await?;
    s.json(&["get", "replicasets"]).await?;
    s.json(&["get", "pods", "-l", "app=web"]).await?;

    // Selectors and tables.
    s.text(&["get", "pods", "-l", "app=web"]).await?;
    s.text(&[
        "get",
        "pods",
        "-l",
        "app in (web,sensor),tier!=backend",
        "-o",
        "name",
    ])
    .await?;
    let on_node = format!("spec.nodeName={NODE}");
    s.text(&["get", "pods", "--field-selector", &on_node, "-o", "wide"])
        .await?;
    s.text(&["get", "pods", "--field-selector", "status.phase=Running"])
        .await?;
    s.json(&[
        "get",
        "pods",
        "-l",
        "app=sensor",
        "--field-selector",
        &on_node,
    ])
    .await?;
    s.text(&[
        "get",
        "deployments,replicasets,configmaps,secrets,serviceaccounts",
    ])
    .await?;
    s.text(&["get", "nodes", "-o", "wide"]).await?;

    // Describe, events, logs.
    s.text(&["describe", "node", NODE]).await?;
    s.text(&["describe", "pod", "sensor"]).await?;
    s.text(&["describe", "deployment", "web"]).await?;
    s.text(&["get", "events"]).await?;
    s.json(&["get", "events"]).await?;
    s.json(&node_events_args).await?;
    s.text(&["logs", "sensor"]).await?;
    s.text(&["logs", "sensor", "--tail=2"]).await?;
    s.fails(&["logs", "sensor", "-c", "nope"]).await?;

    // Watch while objects change.
    s.text(&["create", "configmap", "watched", "--from-literal=a=1"])
        .await?;
    s.text(&["label", "configmap", "watched", "watch=yes"])
        .await?;
    let cms = Watch::start(
        s,
        Format::JsonLines,
        &[
            "get",
            "configmaps",
            "-l",
            "watch=yes",
            "-w",
            "--output-watch-events",
            "-o",
            "json",
        ],
    )?;
    let pods = Watch::start(
        s,
        Format::Text,
        &[
            "get",
            "pods",
            "-l",
            "app=sensor",
            "-w",
            "--output-watch-events",
        ],
    )?;
    cms.wait_lines(1).await;
    pods.wait_lines(2).await;
    s.text(&[
        "patch",
        "configmap",
        "watched",
        "--type",
        "merge",
        "-p",
        r#"{"data":{"b":"2"}}"#,
    ])
    .await?;
    s.text(&["apply", "-f", &watched]).await?;
    s.text(&["delete", "configmap", "watched-2"]).await?;
    s.text(&["label", "pod", "sensor", "watched=yes"]).await?;
    cms.wait_lines(4).await;
    pods.wait_lines(3).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    cms.finish(s)?;
    pods.finish(s)?;

    // Delete, and get afterwards.
    s.text(&["delete", "configmap", "sensor-config"]).await?;
    s.fails(&["get", "configmap", "sensor-config"]).await?;
    s.text(&["delete", "pod", "sensor", "--wait=false"]).await?;
    s.text(&["get", "pod", "sensor"]).await?;
    s.json(&["get", "pod", "sensor"]).await?;
    s.text(&["delete", "pod", "sensor", "--grace-period=0", "--force"])
        .await?;
    s.fails(&["get", "pod", "sensor"]).await?;
    s.text(&["delete", "deployment", "web"]).await?;
    s.settle("the garbage collector", &["get", "replicasets,pods"], |v| {
        let all = items(v);
        all.iter()
            .all(|o| o["kind"] == "Pod" && o["metadata"]["deletionTimestamp"].is_string())
    })
    .await;
    s.fails(&["get", "deployment", "web"]).await?;
    s.text(&["get", "replicasets"]).await?;
    s.text(&["get", "pods", "-l", "app=web"]).await?;
    s.text(&["delete", "secret", "sensor-credentials"]).await?;
    s.text(&["delete", "serviceaccount", "sensor"]).await?;
    s.text(&["delete", "service", "web"]).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kubectl_session_matches_the_real_apiserver() -> Result<()> {
    let t0 = Instant::now();
    let dir = tempfile::Builder::new()
        .prefix("edge-differential-")
        .tempdir()?;
    let cp_dir = dir.path().join("controlplane");
    let real = tokio::task::spawn_blocking(move || {
        let mut cfg = ControlPlaneConfig::new(cp_dir);
        cfg.node_monitor_grace_period = Some(NODE_GRACE);
        ControlPlane::start(cfg)
    });
    let mut cfg = ApiServerConfig::new(dir.path().join("emulator"));
    cfg.service_account_token_volumes = true;
    cfg.node_lease_grace = NODE_GRACE;
    let emulator = ApiServer::start(cfg).await?;
    let real = real.await??;
    let port = fake_kubelet(&[emulator.kubelet_client_ca_path(), real.kubelet_client_ca()]).await?;

    let files = dir.path().join("files");
    std::fs::create_dir_all(&files)?;
    std::fs::write(
        files.join("node.json"),
        serde_json::to_string_pretty(&node_json(port))?,
    )?;
    for (name, text) in [
        ("lease.yaml", LEASE),
        ("app.yaml", APP),
        ("bad.yaml", BAD),
        ("short-csr.yaml", &short_csr()?),
        ("watched-2.yaml", WATCHED),
        ("sar-kubelet-client.json", SAR_KUBELET_CLIENT),
        ("sar-stranger.json", SAR_STRANGER),
    ] {
        std::fs::write(files.join(name), text)?;
    }
    let session = |server: &str, kubeconfig: &Path| Session {
        kubectl: real.binaries.kubectl.clone(),
        kubeconfig: kubeconfig.to_path_buf(),
        cache: dir.path().join(format!("{server}-cache")),
        transcript: Transcript::new(server),
        surprises: Vec::new(),
    };
    let mut on_emulator = session("emulator", emulator.kubeconfig_path());
    let mut on_real = session("real", real.admin_kubeconfig());
    let t_session = Instant::now();
    let (a, b) = tokio::join!(
        script(&mut on_emulator, &files),
        script(&mut on_real, &files)
    );
    a.context("the session against the emulator")?;
    b.context("the session against kube-apiserver")?;
    let session_secs = t_session.elapsed().as_secs_f64();
    for t in [&on_emulator.transcript, &on_real.transcript] {
        std::fs::write(
            dir.path().join(format!("{}.transcript", t.server)),
            t.render(),
        )?;
    }
    // The real cluster is the reference: there, every step must end as the script says.
    if !on_real.surprises.is_empty() {
        bail!(
            "the session went wrong against kube-apiserver:\n{}\ntranscripts kept in {}",
            on_real.surprises.join("\n"),
            dir.keep().display()
        );
    }
    let diffs = compare_transcripts(&on_emulator.transcript, &on_real.transcript)?;
    let verdict = differential::check(&diffs, KNOWN_DIFFERENCES);
    eprintln!(
        "differential check: {} steps, {} differences ({} known), session {session_secs:.1} s, \
         total {:.1} s",
        on_real.transcript.steps.len(),
        diffs.len(),
        verdict.explained.len(),
        t0.elapsed().as_secs_f64()
    );
    for (d, k) in &verdict.explained {
        eprintln!("  known ({}): {d}", k.what);
    }
    if !verdict.passed() {
        panic!(
            "{}\ntranscripts kept in {}",
            verdict.report(),
            dir.keep().display()
        );
    }
    Ok(())
}
