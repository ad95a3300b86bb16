//! What the protocol fuzz targets check, on any input:
//! - `Message::decode` and `Message::decode_on` return (a message or a typed error) and
//!   never panic;
//! - a message they accept encodes again and decodes to the same message;
//! - `Topic::parse` never panics, and a topic it accepts prints back to the same string
//!   and parses again to the same topic.
//!
//! One copy, used by the cargo-fuzz targets (`fuzz/fuzz_targets/`) and by the stable
//! regression tests (`protocol/tests/fuzz_regressions.rs`) through `#[path]`.

use edge_protocol::envelope::allowed_kinds;
use edge_protocol::{DeviceId, DownChannel, EncodeError, Message, RequestId, Topic, UpChannel};

/// `Message::decode` on raw bytes, then [`decode_on_topic`] with the first byte as the
/// topic choice.
pub fn check_decode(data: &[u8]) {
    if let Ok(msg) = Message::decode(data) {
        round_trip(&msg);
    }
    decode_on_topic(data);
}

/// The first byte picks one topic of every channel; the rest is the payload.
pub fn decode_on_topic(data: &[u8]) {
    let Some((&pick, payload)) = data.split_first() else {
        return;
    };
    let topics = sample_topics();
    let topic = &topics[usize::from(pick) % topics.len()];
    if let Ok(msg) = Message::decode_on(topic, payload) {
        assert!(
            allowed_kinds(topic).contains(&msg.kind()),
            "decode_on accepted a {} on {topic}",
            msg.kind()
        );
        round_trip(&msg);
    }
}

/// `Topic::parse` on the input as UTF-8 (other inputs are not topics MQTT can carry).
pub fn check_topic(data: &[u8]) {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(topic) = Topic::parse(raw) {
        let printed = topic.to_string();
        assert_eq!(printed, raw, "a parsed topic prints differently");
        assert_eq!(
            Topic::parse(&printed).as_ref(),
            Ok(&topic),
            "a printed topic parses differently"
        );
    }
}

fn round_trip(msg: &Message) {
    match msg.encode() {
        Ok(bytes) => match Message::decode(&bytes) {
            Ok(again) => assert_eq!(&again, msg, "a decoded message changed on re-encoding"),
            Err(e) => panic!(
                "a decoded {} does not decode after encoding: {e}",
                msg.kind()
            ),
        },
        // Defaults filled in by decoding can make the encoding larger than the input.
        Err(EncodeError::TooLarge { .. }) => {}
        Err(e) => panic!("a decoded {} does not encode: {e}", msg.kind()),
    }
}

fn sample_topics() -> Vec<Topic> {
    let (Ok(device), Ok(request)) = (DeviceId::new("pi-01"), RequestId::new("req-1")) else {
        unreachable!("constant ids are valid")
    };
    vec![
        Topic::up(&device, UpChannel::Hello),
        Topic::up(&device, UpChannel::Heartbeat),
        Topic::up(&device, UpChannel::State),
        Topic::up(&device, UpChannel::Status),
        Topic::up(&device, UpChannel::Events),
        Topic::up(&device, UpChannel::Resync),
        Topic::up(&device, UpChannel::Logs(request.clone())),
        Topic::down(&device, DownChannel::Desired),
        Topic::down(&device, DownChannel::Resync),
        Topic::down(&device, DownChannel::Logs(request)),
    ]
}
