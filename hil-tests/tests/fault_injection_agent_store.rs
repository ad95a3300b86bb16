//! The agent acknowledges a desired set only once it is saved (issue 11, defect 12).
//!
//! A real agent (Podman for its runtime ping) behind a [`FaultProxy`] in front of a real
//! Mosquitto; a test client plays the gateway. The agent's store cannot save the
//! desired set (its temporary file's path is taken by a directory, which fails even for
//! root); the proxy shows the agent sends no PUBACK for it and no report applies it.
//! Once the directory goes, the agent's retry saves it, applies it and acknowledges
//! the same delivery on the same connection.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use anyhow::{Result, bail, ensure};
use edge_hil_tests::fault_proxy::{Direction, FaultProxy, PacketKind};
use edge_hil_tests::stack::{Agent, AgentBuild, AgentOptions, Mosquitto};
use edge_protocol::{DesiredSet, Message};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::sync::mpsc;

const DEVICE: &str = "store-fail-1";

/// A client standing in for the gateway: forwards every `up/` message it receives.
async fn gateway_stand_in(port: u16) -> Result<(AsyncClient, mpsc::UnboundedReceiver<Message>)> {
    let mut opts = MqttOptions::new("store-fail-gateway", "127.0.0.1", port);
    opts.set_keep_alive(Duration::from_secs(10));
    opts.set_max_packet_size(16 << 20, 16 << 20);
    let (client, mut eventloop) = AsyncClient::new(opts, 100);
    client
        .subscribe(format!("edge/v1/{DEVICE}/up/#"), QoS::AtLeastOnce)
        .await?;
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    if let Ok(m) = Message::decode(&p.payload) {
                        let _ = tx.send(m);
                    }
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    });
    Ok((client, rx))
}

/// Waits for a message matching `f`.
async fn wait_message(
    rx: &mut mpsc::UnboundedReceiver<Message>,
    timeout: Duration,
    what: &str,
    mut f: impl FnMut(&Message) -> bool,
) -> Result<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(m)) if f(&m) => return Ok(()),
            Ok(Some(_)) => {}
            _ => bail!("{what}: not within {} s", timeout.as_secs()),
        }
    }
}

fn applies(m: &Message, generation: u64) -> bool {
    matches!(m, Message::PodStatusReport(r) if r.observed_generation == generation)
}

/// (connection, packet id) of the desired set the proxy forwarded to the agent.
fn desired_delivery(proxy: &FaultProxy) -> Option<(u64, u16)> {
    proxy.seen().into_iter().find_map(|p| {
        (p.direction == Direction::ToClient
            && p.kind == PacketKind::Publish
            && p.topic.as_deref() == Some(&format!("edge/v1/{DEVICE}/down/desired")))
        .then_some((p.connection, p.packet_id?))
    })
}

fn acknowledged(proxy: &FaultProxy, (connection, pkid): (u64, u16)) -> bool {
    proxy.seen().iter().any(|p| {
        p.direction == Direction::ToBroker
            && p.kind == PacketKind::PubAck
            && p.connection == connection
            && p.packet_id == Some(pkid)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_desired_set_that_cannot_be_saved_is_not_acknowledged_until_it_is() -> Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("edge-store-fail-")
        .tempdir()?;
    let broker = Mosquitto::start(&dir.path().join("mosquitto"))?;
    let proxy = FaultProxy::start(([127, 0, 0, 1], broker.port()).into()).await?;
    let (gateway, mut up) = gateway_stand_in(broker.port()).await?;
    // Saving writes store/desired.tmp first: a directory there makes every save fail.
    let blocker = dir.path().join(format!("agent-{DEVICE}/store/desired.tmp"));
    std::fs::create_dir_all(&blocker)?;
    let agent = Agent::start(
        AgentOptions {
            device_id: DEVICE.to_owned(),
            broker_url: proxy.url(),
            labels: Vec::new(),
            build: AgentBuild::Host,
            heartbeat_interval: Duration::from_secs(1),
            extra_args: Vec::new(),
        },
        dir.path(),
    )?;
    wait_message(&mut up, Duration::from_secs(60), "the agent's hello", |m| {
        matches!(m, Message::NodeReport(_))
    })
    .await
    .map_err(|e| e.context(agent.log()))?;

    let set = Message::from(DesiredSet {
        generation: 1,
        pods: vec![],
    })
    .encode()?;
    gateway
        .publish(
            format!("edge/v1/{DEVICE}/down/desired"),
            QoS::AtLeastOnce,
            false,
            set,
        )
        .await?;
    let deadline = Instant::now() + Duration::from_secs(10);
    let delivery = loop {
        if let Some(d) = desired_delivery(&proxy) {
            break d;
        }
        ensure!(
            Instant::now() < deadline,
            "the desired set never reached the agent"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // Three sync intervals (2 s each): every retry fails.
    let unsaved = wait_message(
        &mut up,
        Duration::from_secs(6),
        "a report of generation 1",
        |m| applies(m, 1),
    )
    .await;
    ensure!(
        unsaved.is_err(),
        "the agent applied a desired set it could not save"
    );
    ensure!(
        !acknowledged(&proxy, delivery),
        "the agent acknowledged a desired set it could not save\n{}",
        agent.log()
    );
    ensure!(
        agent.log().contains("cannot save the desired set"),
        "the failure is not in the log:\n{}",
        agent.log()
    );

    std::fs::remove_dir(&blocker)?;
    wait_message(
        &mut up,
        Duration::from_secs(15),
        "generation 1 applied after the retry",
        |m| applies(m, 1),
    )
    .await
    .map_err(|e| e.context(agent.log()))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !acknowledged(&proxy, delivery) {
        ensure!(
            Instant::now() < deadline,
            "the saved desired set was never acknowledged\n{}",
            agent.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ensure!(
        proxy.stats().connections == 1,
        "the connection must have stayed up"
    );
    let saved = std::fs::read_to_string(
        dir.path()
            .join(format!("agent-{DEVICE}/store/desired.json")),
    )?;
    ensure!(saved.contains("\"generation\":1"), "{saved}");
    Ok(())
}
