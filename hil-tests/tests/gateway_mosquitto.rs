//! The gateway with an external broker (a real Mosquitto), and what a restart of the
//! gateway does: it resumes from its store without re-sending unchanged desired sets.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use edge_gateway::config::{BrokerConfig, GatewayConfig};
use edge_gateway::gateway::{self, Gateway};
use edge_hil_tests::apiserver::{ApiServer, ApiServerConfig};
use edge_hil_tests::fake_device::{FakeDevice, FakeDeviceConfig};
use edge_hil_tests::stack::Mosquitto;
use edge_protocol::DeviceId;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;
use tokio_util::sync::CancellationToken;

fn config(dir: &std::path::Path, api: &ApiServer, mosquitto: &Mosquitto) -> GatewayConfig {
    let mut c = GatewayConfig::local(dir.join("gateway"));
    c.broker = BrokerConfig::External {
        host: "127.0.0.1".to_owned(),
        port: mosquitto.port(),
        failover: Vec::new(),
        tls: false,
        ca: None,
        client_cert: None,
    };
    c.kubelet_client_ca = Some(api.kubelet_client_ca_path().to_owned());
    c.node_lease_renew = Duration::from_millis(500);
    c.device_timeout = Duration::from_secs(3);
    c
}

async fn start(config: GatewayConfig, client: &kube::Client) -> Gateway {
    gateway::start(config, client.clone(), CancellationToken::new())
        .await
        .unwrap()
}

fn pod(name: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "nodeName": "pi-01",
            "containers": [{"name": "app", "image": "localhost/busybox:test"}]
        }
    }))
    .unwrap()
}

async fn running(pods: &Api<Pod>, name: &str) {
    for _ in 0..200 {
        if let Some(p) = pods.get_opt(name).await.unwrap() {
            if p.status.and_then(|s| s.phase).as_deref() == Some("Running") {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("pod {name} did not become Running within 20 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_gateway_resumes_without_resending_unchanged_desired_sets() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let dir = tempfile::tempdir().unwrap();
    let mosquitto = Mosquitto::start(&dir.path().join("mosquitto"))
        .expect("Mosquitto (/usr/sbin/mosquitto) is needed: run scripts/install-test-deps.sh");
    let api = ApiServer::start(ApiServerConfig::new(dir.path().join("api")))
        .await
        .unwrap();
    let client = api.client().await.unwrap();
    let gw = start(config(dir.path(), &api, &mosquitto), &client).await;
    assert_eq!(
        gw.ports.mqtt_port, None,
        "no embedded broker with --broker-url"
    );
    let dev = FakeDevice::start(FakeDeviceConfig::new(
        DeviceId::new("pi-01").unwrap(),
        "127.0.0.1",
        mosquitto.port(),
    ))
    .await
    .unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    // the node must exist before a pod can name it
    for _ in 0..100 {
        if gw.fleet().is_online(&DeviceId::new("pi-01").unwrap()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    pods.create(&PostParams::default(), &pod("a"))
        .await
        .unwrap();
    pods.create(&PostParams::default(), &pod("b"))
        .await
        .unwrap();
    running(&pods, "a").await;
    running(&pods, "b").await;
    assert!(
        dev.wait_until(Duration::from_secs(5), |v| v.pods.len() == 2)
            .await
    );
    let before = dev.view().desired_generations.clone();
    let generation = *before.last().unwrap();

    gw.shutdown().await;
    // while the gateway is down, one pod goes away (force-deleted) and nothing else changes
    pods.delete(
        "b",
        &DeleteParams {
            grace_period_seconds: Some(0),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let gw = start(config(dir.path(), &api, &mosquitto), &client).await;
    // the restored gateway sends exactly one new set (without b), not a storm
    assert!(
        dev.wait_until(Duration::from_secs(15), |v| v.pods.len() == 1)
            .await,
        "pod b removed from the device after the restart: {:?}",
        dev.view()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = dev.view().desired_generations.clone();
    assert_eq!(
        after.len(),
        before.len() + 1,
        "before {before:?}, after {after:?}"
    );
    assert_eq!(*after.last().unwrap(), generation + 1);

    // a restart with nothing changed sends nothing at all
    gw.shutdown().await;
    let gw = start(config(dir.path(), &api, &mosquitto), &client).await;
    for _ in 0..100 {
        if gw.fleet().is_online(&DeviceId::new("pi-01").unwrap()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(gw.fleet().is_online(&DeviceId::new("pi-01").unwrap()));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        dev.view().desired_generations,
        after,
        "unchanged set not re-sent"
    );
    // and it still serves: a new pod runs
    pods.create(&PostParams::default(), &pod("c"))
        .await
        .unwrap();
    running(&pods, "c").await;
    gw.shutdown().await;
}
