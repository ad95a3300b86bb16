//! Every manifest in `examples/` applied with the real `kubectl apply -f`, with the real
//! `edge-gateway` binary (embedded broker) and four fake devices: two Raspberry Pis
//! (site=lab), a Jetson with one `nvidia.com/gpu`, and a generic amd64. Once against the
//! API emulator (with the PATH kubectl), once against the real control plane (its own
//! kubectl, the gateway under its own ServiceAccount and ClusterRole).
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use edge_hil_tests::fake_device::{FakeDevice, FakeDeviceConfig, FakeDeviceView};
use edge_hil_tests::stack::{Cluster, ClusterBackend};
use edge_protocol::{DeviceId, VolumeSource};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams};

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

fn gateway_bin() -> PathBuf {
    let dir = std::env::var("EDGE_TEST_BIN_DIR").expect(
        "EDGE_TEST_BIN_DIR is not set: run `cargo build -p edge-gateway --bins` and \
         `eval \"$(bash scripts/test-env.sh)\"` (or export EDGE_TEST_BIN_DIR=target/debug)",
    );
    let bin = Path::new(&dir).join("edge-gateway");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p edge-gateway --bins`",
        bin.display()
    );
    bin
}

async fn kubectl(cluster: &Cluster, cache: &Path, args: &[&str]) -> Output {
    let bin = match cluster {
        Cluster::Emulator(_) => PathBuf::from(kubectl_bin()),
        other => other.kubectl_binary(),
    };
    let kubeconfig = cluster.kubeconfig_path();
    let mut c = Command::new(bin);
    c.arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--cache-dir")
        .arg(cache)
        .args(args);
    tokio::task::spawn_blocking(move || c.output().unwrap())
        .await
        .unwrap()
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
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn running(p: &Pod) -> bool {
    p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
}

fn node_of(p: &Pod) -> String {
    p.spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .unwrap_or_default()
}

async fn running_pod(pods: &Api<Pod>, name: &str) -> Pod {
    eventually(30, &format!("pod {name} Running"), || async {
        pods.get_opt(name).await.unwrap().filter(running)
    })
    .await
}

fn pod_on_device<'a>(view: &'a FakeDeviceView, name: &str) -> Option<&'a edge_protocol::PodSpec> {
    view.pods.values().find(|p| p.name == name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_example_applies_and_behaves_on_the_emulator() {
    every_example_applies_and_behaves(ClusterBackend::Emulator).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_example_applies_and_behaves_on_the_control_plane() {
    every_example_applies_and_behaves(ClusterBackend::ControlPlane).await;
}

async fn every_example_applies_and_behaves(backend: ClusterBackend) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let kubectl_ok = kubectl_bin();
    drop(kubectl_ok);
    let bin = gateway_bin();
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("kubectl-cache");
    let api = Cluster::start(backend, &dir.path().join("api"), Duration::from_secs(50))
        .await
        .unwrap();
    let client = api.client().await.unwrap();
    let ready = dir.path().join("ready.json");
    let gateway_log = dir.path().join("gateway.log");
    let log_file = std::fs::File::create(&gateway_log).unwrap();
    let _gateway = tokio::process::Command::new(&bin)
        .stdout(log_file.try_clone().unwrap())
        .stderr(log_file)
        .arg("run")
        .arg("--kubeconfig")
        .arg(api.gateway_kubeconfig_path())
        .arg("--store-dir")
        .arg(dir.path().join("store"))
        .args(["--mqtt-listen", "127.0.0.1:0"])
        .args(["--kubelet-listen", "127.0.0.1:0"])
        .args(["--metrics-listen", "127.0.0.1:0"])
        .args(["--node-address", "127.0.0.1"])
        .args(["--node-lease-renew", "1s"])
        .args(["--log-filter", "warn"])
        .arg("--kubelet-client-ca")
        .arg(api.kubelet_client_ca().unwrap())
        .arg("--ready-file")
        .arg(&ready)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mqtt_port: u16 = eventually(20, "the gateway's ready file", || async {
        let text = std::fs::read_to_string(&ready).ok()?;
        let v: serde_json::Value = serde_json::from_str(&text).ok()?;
        v["mqtt_port"].as_u64().map(|p| p as u16)
    })
    .await;

    let device = |id: &str, tweak: &dyn Fn(&mut FakeDeviceConfig)| {
        let mut cfg = FakeDeviceConfig::new(DeviceId::new(id).unwrap(), "127.0.0.1", mqtt_port);
        tweak(&mut cfg);
        FakeDevice::start(cfg)
    };
    let lab = |c: &mut FakeDeviceConfig| {
        c.labels.insert("site".into(), "lab".into());
    };
    let pi1 = device("pi-1", &lab).await.unwrap();
    let pi2 = device("pi-2", &lab).await.unwrap();
    let jetson = device("jetson-1", &|c| {
        c.board_model = Some("NVIDIA Jetson Orin Nano Developer Kit".into());
        c.capacity.extended.insert("nvidia.com/gpu".into(), 1);
    })
    .await
    .unwrap();
    let amd = device("amd-1", &|c| {
        c.architecture = "amd64".into();
        c.board_model = None;
    })
    .await
    .unwrap();

    // Nodes by board family, as the gateway labels them.
    let nodes: Api<Node> = Api::all(client.clone());
    let families: BTreeMap<String, String> = eventually(30, "four Ready nodes", || async {
        let list = nodes.list(&ListParams::default()).await.unwrap();
        let ready: Vec<&Node> = list
            .items
            .iter()
            .filter(|n| {
                n.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
            })
            .collect();
        (ready.len() == 4).then(|| {
            ready
                .iter()
                .map(|n| {
                    let l = n.metadata.labels.clone().unwrap_or_default();
                    (
                        n.metadata.name.clone().unwrap(),
                        l.get("edge-kube.io/board-family")
                            .cloned()
                            .unwrap_or_default(),
                    )
                })
                .collect()
        })
    })
    .await;
    let family_of = |node: &str| families.get(node).cloned().unwrap_or_default();
    assert_eq!(
        families.values().filter(|f| *f == "raspberry-pi").count(),
        2,
        "{families:?}"
    );
    assert_eq!(
        families.values().filter(|f| *f == "jetson").count(),
        1,
        "{families:?}"
    );
    assert_eq!(
        families.values().filter(|f| *f == "generic").count(),
        1,
        "{families:?}"
    );
    let lab_nodes: Vec<String> = {
        let list = nodes
            .list(&ListParams::default().labels("site=lab"))
            .await
            .unwrap();
        list.items
            .iter()
            .map(|n| n.metadata.name.clone().unwrap())
            .collect()
    };
    assert_eq!(lab_nodes.len(), 2);

    let examples_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&examples_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "no examples in {}",
        examples_dir.display()
    );
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    for file in &files {
        let out = kubectl(&api, &cache, &["apply", "-f", file.to_str().unwrap()]).await;
        assert!(
            out.status.success(),
            "kubectl apply -f {} failed: {}{}",
            file.display(),
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        let fname = file.file_name().unwrap().to_str().unwrap().to_string();
        match fname.as_str() {
            "pod-on-device.yaml" => {
                let p = running_pod(&pods, "hello-edge").await;
                assert!(
                    lab_nodes.contains(&node_of(&p)),
                    "hello-edge on {}",
                    node_of(&p)
                );
            }
            "gpu-pod-jetson.yaml" => {
                let p = running_pod(&pods, "jetson-inference").await;
                assert_eq!(family_of(&node_of(&p)), "jetson");
                assert!(
                    jetson
                        .wait_until(Duration::from_secs(10), |v| {
                            pod_on_device(v, "jetson-inference").is_some()
                        })
                        .await,
                    "jetson-inference reaches the Jetson"
                );
            }
            "daemonset-raspberry-pi.yaml" => {
                let ds_api: Api<DaemonSet> = Api::namespaced(client.clone(), "default");
                let ds = eventually(30, "node-exporter-pi ready on both Pis", || async {
                    let ds = ds_api.get("node-exporter-pi").await.unwrap();
                    let st = ds.status.clone()?;
                    (st.desired_number_scheduled == 2 && st.number_ready == 2).then_some(ds)
                })
                .await;
                assert_eq!(ds.status.as_ref().unwrap().current_number_scheduled, 2);
                let list = pods
                    .list(&ListParams::default().labels("app=node-exporter-pi"))
                    .await
                    .unwrap();
                let mut on: Vec<String> = list.items.iter().map(node_of).collect();
                on.sort();
                assert_eq!(list.items.len(), 2, "exactly one pod per Pi: {on:?}");
                assert!(list.items.iter().all(running));
                assert!(on.iter().all(|n| family_of(n) == "raspberry-pi"), "{on:?}");
                on.dedup();
                assert_eq!(on.len(), 2, "one pod per Pi node: {on:?}");
            }
            "deployment-spread.yaml" => {
                let d_api: Api<Deployment> = Api::namespaced(client.clone(), "default");
                eventually(40, "gateway-collector 3 available", || async {
                    let d = d_api.get("gateway-collector").await.unwrap();
                    let st = d.status?;
                    (st.available_replicas == Some(3) && st.updated_replicas == Some(3))
                        .then_some(())
                })
                .await;
                let list = pods
                    .list(&ListParams::default().labels("app=gateway-collector"))
                    .await
                    .unwrap();
                let active: Vec<&Pod> = list
                    .items
                    .iter()
                    .filter(|p| p.metadata.deletion_timestamp.is_none())
                    .collect();
                assert_eq!(active.len(), 3);
                for p in active {
                    assert!(running(p));
                    assert!(lab_nodes.contains(&node_of(p)), "on {}", node_of(p));
                }
            }
            "sensor-pod.yaml" => {
                let p = running_pod(&pods, "temperature-sensor").await;
                assert_eq!(family_of(&node_of(&p)), "raspberry-pi");
                let dev = if node_of(&p) == pi1.id().as_str() {
                    &pi1
                } else {
                    &pi2
                };
                assert!(
                    dev.wait_until(Duration::from_secs(10), |v| {
                        pod_on_device(v, "temperature-sensor").is_some()
                    })
                    .await,
                    "temperature-sensor reaches its device"
                );
                let view = dev.view();
                let spec = pod_on_device(&view, "temperature-sensor").unwrap();
                let c = &spec.containers[0];
                assert!(
                    c.devices.iter().any(|d| d.host_path == "/dev/gpiomem"),
                    "device mapping for /dev/gpiomem: {:?}",
                    c.devices
                );
                assert!(
                    spec.volumes.iter().any(|v| matches!(&v.source,
                        VolumeSource::HostPath { path, .. } if path == "/sys/class/thermal")),
                    "hostPath volume /sys/class/thermal: {:?}",
                    spec.volumes
                );
            }
            "configmap-secret-pod.yaml" => {
                let p = running_pod(&pods, "configured-sensor").await;
                let node = node_of(&p);
                let devs = [&pi1, &pi2, &jetson, &amd];
                let dev = devs
                    .iter()
                    .find(|d| d.id().as_str() == node)
                    .unwrap_or_else(|| panic!("configured-sensor on unknown node {node}"));
                assert!(
                    dev.wait_until(Duration::from_secs(10), |v| {
                        pod_on_device(v, "configured-sensor").is_some()
                    })
                    .await,
                    "configured-sensor reaches its device"
                );
                let view = dev.view();
                let spec = pod_on_device(&view, "configured-sensor").unwrap();
                let env: BTreeMap<&str, &str> = spec.containers[0]
                    .env
                    .iter()
                    .map(|e| (e.name.as_str(), e.value.as_str()))
                    .collect();
                assert_eq!(env.get("SAMPLE_RATE"), Some(&"5"));
                assert_eq!(env.get("API_TOKEN"), Some(&"s3cret-token"));
                let files = spec
                    .volumes
                    .iter()
                    .find(|v| v.name == "config")
                    .expect("config volume");
                match &files.source {
                    VolumeSource::Files { files, .. } => {
                        assert!(files.iter().any(|f| f.path == "sensor.conf"), "{files:?}")
                    }
                    other => panic!("config volume is {other:?}"),
                }
            }
            other => panic!("examples/{other} has no assertions here: add them"),
        }
    }
    // kubectl get shows the workloads.
    let out = kubectl(
        &api,
        &cache,
        &["get", "deployments,daemonsets,replicasets,pods"],
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop((pi1, pi2, jetson, amd));
    // On the control plane the gateway runs under exactly its shipped ClusterRole.
    let log = std::fs::read_to_string(&gateway_log).unwrap();
    let forbidden = edge_hil_tests::stack::rbac_refusals(&log);
    assert!(
        forbidden.is_empty(),
        "the API server refused gateway calls (403):\n{}",
        forbidden.join("\n")
    );
}
