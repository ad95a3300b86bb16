//! The gateway's outbox on a real broker (rumqttd) while its store fails, as on a full
//! disk: desired sets wait (they are only sent once stored), resync requests and log
//! requests keep flowing, readiness says why, and the held set goes out once the store
//! works again.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use edge_gateway::embedded_broker;
use edge_gateway::fleet::{Fleet, FleetSettings, Outgoing};
use edge_gateway::kube_writer::KubeOps;
use edge_gateway::metrics::Metrics;
use edge_gateway::mqtt_link::run_outbox;
use edge_gateway::store::Store;
use edge_protocol::{DesiredSet, DeviceId};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

fn fleet(dir: &std::path::Path, outbox: mpsc::UnboundedSender<Outgoing>) -> Arc<Fleet> {
    let (ops, _ops) = KubeOps::detached();
    let (watch, _watch) = mpsc::unbounded_channel();
    Arc::new(Fleet::new(
        FleetSettings::local(dir),
        Store::open(dir).unwrap(),
        Arc::new(Metrics::new()),
        ops,
        outbox,
        watch,
    ))
}

/// A device's MQTT client that reports the topics it receives on its down/ topics.
async fn device(port: u16, id: &str) -> mpsc::UnboundedReceiver<String> {
    let mut opts = MqttOptions::new(id, "127.0.0.1", port);
    opts.set_max_packet_size(16 << 20, 16 << 20);
    let (client, mut events) = AsyncClient::new(opts, 100);
    client
        .subscribe(format!("edge/v1/{id}/down/#"), QoS::AtLeastOnce)
        .await
        .unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    let (subscribed_tx, subscribed_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let _client = client;
        let mut subscribed = Some(subscribed_tx);
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    if let Some(s) = subscribed.take() {
                        let _ = s.send(());
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let _ = tx.send(p.topic);
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(10), subscribed_rx)
        .await
        .expect("the device subscribed")
        .unwrap();
    rx
}

async fn next_topic(rx: &mut mpsc::UnboundedReceiver<String>, within: Duration) -> Option<String> {
    tokio::time::timeout(within, rx.recv()).await.ok().flatten()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_store_holds_desired_sets_while_other_messages_flow() {
    let broker = embedded_broker::start("127.0.0.1:0".parse().unwrap(), false)
        .await
        .unwrap();
    let port = broker.addr.port();
    let dir = tempfile::tempdir().unwrap();
    let (out_tx, out_rx) = mpsc::unbounded_channel();
    let fleet = fleet(dir.path(), out_tx.clone());
    let token = CancellationToken::new();

    let mut opts = MqttOptions::new("edge-gateway-outbox-test", "127.0.0.1", port);
    opts.set_max_packet_size(16 << 20, 16 << 20);
    let (gateway, mut gateway_events) = AsyncClient::new(opts, 100);
    tokio::spawn(async move {
        loop {
            if gateway_events.poll().await.is_err() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });
    tokio::spawn(run_outbox(out_rx, gateway, fleet.clone(), token.clone()));
    let mut received = device(port, "pi-01").await;
    let pi = DeviceId::new("pi-01").unwrap();

    fleet.store().inject_write_failures(true);
    out_tx
        .send(Outgoing::Desired {
            device: pi.clone(),
            set: DesiredSet {
                generation: 1,
                pods: Vec::new(),
            },
        })
        .unwrap();
    out_tx
        .send(Outgoing::StatusResync {
            device: pi.clone(),
            reason: "test".into(),
        })
        .unwrap();
    let first = next_topic(&mut received, Duration::from_secs(10)).await;
    assert_eq!(
        first.as_deref(),
        Some("edge/v1/pi-01/down/resync"),
        "the resync request flows while the store fails"
    );
    assert!(
        next_topic(&mut received, Duration::from_secs(3))
            .await
            .is_none(),
        "no desired set is sent while it cannot be flushed"
    );
    let problems = fleet.health().problems();
    assert!(
        problems.iter().any(|p| p.starts_with("store:")),
        "{problems:?}"
    );

    fleet.store().inject_write_failures(false);
    let held = next_topic(&mut received, Duration::from_secs(10)).await;
    assert_eq!(held.as_deref(), Some("edge/v1/pi-01/down/desired"));
    assert!(fleet.health().store_healthy());
    token.cancel();
}
