//! The embedded broker's measured limit, at small scale: with
//! `--embedded-broker-device-limit 3` the real gateway stays quiet while 3 fake devices
//! are online, warns (log and `edge_gateway_embedded_broker_over_limit 1`) once a fourth
//! is online, and says it is back under once two of them are gone. At full scale the
//! limit is `embedded_broker::capacity::MEASURED_DEVICE_LIMIT` (docs/benchmarks.md).
//!
//! Device ids are `eblimit-<run>-<k>`, unique per run.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use edge_hil_tests::fake_device::{FakeDevice, FakeDeviceConfig};
use edge_hil_tests::scenario::{run_dir, wait_for};
use edge_hil_tests::stack::{Cluster, ClusterBackend, Gateway, GatewayOptions};
use edge_protocol::DeviceId;

const WARNING: &str =
    "more devices are online on the embedded MQTT broker than it was measured to carry";
const BACK_UNDER: &str = "back under its measured limit";

fn metric(gateway: &Gateway, name: &str) -> Option<f64> {
    let out = std::process::Command::new("curl")
        .args(["-sf", &gateway.metrics_url()])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_warns_past_the_embedded_brokers_limit() -> Result<()> {
    let (dir, run) = run_dir("edge-eblimit-")?;
    let cluster = Cluster::start(
        ClusterBackend::Emulator,
        dir.path(),
        Duration::from_secs(30),
    )
    .await?;
    let gateway = Gateway::start(
        GatewayOptions {
            kubeconfig: cluster.gateway_kubeconfig_path().to_owned(),
            store_dir: dir.path().join("gateway-store"),
            broker_url: None,
            kubelet_client_ca: cluster.kubelet_client_ca().map(ToOwned::to_owned),
            node_address: "127.0.0.1".to_owned(),
            device_timeout: Duration::from_secs(5),
            node_lease_renew: Duration::from_secs(2),
            extra_args: vec!["--embedded-broker-device-limit".to_owned(), "3".to_owned()],
        },
        dir.path(),
    )?;
    let port = gateway
        .ready()
        .mqtt_port
        .context("no embedded broker port")?;
    let online = |g: &Gateway| metric(g, "edge_gateway_devices_online").unwrap_or(0.0);
    ensure!(
        metric(&gateway, "edge_gateway_embedded_broker_device_limit") == Some(3.0),
        "the limit is not exported"
    );

    let mut fakes = Vec::new();
    for k in 0..3 {
        let id = DeviceId::new(format!("eblimit-{run}-{k}"))?;
        fakes.push(FakeDevice::start(FakeDeviceConfig::new(id, "127.0.0.1", port)).await?);
    }
    wait_for("3 devices online", Duration::from_secs(60), || {
        online(&gateway) >= 3.0
    })
    .await
    .with_context(|| gateway.log())?;
    // Two checks (5 s apart) at the limit: no warning.
    tokio::time::sleep(Duration::from_secs(11)).await;
    ensure!(
        !gateway.log().contains(WARNING),
        "warned at the limit, not past it:\n{}",
        gateway.log()
    );
    ensure!(metric(&gateway, "edge_gateway_embedded_broker_over_limit") == Some(0.0));

    let id = DeviceId::new(format!("eblimit-{run}-3"))?;
    fakes.push(FakeDevice::start(FakeDeviceConfig::new(id, "127.0.0.1", port)).await?);
    wait_for(
        "the warning past the limit",
        Duration::from_secs(60),
        || {
            gateway.log().contains(WARNING)
                && metric(&gateway, "edge_gateway_embedded_broker_over_limit") == Some(1.0)
        },
    )
    .await
    .with_context(|| gateway.log())?;
    ensure!(
        gateway.log().matches(WARNING).count() == 1,
        "warned more than once for one crossing"
    );

    // Two devices go (their sessions end; the gateway's device timeout is 5 s).
    fakes.truncate(2);
    wait_for("back under the limit", Duration::from_secs(60), || {
        gateway.log().contains(BACK_UNDER)
            && metric(&gateway, "edge_gateway_embedded_broker_over_limit") == Some(0.0)
    })
    .await
    .with_context(|| gateway.log())?;
    drop(fakes);
    Ok(())
}
