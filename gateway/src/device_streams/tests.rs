use std::sync::Arc;

use edge_protocol::{DeviceId, Message, StreamClose, StreamCredit, StreamOpened};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{
    DeliveryError, DeviceStreamMessage, DeviceStreams, EndReason, StreamEvent, StreamKind,
};
use crate::fleet::Outgoing;
use crate::metrics::Metrics;

fn dev(id: &str) -> DeviceId {
    DeviceId::new(id).unwrap()
}

fn streams() -> (
    DeviceStreams,
    mpsc::UnboundedReceiver<Outgoing>,
    Arc<Metrics>,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    let metrics = Arc::new(Metrics::new());
    (DeviceStreams::new(tx, metrics.clone()), rx, metrics)
}

fn opened() -> DeviceStreamMessage {
    DeviceStreamMessage::Opened(StreamOpened {
        window_bytes: 10,
        version: None,
    })
}

#[test]
fn data_goes_in_binary_frames_once_the_device_says_it_reads_them() {
    for (version, binary) in [(None, false), (Some(1), false), (Some(2), true)] {
        let (streams, mut out, _) = streams();
        let (tx, _rx) = mpsc::channel(8);
        let id = streams.open(
            &dev("pi-01"),
            StreamKind::Exec,
            tx,
            CancellationToken::new(),
        );
        let opened = DeviceStreamMessage::Opened(StreamOpened {
            window_bytes: 10,
            version,
        });
        streams.deliver(&dev("pi-01"), &id, opened).unwrap();
        streams.send(&dev("pi-01"), &id, StreamCredit { bytes: 1 });
        match out.try_recv().unwrap() {
            Outgoing::Stream { binary_data, .. } => {
                assert_eq!(binary_data, binary, "device stream version {version:?}");
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn messages_reach_the_connection_of_their_stream_only_from_its_device() {
    let (streams, _out, _) = streams();
    let (tx, mut rx) = mpsc::channel(8);
    let id = streams.open(
        &dev("pi-01"),
        StreamKind::Exec,
        tx,
        CancellationToken::new(),
    );
    let (tx2, mut rx2) = mpsc::channel(8);
    let other = streams.open(
        &dev("pi-02"),
        StreamKind::Exec,
        tx2,
        CancellationToken::new(),
    );
    assert_ne!(id, other, "ids are unique");

    streams.deliver(&dev("pi-01"), &id, opened()).unwrap();
    assert_eq!(
        rx.try_recv().unwrap(),
        StreamEvent::Device {
            id: id.clone(),
            message: opened()
        }
    );
    // another device naming this stream: dropped, the connection sees nothing
    assert_eq!(
        streams.deliver(&dev("pi-02"), &id, opened()),
        Err(DeliveryError::WrongDevice)
    );
    assert!(rx.try_recv().is_err());
    assert!(rx2.try_recv().is_err());
    // an unknown stream id
    let unknown = edge_protocol::RequestId::new("nope").unwrap();
    assert_eq!(
        streams.deliver(&dev("pi-01"), &unknown, opened()),
        Err(DeliveryError::UnknownStream)
    );
    // once finished, the stream's messages are unknown
    streams.finish(&id, StreamKind::Exec, EndReason::Client);
    assert_eq!(
        streams.deliver(&dev("pi-01"), &id, opened()),
        Err(DeliveryError::UnknownStream)
    );
    assert_eq!(streams.open_count(), 1);
}

#[test]
fn a_flooding_device_breaks_its_connection_instead_of_growing_a_queue() {
    let (streams, _out, _) = streams();
    let (tx, _rx) = mpsc::channel(2);
    let broken = CancellationToken::new();
    let id = streams.open(&dev("pi-01"), StreamKind::PortForward, tx, broken.clone());
    let credit = || DeviceStreamMessage::Credit(StreamCredit { bytes: 1 });
    streams.deliver(&dev("pi-01"), &id, credit()).unwrap();
    streams.deliver(&dev("pi-01"), &id, credit()).unwrap();
    assert!(!broken.is_cancelled());
    assert_eq!(
        streams.deliver(&dev("pi-01"), &id, credit()),
        Err(DeliveryError::Overflow)
    );
    assert!(broken.is_cancelled());
    assert_eq!(streams.open_count(), 0);
}

#[test]
fn a_device_going_away_ends_every_stream_of_it_and_no_other() {
    let (streams, _out, _) = streams();
    let (tx, mut rx) = mpsc::channel(8);
    let a = streams.open(
        &dev("pi-01"),
        StreamKind::PortForward,
        tx.clone(),
        CancellationToken::new(),
    );
    let b = streams.open(
        &dev("pi-01"),
        StreamKind::PortForward,
        tx,
        CancellationToken::new(),
    );
    let (tx2, mut rx2) = mpsc::channel(8);
    let c = streams.open(
        &dev("pi-02"),
        StreamKind::Exec,
        tx2,
        CancellationToken::new(),
    );
    let mut ended = streams.close_device(&dev("pi-01"), "device offline");
    ended.sort();
    let mut want = vec![a.clone(), b.clone()];
    want.sort();
    assert_eq!(ended, want);
    let mut gone = Vec::new();
    while let Ok(StreamEvent::DeviceGone { id, reason }) = rx.try_recv() {
        assert_eq!(reason, "device offline");
        gone.push(id);
    }
    gone.sort();
    assert_eq!(gone, want);
    assert!(rx2.try_recv().is_err());
    assert_eq!(streams.open_count(), 1);
    streams.deliver(&dev("pi-02"), &c, opened()).unwrap();
}

#[test]
fn messages_to_the_device_go_to_the_outbox_and_metrics_count_opens_and_ends() {
    let (streams, mut out, metrics) = streams();
    let (tx, _rx) = mpsc::channel(8);
    let id = streams.open(
        &dev("pi-01"),
        StreamKind::Attach,
        tx,
        CancellationToken::new(),
    );
    streams.send(&dev("pi-01"), &id, StreamClose::default());
    match out.try_recv().unwrap() {
        Outgoing::Stream {
            device,
            id: sent,
            message,
            binary_data,
        } => {
            assert!(!binary_data, "the device has not answered yet");
            assert_eq!((device.as_str(), &sent), ("pi-01", &id));
            assert_eq!(*message, Message::StreamClose(StreamClose::default()));
        }
        other => panic!("{other:?}"),
    }
    let text = metrics.render();
    assert!(
        text.contains("edge_gateway_streams_open{kind=\"attach\"} 1"),
        "{text}"
    );
    streams.finish(&id, StreamKind::Attach, EndReason::Idle);
    let text = metrics.render();
    assert!(
        text.contains("edge_gateway_streams_open{kind=\"attach\"} 0"),
        "{text}"
    );
    assert!(
        text.contains(
            "edge_gateway_streams_ended_total{kind=\"attach\",reason=\"idle_timeout\"} 1"
        ),
        "{text}"
    );
}
