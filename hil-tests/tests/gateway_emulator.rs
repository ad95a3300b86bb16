//! The gateway against the Kubernetes API emulator, its embedded MQTT broker (rumqttd)
//! and protocol-level fake devices.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use edge_gateway::config::GatewayConfig;
use edge_gateway::gateway::{self, Gateway};
use edge_hil_tests::apiserver::{ApiServer, ApiServerConfig};
use edge_hil_tests::fake_device::{FakeDevice, FakeDeviceConfig};
use edge_protocol::{DeviceId, EnvVar, VolumeSource};
use futures::{AsyncBufReadExt, TryStreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Node, Pod, Secret};
use kube::api::{Api, DeleteParams, ListParams, LogParams, PostParams};
use serde_json::json;
use tokio_util::sync::CancellationToken;

struct Bed {
    _dir: tempfile::TempDir,
    api: ApiServer,
    client: kube::Client,
    gateway: Gateway,
}

async fn bed_with(lease_grace: Duration, tweak: impl FnOnce(&mut GatewayConfig)) -> Bed {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let dir = tempfile::tempdir().unwrap();
    let mut api_config = ApiServerConfig::new(dir.path().join("api"));
    api_config.node_lease_grace = lease_grace;
    let api = ApiServer::start(api_config).await.unwrap();
    let client = api.client().await.unwrap();
    let mut config = GatewayConfig::local(dir.path().join("gateway"));
    config.kubelet_client_ca = Some(api.kubelet_client_ca_path().to_owned());
    config.node_lease_renew = Duration::from_millis(500);
    config.device_timeout = Duration::from_secs(3);
    config.log_request_timeout = Duration::from_secs(5);
    tweak(&mut config);
    let gateway = gateway::start(config, client.clone(), CancellationToken::new())
        .await
        .unwrap();
    Bed {
        _dir: dir,
        api,
        client,
        gateway,
    }
}

async fn bed() -> Bed {
    bed_with(Duration::from_secs(50), |_| {}).await
}

impl Bed {
    async fn device(&self, id: &str, tweak: impl FnOnce(&mut FakeDeviceConfig)) -> FakeDevice {
        let mut cfg = FakeDeviceConfig::new(
            DeviceId::new(id).unwrap(),
            "127.0.0.1",
            self.gateway.ports.mqtt_port.unwrap(),
        );
        tweak(&mut cfg);
        FakeDevice::start(cfg).await.unwrap()
    }
}

/// Polls `f` until it returns Some, or panics with `what` after `secs`.
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
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn device_pod(name: &str, node: &str, extra: serde_json::Value) -> Pod {
    let mut pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": name}},
        "spec": {
            "nodeSelector": {"kubernetes.io/hostname": node},
            "tolerations": [{"key": "virtual-kubelet.io/provider", "operator": "Exists", "effect": "NoSchedule"}],
            "containers": [{"name": "app", "image": "localhost/busybox:test", "command": ["sleep", "3600"]}]
        }
    });
    if let (Some(spec), Some(extra)) = (pod["spec"].as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            spec.insert(k.clone(), v.clone());
        }
    }
    serde_json::from_value(pod).unwrap()
}

async fn wait_node(client: &kube::Client, name: &str) -> Node {
    let nodes: Api<Node> = Api::all(client.clone());
    eventually(15, &format!("node {name}"), || {
        let nodes = nodes.clone();
        async move { nodes.get_opt(name).await.unwrap() }
    })
    .await
}

async fn wait_pod(
    client: &kube::Client,
    name: &str,
    what: &str,
    pred: impl Fn(&Pod) -> bool,
) -> Pod {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    eventually(20, what, || {
        let pods = pods.clone();
        let pred = &pred;
        async move { pods.get_opt(name).await.unwrap().filter(|p| pred(p)) }
    })
    .await
}

fn phase(p: &Pod) -> Option<&str> {
    p.status.as_ref().and_then(|s| s.phase.as_deref())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_becomes_a_node_with_labels_taint_lease_and_endpoints() {
    let bed = bed().await;
    let mut labels = BTreeMap::new();
    labels.insert("site".to_owned(), "lab".to_owned());
    labels.insert("kubernetes.io/hostname".to_owned(), "spoofed".to_owned());
    labels.insert(
        "node-role.kubernetes.io/control-plane".to_owned(),
        String::new(),
    );
    let _dev = bed
        .device("pi-01", |c| {
            c.labels = labels;
            c.address = "192.168.7.20".to_owned();
        })
        .await;
    let node = wait_node(&bed.client, "pi-01").await;
    let l = node.metadata.labels.clone().unwrap();
    assert_eq!(l["kubernetes.io/hostname"], "pi-01");
    assert_eq!(l["kubernetes.io/arch"], "arm64");
    assert_eq!(l["kubernetes.io/os"], "linux");
    assert_eq!(l["type"], "virtual-kubelet");
    assert_eq!(l["site"], "lab");
    assert_eq!(
        l["node.kubernetes.io/instance-type"],
        "Raspberry-Pi-4-Model-B-Rev-1.4"
    );
    assert!(!l.contains_key("node-role.kubernetes.io/control-plane"));
    let taints = node.spec.clone().unwrap().taints.unwrap();
    assert_eq!(taints[0].key, "virtual-kubelet.io/provider");
    assert_eq!(taints[0].value.as_deref(), Some("edge"));
    assert_eq!(taints[0].effect, "NoSchedule");
    // status is patched separately from creation: wait for it
    let nodes: Api<Node> = Api::all(bed.client.clone());
    let status = eventually(10, "node status", || {
        let nodes = nodes.clone();
        async move {
            let n = nodes.get("pi-01").await.unwrap();
            n.status
                .filter(|s| s.node_info.is_some() && s.conditions.is_some())
        }
    })
    .await;
    assert_eq!(status.capacity.unwrap()["cpu"].0, "4");
    let addr = &status.addresses.unwrap()[0];
    assert_eq!(
        (addr.type_.as_str(), addr.address.as_str()),
        ("InternalIP", "127.0.0.1")
    );
    assert_eq!(
        status
            .daemon_endpoints
            .unwrap()
            .kubelet_endpoint
            .unwrap()
            .port,
        i32::from(bed.gateway.ports.kubelet_port)
    );
    assert_eq!(
        status.node_info.unwrap().container_runtime_version,
        "fake://1.0"
    );
    let ready = status
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(ready.status, "True");
    // the lease is renewed while the device is online
    let leases: Api<Lease> = Api::namespaced(bed.client.clone(), "kube-node-lease");
    let first = eventually(10, "lease", || {
        let leases = leases.clone();
        async move { leases.get_opt("pi-01").await.unwrap() }
    })
    .await;
    let t0 = first.spec.unwrap().renew_time.unwrap();
    eventually(10, "lease renewal", || {
        let leases = leases.clone();
        let t0 = t0.clone();
        async move {
            let l = leases.get("pi-01").await.unwrap();
            l.spec.and_then(|s| s.renew_time).filter(|t| *t > t0)
        }
    })
    .await;
    assert!(
        bed.gateway
            .fleet()
            .metrics()
            .render()
            .contains("edge_gateway_devices_online 1")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_goes_from_pending_to_running_with_the_devices_status() {
    let bed = bed().await;
    let dev = bed
        .device("pi-01", |c| c.address = "192.168.7.20".to_owned())
        .await;
    let other = bed.device("pi-02", |_| {}).await;
    wait_node(&bed.client, "pi-01").await;
    wait_node(&bed.client, "pi-02").await;
    let cms: Api<ConfigMap> = Api::namespaced(bed.client.clone(), "default");
    cms.create(
        &PostParams::default(),
        &serde_json::from_value(
            json!({"metadata": {"name": "cfg"}, "data": {"mode": "fast", "app.conf": "x=1\n"}}),
        )
        .unwrap(),
    )
    .await
    .unwrap();
    let secrets: Api<Secret> = Api::namespaced(bed.client.clone(), "default");
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(
                json!({"metadata": {"name": "creds"}, "stringData": {"password": "hunter2"}}),
            )
            .unwrap(),
        )
        .await
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(bed.client.clone(), "default");
    let pod = device_pod(
        "web",
        "pi-01",
        json!({
            "containers": [{
                "name": "app", "image": "localhost/busybox:test",
                "env": [
                    {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "mode"}}},
                    {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
                    {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}
                ],
                "volumeMounts": [{"name": "conf", "mountPath": "/etc/app"}]
            }],
            "volumes": [{"name": "conf", "configMap": {"name": "cfg"}}]
        }),
    );
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let created = pods.get("web").await.unwrap();
    assert_eq!(phase(&created), Some("Pending"));

    let running = wait_pod(&bed.client, "web", "web Running", |p| {
        phase(p) == Some("Running")
    })
    .await;
    let status = running.status.unwrap();
    assert_eq!(running.spec.unwrap().node_name.as_deref(), Some("pi-01"));
    assert_eq!(status.host_ip.as_deref(), Some("192.168.7.20"));
    assert_eq!(status.pod_ip.as_deref(), Some("192.168.7.20"));
    assert!(status.start_time.is_some());
    let cs = &status.container_statuses.unwrap()[0];
    assert!(cs.ready);
    assert!(cs.state.as_ref().unwrap().running.is_some());
    assert_eq!(
        cs.container_id.as_deref().map(|c| c.starts_with("fake://")),
        Some(true)
    );
    let conds = status.conditions.unwrap();
    for t in ["PodScheduled", "Initialized", "ContainersReady", "Ready"] {
        let c = conds
            .iter()
            .find(|c| c.type_ == t)
            .unwrap_or_else(|| panic!("{t} missing"));
        assert_eq!(c.status, "True", "{t}");
    }

    // the device received the resolved spec; the other device nothing of it
    let view = dev.view();
    let spec = view.pods.values().find(|p| p.name == "web").unwrap();
    let env: Vec<&EnvVar> = spec.containers[0].env.iter().collect();
    let get = |n: &str| env.iter().find(|e| e.name == n).map(|e| e.value.clone());
    assert_eq!(get("MODE").as_deref(), Some("fast"));
    assert_eq!(get("PASSWORD").as_deref(), Some("hunter2"));
    assert_eq!(get("NODE").as_deref(), Some("pi-01"));
    match &spec.volumes[0].source {
        VolumeSource::Files { files, .. } => assert!(files.iter().any(|f| f.path == "app.conf")),
        other => panic!("{other:?}"),
    }
    assert!(
        other.view().pods.is_empty(),
        "secrets only go to the device whose pods use them"
    );

    // events as the kubelet records them
    let events: Api<Event> = Api::namespaced(bed.client.clone(), "default");
    let started = eventually(10, "Started event", || {
        let events = events.clone();
        async move {
            let list = events.list(&ListParams::default()).await.unwrap();
            list.items.into_iter().find(|e| {
                e.reason.as_deref() == Some("Started")
                    && e.involved_object.name.as_deref() == Some("web")
            })
        }
    })
    .await;
    assert_eq!(started.source.unwrap().host.as_deref(), Some("pi-01"));
    assert_eq!(
        started.involved_object.field_path.as_deref(),
        Some("spec.containers{app}")
    );
    let metrics = bed.gateway.fleet().metrics().render();
    assert!(
        metrics.contains("edge_gateway_pods{phase=\"Running\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("edge_gateway_desired_to_running_seconds_count 1"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untranslatable_pod_gets_a_clear_status_and_event() {
    let bed = bed().await;
    let dev = bed.device("pi-01", |_| {}).await;
    wait_node(&bed.client, "pi-01").await;
    let pods: Api<Pod> = Api::namespaced(bed.client.clone(), "default");
    let pod = device_pod(
        "broken",
        "pi-01",
        json!({"containers": [{"name": "app", "image": "x",
            "env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "absent", "key": "k"}}}]}]}),
    );
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let p = wait_pod(&bed.client, "broken", "config error status", |p| {
        p.status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .is_some_and(|c| !c.is_empty())
    })
    .await;
    let waiting = p.status.unwrap().container_statuses.unwrap()[0]
        .state
        .clone()
        .unwrap()
        .waiting
        .unwrap();
    assert_eq!(
        waiting.reason.as_deref(),
        Some("CreateContainerConfigError")
    );
    assert!(waiting.message.unwrap().contains("absent"));
    let events: Api<Event> = Api::namespaced(bed.client.clone(), "default");
    eventually(10, "Failed event", || {
        let events = events.clone();
        async move {
            let list = events.list(&ListParams::default()).await.unwrap();
            list.items.into_iter().find(|e| {
                e.reason.as_deref() == Some("Failed") && e.type_.as_deref() == Some("Warning")
            })
        }
    })
    .await;
    assert!(dev.view().pods.is_empty());
    // fixing the cause lets it run (the gateway retries like the kubelet)
    let secrets: Api<Secret> = Api::namespaced(bed.client.clone(), "default");
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(
                json!({"metadata": {"name": "absent"}, "stringData": {"k": "v"}}),
            )
            .unwrap(),
        )
        .await
        .unwrap();
    wait_pod(&bed.client, "broken", "Running after fix", |p| {
        phase(p) == Some("Running")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_deletion_waits_for_the_device() {
    let bed = bed().await;
    let dev = bed.device("pi-01", |_| {}).await;
    wait_node(&bed.client, "pi-01").await;
    let pods: Api<Pod> = Api::namespaced(bed.client.clone(), "default");
    pods.create(
        &PostParams::default(),
        &device_pod(
            "doomed",
            "pi-01",
            json!({"terminationGracePeriodSeconds": 7}),
        ),
    )
    .await
    .unwrap();
    let p = wait_pod(&bed.client, "doomed", "Running", |p| {
        phase(p) == Some("Running")
    })
    .await;
    let uid = p.metadata.uid.unwrap();
    pods.delete("doomed", &DeleteParams::default())
        .await
        .unwrap();
    eventually(20, "pod deleted after the device confirmed", || {
        let pods = pods.clone();
        async move {
            pods.get_opt("doomed")
                .await
                .unwrap()
                .is_none()
                .then_some(())
        }
    })
    .await;
    let view = dev.view();
    assert!(view.removed.contains(&uid), "device stopped it");
    assert!(!view.pods.contains_key(&uid));
    // the device was told the grace period
    assert!(
        dev.wait_until(Duration::from_secs(5), |v| v.pods.is_empty())
            .await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_logs_stream_from_the_device_through_the_kubelet_api() {
    let bed = bed().await;
    let dev = bed.device("pi-01", |_| {}).await;
    wait_node(&bed.client, "pi-01").await;
    let pods: Api<Pod> = Api::namespaced(bed.client.clone(), "default");
    pods.create(
        &PostParams::default(),
        &device_pod("talker", "pi-01", json!({})),
    )
    .await
    .unwrap();
    wait_pod(&bed.client, "talker", "Running", |p| {
        phase(p) == Some("Running")
    })
    .await;
    dev.set_log("talker", "app", "one\ntwo\nthree\nfour\n");

    // through the emulator's pods/log proxy, which presents its kubelet client cert
    let all = pods
        .logs(
            "talker",
            &LogParams {
                container: Some("app".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(all, "one\ntwo\nthree\nfour\n");
    let tail = pods
        .logs(
            "talker",
            &LogParams {
                container: Some("app".into()),
                tail_lines: Some(2),
                timestamps: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        tail,
        "2024-01-01T00:00:00.000000000Z three\n2024-01-01T00:00:00.000000000Z four\n"
    );
    let limited = pods
        .logs(
            "talker",
            &LogParams {
                limit_bytes: Some(5),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(limited, "one\nt");
    let req = dev.view().log_requests.last().cloned().unwrap();
    assert_eq!(req.limit_bytes, Some(5));
    assert_eq!(req.pod_name, "talker");

    // follow: lines keep coming until the client goes away, then the device is told
    let stream = pods
        .log_stream(
            "talker",
            &LogParams {
                follow: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let mut lines = stream.lines();
    let mut got = Vec::new();
    while got.len() < 6 {
        got.push(lines.try_next().await.unwrap().unwrap());
    }
    assert_eq!(&got[..4], ["one", "two", "three", "four"]);
    assert_eq!(got[4], "follow line 1");
    drop(lines);
    assert!(
        dev.wait_until(Duration::from_secs(10), |v| v.log_cancels >= 1)
            .await,
        "device told to stop following"
    );

    // clear errors: unknown container, previous instance
    let err = pods
        .logs(
            "talker",
            &LogParams {
                container: Some("nope".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("nope"), "{err}");
    let err = pods
        .logs(
            "talker",
            &LogParams {
                previous: true,
                ..Default::default()
            },
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("previous"), "{err}");

    // device offline: a clear error naming the node, as `kubectl logs` shows it
    // (kube-rs clients retry 503s, so this asks kubectl like a user would)
    dev.go_offline().await;
    let kubeconfig = bed.api.kubeconfig_path().to_owned();
    let msg = eventually(20, "offline error from kubectl logs", || {
        let kubeconfig = kubeconfig.clone();
        async move {
            let out = tokio::process::Command::new("kubectl")
                .arg("--kubeconfig")
                .arg(&kubeconfig)
                .args(["logs", "talker", "--request-timeout=10s"])
                .output()
                .await
                .expect("kubectl is needed for this test (see ENVIRONMENT.md)");
            let stderr = String::from_utf8_lossy(&out.stderr).to_string();
            (!out.status.success() && stderr.contains("offline")).then_some(stderr)
        }
    })
    .await;
    assert!(msg.contains("pi-01"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubelet_api_refuses_callers_without_a_client_certificate() {
    let bed = bed().await;
    let port = bed.gateway.ports.kubelet_port;
    // a TLS client that trusts anything and presents no certificate
    let out = tokio::process::Command::new("curl")
        .args(["-sk", "-o", "-", "-w", "\n%{http_code}"])
        .arg(format!("https://127.0.0.1:{port}/pods"))
        .output()
        .await
        .expect("curl is needed for this test (apt-get install curl)");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(text.ends_with("401"), "{text}");
    assert!(text.contains("kubelet-client-ca"), "{text}");
    // /healthz too, as on a kubelet's authenticated port (nodes/healthz or nodes/proxy)
    let out = tokio::process::Command::new("curl")
        .args(["-sk", "-o", "-", "-w", "\n%{http_code}"])
        .arg(format!("https://127.0.0.1:{port}/healthz"))
        .output()
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).ends_with("\n401"));
    let metrics = tokio::process::Command::new("curl")
        .args(["-s"])
        .arg(format!(
            "http://127.0.0.1:{}/metrics",
            bed.gateway.ports.metrics_port
        ))
        .output()
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&metrics.stdout).contains("edge_gateway_devices_online"));
    let _ = &bed.api;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_device_stops_its_lease_and_the_node_becomes_unreachable() {
    let bed = bed_with(Duration::from_secs(2), |_| {}).await;
    let dev = bed
        .device("pi-01", |c| {
            c.labels = BTreeMap::from([
                ("site".to_owned(), "lab".to_owned()),
                ("zone".to_owned(), "a".to_owned()),
            ]);
        })
        .await;
    wait_node(&bed.client, "pi-01").await;
    let nodes: Api<Node> = Api::all(bed.client.clone());
    let ready = |n: &Node| {
        n.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
            .map(|c| c.status.clone())
    };
    eventually(10, "Ready=True", || {
        let nodes = nodes.clone();
        async move {
            (ready(&nodes.get("pi-01").await.unwrap()).as_deref() == Some("True")).then_some(())
        }
    })
    .await;
    dev.kill();
    // device timeout 3 s + lease grace 2 s
    eventually(20, "Ready=Unknown", || {
        let nodes = nodes.clone();
        async move {
            (ready(&nodes.get("pi-01").await.unwrap()).as_deref() == Some("Unknown")).then_some(())
        }
    })
    .await;
    assert!(
        bed.gateway
            .fleet()
            .metrics()
            .render()
            .contains("edge_gateway_devices_online 0")
    );
    // it comes back, asking for other labels: the Node follows
    let _dev = bed
        .device("pi-01", |c| {
            c.labels = BTreeMap::from([("site".to_owned(), "field".to_owned())]);
        })
        .await;
    eventually(15, "Ready=True again", || {
        let nodes = nodes.clone();
        async move {
            (ready(&nodes.get("pi-01").await.unwrap()).as_deref() == Some("True")).then_some(())
        }
    })
    .await;
    // The device's state message may reach the gateway before its hello: Ready can turn
    // True a moment before the hello's labels are patched.
    eventually(15, "the labels of the new hello", || {
        let nodes = nodes.clone();
        async move {
            let labels = nodes.get("pi-01").await.unwrap().metadata.labels.unwrap();
            (labels.get("site").map(String::as_str) == Some("field")).then_some(labels)
        }
    })
    .await;
    let labels = nodes.get("pi-01").await.unwrap().metadata.labels.unwrap();
    assert_eq!(labels.get("site").map(String::as_str), Some("field"));
    assert!(!labels.contains_key("zone"), "{labels:?}");
    assert_eq!(labels["type"], "virtual-kubelet");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_messages_are_counted_and_dropped_while_others_are_served() {
    let bed = bed().await;
    let good = bed.device("pi-01", |_| {}).await;
    let evil = bed.device("evil", |_| {}).await;
    wait_node(&bed.client, "pi-01").await;
    wait_node(&bed.client, "evil").await;
    let pods: Api<Pod> = Api::namespaced(bed.client.clone(), "default");
    pods.create(
        &PostParams::default(),
        &device_pod("victim", "pi-01", json!({})),
    )
    .await
    .unwrap();
    let p = wait_pod(&bed.client, "victim", "Running", |p| {
        phase(p) == Some("Running")
    })
    .await;
    let uid = p.metadata.uid.unwrap();

    // malformed, wrong version, wrong kind on topic, oversized
    evil.publish_raw("edge/v1/evil/up/status", b"not json".to_vec())
        .await
        .unwrap();
    evil.publish_raw(
        "edge/v1/evil/up/status",
        br#"{"protocol":"2.0","kind":"podStatusReport","body":{}}"#.to_vec(),
    )
    .await
    .unwrap();
    evil.publish_raw(
        "edge/v1/evil/up/status",
        br#"{"protocol":"1.0","kind":"heartbeat","body":{}}"#.to_vec(),
    )
    .await
    .unwrap();
    evil.publish_raw("edge/v1/evil/up/status", vec![b' '; 2 * 1024 * 1024])
        .await
        .unwrap();
    // spoofed: a status for pi-01's pod, sent on evil's own topic, claiming it failed
    let spoof = json!({"protocol": "1.0", "kind": "podStatusReport", "body": {
        "sequence": 99, "observedGeneration": 1, "full": false,
        "pods": [{"uid": uid, "namespace": "default", "name": "victim", "phase": "Failed"}]
    }});
    evil.publish_raw(
        "edge/v1/evil/up/status",
        serde_json::to_vec(&spoof).unwrap(),
    )
    .await
    .unwrap();
    // and the same on pi-01's topic from evil's connection (what a broker ACL blocks;
    // the embedded broker has none, so the gateway sees it as pi-01's and it is the
    // broker's job to stop it): not sent here.

    let metrics = bed.gateway.fleet().metrics();
    eventually(10, "rejections counted", || async {
        let text = metrics.render();
        (text.contains("reason=\"malformed\"")
            && text.contains("reason=\"wrong_version\"")
            && text.contains("reason=\"wrong_topic\"")
            && text.contains("reason=\"oversized\""))
        .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let still = pods.get("victim").await.unwrap();
    assert_eq!(
        phase(&still),
        Some("Running"),
        "spoofed status must not change another node's pod"
    );
    // the gateway keeps serving: a new pod on the good device runs
    pods.create(
        &PostParams::default(),
        &device_pod("after", "pi-01", json!({})),
    )
    .await
    .unwrap();
    wait_pod(&bed.client, "after", "Running", |p| {
        phase(p) == Some("Running")
    })
    .await;
    assert_eq!(good.view().pods.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubelet_api_accepts_bearer_tokens_checked_with_token_review() {
    let bed = bed_with(Duration::from_secs(50), |c| {
        c.kubelet_authn.token_webhook = true
    })
    .await;
    let kubeconfig = std::fs::read_to_string(bed.api.kubeconfig_path()).unwrap();
    let token = kubeconfig
        .lines()
        .find_map(|l| l.trim().strip_prefix("token:"))
        .map(|t| t.trim().trim_matches('"').to_owned())
        .expect("the emulator's kubeconfig has a bearer token");
    let port = bed.gateway.ports.kubelet_port;
    let call = |auth: String| async move {
        let out = tokio::process::Command::new("curl")
            .args(["-sk", "-o", "-", "-w", "\n%{http_code}", "-H"])
            .arg(auth)
            .arg(format!("https://127.0.0.1:{port}/pods"))
            .output()
            .await
            .expect("curl is needed for this test (apt-get install curl)");
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let ok = call(format!("Authorization: Bearer {token}")).await;
    assert!(ok.ends_with("200"), "{ok}");
    assert!(ok.contains("\"kind\":\"PodList\""), "{ok}");
    let bad = call("Authorization: Bearer not-a-token".to_owned()).await;
    assert!(bad.ends_with("401"), "{bad}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_and_unlisted_devices_are_refused_at_hello() {
    let bed = bed_with(Duration::from_secs(50), |c| {
        c.allow_devices = vec!["pi-01".to_owned(), "pi-revoked".to_owned()];
        let enrollment = c.store_dir.join("enrollment");
        std::fs::create_dir_all(&enrollment).unwrap();
        std::fs::write(enrollment.join("revoked.txt"), "pi-revoked\n").unwrap();
    })
    .await;
    let _ok = bed.device("pi-01", |_| {}).await;
    let _revoked = bed.device("pi-revoked", |_| {}).await;
    let _stranger = bed.device("stranger", |_| {}).await;
    wait_node(&bed.client, "pi-01").await;
    let metrics = bed.gateway.fleet().metrics();
    eventually(10, "two refusals", || async {
        metrics
            .render()
            .contains("edge_gateway_rejected_messages_total{reason=\"not_admitted\"} 2")
            .then_some(())
    })
    .await;
    let nodes: Api<Node> = Api::all(bed.client.clone());
    assert!(nodes.get_opt("pi-revoked").await.unwrap().is_none());
    assert!(nodes.get_opt("stranger").await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_events_are_aggregated_like_the_kubelet_does() {
    let bed = bed().await;
    let dev = bed.device("pi-01", |_| {}).await;
    wait_node(&bed.client, "pi-01").await;
    let pods: Api<Pod> = Api::namespaced(bed.client.clone(), "default");
    pods.create(
        &PostParams::default(),
        &device_pod("crashy", "pi-01", json!({})),
    )
    .await
    .unwrap();
    let p = wait_pod(&bed.client, "crashy", "Running", |p| {
        phase(p) == Some("Running")
    })
    .await;
    let uid = p.metadata.uid.unwrap();
    let backoff = json!({"protocol": "1.0", "kind": "podEventReport", "body": {"events": [{
        "podUid": uid, "namespace": "default", "podName": "crashy", "container": "app",
        "type": "Warning", "reason": "BackOff",
        "message": "Back-off restarting failed container app", "timestamp": 1_700_000_000_000u64, "count": 1
    }]}});
    for _ in 0..3 {
        dev.publish_raw(
            "edge/v1/pi-01/up/events",
            serde_json::to_vec(&backoff).unwrap(),
        )
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let events: Api<Event> = Api::namespaced(bed.client.clone(), "default");
    let e = eventually(10, "one BackOff event with count 3", || {
        let events = events.clone();
        async move {
            let list = events.list(&ListParams::default()).await.unwrap();
            let backoffs: Vec<Event> = list
                .items
                .into_iter()
                .filter(|e| e.reason.as_deref() == Some("BackOff"))
                .collect();
            (backoffs.len() == 1 && backoffs[0].count == Some(3)).then(|| backoffs[0].clone())
        }
    })
    .await;
    assert_eq!(e.type_.as_deref(), Some("Warning"));
    assert_eq!(
        e.involved_object.field_path.as_deref(),
        Some("spec.containers{app}")
    );
}
