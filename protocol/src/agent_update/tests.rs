use super::*;
use crate::{DecodeError, DeviceId, DownChannel, Message, Topic, UpChannel};

fn device() -> DeviceId {
    DeviceId::new("pi-01").unwrap()
}

#[test]
fn the_manifest_is_the_text_the_operator_signs() {
    assert_eq!(
        signed_manifest("0.4.0", "ab12"),
        "edge-agent-ota v1\nversion=0.4.0\nsha256=ab12\n"
    );
}

#[test]
fn fetches_and_statuses_travel_up_orders_and_chunks_down() {
    let up = Topic::up(&device(), UpChannel::AgentUpdate);
    let down = Topic::down(&device(), DownChannel::AgentUpdate);
    assert_eq!(up.to_string(), "edge/v1/pi-01/up/agent-update");
    assert_eq!(down.to_string(), "edge/v1/pi-01/down/agent-update");
    assert_eq!(Topic::parse(&up.to_string()).unwrap(), up);
    assert_eq!(Topic::parse(&down.to_string()).unwrap(), down);

    let fetch = Message::from(AgentUpdateFetch {
        version: "0.4.0".into(),
        offset: 262_144,
        length: AGENT_UPDATE_CHUNK_BYTES,
    });
    let payload = fetch.encode().unwrap();
    assert_eq!(Message::decode_on(&up, &payload).unwrap(), fetch);
    // a device cannot send itself an order, nor the gateway a fetch
    assert!(matches!(
        Message::decode_on(&down, &payload),
        Err(DecodeError::WrongTopic { .. })
    ));
    let order = Message::from(AgentUpdateOrder {
        version: "0.4.0".into(),
        sha256: "00".repeat(32),
        size_bytes: 7,
        signature: Base64Bytes(vec![1; 64]),
        health_deadline_seconds: 120,
    })
    .encode()
    .unwrap();
    assert!(matches!(
        Message::decode_on(&up, &order),
        Err(DecodeError::WrongTopic { .. })
    ));
}

#[test]
fn a_full_chunk_fits_in_one_message() {
    let chunk = Message::from(AgentUpdateChunk {
        version: "0.4.0".into(),
        offset: 0,
        data: Base64Bytes(vec![0xff; AGENT_UPDATE_CHUNK_BYTES as usize]),
        error: None,
    });
    let payload = chunk.encode().unwrap();
    assert!(payload.len() < crate::MAX_MESSAGE_BYTES);
    let down = Topic::down(&device(), DownChannel::AgentUpdate);
    assert_eq!(Message::decode_on(&down, &payload).unwrap(), chunk);
}

#[test]
fn only_committed_rolled_back_and_failed_end_an_update() {
    use AgentUpdatePhase::*;
    assert!(!Downloading.is_final());
    assert!(!Staged.is_final());
    assert!(Committed.is_final() && RolledBack.is_final() && Failed.is_final());
    let status = AgentUpdateStatus {
        version: "0.4.0".into(),
        phase: RolledBack,
        message: "version 0.4.0 did not report healthy within 120 s".into(),
        ..Default::default()
    };
    let json = serde_json::to_value(&status).unwrap();
    assert_eq!(json["phase"], "rolledBack");
    // a phase this reader does not know leaves the message readable
    let newer: AgentUpdateStatus =
        serde_json::from_value(serde_json::json!({"version": "0.5.0", "phase": "verifying"}))
            .unwrap();
    assert_eq!(newer.phase, Unknown);
    assert!(!Unknown.is_final());
}
