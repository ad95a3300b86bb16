//! The sharded write gate around the workers: a write under way is abandoned at the
//! replica's renew deadline, not before if the replica renewed meanwhile, and a Node
//! registration that was not made is reported so that the fleet registers again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use edge_protocol::DeviceId;
use k8s_openapi::api::core::v1::NodeStatus;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{KubeFeedback, KubeOp, spawn_workers};
use crate::metrics::Metrics;
use crate::node_object::fixtures::{report, settings};
use crate::sharding::ShardGate;

/// A kube client whose API server accepts connections and never answers.
async fn unanswering_client() -> kube::Client {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = listener.accept().await {
            held.push(conn);
        }
    });
    let url = format!("http://127.0.0.1:{port}").parse().expect("url");
    let mut config = kube::Config::new(url);
    config.read_timeout = Some(Duration::from_secs(60));
    kube::Client::try_from(config).expect("client")
}

fn upsert(device: &DeviceId) -> KubeOp {
    KubeOp::UpsertNode {
        device: device.clone(),
        report: Box::new(report()),
        previous_labels: None,
        status: Box::new(NodeStatus::default()),
        now: Time(jiff::Timestamp::now()),
    }
}

struct Writer {
    gate: ShardGate,
    ops: super::KubeOps,
    feedback: mpsc::UnboundedReceiver<KubeFeedback>,
    _token: tokio_util::sync::DropGuard,
}

async fn writer(device: &DeviceId, deadline: Instant) -> Writer {
    let (gate, _heard) = ShardGate::sharded();
    gate.publish(Some(deadline), &[device.clone()].into());
    let (tx, feedback) = mpsc::unbounded_channel();
    let token = CancellationToken::new();
    let ops = spawn_workers(
        1,
        gate.clone(),
        unanswering_client().await,
        Arc::new(Metrics::new()),
        settings(),
        tx,
        token.clone(),
    );
    Writer {
        gate,
        ops,
        feedback,
        _token: token.drop_guard(),
    }
}

async fn node_failed_within(w: &mut Writer, wait: Duration) -> bool {
    matches!(
        tokio::time::timeout(wait, w.feedback.recv()).await,
        Ok(Some(KubeFeedback::NodeFailed { .. }))
    )
}

#[tokio::test]
async fn a_registration_under_way_at_the_renew_deadline_is_abandoned_and_reported() {
    let device = DeviceId::new("gate-pi-1").expect("id");
    let mut w = writer(&device, Instant::now() + Duration::from_millis(300)).await;
    w.ops.send(upsert(&device));
    assert!(
        node_failed_within(&mut w, Duration::from_secs(5)).await,
        "the fleet must hear the Node was not registered"
    );
}

#[tokio::test]
async fn a_renewal_moves_the_deadline_of_a_write_under_way() {
    let device = DeviceId::new("gate-pi-2").expect("id");
    let start = Instant::now();
    let mut w = writer(&device, start + Duration::from_millis(300)).await;
    w.ops.send(upsert(&device));
    tokio::time::sleep(Duration::from_millis(100)).await;
    // renewed: writes may go on until 1.5 s
    w.gate.publish(
        Some(start + Duration::from_millis(1_500)),
        &[device.clone()].into(),
    );
    assert!(
        !node_failed_within(&mut w, Duration::from_millis(1_000)).await,
        "abandoned at the old deadline"
    );
    assert!(node_failed_within(&mut w, Duration::from_secs(5)).await);
}

#[tokio::test]
async fn a_registration_skipped_while_fenced_is_reported() {
    let device = DeviceId::new("gate-pi-3").expect("id");
    let mut w = writer(&device, Instant::now()).await;
    w.ops.send(upsert(&device));
    assert!(node_failed_within(&mut w, Duration::from_secs(5)).await);
}
