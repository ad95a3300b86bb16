//! Agent updates over MQTT (protocol 1.4) with a real agent under `edge-agent supervise`,
//! a pod on Podman, the gateway and Mosquitto, and a scripted gateway (this test, on the
//! broker) in place of the rollout controller: it sends `agentUpdateOrder`s on
//! `down/agent-update` and answers the agent's `agentUpdateFetch`es with chunks of a
//! binary signed with OpenSSL as docs/deploy.md shows.
//! - a binary whose signature does not verify is downloaded and refused: `failed` with
//!   why, nothing staged, the part file gone;
//! - a good build (the agent's own binary, stripped) is downloaded, staged, swapped in by
//!   the supervisor and committed: the agent reports `committed` on `up/agent-update` and
//!   its node report says `agentVersion` = the signed version, `agentUpdate` = committed;
//!   the pod's container keeps its id and start time through the swap;
//! - ordering the running version again is answered `committed` at once;
//! - a signed build that never reports healthy is staged, rolled back by the supervisor
//!   at its deadline, and the previous agent reports `rolledBack` with the reason (node
//!   report and, when ordered again, `up/agent-update`, without fetching it again).

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, ensure};
use edge_hil_tests::ota_signing::{FleetSigningKey, run};
use edge_hil_tests::scenario::{app_container_identity, sleeping_pod_on, wait_node_ready};
use edge_hil_tests::stack::{AgentBuild, BrokerKind, Stack, StackOptions, binary, eventually};
use edge_protocol::{
    AgentUpdateChunk, AgentUpdateFetch, AgentUpdateOrder, AgentUpdatePhase, AgentUpdateStatus,
    DeviceId, DownChannel, Message, NodeReport, Topic, UpChannel,
};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::sync::mpsc;

const DEVICE: &str = "otam-dev";
const GOOD: &str = "0.9.0-otam";
const BAD: &str = "0.9.0-otam-bad";
const BROKEN: &str = "0.9.1-otam-broken";

/// What the scripted gateway heard from the device.
#[derive(Debug, Default)]
struct Heard {
    statuses: Vec<AgentUpdateStatus>,
    reports: Vec<NodeReport>,
    fetches: u64,
}

/// The gateway's side of agent updates, scripted: serves the chunks of the binaries it
/// knows, records statuses and node reports.
struct ScriptedGateway {
    client: AsyncClient,
    device: DeviceId,
    heard: Arc<Mutex<Heard>>,
    binaries: Arc<Mutex<HashMap<String, Vec<u8>>>>,
}

impl ScriptedGateway {
    async fn start(port: u16, device: &str) -> Result<Self> {
        let device = DeviceId::new(device)?;
        let mut opts = MqttOptions::new("otam-scripted-gateway", "127.0.0.1", port);
        opts.set_max_packet_size(16 << 20, 16 << 20);
        opts.set_keep_alive(Duration::from_secs(10));
        let (client, mut events) = AsyncClient::new(opts, 256);
        for channel in [UpChannel::AgentUpdate, UpChannel::Hello] {
            client
                .subscribe(Topic::up(&device, channel).to_string(), QoS::AtLeastOnce)
                .await?;
        }
        let heard = Arc::new(Mutex::new(Heard::default()));
        let binaries: Arc<Mutex<HashMap<String, Vec<u8>>>> = Arc::default();
        // chunks go out in the order of the fetches, from one task
        let (fetch_tx, mut fetch_rx) = mpsc::unbounded_channel::<AgentUpdateFetch>();
        let (subscribed_tx, subscribed_rx) = tokio::sync::oneshot::channel();
        {
            let heard = heard.clone();
            tokio::spawn(async move {
                let mut subacks = 0;
                let mut subscribed = Some(subscribed_tx);
                loop {
                    match events.poll().await {
                        Ok(Event::Incoming(Packet::SubAck(_))) => {
                            subacks += 1;
                            if subacks == 2
                                && let Some(s) = subscribed.take()
                            {
                                let _ = s.send(());
                            }
                        }
                        Ok(Event::Incoming(Packet::Publish(p))) => {
                            match Message::decode(&p.payload) {
                                Ok(Message::AgentUpdateFetch(f)) => {
                                    heard.lock().unwrap().fetches += 1;
                                    let _ = fetch_tx.send(f);
                                }
                                Ok(Message::AgentUpdateStatus(s)) => {
                                    eprintln!("scripted gateway: status {s:?}");
                                    heard.lock().unwrap().statuses.push(s);
                                }
                                Ok(Message::NodeReport(r)) => heard.lock().unwrap().reports.push(r),
                                other => eprintln!("scripted gateway: {} {other:?}", p.topic),
                            }
                        }
                        Ok(_) => {}
                        Err(e) => {
                            eprintln!("scripted gateway: {e}");
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                    }
                }
            });
        }
        {
            let client = client.clone();
            let binaries = binaries.clone();
            let down = Topic::down(&device, DownChannel::AgentUpdate).to_string();
            tokio::spawn(async move {
                while let Some(f) = fetch_rx.recv().await {
                    let chunk = {
                        let binaries = binaries.lock().unwrap();
                        match binaries.get(&f.version) {
                            Some(bytes) if f.offset < bytes.len() as u64 => {
                                let start = f.offset as usize;
                                let end = (start + f.length as usize).min(bytes.len());
                                AgentUpdateChunk {
                                    version: f.version.clone(),
                                    offset: f.offset,
                                    data: bytes[start..end].to_vec().into(),
                                    error: None,
                                }
                            }
                            _ => AgentUpdateChunk {
                                version: f.version.clone(),
                                offset: f.offset,
                                data: Vec::new().into(),
                                error: Some("no such version or offset".to_owned()),
                            },
                        }
                    };
                    let payload = Message::from(chunk).encode().unwrap();
                    if client
                        .publish(down.clone(), QoS::AtLeastOnce, false, payload)
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
            });
        }
        tokio::time::timeout(Duration::from_secs(20), subscribed_rx)
            .await
            .context("the scripted gateway's SUBACKs")??;
        Ok(Self {
            client,
            device,
            heard,
            binaries,
        })
    }

    /// Serves `bytes` as `version` and orders the device to run it (60 s to be healthy).
    async fn order(&self, version: &str, bytes: Vec<u8>, signature: Vec<u8>) -> Result<()> {
        self.order_with_deadline(version, bytes, signature, 60)
            .await
    }

    async fn order_with_deadline(
        &self,
        version: &str,
        bytes: Vec<u8>,
        signature: Vec<u8>,
        health_deadline_seconds: u32,
    ) -> Result<()> {
        let order = AgentUpdateOrder {
            version: version.to_owned(),
            sha256: sha256_hex(&bytes)?,
            size_bytes: bytes.len() as u64,
            signature: signature.into(),
            health_deadline_seconds,
        };
        self.binaries
            .lock()
            .unwrap()
            .insert(version.to_owned(), bytes);
        self.client
            .publish(
                Topic::down(&self.device, DownChannel::AgentUpdate).to_string(),
                QoS::AtLeastOnce,
                false,
                Message::from(order).encode()?,
            )
            .await?;
        Ok(())
    }

    /// Waits for a status of `version` in `phase` (published after `after` statuses).
    async fn status(
        &self,
        stack: &Stack,
        version: &str,
        phase: AgentUpdatePhase,
        after: usize,
        timeout: Duration,
    ) -> Result<AgentUpdateStatus> {
        let heard = self.heard.clone();
        let version = version.to_owned();
        eventually(&format!("status {phase:?} of {version}"), timeout, || {
            let found = heard
                .lock()
                .unwrap()
                .statuses
                .iter()
                .skip(after)
                .find(|s| s.version == version && s.phase == phase)
                .cloned();
            async move { Ok(found) }
        })
        .await
        .map_err(|e| anyhow!("{e}; heard {:?}\n{}", self.heard_statuses(), stack.logs()))
    }

    /// Waits for a node report satisfying `check`.
    async fn report(
        &self,
        stack: &Stack,
        what: &str,
        check: impl Fn(&NodeReport) -> bool,
    ) -> Result<NodeReport> {
        let heard = self.heard.clone();
        eventually(what, Duration::from_secs(60), || {
            let found = heard
                .lock()
                .unwrap()
                .reports
                .iter()
                .rev()
                .find(|r| check(r))
                .cloned();
            async move { Ok(found) }
        })
        .await
        .map_err(|e| anyhow!("{e}\n{}", stack.logs()))
    }

    fn heard_statuses(&self) -> Vec<(String, AgentUpdatePhase, u64, String)> {
        self.heard
            .lock()
            .unwrap()
            .statuses
            .iter()
            .map(|s| {
                (
                    s.version.clone(),
                    s.phase,
                    s.bytes_received,
                    s.message.clone(),
                )
            })
            .collect()
    }

    fn statuses_heard(&self) -> usize {
        self.heard.lock().unwrap().statuses.len()
    }
}

/// The lowercase hex SHA-256 of `bytes` (`sha256sum`).
fn sha256_hex(bytes: &[u8]) -> Result<String> {
    let file = tempfile::NamedTempFile::new()?;
    std::fs::write(file.path(), bytes)?;
    let out = run(Command::new("sha256sum").arg(file.path()))?;
    Ok(out
        .split_whitespace()
        .next()
        .context("sha256sum output")?
        .to_owned())
}

/// The raw signature of `bytes` as `version`, made with OpenSSL as docs/deploy.md shows.
fn sign(key: &FleetSigningKey, dir: &Path, bytes: &[u8], version: &str) -> Result<Vec<u8>> {
    let binary = dir.join(format!("{version}.bin"));
    std::fs::write(&binary, bytes)?;
    Ok(std::fs::read(key.sign(&binary, version)?)?)
}

fn ota_state(ota_dir: &Path) -> Result<serde_json::Value> {
    let out = run(Command::new(binary("edge-agent")?)
        .args(["ota", "status", "--ota-dir"])
        .arg(ota_dir))?;
    Ok(serde_json::from_str(&out)?)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_update_ordered_over_mqtt_is_downloaded_verified_swapped_and_committed() -> Result<()> {
    let keys = tempfile::tempdir()?;
    let key = FleetSigningKey::generate(keys.path())?;
    let public = key.public.clone();
    let mut options = StackOptions::fast(BrokerKind::Mosquitto);
    options.agent_args = vec!["--ota-public-key".to_owned(), public.display().to_string()];
    let mut stack = Stack::start(options).await?;
    let port = stack
        .mosquitto
        .as_ref()
        .map(|m| m.port())
        .context("a Mosquitto stack")?;
    let gateway = ScriptedGateway::start(port, DEVICE).await?;
    stack.start_agent(DEVICE, &[], AgentBuild::HostSupervised)?;
    wait_node_ready(&stack, DEVICE, "True", Duration::from_secs(60)).await?;
    let ota_dir = stack.agent(DEVICE)?.state_dir().join("ota");
    let first = gateway
        .report(&stack, "a node report that can update", |r| {
            r.capabilities.agent_update
        })
        .await?;
    ensure!(
        first.agent_version != GOOD && first.agent_update.is_none(),
        "before any update: {first:?}"
    );

    let (pod_uid, before) = sleeping_pod_on(&stack, DEVICE).await?;

    // a binary whose signature is another binary's: downloaded, refused, nothing staged
    let bad = b"#!/bin/sh\nexec sleep 100000\n".to_vec();
    let other_sig = sign(&key, keys.path(), b"another binary", BAD)?;
    gateway.order(BAD, bad, other_sig).await?;
    let failed = gateway
        .status(
            &stack,
            BAD,
            AgentUpdatePhase::Failed,
            0,
            Duration::from_secs(60),
        )
        .await?;
    ensure!(
        failed.message.contains("does not verify"),
        "failed for another reason: {failed:?}"
    );
    ensure!(
        !ota_dir.join("bin/a").exists(),
        "a refused binary reached a slot"
    );
    ensure!(
        !ota_dir.join(format!("incoming/{BAD}.part")).exists(),
        "the refused download is still there"
    );
    ensure!(ota_state(&ota_dir)?["trial"].is_null());

    // the good build: the agent's own binary, stripped to download faster
    let good_path = keys.path().join("edge-agent-good");
    std::fs::copy(binary("edge-agent")?, &good_path)?;
    let _ = Command::new("strip").arg(&good_path).status();
    let good = std::fs::read(&good_path)?;
    let good_sig = sign(&key, keys.path(), &good, GOOD)?;
    let size = good.len() as u64;
    let after = gateway.statuses_heard();
    gateway.order(GOOD, good.clone(), good_sig.clone()).await?;
    let downloading = gateway
        .status(
            &stack,
            GOOD,
            AgentUpdatePhase::Downloading,
            after,
            Duration::from_secs(30),
        )
        .await?;
    ensure!(downloading.total_bytes == size, "{downloading:?}");
    let committed = gateway
        .status(
            &stack,
            GOOD,
            AgentUpdatePhase::Committed,
            after,
            Duration::from_secs(240),
        )
        .await?;
    ensure!(committed.message.is_empty(), "{committed:?}");
    let heard = gateway.heard_statuses();
    ensure!(
        heard
            .iter()
            .any(|(v, p, ..)| v == GOOD && *p == AgentUpdatePhase::Staged)
            || gateway.heard.lock().unwrap().reports.iter().any(|r| r
                .agent_update
                .as_ref()
                .is_some_and(|s| s.version == GOOD && s.phase == AgentUpdatePhase::Staged)),
        "never reported staged: {heard:?}"
    );
    let fetches = gateway.heard.lock().unwrap().fetches;
    ensure!(
        fetches >= size.div_ceil(edge_protocol::AGENT_UPDATE_CHUNK_BYTES),
        "{fetches} fetches for {size} bytes"
    );
    let report = gateway
        .report(&stack, "a node report of the new version", |r| {
            r.agent_version == GOOD
                && r.agent_update
                    .as_ref()
                    .is_some_and(|s| s.version == GOOD && s.phase == AgentUpdatePhase::Committed)
        })
        .await?;
    ensure!(report.capabilities.agent_update, "{report:?}");
    let state = ota_state(&ota_dir)?;
    ensure!(
        state["current"] == "a" && state["current_version"] == GOOD,
        "{state}"
    );
    ensure!(
        !ota_dir.join(format!("incoming/{GOOD}.part")).exists(),
        "the staged download was left behind"
    );
    wait_node_ready(&stack, DEVICE, "True", Duration::from_secs(30)).await?;
    let after_swap = app_container_identity(&pod_uid)
        .map_err(|e| anyhow!("after the update: {e}\n{}", stack.logs()))?;
    ensure!(
        after_swap == before,
        "the container changed through the update: {before:?} then {after_swap:?}\n{}",
        stack.logs()
    );

    // the running version ordered again: committed at once, nothing fetched
    let fetches = gateway.heard.lock().unwrap().fetches;
    let after = gateway.statuses_heard();
    gateway.order(GOOD, good, good_sig).await?;
    let again = gateway
        .status(
            &stack,
            GOOD,
            AgentUpdatePhase::Committed,
            after,
            Duration::from_secs(30),
        )
        .await?;
    ensure!(
        gateway.heard.lock().unwrap().fetches == fetches,
        "fetched again: {again:?}"
    );

    // a signed build that never reports healthy: rolled back, and the previous agent says so
    let broken = b"#!/bin/sh\n# a broken agent: never connects\nexec sleep 100000\n".to_vec();
    let broken_sig = sign(&key, keys.path(), &broken, BROKEN)?;
    let after = gateway.statuses_heard();
    gateway
        .order_with_deadline(BROKEN, broken.clone(), broken_sig.clone(), 5)
        .await?;
    let report = gateway
        .report(&stack, "the previous agent reporting the rollback", |r| {
            r.agent_version == GOOD
                && r.agent_update
                    .as_ref()
                    .is_some_and(|s| s.version == BROKEN && s.phase == AgentUpdatePhase::RolledBack)
        })
        .await?;
    let rolled_back = report.agent_update.unwrap_or_default();
    ensure!(
        rolled_back
            .message
            .contains("did not report healthy within 5 s"),
        "{rolled_back:?}"
    );
    gateway
        .status(
            &stack,
            BROKEN,
            AgentUpdatePhase::Staged,
            after,
            Duration::from_secs(1),
        )
        .await?;
    let state = ota_state(&ota_dir)?;
    ensure!(
        state["current"] == "a" && state["last_outcome"]["result"] == "rolledBack",
        "{state}"
    );
    // ordered again: not retried by the device
    let fetches = gateway.heard.lock().unwrap().fetches;
    let after = gateway.statuses_heard();
    gateway
        .order_with_deadline(BROKEN, broken, broken_sig, 5)
        .await?;
    let again = gateway
        .status(
            &stack,
            BROKEN,
            AgentUpdatePhase::RolledBack,
            after,
            Duration::from_secs(30),
        )
        .await?;
    ensure!(again.message == rolled_back.message, "{again:?}");
    ensure!(
        gateway.heard.lock().unwrap().fetches == fetches,
        "fetched a rolled back version again"
    );
    wait_node_ready(&stack, DEVICE, "True", Duration::from_secs(30)).await?;
    let after_rollback = app_container_identity(&pod_uid)
        .map_err(|e| anyhow!("after the rollback: {e}\n{}", stack.logs()))?;
    ensure!(
        after_rollback == before,
        "the container changed through the rollback: {before:?} then {after_rollback:?}"
    );
    Ok(())
}
