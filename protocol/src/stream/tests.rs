use super::flow::{FlowError, ReceiveWindow, Received, SendWindow};
use super::*;
use crate::DeviceId;
use crate::{DownChannel, Message, MessageKind, RequestId, Topic, UpChannel};

fn open() -> StreamOpen {
    StreamOpen {
        version: STREAM_PROTOCOL_VERSION,
        target: StreamTarget::Exec {
            pod: StreamPod {
                pod_uid: "u1".into(),
                namespace: "default".into(),
                pod_name: "p".into(),
            },
            container: "c".into(),
            command: vec!["sh".into(), "-c".into(), "echo hi".into()],
            stdio: StdioSelection {
                stdin: true,
                stdout: true,
                stderr: false,
                tty: true,
            },
        },
        terminal_size: Some(TerminalSize {
            width: 80,
            height: 24,
        }),
        window_bytes: DEFAULT_STREAM_WINDOW_BYTES,
    }
}

#[test]
fn targets_are_tagged_and_camel_case_on_the_wire() {
    let v = serde_json::to_value(open()).unwrap();
    assert_eq!(v["target"]["type"], "exec");
    assert_eq!(v["target"]["pod"]["podUid"], "u1");
    assert_eq!(v["target"]["stdio"]["tty"], true);
    assert_eq!(v["terminalSize"]["width"], 80);
    let pf = StreamTarget::PortForward {
        pod: StreamPod::default(),
        port: 8080,
    };
    let v = serde_json::to_value(&pf).unwrap();
    assert_eq!(v["type"], "portForward");
    assert_eq!(v["port"], 8080);
}

#[test]
fn stream_kinds_travel_only_on_their_direction() {
    let device = DeviceId::new("pi-01").unwrap();
    let id = RequestId::new("s1").unwrap();
    let down = Topic::down(&device, DownChannel::Stream(id.clone()));
    let up = Topic::up(&device, UpChannel::Stream(id));
    let open = Message::from(open()).encode().unwrap();
    assert!(Message::decode_on(&down, &open).is_ok());
    assert!(
        Message::decode_on(&up, &open).is_err(),
        "a device cannot open streams"
    );
    let opened = Message::from(StreamOpened {
        window_bytes: 1,
        version: None,
    })
    .encode()
    .unwrap();
    assert!(Message::decode_on(&up, &opened).is_ok());
    assert!(Message::decode_on(&down, &opened).is_err());
    let resize = Message::from(StreamResize::default()).encode().unwrap();
    assert!(Message::decode_on(&up, &resize).is_err());
    for kind in [
        MessageKind::StreamData,
        MessageKind::StreamCredit,
        MessageKind::StreamClose,
    ] {
        assert!(crate::allowed_kinds(&up).contains(&kind));
        assert!(crate::allowed_kinds(&down).contains(&kind));
    }
}

#[test]
fn a_full_frame_of_data_fits_in_a_message() {
    let mut window = SendWindow::new(MAX_STREAM_WINDOW_BYTES);
    let frame = window
        .frame(
            StreamChannel::Stdout,
            vec![0xff; MAX_STREAM_DATA_BYTES],
            false,
        )
        .unwrap();
    Message::from(frame)
        .encode()
        .expect("within the message limit");
}

#[test]
fn the_sender_stops_at_the_window_and_resumes_on_credit() {
    let mut send = SendWindow::new(10);
    assert_eq!(send.next_frame_limit(), 10);
    let first = send.frame(StreamChannel::Data, vec![1; 6], false).unwrap();
    assert_eq!(first.sequence, 0);
    assert_eq!(
        send.frame(StreamChannel::Data, vec![1; 5], false),
        Err(FlowError::OverWindow {
            size: 5,
            available: 4
        })
    );
    let second = send.frame(StreamChannel::Data, vec![1; 4], true).unwrap();
    assert_eq!(second.sequence, 1);
    assert_eq!(send.available(), 0);
    assert_eq!(send.next_frame_limit(), 0);
    send.credit(StreamCredit { bytes: 6 });
    assert_eq!(send.available(), 6);
    send.credit(StreamCredit { bytes: u64::MAX });
    assert_eq!(send.available(), MAX_STREAM_WINDOW_BYTES);
}

#[test]
fn the_receiver_drops_repeats_and_refuses_gaps_and_overruns() {
    let mut send = SendWindow::new(100);
    let mut recv = ReceiveWindow::new(100);
    let a = send
        .frame(StreamChannel::Stdin, vec![0; 60], false)
        .unwrap();
    assert_eq!(recv.accept(&a), Ok(Received::New));
    assert_eq!(recv.accept(&a), Ok(Received::Duplicate));
    let mut skipped = a.clone();
    skipped.sequence = 5;
    assert_eq!(
        recv.accept(&skipped),
        Err(FlowError::Gap {
            expected: 1,
            found: 5
        })
    );
    let mut over = a.clone();
    over.sequence = 1;
    assert_eq!(
        recv.accept(&over),
        Err(FlowError::OverWindow {
            size: 60,
            available: 40
        })
    );
}

#[test]
fn credit_returns_once_half_the_window_is_consumed() {
    let mut send = SendWindow::new(100);
    let mut recv = ReceiveWindow::new(100);
    let a = send.frame(StreamChannel::Data, vec![0; 30], false).unwrap();
    recv.accept(&a).unwrap();
    assert_eq!(recv.consumed(30), None);
    let b = send.frame(StreamChannel::Data, vec![0; 30], false).unwrap();
    recv.accept(&b).unwrap();
    let credit = recv.consumed(30).expect("half the window consumed");
    assert_eq!(credit.bytes, 60);
    send.credit(credit);
    assert_eq!(send.available(), 100);
    // The receiver counts the credit as outstanding again: a full window is accepted.
    let c = send
        .frame(StreamChannel::Data, vec![0; 100], false)
        .unwrap();
    assert_eq!(recv.accept(&c), Ok(Received::New));
}

#[test]
fn oversized_frames_are_refused_on_both_sides() {
    let mut send = SendWindow::new(MAX_STREAM_WINDOW_BYTES);
    assert!(matches!(
        send.frame(
            StreamChannel::Data,
            vec![0; MAX_STREAM_DATA_BYTES + 1],
            false
        ),
        Err(FlowError::TooLarge { .. })
    ));
    let mut recv = ReceiveWindow::new(MAX_STREAM_WINDOW_BYTES);
    let big = StreamData {
        sequence: 0,
        channel: StreamChannel::Data,
        data: vec![0; MAX_STREAM_DATA_BYTES + 1].into(),
        end: false,
    };
    assert!(matches!(recv.accept(&big), Err(FlowError::TooLarge { .. })));
}

fn frame(sequence: u64, channel: StreamChannel, data: &[u8], end: bool) -> StreamData {
    StreamData {
        sequence,
        channel,
        data: data.to_vec().into(),
        end,
    }
}

#[test]
fn binary_data_frames_round_trip_on_every_channel() {
    for (i, channel) in [
        StreamChannel::Stdin,
        StreamChannel::Stdout,
        StreamChannel::Stderr,
        StreamChannel::Data,
    ]
    .into_iter()
    .enumerate()
    {
        for end in [false, true] {
            let d = frame(u64::MAX - i as u64, channel, &[0, 1, 2, 255, b'{'], end);
            let bytes = encode_data_frame(&d);
            assert!(is_data_frame(&bytes));
            assert_eq!(bytes.len(), 14 + 5, "header plus the raw bytes, no base64");
            assert_eq!(decode_data_frame(&bytes), Ok(d));
        }
    }
    let empty = frame(0, StreamChannel::Stdin, b"", true);
    assert_eq!(decode_data_frame(&encode_data_frame(&empty)), Ok(empty));
}

#[test]
fn a_peer_reads_both_forms_on_stream_topics_only() {
    let device = DeviceId::new("pi-01").unwrap();
    let id = RequestId::new("s1").unwrap();
    let up = Topic::up(&device, UpChannel::Stream(id.clone()));
    let down = Topic::down(&device, DownChannel::Stream(id));
    let d = frame(7, StreamChannel::Data, &[9; 1000], false);
    let binary = Message::StreamData(d.clone())
        .encode_for_stream(true)
        .unwrap();
    let json = Message::StreamData(d.clone())
        .encode_for_stream(false)
        .unwrap();
    assert!(binary.len() < json.len());
    assert_eq!(json, Message::StreamData(d.clone()).encode().unwrap());
    for topic in [&up, &down] {
        for payload in [&binary, &json] {
            assert_eq!(
                Message::decode_on(topic, payload),
                Ok(Message::StreamData(d.clone()))
            );
        }
    }
    // other kinds stay JSON whatever the peer reads
    let credit = Message::StreamCredit(StreamCredit { bytes: 5 });
    assert_eq!(
        credit.encode_for_stream(true).unwrap(),
        credit.encode().unwrap()
    );
    // a binary frame where no stream data belongs is refused
    let status = Topic::up(&device, UpChannel::Status);
    assert!(matches!(
        Message::decode_on(&status, &binary),
        Err(crate::DecodeError::WrongTopic { .. })
    ));
}

#[test]
fn damaged_binary_frames_are_typed_errors() {
    let good = encode_data_frame(&frame(1, StreamChannel::Stdout, b"x", false));
    assert_eq!(
        decode_data_frame(&good[..10]),
        Err(DataFrameError::Truncated(10))
    );
    let mut channel = good.clone();
    channel[12] = 9;
    assert_eq!(
        decode_data_frame(&channel),
        Err(DataFrameError::UnknownChannel(9))
    );
    let mut flags = good.clone();
    flags[13] = 0b10;
    assert_eq!(
        decode_data_frame(&flags),
        Err(DataFrameError::UnknownFlags(0b10))
    );
    let mut big = good[..14].to_vec();
    big.extend(std::iter::repeat_n(0u8, MAX_STREAM_DATA_BYTES + 1));
    assert_eq!(
        decode_data_frame(&big),
        Err(DataFrameError::TooMuchData(MAX_STREAM_DATA_BYTES + 1))
    );
    assert!(matches!(
        Message::decode(&channel),
        Err(crate::DecodeError::DataFrame(_))
    ));
}

#[test]
fn opened_carries_the_devices_stream_version_and_older_replies_read_as_none() {
    let opened = StreamOpened {
        window_bytes: 1024,
        version: Some(STREAM_PROTOCOL_VERSION),
    };
    let bytes = Message::StreamOpened(opened.clone()).encode().unwrap();
    assert_eq!(Message::decode(&bytes), Ok(Message::StreamOpened(opened)));
    let old = br#"{"protocol":"1.1","kind":"streamOpened","body":{"windowBytes":1024}}"#;
    assert_eq!(
        Message::decode(old),
        Ok(Message::StreamOpened(StreamOpened {
            window_bytes: 1024,
            version: None
        }))
    );
}

#[test]
fn the_binary_layout_is_magic_sequence_channel_flags_data() {
    let bytes = encode_data_frame(&frame(
        0x0102_0304_0506_0708,
        StreamChannel::Stderr,
        b"hi",
        true,
    ));
    assert_eq!(
        bytes,
        [
            0, b'E', b'S', b'D', 1, 2, 3, 4, 5, 6, 7, 8, 2, 1, b'h', b'i'
        ]
    );
}
